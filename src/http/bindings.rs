//! The HTTP bindings of a gRPC service, read from the `google.api.http`
//! annotations of its RPCs: which HTTP method and path template call which
//! RPC, and where the request body goes. The gateway routes by them and the
//! OpenAPI document describes them, so a rule the gateway could not serve
//! is refused here, at start, rather than at the first request.

use http::Method;
use prost_reflect::{DescriptorPool, MessageDescriptor, MethodDescriptor, ServiceDescriptor};

use super::path_template::PathTemplate;
use crate::pb::google::api::{HttpRule, http_rule::Pattern};

/// The full name of the annotation the bindings come from.
const HTTP_EXTENSION: &str = "google.api.http";

/// One HTTP binding of one RPC: `PATCH /v1/groups/{group.id}` with body
/// `group`, say. An RPC has one per rule and additional binding.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The RPC called; its input and output types are what the request and
    /// the response are transcoded to and from.
    pub method: MethodDescriptor,
    /// The HTTP method of the rule (a custom rule's `kind` included).
    pub http_method: Method,
    /// The path pattern, whose variables set fields of the request.
    pub template: PathTemplate,
    /// Which part of the request message the HTTP body fills.
    pub body: BodyRule,
}

/// The `body` of an HTTP rule: which part of the request message the HTTP
/// body fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// No body: the fields not bound by the path come from the query.
    None,
    /// `body: "*"`: the whole request, except the path variables.
    Whole,
    /// `body: "field"`: that top-level field of the request.
    Field(String),
}

/// Reads the bindings of every RPC of `service` that has a
/// `google.api.http` annotation. Errors name the RPC and what is wrong
/// with its rule; they are programming errors in the contract, found at
/// start (and by the unit tests).
pub fn bindings(
    pool: &DescriptorPool,
    service: &ServiceDescriptor,
) -> Result<Vec<Binding>, String> {
    let Some(extension) = pool.get_extension_by_name(HTTP_EXTENSION) else {
        return Ok(Vec::new());
    };
    let mut bindings = Vec::new();
    for method in service.methods() {
        let options = method.options();
        if !options.has_extension(&extension) {
            continue;
        }
        let rule: HttpRule = match options.get_extension(&extension).as_message() {
            Some(message) => message.transcode_to().map_err(|error| {
                format!("{}: unreadable HTTP rule: {error}", method.full_name())
            })?,
            None => continue,
        };
        for rule in std::iter::once(&rule).chain(rule.additional_bindings.iter()) {
            bindings.push(binding(&method, rule)?);
        }
    }
    Ok(bindings)
}

fn binding(method: &MethodDescriptor, rule: &HttpRule) -> Result<Binding, String> {
    let context = |error: String| format!("{}: {error}", method.full_name());
    let (http_method, path) = match &rule.pattern {
        Some(Pattern::Get(path)) => (Method::GET, path.as_str()),
        Some(Pattern::Put(path)) => (Method::PUT, path.as_str()),
        Some(Pattern::Post(path)) => (Method::POST, path.as_str()),
        Some(Pattern::Delete(path)) => (Method::DELETE, path.as_str()),
        Some(Pattern::Patch(path)) => (Method::PATCH, path.as_str()),
        Some(Pattern::Custom(custom)) => (
            Method::from_bytes(custom.kind.as_bytes())
                .map_err(|_| context(format!("bad custom method {:?}", custom.kind)))?,
            custom.path.as_str(),
        ),
        None => return Err(context("HTTP rule without a pattern".to_owned())),
    };
    let template = PathTemplate::parse(path).map_err(context)?;
    let input = method.input();
    for variable in template.variables() {
        check_field_path(&input, variable).map_err(context)?;
    }
    let body = match rule.body.as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        field => {
            if input.get_field_by_name(field).is_none() {
                return Err(context(format!("body names no field: {field:?}")));
            }
            BodyRule::Field(field.to_owned())
        }
    };
    Ok(Binding {
        method: method.clone(),
        http_method,
        template,
        body,
    })
}

/// Checks that a path variable names a singular non-message field,
/// through singular message fields.
fn check_field_path(message: &MessageDescriptor, path: &[String]) -> Result<(), String> {
    let mut message = message.clone();
    for (index, name) in path.iter().enumerate() {
        let field = message
            .get_field_by_name(name)
            .ok_or_else(|| format!("path variable {:?} names no field", path.join(".")))?;
        if field.is_list() || field.is_map() {
            return Err(format!("path variable {:?} is repeated", path.join(".")));
        }
        match field.kind().as_message() {
            Some(inner) if index + 1 < path.len() => message = inner.clone(),
            Some(_) => return Err(format!("path variable {:?} is a message", path.join("."))),
            None if index + 1 < path.len() => {
                return Err(format!(
                    "path variable {:?} traverses a scalar",
                    path.join(".")
                ));
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_contract_has_a_valid_binding() {
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let service = pool.get_service_by_name("groups.v1.GroupService").unwrap();
        let bindings = bindings(&pool, &service).unwrap();
        assert_eq!(bindings.len(), service.methods().len() + 1);
        let update: Vec<_> = bindings
            .iter()
            .filter(|b| b.method.name() == "UpdateGroup")
            .map(|b| {
                (
                    b.http_method.clone(),
                    b.template.to_string(),
                    b.body.clone(),
                )
            })
            .collect();
        assert_eq!(
            update,
            vec![
                (
                    Method::PATCH,
                    "/v1/groups/{group.id}".into(),
                    BodyRule::Field("group".into())
                ),
                (
                    Method::PUT,
                    "/v1/groups/{group.id}".into(),
                    BodyRule::Field("group".into())
                ),
            ]
        );
    }
}
