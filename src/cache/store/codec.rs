//! The byte format of a stored entry, shared by the disk and Redis tiers.
//!
//! ```text
//! "ISRP" | version u16 | meta_len u32 | meta (JSON) | headers_len u32 | headers | variant_len u32 | variant
//!        | body_len u64 | body | [gzip_len u64 | gzip] | [br_len u64 | br] | checksum u64 (xxh3 of all before it)
//! ```
//! The precompressed forms are present when `meta` says so: a restored page is served compressed at once, with
//! no compression work after a restart.
//! Headers are kept in HTTP/1 wire form (`name: value\r\n`), which cannot contain CR or LF inside a value, so
//! any byte value round-trips. A wrong magic, an unknown version, a bad checksum or a short read is an error,
//! never a misread entry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::cache::entry::{HttpFreshness, HttpMeta, ServeStale};
use crate::cache::key::VaryValues;
use crate::cache::{CacheKey, Entry, Lifetime};
use crate::compression::Compressed;

const MAGIC: &[u8; 4] = b"ISRP";
/// Bumped on any incompatible change; entries of other versions are ignored after an upgrade.
pub const FORMAT_VERSION: u16 = 2;

/// Why stored bytes could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// Not an isr-proxy entry at all.
    #[error("not an isr-proxy entry")]
    BadMagic,
    /// Written by another version of isr-proxy.
    #[error("entry format version {0} is not {FORMAT_VERSION}")]
    Version(u16),
    /// Torn or corrupted bytes.
    #[error("entry checksum mismatch")]
    Checksum,
    /// Structurally broken despite a good checksum (a bug, or a crafted file).
    #[error("malformed entry: {0}")]
    Malformed(&'static str),
}

#[derive(Serialize, Deserialize)]
struct Meta {
    /// The site of a host-specific route's page (absent for host-less routes and in older entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    path_and_query: String,
    status: u16,
    etag: String,
    generated_at_ms: u64,
    revalidate_ms: Option<u64>,
    expire_ms: u64,
    tags: Vec<String>,
    marked_stale: bool,
    /// Whether a gzip form follows the body.
    gzip: bool,
    /// Whether a Brotli form follows the body (after gzip).
    br: bool,
    /// RFC 9111 facts of a `revalidate = "origin"` entry (absent in entries of time-based routes, and in files
    /// written before they existed: both read back as time-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<HttpRecord>,
    /// The key's `Vary` part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    vary: Vec<(String, Option<Vec<u8>>)>,
}

/// [`HttpMeta`] as stored.
#[derive(Serialize, Deserialize)]
struct HttpRecord {
    lifetime_ms: u64,
    stale_while_revalidate_ms: u64,
    stale_if_error_ms: u64,
    /// Whether a stale use is restricted at all ([`ServeStale::Never`] or [`ServeStale::WithinWindows`]): what
    /// a reader without `within_windows` (an older instance sharing Redis) needs to stay on the safe side.
    must_revalidate: bool,
    /// [`ServeStale::WithinWindows`] (absent in entries written before it existed: they read back as before).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    within_windows: bool,
    no_cache: bool,
    initial_age_ms: u64,
    selecting: Vec<(String, Option<Vec<u8>>)>,
}

fn vary_record(values: &[(HeaderName, Option<HeaderValue>)]) -> Vec<(String, Option<Vec<u8>>)> {
    values
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_ref().map(|v| v.as_bytes().to_vec())))
        .collect()
}

fn vary_values(record: Vec<(String, Option<Vec<u8>>)>) -> Result<VaryValues, CodecError> {
    record
        .into_iter()
        .map(|(name, value)| {
            let name = HeaderName::try_from(name).map_err(|_| CodecError::Malformed("vary name"))?;
            let value = value
                .map(|v| HeaderValue::from_bytes(&v))
                .transpose()
                .map_err(|_| CodecError::Malformed("vary value"))?;
            Ok((name, value))
        })
        .collect()
}

/// Serialises `entry` stored under `key`.
pub fn encode(key: &CacheKey, entry: &Entry) -> Vec<u8> {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let meta = Meta {
        host: key.host().map(str::to_owned),
        path_and_query: key.path_and_query().to_owned(),
        status: entry.status.as_u16(),
        etag: entry
            .etag
            .as_ref()
            .map(|etag| String::from_utf8_lossy(etag.as_bytes()).into_owned())
            .unwrap_or_default(),
        generated_at_ms: millis(entry.generated_at.duration_since(UNIX_EPOCH).unwrap_or_default()),
        revalidate_ms: entry.lifetime.revalidate.map(millis),
        expire_ms: millis(entry.lifetime.expire),
        tags: entry.tags.to_vec(),
        marked_stale: entry.is_marked_stale(),
        gzip: entry.encoded.gzip.is_some(),
        br: entry.encoded.br.is_some(),
        http: entry.http.as_ref().map(|http| HttpRecord {
            lifetime_ms: millis(http.freshness.lifetime),
            stale_while_revalidate_ms: millis(http.freshness.stale_while_revalidate),
            stale_if_error_ms: millis(http.freshness.stale_if_error),
            must_revalidate: http.freshness.serve_stale != ServeStale::Allowed,
            within_windows: http.freshness.serve_stale == ServeStale::WithinWindows,
            no_cache: http.freshness.no_cache,
            initial_age_ms: millis(http.initial_age),
            selecting: vary_record(&http.selecting),
        }),
        vary: vary_record(key.vary()),
    };
    let meta = serde_json::to_vec(&meta).unwrap_or_default();
    let headers = wire_headers(entry.headers.iter());
    let variant = wire_headers(key.variant().iter().map(|(n, v)| (n, v)));
    let mut out = Vec::with_capacity(64 + meta.len() + headers.len() + variant.len() + entry.body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    for section in [&meta, &headers, &variant] {
        out.extend_from_slice(&u32::try_from(section.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(section);
    }
    let encoded = [&entry.encoded.gzip, &entry.encoded.br];
    for body in std::iter::once(&entry.body).chain(encoded.into_iter().flatten().map(|e| &e.body)) {
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(body);
    }
    let checksum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// Reads an entry back; the key it was stored under comes with it (callers compare it with the key they
/// looked up, which also catches hash collisions in file names).
pub fn decode(bytes: &[u8]) -> Result<(CacheKey, Entry), CodecError> {
    if bytes.len() < MAGIC.len() + 2 + 8 || &bytes[..4] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(CodecError::Version(version));
    }
    let (content, checksum) = bytes.split_at(bytes.len() - 8);
    let expected = u64::from_le_bytes(checksum.try_into().map_err(|_| CodecError::Checksum)?);
    if xxhash_rust::xxh3::xxh3_64(content) != expected {
        return Err(CodecError::Checksum);
    }
    let mut reader = Reader { rest: &content[6..] };
    let meta: Meta = serde_json::from_slice(reader.section_u32()?).map_err(|_| CodecError::Malformed("meta"))?;
    let headers = parse_headers(reader.section_u32()?)?;
    let variant: Vec<(HeaderName, HeaderValue)> = parse_headers(reader.section_u32()?)?
        .into_iter()
        .filter_map(|(name, value)| Some((name?, value)))
        .collect();
    let body = reader.section_u64()?;
    let gzip = meta.gzip.then(|| reader.section_u64()).transpose()?;
    let br = meta.br.then(|| reader.section_u64()).transpose()?;
    if !reader.rest.is_empty() {
        return Err(CodecError::Malformed("trailing bytes"));
    }
    let mut header_map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Some(name) = name {
            header_map.append(name, value);
        }
    }
    let (path, query) = match meta.path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (meta.path_and_query.as_str(), None),
    };
    let key = CacheKey::on_host(meta.host.as_deref(), path, query, variant);
    let key = if meta.vary.is_empty() {
        key
    } else {
        key.with_vary(vary_values(meta.vary)?)
    };
    let http = match meta.http {
        Some(record) => Some(HttpMeta {
            freshness: HttpFreshness {
                lifetime: Duration::from_millis(record.lifetime_ms),
                stale_while_revalidate: Duration::from_millis(record.stale_while_revalidate_ms),
                stale_if_error: Duration::from_millis(record.stale_if_error_ms),
                serve_stale: match (record.within_windows, record.must_revalidate) {
                    (true, _) => ServeStale::WithinWindows,
                    (false, true) => ServeStale::Never,
                    (false, false) => ServeStale::Allowed,
                },
                no_cache: record.no_cache,
            },
            initial_age: Duration::from_millis(record.initial_age_ms),
            selecting: vary_values(record.selecting)?,
        }),
        None => None,
    };
    let etag = match meta.etag.as_str() {
        "" => None,
        _ => Some(HeaderValue::try_from(meta.etag).map_err(|_| CodecError::Malformed("etag"))?),
    };
    let entry = Entry::restore(
        StatusCode::from_u16(meta.status).map_err(|_| CodecError::Malformed("status"))?,
        header_map,
        Bytes::copy_from_slice(body),
        etag,
        UNIX_EPOCH + Duration::from_millis(meta.generated_at_ms),
        Lifetime {
            revalidate: meta.revalidate_ms.map(Duration::from_millis),
            expire: Duration::from_millis(meta.expire_ms),
        },
        meta.tags.into_boxed_slice(),
        meta.marked_stale,
        http,
    );
    let entry = if gzip.is_some() || br.is_some() {
        entry.with_encodings(Compressed {
            gzip: gzip.map(Bytes::copy_from_slice),
            br: br.map(Bytes::copy_from_slice),
        })
    } else {
        entry
    };
    Ok((key, entry))
}

/// Milliseconds since the epoch of an entry's generation, as stored (for comparisons without decoding).
pub fn generated_at_ms(time: SystemTime) -> u64 {
    u64::try_from(time.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// A 128-bit hash of the whole key (host, path, query and variant): the name a tier stores the page under, so
/// names never derive from the request path itself. A host-less key hashes as it always did.
pub fn key_hash(key: &CacheKey) -> u128 {
    xxhash_rust::xxh3::xxh3_128(&key.stable_bytes())
}

fn wire_headers<'a>(headers: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Header lines; a name that no longer parses is kept as `None` so one odd header never loses the entry.
fn parse_headers(bytes: &[u8]) -> Result<Vec<(Option<HeaderName>, HeaderValue)>, CodecError> {
    let mut out = Vec::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").ok_or(CodecError::Malformed("header line"))?;
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or(CodecError::Malformed("header line"))?;
        let name = HeaderName::from_bytes(&line[..colon]).ok();
        let value = line.get(colon + 2..).ok_or(CodecError::Malformed("header line"))?;
        let value = HeaderValue::from_bytes(value).map_err(|_| CodecError::Malformed("header value"))?;
        out.push((name, value));
    }
    Ok(out)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < len {
            return Err(CodecError::Malformed("short section"));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn section_u32(&mut self) -> Result<&'a [u8], CodecError> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| CodecError::Malformed("length"))?);
        self.take(len as usize)
    }

    fn section_u64(&mut self) -> Result<&'a [u8], CodecError> {
        let len = u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| CodecError::Malformed("length"))?);
        self.take(usize::try_from(len).map_err(|_| CodecError::Malformed("length"))?)
    }
}

#[cfg(test)]
mod tests;
