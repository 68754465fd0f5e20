//! `piflow:http-check` against wiremock playing the service under test
//! (status codes, bodies, delays), a closed port, and a small TLS server
//! with a test CA (https through the same client a deployment uses).

use crate::common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use piflow_engine::{TaskHandler, TaskRegistry, TaskRequest};
use piflow_steps::AuditHandle;
use piflow_steps::http_check::{AUDIT_ACTION, HttpCheck};
use piflow_store::{AuditRecord, Store};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const STATE: &str = "Smoke";

fn request(input: Value) -> TaskRequest {
    common::steps::step_request(
        "arn:aws:states:eu-west-1:000000000000:execution:deploy:e1",
        STATE,
        "piflow:http-check",
        &format!("tok-{}", uuid::Uuid::new_v4()),
        input,
    )
}

fn step(store: &Arc<dyn Store>) -> HttpCheck {
    HttpCheck::new(AuditHandle::ready(store.clone()))
}

async fn checks(store: &Arc<dyn Store>, env: &str) -> Vec<AuditRecord> {
    store
        .audit(Some(env), None)
        .await
        .expect("audit reads")
        .into_iter()
        .filter(|r| r.entry.action == AUDIT_ACTION)
        .collect()
}

fn cause(f: &piflow_engine::Failure) -> String {
    f.cause.clone().unwrap_or_default()
}

fn health() -> wiremock::MockBuilder {
    Mock::given(method("GET")).and(path("/health"))
}

/// Answers with these statuses in turn (the last one from then on).
fn in_turn(statuses: &'static [u16]) -> impl Fn(&Request) -> ResponseTemplate {
    let n = AtomicUsize::new(0);
    move |_: &Request| {
        let i = n.fetch_add(1, Ordering::SeqCst).min(statuses.len() - 1);
        ResponseTemplate::new(statuses[i]).set_body_string(format!("answer {}", i + 1))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_200_and_writes_the_audit_record() {
    let server = MockServer::start().await;
    health()
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"status\":\"ok\"}"))
        .expect(1)
        .mount(&server)
        .await;
    let (_d, st) = common::steps::temp_store();
    let url = format!("{}/health", server.uri());
    let out = step(&st)
        .invoke(request(json!({
            "url": url,
            "environment": "staging",
            "body_contains": "\"ok\"",
            "interval_seconds": 0
        })))
        .await
        .expect("the service answers 200");
    let checked = out["checked"].as_array().expect("checked is a list");
    assert_eq!(checked.len(), 1, "{out}");
    assert_eq!(checked[0]["url"], url);
    assert_eq!(checked[0]["status"], 200);
    assert_eq!(checked[0]["attempts"], 1);
    assert!(checked[0]["latency_ms"].is_u64(), "{out}");
    assert_eq!(out["environment"], "staging");
    assert!(out["checked_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let reqs = server.received_requests().await.expect("recorded");
    assert_eq!(reqs.len(), 1);
    let ua = reqs[0]
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(ua.starts_with("piflow-http-check/"), "{ua}");

    let records = checks(&st, "staging").await;
    assert_eq!(records.len(), 1, "one record per check");
    let r = &records[0].entry;
    assert_eq!(r.result, "passed");
    assert_eq!(r.target, url);
    assert!(r.execution.as_deref().is_some_and(|e| e.ends_with(":e1")));
    assert_eq!(r.after["checked"][0]["status"], 200);
    assert_eq!(r.after["checked"][0]["passed"], true);
    assert_eq!(r.after["body_contains"], "\"ok\"");
    assert!(
        r.token
            .as_deref()
            .is_some_and(|t| t.ends_with("#check.http")),
        "{:?}",
        r.token
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_after_every_attempt_answers_500() {
    let server = MockServer::start().await;
    health()
        .respond_with(ResponseTemplate::new(500).set_body_string("database   unreachable\n"))
        .expect(4)
        .mount(&server)
        .await;
    let (_d, st) = common::steps::temp_store();
    let url = format!("{}/health", server.uri());
    let err = step(&st)
        .invoke(request(json!({
            "url": url,
            "environment": "prod",
            "attempts": 4,
            "interval_seconds": 0
        })))
        .await
        .expect_err("500 is not healthy");
    assert_eq!(err.error_name(), "HttpCheck.Failed");
    let c = cause(&err);
    for part in [
        url.as_str(),
        "status 2xx or 3xx",
        "status 500",
        "\"database unreachable\"",
        "4 attempt(s)",
        "answers: 500, 500, 500, 500",
    ] {
        assert!(c.contains(part), "{part:?} not in {c}");
    }
    server.verify().await;
    let records = checks(&st, "prod").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].entry.result, "failed");
    assert_eq!(records[0].entry.after["checked"][0]["status"], 500);
    assert_eq!(records[0].entry.after["checked"][0]["attempts"], 4);
    assert_eq!(records[0].entry.after["checked"][0]["passed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_when_503_is_followed_by_200() {
    let server = MockServer::start().await;
    health()
        .respond_with(ResponseTemplate::new(503).set_body_string("warming up"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    health()
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .with_priority(2)
        .mount(&server)
        .await;
    let (_d, st) = common::steps::temp_store();
    let started = Instant::now();
    let out = step(&st)
        .invoke(request(json!({
            "url": format!("{}/health", server.uri()),
            "environment": "dev",
            "attempts": 3,
            "interval_seconds": 0.2
        })))
        .await
        .expect("the second answer is good");
    assert_eq!(out["checked"][0]["status"], 200);
    assert_eq!(out["checked"][0]["attempts"], 2);
    // The fractional interval was waited once, between the two requests.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        2
    );
    let records = checks(&st, "dev").await;
    assert_eq!(records[0].entry.result, "passed");
    assert_eq!(
        records[0].entry.after["checked"][0]["answers"],
        json!(["503", "200"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_without_the_expected_text_fails() {
    let server = MockServer::start().await;
    health()
        .respond_with(
            ResponseTemplate::new(200).set_body_string("{\"status\":\"degraded\",\"db\":\"down\"}"),
        )
        .mount(&server)
        .await;
    let (_d, st) = common::steps::temp_store();
    let err = step(&st)
        .invoke(request(json!({
            "url": format!("{}/health", server.uri()),
            "environment": "dev",
            "body_contains": "\"status\":\"ok\"",
            "attempts": 2,
            "interval_seconds": 0
        })))
        .await
        .expect_err("wrong body");
    assert_eq!(err.error_name(), "HttpCheck.Failed");
    let c = cause(&err);
    assert!(c.contains("does not contain"), "{c}");
    assert!(c.contains("degraded"), "{c}");
    assert!(c.contains("2 attempt(s)"), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_fails_naming_the_timeout() {
    let server = MockServer::start().await;
    health()
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let (_d, st) = common::steps::temp_store();
    let url = format!("{}/health", server.uri());
    let started = Instant::now();
    let err = step(&st)
        .invoke(request(json!({
            "url": url,
            "environment": "dev",
            "timeout_seconds": 0.3,
            "attempts": 2,
            "interval_seconds": 0
        })))
        .await
        .expect_err("too slow");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "each request gave up at 0.3 s: {took:?}"
    );
    assert_eq!(err.error_name(), "HttpCheck.Failed");
    let c = cause(&err);
    for part in [
        url.as_str(),
        "timed out",
        "0.3 s",
        "timeout_seconds",
        "answers: timeout, timeout",
    ] {
        assert!(c.contains(part), "{part:?} not in {c}");
    }
    let records = checks(&st, "dev").await;
    assert_eq!(records[0].entry.after["checked"][0]["status"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_fails_naming_the_url() {
    // A port that was just free and is closed again.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (_d, st) = common::steps::temp_store();
    let url = format!("http://127.0.0.1:{port}/health");
    let err = step(&st)
        .invoke(request(json!({
            "url": url,
            "environment": "dev",
            "attempts": 2,
            "interval_seconds": 0
        })))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.error_name(), "HttpCheck.Failed");
    let c = cause(&err);
    for part in [url.as_str(), "connection failed", "refused", "2 attempt(s)"] {
        assert!(
            c.to_lowercase().contains(&part.to_lowercase()),
            "{part:?} not in {c}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_answers_not_followed() {
    let server = MockServer::start().await;
    health()
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/login"))
        .mount(&server)
        .await;
    Mock::given(path("/login"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let (_d, st) = common::steps::temp_store();
    let url = format!("{}/health", server.uri());
    let out = step(&st)
        .invoke(request(
            json!({"url": url, "environment": "dev", "interval_seconds": 0}),
        ))
        .await
        .expect("a 3xx passes by default");
    assert_eq!(out["checked"][0]["status"], 302);
    assert_eq!(out["checked"][0]["location"], "/login");
    let err = step(&st)
        .invoke(request(json!({
            "url": url,
            "environment": "dev",
            "expect_status": [200, 204],
            "attempts": 1
        })))
        .await
        .expect_err("302 is not 200 or 204");
    let c = cause(&err);
    assert!(
        c.contains("status in [200, 204]") && c.contains("status 302 (location /login)"),
        "{c}"
    );
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_successes_need_a_run_of_good_answers() {
    let server = MockServer::start().await;
    health()
        .respond_with(in_turn(&[200, 200, 500, 200, 200, 200]))
        .mount(&server)
        .await;
    let (_d, st) = common::steps::temp_store();
    let out = step(&st)
        .invoke(request(json!({
            "url": format!("{}/health", server.uri()),
            "environment": "dev",
            "consecutive_successes": 3,
            "attempts": 6,
            "interval_seconds": 0
        })))
        .await
        .expect("three in a row at the end");
    assert_eq!(out["checked"][0]["attempts"], 6);

    // Attempts 4, three in a row needed: after a failure on the second,
    // two attempts left cannot make three, so it stops there.
    let server = MockServer::start().await;
    health()
        .respond_with(in_turn(&[200, 500, 200]))
        .mount(&server)
        .await;
    let err = step(&st)
        .invoke(request(json!({
            "url": format!("{}/health", server.uri()),
            "environment": "dev",
            "consecutive_successes": 3,
            "attempts": 4,
            "interval_seconds": 0
        })))
        .await
        .expect_err("the run was broken");
    let c = cause(&err);
    assert!(c.contains("3 good answers in a row"), "{c}");
    assert!(
        c.contains("2 attempt(s)") && c.contains("answers: 200, 500"),
        "{c}"
    );
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_url_is_checked_and_only_the_bad_one_is_named() {
    let good = MockServer::start().await;
    let bad = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&good)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(404))
        .expect(2)
        .mount(&bad)
        .await;
    let (_d, st) = common::steps::temp_store();
    let good_url = format!("{}/health", good.uri());
    let bad_url = format!("{}/health", bad.uri());
    let err = step(&st)
        .invoke(request(json!({
            "urls": [good_url, bad_url],
            "environment": "dev",
            "method": "head",
            "attempts": 2,
            "interval_seconds": 0
        })))
        .await
        .expect_err("one URL is down");
    let c = cause(&err);
    assert!(
        c.contains(&format!("HEAD {bad_url}")) && c.contains("status 404"),
        "{c}"
    );
    assert!(!c.contains(&good_url), "{c}");
    good.verify().await;
    bad.verify().await;
    let records = checks(&st, "dev").await;
    assert_eq!(records.len(), 1);
    let after = &records[0].entry.after;
    assert_eq!(after["checked"][0]["passed"], true);
    assert_eq!(after["checked"][1]["passed"], false);
    assert_eq!(records[0].entry.target, format!("{good_url} {bad_url}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_names_the_field_and_the_state() {
    let server = MockServer::start().await;
    let ok = format!("{}/health", server.uri());
    let (_d, st) = common::steps::temp_store();
    let cases = [
        (json!({"environment": "dev"}), "\"url\""),
        (
            json!({"url": ok, "urls": [ok], "environment": "dev"}),
            "not both",
        ),
        (
            json!({"urls": [], "environment": "dev"}),
            "\"urls\" is empty",
        ),
        (json!({"urls": ok, "environment": "dev"}), "\"urls\""),
        (
            json!({"url": "ftp://host/file", "environment": "dev"}),
            "\"url\"",
        ),
        (json!({"url": "not a url", "environment": "dev"}), "\"url\""),
        (json!({"url": 42, "environment": "dev"}), "\"url\""),
        (
            json!({"urls": [ok, "file:///etc/passwd"], "environment": "dev"}),
            "\"urls[1]\"",
        ),
        (json!({"url": ok}), "\"environment\""),
        (
            json!({"url": ok, "environment": "dev", "expect_status": 42}),
            "\"expect_status\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "expect_status": "200"}),
            "\"expect_status\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "expect_status": []}),
            "\"expect_status\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "method": "POST"}),
            "\"method\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "method": "HEAD", "body_contains": "ok"}),
            "\"body_contains\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "body_contains": 1}),
            "\"body_contains\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "timeout_seconds": 0}),
            "\"timeout_seconds\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "interval_seconds": -1}),
            "\"interval_seconds\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "interval_seconds": "5"}),
            "\"interval_seconds\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "attempts": 0}),
            "\"attempts\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "attempts": 2.5}),
            "\"attempts\"",
        ),
        (
            json!({"url": ok, "environment": "dev", "attempts": 2, "consecutive_successes": 3}),
            "\"consecutive_successes\"",
        ),
    ];
    for (input, field) in cases {
        let e = step(&st)
            .invoke(request(input.clone()))
            .await
            .expect_err("invalid");
        assert_eq!(e.error_name(), "HttpCheck.InvalidInput", "{input}");
        let c = cause(&e);
        assert!(c.contains(field), "{field} not in {c} ({input})");
        assert!(c.contains(&format!("state {STATE}")), "{c}");
    }
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert!(
        checks(&st, "dev").await.is_empty(),
        "no record for a check never made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtins_resolve_the_resource() {
    let server = MockServer::start().await;
    health()
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let (_d, st) = common::steps::temp_store();
    let mut registry = TaskRegistry::new();
    piflow_steps::register_builtins(&mut registry, AuditHandle::ready(st.clone()));
    let out = registry
        .invoke(request(json!({
            "url": format!("{}/health", server.uri()),
            "environment": "dev"
        })))
        .await
        .expect("passes");
    assert_eq!(out["checked"][0]["status"], 200);
    server.verify().await;
}

// ---- https ----

/// A test CA and a server certificate it signed for localhost and
/// 127.0.0.1 (EC P-256, valid 2000–2100).
const TEST_CA: &str = r"-----BEGIN CERTIFICATE-----
MIIBZjCCAQygAwIBAgICEAAwCgYIKoZIzj0EAwIwGTEXMBUGA1UEAwwOcGlmbG93
IHRlc3QgQ0EwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBkxFzAV
BgNVBAMMDnBpZmxvdyB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
Y4W0TINXkZX8ed/g72iftJilMlrIgmrmObLOEIJV/ANzP6j3n64RneDi8LaN6JHK
onmpvLqLSc527OB+7tPGEqNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8E
BAMCAQYwHQYDVR0OBBYEFNlNDJ64OKSc2ghaKdYCtxdhVZpuMAoGCCqGSM49BAMC
A0gAMEUCIGLdIdWIZy0vgm+7k7JhhWs4jOID6/QeBuF0ZyuBG7m/AiEA3rUjNSyj
734d/pHvCtGlbde66jhhj25rs5EvbssExZ0=
-----END CERTIFICATE-----";
const SERVER_CERT: &str = r"-----BEGIN CERTIFICATE-----
MIIBsjCCAVigAwIBAgICEAEwCgYIKoZIzj0EAwIwGTEXMBUGA1UEAwwOcGlmbG93
IHRlc3QgQ0EwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBQxEjAQ
BgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABMI1eSI/
o83OIXVhur9EL72S/Il/NSV4Dx2p3cyIdc8gqyKCjPWfonQBKStZ4ogSmCvZuEi0
vBBbBVj0TcxRFbCjgZIwgY8wDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMCB4Aw
EwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMwEYIJbG9jYWxob3N0hwR/AAAB
MB0GA1UdDgQWBBS6Yf9q+enJOzrwaFRKE2ll0z+n9jAfBgNVHSMEGDAWgBTZTQye
uDiknNoIWinWArcXYVWabjAKBggqhkjOPQQDAgNIADBFAiArFhZSyEl2OIcYRNYN
shX/DIXvgqbm8q7QveChlwuDYQIhAOKC3ai3anaF7l64LSmL9+IRAzxCgL6hKq64
7tLKiI4+
-----END CERTIFICATE-----";
const SERVER_KEY: &str = r"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglVllcV1effJNSBbr
E2GV0tTNBILSGRZzZQggadJXSI+hRANCAATCNXkiP6PNziF1Ybq/RC+9kvyJfzUl
eA8dqd3MiHXPIKsigoz1n6J0ASkrWeKIEpgr2bhItLwQWwVY9E3MURWw
-----END PRIVATE KEY-----";

/// A TLS server on 127.0.0.1 answering every request with 200 and `body`;
/// it records each request line.
fn tls_server(body: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(SERVER_CERT.as_bytes())
            .collect::<Result<_, _>>()
            .expect("server cert");
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).expect("server key");
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config"),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf);
                if let Ok(mut l) = log.lock() {
                    l.push(text.lines().next().unwrap_or_default().to_string());
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_checked_with_certificate_verification() {
    let (port, seen) = tls_server("tls-ok");
    let (_d, st) = common::steps::temp_store();
    let ca: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(TEST_CA.as_bytes())
        .collect::<Result<_, _>>()
        .expect("CA");
    let url = format!("https://127.0.0.1:{port}/health");
    let trusting = HttpCheck::new(AuditHandle::ready(st.clone())).with_root_certificates(ca);
    let out = trusting
        .invoke(request(json!({
            "url": url,
            "environment": "dev",
            "body_contains": "tls-ok",
            "attempts": 1
        })))
        .await
        .expect("https with a trusted CA passes");
    assert_eq!(out["checked"][0]["status"], 200);
    assert_eq!(
        seen.lock().expect("log").first().map(String::as_str),
        Some("GET /health HTTP/1.1")
    );

    // The system's roots do not know the test CA: the certificate is
    // refused, and the cause says so.
    let err = step(&st)
        .invoke(request(json!({
            "url": url,
            "environment": "dev",
            "attempts": 1
        })))
        .await
        .expect_err("an unknown CA is refused");
    assert_eq!(err.error_name(), "HttpCheck.Failed");
    let c = cause(&err);
    assert!(c.contains(&url), "{c}");
    assert!(c.contains("certificate"), "{c}");
    // …and how to trust a private CA.
    assert!(c.contains("SSL_CERT_FILE"), "{c}");
}
