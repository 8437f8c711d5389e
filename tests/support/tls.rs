//! Certificates for the TLS tests, generated with real keys: CAs, server
//! certificates and client certificates signed by them, the files a server
//! is started with, and client configurations trusting a CA.
//!
//! Included with `#[path = "…"] mod tls;` like `scratch_db.rs`, so that any
//! test target can reuse it.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};

/// A certificate authority that signs server and client certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its self-signed certificate, PEM.
    pub cert_pem: String,
    /// The same, DER.
    pub der: CertificateDer<'static>,
}

/// A certificate signed by a [`Ca`] and its private key.
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
}

/// The names a client certificate carries.
#[derive(Debug, Clone, Default)]
pub struct ClientNames<'a> {
    /// URI SANs, e.g. `spiffe://example.org/ns/prod/sa/billing`.
    pub uris: &'a [&'a str],
    /// DNS SANs.
    pub dns: &'a [&'a str],
    /// The subject's common name.
    pub common_name: Option<&'a str>,
}

impl Ca {
    /// A new CA whose subject's common name is `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Self {
            cert_pem: certificate.pem(),
            der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "groupd");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// The usual test server's: `localhost` and `127.0.0.1`.
    pub fn localhost(&self) -> Leaf {
        self.server(&["localhost", "127.0.0.1"])
    }

    /// A client certificate carrying `names`.
    pub fn client(&self, names: &ClientNames<'_>) -> Leaf {
        let mut params = CertificateParams::default();
        // The default subject has a CN of its own.
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = names
            .uris
            .iter()
            .map(|uri| SanType::URI((*uri).try_into().unwrap()))
            .chain(
                names
                    .dns
                    .iter()
                    .map(|dns| SanType::DnsName((*dns).try_into().unwrap())),
            )
            .collect();
        if let Some(name) = names.common_name {
            params.distinguished_name.push(DnType::CommonName, name);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            der: certificate.der().clone(),
        }
    }
}

impl Leaf {
    /// The certificate and key as rustls takes them.
    pub fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.der.clone()],
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap(),
        )
    }
}

/// A client configuration trusting `ca`, presenting `identity` when given,
/// offering `alpn` (most preferred first).
pub fn client_config(ca: &Ca, identity: Option<&Leaf>, alpn: &[&str]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some(leaf) => {
            let (chain, key) = leaf.chain_and_key();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config
}

/// A directory of TLS files for a server (`cert.pem`, `key.pem`,
/// `client-ca.pem`), removed when dropped.
pub struct TlsDir {
    path: PathBuf,
}

impl TlsDir {
    /// A fresh directory in the temporary directory.
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("groupd_tls_{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    /// The server certificate's file.
    pub fn cert(&self) -> PathBuf {
        self.path.join("cert.pem")
    }

    /// The server key's file.
    pub fn key(&self) -> PathBuf {
        self.path.join("key.pem")
    }

    /// The client CA's file.
    pub fn client_ca(&self) -> PathBuf {
        self.path.join("client-ca.pem")
    }

    /// Writes `leaf` as the server's certificate and key, each file
    /// replaced at once (written beside it, then renamed), as a secret
    /// volume does.
    pub fn write_server(&self, leaf: &Leaf) {
        replace(&self.cert(), leaf.cert_pem.as_bytes());
        replace(&self.key(), leaf.key_pem.as_bytes());
    }

    /// Writes the client CA bundle: each CA's certificate, concatenated.
    pub fn write_client_ca(&self, cas: &[&Ca]) {
        let bundle: String = cas.iter().map(|ca| ca.cert_pem.as_str()).collect();
        replace(&self.client_ca(), bundle.as_bytes());
    }

    /// The server flags naming these files (the client CA's only when
    /// `with_client_ca`).
    pub fn flags(&self, with_client_ca: bool) -> Vec<String> {
        let mut flags = vec![
            "--tls-cert".to_owned(),
            self.cert().display().to_string(),
            "--tls-key".to_owned(),
            self.key().display().to_string(),
        ];
        if with_client_ca {
            flags.push("--tls-client-ca".to_owned());
            flags.push(self.client_ca().display().to_string());
        }
        flags
    }
}

impl Drop for TlsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Replaces `path` with `contents` in one step.
pub fn replace(path: &Path, contents: &[u8]) {
    let mut staged = path.as_os_str().to_owned();
    staged.push(".new");
    std::fs::write(&staged, contents).unwrap();
    std::fs::rename(&staged, path).unwrap();
}
