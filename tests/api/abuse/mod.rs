//! Abuse tests: each replays, in bounded form, a way one caller could hurt
//! the others, against the real server, and checks that the hostile calls
//! get their documented answer while well-behaved clients keep being served
//! and nothing written is lost.

mod connections;
mod raw;
mod transport;
