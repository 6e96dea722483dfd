//! `POST /revalidate` on the admin listener: the dashboard's revalidate and purge buttons, and anyone else's.
//!
//! It is the public endpoint ([`Revalidator::handle`](crate::revalidate::Revalidator::handle)) behind three
//! more doors, so the logic (keying, single-flight, tags, per-item results) exists once:
//! - it is on only when the revalidation token is set (the same secret: an admin action can do nothing the
//!   public endpoint cannot, so a second secret would add rotation work and no protection);
//! - the token comes only in `Authorization: Bearer` and nothing in the URL, so it never lands in a browser's
//!   history, a proxy's access log or a `Referer` (the public endpoint's `?secret=` form is refused here);
//! - a browser request made by another site is refused on its `Sec-Fetch-Site` or `Origin` (CSRF), although
//!   such a request could not carry the bearer header anyway: no cookie is used, so the browser adds nothing.

use http::header::{self, HeaderMap};
use http::{Method, Request, Response};
use hyper::body::Incoming;

use super::AdminError;
use crate::proxy::Proxy;
use crate::response::Body;

/// Runs a revalidation order from the admin listener through the public endpoint's code.
pub(super) async fn revalidate(proxy: &Proxy, request: Request<Incoming>) -> Result<Response<Body>, AdminError> {
    if !proxy.revalidator().is_enabled() {
        return Err(AdminError::Forbidden(
            "actions are off: set the revalidation token ([revalidate] token_env or token_file)".to_owned(),
        ));
    }
    if request.method() != Method::POST {
        return Err(AdminError::Method { allow: "POST" });
    }
    if request.uri().query().is_some() {
        return Err(AdminError::BadRequest(
            "POST /revalidate takes no query: send the token as `Authorization: Bearer` and the order as JSON"
                .to_owned(),
        ));
    }
    if let Some(reason) = cross_site(request.headers()) {
        return Err(AdminError::Forbidden(reason.to_owned()));
    }
    Ok(proxy.revalidator().handle(request).await)
}

/// Why a request looks sent by a page of another site, if it does. Browsers send `Sec-Fetch-Site` (Fetch
/// Metadata) and, on a POST, `Origin`; curl and the CLI send neither and are let through to the token check.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    let fetch_site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if fetch_site.is_some_and(|site| site != b"same-origin" && site != b"none") {
        return Some("cross-site request refused (Sec-Fetch-Site)");
    }
    let origin = headers.get(header::ORIGIN)?.as_bytes();
    let host = headers.get(header::HOST).map_or(&b""[..], |h| h.as_bytes());
    let authority = origin
        .strip_prefix(b"http://")
        .or_else(|| origin.strip_prefix(b"https://"));
    (authority != Some(host)).then_some("cross-origin request refused (Origin does not match Host)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn requests_from_other_sites_are_told_apart_from_the_page_and_from_tools() {
        let host = ("host", "127.0.0.1:9091");
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[host], false),
            (
                &[
                    host,
                    ("sec-fetch-site", "same-origin"),
                    ("origin", "http://127.0.0.1:9091"),
                ],
                false,
            ),
            (&[host, ("sec-fetch-site", "none")], false),
            (&[host, ("sec-fetch-site", "cross-site")], true),
            (&[host, ("sec-fetch-site", "same-site")], true),
            (&[host, ("origin", "http://evil.example")], true),
            (&[host, ("origin", "null")], true),
            (&[("origin", "http://127.0.0.1:9091")], true),
        ];
        for (pairs, refused) in cases {
            assert_eq!(cross_site(&headers(pairs)).is_some(), *refused, "{pairs:?}");
        }
    }
}
