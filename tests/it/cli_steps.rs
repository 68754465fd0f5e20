//! `piflow steps`: the built-in steps' contracts, and the shipped workflows
//! checked against them.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn piflow(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_piflow"))
        .args(args)
        .output()
        .expect("piflow runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn steps_lists_every_step_and_prints_a_contract() {
    let all = piflow_steps::contracts::all().expect("contracts");
    let (code, out, err) = piflow(&["steps"]);
    assert_eq!(code, Some(0), "{err}");
    for c in &all {
        assert!(
            out.contains(&c.resource) && out.contains(&c.summary),
            "{out}"
        );
    }
    let (code, out, err) = piflow(&["steps", "release", "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let shown: Value = serde_json::from_str(&out).expect("JSON");
    let release = piflow_steps::contracts::find(&all, "piflow:release").expect("release");
    assert_eq!(shown, serde_json::to_value(release).unwrap());
    let (code, out, _) = piflow(&["steps", "piflow:health-gate"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("HealthGate.Closed"), "{out}");
    let (code, _, err) = piflow(&["steps", "relase"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("did you mean piflow:release?"), "{err}");
}

/// Every `piflow:` Task of the shipped workflows names a step with a
/// contract, gives every field the contract requires and no field it does
/// not declare, and its literal values match the contract.
#[test]
fn the_shipped_workflows_keep_to_the_step_contracts() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let all = piflow_steps::contracts::all().expect("contracts");
    let mut problems = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("workflows")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let node = piflow_asl::yaml::parse_yaml(&text).expect("YAML");
        let def = node.to_value();
        let mut tasks = Vec::new();
        collect_tasks(&def["States"], &mut tasks);
        for (state, s) in tasks {
            let Some(resource) = s["Resource"].as_str().filter(|r| r.starts_with("piflow:")) else {
                continue;
            };
            checked += 1;
            let at = format!("{}: state {state} ({resource})", path.display());
            let Some(c) = piflow_steps::contracts::find(&all, resource) else {
                problems.push(format!("{at}: no contract"));
                continue;
            };
            let params = s["Parameters"].as_object().cloned().unwrap_or_default();
            let given: Vec<String> = params
                .keys()
                .map(|k| k.strip_suffix(".$").unwrap_or(k).to_string())
                .collect();
            let props = c.input["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let closed = c.input["additionalProperties"] == Value::Bool(false);
            for g in &given {
                if closed && !props.contains_key(g) {
                    problems.push(format!("{at}: field {g} is not in the contract"));
                }
            }
            for r in c.input["required"].as_array().cloned().unwrap_or_default() {
                let r = r.as_str().unwrap_or_default();
                if !given.iter().any(|g| g == r) {
                    problems.push(format!("{at}: required field {r} is not given"));
                }
            }
            for (k, v) in &params {
                // A path, or a template with paths inside: known when it runs.
                if k.ends_with(".$") || has_paths(v) {
                    continue;
                }
                if let Some(schema) = props.get(k) {
                    let validator = jsonschema::validator_for(schema).expect("schema");
                    for e in validator.iter_errors(v) {
                        problems.push(format!("{at}: field {k}: {e}"));
                    }
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} piflow: tasks found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn has_paths(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k.ends_with(".$") || has_paths(v)),
        Value::Array(a) => a.iter().any(has_paths),
        _ => false,
    }
}

fn collect_tasks(states: &Value, out: &mut Vec<(String, Value)>) {
    let Some(map) = states.as_object() else {
        return;
    };
    for (name, s) in map {
        if s["Type"] == "Task" {
            out.push((name.clone(), s.clone()));
        }
        for b in s["Branches"].as_array().into_iter().flatten() {
            collect_tasks(&b["States"], out);
        }
        for key in ["ItemProcessor", "Iterator"] {
            collect_tasks(&s[key]["States"], out);
        }
    }
}
