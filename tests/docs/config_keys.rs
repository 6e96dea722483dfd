//! Config keys: the parser's, docs/configuration.md's and config.example.toml's must be the same set.

use std::collections::{BTreeMap, BTreeSet};

use isr_proxy::Config;
use isr_proxy::config::ConfigError;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use crate::{read, root, shown};

/// A key no table accepts: what the probes send to make the parser list the keys it does accept.
const PROBE: &str = "__isr_docs_probe";

/// One step of a probe's path: a table, or an array of tables (`[[route]]`).
#[derive(Clone)]
struct Step {
    name: String,
    array: bool,
}

/// The keys the table at `path` accepts, as the parser lists them when given [`PROBE`]; `None` when the value
/// at `path` is not a table (the parser then fails on the value's type instead).
fn table_keys(path: &[Step]) -> Option<Vec<String>> {
    let mut value = format!("{{ {PROBE} = 1 }}");
    for step in path.iter().skip(1).rev() {
        let inner = if step.array { format!("[{value}]") } else { value };
        value = format!("{{ {} = {inner} }}", step.name);
    }
    let doc = match path.first() {
        None => format!("{PROBE} = 1"),
        Some(first) if first.array => format!("{} = [{value}]", first.name),
        Some(first) => format!("{} = {value}", first.name),
    };
    let message = match Config::from_toml_str(&doc) {
        Err(ConfigError::Parse { error, .. }) => error.message().to_owned(),
        _ => return None,
    };
    let expected = message.strip_prefix(&format!("unknown field `{PROBE}`, "))?;
    if expected.contains("there are no fields") {
        return Some(Vec::new());
    }
    let expected = expected.strip_prefix("expected ")?;
    Some(expected.split('`').skip(1).step_by(2).map(str::to_owned).collect())
}

/// Every key `Config::from_toml_str` accepts, dotted (`cache.redis.url`, `route.path`), found by probing.
fn accepted_keys() -> BTreeSet<String> {
    fn walk(path: &mut Vec<Step>, out: &mut BTreeSet<String>) {
        let keys = table_keys(path).unwrap_or_else(|| panic!("the probe of `{}` found no table", dotted(path, "")));
        for name in keys {
            let nested = [false, true]
                .into_iter()
                .map(|array| Step {
                    name: name.clone(),
                    array,
                })
                .find(|step| {
                    path.push(step.clone());
                    let is_table = table_keys(path).is_some();
                    path.pop();
                    is_table
                });
            match nested {
                Some(step) => {
                    path.push(step);
                    walk(path, out);
                    path.pop();
                }
                None => {
                    out.insert(dotted(path, &name));
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&mut Vec::new(), &mut out);
    out
}

/// `path` and then `last` as a dotted key.
fn dotted(path: &[Step], last: &str) -> String {
    path.iter()
        .map(|step| step.name.as_str())
        .chain(Some(last).filter(|l| !l.is_empty()))
        .collect::<Vec<_>>()
        .join(".")
}

/// A documented key as [`accepted_keys`] spells it: `[[route]] host` is `route.host`.
fn dotted_key(written: &str) -> String {
    match written.strip_prefix("[[").and_then(|rest| rest.split_once("]] ")) {
        Some((table, key)) => format!("{table}.{key}"),
        None => written.to_owned(),
    }
}

/// The keys in the first column of the tables of docs/configuration.md whose first column is headed `Key`, with
/// the line of each.
fn configuration_md_keys() -> Vec<(String, usize)> {
    let text = read(&root().join("docs/configuration.md"));
    let line_of = |offset: usize| text[..offset].lines().count().max(1);
    let (mut in_head, mut column, mut key_table) = (false, 0, false);
    let mut keys = Vec::new();
    for (event, range) in Parser::new_ext(&text, Options::ENABLE_TABLES).into_offset_iter() {
        match event {
            Event::Start(Tag::Table(_)) => key_table = false,
            Event::Start(Tag::TableHead) => (in_head, column) = (true, 0),
            Event::End(TagEnd::TableHead) => in_head = false,
            Event::Start(Tag::TableRow) => column = 0,
            Event::End(TagEnd::TableCell) => column += 1,
            Event::Text(t) if in_head && column == 0 => key_table = t.trim() == "Key",
            Event::Code(code) if key_table && !in_head && column == 0 => {
                keys.push((dotted_key(&code), line_of(range.start)));
            }
            _ => {}
        }
    }
    keys
}

/// Whether a commented-out line of config.example.toml (without its `# `) is a setting: `key = value` or a
/// `[table]` header.
fn is_commented_setting(line: &str) -> bool {
    line.starts_with('[')
        || line
            .split_once(" = ")
            .is_some_and(|(key, _)| !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

/// The keys config.example.toml sets, or shows commented out (`# key = value`, also under a commented
/// `# [table]`): the file with those lines uncommented, read as TOML.
fn example_keys() -> BTreeSet<String> {
    fn collect(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match value {
                toml::Value::Table(inner) => collect(&key, inner, out),
                toml::Value::Array(items) if !items.is_empty() && items.iter().all(toml::Value::is_table) => {
                    for item in items.iter().filter_map(toml::Value::as_table) {
                        collect(&key, item, out);
                    }
                }
                _ => {
                    out.insert(key);
                }
            }
        }
    }
    let text = read(&root().join("config.example.toml"));
    let uncommented: Vec<&str> = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(setting) if is_commented_setting(setting) => setting,
            _ => line,
        })
        .collect();
    let table: toml::Table = uncommented.join("\n").parse().unwrap_or_else(|err| {
        panic!("config.example.toml with its `# key = value` lines uncommented is not valid TOML: {err}")
    });
    let mut out = BTreeSet::new();
    collect("", &table, &mut out);
    out
}

#[test]
fn every_config_key_the_parser_accepts_is_documented_and_no_other() {
    let accepted = accepted_keys();
    assert!(
        ["listen", "origin.url", "cache.redis.url", "route.path"]
            .iter()
            .all(|key| accepted.contains(*key)),
        "probing the parser found {accepted:?}: the probe itself is broken"
    );
    let mut problems = Vec::new();
    let mut documented = BTreeMap::new();
    for (key, line) in configuration_md_keys() {
        if let Some(first) = documented.insert(key.clone(), line) {
            problems.push(format!(
                "docs/configuration.md:{line}: `{key}` is documented twice (first on line {first})"
            ));
        }
    }
    for key in accepted.iter().filter(|key| !documented.contains_key(*key)) {
        problems.push(format!(
            "`{key}` is accepted by the parser but has no row in a table of docs/configuration.md"
        ));
    }
    for (key, line) in documented.iter().filter(|(key, _)| !accepted.contains(*key)) {
        problems.push(format!(
            "docs/configuration.md:{line}: `{key}` is documented but the parser refuses it"
        ));
    }
    let example = example_keys();
    for key in accepted.difference(&example) {
        problems.push(format!(
            "`{key}` is accepted by the parser but config.example.toml does not show it (`key = value` in its \
             table, or commented out as `# key = value`)"
        ));
    }
    for key in example.difference(&accepted) {
        problems.push(format!("config.example.toml shows `{key}`, which the parser refuses"));
    }
    assert!(
        problems.is_empty(),
        "config keys and their docs disagree:\n{}",
        problems.join("\n")
    );
}

#[test]
fn config_example_loads_as_shipped() {
    let path = root().join("config.example.toml");
    if let Err(err) = Config::load(&path) {
        panic!("{}: {err}", shown(&path));
    }
}
