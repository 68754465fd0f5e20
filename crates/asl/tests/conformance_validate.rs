//! The validator against the ASL conformance corpus: every definition AWS
//! rejected must be rejected, every definition AWS accepted must be accepted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

#[path = "../../../tests/it/common/corpus.rs"]
mod common;

use piflow_asl::{
    Format, LoadOptions, MachineType, validate_state_value, validate_text, validate_value,
};

/// asl-validator test definitions that AWS is known to accept, with the reason
/// (also listed in docs/conformance.md).
const ACCEPTED_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "aslv__jsonata-surround-syntax-no-open",
        "\"10 %}\" does not start with \"{%\", so AWS reads it as a literal string (the corpus case test_arguments BASE_LAMBDA_LITERALS shows AWS accepting \" {% states.input %} \" as a literal)",
    ),
    (
        "aslv__json-surround-syntax-extra-spaces",
        "white space, including line breaks, inside {% %} is JSONata white space; multi-line expressions are common in YAML definitions",
    ),
];

/// Validate one `invalid/` case as AWS did: its raw text, and as an EXPRESS
/// machine for the cases recorded from EXPRESS tests.
fn validate_invalid_case(name: &str, case: &serde_json::Value) -> piflow_asl::Validation {
    let text = case["definition_text"].as_str().unwrap_or_default();
    let express = name.contains("SfnApiExpress") || name.contains("type_express");
    let machine_type = if express {
        MachineType::Express
    } else {
        MachineType::Standard
    };
    validate_text(name, text, Format::Json, LoadOptions { machine_type })
}

#[test]
fn invalid_definitions_are_rejected() {
    let Some(dir) = common::conformance_dir() else {
        return;
    };
    let files = common::corpus_files(&dir.join("invalid"));
    assert_eq!(files.len(), 158, "the corpus holds 158 invalid definitions");
    let (mut aws_total, mut aws_rejected, mut aslv_total, mut aslv_rejected) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (name, case) in &files {
        let v = validate_invalid_case(name, case);
        let rejected = !v.is_valid();
        let aws = case["aws_verified"].as_bool().unwrap_or(false);
        let exception = ACCEPTED_EXCEPTIONS
            .iter()
            .find(|(n, _)| name.starts_with(n));
        if aws {
            aws_total += 1;
            aws_rejected += usize::from(rejected);
        } else {
            aslv_total += 1;
            aslv_rejected += usize::from(rejected);
        }
        match (rejected, exception) {
            (false, None) => failures.push(format!(
                "{name}: accepted, but must be rejected ({})",
                case["reason"]
            )),
            (true, Some((_, why))) => failures.push(format!(
                "{name}: rejected, but listed as accepted by AWS ({why})"
            )),
            _ => {}
        }
    }
    eprintln!(
        "conformance (validation): AWS-verified invalid definitions rejected {aws_rejected}/{aws_total}; asl-validator invalid definitions rejected {aslv_rejected}/{aslv_total} ({} documented exceptions)",
        ACCEPTED_EXCEPTIONS.len()
    );
    assert!(
        failures.is_empty(),
        "{} wrong verdicts:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(aws_rejected, 108);
}

#[test]
fn valid_definitions_are_accepted() {
    let Some(dir) = common::conformance_dir() else {
        return;
    };
    let files = common::corpus_files(&dir.join("cases"));
    assert_eq!(
        files.len(),
        1237,
        "the corpus holds 1237 accepted definitions"
    );
    let mut failures = Vec::new();
    let mut warnings = 0;
    for (name, case) in &files {
        let definition = &case["definition"];
        // TestState takes one state, or a whole machine plus a state name.
        let single_state = case["kind"] == "test_state" && definition.get("States").is_none();
        let diagnostics = if single_state {
            validate_state_value(definition).1
        } else {
            validate_value(definition, LoadOptions::default()).diagnostics
        };
        warnings += diagnostics.iter().filter(|d| !d.is_error()).count();
        let errors: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("  [{}] {} at {}", d.code, d.message, d.pointer))
            .collect();
        if !errors.is_empty() {
            failures.push(format!("{name}:\n{}", errors.join("\n")));
        }
    }
    eprintln!(
        "conformance (validation): accepted {}/{} definitions AWS accepted ({warnings} warnings)",
        files.len() - failures.len(),
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} false rejections:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Print what each invalid definition was rejected for (`--nocapture`), so a
/// rejection for the wrong reason can be spotted by reading.
#[test]
fn invalid_definitions_report() {
    let Some(dir) = common::conformance_dir() else {
        return;
    };
    for (name, case) in common::corpus_files(&dir.join("invalid")) {
        let v = validate_invalid_case(&name, &case);
        let codes: Vec<String> = v
            .errors()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect();
        println!("{name}\n    {}", codes.join("\n    "));
    }
}
