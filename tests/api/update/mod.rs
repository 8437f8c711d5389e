//! UpdateGroup, rule by rule: the 15 numbered rules of a masked update in
//! docs/updates.md, each with one or more scenarios named `rule_NN_...` so
//! that a failure points at the rule it breaks. One file per group of rules
//! that belong together: the mask (rules 1 to 7), the scope, the etag and
//! the request's options (8 to 11), validation of the merged group (12),
//! and deleted groups, concurrency and history (13 to 15).
//!
//! Rule 3 (an HTTP PATCH without a mask uses the JSON body's keys, and a
//! PUT means `*`) concerns the HTTP/JSON gateway: its scenarios are in
//! `http/patch_put.rs`.

mod guards_and_options;
mod lifecycle;
mod masks;
mod validation;
