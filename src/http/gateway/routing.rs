//! Routing: which binding answers a request, found by its method and path
//! among the bindings of the service, in the order that keeps custom verbs
//! apart from resource ids.

use http::{HeaderValue, Method, StatusCode, header};
use tonic::Code;

use crate::http::{bindings::Binding, path_template::Captures, status::HttpError};

/// The bindings of a service, in the order they are tried: every template
/// with a custom verb before every template without one, so that
/// `/v1/groups/g:undelete` is the verb on group `g`, not a group named
/// `g:undelete`. Otherwise the order of the contract is kept.
pub(super) struct Routes(Vec<Binding>);

impl Routes {
    /// Puts `bindings` in routing order (a stable sort, so the contract's
    /// order decides among templates of the same kind).
    pub(super) fn new(mut bindings: Vec<Binding>) -> Self {
        bindings.sort_by_key(|binding| !binding.template.has_verb());
        Self(bindings)
    }

    /// How many bindings there are, for `Debug`.
    pub(super) fn count(&self) -> usize {
        self.0.len()
    }

    /// The binding for a method and path, and the path variables it
    /// captures: 404 when no template fits the path, 405 (with `Allow`)
    /// when one does for other methods. HEAD is answered as GET (the
    /// server leaves the body out), so `curl -I` shows a group's `ETag`.
    pub(super) fn find(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<(&Binding, Captures), HttpError> {
        let wanted = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let mut allowed: Vec<&str> = Vec::new();
        let mut verb_fits = false;
        for binding in &self.0 {
            // Templates with a verb come first. Once one fits the path (for
            // another method), `g:undelete` is that verb on group `g`, and
            // never a group id for the templates without a verb.
            if verb_fits && !binding.template.has_verb() {
                break;
            }
            if let Some(captures) = binding.template.matches(path) {
                if binding.http_method == *wanted {
                    return Ok((binding, captures));
                }
                verb_fits |= binding.template.has_verb();
                allowed.push(binding.http_method.as_str());
            }
        }
        if allowed.is_empty() {
            return Err(HttpError::gateway(
                Code::NotFound,
                "ROUTE_NOT_FOUND",
                format!("no route for {method} {path}"),
                Vec::new(),
            ));
        }
        allowed.sort_unstable();
        allowed.dedup();
        let allow = HeaderValue::from_str(&allowed.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        Err(HttpError::gateway(
            Code::Unimplemented,
            "METHOD_NOT_ALLOWED",
            format!(
                "{path} does not answer {method}; it answers {}",
                allowed.join(", ")
            ),
            Vec::new(),
        )
        .with_http(StatusCode::METHOD_NOT_ALLOWED)
        .with_header(header::ALLOW, allow))
    }
}
