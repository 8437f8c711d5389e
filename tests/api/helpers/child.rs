//! The real `groupd` binary as a child process, for what only a process
//! shows: signals, exit statuses and the log.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use groupd::pb::group_service_client::GroupServiceClient;
use tonic::transport::Channel;

/// A bound against a binary that never starts or never logs what a test
/// waits for; not a timing assertion.
pub const CHILD_BOUND: Duration = Duration::from_secs(60);

/// What a [`Child`] does with its JSON log once it is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildLog {
    /// Keep reading it, so that the test can look at it.
    Keep,
    /// Close the pipe: the server then writes to a reader that went away.
    Close,
    /// Keep the pipe open and never read it again: once the pipe's buffer
    /// is full, a write to it waits for ever.
    Stall,
}

/// The real `groupd` binary, started by [`Child::serve`].
pub struct Child {
    /// The process.
    pub process: tokio::process::Child,
    /// The gRPC address it reported.
    pub grpc_addr: String,
    /// The HTTP address it reported.
    pub http_addr: String,
    log: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Every line of stderr as written, JSON or not.
    raw: Arc<Mutex<Vec<String>>>,
    /// The unread end of a stalled log ([`ChildLog::Stall`]).
    _stalled: Option<tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>>,
}

impl Child {
    /// Runs the binary with `args` (plus JSON logs, and `GROUPD_LOG` from the
    /// environment removed) and returns its exit status and whole log (stderr).
    pub async fn run(args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
        let output = tokio::time::timeout(
            CHILD_BOUND,
            Self::command(args, env)
                .stderr(std::process::Stdio::piped())
                .output(),
        )
        .await
        .expect("groupd ended in time")
        .expect("groupd runs");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Like [`Child::run`], with the process's file limit (soft and hard)
    /// set to `files`.
    pub async fn run_with_file_limit(
        args: &[&str],
        files: u64,
    ) -> (std::process::ExitStatus, String) {
        let output = tokio::time::timeout(
            CHILD_BOUND,
            Self::command_limited(args, &[], Some(files))
                .stderr(std::process::Stdio::piped())
                .output(),
        )
        .await
        .expect("groupd ended in time")
        .expect("groupd runs");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        Self::command_limited(args, env, None)
    }

    /// The command, run under `prlimit` when `files` limits its file
    /// descriptors (prlimit execs it: the child's pid is groupd's).
    fn command_limited(
        args: &[&str],
        env: &[(&str, &str)],
        files: Option<u64>,
    ) -> tokio::process::Command {
        let mut command = match files {
            Some(files) => {
                let mut command = tokio::process::Command::new("prlimit");
                command
                    .arg(format!("--nofile={files}:{files}"))
                    .arg(env!("CARGO_BIN_EXE_groupd"));
                command
            }
            None => tokio::process::Command::new(env!("CARGO_BIN_EXE_groupd")),
        };
        command
            .args(args)
            .args(["--log-format", "json"])
            .env_remove("GROUPD_LOG")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts `groupd serve` on `database_url` and free ports, with
    /// `--skip-migrations` (the test's database is migrated) and `args`, and
    /// returns once it has logged both addresses.
    pub async fn serve(database_url: &str, args: &[&str], log: ChildLog) -> Self {
        Self::serve_limited(database_url, args, log, None).await
    }

    /// Like [`Child::serve`], with the file limit set to `files` when given.
    pub async fn serve_limited(
        database_url: &str,
        args: &[&str],
        log: ChildLog,
        files: Option<u64>,
    ) -> Self {
        let mut all = vec![
            "serve",
            "--database-url",
            database_url,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--skip-migrations",
        ];
        all.extend_from_slice(args);
        let mut process = Self::command_limited(&all, &[], files)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("groupd starts");
        let stderr = process.stderr.take().expect("piped stderr");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
        let kept = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (grpc_addr, http_addr) = tokio::time::timeout(CHILD_BOUND, async {
            let (mut grpc, mut http) = (None, None);
            while let Some(line) = lines.next_line().await.expect("readable log") {
                raw.lock().unwrap().push(line.clone());
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let addr = event["addr"].as_str().map(str::to_owned);
                match event["message"].as_str() {
                    Some("serving gRPC") => grpc = addr,
                    Some("serving HTTP") => http = addr,
                    _ => {}
                }
                kept.lock().unwrap().push(event);
                if let (Some(grpc), Some(http)) = (&grpc, &http) {
                    return (grpc.clone(), http.clone());
                }
            }
            panic!("groupd exited before serving: {:?}", kept.lock().unwrap());
        })
        .await
        .expect("groupd reported its addresses in time");
        let mut stalled = None;
        if log == ChildLog::Stall {
            stalled = Some(lines);
        } else if log == ChildLog::Keep {
            let kept = Arc::clone(&kept);
            let raw = Arc::clone(&raw);
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    raw.lock().unwrap().push(line.clone());
                    if let Ok(event) = serde_json::from_str(&line) {
                        kept.lock().unwrap().push(event);
                    }
                }
            });
        }
        Self {
            process,
            grpc_addr,
            http_addr,
            log: kept,
            raw,
            _stalled: stalled,
        }
    }

    /// A client connected to the child's gRPC port.
    pub async fn client(&self) -> GroupServiceClient<Channel> {
        GroupServiceClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .expect("connects to the child groupd")
    }

    /// The resident set size of the process, in KiB, from
    /// `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.process.id().expect("the process is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// The log events read so far.
    pub fn log(&self) -> Vec<serde_json::Value> {
        self.log.lock().unwrap().clone()
    }

    /// Every line of stderr read so far, as written: what a log collector
    /// would store, JSON or not.
    pub fn raw_log(&self) -> Vec<String> {
        self.raw.lock().unwrap().clone()
    }

    /// Waits until `count` log events match `wanted`, and returns them.
    pub async fn wait_for_log(
        &self,
        count: usize,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let found = tokio::time::timeout(CHILD_BOUND, async {
            loop {
                let matching: Vec<_> = self.log().into_iter().filter(|e| wanted(e)).collect();
                if matching.len() >= count {
                    return matching;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("the log never had {count} such events: {:?}", self.log()))
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod.
    pub async fn terminate(&self) {
        let pid = self.process.id().expect("the process is running");
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit and returns its status.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(CHILD_BOUND, self.process.wait())
            .await
            .expect("groupd exited in time")
            .expect("the exit status")
    }
}
