//! One caller cannot hurt the others: each attack a hostile caller could
//! make on the service, replayed in bounded form against the real server,
//! checking that the hostile call gets its documented answer, that
//! well-behaved calls keep succeeding, and that nothing written is lost.
//! One file per theme.

mod connections;
mod errors;
mod filters;
mod history;
mod raw;
mod replies;
mod transport;
