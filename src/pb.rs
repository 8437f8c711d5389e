//! Code generated from `proto/` by `build.rs`: the groups.v1 messages, the
//! tonic server and client, and the encoded descriptor set for reflection.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The `groups.v1` package.
pub mod groups {
    /// Version 1 of the groups API.
    pub mod v1 {
        tonic::include_proto!("groups.v1");
    }
}

/// The `google.api` annotations the contract uses.
pub mod google {
    /// `google.api`: HTTP bindings and field behaviour.
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

pub use groups::v1::*;

/// The encoded `FileDescriptorSet` of `proto/`, imports included, as served
/// by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/groups_descriptor.bin"));
