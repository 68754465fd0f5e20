//! One API request, from its bytes to AWS's answer: authentication, the
//! operation named by `X-Amz-Target`, its JSON body, the answer or the
//! error in the awsJson1_0 shape (`{"__type": …, "message": …}`).

use serde_json::{Map, Value, json};

use crate::sigv4::{self, KeyPairs, ReplayGuard};

/// The prefix of every `X-Amz-Target` of the Step Functions API.
pub const TARGET_PREFIX: &str = "AWSStepFunctions.";

/// The content type of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The largest request body the API reads: a definition may be 1 MiB of
/// characters, written in JSON with escapes.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// An answer: the HTTP status and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer { status: 200, body }
    }
}

/// An operation's failure, as AWS names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// AWS's error type (`ValidationException`, `InvalidDefinition`, …).
    pub kind: &'static str,
    pub message: String,
    pub status: u16,
}

impl ApiError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        (
            "api-off",
            "the server has no key pair: the Step Functions API is refused",
        ),
        (
            "api-unknown-operation",
            "X-Amz-Target names no operation piflow answers",
        ),
        (
            "api-bad-request",
            "the body is not a JSON object, or a field breaks AWS's constraints",
        ),
    ];

    pub fn code(&self) -> &'static str {
        match self.kind {
            "AccessDeniedException" => "api-off",
            "UnknownOperationException" => "api-unknown-operation",
            _ => "api-bad-request",
        }
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError {
            kind: "ValidationException",
            message: message.into(),
            status: 400,
        }
    }

    fn serialization(message: impl Into<String>) -> ApiError {
        ApiError {
            kind: "SerializationException",
            message: message.into(),
            status: 400,
        }
    }

    fn answer(&self) -> Answer {
        Answer {
            status: self.status,
            body: json!({"__type": self.kind, "message": self.message}),
        }
    }
}

/// The API as a server holds it: its key pairs and the signatures it saw.
pub struct Api {
    keys: Option<KeyPairs>,
    replay: ReplayGuard,
}

impl Api {
    /// An API that accepts requests signed with one of `keys` (`None`: it
    /// refuses every request, naming the variables that turn it on).
    pub fn new(keys: Option<KeyPairs>) -> Api {
        Api {
            keys,
            replay: ReplayGuard::default(),
        }
    }

    /// Is the API on (a key pair given)?
    pub fn enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// Answer one request: authenticated first, then its operation.
    pub fn handle(&self, req: &sigv4::Request<'_>, now: chrono::DateTime<chrono::Utc>) -> Answer {
        let Some(keys) = &self.keys else {
            return ApiError {
                kind: "AccessDeniedException",
                message: "the Step Functions API is off on this server: start `piflow serve` with PIFLOW_API_ACCESS_KEY_ID and PIFLOW_API_SECRET_ACCESS_KEY set (the key pair clients sign with)".into(),
                status: 403,
            }
            .answer();
        };
        // A replayed request is refused when it would change something; an
        // operation that only reads may be sent again (an SDK polling
        // DescribeExecution twice within a second signs the same bytes).
        let target = req.values("x-amz-target").next().unwrap_or_default();
        let once = ReplayGuard::default();
        let replay = if reads_only(target) {
            &once
        } else {
            &self.replay
        };
        if let Err(e) = sigv4::verify(req, keys, now, replay) {
            return Answer {
                status: e.status(),
                body: json!({"__type": e.aws_type(), "message": e.to_string()}),
            };
        }
        match self.operation(target, req.body) {
            Ok(body) => Answer::ok(body),
            Err(e) => e.answer(),
        }
    }

    fn operation(&self, target: &str, body: &[u8]) -> Result<Value, ApiError> {
        let Some(op) = target.strip_prefix(TARGET_PREFIX) else {
            return Err(ApiError {
                kind: "UnknownOperationException",
                message: format!(
                    "X-Amz-Target {target:?} is not a Step Functions operation (it starts with {TARGET_PREFIX})"
                ),
                status: 400,
            });
        };
        let body = parse_body(body)?;
        match op {
            "ValidateStateMachineDefinition" => crate::ops::validate(&body),
            other => Err(ApiError {
                kind: "UnknownOperationException",
                message: format!(
                    "piflow does not answer the Step Functions operation {other:?} (docs/sfn-api.md lists the operations it answers)"
                ),
                status: 400,
            }),
        }
    }
}

/// Does the operation only read (`Describe…`, `List…`, `Get…`,
/// `Validate…`, `TestState`)?
pub fn reads_only(target: &str) -> bool {
    let op = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    ["Describe", "List", "Get", "Validate"]
        .iter()
        .any(|p| op.starts_with(p))
        || op == "TestState"
}

/// The body: a JSON object (empty means `{}`).
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::serialization(format!(
            "the request body must be a JSON object, not {}",
            piflow_asl::path::json_type_article(&other)
        ))),
        Err(e) => Err(ApiError::serialization(format!(
            "the request body is not JSON: {e}"
        ))),
    }
}

/// Field readers that answer AWS's `ValidationException` text.
pub(crate) mod fields {
    use serde_json::{Map, Value};

    use super::ApiError;

    /// A string field, with AWS's length constraint.
    pub fn string<'a>(
        body: &'a Map<String, Value>,
        name: &str,
        required: bool,
        max: usize,
    ) -> Result<Option<&'a str>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) if required => Err(ApiError::validation(format!(
                "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
            ))),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n == 0 || n > max {
                    return Err(ApiError::validation(format!(
                        "1 validation error detected: Value at '{name}' failed to satisfy constraint: Member must have length between 1 and {max} (it has {n})"
                    )));
                }
                Ok(Some(s))
            }
            Some(other) => Err(ApiError::serialization(format!(
                "field '{name}' must be a string, not {}",
                piflow_asl::path::json_type_article(other)
            ))),
        }
    }

    /// A string field that is one of `values`.
    pub fn one_of<'a>(
        body: &'a Map<String, Value>,
        name: &str,
        values: &[&str],
    ) -> Result<Option<&'a str>, ApiError> {
        let Some(v) = string(body, name, false, 256)? else {
            return Ok(None);
        };
        if !values.contains(&v) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{v}' at '{name}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                values.join(", ")
            )));
        }
        Ok(Some(v))
    }

    /// An integer field within `min..=max`.
    pub fn integer(
        body: &Map<String, Value>,
        name: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) if (min..=max).contains(&i) => Ok(Some(i)),
                _ => Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{n}' at '{name}' failed to satisfy constraint: Member must be an integer between {min} and {max}"
                ))),
            },
            Some(other) => Err(ApiError::serialization(format!(
                "field '{name}' must be a number, not {}",
                piflow_asl::path::json_type_article(other)
            ))),
        }
    }
}
