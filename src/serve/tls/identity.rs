//! The identity a verified client certificate gives its connection: its
//! SPIFFE URI SAN (`spiffe://…`) when it has one, else its first DNS SAN,
//! else its subject's common name. A certificate with none of these (or
//! that does not parse, which a verified one does) gives none.

use x509_parser::{certificate::X509Certificate, extensions::GeneralName, prelude::FromDer as _};

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

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    use super::*;

    /// A self-signed certificate with `uris` and `dns` SANs and the common
    /// name `cn`, DER.
    fn certificate(uris: &[&str], dns: &[&str], cn: Option<&str>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        // The default subject has a CN of its own.
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names =
            uris.iter()
                .map(|uri| SanType::URI((*uri).try_into().unwrap_or_else(|e| panic!("{e}"))))
                .chain(dns.iter().map(|dns| {
                    SanType::DnsName((*dns).try_into().unwrap_or_else(|e| panic!("{e}")))
                }))
                .collect();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let certificate = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        certificate.der().to_vec()
    }

    #[test]
    fn spiffe_uri_before_dns_before_common_name() {
        let spiffe = "spiffe://example.org/ns/prod/sa/billing";
        let all = certificate(
            &["https://example.org/not-an-id", spiffe],
            &["billing.example.org", "other.example.org"],
            Some("billing"),
        );
        assert_eq!(peer_identity(&all).as_deref(), Some(spiffe));
        let dns = certificate(
            &["https://example.org/not-an-id"],
            &["billing.example.org", "other.example.org"],
            Some("billing"),
        );
        assert_eq!(
            peer_identity(&dns).as_deref(),
            Some("billing.example.org"),
            "a URI that is not a SPIFFE id does not count; the first DNS SAN does"
        );
        let cn = certificate(&[], &[], Some("billing"));
        assert_eq!(peer_identity(&cn).as_deref(), Some("billing"));
    }

    #[test]
    fn a_certificate_naming_nobody_gives_no_identity() {
        assert_eq!(peer_identity(&certificate(&[], &[], None)), None);
        assert_eq!(
            peer_identity(&certificate(&["https://example.org/x"], &[], None)),
            None
        );
        assert_eq!(peer_identity(b"not a certificate"), None);
    }
}
