//! The dashboard: one page at `GET /` on the admin listener, its script and its style sheet, embedded in the
//! binary. The page reads the admin JSON endpoints (`/stats`, `/history`, `/cache`, ...) and draws its charts
//! as inline SVG; there is no build step and nothing is loaded from elsewhere.
//!
//! The responses carry a Content-Security-Policy that allows only these two files and requests to this
//! listener (no inline script, no other origin, no framing, no forms posted elsewhere).

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::response::Body;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// Script and style only from this listener, requests only to it; no plugins, no `<base>`, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The paths the dashboard is served at.
pub(super) const PATHS: [&str; 3] = ["/", "/dashboard.js", "/dashboard.css"];

/// The file at `path` (one of [`PATHS`]), with the headers that keep it in its own window.
pub(super) fn asset(path: &str) -> Response<Body> {
    let (body, content_type) = match path {
        "/dashboard.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/dashboard.css" => (STYLE, "text/css; charset=utf-8"),
        _ => (INDEX_HTML, "text/html; charset=utf-8"),
    };
    let mut response = Response::new(Body::full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_stays_small() {
        let total = INDEX_HTML.len() + SCRIPT.len() + STYLE.len();
        assert!(
            total < 100 * 1024,
            "dashboard assets are {total} bytes; the budget is 100 KiB"
        );
    }

    #[test]
    fn page_loads_nothing_inline_or_from_elsewhere() {
        assert!(!INDEX_HTML.contains("<script>"), "no inline script: the CSP forbids it");
        assert!(!INDEX_HTML.contains(" style="), "no inline style: the CSP forbids it");
        for text in [INDEX_HTML, SCRIPT, STYLE] {
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "no other origin"
            );
        }
        assert!(!SCRIPT.contains("innerHTML"), "text goes in as text, never as markup");
    }
}
