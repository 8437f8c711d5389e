//! Per-call deadlines.
//!
//! Every call runs under [`run`], with a deadline that is the client's
//! `grpc-timeout` bounded by `--request-timeout`. When the deadline passes,
//! the call is dropped at its current await point, which drops its open
//! transaction and so rolls it back, and the caller is answered
//! DEADLINE_EXCEEDED.
//!
//! One moment is not cut: a COMMIT that has started. The store calls
//! [`begin_commit`] just before committing. Past the deadline it refuses, so
//! the transaction rolls back; before it, it marks the call as committing,
//! and [`run`] then waits for the commit to end rather than drop it halfway
//! (a COMMIT cut off after it reached the database may still apply, and the
//! caller would be told DEADLINE_EXCEEDED for a write that happened). So
//! DEADLINE_EXCEEDED always means "nothing was written".
//!
//! Dropping a call stops the awaiting, not the database: a statement runs
//! on in the database (on SQLite, on the connection's own thread) until it
//! ends. The store therefore asks for a [`CallWatch`] of the call it works
//! for, which the database can consult from any thread, and stops the
//! statement once the call is over.

use std::{
    future::Future,
    sync::{
        Arc, Weak,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::error::Error;

tokio::task_local! {
    static CURRENT: Arc<CallDeadline>;
}

#[derive(Debug)]
struct CallDeadline {
    at: Instant,
    /// [`RUNNING`], [`COMMITTING`] or [`EXPIRED`]: set once from
    /// `RUNNING`, by whichever comes first of the commit (which may be
    /// begun from another task, see [`CallWatch::begin_commit`]) and the
    /// deadline.
    state: AtomicU8,
}

/// The call may still be cut at its deadline.
const RUNNING: u8 = 0;
/// The call has begun to commit: its deadline no longer cuts it.
const COMMITTING: u8 = 1;
/// The call's deadline has cut it.
const EXPIRED: u8 = 2;

impl CallDeadline {
    /// Marks the call as committing unless its deadline has passed or cut
    /// it; whether it may commit.
    fn begin_commit(&self) -> bool {
        if Instant::now() >= self.at {
            return false;
        }
        match self
            .state
            .compare_exchange(RUNNING, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == COMMITTING,
        }
    }

    /// Takes back [`Self::begin_commit`]: the commit did not happen.
    fn end_commit(&self) {
        let _ =
            self.state
                .compare_exchange(COMMITTING, RUNNING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// At the deadline: cuts the call unless it has begun to commit;
    /// whether it did.
    fn expire(&self) -> bool {
        match self
            .state
            .compare_exchange(RUNNING, EXPIRED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == EXPIRED,
        }
    }
}

/// Runs `work` until `at`; past it, answers [`Error::DeadlineExceeded`]
/// unless `work` has started to commit (see the module documentation).
pub async fn run<T>(at: Instant, work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    // A deadline already past (`grpc-timeout: 0n`, or a call that waited
    // too long to be served) ends the call before it does anything: the
    // timer below only fires on the runtime's next tick, by when a quick
    // call could have run, even written, and answered OK.
    if Instant::now() >= at {
        return Err(Error::DeadlineExceeded);
    }
    let state = Arc::new(CallDeadline {
        at,
        state: AtomicU8::new(RUNNING),
    });
    let work = CURRENT.scope(Arc::clone(&state), work);
    tokio::pin!(work);
    tokio::select! {
        biased;
        result = &mut work => result,
        () = tokio::time::sleep_until(at) => {
            if state.expire() {
                Err(Error::DeadlineExceeded)
            } else {
                work.await
            }
        }
    }
}

/// Called by the store just before COMMIT: refuses once the call's
/// deadline has passed (the transaction is then dropped, so rolled back),
/// else marks the call as committing so that the deadline no longer cuts
/// it. Outside [`run`] (migrations, startup) there is no deadline.
pub fn begin_commit() -> Result<(), Error> {
    CURRENT
        .try_with(|call| {
            if call.begin_commit() {
                Ok(())
            } else {
                Err(Error::DeadlineExceeded)
            }
        })
        .unwrap_or(Ok(()))
}

/// How long the current call has left before its deadline (zero once it
/// has passed); `None` outside [`run`].
pub fn remaining() -> Option<Duration> {
    CURRENT
        .try_with(|call| call.at.saturating_duration_since(Instant::now()))
        .ok()
}

/// Whether a call is over, asked from outside its task (by the database's
/// thread). It holds no part of the call alive.
#[derive(Debug, Clone)]
pub struct CallWatch(Weak<CallDeadline>);

impl CallWatch {
    /// The watch of the call the current task runs, if any (none outside
    /// [`run`]: migrations, start-up, health checks).
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|call| Self(Arc::downgrade(call))).ok()
    }

    /// Whether the work done for the call should stop: the call was
    /// dropped (its deadline passed, or the client went away), or its
    /// deadline has passed; never once it has begun to commit, which is
    /// not cut.
    pub fn is_over(&self) -> bool {
        match self.0.upgrade() {
            None => true,
            Some(call) => match call.state.load(Ordering::Acquire) {
                COMMITTING => false,
                EXPIRED => true,
                _ => Instant::now() >= call.at,
            },
        }
    }

    /// [`begin_commit`] for the call watched, from another task: marks it
    /// as committing and returns `true`, unless it is over (then `false`,
    /// and it must write nothing). Its deadline and this race as one: the
    /// call is either cut, or committing, never both.
    pub fn begin_commit(&self) -> bool {
        self.0.upgrade().is_some_and(|call| call.begin_commit())
    }

    /// Takes back [`Self::begin_commit`] when the commit did not happen
    /// (nothing of the call was written), so that the call's deadline
    /// stops what it does next. A deadline that passed meanwhile is seen
    /// by [`Self::is_over`] and by the next [`begin_commit`], which
    /// refuses.
    pub fn end_commit(&self) {
        if let Some(call) = self.0.upgrade() {
            call.end_commit();
        }
    }
}

/// Parses a `grpc-timeout` header value: at most 8 digits and a unit (`H`
/// hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds,
/// `n` nanoseconds), as the gRPC over HTTP/2 protocol defines it.
///
/// Written here because tonic parses the header only inside its own server,
/// which groupd does not use (see `serve.rs`), and keeps the parser private.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(split)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[test]
    fn grpc_timeouts_parse_every_unit_and_refuse_the_rest() {
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_grpc_timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("0n"), Some(Duration::ZERO));
        for bad in [
            "",
            "S",
            "5",
            "5s",
            "123456789S",
            "-1S",
            "1.5S",
            "５S",
            "1 S",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_is_dropped_and_answers_deadline_exceeded() {
        let at = Instant::now() + Duration::from_millis(100);
        let result: Result<(), Error> = run(at, async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(())
        })
        .await;
        assert!(matches!(result, Err(Error::DeadlineExceeded)));
        assert!(Instant::now() < at + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_past_ends_the_call_before_it_starts() {
        let started = AtomicBool::new(false);
        for at in [Instant::now(), Instant::now() - Duration::from_secs(1)] {
            let result = run(at, async {
                started.store(true, Ordering::Release);
                Ok(())
            })
            .await;
            assert!(matches!(result, Err(Error::DeadlineExceeded)));
        }
        assert!(!started.load(Ordering::Acquire), "the work was polled");
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_begun_before_the_deadline_is_waited_for() {
        let at = Instant::now() + Duration::from_millis(100);
        let result = run(at, async {
            begin_commit()?;
            // The commit outlasts the deadline.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok("committed")
        })
        .await;
        assert_eq!(result.ok(), Some("committed"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_sees_the_deadline_pass_and_the_call_end_but_not_a_commit() {
        assert!(CallWatch::current().is_none(), "no call outside run");
        let at = Instant::now() + Duration::from_millis(100);
        let watched = run(at, async {
            let watch = CallWatch::current();
            let before = watch.as_ref().map(CallWatch::is_over);
            tokio::time::advance(Duration::from_millis(150)).await;
            let after = watch.as_ref().map(CallWatch::is_over);
            Ok((watch, before, after))
        })
        .await;
        let Ok((Some(watch), before, after)) = watched else {
            panic!("the call ran without a watch: {watched:?}");
        };
        assert_eq!(before, Some(false), "before the deadline");
        assert_eq!(after, Some(true), "past the deadline");
        assert!(watch.is_over(), "once the call has ended");

        let at = Instant::now() + Duration::from_millis(100);
        let seen = run(at, async {
            begin_commit()?;
            tokio::time::advance(Duration::from_millis(150)).await;
            Ok(CallWatch::current().map(|watch| watch.is_over()))
        })
        .await;
        assert_eq!(seen.ok(), Some(Some(false)), "a begun commit is not over");
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_begun_from_another_task_is_waited_for_and_one_too_late_is_refused() {
        // Begun before the deadline: the call waits for it, past the
        // deadline, and answers what the commit gave.
        let (watch_tx, watch_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let committer = tokio::spawn(async move {
            let watch: CallWatch = watch_rx.await.unwrap();
            let began = watch.begin_commit();
            tokio::time::sleep(Duration::from_millis(500)).await;
            done_tx.send(began).unwrap();
        });
        let at = Instant::now() + Duration::from_millis(100);
        let result = run(at, async move {
            watch_tx.send(CallWatch::current().unwrap()).unwrap();
            Ok(done_rx.await.unwrap())
        })
        .await;
        assert_eq!(result.ok(), Some(true));
        committer.await.unwrap();

        // Asked once the deadline has cut the call: refused, and the call
        // answered DEADLINE_EXCEEDED.
        let (watch_tx, watch_rx) = tokio::sync::oneshot::channel();
        let at = Instant::now() + Duration::from_millis(100);
        let result = run(at, async move {
            watch_tx.send(CallWatch::current().unwrap()).unwrap();
            std::future::pending::<Result<(), Error>>().await
        })
        .await;
        assert!(matches!(result, Err(Error::DeadlineExceeded)));
        let watch: CallWatch = watch_rx.await.unwrap();
        assert!(!watch.begin_commit(), "a call cut at its deadline");
        assert!(watch.is_over());

        // Expired but not yet cut (the timer has not fired): refused too.
        let at = Instant::now() + Duration::from_millis(100);
        let watch = CURRENT
            .scope(
                Arc::new(CallDeadline {
                    at,
                    state: AtomicU8::new(RUNNING),
                }),
                async {
                    tokio::time::advance(Duration::from_millis(150)).await;
                    let watch = CallWatch::current().unwrap();
                    assert!(!watch.begin_commit(), "a call past its deadline");
                    watch
                },
            )
            .await;
        assert!(!watch.begin_commit(), "a call that ended");

        // Taken back, a commit no longer holds off the deadline.
        let at = Instant::now() + Duration::from_millis(100);
        let result = run(at, async {
            let watch = CallWatch::current().unwrap();
            assert!(watch.begin_commit());
            tokio::time::advance(Duration::from_millis(150)).await;
            assert!(!watch.is_over(), "committing");
            watch.end_commit();
            assert!(watch.is_over(), "the commit taken back, past the deadline");
            begin_commit()
        })
        .await;
        assert!(matches!(result, Err(Error::DeadlineExceeded)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_after_the_deadline_is_refused() {
        let at = Instant::now() + Duration::from_millis(100);
        tokio::time::advance(Duration::from_millis(200)).await;
        let inside = CURRENT
            .scope(
                Arc::new(CallDeadline {
                    at,
                    state: AtomicU8::new(RUNNING),
                }),
                async { begin_commit() },
            )
            .await;
        assert!(matches!(inside, Err(Error::DeadlineExceeded)));
        assert!(begin_commit().is_ok(), "no deadline outside a call");
    }
}
