//! The docs stay honest: every relative link and `#anchor` in the Markdown files (README.md, docs/) points at a
//! file and a heading that exist, and so does every `docs/….md#anchor` named in the code and config files; every
//! config key the parser accepts is documented in docs/configuration.md and in config.example.toml, and neither
//! documents a key the parser refuses.
//!
//! The accepted keys come from the parser itself, not from a list kept by hand: every raw config struct is
//! `deny_unknown_fields`, so a table given an unknown key answers with serde's "unknown field `…`, expected one of
//! `a`, `b`, …", which names exactly the fields that table accepts. Asking each of those fields the same question
//! finds the tables inside it, down to the leaves.

mod config_keys;
mod links;

use std::path::{Path, PathBuf};

/// Directories never searched for docs or for references to them (dependencies, build output, the Next.js app's
/// generated files).
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", ".git", ".next"];

pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every file under the repository root whose name passes `wanted`, sorted, skipping [`SKIPPED_DIRS`].
pub(crate) fn files(wanted: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() {
                if !SKIPPED_DIRS.contains(&name) {
                    dirs.push(path);
                }
            } else if wanted(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

pub(crate) fn markdown_files() -> Vec<PathBuf> {
    files(&|path| path.extension().is_some_and(|ext| ext == "md"))
}

/// `path` relative to the repository root, for messages.
pub(crate) fn shown(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}
