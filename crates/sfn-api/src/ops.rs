//! The operations, each from its request body to its answer body.

use serde_json::{Map, Value, json};

use piflow_asl::{Format, LoadOptions, MachineType, Severity, validate_text};

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
