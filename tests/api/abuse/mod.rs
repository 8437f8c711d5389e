//! One caller cannot hurt the others: each attack of an outside security
//! test, replayed in bounded form against the real server. Each file takes
//! one theme; every test checks the hostile call's documented answer and
//! that nothing written is lost.

mod history;
mod replies;
