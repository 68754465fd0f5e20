//! Data-driven validator tests.
//!
//! `tests/data/validate/` holds small definitions (`*.asl.json`,
//! `*.asl.yaml`); beside each, `NAME.expected` lists the diagnostics the
//! validator must report, one a line:
//!
//! ```text
//! severity code pointer line:col message
//! ```
//!
//! (the root pointer is written `(root)`, a missing position `-`, and control
//! characters in a pointer or message as `\n`, `\t`, `\r` or `\u{..}`). Definitions under `express/` are validated as EXPRESS
//! state machines, all others as STANDARD.
//!
//! Run with `UPDATE_EXPECT=1` to rewrite the expected files from what the
//! validator reports now, then read the diff: an expected file is a claim
//! that the output is right.
//!
//! A definition `NAME.asl.yaml` with `NAME.input.json` (and
//! `NAME.output.json`) beside it is type-checked against those schemas, as
//! `piflow validate` does with a workflow's `schemas/`.
//!
//! The test also fails when a diagnostic code of [`Code::ALL`] is reported by
//! no data file, or when an `.expected` file has no definition beside it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use piflow_asl::{
    Code, Diagnostic, Format, LoadOptions, MachineType, Schemas, validate_bytes, validate_text_with,
};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/validate")
}

fn is_definition(path: &Path) -> bool {
    let name = path.to_string_lossy();
    [".asl.json", ".asl.yaml", ".asl.yml"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Every file under `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `a/b.asl.json`, with `/` on every platform.
fn relative(path: &Path) -> String {
    path.strip_prefix(data_dir())
        .unwrap()
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn expected_path(definition: &Path) -> PathBuf {
    let mut name = definition.as_os_str().to_owned();
    name.push(".expected");
    PathBuf::from(name)
}

/// Control characters made visible, so that each diagnostic is one line.
fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

fn render(d: &Diagnostic) -> String {
    let pointer = if d.pointer.is_empty() {
        "(root)".to_string()
    } else {
        visible(&d.pointer)
    };
    let position = match (d.line, d.column) {
        (Some(l), Some(c)) => format!("{l}:{c}"),
        _ => "-".to_string(),
    };
    format!(
        "{} {} {} {} {}\n",
        d.severity,
        d.code,
        pointer,
        position,
        visible(&d.message)
    )
}

fn validate(path: &Path) -> Vec<Diagnostic> {
    let name = relative(path);
    let bytes = std::fs::read(path).unwrap();
    let machine_type = if name.starts_with("express/") {
        MachineType::Express
    } else {
        MachineType::Standard
    };
    // A definition NAME.asl.yaml with NAME.input.json (and
    // NAME.output.json) beside it is type-checked against them.
    let stem = name
        .trim_end_matches(".asl.json")
        .trim_end_matches(".asl.yaml")
        .trim_end_matches(".asl.yml")
        .to_string();
    let beside = |kind: &str| {
        let p = data_dir().join(format!("{stem}.{kind}.json"));
        p.is_file().then_some(p)
    };
    let mut schemas = Schemas::read(beside("input").as_deref(), beside("output").as_deref());
    // Diagnostics name schema files as the data directory sees them.
    for s in [&mut schemas.input, &mut schemas.output]
        .into_iter()
        .flatten()
    {
        s.file = relative(Path::new(&s.file));
    }
    for d in &mut schemas.problems {
        d.message = d.message.replace(&format!("{}/", data_dir().display()), "");
    }
    let options = LoadOptions { machine_type };
    match String::from_utf8(bytes) {
        Ok(text) => {
            validate_text_with(&name, &text, Format::from_path(&name), options, &schemas)
                .diagnostics
        }
        Err(e) => {
            validate_bytes(&name, e.as_bytes(), Format::from_path(&name), options).diagnostics
        }
    }
}

/// A workflow's schema beside it in the data directory.
fn is_schema(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with(".input.json") || name.ends_with(".output.json")
}

/// The steps the data files' `piflow:` Tasks are checked against (the
/// binary installs the real contracts; this test its own two).
fn install_steps() {
    piflow_asl::steps::install(test_steps);
}

fn test_steps() -> Option<Vec<piflow_asl::steps::StepSpec>> {
    Some(vec![
        piflow_asl::steps::StepSpec::new(
            "piflow:lint".into(),
            serde_json::json!({"type": "object"}),
            serde_json::Value::Null,
            vec!["Lint.Failed".into()],
        ),
        piflow_asl::steps::StepSpec::new(
            "piflow:ecs-blue-green".into(),
            serde_json::json!({
                "type": "object",
                "required": ["cluster", "service"],
                "properties": {
                    "cluster": {"type": "string"},
                    "service": {"type": "string"},
                    "rollback": {"type": "boolean"},
                    "strategy": {"type": "object"},
                },
                "additionalProperties": false,
            }),
            serde_json::json!({
                "type": "object",
                "required": ["service", "task_definition"],
                "properties": {
                    "service": {"type": "string"},
                    "task_definition": {"type": "string"},
                    "outcome": {"enum": ["deployed", "rolled-back"]},
                },
                "additionalProperties": false,
            }),
            vec!["BlueGreen.RolledBack".into(), "BlueGreen.Failed".into()],
        ),
    ])
}

#[test]
fn validate_data_files() {
    install_steps();
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v != "0" && !v.is_empty());
    let all = files(&data_dir());
    let definitions: Vec<&PathBuf> = all.iter().filter(|p| is_definition(p)).collect();
    assert!(
        definitions.len() >= Code::ALL.len(),
        "tests/data/validate holds only {} definitions",
        definitions.len()
    );

    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    for path in &definitions {
        let diagnostics = validate(path);
        covered.extend(diagnostics.iter().map(|d| d.code));
        let actual: String = diagnostics.iter().map(render).collect();
        let expected_file = expected_path(path);
        let expected = std::fs::read_to_string(&expected_file).ok();
        if expected.as_deref() == Some(actual.as_str()) {
            continue;
        }
        if update {
            std::fs::write(&expected_file, &actual).unwrap();
            eprintln!("updated {}", relative(&expected_file));
            continue;
        }
        failures.push(format!(
            "{}:\n--- expected ({})\n{}--- actual\n{}",
            relative(path),
            relative(&expected_file),
            expected.as_deref().unwrap_or("(no expected file)\n"),
            actual
        ));
    }

    for path in &all {
        let name = path.to_string_lossy();
        if let Some(definition) = name.strip_suffix(".expected") {
            if !is_definition(Path::new(definition)) || !Path::new(definition).is_file() {
                failures.push(format!(
                    "{}: no definition beside this expected file",
                    relative(path)
                ));
            }
        } else if !is_definition(path) && !is_schema(path) {
            failures.push(format!(
                "{}: neither a definition (.asl.json, .asl.yaml, .asl.yml) nor an .expected file",
                relative(path)
            ));
        }
    }

    let uncovered: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !covered.contains(*c))
        .map(|c| c.as_str())
        .collect();
    if !uncovered.is_empty() {
        failures.push(format!(
            "no data file under tests/data/validate produces the code(s) {}",
            uncovered.join(", ")
        ));
    }

    assert!(
        failures.is_empty(),
        "{} problem(s) (rerun with UPDATE_EXPECT=1 to accept the actual output):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
