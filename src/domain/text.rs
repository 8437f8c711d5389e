//! Caller input shown back in messages, bounded. A request may carry a
//! value of megabytes (an id, a key, a path); an error or a log line that
//! repeated it whole would be as large, and an error that large does not
//! fit in the trailers a gRPC client accepts. Every message that echoes
//! input goes through [`quote`], and free text whose size is not known goes
//! through [`clip`].

use std::borrow::Cow;

/// Most characters of an input value a message repeats.
pub const MAX_QUOTED_CHARS: usize = 64;

/// What marks text as cut short.
pub const ELLIPSIS: &str = "…";

/// `text` as Rust's `{:?}` quotes it (`"a\"b"`), but at most its first
/// [`MAX_QUOTED_CHARS`] characters; a longer value is followed by `…`
/// after the closing quote, so the caller sees it was cut and where. The
/// result is at most a few hundred bytes, whatever `text` is.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{:?}{ELLIPSIS}", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// `text` cut to at most `max_bytes` bytes, at a character boundary, with
/// `…` in place of what was cut (counted in the bound); unchanged when it
/// fits. `max_bytes` below the length of `…` leaves just `…`.
pub fn clip(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let mut end = max_bytes.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{ELLIPSIS}", &text[..end]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn short_values_are_quoted_as_debug_quotes_them() {
        assert_eq!(quote("team-1"), "\"team-1\"");
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(quote(""), "\"\"");
        let exactly = "x".repeat(MAX_QUOTED_CHARS);
        assert_eq!(quote(&exactly), format!("{exactly:?}"));
    }

    #[test]
    fn long_values_show_a_prefix_and_an_ellipsis() {
        let long = "é".repeat(1_000_000);
        let quoted = quote(&long);
        assert_eq!(
            quoted,
            format!("\"{}\"…", "é".repeat(MAX_QUOTED_CHARS)),
            "the prefix is counted in characters, never cut inside one"
        );
    }

    #[test]
    fn clip_cuts_at_a_character_boundary_within_the_bound() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdefghij", 10), "abcdefghij");
        assert_eq!(clip("abcdefghijk", 10), "abcdefg…");
        // "é" is two bytes: the cut falls back to the boundary before it.
        assert_eq!(clip("aéééé", 6), "aé…");
        assert_eq!(clip("abc", 0), "…");
    }

    proptest! {
        #[test]
        fn quoted_and_clipped_text_is_bounded(text in "\\PC{0,300}", max in 0usize..200) {
            // Each character quotes to at most 10 bytes (`\u{10ffff}`).
            prop_assert!(quote(&text).len() <= 2 + 10 * MAX_QUOTED_CHARS + ELLIPSIS.len());
            let clipped = clip(&text, max);
            prop_assert!(clipped.len() <= max.max(ELLIPSIS.len()));
            let kept = clipped.strip_suffix(ELLIPSIS).unwrap_or(&clipped);
            prop_assert!(text.starts_with(kept));
        }
    }
}
