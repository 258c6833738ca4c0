//! A throwaway PKI for the TLS tests: CA, server and client certificates.

use std::path::PathBuf;

use herald_server::tls::TlsConfig;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

/// A CA, a server certificate for localhost / 127.0.0.1, and a client
/// certificate named `client_cn`, as PEM files in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new(client_cn: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CommonName, "herald test CA");
        ca_params.distinguished_name = ca_name;
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issue = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn);
            params.distinguished_name = dn;
            let cert = params.signed_by(&key, &ca, &ca_key).expect("signed");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) =
            issue(vec!["localhost".into(), "127.0.0.1".into()], "herald");
        let (client_cert, client_key) = issue(vec![], client_cn);
        let write =
            |name: &str, body: &str| std::fs::write(dir.path().join(name), body).expect("write");
        write("ca.pem", &ca.pem());
        write("server.pem", &server_cert);
        write("server.key", &server_key);
        write("client.pem", &client_cert);
        write("client.key", &client_key);
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config(&self, mutual: bool) -> TlsConfig {
        TlsConfig {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: mutual.then(|| self.path("ca.pem")),
        }
    }
}
