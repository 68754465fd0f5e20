//! Durable executions through the real `piflow` binary, on both stores:
//! processes killed with SIGKILL at random transitions and resumed, 20
//! concurrent starts on one environment, stop, redrive, task tokens
//! answered from another process, and the JSON shapes of `executions` and
//! `history`. The DynamoDB runs use a moto server (tests/it/common/moto.rs).

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where the executions are stored, and how a child process reaches it.
struct Backend {
    name: &'static str,
    env: Vec<(String, String)>,
    /// The working directory, with the workflows under `workflows/`.
    dir: tempfile::TempDir,
    /// `PIFLOW_LEASE_TTL`: short, so that the leases of killed processes
    /// expire quickly.
    ttl: &'static str,
    /// A moto server of this test's own ([`Backend::dynamodb_alone`]).
    _moto: Option<common::moto::Moto>,
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("piflow")
}

impl Backend {
    fn embedded() -> Backend {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join(".piflow");
        Backend {
            name: "embedded",
            env: vec![("PIFLOW_HOME".into(), home.display().to_string())],
            dir,
            ttl: "2",
            _moto: None,
        }
    }

    /// On the moto server the tests of this binary share.
    fn dynamodb() -> Option<Backend> {
        let moto = common::moto::moto()?;
        Some(Backend::on_moto(moto.env_vars(), None))
    }

    /// On a moto server of this test's own (else the shared one). moto
    /// serves DynamoDB requests one at a time, for every table: while
    /// `crash_and_resume` resumes fifty executions in one process, any
    /// request waits 1 to 3 s for its turn on an idle two-core machine,
    /// more on a loaded one, for minutes. The leases of a few seconds of
    /// the other tests did not survive that on the shared server
    /// (`dynamodb_verbs` saw its resume and redrive stop with
    /// `journal-lease-expired`).
    fn dynamodb_alone() -> Option<Backend> {
        let shared = common::moto::moto()?;
        Some(match common::moto::own() {
            Some(own) => Backend::on_moto(own.env_vars(), Some(own)),
            None => Backend::on_moto(shared.env_vars(), None),
        })
    }

    fn on_moto(mut env: Vec<(String, String)>, own: Option<common::moto::Moto>) -> Backend {
        let table = common::moto::unique("piflow-cli");
        let dir = tempfile::tempdir().expect("tempdir");
        env.push(("PIFLOW_STORE".into(), format!("dynamodb://{table}")));
        let b = Backend {
            name: "dynamodb",
            env,
            dir,
            ttl: "2",
            _moto: own,
        };
        let out = b.piflow(&["store", "init"]).output().expect("runs");
        assert!(
            out.status.success(),
            "store init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        b
    }

    fn piflow(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("PIFLOW_LEASE_TTL", self.ttl)
            .env_remove("PIFLOW_STORE")
            .env_remove("PIFLOW_HOME");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.piflow(args).output().expect("piflow runs")
    }

    fn workflow(&self, name: &str, text: &str) {
        let dir = self.dir.path().join("workflows");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(format!("{name}.asl.yaml")), text).expect("write");
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{} {args:?}: not JSON ({e}): {}\n{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).to_string()
}

/// A small xorshift generator: the crash points are random but repeatable
/// (the seed is printed; `PIFLOW_CRASH_SEED` sets it).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("PIFLOW_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(42)
                    | 1
            });
        eprintln!("crash points from PIFLOW_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

const CRASH: &str = r#"
Comment: side effects (audit records), waits and a parallel fan-out
StartAt: Effect1
States:
  Effect1:
    Type: Task
    Resource: piflow:audit-note
    Parameters: {environment: crash, action: effect1}
    ResultPath: $.e1
    Next: Pause1
  Pause1:
    Type: Wait
    Seconds: 1
    Next: Fan
  Fan:
    Type: Parallel
    ResultPath: $.fan
    Next: Pause2
    Branches:
      - StartAt: Effect2
        States:
          Effect2:
            Type: Task
            Resource: piflow:audit-note
            Parameters: {environment: crash, action: effect2}
            End: true
      - StartAt: Effect3
        States:
          Effect3:
            Type: Task
            Resource: piflow:audit-note
            Parameters: {environment: crash, action: effect3}
            End: true
  Pause2:
    Type: Wait
    Seconds: 1
    Next: Effect4
  Effect4:
    Type: Task
    Resource: piflow:audit-note
    Parameters: {environment: crash, action: effect4}
    ResultPath: $.e4
    End: true
"#;

/// (type, state) of each event of a history, counted.
fn shape_of(history: &Value) -> BTreeMap<(String, String), usize> {
    let mut shape = BTreeMap::new();
    for e in history.as_array().into_iter().flatten() {
        *shape
            .entry((
                e["type"].as_str().unwrap_or("").to_string(),
                e["state"].as_str().unwrap_or("").to_string(),
            ))
            .or_default() += 1;
    }
    shape
}

/// Start `piflow run crash`, and SIGKILL it after `lines` lines of progress
/// (one per state entered or exited), unless it ends first.
fn run_and_kill(b: &Backend, name: &str, lines: u64) -> Child {
    let mut child = b
        .piflow(&["run", "crash", "--name", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.starts_with("  ") {
            seen += 1;
            if seen >= lines {
                let _ = child.kill();
                break;
            }
        }
    }
    child
}

fn crash_and_resume(b: &Backend) {
    b.workflow("crash", CRASH);
    // An uninterrupted run: the history every resumed one must match.
    let reference = b.run(&["run", "crash", "--name", "reference"]);
    assert!(reference.status.success(), "{}", text(&reference.stderr));
    let ref_events = b.json(&["history", "crash:reference", "--format", "json"]);
    let ref_shape = shape_of(&ref_events);
    let mut rng = Rng::new();
    let started = Instant::now();
    let names: Vec<String> = (0..50).map(|i| format!("crash-{i}")).collect();
    // Ten processes at a time, each killed at a random transition (a
    // state's progress line: 14 of them in a whole run).
    for batch in names.chunks(10) {
        let points: Vec<u64> = batch.iter().map(|_| 1 + rng.below(13)).collect();
        std::thread::scope(|scope| {
            for (n, at) in batch.iter().zip(points) {
                scope.spawn(move || {
                    let mut c = run_and_kill(b, n, at);
                    let _ = c.wait();
                });
            }
        });
    }
    eprintln!(
        "{}: 50 runs started and killed in {:.1} s",
        b.name,
        started.elapsed().as_secs_f64()
    );
    let listed = b.json(&["executions", "--format", "json"]);
    let running = listed
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["status"] == "RUNNING")
        .count();
    assert!(
        running >= 40,
        "{}: most runs were killed before their end ({running} of 50 RUNNING)",
        b.name
    );
    // Leases of killed processes expire; then one process resumes every
    // orphan, fifty at once. On a loaded machine a resumed execution may
    // stop again, resumable, when its lease renewals fall behind (the fence
    // in docs/durable.md): then it is resumed again, at most twice more.
    let ttl_ms = (b.ttl.parse::<f64>().unwrap_or(5.0) * 1000.0) as u64;
    let mut resumed_total = 0;
    for round in 1..=3 {
        std::thread::sleep(Duration::from_millis(ttl_ms + 300));
        let t = Instant::now();
        let out = b.run(&["resume", "--orphans", "--format", "json"]);
        eprintln!(
            "{}: resume --orphans, round {round}: {:.1} s",
            b.name,
            t.elapsed().as_secs_f64()
        );
        let resumed: Value = serde_json::from_slice(&out.stdout).expect("json");
        let results = resumed.as_array().cloned().unwrap_or_default();
        if round == 1 {
            assert_eq!(
                results.len(),
                running,
                "{}: every orphan is resumed",
                b.name
            );
        }
        resumed_total += results.len();
        let unfinished = results.iter().filter(|r| r["status"] == "RUNNING").count();
        if out.status.success() {
            eprintln!(
                "{}: resumed in {round} round(s) ({resumed_total} resumes)",
                b.name
            );
            break;
        }
        assert!(
            unfinished > 0 && round < 3,
            "{}: resume --orphans, round {round}: {}\n{}",
            b.name,
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    let audit = b.json(&["audit", "--env", "crash", "--format", "json"]);
    let audit = audit.as_array().expect("array").clone();
    for n in &names {
        let id = format!("crash:{n}");
        let exec = b.json(&["history", &id, "--format", "json"]);
        let events = exec.as_array().expect("array");
        // Complete, gap-free, each event once.
        let ids: Vec<u64> = events.iter().filter_map(|e| e["id"].as_u64()).collect();
        assert_eq!(
            ids,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "{}: {id} has gaps",
            b.name
        );
        assert_eq!(
            shape_of(&exec),
            ref_shape,
            "{}: {id}: the same events as an uninterrupted run, each once",
            b.name
        );
        assert_eq!(
            events.last().map(|e| e["type"].clone()),
            Some(json!("ExecutionSucceeded")),
            "{}: {id}",
            b.name
        );
        // Every side effect once per state entry: one audit record per
        // Task state entered, made with that entry's idempotency token.
        let arn_suffix = format!(":execution:crash:{n}");
        let records: Vec<&Value> = audit
            .iter()
            .filter(|r| {
                r["actor"]
                    .as_str()
                    .is_some_and(|a| a.ends_with(&arn_suffix))
            })
            .collect();
        let entered: HashMap<String, u64> = events
            .iter()
            .filter(|e| e["type"] == "TaskStateEntered")
            .map(|e| {
                (
                    e["state"].as_str().unwrap_or("").to_string(),
                    e["id"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(entered.len(), 4);
        assert_eq!(
            records.len(),
            4,
            "{}: {id}: one record per state entry: {records:?}",
            b.name
        );
        for r in records {
            let state = r["target"].as_str().unwrap_or("");
            let token = r["token"].as_str().unwrap_or("");
            assert_eq!(
                token,
                format!(
                    "arn:aws:states:us-east-1:000000000000:execution:crash:{n}:{}:0",
                    entered[state]
                ),
                "{}: {id}",
                b.name
            );
        }
    }
    let verify = b.run(&["audit", "verify", "--env", "crash"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

const ONE_AT_A_TIME: &str = r#"
StartAt: Before
States:
  Before:
    Type: Task
    Resource: piflow:audit-note
    Parameters: {environment: lease-test, action: before}
    Next: After
  After:
    Type: Task
    Resource: piflow:audit-note
    Parameters: {environment: lease-test, action: after}
    End: true
"#;

fn twenty_concurrent_starts_hold_the_lease_one_at_a_time(b: &Backend) {
    b.workflow("deploy", ONE_AT_A_TIME);
    let children: Vec<Child> = (0..20)
        .map(|i| {
            b.piflow(&[
                "run",
                "deploy",
                "--env",
                "prod",
                "--name",
                &format!("d{i}"),
                "--format",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}: {}\n{}",
            b.name,
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // Each execution holds env:prod from before its record is written until
    // after its end is recorded: their [started, stopped] never overlap.
    let list = b.json(&["executions", "--workflow", "deploy", "--format", "json"]);
    let mut spans: Vec<(String, String)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["started"].as_str().unwrap_or("").to_string(),
                e["stopped"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(spans.len(), 20);
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "{}: two executions held env:prod at once: {:?} and {:?}",
            b.name,
            w[0],
            w[1]
        );
    }
}

const SLOW: &str = r#"
StartAt: Hold
States:
  Hold:
    Type: Wait
    Seconds: 120
    End: true
"#;

fn wait_for_status(b: &Backend, id: &str, status: &str) {
    // Generous for a loaded machine; the holder waits 120 s, so a stop
    // that does not work still fails this (SUCCEEDED comes too late).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = b.json(&["executions", "--format", "json"]);
        if list.as_array().is_some_and(|a| {
            a.iter()
                .any(|e| e["execution"] == id && e["status"] == status)
        }) {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never became {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn no_wait_names_the_holder_and_stop_ends_it(b: &Backend) {
    b.workflow("slow", SLOW);
    let holder = b
        .piflow(&["run", "slow", "--env", "stage", "--name", "holder"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for_status(b, "slow:holder", "RUNNING");
    let refused = b.run(&[
        "run",
        "slow",
        "--env",
        "stage",
        "--name",
        "second",
        "--no-wait",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", b.name);
    let err = text(&refused.stderr);
    assert!(
        err.contains("[lease-held]") && err.contains("env:stage is held by execution slow:holder"),
        "{}: {err}",
        b.name
    );
    // A live process runs it: resume is refused, naming that process.
    let again = b.run(&["resume", "slow:holder"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("[execution-running]"));

    let stopped = b.run(&["stop", "slow:holder", "--format", "json"]);
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let out = holder.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "a stopped run exits 1");
    wait_for_status(b, "slow:holder", "ABORTED");
    let history = b.json(&["history", "slow:holder", "--format", "json"]);
    assert_eq!(
        history
            .as_array()
            .and_then(|h| h.last())
            .map(|e| e["type"].clone()),
        Some(json!("ExecutionAborted"))
    );
    // The environment is free again.
    b.workflow("quick", ONE_AT_A_TIME);
    let next = b.run(&[
        "run",
        "quick",
        "--env",
        "stage",
        "--name",
        "third",
        "--no-wait",
    ]);
    assert!(next.status.success(), "{}", text(&next.stderr));
}

const FLAKY: &str = r#"
StartAt: Prepare
States:
  Prepare:
    Type: Task
    Resource: arn:aws:states:::lambda:invoke
    Parameters: {FunctionName: prepare}
    ResultPath: $.prepare
    Next: Deploy
  Deploy:
    Type: Task
    Resource: arn:aws:states:::lambda:invoke
    Parameters: {FunctionName: deploy}
    ResultSelector: {"ok.$": $.Payload.ok}
    ResultPath: $.deploy
    End: true
"#;

fn redrive_runs_the_failed_state_again(b: &Backend) {
    b.workflow("flaky", FLAKY);
    let mock = |name: &str, v: Value| {
        let p = b.dir.path().join(format!("{name}.json"));
        std::fs::write(&p, json!({"States": v}).to_string()).expect("write");
        p.display().to_string()
    };
    let broken = mock(
        "broken",
        json!({
            "Prepare": [{"Return": {"Payload": {"ready": true}}}],
            "Deploy": [{"Throw": {"Error": "Deploy.Failed", "Cause": "the service did not stabilise"}}]
        }),
    );
    let fixed = mock(
        "fixed",
        json!({
            "Prepare": [{"Throw": {"Error": "MustNotRunAgain", "Cause": "Prepare succeeded before"}}],
            "Deploy": [{"Return": {"Payload": {"ok": true}}}]
        }),
    );
    let failed = b.json(&[
        "run", "flaky", "--name", "r1", "--mock", &broken, "--format", "json",
    ]);
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["error"], "Deploy.Failed");
    assert_eq!(failed["id"], "flaky:r1");
    let redriven = b.json(&["redrive", "flaky:r1", "--mock", &fixed, "--format", "json"]);
    assert_eq!(redriven["status"], "SUCCEEDED", "{redriven}");
    assert_eq!(
        redriven["output"],
        json!({"prepare": {"Payload": {"ready": true}}, "deploy": {"ok": true}})
    );
    let history = b.json(&["history", "flaky:r1", "--format", "json"]);
    let types: Vec<&str> = history
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(types.contains(&"ExecutionFailed") && types.contains(&"ExecutionRedriven"));
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"));
    // A succeeded execution cannot be redriven.
    let again = b.run(&["redrive", "flaky:r1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("[wrong-status]"));

    // The list's JSON shape.
    let list = b.json(&["executions", "--status", "SUCCEEDED", "--format", "json"]);
    let item = list
        .as_array()
        .and_then(|a| a.iter().find(|e| e["execution"] == "flaky:r1"))
        .expect("listed")
        .clone();
    let keys: Vec<&str> = item
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        [
            "execution",
            "workflow",
            "version",
            "status",
            "started",
            "stopped"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(item["workflow"], "flaky");
    assert_eq!(item["version"], 1);
    // The history's JSON shape: id, type, state, timestamp, details.
    let first = &history[0];
    assert_eq!(first["type"], "ExecutionStarted");
    assert_eq!(first["id"], 1);
    assert!(
        first["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let scheduled = history
        .as_array()
        .and_then(|h| h.iter().find(|e| e["type"] == "TaskScheduled"))
        .expect("scheduled");
    assert_eq!(scheduled["state"], "Prepare");
    assert_eq!(scheduled["resource"], "arn:aws:states:::lambda:invoke");
}

/// The token of the approval an execution requested (from the audit
/// trail), waiting until it is there.
fn approval_token(b: &Backend, execution: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let audit = b.json(&["audit", "--env", "prod", "--format", "json"]);
        if let Some(t) = audit.as_array().and_then(|a| {
            a.iter()
                .filter(|r| r["action"] == "approval.requested")
                .filter_map(|r| r["after"]["token"].as_str().map(str::to_string))
                .find(|t| t.contains(execution))
        }) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{execution} requested no approval"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const APPROVAL: &str = r#"
StartAt: Approve
States:
  Approve:
    Type: Task
    Resource: piflow:approval.waitForTaskToken
    Parameters: {environment: prod, message: ship 2.0?}
    ResultPath: $.approval
    End: true
"#;

fn a_task_token_is_answered_from_another_process(b: &Backend) {
    b.workflow("gate", APPROVAL);
    let run = b
        .piflow(&["run", "gate", "--name", "g1", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The token is in the audit trail (and on the run's screen).
    let token = approval_token(b, ":gate:g1:");
    let bad = b.run(&["send-task-success", "no-such-token"]);
    assert_eq!(bad.status.code(), Some(2));
    let ok = b.run(&[
        "send-task-success",
        &token,
        "--output",
        r#"{"approved": true, "by": "alice"}"#,
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let twice = b.run(&["send-task-failure", &token, "--error", "Rejected"]);
    assert_eq!(twice.status.code(), Some(1), "a token is answered once");
    let out = run.wait_with_output().expect("wait");
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["status"], "SUCCEEDED", "{}", text(&out.stderr));
    assert_eq!(
        result["output"]["approval"],
        json!({"approved": true, "by": "alice"})
    );

    // Heartbeats from other processes keep a task with HeartbeatSeconds
    // waiting past them: 3 s, beaten every second for 7 s.
    b.workflow(
        "beat",
        &APPROVAL.replace("End: true", "HeartbeatSeconds: 3\n    End: true"),
    );
    let run = b
        .piflow(&["run", "beat", "--name", "h1", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let token = approval_token(b, ":beat:h1:");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(7) {
        let beat = b.run(&["send-task-heartbeat", &token]);
        assert!(beat.status.success(), "{}", text(&beat.stderr));
        assert!(
            text(&beat.stdout).starts_with("heartbeat recorded; "),
            "{}",
            text(&beat.stdout)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let ok = b.run(&["approve", &token]);
    assert!(
        ok.status.success(),
        "the task outlived its HeartbeatSeconds only by the heartbeats: {}",
        text(&ok.stderr)
    );
    let out = run.wait_with_output().expect("wait");
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["status"], "SUCCEEDED", "{}", text(&out.stderr));
    let late = b.run(&["send-task-heartbeat", &token]);
    assert_ne!(
        late.status.code(),
        Some(0),
        "an answered task takes no heartbeat"
    );
    let bad = b.run(&["send-task-heartbeat", "no-such-token"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));

    // `piflow reject` fails the approval with Approval.Rejected.
    let run = b
        .piflow(&["run", "gate", "--name", "g2", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let token = approval_token(b, ":gate:g2:");
    let no = b.run(&["reject", &token, "--reason", "freeze week"]);
    assert!(no.status.success(), "{}", text(&no.stderr));
    let out = run.wait_with_output().expect("wait");
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["status"], "FAILED");
    assert_eq!(result["error"], "Approval.Rejected");
    assert!(
        result["cause"]
            .as_str()
            .is_some_and(|c| c.ends_with(": freeze week")),
        "{result}"
    );
}

fn the_same_name_is_the_same_execution(b: &Backend) {
    b.workflow("once", ONE_AT_A_TIME.replace("lease-test", "once").as_str());
    let first = b.json(&[
        "run",
        "once",
        "--name",
        "n1",
        "--input",
        r#"{"v": 1}"#,
        "--format",
        "json",
    ]);
    assert_eq!(first["status"], "SUCCEEDED");
    let again = b.json(&[
        "run",
        "once",
        "--name",
        "n1",
        "--input",
        r#"{"v": 1}"#,
        "--format",
        "json",
    ]);
    assert_eq!(
        again, first,
        "starting the same name again returns the first execution"
    );
    let other = b.run(&["run", "once", "--name", "n1", "--input", r#"{"v": 2}"#]);
    assert_eq!(other.status.code(), Some(1));
    assert!(text(&other.stderr).contains("[execution-already-exists]"));
    let audit = b.json(&["audit", "--env", "once", "--format", "json"]);
    assert_eq!(audit.as_array().map(Vec::len), Some(2), "nothing ran twice");
}

/// An execution runs the version it started on, even when it resumes
/// after a new version was published.
fn a_running_execution_keeps_its_version(b: &Backend) {
    let v1 = r#"
StartAt: Hold
States:
  Hold: {Type: Wait, Seconds: 2, Next: Old}
  Old: {Type: Pass, Result: "version 1", ResultPath: $.ran, End: true}
"#;
    b.workflow("pinned", v1);
    let mut first = b
        .piflow(&["run", "pinned", "--name", "p1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for_status(b, "pinned:p1", "RUNNING");
    std::thread::sleep(Duration::from_millis(300));
    let _ = first.kill();
    let _ = first.wait();
    b.workflow(
        "pinned",
        &v1.replace("version 1", "version 2").replace("Old", "New"),
    );
    let second = b.json(&["run", "pinned", "--name", "p2", "--format", "json"]);
    assert_eq!(second["output"]["ran"], "version 2");
    std::thread::sleep(Duration::from_millis(2200));
    let resumed = b.json(&["resume", "pinned:p1", "--format", "json"]);
    assert_eq!(resumed["status"], "SUCCEEDED", "{resumed}");
    assert_eq!(resumed["output"]["ran"], "version 1");
    let list = b.json(&["executions", "--workflow", "pinned", "--format", "json"]);
    let version = |id: &str| {
        list.as_array()
            .and_then(|a| a.iter().find(|e| e["execution"] == id))
            .map(|e| e["version"].clone())
    };
    assert_eq!(version("pinned:p1"), Some(json!(1)));
    assert_eq!(version("pinned:p2"), Some(json!(2)));
}

const LONG: &str = r#"
StartAt: Hold
States:
  Hold:
    Type: Wait
    Seconds: 4
    Next: Done
  Done:
    Type: Pass
    Result: done
    End: true
"#;

/// Start `piflow run long` and SIGKILL it once its Wait is entered
/// (committed). The child is returned unreaped: a zombie, until waited for.
fn run_until_waiting(b: &Backend, name: &str, env: Option<&str>) -> Child {
    let mut args = vec!["run", "long", "--name", name];
    if let Some(env) = env {
        args.extend(["--env", env]);
    }
    let mut child = b
        .piflow(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let id = format!("long:{name}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = b.run(&["history", &id, "--format", "json"]);
        let entered = serde_json::from_slice::<Value>(&h.stdout).is_ok_and(|v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|e| e["type"] == "WaitStateEntered"))
        });
        if entered {
            break;
        }
        assert!(Instant::now() < deadline, "{}: {id} never waited", b.name);
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    child
}

/// `piflow resume ID` in the human format: how long until it continues
/// the execution (its "continuing" line), and its output.
fn timed_resume(b: &Backend, id: &str) -> (Duration, Output) {
    let t = Instant::now();
    let mut child = b
        .piflow(&["resume", id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = Vec::new();
    let mut took = None;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if took.is_none() && line.contains(&format!("continuing {id}")) {
            took = Some(t.elapsed());
        }
        lines.push(line);
    }
    let mut out = child.wait_with_output().expect("wait");
    out.stderr = lines.join("\n").into_bytes();
    let took = took.unwrap_or_else(|| {
        panic!(
            "{}: resume {id} did not continue it: {}\n{}",
            b.name,
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (took, out)
}

/// The lease is 30 s: a resume that succeeds within seconds of a SIGKILL
/// took the dead process's lease over, it did not wait for it to expire.
fn a_killed_process_is_taken_over_at_once(b: &Backend) {
    assert_eq!(b.ttl, "30");
    b.workflow("long", LONG);
    let mut killed = run_until_waiting(b, "k1", Some("sk"));
    // Resumed while the killed process is still a zombie (not reaped).
    let (took, out) = timed_resume(b, "long:k1");
    let _ = killed.wait();
    eprintln!(
        "{}: resume after SIGKILL continued the execution after {} ms",
        b.name,
        took.as_millis()
    );
    assert!(
        out.status.success(),
        "{}: {}\n{}",
        b.name,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("which is gone"),
        "{}: {}",
        b.name,
        text(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(5),
        "{}: took over in {took:?}, not at once",
        b.name
    );
    wait_for_status(b, "long:k1", "SUCCEEDED");
    let history = b.json(&["history", "long:k1", "--format", "json"]);
    let ids: Vec<u64> = history
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());

    // An environment held by an execution whose process was killed is
    // free at once: --no-wait does not wait for the lease to expire.
    b.workflow("quick", ONE_AT_A_TIME);
    let mut killed = run_until_waiting(b, "k2", Some("sk2"));
    let _ = killed.wait();
    let t = Instant::now();
    let next = b.run(&["run", "quick", "--env", "sk2", "--name", "q2", "--no-wait"]);
    assert!(next.status.success(), "{}: {}", b.name, text(&next.stderr));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // The killed one, resumed, takes its turn and ends.
    let resumed = b.json(&["resume", "long:k2", "--format", "json"]);
    assert_eq!(resumed["status"], "SUCCEEDED", "{}: {resumed}", b.name);
}

/// `piflow serve` resumes an execution orphaned after it started, within
/// its scan interval (1 s here), long before the 30 s lease would expire.
fn serve_resumes_an_orphan_that_appears_later(b: &Backend) {
    assert_eq!(b.ttl, "30");
    b.workflow("long", LONG);
    let log = b.dir.path().join("serve.log");
    let mut serve = b
        .piflow(&["serve", "--listen", "127.0.0.1:0", "--orphan-scan", "1"])
        .env("PIFLOW_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn serve");
    // Kept open while the server runs (it prints to stdout).
    let mut stdout = BufReader::new(serve.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read");
    assert!(first.contains("listening on"), "{}: {first}", b.name);
    let mut killed = run_until_waiting(b, "s1", None);
    let _ = killed.wait();
    let t = Instant::now();
    let deadline = t + Duration::from_secs(20);
    loop {
        let list = b.json(&["executions", "--format", "json"]);
        let done = list.as_array().is_some_and(|a| {
            a.iter()
                .any(|e| e["execution"] == "long:s1" && e["status"] == "SUCCEEDED")
        });
        if done {
            break;
        }
        if Instant::now() > deadline {
            let _ = serve.kill();
            let _ = serve.wait();
            panic!(
                "{}: serve did not resume long:s1: {}",
                b.name,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The rest of the Wait (under 4 s) plus at most one scan interval.
    eprintln!(
        "{}: serve resumed the orphan; it ended {} ms after the kill",
        b.name,
        t.elapsed().as_millis()
    );
    let _ = serve.kill();
    let _ = serve.wait();
    drop(stdout);
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log.contains("resuming an orphaned execution"),
        "{}: {log}",
        b.name
    );
}

#[test]
fn embedded_killed_process_is_taken_over_at_once() {
    let mut b = Backend::embedded();
    b.ttl = "30";
    a_killed_process_is_taken_over_at_once(&b);
    serve_resumes_an_orphan_that_appears_later(&b);
}

#[test]
fn dynamodb_killed_process_is_taken_over_at_once() {
    if let Some(mut b) = Backend::dynamodb() {
        b.ttl = "30";
        a_killed_process_is_taken_over_at_once(&b);
        serve_resumes_an_orphan_that_appears_later(&b);
    }
}

fn all(b: &Backend) {
    a_running_execution_keeps_its_version(b);
    the_same_name_is_the_same_execution(b);
    redrive_runs_the_failed_state_again(b);
    a_task_token_is_answered_from_another_process(b);
    no_wait_names_the_holder_and_stop_ends_it(b);
}

#[test]
fn embedded_verbs() {
    all(&Backend::embedded());
}

#[test]
fn dynamodb_verbs() {
    // Each DynamoDB call goes to moto, which answers one at a time: an 8 s
    // lease leaves room on a loaded machine. A killed process's lease is
    // taken over at once, not on expiry, so a longer lease costs these
    // checks nothing.
    if let Some(mut b) = Backend::dynamodb() {
        b.ttl = "8";
        all(&b);
    }
}

#[test]
fn embedded_crash_and_resume_50() {
    let mut b = Backend::embedded();
    b.ttl = "5";
    crash_and_resume(&b);
}

#[test]
fn dynamodb_crash_and_resume_50() {
    // Its fifty-at-once resume would hold up the other tests' requests.
    if let Some(mut b) = Backend::dynamodb_alone() {
        b.ttl = "8";
        crash_and_resume(&b);
    }
}

// Nobody dies here: a lease long enough that a loaded machine renews it in
// time (a late renewal stops its execution rather than share the lease).
#[test]
fn embedded_one_execution_per_environment() {
    let mut b = Backend::embedded();
    b.ttl = "15";
    twenty_concurrent_starts_hold_the_lease_one_at_a_time(&b);
}

#[test]
fn dynamodb_one_execution_per_environment() {
    if let Some(mut b) = Backend::dynamodb() {
        b.ttl = "15";
        twenty_concurrent_starts_hold_the_lease_one_at_a_time(&b);
    }
}
