//! The closed loop: tasks that each make one call at a time, of a kind
//! drawn from the mix, for a warm-up and then a measured window.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use crate::{
    cli::{Kind, Mix},
    procfs::{Usage, Watch},
    stats::{Outcome, Tally},
};

/// How long a call may take before the tool gives up on it (sending no
/// deadline to the server, whose own `--request-timeout` applies): a
/// stalled server shows as timeouts rather than as a run that never ends.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What makes the calls of one task: the server, the echo server or the
/// database.
pub trait Worker: Send + 'static {
    /// Makes one call of `kind` and says how it ended.
    fn call(&mut self, kind: Kind) -> impl Future<Output = Outcome> + Send;
}

/// What one measurement gives.
#[derive(Debug)]
pub struct Measured {
    pub tally: Tally,
    /// The measured window.
    pub window: Duration,
    /// The server process's use over the window, when watched.
    pub server: Option<Usage>,
    /// This process's.
    pub client: Option<Usage>,
}

/// Runs `workers`, one task each, drawing kinds from `mix`: `warmup`, then
/// `duration` measured. A call counts in the window when it began and
/// ended inside it; failures count whenever they happen.
pub async fn drive<W: Worker>(
    workers: Vec<W>,
    mix: &Mix,
    warmup: Duration,
    duration: Duration,
    server_pid: Option<u32>,
) -> Measured {
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, mut worker) in workers.into_iter().enumerate() {
        let mix = mix.clone();
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(index as u64);
            let mut tally = Tally::default();
            while Instant::now() < end {
                let kind = mix.pick(rng.random_range(0..mix.total()));
                let began = Instant::now();
                let outcome = tokio::time::timeout(CALL_TIMEOUT, worker.call(kind))
                    .await
                    .unwrap_or_else(|_| Outcome::NotOk {
                        code: "ClientTimeout".into(),
                        message: format!("no answer within {CALL_TIMEOUT:?}; the call was dropped"),
                    });
                let ended = Instant::now();
                let measured = began >= start && ended <= end;
                tally.record(kind, outcome, ended - began, measured);
            }
            tally
        });
    }
    tokio::time::sleep_until(start.into()).await;
    let server = server_pid.map(Watch::start);
    let client = Watch::start(std::process::id());
    tokio::time::sleep_until(end.into()).await;
    let server = match server {
        Some(watch) => watch.finish().await,
        None => None,
    };
    let client = client.finish().await;
    let mut tally = Tally::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(part) => tally.merge(part),
            // A task that panicked: counted, not hidden.
            Err(error) => tally.record(
                Kind::Get,
                Outcome::NotOk {
                    code: "TaskFailed".into(),
                    message: error.to_string(),
                },
                Duration::ZERO,
                false,
            ),
        }
    }
    Measured {
        tally,
        window: duration,
        server,
        client,
    }
}
