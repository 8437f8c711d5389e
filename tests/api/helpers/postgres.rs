//! Whether the PostgreSQL half of the suite runs.
//!
//! Every scenario of `both_backends!` also runs on PostgreSQL, as
//! `name::postgres`. libtest has no way for a test to report itself skipped
//! once it runs: a test that returns early is listed `ok` like one that ran.
//! So a missing server is never silently passed over:
//!
//! - By default a PostgreSQL scenario needs a server at the admin URL
//!   (`GROUPD_TEST_POSTGRES_URL`, default
//!   `postgres://postgres@127.0.0.1:5432/postgres`) and fails without one,
//!   with a message that names the URL and says how to start a server or
//!   how to opt out.
//! - `GROUPD_TEST_SKIP_POSTGRES=1` opts out: the PostgreSQL scenarios
//!   return without running, and a notice that the run tested SQLite only
//!   is written past libtest's output capture, so it shows in the output of
//!   a passing run. The test `postgres_half_of_the_suite` writes it too, so
//!   that the notice shows even when a filter selects no PostgreSQL
//!   scenario.
//! - Under `CI=true` the opt-out is refused: every PostgreSQL scenario, and
//!   `postgres_half_of_the_suite`, fails.

use std::{
    io::Write as _,
    sync::{Once, OnceLock},
};

use super::scratch_db::{ScratchDb, ScratchError, connect_admin, postgres_admin_url};

/// The variable that opts out of the PostgreSQL half of the suite.
pub const SKIP_POSTGRES_VARIABLE: &str = "GROUPD_TEST_SKIP_POSTGRES";

/// A fresh PostgreSQL database and its URL, or `None` when the PostgreSQL
/// half is skipped. Panics when no server answers (unless skipped), and
/// when the opt-out is refused or misspelt.
pub async fn scratch_database() -> Option<(String, ScratchDb)> {
    let admin_url = admin_url_unless_skipped()?;
    // A failed connection is remembered, so that on a machine without
    // PostgreSQL every PostgreSQL scenario fails at once instead of each
    // waiting for its own connect timeout.
    static UNREACHABLE: OnceLock<String> = OnceLock::new();
    if let Some(error) = UNREACHABLE.get() {
        fail_without_server(&admin_url, error);
    }
    match ScratchDb::postgres(&admin_url, "groupd_test").await {
        Ok(created) => Some(created),
        Err(ScratchError::Unreachable { error, .. }) => {
            fail_without_server(&admin_url, UNREACHABLE.get_or_init(|| error.to_string()))
        }
        Err(problem) => panic!("{problem}"),
    }
}

/// The body of the test `postgres_half_of_the_suite`: passes when a
/// PostgreSQL server answers, or when the half is skipped outside CI (and
/// then says so); fails otherwise, with the same message as the scenarios.
pub async fn check_postgres_half() {
    let Some(admin_url) = admin_url_unless_skipped() else {
        return;
    };
    match connect_admin(&admin_url).await {
        Ok(admin) => {
            let _ = admin.close().await;
        }
        Err(error) => fail_without_server(&admin_url, &error.to_string()),
    }
}

/// The PostgreSQL admin URL, or `None` (after the notice) when the
/// PostgreSQL half is skipped.
fn admin_url_unless_skipped() -> Option<String> {
    let skip = match std::env::var(SKIP_POSTGRES_VARIABLE).as_deref() {
        Ok("1") => true,
        Ok("0" | "") | Err(_) => false,
        Ok(other) => panic!(
            "{SKIP_POSTGRES_VARIABLE}={other:?}: set it to 1 to skip the PostgreSQL half of \
             the suite, or leave it unset to run it"
        ),
    };
    if !skip {
        return Some(postgres_admin_url(&[]));
    }
    assert!(
        !in_ci(),
        "{SKIP_POSTGRES_VARIABLE}=1 is refused under CI=true: CI tests both backends. \
         Unset {SKIP_POSTGRES_VARIABLE}."
    );
    announce_skip();
    None
}

/// Whether this is a CI run, where PostgreSQL is always required.
fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Fails a PostgreSQL test that found no server at `admin_url`, saying how
/// to get one, or (outside CI) how to opt out.
#[track_caller]
fn fail_without_server(admin_url: &str, error: &str) -> ! {
    let way_out = if in_ci() {
        "Under CI=true the PostgreSQL half cannot be skipped."
    } else {
        "Or set GROUPD_TEST_SKIP_POSTGRES=1 to test SQLite only."
    };
    panic!(
        "no PostgreSQL answers at {admin_url} ({error}).\n\
         The `::postgres` tests need one. Start one there, for example with\n    \
         docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16\n\
         or, as root on Debian or Ubuntu, with `bash .ci/ensure-postgres`; or set\n\
         GROUPD_TEST_POSTGRES_URL to the admin URL of a server you have.\n\
         {way_out}"
    );
}

/// Writes, once per run, that the PostgreSQL half is skipped. libtest
/// captures what a passing test prints with `print!` and `eprint!`, but not
/// what is written to the stderr handle itself, so this shows in the
/// output of a green run, between the test names.
fn announce_skip() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTE: {SKIP_POSTGRES_VARIABLE}=1: the PostgreSQL half of the suite is skipped. \
             Its `::postgres` tests return without running, and libtest still counts them as \
             passed: this run tests SQLite only.\n"
        );
    });
}
