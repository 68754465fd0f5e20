//! Mutants of the shipped workflows: each a slip a person makes, each one
//! `piflow validate` must reject before anything runs (issue "Typed state
//! graphs"). Four kinds, made mechanically from `workflows/*.asl.yaml`:
//!
//! - `resource`: a `piflow:` resource misspelled (two letters swapped, or
//!   one dropped);
//! - `path-field`: one field of a data path misspelled (the same two
//!   typos), in every path a state reads: Parameters, ResultSelector and
//!   ItemSelector values (and the paths inside their intrinsic calls),
//!   Choice variables, InputPath, OutputPath, ItemsPath, CausePath;
//! - `required-field`: a field a step's contract requires removed from its
//!   Parameters;
//! - `literal-type`: a literal in a step's Parameters replaced by a value of
//!   another JSON type.
//!
//! Each mutant is validated as `piflow validate` does (the workflow's
//! schemas, the steps' contracts). The test prints the counts per kind
//! (`cargo test --test it typed_mutants -- --nocapture`) and fails when a
//! kind has fewer than 95% rejected, or when a shipped workflow has any
//! diagnostic at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use piflow_asl::{Format, LoadOptions, Schemas, Validation, validate_text_with};
use piflow_triggers::service::workflow::workflow_schemas;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.yaml"))
        .collect();
    out.sort();
    assert!(out.len() >= 5, "{out:?}");
    out
}

fn validate(value: &Value, schemas: &Schemas) -> Validation {
    let text = serde_json::to_string_pretty(value).unwrap();
    validate_text_with(
        "mutant.asl.json",
        &text,
        Format::Json,
        LoadOptions::default(),
        schemas,
    )
}

/// Two misspellings of a name: the two letters after the first swapped
/// (when they differ), and the second-to-last letter dropped.
fn typos(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    if chars.len() >= 3 && chars[1] != chars[2] {
        let mut c = chars.clone();
        c.swap(1, 2);
        out.push(c.into_iter().collect());
    }
    if chars.len() >= 3 {
        let mut c = chars.clone();
        c.remove(chars.len() - 2);
        out.push(c.into_iter().collect());
    }
    out
}

/// The data paths in a string (`$.a.b[0].c`, `$$.Execution.Name`), as
/// (start, end) byte ranges of each field name in them.
fn path_fields(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        i += 1;
        if i < b.len() && b[i] == b'$' {
            i += 1;
        }
        loop {
            if i < b.len() && b[i] == b'.' {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                    end += 1;
                }
                if end == start {
                    break;
                }
                out.push((start, end));
                i = end;
            } else if i < b.len() && b[i] == b'[' {
                match s[i..].find(']') {
                    Some(j) => i += j + 1,
                    None => break,
                }
            } else {
                break;
            }
        }
    }
    out
}

/// One mutation site: where in the definition (a JSON pointer to a string)
/// and how to change it.
enum Site {
    /// Replace the string at the pointer.
    Text { pointer: String, value: String },
    /// Remove a field of the object at the pointer.
    Remove { pointer: String, key: String },
    /// Replace the value at the pointer.
    Value { pointer: String, value: Value },
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

struct Mutants<'a> {
    contracts: &'a [piflow_steps::contracts::Contract],
    out: BTreeMap<&'static str, Vec<Site>>,
}

impl Mutants<'_> {
    fn push(&mut self, kind: &'static str, site: Site) {
        self.out.entry(kind).or_default().push(site);
    }

    /// Every path-field typo of the string at `pointer`.
    fn paths_in(&mut self, pointer: &str, s: &str) {
        for (start, end) in path_fields(s) {
            for t in typos(&s[start..end]) {
                let value = format!("{}{t}{}", &s[..start], &s[end..]);
                self.push(
                    "path-field",
                    Site::Text {
                        pointer: pointer.to_string(),
                        value,
                    },
                );
            }
        }
    }

    /// `.$` fields of a payload template, at any depth.
    fn template(&mut self, pointer: &str, v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = format!("{pointer}/{}", escape(k));
                    match (k.ends_with(".$"), v) {
                        (true, Value::String(s)) => self.paths_in(&p, s),
                        _ => self.template(&p, v),
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.template(&format!("{pointer}/{i}"), v);
                }
            }
            _ => {}
        }
    }

    fn rule(&mut self, pointer: &str, rule: &Map<String, Value>) {
        for (k, v) in rule {
            let p = format!("{pointer}/{}", escape(k));
            match (k.as_str(), v) {
                ("Variable", Value::String(s)) => self.paths_in(&p, s),
                (k, Value::String(s)) if k.ends_with("Path") => self.paths_in(&p, s),
                ("And" | "Or", Value::Array(rs)) => {
                    for (i, r) in rs.iter().enumerate() {
                        if let Value::Object(r) = r {
                            self.rule(&format!("{p}/{i}"), r);
                        }
                    }
                }
                ("Not", Value::Object(r)) => self.rule(&p, r),
                _ => {}
            }
        }
    }

    fn states(&mut self, pointer: &str, states: &Map<String, Value>) {
        for (name, state) in states {
            let at = format!("{pointer}/{}", escape(name));
            let Value::Object(s) = state else { continue };
            for field in ["InputPath", "OutputPath", "ItemsPath", "CausePath"] {
                if let Some(Value::String(p)) = s.get(field) {
                    self.paths_in(&format!("{at}/{field}"), p);
                }
            }
            for field in ["Parameters", "ResultSelector", "ItemSelector"] {
                if let Some(t) = s.get(field) {
                    self.template(&format!("{at}/{field}"), t);
                }
            }
            if let Some(Value::Array(choices)) = s.get("Choices") {
                for (i, c) in choices.iter().enumerate() {
                    if let Value::Object(c) = c {
                        self.rule(&format!("{at}/Choices/{i}"), c);
                    }
                }
            }
            if let Some(Value::String(r)) = s.get("Resource")
                && let Some(step) = r.strip_prefix("piflow:")
            {
                let base = step.strip_suffix(".waitForTaskToken");
                let (name, suffix) = match base {
                    Some(b) => (b, ".waitForTaskToken"),
                    None => (step, ""),
                };
                for t in typos(name) {
                    self.push(
                        "resource",
                        Site::Text {
                            pointer: format!("{at}/Resource"),
                            value: format!("piflow:{t}{suffix}"),
                        },
                    );
                }
                self.step_fields(&at, r, s.get("Parameters"));
            }
            if let Some(Value::Array(branches)) = s.get("Branches") {
                for (i, b) in branches.iter().enumerate() {
                    if let Some(Value::Object(inner)) = b.get("States") {
                        self.states(&format!("{at}/Branches/{i}/States"), inner);
                    }
                }
            }
            for scope in ["ItemProcessor", "Iterator"] {
                if let Some(Value::Object(inner)) = s.get(scope).and_then(|p| p.get("States")) {
                    self.states(&format!("{at}/{scope}/States"), inner);
                }
            }
        }
    }

    /// Required fields removed, literals of another type.
    fn step_fields(&mut self, at: &str, resource: &str, params: Option<&Value>) {
        let Some(Value::Object(params)) = params else {
            return;
        };
        let Some(contract) = piflow_steps::contracts::find(self.contracts, resource) else {
            return;
        };
        let required: Vec<&str> = contract.input["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (key, value) in params {
            let field = key.strip_suffix(".$").unwrap_or(key);
            if required.contains(&field) {
                self.push(
                    "required-field",
                    Site::Remove {
                        pointer: format!("{at}/Parameters"),
                        key: key.clone(),
                    },
                );
            }
            if key.ends_with(".$") {
                continue;
            }
            let schema = &contract.input["properties"][field];
            let types: Vec<&str> = match &schema["type"] {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => continue,
            };
            // A value of a type the field does not take.
            let wrong = [
                ("string", json!("not-what-it-takes")),
                ("integer", json!(42)),
                ("boolean", json!(true)),
                ("array", json!(["x"])),
                ("object", json!({"x": 1})),
            ]
            .into_iter()
            .find(|(t, _)| {
                let taken = types.contains(t) || (*t == "integer" && types.contains(&"number"));
                !taken
            })
            .map(|(_, v)| v);
            if let (Some(wrong), false) = (wrong, value.is_null()) {
                self.push(
                    "literal-type",
                    Site::Value {
                        pointer: format!("{at}/Parameters/{}", escape(key)),
                        value: wrong,
                    },
                );
            }
        }
    }
}

fn apply(def: &Value, site: &Site) -> Value {
    let mut v = def.clone();
    match site {
        Site::Text { pointer, value } => *v.pointer_mut(pointer).unwrap() = json!(value),
        Site::Value { pointer, value } => *v.pointer_mut(pointer).unwrap() = value.clone(),
        Site::Remove { pointer, key } => {
            v.pointer_mut(pointer)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(key);
        }
    }
    v
}

fn read_definition(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    piflow_asl::yaml::parse_yaml(&text).unwrap().to_value()
}

#[test]
fn mutants_of_the_shipped_workflows_are_rejected() {
    piflow_asl::steps::install(piflow_steps::contracts::step_specs);
    let contracts = piflow_steps::contracts::all().unwrap();
    // kind → (mutants, rejected, the first few that passed).
    let mut counts: BTreeMap<&str, (usize, usize, Vec<String>)> = BTreeMap::new();
    for path in shipped() {
        let schemas = workflow_schemas(&path, Some(&root()));
        assert!(schemas.input.is_some(), "{} has its schema", path.display());
        let def = read_definition(&path);
        let clean = validate(&def, &schemas);
        assert!(
            clean.diagnostics.is_empty(),
            "{} as shipped: {:#?}",
            path.display(),
            clean.diagnostics
        );
        let mut m = Mutants {
            contracts: &contracts,
            out: BTreeMap::new(),
        };
        m.states("/States", def["States"].as_object().unwrap());
        for (kind, sites) in m.out {
            for site in sites {
                let mutant = apply(&def, &site);
                let entry = counts.entry(kind).or_default();
                entry.0 += 1;
                if validate(&mutant, &schemas).is_valid() {
                    if entry.2.len() < 10 {
                        let what = match &site {
                            Site::Text { pointer, value } => format!("{pointer} = {value}"),
                            Site::Value { pointer, value } => format!("{pointer} = {value}"),
                            Site::Remove { pointer, key } => format!("{pointer} without {key}"),
                        };
                        entry.2.push(format!("{}: {what}", path.display()));
                    }
                } else {
                    entry.1 += 1;
                }
            }
        }
    }
    println!("mutants of workflows/*.asl.yaml rejected by validation, per kind:");
    let mut failures = Vec::new();
    for (kind, (n, rejected, passed)) in &counts {
        let pct = 100.0 * *rejected as f64 / *n as f64;
        println!("  {kind:<15} {rejected:>4} / {n:<4} ({pct:.1}%)");
        for p in passed {
            println!("      accepted: {p}");
        }
        if pct < 95.0 {
            failures.push(format!("{kind}: {rejected}/{n}"));
        }
    }
    for kind in ["resource", "path-field", "required-field", "literal-type"] {
        assert!(
            counts.get(kind).is_some_and(|c| c.0 >= 5),
            "too few {kind} mutants: {counts:?}"
        );
    }
    assert!(failures.is_empty(), "below 95%: {failures:?}");
}
