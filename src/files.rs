//! Finding definition files (`piflow validate` walks directories); they
//! are read with `piflow_asl::file::read_text`.

use std::path::{Path, PathBuf};

/// Does this file name look like a definition (`*.json`, `*.yaml`, `*.yml`)?
pub fn is_definition_name(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Is it explicitly named as ASL (`*.asl.json`, `*.asl.yaml`, `*.asl.yml`)?
pub fn is_asl_name(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".asl.json") || name.ends_with(".asl.yaml") || name.ends_with(".asl.yml")
}

/// Expand the command-line paths: files as given, directories walked
/// recursively for definition files (sorted, hidden entries skipped).
/// A path that does not exist is returned as is, so that reading it reports it.
pub fn expand(paths: &[PathBuf]) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found);
            found.sort();
            out.extend(found.into_iter().map(|f| (f, true)));
        } else {
            out.push((p.clone(), false));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else if is_definition_name(&path) {
            out.push(path);
        }
    }
}
