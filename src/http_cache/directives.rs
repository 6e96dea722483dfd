//! Cache directives: `Cache-Control` in responses (RFC 9111 §5.2.2) and requests (§5.2.1), and
//! `CDN-Cache-Control` (RFC 9213), which is a Structured Field dictionary (RFC 9651).
//!
//! Parsing is strict where a lenient reading would keep a response fresh longer than its origin meant: a
//! delta-seconds argument that is quoted, signed, fractional or otherwise not plain digits is *invalid*, and so
//! are two occurrences of one directive that disagree; an invalid lifetime means "stale". Directive names are
//! case-insensitive; quoted strings are skipped as a unit, so `ext="max-age=3600"` hides nothing.

use http::HeaderMap;
use http::header::{CACHE_CONTROL, HeaderName, HeaderValue, PRAGMA};

/// RFC 9213's targeted field for CDNs and reverse proxies: when valid, it replaces `Cache-Control` for the
/// cache's own decisions (and still reaches the client unchanged).
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// The largest delta-seconds value kept (RFC 9111 §1.2.2): greater ones, and overflows, count as 2^31.
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// The argument of a delta-seconds directive (`max-age=60`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seconds {
    /// The directive is not there.
    #[default]
    Absent,
    /// Plain digits (capped at [`DELTA_SECONDS_MAX`]).
    Valid(u64),
    /// There, but unusable: quoted, negative, fractional, missing, or given twice with different values.
    Invalid,
}

impl Seconds {
    /// The value, if present and valid.
    pub fn value(self) -> Option<u64> {
        match self {
            Self::Valid(seconds) => Some(seconds),
            Self::Absent | Self::Invalid => None,
        }
    }

    /// Whether the directive was given at all (valid or not).
    pub fn is_present(self) -> bool {
        self != Self::Absent
    }

    /// A second occurrence of the same directive: agreeing duplicates are harmless, disagreeing ones invalid.
    fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::Absent, other) => other,
            (this, Self::Absent) => this,
            (Self::Valid(a), Self::Valid(b)) if a == b => Self::Valid(a),
            _ => Self::Invalid,
        }
    }

    fn from_argument(argument: Argument<'_>) -> Self {
        match argument {
            Argument::Token(token) => delta_seconds(token).map_or(Self::Invalid, Self::Valid),
            Argument::None | Argument::Quoted | Argument::Malformed => Self::Invalid,
        }
    }
}

/// `1*DIGIT`, capped at [`DELTA_SECONDS_MAX`]; `None` for anything else.
fn delta_seconds(token: &str) -> Option<u64> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        token
            .parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |s| s.min(DELTA_SECONDS_MAX)),
    )
}

/// The response directives a shared cache acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseDirectives {
    /// `max-age`.
    pub max_age: Seconds,
    /// `s-maxage`: the shared-cache lifetime, which also forbids serving stale (§5.2.2.10).
    pub s_maxage: Seconds,
    /// RFC 5861 `stale-while-revalidate`.
    pub stale_while_revalidate: Seconds,
    /// RFC 5861 `stale-if-error`.
    pub stale_if_error: Seconds,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (with or without field names: a qualified one is treated as unqualified, which is stricter).
    pub no_cache: bool,
    /// `private` (likewise, qualified or not).
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
}

impl ResponseDirectives {
    /// What the cache's own decisions use: a valid `CDN-Cache-Control` replaces `Cache-Control` entirely
    /// (RFC 9213 §2.1); an invalid one is ignored.
    pub fn effective(headers: &HeaderMap) -> Self {
        Self::from_cdn_cache_control(headers).unwrap_or_else(|| Self::from_cache_control(headers))
    }

    /// `Cache-Control`, every line.
    pub fn from_cache_control(headers: &HeaderMap) -> Self {
        let mut parsed = Self::default();
        for_each_directive(headers.get_all(CACHE_CONTROL).iter(), |name, argument| {
            match parsed.slot(name) {
                Some(Slot::Seconds(seconds)) => *seconds = seconds.merge(Seconds::from_argument(argument)),
                Some(Slot::Flag(flag)) => *flag = true,
                None => {}
            }
        });
        parsed
    }

    /// Where the directive `name` (lower-case) goes; `None` for directives isr-proxy does not act on.
    fn slot(&mut self, name: &str) -> Option<Slot<'_>> {
        Some(match name {
            "max-age" => Slot::Seconds(&mut self.max_age),
            "s-maxage" => Slot::Seconds(&mut self.s_maxage),
            "stale-while-revalidate" => Slot::Seconds(&mut self.stale_while_revalidate),
            "stale-if-error" => Slot::Seconds(&mut self.stale_if_error),
            "no-store" => Slot::Flag(&mut self.no_store),
            "no-cache" => Slot::Flag(&mut self.no_cache),
            "private" => Slot::Flag(&mut self.private),
            "public" => Slot::Flag(&mut self.public),
            "must-revalidate" => Slot::Flag(&mut self.must_revalidate),
            "proxy-revalidate" => Slot::Flag(&mut self.proxy_revalidate),
            "must-understand" => Slot::Flag(&mut self.must_understand),
            _ => return None,
        })
    }

    /// `CDN-Cache-Control` as a Structured Field dictionary; `None` when absent or invalid (not a dictionary,
    /// or a known directive with a value of the wrong type), in which case RFC 9213 says to ignore it.
    pub fn from_cdn_cache_control(headers: &HeaderMap) -> Option<Self> {
        let mut lines = headers.get_all(CDN_CACHE_CONTROL).iter().peekable();
        lines.peek()?;
        let mut joined = Vec::new();
        for line in lines {
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(line.as_bytes());
        }
        let dictionary: sfv::Dictionary = sfv::Parser::new(&joined).parse().ok()?;
        let mut parsed = Self::default();
        for (key, member) in &dictionary {
            let item = match member {
                sfv::ListEntry::Item(item) => Some(&item.bare_item),
                sfv::ListEntry::InnerList(_) => None,
            };
            let seconds = || -> Option<Seconds> {
                let value = i64::from(item?.as_integer()?);
                let value = u64::try_from(value).ok()?;
                Some(Seconds::Valid(value.min(DELTA_SECONDS_MAX)))
            };
            // A boolean directive is on unless explicitly `?0`; a field-name argument qualifies it, which is
            // treated as unqualified (stricter), as for `Cache-Control`.
            let flag = item.and_then(sfv::BareItem::as_boolean).unwrap_or(true);
            match parsed.slot(key.as_str()) {
                Some(Slot::Seconds(slot)) => *slot = seconds()?,
                Some(Slot::Flag(slot)) => *slot = flag,
                None => {}
            }
        }
        Some(parsed)
    }
}

/// A directive's place in [`ResponseDirectives`].
enum Slot<'a> {
    /// A delta-seconds directive.
    Seconds(&'a mut Seconds),
    /// A directive that is on or off.
    Flag(&'a mut bool),
}

/// How far past its freshness a client accepts a stored response (`max-stale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// `max-stale` without a value: any staleness.
    Any,
    /// `max-stale=N`.
    UpTo(u64),
}

/// The request directives a cache honours (§5.2.1), with `Pragma: no-cache` read as `no-cache` when the
/// request has no `Cache-Control` (§5.4). Unknown directives and invalid arguments are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestDirectives {
    /// `no-cache`: validate with the origin before using a stored response.
    pub no_cache: bool,
    /// `no-store`: do not store the response to this request.
    pub no_store: bool,
    /// `only-if-cached`: never go to the origin; 504 when nothing suitable is stored.
    pub only_if_cached: bool,
    /// `max-age=N`: do not accept a stored response older than N seconds.
    pub max_age: Option<u64>,
    /// `min-fresh=N`: accept only a response fresh for at least N more seconds.
    pub min_fresh: Option<u64>,
    /// `max-stale[=N]`: accept a stale response (within N seconds of staleness).
    pub max_stale: Option<MaxStale>,
}

impl RequestDirectives {
    /// Reads `Cache-Control` (and `Pragma`) of a request.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut parsed = Self::default();
        if !headers.contains_key(CACHE_CONTROL) {
            parsed.no_cache = headers
                .get_all(PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"));
            return parsed;
        }
        for_each_directive(headers.get_all(CACHE_CONTROL).iter(), |name, argument| {
            let seconds = || match argument {
                Argument::Token(token) => delta_seconds(token),
                Argument::None | Argument::Quoted | Argument::Malformed => None,
            };
            match name {
                "no-cache" => parsed.no_cache = true,
                "no-store" => parsed.no_store = true,
                "only-if-cached" => parsed.only_if_cached = true,
                "max-age" => parsed.max_age = seconds().or(parsed.max_age),
                "min-fresh" => parsed.min_fresh = seconds().or(parsed.min_fresh),
                "max-stale" => {
                    parsed.max_stale = match argument {
                        Argument::None => Some(MaxStale::Any),
                        _ => seconds().map(MaxStale::UpTo).or(parsed.max_stale),
                    };
                }
                _ => {}
            }
        });
        parsed
    }

    /// Whether the request carries any directive that changes what a cache may answer with.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A directive's argument, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Argument<'a> {
    /// `name` alone.
    None,
    /// `name=token`.
    Token(&'a str),
    /// `name="quoted string"` (the content does not matter to any directive isr-proxy reads a number from).
    Quoted,
    /// Space around `=`, an unterminated quote, or trailing garbage.
    Malformed,
}

/// Calls `f` with each directive (name lower-cased) of a comma-separated list spread over `lines`. A line that
/// is not visible ASCII is skipped as a whole.
fn for_each_directive<'a>(lines: impl Iterator<Item = &'a HeaderValue>, mut f: impl FnMut(&str, Argument<'_>)) {
    for line in lines {
        let Ok(text) = line.to_str() else { continue };
        let mut rest = text;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let name_end = rest.find(['=', ',', ' ', '\t']).unwrap_or(rest.len());
            let name = rest[..name_end].to_ascii_lowercase();
            rest = &rest[name_end..];
            let after_name = rest.trim_start_matches([' ', '\t']);
            let spaced = after_name.len() != rest.len();
            let argument = if let Some(value) = after_name.strip_prefix('=') {
                if spaced || value.starts_with([' ', '\t']) {
                    let (_, tail) = split_value(value);
                    rest = tail;
                    Argument::Malformed
                } else {
                    let (argument, tail) = split_value(value);
                    rest = tail;
                    argument
                }
            } else {
                rest = after_name;
                if !rest.is_empty() && !rest.starts_with(',') {
                    // `name junk`: skip to the next comma.
                    let (_, tail) = split_value(rest);
                    rest = tail;
                    Argument::Malformed
                } else {
                    Argument::None
                }
            };
            f(&name, argument);
        }
    }
}

/// Splits a directive's value from the rest of the list: a quoted string as a unit, else up to the next comma.
fn split_value(value: &str) -> (Argument<'_>, &str) {
    if let Some(quoted) = value.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    let tail = &quoted[i + 1..];
                    let trimmed = tail.trim_start_matches([' ', '\t']);
                    if trimmed.is_empty() || trimmed.starts_with(',') {
                        return (Argument::Quoted, trimmed);
                    }
                    let end = trimmed.find(',').unwrap_or(trimmed.len());
                    return (Argument::Malformed, &trimmed[end..]);
                }
                _ => escaped = false,
            }
        }
        return (Argument::Malformed, "");
    }
    let end = value.find(',').unwrap_or(value.len());
    let token = value[..end].trim_end_matches([' ', '\t']);
    if token.contains([' ', '\t', '"']) {
        return (Argument::Malformed, &value[end..]);
    }
    (Argument::Token(token), &value[end..])
}

#[cfg(test)]
mod tests;
