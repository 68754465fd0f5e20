//! The ASL conformance corpus, for the tests that read it (shared by the
//! workspace's test targets through `#[path]`).
#![allow(dead_code)]

use std::path::PathBuf;

/// The conformance corpus directory: `PIFLOW_CONFORMANCE_DIR`, else
/// `../shared/conformance` beside the project root. `None` (with a visible
/// message) when it is absent.
pub fn conformance_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("PIFLOW_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        // `shared/conformance` beside the workspace root, found from any
        // crate of the workspace.
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| a.join("shared/conformance"))
            .find(|d| d.is_dir())
            .unwrap_or_else(|| PathBuf::from("../shared/conformance")),
    };
    if dir.join("cases").is_dir() && dir.join("invalid").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: the ASL conformance corpus is not at {} (set PIFLOW_CONFORMANCE_DIR)",
            dir.display()
        );
        None
    }
}

/// Every `*.json` file of a corpus sub-directory, parsed, sorted by name.
pub fn corpus_files(dir: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus directory is readable")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    for p in entries {
        let text = std::fs::read_to_string(&p).expect("corpus file is readable");
        let value: serde_json::Value = serde_json::from_str(&text).expect("corpus file is JSON");
        let name = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        out.push((name, value));
    }
    out
}
