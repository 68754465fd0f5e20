//! Reading a definition file: UTF-8 text under [`MAX_SOURCE_BYTES`].
//!
//! The only file system access of this crate, and only of the path the
//! caller hands it.

use std::path::Path;

use crate::source::MAX_SOURCE_BYTES;

/// Why a definition file could not be read.
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

impl ReadError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        ("unreadable", "the definition file cannot be read"),
        ("not-utf8", "the definition file is not UTF-8 text"),
        ("too-large", "the definition file is over the size limit"),
    ];

    /// The stable code: `unreadable`, `not-utf8` or `too-large`.
    pub fn code(&self) -> &'static str {
        match self {
            ReadError::Io { .. } => "unreadable",
            ReadError::NotUtf8 { .. } => "not-utf8",
            ReadError::TooLarge { .. } => "too-large",
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_and_refuses_the_rest() {
        let dir = std::env::temp_dir().join(format!("piflow-asl-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.json");
        std::fs::write(&ok, "{}").unwrap();
        assert_eq!(read_text(&ok).unwrap(), "{}");
        let bad = dir.join("bad.json");
        std::fs::write(&bad, [b'{', 0xff, b'}']).unwrap();
        let e = read_text(&bad).unwrap_err();
        assert_eq!(e.code(), "not-utf8");
        assert!(e.to_string().contains("offset 1"), "{e}");
        let e = read_text(&dir.join("missing.json")).unwrap_err();
        assert_eq!(e.code(), "unreadable");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
