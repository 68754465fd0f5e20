//! docs/codes.md and [`Code`] list the same diagnostic codes.
//!
//! The section "## Validation diagnostics" of docs/codes.md has one
//! "### `code`" entry per code; each entry holds the code's one-line meaning.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::collections::BTreeMap;
use std::path::Path;

use piflow_asl::Code;

const SECTION: &str = "## Validation diagnostics";

/// The entries of the section: code → the text of its entry.
fn documented() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/codes.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines().skip_while(|l| l.trim_end() != SECTION);
    assert!(
        lines.next().is_some(),
        "docs/codes.md has no section \"{SECTION}\""
    );
    let mut entries = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut finish = |entry: Option<(String, String)>| {
        if let Some((code, body)) = entry {
            let twice = entries.insert(code.clone(), body).is_some();
            assert!(!twice, "docs/codes.md lists `{code}` twice");
        }
    };
    for line in lines {
        // The next section of the same level ends this one.
        if line.starts_with("## ") {
            break;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            finish(current.take());
            let code = heading
                .trim()
                .strip_prefix('`')
                .and_then(|h| h.strip_suffix('`'))
                .unwrap_or_else(|| panic!("entry heading {heading:?} is not \"### `code`\""));
            current = Some((code.to_string(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push(' ');
            body.push_str(line.trim());
        }
    }
    finish(current);
    entries
}

#[test]
fn codes_md_lists_every_code_and_no_other() {
    let documented = documented();
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !documented.contains_key(*c))
        .collect();
    let unknown: Vec<&str> = documented
        .keys()
        .map(String::as_str)
        .filter(|d| d.parse::<Code>().is_err())
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/codes.md ({SECTION}) and Code::ALL differ:\n  not in the doc: {missing:?}\n  not in Code: {unknown:?}"
    );
}

#[test]
fn each_entry_gives_the_meaning() {
    let documented = documented();
    for code in Code::ALL {
        let Some(body) = documented.get(code.as_str()) else {
            continue; // reported by the other test
        };
        let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            body.contains(code.meaning()),
            "the entry `{code}` of docs/codes.md does not give its meaning {:?}",
            code.meaning()
        );
        for part in ["**Meaning:**", "**Example:**", "**Fix:**"] {
            assert!(
                body.contains(part),
                "the entry `{code}` of docs/codes.md has no {part}"
            );
        }
    }
}

#[test]
fn validation_md_points_at_codes_md_and_names_every_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/validation.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        text.contains("(codes.md)"),
        "docs/validation.md does not link codes.md"
    );
    for code in Code::ALL {
        assert!(
            text.contains(&format!("`{code}`")),
            "docs/validation.md does not name `{code}`"
        );
    }
}
