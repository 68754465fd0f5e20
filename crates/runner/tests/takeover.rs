//! Leases of processes that died: a holder on this host whose process is
//! gone (no such pid, or the pid now belongs to a process that started at
//! another time) is taken over at once by `resume`, the environment queue
//! and the orphan scan; a live holder, a holder on another host and a
//! holder written before processes were marked are respected until their
//! lease expires. Linux only (elsewhere liveness is always unknown).

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use piflow_engine::{Status, SystemClock, TaskRegistry};
use piflow_runner::liveness::{HolderId, ProcessMark};
use piflow_runner::{Runner, RunnerError, StartRequest, env_key, exec_key, execution_id};
use piflow_store::embedded::EmbeddedStore;
use piflow_store::{ExecutionRecord, LeaseOutcome, NewDefinition, StartOutcome, Store};
use serde_json::json;

const QUICK: &str =
    r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "done", "End": true}}}"#;
const PAUSE: &str =
    r#"{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": true}}}"#;

/// Far longer than any test: a lease that is taken before it expires was
/// taken over, not waited for.
const TTL: Duration = Duration::from_secs(120);

struct Site {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

fn site() -> Site {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("piflow.redb")).expect("store"));
    Site { _dir: dir, store }
}

fn runner(store: &Arc<dyn Store>) -> Runner {
    let mut r = Runner::new(store.clone(), TaskRegistry::new(), Arc::new(SystemClock));
    r.lease_ttl = TTL;
    r
}

/// This process as a holder; `None` when this /proc does not mark
/// processes (then there is nothing to test).
fn me() -> Option<(HolderId, ProcessMark)> {
    let h = HolderId::this_process();
    let m = h.mark.clone()?;
    Some((h, m))
}

/// A process of this host that is gone: a pid no process has.
fn dead(me: &HolderId) -> String {
    HolderId {
        pid: u32::MAX,
        ..me.clone()
    }
    .to_string()
}

/// This process's pid, but started at another time: the pid was reused.
fn reused(me: &HolderId, m: &ProcessMark) -> String {
    HolderId {
        mark: Some(ProcessMark {
            start: m.start + 7,
            ..m.clone()
        }),
        ..me.clone()
    }
    .to_string()
}

/// A RUNNING execution `w:NAME` whose lease `holder` took for `TTL`, and
/// that holds `env` when given.
async fn orphan(
    store: &Arc<dyn Store>,
    name: &str,
    definition: &str,
    holder: &str,
    env: Option<&str>,
) -> String {
    let version = store
        .publish(NewDefinition {
            workflow: "w".into(),
            definition: definition.into(),
            author: "test".into(),
            source_commit: None,
        })
        .await
        .expect("publish");
    let id = execution_id("w", name);
    let record = ExecutionRecord {
        id: id.clone(),
        workflow: "w".into(),
        name: name.into(),
        version: version.version,
        status: Status::Running,
        input: json!({}),
        output: None,
        error: None,
        cause: None,
        trigger: "test".into(),
        started: Utc::now(),
        stopped: None,
        revision: 0,
        redrive_count: 0,
        stop_requested: None,
        stop_reason: None,
        env: env.map(str::to_string),
        version_arn: None,
        alias_arn: None,
        test_case: None,
    };
    assert!(matches!(
        store.start_execution(record).await.expect("record"),
        StartOutcome::Created(_)
    ));
    let ttl = chrono::Duration::from_std(TTL).expect("ttl");
    assert!(matches!(
        store
            .acquire_lease(&exec_key(&id), holder, ttl)
            .await
            .expect("lease"),
        LeaseOutcome::Acquired(_)
    ));
    if let Some(env) = env {
        assert!(matches!(
            store
                .acquire_lease(&env_key(env), &id, ttl)
                .await
                .expect("lease"),
            LeaseOutcome::Acquired(_)
        ));
    }
    id
}

async fn orphan_ids(r: &Runner) -> Vec<String> {
    let mut ids: Vec<String> = r
        .orphans()
        .await
        .expect("orphans")
        .into_iter()
        .map(|o| o.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_of_this_host_is_taken_over_at_once() {
    let Some((me, m)) = me() else { return };
    let s = site();
    let r = runner(&s.store);
    let gone = orphan(&s.store, "gone", QUICK, &dead(&me), None).await;
    let recycled = orphan(&s.store, "recycled", QUICK, &reused(&me, &m), None).await;
    assert_eq!(orphan_ids(&r).await, vec![gone.clone(), recycled.clone()]);
    for id in [&gone, &recycled] {
        let t = Instant::now();
        let f = r.resume(id).await.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(f.record.status, Status::Succeeded, "{id}");
        assert!(f.outcome.is_some(), "{id} ran here");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{id}: taken over at once, not after the lease's {} s ({:?})",
            TTL.as_secs(),
            t.elapsed()
        );
    }
    assert!(orphan_ids(&r).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_foreign_or_unmarked_holder_is_respected() {
    let Some((me, _)) = me() else { return };
    let s = site();
    let r = runner(&s.store);
    // Another runner of this (live) process.
    let other = runner(&s.store);
    let live = orphan(&s.store, "live", QUICK, &other.holder, None).await;
    // A pid that does not exist here, but on another host.
    let far = HolderId {
        host: format!("{}-elsewhere", me.host),
        ..HolderId::parse(&dead(&me)).expect("parses")
    };
    let elsewhere = orphan(&s.store, "elsewhere", QUICK, &far.to_string(), None).await;
    // Written before processes were marked: liveness unknown.
    let old = orphan(
        &s.store,
        "old",
        QUICK,
        &format!("{}@{}#ab12cd34", u32::MAX, me.host),
        None,
    )
    .await;
    assert!(orphan_ids(&r).await.is_empty(), "none is an orphan");
    for id in [&live, &elsewhere, &old] {
        match r.resume(id).await {
            Err(e @ RunnerError::Running { .. }) => {
                assert_eq!(e.code(), "execution-running");
            }
            other => panic!("{id}: refused while its lease lasts, not {other:?}"),
        }
        assert_eq!(
            s.store.execution(id).await.expect("read").map(|x| x.status),
            Some(Status::Running)
        );
    }
    // A dead holder's execution, `stop` ends itself at once.
    let gone = orphan(&s.store, "gone", PAUSE, &dead(&me), None).await;
    let stopped = r.stop(&gone, "test").await.expect("stop");
    assert_eq!(stopped.status, Status::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_queue_takes_over_from_an_execution_whose_process_is_gone() {
    let Some((me, _)) = me() else { return };
    let s = site();
    let r = runner(&s.store);
    let start = |name: &str, env: &str| StartRequest {
        workflow: "w".into(),
        definition: QUICK.into(),
        source_commit: None,
        author: "test".into(),
        name: Some(name.into()),
        input: json!({}),
        trigger: "test".into(),
        env: Some(env.into()),
        wait: false,
    };
    // prod is held by an execution whose process died here: --no-wait
    // takes it at once.
    let stale = orphan(&s.store, "stale", QUICK, &dead(&me), Some("prod")).await;
    let t = Instant::now();
    let f = r
        .start(start("next", "prod"))
        .await
        .expect("prod is taken over");
    assert_eq!(f.record.status, Status::Succeeded);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // The orphan lost the environment; resumed, it queues and runs.
    let f = r.resume(&stale).await.expect("resume");
    assert_eq!(f.record.status, Status::Succeeded);

    // stage is held by an execution that runs on another host: refused.
    let far = HolderId {
        host: format!("{}-elsewhere", me.host),
        ..HolderId::parse(&dead(&me)).expect("parses")
    };
    let remote = orphan(&s.store, "remote", QUICK, &far.to_string(), Some("stage")).await;
    match r.start(start("blocked", "stage")).await {
        Err(e @ RunnerError::LeaseHeld { .. }) => {
            assert!(e.to_string().contains(&remote), "{e}");
        }
        other => panic!("stage is held elsewhere: {other:?}"),
    }
    // And by a live process of this host: refused.
    let other = runner(&s.store);
    orphan(&s.store, "busy", QUICK, &other.holder, Some("qa")).await;
    assert!(matches!(
        r.start(start("blocked2", "qa")).await,
        Err(RunnerError::LeaseHeld { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_processes_taking_over_one_wins() {
    let Some((me, _)) = me() else { return };
    let s = site();
    let id = orphan(&s.store, "race", PAUSE, &dead(&me), None).await;
    let (a, b) = (runner(&s.store), runner(&s.store));
    let (ra, rb) = tokio::join!(a.resume(&id), b.resume(&id));
    let ran = |r: &Result<piflow_runner::Finished, RunnerError>| {
        r.as_ref().is_ok_and(|f| f.outcome.is_some())
    };
    assert!(ran(&ra) != ran(&rb), "exactly one ran it: {ra:?} {rb:?}");
    let lost = if ran(&ra) { &rb } else { &ra };
    match lost {
        Err(RunnerError::Running { holder, .. }) => {
            assert!(*holder == a.holder || *holder == b.holder, "{holder}");
        }
        Ok(f) => assert!(f.existing, "came after the end: {f:?}"),
        Err(e) => panic!("{e}"),
    }
    let history = s.store.events(&id).await.expect("events");
    assert_eq!(
        history
            .iter()
            .filter(|e| e.event_type == "ExecutionStarted")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_scan_finds_orphans_that_appear_later() {
    let Some((me, _)) = me() else { return };
    let s = site();
    let r = runner(&s.store);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(r.clone().watch_orphans(
        Duration::from_millis(200),
        move |o: ExecutionRecord| {
            let _ = tx.send(o.id);
        },
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = orphan(&s.store, "later", QUICK, &dead(&me), None).await;
    let found = tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .expect("found within the scan interval");
    assert_eq!(found, Some(id));
    watch.abort();

    // No lease at all and just started: perhaps its process is between the
    // record and the lease; the scan leaves it until a lease TTL has
    // passed (orphans() lists it).
    let fresh = orphan(&s.store, "fresh", QUICK, &dead(&me), None).await;
    s.store
        .release_lease(&exec_key(&fresh), &dead(&me))
        .await
        .expect("release");
    assert!(orphan_ids(&r).await.contains(&fresh));
    let scanned: Vec<String> = r
        .scan_orphans()
        .await
        .expect("scan")
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert!(!scanned.contains(&fresh), "{scanned:?}");
    let mut short = runner(&s.store);
    short.lease_ttl = Duration::from_millis(50);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let scanned: Vec<String> = short
        .scan_orphans()
        .await
        .expect("scan")
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert!(scanned.contains(&fresh), "{scanned:?}");
}
