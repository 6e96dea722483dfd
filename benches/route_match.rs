//! Per-request routing work, before the cache is touched: `RouteTable::match_path` on a realistic table,
//! `route::normalize_path`, `QueryPolicy::apply` and `CacheKey::new`; and `match_scaling`, the same request mix
//! against tables of 10, 100 and 1,000 routes (matching must stay flat: 1,000 routes < 2x the cost of 10).
//!
//! Run: `cargo bench --bench route_match -- --warm-up-time 1 --measurement-time 3`
//! (`-- match_scaling` for the scaling group alone).

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::header::{HeaderName, HeaderValue};
use isr_proxy::Config;
use isr_proxy::cache::CacheKey;
use isr_proxy::route::{QueryPolicy, RouteTable, normalize_path};

/// A site's worth of routes (marketing pages, a blog, a shop, docs, an API), in config order: static pages,
/// `:param` routes and `*rest` catch-alls, with the overlaps precedence has to settle (`/blog/featured` vs
/// `/blog/:slug` vs `/blog/*rest`). Built through the config parser, as `isr-proxy` builds it, so the bench keeps
/// compiling when `RouteRule` grows fields.
const ROUTES_TOML: &str = r#"
[origin]
url = "http://127.0.0.1:8080"

[[route]]
path = "/"
revalidate = 60
[[route]]
path = "/about"
revalidate = 3600
[[route]]
path = "/pricing"
revalidate = 3600
[[route]]
path = "/contact"
revalidate = 3600
[[route]]
path = "/blog"
revalidate = 60
[[route]]
path = "/blog/featured"
revalidate = 60
[[route]]
path = "/blog/:slug"
revalidate = 300
[[route]]
path = "/blog/tag/:tag"
revalidate = 300
[[route]]
path = "/blog/*rest"
revalidate = 300
[[route]]
path = "/products"
revalidate = 60
[[route]]
path = "/products/:id"
revalidate = 60
[[route]]
path = "/products/:id/reviews"
revalidate = 600
[[route]]
path = "/category/:name"
revalidate = 60
query = ["page", "sort"]
[[route]]
path = "/category/:name/page/:n"
revalidate = 60
[[route]]
path = "/users/:username"
revalidate = false
[[route]]
path = "/docs"
revalidate = "1h"
[[route]]
path = "/docs/*path"
revalidate = "1h"
[[route]]
path = "/en/:slug"
revalidate = 300
[[route]]
path = "/sitemap.xml"
revalidate = "1h"
[[route]]
path = "/search"
cache = false
[[route]]
path = "/api/*rest"
cache = false
[[route]]
path = "/_next/*asset"
cache = false
"#;

fn table() -> RouteTable {
    let config = Config::from_toml_str(ROUTES_TOML).expect("the benchmark's config is valid");
    assert_eq!(config.routes.rules().len(), 22);
    config.routes
}

fn match_path(c: &mut Criterion) {
    let table = table();
    let mut group = c.benchmark_group("match_path");
    let cases = [
        ("static", "/pricing", Some("/pricing")),
        ("static_over_param", "/blog/featured", Some("/blog/featured")),
        ("param", "/blog/hello-world", Some("/blog/:slug")),
        (
            "three_params",
            "/category/shoes/page/3",
            Some("/category/:name/page/:n"),
        ),
        ("catch_all", "/docs/guides/deploy/edge-functions", Some("/docs/*path")),
        ("no_match", "/wp-admin/setup-config.php", None),
    ];
    for (name, path, want) in cases {
        assert_eq!(
            table.match_path(path).map(|rule| rule.pattern.as_str()),
            want,
            "{path} must match {want:?}"
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), path, |b, path| {
            b.iter(|| table.match_path(black_box(path)).is_some());
        });
    }
    group.finish();
}

fn normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_path");
    let cases = [
        ("clean", "/blog/2024/hello-world", "/blog/2024/hello-world"),
        (
            "needs_work",
            "//blog/./2024/../%68ello-%7eworld%2f/",
            "/blog/hello-~world%2F/",
        ),
    ];
    for (name, path, want) in cases {
        assert_eq!(normalize_path(path).as_deref(), Ok(want), "{path}");
        group.bench_with_input(BenchmarkId::from_parameter(name), path, |b, path| {
            b.iter(|| normalize_path(black_box(path)).map(|p| p.len()));
        });
    }
    group.finish();
}

fn query_policy(c: &mut Criterion) {
    let mut group = c.benchmark_group("query_policy_apply");
    let query = "utm_source=newsletter&sort=price&utm_medium=email&page=2&_rsc=1x9ab";
    let allow = QueryPolicy::Allow(vec!["page".to_owned(), "sort".to_owned()]);
    let cases = [
        ("ignore_no_query", QueryPolicy::Ignore, None, None),
        ("ignore", QueryPolicy::Ignore, Some(query), Some("_rsc=1x9ab")),
        ("allow", allow, Some(query), Some("_rsc=1x9ab&page=2&sort=price")),
        (
            "keep",
            QueryPolicy::Keep,
            Some(query),
            Some("_rsc=1x9ab&page=2&sort=price&utm_medium=email&utm_source=newsletter"),
        ),
    ];
    for (name, policy, query, want) in cases {
        assert_eq!(policy.apply(query).as_deref(), want, "{policy:?} on {query:?}");
        group.bench_function(name, |b| b.iter(|| policy.apply(black_box(query))));
    }
    group.finish();
}

fn cache_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_key_new");
    group.bench_function("path", |b| {
        b.iter(|| CacheKey::new(black_box("/blog/hello-world"), None, Vec::new()));
    });
    group.bench_function("path_and_query", |b| {
        b.iter(|| {
            CacheKey::new(
                black_box("/category/shoes"),
                black_box(Some("page=2&sort=price")),
                Vec::new(),
            )
        });
    });
    group.bench_function("rsc_variant", |b| {
        b.iter(|| {
            let variant = vec![(HeaderName::from_static("rsc"), HeaderValue::from_static("1"))];
            CacheKey::new(black_box("/blog/hello-world"), None, variant)
        });
    });
    group.finish();

    // Everything `Proxy::handle` does to turn a request line into a key, for a cached `:param` route.
    let table = table();
    c.bench_function("request_to_key", |b| {
        b.iter(|| {
            let path = normalize_path(black_box("/category/shoes")).expect("a clean path normalises");
            let rule = table.match_path(&path).filter(|rule| rule.cache)?;
            let query = rule.query.apply(black_box(Some("sort=price&utm_source=x&page=2")));
            Some(CacheKey::new(&path, query.as_deref(), Vec::new()))
        });
    });
}

/// Routes per block of [`scaled_table`]; tables are whole blocks.
const BLOCK_ROUTES: usize = 10;

/// A table of `blocks` × 10 routes, each block a small site section in config order: two static pages, four
/// `:param` routes, a `*rest` catch-all, a second section's `:param` routes, and two host-specific routes (one
/// exact host overriding the section's `:slug` route, one `*.` wildcard). So every table has the same mix, and
/// host-specific routes make every request go through the host lookup, as the proxy does when any route names
/// a host.
fn scaled_table(blocks: usize) -> RouteTable {
    let mut toml = String::from("[origin]\nurl = \"http://127.0.0.1:8080\"\n");
    for b in 0..blocks {
        let routes = [
            (format!("/s{b}"), None),
            (format!("/s{b}/about"), None),
            (format!("/s{b}/:slug"), None),
            (format!("/s{b}/tag/:tag"), None),
            (format!("/s{b}/:slug/page/:n"), None),
            (format!("/s{b}/*rest"), None),
            (format!("/p{b}/:id"), None),
            (format!("/p{b}/:id/reviews"), None),
            (format!("/s{b}/:slug"), Some(format!("site{b}.example.com"))),
            ("/landing/:campaign".to_owned(), Some(format!("*.t{b}.example.com"))),
        ];
        for (path, host) in routes {
            let _ = write!(toml, "[[route]]\npath = \"{path}\"\nrevalidate = 60\n");
            if let Some(host) = host {
                let _ = writeln!(toml, "host = \"{host}\"");
            }
        }
    }
    let config = Config::from_toml_str(&toml).expect("the scaling benchmark's config is valid");
    assert_eq!(config.routes.rules().len(), blocks * BLOCK_ROUTES);
    config.routes
}

/// The requests of one `match_scaling` iteration against a table of `blocks` blocks: hits on the first, middle
/// and last block (static, `:param`, catch-all, host-specific, wildcard host) and a miss, each with the pattern
/// it must match (`None`: no route). Requests without a site of their own carry an unknown host, so they fall
/// through the host lookup to the host-less routes, as most of a shared instance's traffic would.
fn scaled_requests(blocks: usize) -> Vec<(String, String, Option<String>)> {
    let (first, mid, last) = (0, blocks / 2, blocks - 1);
    let www = "www.example.com".to_owned();
    vec![
        (
            www.clone(),
            format!("/s{first}/about"),
            Some(format!("/s{first}/about")),
        ),
        (
            www.clone(),
            format!("/s{first}/hello-world"),
            Some(format!("/s{first}/:slug")),
        ),
        (
            www.clone(),
            format!("/s{mid}/tag/rust"),
            Some(format!("/s{mid}/tag/:tag")),
        ),
        (
            www.clone(),
            format!("/p{mid}/42/reviews"),
            Some(format!("/p{mid}/:id/reviews")),
        ),
        (
            www.clone(),
            format!("/s{last}/post/page/3"),
            Some(format!("/s{last}/:slug/page/:n")),
        ),
        (
            www.clone(),
            format!("/s{last}/docs/guides/deploy"),
            Some(format!("/s{last}/*rest")),
        ),
        (
            format!("site{last}.example.com"),
            format!("/s{last}/hello"),
            Some(format!("/s{last}/:slug")),
        ),
        (
            format!("promo.t{mid}.example.com"),
            "/landing/spring".to_owned(),
            Some("/landing/:campaign".to_owned()),
        ),
        (www, "/wp-admin/setup-config.php".to_owned(), None),
    ]
}

fn match_scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_scaling");
    for routes in [10, 100, 1_000] {
        let blocks = routes / BLOCK_ROUTES;
        let table = scaled_table(blocks);
        let requests = scaled_requests(blocks);
        for (host, path, want) in &requests {
            let got = table.match_route(Some(host), path);
            assert_eq!(
                got.map(|(rule, _)| rule.pattern.as_str()),
                want.as_deref(),
                "{host}{path} must match {want:?}"
            );
        }
        group.bench_with_input(BenchmarkId::from_parameter(routes), &requests, |b, requests| {
            b.iter(|| {
                requests
                    .iter()
                    .filter(|(host, path, _)| table.match_route(Some(black_box(host)), black_box(path)).is_some())
                    .count()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, match_path, normalize, query_policy, cache_key, match_scaling);
criterion_main!(benches);
