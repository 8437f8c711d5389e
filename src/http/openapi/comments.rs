//! The proto comments the document's descriptions come from: indexed once
//! from the pool's source info, and turned into Markdown paragraphs and
//! one-sentence summaries.

use std::collections::HashMap;

use prost_reflect::{
    DescriptorPool, FieldDescriptor, FileDescriptor, MessageDescriptor, MethodDescriptor,
};

/// The leading comment of every commented element of a pool, by file name,
/// then by source path. A pool decoded without source info has none, and
/// the document is only terser for it.
pub(super) struct Comments(HashMap<String, HashMap<Vec<i32>, String>>);

impl Comments {
    /// Indexes the leading comments of every file of `pool`.
    pub(super) fn new(pool: &DescriptorPool) -> Self {
        let mut comments: HashMap<String, HashMap<Vec<i32>, String>> = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else {
                continue;
            };
            let by_path = comments.entry(file.name().to_owned()).or_default();
            for location in &info.location {
                let text = clean_comment(location.leading_comments());
                if !text.is_empty() {
                    by_path.entry(location.path.clone()).or_insert(text);
                }
            }
        }
        Self(comments)
    }

    /// The leading comment of the element at `path` of `file`.
    pub(super) fn doc(&self, file: &FileDescriptor, path: &[i32]) -> Option<String> {
        self.0
            .get(file.name())
            .and_then(|by_path| by_path.get(path))
            .cloned()
    }

    /// The leading comment of `field`.
    pub(super) fn field(&self, field: &FieldDescriptor) -> Option<String> {
        self.doc(&field.parent_file(), field.path())
    }

    /// The leading comment of `message`.
    pub(super) fn message(&self, message: &MessageDescriptor) -> Option<String> {
        self.doc(&message.parent_file(), message.path())
    }

    /// The leading comment of the RPC `method`.
    pub(super) fn method(&self, method: &MethodDescriptor) -> Option<String> {
        self.doc(&method.parent_file(), method.path())
    }
}

/// A proto comment as Markdown: the one space after `//` dropped from each
/// line, surrounding blank lines trimmed.
fn clean_comment(raw: &str) -> String {
    raw.lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// The first sentence of `text`, on one line: up to the first `.` that
/// ends the text or is followed by white space, outside backquotes.
pub(super) fn first_sentence(text: &str) -> String {
    let mut in_code = false;
    let mut end = text.len();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '`' => in_code = !in_code,
            '.' if !in_code && chars.peek().is_none_or(|(_, next)| next.is_whitespace()) => {
                end = at + 1;
                break;
            }
            _ => {}
        }
    }
    text[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `first`, then `second` as a new paragraph, either possibly absent.
pub(super) fn paragraphs(first: Option<String>, second: Option<String>) -> Option<String> {
    match (first, second) {
        (Some(first), Some(second)) => Some(format!("{first}\n\n{second}")),
        (first, second) => first.or(second),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::openapi::tests::{contract, operation, schema};

    #[test]
    fn first_sentences_stop_at_a_period_outside_code() {
        assert_eq!(first_sentence("One. Two."), "One.");
        assert_eq!(first_sentence("Uses `a.b`. Then"), "Uses `a.b`.");
        assert_eq!(first_sentence("Wraps\nlines. x"), "Wraps lines.");
        assert_eq!(first_sentence("No period"), "No period");
        assert_eq!(first_sentence("v1.2 works."), "v1.2 works.");
    }

    #[test]
    fn descriptions_come_from_the_proto_comments() {
        let document = contract();
        assert_eq!(
            document["info"]["description"],
            "Manages groups of principals and answers who is in which group."
        );
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        let get = operation(&document, "GetGroup");
        assert_eq!(get["summary"], "Returns a group, live or soft-deleted.");
        assert!(
            get["description"]
                .as_str()
                .unwrap()
                .contains("GROUP_VIEW_FULL")
        );
        assert_eq!(
            schema(&document, "Member")["description"],
            "A principal in a group."
        );
        let state = schema(&document, "State")["description"].as_str().unwrap();
        assert!(
            state.contains("- `STATE_ACTIVE`: The group is live."),
            "{state}"
        );
    }
}
