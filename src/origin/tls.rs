//! The origin connector: plain TCP for `http://` origins, rustls for `https://` ones, with HTTP/2 or HTTP/1.1
//! chosen by ALPN.
//!
//! Trust comes from `origin.ca_file` when set (only those CAs), else from the system's certificate store, or
//! the bundled webpki roots when the system has none (a bare container). A certificate that does not verify
//! fails the connection: there is no fallback to plain HTTP and no "insecure" switch.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};

use crate::config::{OriginConfig, PemFile};

/// The connector every origin request goes through.
pub(super) type OriginConnector = HttpsConnector<HttpConnector>;

/// Builds the connector for `config`. `http://` URLs connect in plain TCP; only an `https://` origin URL is
/// configured, so nothing is ever sent in the clear to an origin meant to be reached over TLS.
pub(super) fn connector(config: &OriginConfig, connect_timeout: Duration) -> OriginConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    // The TLS layer is in front of this one: the TCP connector must accept https:// URIs.
    tcp.enforce_http(false);
    let builder = match &config.ca_file {
        Some(file) => HttpsConnectorBuilder::new().with_tls_config(private_ca_config(file)),
        None => HttpsConnectorBuilder::new().with_native_roots().unwrap_or_else(|err| {
            tracing::debug!(error = %err, "no system CA certificates; trusting the bundled webpki roots for the origin");
            HttpsConnectorBuilder::new().with_webpki_roots()
        }),
    }
    .https_or_http();
    let builder = match server_name(config) {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    builder.enable_all_versions().wrap_connector(tcp)
}

fn server_name(config: &OriginConfig) -> Option<ServerName<'static>> {
    let name = config.tls_server_name.as_deref()?;
    // Validated with the config; a name that still fails is dropped with a log line rather than a panic.
    match ServerName::try_from(name.to_owned()) {
        Ok(name) => Some(name),
        Err(err) => {
            tracing::error!(name, error = %err, "origin.tls_server_name is not a valid name; using the url's host");
            None
        }
    }
}

/// Trusts only the certificates of `origin.ca_file`.
fn private_ca_config(file: &PemFile) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(file.certificates_der());
    if ignored > 0 {
        tracing::warn!(file = %file.path.display(), added, ignored, "some origin.ca_file certificates are unusable");
    }
    ClientConfig::builder()
        .with_root_certificates(Arc::new(roots))
        .with_no_client_auth()
}
