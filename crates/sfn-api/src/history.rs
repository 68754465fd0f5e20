//! `GetExecutionHistory`: an execution's stored events in AWS's
//! `HistoryEvent` shapes, paged as AWS pages them.
//!
//! - **Types.** piflow records AWS's event types under AWS's names; each
//!   event carries the one `…EventDetails` member its type calls for
//!   ([`details_member`]), with the members of botocore's model. An event
//!   type AWS does not have is left out of the answer.
//! - **Data.** Inputs, outputs, parameters and assigned variables are JSON
//!   *text* (AWS's `SensitiveData` strings), cut at 256 KiB with
//!   `…Details.truncated` set; `includeExecutionData: false` leaves them out
//!   and keeps their `…Details`.
//! - **previousEventId.** The event this one follows in its own scope: the
//!   engine's keys (`/Fan#1@0/b1/Step#2@0`) name the scope of every event of
//!   a durable execution; see [`previous_ids`].
//! - **Paging.** `nextToken` is opaque: the direction, the id of the last
//!   event returned, when it was issued, a fingerprint of the history it
//!   belongs to and a checksum. A token that is garbled, of another
//!   history, of the other direction, older than 24 hours or naming an
//!   event this history does not hold is refused with `InvalidToken`.
//!
//! docs/sfn-api.md (`## GetExecutionHistory`) has the whole mapping.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use piflow_store::StoredEvent;

use crate::api::{ApiError, fields};

/// What the ExecutionStarted event names besides the input, and the region
/// the execution runs in (`taskScheduledEventDetails.region`).
#[derive(Debug, Clone, Copy)]
pub struct Started<'a> {
    pub role_arn: &'a str,
    pub version_arn: Option<&'a str>,
    pub alias_arn: Option<&'a str>,
    pub region: &'a str,
}

/// The largest input, output or parameters text an event shows, in bytes
/// (AWS's `SensitiveData`: 256 KiB).
pub const MAX_DATA: usize = 262_144;
/// The longest `error` (AWS's `SensitiveError`), in characters.
pub const MAX_ERROR: usize = 256;
/// The longest `cause` (AWS's `SensitiveCause`), in characters.
pub const MAX_CAUSE: usize = 32_768;
/// The longest `nextToken` AWS's model allows (`PageToken`).
pub const MAX_TOKEN: usize = 1024;
/// How long a `nextToken` stays valid, in seconds (AWS: 24 hours).
pub const TOKEN_LIFETIME: i64 = 24 * 3600;

/// Every event type of AWS's `HistoryEventType`, with the `HistoryEvent`
/// member that carries its details (`None`: AWS's model has no details for
/// it).
pub const EVENT_TYPES: &[(&str, Option<&str>)] = &[
    ("ActivityFailed", Some("activityFailedEventDetails")),
    ("ActivityScheduled", Some("activityScheduledEventDetails")),
    (
        "ActivityScheduleFailed",
        Some("activityScheduleFailedEventDetails"),
    ),
    ("ActivityStarted", Some("activityStartedEventDetails")),
    ("ActivitySucceeded", Some("activitySucceededEventDetails")),
    ("ActivityTimedOut", Some("activityTimedOutEventDetails")),
    ("ChoiceStateEntered", Some("stateEnteredEventDetails")),
    ("ChoiceStateExited", Some("stateExitedEventDetails")),
    ("ExecutionAborted", Some("executionAbortedEventDetails")),
    ("ExecutionFailed", Some("executionFailedEventDetails")),
    ("ExecutionStarted", Some("executionStartedEventDetails")),
    ("ExecutionSucceeded", Some("executionSucceededEventDetails")),
    ("ExecutionTimedOut", Some("executionTimedOutEventDetails")),
    ("FailStateEntered", Some("stateEnteredEventDetails")),
    (
        "LambdaFunctionFailed",
        Some("lambdaFunctionFailedEventDetails"),
    ),
    (
        "LambdaFunctionScheduled",
        Some("lambdaFunctionScheduledEventDetails"),
    ),
    (
        "LambdaFunctionScheduleFailed",
        Some("lambdaFunctionScheduleFailedEventDetails"),
    ),
    ("LambdaFunctionStarted", None),
    (
        "LambdaFunctionStartFailed",
        Some("lambdaFunctionStartFailedEventDetails"),
    ),
    (
        "LambdaFunctionSucceeded",
        Some("lambdaFunctionSucceededEventDetails"),
    ),
    (
        "LambdaFunctionTimedOut",
        Some("lambdaFunctionTimedOutEventDetails"),
    ),
    (
        "MapIterationAborted",
        Some("mapIterationAbortedEventDetails"),
    ),
    ("MapIterationFailed", Some("mapIterationFailedEventDetails")),
    (
        "MapIterationStarted",
        Some("mapIterationStartedEventDetails"),
    ),
    (
        "MapIterationSucceeded",
        Some("mapIterationSucceededEventDetails"),
    ),
    ("MapStateAborted", None),
    ("MapStateEntered", Some("stateEnteredEventDetails")),
    ("MapStateExited", Some("stateExitedEventDetails")),
    ("MapStateFailed", None),
    ("MapStateStarted", Some("mapStateStartedEventDetails")),
    ("MapStateSucceeded", None),
    ("ParallelStateAborted", None),
    ("ParallelStateEntered", Some("stateEnteredEventDetails")),
    ("ParallelStateExited", Some("stateExitedEventDetails")),
    ("ParallelStateFailed", None),
    ("ParallelStateStarted", None),
    ("ParallelStateSucceeded", None),
    ("PassStateEntered", Some("stateEnteredEventDetails")),
    ("PassStateExited", Some("stateExitedEventDetails")),
    ("SucceedStateEntered", Some("stateEnteredEventDetails")),
    ("SucceedStateExited", Some("stateExitedEventDetails")),
    ("TaskFailed", Some("taskFailedEventDetails")),
    ("TaskScheduled", Some("taskScheduledEventDetails")),
    ("TaskStarted", Some("taskStartedEventDetails")),
    ("TaskStartFailed", Some("taskStartFailedEventDetails")),
    ("TaskStateAborted", None),
    ("TaskStateEntered", Some("stateEnteredEventDetails")),
    ("TaskStateExited", Some("stateExitedEventDetails")),
    ("TaskSubmitFailed", Some("taskSubmitFailedEventDetails")),
    ("TaskSubmitted", Some("taskSubmittedEventDetails")),
    ("TaskSucceeded", Some("taskSucceededEventDetails")),
    ("TaskTimedOut", Some("taskTimedOutEventDetails")),
    ("WaitStateAborted", None),
    ("WaitStateEntered", Some("stateEnteredEventDetails")),
    ("WaitStateExited", Some("stateExitedEventDetails")),
    ("MapRunAborted", None),
    ("MapRunFailed", Some("mapRunFailedEventDetails")),
    ("MapRunStarted", Some("mapRunStartedEventDetails")),
    ("MapRunSucceeded", None),
    ("ExecutionRedriven", Some("executionRedrivenEventDetails")),
    ("MapRunRedriven", Some("mapRunRedrivenEventDetails")),
    ("EvaluationFailed", Some("evaluationFailedEventDetails")),
];

/// The details member of an AWS event type: `None` when AWS has no such
/// type (the event is left out), `Some(None)` when the type has no details.
pub fn details_member(event_type: &str) -> Option<Option<&'static str>> {
    EVENT_TYPES
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, m)| *m)
}

/// `GetExecutionHistory`'s answer for these stored events (in `seq`
/// order, as the store returns them). `body` is the request: `maxResults`
/// (0..=1000, 0 or absent: 100), `reverseOrder`, `includeExecutionData`
/// (default true), `nextToken` (1..=1024 characters, as issued by an
/// earlier call on the same history with the same `reverseOrder`).
pub fn history(
    events: &[StoredEvent],
    started: &Started<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    history_at(events, started, body, Utc::now())
}

/// [`history`] at a given time (tokens are issued at and expire from it).
pub fn history_at(
    events: &[StoredEvent],
    started: &Started<'_>,
    body: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let max = crate::paging::page_size(body)?;
    let reverse = fields::boolean(body, "reverseOrder")?.unwrap_or(false);
    let include_data = fields::boolean(body, "includeExecutionData")?.unwrap_or(true);
    let token = fields::string(body, "nextToken", false, MAX_TOKEN)?;

    let mut shown: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| details_member(&e.event_type).is_some())
        .collect();
    shown.sort_by_key(|e| e.seq);
    shown.dedup_by_key(|e| e.seq);
    let fingerprint = fingerprint(&shown, started);

    // Where this page starts, in `shown`, and which way it goes.
    let start = match token {
        None => 0,
        Some(text) => {
            let t = Token::decode(text)?;
            t.check(fingerprint, reverse, now)?;
            let Ok(i) = shown.binary_search_by_key(&t.after, |e| e.seq) else {
                return Err(invalid_token(format!(
                    "nextToken names event {}, which this execution's history does not hold (the token is stale); start again without nextToken",
                    t.after
                )));
            };
            if reverse { shown.len() - i } else { i + 1 }
        }
    };
    let order: Box<dyn Iterator<Item = usize>> = if reverse {
        Box::new((0..shown.len()).rev())
    } else {
        Box::new(0..shown.len())
    };
    let page: Vec<usize> = order.skip(start).take(max).collect();
    let more = start + page.len() < shown.len();

    let previous = previous_ids(&shown);
    let resources = resources(&shown);
    let rendered: Vec<Value> = page
        .iter()
        .map(|&i| {
            let r = Render {
                started,
                include_data,
                resource: resources[i].as_deref(),
            };
            r.event(shown[i], previous[i])
        })
        .collect();
    let mut answer = Map::new();
    answer.insert("events".into(), Value::Array(rendered));
    if more && let Some(&last) = page.last() {
        let t = Token {
            reverse,
            after: shown[last].seq,
            issued: now.timestamp(),
            fingerprint,
        };
        answer.insert("nextToken".into(), Value::String(t.encode()));
    }
    Ok(Value::Object(answer))
}

fn invalid_token(message: String) -> ApiError {
    ApiError {
        kind: "InvalidToken",
        message,
        status: 400,
    }
}

/// What identifies one execution's history: its first event and the role
/// it runs as (events are only ever appended to a history).
fn fingerprint(shown: &[&StoredEvent], started: &Started<'_>) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(b"piflow-history\0");
    if let Some(first) = shown.first() {
        h.update(first.seq.to_be_bytes());
        h.update(first.event_type.as_bytes());
        h.update(b"\0");
        let t = first.timestamp;
        h.update(t.timestamp().to_be_bytes());
        h.update(t.timestamp_subsec_nanos().to_be_bytes());
    }
    h.update(started.role_arn.as_bytes());
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// A page token: where the next page starts and for which history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    reverse: bool,
    /// The `seq` of the last event returned.
    after: u64,
    /// When it was issued, in seconds since the epoch.
    issued: i64,
    fingerprint: [u8; 8],
}

const TOKEN_VERSION: u8 = 1;
/// version, direction, after, issued, fingerprint, checksum.
const TOKEN_BYTES: usize = 1 + 1 + 8 + 8 + 8 + 8;

impl Token {
    fn payload(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(TOKEN_BYTES);
        b.push(TOKEN_VERSION);
        b.push(u8::from(self.reverse));
        b.extend_from_slice(&self.after.to_be_bytes());
        b.extend_from_slice(&self.issued.to_be_bytes());
        b.extend_from_slice(&self.fingerprint);
        b
    }

    fn checksum(payload: &[u8]) -> [u8; 8] {
        let d = Sha256::new()
            .chain_update(b"piflow-history-token\0")
            .chain_update(payload)
            .finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&d[..8]);
        out
    }

    /// Lowercase hex of the payload and its checksum.
    fn encode(&self) -> String {
        let mut b = self.payload();
        let sum = Self::checksum(&b);
        b.extend_from_slice(&sum);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn decode(text: &str) -> Result<Token, ApiError> {
        let garbled = || {
            invalid_token(
                "nextToken is not a token that GetExecutionHistory issued (it is garbled); pass the nextToken of the previous answer unchanged, or start again without it".to_string(),
            )
        };
        let bytes = text.as_bytes();
        if bytes.len() != TOKEN_BYTES * 2 {
            return Err(garbled());
        }
        let mut b = Vec::with_capacity(TOKEN_BYTES);
        for pair in bytes.chunks_exact(2) {
            let digit = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            };
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => b.push(hi << 4 | lo),
                _ => return Err(garbled()),
            }
        }
        let (payload, sum) = b.split_at(TOKEN_BYTES - 8);
        if Self::checksum(payload)[..] != *sum || payload[0] != TOKEN_VERSION || payload[1] > 1 {
            return Err(garbled());
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&payload[i..i + 8]);
            a
        };
        Ok(Token {
            reverse: payload[1] == 1,
            after: u64::from_be_bytes(u64_at(2)),
            issued: i64::from_be_bytes(u64_at(10)),
            fingerprint: u64_at(18),
        })
    }

    fn check(
        &self,
        fingerprint: [u8; 8],
        reverse: bool,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        if self.fingerprint != fingerprint {
            return Err(invalid_token(
                "nextToken was issued for another execution's history; pass the token with the executionArn it came from".to_string(),
            ));
        }
        if self.reverse != reverse {
            return Err(invalid_token(format!(
                "nextToken was issued for reverseOrder={}, and this request asks for reverseOrder={reverse}; keep the other arguments unchanged while paging",
                self.reverse
            )));
        }
        let age = now.timestamp().saturating_sub(self.issued);
        if !(-300..=TOKEN_LIFETIME).contains(&age) {
            return Err(invalid_token(
                "nextToken has expired (a token lasts 24 hours); start again without nextToken"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

/// One unit of an event key: a state visit (`Name#2`, `Name#2@0`) or a
/// Parallel branch / Map iteration scope (`b1`, `i7`).
fn key_units(key: &str) -> Vec<&str> {
    let is_visit = |u: &str| {
        let Some((_, tail)) = u.rsplit_once('#') else {
            return false;
        };
        let (visit, attempt) = match tail.split_once('@') {
            Some((v, a)) => (v, Some(a)),
            None => (tail, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        digits(visit) && attempt.is_none_or(digits)
    };
    let is_scope = |u: &str| {
        u.len() > 1
            && (u.starts_with('b') || u.starts_with('i'))
            && u[1..].bytes().all(|c| c.is_ascii_digit())
    };
    let key = key.strip_prefix('/').unwrap_or(key);
    let mut units = Vec::new();
    // A state name may hold '/': a unit runs until it reads as a visit, or
    // is a scope right after an attempt.
    let mut start = 0;
    for (i, c) in key.char_indices().chain([(key.len(), '/')]) {
        if c != '/' {
            continue;
        }
        let unit = &key[start..i];
        let after_attempt = units.last().is_some_and(|u: &&str| u.contains('@'));
        if is_visit(unit) || (after_attempt && is_scope(unit)) || i == key.len() {
            if !unit.is_empty() {
                units.push(unit);
            }
            start = i + 1;
        }
    }
    units
}

/// The scope an event belongs to, as key units: the top (`[]`), a branch
/// (`[…, "Fan#1@0", "b1"]`) or a Map iteration (`[…, "Each#1@0", "i3"]`).
/// MapIteration events belong to their iteration's scope; every other
/// event to the scope its state runs in. Keyless events (executions that
/// are not durable) and the execution's own events are at the top.
fn scope_of(e: &StoredEvent) -> Vec<&str> {
    let Some(key) = e.key.as_deref() else {
        return Vec::new();
    };
    let units = key_units(key);
    match units.last() {
        None => Vec::new(),
        Some(u) if u.starts_with('~') => Vec::new(),
        Some(u) if !u.contains('#') => units,
        Some(_) => units[..units.len() - 1].to_vec(),
    }
}

/// Each event's `previousEventId`: the last event before it in its own
/// scope or any scope inside it (after a Parallel or Map, the state that
/// follows chains to the last event of its branches); the first event of a
/// branch or iteration chains to the last event of the enclosing scope
/// itself (`ParallelStateStarted`, `MapStateStarted`), so concurrent
/// branches do not chain to each other. `ExecutionStarted`: 0.
pub fn previous_ids(shown: &[&StoredEvent]) -> Vec<u64> {
    let mut last_own: HashMap<Vec<&str>, u64> = HashMap::new();
    let mut last_within: HashMap<Vec<&str>, u64> = HashMap::new();
    let mut out = Vec::with_capacity(shown.len());
    for e in shown {
        let scope = scope_of(e);
        let prev = match last_within.get(&scope) {
            Some(&id) => id,
            None => {
                // The nearest enclosing scope with an event of its own.
                let mut outer = scope.clone();
                loop {
                    outer.truncate(outer.len().saturating_sub(2));
                    if let Some(&id) = last_own.get(&outer) {
                        break id;
                    }
                    if outer.is_empty() {
                        break 0;
                    }
                }
            }
        };
        out.push(prev);
        for n in (0..=scope.len()).rev() {
            last_within.insert(scope[..n].to_vec(), e.seq);
        }
        last_own.insert(scope, e.seq);
    }
    out
}

/// The resource of every Task, Lambda and Activity event: its own
/// `resource`, else the one its attempt was scheduled with.
fn resources(shown: &[&StoredEvent]) -> Vec<Option<String>> {
    let mut scheduled: HashMap<String, String> = HashMap::new();
    let attempt = |e: &StoredEvent| {
        format!(
            "{}|{}",
            e.key.as_deref().unwrap_or_default(),
            e.state.as_deref().unwrap_or_default()
        )
    };
    shown
        .iter()
        .map(|e| {
            let t = e.event_type.as_str();
            if !(t.starts_with("Task") || t.starts_with("Lambda") || t.starts_with("Activity"))
                || t.starts_with("TaskState")
            {
                return None;
            }
            let own = e.details.get("resource").and_then(Value::as_str);
            match own {
                Some(r) => {
                    if t.ends_with("Scheduled") {
                        scheduled.insert(attempt(e), r.to_string());
                    }
                    Some(r.to_string())
                }
                None => scheduled.get(&attempt(e)).cloned(),
            }
        })
        .collect()
}

/// AWS's `resourceType` and `resource` of a Task's resource:
/// `arn:aws:states:::lambda:invoke` → `lambda`, `invoke`;
/// `arn:aws:states:::aws-sdk:s3:listBuckets` → `aws-sdk:s3`,
/// `listBuckets`; `piflow:step` → `piflow`, `step`; another ARN → its
/// service and the rest.
pub fn resource_type(resource: &str) -> (String, String) {
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" {
        let rest = parts[5];
        if parts[2] == "states" {
            if let Some(sdk) = rest.strip_prefix("aws-sdk:")
                && let Some((service, action)) = sdk.split_once(':')
            {
                return (format!("aws-sdk:{service}"), action.to_string());
            }
            if let Some((service, action)) = rest.split_once(':') {
                return (service.to_string(), action.to_string());
            }
        }
        return (parts[2].to_string(), rest.to_string());
    }
    match resource.split_once(':') {
        Some((kind, rest)) if !kind.is_empty() && !rest.is_empty() => {
            (kind.to_string(), rest.to_string())
        }
        _ => ("piflow".to_string(), resource.to_string()),
    }
}

/// JSON text of a value, cut to at most `MAX_DATA` bytes (at a character
/// boundary): the text and whether it was cut.
fn data_text(v: &Value) -> (String, bool) {
    let mut text = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    if text.len() <= MAX_DATA {
        return (text, false);
    }
    let mut end = MAX_DATA;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

/// A text cut to at most `max` characters.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

struct Render<'a> {
    started: &'a Started<'a>,
    include_data: bool,
    resource: Option<&'a str>,
}

impl Render<'_> {
    fn event(&self, e: &StoredEvent, previous: u64) -> Value {
        let mut o = Map::new();
        o.insert(
            "timestamp".into(),
            json!(e.timestamp.timestamp_millis() as f64 / 1000.0),
        );
        o.insert("type".into(), Value::String(e.event_type.clone()));
        o.insert("id".into(), json!(e.seq));
        o.insert("previousEventId".into(), json!(previous));
        if let Some(Some(member)) = details_member(&e.event_type) {
            o.insert(member.into(), Value::Object(self.details(e)));
        }
        Value::Object(o)
    }

    /// `name` + `input` (+ `inputDetails`), or `output`, … into `d`.
    fn data(&self, d: &mut Map<String, Value>, member: &str, v: &Value) {
        let (text, truncated) = if self.include_data {
            data_text(v)
        } else {
            (String::new(), false)
        };
        if self.include_data {
            d.insert(member.into(), Value::String(text));
        }
        d.insert(format!("{member}Details"), json!({"truncated": truncated}));
    }

    fn error_cause(d: &mut Map<String, Value>, details: &Value) {
        for (name, max) in [("error", MAX_ERROR), ("cause", MAX_CAUSE)] {
            match details.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => {
                    d.insert(name.into(), Value::String(clip(s, max)));
                }
                Some(other) => {
                    d.insert(name.into(), Value::String(clip(&other.to_string(), max)));
                }
            }
        }
    }

    fn resource_of(&self, d: &mut Map<String, Value>) {
        let (kind, name) = resource_type(self.resource.unwrap_or("unknown"));
        d.insert("resourceType".into(), Value::String(kind));
        d.insert("resource".into(), Value::String(name));
    }

    fn details(&self, e: &StoredEvent) -> Map<String, Value> {
        let mut d = Map::new();
        let x = &e.details;
        let name = || Value::String(e.state.clone().unwrap_or_default());
        let t = e.event_type.as_str();
        match t {
            "ExecutionStarted" => {
                self.data(&mut d, "input", x);
                d.insert("roleArn".into(), json!(self.started.role_arn));
                if let Some(a) = self.started.alias_arn {
                    d.insert("stateMachineAliasArn".into(), json!(a));
                }
                if let Some(v) = self.started.version_arn {
                    d.insert("stateMachineVersionArn".into(), json!(v));
                }
            }
            _ if t.ends_with("StateEntered") => {
                d.insert("name".into(), name());
                self.data(&mut d, "input", x);
            }
            _ if t.ends_with("StateExited") => {
                d.insert("name".into(), name());
                self.data(&mut d, "output", x);
                self.assigned(&mut d, e.checkpoint.as_ref());
            }
            "ExecutionSucceeded" | "LambdaFunctionSucceeded" | "ActivitySucceeded" => {
                let out = if t == "ExecutionSucceeded" {
                    x
                } else {
                    x.get("output").unwrap_or(&Value::Null)
                };
                self.data(&mut d, "output", out);
            }
            "ExecutionRedriven" => {
                if let Some(n) = x.get("redriveCount").and_then(Value::as_u64) {
                    d.insert("redriveCount".into(), json!(n));
                }
            }
            "TaskScheduled" => {
                self.resource_of(&mut d);
                d.insert("region".into(), json!(self.started.region));
                if self.include_data {
                    let (text, _) = data_text(x.get("parameters").unwrap_or(&Value::Null));
                    d.insert("parameters".into(), Value::String(text));
                }
            }
            "TaskStarted" => self.resource_of(&mut d),
            "TaskSubmitted" | "TaskSucceeded" => {
                self.resource_of(&mut d);
                if let Some(out) = x.get("output") {
                    self.data(&mut d, "output", out);
                }
            }
            "LambdaFunctionScheduled" | "ActivityScheduled" => {
                d.insert("resource".into(), json!(self.resource.unwrap_or("unknown")));
                self.data(&mut d, "input", x.get("parameters").unwrap_or(&Value::Null));
            }
            "MapStateStarted" => {
                if let Some(n) = x.get("length").and_then(Value::as_u64) {
                    d.insert("length".into(), json!(n));
                }
            }
            _ if t.starts_with("MapIteration") => {
                d.insert("name".into(), name());
                if let Some(i) = x.get("index").and_then(Value::as_u64) {
                    d.insert("index".into(), json!(i));
                }
            }
            "MapRunRedriven" => {
                if let Some(n) = x.get("redriveCount").and_then(Value::as_u64) {
                    d.insert("redriveCount".into(), json!(n));
                }
            }
            "EvaluationFailed" => {
                d.insert("state".into(), name());
                Self::error_cause(&mut d, x);
            }
            _ if t.starts_with("Task") => {
                // TaskFailed, TaskTimedOut, TaskStartFailed, TaskSubmitFailed.
                self.resource_of(&mut d);
                Self::error_cause(&mut d, x);
            }
            // Execution{Failed,Aborted,TimedOut}, Lambda…/Activity… failures,
            // MapRunFailed: error and cause. ActivityStarted (no worker
            // name) and MapRunStarted (no Map Run ARN): empty.
            _ => Self::error_cause(&mut d, x),
        }
        d
    }

    /// A durable execution's StateExited checkpoint names the variables the
    /// state assigned: `assignedVariables` (name → JSON text).
    fn assigned(&self, d: &mut Map<String, Value>, checkpoint: Option<&Value>) {
        let Some(Value::Object(vars)) = checkpoint.and_then(|c| c.get("assigned")) else {
            return;
        };
        if vars.is_empty() {
            return;
        }
        let mut truncated = false;
        if self.include_data {
            let mut shown = Map::new();
            let mut room = MAX_DATA;
            for (k, v) in vars {
                let (text, cut) = data_text(v);
                if cut || text.len() + k.len() > room {
                    truncated = true;
                    continue;
                }
                room -= text.len() + k.len();
                shown.insert(k.clone(), Value::String(text));
            }
            d.insert("assignedVariables".into(), Value::Object(shown));
        }
        d.insert(
            "assignedVariablesDetails".into(),
            json!({"truncated": truncated}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_table_is_the_models() {
        let fixture: Value =
            serde_json::from_str(include_str!("../tests/fixtures/history-shapes.json")).unwrap();
        let types: Vec<&str> = fixture["eventTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let ours: Vec<&str> = EVENT_TYPES.iter().map(|(t, _)| *t).collect();
        assert_eq!(ours, types);
        for (t, member) in EVENT_TYPES {
            assert_eq!(fixture["detailsMemberOfType"][t].as_str(), *member, "{t}");
        }
    }

    #[test]
    fn keys_name_scopes() {
        assert_eq!(key_units("/"), Vec::<&str>::new());
        assert_eq!(key_units("/A#1"), ["A#1"]);
        assert_eq!(key_units("/P#1@0/b1/T#2@3"), ["P#1@0", "b1", "T#2@3"]);
        assert_eq!(key_units("/a/b#1/M#1@0/i7"), ["a/b#1", "M#1@0", "i7"]);
        // A state named "b1" is a state, not a branch.
        assert_eq!(key_units("/P#1@0/b1/b1#1"), ["P#1@0", "b1", "b1#1"]);
        assert_eq!(key_units("/~redrive1"), ["~redrive1"]);
        let ev = |key: &str| StoredEvent {
            seq: 1,
            event_type: "X".into(),
            state: None,
            timestamp: Utc::now(),
            details: Value::Null,
            key: Some(key.into()),
            checkpoint: None,
        };
        assert_eq!(scope_of(&ev("/P#1@0/b1/T#2@3")), ["P#1@0", "b1"]);
        assert_eq!(scope_of(&ev("/M#1@0/i3")), ["M#1@0", "i3"]);
        assert_eq!(scope_of(&ev("/M#1@0")), Vec::<&str>::new());
        assert_eq!(scope_of(&ev("/~redrive2")), Vec::<&str>::new());
    }

    #[test]
    fn tokens_read_back_and_garbled_ones_are_refused() {
        let t = Token {
            reverse: true,
            after: 42,
            issued: 1_700_000_000,
            fingerprint: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        let text = t.encode();
        assert_eq!(Token::decode(&text).unwrap(), t);
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let e = Token::decode(std::str::from_utf8(&b).unwrap()).unwrap_err();
            assert_eq!(e.kind, "InvalidToken");
        }
        for bad in [
            "",
            "zz",
            &text[1..],
            &format!("{text}00"),
            &text.to_uppercase(),
        ] {
            assert_eq!(
                Token::decode(bad).unwrap_err().kind,
                "InvalidToken",
                "{bad}"
            );
        }
    }

    #[test]
    fn resource_types_as_aws_names_them() {
        let cases = [
            ("arn:aws:states:::lambda:invoke", ("lambda", "invoke")),
            (
                "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                ("sqs", "sendMessage.waitForTaskToken"),
            ),
            (
                "arn:aws:states:::states:startExecution.sync:2",
                ("states", "startExecution.sync:2"),
            ),
            (
                "arn:aws:states:::aws-sdk:s3:listBuckets",
                ("aws-sdk:s3", "listBuckets"),
            ),
            ("piflow:shell", ("piflow", "shell")),
            ("odd", ("piflow", "odd")),
        ];
        for (r, (k, n)) in cases {
            assert_eq!(resource_type(r), (k.to_string(), n.to_string()), "{r}");
        }
    }

    #[test]
    fn data_is_cut_at_a_character_boundary() {
        let v = Value::String("é".repeat(MAX_DATA));
        let (text, cut) = data_text(&v);
        assert!(cut);
        assert!(text.len() <= MAX_DATA && text.len() > MAX_DATA - 4);
        let (small, cut) = data_text(&json!({"a": 1}));
        assert_eq!((small.as_str(), cut), (r#"{"a":1}"#, false));
        assert_eq!(clip("abcdef", 3), "abc");
        assert_eq!(clip("ab", 3), "ab");
    }
}
