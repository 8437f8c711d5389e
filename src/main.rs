//! The `groupd` binary: parse configuration, start logging, then serve,
//! migrate, print the OpenAPI document, or make development keys and
//! tokens. Everything else lives in the library.

use std::{io::Write as _, process::ExitCode};

use clap::Parser as _;
use groupd::{
    auth,
    config::{Cli, Command},
    http::openapi,
    startup::{self, Application},
    telemetry,
};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.settings.check() {
        error.exit();
    }
    // Logging outlives the runtime. Calls still running when the server
    // stops are dropped as the runtime shuts down, and each logs that it
    // was cut; the guard, dropped last, writes those lines too (dropped
    // first, it would close the writer's queue before them).
    let _guard = match telemetry::init(cli.settings.log_format, &cli.settings.log_filter) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("groupd: cannot start logging: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match run(cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "groupd failed");
                ExitCode::FAILURE
            }
        }
    });
    drop(runtime);
    code
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            cli.settings.log_effective();
            let store = startup::connect(&cli.settings).await?;
            store.migrate().await?;
            tracing::info!("migrations applied");
            store.close().await?;
        }
        Command::Openapi => {
            let document = serde_json::to_string_pretty(&openapi::contract_document()?)?;
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{document}").and_then(|()| stdout.flush()) {
                // A reader that stops early (`| head`) is not a failure.
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(error.into());
                }
                _ => {}
            }
        }
        Command::DevKeys(args) => {
            let key = auth::dev::write_keys(&args.dir, args.alg)?;
            println!(
                "wrote {} and {} (kid {}); for development only",
                args.dir.join(auth::dev::PRIVATE_KEY_FILE).display(),
                args.dir.join(auth::dev::JWKS_FILE).display(),
                key.kid()
            );
        }
        Command::DevToken(args) => {
            let key = auth::dev::read_key(&args.key)?;
            let claims = auth::dev::claims(
                &args.issuer,
                &args.audience,
                &args.sub,
                &args.roles,
                args.ttl,
            );
            println!("{}", key.sign(&claims)?);
        }
        Command::Serve => {
            cli.settings.log_effective();
            if cli.settings.auth.is_off() {
                tracing::warn!(
                    "authentication is off (--auth none): every caller is an anonymous \
                     groups.admin"
                );
            }
            let app = Application::build(cli.settings).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            app.run(shutdown).await?;
        }
    }
    Ok(())
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops groupd");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown signal received");
    shutdown.cancel();
}
