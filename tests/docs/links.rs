//! Relative links and `#anchor`s: in the Markdown files, and `docs/….md#anchor` named in code and config files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use crate::{files, markdown_files, read, root, shown};

/// The anchor GitHub gives a heading: the text lowercased, spaces turned into `-`, and every character dropped
/// that is not a letter, a digit, `-` or `_` (github-slugger's rules).
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// What one Markdown file offers and points at.
struct MarkdownDoc {
    /// Heading anchors, a repeated heading getting `-1`, `-2`, … as on GitHub, plus explicit `id="…"` anchors.
    anchors: BTreeSet<String>,
    /// Link and image destinations, with their 1-based line.
    links: Vec<(String, usize)>,
}

fn parse_markdown(text: &str) -> MarkdownDoc {
    let line_of = |offset: usize| text[..offset].lines().count().max(1);
    let mut anchors = BTreeSet::new();
    let mut links = Vec::new();
    let mut heading: Option<String> = None;
    for (event, range) in Parser::new_ext(
        text,
        Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH,
    )
    .into_offset_iter()
    {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                let unique = (0..)
                    .map(|n| if n == 0 { base.clone() } else { format!("{base}-{n}") })
                    .find(|candidate| !anchors.contains(candidate))
                    .expect("an unused suffix exists");
                anchors.insert(unique);
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                links.push((dest_url.to_string(), line_of(range.start)));
            }
            Event::Html(html) | Event::InlineHtml(html) => {
                for attr in [" id=\"", " name=\""] {
                    let mut rest = &*html;
                    while let Some(at) = rest.find(attr) {
                        rest = &rest[at + attr.len()..];
                        if let Some(end) = rest.find('"') {
                            anchors.insert(rest[..end].to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    MarkdownDoc { anchors, links }
}

/// `base` joined with `relative`, with `.` and `..` resolved lexically (the target need not exist).
fn join_lexically(base: &Path, relative: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for part in base.join(relative).components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Why the link `dest`, written in `from`, points nowhere; `None` when it is fine. Links with a scheme (web
/// pages, mail) are not followed.
fn broken_link(from: &Path, dest: &str, docs: &BTreeMap<PathBuf, MarkdownDoc>) -> Option<String> {
    if dest.contains("://") || dest.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = dest.split_once('#').unwrap_or((dest, ""));
    let target = if path.is_empty() {
        from.to_path_buf()
    } else {
        join_lexically(from.parent().unwrap_or(root()), path)
    };
    if !target.starts_with(root()) {
        return Some(format!("{dest} leaves the repository"));
    }
    if !target.exists() {
        return Some(format!("{dest}: no such file {}", shown(&target)));
    }
    match docs.get(&target) {
        Some(doc) if !anchor.is_empty() && !doc.anchors.contains(anchor) => Some(format!(
            "{dest}: {} has no heading with the anchor #{anchor}",
            shown(&target)
        )),
        _ => None,
    }
}

fn markdown_docs() -> BTreeMap<PathBuf, MarkdownDoc> {
    markdown_files()
        .into_iter()
        .map(|path| {
            let doc = parse_markdown(&read(&path));
            (path, doc)
        })
        .collect()
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_points_somewhere() {
    let docs = markdown_docs();
    assert!(
        docs.contains_key(&root().join("README.md")) && docs.contains_key(&root().join("docs/configuration.md")),
        "README.md and docs/ must be found"
    );
    let broken: Vec<String> = docs
        .iter()
        .flat_map(|(path, doc)| {
            doc.links
                .iter()
                .filter_map(|(dest, line)| {
                    broken_link(path, dest, &docs).map(|why| format!("{}:{line}: {why}", shown(path)))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The `docs/….md#anchor` and `README.md#anchor` references in `text`: a path written in a comment or a message
/// for a person to follow.
fn doc_references(text: &str) -> Vec<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_-./#".contains(c);
    let mut refs = Vec::new();
    for (at, _) in text.match_indices(".md") {
        let start = text[..at].rfind(|c: char| !is_path_char(c)).map_or(0, |i| i + 1);
        let end = text[at..]
            .find(|c: char| !is_path_char(c))
            .map_or(text.len(), |i| at + i);
        let reference = text[start..end].trim_end_matches(['.', '#']).trim_start_matches("../");
        if reference.starts_with("docs/") || reference.starts_with("README.md") {
            refs.push(reference.to_owned());
        }
    }
    refs
}

#[test]
fn every_docs_reference_in_code_and_config_files_points_somewhere() {
    let docs = markdown_docs();
    let text_files = files(&|path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        ["rs", "toml", "sh", "yaml", "yml", "js", "mjs", "json", "service"].contains(&ext)
            || ["Dockerfile", "run"].contains(&name)
    });
    let this_dir = root().join("tests/docs");
    let mut broken = Vec::new();
    let mut checked = 0;
    for path in text_files.iter().filter(|p| !p.starts_with(&this_dir)) {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for reference in doc_references(&text) {
            checked += 1;
            if let Some(why) = broken_link(&root().join("README.md"), &reference, &docs) {
                broken.push(format!("{}: {why}", shown(path)));
            }
        }
    }
    assert!(
        checked > 0,
        "no docs/ reference found in the code: the scan itself is broken"
    );
    assert!(
        broken.is_empty(),
        "references to docs that point nowhere:\n{}",
        broken.join("\n")
    );
}

#[test]
fn headings_get_githubs_anchors_with_suffixes_for_repeats() {
    for (heading, anchor) in [
        (
            "Standards mode (`revalidate = \"origin\"`)",
            "standards-mode-revalidate--origin",
        ),
        ("Next.js and other frameworks", "nextjs-and-other-frameworks"),
        (
            "`[cache.redis]`: sharing between instances",
            "cacheredis-sharing-between-instances",
        ),
        (
            "Walkthrough: a page that stopped updating",
            "walkthrough-a-page-that-stopped-updating",
        ),
        ("Keep-last-good", "keep-last-good"),
        ("max_size and café", "max_size-and-café"),
    ] {
        assert_eq!(slug(heading), anchor, "anchor of {heading:?}");
    }
    let doc = parse_markdown("# Limits\n\n## Limits\n\n```sh\n# not a heading\n```\n\n## Limits\n");
    let expected: BTreeSet<String> = ["limits", "limits-1", "limits-2"].map(String::from).into();
    assert_eq!(
        doc.anchors, expected,
        "repeated headings get -1, -2; a `#` line in a code block is no heading"
    );
}
