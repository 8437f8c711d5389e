//! The identity a verified client certificate gives its connection: its
//! SPIFFE URI SAN (`spiffe://…`) when it has one, else its first DNS SAN,
//! else its subject's common name. A certificate with none of these (or
//! that does not parse, which a verified one does) gives none.

use x509_parser::{
    certificate::X509Certificate, extensions::GeneralName, prelude::FromDer as _,
};

/// The scheme of SPIFFE ids.
const SPIFFE_SCHEME: &str = "spiffe://";

/// The identity of the DER certificate `der` (see the module
/// documentation).
pub fn peer_identity(der: &[u8]) -> Option<String> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let names: Vec<&GeneralName<'_>> = match certificate.subject_alternative_name() {
        Ok(Some(extension)) => extension.value.general_names.iter().collect(),
        _ => Vec::new(),
    };
    let spiffe = names.iter().find_map(|name| match name {
        GeneralName::URI(uri) if uri.starts_with(SPIFFE_SCHEME) => Some(*uri),
        _ => None,
    });
    let dns = || {
        names.iter().find_map(|name| match name {
            GeneralName::DNSName(dns) => Some(*dns),
            _ => None,
        })
    };
    let common_name = || {
        certificate
            .subject()
            .iter_common_name()
            .find_map(|name| name.as_str().ok())
    };
    spiffe
        .or_else(dns)
        .or_else(common_name)
        .filter(|identity| !identity.is_empty())
        .map(str::to_owned)
}
