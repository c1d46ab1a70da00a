//! The layering rule of docs/architecture.md, checked on the source: `lib.rs` declares the
//! modules bottom-up, and no module's non-test code names a module declared after it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `pub mod x;` lines of lib.rs, in order.
fn layers() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code before the first `#[cfg(test)]`, without comments: what the module itself uses.
fn non_test_code(text: &str) -> String {
    let body = text.split("#[cfg(test)]").next().unwrap_or("");
    body.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named as `crate::name` in `code`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `visitorflow_crate::`
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn every_import_points_down_the_layers() {
    let order = layers();
    assert!(order.len() > 10, "lib.rs lists the modules: {order:?}");
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut upward = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src()).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let Some(&own) = rank.get(top.as_str()) else {
            continue; // lib.rs, main.rs, bin/
        };
        // Test-only files (`#[cfg(test)] mod tests;`, `mod testutil;`) may reach anywhere.
        if rel
            .file_name()
            .is_some_and(|n| n == "tests.rs" || n == "testutil.rs")
        {
            continue;
        }
        let code = non_test_code(&std::fs::read_to_string(&file).unwrap());
        for name in crate_paths(&code) {
            if rank.get(name.as_str()).is_some_and(|&r| r > own) {
                upward.push(format!("{} imports {name}", rel.display()));
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports pointing up the layers of lib.rs:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    // The scan itself: a path to a module is found, a longer identifier is not.
    let code = non_test_code(
        "use crate::config::Config; // crate::run\nfn f() { other_crate::x(); }\n#[cfg(test)]\nuse crate::demo;",
    );
    assert_eq!(crate_paths(&code), vec!["config".to_owned()]);
}
