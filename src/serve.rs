//! `piflow serve`: an HTTP server (axum) that starts executions from
//! EventBridge events (`POST /events`) and git tag pushes (`POST
//! /webhooks/github`, `POST /webhooks/gitlab`), and shows them (`GET
//! /executions[/ID]`, `GET /healthz`, `GET /metrics`). See
//! docs/triggers.md ("piflow serve").
//!
//! Requests are authenticated before their body is parsed: an API key or an
//! HMAC-SHA256 signature (with a timestamp, ±5 minutes) for events, GitHub's
//! `X-Hub-Signature-256`, GitLab's token, and for reads of executions the
//! read key or the API key; every comparison is constant-time. Every error
//! answer is `{"error", "reason"}` JSON; connections have header, body and
//! idle timeouts and a cap (`conn`).
//! Secrets come from the environment only. An accepted event is recorded
//! durably once (`triggers::events::accept`), so a redelivered event starts
//! nothing again. Executions run in this process with the durable runner;
//! on SIGTERM/SIGINT the server stops accepting, stops its executions
//! between two commits (they stay RUNNING), gives their leases back and
//! exits; on start-up, and then every `--orphan-scan` seconds, it resumes
//! the executions no live process holds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{MatchedPath, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::EXIT_USAGE;
use super::run::print_workflow_error;
use super::store_cmds::StoreArg;
use super::tasks::{self, Mocks};
use piflow_runner::{StartRequest, env_key, exec_key};
use piflow_store::Store;
use piflow_triggers::config::TriggerConfig;
use piflow_triggers::events::{self, ACCEPTED, EVENTS_ENV, Planned, event_id};
use piflow_triggers::service::{
    Admission, AdmitError, PreloadError, Rules, TagEvent, TagRefusal, TagSource, TagStop,
    TriggerService, fetch_and_resolve,
};

mod conn;
mod sfn;

/// The largest request body: an execution's input limit (256 KiB).
pub const BODY_LIMIT: usize = 256 * 1024;

/// The longest request target (path and query) the routes answer: 8 KiB
/// (414 `uri-too-long` above).
pub const URI_LIMIT: usize = 8 * 1024;

/// The most bytes of header fields (names, values and `: ` and CRLF each)
/// the routes answer: 16 KiB (431 `headers-too-large` above).
pub const HEADERS_LIMIT: usize = 16 * 1024;

/// How far a signed request's timestamp may be from now.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;

type HmacSha256 = Hmac<sha2::Sha256>;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The address to listen on (port 0: any free port; the address is
    /// printed on the first line of stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The rules (default: piflow.yaml in the working directory).
    #[arg(long, env = "PIFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// A local clone that tag pushes (webhooks) are resolved in, after `git
    /// fetch --tags` when it has a remote. Without it the webhooks answer 503.
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Mocked task responses (rehearsals and tests), as for `piflow run`;
    /// a Step Functions API start of `…:stateMachine:NAME#CASE` picks test
    /// case CASE of a Step Functions Local file.
    #[arg(long)]
    mock: Option<String>,
    /// Seconds a connection has to send a whole request head (request line
    /// and headers), from opening or from the head's first byte; then it is
    /// closed.
    #[arg(long, env = "PIFLOW_SERVE_HEADER_TIMEOUT", default_value = "10", value_parser = seconds)]
    header_timeout: Duration,
    /// Seconds a request body has to arrive; then 408 and the connection
    /// is closed.
    #[arg(long, env = "PIFLOW_SERVE_BODY_TIMEOUT", default_value = "30", value_parser = seconds)]
    body_timeout: Duration,
    /// Seconds a keep-alive connection may stay idle between two requests;
    /// then it is closed.
    #[arg(long, env = "PIFLOW_SERVE_IDLE_TIMEOUT", default_value = "60", value_parser = seconds)]
    idle_timeout: Duration,
    /// Open connections at most; more wait in the listen backlog until one
    /// closes.
    #[arg(long, env = "PIFLOW_SERVE_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// The listen backlog: connections the kernel queues before they are
    /// accepted (capped by net.core.somaxconn).
    #[arg(long, env = "PIFLOW_SERVE_BACKLOG", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    backlog: u32,
    /// Seconds the Step Functions API's GetActivityTask waits for an
    /// activity task before it answers with none (Step Functions waits 60).
    #[arg(long, env = "PIFLOW_ACTIVITY_POLL", default_value = "60", value_parser = seconds)]
    activity_poll: Duration,
    /// Look for orphaned executions (RUNNING, their process gone or their
    /// lease expired) every this many seconds and resume them here; 0:
    /// only at start-up.
    #[arg(
        long,
        env = "PIFLOW_ORPHAN_SCAN",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    orphan_scan: u64,
    #[command(flatten)]
    store: StoreArg,
}

/// A number of seconds (fractions allowed), more than 0 and at most a day.
fn seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{text:?} is not a number of seconds above 0 and at most 86400 (e.g. 10 or 0.5)"
        )),
    }
}

/// The secrets, from the environment (never from flags: they would show in
/// `ps`). An empty value counts as unset.
#[derive(Default, Clone)]
pub struct Secrets {
    /// `PIFLOW_API_KEY`: posts events and reads executions.
    pub api_key: Option<Vec<u8>>,
    /// `PIFLOW_READ_KEY`: reads executions (the GET routes) only.
    pub read_key: Option<Vec<u8>>,
    pub hmac: Option<Vec<u8>>,
    pub github: Option<Vec<u8>>,
    pub gitlab: Option<Vec<u8>>,
}

impl Secrets {
    pub fn from_env() -> Secrets {
        let get = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .map(String::into_bytes)
        };
        Secrets {
            api_key: get("PIFLOW_API_KEY"),
            read_key: get("PIFLOW_READ_KEY"),
            hmac: get("PIFLOW_HMAC_SECRET"),
            github: get("PIFLOW_GITHUB_SECRET"),
            gitlab: get("PIFLOW_GITLAB_TOKEN"),
        }
    }
}

type Labels = Vec<(String, String)>;

struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    events: Family<Labels, Counter>,
    started: Counter,
    finished: Family<Labels, Counter>,
    running: Gauge,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let events = Family::<Labels, Counter>::default();
        let started = Counter::default();
        let finished = Family::<Labels, Counter>::default();
        let running = Gauge::default();
        registry.register(
            "piflow_serve_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "piflow_serve_events",
            "Events received, by outcome (accepted, duplicate, unauthorized, malformed, refused)",
            events.clone(),
        );
        registry.register(
            "piflow_serve_executions_started",
            "Executions started or resumed by this server",
            started.clone(),
        );
        registry.register(
            "piflow_serve_executions_finished",
            "Executions this server ran to an end, by status",
            finished.clone(),
        );
        registry.register(
            "piflow_serve_executions_running",
            "Executions running in this server now",
            running.clone(),
        );
        Metrics {
            registry,
            requests,
            events,
            started,
            finished,
            running,
        }
    }

    fn event(&self, outcome: &str) {
        self.events
            .get_or_create(&vec![("outcome".to_string(), outcome.to_string())])
            .inc();
    }
}

/// What the server shares between requests.
struct App {
    /// Starts the executions (its runner resumes them too).
    service: Arc<TriggerService>,
    store: Arc<dyn Store>,
    /// piflow.yaml's rules, with every workflow they name loaded.
    rules: Rules,
    secrets: Secrets,
    repo: Option<PathBuf>,
    metrics: Metrics,
    /// Executions running in this process: id → (env, task).
    running: Mutex<HashMap<String, (Option<String>, tokio::task::AbortHandle)>>,
    /// Events this process recorded or found recorded (id → execution
    /// ids): a redelivery is answered without the store. Bounded: emptied
    /// when it reaches [`SEEN_LIMIT`] (the store still dedupes).
    seen: Mutex<HashMap<String, Vec<String>>>,
    stopping: AtomicBool,
    /// The Step Functions API (`POST /`), with its key pairs.
    api: piflow_sfn_api::Api,
    /// How long a request body may take to arrive.
    body_timeout: Duration,
}

/// How many event ids [`App::seen`] holds at most.
const SEEN_LIMIT: usize = 100_000;

type Shared = Arc<App>;

/// A JSON answer.
fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        format!("{body}\n"),
    )
        .into_response()
}

/// A 4xx/5xx answer with a stable code and a reason.
fn refuse(status: StatusCode, code: &str, reason: impl Into<String>) -> Response {
    reply(status, json!({"error": code, "reason": reason.into()}))
}

impl App {
    fn seen_event(&self, id: &str) -> Option<Vec<String>> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn remember_event(&self, id: &str, executions: &[String]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= SEEN_LIMIT {
            seen.clear();
        }
        seen.insert(id.to_string(), executions.to_vec());
    }

    fn is_running(&self, id: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    /// Run `fut` (a start or a resume of `id`) as a task of this server.
    fn spawn_run<F>(self: &Arc<Self>, id: String, env: Option<String>, fut: F)
    where
        F: std::future::Future<
                Output = Result<piflow_runner::Finished, piflow_runner::RunnerError>,
            > + Send
            + 'static,
    {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&id) {
            return;
        }
        let app = self.clone();
        let task_id = id.clone();
        self.metrics.started.inc();
        self.metrics.running.inc();
        let handle = tokio::spawn(async move {
            match fut.await {
                Ok(f) => {
                    tracing::info!(execution = %task_id, status = %f.record.status, existing = f.existing, "execution ended");
                    if f.record.status != piflow_engine::Status::Running {
                        app.metrics
                            .finished
                            .get_or_create(&vec![(
                                "status".to_string(),
                                f.record.status.to_string(),
                            )])
                            .inc();
                    }
                }
                Err(e) => {
                    tracing::warn!(execution = %task_id, code = e.code(), error = %e, "execution could not run");
                    app.metrics
                        .finished
                        .get_or_create(&vec![(
                            "status".to_string(),
                            format!("refused:{}", e.code()),
                        )])
                        .inc();
                }
            }
            app.metrics.running.dec();
            app.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&task_id);
        });
        running.insert(id, (env, handle.abort_handle()));
    }

    /// Start a planned execution in the background.
    fn start(self: &Arc<Self>, p: &Planned, trigger: String) {
        let author = format!("serve:{}", super::run::user());
        let Some(req) = self.rules.event_request(p, trigger, author) else {
            tracing::warn!(execution = %p.id, workflow = %p.workflow, "workflow not loaded; not started");
            return;
        };
        self.start_request(p.id.clone(), req);
    }

    /// Start a checked request in the background, through the service.
    fn start_request(self: &Arc<Self>, id: String, req: StartRequest) {
        let service = self.service.clone();
        let env = req.env.clone();
        self.spawn_run(id, env, async move { service.start(req).await });
    }

    fn resume(self: &Arc<Self>, id: String, env: Option<String>) {
        let service = self.service.clone();
        let rid = id.clone();
        self.spawn_run(id, env, async move { service.runner().resume(&rid).await });
    }

    /// Executions an accepted event planned that have no record yet (the
    /// server stopped between the dedupe record and the start): start them.
    async fn start_missing(self: &Arc<Self>, planned: &[Planned], trigger: &str) -> usize {
        let missing = self
            .service
            .unstarted(planned, &|id: &str| self.is_running(id))
            .await;
        for p in &missing {
            self.start(p, trigger.to_string());
        }
        missing.len()
    }
}

/// Read a body under the limit, within the body timeout (else 408, and the
/// connection is closed: the rest of the body is not awaited).
async fn read_body(body: Body, timeout: Duration) -> Result<Bytes, Box<Response>> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        // Both leave the body unread: `uniform_errors` closes the
        // connection after them.
        Ok(Err(e)) => Err(Box::new(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!(
                "the body is larger than {BODY_LIMIT} bytes (an execution's input limit) or could not be read: {e}"
            ),
        ))),
        Err(_) => Err(Box::new(refuse(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            format!(
                "the body did not arrive within {} s (--body-timeout)",
                timeout.as_secs_f64()
            ),
        ))),
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Constant-time equality of two secrets of any length (their SHA-256
/// digests are compared, so the length does not leak either).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    let (x, y) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    x.as_slice().ct_eq(y.as_slice()).into()
}

/// `sha256=HEX` over `parts`, checked in constant time (`verify_slice`).
fn check_hmac(secret: &[u8], sig: &str, parts: &[&[u8]]) -> Result<(), String> {
    let Some(hex) = sig.strip_prefix("sha256=") else {
        return Err("the signature must read sha256=HEX".into());
    };
    let Some(bytes) = unhex(hex) else {
        return Err("the signature is not hexadecimal".into());
    };
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|e| e.to_string())?;
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(&bytes)
        .map_err(|_| "the signature does not match the body".to_string())
}

/// Why `POST /events` was refused: not authenticated (401), or with the
/// read-only key (403).
enum Denied {
    Unauthorized(String),
    ReadOnly,
}

impl From<String> for Denied {
    fn from(reason: String) -> Denied {
        Denied::Unauthorized(reason)
    }
}

impl From<&str> for Denied {
    fn from(reason: &str) -> Denied {
        Denied::Unauthorized(reason.to_string())
    }
}

/// Authenticate `POST /events`: an HMAC signature with a fresh timestamp,
/// or the API key (not the read key).
fn auth_events(s: &Secrets, headers: &HeaderMap, body: &[u8]) -> Result<&'static str, Denied> {
    if let Some(sig) = header_str(headers, "x-piflow-signature") {
        let Some(secret) = &s.hmac else {
            return Err("X-Piflow-Signature was sent but PIFLOW_HMAC_SECRET is not set in the server's environment".into());
        };
        let Some(ts) = header_str(headers, "x-piflow-timestamp") else {
            return Err("a signed request needs X-Piflow-Timestamp (Unix seconds), which the signature covers".into());
        };
        let Ok(t) = ts.trim().parse::<i64>() else {
            return Err(format!("X-Piflow-Timestamp {ts:?} is not Unix seconds").into());
        };
        let skew = chrono::Utc::now().timestamp() - t;
        if skew.abs() > SIGNATURE_WINDOW_SECS {
            return Err(format!(
                "X-Piflow-Timestamp is {skew} s from the server's clock; at most ±{SIGNATURE_WINDOW_SECS} s is accepted (a replayed or delayed request?)"
            )
            .into());
        }
        check_hmac(secret, sig, &[ts.trim().as_bytes(), b".", body])?;
        return Ok("hmac");
    }
    if let Some(key) = header_str(headers, "x-piflow-api-key") {
        let api = s
            .api_key
            .as_deref()
            .is_some_and(|k| same_secret(key.as_bytes(), k));
        let read = s
            .read_key
            .as_deref()
            .is_some_and(|k| same_secret(key.as_bytes(), k));
        if api {
            return Ok("api-key");
        }
        if read {
            return Err(Denied::ReadOnly);
        }
        if s.api_key.is_none() {
            return Err("X-Piflow-Api-Key was sent but PIFLOW_API_KEY is not set in the server's environment".into());
        }
        return Err("the API key is wrong".into());
    }
    Err("the request is not authenticated: send X-Piflow-Signature: sha256=HMAC(TIMESTAMP.BODY) with X-Piflow-Timestamp, or X-Piflow-Api-Key".into())
}

/// Authenticate a read (`GET /executions[/ID]`): `X-Piflow-Api-Key` holding
/// the read key or the API key, both compared in constant time. Without
/// either key configured, reads are off (503), as `POST /events` is.
fn auth_read(s: &Secrets, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if s.api_key.is_none() && s.read_key.is_none() {
        return Err(Box::new(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-configured",
            "reading executions is off: set PIFLOW_READ_KEY (reads only) or PIFLOW_API_KEY in piflow serve's environment, and send it as X-Piflow-Api-Key",
        )));
    }
    let Some(key) = header_str(headers, "x-piflow-api-key") else {
        return Err(Box::new(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "executions hold inputs and outputs: send X-Piflow-Api-Key with the read key (PIFLOW_READ_KEY) or the API key (PIFLOW_API_KEY)",
        )));
    };
    let api = s
        .api_key
        .as_deref()
        .is_some_and(|k| same_secret(key.as_bytes(), k));
    let read = s
        .read_key
        .as_deref()
        .is_some_and(|k| same_secret(key.as_bytes(), k));
    if api | read {
        return Ok(());
    }
    Err(Box::new(refuse(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the key is wrong",
    )))
}

/// The read routes' guard (`GET /executions`, `GET /executions/ID`): see
/// [`auth_read`]. Runs before the route's own extractors are judged, so a
/// stranger learns nothing from a malformed query either.
async fn require_read(State(app): State<Shared>, req: Request, next: Next) -> Response {
    if let Err(r) = auth_read(&app.secrets, req.headers()) {
        return *r;
    }
    next.run(req).await
}

/// A JSON body, or 400 naming where it stops being JSON.
fn parse_json(bytes: &[u8]) -> Result<Value, Box<Response>> {
    serde_json::from_slice(bytes).map_err(|e| {
        Box::new(refuse(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            format!("the body is not JSON: {e}"),
        ))
    })
}

async fn post_events(State(app): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    if app.secrets.api_key.is_none() && app.secrets.hmac.is_none() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-configured",
            "POST /events is off: set PIFLOW_API_KEY or PIFLOW_HMAC_SECRET in piflow serve's environment",
        );
    }
    let bytes = match read_body(body, app.body_timeout).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match auth_events(&app.secrets, &headers, &bytes) {
        Ok(_) => {}
        Err(Denied::Unauthorized(reason)) => {
            app.metrics.event("unauthorized");
            tracing::warn!(%reason, "event refused: not authenticated");
            return refuse(StatusCode::UNAUTHORIZED, "unauthorized", reason);
        }
        Err(Denied::ReadOnly) => {
            app.metrics.event("unauthorized");
            tracing::warn!("event refused: sent with the read-only key");
            return refuse(
                StatusCode::FORBIDDEN,
                "read-only-key",
                "X-Piflow-Api-Key holds the read key (PIFLOW_READ_KEY), which only reads executions: post events with PIFLOW_API_KEY or an HMAC signature",
            );
        }
    }
    let event = match parse_json(&bytes) {
        Ok(v) => v,
        Err(r) => {
            app.metrics.event("malformed");
            return *r;
        }
    };
    let id = match event_id(&event) {
        Ok(id) => id.to_string(),
        Err(e) => {
            app.metrics.event("malformed");
            return refuse(StatusCode::BAD_REQUEST, e.code(), e.to_string());
        }
    };
    // Fast path: an event this process accepted already.
    if let Some(ids) = app.seen_event(&id) {
        app.metrics.event("duplicate");
        return reply(
            StatusCode::OK,
            json!({"id": id, "status": "duplicate", "executions": ids}),
        );
    }
    let running = |execution: &str| app.is_running(execution);
    let receipt = match app
        .service
        .receive_event(&app.rules, &event, &id, "serve:events", running)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(event = %id, error = %e, "the event could not be recorded");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                e.code(),
                format!(
                    "the event could not be recorded, so nothing was started (send it again): {e}"
                ),
            );
        }
    };
    let trigger = format!("event:{id}");
    for p in &receipt.start {
        app.start(p, trigger.clone());
    }
    let ids = receipt.ids();
    app.remember_event(&id, &ids);
    let acc = &receipt.acceptance;
    if !receipt.first() {
        app.metrics.event("duplicate");
        return reply(
            StatusCode::OK,
            json!({
                "id": id, "status": "duplicate", "executions": ids,
                "first_seen": acc.at, "restarted": receipt.start.len(),
            }),
        );
    }
    let refused = &receipt.refused;
    if acc.planned.is_empty() && !refused.is_empty() {
        app.metrics.event("refused");
        return reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"id": id, "status": "refused", "error": refused[0].code, "reason": refused[0].reason, "refused": acc.refused}),
        );
    }
    app.metrics.event(if acc.planned.is_empty() {
        "unmatched"
    } else {
        "accepted"
    });
    reply(
        StatusCode::ACCEPTED,
        json!({"id": id, "status": if ids.is_empty() { "unmatched" } else { "accepted" }, "executions": ids, "refused": acc.refused}),
    )
}

/// A tag push from a webhook: resolve the tag in `--repo` (after `git fetch
/// --tags`), then the trigger service plans, admits and starts it as for
/// `piflow trigger tag`.
async fn tag_pushed(app: &Shared, tag: &str, actor: &str) -> Response {
    let Some(repo) = app.repo.clone() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-repo",
            "tag pushes are resolved in a local clone: start piflow serve with --repo PATH",
        );
    };
    let shown = std::fs::canonicalize(&repo)
        .unwrap_or_else(|_| repo.clone())
        .display()
        .to_string();
    let tag_owned = tag.to_string();
    let resolved = tokio::task::spawn_blocking(move || fetch_and_resolve(&repo, &tag_owned)).await;
    let info = match resolved {
        Ok(Ok(i)) => i,
        Ok(Err(e)) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let event = TagEvent {
        info,
        actor: actor.to_string(),
        origin: TagSource::Webhook { repo: shown },
    };
    let plan = match app.rules.plan_tag(&event) {
        Ok(p) => p,
        Err(TagStop::Refused(r)) => return refused_tag(app, r).await,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.code(), e.to_string()),
    };
    match app.service.admit_tag(&plan).await {
        Ok(Admission::Start) => {}
        Ok(Admission::Duplicate(r)) => {
            return reply(
                StatusCode::OK,
                json!({"tag": tag, "status": "duplicate", "execution": plan.id, "execution_status": r.status}),
            );
        }
        Err(AdmitError::Refused(r)) => return refused_tag(app, r).await,
        Err(AdmitError::Lookup(e)) => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string());
        }
        Err(e @ AdmitError::Record(_)) => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string());
        }
    }
    let author = format!("serve:{}", super::run::user());
    app.start_request(plan.id.clone(), plan.start_request(author, true));
    reply(
        StatusCode::ACCEPTED,
        json!({"tag": tag, "status": "accepted", "execution": plan.id}),
    )
}

/// A refused tag: audited (`trigger.refused`), answered 422.
async fn refused_tag(app: &Shared, r: Box<TagRefusal>) -> Response {
    if let Err(e) = app.service.refuse(&r).await {
        tracing::warn!(error = %e, "the refusal could not be audited");
    }
    refuse(StatusCode::UNPROCESSABLE_ENTITY, r.code(), r.reason)
}

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The tag a push payload creates, if it creates one.
fn created_tag(payload: &Value) -> Option<String> {
    let r = payload.get("ref")?.as_str()?;
    let tag = r.strip_prefix("refs/tags/")?;
    let after = payload.get("after").and_then(Value::as_str).unwrap_or("");
    let before = payload.get("before").and_then(Value::as_str).unwrap_or("");
    let created = payload
        .get("created")
        .and_then(Value::as_bool)
        .unwrap_or(before.chars().all(|c| c == '0'));
    let deleted = payload
        .get("deleted")
        .and_then(Value::as_bool)
        .unwrap_or(after == ZERO_SHA);
    (created && !deleted && !tag.is_empty()).then(|| tag.to_string())
}

async fn post_github(State(app): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let Some(secret) = app.secrets.github.clone() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-configured",
            "POST /webhooks/github is off: set PIFLOW_GITHUB_SECRET in piflow serve's environment (and the same secret on the GitHub webhook)",
        );
    };
    let bytes = match read_body(body, app.body_timeout).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(sig) = header_str(&headers, "x-hub-signature-256") else {
        app.metrics.event("unauthorized");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no X-Hub-Signature-256: set the webhook's secret on GitHub",
        );
    };
    if let Err(reason) = check_hmac(&secret, sig, &[&bytes]) {
        app.metrics.event("unauthorized");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("X-Hub-Signature-256: {reason}"),
        );
    }
    let payload = match parse_json(&bytes) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match header_str(&headers, "x-github-event").unwrap_or("") {
        "ping" => reply(StatusCode::OK, json!({"status": "pong"})),
        "push" => match created_tag(&payload) {
            Some(tag) => {
                let who = payload
                    .pointer("/pusher/name")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                tag_pushed(&app, &tag, &format!("github:{who}")).await
            }
            None => reply(
                StatusCode::ACCEPTED,
                json!({"status": "ignored", "reason": "not the creation of a tag"}),
            ),
        },
        other => reply(
            StatusCode::ACCEPTED,
            json!({"status": "ignored", "reason": format!("X-GitHub-Event {other:?} is not a push")}),
        ),
    }
}

async fn post_gitlab(State(app): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let Some(expected) = app.secrets.gitlab.clone() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-configured",
            "POST /webhooks/gitlab is off: set PIFLOW_GITLAB_TOKEN in piflow serve's environment (and the same secret token on the GitLab webhook)",
        );
    };
    let bytes = match read_body(body, app.body_timeout).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match header_str(&headers, "x-gitlab-token") {
        Some(t) if same_secret(t.as_bytes(), &expected) => {}
        Some(_) => {
            app.metrics.event("unauthorized");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "X-Gitlab-Token is wrong",
            );
        }
        None => {
            app.metrics.event("unauthorized");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "no X-Gitlab-Token: set the webhook's secret token on GitLab",
            );
        }
    }
    let payload = match parse_json(&bytes) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let kind = payload
        .get("object_kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "tag_push" {
        return reply(
            StatusCode::ACCEPTED,
            json!({"status": "ignored", "reason": format!("object_kind {kind:?} is not tag_push")}),
        );
    }
    match created_tag(&payload) {
        Some(tag) => {
            let who = payload
                .get("user_username")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            tag_pushed(&app, &tag, &format!("gitlab:{who}")).await
        }
        None => reply(
            StatusCode::ACCEPTED,
            json!({"status": "ignored", "reason": "not the creation of a tag"}),
        ),
    }
}

fn summary(r: &piflow_store::ExecutionRecord) -> Value {
    json!({
        "id": r.id, "workflow": r.workflow, "name": r.name, "status": r.status,
        "trigger": r.trigger, "env": r.env, "started": r.started, "stopped": r.stopped,
        "version": r.version,
    })
}

#[derive(serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
    workflow: Option<String>,
    limit: Option<usize>,
}

/// The most executions `GET /executions` answers with (and its default).
const LIST_LIMIT: usize = 1000;

async fn get_executions(
    State(app): State<Shared>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad-query",
                format!(
                    "{}; GET /executions takes status=STATUS, workflow=NAME and limit=N (a whole number)",
                    e.body_text()
                ),
            );
        }
    };
    let status = match q.status.map(|s| s.to_ascii_uppercase().parse()) {
        None => None,
        Some(Ok(s)) => Some(s),
        // No execution has a status that does not exist.
        Some(Err(_)) => return reply(StatusCode::OK, Value::Array(Vec::new())),
    };
    let query = piflow_store::ExecutionQuery {
        status,
        workflow: q.workflow,
        limit: Some(q.limit.unwrap_or(LIST_LIMIT).min(LIST_LIMIT)),
    };
    match app.store.list_executions(query).await {
        Ok(rs) => reply(
            StatusCode::OK,
            Value::Array(rs.iter().map(summary).collect()),
        ),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string()),
    }
}

async fn get_execution(
    State(app): State<Shared>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Response {
    let id = match id {
        Ok(UrlPath(id)) => id,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "bad-path", e.body_text()),
    };
    let id = piflow_runner::id_from(&id);
    match app.store.execution(&id).await {
        Ok(Some(r)) => {
            let events = app.store.events(&id).await.map(|e| e.len()).unwrap_or(0);
            let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("history_events".into(), json!(events));
                m.insert("running_here".into(), json!(app.is_running(&id)));
            }
            reply(StatusCode::OK, v)
        }
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            "execution-not-found",
            format!("no execution {id}"),
        ),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string()),
    }
}

async fn healthz(State(app): State<Shared>) -> Response {
    // One read: the newest execution. It proves that the store answers and
    // that its executions can be read back (a store that cannot be read is
    // not healthy).
    let probe = app
        .store
        .list_executions(piflow_store::ExecutionQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .map(|_| ());
    match probe {
        Ok(()) => reply(
            StatusCode::OK,
            json!({"status": if app.stopping.load(Ordering::SeqCst) { "stopping" } else { "ok" }, "running": app.running.lock().map(|r| r.len()).unwrap_or(0)}),
        ),
        Err(e) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            e.code(),
            format!("the store cannot be read: {e}"),
        ),
    }
}

async fn metrics(State(app): State<Shared>) -> Response {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &app.metrics.registry) {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "metrics", e.to_string());
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}

const ROUTES: &str = "POST /events, POST /webhooks/github, POST /webhooks/gitlab, GET /executions, GET /executions/ID, GET /healthz, GET /metrics";

async fn no_route(State(app): State<Shared>, method: Method, uri: Uri) -> Response {
    count(&app, "(none)", StatusCode::NOT_FOUND);
    refuse(
        StatusCode::NOT_FOUND,
        "no-route",
        format!("no route {method} {}; the routes are {ROUTES}", uri.path()),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!(
            "{} does not take {method}; the routes are {ROUTES}",
            uri.path()
        ),
    )
}

fn count(app: &App, route: &str, status: StatusCode) {
    app.metrics
        .requests
        .get_or_create(&vec![
            ("route".to_string(), route.to_string()),
            ("status".to_string(), status.as_u16().to_string()),
        ])
        .inc();
}

/// Count requests by route and status.
async fn track(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(none)".to_string(), |m| m.as_str().to_string());
    let res = next.run(req).await;
    count(&app, &route, res.status());
    res
}

/// Every error answer in one shape: an error that is not JSON yet (the
/// body limit layer's empty 413, an extractor's text) becomes `{"error":
/// CODE, "reason": TEXT}` with its text as the reason. A 413 or 408 also
/// closes the connection (its body was left unread).
async fn uniform_errors(mut res: Response) -> Response {
    let status = res.status();
    // A body too large or too slow was left unread.
    if matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    ) {
        close_after(&mut res);
    }
    if !(status.is_client_error() || status.is_server_error())
        || res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|c| c == "application/json" || c == piflow_sfn_api::api::CONTENT_TYPE)
    {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad-request",
        StatusCode::NOT_FOUND => "no-route",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::REQUEST_TIMEOUT => "body-timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
        StatusCode::URI_TOO_LONG => "uri-too-long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers-too-large",
        _ if status.is_server_error() => "internal",
        _ => "refused",
    };
    let reason = match (status, text.is_empty()) {
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            format!("the body is larger than {BODY_LIMIT} bytes (an execution's input limit)")
        }
        (_, false) => text,
        (_, true) => status.canonical_reason().unwrap_or("refused").to_string(),
    };
    let mut out = refuse(status, code, reason);
    if let Some(c) = parts.headers.get(header::CONNECTION) {
        out.headers_mut().insert(header::CONNECTION, c.clone());
    }
    out
}

/// Ask hyper and the client to close the connection after this answer: a
/// body was left unread (too large, or too slow), so the connection cannot
/// carry another request (a client that reused it would see it closed).
fn close_after(res: &mut Response) {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Refuse a request target over [`URI_LIMIT`] (414) or header fields over
/// [`HEADERS_LIMIT`] (431) before any route runs. (Heads hyper cannot
/// parse at all are answered by `conn`.)
async fn check_head(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > URI_LIMIT {
        return refuse(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            format!("the request target is {target} bytes; piflow serve takes at most {URI_LIMIT}"),
        );
    }
    let fields: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if fields > HEADERS_LIMIT {
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            format!(
                "the header fields are {fields} bytes; piflow serve takes at most {HEADERS_LIMIT}"
            ),
        );
    }
    next.run(req).await
}

fn app_router(app: Shared) -> Router {
    // The Step Functions API takes definitions of up to 1 MiB: its own
    // body limit.
    let api = Router::new()
        .route("/", post(sfn::post_api))
        .route_layer(tower_http::limit::RequestBodyLimitLayer::new(
            piflow_sfn_api::api::MAX_BODY,
        ))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), track));
    Router::new()
        .route("/events", post(post_events))
        .route("/webhooks/github", post(post_github))
        .route("/webhooks/gitlab", post(post_gitlab))
        .merge(
            Router::new()
                .route("/executions", get(get_executions))
                .route("/executions/{id}", get(get_execution))
                .route_layer(axum::middleware::from_fn_with_state(
                    app.clone(),
                    require_read,
                )),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), track))
        .route_layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .merge(api)
        .method_not_allowed_fallback(wrong_method)
        .fallback(no_route)
        .layer(axum::middleware::map_response(uniform_errors))
        .layer(axum::middleware::from_fn(check_head))
        .with_state(app)
}

/// Wait for SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            futures::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                futures::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `piflow serve`.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let config = match TriggerConfig::find(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("piflow: error: [config-invalid] {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let addr: SocketAddr = match args.listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "piflow: error: --listen {:?} is not an address such as 127.0.0.1:8080: {e}",
                args.listen
            );
            return Ok(EXIT_USAGE);
        }
    };
    // Every workflow a rule names is read and validated now, not when an
    // event arrives.
    let shown = config.shown();
    let (n_events, n_tags) = (config.events.len(), config.tags.len());
    let rules = match Rules::preload(config, args.repo.is_some()) {
        Ok(r) => r,
        Err(PreloadError::Workflow { path, source }) => {
            print_workflow_error(&source);
            eprintln!(
                "piflow: error: [no-workflow] workflow {} is not valid (see above)",
                path.display()
            );
            return Ok(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("piflow: error: [{}] {e}", e.code());
            return Ok(EXIT_USAGE);
        }
    };
    let mocks = match Mocks::read(args.mock.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let secrets = Secrets::from_env();
    let api_keys = match piflow_sfn_api::sigv4::KeyPairs::from_env() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("piflow: error: [{}] {e}", e.code());
            return Ok(EXIT_USAGE);
        }
    };
    let api_on = api_keys.is_some();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let outcome = rt.block_on(async {
        let store = match args.store.open().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("piflow: error: {e}");
                return Ok::<_, anyhow::Error>(None);
            }
        };
        let identity = piflow_sfn_api::Identity::from_env();
        let activities = piflow_sfn_api::activities::Queue::new(args.activity_poll);
        let mut service = tasks::service(store.clone(), mocks);
        activities.register(&mut service.runner_mut().tasks, &identity);
        let service = Arc::new(service);
        let listener = match conn::bind(addr, args.backlog) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("piflow: error: cannot listen on {addr}: {e}");
                return Ok(None);
            }
        };
        let local = listener.local_addr().context("reading the bound address")?;
        let app = Arc::new_cyclic(|me: &std::sync::Weak<App>| App {
            api: piflow_sfn_api::Api::new(
                api_keys,
                piflow_sfn_api::Backend {
                    service: service.clone(),
                    launcher: Arc::new(sfn::Launch(me.clone())),
                    identity,
                    activities,
                },
            ),
            service,
            store: store.clone(),
            rules,
            secrets: secrets.clone(),
            repo: args.repo.clone(),
            metrics: Metrics::new(),
            running: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            body_timeout: args.body_timeout,
        });
        println!("piflow serve: listening on http://{local}");
        eprintln!(
            "piflow serve: {n_events} event rule(s), {n_tags} tag rule(s) from {shown}; POST /events {}, GET /executions {}, webhooks: github {}, gitlab {}, Step Functions API (POST /) {}",
            match (&secrets.api_key, &secrets.hmac) {
                (None, None) => "off (set PIFLOW_API_KEY or PIFLOW_HMAC_SECRET)",
                _ => "on",
            },
            match (&secrets.api_key, &secrets.read_key) {
                (None, None) => "off (set PIFLOW_READ_KEY or PIFLOW_API_KEY)",
                _ => "on",
            },
            if secrets.github.is_some() { "on" } else { "off" },
            if secrets.gitlab.is_some() { "on" } else { "off" },
            if api_on {
                "on"
            } else {
                "off (set PIFLOW_API_ACCESS_KEY_ID and PIFLOW_API_SECRET_ACCESS_KEY)"
            },
        );
        recover(&app).await;
        if args.orphan_scan > 0 {
            let scanner = app.clone();
            tokio::spawn(app.service.runner().clone().watch_orphans(
                Duration::from_secs(args.orphan_scan),
                move |o| scanner.resume(o.id, o.env),
            ));
        }
        let limits = conn::Limits {
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            max_connections: args.max_connections,
        };
        // A stop ends the workers' waits for activity tasks at once: the
        // open connections are waited for.
        let stop = {
            let activities = app.api.backend().activities.clone();
            async move {
                shutdown_signal().await;
                activities.close();
            }
        };
        conn::serve(listener, app_router(app.clone()), limits, stop).await;
        app.stopping.store(true, Ordering::SeqCst);
        // Stop the executions between two commits: what they committed
        // stays; they are RUNNING and resumable.
        let stopped: Vec<(String, Option<String>)> = {
            let mut running = app.running.lock().unwrap_or_else(|p| p.into_inner());
            running
                .drain()
                .map(|(id, (env, handle))| {
                    handle.abort();
                    (id, env)
                })
                .collect()
        };
        Ok(Some((store, stopped, app.service.runner().holder.clone())))
    })?;
    let Some((store, stopped, holder)) = outcome else {
        return Ok(EXIT_USAGE);
    };
    // Ending the runtime ends the lease keepers; then the leases are given
    // back so that the next server resumes at once instead of after the TTL.
    rt.shutdown_timeout(Duration::from_secs(5));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        for (id, env) in &stopped {
            let _ = store.release_lease(&exec_key(id), &holder).await;
            if let Some(env) = env {
                let _ = store.release_lease(&env_key(env), id).await;
                let _ = store.leave_queue(&env_key(env), id).await;
            }
        }
    });
    eprintln!(
        "piflow serve: stopped; {} execution(s) left RUNNING and resumable{}",
        stopped.len(),
        if stopped.is_empty() {
            String::new()
        } else {
            format!(
                " ({}): the next piflow serve resumes them, or `piflow resume --orphans`",
                stopped
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(0)
}

/// At start-up: resume the executions no live process holds, and start
/// those that recent accepted events planned but never started.
async fn recover(app: &Shared) {
    match app.service.runner().orphans().await {
        Ok(orphans) => {
            if !orphans.is_empty() {
                eprintln!(
                    "piflow serve: resuming {} orphaned execution(s): {}",
                    orphans.len(),
                    orphans
                        .iter()
                        .map(|o| o.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for o in orphans {
                app.resume(o.id.clone(), o.env.clone());
            }
        }
        Err(e) => eprintln!("piflow: warning: cannot list orphaned executions: {e}"),
    }
    let since = chrono::Utc::now() - chrono::Duration::hours(24);
    match app.store.audit(Some(EVENTS_ENV), Some(since)).await {
        Ok(records) => {
            let mut n = 0;
            for r in records.iter().filter(|r| r.entry.action == ACCEPTED) {
                let planned = events::planned_of(r);
                n += app
                    .start_missing(&planned, &format!("event:{}", r.entry.target))
                    .await;
            }
            if n > 0 {
                eprintln!(
                    "piflow serve: started {n} execution(s) of accepted events that had not started"
                );
            }
        }
        Err(e) => eprintln!("piflow: warning: cannot read the accepted events: {e}"),
    }
}
