//! The path templates of `google.api.http` rules: parsed once at start,
//! then matched against each request path, and written in OpenAPI's form
//! for the document.
//!
//! Template syntax (from `google/api/http.proto`):
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```

use std::fmt;

/// One step of a compiled path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A segment that must equal this text.
    Literal(String),
    /// `*`: any one segment.
    Any,
    /// `**`: any number of segments (only last).
    Rest,
}

/// A variable: the field it sets and the tokens it captures.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    /// The request field the captured text is written to, by proto names.
    field_path: Vec<String>,
    /// `tokens[start..end]` are the tokens the variable spans: one for
    /// `{id}`, as many as its pattern has for `{name=groups/*}`.
    start: usize,
    end: usize,
}

/// A compiled path template: the literal segments and wildcards a path
/// must match in order, which of them variables capture, and the custom
/// verb that must end the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// The template as written in the proto; what `Display` shows.
    source: String,
    tokens: Vec<Token>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The path variables of a matched request: field path and decoded value.
pub type Captures = Vec<(Vec<String>, String)>;

impl PathTemplate {
    /// Parses a template such as `/v1/groups/{id}:undelete`.
    pub fn parse(source: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad path template {source:?}: {why}");
        let rest = source
            .strip_prefix('/')
            .ok_or_else(|| bad("must start with '/'"))?;
        // The verb is the text after the last ':' that is not inside a
        // variable.
        let (segments, verb) = match rest.rfind(':') {
            Some(at) if !rest[at..].contains('}') => (&rest[..at], Some(rest[at + 1..].to_owned())),
            _ => (rest, None),
        };
        if verb.as_deref() == Some("") {
            return Err(bad("empty verb"));
        }
        let mut tokens = Vec::new();
        let mut variables = Vec::new();
        for segment in split_segments(segments).map_err(|why| bad(&why))? {
            if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (path, pattern) = match inner.split_once('=') {
                    Some((path, pattern)) => (path, pattern),
                    None => (inner, "*"),
                };
                let field_path: Vec<String> = path.split('.').map(str::to_owned).collect();
                if field_path.iter().any(|name| !is_ident(name)) {
                    return Err(bad("variable names are identifiers"));
                }
                let start = tokens.len();
                for part in pattern.split('/') {
                    tokens.push(token(part).map_err(|why| bad(&why))?);
                }
                variables.push(Variable {
                    field_path,
                    start,
                    end: tokens.len(),
                });
            } else {
                tokens.push(token(segment).map_err(|why| bad(&why))?);
            }
        }
        if let Some(at) = tokens.iter().position(|t| *t == Token::Rest)
            && at + 1 != tokens.len()
        {
            return Err(bad("'**' must be the last segment"));
        }
        Ok(Self {
            source: source.to_owned(),
            tokens,
            variables,
            verb,
        })
    }

    /// The field paths of the template's variables, in order.
    pub fn variables(&self) -> impl Iterator<Item = &[String]> {
        self.variables.iter().map(|v| v.field_path.as_slice())
    }

    /// Whether the template ends in a custom verb (`:undelete`).
    pub fn has_verb(&self) -> bool {
        self.verb.is_some()
    }

    /// The OpenAPI name of a variable: its last field name when no other
    /// variable of the template ends the same way (`{group.id}` is `id`),
    /// else the whole path joined with `_`. OpenAPI tools fill templates
    /// with names that cannot hold dots (schemathesis uses Python's
    /// `str.format`), and to OpenAPI `/v1/groups/{id}` and
    /// `/v1/groups/{group.id}` are one path anyway.
    pub fn parameter_name(&self, variable: &[String]) -> String {
        let last = variable.last().map(String::as_str).unwrap_or_default();
        let clashes = self
            .variables
            .iter()
            .filter(|v| v.field_path.last().map(String::as_str) == Some(last))
            .count();
        if clashes == 1 {
            last.to_owned()
        } else {
            variable.join("_")
        }
    }

    /// The template with each variable as `{name}` (see
    /// [`Self::parameter_name`]) and no pattern: the OpenAPI form of the
    /// path.
    pub fn openapi_path(&self) -> String {
        let mut path = String::new();
        let mut index = 0;
        while index < self.tokens.len() {
            path.push('/');
            if let Some(variable) = self.variables.iter().find(|v| v.start == index) {
                path.push('{');
                path.push_str(&self.parameter_name(&variable.field_path));
                path.push('}');
                index = variable.end.max(index + 1);
                continue;
            }
            match &self.tokens[index] {
                Token::Literal(text) => path.push_str(text),
                Token::Any => path.push('*'),
                Token::Rest => path.push_str("**"),
            }
            index += 1;
        }
        if let Some(verb) = &self.verb {
            path.push(':');
            path.push_str(verb);
        }
        path
    }

    /// Matches a request path (still percent-encoded). Returns the decoded
    /// variables, or `None` when the path does not fit.
    pub fn matches(&self, path: &str) -> Option<Captures> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let mut matched = 0;
        for (index, token) in self.tokens.iter().enumerate() {
            match token {
                Token::Literal(text) => {
                    if segments.get(index)? != text {
                        return None;
                    }
                }
                Token::Any => {
                    if segments.get(index)?.is_empty() {
                        return None;
                    }
                }
                Token::Rest => {
                    matched = segments.len();
                    break;
                }
            }
            matched = index + 1;
        }
        if matched != segments.len() {
            return None;
        }
        let mut captures = Vec::with_capacity(self.variables.len());
        for variable in &self.variables {
            let end = if self.tokens.get(variable.end - 1) == Some(&Token::Rest) {
                segments.len()
            } else {
                variable.end
            };
            let raw = segments.get(variable.start..end)?;
            let value = if end - variable.start == 1 {
                decode(raw[0])?
            } else {
                // A multi-segment value keeps its '/' separators, and an
                // encoded '/' stays encoded (as grpc-gateway does).
                raw.iter()
                    .map(|segment| decode_keeping_slash(segment))
                    .collect::<Option<Vec<_>>>()?
                    .join("/")
            };
            captures.push((variable.field_path.clone(), value));
        }
        Some(captures)
    }
}

fn split_segments(segments: &str) -> Result<Vec<&str>, String> {
    // Split on '/' outside braces.
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (at, c) in segments.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.checked_sub(1).ok_or("unbalanced '}'")?,
            '/' if depth == 0 => {
                out.push(&segments[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '{'".to_owned());
    }
    out.push(&segments[start..]);
    Ok(out)
}

fn token(segment: &str) -> Result<Token, String> {
    match segment {
        "" => Err("empty segment".to_owned()),
        "*" => Ok(Token::Any),
        "**" => Ok(Token::Rest),
        text if text.contains(['{', '}', '*']) => Err(format!("bad segment {text:?}")),
        text => Ok(Token::Literal(text.to_owned())),
    }
}

fn is_ident(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn decode(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn decode_keeping_slash(segment: &str) -> Option<String> {
    let parts: Option<Vec<String>> = segment
        .split("%2F")
        .flat_map(|part| part.split("%2f"))
        .map(decode)
        .collect();
    parts.map(|parts| parts.join("%2F"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_match_templates_segment_by_segment() {
        // (template, request path, what it captures as `field=value` pairs
        // joined by `&`, or `None` when the path does not fit). One case a
        // line, so that the table reads as one.
        #[rustfmt::skip]
        let cases: &[(&str, &str, Option<&str>)] = &[
            // Literal segments match exactly, and only all of them.
            ("/v1/groups", "/v1/groups", Some("")),
            ("/v1/groups", "/v1/groups/", None),
            ("/v1/groups", "/v1/group", None),
            ("/v1/groups", "/v1/groups/x", None),
            // A variable captures one non-empty segment, percent-decoded;
            // a segment that is not UTF-8 once decoded fits nothing.
            ("/v1/groups/{group.id}", "/v1/groups/a%20b", Some("group.id=a b")),
            ("/v1/groups/{id}", "/v1/groups/", None),
            ("/v1/groups/{id}", "/v1/groups/a/b", None),
            ("/v1/groups/{id}", "/v1/groups/%FF", None),
            ("/v1/{a.b}/{c}", "/v1/x/y", Some("a.b=x&c=y")),
            // The verb is split off the last segment and must be the same.
            ("/v1/groups/{id}:undelete", "/v1/groups/g1:undelete", Some("id=g1")),
            ("/v1/groups/{id}:undelete", "/v1/groups/g1", None),
            ("/v1/groups/{id}:undelete", "/v1/groups/g1:other", None),
            ("/v1/groups/{id}:undelete", "/v1/groups/:undelete", None),
            // A pattern captures several segments with their '/'; an
            // encoded '/' inside a segment stays encoded.
            ("/v1/{name=groups/*}/x", "/v1/groups/g/x", Some("name=groups/g")),
            ("/v1/{name=files/**}", "/v1/files/a/b%2Fc", Some("name=files/a/b%2Fc")),
        ];
        for (template, path, expected) in cases {
            let captured = PathTemplate::parse(template)
                .unwrap()
                .matches(path)
                .map(|captures| {
                    let pairs: Vec<String> = captures
                        .iter()
                        .map(|(field, value)| format!("{}={value}", field.join(".")))
                        .collect();
                    pairs.join("&")
                });
            assert_eq!(captured.as_deref(), *expected, "{template} against {path}");
        }
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in [
            "v1/x",
            "/v1/{id",
            "/v1/{a-b}",
            "/v1/**/x",
            "/v1//x",
            "/v1/x:",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn openapi_paths_name_the_variables() {
        let template = PathTemplate::parse("/v1/groups/{group.id=*}:undelete").unwrap();
        assert_eq!(template.openapi_path(), "/v1/groups/{id}:undelete");
        let template = PathTemplate::parse("/v1/{a.id}/{b.id}/{c}").unwrap();
        assert_eq!(template.openapi_path(), "/v1/{a_id}/{b_id}/{c}");
    }
}
