//! EventBridge events as triggers: an event → the `events:` rules of
//! piflow.yaml it matches → for each, the workflow input (the whole event,
//! `input_path` or `input_transformer`), the lease environment and the
//! execution name; and the durable record that makes an event start its
//! executions once however often it is delivered. See `docs/triggers.md`
//! ("EventBridge rules").
//!
//! Every matching rule fires, as in EventBridge. Everything here is a pure
//! function of the event and the rules, so a redelivered event builds the
//! same executions (same names, same inputs) and the runner returns the
//! existing ones.

use serde_json::{Value, json};

use super::config::{EventEnv, EventInput, EventRule};
use super::pattern::PatternSet;
use super::tags::Field;
use super::transform::RuleContext;
use piflow_store::{AuditEntry, AuditRecord, Store, StoreError, StoredEvent};

/// The audit environment of the dedupe records (shared with the tag
/// triggers' refusals and `watch`).
pub const EVENTS_ENV: &str = "triggers";

/// The audit action of an accepted event.
pub const ACCEPTED: &str = "event.accepted";

/// The longest event id piflow accepts (EventBridge's are UUIDs).
pub const MAX_ID_LEN: usize = 256;

/// Why an event is refused before any rule is tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event must be a JSON object, not {0}")]
    NotObject(&'static str),
    #[error(
        "the event has no \"id\" (a non-empty string of at most {MAX_ID_LEN} characters): an id is what makes a redelivered event start nothing again"
    )]
    NoId,
}

impl EventError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        ("event-not-object", "the event is not a JSON object"),
        ("event-no-id", "the event has no id"),
    ];

    pub fn code(&self) -> &'static str {
        match self {
            EventError::NotObject(_) => "event-not-object",
            EventError::NoId => "event-no-id",
        }
    }
}

/// The event's id (its `id` field), checked.
pub fn event_id(event: &Value) -> Result<&str, EventError> {
    let Value::Object(m) = event else {
        return Err(EventError::NotObject(piflow_asl::path::json_type_article(
            event,
        )));
    };
    m.get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
        .ok_or(EventError::NoId)
}

/// The execution name of a rule firing on an event: `RULE-ID` with every
/// character outside `[A-Za-z0-9_-]` replaced by `-`, cut to 69
/// characters, then `-` and 10 hex digits of SHA-256(`RULE\nID`): the same
/// rule and event always give the same name, distinct ones distinct names.
pub fn execution_name(rule: &str, event_id: &str) -> String {
    let readable: String = format!("{rule}-{event_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(80 - 11)
        .collect();
    let hash = piflow_store::sha256_hex(format!("{rule}\n{event_id}").as_bytes());
    format!("{readable}-{}", &hash[..10])
}

/// The dedupe token of an event in [`EVENTS_ENV`].
pub fn dedupe_token(event_id: &str) -> String {
    format!("event:{event_id}")
}

/// The signature of an event sent to `piflow serve`'s `POST /events`:
/// `sha256=` and the hex HMAC-SHA256 of `TIMESTAMP.BODY` with the shared
/// secret (the header `X-Piflow-Signature`, with `X-Piflow-Timestamp:
/// TIMESTAMP` in Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    use hmac::Mac;
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let out = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + out.len() * 2);
    hex.push_str("sha256=");
    for b in out {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The placeholder ARN of a rule (`<aws.events.rule-arn>`).
pub fn rule_arn(rule: &str) -> String {
    format!("arn:piflow:events:::rule/{rule}")
}

/// What one matching rule makes of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The rule's name and its position in `events:`.
    pub rule: String,
    pub index: usize,
    pub workflow: String,
    pub input: Value,
    /// The lease environment, when the rule or the input names one.
    pub env: Option<String>,
    pub name: String,
}

/// A rule that matched but could not build an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfire {
    pub rule: String,
    pub code: &'static str,
    pub reason: String,
}

/// The compiled `events:` rules.
#[derive(Debug)]
pub struct EventRouter {
    rules: Vec<EventRule>,
    set: PatternSet,
}

impl EventRouter {
    pub fn new(rules: &[EventRule]) -> EventRouter {
        EventRouter {
            rules: rules.to_vec(),
            set: PatternSet::new(rules.iter().map(|r| r.pattern.clone()).collect()),
        }
    }

    pub fn rules(&self) -> &[EventRule] {
        &self.rules
    }

    /// Every rule the event matches (in file order), with what it builds.
    pub fn route(&self, event: &Value, event_id: &str) -> Vec<Result<Fired, Misfire>> {
        let mut hits = Vec::new();
        self.set.matching_into(event, &mut hits);
        hits.into_iter()
            .filter_map(|i| self.rules.get(i))
            .map(|rule| fire(rule, event, event_id))
            .collect()
    }
}

/// What `rule` makes of `event` (which it matched).
pub fn fire(rule: &EventRule, event: &Value, event_id: &str) -> Result<Fired, Misfire> {
    let misfire = |code: &'static str, reason: String| Misfire {
        rule: rule.name.clone(),
        code,
        reason,
    };
    let input = match &rule.input {
        EventInput::Event => event.clone(),
        EventInput::Path(p) => p.apply(event),
        EventInput::Transformer(t) => {
            // Deterministic: the ingestion time is the event's own `time`,
            // so a redelivery builds the same input.
            let ctx = RuleContext {
                rule_arn: rule_arn(&rule.name),
                rule_name: rule.name.clone(),
                ingestion_time: event
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            };
            t.apply(event, &ctx).map_err(|e| {
                misfire(
                    "input-invalid",
                    format!(
                        "rule {:?}: the input transformer [{}]: {e}",
                        rule.name,
                        e.code()
                    ),
                )
            })?
        }
    };
    let env = match &rule.environment {
        EventEnv::Name(n) => Some(n.clone()),
        EventEnv::FromInput => input_environment(&input),
        EventEnv::Path(text) => {
            let selected = rule.environment_path.as_ref().and_then(|p| p.select(event));
            match selected {
                Some(Value::String(s)) if Field::Env.check(&s) => Some(s),
                other => {
                    return Err(misfire(
                        "environment-invalid",
                        format!(
                            "rule {:?}: environment {text} selects {} in the event; it must select an environment name ({})",
                            rule.name,
                            other.map_or_else(|| "nothing".to_string(), |v| v.to_string()),
                            Field::Env.shape()
                        ),
                    ));
                }
            }
        }
    };
    Ok(Fired {
        rule: rule.name.clone(),
        index: rule.index,
        workflow: rule.workflow.clone(),
        input,
        env,
        name: execution_name(&rule.name, event_id),
    })
}

/// The environment an input names: `"environment"`, else
/// `"target": {"environment"}` (as `piflow run` reads it).
pub fn input_environment(input: &Value) -> Option<String> {
    input
        .get("environment")
        .or_else(|| input.get("target").and_then(|t| t.get("environment")))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// An execution an accepted event starts, as its dedupe record keeps it
/// (so that one whose start was cut short can be started again).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// `WORKFLOW:NAME`.
    pub id: String,
    pub rule: String,
    pub workflow: String,
    pub name: String,
    pub env: Option<String>,
    pub input: Value,
}

impl Planned {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id, "rule": self.rule, "workflow": self.workflow,
            "name": self.name, "env": self.env, "input": self.input,
        })
    }

    fn from_json(v: &Value) -> Option<Planned> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Planned {
            id: s("id")?,
            rule: s("rule")?,
            workflow: s("workflow")?,
            name: s("name")?,
            env: s("env"),
            input: v.get("input").cloned().unwrap_or(Value::Null),
        })
    }
}

/// The store key of an event's dedupe record: a one-event history. It
/// holds two `:` after the prefix, so it is never an execution's id
/// (`WORKFLOW:NAME`, names have no `:`).
pub fn dedupe_key(event_id: &str) -> String {
    format!("~triggers:event:{event_id}")
}

/// The history event type of a dedupe record.
pub const ACCEPTED_EVENT: &str = "EventAccepted";

/// How the dedupe record went.
#[derive(Debug, Clone)]
pub struct Acceptance {
    /// The first delivery: the caller starts the executions.
    pub first: bool,
    /// When the first delivery was accepted.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The executions the first delivery planned.
    pub planned: Vec<Planned>,
    /// The rules that matched the first delivery but could not fire.
    pub refused: Vec<Value>,
}

/// Record an event as accepted, durably, once. The record is the first
/// (and only) event of the history [`dedupe_key`]: the store appends a
/// history event only at the next sequence number, so of two deliveries
/// (in this process or another sharing the store) exactly one appends
/// sequence 1 and the other gets a conflict, and reads the first one's
/// record back (`first: false`). History appends are group-committed (one
/// fsync for all the appends that arrive meanwhile), which is what lets a
/// server accept thousands of events per second durably.
pub async fn accept(
    store: &dyn Store,
    event: &Value,
    event_id: &str,
    planned: &[Planned],
    refused: &[Misfire],
) -> Result<Acceptance, StoreError> {
    let key = dedupe_key(event_id);
    let at = chrono::Utc::now();
    let text = |k: &str| event.get(k).cloned().unwrap_or(Value::Null);
    let refused_json: Vec<Value> = refused
        .iter()
        .map(|m| json!({"rule": m.rule, "code": m.code, "reason": m.reason}))
        .collect();
    let record = StoredEvent {
        seq: 1,
        event_type: ACCEPTED_EVENT.into(),
        state: None,
        timestamp: at,
        details: json!({
            "id": event_id,
            "source": text("source"),
            "detail-type": text("detail-type"),
            "time": text("time"),
            "executions": planned.iter().map(Planned::to_json).collect::<Vec<_>>(),
            "refused": refused_json,
        }),
        key: None,
        checkpoint: None,
    };
    match store.append_events(&key, vec![record]).await {
        Ok(()) => Ok(Acceptance {
            first: true,
            at,
            planned: planned.to_vec(),
            refused: refused_json,
        }),
        Err(StoreError::Conflict(_)) => {
            let first = store
                .events(&key)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "{key}: a conflict on its first record, yet it has none"
                    ))
                })?;
            Ok(Acceptance {
                first: false,
                at: first.timestamp,
                planned: planned_in(&first.details),
                refused: first
                    .details
                    .get("refused")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            })
        }
        Err(e) => Err(e),
    }
}

/// The audit record of an accepted event that matched rules: action
/// `event.accepted` in [`EVENTS_ENV`], target the event id, `after` the
/// executions it plans and the rules that refused it; token `event:ID`, so
/// writing it again (a redelivery after a crash) adds nothing.
pub async fn audit_accepted(
    store: &dyn Store,
    event: &Value,
    event_id: &str,
    actor: &str,
    acceptance: &Acceptance,
) -> Result<AuditRecord, StoreError> {
    let text = |k: &str| event.get(k).cloned().unwrap_or(Value::Null);
    store
        .append_audit(AuditEntry {
            env: EVENTS_ENV.into(),
            actor: actor.to_string(),
            action: ACCEPTED.into(),
            target: event_id.to_string(),
            before: Value::Null,
            after: json!({
                "source": text("source"),
                "detail-type": text("detail-type"),
                "time": text("time"),
                "executions": acceptance.planned.iter().map(Planned::to_json).collect::<Vec<_>>(),
                "refused": acceptance.refused,
            }),
            result: if acceptance.refused.is_empty() {
                "accepted".into()
            } else if acceptance.planned.is_empty() {
                "refused".into()
            } else {
                "accepted: some rules refused".into()
            },
            execution: acceptance.planned.first().map(|p| p.id.clone()),
            at: acceptance.at,
            token: Some(dedupe_token(event_id)),
        })
        .await
}

/// The executions an `event.accepted` audit record planned.
pub fn planned_of(record: &AuditRecord) -> Vec<Planned> {
    planned_in(&record.entry.after)
}

fn planned_in(details: &Value) -> Vec<Planned> {
    details
        .get("executions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Planned::from_json).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_distinct() {
        let a = execution_name("alarm-rollback", "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92");
        assert_eq!(
            a,
            execution_name("alarm-rollback", "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92")
        );
        assert_ne!(a, execution_name("alarm-rollback", "c4c1c1c9"));
        assert!(a.len() <= 80);
        assert!(piflow_runner::check_name(&a).is_ok());
        let long = execution_name(&"r".repeat(64), &"i/d:".repeat(64));
        assert!(long.len() <= 80);
        assert!(piflow_runner::check_name(&long).is_ok());
    }

    #[test]
    fn ids() {
        assert_eq!(event_id(&json!({"id": "x"})), Ok("x"));
        assert_eq!(event_id(&json!({"id": ""})), Err(EventError::NoId));
        assert_eq!(event_id(&json!({"id": 3})), Err(EventError::NoId));
        assert_eq!(
            event_id(&json!([1])),
            Err(EventError::NotObject("an array"))
        );
    }
}
