//! [`PathPrefix`]: the pages a prefix revalidation reaches, a path and everything under it on one site.
//!
//! Matching is by whole path segments, as Next.js's `revalidatePath('/blog', 'layout')` means it: `/blog` covers
//! `/blog`, `/blog/` and `/blog/…`, never `/blog-old`; a prefix ending in `/` covers only what lies under it
//! (`/blog/` covers `/blog/a`, not `/blog`), so `/` covers every page. A covered path's queries (`/blog?page=2`)
//! and variants (RSC payloads, `Vary` variants) are covered with it.
//!
//! Pure: the covered keys form a few contiguous runs of the key order ([`PathPrefix::runs`]), which the ordered
//! indexes (memory, Redis) read as ranges, so a prefix costs time in proportion to the pages under it.

use super::CacheKey;

/// A path prefix on a site: host-less routes' pages, plus, for a host, that host's own pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPrefix {
    host: Option<Box<str>>,
    path: Box<str>,
}

/// One contiguous run of covered path-and-query strings, in byte order: every one starts with `start`, and for
/// an `exact` run every one equals it (the prefix's own page, with its variants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// What each path and query in the run starts with (or is).
    pub start: String,
    /// The run is the path itself, without a query.
    pub exact: bool,
}

impl Run {
    /// Whether `path_and_query` lies in this run.
    pub fn contains(&self, path_and_query: &str) -> bool {
        if self.exact {
            path_and_query == self.start
        } else {
            path_and_query.starts_with(&self.start)
        }
    }
}

impl PathPrefix {
    /// The prefix `path` (normalised, starting with `/`, without a query) on `host` (normalised; `None`: the
    /// host-less routes' pages only).
    pub fn new(host: Option<&str>, path: &str) -> Self {
        Self {
            host: host.map(Box::from),
            path: Box::from(path),
        }
    }

    /// The site, if the prefix names one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The path prefix.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether a revalidation of this prefix reaches `key`: its path is covered, and it is a host-less route's
    /// page (shared by every site) or a page of the prefix's own site.
    pub fn covers(&self, key: &CacheKey) -> bool {
        let site = key.host().is_none_or(|host| Some(host) == self.host());
        site && self.runs().iter().any(|run| run.contains(key.path_and_query()))
    }

    /// The runs of the key order the covered keys lie in, in order: for `/blog`, the page `/blog` itself,
    /// then `/blog/…`, then `/blog?…`; for `/blog/`, just `/blog/…`.
    pub fn runs(&self) -> Vec<Run> {
        let run = |start: String, exact| Run { start, exact };
        if self.path.ends_with('/') {
            return vec![run(self.path.to_string(), false)];
        }
        vec![
            run(self.path.to_string(), true),
            run(format!("{}/", self.path), false),
            run(format!("{}?", self.path), false),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host: Option<&str>, path_and_query: &str) -> CacheKey {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        CacheKey::on_host(host, path, query, Vec::new())
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let blog = PathPrefix::new(None, "/blog");
        let under = PathPrefix::new(None, "/blog/");
        let root = PathPrefix::new(None, "/");
        for (path, by_blog, by_under) in [
            ("/blog", true, false),
            ("/blog/", true, true),
            ("/blog/a", true, true),
            ("/blog/a/b?x=1", true, true),
            ("/blog?page=2", true, false),
            ("/blog-old", false, false),
            ("/blogroll", false, false),
            ("/blo", false, false),
            ("/", false, false),
            ("/other/blog", false, false),
        ] {
            let key = key(None, path);
            assert_eq!(blog.covers(&key), by_blog, "/blog covers {path}");
            assert_eq!(under.covers(&key), by_under, "/blog/ covers {path}");
            assert!(root.covers(&key), "/ covers {path}");
        }
    }

    #[test]
    fn a_prefix_reaches_host_less_pages_and_its_own_sites_only() {
        let shop = PathPrefix::new(Some("shop.example.com"), "/blog");
        let anywhere = PathPrefix::new(None, "/blog");
        let shared = key(None, "/blog/a");
        let own = key(Some("shop.example.com"), "/blog/a");
        let other = key(Some("news.example.com"), "/blog/a");
        assert!(shop.covers(&shared) && shop.covers(&own) && !shop.covers(&other));
        assert!(anywhere.covers(&shared) && !anywhere.covers(&own) && !anywhere.covers(&other));
    }

    #[test]
    fn runs_are_in_key_order_and_cover_exactly_the_prefix() {
        let runs = PathPrefix::new(None, "/blog").runs();
        let starts: Vec<&str> = runs.iter().map(|run| run.start.as_str()).collect();
        assert_eq!(starts, ["/blog", "/blog/", "/blog?"]);
        assert!(starts.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(runs[0].contains("/blog") && !runs[0].contains("/blog/a"));
        assert_eq!(PathPrefix::new(None, "/blog/").runs().len(), 1);
    }
}
