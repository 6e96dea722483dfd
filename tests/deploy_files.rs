//! The files under `deploy/` and the `Dockerfile`, checked as far as this machine can: the dashboard and the
//! alerting rules use only metrics a running proxy exports; the Kubernetes example parses and its parts agree
//! (config, ports, probes, token, mounts); the systemd unit and the Dockerfile have their hardening. The tools
//! that know these formats run in CI as well (`deploy/check.sh`: promtool, systemd-analyze).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::admin::spawn_admin;
use common::{TestOrigin, spawn_proxy_with};
use http::StatusCode;
use isr_proxy::Config;
use isr_proxy::config::Token;
use yaml_rust2::{Yaml, YamlLoader};

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|err| panic!("{}: {err}", full.display()))
}

/// Every `isr_…` metric name in `text` (PromQL expressions, or any text holding them).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("isr_") {
        let preceded = rest[..start].chars().next_back();
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// The PromQL expressions of the dashboard: every `expr` of every panel target, and the variables' queries.
fn dashboard_expressions() -> Vec<String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/isr-proxy.json")).expect("dashboard JSON");
    let mut exprs = Vec::new();
    let mut stack = vec![&dashboard];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr" | "definition", serde_json::Value::String(expr)) => exprs.push(expr.clone()),
                        _ => stack.push(value),
                    }
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    exprs
}

fn alert_rules() -> Vec<Yaml> {
    let docs = YamlLoader::load_from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml parses");
    let groups = docs[0]["groups"].as_vec().expect("groups");
    groups
        .iter()
        .flat_map(|group| group["rules"].as_vec().cloned().unwrap_or_default())
        .collect()
}

/// Sample names in a Prometheus scrape (`isr_requests_total`, `isr_origin_latency_seconds_bucket`, ...).
fn exported_samples(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Catches a dashboard panel or an alert that watches a metric isr-proxy does not export (a typo, a renamed
/// metric): it would show "no data" or never fire, silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_and_alert_rules_use_only_metrics_the_proxy_exports() {
    let origin = TestOrigin::new().start().await;
    // Redis configured but unreachable, so that `isr_redis_up` is exported (as 0).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let redis = format!("redis://{}", closed.local_addr().expect("address"));
    drop(closed);
    let config = format!(
        "[origin]\nurl = \"{{origin}}\"\n\n[cache.redis]\nurl = \"{redis}\"\n\n[[route]]\npath = \"/blog/:slug\"\nrevalidate = 60\n"
    );
    let proxy = spawn_proxy_with(&config, &origin, |config| {
        config.revalidate.token = Token::new("t");
    })
    .await;
    let admin = spawn_admin(&proxy).await;
    // Traffic that gives every family a sample (labelled families have none until first used).
    proxy.client.get("/blog/a").await;
    proxy.client.get("/elsewhere").await;
    let revalidated = proxy
        .client
        .post("/_isr/revalidate?tag=blog", "")
        .header("authorization", "Bearer t")
        .await;
    assert_eq!(revalidated.status, StatusCode::OK);
    let exported = exported_samples(&admin.client.get("/metrics").await.text);

    let dashboard = dashboard_expressions();
    assert!(
        dashboard.len() >= 20,
        "the dashboard's queries were found: {dashboard:?}"
    );
    let rules = alert_rules();
    assert!(rules.len() >= 5, "the alerting rules were found");
    let mut used: Vec<(String, String)> = Vec::new();
    for expr in &dashboard {
        used.extend(
            metric_names(expr)
                .into_iter()
                .map(|name| (name, "deploy/grafana/isr-proxy.json".to_owned())),
        );
    }
    for rule in &rules {
        let alert = rule["alert"].as_str().expect("every rule is an alert");
        let expr = rule["expr"].as_str().unwrap_or_else(|| panic!("{alert} has an expr"));
        used.extend(
            metric_names(expr)
                .into_iter()
                .map(|name| (name, format!("alert {alert}"))),
        );
    }
    let distinct: BTreeSet<&str> = used.iter().map(|(name, _)| name.as_str()).collect();
    assert!(distinct.len() >= 14, "{distinct:?}");
    for (name, user) in &used {
        assert!(
            exported.contains(name),
            "{user} uses {name}, which /metrics does not export: {exported:?}"
        );
    }
    for alert in [
        "IsrProxyOriginFailing",
        "IsrProxyRegenerationFailuresPilingUp",
        "IsrProxyHitRatioCollapsed",
        "IsrProxyRedisDown",
        "IsrProxyCacheAtMemoryBound",
    ] {
        assert!(
            rules.iter().any(|rule| rule["alert"].as_str() == Some(alert)),
            "{alert}"
        );
    }
}

fn by_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|doc| doc["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("a {kind}"))
}

fn port_of(listen: std::net::SocketAddr) -> i64 {
    i64::from(listen.port())
}

#[test]
fn kubernetes_sidecar_example_parts_agree() {
    let docs =
        YamlLoader::load_from_str(&read("deploy/kubernetes/isr-proxy-sidecar.yaml")).expect("the manifest parses");
    let config_map = by_kind(&docs, "ConfigMap");
    let toml = config_map["data"]["isr-proxy.toml"]
        .as_str()
        .expect("the config in the ConfigMap");
    let config = Config::from_toml_str(toml).unwrap_or_else(|err| panic!("the ConfigMap's config: {err}"));
    let admin_listen = config.admin.listen.expect("an admin listener for the probes");

    let secret = by_kind(&docs, "Secret");
    let token_key = isr_proxy::config::DEFAULT_TOKEN_ENV;
    assert!(
        secret["stringData"][token_key].as_str().is_some(),
        "the Secret holds {token_key}"
    );

    let pod = &by_kind(&docs, "Deployment")["spec"]["template"]["spec"];
    let containers = pod["containers"].as_vec().expect("containers");
    assert_eq!(containers.len(), 2, "the app and the sidecar");
    let sidecar = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("isr-proxy"))
        .expect("the isr-proxy container");
    let ports = sidecar["ports"].as_vec().expect("ports");
    let port = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("a port named {name}"))
    };
    assert_eq!(port("http"), port_of(config.listen), "the http port is `listen`");
    assert_eq!(
        port("admin"),
        port_of(admin_listen),
        "the admin port is `[admin] listen`"
    );
    assert!(
        !admin_listen.ip().is_loopback() && !config.listen.ip().is_loopback(),
        "reachable from the kubelet"
    );

    let env = sidecar["env"].as_vec().expect("env");
    let token = env
        .iter()
        .find(|e| e["name"].as_str() == Some(token_key))
        .expect("the token variable");
    let secret_ref = &token["valueFrom"]["secretKeyRef"];
    assert_eq!(secret_ref["name"].as_str(), secret["metadata"]["name"].as_str());
    assert_eq!(secret_ref["key"].as_str(), Some(token_key));

    for (probe, path) in [("readinessProbe", "/health"), ("livenessProbe", "/metrics")] {
        let get = &sidecar[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("admin"), "{probe} on the admin port");
    }
    let pre_stop = sidecar["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .expect("a preStop drain");
    let grace = pod["terminationGracePeriodSeconds"].as_i64().expect("a grace period");
    let drain = i64::try_from(config.server.shutdown_timeout.as_secs()).expect("seconds");
    assert!(
        grace > pre_stop + drain,
        "grace {grace} s covers preStop {pre_stop} s + drain {drain} s"
    );

    let args: Vec<&str> = sidecar["args"]
        .as_vec()
        .expect("args")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let config_path = args[args.iter().position(|a| *a == "--config").expect("--config") + 1];
    let mounts = sidecar["volumeMounts"].as_vec().expect("mounts");
    let mounted = |path: &str| {
        mounts.iter().any(|m| {
            m["mountPath"]
                .as_str()
                .is_some_and(|dir| Path::new(path).starts_with(dir))
        })
    };
    assert!(mounted(config_path), "{config_path} is mounted from the ConfigMap");
    let cache_dir = config
        .cache
        .disk
        .as_ref()
        .map(|d| d.dir.display().to_string())
        .expect("cache.dir");
    assert!(mounted(&cache_dir), "cache.dir {cache_dir} is a writable volume");
    assert_eq!(
        sidecar["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    let service = by_kind(&docs, "Service");
    let targets: Vec<&str> = service["spec"]["ports"]
        .as_vec()
        .expect("service ports")
        .iter()
        .filter_map(|p| p["targetPort"].as_str())
        .collect();
    assert_eq!(targets, ["http"], "the Service exposes the proxy, never the admin port");
}

#[test]
fn systemd_unit_is_hardened_and_reloads_with_sighup() {
    let unit = read("deploy/systemd/isr-proxy.service");
    let lines: BTreeSet<&str> = unit.lines().map(str::trim).collect();
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=isr-proxy",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "EnvironmentFile=/etc/isr-proxy/isr-proxy.env",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(lines.contains(line), "{line} in the unit");
    }
    let config = Config::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/isr-proxy.toml"))
        .unwrap_or_else(|err| panic!("the unit's config: {err}"));
    let dir = config.cache.disk.map(|d| d.dir).expect("cache.dir");
    assert_eq!(dir, Path::new("/var/lib/isr-proxy"), "cache.dir is the StateDirectory");
    assert!(read("deploy/systemd/isr-proxy.env").contains("\nISR_REVALIDATE_TOKEN="));
}

#[test]
fn dockerfile_builds_in_stages_and_runs_as_non_root_with_a_healthcheck() {
    let dockerfile = read("Dockerfile");
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].ends_with(" AS build"), "{}", stages[0]);
    assert!(dockerfile.contains("COPY --from=build "));
    let runtime = &dockerfile[dockerfile.rfind("\nFROM ").expect("a runtime stage")..];
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "USER {user}");
    let healthcheck = runtime
        .find("HEALTHCHECK")
        .map(|at| &runtime[at..])
        .expect("a HEALTHCHECK");
    assert!(
        healthcheck.contains(r#"CMD ["/usr/local/bin/isr-proxy", "health", "--admin-url", "http://127.0.0.1:9091"]"#),
        "the health check probes /health with the binary itself (no shell or curl in the image)"
    );
    assert!(!runtime.contains("cargo build") && dockerfile.contains("cargo build --release --locked"));
}

#[test]
fn the_top_level_license_states_the_dual_licence() {
    let license = read("LICENSE");
    assert!(license.contains("MIT OR Apache-2.0"));
    for file in ["LICENSE-MIT", "LICENSE-APACHE"] {
        assert!(license.contains(file), "points to {file}");
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(file).exists(),
            "{file} exists"
        );
    }
}
