//! The cost of authentication (README, "Performance"): a measurement, not a
//! test.
//!
//! It starts the real [`Application`] in process on a temporary SQLite
//! file, three times: with authentication off, with `--auth jwt` (a key
//! pair generated here, its JWKS in a file, one token per client signed for
//! real), and with `--auth basic` (an htpasswd file with a bcrypt hash of
//! the default cost). Each time it drives GetGroup in the BASIC view,
//! closed loop, from `connections × streams` client tasks for a fixed
//! time, checks every reply, and prints requests/s and p50/p99 latency.
//! The authenticated figures are printed as ratios to the unauthenticated
//! one, measured in the same run, with PASS/MISS against 0.9: a verified
//! token and a verified Basic header are remembered, so that after the
//! first call neither costs a signature check nor a bcrypt run. A MISS is
//! printed loudly but does not fail the process; a wrong reply does.
//!
//! `cargo bench --bench auth` runs 5 s per mode; without `--bench` (as
//! `cargo test --benches` runs it) it does a quick smoke run. Environment:
//! `GROUPD_BENCH_SECONDS` (seconds per mode), `GROUPD_BENCH_CONNECTIONS`
//! (default 4) and `GROUPD_BENCH_STREAMS` (tasks per connection, default
//! 4).

// A benchmark, not request-path code: a setup call that fails aborts the
// run with its message, which is what `expect` says best.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use base64::Engine as _;
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey as _};
use groupd::{
    config::Settings,
    pb::{self, group_service_client::GroupServiceClient},
    startup::Application,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::{Request, transport::Channel};

/// The least throughput an authenticated mode keeps, as a share of the
/// unauthenticated one.
const TARGET_RATIO: f64 = 0.9;

const ISSUER: &str = "https://issuer.bench.test";

/// One mode of the run: its server flags and the `authorization` header
/// each client task sends.
struct Mode {
    name: &'static str,
    args: Vec<String>,
    header: Option<String>,
}

/// The files of the JWT and Basic modes, in a directory of their own.
struct Credentials {
    dir: PathBuf,
}

impl Credentials {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "groupd_bench_auth_{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    /// A JWT mode: a fresh Ed25519 key, its JWKS file, and a token.
    fn jwt(&self) -> Mode {
        let signing = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let pem = signing
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(signing.verifying_key().as_bytes());
        let jwks = json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bench", "alg": "EdDSA", "use": "sig",
        }]});
        let jwks_path = self.dir.join("jwks.json");
        std::fs::write(&jwks_path, jwks.to_string()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": ISSUER, "aud": "groupd", "sub": "bench", "roles": ["groups.admin"],
            "iat": now, "exp": now + 3600,
        });
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("bench".to_owned());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap();
        Mode {
            name: "jwt",
            args: args(&[
                "--auth",
                "jwt",
                "--jwt-issuer",
                ISSUER,
                "--jwt-audience",
                "groupd",
                "--jwt-jwks-file",
                &path(&jwks_path),
            ]),
            header: Some(format!("Bearer {token}")),
        }
    }

    /// A Basic mode: one user with a bcrypt hash of the default cost, and
    /// the roles file that makes it `groups.admin`.
    fn basic(&self) -> Mode {
        let password = format!("{:032x}", rand::random::<u128>());
        let hash = bcrypt::hash(&password, bcrypt::DEFAULT_COST).unwrap();
        let users = self.dir.join("users.htpasswd");
        std::fs::write(&users, format!("bench:{hash}\n")).unwrap();
        let roles = self.dir.join("roles.json");
        std::fs::write(&roles, json!({"bench": ["groups.admin"]}).to_string()).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("bench:{password}"));
        Mode {
            name: "basic",
            args: args(&[
                "--auth",
                "basic",
                "--basic-users-file",
                &path(&users),
                "--roles-file",
                &path(&roles),
            ]),
            header: Some(format!("Basic {encoded}")),
        }
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// `message` as a request carrying the `authorization` header `header`.
fn authorized<T>(header: Option<&str>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(header) = header {
        request
            .metadata_mut()
            .insert("authorization", header.parse().unwrap());
    }
    request
}

/// What one mode measured.
struct Figures {
    calls: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Starts groupd with `mode`, creates one group, and drives GetGroup on it
/// for `span` from `connections × streams` tasks.
async fn measure(mode: &Mode, span: Duration, connections: usize, streams: usize) -> Figures {
    let database = std::env::temp_dir().join(format!(
        "groupd_bench_auth_{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let mut all = args(&[
        "groupd",
        "--database-url",
        &format!("sqlite://{}", database.display()),
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    all.extend(mode.args.iter().cloned());
    let settings = Settings::parse_from_args(all).expect("bench settings");
    let application = Application::build(settings)
        .await
        .expect("Application::build");
    let addr = application.grpc_addr();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(application.run(shutdown.clone()));

    let request = |message| authorized(mode.header.as_deref(), message);
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(
            Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .expect("cannot connect to groupd"),
        );
    }
    let created = GroupServiceClient::new(channels[0].clone())
        .create_group(request(pb::CreateGroupRequest {
            group: Some(pb::Group {
                name: "bench".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("CreateGroup")
        .into_inner();

    // One warm-up call per task's credentials: the first Basic call runs
    // bcrypt, the first JWT call verifies the signature.
    let get = pb::GetGroupRequest {
        id: created.id.clone(),
        view: pb::GroupView::Basic.into(),
    };
    GroupServiceClient::new(channels[0].clone())
        .get_group(authorized(mode.header.as_deref(), get.clone()))
        .await
        .expect("warm-up GetGroup");

    let deadline = Instant::now() + span;
    let mut tasks = tokio::task::JoinSet::new();
    for channel in &channels {
        for _ in 0..streams {
            let mut client = GroupServiceClient::new(channel.clone());
            let get = get.clone();
            let header = mode.header.clone();
            let id = created.id.clone();
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let call = authorized(header.as_deref(), get.clone());
                    let started = Instant::now();
                    let group = client.get_group(call).await.expect("GetGroup").into_inner();
                    latencies.push(started.elapsed());
                    assert_eq!(group.id, id, "a wrong reply");
                    assert!(group.members.is_empty(), "the BASIC view has no members");
                }
                latencies
            });
        }
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.expect("a client task failed"));
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let figures = Figures {
        calls: latencies.len(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    };
    shutdown.cancel();
    server.await.expect("server task").expect("server");
    for suffix in ["", "-wal", "-shm"] {
        let mut file = database.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    figures
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let seconds = env_number("GROUPD_BENCH_SECONDS", if bench_mode { 5.0 } else { 0.3 });
    let connections = env_number("GROUPD_BENCH_CONNECTIONS", 4.0) as usize;
    let streams = env_number("GROUPD_BENCH_STREAMS", 4.0) as usize;
    let span = Duration::from_secs_f64(seconds);
    let credentials = Credentials::new();
    let modes = [
        Mode {
            name: "none",
            args: Vec::new(),
            header: None,
        },
        credentials.jwt(),
        credentials.basic(),
    ];
    println!(
        "GetGroup (BASIC view), SQLite, {connections} connections × {streams} streams, {seconds} s \
         per mode{}",
        if bench_mode {
            ""
        } else {
            " (smoke run: `cargo bench --bench auth` runs the full one)"
        }
    );
    let mut baseline = None;
    for mode in &modes {
        let figures = measure(mode, span, connections.max(1), streams.max(1)).await;
        let ratio = baseline.map(|base: f64| figures.per_second / base);
        let verdict = match ratio {
            None => String::from("(the ceiling of this run)"),
            Some(ratio) if ratio >= TARGET_RATIO => format!("{ratio:.2}× of none: PASS"),
            Some(ratio) => format!("{ratio:.2}× of none: MISS (target {TARGET_RATIO}×)"),
        };
        println!(
            "  auth {:<5} {:>8} calls {:>9.0} RPS  p50 {:>6.0} µs  p99 {:>6.0} µs  {verdict}",
            mode.name,
            figures.calls,
            figures.per_second,
            figures.p50.as_secs_f64() * 1e6,
            figures.p99.as_secs_f64() * 1e6,
        );
        baseline.get_or_insert(figures.per_second);
    }
}
