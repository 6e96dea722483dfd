//! Property tests over inputs a client or an operator controls: request-path normalisation and the config
//! parser. Neither may panic on anything; normalisation must be idempotent and never climb above the root.

use isr_proxy::Config;
use isr_proxy::route::{PathError, normalize_path};
use proptest::prelude::*;

/// Path-like strings: segments of dots, letters, escapes (valid, invalid, of reserved and non-ASCII bytes) and
/// raw non-ASCII, joined by one or more slashes.
fn path_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E%2e".to_owned()),
        Just("%2F".to_owned()),
        Just("%2f".to_owned()),
        Just("%25".to_owned()),
        Just("%C3%A9".to_owned()),
        Just("%FF".to_owned()),
        Just("%".to_owned()),
        Just("%4".to_owned()),
        Just("\u{e9}".to_owned()),
        "[a-zA-Z0-9_~-]{1,4}",
        "%[0-9a-fA-F]{2}",
    ];
    let segment = prop::collection::vec(piece, 0..4).prop_map(|pieces| pieces.concat());
    let slashes = prop_oneof![Just("/"), Just("/"), Just("//")];
    prop::collection::vec((slashes, segment), 1..8).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(slash, segment)| format!("{slash}{segment}"))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn normalisation_is_idempotent_and_stays_under_the_root(path in path_like()) {
        let Ok(once) = normalize_path(&path) else { return Ok(()) };
        prop_assert!(once.starts_with('/'), "{path:?} → {once:?}");
        let twice = normalize_path(&once);
        prop_assert_eq!(twice.as_deref(), Ok(once.as_ref()), "normalising {:?} twice changed it", path);
        for segment in once.split('/') {
            prop_assert!(segment != "." && segment != "..", "{path:?} → {once:?} keeps a dot segment");
        }
        prop_assert!(!once.contains("//"), "{path:?} → {once:?}");
        prop_assert!(once.is_ascii(), "{path:?} → {once:?} must be a valid URI path");
    }

    #[test]
    fn normalisation_never_panics(path in any::<String>()) {
        let _ = normalize_path(&path);
        let _ = normalize_path(&format!("/{path}"));
    }

    #[test]
    fn climbing_above_the_root_is_always_refused(depth in 1usize..5, rest in "[a-z]{0,6}") {
        let path = format!("/{}{rest}", "../".repeat(depth));
        prop_assert_eq!(normalize_path(&path).map(|p| p.into_owned()), Err(PathError::EscapesRoot));
        let encoded = format!("/a/{}{rest}", "%2e%2E/".repeat(depth + 1));
        prop_assert_eq!(normalize_path(&encoded).map(|p| p.into_owned()), Err(PathError::EscapesRoot));
    }

    #[test]
    fn the_config_parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = Config::from_toml_str(&text);
    }

    #[test]
    fn the_config_parser_never_panics_on_plausible_files(file in config_like()) {
        let _ = Config::from_toml_str(&file);
    }
}

/// TOML files made of the real sections and keys with values of every shape, so the validator (not only the TOML
/// parser) runs on odd input: zero, negative and huge numbers, empty and odd strings, wrong types.
fn config_like() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("1".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("\"\"".to_owned()),
        Just("\"0s\"".to_owned()),
        Just("\"10s\"".to_owned()),
        Just("\"1KiB\"".to_owned()),
        Just("\"18446744073709551615 EiB\"".to_owned()),
        Just("\"origin\"".to_owned()),
        Just("\"/\"".to_owned()),
        Just("\"/a/:b\"".to_owned()),
        Just("\"/*r\"".to_owned()),
        Just("\"127.0.0.1:0\"".to_owned()),
        Just("[\"/a\", \"b\"]".to_owned()),
        Just("{}".to_owned()),
        "\"[ -~\u{e9}]{0,12}\"",
    ];
    let keys: [(&str, &[&str]); 7] = [
        (
            "[origin]\nurl = \"http://127.0.0.1:1\"",
            &["timeout", "max_connections", "queue_timeout", "not_found_page"],
        ),
        (
            "[cache]",
            &[
                "max_size",
                "max_entry_size",
                "retry_after",
                "compress",
                "expire",
                "dir",
                "namespace",
                "keep_namespaces",
            ],
        ),
        (
            "[server]",
            &[
                "shutdown_timeout",
                "header_read_timeout",
                "idle_timeout",
                "max_header_size",
                "max_connections",
            ],
        ),
        ("[revalidate]", &["path", "token_env", "tags_header"]),
        ("[prerender]", &["paths_url", "concurrency", "wait"]),
        ("[admin]", &["listen"]),
        (
            "[[route]]",
            &[
                "path",
                "revalidate",
                "not_found_revalidate",
                "expire",
                "query",
                "fallback",
                "fallback_page",
                "prerender",
                "cache",
                "origin_cache_control",
            ],
        ),
    ];
    let section = (0..keys.len()).prop_flat_map(move |i| {
        let (header, names) = keys[i];
        prop::collection::vec((prop::sample::select(names.to_vec()), value.clone()), 0..5).prop_map(move |pairs| {
            let mut text = format!("{header}\n");
            let mut seen = std::collections::HashSet::new();
            for (name, value) in pairs {
                if seen.insert(name) {
                    text.push_str(&format!("{name} = {value}\n"));
                }
            }
            text
        })
    });
    prop::collection::vec(section, 1..6).prop_map(|sections| sections.concat())
}
