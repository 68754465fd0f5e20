//! `piflow:http-check`: the smoke check after a roll — ask the service's
//! URL(s) until they answer as expected, or fail naming what came instead.
//!
//! Input:
//! - `url` (a string) or `urls` (a non-empty list, up to 20; not both):
//!   `http://` or `https://` URLs, each checked (at the same time);
//! - `environment` (required): the audit chain that receives one
//!   `check.http` record per step run (result `passed` or `failed`);
//! - `expect_status`: an integer or a list of integers (100–599); default:
//!   any 2xx or 3xx. Redirects are **not** followed: a 3xx is the answer;
//! - `body_contains`: text the body must contain (GET only; the first MiB
//!   of the body is searched);
//! - `method`: `GET` (default) or `HEAD`;
//! - `timeout_seconds`: per request, connect to last body byte (default 10;
//!   a number, fractions allowed, up to 300);
//! - `attempts`: requests per URL at most (default 3, or
//!   `consecutive_successes + 2` when larger; up to 100);
//! - `interval_seconds`: pause between two requests to a URL (default 5; 0
//!   and fractions allowed, up to 600);
//! - `consecutive_successes`: good answers in a row needed (default 1).
//!
//! Output: `{"checked": [{"url", "status", "latency_ms", "attempts"}],
//! "environment", "checked_at"}` (`location` added to a 3xx entry).
//!
//! Errors: `HttpCheck.Failed` (a URL did not answer as expected within its
//! attempts: the cause names the URL, what was expected, what came — status
//! and a body excerpt, or the connection / TLS / timeout error — and the
//! attempts), `HttpCheck.InvalidInput`, `HttpCheck.StoreFailed`.
//!
//! The client is the one the AWS SDK already builds: hyper 1 through
//! hyper-util's legacy client, TLS by rustls (ring) with the system's
//! root certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` add a private CA),
//! HTTP/1.1, a new connection for every request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, Uri};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Map, Value, json};

use super::{AuditHandle, aws_step};
use piflow_engine::{Failure, TaskRequest};

const STEP: &str = "HttpCheck";
/// The audit action of the record each run writes.
pub const AUDIT_ACTION: &str = "check.http";
const MAX_URLS: usize = 20;
const MAX_ATTEMPTS: u64 = 100;
const MAX_TIMEOUT_SECONDS: f64 = 300.0;
const MAX_INTERVAL_SECONDS: f64 = 600.0;
/// How much of a body is read (and searched by `body_contains`).
const BODY_LIMIT: usize = 1 << 20;
/// Characters of a body quoted in a cause.
const EXCERPT_CHARS: usize = 200;
const USER_AGENT: &str = concat!("piflow-http-check/", env!("CARGO_PKG_VERSION"));

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The `piflow:http-check` step.
#[derive(Clone)]
pub struct HttpCheck {
    pub store: AuditHandle,
    /// Trust exactly these roots for https (else the system's).
    roots: Option<Arc<RootCertStore>>,
}

impl HttpCheck {
    pub fn new(store: AuditHandle) -> Self {
        HttpCheck { store, roots: None }
    }

    /// Trust exactly these CA certificates for https instead of the
    /// system's roots (tests, a private CA). Certificates that do not parse
    /// are skipped with a warning.
    pub fn with_root_certificates(mut self, certs: Vec<CertificateDer<'static>>) -> Self {
        let mut roots = RootCertStore::empty();
        let (added, skipped) = roots.add_parsable_certificates(certs);
        if skipped > 0 {
            tracing::warn!(
                added,
                skipped,
                "http-check: some root certificates did not parse"
            );
        }
        self.roots = Some(Arc::new(roots));
        self
    }
}

super::real_time_step!(HttpCheck);

/// What status answers pass.
#[derive(Debug, Clone)]
enum Expect {
    /// Any 2xx or 3xx.
    SuccessOrRedirect,
    Statuses(Vec<u16>),
}

impl Expect {
    fn accepts(&self, status: u16) -> bool {
        match self {
            Expect::SuccessOrRedirect => (200..400).contains(&status),
            Expect::Statuses(list) => list.contains(&status),
        }
    }

    fn describe(&self) -> String {
        match self {
            Expect::SuccessOrRedirect => "status 2xx or 3xx".into(),
            Expect::Statuses(list) => {
                let list: Vec<String> = list.iter().map(u16::to_string).collect();
                match list.len() {
                    1 => format!("status {}", list[0]),
                    _ => format!("status in [{}]", list.join(", ")),
                }
            }
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Expect::SuccessOrRedirect => json!("2xx|3xx"),
            Expect::Statuses(list) => json!(list),
        }
    }
}

/// The check, from the step's input.
#[derive(Debug, Clone)]
struct Spec {
    urls: Vec<Uri>,
    environment: String,
    expect: Expect,
    body_contains: Option<String>,
    method: Method,
    timeout: Duration,
    attempts: u32,
    interval: Duration,
    consecutive: u32,
}

impl Spec {
    fn expectation(&self) -> String {
        let mut parts = vec![self.expect.describe()];
        if let Some(text) = &self.body_contains {
            parts.push(format!("a body containing {text:?}"));
        }
        if self.consecutive > 1 {
            parts.push(format!("{} good answers in a row", self.consecutive));
        }
        parts.join(", ")
    }
}

/// One URL's outcome.
#[derive(Debug, Clone)]
struct UrlResult {
    url: String,
    passed: bool,
    /// The last answer's status (none when the last request got no answer).
    status: Option<u16>,
    location: Option<String>,
    latency_ms: u64,
    attempts: u32,
    /// Each attempt, short: `200`, `503`, `timeout`, `connection failed`.
    history: Vec<String>,
    /// Why the last bad attempt was bad, in full.
    problem: Option<String>,
}

impl UrlResult {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("url".into(), json!(self.url));
        m.insert("status".into(), json!(self.status));
        m.insert("latency_ms".into(), json!(self.latency_ms));
        m.insert("attempts".into(), json!(self.attempts));
        if let Some(l) = &self.location {
            m.insert("location".into(), json!(l));
        }
        Value::Object(m)
    }

    fn audit_json(&self) -> Value {
        let mut v = self.to_json();
        if let Value::Object(m) = &mut v {
            m.insert("passed".into(), json!(self.passed));
            m.insert("answers".into(), json!(self.history));
            if let Some(p) = &self.problem {
                m.insert("problem".into(), json!(p));
            }
        }
        v
    }
}

/// What one request brought.
enum Answer {
    Http {
        status: u16,
        location: Option<String>,
        body: Vec<u8>,
    },
    /// No answer: the short label and the full description.
    NoAnswer { label: &'static str, detail: String },
}

impl HttpCheck {
    async fn run(&self, request: TaskRequest) -> Result<Value, Failure> {
        let spec = parse_input(&request)?;
        let (client, tls_problem) = self.client(&spec)?;
        let checks = spec
            .urls
            .iter()
            .map(|u| check_url(&client, &spec, u, tls_problem.as_deref()));
        let results: Vec<UrlResult> = futures::future::join_all(checks).await;
        let passed = results.iter().all(|r| r.passed);
        let targets: Vec<&str> = results.iter().map(|r| r.url.as_str()).collect();
        aws_step::audit(
            &self.store,
            &request,
            STEP,
            &spec.environment,
            AUDIT_ACTION,
            &targets.join(" "),
            Value::Null,
            json!({
                "method": spec.method.as_str(),
                "expect": spec.expect.to_json(),
                "body_contains": spec.body_contains,
                "consecutive_successes": spec.consecutive,
                "checked": results.iter().map(UrlResult::audit_json).collect::<Vec<_>>(),
            }),
            if passed { "passed" } else { "failed" },
        )
        .await?;
        if passed {
            tracing::info!(state = %request.state_name, urls = ?targets, "http check passed");
            Ok(json!({
                "checked": results.iter().map(UrlResult::to_json).collect::<Vec<_>>(),
                "environment": spec.environment,
                "checked_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }))
        } else {
            let failed: Vec<String> = results
                .iter()
                .filter(|r| !r.passed)
                .map(|r| failed_cause(&spec, r))
                .collect();
            tracing::warn!(state = %request.state_name, failed = failed.len(), urls = ?targets, "http check failed");
            Err(Failure::new(
                format!("{STEP}.Failed"),
                format!(
                    "{}. Check the service (its logs, its target group's health, the listener) or give it longer with \"attempts\" / \"interval_seconds\"",
                    failed.join("; ")
                ),
            ))
        }
    }

    /// An HTTP(S) client with no connection reuse (each attempt connects
    /// anew, so a check also proves that connecting works).
    /// Also says why https cannot be checked, when the system has no root
    /// certificates.
    fn client(&self, spec: &Spec) -> Result<(HttpClient, Option<String>), Failure> {
        let needs_tls = spec.urls.iter().any(|u| u.scheme_str() == Some("https"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                Failure::new(
                    format!("{STEP}.Failed"),
                    format!("TLS could not be set up: {e}"),
                )
            })?;
        let empty = || RootCertStore::empty();
        let (tls, tls_problem) = match &self.roots {
            Some(roots) => (builder.with_root_certificates(roots.clone()), None),
            None if needs_tls => match builder.clone().with_native_roots() {
                Ok(b) => (b, None),
                Err(e) => {
                    tracing::warn!(error = %e, "http-check: no system root certificates");
                    (
                        builder.with_root_certificates(empty()),
                        Some(format!(
                            "no trusted root certificates for https ({e}): install the system's CA certificates (e.g. the ca-certificates package) or point SSL_CERT_FILE at a PEM bundle"
                        )),
                    )
                }
            },
            None => (builder.with_root_certificates(empty()), None),
        };
        let tls = tls.with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Ok((client, tls_problem))
    }
}

/// Ask one URL until it has answered well `consecutive` times in a row, or
/// the attempts are spent (or too few are left to make the run).
async fn check_url(
    client: &HttpClient,
    spec: &Spec,
    uri: &Uri,
    tls_problem: Option<&str>,
) -> UrlResult {
    let mut result = UrlResult {
        url: uri.to_string(),
        passed: false,
        status: None,
        location: None,
        latency_ms: 0,
        attempts: 0,
        history: Vec::new(),
        problem: None,
    };
    if let Some(problem) = tls_problem
        && uri.scheme_str() == Some("https")
    {
        // Asking would only fail the same way each time.
        result.history.push("no trusted roots".into());
        result.problem = Some(problem.to_string());
        return result;
    }
    let mut streak = 0u32;
    for n in 1..=spec.attempts {
        if n > 1 && !spec.interval.is_zero() {
            tokio::time::sleep(spec.interval).await;
        }
        result.attempts = n;
        let started = Instant::now();
        let answer = match tokio::time::timeout(spec.timeout, ask(client, spec, uri)).await {
            Ok(a) => a,
            Err(_) => Answer::NoAnswer {
                label: "timeout",
                detail: format!(
                    "timed out: no complete answer within {} s (timeout_seconds)",
                    seconds(spec.timeout)
                ),
            },
        };
        result.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let verdict = match &answer {
            Answer::Http {
                status,
                location,
                body,
            } => {
                result.status = Some(*status);
                result.location = location.clone();
                result.history.push(status.to_string());
                judge(spec, *status, location.as_deref(), body)
            }
            Answer::NoAnswer { label, detail } => {
                result.status = None;
                result.location = None;
                result.history.push((*label).to_string());
                Err(detail.clone())
            }
        };
        match verdict {
            Ok(()) => {
                streak += 1;
                tracing::debug!(url = %result.url, attempt = n, status = ?result.status, latency_ms = result.latency_ms, streak, "http check: good answer");
                if streak >= spec.consecutive {
                    result.passed = true;
                    return result;
                }
            }
            Err(problem) => {
                streak = 0;
                tracing::info!(url = %result.url, attempt = n, of = spec.attempts, %problem, "http check: bad answer");
                result.problem = Some(problem);
            }
        }
        // Stop early when the attempts left cannot complete the run.
        if spec.attempts - n < spec.consecutive - streak {
            break;
        }
    }
    result
}

/// Does an answer pass? Else why not.
fn judge(spec: &Spec, status: u16, location: Option<&str>, body: &[u8]) -> Result<(), String> {
    if !spec.expect.accepts(status) {
        let to = location
            .map(|l| format!(" (location {l})"))
            .unwrap_or_default();
        return Err(format!("status {status}{to}{}", excerpt_suffix(body)));
    }
    if let Some(text) = &spec.body_contains
        && !String::from_utf8_lossy(body).contains(text.as_str())
    {
        return Err(format!(
            "status {status} but the body does not contain {text:?}{}",
            excerpt_suffix(body)
        ));
    }
    Ok(())
}

/// One request: the status, `Location` and (for GET) up to [`BODY_LIMIT`]
/// bytes of body.
async fn ask(client: &HttpClient, spec: &Spec, uri: &Uri) -> Answer {
    let req = Request::builder()
        .method(spec.method.clone())
        .uri(uri.clone())
        .header(hyper::header::USER_AGENT, USER_AGENT)
        .body(Empty::<Bytes>::new());
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            return Answer::NoAnswer {
                label: "invalid request",
                detail: format!("the request could not be built: {e}"),
            };
        }
    };
    let response: Response<Incoming> = match client.request(req).await {
        Ok(r) => r,
        Err(e) => {
            let label = if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            // The top error only says "client error (Connect)": its
            // sources say what happened.
            let mut detail = match std::error::Error::source(&e) {
                Some(source) => error_chain(source),
                None => e.to_string(),
            };
            if detail.contains("certificate") {
                detail.push_str(
                    " (the server's certificate is not trusted for this host: check its chain and names, or trust a private CA with SSL_CERT_FILE)",
                );
            }
            return Answer::NoAnswer {
                label,
                detail: format!("{label}: {detail}"),
            };
        }
    };
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    if spec.method != Method::HEAD {
        while bytes.len() < BODY_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Answer::NoAnswer {
                        label: "body failed",
                        detail: format!(
                            "status {status}, then reading the body failed: {}",
                            error_chain(&e)
                        ),
                    };
                }
                None => break,
            }
        }
    }
    Answer::Http {
        status,
        location,
        body: bytes,
    }
}

/// An error and its sources, `: `-joined, repeats dropped.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// `, body "…"` (whitespace collapsed, at most [`EXCERPT_CHARS`]), or
/// nothing for an empty body.
fn excerpt_suffix(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return String::new();
    }
    let mut short: String = collapsed.chars().take(EXCERPT_CHARS).collect();
    if collapsed.chars().count() > EXCERPT_CHARS {
        short.push('…');
    }
    format!(", body {short:?}")
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

fn failed_cause(spec: &Spec, r: &UrlResult) -> String {
    let interval = if r.attempts > 1 {
        format!(" {} s apart", seconds(spec.interval))
    } else {
        String::new()
    };
    format!(
        "{} {} did not answer as expected ({}) in {} attempt(s){interval}: last answer: {}; answers: {}",
        spec.method,
        r.url,
        spec.expectation(),
        r.attempts,
        r.problem.as_deref().unwrap_or("no good answer"),
        r.history.join(", ")
    )
}

fn invalid(request: &TaskRequest, what: String) -> Failure {
    Failure::new(
        format!("{STEP}.InvalidInput"),
        format!("state {}: {what}", request.state_name),
    )
}

fn parse_url(request: &TaskRequest, field: &str, v: &Value) -> Result<Uri, Failure> {
    let Some(text) = v.as_str() else {
        return Err(invalid(
            request,
            format!("\"{field}\" must be an http:// or https:// URL (a string), not {v}"),
        ));
    };
    let uri: Uri = text.trim().parse().map_err(|e| {
        invalid(
            request,
            format!("\"{field}\" is not a URL ({e}): {text:?}; write e.g. https://app.example.com/health"),
        )
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(invalid(
                request,
                format!(
                    "\"{field}\" must start with http:// or https://, not {text:?}; write e.g. https://app.example.com/health"
                ),
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(
            request,
            format!("\"{field}\" names no host: {text:?}"),
        ));
    }
    Ok(uri)
}

/// A JSON number of seconds in `[min, max]` (`min` itself excluded when
/// `exclusive_min`).
fn seconds_field(
    request: &TaskRequest,
    field: &str,
    default: f64,
    exclusive_min: bool,
    max: f64,
) -> Result<Duration, Failure> {
    let value = match request.input.get(field) {
        None | Some(Value::Null) => default,
        Some(v) => {
            let ok = v.as_f64().filter(|s| {
                s.is_finite() && (if exclusive_min { *s > 0.0 } else { *s >= 0.0 }) && *s <= max
            });
            match ok {
                Some(s) => s,
                None => {
                    let lower = if exclusive_min {
                        "more than 0"
                    } else {
                        "0 or more"
                    };
                    return Err(invalid(
                        request,
                        format!(
                            "\"{field}\" must be a number of seconds, {lower} and at most {max} (fractions allowed), not {v}"
                        ),
                    ));
                }
            }
        }
    };
    Ok(Duration::from_secs_f64(value))
}

/// A whole number in `[1, MAX_ATTEMPTS]`, if given.
fn count_field(request: &TaskRequest, field: &str) -> Result<Option<u32>, Failure> {
    match request.input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().filter(|n| (1..=MAX_ATTEMPTS).contains(n)) {
            Some(n) => Ok(u32::try_from(n).ok()),
            None => Err(invalid(
                request,
                format!("\"{field}\" must be a whole number from 1 to {MAX_ATTEMPTS}, not {v}"),
            )),
        },
    }
}

fn parse_input(request: &TaskRequest) -> Result<Spec, Failure> {
    let input = &request.input;
    if !input.is_object() {
        return Err(invalid(
            request,
            format!(
                "piflow:http-check needs an object input with \"url\" or \"urls\", not {input}"
            ),
        ));
    }
    let url = input.get("url").filter(|v| !v.is_null());
    let urls = input.get("urls").filter(|v| !v.is_null());
    let urls: Vec<Uri> = match (url, urls) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                request,
                "give \"url\" (one URL) or \"urls\" (a list), not both".into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                request,
                "\"url\" (a string) or \"urls\" (a list) is required: the service URL(s) to check, e.g. https://app.example.com/health".into(),
            ));
        }
        (Some(u), None) => vec![parse_url(request, "url", u)?],
        (None, Some(Value::Array(items))) => {
            if items.is_empty() {
                return Err(invalid(
                    request,
                    "\"urls\" is empty: list at least one URL to check".into(),
                ));
            }
            if items.len() > MAX_URLS {
                return Err(invalid(
                    request,
                    format!(
                        "\"urls\" lists {} URLs, at most {MAX_URLS} are checked in one step: split the check",
                        items.len()
                    ),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_url(request, &format!("urls[{i}]"), v))
                .collect::<Result<_, _>>()?
        }
        (None, Some(other)) => {
            return Err(invalid(
                request,
                format!("\"urls\" must be a list of URLs, not {other}"),
            ));
        }
    };
    let environment = aws_step::environment(request, STEP)?;
    let expect = match input.get("expect_status") {
        None | Some(Value::Null) => Expect::SuccessOrRedirect,
        Some(v) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                one => vec![one],
            };
            let statuses: Option<Vec<u16>> = items
                .iter()
                .map(|x| {
                    x.as_u64()
                        .filter(|n| (100..=599).contains(n))
                        .and_then(|n| u16::try_from(n).ok())
                })
                .collect();
            match statuses {
                Some(s) if !s.is_empty() => Expect::Statuses(s),
                _ => {
                    return Err(invalid(
                        request,
                        format!(
                            "\"expect_status\" must be an HTTP status (100–599) or a non-empty list of them, such as 200 or [200, 204], not {v}"
                        ),
                    ));
                }
            }
        }
    };
    let body_contains = match input.get("body_contains") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            return Err(invalid(
                request,
                format!("\"body_contains\" must be a non-empty string, not {other}"),
            ));
        }
    };
    let method = match input.get("method") {
        None | Some(Value::Null) => Method::GET,
        Some(Value::String(m)) if m.eq_ignore_ascii_case("GET") => Method::GET,
        Some(Value::String(m)) if m.eq_ignore_ascii_case("HEAD") => Method::HEAD,
        Some(other) => {
            return Err(invalid(
                request,
                format!("\"method\" must be \"GET\" or \"HEAD\", not {other}"),
            ));
        }
    };
    if method == Method::HEAD && body_contains.is_some() {
        return Err(invalid(
            request,
            "\"body_contains\" needs a body: use method GET (a HEAD answer has none)".into(),
        ));
    }
    let timeout = seconds_field(request, "timeout_seconds", 10.0, true, MAX_TIMEOUT_SECONDS)?;
    let interval = seconds_field(
        request,
        "interval_seconds",
        5.0,
        false,
        MAX_INTERVAL_SECONDS,
    )?;
    let consecutive = count_field(request, "consecutive_successes")?.unwrap_or(1);
    let attempts = match count_field(request, "attempts")? {
        Some(a) if a < consecutive => {
            return Err(invalid(
                request,
                format!(
                    "\"attempts\" ({a}) is fewer than \"consecutive_successes\" ({consecutive}): the check could never pass; raise attempts"
                ),
            ));
        }
        Some(a) => a,
        None => (consecutive + 2).max(3),
    };
    Ok(Spec {
        urls,
        environment,
        expect,
        body_contains,
        method,
        timeout,
        attempts,
        interval,
        consecutive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(input: Value) -> TaskRequest {
        TaskRequest {
            execution: "e".into(),
            state_name: "Smoke".into(),
            resource: "piflow:http-check".into(),
            input,
            task_token: None,
            idempotency_token: "t".into(),
            credentials: None,
            attempt: 0,
        }
    }

    #[test]
    fn defaults() {
        let s = parse_input(&req(
            json!({"url": "https://a.example/health", "environment": "dev"}),
        ))
        .unwrap();
        assert_eq!(s.attempts, 3);
        assert_eq!(s.consecutive, 1);
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.method, Method::GET);
        assert!(s.expect.accepts(200) && s.expect.accepts(302) && !s.expect.accepts(404));
        let s = parse_input(&req(json!({
            "url": "http://a/", "environment": "dev", "consecutive_successes": 4,
            "interval_seconds": 0.25, "expect_status": 204
        })))
        .unwrap();
        assert_eq!(s.attempts, 6);
        assert_eq!(s.interval, Duration::from_millis(250));
        assert!(s.expect.accepts(204) && !s.expect.accepts(200));
    }

    #[test]
    fn excerpts_are_short_and_collapsed() {
        assert_eq!(excerpt_suffix(b""), "");
        assert_eq!(excerpt_suffix(b"a \n\n b"), ", body \"a b\"");
        let long = "x".repeat(500);
        let e = excerpt_suffix(long.as_bytes());
        assert!(e.ends_with("…\"") && e.len() < 220, "{e}");
    }
}
