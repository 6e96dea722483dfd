use std::time::Duration;

use super::*;
use crate::route::{QueryPolicy, Revalidate};

const MINIMAL: &str = r#"
[origin]
url = "http://127.0.0.1:8080"
"#;

fn parse(extra: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(&format!("{MINIMAL}{extra}"))
}

fn error_text(extra: &str) -> String {
    match parse(extra) {
        Ok(_) => panic!("config should be rejected:\n{extra}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse("").expect("minimal config is valid");
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.origin.timeout, DEFAULT_ORIGIN_TIMEOUT);
    assert_eq!(config.cache.max_size, DEFAULT_MAX_SIZE);
    assert_eq!(config.revalidate.path, DEFAULT_REVALIDATE_PATH);
    assert!(config.routes.rules().is_empty());
}

#[test]
fn full_contract_parses() {
    let config = parse(
        r#"
[cache]
max_size = "64MiB"
max_entry_size = "1MiB"
retry_after = "2s"

[[route]]
path = "/blog/:slug"
revalidate = 60
query = ["page", "sort"]

[[route]]
path = "/news/*rest"
revalidate = "5m"
query = "keep"

[[route]]
path = "/about"
revalidate = false

[[route]]
path = "/api/*rest"
cache = false
"#,
    )
    .expect("valid config");
    assert_eq!(config.cache.max_size, 64 * 1024 * 1024);
    assert_eq!(config.cache.retry_after, Duration::from_secs(2));
    let rules = config.routes.rules();
    assert_eq!(rules[0].revalidate, Revalidate::After(Duration::from_secs(60)));
    assert_eq!(rules[0].query, QueryPolicy::Allow(vec!["page".into(), "sort".into()]));
    assert_eq!(rules[1].revalidate, Revalidate::After(Duration::from_secs(300)));
    assert_eq!(rules[1].query, QueryPolicy::Keep);
    assert_eq!(rules[2].revalidate, Revalidate::OnDemand);
    assert!(!rules[3].cache);
}

#[test]
fn bad_configs_name_the_key_and_line() {
    let cases: &[(&str, &[&str])] = &[
        ("[cache]\nmax_sise = \"1MiB\"\n", &["max_sise", "line 5"]),
        ("[cache]\nmax_size = \"lots\"\n", &["max_size", "bad size"]),
        ("[origin2]\n", &["origin2"]),
        (
            "[[route]]\npath = \"/a\"\nrevalidate = \"soon\"\n",
            &["revalidate", "bad duration", "line 6"],
        ),
        ("[[route]]\npath = \"/a\"\nrevalidate = true\n", &["revalidate"]),
        ("[[route]]\npath = \"/a\"\nrevalidate = 0\n", &["revalidate"]),
        (
            "[[route]]\npath = \"/a\"\nrevalidate = 1\nquery = \"all\"\n",
            &["query"],
        ),
        ("[[route]]\npath = \"/a\"\n", &["route[0].revalidate", "line 5"]),
        (
            "[[route]]\npath = \"/b/:slug\"\nrevalidate = 1\n\n[[route]]\npath = \"/b/:id\"\nrevalidate = 1\n",
            &["route[1].path", "line 9", "duplicates"],
        ),
        (
            "[[route]]\npath = \"nope\"\nrevalidate = 1\n",
            &["route[0].path", "start with '/'"],
        ),
        (
            "[[route]]\npath = \"/a\"\ncache = false\nrevalidate = 1\n",
            &["route[0].cache"],
        ),
        (
            "[cache]\nmax_size = \"1MiB\"\nmax_entry_size = \"2MiB\"\n",
            &["cache.max_entry_size"],
        ),
        ("listen = \"nowhere\"\n", &["listen"]),
        (
            "[[route]]\npath = \"/a\"\nrevalidate = \"origin\"\nnot_found_revalidate = 5\n",
            &["route[0].not_found_revalidate", "no effect", "origin"],
        ),
        (
            "[[route]]\npath = \"/a\"\nrevalidate = \"origin\"\norigin_cache_control = \"ignore\"\n",
            &["route[0].origin_cache_control", "no effect"],
        ),
    ];
    for (extra, needles) in cases {
        let text = error_text(extra);
        for needle in *needles {
            assert!(
                text.contains(needle),
                "error for\n{extra}\nshould mention {needle:?}; got:\n{text}"
            );
        }
    }
}

#[test]
fn bad_origin_urls_are_rejected() {
    for (url, needle) in [
        ("ftp://x", "https://"),
        ("https:///a", "bad origin url"),
        ("not a url", "bad origin url"),
        ("http://x/?a=1", "query"),
    ] {
        let err = Config::from_toml_str(&format!("[origin]\nurl = \"{url}\"\n"))
            .err()
            .unwrap_or_else(|| panic!("{url} must be rejected"))
            .to_string();
        assert!(err.contains("url") && err.contains(needle), "{url}: {err}");
    }
}

#[test]
fn https_origin_keys_are_checked_when_loaded() {
    let https = Config::from_toml_str("[origin]\nurl = \"https://app.internal:8443\"\ntls_server_name = \"app\"\n")
        .expect("https origins are accepted");
    assert_eq!(https.origin.url.scheme_str(), Some("https"));
    assert_eq!(https.origin.tls_server_name.as_deref(), Some("app"));
    assert_eq!(https.origin.host_header, HostHeader::Host);
    let dir = tempfile::tempdir().expect("temp dir");
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").expect("write");
    let cases = [
        ("url = \"http://a\"\nca_file = \"/x.pem\"\n", "origin.ca_file"),
        (
            "url = \"http://a\"\ntls_server_name = \"a\"\n",
            "origin.tls_server_name",
        ),
        (
            "url = \"https://a\"\ntls_server_name = \"a b\"\n",
            "origin.tls_server_name",
        ),
        (
            "url = \"https://a\"\nca_file = \"/nonexistent/ca.pem\"\n",
            "origin.ca_file",
        ),
        (
            &format!("url = \"https://a\"\nca_file = {:?}\n", not_pem.display().to_string()),
            "origin.ca_file",
        ),
        ("url = \"https://a\"\nhost_header = \"via\"\n", "host_header"),
    ];
    for (origin, key) in cases {
        let err = Config::from_toml_str(&format!("[origin]\n{origin}"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(key), "{origin:?} must be rejected naming {key}: {err:?}");
    }
}

#[test]
fn token_compares_exactly_and_never_prints() {
    let token = Token::new("s3cret").expect("non-empty");
    assert!(token.matches(b"s3cret"));
    assert!(!token.matches(b"s3cre"));
    assert!(!token.matches(b"s3cret!"));
    assert!(!token.matches(b""));
    assert!(Token::new("").is_none(), "an empty secret disables the endpoint");
    assert!(!format!("{token:?}").contains("s3cret"));
}

#[test]
fn redis_is_off_unless_configured_and_gets_defaults() {
    assert!(parse("").expect("valid").cache.redis.is_none());
    let config = parse("[cache.redis]\nurl = \"redis://127.0.0.1:6379/0\"\n").expect("valid");
    let redis = config.cache.redis.expect("redis configured");
    assert_eq!(redis.url, "redis://127.0.0.1:6379/0");
    assert_eq!(redis.key_prefix, DEFAULT_REDIS_KEY_PREFIX);
    assert_eq!(redis.lock_ttl, DEFAULT_REDIS_LOCK_TTL);
    assert_eq!(redis.timeout, DEFAULT_REDIS_TIMEOUT);
}

#[test]
fn redis_tls_and_cluster_settings_parse() {
    let tls = parse("[cache.redis]\nurl = \"rediss://redis.internal:6380/0\"\n").expect("rediss is accepted");
    assert_eq!(tls.cache.redis.expect("redis").cluster, None);
    let one = parse("[cache.redis]\nurl = \"redis://a:7000\"\ncluster = true\n").expect("cluster with a seed");
    assert_eq!(
        one.cache.redis.expect("redis").cluster,
        Some(vec!["redis://a:7000".to_owned()])
    );
    let seeds = parse("[cache.redis]\ncluster = [\"redis://a:7000\", \"redis://b:7000\"]\n").expect("seed list");
    let redis = seeds.cache.redis.expect("redis");
    assert_eq!(redis.url, "redis://a:7000", "the first seed is the url");
    assert_eq!(redis.cluster.map(|c| c.len()), Some(2));
}

#[test]
fn redis_errors_name_the_key() {
    let cases = [
        ("[cache.redis]\nurl = \"http://127.0.0.1\"\n", "cache.redis.url"),
        (
            "[cache.redis]\nurl = \"redis://h\"\nca_file = \"/x.pem\"\n",
            "cache.redis.ca_file",
        ),
        (
            "[cache.redis]\nurl = \"rediss://h\"\nca_file = \"/nonexistent.pem\"\n",
            "cache.redis.ca_file",
        ),
        (
            "[cache.redis]\nurl = \"rediss://h\"\nclient_cert = \"/c.pem\"\n",
            "cache.redis.client_key",
        ),
        (
            "[cache.redis]\nurl = \"redis+unix:///tmp/r.sock\"\ncluster = true\n",
            "cache.redis.cluster",
        ),
        (
            "[cache.redis]\nurl = \"rediss://a:1\"\ncluster = [\"redis://b:2\"]\n",
            "cache.redis.cluster",
        ),
        (
            "[cache.redis]\nurl = \"redis://a\"\ncluster = true\nkey_prefix = \"{x}\"\n",
            "cache.redis.key_prefix",
        ),
        ("[cache.redis]\ncluster = true\n", "cache.redis.url"),
        (
            "[cache.redis]\nurl = \"redis://h\"\nkey_prefix = \"a b\"\n",
            "cache.redis.key_prefix",
        ),
        (
            "[cache.redis]\nurl = \"redis://h\"\nlock_ttl = \"1s\"\n",
            "cache.redis.lock_ttl",
        ),
        (
            "[cache.redis]\nurl = \"redis://h\"\ntimeout = \"0s\"\n",
            "cache.redis.timeout",
        ),
        (
            "[cache.redis]\nurl = \"redis://h\"\ntimeout = \"40s\"\n",
            "cache.redis.timeout",
        ),
        ("[cache.redis]\nurl = \"redis://h\"\nlock = \"1s\"\n", "lock"),
        ("[cache.redis]\nkey_prefix = \"x\"\n", "url"),
    ];
    for (extra, key) in cases {
        let text = error_text(extra);
        assert!(text.contains(key), "error for {extra:?} should name {key}: {text}");
    }
}

#[test]
fn server_limits_and_admin_parse_with_safe_defaults() {
    let config = parse("").expect("minimal config is valid");
    assert_eq!(config.server.header_read_timeout, DEFAULT_HEADER_READ_TIMEOUT);
    assert_eq!(config.server.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    assert_eq!(config.server.max_header_size, DEFAULT_MAX_HEADER_SIZE);
    assert_eq!(config.server.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert!(config.admin.listen.is_none());

    let config = parse(
        "[server]\nheader_read_timeout = \"2s\"\nidle_timeout = 30\nmax_header_size = \"16KiB\"\nmax_connections = 10\n\
         [admin]\nlisten = \"127.0.0.1:9091\"\n",
    )
    .expect("valid limits");
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(2));
    assert_eq!(config.server.idle_timeout, Duration::from_secs(30));
    assert_eq!(config.server.max_header_size, 16 * 1024);
    assert_eq!(config.server.max_connections, 10);
    assert_eq!(
        config.admin.listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9091")
    );

    for (extra, key) in [
        ("[server]\nheader_read_timeout = 0\n", "server.header_read_timeout"),
        ("[server]\nidle_timeout = \"0s\"\n", "server.idle_timeout"),
        ("[server]\nmax_header_size = \"1KiB\"\n", "server.max_header_size"),
        ("[server]\nmax_connections = 0\n", "server.max_connections"),
        ("[server]\nmax_connections = 100000000\n", "server.max_connections"),
        ("[origin]\n", "origin"),
        ("[admin]\nlisten = \"localhost\"\n", "listen"),
        ("[admin]\nport = 1\n", "port"),
    ] {
        let text = if extra.starts_with("[origin]") {
            "[origin]\nurl = \"http://127.0.0.1:1\"\nmax_connections = 100000000\n".to_owned()
        } else {
            format!("{MINIMAL}{extra}")
        };
        let err = Config::from_toml_str(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(key), "{extra:?} must be rejected naming {key}: {err:?}");
    }
}
