//! TLS on both ports: the server's certificate and key, the CA client
//! certificates are verified against, and their reload while serving.
//!
//! - The crypto is rustls with its `ring` provider, passed explicitly to
//!   every configuration built here ([`crypto_provider`]), so nothing
//!   depends on a process-wide default.
//! - Each port has its own configuration, which differ only in ALPN: the
//!   gRPC port offers `h2` alone (a client that offers only `http/1.1` is
//!   refused at the handshake), the HTTP port `h2` and `http/1.1`.
//! - With `--tls-client-ca`, a client certificate is optional at the TLS
//!   level: one that does not chain to the CA is refused at the handshake,
//!   a verified one names the caller ([`identity`]), and a client without
//!   one still connects, so that callers authenticating otherwise (a token,
//!   a password) can share the port. Whether a request without a verified
//!   certificate may call is authentication's decision.
//! - [`ServerTls::watch`] reads the files again every
//!   `--tls-reload-interval`; when their contents change and load, new
//!   connections get the new configuration (connections already open keep
//!   theirs). Files that do not load keep the last good configuration, with
//!   one warning per change. Errors name the file and what is wrong with
//!   it, never its contents.

pub mod identity;

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Protocol;

/// The files TLS is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's own certificate first.
    pub cert: PathBuf,
    /// The private key of the certificate (PEM).
    pub key: PathBuf,
    /// The CA certificates (PEM) client certificates are verified against;
    /// `None` asks for no client certificate.
    pub client_ca: Option<PathBuf>,
}

/// Why TLS files could not be loaded. Messages name the file, never what it
/// holds.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the {what} file {}: {source}", .path.display())]
    Read {
        /// Which file: `certificate`, `key` or `client CA`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A certificate file holds no certificate, or one that is not valid
    /// PEM.
    #[error("the {what} file {} holds no readable PEM certificate", .path.display())]
    Certificates {
        /// Which file: `certificate` or `client CA`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
    },
    /// The key file holds no private key that can be read.
    #[error(
        "the key file {} holds no readable private key (PEM: PKCS#8, PKCS#1 or SEC1)",
        .path.display()
    )]
    Key {
        /// Its path.
        path: PathBuf,
    },
    /// The certificate and key do not make a server configuration (say, the
    /// key is not the certificate's, or of an unsupported kind).
    #[error("the certificate {} and key {} cannot serve TLS: {source}", .cert.display(), .key.display())]
    Server {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The client CA file holds a certificate that cannot be a trust anchor.
    #[error("the client CA file {} cannot verify client certificates: {reason}", .path.display())]
    ClientCa {
        /// Its path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The crypto provider of every TLS configuration groupd builds: rustls'
/// `ring`.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocols a port offers in ALPN, most preferred first.
fn alpn(protocol: Protocol) -> Vec<Vec<u8>> {
    match protocol {
        Protocol::Grpc => vec![b"h2".to_vec()],
        Protocol::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    }
}

/// What the TLS files held when last read. No `Debug`: it holds the key.
#[derive(Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// Both ports' configurations, built from one reading of the files.
struct Configs {
    grpc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
}

impl Contents {
    /// Reads the files. A file that cannot be read fails.
    fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        Ok(Self {
            cert: read("certificate", &files.cert)?,
            key: read("key", &files.key)?,
            client_ca: files
                .client_ca
                .as_deref()
                .map(|path| read("client CA", path))
                .transpose()?,
        })
    }

    /// Both ports' configurations.
    fn configs(&self, files: &TlsFiles) -> Result<Configs, TlsError> {
        let chain = certificates(&self.cert, "certificate", &files.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|_| TlsError::Key {
            path: files.key.clone(),
        })?;
        let verifier = match (&self.client_ca, &files.client_ca) {
            (Some(bundle), Some(path)) => Some(client_verifier(bundle, path)?),
            _ => None,
        };
        let config = |protocol| {
            server_config(protocol, chain.clone(), key.clone_key(), verifier.clone()).map_err(
                |source| TlsError::Server {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                    source,
                },
            )
        };
        Ok(Configs {
            grpc: Arc::new(config(Protocol::Grpc)?),
            http: Arc::new(config(Protocol::Http)?),
        })
    }
}

/// The certificates of a PEM file: at least one, every one readable.
fn certificates(
    pem: &[u8],
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let refused = || TlsError::Certificates {
        what,
        path: path.to_owned(),
    };
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| refused())?;
    if certificates.is_empty() {
        return Err(refused());
    }
    Ok(certificates)
}

/// Verifies client certificates against the CAs of `bundle`; a client
/// without a certificate is let through (see the module documentation).
fn client_verifier(bundle: &[u8], path: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let refused = |reason: String| TlsError::ClientCa {
        path: path.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for certificate in certificates(bundle, "client CA", path)? {
        roots
            .add(certificate)
            .map_err(|error| refused(error.to_string()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
        .allow_unauthenticated()
        .build()
        .map_err(|error| refused(error.to_string()))
}

/// One port's configuration.
fn server_config(
    protocol: Protocol,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<ServerConfig, rustls::Error> {
    let builder = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = alpn(protocol);
    Ok(config)
}

/// The TLS configuration of one port: new connections take the latest
/// good one.
#[derive(Debug, Clone)]
pub struct PortTls {
    config: watch::Receiver<Arc<ServerConfig>>,
}

impl PortTls {
    /// The acceptor of a connection accepted now.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config.borrow()))
    }
}

/// What one reading of the files did.
#[derive(Debug)]
pub enum Reload {
    /// The files are as last read.
    Unchanged,
    /// The files changed and loaded: new connections use them.
    Reloaded,
    /// The files changed (or could not be read) and do not load: new
    /// connections keep the last good configuration.
    Kept(TlsError),
}

/// The TLS configurations of both ports, loaded from [`TlsFiles`] and kept
/// up to date with them by [`ServerTls::watch`].
pub struct ServerTls {
    files: TlsFiles,
    /// What the files held when last read, whether it loaded or not: a
    /// change is loaded, and warned about, once.
    seen: Contents,
    grpc: watch::Sender<Arc<ServerConfig>>,
    http: watch::Sender<Arc<ServerConfig>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads `files`; fails when they cannot serve TLS.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let seen = Contents::read(&files)?;
        let configs = seen.configs(&files)?;
        Ok(Self {
            files,
            seen,
            grpc: watch::Sender::new(configs.grpc),
            http: watch::Sender::new(configs.http),
        })
    }

    /// The configuration of the port speaking `protocol`.
    pub fn port(&self, protocol: Protocol) -> PortTls {
        let sender = match protocol {
            Protocol::Grpc => &self.grpc,
            Protocol::Http => &self.http,
        };
        PortTls {
            config: sender.subscribe(),
        }
    }

    /// Reads the files again, and serves them to new connections when they
    /// changed and load.
    pub fn reload(&mut self) -> Reload {
        let contents = match Contents::read(&self.files) {
            Ok(contents) => contents,
            Err(error) => return Reload::Kept(error),
        };
        if contents == self.seen {
            return Reload::Unchanged;
        }
        let loaded = contents.configs(&self.files);
        self.seen = contents;
        match loaded {
            Ok(configs) => {
                self.grpc.send_replace(configs.grpc);
                self.http.send_replace(configs.http);
                Reload::Reloaded
            }
            Err(error) => Reload::Kept(error),
        }
    }

    /// Reloads the files every `every` until `stop` is cancelled, logging
    /// each reload, and each new reason the files do not load.
    pub async fn watch(mut self, every: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut last_problem: Option<String> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // Reading and parsing files blocks: off the runtime's threads.
            let reloaded = tokio::task::spawn_blocking(move || {
                let outcome = self.reload();
                (self, outcome)
            })
            .await;
            let outcome;
            (self, outcome) = match reloaded {
                Ok(done) => done,
                Err(error) => {
                    tracing::error!(%error, "the TLS reload stopped: certificates are no longer reloaded");
                    return;
                }
            };
            match outcome {
                Reload::Unchanged => {}
                Reload::Reloaded => {
                    last_problem = None;
                    tracing::info!(
                        cert = %self.files.cert.display(),
                        "TLS files reloaded: new connections use them"
                    );
                }
                Reload::Kept(error) => {
                    let problem = error.to_string();
                    if last_problem.as_ref() != Some(&problem) {
                        tracing::warn!(
                            error = %problem,
                            "TLS files changed but do not load: new connections keep the last \
                             good certificate"
                        );
                        last_problem = Some(problem);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertifiedKey, generate_simple_self_signed};

    use super::*;

    /// A directory of TLS files, removed when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Self {
            let path =
                std::env::temp_dir().join(format!("groupd_tls_unit_{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{e}"));
            Self(path)
        }

        fn files(&self, client_ca: bool) -> TlsFiles {
            TlsFiles {
                cert: self.0.join("cert.pem"),
                key: self.0.join("key.pem"),
                client_ca: client_ca.then(|| self.0.join("ca.pem")),
            }
        }

        fn write(&self, name: &str, contents: &str) {
            std::fs::write(self.0.join(name), contents).unwrap_or_else(|e| panic!("{e}"));
        }

        fn write_server(&self, server: &CertifiedKey<rcgen::KeyPair>) {
            self.write("cert.pem", &server.cert.pem());
            self.write("key.pem", &server.signing_key.serialize_pem());
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn self_signed() -> CertifiedKey<rcgen::KeyPair> {
        generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn refusal(files: TlsFiles) -> String {
        match ServerTls::load(files) {
            Ok(_) => panic!("the files were accepted"),
            Err(error) => error.to_string(),
        }
    }

    fn config(tls: &ServerTls, protocol: Protocol) -> Arc<ServerConfig> {
        Arc::clone(&tls.port(protocol).config.borrow())
    }

    #[test]
    fn each_port_offers_its_protocols() {
        let dir = Dir::new();
        let server = self_signed();
        dir.write_server(&server);
        dir.write("ca.pem", &self_signed().cert.pem());
        let tls = ServerTls::load(dir.files(true)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config(&tls, Protocol::Grpc).alpn_protocols,
            vec![b"h2".to_vec()]
        );
        assert_eq!(
            config(&tls, Protocol::Http).alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn files_that_cannot_serve_are_refused_naming_the_file_not_its_contents() {
        let dir = Dir::new();
        let server = self_signed();
        dir.write_server(&server);

        dir.write(
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\ns3cretKeyMaterial\n-----END PRIVATE KEY-----\n",
        );
        let message = refusal(dir.files(false));
        assert!(
            message.contains("key.pem") && message.contains("private key"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");

        dir.write("key.pem", &self_signed().signing_key.serialize_pem());
        let message = refusal(dir.files(false));
        assert!(
            message.contains("cannot serve TLS"),
            "a key of another certificate: {message}"
        );

        dir.write_server(&server);
        dir.write("cert.pem", "no certificate here");
        let message = refusal(dir.files(false));
        assert!(
            message.contains("cert.pem") && message.contains("certificate"),
            "{message}"
        );

        dir.write_server(&server);
        let message = refusal(dir.files(true));
        assert!(
            message.contains("ca.pem") && message.contains("cannot read"),
            "{message}"
        );
        dir.write("ca.pem", "");
        let message = refusal(dir.files(true));
        assert!(message.contains("client CA"), "{message}");
    }

    #[test]
    fn a_change_is_loaded_and_a_broken_one_keeps_the_last_good_configuration() {
        let dir = Dir::new();
        dir.write_server(&self_signed());
        let mut tls = ServerTls::load(dir.files(false)).unwrap_or_else(|e| panic!("{e}"));
        let first = config(&tls, Protocol::Grpc);
        assert!(matches!(tls.reload(), Reload::Unchanged));
        assert!(Arc::ptr_eq(&first, &config(&tls, Protocol::Grpc)));

        dir.write_server(&self_signed());
        assert!(matches!(tls.reload(), Reload::Reloaded));
        let second = config(&tls, Protocol::Grpc);
        assert!(!Arc::ptr_eq(&first, &second));

        dir.write("cert.pem", "garbage");
        assert!(matches!(
            tls.reload(),
            Reload::Kept(TlsError::Certificates { .. })
        ));
        assert!(Arc::ptr_eq(&second, &config(&tls, Protocol::Grpc)));
        assert!(
            matches!(tls.reload(), Reload::Unchanged),
            "a broken change is tried once"
        );

        std::fs::remove_file(dir.0.join("key.pem")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(tls.reload(), Reload::Kept(TlsError::Read { .. })));
        assert!(Arc::ptr_eq(&second, &config(&tls, Protocol::Grpc)));

        dir.write_server(&self_signed());
        assert!(matches!(tls.reload(), Reload::Reloaded));
        assert!(!Arc::ptr_eq(&second, &config(&tls, Protocol::Grpc)));
    }
}
