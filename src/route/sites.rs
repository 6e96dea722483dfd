//! Several sites behind one proxy: the `host` of a `[[route]]` (`shop.example.com`, `*.example.com`), the
//! normal form of a request's host, and the per-host route trees a request's host selects. Pure.
//!
//! A request's host is normalised to lowercase, without a trailing dot and **without its port**
//! (`Shop.Example.com.:8080` is `shop.example.com`): one site answers on every port a load balancer may use, so
//! the port never splits the cache. That normal form is what host-specific keys carry and what the origin
//! receives as `Host` (or `X-Forwarded-Host`).
//!
//! Matching is host first, then path: the routes of an exact host are tried, then those of the matching
//! wildcards, longest suffix first, and only then the host-less routes. So a host-specific route wins over a
//! host-less one, and a host with no route for a path falls through to the host-less routes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// One `host` entry of a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `shop.example.com`: that host only.
    Exact(String),
    /// `*.example.com`: any host ending in `.example.com`, at any depth (`a.example.com`, `a.b.example.com`),
    /// not `example.com` itself. Stored as the suffix with its dot.
    Wildcard(String),
}

impl HostPattern {
    /// Parses a `host` entry; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if let Some(suffix) = text.strip_prefix("*.") {
            return match normalize_host(suffix) {
                Some(normal) if normal == suffix && !suffix.is_empty() => Ok(Self::Wildcard(format!(".{suffix}"))),
                _ => Err("a wildcard is `*.` followed by a lowercase host name, e.g. \"*.example.com\""),
            };
        }
        match normalize_host(text) {
            Some(normal) if normal == text => Ok(Self::Exact(text.to_owned())),
            Some(_) => Err("write the host in lowercase, without a port or a trailing dot"),
            None => Err("not a host name (letters, digits, '-', '.'; or \"*.example.com\")"),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(host) => f.write_str(host),
            Self::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// The normal form of a request's host (see the module docs): lowercase, no port, no trailing dot. Borrows when
/// the host is already normal. `None` for something that is not a host name (it then selects no host's routes).
pub fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let host = if raw.starts_with('[') {
        // An IPv6 literal: `[::1]:3000` → `[::1]`.
        &raw[..=raw.find(']')?]
    } else {
        raw.split_once(':').map_or(raw, |(host, _port)| host)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':'));
    if !valid {
        return None;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// The host-specific route trees, by host pattern. `T` is the per-host path router.
#[derive(Debug)]
pub(super) struct Sites<T> {
    exact: HashMap<String, T>,
    /// Longest suffix first, so the most specific wildcard is tried first.
    wildcards: Vec<(String, T)>,
}

impl<T> Sites<T> {
    /// Groups `trees` by pattern.
    pub(super) fn new(trees: Vec<(HostPattern, T)>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for (pattern, tree) in trees {
            match pattern {
                HostPattern::Exact(host) => {
                    exact.insert(host, tree);
                }
                HostPattern::Wildcard(suffix) => wildcards.push((suffix, tree)),
            }
        }
        wildcards.sort_by_key(|(suffix, _): &(String, T)| std::cmp::Reverse(suffix.len()));
        Self { exact, wildcards }
    }

    /// The trees a normalised `host` selects, most specific first.
    pub(super) fn trees_for<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a T> + 'a {
        let exact = self.exact.get(host);
        let wildcards = self
            .wildcards
            .iter()
            .filter(move |(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, tree)| tree);
        exact.into_iter().chain(wildcards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_normalise_to_lowercase_without_port_or_trailing_dot() {
        let cases = [
            ("shop.example.com", Some("shop.example.com")),
            ("Shop.Example.COM", Some("shop.example.com")),
            ("shop.example.com:8080", Some("shop.example.com")),
            ("shop.example.com.", Some("shop.example.com")),
            ("SHOP.example.com.:443", Some("shop.example.com")),
            ("127.0.0.1:3000", Some("127.0.0.1")),
            ("[::1]:3000", Some("[::1]")),
            ("", None),
            ("bad host", None),
            ("a/b", None),
            ("[::1", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_host(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn host_patterns_parse_exact_and_wildcard_forms() {
        assert_eq!(
            HostPattern::parse("a.example.com"),
            Ok(HostPattern::Exact("a.example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("*.example.com"),
            Ok(HostPattern::Wildcard(".example.com".into()))
        );
        for bad in [
            "A.example.com",
            "a.example.com:80",
            "*.",
            "*",
            "a b",
            "*.Example.com",
            "x.*.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn exact_hosts_come_before_wildcards_and_longer_wildcards_first() {
        let sites = Sites::new(vec![
            (HostPattern::Wildcard(".example.com".into()), "any"),
            (HostPattern::Exact("shop.example.com".into()), "shop"),
            (HostPattern::Wildcard(".eu.example.com".into()), "eu"),
        ]);
        let trees = |host| sites.trees_for(host).copied().collect::<Vec<_>>();
        assert_eq!(trees("shop.example.com"), ["shop", "any"]);
        assert_eq!(trees("a.eu.example.com"), ["eu", "any"]);
        assert_eq!(trees("blog.example.com"), ["any"]);
        assert!(trees("example.com").is_empty(), "a wildcard needs a subdomain");
        assert!(trees("other.org").is_empty());
    }
}
