//! WatchGroupChanges: where a stream starts, what it keeps, and the
//! cursors that name positions in the change feed.
//!
//! A cursor is a position in the feed (the number of changes committed
//! before it, counting pruned ones), written as an opaque string: a
//! version byte and the position, in unpadded URL-safe base64, so that it
//! can travel in a URL, an SSE `id:` line and a `Last-Event-ID` header as
//! it is, and so that its form can change without breaking old clients.

use std::{collections::HashSet, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{FieldViolation, filter::Filter, quote};

/// The first byte of a cursor of the current form.
const CURSOR_VERSION: u8 = 1;

/// Most group ids a watch may name.
pub const MAX_WATCHED_IDS: usize = 1000;

/// The heartbeat interval when the request sets none.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// The shortest heartbeat interval a request may ask for.
pub const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest heartbeat interval a request may ask for.
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(300);

/// A position in the change feed: the changes at or before it have been
/// streamed; a stream from it begins with the change after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(i64);

impl Cursor {
    /// The cursor at `position`.
    pub fn at(position: i64) -> Self {
        Self(position)
    }

    /// Its position.
    pub fn position(self) -> i64 {
        self.0
    }

    /// The cursor as clients hold it.
    pub fn encode(self) -> String {
        let mut bytes = [0_u8; 9];
        bytes[0] = CURSOR_VERSION;
        bytes[1..].copy_from_slice(&self.0.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor `text` encodes; a violation on `field` when it is not one.
    pub fn parse(text: &str, field: &str) -> Result<Self, FieldViolation> {
        let invalid = || {
            FieldViolation::new(
                field,
                format!(
                    "{} is not a cursor; pass one a change, a heartbeat or ListGroups returned",
                    quote(text)
                ),
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        match bytes.split_first() {
            Some((&CURSOR_VERSION, position)) => {
                let position = <[u8; 8]>::try_from(position).map_err(|_| invalid())?;
                let position = i64::from_be_bytes(position);
                if position < 0 {
                    return Err(invalid());
                }
                Ok(Self(position))
            }
            _ => Err(invalid()),
        }
    }
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After this cursor.
    After(Cursor),
    /// After the newest change committed so far.
    Now,
    /// Before the oldest change still retained.
    Oldest,
}

/// WatchGroupChanges.
#[derive(Debug, Clone)]
pub struct WatchChanges {
    /// Where the stream starts.
    pub start: Start,
    /// Only changes of groups matching this, as they stand after the
    /// change.
    pub filter: Option<Filter>,
    /// Only changes of these groups, when not empty.
    pub group_ids: HashSet<String>,
    /// The longest the stream stays silent.
    pub heartbeat: Duration,
}

/// The heartbeat interval asked for (`None` or zero: the default); a
/// violation on `heartbeat_interval` outside [`MIN_HEARTBEAT`] and
/// [`MAX_HEARTBEAT`].
pub fn heartbeat(asked: Option<Duration>) -> Result<Duration, FieldViolation> {
    match asked {
        None => Ok(DEFAULT_HEARTBEAT),
        Some(zero) if zero.is_zero() => Ok(DEFAULT_HEARTBEAT),
        Some(interval) if (MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&interval) => Ok(interval),
        Some(_) => Err(FieldViolation::new(
            "heartbeat_interval",
            format!(
                "must be from {}s to {}s (or unset for {}s)",
                MIN_HEARTBEAT.as_secs(),
                MAX_HEARTBEAT.as_secs(),
                DEFAULT_HEARTBEAT.as_secs()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused_on_the_field() {
        for position in [0, 1, 41, 1 << 40, i64::MAX] {
            let cursor = Cursor::at(position);
            let text = cursor.encode();
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(Cursor::parse(&text, "cursor"), Ok(cursor));
        }
        let negative =
            URL_SAFE_NO_PAD.encode([[1_u8].as_slice(), &(-1_i64).to_be_bytes()].concat());
        let other_version =
            URL_SAFE_NO_PAD.encode([[2_u8].as_slice(), &5_i64.to_be_bytes()].concat());
        for bad in ["", "42", "not a cursor", "AQ", &negative, &other_version] {
            let refused = Cursor::parse(bad, "cursor");
            assert!(
                matches!(&refused, Err(violation) if violation.field == "cursor"),
                "{bad:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn heartbeats_default_to_ten_seconds_and_stay_within_bounds() {
        assert_eq!(heartbeat(None), Ok(DEFAULT_HEARTBEAT));
        assert_eq!(heartbeat(Some(Duration::ZERO)), Ok(DEFAULT_HEARTBEAT));
        assert_eq!(
            heartbeat(Some(Duration::from_secs(1))),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            heartbeat(Some(Duration::from_secs(300))),
            Ok(Duration::from_secs(300))
        );
        for bad in [Duration::from_millis(999), Duration::from_secs(301)] {
            assert!(matches!(heartbeat(Some(bad)), Err(v) if v.field == "heartbeat_interval"));
        }
    }
}
