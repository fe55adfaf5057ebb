//! The architecture, checked from the source tree: no file in `src/` over [`MAX_FILE_LINES`],
//! no function over [`MAX_FN_LINES`], the lower layers import no upper one, and no two modules
//! import each other.
//!
//! The scanner is deliberately simple (no compiler involved): comments and the contents of
//! string and char literals are blanked, the rest is cut into tokens, `fn` items are measured
//! from their `fn` line to their closing brace by matching brackets, and imports are the
//! `crate::`, `super::` and `self::` paths (in `use` trees and inline). Test-only code, that is
//! items under `#[cfg(test)]` and the files of `#[cfg(test)] mod name;`, is left out of the
//! function and import checks: long property tests and what tests import say nothing about the
//! architecture. It still counts toward file length. `main.rs` is the binary crate: its paths
//! name the library from outside, so it is left out of the import graph.

mod imports;
mod source;
mod tokens;

use std::collections::BTreeSet;

use imports::{ImportGraph, cycles, paths, resolve};
use source::source_files;
use tokens::{blank_comments_and_literals, functions, strip_test_items, tokenize};

/// Longest a file in `src/` may be, in lines.
const MAX_FILE_LINES: usize = 400;
/// Files allowed past [`MAX_FILE_LINES`], each with its reason.
const LONG_FILES: &[(&str, &str)] = &[(
    "src/domain/buyer/tests/simulation.rs",
    "one property test's state machine (Sim and its step handlers): split, its steps would be \
     read in two places",
)];
/// Longest a function in `src/` may be, in lines from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 70;
/// Top-level modules that must not depend on the application built on them.
const LOWER_LAYERS: &[&str] = &["domain", "db"];
/// Top-level modules the lower layers must not import.
const UPPER_LAYERS: &[&str] = &["actors", "http", "cli", "startup", "config"];

#[test]
fn no_file_in_src_is_longer_than_the_limit() {
    let offenders: Vec<String> = source_files()
        .iter()
        .map(|file| (file, file.text.lines().count()))
        .filter(|(_, lines)| *lines > MAX_FILE_LINES)
        .filter(|(file, _)| !LONG_FILES.iter().any(|(path, _)| file.path.ends_with(path)))
        .map(|(file, lines)| format!("{}: {lines} lines", file.path))
        .collect();
    assert_none(&offenders, &format!("files over {MAX_FILE_LINES} lines"));
}

#[test]
fn no_function_in_src_is_longer_than_the_limit() {
    let mut offenders = Vec::new();
    for file in source_files().iter().filter(|f| !f.test_only) {
        for function in functions(&file.tokens) {
            if function.lines > MAX_FN_LINES {
                offenders.push(format!(
                    "{}:{} fn {}: {} lines",
                    file.path, function.line, function.name, function.lines
                ));
            }
        }
    }
    assert_none(&offenders, &format!("functions over {MAX_FN_LINES} lines"));
}

#[test]
fn the_lower_layers_import_no_upper_layer() {
    let graph = ImportGraph::of(&source_files());
    let offenders: Vec<String> = graph
        .top
        .iter()
        .filter(|((from, to), _)| {
            LOWER_LAYERS.contains(&from.as_str()) && UPPER_LAYERS.contains(&to.as_str())
        })
        .map(|((from, to), at)| format!("{from} -> {to} at {at}"))
        .collect();
    assert_none(
        &offenders,
        &format!("imports from {LOWER_LAYERS:?} of {UPPER_LAYERS:?}"),
    );
}

/// At the top level (`crate::x`), and between the modules of each folder (`crate::x::y`; the
/// folder's own `mod.rs` is left out, as its children reach its re-exports through it).
#[test]
fn no_two_modules_import_each_other() {
    let graph = ImportGraph::of(&source_files());
    let mut offenders = Vec::new();
    for edges in [&graph.top, &graph.nested] {
        for ((from, to), at) in edges {
            if from < to {
                if let Some(back) = edges.get(&(to.clone(), from.clone())) {
                    offenders.push(format!(
                        "{from} <-> {to}: {from} -> {to} at {at}, {to} -> {from} at {back}"
                    ));
                }
            }
        }
    }
    assert_none(&offenders, "modules importing each other");
}

#[test]
fn the_top_level_modules_import_each_other_in_no_cycle() {
    let graph = ImportGraph::of(&source_files());
    let offenders: Vec<String> = cycles(&graph.top)
        .into_iter()
        .map(|members| {
            let edges: Vec<String> = graph
                .top
                .iter()
                .filter(|((from, to), _)| members.contains(from) && members.contains(to))
                .map(|((from, to), at)| format!("{from} -> {to} ({at})"))
                .collect();
            format!("cycle among {members:?}: {}", edges.join(", "))
        })
        .collect();
    assert_none(&offenders, "import cycles between top-level modules");
}

/// The checks above would pass vacuously on a scanner that sees nothing: it must see through
/// comments and literals, measure what is there, cut out test code and expand `use` trees.
#[test]
fn the_scanner_measures_functions_and_resolves_imports_of_a_sample() {
    let sample = r###"
use crate::{db::{self, models::Row}, domain as d};
use super::mailbox::*;
// fn commented_out() {
/* a { block /* nested } */ comment */
trait Shape { fn area(&self) -> f64; }
fn outer<'a>(s: &'a str) -> [u8; 2] {
    let _ = ("}", '{', '\'', r#"" } "#, b'}');
    fn inner() {
        let _ = crate::metrics::Metrics::new();
    }
    [0; 2]
}
#[cfg(test)]
mod tests { fn a_long_test() { crate::http::x(); } }
#[cfg(test)] mod more_tests;
"###;
    let (tokens, test_modules) = strip_test_items(tokenize(&blank_comments_and_literals(sample)));
    assert_eq!(test_modules, ["more_tests"]);
    let measured: Vec<(String, usize, usize)> = functions(&tokens)
        .into_iter()
        .map(|f| (f.name, f.line, f.lines))
        .collect();
    assert_eq!(measured, [("outer".into(), 7, 7), ("inner".into(), 9, 3)]);
    let module = ["actors".to_string(), "buyer".to_string()];
    let imported: BTreeSet<String> = paths(&tokens)
        .into_iter()
        .filter_map(|(path, _)| resolve(&module, &path))
        .filter(|path| !path.is_empty())
        .map(|path| path.join("::"))
        .collect();
    let expected = [
        "actors::mailbox",
        "db",
        "db::models::Row",
        "domain",
        "metrics::Metrics::new",
    ];
    assert_eq!(imported, expected.into_iter().map(String::from).collect());
}

#[track_caller]
fn assert_none(offenders: &[String], what: &str) {
    assert!(
        offenders.is_empty(),
        "{what} ({}):\n  {}",
        offenders.len(),
        offenders.join("\n  ")
    );
}
