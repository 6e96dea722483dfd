//! Content codings for stored pages: which types are worth compressing, the gzip and brotli encoders run once
//! per (re)generation, and `Accept-Encoding` negotiation (RFC 9110 §12.5.3).
//!
//! Pure: no I/O and no tokio. `regen` runs [`compress`] on the blocking pool before storing an entry;
//! `response` asks [`AcceptEncoding::choose`] which stored form to send, per request, without compressing.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use http::HeaderMap;
use http::header::{self, HeaderValue};

/// Bodies shorter than this are stored identity only: a few hundred bytes saved do not pay for a second
/// representation, its ETag and `Content-Encoding`.
pub const MIN_COMPRESS_LEN: usize = 1024;

/// gzip level 9: on HTML it costs the same as level 6 (≈2.5 ms for 64 KiB) and is never larger; it runs once
/// per render, not per request.
pub const GZIP_LEVEL: u32 = 9;

/// Brotli quality 9: 64 KiB of HTML in ≈18 ms, 7% smaller than gzip 9. Quality 11 saves another 9% but takes
/// ≈110 ms, which a MISS would wait for (the first request is answered from the stored entry).
pub const BROTLI_QUALITY: i32 = 9;

/// A content coding isr-proxy can serve from its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding.
    Identity,
    /// gzip (RFC 9110 §8.4.1.3); `x-gzip` is read as the same.
    Gzip,
    /// Brotli (RFC 7932).
    Br,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Br => "br",
        }
    }

    /// Reads one coding token, case-insensitively; `None` for codings isr-proxy does not know.
    pub fn from_token(token: &str) -> Option<Self> {
        [
            ("identity", Self::Identity),
            ("gzip", Self::Gzip),
            ("x-gzip", Self::Gzip),
            ("br", Self::Br),
        ]
        .into_iter()
        .find_map(|(name, coding)| token.eq_ignore_ascii_case(name).then_some(coding))
    }
}

/// Whether a `Content-Type` is text-like enough to be worth compressing: `text/*`, JSON, JavaScript, SVG, XML,
/// `+json`/`+xml` types and `text/x-component` (React Server Components). Images, fonts, archives and media
/// are already compressed.
pub fn is_compressible(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind == "text"
        || matches!(
            essence.as_str(),
            "application/json" | "application/javascript" | "application/xml" | "image/svg+xml"
        )
        || subtype.ends_with("+json")
        || subtype.ends_with("+xml")
}

/// A body's compressed forms; `None` where the coding was not worth it (not smaller) or failed.
#[derive(Debug, Clone, Default)]
pub struct Compressed {
    /// gzip, if smaller than the body.
    pub gzip: Option<Bytes>,
    /// Brotli, if smaller than the body.
    pub br: Option<Bytes>,
}

/// Whether a body of `len` bytes is long enough to compress (see [`MIN_COMPRESS_LEN`]).
pub fn is_worth_compressing(len: usize) -> bool {
    len >= MIN_COMPRESS_LEN
}

/// gzip and brotli of `body`, each kept only if smaller than `body`. CPU-bound (milliseconds for a large page):
/// call it off the async runtime.
pub fn compress(body: &[u8]) -> Compressed {
    if !is_worth_compressing(body.len()) {
        return Compressed::default();
    }
    // Shrunk to fit: a stored form lives as long as its page, and the encoders over-allocate.
    let smaller = |encoded: Option<Vec<u8>>| {
        encoded.filter(|e| e.len() < body.len()).map(|mut e| {
            e.shrink_to_fit();
            Bytes::from(e)
        })
    };
    Compressed {
        gzip: smaller(gzip(body)),
        br: smaller(brotli(body)),
    }
}

/// `body` gzipped at [`GZIP_LEVEL`]; `None` only if the encoder fails (it writes to memory, so it does not).
pub fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3), flate2::Compression::new(GZIP_LEVEL));
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// `body` in brotli at [`BROTLI_QUALITY`], with a window sized to the body (less memory for small pages).
pub fn brotli(body: &[u8]) -> Option<Vec<u8>> {
    let window_bits = usize::BITS - body.len().max(MIN_COMPRESS_LEN).leading_zeros();
    let params = brotli::enc::BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: i32::try_from(window_bits.clamp(10, 24)).unwrap_or(22),
        size_hint: body.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(body.len() / 3);
    brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
    Some(out)
}

/// A quality value in thousandths (`q=0.5` is 500), as RFC 9110 §12.4.2 allows three decimals.
type Quality = u16;

const Q_MAX: Quality = 1000;

/// A request's `Accept-Encoding`, reduced to what isr-proxy can serve (RFC 9110 §12.5.3). Parsed once per
/// request; codings other than gzip, br and identity are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    /// Whether the request had the header at all (absent: "no preference", not "identity only").
    sent: bool,
    identity: Option<Quality>,
    gzip: Option<Quality>,
    br: Option<Quality>,
    any: Option<Quality>,
}

impl AcceptEncoding {
    /// Reads every `Accept-Encoding` line of a request (lines combine as one list).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut values = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
        if values.peek().is_none() {
            return Self::default();
        }
        // A line that is not visible ASCII lists nothing isr-proxy can use: identity only.
        Self::parse(values.filter_map(|v| v.to_str().ok()))
    }

    /// Parses the field lines of a sent header. Elements with a malformed `q` are skipped (treated as not
    /// listed); a coding listed twice keeps its highest quality.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut accept = Self {
            sent: true,
            ..Self::default()
        };
        for element in lines.into_iter().flat_map(|line| line.split(',')) {
            let mut parts = element.split(';');
            let name = parts.next().unwrap_or_default().trim();
            if name.is_empty() {
                continue;
            }
            let mut quality = Some(Q_MAX);
            for param in parts {
                if let Some((key, value)) = param.split_once('=')
                    && key.trim().eq_ignore_ascii_case("q")
                {
                    quality = parse_quality(value.trim());
                }
            }
            let Some(quality) = quality else { continue };
            let slot = if name == "*" {
                &mut accept.any
            } else {
                match Coding::from_token(name) {
                    Some(Coding::Identity) => &mut accept.identity,
                    Some(Coding::Gzip) => &mut accept.gzip,
                    Some(Coding::Br) => &mut accept.br,
                    None => continue,
                }
            };
            *slot = Some(slot.map_or(quality, |q| q.max(quality)));
        }
        accept
    }

    /// Whether the request had an `Accept-Encoding` header (absent: any coding is acceptable).
    pub fn is_sent(&self) -> bool {
        self.sent
    }

    /// Whether a body in `coding` may be sent (RFC 9110 §12.5.3): any coding when the header is absent;
    /// otherwise a listed coding unless `q=0`, an unlisted one through `*`, and identity unless refused by
    /// `identity;q=0` or by `*;q=0` without an `identity` entry.
    pub fn accepts(&self, coding: Coding) -> bool {
        !self.sent || self.quality(coding) > 0
    }

    fn quality(&self, coding: Coding) -> Quality {
        let listed = match coding {
            Coding::Identity => self.identity,
            Coding::Gzip => self.gzip,
            Coding::Br => self.br,
        };
        match (listed, self.any, coding) {
            (Some(q), _, _) | (None, Some(q), _) => q,
            (None, None, Coding::Identity) => 1,
            (None, None, _) => 0,
        }
    }

    /// The coding to send, given which compressed forms exist beside identity: the acceptable one with the
    /// highest quality, br before gzip before identity on a tie. Without the header, identity (the safe
    /// reading of "no preference"). Identity not listed and not matched by `*` ranks below any acceptable
    /// compressed form. When nothing acceptable is stored (e.g. `identity;q=0` on a small page), identity
    /// anyway: RFC 9110 §12.1 lets a server disregard the header rather than answer 406.
    pub fn choose(&self, has_br: bool, has_gzip: bool) -> Coding {
        if !self.sent {
            return Coding::Identity;
        }
        let mut best = (Coding::Identity, self.quality(Coding::Identity));
        for (coding, stored) in [(Coding::Gzip, has_gzip), (Coding::Br, has_br)] {
            let quality = self.quality(coding);
            if stored && quality > 0 && quality >= best.1 {
                best = (coding, quality);
            }
        }
        best.0
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths; `None` if malformed.
fn parse_quality(value: &str) -> Option<Quality> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |acc, digit| acc * 10 + Quality::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(Q_MAX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn choose(header: Option<&str>, has_br: bool, has_gzip: bool) -> Coding {
        let accept = header.map_or_else(AcceptEncoding::default, |h| AcceptEncoding::parse([h]));
        accept.choose(has_br, has_gzip)
    }

    #[test]
    fn negotiation_picks_the_best_stored_coding() {
        use Coding::{Br, Gzip, Identity};
        for (header, want) in [
            (None, Identity),
            (Some(""), Identity),
            (Some("br, gzip"), Br),
            (Some("gzip, br"), Br),
            (Some("gzip, deflate, br, zstd"), Br),
            (Some("gzip"), Gzip),
            (Some("x-gzip"), Gzip),
            (Some("GZIP"), Gzip),
            (Some("identity"), Identity),
            (Some("deflate, zstd"), Identity),
            (Some("identity;q=0, gzip"), Gzip),
            (Some("br;q=0, gzip"), Gzip),
            (Some("br;q=0.5, gzip;q=0.8"), Gzip),
            (Some("br;q=0.8, gzip;q=0.8"), Br),
            (Some("br ; q=0.9 , gzip;q=1"), Gzip),
            (Some("gzip;q=0.5, identity"), Identity),
            (Some("gzip;q=0.5"), Gzip),
            (Some("*"), Br),
            (Some("*;q=0.5, gzip"), Gzip),
            (Some("*;q=0"), Identity),
            (Some("br;q=2, gzip"), Gzip),
            (Some("br;q=0.5555, gzip;q=0.1"), Gzip),
            (Some("br;q=abc"), Identity),
            (Some("br;Q=1.000"), Br),
            (Some("gzip;level=1"), Gzip),
        ] {
            assert_eq!(choose(header, true, true), want, "{header:?}");
        }
    }

    #[test]
    fn negotiation_falls_back_to_what_is_stored() {
        use Coding::{Gzip, Identity};
        for (header, has_br, has_gzip, want) in [
            (Some("br, gzip"), false, true, Gzip),
            (Some("br"), false, true, Identity),
            (Some("br, gzip"), false, false, Identity),
            (Some("identity;q=0, br"), false, false, Identity),
        ] {
            assert_eq!(
                choose(header, has_br, has_gzip),
                want,
                "{header:?} br={has_br} gzip={has_gzip}"
            );
        }
    }

    #[test]
    fn acceptability_follows_rfc_9110() {
        use Coding::{Br, Gzip, Identity};
        let accepts = |header: Option<&str>, coding| {
            header
                .map_or_else(AcceptEncoding::default, |h| AcceptEncoding::parse([h]))
                .accepts(coding)
        };
        for (header, coding, want) in [
            (None, Gzip, true),
            (None, Br, true),
            (Some(""), Gzip, false),
            (Some(""), Identity, true),
            (Some("gzip"), Gzip, true),
            (Some("gzip"), Br, false),
            (Some("gzip;q=0"), Gzip, false),
            (Some("*"), Br, true),
            (Some("*;q=0, gzip"), Br, false),
            (Some("*;q=0"), Identity, false),
            (Some("*;q=0, identity"), Identity, true),
            (Some("identity;q=0"), Identity, false),
        ] {
            assert_eq!(accepts(header, coding), want, "{header:?} {coding:?}");
        }
    }

    #[test]
    fn header_lines_combine() {
        let mut headers = HeaderMap::new();
        headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static("identity;q=0"));
        headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let accept = AcceptEncoding::from_headers(&headers);
        assert_eq!(accept.choose(true, true), Coding::Gzip);
        assert!(!accept.accepts(Coding::Identity));
        assert_eq!(
            AcceptEncoding::from_headers(&HeaderMap::new()),
            AcceptEncoding::default()
        );
    }

    #[test]
    fn quality_values() {
        for (value, want) in [
            ("1", Some(1000)),
            ("1.0", Some(1000)),
            ("1.000", Some(1000)),
            ("0", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.001", Some(1)),
            ("1.5", None),
            ("0.1234", None),
            ("2", None),
            ("", None),
            ("-0", None),
            ("0.a", None),
        ] {
            assert_eq!(parse_quality(value), want, "{value:?}");
        }
    }

    #[test]
    fn compressible_types() {
        for (content_type, want) in [
            ("text/html; charset=utf-8", true),
            ("TEXT/CSS", true),
            ("text/x-component", true),
            ("application/json", true),
            ("application/ld+json", true),
            ("application/javascript", true),
            ("application/rss+xml", true),
            ("application/xml", true),
            ("image/svg+xml", true),
            ("image/png", false),
            ("application/octet-stream", false),
            ("font/woff2", false),
            ("nonsense", false),
        ] {
            assert_eq!(
                is_compressible(Some(&HeaderValue::from_static(content_type))),
                want,
                "{content_type}"
            );
        }
        assert!(!is_compressible(None));
    }

    #[test]
    fn compressed_forms_decode_to_the_body_and_small_bodies_are_left_alone() {
        let body = "<li class=\"post\">a page worth compressing</li>\n".repeat(100);
        let compressed = compress(body.as_bytes());
        let gzip = compressed.gzip.expect("gzip is smaller for repetitive HTML");
        let br = compressed.br.expect("brotli is smaller for repetitive HTML");
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut decoded)
            .expect("valid gzip");
        assert_eq!(decoded, body);
        let mut decoded = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut decoded)
            .expect("valid brotli");
        assert_eq!(decoded, body);

        let small = compress(&body.as_bytes()[..MIN_COMPRESS_LEN - 1]);
        assert!(small.gzip.is_none() && small.br.is_none());
    }

    #[test]
    fn incompressible_bodies_keep_no_larger_form() {
        // xorshift noise does not compress: both forms would be larger than the body.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let compressed = compress(&noise);
        assert!(compressed.gzip.is_none() && compressed.br.is_none());
    }
}
