//! `[origin]`: where the app is and how hard isr-proxy may lean on it.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::tls::PemFile;
use super::values::HumanDuration;
use super::{ConfigError, LineOf, MAX_CONNECTION_LIMIT, invalid, spanned_path};

/// Whole-response budget for one origin fetch: long enough for a slow render, short enough that a hung origin
/// frees its single-flight slot.
pub const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent origin fetches for cached routes; bounds the load a flood of distinct cold URLs puts on the origin.
pub const DEFAULT_ORIGIN_MAX_CONNECTIONS: usize = 64;
/// How long a cached-route fetch waits for a free origin slot before answering 503.
pub const DEFAULT_ORIGIN_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// `[origin]`.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginConfig {
    /// Base URL, `http://host:port` or `https://host:port` (a path prefix is allowed).
    pub url: Uri,
    /// CA certificates trusted for an `https://` origin instead of the system's (`origin.ca_file`).
    pub ca_file: Option<PemFile>,
    /// Name the origin's certificate must carry (and SNI), instead of the URL's host (`origin.tls_server_name`).
    pub tls_server_name: Option<String>,
    /// The request header that carries a host-specific route's host on cached fetches.
    pub host_header: HostHeader,
    /// Whole-response timeout of one cached-route fetch; time-to-headers for pass-through.
    pub timeout: Duration,
    /// Concurrent origin fetches for cached routes.
    pub max_connections: usize,
    /// How long a fetch waits for one of the `max_connections` slots before giving up (503).
    pub queue_timeout: Duration,
    /// Origin page served (as a 404) for unknown paths under `fallback = false` routes.
    pub not_found_page: Option<String>,
}

/// How a host-specific route's host reaches the origin on cached fetches (`origin.host_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostHeader {
    /// `Host: <the request's host>`, as a multi-tenant app reads it (HTTP/1.1 origins).
    #[default]
    Host,
    /// `Host` stays the origin's; `X-Forwarded-Host: <the request's host>`.
    XForwardedHost,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOrigin {
    url: OriginUrl,
    ca_file: Option<PathBuf>,
    tls_server_name: Option<String>,
    host_header: Option<HostHeader>,
    timeout: Option<HumanDuration>,
    max_connections: Option<usize>,
    queue_timeout: Option<HumanDuration>,
    not_found_page: Option<toml::Spanned<String>>,
}

impl RawOrigin {
    pub(super) fn validate(self, line_of: LineOf<'_>) -> Result<OriginConfig, ConfigError> {
        let max_connections = self.max_connections.unwrap_or(DEFAULT_ORIGIN_MAX_CONNECTIONS);
        if !(1..=MAX_CONNECTION_LIMIT).contains(&max_connections) {
            return Err(invalid("origin.max_connections", None, "must be between 1 and 1000000"));
        }
        let is_https = self.url.0.scheme_str() == Some("https");
        if !is_https && (self.ca_file.is_some() || self.tls_server_name.is_some()) {
            let key = if self.ca_file.is_some() {
                "origin.ca_file"
            } else {
                "origin.tls_server_name"
            };
            return Err(invalid(key, None, "only applies to an https:// origin url"));
        }
        let ca_file = match &self.ca_file {
            Some(path) => Some(PemFile::certificates("origin.ca_file", path)?),
            None => None,
        };
        if let Some(name) = &self.tls_server_name
            && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return Err(invalid("origin.tls_server_name", None, "not a DNS name or IP address"));
        }
        Ok(OriginConfig {
            url: self.url.0,
            ca_file,
            tls_server_name: self.tls_server_name,
            host_header: self.host_header.unwrap_or_default(),
            timeout: self.timeout.map_or(DEFAULT_ORIGIN_TIMEOUT, |d| d.0),
            max_connections,
            queue_timeout: self.queue_timeout.map_or(DEFAULT_ORIGIN_QUEUE_TIMEOUT, |d| d.0),
            not_found_page: spanned_path("origin.not_found_page", self.not_found_page, line_of)?,
        })
    }
}

/// The origin base URL: `http(s)://host:port[/prefix]`.
struct OriginUrl(Uri);

impl<'de> Deserialize<'de> for OriginUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let uri: Uri = text
            .parse()
            .map_err(|err| de::Error::custom(format!("bad origin url {text:?}: {err}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(de::Error::custom(format!(
                    "origin url {text:?} must start with http:// or https://"
                )));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(de::Error::custom(format!("origin url {text:?} has no host")));
        }
        if uri.query().is_some() {
            return Err(de::Error::custom(format!("origin url {text:?} must not have a query")));
        }
        Ok(OriginUrl(uri))
    }
}
