//! Query parameters: every request field the path and the body leave
//! unset may be given in the query, as grpc-gateway allows.

use percent_encoding::percent_decode;
use prost_reflect::MessageDescriptor;
use serde_json::{Map, Value as Json};

use super::{
    field_mask::{is_field_mask, mask_paths},
    placement::{Placement, leaf_field, scalar_json, set_json},
};
use crate::{
    domain::quote,
    http::{
        bindings::{Binding, BodyRule},
        path_template::Captures,
        status::HttpError,
    },
};

/// Places the query parameters: every request field not bound by the path
/// or the body may be given, by proto or JSON name, dotted for nested
/// fields, repeated for repeated fields. Field masks are returned instead
/// (field path, mask paths), for [`super::field_mask::set_mask`]: see
/// [`mask_paths`].
pub(super) fn apply_query(
    root: &mut Map<String, Json>,
    input: &MessageDescriptor,
    binding: &Binding,
    captures: &Captures,
    query: &str,
) -> Result<Vec<QueryMask>, HttpError> {
    let mut masks: Vec<QueryMask> = Vec::new();
    for pair in pairs(query) {
        let (key, value) = pair?;
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        let (field, canonical) = leaf_field(input, &path).map_err(|_| {
            HttpError::invalid(&key, format!("unknown query parameter {}", quote(&key)))
        })?;
        match &binding.body {
            BodyRule::Whole => {
                return Err(HttpError::invalid(
                    &key,
                    format!(
                        "query parameter {}: this method takes its fields in the body",
                        quote(&key)
                    ),
                ));
            }
            BodyRule::Field(body) if canonical.first() == Some(body) => {
                return Err(HttpError::invalid(
                    &key,
                    format!(
                        "query parameter {}: {body} is the request body",
                        quote(&key)
                    ),
                ));
            }
            _ => {}
        }
        if captures.iter().any(|(bound, _)| *bound == canonical) {
            return Err(HttpError::invalid(
                &key,
                format!("query parameter {}: the URL path sets it", quote(&key)),
            ));
        }
        if is_field_mask(&field) {
            if masks.iter().any(|(seen, _)| *seen == canonical) {
                return Err(HttpError::invalid(
                    &key,
                    format!("{} is given more than once", quote(&key)),
                ));
            }
            masks.push((canonical, mask_paths(&value)));
            continue;
        }
        let json =
            scalar_json(&field, &value).map_err(|message| HttpError::invalid(&key, message))?;
        set_json(root, input, &path, json, Placement::Query)?;
    }
    Ok(masks)
}

/// The query's name-value pairs, split and decoded as `form_urlencoded`
/// does it (`&` between pairs, empty ones skipped, the first `=` between
/// name and value, `+` for a space, then percent-escapes), except that a
/// name or value whose bytes are not UTF-8 is refused instead of having
/// them replaced by U+FFFD: the request would otherwise carry a value the
/// caller never sent. `form_urlencoded` and `serde_urlencoded` only decode
/// lossily, so the split is written here, on `percent-encoding`'s decoder.
fn pairs(query: &str) -> impl Iterator<Item = Result<(String, String), HttpError>> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).map_err(|lossy| {
                HttpError::invalid(
                    &lossy,
                    format!(
                        "the name of query parameter {} is not UTF-8 once percent-decoded",
                        quote(&lossy)
                    ),
                )
            })?;
            let value = decode(value).map_err(|_| {
                HttpError::invalid(
                    &name,
                    format!(
                        "query parameter {} is not UTF-8 once percent-decoded",
                        quote(&name)
                    ),
                )
            })?;
            Ok((name, value))
        })
}

/// One name or value of the query, decoded; when its bytes are not UTF-8,
/// the error is the text with U+FFFD in their place, to name it by.
fn decode(text: &str) -> Result<String, String> {
    let spaced = text.replace('+', " ");
    let bytes: Vec<u8> = percent_decode(spaced.as_bytes()).collect();
    String::from_utf8(bytes).map_err(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// A field mask from the query: the field's path (proto names) and the
/// mask's paths.
pub(super) type QueryMask = (Vec<String>, Vec<String>);

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt as _;

    use super::*;

    fn decoded(query: &str) -> Result<Vec<(String, String)>, String> {
        pairs(query).collect::<Result<_, _>>().map_err(|error| {
            let violations = error.status.get_details_bad_request().unwrap();
            violations.field_violations[0].field.clone()
        })
    }

    #[test]
    fn pairs_decode_as_form_urlencoded_decodes_them() {
        for query in [
            "a=1&b=two+words&c=%2B%26%3D&&d&e=&f=x=y",
            "filter=name%20%3D%20%22ops%22&view=GROUP_VIEW_FULL",
            "name=%C3%A9t%C3%A9&%E2%82%AC=1",
            "",
        ] {
            let expected: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(decoded(query), Ok(expected), "{query}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_naming_the_parameter() {
        assert_eq!(decoded("view=1&filter=name%3D%FF"), Err("filter".into()));
        assert_eq!(decoded("filter=%C3"), Err("filter".into()));
        assert_eq!(decoded("ok=1&bad%FFname=1"), Err("bad\u{FFFD}name".into()));
    }
}
