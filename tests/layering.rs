//! The layering the architecture map promises (docs/architecture.md): no two modules of a crate
//! import each other (an import circle), production code never imports the test reference, and
//! every folder of the `search` crate says what it holds in a `//!` header.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file (`train/step.rs` → `train::step`, `dist/mod.rs` → `dist`).
fn module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its tests and comments.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Module → the modules of the same crate it names (`crate::a::b`, `super::c`).
fn imports(crate_name: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = repo(&format!("crates/{crate_name}/src"));
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files.iter().map(|f| (module(&src, f), f.clone())).collect();
    let mut names: Vec<&String> = modules.keys().filter(|m| !m.is_empty()).collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = BTreeMap::new();
    for (m, file) in &modules {
        let text = code(file);
        let mut deps = BTreeSet::new();
        let mut named = |path: &str| {
            if let Some(n) = names.iter().find(|n| path == n.as_str() || path.starts_with(&format!("{n}::"))) {
                let related = m.starts_with(&format!("{n}::")) || n.starts_with(&format!("{m}::")) || *n == m;
                if !related {
                    deps.insert((*n).clone());
                }
            }
        };
        for piece in text.split("crate::").skip(1) {
            let path: String = piece.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            named(path.trim_end_matches(':'));
        }
        let parent: Vec<&str> = m.split("::").collect();
        for piece in text.split("super::").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let full = [&parent[..parent.len().saturating_sub(1)], &[name.as_str()]].concat().join("::");
            named(&full);
        }
        out.insert(m.clone(), deps);
    }
    out
}

#[test]
fn no_two_modules_import_each_other() {
    let mut circles = Vec::new();
    for crate_name in ["cell", "seg", "trellis", "search"] {
        let deps = imports(crate_name);
        for (a, of_a) in &deps {
            for b in of_a {
                if a < b && deps.get(b).is_some_and(|of_b| of_b.contains(a)) {
                    circles.push(format!("{crate_name}: {a} <-> {b}"));
                }
            }
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:?}");
}

#[test]
fn production_code_never_imports_the_test_reference() {
    let deps = imports("cell");
    let users: Vec<&String> =
        deps.iter().filter(|(m, d)| *m != "reference" && d.contains("reference")).map(|(m, _)| m).collect();
    assert!(users.is_empty(), "modules importing cell::reference: {users:?}");
}

#[test]
fn every_folder_of_the_search_crate_has_a_header() {
    for folder in ["train", "dist", "tasks", "deploy", "observe", "store", "deploy/export"] {
        let text = std::fs::read_to_string(repo(&format!("crates/search/src/{folder}/mod.rs"))).unwrap();
        assert!(text.starts_with("//!"), "{folder}/mod.rs has no //! header");
    }
}
