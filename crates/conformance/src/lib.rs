//! piflow-conformance: the execution conformance harness (dev only; not
//! part of the `piflow` binary). Runs the corpus of executions recorded
//! against AWS Step Functions and compares status, output, error, cause and
//! the history's event types. Used by the `piflow-conformance` command
//! (`cargo run -p piflow-conformance --release -- DIR`) and the tests.
//!
//! **Invariant.** The stub AWS services in [`services`] exist only to replay
//! recorded executions; nothing that ships links them.
//!
//! **May depend on:** `piflow-asl`, `piflow-engine`. **Never:** a real AWS
//! call, the store.

pub mod services;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use piflow_asl::{LoadOptions, validate_value};
use piflow_engine::{Engine, ExecutionRequest, Status, TaskRegistry, VirtualClock};

/// One corpus case's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub pure_language: bool,
    pub features: Vec<String>,
    pub passed: bool,
    pub trace_matched: Option<bool>,
    pub skipped: Option<String>,
    pub detail: Option<String>,
}

/// Totals over a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub pure_total: usize,
    pub pure_passed: usize,
    pub pure_trace_total: usize,
    pub pure_trace_passed: usize,
    pub total: usize,
    pub passed: usize,
    pub skipped: usize,
    /// feature → (cases, passed)
    pub features: BTreeMap<String, (usize, usize)>,
}

/// Why the corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("cannot read the conformance corpus at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("corpus file {path} is not valid JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

impl CorpusError {
    pub fn code(&self) -> &'static str {
        "corpus-unreadable"
    }
}

/// Read every execution case of `dir/cases` (sorted by file name).
pub fn load_cases(dir: &Path) -> Result<Vec<Value>, CorpusError> {
    let cases = dir.join("cases");
    let io = |source| CorpusError::Io {
        path: cases.display().to_string(),
        source,
    };
    let mut files: Vec<_> = std::fs::read_dir(&cases)
        .map_err(io)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| CorpusError::Io {
            path: f.display().to_string(),
            source,
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|source| CorpusError::Json {
            path: f.display().to_string(),
            source,
        })?;
        if v["kind"] == "execution" {
            out.push(v);
        }
    }
    Ok(out)
}

/// Run one case on a virtual clock.
pub fn run_case(case: &Value) -> CaseResult {
    let name = case["name"].as_str().unwrap_or("?").to_string();
    let pure = case["pure_language"].as_bool().unwrap_or(false);
    let features: Vec<String> = case["features"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut result = CaseResult {
        name: name.clone(),
        pure_language: pure,
        features,
        passed: false,
        trace_matched: None,
        skipped: None,
        detail: None,
    };
    let needs_service = case["needs_service"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    let v = validate_value(&case["definition"], LoadOptions::default());
    let valid = v.is_valid();
    let Some(machine) = v.machine.clone().filter(|_| valid) else {
        result.detail = Some(format!(
            "definition rejected: {}",
            v.errors()
                .map(|d| format!("[{}] {} at {}", d.code, d.message, d.pointer))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        return result;
    };
    let rt = match piflow_engine::clock::virtual_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            result.detail = Some(format!("cannot start a runtime: {e}"));
            return result;
        }
    };
    let input = case["input"].clone();
    // A case recorded as ABORTED was stopped (StopExecution) while it
    // waited: replay that by stopping at the first Wait state.
    let stop_at_wait = case["expected"]["status"] == "ABORTED";
    let outcome = rt.block_on(async {
        let clock = Arc::new(VirtualClock::new(chrono::Utc::now()));
        let mut engine = Engine::new(TaskRegistry::new(), clock);
        // The snapshots normalise every account id to this one.
        engine.options.account = "111111111111".into();
        if needs_service {
            // Stub AWS services that behave like the recorded ones.
            engine.tasks = crate::services::registry_for(case, engine.tokens.clone());
        }
        let waiting = Arc::new(tokio::sync::Notify::new());
        if stop_at_wait {
            engine.sink = Some(Arc::new(StopAtWait(waiting.clone())));
        }
        let request = ExecutionRequest {
            machine: Arc::new(machine),
            state_machine_name: "conformance".into(),
            execution_name: "case".into(),
            input,
            // The snapshots normalise the test's execution role to this word.
            role_arn: Some("snf_role_arn".into()),
            durable: None,
        };
        let stop = async {
            if stop_at_wait {
                waiting.notified().await
            } else {
                futures::future::pending::<()>().await
            }
        };
        engine.run_until(request, stop).await
    });
    let expected = &case["expected"];
    let flag = |name: &str| {
        case["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == name))
    };
    // Nondeterministic values (States.MathRandom, States.UUID) were replaced
    // in the snapshots by fixed words; those count as placeholders too.
    let placeholders = flag("expected_contains_snapshot_placeholders") || flag("nondeterministic");
    let status_ok = expected["status"].as_str() == Some(outcome.status.as_str());
    let mut problems = Vec::new();
    if !status_ok {
        problems.push(format!(
            "status {} (expected {}); error {:?} cause {:?}",
            outcome.status.as_str(),
            expected["status"],
            outcome.error,
            outcome.cause
        ));
    } else if outcome.status == Status::Succeeded {
        let got = outcome.output.clone().unwrap_or(Value::Null);
        if !json_matches(&expected["output"], &got, placeholders) {
            problems.push(format!("output {got} (expected {})", expected["output"]));
        }
    } else {
        let got_error = outcome
            .error
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null);
        let got_cause = outcome
            .cause
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null);
        let want_error = expected.get("error").cloned().unwrap_or(Value::Null);
        let want_cause = expected.get("cause").cloned().unwrap_or(Value::Null);
        if !json_matches(&want_error, &got_error, placeholders) {
            problems.push(format!("error {got_error} (expected {want_error})"));
        }
        // Some recorded causes are JSON documents (a Lambda error, a child
        // execution): compare those as JSON.
        let got_cause = match (&want_cause, &got_cause) {
            (Value::Object(_) | Value::Array(_), Value::String(text)) => {
                serde_json::from_str(text).unwrap_or(got_cause.clone())
            }
            _ => got_cause,
        };
        if !json_matches(&want_cause, &got_cause, placeholders) {
            problems.push(format!("cause {got_cause} (expected {want_cause})"));
        }
    }
    if let Some(trace) = case["expected_trace"].as_array() {
        let want: Vec<Value> = trace.clone();
        let got: Vec<Value> = outcome
            .history
            .iter()
            .map(|e| {
                if e.event_type.ends_with("StateEntered")
                    || e.event_type.ends_with("StateExited")
                    || e.event_type.starts_with("MapIteration")
                {
                    serde_json::json!([e.event_type, e.state])
                } else {
                    serde_json::json!([e.event_type])
                }
            })
            .collect();
        let ok = want == got;
        result.trace_matched = Some(ok);
        if !ok {
            problems.push(format!(
                "trace {} (expected {})",
                serde_json::to_string(&got).unwrap_or_default(),
                serde_json::to_string(&want).unwrap_or_default()
            ));
        }
    }
    let outcome_ok = problems.iter().all(|p| p.starts_with("trace"));
    result.passed = outcome_ok;
    if !problems.is_empty() {
        result.detail = Some(problems.join("\n    "));
    }
    result
}

struct StopAtWait(Arc<tokio::sync::Notify>);

impl piflow_engine::HistorySink for StopAtWait {
    fn record(&self, event: &piflow_engine::HistoryEvent) {
        if event.event_type == "WaitStateEntered" {
            self.0.notify_one();
        }
    }
}

/// Compare with snapshot placeholders (`<uuid:1>`, normalised timestamps …)
/// in the expected value treated as wildcards.
pub fn json_matches(expected: &Value, got: &Value, placeholders: bool) -> bool {
    match (expected, got) {
        (Value::String(e), _) if placeholders && is_placeholder(e) => true,
        (Value::String(e), Value::String(g)) if placeholders && e.contains('<') => {
            wildcard_eq(e, g)
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| json_matches(x, y, placeholders))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|g| json_matches(v, g, placeholders)))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => expected == got,
    }
}

fn is_placeholder(s: &str) -> bool {
    (s.starts_with('<') && s.ends_with('>') && !s.contains(' '))
        || matches!(
            s,
            "date"
                | "start-date"
                | "stop-date"
                | "start-time"
                | "entered-time"
                | "timestamp"
                | "execution-arn"
                | "state-machine-arn"
                | "RandomNumberGenerated"
        )
}

/// `a<x>b` matches `a...b`.
fn wildcard_eq(pattern: &str, s: &str) -> bool {
    let mut parts = Vec::new();
    let mut rest = pattern;
    while let Some(i) = rest.find('<') {
        match rest[i..].find('>') {
            Some(j) => {
                parts.push(&rest[..i]);
                rest = &rest[i + j + 1..];
            }
            None => break,
        }
    }
    parts.push(rest);
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut pos = 0;
    for (k, p) in parts.iter().enumerate() {
        if k == 0 {
            if !s.starts_with(p) {
                return false;
            }
            pos = p.len();
        } else if k == parts.len() - 1 {
            return s.len() >= pos + p.len() && s.ends_with(p);
        } else {
            match s[pos..].find(p) {
                Some(i) => pos += i + p.len(),
                None => return false,
            }
        }
    }
    true
}

/// Run every case and total the results.
pub fn run_all(cases: &[Value]) -> (Vec<CaseResult>, Summary) {
    let mut results = Vec::with_capacity(cases.len());
    let mut s = Summary::default();
    for case in cases {
        let r = run_case(case);
        s.total += 1;
        if r.skipped.is_some() {
            s.skipped += 1;
        }
        if r.passed {
            s.passed += 1;
        }
        if r.pure_language {
            s.pure_total += 1;
            if r.passed {
                s.pure_passed += 1;
            }
            if let Some(t) = r.trace_matched {
                s.pure_trace_total += 1;
                if t {
                    s.pure_trace_passed += 1;
                }
            }
        }
        for f in &r.features {
            let e = s.features.entry(f.clone()).or_insert((0, 0));
            e.0 += 1;
            if r.passed {
                e.1 += 1;
            }
        }
        results.push(r);
    }
    (results, s)
}
