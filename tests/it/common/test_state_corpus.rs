//! TestState's conformance cases: the request each stands for, and the
//! comparison of an answer with the one AWS recorded (shared through
//! `#[path]` by `crates/sfn-api/tests/conformance_test_state.rs`, which
//! calls the operation directly, and `tests/it/sfn_api.rs`, which sends
//! the requests with boto3 to a running `piflow serve`).
//!
//! AWS writes `output` and the inspection data as JSON text; the corpus
//! holds them parsed (some, not all). Both sides are compared as JSON
//! values. With `expected_contains_snapshot_placeholders`, a recorded
//! `<...>` placeholder matches any text, the normalised account
//! `111111111111` any account and a normalised time (`date`) any time.
//! The requests that passed a `roleArn` (their answers show one in the
//! context object, the recording dropped it) pass one again.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Map, Value, json};

/// The request body a case stands for.
pub fn request(case: &Value) -> Map<String, Value> {
    let mut body = case["test_state_args"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    body.insert(
        "definition".into(),
        json!(serde_json::to_string(&case["definition"]).unwrap()),
    );
    body.insert(
        "input".into(),
        json!(serde_json::to_string(&case["input"]).unwrap()),
    );
    if case["expected"].to_string().contains(":role/") && !body.contains_key("roleArn") {
        body.insert(
            "roleArn".into(),
            json!("arn:aws:iam::111111111111:role/piflow-test-state"),
        );
    }
    body
}

/// JSON text as the value it writes (other values as they are).
fn parsed(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

/// The answer with its JSON texts parsed; `expected`: parse only the
/// inspection data (the corpus already parsed `output`).
fn normalised(answer: &Value, expected: bool) -> Value {
    let mut out = Map::new();
    let Some(m) = answer.as_object() else {
        return answer.clone();
    };
    for (k, v) in m {
        let v = match k.as_str() {
            "output" if !expected => parsed(v),
            "inspectionData" => Value::Object(
                v.as_object()
                    .map(|i| i.iter().map(|(k, v)| (k.clone(), parsed(v))).collect())
                    .unwrap_or_default(),
            ),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

/// Does `actual` match the `pattern` text, whose `<...>` and
/// `111111111111` match any non-empty text?
fn glob(pattern: &str, actual: &str) -> bool {
    if pattern.is_empty() {
        return actual.is_empty();
    }
    let wild = if pattern.starts_with('<') {
        pattern.find('>').map(|e| e + 1)
    } else if pattern.starts_with("111111111111") {
        Some(12)
    } else {
        None
    };
    match wild {
        Some(n) => {
            let rest = &pattern[n..];
            actual
                .char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .chain([actual.len()])
                .any(|i| glob(rest, &actual[i..]))
        }
        None => {
            let c = pattern.chars().next().unwrap();
            actual.starts_with(c) && glob(&pattern[c.len_utf8()..], &actual[c.len_utf8()..])
        }
    }
}

/// The first difference between `expected` and `actual` (`None`: they match).
pub fn diff(path: &str, expected: &Value, actual: &Value, wildcards: bool) -> Option<String> {
    let show = |v: &Value| {
        let s = v.to_string();
        if s.len() > 120 {
            format!(
                "{}…",
                &s[..s.char_indices().nth(117).map_or(s.len(), |(i, _)| i)]
            )
        } else {
            s
        }
    };
    let differ = || {
        Some(format!(
            "{path}: expected {} got {}",
            show(expected),
            show(actual)
        ))
    };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => {
                        if let Some(d) = diff(&format!("{path}/{k}"), ev, av, wildcards) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{path}/{k}: missing (expected {})", show(ev))),
                }
            }
            a.keys()
                .find(|k| !e.contains_key(*k))
                .map(|k| format!("{path}/{k}: unexpected {}", show(&a[k])))
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return differ();
            }
            e.iter()
                .zip(a)
                .enumerate()
                .find_map(|(i, (ev, av))| diff(&format!("{path}/{i}"), ev, av, wildcards))
        }
        (Value::Number(e), Value::Number(a)) => (e.as_f64() != a.as_f64()).then(differ).flatten(),
        (Value::String(e), Value::String(a)) if wildcards => {
            (!(e == "date" || glob(e, a))).then(differ).flatten()
        }
        (e, a) => (e != a).then(differ).flatten(),
    }
}

/// The counts of a run over the cases.
#[derive(Debug, Default)]
pub struct Score {
    pub total: usize,
    pub passed: usize,
    pub pure_total: usize,
    pub pure_passed: usize,
    pub failures: Vec<String>,
}

impl Score {
    /// Compare one case's answer (`Err`: the request was refused) with
    /// AWS's.
    pub fn add(&mut self, name: &str, case: &Value, answer: Result<Value, String>) {
        let pure = case["pure_language"] == true;
        let wildcards = case["flags"].as_array().is_some_and(|f| {
            f.iter()
                .any(|f| f == "expected_contains_snapshot_placeholders")
        });
        let problem = match answer {
            Ok(a) => diff(
                "",
                &normalised(&case["expected"], true),
                &normalised(&a, false),
                wildcards,
            ),
            Err(e) => Some(format!("refused: {e}")),
        };
        self.total += 1;
        self.pure_total += usize::from(pure);
        match problem {
            None => {
                self.passed += 1;
                self.pure_passed += usize::from(pure);
            }
            Some(d) => self
                .failures
                .push(format!("{}{name}: {d}", if pure { "[pure] " } else { "" })),
        }
    }

    /// Print the counts and failures; assert the target: every pure case,
    /// and at least `percent` % of all.
    pub fn report(&self, what: &str, percent: usize) {
        eprintln!(
            "conformance (TestState{what}): pure {}/{}, all {}/{}",
            self.pure_passed, self.pure_total, self.passed, self.total
        );
        for f in &self.failures {
            eprintln!("  FAIL {f}");
        }
        assert_eq!(self.total, 149, "the corpus holds 149 test_state cases");
        assert_eq!(self.pure_passed, self.pure_total, "every pure case passes");
        assert!(
            self.passed * 100 >= self.total * percent,
            "at least {percent}% of all cases pass ({}/{})",
            self.passed,
            self.total
        );
    }
}
