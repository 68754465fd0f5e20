//! Signed events per second accepted by a running `piflow serve` over
//! loopback, with durable dedupe (the embedded store). Not criterion: a
//! server process is started once and driven by 32 concurrent keep-alive
//! connections; each figure is events ÷ wall time. `cargo bench --bench
//! serve` (release build). docs/triggers.md ("piflow serve") quotes it.
//!
//! Cases:
//! - `new, no rule`: every event is new and matches no rule: HMAC check,
//!   JSON parse, routing, and the durable dedupe record (one store commit).
//! - `new, starts an execution`: every event is new and starts a Pass-only
//!   workflow: the above plus the execution (definition lookup, record,
//!   history), all in the server.
//! - `duplicate`: events already accepted, delivered again: the dedupe
//!   record is found, nothing is started.
//! - `burst`: 500 clients connect at the same instant, each on a new
//!   connection, and send one event that starts an execution; five bursts.
//!   Every request must be answered (no reset, no refused connection); the
//!   figures are the answers' latency (p50, p99, max) and the server's
//!   memory (VmHWM, VmRSS from /proc) after the bursts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use piflow_triggers::events::sign;
use serde_json::json;

const SECRET: &[u8] = b"bench-secret";
const CONCURRENCY: usize = 32;
/// The wider case: more requests in flight share each group commit.
const WIDE: usize = 256;

const TINY: &str = "StartAt: Done\nStates:\n  Done:\n    Type: Pass\n    End: true\n";
const CONFIG: &str = "events:\n  - name: tiny\n    pattern: {source: [bench.run]}\n    workflow: tiny\n    input_path: $.detail\n";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_piflow"))
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(dir.join("store.redb"))
        .env(
            "PIFLOW_HMAC_SECRET",
            std::str::from_utf8(SECRET).unwrap_or_default(),
        )
        .env_remove("PIFLOW_CONFIG")
        .env_remove("PIFLOW_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("piflow serve starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the address line");
    let url = line
        .trim()
        .strip_prefix("piflow serve: listening on ")
        .expect("the address")
        .to_string();
    std::mem::forget(out);
    Server { child, url }
}

type Http = Client<HttpConnector, Full<Bytes>>;

async fn post(c: &Http, url: &str, body: Vec<u8>) -> u16 {
    let ts = chrono::Utc::now().timestamp();
    let req = hyper::Request::builder()
        .method("POST")
        .uri(url)
        .header("x-piflow-timestamp", ts.to_string())
        .header("x-piflow-signature", sign(SECRET, ts, &body))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let res = c.request(req).await.expect("answered");
    let status = res.status().as_u16();
    let _ = res.into_body().collect().await;
    status
}

/// The body of event `id` number `n` of `source`.
fn event(id: &str, source: &str, n: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "0", "id": id, "detail-type": "Bench", "source": source,
        "account": "123456789012", "time": "2026-11-22T06:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {"n": n, "id": id}
    }))
    .expect("json")
}

/// Send `ids` as events of `source`; events per second, and the statuses.
async fn run(
    c: &Http,
    url: &str,
    source: &str,
    ids: Vec<String>,
    concurrency: usize,
) -> (f64, Vec<u16>) {
    let ids = Arc::new(ids);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (c, url, ids, next, source) = (
            c.clone(),
            url.to_string(),
            ids.clone(),
            next.clone(),
            source.to_string(),
        );
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(id) = ids.get(i) else { break };
                statuses.push(post(&c, &url, event(id, &source, i)).await);
            }
            statuses
        })
    });
    let mut statuses = Vec::new();
    for w in futures::future::join_all(workers).await {
        statuses.extend(w.expect("worker"));
    }
    (ids.len() as f64 / t.elapsed().as_secs_f64(), statuses)
}

/// One request on a new connection (`Connection: close`): its status, or
/// what went wrong (a reset, a refused or timed-out connection), and how
/// long the answer took from the connect.
async fn one_shot(addr: std::net::SocketAddr, body: Vec<u8>) -> (Result<u16, String>, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = Instant::now();
    let ts = chrono::Utc::now().timestamp();
    let head = format!(
        "POST /events HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\nx-piflow-timestamp: {ts}\r\nx-piflow-signature: {}\r\ncontent-length: {}\r\n\r\n",
        sign(SECRET, ts, &body),
        body.len()
    );
    let answer = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {:?}", e.kind()))?;
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write: {:?}", e.kind()))?;
        s.write_all(&body)
            .await
            .map_err(|e| format!("write: {:?}", e.kind()))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .map_err(|e| format!("read: {:?}", e.kind()))?;
        let text = String::from_utf8_lossy(&buf);
        text.split(' ')
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| "no status line".to_string())
    };
    let r = match tokio::time::timeout(Duration::from_secs(60), answer).await {
        Ok(r) => r,
        Err(_) => Err("no answer in 60 s".to_string()),
    };
    (r, t.elapsed())
}

/// `burst` clients at once, each on its own new connection.
async fn burst(
    addr: std::net::SocketAddr,
    tag: &str,
    clients: usize,
) -> Vec<(Result<u16, String>, Duration)> {
    let start = Arc::new(tokio::sync::Barrier::new(clients));
    let tasks = (0..clients).map(|i| {
        let start = start.clone();
        let id = format!("{tag}-{i}");
        tokio::spawn(async move {
            let body = event(&id, "bench.run", i);
            start.wait().await;
            one_shot(addr, body).await
        })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("client task"))
        .collect()
}

/// `VmHWM` and `VmRSS` of a process, in MiB (Linux).
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(statuses: &[u16]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for s in statuses {
        *counts.entry(*s).or_insert(0usize) += 1;
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n}×{s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: do
    // a short run then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("SERVE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 200 } else { 20_000 });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("workflows")).expect("mkdir");
    std::fs::write(dir.path().join("workflows/tiny.asl.yaml"), TINY).expect("write");
    std::fs::write(dir.path().join("piflow.yaml"), CONFIG).expect("write");
    let server = start(dir.path());
    let url = format!("{}/events", server.url);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c: Http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(WIDE)
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        // Warm up the connections.
        let warm = (0..WIDE).map(|i| format!("warm-{i}")).collect();
        let _ = run(&c, &url, "bench.none", warm, WIDE).await;
        let line = |case: &str, conns: usize, rate: f64, n: usize, st: &[u16]| {
            println!(
                "serve/{case:<28} {conns:>3} connections: {rate:>8.0} events/s  ({n} events; {})",
                summary(st)
            );
        };
        let ids: Vec<String> = (0..n).map(|i| format!("none-{i}")).collect();
        let (rate, st) = run(&c, &url, "bench.none", ids.clone(), CONCURRENCY).await;
        line("new, no rule", CONCURRENCY, rate, n, &st);
        let (rate, st) = run(&c, &url, "bench.none", ids, CONCURRENCY).await;
        line("duplicate", CONCURRENCY, rate, n, &st);
        let ids: Vec<String> = (0..n).map(|i| format!("wide-{i}")).collect();
        let (rate, st) = run(&c, &url, "bench.none", ids, WIDE).await;
        line("new, no rule", WIDE, rate, n, &st);
        let m = (n / 10).max(100);
        let ids: Vec<String> = (0..m).map(|i| format!("run-{i}")).collect();
        let (rate, st) = run(&c, &url, "bench.run", ids, CONCURRENCY).await;
        line("new, starts an execution", CONCURRENCY, rate, m, &st);

        // Bursts of new connections, each starting an execution.
        let addr: std::net::SocketAddr = server
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("the server's address");
        let clients = if quick { 100 } else { 500 };
        let mut failures = std::collections::BTreeMap::<String, usize>::new();
        for b in 0..5 {
            let t = Instant::now();
            let answers = burst(addr, &format!("burst{b}"), clients).await;
            let wall = t.elapsed();
            let mut lat: Vec<Duration> = Vec::new();
            let mut statuses = Vec::new();
            for (r, d) in answers {
                match r {
                    Ok(code) => {
                        statuses.push(code);
                        lat.push(d);
                    }
                    Err(e) => *failures.entry(e).or_insert(0) += 1,
                }
            }
            lat.sort();
            println!(
                "serve/burst {b}: {clients} new connections at once, each starting an execution: answered {} in {:.2} s; latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({})",
                statuses.len(),
                wall.as_secs_f64(),
                percentile(&lat, 0.5).as_secs_f64() * 1000.0,
                percentile(&lat, 0.99).as_secs_f64() * 1000.0,
                lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
                summary(&statuses)
            );
        }
        let (hwm, rss) = memory_mib(server.child.id());
        println!(
            "serve/burst: connections not answered: {}; server memory after the bursts: peak {hwm:.0} MiB, now {rss:.0} MiB",
            if failures.is_empty() {
                "none".to_string()
            } else {
                failures
                    .iter()
                    .map(|(e, n)| format!("{n}× {e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        assert!(failures.is_empty(), "every connection of a burst is answered");
    });
    println!("goal: ≥ 10,000 signed events/s accepted with durable dedupe");
}
