//! Request path normalisation: the one form of a path that routing, cache keys and the origin request all use
//! (RFC 3986 dot segments, repeated slashes, unreserved percent-escapes), and the paths refused outright.

use std::borrow::Cow;

/// Longest request path accepted, in bytes; longer ones get 414. Real pages are far shorter, and a bound keeps a
/// flood of huge distinct URLs from costing much per key.
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// A request path that cannot be mapped to a cache key safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an origin-form path.
    #[error("request path must start with '/'")]
    NotAbsolute,
    /// `..` segments that climb above the root.
    #[error("request path escapes the root with '..'")]
    EscapesRoot,
    /// A `%` not followed by two hex digits.
    #[error("request path has a malformed percent-escape")]
    BadEscape,
    /// Percent-escapes that decode to bytes which are not UTF-8 (`/%FF`), as Next.js's `decodeURIComponent`
    /// rejects them too.
    #[error("request path percent-decodes to invalid UTF-8")]
    InvalidUtf8,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("request path longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
}

/// Normalises a request path so that equivalent spellings share one cache entry (RFC 3986 §6.2.2):
/// percent-escapes of unreserved characters are decoded, other escapes upper-cased, raw non-ASCII characters
/// percent-encoded, `.`/`..` segments resolved and repeated slashes collapsed. Borrows when the path is already
/// normal (the common case). The result is itself normal (normalising twice changes nothing) and never climbs
/// above `/`.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let needs_work = path.contains('%') || path.contains("//") || path.contains("/.") || !path.is_ascii();
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let mut segments: Vec<&str> = Vec::new();
    let trailing_slash = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for segment in decoded.split('/').skip(1) {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::EscapesRoot);
                }
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (trailing_slash && !segments.is_empty()) {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Decodes escapes of unreserved characters, upper-cases the others, and percent-encodes raw non-ASCII bytes;
/// checks that the fully decoded path is UTF-8.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    use std::fmt::Write as _;
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    // Whether an escape of a non-ASCII byte was seen: only then can the decoded path be invalid UTF-8.
    let mut high_escape = false;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let value = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or(PathError::BadEscape)?;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(value));
            } else {
                high_escape |= !value.is_ascii();
                let _ = write!(out, "%{value:02X}");
            }
            i += 3;
        } else if byte.is_ascii() {
            out.push(char::from(byte));
            i += 1;
        } else {
            // A raw UTF-8 byte (the `http` crate lets valid UTF-8 through): encode it, so `/café` and
            // `/caf%C3%A9` are one page and the origin gets a valid URI.
            let _ = write!(out, "%{byte:02X}");
            i += 1;
        }
    }
    if high_escape && std::str::from_utf8(&percent_decode(&out)).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    Ok(out)
}

/// Every escape decoded (escapes are known well-formed here).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(value) => {
                out.push(value);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}
