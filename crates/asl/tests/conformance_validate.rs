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

/// A schema promising exactly the shape of `v`: objects closed with every
/// field required, arrays of the join of their items, any string.
fn schema_of(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Value, json};
    match v {
        Value::Null => json!({"type": "null"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Array(items) => match items.first() {
            Some(first) if items.iter().all(|i| schema_of(i) == schema_of(first)) => {
                json!({"type": "array", "items": schema_of(first)})
            }
            _ => json!({"type": "array"}),
        },
        Value::Object(m) => json!({
            "type": "object",
            "required": m.keys().collect::<Vec<_>>(),
            "properties": m.iter().map(|(k, v)| (k.clone(), schema_of(v))).collect::<serde_json::Map<_, _>>(),
            "additionalProperties": false,
        }),
    }
}

/// Corpus executions that succeed although their definition reads, on a
/// path the execution did not take, a field that cannot be there: type
/// checking rightly reports them (docs/conformance.md lists them).
const UNTAKEN_PATH_DEFECTS: &[(&str, &str)] = &[(
    "test_task_service_lambda__TestTaskServiceLambda_test_raise_exception_catch_output_path_.no.such.path",
    "OutputPath $.no.such.path applies only when the Lambda succeeds, and the input has no `no`; the recorded Lambda raised, so AWS took the Catch",
)];

/// Type checking on the corpus, beyond what the corpus needs (its machines
/// have no schema, so only the step checks apply to them, and none calls a
/// step): each state machine is also type-checked with an unknown input
/// (a schema of `true`), and each execution AWS ran to SUCCEEDED against a
/// schema made from its recorded input. Every error found must be one of
/// two kinds, each a real defect of the definition: a read that fails at
/// run time (the execution ended with `States.Runtime`, or the read is on a
/// path the execution did not take: [`UNTAKEN_PATH_DEFECTS`]), or a Retry or
/// Catch naming an error nothing in its scope raises. Anything else is a
/// false alarm, and fails the test.
#[test]
fn type_checking_raises_no_false_alarm_on_the_corpus() {
    use piflow_asl::{Code, SchemaFile, Schemas, validate_text_with};
    let Some(dir) = common::conformance_dir() else {
        return;
    };
    let files = common::corpus_files(&dir.join("cases"));
    let mut machines = std::collections::BTreeSet::new();
    let mut false_alarms = Vec::new();
    let (mut runs, mut clean, mut runtime_reads, mut dead_names) = (0, 0, 0, 0);
    for (name, case) in &files {
        let definition = &case["definition"];
        if definition.get("States").is_none() {
            continue;
        }
        let text = serde_json::to_string(definition).unwrap();
        machines.insert(text.clone());
        let failed_runtime =
            case["expected"]["status"] == "FAILED" && case["expected"]["error"] == "States.Runtime";
        let mut schemas = vec![serde_json::Value::Bool(true)];
        if case["kind"] == "execution" && case["expected"]["status"] == "SUCCEEDED" {
            schemas.push(schema_of(&case["input"]));
        }
        for schema in schemas {
            runs += 1;
            let with = Schemas {
                input: Some(SchemaFile {
                    file: "input.json".into(),
                    root: schema,
                }),
                ..Schemas::default()
            };
            let v = validate_text_with(name, &text, Format::Json, LoadOptions::default(), &with);
            let mut ok = true;
            for d in v.errors() {
                ok = false;
                let untaken = UNTAKEN_PATH_DEFECTS
                    .iter()
                    .any(|(n, _)| name.starts_with(n));
                match d.code {
                    Code::PathFieldUnknown if failed_runtime || untaken => runtime_reads += 1,
                    Code::ErrorUnraisable => dead_names += 1,
                    _ => false_alarms.push(format!(
                        "{name}: [{}] {} at {}",
                        d.code, d.message, d.pointer
                    )),
                }
            }
            clean += usize::from(ok);
        }
    }
    eprintln!(
        "conformance (types): {} distinct state machines, {runs} type checks ({clean} without error); errors: {runtime_reads} reads that fail at run time (AWS failed them, or on a path not taken: {}), {dead_names} Retry/Catch names nothing raises, {} false alarms",
        machines.len(),
        UNTAKEN_PATH_DEFECTS.len(),
        false_alarms.len()
    );
    assert!(
        false_alarms.is_empty(),
        "{} false alarms:\n{}",
        false_alarms.len(),
        false_alarms.join("\n")
    );
}
