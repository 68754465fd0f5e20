//! Mocked task responses: a mock file, parsed and checked once
//! ([`MockFile`]), and one set of responses of it ([`MockConfig`]), which
//! counts each execution's calls of each state apart.
//!
//! Two file shapes are accepted:
//!
//! * piflow's: `{"States": {"StateName": [{"Return": ...}, {"Throw": {"Error": ..., "Cause": ...}}]}}`
//! * Step Functions Local's: `{"StateMachines": {M: {"TestCases": {T: {"StateName": "ResponseName"}}}},
//!   "MockedResponses": {"ResponseName": {"0": {"Return": ...}, "1-2": {"Throw": ...}}}}`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::error::Failure;

/// One mocked response: a result or an error.
#[derive(Debug, Clone, PartialEq)]
pub enum MockResponse {
    Return(Value),
    Throw { error: String, cause: String },
}

/// Each mocked state's responses, in call order.
type States = HashMap<String, Vec<MockResponse>>;

/// A state machine's test cases, by name, in the file's order.
type Cases = Vec<(String, Arc<MockConfig>)>;

/// Mocked responses per state: an execution's n-th call of a state gets
/// its n-th response (the last one repeats). Calls are counted by
/// execution (its ARN) and state, so that executions sharing the
/// responses do not take each other's, and a redrive or resume in this
/// process goes on from the calls its execution made.
#[derive(Debug, Default)]
pub struct MockConfig {
    states: States,
    calls: Mutex<HashMap<(String, String), usize>>,
}

/// Why a mock file, or a test case of it, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockError {
    #[error("mock configuration: {0}")]
    Invalid(String),
    #[error("mock configuration: {0}")]
    NoTestCase(String),
}

impl MockError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        (
            "invalid-mock",
            "a mock file that is not a mock configuration",
        ),
        (
            "unknown-test-case",
            "a test case (`--mock FILE#CASE`, a state machine ARN's `#CASE`) the mock file does not define",
        ),
    ];

    pub fn code(&self) -> &'static str {
        match self {
            MockError::Invalid(_) => "invalid-mock",
            MockError::NoTestCase(_) => "unknown-test-case",
        }
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

    /// The response to execution `execution`'s next call of `state`.
    pub fn next(&self, execution: &str, state: &str) -> Option<Result<Value, Failure>> {
        let seq = self.states.get(state)?;
        let n = {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            let c = calls
                .entry((execution.to_string(), state.to_string()))
                .or_insert(0);
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

    /// Parse a mock file and take one set of responses from it: `test_case`
    /// picks `M/T` or `T` of a Step Functions Local file (the first test
    /// case when absent); see [`MockFile::select`].
    pub fn from_value(v: &Value, test_case: Option<&str>) -> Result<MockConfig, MockError> {
        let chosen = MockFile::from_value(v)?.select(test_case)?;
        Ok(MockConfig::new(chosen.states.clone()))
    }
}

/// A whole mock file, every test case checked when it is read.
#[derive(Debug, Clone)]
pub enum MockFile {
    /// piflow's shape: one set of responses.
    States(Arc<MockConfig>),
    /// Step Functions Local's: state machine → test case → responses, in
    /// the file's order.
    Machines(Vec<(String, Cases)>),
}

impl MockFile {
    /// Parse and check a mock file; every problem is reported at once.
    pub fn from_value(v: &Value) -> Result<MockFile, MockError> {
        let mut problems = Vec::new();
        let file = if let Some(states) = v.get("States") {
            MockFile::States(Arc::new(MockConfig::new(piflow_states(
                states,
                &mut problems,
            ))))
        } else {
            match (
                v.get("StateMachines").and_then(Value::as_object),
                v.get("MockedResponses").and_then(Value::as_object),
            ) {
                (Some(machines), Some(responses)) => {
                    MockFile::Machines(local_machines(machines, responses, &mut problems))
                }
                (Some(_), None) => {
                    problems.push("\"MockedResponses\" is missing".to_string());
                    MockFile::Machines(Vec::new())
                }
                _ => {
                    problems.push("expected \"States\" (piflow) or \"StateMachines\" and \"MockedResponses\" (Step Functions Local)".to_string());
                    MockFile::Machines(Vec::new())
                }
            }
        };
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(MockError::Invalid(problems.join("; ")))
        }
    }

    /// One set of responses: piflow's file has one; of a Step Functions
    /// Local file, `spec` `M/T` picks machine M's test case T, `T` the
    /// first machine's test case T, none the first test case.
    pub fn select(&self, spec: Option<&str>) -> Result<Arc<MockConfig>, MockError> {
        let machines = match self {
            MockFile::States(states) => return Ok(states.clone()),
            MockFile::Machines(m) => m,
        };
        let (want_machine, want_case) = match spec {
            Some(t) => match t.split_once('/') {
                Some((m, c)) => (Some(m), Some(c)),
                None => (None, Some(t)),
            },
            None => (None, None),
        };
        machines
            .iter()
            .filter(|(m, _)| want_machine.is_none_or(|w| w == m))
            .flat_map(|(_, cases)| cases)
            .find(|(c, _)| want_case.is_none_or(|w| w == c))
            .map(|(_, states)| states.clone())
            .ok_or_else(|| {
                MockError::NoTestCase(format!(
                    "no test case {} in StateMachines",
                    spec.unwrap_or("(any)")
                ))
            })
    }

    /// State machine `machine`'s test case `case` (an execution started as
    /// `…:stateMachine:MACHINE#CASE`).
    pub fn case(&self, machine: &str, case: &str) -> Result<Arc<MockConfig>, MockError> {
        let MockFile::Machines(machines) = self else {
            return Err(MockError::NoTestCase(format!(
                "test case {case}: the mock file has no test cases (it is piflow's \"States\" shape)"
            )));
        };
        let Some((_, cases)) = machines.iter().find(|(m, _)| m == machine) else {
            return Err(MockError::NoTestCase(format!(
                "the mock file has no state machine {machine:?} in StateMachines"
            )));
        };
        match cases.iter().find(|(c, _)| c == case) {
            Some((_, states)) => Ok(states.clone()),
            None => {
                let known: Vec<&str> = cases.iter().map(|(c, _)| c.as_str()).collect();
                Err(MockError::NoTestCase(format!(
                    "state machine {machine:?} has no test case {case:?} in the mock file (it has: {})",
                    known.join(", ")
                )))
            }
        }
    }
}

fn piflow_states(states: &Value, problems: &mut Vec<String>) -> States {
    let mut out = HashMap::new();
    let Some(obj) = states.as_object() else {
        problems.push("\"States\" must be an object of state names".into());
        return out;
    };
    for (name, seq) in obj {
        let responses: Vec<MockResponse> = match seq {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, r)| response(r, &format!("States/{name}/{i}"), problems))
                .collect(),
            other => response(other, &format!("States/{name}"), problems)
                .into_iter()
                .collect(),
        };
        if seq.as_array().is_some_and(Vec::is_empty) {
            problems.push(format!("States/{name}: the list of responses is empty"));
        }
        out.insert(name.clone(), responses);
    }
    out
}

fn local_machines(
    machines: &Map<String, Value>,
    responses: &Map<String, Value>,
    problems: &mut Vec<String>,
) -> Vec<(String, Cases)> {
    // Every named response's sequence, parsed once, used or not.
    let parsed: HashMap<&str, Option<Vec<MockResponse>>> = responses
        .keys()
        .map(|rname| (rname.as_str(), sequence(rname, responses, problems)))
        .collect();
    let mut out = Vec::new();
    for (mname, m) in machines {
        let Some(cases) = m.get("TestCases").and_then(Value::as_object) else {
            problems.push(format!("StateMachines/{mname}: \"TestCases\" is missing"));
            continue;
        };
        let mut machine_cases = Vec::new();
        for (cname, case) in cases {
            let case_name = format!("{mname}/{cname}");
            let Some(case) = case.as_object() else {
                problems.push(format!(
                    "test case {case_name} must map state names to response names"
                ));
                continue;
            };
            let mut states = HashMap::new();
            for (state, rname) in case {
                let Some(rname) = rname.as_str() else {
                    problems.push(format!("{case_name}/{state}: expected a response name"));
                    continue;
                };
                match parsed.get(rname) {
                    Some(Some(seq)) => {
                        states.insert(state.clone(), seq.clone());
                    }
                    // A response that does not parse is reported once.
                    Some(None) => {}
                    None => problems.push(format!(
                        "{case_name}/{state}: MockedResponses has no {rname:?}"
                    )),
                }
            }
            machine_cases.push((cname.clone(), Arc::new(MockConfig::new(states))));
        }
        out.push((mname.clone(), machine_cases));
    }
    out
}

/// A named response's sequence: `{"0": …, "1-2": …}`, every invocation
/// from 0 given once. `None` when it does not parse (the problem is
/// noted).
fn sequence(
    rname: &str,
    responses: &Map<String, Value>,
    problems: &mut Vec<String>,
) -> Option<Vec<MockResponse>> {
    let Some(r) = responses.get(rname).and_then(Value::as_object) else {
        problems.push(format!(
            "MockedResponses/{rname}: expected an object of invocation indexes"
        ));
        return None;
    };
    let before = problems.len();
    let mut seq: Vec<(usize, MockResponse)> = Vec::new();
    for (range, resp) in r {
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (range.parse::<usize>(), range.parse::<usize>()),
        };
        let (Ok(lo), Ok(hi)) = (lo, hi) else {
            problems.push(format!(
                "MockedResponses/{rname}: {range:?} is not an invocation index or range like \"1-3\""
            ));
            continue;
        };
        if hi < lo || hi > 10_000 {
            problems.push(format!("MockedResponses/{rname}: bad range {range:?}"));
            continue;
        }
        if let Some(parsed) = response(resp, &format!("MockedResponses/{rname}/{range}"), problems)
        {
            seq.extend((lo..=hi).map(|i| (i, parsed.clone())));
        }
    }
    if problems.len() > before {
        return None;
    }
    seq.sort_by_key(|(i, _)| *i);
    for (expected, (i, _)) in seq.iter().enumerate() {
        if *i != expected {
            problems.push(format!(
                "MockedResponses/{rname}: invocation {expected} has no response"
            ));
            return None;
        }
    }
    Some(seq.into_iter().map(|(_, r)| r).collect())
}

fn response(v: &Value, at: &str, problems: &mut Vec<String>) -> Option<MockResponse> {
    if let Some(r) = v.get("Return") {
        return Some(MockResponse::Return(r.clone()));
    }
    if let Some(t) = v.get("Throw") {
        let Some(error) = t.get("Error").and_then(Value::as_str) else {
            problems.push(format!("{at}: Throw needs an Error string"));
            return None;
        };
        let cause = t.get("Cause").and_then(Value::as_str).unwrap_or("");
        return Some(MockResponse::Throw {
            error: error.to_string(),
            cause: cause.to_string(),
        });
    }
    problems.push(format!(
        "{at}: a response is {{\"Return\": ...}} or {{\"Throw\": {{\"Error\": ..., \"Cause\": ...}}}}"
    ));
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn local() -> Value {
        json!({
            "StateMachines": {
                "Orders": {"TestCases": {
                    "HappyPath": {"Charge": "Charged"},
                    "RetryPath": {"Charge": "FlakyThenCharged"}
                }},
                "Other": {"TestCases": {"HappyPath": {"X": "Charged"}}}
            },
            "MockedResponses": {
                "Charged": {"0": {"Return": {"ok": true}}},
                "FlakyThenCharged": {
                    "0-1": {"Throw": {"Error": "Lambda.TooManyRequestsException", "Cause": "busy"}},
                    "2": {"Return": {"ok": "late"}}
                }
            }
        })
    }

    #[test]
    fn each_execution_counts_its_own_calls() {
        let file = MockFile::from_value(&local()).expect("file");
        let retry = file.case("Orders", "RetryPath").expect("case");
        assert!(retry.next("e1", "Charge").is_some_and(|r| r.is_err()));
        assert!(retry.next("e1", "Charge").is_some_and(|r| r.is_err()));
        // Another execution of the same case starts from its first call.
        assert!(retry.next("e2", "Charge").is_some_and(|r| r.is_err()));
        // The case read again is the same responses, the same counts.
        let again = file.case("Orders", "RetryPath").expect("case");
        assert_eq!(again.next("e1", "Charge"), Some(Ok(json!({"ok": "late"}))));
        assert_eq!(again.next("e1", "Charge"), Some(Ok(json!({"ok": "late"}))));
        assert!(again.next("e2", "Charge").is_some_and(|r| r.is_err()));
        let happy = file.case("Orders", "HappyPath").expect("case");
        assert_eq!(happy.next("e1", "Charge"), Some(Ok(json!({"ok": true}))));
        assert!(!happy.has("X"));
        assert_eq!(happy.next("e1", "X"), None);
    }

    #[test]
    fn unknown_machines_and_cases_are_named() {
        let file = MockFile::from_value(&local()).expect("file");
        let e = file.case("Orders", "SadPath").expect_err("no such case");
        assert_eq!(e.code(), "unknown-test-case");
        assert!(e.to_string().contains("HappyPath, RetryPath"), "{e}");
        let e = file.case("Nope", "HappyPath").expect_err("no such machine");
        assert!(e.to_string().contains("\"Nope\""), "{e}");
        let piflow = MockFile::from_value(&json!({"States": {"A": {"Return": 1}}})).expect("file");
        assert_eq!(
            piflow.case("Orders", "HappyPath").map(|_| ()),
            Err(MockError::NoTestCase(
                "test case HappyPath: the mock file has no test cases (it is piflow's \"States\" shape)".into()
            ))
        );
        assert!(piflow.select(None).is_ok_and(|m| m.has("A")));
    }

    #[test]
    fn select_keeps_the_file_order_and_the_machine_prefix() {
        let file = MockFile::from_value(&local()).expect("file");
        assert!(file.select(None).is_ok_and(|m| m.has("Charge")));
        assert!(
            file.select(Some("Other/HappyPath"))
                .is_ok_and(|m| m.has("X"))
        );
        assert!(
            file.select(Some("HappyPath"))
                .is_ok_and(|m| m.has("Charge"))
        );
        assert_eq!(
            file.select(Some("Nope")).map(|_| ()).map_err(|e| e.code()),
            Err("unknown-test-case")
        );
    }

    #[test]
    fn every_problem_of_a_file_is_reported_at_once() {
        let e = MockFile::from_value(&json!({
            "StateMachines": {
                "M": {"TestCases": {
                    "A": {"S1": "Missing", "S2": "BadRange", "S3": 7},
                    "B": "not an object"
                }},
                "N": {}
            },
            "MockedResponses": {
                "BadRange": {"0": {"Return": 1}, "3-1": {"Return": 2}, "x": {"Nope": 1}},
                "Unused": {"1": {"Return": 1}}
            }
        }))
        .expect_err("refused");
        let text = e.to_string();
        for part in [
            "M/A/S1: MockedResponses has no \"Missing\"",
            "MockedResponses/BadRange: bad range \"3-1\"",
            "MockedResponses/BadRange: \"x\" is not an invocation index",
            "M/A/S3: expected a response name",
            "test case M/B must map state names",
            "StateMachines/N: \"TestCases\" is missing",
            "MockedResponses/Unused: invocation 0 has no response",
        ] {
            assert!(text.contains(part), "{part} not in {text}");
        }
        assert_eq!(e.code(), "invalid-mock");
    }
}
