//! The ListGroups filter: a subset of the AIP-160 filter language.
//!
//! ```text
//! filter     = or
//! or         = and { "OR" and }
//! and        = unary { ["AND"] unary }        (juxtaposition is AND)
//! unary      = ("NOT" | "-") unary | primary
//! primary    = "(" or ")" | comparison
//! comparison = field ("=" | "!=" | ":") value
//! field      = name | scope | email | provenance | inactive | state
//!            | labels | labels.<key>
//! value      = "quoted string" | bare-word | *
//! ```
//!
//! `=` and `!=` compare exactly. `:` on a string field matches a substring,
//! ignoring ASCII case; `field:*` means the field is not empty;
//! `labels:key` and `labels.key:*` mean the label is present. A missing
//! label compares as the empty string. Written by hand: the grammar is
//! small, and the parser must report *where* a filter is wrong.
//!
//! Parsing bounds a filter's size (2,048 bytes, 32 levels of nesting);
//! [`FilterBudget`] bounds the work it asks of the database, checked on
//! the tree before any SQL runs.
//!
//! A filter runs in two places: as SQL over the stored groups (the store's
//! `filter.rs`, for ListGroups), and in memory on one group
//! ([`Filter::matches`]). Both give the same answer for every group; an
//! integration test (`tests/api/filter/agreement.rs`) compares them on
//! both databases.

use super::{
    FieldViolation,
    group::{Group, State},
    text::{MAX_QUOTED_CHARS, clip, quote},
    validate,
};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 2048;
/// Deepest nesting of parentheses and NOTs accepted.
const MAX_DEPTH: usize = 32;

/// A parsed filter: a tree of conditions on a group, which the store turns
/// into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every part holds.
    And(Vec<Filter>),
    /// Some part holds.
    Or(Vec<Filter>),
    /// The part does not hold.
    Not(Box<Filter>),
    /// A string field compared with a value.
    Text {
        /// The field compared.
        field: TextField,
        /// The comparison, with its value.
        op: TextOp,
    },
    /// `inactive = true|false` (or `!=`).
    Inactive(bool),
    /// `state = ACTIVE|DELETED`: whether the group is deleted.
    Deleted(bool),
    /// A label is present.
    HasLabel(String),
}

/// A string-valued field a filter can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextField {
    /// `name`.
    Name,
    /// `scope`.
    Scope,
    /// `email`.
    Email,
    /// `provenance`.
    Provenance,
    /// `labels.<key>`; a missing label is the empty string.
    Label(String),
}

/// A comparison of a string field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextOp {
    /// Equal to the value.
    Equals(String),
    /// Contains the value, ignoring ASCII case.
    Contains(String),
    /// Not empty.
    Present,
}

impl Filter {
    /// Whether `group` is one this filter selects: exactly what the SQL the
    /// store makes of the filter answers for the group's stored row, on
    /// either database.
    ///
    /// - `name`, `scope`, `email`, `provenance` and `labels.<key>` are
    ///   strings; a missing label is the empty string (so `labels.k = ""`
    ///   and `labels.k != "x"` hold for a group without `k`).
    /// - `=` compares byte for byte (`!=` is its negation).
    /// - `:` with a value finds it as a substring, ignoring the case of
    ///   ASCII letters only (`É` and `é` differ, as SQLite's `lower()` and
    ///   PostgreSQL's under the "C" collation have it); an empty value is
    ///   in every string. `:*` holds for a non-empty string.
    /// - `labels:key` and `labels.key:*` hold when the label is present,
    ///   whatever its value, the empty string included.
    /// - `inactive` is the flag; `state` is whether the group is deleted
    ///   (the store's rows say so by their `delete_time`, from which the
    ///   state of a group it reads comes).
    ///
    /// Deleted groups are not left out here: ListGroups leaves them out
    /// unless `show_deleted`, on top of its filter.
    ///
    /// Allocates nothing and visits each node at most once (AND and OR stop
    /// at the first part that decides): cheap enough to run on every group
    /// a stream of changes carries.
    pub fn matches(&self, group: &Group) -> bool {
        match self {
            Self::And(parts) => parts.iter().all(|part| part.matches(group)),
            Self::Or(parts) => parts.iter().any(|part| part.matches(group)),
            Self::Not(inner) => !inner.matches(group),
            Self::Text { field, op } => op.holds(field.value_in(group)),
            Self::Inactive(inactive) => group.fields.inactive == *inactive,
            Self::Deleted(deleted) => (group.state == State::Deleted) == *deleted,
            Self::HasLabel(key) => group.fields.labels.contains_key(key),
        }
    }
}

impl TextField {
    /// The field's value in `group`; a missing label is the empty string.
    fn value_in<'g>(&self, group: &'g Group) -> &'g str {
        let fields = &group.fields;
        match self {
            Self::Name => &fields.name,
            Self::Scope => &fields.scope,
            Self::Email => &fields.email,
            Self::Provenance => &fields.provenance,
            Self::Label(key) => fields.labels.get(key).map_or("", String::as_str),
        }
    }
}

impl TextOp {
    /// Whether a field whose value is `value` passes this comparison.
    fn holds(&self, value: &str) -> bool {
        match self {
            Self::Equals(text) => value == text,
            Self::Contains(text) => contains_ignoring_ascii_case(value, text),
            Self::Present => !value.is_empty(),
        }
    }
}

/// Whether `haystack` contains `needle`, ASCII letters compared without
/// their case and every other byte exactly, as the store's substring search
/// (`lower(value)` searched for the lowercased needle) does. Byte by byte is
/// character by character here: case folding changes only ASCII bytes,
/// which never occur inside a multi-byte UTF-8 character, so a match can
/// only start and end where characters do.
fn contains_ignoring_ascii_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

/// How much work one filter may ask of the database, checked by
/// [`FilterBudget::check`] before it runs. Each bound is on something that
/// costs work for every group the listing looks at: a comparison; a
/// negation, which no index can answer, so that the groups it keeps are
/// read one by one; a substring match (`:` with a value), which reads every
/// candidate's value (on labels: every value of that key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterBudget {
    /// Most comparisons (`=`, `!=`, `:`).
    pub terms: usize,
    /// Most negations (`NOT`, `-`, and `!=` on a string field or label).
    pub negations: usize,
    /// Most substring matches (`field:value`, `labels.key:value`; not
    /// `:*` or `labels:key`, which test presence).
    pub substring_matches: usize,
}

impl FilterBudget {
    /// The default budget: room for the filters people write (the
    /// longest OR of names in the filter tests has 121 terms; a search
    /// across fields has a substring match per field), while a filter of
    /// the longest allowed length cannot multiply the work. A substring
    /// match searches every value it may match: with 50,000 groups whose
    /// value is 256 characters long, four of them made a listing take
    /// 0.36 s on SQLite and 0.47 s on PostgreSQL (`benches/filters.rs`),
    /// while a listing of the probe's shape within this budget took about
    /// 0.1 s.
    pub const DEFAULT: Self = Self {
        terms: 128,
        negations: 16,
        substring_matches: 4,
    };

    /// Refuses `filter` when it asks for more than this budget, saying
    /// which bounds it is over.
    pub fn check(&self, filter: &Filter) -> Result<(), FieldViolation> {
        let mut cost = FilterCost::default();
        cost.add(filter);
        let over: Vec<String> = [
            ("comparisons", cost.terms, self.terms),
            ("negations (NOT, - or !=)", cost.negations, self.negations),
            (
                "substring matches (`:` with a value)",
                cost.substring_matches,
                self.substring_matches,
            ),
        ]
        .into_iter()
        .filter(|(_, count, most)| count > most)
        .map(|(what, count, most)| format!("{count} {what}, more than the {most} allowed"))
        .collect();
        if over.is_empty() {
            Ok(())
        } else {
            Err(violation(format!(
                "the filter asks for too much work: it has {}",
                over.join("; ")
            )))
        }
    }
}

impl Default for FilterBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a filter asks for, counted as [`FilterBudget`] bounds it.
#[derive(Debug, Default)]
struct FilterCost {
    terms: usize,
    negations: usize,
    substring_matches: usize,
}

impl FilterCost {
    fn add(&mut self, filter: &Filter) {
        match filter {
            Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|part| self.add(part)),
            Filter::Not(inner) => {
                self.negations += 1;
                self.add(inner);
            }
            Filter::Text { op, .. } => {
                self.terms += 1;
                if matches!(op, TextOp::Contains(_)) {
                    self.substring_matches += 1;
                }
            }
            Filter::Inactive(_) | Filter::Deleted(_) | Filter::HasLabel(_) => self.terms += 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Eq,
    Ne,
    Has,
    Minus,
}

fn violation(message: impl Into<String>) -> FieldViolation {
    FieldViolation::new("filter", message)
}

/// The tokens of `text`, each with the byte offset it starts at.
fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, FieldViolation> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let mut push = |token| tokens.push((token, at));
        match c {
            c if c.is_whitespace() => {}
            '(' => push(Token::Open),
            ')' => push(Token::Close),
            '=' => push(Token::Eq),
            ':' => push(Token::Has),
            '-' => push(Token::Minus),
            '!' => match chars.next() {
                Some((_, '=')) => push(Token::Ne),
                _ => {
                    return Err(violation(format!(
                        "`!` at byte {at} must be followed by `=`"
                    )));
                }
            },
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, escaped)) => value.push(escaped),
                            None => {
                                return Err(violation(format!(
                                    "the string starting at byte {at} ends inside an escape"
                                )));
                            }
                        },
                        Some((_, c)) => value.push(c),
                        None => {
                            return Err(violation(format!(
                                "the string starting at byte {at} is not closed"
                            )));
                        }
                    }
                }
                push(Token::Quoted(value));
            }
            c if is_word_char(c) => {
                let mut word = String::from(c);
                while let Some((_, next)) = chars.peek() {
                    if is_word_char(*next) || *next == '-' {
                        word.push(*next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                push(Token::Word(word));
            }
            other => {
                return Err(violation(format!(
                    "unexpected character {other:?} at byte {at}"
                )));
            }
        }
    }
    Ok(tokens)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '*' | '/')
}

struct Parser {
    tokens: Vec<Token>,
    /// The byte offset of each token in the filter.
    offsets: Vec<usize>,
    /// The filter's length: where "the end" is.
    end: usize,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    /// The byte offset of the next token (the end when there is none).
    fn offset(&self) -> usize {
        self.offsets.get(self.at).copied().unwrap_or(self.end)
    }

    /// What the next token is, for a message: `` `AND` at byte 12 `` or
    /// `the end (byte 30)`.
    fn found(&self) -> String {
        match self.peek() {
            Some(token) => format!("{} at byte {}", describe(token), self.offset()),
            None => format!("the end (byte {})", self.end),
        }
    }

    /// The violation of a filter that has something else where `what` was
    /// expected.
    fn expected(&self, what: &str) -> FieldViolation {
        violation(format!("expected {what}, found {}", self.found()))
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == keyword)
    }

    fn descend(&mut self) -> Result<(), FieldViolation> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(violation(format!(
                "the filter nests deeper than {MAX_DEPTH} levels at byte {}",
                self.offset()
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, FieldViolation> {
        let mut parts = vec![self.and()?];
        while self.is_keyword("OR") {
            self.next();
            parts.push(self.and()?);
        }
        Ok(joined(parts, Filter::Or))
    }

    fn and(&mut self) -> Result<Filter, FieldViolation> {
        let mut parts = vec![self.unary()?];
        loop {
            if self.is_keyword("AND") {
                self.next();
            } else if self.peek().is_none()
                || self.is_keyword("OR")
                || self.peek() == Some(&Token::Close)
            {
                break;
            }
            parts.push(self.unary()?);
        }
        Ok(joined(parts, Filter::And))
    }

    fn unary(&mut self) -> Result<Filter, FieldViolation> {
        if self.is_keyword("NOT") || self.peek() == Some(&Token::Minus) {
            self.next();
            self.descend()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            let open = self.offset();
            self.next();
            self.descend()?;
            let inner = self.or()?;
            self.depth -= 1;
            if self.peek() == Some(&Token::Close) {
                self.next();
                return Ok(inner);
            }
            return Err(violation(format!(
                "the `(` at byte {open} is not closed: found {}",
                self.found()
            )));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Filter, FieldViolation> {
        let start = self.offset();
        let field = match self.peek() {
            Some(Token::Word(word)) if !matches!(word.as_str(), "AND" | "OR" | "NOT") => {
                word.clone()
            }
            _ => {
                return Err(self.expected("a field name"));
            }
        };
        self.next();
        let op = match self.peek() {
            Some(op @ (Token::Eq | Token::Ne | Token::Has)) => op.clone(),
            _ => {
                return Err(self.expected(&format!("`=`, `!=` or `:` after {}", quote(&field))));
            }
        };
        self.next();
        let value = match self.peek() {
            Some(Token::Word(word)) => Value::Bare(word.clone()),
            Some(Token::Quoted(text)) => Value::Quoted(text.clone()),
            _ => {
                return Err(self.expected(&format!("a value after {}", quote(&field))));
            }
        };
        self.next();
        comparison(&field, &op, value).map_err(|problem| {
            violation(format!(
                "{} (the comparison at byte {start})",
                problem.description
            ))
        })
    }
}

/// A token as a message shows it.
fn describe(token: &Token) -> String {
    match token {
        Token::Word(word) => format!("`{}`", clip(word, MAX_QUOTED_CHARS)),
        Token::Quoted(text) => format!("the string {}", quote(text)),
        Token::Open => "`(`".to_owned(),
        Token::Close => "`)`".to_owned(),
        Token::Eq => "`=`".to_owned(),
        Token::Ne => "`!=`".to_owned(),
        Token::Has => "`:`".to_owned(),
        Token::Minus => "`-`".to_owned(),
    }
}

enum Value {
    Bare(String),
    Quoted(String),
}

impl Value {
    fn text(&self) -> &str {
        match self {
            Self::Bare(text) | Self::Quoted(text) => text,
        }
    }

    fn is_star(&self) -> bool {
        matches!(self, Self::Bare(text) if text == "*")
    }
}

fn negate_if(filter: Filter, negate: bool) -> Filter {
    if negate {
        Filter::Not(Box::new(filter))
    } else {
        filter
    }
}

fn comparison(field: &str, op: &Token, value: Value) -> Result<Filter, FieldViolation> {
    let negate = *op == Token::Ne;
    let text_field = match field {
        "name" => Some(TextField::Name),
        "scope" => Some(TextField::Scope),
        "email" => Some(TextField::Email),
        "provenance" => Some(TextField::Provenance),
        _ => match field.strip_prefix("labels.") {
            Some(key) if validate::is_label_key(key) => Some(TextField::Label(key.to_owned())),
            Some(key) => {
                return Err(violation(format!(
                    "{} is not a valid label key",
                    quote(key)
                )));
            }
            None => None,
        },
    };
    if let Some(text_field) = text_field {
        let op = match (op, &value) {
            (Token::Has, v) if v.is_star() => match text_field {
                TextField::Label(key) => return Ok(Filter::HasLabel(key)),
                _ => TextOp::Present,
            },
            (Token::Has, v) => TextOp::Contains(v.text().to_owned()),
            (_, v) => TextOp::Equals(v.text().to_owned()),
        };
        return Ok(negate_if(
            Filter::Text {
                field: text_field,
                op,
            },
            negate,
        ));
    }
    match field {
        "labels" if *op == Token::Has => {
            let key = value.text();
            if validate::is_label_key(key) {
                Ok(Filter::HasLabel(key.to_owned()))
            } else {
                Err(violation(format!(
                    "{} is not a valid label key",
                    quote(key)
                )))
            }
        }
        "inactive" if *op != Token::Has => match value.text() {
            "true" => Ok(Filter::Inactive(!negate)),
            "false" => Ok(Filter::Inactive(negate)),
            other => Err(violation(format!(
                "inactive compares with true or false, not {}",
                quote(other)
            ))),
        },
        "state" if *op != Token::Has => match value.text() {
            "ACTIVE" | "STATE_ACTIVE" => Ok(Filter::Deleted(negate)),
            "DELETED" | "STATE_DELETED" => Ok(Filter::Deleted(!negate)),
            other => Err(violation(format!(
                "state compares with ACTIVE or DELETED, not {}",
                quote(other)
            ))),
        },
        "labels" | "inactive" | "state" => Err(violation(format!(
            "{} does not support this operator",
            quote(field)
        ))),
        other => Err(violation(format!(
            "cannot filter on {}; use name, scope, email, provenance, inactive, state or labels.<key>",
            quote(other)
        ))),
    }
}

/// `parts` joined by `join`, or the one part alone.
fn joined(mut parts: Vec<Filter>, join: fn(Vec<Filter>) -> Filter) -> Filter {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        join(parts)
    }
}

/// Parses a filter; `None` for an empty one.
pub fn parse(text: &str) -> Result<Option<Filter>, FieldViolation> {
    if text.len() > MAX_FILTER_LEN {
        return Err(violation(format!(
            "the filter is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    // No stored text can hold NUL (PostgreSQL refuses it), so a filter
    // with one could match nothing; refuse it before it reaches SQL.
    if let Some(at) = text.find('\0') {
        return Err(violation(format!(
            "NUL character at byte {at}: not allowed in a filter"
        )));
    }
    let (tokens, offsets): (Vec<Token>, Vec<usize>) = tokenize(text)?.into_iter().unzip();
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        offsets,
        end: text.len(),
        at: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    match parser.peek() {
        None => Ok(Some(filter)),
        Some(_) => Err(violation(format!(
            "unexpected {} after a complete filter",
            parser.found()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn text(field: TextField, value: &str) -> Filter {
        Filter::Text {
            field,
            op: TextOp::Equals(value.to_owned()),
        }
    }

    #[test]
    fn empty_filters_match_everything() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
    }

    #[test]
    fn comparisons_parse() {
        assert_eq!(parse("name = ops"), Ok(Some(text(TextField::Name, "ops"))));
        assert_eq!(
            parse(r#"email != "a b@x.com""#),
            Ok(Some(Filter::Not(Box::new(text(
                TextField::Email,
                "a b@x.com"
            )))))
        );
        assert_eq!(
            parse("name:OP"),
            Ok(Some(Filter::Text {
                field: TextField::Name,
                op: TextOp::Contains("OP".into())
            }))
        );
        assert_eq!(
            parse("provenance:*"),
            Ok(Some(Filter::Text {
                field: TextField::Provenance,
                op: TextOp::Present
            }))
        );
        assert_eq!(parse("inactive = true"), Ok(Some(Filter::Inactive(true))));
        assert_eq!(parse("inactive != true"), Ok(Some(Filter::Inactive(false))));
        assert_eq!(parse("state = DELETED"), Ok(Some(Filter::Deleted(true))));
        assert_eq!(
            parse("state = STATE_ACTIVE"),
            Ok(Some(Filter::Deleted(false)))
        );
        assert_eq!(
            parse("labels:team"),
            Ok(Some(Filter::HasLabel("team".into())))
        );
        assert_eq!(
            parse("labels.team:*"),
            Ok(Some(Filter::HasLabel("team".into())))
        );
        assert_eq!(
            parse("labels.k8s.io-x = sre"),
            Ok(Some(text(TextField::Label("k8s.io-x".into()), "sre")))
        );
    }

    #[test]
    fn errors_name_the_byte_where_the_problem_is() {
        let message = |filter: &str| parse(filter).unwrap_err().description;
        for (filter, expected) in [
            (
                "name = ",
                "expected a value after \"name\", found the end (byte 7)",
            ),
            (
                "name = x AND",
                "expected a field name, found the end (byte 12)",
            ),
            (
                "(name = x",
                "the `(` at byte 0 is not closed: found the end (byte 9)",
            ),
            (
                "name = x )",
                "unexpected `)` at byte 9 after a complete filter",
            ),
            (
                "name x",
                "expected `=`, `!=` or `:` after \"name\", found `x` at byte 5",
            ),
            ("AND = x", "expected a field name, found `AND` at byte 0"),
            ("name = x OR colour = red", "(the comparison at byte 12)"),
            (
                "name = \"open",
                "the string starting at byte 7 is not closed",
            ),
            ("name ! x", "`!` at byte 5 must be followed by `=`"),
            ("name = x; y", "unexpected character ';' at byte 8"),
        ] {
            let got = message(filter);
            assert!(
                got.contains(expected),
                "{filter:?}: {got:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn and_binds_tighter_than_or_and_juxtaposition_is_and() {
        let a = || text(TextField::Name, "a");
        let b = || text(TextField::Scope, "b");
        let c = || text(TextField::Email, "c");
        assert_eq!(
            parse("name=a OR scope=b AND email=c"),
            Ok(Some(Filter::Or(vec![a(), Filter::And(vec![b(), c()])])))
        );
        assert_eq!(
            parse("(name=a OR scope=b) email=c"),
            Ok(Some(Filter::And(vec![Filter::Or(vec![a(), b()]), c()])))
        );
        assert_eq!(
            parse("NOT name=a -scope=b"),
            Ok(Some(Filter::And(vec![
                Filter::Not(Box::new(a())),
                Filter::Not(Box::new(b()))
            ])))
        );
    }

    #[test]
    fn what_is_not_understood_is_rejected_naming_the_filter_field() {
        for bad in [
            "color = red",
            "name",
            "name =",
            "name = a OR",
            "(name = a",
            "name = a)",
            "name ~ a",
            "name ! a",
            "\"unterminated",
            "inactive = maybe",
            "inactive : true",
            "state = GONE",
            "labels = x",
            "labels.Bad = x",
            "AND name = a",
            "create_time > 5",
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.field, "filter", "{bad}");
        }
        assert!(parse(&"(".repeat(40)).is_err());
        assert!(parse(&"x".repeat(MAX_FILTER_LEN + 1)).is_err());
    }

    fn cost(filter: &str) -> Result<(), String> {
        let parsed = parse(filter)
            .map_err(|v| v.description)?
            .ok_or("empty filter")?;
        FilterBudget::DEFAULT
            .check(&parsed)
            .map_err(|v| format!("{}: {}", v.field, v.description))
    }

    #[test]
    fn the_probe_filter_is_over_the_negation_budget() {
        let probe = vec!["-labels.a:b"; 170].join(" ");
        assert!(probe.len() <= MAX_FILTER_LEN, "the probe parses");
        let refused = cost(&probe).unwrap_err();
        assert!(refused.starts_with("filter: "), "{refused}");
        assert!(
            refused.contains("170 comparisons, more than the 128 allowed")
                && refused.contains("170 negations (NOT, - or !=), more than the 16 allowed")
                && refused.contains("170 substring matches"),
            "{refused}"
        );
    }

    #[test]
    fn each_budget_is_checked_and_named() {
        let or_of = |term: &str, times: usize| vec![term; times].join(" OR ");
        // Terms: 128 fit, 129 do not.
        assert_eq!(cost(&or_of("name = a", 128)), Ok(()));
        let refused = cost(&or_of("name = a", 129)).unwrap_err();
        assert!(refused.contains("129 comparisons"), "{refused}");
        // Negations: NOT, - and != all count; != on inactive or state does
        // not negate anything (it is `= false`).
        assert_eq!(cost(&or_of("-name = a", 16)), Ok(()));
        for seventeen in [
            or_of("-name = a", 17),
            or_of("NOT name = a", 17),
            or_of("name != a", 17),
            or_of("labels.k != v", 17),
        ] {
            let refused = cost(&seventeen).unwrap_err();
            assert!(refused.contains("17 negations"), "{seventeen}: {refused}");
        }
        assert_eq!(cost(&or_of("inactive != true", 100)), Ok(()));
        assert_eq!(cost("NOT NOT NOT name = a"), Ok(()));
        // Substring matches, on any field; presence tests are not ones.
        assert_eq!(cost(&or_of("labels.a:b", 4)), Ok(()));
        let refused = cost(&or_of("labels.a:b", 5)).unwrap_err();
        assert!(refused.contains("5 substring matches"), "{refused}");
        let refused = cost(&format!("{} OR name:x", or_of("email:y", 4))).unwrap_err();
        assert!(refused.contains("5 substring matches"), "{refused}");
        assert_eq!(cost(&or_of("labels.a:*", 100)), Ok(()));
        assert_eq!(cost(&or_of("labels:a", 100)), Ok(()));
        assert_eq!(cost(&or_of("name:*", 100)), Ok(()));
    }

    #[test]
    fn ordinary_filters_fit_the_default_budget() {
        for filter in [
            "labels.env = prod AND labels.team = sre",
            "labels.team = sre OR labels.team = dev OR labels.team = ops",
            "name:ops -labels.deprecated:* inactive = false",
            "(scope = site-a OR scope = site-b) AND NOT state = DELETED",
            "email:example.com labels.tier != 1 labels.owner:alice",
        ] {
            assert_eq!(cost(filter), Ok(()), "{filter}");
        }
    }

    /// A group for the matching table: `id` is its name.
    fn group(
        name: &str,
        (scope, email, provenance): (&str, &str, &str),
        inactive: bool,
        deleted: bool,
        labels: &[(&str, &str)],
    ) -> Group {
        let mut group = Group::absent(crate::domain::GroupId::parse(name).unwrap());
        group.fields.name = name.to_owned();
        group.fields.scope = scope.to_owned();
        group.fields.email = email.to_owned();
        group.fields.provenance = provenance.to_owned();
        group.fields.inactive = inactive;
        group.fields.labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        group.state = if deleted {
            State::Deleted
        } else {
            State::Active
        };
        group
    }

    fn matching_table_groups() -> Vec<Group> {
        vec![
            group(
                "alpha",
                ("site-a", "alpha@example.com", "ldap"),
                true,
                false,
                &[("team", "sre"), ("tier", "1")],
            ),
            group(
                "ALPHA",
                ("site-b", "", "local"),
                false,
                false,
                &[("team", "dev"), ("empty", "")],
            ),
            group(
                "Beta",
                ("Site-A", "Ops@Example.COM", "Émile"),
                false,
                false,
                &[("team", "DEV")],
            ),
            // The provenance starts with the Kelvin sign, which Unicode
            // (not ASCII) case folding makes a `k`.
            group("kelvin", ("", "", "\u{212A}elvin"), false, true, &[]),
            group("gone", ("", "", ""), true, true, &[("note", "50%_off")]),
        ]
    }

    const ALL: &[&str] = &["alpha", "ALPHA", "Beta", "kelvin", "gone"];

    /// The names of `groups` that `filter` matches.
    fn selected<'g>(filter: &Filter, groups: &'g [Group]) -> BTreeSet<&'g str> {
        groups
            .iter()
            .filter(|group| filter.matches(group))
            .map(|group| group.fields.name.as_str())
            .collect()
    }

    #[test]
    fn matches_answers_the_table_of_filters_and_groups() {
        let groups = matching_table_groups();
        let table: &[(&str, &[&str])] = &[
            // `=` and `!=`: byte for byte.
            ("name = alpha", &["alpha"]),
            ("name = ALPHA", &["ALPHA"]),
            ("name != alpha", &["ALPHA", "Beta", "kelvin", "gone"]),
            ("scope = site-a", &["alpha"]),
            ("scope = \"\"", &["kelvin", "gone"]),
            ("email = \"ops@example.com\"", &[]),
            ("email = \"Ops@Example.COM\"", &["Beta"]),
            ("provenance != \"\"", &["alpha", "ALPHA", "Beta", "kelvin"]),
            // `:`: substrings, ignoring ASCII case only; `""` is in
            // everything; `:*` is "not empty".
            ("name:alpha", &["alpha", "ALPHA"]),
            ("name:LPH", &["alpha", "ALPHA"]),
            ("name:\"\"", ALL),
            ("-name:\"\"", &[]),
            ("name:*", ALL),
            ("scope:SITE-A", &["alpha", "Beta"]),
            ("scope:*", &["alpha", "ALPHA", "Beta"]),
            ("email:OPS@example", &["Beta"]),
            ("email:*", &["alpha", "Beta"]),
            ("provenance:\"ÉMILE\"", &["Beta"]),
            ("provenance:\"émile\"", &[]),
            ("provenance:\"MILE\"", &["Beta"]),
            ("provenance:k", &[]),
            ("provenance:ELVIN", &["kelvin"]),
            ("provenance:\"\u{212A}\"", &["kelvin"]),
            ("provenance:\"ldapx\"", &[]),
            // Labels: a missing one is "", presence is presence.
            ("labels.team = dev", &["ALPHA"]),
            ("labels.team:dev", &["ALPHA", "Beta"]),
            ("labels.team != dev", &["alpha", "Beta", "kelvin", "gone"]),
            ("labels.team:*", &["alpha", "ALPHA", "Beta"]),
            ("labels.empty = \"\"", ALL),
            ("labels.empty != \"\"", &[]),
            ("labels:empty", &["ALPHA"]),
            ("labels.empty:*", &["ALPHA"]),
            ("-labels:empty", &["alpha", "Beta", "kelvin", "gone"]),
            ("labels.missing:\"\"", ALL),
            ("labels.missing:x", &[]),
            ("labels.missing = \"\"", ALL),
            ("labels.note:\"%_\"", &["gone"]),
            ("labels.note:\"_\"", &["gone"]),
            ("labels.note:\"OFF\"", &["gone"]),
            // The flags.
            ("inactive = true", &["alpha", "gone"]),
            ("inactive != true", &["ALPHA", "Beta", "kelvin"]),
            ("state = DELETED", &["kelvin", "gone"]),
            ("state = ACTIVE", &["alpha", "ALPHA", "Beta"]),
            ("state != STATE_DELETED", &["alpha", "ALPHA", "Beta"]),
            // Structure.
            ("state = DELETED inactive = true", &["gone"]),
            (
                "state = DELETED OR labels.tier = 1",
                &["alpha", "kelvin", "gone"],
            ),
            (
                "NOT (labels.team = sre OR labels.team = dev)",
                &["Beta", "kelvin", "gone"],
            ),
            (
                "-labels.team:s -labels.tier:1",
                &["ALPHA", "Beta", "kelvin", "gone"],
            ),
            ("name = alpha name = alpha", &["alpha"]),
            (
                "name = alpha OR scope:b AND inactive = false",
                &["alpha", "ALPHA"],
            ),
            ("(name = alpha OR scope:b) AND inactive = false", &["ALPHA"]),
            ("NOT NOT labels:tier", &["alpha"]),
        ];
        for (text, expected) in table {
            let filter = parse(text).unwrap().unwrap();
            let expected: BTreeSet<&str> = expected.iter().copied().collect();
            assert_eq!(selected(&filter, &groups), expected, "{text}");
            // And the negation selects the others.
            let negated = Filter::Not(Box::new(filter));
            let others: BTreeSet<&str> = ALL
                .iter()
                .copied()
                .filter(|name| !expected.contains(name))
                .collect();
            assert_eq!(selected(&negated, &groups), others, "NOT ({text})");
        }
    }

    #[test]
    fn present_on_a_label_means_a_non_empty_value() {
        // The parser makes `labels.k:*` a presence test; the tree can still
        // say "not empty" of a label, which the store answers too.
        let groups = matching_table_groups();
        let present = |key: &str| Filter::Text {
            field: TextField::Label(key.to_owned()),
            op: TextOp::Present,
        };
        assert_eq!(selected(&present("empty"), &groups), BTreeSet::new());
        assert_eq!(
            selected(&present("team"), &groups),
            BTreeSet::from(["alpha", "ALPHA", "Beta"])
        );
    }

    proptest! {
        #[test]
        fn any_input_parses_or_is_rejected_without_panicking(input in "[a-z.:=!()\" *-]{0,40}|(NOT |AND |OR |name|labels\\.a|[=:!()\" ]){0,12}") {
            match parse(&input) {
                Ok(_) => {}
                Err(violation) => prop_assert_eq!(violation.field, "filter"),
            }
        }

        /// The search without allocation finds what lowercasing both sides
        /// (ASCII only, as the store does) and searching finds.
        #[test]
        fn substring_search_ignores_ascii_case_like_lowercasing_both(
            haystack in "[aAbBkK%_é\u{c9}\u{212a}\u{1f600}]{0,12}",
            needle in "[aAbBkK%_é\u{c9}\u{212a}\u{1f600}]{0,4}",
        ) {
            prop_assert_eq!(
                contains_ignoring_ascii_case(&haystack, &needle),
                haystack.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
            );
        }
    }
}
