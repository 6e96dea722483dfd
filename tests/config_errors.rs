//! `isr-proxy check --config FILE`: a bad file exits non-zero naming the key; a good one prints the route table.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Writes `text` to a file of its own under the temp dir, runs `isr-proxy check` on it, and removes it.
fn check(name: &str, text: &str) -> Output {
    let path: PathBuf = std::env::temp_dir().join(format!("isr-proxy-test-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write temp config");
    let output = Command::new(env!("CARGO_BIN_EXE_isr-proxy"))
        .args(["check", "--config"])
        .arg(&path)
        .env("RUST_LOG", "off")
        .output()
        .expect("run isr-proxy");
    let _ = std::fs::remove_file(&path);
    output
}

const ORIGIN: &str = "[origin]\nurl = \"http://127.0.0.1:8080\"\n";

#[test]
fn bad_config_files_exit_non_zero_and_name_the_key() {
    let cases = [
        (
            "unknown-key",
            format!("{ORIGIN}[cache]\nmax_sise = \"1MiB\"\n"),
            vec!["max_sise"],
        ),
        (
            "bad-duration",
            "[origin]\nurl = \"http://127.0.0.1:8080\"\ntimeout = \"soon\"\n".to_owned(),
            vec!["timeout", "bad duration"],
        ),
        (
            "bad-route-duration",
            format!("{ORIGIN}[[route]]\npath = \"/a\"\nrevalidate = \"often\"\n"),
            vec!["revalidate", "bad duration"],
        ),
        (
            "duplicate-route",
            format!(
                "{ORIGIN}[[route]]\npath = \"/blog/:slug\"\nrevalidate = 60\n\n[[route]]\npath = \"/blog/:id\"\nrevalidate = 60\n"
            ),
            vec!["route[1].path", "/blog/:id", "/blog/:slug"],
        ),
        (
            "bad-origin-url",
            "[origin]\nurl = \"ftp://example.com\"\n".to_owned(),
            vec!["url", "http://"],
        ),
        (
            "missing-origin",
            "[[route]]\npath = \"/a\"\nrevalidate = 60\n".to_owned(),
            vec!["origin"],
        ),
    ];
    for (name, text, needles) in cases {
        let output = check(name, &text);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}: must be rejected\n{text}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{name}: stderr must name {needle:?}, got:\n{stderr}"
            );
        }
    }
}

#[test]
fn good_config_file_exits_zero_and_prints_the_route_table() {
    let text = format!(
        "{ORIGIN}\n[[route]]\npath = \"/blog/:slug\"\nrevalidate = \"5m\"\nquery = [\"page\"]\n\n\
         [[route]]\npath = \"/about\"\nrevalidate = false\n\n[[route]]\npath = \"/api/*rest\"\ncache = false\n"
    );
    let output = check("good", &text);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "a valid file passes: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": ok"), "{stdout}");
    for expected in [
        "/blog/:slug",
        "5m",
        "/about",
        "on demand",
        "/api/*rest",
        "pass-through",
        "http://127.0.0.1:8080",
    ] {
        assert!(
            stdout.contains(expected),
            "route table must show {expected:?}:\n{stdout}"
        );
    }
}
