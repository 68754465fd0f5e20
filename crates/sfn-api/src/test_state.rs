//! `TestState`: the request body read as AWS reads it, one state run by the
//! engine ([`piflow_engine::Engine::test_state`]), and the answer in AWS's
//! shape (`status`, `output`, `error`, `cause`, `nextState`,
//! `inspectionData`; JSON values written as strings, as AWS writes them).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use piflow_asl::model::{ResourceKind, Scope, State, StateKind};
use piflow_asl::{LoadOptions, validate_state_value, validate_value};
use piflow_engine::test_state::{
    Inspection, TestMock, TestStateConfig, TestStateError, TestStateOutcome, TestStateRequest,
};
use piflow_engine::{Engine, SystemClock, TaskRegistry};

use crate::api::{ApiError, fields};
use crate::mock_shapes::{self, Mode};
use crate::ops::{self, MAX_DEFINITION};

/// The largest input, variables, context or mocked result (AWS: 256 KiB).
const MAX_DATA: usize = 262_144;

/// How much of the state's data flow the answer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Info,
    Debug,
    Trace,
}

/// `TestState`: run the state `definition` is (or the state `stateName`
/// names in the machine `definition` is) on `input`, and answer as AWS
/// does. An un-mocked Task reaches its integration through `tasks`.
pub async fn test_state(
    body: &Map<String, Value>,
    tasks: &TaskRegistry,
) -> Result<Value, ApiError> {
    let (request, level) = read_request(body)?;
    let engine = Engine::new(tasks.clone(), Arc::new(SystemClock));
    let outcome = engine.test_state(&request).await.map_err(|e| match e {
        TestStateError::Invalid(m) => ApiError::validation(m),
        TestStateError::Unsupported(m) => invalid_definition(m),
    })?;
    Ok(answer(&outcome, level))
}

fn invalid_definition(message: impl Into<String>) -> ApiError {
    ApiError {
        kind: "InvalidDefinition",
        message: message.into(),
        status: 400,
    }
}

fn invalid_input(message: impl Into<String>) -> ApiError {
    ApiError {
        kind: "InvalidExecutionInput",
        message: message.into(),
        status: 400,
    }
}

/// A field holding JSON text, parsed (`what` names it in the message).
fn json_field(
    body: &Map<String, Value>,
    name: &str,
    what: &str,
    bad: fn(String) -> ApiError,
) -> Result<Option<Value>, ApiError> {
    let Some(text) = fields::string(body, name, false, MAX_DATA)? else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| bad(format!("{what} ('{name}') is not valid JSON: {e}")))
}

fn read_request(body: &Map<String, Value>) -> Result<(TestStateRequest, Level), ApiError> {
    let text = fields::string(body, "definition", true, MAX_DEFINITION)?.unwrap_or_default();
    let state_name = fields::string(body, "stateName", false, 80)?;
    let level = match fields::one_of(body, "inspectionLevel", &["INFO", "DEBUG", "TRACE"])? {
        Some("DEBUG") => Level::Debug,
        Some("TRACE") => Level::Trace,
        _ => Level::Info,
    };
    let reveal_secrets = fields::boolean(body, "revealSecrets")?.unwrap_or(false);
    let role_arn = fields::string(body, "roleArn", false, 256)?.map(str::to_string);
    let input = json_field(body, "input", "The input", invalid_input)?.unwrap_or_else(|| json!({}));
    let variables = match json_field(body, "variables", "The variables", ApiError::validation)? {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "The variables ('variables') must be a JSON object of variable names and values, not {}",
                piflow_asl::path::json_type_article(&other)
            )));
        }
    };
    let context = json_field(body, "context", "The context object", ApiError::validation)?;
    if let Some(c) = &context
        && !c.is_object()
    {
        return Err(ApiError::validation(
            "The context object ('context') must be a JSON object",
        ));
    }
    let state = read_state(text, state_name)?;
    let (mock, mode) = read_mock(body)?;
    if mock.is_some() && reveal_secrets {
        return Err(ApiError::validation(
            "TestState does not support RevealSecrets when a mock is specified.",
        ));
    }
    if let (Some(TestMock::Result(v)), StateKind::Task(t)) = (&mock, &state.kind) {
        let (service, action) = match &t.resource_kind {
            ResourceKind::Integration {
                service, action, ..
            }
            | ResourceKind::AwsSdk {
                service, action, ..
            } => (service.as_str(), action.as_str()),
            _ => ("", ""),
        };
        mock_shapes::check(service, action, mode, v).map_err(ApiError::validation)?;
    }
    let config = read_configuration(body)?;
    Ok((
        TestStateRequest {
            state,
            input,
            mock,
            config,
            context,
            variables,
            role_arn,
        },
        level,
    ))
}

/// The state under test: the definition itself, or the state `stateName`
/// names in the machine the definition is (at any depth).
fn read_state(text: &str, state_name: Option<&str>) -> Result<State, ApiError> {
    let definition: Value = serde_json::from_str(text).map_err(|e| {
        invalid_definition(format!(
            "Invalid State Machine Definition: the definition is not JSON: {e}"
        ))
    })?;
    if !definition.is_object() {
        return Err(invalid_definition(
            "Invalid State Machine Definition: the definition must be a JSON object (one state, or a state machine with stateName)",
        ));
    }
    let is_machine = definition.get("States").is_some() || definition.get("StartAt").is_some();
    match (is_machine, state_name) {
        (true, Some(name)) => {
            let v = validate_value(&definition, LoadOptions::default());
            let machine = match v.machine {
                Some(m) if v.is_valid() => m,
                _ => return Err(ops::invalid_definition(&v.diagnostics)),
            };
            find_state(&machine.scope, name).cloned().ok_or_else(|| {
                ApiError::validation(format!(
                    "stateName '{name}' names no state of the state machine in 'definition'"
                ))
            })
        }
        (true, None) => Err(ApiError::validation(
            "The definition is a state machine: name the state to test in 'stateName'",
        )),
        (false, Some(name)) => Err(ApiError::validation(format!(
            "stateName '{name}' is given, so 'definition' must be a whole state machine (with StartAt and States), not one state"
        ))),
        (false, None) => {
            let (state, diagnostics) = validate_state_value(&definition);
            match state {
                Some(s) if !diagnostics.iter().any(|d| d.is_error()) => Ok(s),
                _ => Err(ops::invalid_definition(&diagnostics)),
            }
        }
    }
}

fn find_state<'a>(scope: &'a Scope, name: &str) -> Option<&'a State> {
    scope.states.get(name).or_else(|| {
        scope
            .children()
            .into_iter()
            .find_map(|s| find_state(s, name))
    })
}

fn read_mock(body: &Map<String, Value>) -> Result<(Option<TestMock>, Mode), ApiError> {
    let Some(m) = fields::object(body, "mock")? else {
        return Ok((None, Mode::Strict));
    };
    let mode = match fields::one_of(m, "fieldValidationMode", &["STRICT", "PRESENT", "NONE"])? {
        Some("PRESENT") => Mode::Present,
        Some("NONE") => Mode::None,
        _ => Mode::Strict,
    };
    let result = fields::string(m, "result", false, MAX_DATA)?;
    let error_output = fields::object(m, "errorOutput")?;
    let mock = match (result, error_output) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "A test mock should have only one of the following fields: [result, errorOutput].",
            ));
        }
        (None, None) => {
            return Err(ApiError::validation(
                "A test mock should have one of the following fields: [result, errorOutput].",
            ));
        }
        (Some(text), None) => TestMock::Result(serde_json::from_str(text).map_err(|e| {
            ApiError::validation(format!(
                "The mocked result ('mock.result') is not valid JSON: {e}"
            ))
        })?),
        (None, Some(e)) => {
            let text = |name: &str, max: usize| -> Result<Option<String>, ApiError> {
                match e.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
                    Some(Value::String(_)) => Err(ApiError::validation(format!(
                        "1 validation error detected: Value at 'mock.errorOutput.{name}' failed to satisfy constraint: Member must have length less than or equal to {max}"
                    ))),
                    Some(other) => Err(ApiError::validation(format!(
                        "field 'mock.errorOutput.{name}' must be a string, not {}",
                        piflow_asl::path::json_type_article(other)
                    ))),
                }
            };
            let error = text("error", 256)?;
            if error.is_none() {
                return Err(ApiError::validation(
                    "The field 'mock.errorOutput.error' is required when mock.errorOutput is specified",
                ));
            }
            TestMock::Error {
                error,
                cause: text("cause", 32_768)?,
            }
        }
    };
    Ok((Some(mock), mode))
}

fn read_configuration(body: &Map<String, Value>) -> Result<TestStateConfig, ApiError> {
    let Some(c) = fields::object(body, "stateConfiguration")? else {
        return Ok(TestStateConfig::default());
    };
    let count = |name: &str| -> Result<Option<u64>, ApiError> {
        Ok(fields::integer(c, name, 0, i64::from(i32::MAX))?.map(|n| n as u64))
    };
    Ok(TestStateConfig {
        retrier_retry_count: count("retrierRetryCount")?,
        error_caused_by_state: fields::string(c, "errorCausedByState", false, 80)?
            .map(str::to_string),
        map_iteration_failure_count: count("mapIterationFailureCount")?,
        map_item_reader_data: json_field(
            c,
            "mapItemReaderData",
            "The ItemReader data",
            ApiError::validation,
        )?,
    })
}

/// The answer, as AWS writes it: JSON values as JSON text.
fn answer(o: &TestStateOutcome, level: Level) -> Value {
    let mut out = Map::new();
    out.insert("status".into(), json!(o.status.as_str()));
    if let Some(v) = &o.output {
        out.insert("output".into(), json!(v.to_string()));
    }
    if let Some(e) = &o.error {
        out.insert("error".into(), json!(e));
    }
    if let Some(c) = &o.cause {
        out.insert("cause".into(), json!(c));
    }
    if let Some(n) = &o.next_state {
        out.insert("nextState".into(), json!(n));
    }
    if level != Level::Info {
        out.insert(
            "inspectionData".into(),
            Value::Object(inspection(&o.inspection)),
        );
    }
    Value::Object(out)
}

fn inspection(i: &Inspection) -> Map<String, Value> {
    let mut m = Map::new();
    let texts = [
        ("input", &i.input),
        ("afterInputPath", &i.after_input_path),
        ("afterParameters", &i.after_parameters),
        ("afterArguments", &i.after_arguments),
        ("afterItemsPath", &i.after_items_path),
        ("result", &i.result),
        ("afterResultSelector", &i.after_result_selector),
        ("afterResultPath", &i.after_result_path),
    ];
    for (name, v) in texts {
        if let Some(v) = v {
            m.insert(name.into(), json!(v.to_string()));
        }
    }
    if let Some(vars) = &i.variables {
        m.insert(
            "variables".into(),
            json!(Value::Object(vars.clone()).to_string()),
        );
    }
    if let Some(d) = &i.error_details {
        let mut e = Map::new();
        if let Some(c) = d.catch_index {
            e.insert("catchIndex".into(), json!(c));
        }
        if let Some(r) = d.retry_index {
            e.insert("retryIndex".into(), json!(r));
        }
        if let Some(s) = d.retry_backoff_interval_seconds {
            e.insert("retryBackoffIntervalSeconds".into(), json!(s));
        }
        m.insert("errorDetails".into(), Value::Object(e));
    }
    if let Some(n) = i.max_concurrency {
        m.insert("maxConcurrency".into(), json!(n));
    }
    if let Some(n) = i.tolerated_failure_count {
        m.insert("toleratedFailureCount".into(), json!(n));
    }
    if let Some(p) = i.tolerated_failure_percentage {
        m.insert("toleratedFailurePercentage".into(), json!(p));
    }
    m
}

#[cfg(test)]
#[path = "test_state_tests.rs"]
mod tests;
