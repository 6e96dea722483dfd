//! `[revalidate]`: the on-demand revalidation endpoint, its secret and the origin's tag header.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderName;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{ConfigError, LineOf, invalid};

/// Default path of the on-demand revalidation endpoint.
pub const DEFAULT_REVALIDATE_PATH: &str = "/_isr/revalidate";
/// Default environment variable holding the revalidation secret.
pub const DEFAULT_TOKEN_ENV: &str = "ISR_REVALIDATE_TOKEN";
/// Default response header through which the origin tags pages.
pub const DEFAULT_TAGS_HEADER: &str = "x-isr-tags";

/// `[revalidate]`.
#[derive(Debug, Clone)]
pub struct RevalidateConfig {
    /// Path of the endpoint on the main listener.
    pub path: String,
    /// Environment variable holding the secret.
    pub token_env: String,
    /// File holding the secret instead (`revalidate.token_file`), re-read on every reload so the token can be
    /// rotated without a restart.
    pub token_file: Option<std::path::PathBuf>,
    /// Response header the origin tags pages with.
    pub tags_header: HeaderName,
    /// The secret, read from `token_env` when the config is loaded; `None` disables the endpoint.
    pub token: Option<Token>,
}

/// The revalidation secret. Debug and Display never show it.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl Token {
    /// A token from its text; `None` when empty (an empty secret would let anyone in).
    pub fn new(secret: &str) -> Option<Self> {
        (!secret.is_empty()).then(|| Self(Arc::from(secret.as_bytes())))
    }

    /// Reads the token from the environment variable `name`; `None` when unset or empty.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name).ok().as_deref().and_then(Self::new)
    }

    /// Constant-time comparison with what a client sent.
    pub fn matches(&self, given: &[u8]) -> bool {
        self.0.as_ref().ct_eq(given).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRevalidate {
    path: Option<toml::Spanned<String>>,
    token_env: Option<String>,
    token_file: Option<std::path::PathBuf>,
    tags_header: Option<toml::Spanned<String>>,
}

impl RawRevalidate {
    pub(super) fn validate(self, line_of: LineOf<'_>) -> Result<RevalidateConfig, ConfigError> {
        let path = match self.path {
            Some(p) if !p.get_ref().starts_with('/') => {
                return Err(invalid("revalidate.path", line_of(p.span()), "must start with '/'"));
            }
            Some(p) => p.into_inner(),
            None => DEFAULT_REVALIDATE_PATH.to_owned(),
        };
        if self.token_env.is_some() && self.token_file.is_some() {
            return Err(invalid(
                "revalidate.token_file",
                None,
                "set either token_env or token_file, not both",
            ));
        }
        let token = match &self.token_file {
            Some(file) => {
                let secret = std::fs::read_to_string(file).map_err(|err| {
                    invalid(
                        "revalidate.token_file",
                        None,
                        &format!("cannot read {}: {err}", file.display()),
                    )
                })?;
                Token::new(secret.trim())
            }
            None => None,
        };
        let token_env = self.token_env.unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_owned());
        let tags_header = match self.tags_header {
            Some(h) => HeaderName::from_bytes(h.get_ref().as_bytes())
                .map_err(|_| invalid("revalidate.tags_header", line_of(h.span()), "not a valid header name"))?,
            None => HeaderName::from_static(DEFAULT_TAGS_HEADER),
        };
        Ok(RevalidateConfig {
            path,
            token: if self.token_file.is_some() {
                token
            } else {
                Token::from_env(&token_env)
            },
            token_env,
            token_file: self.token_file,
            tags_header,
        })
    }
}
