//! A small HTTP/1 client for isr-proxy's own endpoints (the admin listener, the revalidation endpoint): what the
//! `isr-proxy` subcommands talk through. It reads and writes the library's own types ([`super::api`],
//! [`crate::revalidate`]), never hand-built JSON.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::api::ErrorBody;

/// Connect budget: isr-proxy runs next to the caller, so a slow connect means it is not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a call to isr-proxy did not produce what was asked for.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl {
        /// As given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Nothing answered (connection refused, no route, DNS).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The lowest-level cause, e.g. `Connection refused (os error 111)`.
        reason: String,
    },
    /// No whole answer within the budget.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL called.
        url: String,
        /// The budget.
        timeout: Duration,
    },
    /// An error status; the message is the body's `error`, or the body itself.
    #[error("{url} answered {status}: {message}")]
    Status {
        /// The URL called.
        url: String,
        /// The status.
        status: StatusCode,
        /// What the server said.
        message: String,
    },
    /// A body that is not the expected document (another service at that address?).
    #[error("{url} answered something other than the expected JSON ({error})")]
    BadBody {
        /// The URL called.
        url: String,
        /// The parse error.
        error: serde_json::Error,
    },
}

/// An answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    /// The URL called.
    pub url: String,
    /// The status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

impl Answer {
    /// The body as `T`, whatever the status.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|error| ClientError::BadBody {
            url: self.url.clone(),
            error,
        })
    }

    /// The body as `T` if the status is a success, else [`ClientError::Status`] with the server's reason.
    pub fn success<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        if self.status.is_success() {
            return self.json();
        }
        let message = match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => body.error,
            Err(_) => String::from_utf8_lossy(&self.body).trim().to_owned(),
        };
        Err(ClientError::Status {
            url: self.url,
            status: self.status,
            message,
        })
    }
}

/// A client for one isr-proxy listener (`http://host:port`).
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    timeout: Duration,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    /// A client for the listener at `base_url` (`http://127.0.0.1:9091`); each call gets `timeout` in all.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        let bad = |reason| ClientError::BadUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: Uri = base_url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        if uri.authority().is_none() {
            return Err(bad("no host"));
        }
        if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
            return Err(bad("give the listener's address only, with no path"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            timeout,
            http: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// `GET {path_and_query}`.
    pub async fn get(&self, path_and_query: &str) -> Result<Answer, ClientError> {
        self.send(Method::GET, path_and_query, None, Bytes::new()).await
    }

    /// `GET {path_and_query}`, decoded as `T` from a success (an error status is an error).
    pub async fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, ClientError> {
        self.get(path_and_query).await?.success()
    }

    /// `POST {path}` with `body` as JSON and `Authorization: Bearer {token}`.
    pub async fn post_json(&self, path: &str, token: &str, body: &impl Serialize) -> Result<Answer, ClientError> {
        let body = serde_json::to_vec(body).map_err(|error| ClientError::BadBody {
            url: self.url(path),
            error,
        })?;
        self.send(Method::POST, path, Some(token), Bytes::from(body)).await
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        token: Option<&str>,
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let url = self.url(path_and_query);
        let mut request = Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            let value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| ClientError::BadUrl {
                url: url.clone(),
                reason: "the token is not a valid header value",
            })?;
            request = request.header(header::AUTHORIZATION, value);
        }
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body)).map_err(|_| ClientError::BadUrl {
            url: url.clone(),
            reason: "cannot build a request for it",
        })?;
        let call = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|err| ClientError::Unreachable {
                    url: url.clone(),
                    reason: root_cause(&err),
                })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|err| ClientError::Unreachable {
                    url: url.clone(),
                    reason: format!("the answer broke off: {}", root_cause(&err)),
                })?;
            Ok(Answer {
                url: url.clone(),
                status,
                body: body.to_bytes(),
            })
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(ClientError::Timeout {
                url,
                timeout: self.timeout,
            }),
        }
    }
}

/// The innermost cause's message: `Connection refused (os error 111)` rather than hyper's "client error
/// (Connect)".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
