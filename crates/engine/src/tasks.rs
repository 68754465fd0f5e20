//! Tasks reach the engine through one trait: a resource name resolved in a
//! registry. Built-in steps and AWS integrations register handlers; tests and
//! `piflow run --mock` register a [`MockConfig`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::Value;

use super::error::Failure;

/// What a Task state asks a handler to do.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// The execution's ARN.
    pub execution: String,
    pub state_name: String,
    /// The resource as written, e.g. `arn:aws:states:::lambda:invoke`.
    pub resource: String,
    /// The effective input (after InputPath/Parameters or Arguments).
    pub input: Value,
    /// Set for `.waitForTaskToken` resources.
    pub task_token: Option<String>,
    /// Unique per state entry and attempt; built-in steps pass it to AWS as
    /// the client token so that a re-invocation is idempotent.
    pub idempotency_token: String,
    pub credentials: Option<Value>,
    /// Which attempt this is (0 = first).
    pub attempt: u32,
}

/// A task implementation.
pub trait TaskHandler: Send + Sync {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>>;

    /// Does the step work in real time (network or disk I/O, SDK timeouts,
    /// polling)? Then on a virtual clock it runs on a real-time runtime
    /// while virtual time stands still (see `Clock::hold`).
    fn real_time(&self) -> bool {
        false
    }
}

/// Resolves a resource to its handler: a mock for the state first, then the
/// longest registered resource prefix.
#[derive(Default, Clone)]
pub struct TaskRegistry {
    handlers: Vec<(String, Arc<dyn TaskHandler>)>,
    mocks: Option<Arc<MockConfig>>,
}

impl TaskRegistry {
    pub fn new() -> Self {
        TaskRegistry::default()
    }

    /// Handle every resource starting with `prefix`.
    pub fn register(&mut self, prefix: impl Into<String>, handler: Arc<dyn TaskHandler>) {
        self.handlers.push((prefix.into(), handler));
        self.handlers.sort_by_key(|h| std::cmp::Reverse(h.0.len()));
    }

    /// The registered resources (prefixes), longest first.
    pub fn resources(&self) -> Vec<String> {
        self.handlers.iter().map(|(p, _)| p.clone()).collect()
    }

    pub fn with_mocks(mut self, mocks: MockConfig) -> Self {
        self.mocks = Some(Arc::new(mocks));
        self
    }

    pub fn has_mock(&self, state: &str) -> bool {
        self.mocks.as_ref().is_some_and(|m| m.has(state))
    }

    /// Invoke through the engine's clock: a real-time step on a virtual
    /// clock runs while virtual time stands still.
    pub fn invoke_on(
        &self,
        request: TaskRequest,
        clock: &dyn super::Clock,
    ) -> BoxFuture<'static, Result<Value, Failure>> {
        self.resolve(request, Some(clock))
    }

    /// Run the task: its mocked response, else its handler.
    pub fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        self.resolve(request, None)
    }

    fn resolve(
        &self,
        request: TaskRequest,
        clock: Option<&dyn super::Clock>,
    ) -> BoxFuture<'static, Result<Value, Failure>> {
        if let Some(m) = &self.mocks
            && let Some(r) = m.next(&request.state_name)
        {
            return Box::pin(async move { r });
        }
        match self
            .handlers
            .iter()
            .find(|(p, _)| request.resource.starts_with(p.as_str()))
        {
            Some((_, h)) => match clock {
                Some(c) if h.real_time() => c.hold(h.invoke(request)),
                _ => h.invoke(request),
            },
            None => {
                let resource = request.resource.clone();
                let state = request.state_name.clone();
                Box::pin(async move {
                    Err(Failure::new(
                        "States.TaskFailed",
                        format!(
                            "no handler for resource '{resource}' of state '{state}': piflow has no built-in for it; run with --mock to give the state a mocked response"
                        ),
                    ))
                })
            }
        }
    }
}

/// One mocked response: a result or an error.
#[derive(Debug, Clone, PartialEq)]
pub enum MockResponse {
    Return(Value),
    Throw { error: String, cause: String },
}

/// Mocked responses per state, in the shape of Step Functions Local's
/// MockConfig: each state has a sequence of responses; the n-th call gets
/// the n-th response (the last one repeats).
#[derive(Debug, Default)]
pub struct MockConfig {
    states: HashMap<String, Vec<MockResponse>>,
    calls: Mutex<HashMap<String, usize>>,
}

/// Why a mock file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockError {
    #[error("mock configuration: {0}")]
    Invalid(String),
}

impl MockError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[(
        "invalid-mock",
        "a mock file that is not a mock configuration",
    )];

    pub fn code(&self) -> &'static str {
        "invalid-mock"
    }
}

impl MockConfig {
    pub fn new(states: HashMap<String, Vec<MockResponse>>) -> Self {
        MockConfig {
            states,
            calls: Mutex::new(HashMap::new()),
        }
    }

    pub fn has(&self, state: &str) -> bool {
        self.states.contains_key(state)
    }

    fn next(&self, state: &str) -> Option<Result<Value, Failure>> {
        let seq = self.states.get(state)?;
        let n = {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            let c = calls.entry(state.to_string()).or_insert(0);
            let n = *c;
            *c += 1;
            n
        };
        let r = seq.get(n).or_else(|| seq.last())?;
        Some(match r {
            MockResponse::Return(v) => Ok(v.clone()),
            MockResponse::Throw { error, cause } => Err(Failure::new(error.clone(), cause.clone())),
        })
    }

    /// Parse a mock file. Two shapes are accepted:
    ///
    /// * piflow's: `{"States": {"StateName": [{"Return": ...}, {"Throw": {"Error": ..., "Cause": ...}}]}}`
    /// * Step Functions Local's: `{"StateMachines": {M: {"TestCases": {T: {"StateName": "ResponseName"}}}},
    ///   "MockedResponses": {"ResponseName": {"0": {"Return": ...}, "1-2": {"Throw": ...}}}}`;
    ///   `test_case` picks `M/T` or `T` (the first test case when absent).
    pub fn from_value(v: &Value, test_case: Option<&str>) -> Result<MockConfig, MockError> {
        let bad = |m: String| MockError::Invalid(m);
        if let Some(states) = v.get("States") {
            let obj = states
                .as_object()
                .ok_or_else(|| bad("\"States\" must be an object of state names".into()))?;
            let mut out = HashMap::new();
            for (name, seq) in obj {
                let responses = match seq {
                    Value::Array(items) => items
                        .iter()
                        .enumerate()
                        .map(|(i, r)| parse_response(r, &format!("States/{name}/{i}")))
                        .collect::<Result<Vec<_>, _>>()?,
                    other => vec![parse_response(other, &format!("States/{name}"))?],
                };
                if responses.is_empty() {
                    return Err(bad(format!(
                        "States/{name}: the list of responses is empty"
                    )));
                }
                out.insert(name.clone(), responses);
            }
            return Ok(MockConfig::new(out));
        }
        let machines = v
            .get("StateMachines")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("expected \"States\" (piflow) or \"StateMachines\" and \"MockedResponses\" (Step Functions Local)".into()))?;
        let responses = v
            .get("MockedResponses")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("\"MockedResponses\" is missing".into()))?;
        let (want_machine, want_case) = match test_case {
            Some(t) => match t.split_once('/') {
                Some((m, c)) => (Some(m), Some(c)),
                None => (None, Some(t)),
            },
            None => (None, None),
        };
        let mut chosen = None;
        for (mname, m) in machines {
            if want_machine.is_some_and(|w| w != mname) {
                continue;
            }
            let Some(cases) = m.get("TestCases").and_then(Value::as_object) else {
                continue;
            };
            for (cname, case) in cases {
                if want_case.is_none_or(|w| w == cname) {
                    chosen = Some((format!("{mname}/{cname}"), case));
                    break;
                }
            }
            if chosen.is_some() {
                break;
            }
        }
        let (case_name, case) = chosen.ok_or_else(|| {
            bad(format!(
                "no test case {} in StateMachines",
                test_case.unwrap_or("(any)")
            ))
        })?;
        let case = case.as_object().ok_or_else(|| {
            bad(format!(
                "test case {case_name} must map state names to response names"
            ))
        })?;
        let mut out = HashMap::new();
        for (state, rname) in case {
            let rname = rname
                .as_str()
                .ok_or_else(|| bad(format!("{case_name}/{state}: expected a response name")))?;
            let r = responses
                .get(rname)
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    bad(format!(
                        "{case_name}/{state}: MockedResponses has no {rname:?}"
                    ))
                })?;
            let mut seq: Vec<(usize, MockResponse)> = Vec::new();
            for (range, resp) in r {
                let (lo, hi) = match range.split_once('-') {
                    Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
                    None => (range.parse::<usize>(), range.parse::<usize>()),
                };
                let (Ok(lo), Ok(hi)) = (lo, hi) else {
                    return Err(bad(format!(
                        "MockedResponses/{rname}: {range:?} is not an invocation index or range like \"1-3\""
                    )));
                };
                if hi < lo || hi > 10_000 {
                    return Err(bad(format!("MockedResponses/{rname}: bad range {range:?}")));
                }
                let parsed = parse_response(resp, &format!("MockedResponses/{rname}/{range}"))?;
                for i in lo..=hi {
                    seq.push((i, parsed.clone()));
                }
            }
            seq.sort_by_key(|(i, _)| *i);
            for (expected, (i, _)) in seq.iter().enumerate() {
                if *i != expected {
                    return Err(bad(format!(
                        "MockedResponses/{rname}: invocation {expected} has no response"
                    )));
                }
            }
            out.insert(state.clone(), seq.into_iter().map(|(_, r)| r).collect());
        }
        Ok(MockConfig::new(out))
    }
}

fn parse_response(v: &Value, at: &str) -> Result<MockResponse, MockError> {
    if let Some(r) = v.get("Return") {
        return Ok(MockResponse::Return(r.clone()));
    }
    if let Some(t) = v.get("Throw") {
        let error = t
            .get("Error")
            .and_then(Value::as_str)
            .ok_or_else(|| MockError::Invalid(format!("{at}: Throw needs an Error string")))?;
        let cause = t.get("Cause").and_then(Value::as_str).unwrap_or("");
        return Ok(MockResponse::Throw {
            error: error.to_string(),
            cause: cause.to_string(),
        });
    }
    Err(MockError::Invalid(format!(
        "{at}: a response is {{\"Return\": ...}} or {{\"Throw\": {{\"Error\": ..., \"Cause\": ...}}}}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sfn_local_shape_with_ranges() {
        let cfg = MockConfig::from_value(
            &json!({
                "StateMachines": {"M": {"TestCases": {"Retry": {"Call": "Flaky"}}}},
                "MockedResponses": {"Flaky": {
                    "0-1": {"Throw": {"Error": "Lambda.ServiceException", "Cause": "busy"}},
                    "2": {"Return": {"ok": true}}
                }}
            }),
            Some("Retry"),
        )
        .unwrap();
        assert_eq!(
            cfg.next("Call").unwrap().unwrap_err().error_name(),
            "Lambda.ServiceException"
        );
        assert!(cfg.next("Call").unwrap().is_err());
        assert_eq!(cfg.next("Call").unwrap().unwrap(), json!({"ok": true}));
        assert_eq!(cfg.next("Call").unwrap().unwrap(), json!({"ok": true}));
        assert!(cfg.next("Other").is_none());
    }

    #[test]
    fn bad_mocks_are_explained() {
        let e = MockConfig::from_value(&json!({"States": {"A": [{"Nope": 1}]}}), None).unwrap_err();
        assert!(e.to_string().contains("States/A/0"), "{e}");
        let e = MockConfig::from_value(
            &json!({"StateMachines": {"M": {"TestCases": {"T": {"A": "R"}}}}, "MockedResponses": {"R": {"1": {"Return": 1}}}}),
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("invocation 0 has no response"),
            "{e}"
        );
    }
}
