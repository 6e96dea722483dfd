//! Single byte ranges (RFC 9110 §14.1.2) served from a stored complete response, so a client resuming a
//! download or seeking in media is answered from the cache.

use std::ops::Range;

/// One satisfiable byte range of a representation of known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteRange {
    /// The bytes to send.
    pub bytes: Range<usize>,
    /// The representation's full length, for `Content-Range`.
    pub complete_length: usize,
}

impl ByteRange {
    /// Parses `bytes=first-last`, `bytes=first-` or `bytes=-suffix` against a body of `len` bytes. `None` for
    /// anything else (several ranges, other units, unsatisfiable or malformed ranges): the whole response is sent
    /// instead, which a client must always accept.
    pub fn parse(value: &[u8], len: usize) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?.trim();
        let (unit, spec) = text.split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
            return None;
        }
        let (first, last) = spec.trim().split_once('-')?;
        let number = |s: &str| -> Option<usize> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        };
        let bytes = match (first.trim(), last.trim()) {
            ("", suffix) => {
                let suffix = number(suffix)?;
                if suffix == 0 {
                    return None;
                }
                len.saturating_sub(suffix)..len
            }
            (first, "") => number(first)?..len,
            (first, last) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return None;
                }
                first..last.saturating_add(1).min(len)
            }
        };
        (bytes.start < len && !bytes.is_empty()).then_some(Self {
            bytes,
            complete_length: len,
        })
    }

    /// The `Content-Range` value: `bytes first-last/length`.
    pub fn content_range(&self) -> String {
        format!(
            "bytes {}-{}/{}",
            self.bytes.start,
            self.bytes.end - 1,
            self.complete_length
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_against_an_eleven_byte_body() {
        let cases: &[(&str, Option<Range<usize>>)] = &[
            ("bytes=0-1", Some(0..2)),
            ("bytes=1-", Some(1..11)),
            ("bytes=-1", Some(10..11)),
            ("bytes=-20", Some(0..11)),
            ("bytes=5-100", Some(5..11)),
            ("BYTES = 2-3", Some(2..4)),
            ("bytes=11-", None),
            ("bytes=3-2", None),
            ("bytes=-0", None),
            ("bytes=0-1,3-4", None),
            ("items=0-1", None),
            ("bytes=a-b", None),
            ("bytes=-", None),
        ];
        for (value, want) in cases {
            let got = ByteRange::parse(value.as_bytes(), 11).map(|r| r.bytes);
            assert_eq!(&got, want, "{value}");
        }
        let range = ByteRange::parse(b"bytes=0-1", 11).expect("satisfiable");
        assert_eq!(range.content_range(), "bytes 0-1/11");
    }
}
