//! How many statements each call sends to the database, logged at debug
//! when the call ends, so that a change that adds a round trip to a call
//! shows in its log.
//!
//! sea-orm reports every statement it runs to a callback on the connection
//! (see [`Store::connect`](super::Store::connect)), in the task that runs
//! the statement; the count is a task-local of the call's task. sea-orm
//! does not report the statements that open and end a transaction, so the
//! store counts those itself where it opens one (see
//! [`Dialect::transaction_statements`](super::Dialect::transaction_statements)).

use std::{cell::Cell, future::Future};

tokio::task_local! {
    static SENT: Cell<u32>;
}

/// Runs `work`, and returns its output with the number of statements it
/// sent to the database.
pub async fn counted<T>(work: impl Future<Output = T>) -> (T, u32) {
    SENT.scope(Cell::new(0), async {
        let output = work.await;
        (output, SENT.try_with(Cell::get).unwrap_or(0))
    })
    .await
}

/// Counts `statements` sent by the current call; nothing outside
/// [`counted`] (the change feed, migrations, startup).
pub(super) fn sent(statements: u32) {
    let _outside_a_call = SENT.try_with(|sent| sent.set(sent.get().saturating_add(statements)));
}

/// The callback sea-orm calls after each statement it runs.
pub(super) fn on_statement(_: &sea_orm::metric::Info<'_>) {
    sent(1);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn counts_only_the_statements_of_the_call_it_wraps() {
        super::sent(5);
        let ((), inner) = super::counted(async {
            super::sent(2);
            super::sent(1);
        })
        .await;
        assert_eq!(inner, 3);
        let ((), none) = super::counted(async {}).await;
        assert_eq!(none, 0);
    }
}
