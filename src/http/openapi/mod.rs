//! The OpenAPI 3.0.3 document of the HTTP/JSON gateway, generated from the
//! descriptors the gateway itself routes by: the paths are the
//! `google.api.http` bindings, the schemas are the canonical proto3 JSON
//! forms of the messages, and the descriptions are the proto comments.
//! Meant for the gateway's `/openapi.json`; `groupd openapi` prints it.
//!
//! Conventions of the document:
//!
//! - **Operation ids.** The first binding of an RPC is named after the RPC
//!   (`UpdateGroup`); each additional binding appends its lowercase HTTP
//!   method (`UpdateGroup_put`), and a number when that is still taken.
//! - **Component names.** A message or enum is named by its name within its
//!   package (`Group`, nested types joined: `OuterInner`) when no other type
//!   of the pool shares that name, otherwise by its full name with `_` for
//!   `.` (`groups_v1_Group`). The body of a `body: "*"` binding whose path
//!   binds some fields is the component `<Request>Body`.
//! - **Field behaviour** (`google.api.field_behavior`): `OUTPUT_ONLY` is
//!   `readOnly`, `INPUT_ONLY` is `writeOnly`; the others are told in the
//!   description. Body schemas never list `required` properties, because a
//!   PATCH body is partial; a query parameter is required when its field
//!   (and every field above it) is `REQUIRED`.
//! - **Properties that reference a component** are `allOf: [{$ref}]` when
//!   they carry a description or `readOnly`: OpenAPI 3.0 ignores the
//!   siblings of a bare `$ref`.

mod behavior;
mod comments;
mod constraints;
mod document;
mod names;
mod operations;
mod query;
mod schemas;
#[cfg(test)]
mod tests;

pub use constraints::{Constraints, contract_constraints};
pub use document::{contract_document, contract_document_in, document};
