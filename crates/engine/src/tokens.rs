//! Task tokens for `.waitForTaskToken`: the execution waits until
//! SendTaskSuccess, SendTaskFailure or SendTaskHeartbeat arrives.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;

use super::error::Failure;

/// What a token holder sends back.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenMessage {
    Success(Value),
    Failure(Failure),
    Heartbeat,
}

/// Why a token message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("task token {0:?} is not known or has already completed (TaskDoesNotExist)")]
    Unknown(String),
}

impl TokenError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[(
        "task-does-not-exist",
        "a task token no running execution waits for",
    )];

    pub fn code(&self) -> &'static str {
        "task-does-not-exist"
    }
}

/// An open token: where its messages go, and whether its task has a
/// `HeartbeatSeconds` (a heartbeat changes nothing for one without).
#[derive(Debug)]
struct Open {
    tx: mpsc::UnboundedSender<TokenMessage>,
    heartbeat: bool,
}

/// Open task tokens of the running executions.
#[derive(Debug, Default)]
pub struct TokenRegistry {
    open: Mutex<HashMap<String, Open>>,
}

impl TokenRegistry {
    /// Open a token; the receiver gets the messages sent to it.
    /// `heartbeat`: its task times out without heartbeats.
    pub fn open(&self, token: &str, heartbeat: bool) -> mpsc::UnboundedReceiver<TokenMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock()
            .insert(token.to_string(), Open { tx, heartbeat });
        rx
    }

    /// The tokens waiting for an answer now.
    pub fn open_tokens(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Does a task wait for this token's answer now?
    pub fn is_open(&self, token: &str) -> bool {
        self.lock().contains_key(token)
    }

    /// The open tokens whose tasks wait for heartbeats.
    pub fn heartbeat_tokens(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, o)| o.heartbeat)
            .map(|(t, _)| t.clone())
            .collect()
    }

    pub fn close(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, token: &str, msg: TokenMessage) -> Result<(), TokenError> {
        let guard = self.lock();
        let open = guard
            .get(token)
            .ok_or_else(|| TokenError::Unknown(token.to_string()))?;
        open.tx
            .send(msg)
            .map_err(|_| TokenError::Unknown(token.to_string()))
    }

    pub fn send_success(&self, token: &str, output: Value) -> Result<(), TokenError> {
        self.send(token, TokenMessage::Success(output))
    }

    pub fn send_failure(
        &self,
        token: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<(), TokenError> {
        self.send(token, TokenMessage::Failure(Failure { error, cause }))
    }

    pub fn send_heartbeat(&self, token: &str) -> Result<(), TokenError> {
        self.send(token, TokenMessage::Heartbeat)
    }
}
