//! The process's file limit, checked against `--max-connections` at start,
//! and the back-off of the accept loop when accepting fails.

use std::{
    io,
    time::{Duration, Instant},
};

/// File descriptors kept for what is not a client connection: the
/// listeners, the log, the runtime's own, and SQLite's files (up to three
/// a pooled connection: the database, its journal and its shared memory),
/// beyond which the database's connections are counted one by one.
const FILES_BESIDES_CLIENTS: u64 = 64;

/// The file descriptors groupd needs: both ports' connections, the
/// database's, and [`FILES_BESIDES_CLIENTS`].
pub fn files_needed(max_connections: u32, db_max_connections: u32) -> u64 {
    2 * u64::from(max_connections) + 3 * u64::from(db_max_connections) + FILES_BESIDES_CLIENTS
}

/// Checks that the process may open the files the limits ask for, raising
/// its soft file limit up to the hard one when that is enough (as Go's
/// runtime does: the soft limit is often 1024 where the hard one is far
/// higher). Fails with a message for the user when even the hard limit is
/// too low.
pub fn check_file_limit(max_connections: u32, db_max_connections: u32) -> Result<(), String> {
    let needed = files_needed(max_connections, db_max_connections);
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        // `None` is unlimited.
        let soft = limit.current.unwrap_or(u64::MAX);
        let hard = limit.maximum.unwrap_or(u64::MAX);
        if soft >= needed {
            return Ok(());
        }
        if hard < needed {
            return Err(format!(
                "both ports together may hold {} connections, which with the database's and \
                 the process's own files needs {needed} file descriptors, but the file limit \
                 (ulimit -n) is {hard}: lower --max-connections or raise the limit",
                2 * u64::from(max_connections)
            ));
        }
        let mut raised = limit;
        raised.current = Some(needed);
        setrlimit(Resource::Nofile, raised).map_err(|error| {
            format!(
                "{needed} file descriptors are needed but the soft file limit is {soft}, and \
                 raising it failed ({error}): lower --max-connections or raise the limit"
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = needed;
        Ok(())
    }
}

/// Whether an accept error is about the process or the system running out
/// of something (files, buffers, memory), which retrying at once cannot
/// fix, rather than about the one connection being accepted.
fn is_resource_error(error: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM)
    ) || error.kind() == io::ErrorKind::OutOfMemory
}

/// How the accept loop backs off from errors: resource errors wait a delay
/// that doubles from [`AcceptBackoff::FIRST`] to [`AcceptBackoff::LONGEST`]
/// while they last, and are logged at most once every
/// [`AcceptBackoff::WARN_EVERY`], with the number left unlogged; errors of
/// one connection (reset before it was accepted) are retried at once.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Option<Duration>,
    last_warning: Option<Instant>,
    unlogged: u64,
}

/// What the accept loop does after an error.
#[derive(Debug, PartialEq, Eq)]
pub struct AfterError {
    /// How long to wait before accepting again.
    pub wait: Duration,
    /// Whether to log a warning now, and how many errors since the last
    /// warning went unlogged.
    pub warn: Option<u64>,
}

impl AcceptBackoff {
    /// The first delay after a resource error.
    pub const FIRST: Duration = Duration::from_millis(10);
    /// The longest delay.
    pub const LONGEST: Duration = Duration::from_secs(1);
    /// At most one warning this often.
    pub const WARN_EVERY: Duration = Duration::from_secs(10);

    /// What to do after `error`, at `now`.
    pub fn on_error(&mut self, error: &io::Error, now: Instant) -> AfterError {
        if !is_resource_error(error) {
            return AfterError {
                wait: Duration::ZERO,
                warn: None,
            };
        }
        let wait = self
            .delay
            .map_or(Self::FIRST, |delay| (delay * 2).min(Self::LONGEST));
        self.delay = Some(wait);
        let warn = match self.last_warning {
            Some(last) if now.duration_since(last) < Self::WARN_EVERY => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.last_warning = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        };
        AfterError { wait, warn }
    }

    /// A connection was accepted: the next error starts from the first
    /// delay again (the warning stays rate-limited).
    pub fn on_success(&mut self) {
        self.delay = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_errors_back_off_and_warn_rarely() {
        let mut backoff = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(24);
        let start = Instant::now();
        let mut waits = Vec::new();
        let mut warnings = Vec::new();
        // A thousand failures over a simulated 20 seconds.
        for step in 0..1000_u32 {
            let now = start + Duration::from_millis(u64::from(step) * 20);
            let after = backoff.on_error(&emfile, now);
            waits.push(after.wait);
            warnings.extend(after.warn);
        }
        assert_eq!(waits[0], AcceptBackoff::FIRST);
        assert_eq!(waits[1], AcceptBackoff::FIRST * 2);
        assert!(waits.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(waits.last(), Some(&AcceptBackoff::LONGEST));
        // At 0 s and at 10 s: two warnings, the second counting the 499
        // errors that went unlogged between them.
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(warnings[0], 0);
        assert_eq!(warnings[1], 499);

        backoff.on_success();
        let after = backoff.on_error(&emfile, start + Duration::from_secs(21));
        assert_eq!(after.wait, AcceptBackoff::FIRST);
    }

    #[test]
    fn errors_of_one_connection_are_retried_at_once_and_not_logged() {
        let mut backoff = AcceptBackoff::default();
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        let after = backoff.on_error(&aborted, Instant::now());
        assert_eq!(
            after,
            AfterError {
                wait: Duration::ZERO,
                warn: None
            }
        );
    }

    #[test]
    fn the_file_limit_check_names_what_is_needed() {
        assert_eq!(files_needed(256, 10), 512 + 30 + 64);
        // No process has a hard limit this high: the message says what to
        // change.
        let refused = check_file_limit(u32::MAX, 10).err().unwrap_or_default();
        assert!(refused.contains("--max-connections"), "{refused}");
        assert!(check_file_limit(1, 1).is_ok());
    }
}
