//! The files under `src/`, each with its module path and its tokens outside test-only code.

use std::path::{Path, PathBuf};

use super::tokens::{Token, blank_comments_and_literals, strip_test_items, tokenize};

pub(super) struct SourceFile {
    /// Relative to the crate root: `src/actors/coordinator.rs`.
    pub(super) path: String,
    /// Its module: `["actors", "coordinator"]`; empty for `lib.rs`.
    pub(super) module: Vec<String>,
    pub(super) text: String,
    /// The tokens outside `#[cfg(test)]` items.
    pub(super) tokens: Vec<Token>,
    /// Part of a module declared `#[cfg(test)] mod name;`.
    pub(super) test_only: bool,
}

/// Every `.rs` file under `src/`, sorted by path.
pub(super) fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    collect_rs_files(&root.join("src"), &mut paths);
    paths.sort();
    let mut files = Vec::new();
    let mut test_modules: Vec<Vec<String>> = Vec::new();
    for path in paths {
        let relative = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
        let module = module_of(&relative);
        let (tokens, tests) = strip_test_items(tokenize(&blank_comments_and_literals(&text)));
        // `mod name;` in a.rs or a/mod.rs declares the module a::name, whichever file holds it.
        test_modules.extend(
            tests
                .into_iter()
                .map(|name| [module.clone(), vec![name]].concat()),
        );
        files.push(SourceFile {
            path: relative,
            module,
            text,
            tokens,
            test_only: false,
        });
    }
    for file in &mut files {
        file.test_only = test_modules.iter().any(|m| file.module.starts_with(m));
    }
    files
}

fn collect_rs_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` (and `main.rs`) the crate root.
fn module_of(path: &str) -> Vec<String> {
    let inner = path
        .strip_prefix("src/")
        .unwrap()
        .strip_suffix(".rs")
        .unwrap();
    let mut module: Vec<String> = inner.split('/').map(str::to_string).collect();
    if matches!(module.as_slice(), [only] if only == "lib" || only == "main")
        || module.last().is_some_and(|last| last == "mod")
    {
        module.pop();
    }
    module
}
