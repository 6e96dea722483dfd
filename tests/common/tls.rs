//! Certificates made in the test (rcgen): a private CA and the server and client certificates it signs, written
//! as PEM files for isr-proxy's `ca_file` / `client_cert` keys and for `redis-server --tls-*`; and the TLS side of
//! the test origin (tokio-rustls, HTTP/2 or HTTP/1.1 by ALPN).

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A private CA in a temp dir. Everything it issues is written next to `ca.pem`.
pub(crate) struct TestCa {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files.
#[derive(Clone)]
pub(crate) struct Issued {
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
}

impl TestCa {
    pub(crate) fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "isr-proxy test CA");
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-signed CA");
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("write ca.pem");
        Self { dir, issuer }
    }

    /// `ca.pem`: what a client (isr-proxy) trusts.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `names` (DNS names or IP addresses), saved as `<file>.pem` and `<file>.key`.
    pub(crate) fn issue(&self, file: &str, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        let issued = Issued {
            cert_file: self.dir.path().join(format!("{file}.pem")),
            key_file: self.dir.path().join(format!("{file}.key")),
        };
        std::fs::write(&issued.cert_file, cert.pem()).expect("write cert");
        std::fs::write(&issued.key_file, key.serialize_pem()).expect("write key");
        issued
    }
}

/// A TLS acceptor serving `identity`, offering `alpn` (e.g. `[b"h2", b"http/1.1"]`).
pub(crate) fn acceptor(identity: &Issued, alpn: &[&[u8]]) -> TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&identity.cert_file)
        .expect("cert file")
        .map(|cert| cert.expect("PEM certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(&identity.key_file).expect("PEM key");
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate and key match");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsAcceptor::from(Arc::new(config))
}
