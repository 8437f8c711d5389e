//! The descriptors the gateway routes by and the OpenAPI document is
//! generated from. Both read the same pool, decoded once at start (see
//! [`super::gateway()`] and [`super::router`]); this module depends on
//! neither, so that neither depends on the other through it.

use prost_reflect::{DescriptorPool, ServiceDescriptor};

use crate::pb;

/// Decodes groupd's contract together with the `google.rpc` error detail
/// types. The details are in the pool so that error bodies can write them
/// as JSON with their `@type`, rather than as opaque bytes.
pub fn descriptor_pool() -> anyhow::Result<DescriptorPool> {
    let mut pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)?;
    pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)?;
    Ok(pool)
}

/// Looks up groupd's `GroupService` in `pool`; fails only when `pool` was
/// not decoded from groupd's own descriptor set.
pub fn contract_service(pool: &DescriptorPool) -> anyhow::Result<ServiceDescriptor> {
    let name = pb::group_service_server::SERVICE_NAME;
    pool.get_service_by_name(name)
        .ok_or_else(|| anyhow::anyhow!("{name} is not in the descriptor set"))
}
