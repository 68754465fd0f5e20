//! `piflow validate` and `piflow graph` as a user runs them: real files, the
//! real binary, output and exit codes.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn piflow() -> Command {
    let mut c = Command::cargo_bin("piflow").expect("the piflow binary is built");
    c.env("NO_COLOR", "1");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("create dir");
    }
    fs::write(&p, text).expect("write file");
    p.display().to_string()
}

const VALID: &str = r#"{
  "StartAt": "Prepare",
  "States": {
    "Prepare": {"Type": "Pass", "Next": "Done"},
    "Done": {"Type": "Succeed"}
  }
}"#;

/// Three independent mistakes, to check that all are reported at once.
const BROKEN: &str = r#"{
  "StartAt": "Prepare",
  "States": {
    "Prepare": {
      "Type": "Pass",
      "Parameters": {"id.$": "$.order[", "x": 1},
      "Nxt": "Done"
    },
    "Wait": {"Type": "Wait", "Timestamp": "2016-12-05 21:29:29Z", "End": true},
    "Done": {"Type": "Succeed"}
  }
}"#;

fn json_reports(out: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(out).expect("--format json prints JSON");
    v.as_array().expect("a JSON array").clone()
}

#[test]
fn valid_file_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "ok.asl.json", VALID);
    let out = piflow().args(["validate", &f]).output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 file checked: 1 valid"), "{text}");
}

#[test]
fn every_problem_is_reported_with_its_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "broken.asl.json", BROKEN);
    let out = piflow()
        .args(["validate", "--format", "json", &f])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let reports = json_reports(&out.stdout);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["valid"], false);
    let diags = reports[0]["diagnostics"].as_array().expect("diagnostics");
    let find = |code: &str| {
        diags
            .iter()
            .find(|d| d["code"] == code)
            .unwrap_or_else(|| panic!("no {code} diagnostic in {diags:#?}"))
    };
    let unknown = find("unknown-field");
    assert_eq!(unknown["pointer"], "/States/Prepare/Nxt");
    assert_eq!(unknown["line"], 7);
    assert_eq!(unknown["column"], 7);
    assert!(
        unknown["message"]
            .as_str()
            .unwrap_or("")
            .contains("did you mean \"Next\"")
    );
    let path = find("invalid-path");
    assert_eq!(path["pointer"], "/States/Prepare/Parameters/id.$");
    assert_eq!(path["line"], 6);
    let ts = find("invalid-timestamp");
    assert_eq!(ts["pointer"], "/States/Wait/Timestamp");
    assert_eq!(ts["line"], 9);
    // Prepare has no Next (the typo), so Done and Wait are unreachable.
    assert!(diags.iter().any(|d| d["code"] == "missing-field"));
    for d in diags {
        for key in ["severity", "code", "message", "pointer", "line", "column"] {
            assert!(d.get(key).is_some(), "diagnostic without {key}: {d}");
        }
    }
}

#[test]
fn human_output_shows_the_source_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "broken.asl.json", BROKEN);
    let out = piflow().args(["validate", &f]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{f}:7:7: error[unknown-field]")),
        "{text}"
    );
    assert!(text.contains("7 |       \"Nxt\": \"Done\""), "{text}");
    assert!(text.contains("  |       ^"), "{text}");
    assert!(text.contains("at /States/Prepare/Nxt"), "{text}");
    assert!(text.contains("1 with errors"), "{text}");
}

/// A minified (one-line) definition of about 1.5 MB: each diagnostic shows
/// the part of the line around its column, not the whole line.
#[test]
fn diagnostics_on_a_minified_file_clip_the_source_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 36_000;
    let mut states: Vec<String> = (0..n)
        .map(|i| format!(r#""S{i}":{{"Type":"Pass","Next":"S{}"}}"#, i + 1))
        .collect();
    states.push(format!(r#""S{n}":{{"Type":"Pass","End":true}}"#));
    // Two mistakes, in the middle and near the end of the line.
    states[n / 2] = format!(r#""S{}":{{"Type":"Pass","Nxt":"S{}"}}"#, n / 2, n / 2 + 1);
    states[n - 3] = format!(
        r#""S{}":{{"Type":"Pass","Next":"S{}","Comment":7}}"#,
        n - 3,
        n - 2
    );
    let text = format!(r#"{{"StartAt":"S0","States":{{{}}}}}"#, states.join(","));
    assert!(text.len() > 1_400_000 && !text.contains('\n'));
    let f = write(dir.path(), "min.asl.json", &text);
    let out = piflow().args(["validate", &f]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("error[unknown-field]"),
        "{}",
        &shown[..shown.len().min(2000)]
    );
    assert!(
        shown.contains("error[wrong-type]"),
        "{}",
        &shown[..shown.len().min(2000)]
    );
    for line in shown.lines() {
        assert!(
            line.chars().count() <= 140,
            "a line of {} characters: {}…",
            line.chars().count(),
            line.chars().take(200).collect::<String>()
        );
    }
    // The caret sits under the mistake.
    let lines: Vec<&str> = shown.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("error[unknown-field]") {
            let src = lines[i + 1];
            let caret = lines[i + 2];
            let at = caret.chars().position(|c| c == '^').expect("a caret");
            let under: String = src.chars().skip(at).take(5).collect();
            assert_eq!(under, "\"Nxt\"", "{src}\n{caret}");
        }
    }
}

#[test]
fn duplicate_keys_are_rejected_in_json_and_yaml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = write(
        dir.path(),
        "dup.asl.json",
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "End": false}}}"#,
    );
    let y = write(
        dir.path(),
        "dup.asl.yaml",
        "StartAt: A\nStates:\n  A:\n    Type: Pass\n    End: true\n    Type: Succeed\n",
    );
    let out = piflow()
        .args(["validate", "--format", "json", &j, &y])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let reports = json_reports(&out.stdout);
    assert_eq!(reports[0]["diagnostics"][0]["code"], "duplicate-key");
    assert_eq!(reports[0]["diagnostics"][0]["column"], 64);
    assert_eq!(reports[1]["diagnostics"][0]["code"], "duplicate-key");
    assert_eq!(reports[1]["diagnostics"][0]["line"], 6);
}

#[test]
fn malformed_json_gives_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "bad.json",
        "{\n  \"StartAt\": \"A\",\n  \"States\": {,}\n}",
    );
    let out = piflow()
        .args(["validate", "--format", "json", &f])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let d = &json_reports(&out.stdout)[0]["diagnostics"][0];
    assert_eq!(d["code"], "syntax");
    assert_eq!(d["line"], 3);
    assert_eq!(d["column"], 14);
}

#[test]
fn unreadable_input_exits_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.asl.json").display().to_string();
    let out = piflow()
        .args(["validate", &missing])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot read"));

    let latin1 = dir.path().join("latin1.asl.json");
    fs::write(&latin1, b"{\"Comment\": \"caf\xe9\"}").expect("write");
    let out = piflow()
        .args([
            "validate",
            "--format",
            "json",
            &latin1.display().to_string(),
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let d = &json_reports(&out.stdout)[0]["diagnostics"][0];
    assert_eq!(d["code"], "unreadable");
    assert!(
        d["message"]
            .as_str()
            .unwrap_or("")
            .contains("not UTF-8 text (invalid byte at offset 16)")
    );
}

#[test]
fn oversized_files_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.asl.json");
    let mut text = String::from("{\"Comment\": \"");
    text.push_str(&"x".repeat(piflow_asl::source::MAX_SOURCE_BYTES));
    text.push_str("\"}");
    fs::write(&big, text).expect("write");
    let out = piflow()
        .args(["validate", "--format", "json", &big.display().to_string()])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let d = &json_reports(&out.stdout)[0]["diagnostics"][0];
    assert_eq!(d["code"], "too-large");
}

#[test]
fn usage_errors_exit_two() {
    let out = piflow()
        .args(["validate", "--format", "xml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let out = piflow().args(["no-such-command"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let out = piflow().args(["graph"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn directories_are_walked_and_non_definitions_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.asl.json", VALID);
    write(
        dir.path(),
        "nested/b.yaml",
        "StartAt: X\nStates:\n  X:\n    Type: Succeed\n",
    );
    write(dir.path(), "schema.json", r#"{"type": "object"}"#);
    write(dir.path(), "notes.txt", "not json");
    let out = piflow()
        .args([
            "validate",
            "--format",
            "json",
            &dir.path().display().to_string(),
        ])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let files: Vec<String> = json_reports(&out.stdout)
        .iter()
        .map(|r| r["file"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].ends_with("a.asl.json") && files[1].ends_with("b.yaml"),
        "{files:?}"
    );
}

#[test]
fn express_rules_apply_only_with_type_express() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "cb.asl.json",
        r#"{"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "End": true}}}"#,
    );
    let out = piflow().args(["validate", &f]).output().expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let out = piflow()
        .args(["validate", "--type", "express", &f])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("express-unsupported"));
}

#[test]
fn repository_workflows_are_valid() {
    let out = piflow()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["validate", "--format", "json"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!json_reports(&out.stdout).is_empty());
}

#[test]
fn graph_draws_branches_catches_and_choices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(
        dir.path(),
        "g.asl.yaml",
        r#"
StartAt: Check
States:
  Check:
    Type: Choice
    Choices:
      - Variable: $.env
        StringEquals: prod
        Next: Fan
    Default: Done
  Fan:
    Type: Parallel
    Branches:
      - StartAt: Deploy
        States:
          Deploy: {Type: Task, Resource: "piflow:ecs-blue-green", End: true}
      - StartAt: Note
        States:
          Note: {Type: Pass, End: true}
    Catch:
      - ErrorEquals: [BlueGreen.RolledBack]
        Next: Failed
    Next: Done
  Done: {Type: Succeed}
  Failed: {Type: Fail, Error: Deploy.Failed}
"#,
    );
    let out = piflow().args(["graph", &f]).output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = String::from_utf8_lossy(&out.stdout);
    assert!(m.starts_with("flowchart TD"), "{m}");
    assert_eq!(m.matches("subgraph ").count(), 2, "{m}");
    assert!(m.contains("-.->|\"catch BlueGreen.RolledBack\"|"), "{m}");
    assert!(m.contains("-->|\"Default\"|"), "{m}");
    assert!(m.contains("$.env StringEquals #quot;prod#quot;"), "{m}");

    let out = piflow()
        .args(["graph", "--format", "dot", &f])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let d = String::from_utf8_lossy(&out.stdout);
    assert!(d.starts_with("digraph state_machine {"), "{d}");
    assert_eq!(d.matches("subgraph cluster_").count(), 2, "{d}");
    assert!(
        d.contains("label=\"catch BlueGreen.RolledBack\", style=dashed"),
        "{d}"
    );
    assert!(d.contains("label=\"Default\""), "{d}");
    // When Graphviz is installed (CI installs it), the DOT must be accepted by it.
    if let Ok(mut child) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(d.as_bytes()).expect("write to dot");
        }
        let res = child.wait_with_output().expect("dot runs");
        assert!(
            res.status.success(),
            "dot rejected the graph: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        assert!(String::from_utf8_lossy(&res.stdout).contains("<svg"));
    } else {
        eprintln!("graphviz `dot` not installed: DOT syntax not checked by Graphviz");
    }
}

#[test]
fn graph_of_an_invalid_definition_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "x.asl.json", "[1, 2]");
    let out = piflow().args(["graph", &f]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be drawn"));
}

#[test]
fn a_large_payload_with_a_conflicting_key_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut params = serde_json::Map::new();
    for i in 0..40 {
        params.insert(format!("k{i}"), serde_json::json!(i));
    }
    params.insert("k7.$".into(), serde_json::json!("$.x"));
    let def = serde_json::json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": params, "End": true}}});
    let f = write(dir.path(), "big.asl.json", &def.to_string());
    let out = piflow()
        .args(["validate", "--format", "json", &f])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let d = &json_reports(&out.stdout)[0]["diagnostics"][0];
    assert_eq!(d["code"], "duplicate-key");
    assert_eq!(d["pointer"], "/States/P/Parameters/k7.$");
}

/// The issue's example, with an input schema beside it: the misspelled
/// step and the misspelled field, both at once, each with its suggestion.
const TYPED: &str = "StartAt: A
States:
  A: {Type: Pass, Next: B}
  B:
    Type: Task
    Resource: piflow:ecs-blue-grean
    Parameters:
      service.$: $.target.servce
      cluster.$: $.target.cluster
      environment: dev
    End: true
";

const TYPED_SCHEMA: &str = r#"{"type": "object", "required": ["target"],
  "properties": {"target": {"type": "object", "required": ["service", "cluster"],
    "properties": {"service": {"type": "string"}, "cluster": {"type": "string"}},
    "additionalProperties": false}},
  "additionalProperties": false}"#;

#[test]
fn data_paths_are_checked_against_the_workflows_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write(dir.path(), "workflows/typed.asl.yaml", TYPED);
    // Without a schema: the step is checked, the path is not.
    let out = piflow()
        .args(["validate", &f, "--format", "json"])
        .output()
        .expect("runs");
    let codes: Vec<String> = json_reports(&out.stdout)[0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, ["unknown-step"]);

    write(dir.path(), "schemas/typed.input.json", TYPED_SCHEMA);
    let out = piflow()
        .args(["validate", &f, "--format", "json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let report = &json_reports(&out.stdout)[0];
    let diags = report["diagnostics"].as_array().unwrap();
    let found: Vec<(&str, &str)> = diags
        .iter()
        .map(|d| (d["code"].as_str().unwrap(), d["pointer"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            ("unknown-step", "/States/B/Resource"),
            ("path-field-unknown", "/States/B/Parameters/service.$"),
        ]
    );
    assert!(
        diags[1]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean \"service\"?"),
        "{diags:?}"
    );
    assert_eq!(diags[1]["line"], 8);

    // The fixed definition validates, and its edges are drawn with types.
    let fixed = TYPED
        .replace("ecs-blue-grean", "ecs-blue-green")
        .replace("servce", "service");
    write(dir.path(), "workflows/typed.asl.yaml", &fixed);
    let out = piflow().args(["validate", &f]).output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = piflow()
        .args(["graph", &f, "--types", "--format", "dot"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(dot.contains("label=\"{target}\""), "{dot}");
    // B's output is the step's result (its contract's output schema).
    let contract = piflow()
        .args(["steps", "ecs-blue-green", "--format", "json"])
        .output()
        .expect("runs");
    let contract: Value = serde_json::from_slice(&contract.stdout).unwrap();
    let first_output_field = contract["output"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .min()
        .unwrap()
        .clone();
    assert!(dot.contains(&first_output_field), "{dot}");
    let plain = piflow()
        .args(["graph", &f, "--format", "dot"])
        .output()
        .expect("runs");
    assert!(
        !String::from_utf8(plain.stdout)
            .unwrap()
            .contains("{target}")
    );
}

#[test]
fn a_broken_schema_is_named_with_its_pointer_and_nothing_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixed = TYPED
        .replace("ecs-blue-grean", "ecs-blue-green")
        .replace("servce", "service");
    let f = write(dir.path(), "workflows/typed.asl.yaml", &fixed);
    let schema = write(
        dir.path(),
        "schemas/typed.input.json",
        r##"{"type": "object", "properties": {"target": {"$ref": "#/$defs/T"}, "loop": {"$ref": "#/$defs/A"}},
            "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}}"##,
    );
    let out = piflow().args(["validate", &f]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!("{schema}#/properties/target/$ref"))
            && text.contains("does not resolve"),
        "{text}"
    );
    assert!(text.contains("cycle of references"), "{text}");
    assert!(text.contains("error[schema-ref]"), "{text}");

    // `piflow run` (and so `test`, `trigger`, `serve`, `deploy`) refuses
    // it before anything starts.
    let home = tempfile::tempdir().expect("tempdir");
    let out = piflow()
        .current_dir(dir.path())
        .env("PIFLOW_HOME", home.path())
        .env_remove("PIFLOW_STORE")
        .env_remove("PIFLOW_CONFIG")
        .args([
            "run",
            "typed",
            "--input",
            r#"{"target": {"service": "s", "cluster": "c"}}"#,
        ])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema-ref") && err.contains("nothing was run"),
        "{err}"
    );
    // Nor is it deployed (refused before any AWS call).
    let out = piflow()
        .current_dir(dir.path())
        .env_remove("PIFLOW_CONFIG")
        .args([
            "deploy",
            "typed",
            "--to",
            "stepfunctions",
            "--print-definition",
        ])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("schema-ref") && out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Not JSON at all.
    fs::write(&schema, "{\"type\": ").unwrap();
    let out = piflow().args(["validate", &f]).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("error[schema-invalid]") && text.contains("is not JSON"),
        "{text}"
    );
}
