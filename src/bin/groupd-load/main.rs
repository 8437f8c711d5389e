//! `groupd-load`: drives a running groupd over gRPC with a closed-loop mix
//! of calls, checks every reply, and reports throughput and latency per
//! call kind; with `--ceilings`, also what the same connections and tasks
//! get from a no-op gRPC call and from the database work alone, and
//! groupd's figures as ratios to those. README ("Performance", "Load
//! tool") shows how to run it.
//!
//! Exit status: 0 when every call was answered OK and right, 3 when any
//! was not (the figures are still printed), 1 when the run could not be
//! made, 2 for bad flags.

// The modules of this binary, beside this file in `src/bin/groupd-load/`.
mod calls;
mod checks;
mod cli;
mod client;
mod dataset;
mod db;
mod echo;
mod procfs;
mod report;
mod run;
mod stats;

use std::{process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::Parser as _;

use crate::{
    calls::GroupdWorker,
    cli::Args,
    client::Client,
    dataset::Shape,
    db::DbWorker,
    echo::{EchoServer, EchoWorker},
    report::{Ceiling, DatasetReport, Measurement, Report},
    run::drive,
};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match load(args).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(3),
        Err(error) => {
            eprintln!("groupd-load: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs everything the flags ask for, prints the report, and returns how
/// many calls failed.
async fn load(args: Args) -> anyhow::Result<u64> {
    let authorization = client::bearer(args.token.as_deref())?;
    let connections = args.connections as usize;
    let channels = client::connect(&args.target, connections).await?;
    let clients: Vec<Client> = channels
        .into_iter()
        .map(|channel| Client::new(channel, authorization.clone()))
        .collect();
    let shape = Shape {
        groups: args.groups,
        principals: args.principals,
        tasks: args.tasks(),
    };
    let data = Arc::new(dataset::prepare(&clients, &args.dataset, shape).await?);
    // New values and principals of this run are its own.
    let run = format!("{:08x}", rand::random::<u32>());

    // Task t runs on connection t % connections: `streams` tasks each.
    let workers = (0..args.tasks())
        .map(|task| {
            GroupdWorker::new(
                clients[task % connections].clone(),
                Arc::clone(&data),
                &run,
                task,
                args.fully_consistent,
            )
        })
        .collect();
    let groupd = Measurement::of(
        drive(
            workers,
            &args.mix,
            args.warmup,
            args.duration,
            args.server_pid,
        )
        .await,
    );

    let mut ceilings = Vec::new();
    if args.ceilings {
        let echo = EchoServer::start().await?;
        let channels = client::connect(&echo.url(), connections).await?;
        let workers = (0..args.tasks())
            .map(|task| EchoWorker::new(channels[task % connections].clone(), task))
            .collect();
        let measured =
            Measurement::of(drive(workers, &args.mix, args.warmup, args.duration, None).await);
        drop(echo);
        ceilings.push(Ceiling::new(
            "echo",
            "a no-op gRPC call to an echo server on loopback, in this process".to_owned(),
            measured,
            &groupd,
        ));

        let url = args
            .database_url
            .as_deref()
            .context("--ceilings needs --database-url")?;
        let database = db::Database::connect(url, args.database_connections).await?;
        let workers = (0..args.tasks())
            .map(|task| DbWorker::new(database.clone(), Arc::clone(&data), &run, task))
            .collect();
        let measured =
            Measurement::of(drive(workers, &args.mix, args.warmup, args.duration, None).await);
        ceilings.push(Ceiling::new(
            "database",
            format!(
                "each call's database work done directly on {} ({} pooled connections)",
                database.describe(),
                args.database_connections
            ),
            measured,
            &groupd,
        ));
        database.close().await;
    }

    let report = Report {
        tool: format!("groupd-load {}", env!("CARGO_PKG_VERSION")),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        target: args.target.clone(),
        connections: args.connections,
        streams: args.streams,
        warmup_seconds: args.warmup.as_secs_f64(),
        duration_seconds: args.duration.as_secs_f64(),
        mix: args.mix.to_string(),
        dataset: DatasetReport {
            name: data.name.clone(),
            groups: args.groups,
            principals: args.principals,
            chain_levels: data.chain.len(),
            tasks: args.tasks(),
            size: data.size,
            created: data.created,
        },
        groupd,
        ceilings,
    };
    print!("{}", report.text());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("encoding the JSON report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report.failures())
}
