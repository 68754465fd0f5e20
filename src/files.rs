//! Finding and reading definition files.

use std::path::{Path, PathBuf};

use piflow_asl::source::MAX_SOURCE_BYTES;

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

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { path: String, offset: usize },
    #[error("{path} is {size} bytes; piflow reads definitions up to {limit} bytes")]
    TooLarge {
        path: String,
        size: u64,
        limit: usize,
    },
}

/// Read a definition file as UTF-8 text, refusing files over the size limit.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| ReadError::Io {
        path: shown.clone(),
        source,
    })?;
    if meta.len() > MAX_SOURCE_BYTES as u64 {
        return Err(ReadError::TooLarge {
            path: shown,
            size: meta.len(),
            limit: MAX_SOURCE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: shown.clone(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8 {
        path: shown,
        offset: e.utf8_error().valid_up_to(),
    })
}
