//! The operations, each from its request body to its answer body.

use serde_json::{Map, Value, json};

use piflow_asl::{Diagnostic, Format, LoadOptions, MachineType, Severity, validate_text};

use crate::api::{ApiError, fields};

/// The largest definition AWS takes, in characters.
pub const MAX_DEFINITION: usize = 1_048_576;

/// `ValidateStateMachineDefinition`: piflow's validator (every problem,
/// with its stable code and JSON pointer), in AWS's answer shape. `result`
/// is `FAIL` when there is an error; `severity: WARNING` adds the warnings;
/// `maxResults` (0 or absent: 100) caps the list, `truncated` says so.
pub fn validate(body: &Map<String, Value>) -> Result<Value, ApiError> {
    let definition = fields::string(body, "definition", true, MAX_DEFINITION)?.unwrap_or_default();
    let machine_type = match fields::one_of(body, "type", &["STANDARD", "EXPRESS"])? {
        Some("EXPRESS") => MachineType::Express,
        _ => MachineType::Standard,
    };
    let with_warnings = fields::one_of(body, "severity", &["ERROR", "WARNING"])? == Some("WARNING");
    let max = match fields::integer(body, "maxResults", 0, 100)? {
        None | Some(0) => 100,
        Some(n) => n as usize,
    };
    let v = validate_text(
        "definition",
        definition,
        Format::Json,
        LoadOptions { machine_type },
    );
    let shown: Vec<Value> = v
        .diagnostics
        .iter()
        .filter(|d| with_warnings || d.is_error())
        .map(|d| {
            let mut o = json!({
                "severity": match d.severity {
                    Severity::Error => "ERROR",
                    Severity::Warning => "WARNING",
                },
                "code": d.code.as_str(),
                "message": d.message,
            });
            if !d.pointer.is_empty() {
                o["location"] = json!(d.pointer);
            }
            o
        })
        .collect();
    let truncated = shown.len() > max;
    Ok(json!({
        "result": if v.is_valid() { "OK" } else { "FAIL" },
        "diagnostics": shown.into_iter().take(max).collect::<Vec<_>>(),
        "truncated": truncated,
    }))
}

/// `InvalidDefinition` listing every error among `diagnostics`, each as
/// `code at /pointer: message` (CreateStateMachine, UpdateStateMachine,
/// TestState).
pub fn invalid_definition<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) -> ApiError {
    let problems: Vec<String> = diagnostics
        .into_iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let at = if d.pointer.is_empty() {
                "/"
            } else {
                d.pointer.as_str()
            };
            format!("{} at {at}: {}", d.code.as_str(), d.message)
        })
        .collect();
    ApiError::new(
        "InvalidDefinition",
        format!(
            "Invalid State Machine Definition: '{}'",
            problems.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::body_of as body;

    #[test]
    fn answers_in_aws_shape_with_every_problem() {
        let def = r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Nxt": "B", "End": true}, "Z": {"Type": "Succeed"}}}"#;
        let out = validate(&body(json!({"definition": def}))).unwrap();
        assert_eq!(out["result"], "FAIL");
        let codes: Vec<&str> = out["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["unknown-field", "unreachable-state"], "{out}");
        assert_eq!(out["diagnostics"][0]["location"], "/States/A/Nxt");
        assert_eq!(out["diagnostics"][0]["severity"], "ERROR");
        let capped = validate(&body(json!({"definition": def, "maxResults": 1}))).unwrap();
        assert_eq!(capped["diagnostics"].as_array().unwrap().len(), 1);
        assert_eq!(capped["truncated"], true);
        let ok = validate(&body(
            json!({"definition": r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#}),
        ))
        .unwrap();
        assert_eq!(
            ok,
            json!({"result": "OK", "diagnostics": [], "truncated": false})
        );
    }

    #[test]
    fn fields_outside_aws_constraints_are_refused_naming_them() {
        let cases = [
            (json!({}), "ValidationException", "'definition'"),
            (
                json!({"definition": ""}),
                "ValidationException",
                "length between 1 and 1048576",
            ),
            (
                json!({"definition": 3}),
                "SerializationException",
                "must be a string",
            ),
            (
                json!({"definition": "{}", "type": "FAST"}),
                "ValidationException",
                "[STANDARD, EXPRESS]",
            ),
            (
                json!({"definition": "{}", "maxResults": 101}),
                "ValidationException",
                "between 0 and 100",
            ),
            (
                json!({"definition": "{}", "severity": "INFO"}),
                "ValidationException",
                "[ERROR, WARNING]",
            ),
        ];
        for (input, kind, says) in cases {
            let e = validate(&body(input.clone())).unwrap_err();
            assert_eq!(e.kind, kind, "{input}");
            assert!(e.message.contains(says), "{input}: {}", e.message);
            assert_eq!(e.status, 400);
        }
        let big = "x".repeat(MAX_DEFINITION + 1);
        let e = validate(&body(json!({"definition": big}))).unwrap_err();
        assert!(e.message.contains("1048576"), "{}", e.message);
    }
}
