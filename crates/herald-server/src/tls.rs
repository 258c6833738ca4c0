//! TLS for every listener (rustls): the certificate and key from PEM files,
//! and optional client certificates checked against a CA (mutual TLS),
//! whose subject common name can stand for a configured user.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The `[tls]` section of the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; set
    /// it to require client certificates (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

/// A loaded TLS setup, shared by the listeners.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    /// Whether clients must present a certificate.
    pub client_auth: bool,
    /// Mutual TLS for cluster routes, with a client CA (which then signs
    /// the nodes' certificates too).
    pub route: Option<herald_cluster::RouteTls>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// The first byte of every TLS connection (a handshake record).
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// Longest a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

impl Tls {
    /// Loads the certificate, key and client CA.
    ///
    /// # Errors
    /// A file is missing or does not hold what it should, naming it.
    pub fn load(config: &TlsConfig) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certs(&config.cert)?;
        let key = PrivateKeyDer::from_pem_file(&config.key)
            .with_context(|| format!("reading the private key from {}", config.key.display()))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let roots = match &config.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs(ca)? {
                    roots
                        .add(cert)
                        .with_context(|| format!("adding a CA from {}", ca.display()))?;
                }
                Some(Arc::new(roots))
            }
            None => None,
        };
        let builder = match &roots {
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                        .build()
                        .context("building the client certificate verifier")?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let server = Arc::new(
            builder
                .with_single_cert(chain.clone(), key.clone_key())
                .context("the certificate and key do not go together")?,
        );
        // Routes dial presenting this certificate and verify the peer's
        // against the same CA.
        let route = match roots {
            Some(roots) => {
                let client = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .context("TLS protocol versions")?
                    .with_root_certificates(roots)
                    .with_client_auth_cert(chain, key)
                    .context("the certificate and key do not go together")?;
                Some(herald_cluster::RouteTls {
                    acceptor: TlsAcceptor::from(server.clone()),
                    connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
                })
            }
            None => None,
        };
        Ok(Self {
            acceptor: TlsAcceptor::from(server),
            client_auth: config.client_ca.is_some(),
            route,
        })
    }

    /// Runs the server side of the handshake, with a time limit.
    ///
    /// # Errors
    /// The handshake failed or took too long.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

/// Whether the client's first byte starts a TLS handshake (waits for it).
pub async fn starts_with_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == HANDSHAKE_RECORD,
        _ => false,
    }
}

/// The common name of the client certificate, if the client presented one
/// (it was verified during the handshake).
pub fn client_name(stream: &TlsStream<TcpStream>) -> Option<String> {
    let (_, connection) = stream.get_ref();
    let cert = connection.peer_certificates()?.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
