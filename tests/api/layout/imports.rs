//! The import graph: every `crate::`, `super::` and `self::` path resolved to the module it
//! names, at the top level and within each folder module.

use std::collections::{BTreeMap, BTreeSet};

use super::source::SourceFile;
use super::tokens::{Token, is_ident};

/// Who imports whom, each edge with the first place it is seen (`src/x.rs:12`).
pub(super) struct ImportGraph {
    /// Between top-level modules: `("db", "domain")`.
    pub(super) top: BTreeMap<(String, String), String>,
    /// Between modules of one folder: `("actors::buyer", "actors::coordinator")`.
    pub(super) nested: BTreeMap<(String, String), String>,
}

impl ImportGraph {
    pub(super) fn of(files: &[SourceFile]) -> ImportGraph {
        let mut graph = ImportGraph {
            top: BTreeMap::new(),
            nested: BTreeMap::new(),
        };
        let modules: BTreeSet<&[String]> = files.iter().map(|f| f.module.as_slice()).collect();
        let is_module = |path: &[String]| modules.contains(path);
        for file in files
            .iter()
            .filter(|f| !f.test_only && f.path != "src/main.rs")
        {
            let [from_top, from_rest @ ..] = file.module.as_slice() else {
                continue;
            };
            for (path, line) in paths(&file.tokens) {
                let Some(to) = resolve(&file.module, &path) else {
                    continue;
                };
                let at = || format!("{}:{line}", file.path);
                let [to_top, to_rest @ ..] = to.as_slice() else {
                    continue;
                };
                if to_top != from_top && is_module(&to[..1]) {
                    graph
                        .top
                        .entry((from_top.clone(), to_top.clone()))
                        .or_insert_with(at);
                }
                if let (Some(from_sub), Some(to_sub)) = (from_rest.first(), to_rest.first()) {
                    if to_top == from_top && to_sub != from_sub && is_module(&to[..2]) {
                        let edge = (
                            format!("{from_top}::{from_sub}"),
                            format!("{to_top}::{to_sub}"),
                        );
                        graph.nested.entry(edge).or_insert_with(at);
                    }
                }
            }
        }
        graph
    }
}

/// Every path starting with `crate`, `super` or `self`, in `use` trees (expanded) and inline.
pub(super) fn paths(tokens: &[Token]) -> Vec<(Vec<String>, usize)> {
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if token.text == "use" {
            use_tree(tokens, &mut (i + 1), &[], &mut found);
        } else if matches!(token.text.as_str(), "crate" | "super" | "self")
            && tokens.get(i + 1).is_some_and(|t| t.text == "::")
            && (i == 0 || tokens[i - 1].text != "::")
        {
            let mut path = vec![token.text.clone()];
            let mut k = i + 1;
            while tokens.get(k).is_some_and(|t| t.text == "::")
                && tokens.get(k + 1).is_some_and(|t| is_ident(&t.text))
            {
                path.push(tokens[k + 1].text.clone());
                k += 2;
            }
            found.push((path, token.line));
        }
    }
    found
}

/// The paths of the `use` tree at `*i`: `crate::{a::b, c}` gives `crate::a::b` and `crate::c`.
fn use_tree(
    tokens: &[Token],
    i: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let mut path = prefix.to_vec();
    while let Some(token) = tokens.get(*i) {
        match token.text.as_str() {
            "::" => *i += 1,
            "as" => *i += 2,
            "{" => {
                *i += 1;
                while tokens
                    .get(*i)
                    .is_some_and(|t| !matches!(t.text.as_str(), "}" | ";"))
                {
                    let before = *i;
                    use_tree(tokens, i, &path, out);
                    if *i == before || tokens[*i].text == "," {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            text if is_ident(text) => {
                path.push(text.to_string());
                *i += 1;
            }
            _ => break, // `*`, `,`, `}`, `;`
        }
    }
    if path.len() > prefix.len() || tokens.get(*i).is_some_and(|t| t.text == "*") {
        out.push((path, tokens.get(*i).map_or(0, |t| t.line)));
    }
}

/// The absolute path `path` names from inside `module`; None for paths into other crates.
pub(super) fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut resolved = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module[..module.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    for segment in &path[1..] {
        match segment.as_str() {
            "super" => {
                resolved.pop()?;
            }
            "self" => {}
            name => resolved.push(name.to_string()),
        }
    }
    Some(resolved)
}

/// The sets of two or more modules that reach each other through imports.
pub(super) fn cycles(edges: &BTreeMap<(String, String), String>) -> Vec<BTreeSet<String>> {
    let reach = |from: &String| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![from.clone()]);
        while let Some(node) = todo.pop() {
            for ((_, to), _) in edges
                .range((node.clone(), String::new())..)
                .take_while(|((f, _), _)| *f == node)
            {
                if seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let nodes: BTreeSet<&String> = edges.keys().map(|(from, _)| from).collect();
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for (node, reached) in &reaches {
        let members: BTreeSet<String> = reached
            .iter()
            .filter(|other| reaches.get(other).is_some_and(|back| back.contains(*node)))
            .cloned()
            .collect();
        if members.len() > 1 && !found.contains(&members) {
            found.push(members);
        }
    }
    found
}
