//! What one hostile caller can do to the others, replayed in bounded form
//! against the real server: one file per theme. Each scenario checks that
//! the hostile calls get their documented code, that a well-behaved
//! client's calls keep succeeding meanwhile, and that nothing written is
//! lost.

mod filters;
