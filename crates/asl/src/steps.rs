//! The `piflow:` steps a process knows, as validation sees them: each
//! step's name and the JSON Schema of its input. The language crate knows
//! no step; the binary installs the built-in steps' contracts
//! (`piflow_steps::contracts`) once at start ([`install`], read at the
//! first validation), and from then on every validation of the process ([`crate::validate_text`], so
//! `piflow validate`, `run`, `test`, `trigger`, `serve` and `deploy`)
//! checks the Task states that name a `piflow:` resource:
//!
//! - `unknown-step`: the resource is no step (with the nearest name);
//! - `step-field-missing`: `Parameters` (or `Arguments`) lacks a field the
//!   step requires;
//! - `step-field-unknown`: it gives a field the step does not declare;
//! - `step-field-type`: a literal of the wrong JSON type, or outside the
//!   field's `enum`.
//!
//! A state without `Parameters`/`Arguments` passes its whole input: its
//! fields are not known here, and it is not checked for them.

use std::sync::OnceLock;

use serde_json::Value;

use crate::diagnostics::{Code, Diagnostic};
use crate::load::suggest;
use crate::source::{Node, NodeKind};
use crate::types::Ty;
use crate::types::schema::SchemaFile;

/// One step as validation checks its callers.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// `piflow:NAME`.
    pub resource: String,
    /// The JSON Schema of its input (`properties`, `required`,
    /// `additionalProperties`, each property's `type` and `enum`).
    pub input: Value,
    /// The JSON Schema of what it returns (`Value::Null`: unknown).
    pub output: Value,
    /// The errors it can raise (`Step.Reason`), besides the `States.*`
    /// errors of any task.
    pub errors: Vec<String>,
    /// `output` as a type, read from the schema once, when first needed.
    output_type: OnceLock<Ty>,
}

impl StepSpec {
    pub fn new(resource: String, input: Value, output: Value, errors: Vec<String>) -> StepSpec {
        StepSpec {
            resource,
            input,
            output,
            errors,
            output_type: OnceLock::new(),
        }
    }

    /// The type of the step's result (unknown when it declares none).
    pub fn output_type(&self) -> &Ty {
        self.output_type.get_or_init(|| {
            if self.output.is_null() {
                Ty::any()
            } else {
                SchemaFile {
                    file: format!("the contract of {}", self.resource),
                    root: self.output.clone(),
                }
                .to_ty()
                .0
            }
        })
    }
}

/// Where the steps come from (the binary's contracts), read on the first
/// validation that needs them: a command that validates nothing pays
/// nothing at start-up.
static SOURCE: OnceLock<fn() -> Option<Vec<StepSpec>>> = OnceLock::new();
static STEPS: OnceLock<Option<Vec<StepSpec>>> = OnceLock::new();

/// Make the steps `source` gives the ones this process's validations
/// check against (the first call wins; `false` when a source was
/// installed already). `source` runs once, at the first validation; `None`
/// from it means no step is known, and nothing is checked.
pub fn install(source: fn() -> Option<Vec<StepSpec>>) -> bool {
    SOURCE.set(source).is_ok()
}

/// The installed steps, if any.
pub fn installed() -> Option<&'static [StepSpec]> {
    let source = SOURCE.get()?;
    STEPS.get_or_init(source).as_deref()
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Check every Task state (in Parallel branches and Map processors too).
pub fn check(root: &Node, steps: &[StepSpec], out: &mut Vec<Diagnostic>) {
    if let Some(states) = root.get("States") {
        check_states(states, "/States", steps, out);
    }
}

fn check_states(states: &Node, ptr: &str, steps: &[StepSpec], out: &mut Vec<Diagnostic>) {
    let Some(entries) = states.as_object() else {
        return;
    };
    for (key, state) in entries {
        let at = format!("{ptr}/{}", escape(&key.name));
        if state.get("Type").and_then(Node::as_str) == Some("Task") {
            check_task(&key.name, state, &at, steps, out);
        }
        if let Some(branches) = state.get("Branches").and_then(Node::as_array) {
            for (i, b) in branches.iter().enumerate() {
                if let Some(s) = b.get("States") {
                    check_states(s, &format!("{at}/Branches/{i}/States"), steps, out);
                }
            }
        }
        for scope in ["ItemProcessor", "Iterator"] {
            if let Some(s) = state.get(scope).and_then(|p| p.get("States")) {
                check_states(s, &format!("{at}/{scope}/States"), steps, out);
            }
        }
    }
}

fn check_task(name: &str, state: &Node, at: &str, steps: &[StepSpec], out: &mut Vec<Diagnostic>) {
    let Some(resource_node) = state.get("Resource") else {
        return;
    };
    let Some(resource) = resource_node.as_str().filter(|r| r.starts_with("piflow:")) else {
        return;
    };
    let base = resource
        .strip_suffix(".waitForTaskToken")
        .unwrap_or(resource);
    if base == "piflow:" {
        // No name at all: the loader reports it (invalid-resource).
        return;
    }
    let Some(spec) = steps.iter().find(|s| s.resource == base) else {
        let near = suggest(base, steps.iter().map(|s| s.resource.as_str()))
            .map(|n| format!("; did you mean \"{n}\"?"))
            .unwrap_or_default();
        out.push(
            Diagnostic::error(
                Code::UnknownStep,
                format!("{at}/Resource"),
                format!(
                    "state {name}: {resource} is not a piflow step{near} (`piflow steps` lists them)"
                ),
            )
            .at(resource_node.span),
        );
        return;
    };
    let (field, params) = match (state.get("Parameters"), state.get("Arguments")) {
        (Some(p), _) => ("Parameters", p),
        (None, Some(a)) => ("Arguments", a),
        (None, None) => return,
    };
    let Some(entries) = params.as_object() else {
        return;
    };
    let props = spec.input.get("properties").and_then(Value::as_object);
    let closed = spec.input.get("additionalProperties") == Some(&Value::Bool(false));
    let mut given: Vec<&str> = Vec::new();
    for (key, value) in entries {
        let (field_name, dynamic) = match key.name.strip_suffix(".$") {
            Some(f) => (f, true),
            None => (key.name.as_str(), false),
        };
        given.push(field_name);
        let ptr = format!("{at}/{field}/{}", escape(&key.name));
        let schema = props.and_then(|p| p.get(field_name));
        match schema {
            None if closed => {
                let near = props
                    .and_then(|p| suggest(field_name, p.keys().map(String::as_str)))
                    .map(|n| format!("; did you mean \"{n}\"?"))
                    .unwrap_or_default();
                out.push(
                    Diagnostic::error(
                        Code::StepFieldUnknown,
                        ptr,
                        format!(
                            "state {name}: {base} has no input field \"{field_name}\"{near} (`piflow steps {}` lists its fields)",
                            base.trim_start_matches("piflow:")
                        ),
                    )
                    .at(key.span),
                );
            }
            Some(schema) if !dynamic && !is_jsonata(value) => {
                if let Some(problem) = literal_problem(schema, value) {
                    out.push(
                        Diagnostic::error(
                            Code::StepFieldType,
                            ptr,
                            format!("state {name}: {base} field \"{field_name}\" {problem}"),
                        )
                        .at(value.span),
                    );
                }
            }
            _ => {}
        }
    }
    let required = spec
        .input
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    let missing: Vec<&str> = required
        .into_iter()
        .filter(|r| !given.contains(r))
        .collect();
    if !missing.is_empty() {
        out.push(
            Diagnostic::error(
                Code::StepFieldMissing,
                format!("{at}/{field}"),
                format!(
                    "state {name}: {base} needs {} in its {field}",
                    missing
                        .iter()
                        .map(|m| format!("\"{m}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .at(params.span),
        );
    }
}

/// A JSONata template (`{% … %}`): its value is known when it runs.
fn is_jsonata(v: &Node) -> bool {
    v.as_str()
        .is_some_and(|s| s.trim_start().starts_with("{%") && s.trim_end().ends_with("%}"))
}

fn json_type(v: &Node) -> &'static str {
    match &v.kind {
        NodeKind::Null => "null",
        NodeKind::Bool(_) => "boolean",
        NodeKind::Number(n) if n.is_i64() || n.is_u64() => "integer",
        NodeKind::Number(_) => "number",
        NodeKind::String(_) => "string",
        NodeKind::Array(_) => "array",
        NodeKind::Object(_) => "object",
    }
}

/// What is wrong with a literal against its field's schema (`type` and
/// `enum`), if anything.
fn literal_problem(schema: &Value, v: &Node) -> Option<String> {
    let actual = json_type(v);
    let allowed: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = |t: &str| t == actual || (t == "number" && actual == "integer");
    if !allowed.is_empty() && !allowed.iter().any(|t| fits(t)) {
        return Some(format!(
            "must be {}, not {}",
            allowed.join(" or "),
            crate::path::json_type_article(&v.to_value())
        ));
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        let value = v.to_value();
        if !options.contains(&value) {
            return Some(format!(
                "must be one of {}, not {value}",
                options
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps() -> Vec<StepSpec> {
        vec![StepSpec::new(
            "piflow:ecs-blue-green".into(),
            json!({
                "type": "object",
                "required": ["service", "cluster"],
                "properties": {
                    "service": {"type": "string"},
                    "cluster": {"type": "string"},
                    "rollback": {"type": "boolean"},
                    "mode": {"enum": ["a", "b"]},
                },
                "additionalProperties": false,
            }),
            Value::Null,
            vec![],
        )]
    }

    fn codes(def: &str) -> Vec<(Code, String)> {
        let node = crate::yaml::parse_yaml(def).expect("yaml");
        let mut out = Vec::new();
        check(&node, &steps(), &mut out);
        out.into_iter().map(|d| (d.code, d.message)).collect()
    }

    #[test]
    fn unknown_steps_fields_and_literals_are_found() {
        let found = codes(
            "StartAt: B\nStates:\n  B:\n    Type: Task\n    Resource: piflow:ecs-blue-grean\n    End: true\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Code::UnknownStep);
        assert!(
            found[0]
                .1
                .contains("did you mean \"piflow:ecs-blue-green\""),
            "{found:?}"
        );

        let found = codes(
            "StartAt: B\nStates:\n  B:\n    Type: Task\n    Resource: piflow:ecs-blue-green\n    Parameters:\n      servce.$: $.target.service\n      rollback: yes-please\n      mode: c\n    End: true\n",
        );
        let kinds: Vec<Code> = found.iter().map(|f| f.0).collect();
        assert!(kinds.contains(&Code::StepFieldUnknown), "{found:?}");
        assert!(
            found
                .iter()
                .any(|f| f.1.contains("did you mean \"service\"")),
            "{found:?}"
        );
        assert!(kinds.contains(&Code::StepFieldType), "{found:?}");
        assert!(kinds.contains(&Code::StepFieldMissing), "{found:?}");
        assert!(
            found
                .iter()
                .any(|f| f.1.contains("needs \"service\", \"cluster\"")),
            "{found:?}"
        );
    }

    #[test]
    fn dynamic_and_jsonata_values_and_other_resources_pass() {
        let found = codes(
            "StartAt: B\nStates:\n  B:\n    Type: Task\n    Resource: piflow:ecs-blue-green\n    Parameters:\n      service.$: $.s\n      cluster: \"{% $c %}\"\n    Next: C\n  C:\n    Type: Task\n    Resource: arn:aws:states:::lambda:invoke\n    Parameters: {anything: 1}\n    Next: P\n  P:\n    Type: Parallel\n    End: true\n    Branches:\n      - StartAt: X\n        States:\n          X: {Type: Task, Resource: piflow:nope, End: true}\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Code::UnknownStep, "inside a Parallel branch");
    }
}
