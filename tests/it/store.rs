//! The store's behaviour, written once for every backend: the embedded
//! backend and the DynamoDB backend (against moto, see tests/it/common/moto.rs)
//! both run `suite`. DynamoDB-specific tests follow it: chunked records,
//! clear errors, throttling and credentials (wiremock), races.

use crate::common;

use chrono::{Duration, Utc};
use piflow_store::embedded::EmbeddedStore;
use piflow_store::{
    AuditEntry, ExecutionRecord, LeaseOutcome, NewDefinition, Resource, StartOutcome, Status,
    Store, StoreError, StoredEvent, TaskAnswer, verify_audit,
};
use redb::ReadableTable;
use serde_json::json;

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn execution(id: &str, name: &str) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        workflow: "upgrade".into(),
        name: name.into(),
        version: 1,
        status: Status::Running,
        input: json!({"v": 1}),
        output: None,
        error: None,
        cause: None,
        trigger: "cli:test".into(),
        started: Utc::now(),
        stopped: None,
        revision: 0,
        redrive_count: 0,
        stop_requested: None,
        stop_reason: None,
        env: None,
        version_arn: None,
        alias_arn: None,
        test_case: None,
    }
}

fn event(seq: u64) -> StoredEvent {
    StoredEvent {
        seq,
        event_type: "PassStateEntered".into(),
        state: Some("A".into()),
        timestamp: chrono::DateTime::from_timestamp(1_790_000_000 + seq as i64, 0)
            .unwrap_or_default(),
        details: json!({"seq": seq}),
        key: Some(format!("/A#{seq}")),
        checkpoint: None,
    }
}

fn audit_entry(env: &str, n: u64) -> AuditEntry {
    AuditEntry {
        env: env.into(),
        actor: "execution:e1".into(),
        action: "ecs.shift-traffic".into(),
        target: "dashboard".into(),
        before: json!({"green": n}),
        after: json!({"green": n + 10}),
        result: "ok".into(),
        execution: Some("e1".into()),
        at: Utc::now(),
        token: None,
    }
}

async fn suite(store: &dyn Store) {
    // Definitions: versions, identical text is not a new version, aliases.
    let d1 = store
        .publish(NewDefinition {
            workflow: "upgrade".into(),
            definition: "{\"v\":1}".into(),
            author: "alice".into(),
            source_commit: Some("abc123".into()),
        })
        .await
        .expect("publish");
    assert_eq!(d1.version, 1);
    let again = store
        .publish(NewDefinition {
            workflow: "upgrade".into(),
            definition: "{\"v\":1}".into(),
            author: "bob".into(),
            source_commit: None,
        })
        .await
        .expect("publish");
    assert_eq!(again, d1, "the same text is the same version");
    let d2 = store
        .publish(NewDefinition {
            workflow: "upgrade".into(),
            definition: "{\"v\":2}".into(),
            author: "bob".into(),
            source_commit: None,
        })
        .await
        .expect("publish");
    assert_eq!(d2.version, 2);
    assert_ne!(d2.content_hash, d1.content_hash);
    assert_eq!(
        store
            .definitions(Some("upgrade"))
            .await
            .expect("list")
            .len(),
        2
    );
    assert_eq!(
        store.definition("upgrade", 1).await.expect("get"),
        Some(d1.clone())
    );
    store.set_alias("upgrade", "live", 1).await.expect("alias");
    assert_eq!(
        store.alias("upgrade", "live").await.expect("alias"),
        Some(1)
    );
    assert!(matches!(
        store.set_alias("upgrade", "live", 9).await,
        Err(StoreError::NotFound(_))
    ));
    // The newest version alone, and the workflows' names alone.
    assert_eq!(
        store.latest_definition("upgrade").await.expect("latest"),
        Some(d2.clone())
    );
    assert_eq!(store.latest_definition("up").await.expect("latest"), None);
    store
        .publish(NewDefinition {
            workflow: "up".into(),
            definition: "{\"v\":0}".into(),
            author: "carol".into(),
            source_commit: None,
        })
        .await
        .expect("publish");
    assert_eq!(
        store.workflows().await.expect("workflows"),
        ["up", "upgrade"],
        "by name; a name that is another's prefix is its own workflow"
    );

    // Executions: names are unique per workflow.
    let started = store
        .start_execution(execution("e1", "release-1.0"))
        .await
        .expect("start");
    assert!(matches!(started, StartOutcome::Created(_)));
    match store
        .start_execution(execution("e2", "release-1.0"))
        .await
        .expect("start twice")
    {
        StartOutcome::Existing(e) => assert_eq!(e.id, "e1"),
        other => panic!("a second start with the same name must return the first: {other:?}"),
    }
    let mut done = execution("e1", "release-1.0");
    done.status = Status::Succeeded;
    done.output = Some(json!({"ok": true}));
    let stored = store.update_execution(done.clone()).await.expect("update");
    assert_eq!(stored.revision, 1, "an update bumps the revision");
    assert!(
        matches!(
            store.update_execution(done.clone()).await,
            Err(StoreError::Conflict(_))
        ),
        "an update from a stale read is refused"
    );
    assert_eq!(
        store.execution("e1").await.expect("get").map(|e| e.status),
        Some(Status::Succeeded)
    );
    assert_eq!(
        store
            .executions(Some(Status::Succeeded))
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(
        store
            .executions(Some(Status::Failed))
            .await
            .expect("list")
            .is_empty()
    );

    // History: gap-free, no duplicates, nothing half-written.
    store
        .append_events("e1", vec![event(1), event(2)])
        .await
        .expect("append");
    assert!(
        matches!(
            store.append_events("e1", vec![event(2)]).await,
            Err(StoreError::Conflict(_))
        ),
        "duplicate"
    );
    assert!(
        matches!(
            store.append_events("e1", vec![event(4)]).await,
            Err(StoreError::Conflict(_))
        ),
        "gap"
    );
    assert!(
        matches!(
            store.append_events("e1", vec![event(3), event(5)]).await,
            Err(StoreError::Conflict(_))
        ),
        "a gap inside a batch"
    );
    assert_eq!(
        store.events("e1").await.expect("events").len(),
        2,
        "a refused batch writes nothing"
    );
    store
        .append_events("e1", vec![event(3)])
        .await
        .expect("append");
    let seqs: Vec<u64> = store
        .events("e1")
        .await
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(
        store.events("e1").await.expect("events")[2],
        event(3),
        "events come back as written"
    );

    // Concurrent appends to many executions (group commit) keep each
    // history gap-free.
    let appends = (0..16).map(|i| async move {
        let id = format!("g{i}");
        for seq in 1..=5 {
            store
                .append_events(&id, vec![event(seq)])
                .await
                .expect("append");
        }
    });
    futures::future::join_all(appends).await;
    for i in 0..16 {
        let seqs: Vec<u64> = store
            .events(&format!("g{i}"))
            .await
            .expect("events")
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    }

    // Audit: a chain per environment that verifies.
    for n in 0..3 {
        store
            .append_audit(audit_entry("prod", n))
            .await
            .expect("audit");
    }
    store
        .append_audit(audit_entry("dev", 0))
        .await
        .expect("audit");
    let prod = store.audit(Some("prod"), None).await.expect("audit");
    assert_eq!(
        prod.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(prod[1].prev_hash, prod[0].hash);
    assert!(
        verify_audit(store, "prod")
            .await
            .expect("verify")
            .is_empty()
    );
    assert_eq!(store.audit(None, None).await.expect("all").len(), 4);
    // A step re-run with the same idempotency token writes no second record.
    let tokened = AuditEntry {
        token: Some("exec-1:7:0".into()),
        ..audit_entry("prod", 9)
    };
    let first = store.append_audit(tokened.clone()).await.expect("audit");
    let again = store.append_audit(tokened).await.expect("audit");
    assert_eq!(first, again, "the record written the first time comes back");
    assert_eq!(
        store.audit(Some("prod"), None).await.expect("audit").len(),
        4
    );
    assert!(
        verify_audit(store, "prod")
            .await
            .expect("verify")
            .is_empty()
    );

    // Leases: one holder; the holder renews; an expired lease is taken over.
    let ttl = Duration::seconds(30);
    assert!(matches!(
        store
            .acquire_lease("env:prod", "exec-a", ttl)
            .await
            .expect("lease"),
        LeaseOutcome::Acquired(_)
    ));
    match store
        .acquire_lease("env:prod", "exec-b", ttl)
        .await
        .expect("lease")
    {
        LeaseOutcome::Held(l) => assert_eq!(l.holder, "exec-a"),
        other => panic!("the lease is held: {other:?}"),
    }
    assert!(matches!(
        store
            .acquire_lease("env:prod", "exec-a", ttl)
            .await
            .expect("renew"),
        LeaseOutcome::Acquired(_)
    ));
    assert!(
        store.release_lease("env:prod", "exec-b").await.is_err(),
        "only the holder releases"
    );
    store
        .release_lease("env:prod", "exec-a")
        .await
        .expect("release");
    assert!(matches!(
        store
            .acquire_lease("env:prod", "exec-b", Duration::milliseconds(-1))
            .await
            .expect("lease"),
        LeaseOutcome::Acquired(_)
    ));
    assert!(
        matches!(
            store
                .acquire_lease("env:prod", "exec-c", ttl)
                .await
                .expect("lease"),
            LeaseOutcome::Acquired(_)
        ),
        "an expired lease is taken over"
    );
    assert_eq!(
        store
            .lease("env:prod")
            .await
            .expect("lease")
            .map(|l| l.holder),
        Some("exec-c".into())
    );

    // Taking over from a holder found gone: only the very lease that was
    // read (same holder and expiry); once taken, a second taker of that
    // lease is told the new holder.
    assert!(matches!(
        store
            .acquire_lease("exec:t", "gone-1", ttl)
            .await
            .expect("lease"),
        LeaseOutcome::Acquired(_)
    ));
    let seen = store.lease("exec:t").await.expect("lease").expect("held");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .acquire_lease("exec:t", "gone-1", ttl)
        .await
        .expect("renewed since");
    match store
        .take_over_lease("exec:t", &seen, "taker-a", ttl)
        .await
        .expect("take over")
    {
        LeaseOutcome::Held(l) => assert_eq!(l.holder, "gone-1"),
        other => panic!("renewed since it was read: {other:?}"),
    }
    let seen = store.lease("exec:t").await.expect("lease").expect("held");
    assert!(matches!(
        store
            .take_over_lease("exec:t", &seen, "taker-a", ttl)
            .await
            .expect("take over"),
        LeaseOutcome::Acquired(ref l) if l.holder == "taker-a"
    ));
    match store
        .take_over_lease("exec:t", &seen, "taker-b", ttl)
        .await
        .expect("take over")
    {
        LeaseOutcome::Held(l) => assert_eq!(l.holder, "taker-a"),
        other => panic!("taken over once: {other:?}"),
    }
    // Free, expired or one's own: as acquire_lease.
    assert!(matches!(
        store
            .take_over_lease("exec:free", &seen, "taker-b", ttl)
            .await
            .expect("take over"),
        LeaseOutcome::Acquired(_)
    ));
    assert!(matches!(
        store
            .take_over_lease("exec:t", &seen, "taker-a", ttl)
            .await
            .expect("renew"),
        LeaseOutcome::Acquired(_)
    ));

    // The FIFO queue: tickets in order of arrival, renewing keeps one's
    // place, leaving and expiring drop out.
    let a = store
        .join_queue("env:stage", "q-a", ttl)
        .await
        .expect("join");
    let b = store
        .join_queue("env:stage", "q-b", ttl)
        .await
        .expect("join");
    assert!(a.ticket < b.ticket);
    let a_again = store
        .join_queue("env:stage", "q-a", ttl)
        .await
        .expect("renew");
    assert_eq!(a_again.ticket, a.ticket, "renewing keeps one's place");
    store
        .join_queue("env:stage", "q-dead", Duration::milliseconds(-1))
        .await
        .expect("join");
    let holders =
        |q: Vec<piflow_store::Waiter>| q.into_iter().map(|w| w.holder).collect::<Vec<_>>();
    assert_eq!(
        holders(store.queue("env:stage").await.expect("queue")),
        vec!["q-a", "q-b"],
        "an expired waiter is not in line"
    );
    store.leave_queue("env:stage", "q-a").await.expect("leave");
    assert_eq!(
        holders(store.queue("env:stage").await.expect("queue")),
        vec!["q-b"]
    );

    // Task tokens are answered once.
    let answer = TaskAnswer {
        token: "tok-1".into(),
        outcome: json!({"output": {"approved": true}}),
        at: Utc::now(),
    };
    store.answer_task(answer.clone()).await.expect("answer");
    assert!(matches!(
        store.answer_task(answer.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.task_answer("tok-1").await.expect("read"),
        Some(answer)
    );
    assert_eq!(store.task_answer("tok-2").await.expect("read"), None);

    // Listing: newest first, filtered and limited in the store's query.
    let base = Utc::now() + Duration::hours(1);
    let mut ids = Vec::new();
    for i in 0..6i64 {
        let mut r = execution(&format!("l{i}"), &format!("list-{i}"));
        r.workflow = if i % 2 == 0 { "deploy" } else { "upgrade" }.into();
        r.started = base + Duration::seconds(i);
        store.start_execution(r.clone()).await.expect("start");
        if i % 3 == 0 {
            r.status = Status::Failed;
            store.update_execution(r).await.expect("fail");
        }
        ids.push(format!("l{i}"));
    }
    let list = |status: Option<Status>, workflow: Option<&str>, limit: Option<usize>| {
        let query = piflow_store::ExecutionQuery {
            status,
            workflow: workflow.map(str::to_string),
            limit,
        };
        async move {
            store
                .list_executions(query)
                .await
                .expect("list")
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(None, None, Some(2)).await, vec!["l5", "l4"]);
    assert_eq!(list(Some(Status::Failed), None, Some(1)).await, vec!["l3"]);
    assert_eq!(
        list(Some(Status::Failed), None, None).await,
        vec!["l3", "l0"]
    );
    assert_eq!(
        list(Some(Status::Running), Some("deploy"), Some(5)).await,
        vec!["l4", "l2"]
    );
    assert_eq!(list(None, Some("upgrade"), Some(2)).await, vec!["l5", "l3"]);
    assert!(list(None, None, Some(0)).await.is_empty());
    let all = list(None, None, None).await;
    assert_eq!(all.len(), store.executions(None).await.expect("all").len());
    assert_eq!(&all[..6], &["l5", "l4", "l3", "l2", "l1", "l0"]);

    resources(store).await;
}

/// Resources: created once, written at the revision read, listed by name
/// within their kind.
async fn resources(store: &dyn Store) {
    let res = |name: &str, body: serde_json::Value, revision: u64| Resource {
        kind: "sfn-machine".into(),
        name: name.into(),
        body,
        revision,
    };
    let a = store
        .put_resource(res("b-machine", json!({"v": 1}), 0))
        .await
        .expect("create");
    assert_eq!(a.revision, 1);
    let again = store
        .put_resource(res("b-machine", json!({"v": 9}), 0))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let a2 = store
        .put_resource(res("b-machine", json!({"v": 2}), 1))
        .await
        .expect("update at the revision read");
    assert_eq!(a2.revision, 2);
    let stale = store
        .put_resource(res("b-machine", json!({"v": 3}), 1))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let gone = store.put_resource(res("nothing", json!({}), 4)).await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
    store
        .put_resource(res("a-machine", json!({"v": 1}), 0))
        .await
        .expect("create");
    store
        .put_resource(Resource {
            kind: "other".into(),
            ..res("c", json!({}), 0)
        })
        .await
        .expect("another kind");
    let read = store
        .resource("sfn-machine", "b-machine")
        .await
        .expect("read");
    assert_eq!(read.map(|r| r.body), Some(json!({"v": 2})));
    let names: Vec<String> = store
        .resources("sfn-machine")
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["a-machine", "b-machine"]);
    // A layer above marks a deleted resource in its body and may write it
    // again at its revision.
    let deleted = store
        .put_resource(res("b-machine", json!({"deleted": true}), 2))
        .await
        .expect("tombstone");
    let back = store
        .put_resource(res("b-machine", json!({"v": 1}), deleted.revision))
        .await
        .expect("written again after its deletion");
    assert_eq!(back.revision, 4);
}

#[test]
fn embedded_store_behaviour() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("piflow.redb")).expect("open");
    block(suite(&store));
}

#[test]
fn embedded_store_survives_reopen_and_is_shared_by_two_handles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("piflow.redb");
    {
        let store = EmbeddedStore::open(&path).expect("open");
        block(store.append_events("e", vec![event(1), event(2)])).expect("append");
        // A second handle (as another piflow process has) sees the same
        // history and cannot break its order.
        let other = EmbeddedStore::open(&path).expect("second handle");
        assert_eq!(block(other.events("e")).expect("events").len(), 2);
        assert!(matches!(
            block(other.append_events("e", vec![event(2)])),
            Err(StoreError::Conflict(_))
        ));
        block(other.append_events("e", vec![event(3)])).expect("append");
        assert_eq!(block(store.events("e")).expect("events").len(), 3);
    }
    let store = EmbeddedStore::open(&path).expect("reopen");
    assert_eq!(block(store.events("e")).expect("events").len(), 3);
}

#[test]
fn a_foreign_file_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("piflow.redb");
    std::fs::write(
        &path,
        b"this is not a database, just some text that happens to be here",
    )
    .expect("write");
    match EmbeddedStore::open(&path) {
        Err(e @ StoreError::Unavailable { .. }) => {
            assert!(e.to_string().contains("is it a piflow store?"), "{e}")
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a foreign file must be refused"),
    }
}

#[test]
fn tampering_with_the_audit_trail_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("piflow.redb");
    let store = EmbeddedStore::open(&path).expect("open");
    for n in 0..4 {
        block(store.append_audit(audit_entry("prod", n))).expect("audit");
    }
    assert!(
        block(verify_audit(&store, "prod"))
            .expect("verify")
            .is_empty()
    );
    // Edit record 2 behind the store's back.
    drop(store);
    let db = redb::Database::create(&path).expect("raw open");
    let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("audit");
    let key = format!("prod\u{1}{:020}", 2);
    let tx = db.begin_write().expect("tx");
    {
        let mut t = tx.open_table(table).expect("table");
        let mut rec: serde_json::Value = {
            let v = t.get(key.as_str()).expect("get").expect("record 2");
            serde_json::from_slice(v.value()).expect("json")
        };
        rec["result"] = json!("failed: covered up");
        t.insert(
            key.as_str(),
            serde_json::to_vec(&rec).expect("json").as_slice(),
        )
        .expect("insert");
        // And remove the last record.
        t.remove(format!("prod\u{1}{:020}", 4).as_str())
            .expect("remove");
    }
    tx.commit().expect("commit");
    drop(db);
    let store = EmbeddedStore::open(&path).expect("reopen");
    let problems = block(verify_audit(&store, "prod")).expect("verify");
    assert!(
        problems
            .iter()
            .any(|p| p.seq == 2 && p.problem.contains("edited")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.problem.contains("removed from the end")),
        "{problems:?}"
    );
}

// ----- DynamoDB ---------------------------------------------------------------

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use common::moto::{moto, unique};
use piflow_store::dynamodb::{self, DynamoStore};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A fresh table on moto, created by `init`.
async fn moto_table(prefix: &str) -> String {
    let table = unique(prefix);
    let msg = dynamodb::init(&table).await.expect("init");
    assert!(msg.contains(&table), "{msg}");
    table
}

#[test]
fn dynamodb_store_behaviour() {
    if moto().is_none() {
        return;
    }
    block(async {
        let table = moto_table("suite").await;
        let again = dynamodb::init(&table).await.expect("init is idempotent");
        assert!(again.contains("already exists"), "{again}");
        let store = piflow_store::open(Some(&format!("dynamodb://{table}")))
            .await
            .expect("open");
        suite(store.as_ref()).await;
    });
}

#[test]
fn dynamodb_large_records_are_chunked_and_come_back_whole() {
    if moto().is_none() {
        return;
    }
    block(async {
        let table = moto_table("large").await;
        let store = DynamoStore::connect(&table).await.expect("open");
        let kib = |n: usize| "x".repeat(n * 1024);

        // An execution with 250 KiB of input and then 250 KiB of output.
        let mut rec = execution("big", "big-1");
        rec.input = json!({"blob": kib(250)});
        let writes = store.write_requests();
        assert!(matches!(
            store.start_execution(rec.clone()).await.expect("start"),
            StartOutcome::Created(_)
        ));
        assert_eq!(store.write_requests() - writes, 1, "a start is one write");
        assert_eq!(
            store.execution("big").await.expect("get"),
            Some(rec.clone())
        );
        let mut done = rec.clone();
        done.status = Status::Succeeded;
        done.output = Some(json!({"blob": kib(250), "more": "é".repeat(1000)}));
        let stored = store.update_execution(done.clone()).await.expect("update");
        assert_eq!(stored.revision, 1);
        assert_eq!(
            raw_chunks(&table, "EX#big").await,
            2,
            "about 512 KB of record: the main item and two chunks"
        );
        assert_eq!(
            store.execution("big").await.expect("get"),
            Some(stored.clone())
        );
        let listed = store
            .executions(Some(Status::Succeeded))
            .await
            .expect("list");
        assert_eq!(listed, vec![stored.clone()]);
        assert!(matches!(
            store.update_execution(done.clone()).await,
            Err(StoreError::Conflict(_))
        ));
        // Shrinking back to one item drops the chunks.
        let mut small = stored.clone();
        small.input = json!({"v": 1});
        small.output = Some(json!({"ok": true}));
        let small = store.update_execution(small).await.expect("shrink");
        assert_eq!(small.revision, 2);
        assert_eq!(
            raw_chunks(&table, "EX#big").await,
            0,
            "stale chunks removed"
        );
        assert_eq!(
            store.execution("big").await.expect("get"),
            Some(small.clone())
        );
        let writes = store.write_requests();
        let mut small2 = small.clone();
        small2.status = Status::Failed;
        store.update_execution(small2).await.expect("update");
        assert_eq!(store.write_requests() - writes, 1, "an update is one write");

        // A 1 MB definition.
        let text = format!("{{\"Comment\":\"{}\"}}", kib(1000));
        let d = store
            .publish(NewDefinition {
                workflow: "huge".into(),
                definition: text.clone(),
                author: "alice".into(),
                source_commit: None,
            })
            .await
            .expect("publish");
        assert_eq!(
            store
                .definition("huge", 1)
                .await
                .expect("get")
                .map(|d| d.definition),
            Some(text)
        );
        assert_eq!(
            store.definitions(Some("huge")).await.expect("list"),
            vec![d]
        );

        // A 600 KB event, an event too large for one write, audit records
        // and task answers with big payloads.
        let mut big = event(1);
        big.details = json!({"blob": kib(600)});
        let writes = store.write_requests();
        store
            .append_events("big", vec![big.clone(), event(2)])
            .await
            .expect("append");
        assert_eq!(store.write_requests() - writes, 1, "an append is one write");
        assert_eq!(
            store.events("big").await.expect("events"),
            vec![big, event(2)]
        );
        let mut huge = event(3);
        huge.details = json!({"blob": kib(5000)});
        match store.append_events("big", vec![huge]).await {
            Err(e @ StoreError::TooLarge(_)) => {
                let m = e.to_string();
                eprintln!("{m}");
                assert!(
                    m.contains("big") && m.contains("event 3") && m.contains("4 MB"),
                    "{m}"
                );
            }
            other => panic!("a 5 MB event must be refused clearly: {other:?}"),
        }
        assert_eq!(store.events("big").await.expect("events").len(), 2);
        let mut entry = audit_entry("large", 0);
        entry.after = json!({"blob": kib(500)});
        for n in 0..3 {
            store
                .append_audit(AuditEntry {
                    before: json!({"n": n}),
                    ..entry.clone()
                })
                .await
                .expect("audit");
        }
        let mut last = audit_entry("large", 9);
        last.after = json!("small again");
        store.append_audit(last).await.expect("audit");
        assert!(
            verify_audit(&store, "large")
                .await
                .expect("verify")
                .is_empty()
        );
        assert_eq!(
            store
                .audit_head("large")
                .await
                .expect("head")
                .map(|h| h.seq),
            Some(4)
        );
        let answer = TaskAnswer {
            token: "big-token".into(),
            outcome: json!({"output": kib(400)}),
            at: Utc::now(),
        };
        store.answer_task(answer.clone()).await.expect("answer");
        assert_eq!(
            store.task_answer("big-token").await.expect("read"),
            Some(answer)
        );
    });
}

/// How many chunk items partition `pk` holds (read behind the store's back).
async fn raw_chunks(table: &str, pk: &str) -> usize {
    let client = aws_sdk_dynamodb::Client::new(&piflow_aws_config::sdk_config().await);
    let out = client
        .query()
        .table_name(table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("raw query");
    out.items()
        .iter()
        .filter(|i| {
            i.get("SK")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.contains("#CHUNK#"))
        })
        .count()
}

#[test]
fn dynamodb_init_refuses_a_table_with_other_keys() {
    if moto().is_none() {
        return;
    }
    block(async {
        let table = unique("otherkeys");
        let client = aws_sdk_dynamodb::Client::new(&piflow_aws_config::sdk_config().await);
        client
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key"),
            )
            .send()
            .await
            .expect("create a foreign table");
        for result in [
            dynamodb::init(&table).await.map(|_| ()),
            dynamodb::open(&table).await.map(|_| ()),
        ] {
            match result {
                Err(e) => {
                    let m = e.to_string();
                    eprintln!("{m}");
                    assert!(m.contains("id (HASH)") && m.contains("PK (HASH"), "{m}");
                }
                Ok(()) => panic!("a table with other keys must be refused"),
            }
        }
    });
}

#[test]
fn dynamodb_missing_table_says_how_to_create_it() {
    if moto().is_none() {
        return;
    }
    block(async {
        let table = unique("missing");
        for result in [
            dynamodb::open(&table).await.map(|_| ()),
            piflow_store::open(Some(&format!("dynamodb://{table}")))
                .await
                .map(|_| ()),
        ] {
            match result {
                Err(e) => {
                    let m = e.to_string();
                    eprintln!("{m}");
                    assert!(m.contains("piflow store init"), "{m}");
                    assert!(m.contains(&table) && m.contains("store-table.yaml"), "{m}");
                }
                Ok(()) => panic!("a missing table must be refused"),
            }
        }
        // A store whose table disappears reports the same.
        let client = aws_sdk_dynamodb::Client::new(&piflow_aws_config::sdk_config().await);
        let store = DynamoStore::with_client(client, &table);
        let e = store.execution("e1").await.expect_err("no table");
        assert!(e.to_string().contains("piflow store init"), "{e}");
    });
}

#[test]
fn dynamodb_conditional_writes_hold_under_races() {
    if moto().is_none() {
        return;
    }
    block(async {
        let table = moto_table("race").await;
        // Eight "processes", each with its own client.
        let mut stores = Vec::new();
        for _ in 0..8 {
            stores.push(DynamoStore::connect(&table).await.expect("open"));
        }
        for seq in 1..=5u64 {
            let attempts = stores.iter().enumerate().map(|(i, s)| {
                let mut e = event(seq);
                e.details = json!({"writer": i});
                async move { (i, s.append_events("race", vec![e]).await) }
            });
            let results = futures::future::join_all(attempts).await;
            let winners: Vec<usize> = results
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(i, _)| *i)
                .collect();
            assert_eq!(winners.len(), 1, "seq {seq}: exactly one appender wins");
            for (_, r) in &results {
                assert!(
                    matches!(r, Ok(()) | Err(StoreError::Conflict(_))),
                    "losers get Conflict: {r:?}"
                );
            }
            let stored = stores[0].events("race").await.expect("events");
            assert_eq!(stored.len() as u64, seq);
            assert_eq!(
                stored[seq as usize - 1].details,
                json!({"writer": winners[0]})
            );
        }

        // Same name, eight ids: one execution.
        let starts = stores.iter().enumerate().map(|(i, s)| async move {
            s.start_execution(execution(&format!("r{i}"), "race-1"))
                .await
        });
        let results = futures::future::join_all(starts).await;
        let created: Vec<String> = results
            .iter()
            .filter_map(|r| match r {
                Ok(StartOutcome::Created(e)) => Some(e.id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), 1, "{results:?}");
        for r in &results {
            match r {
                Ok(StartOutcome::Created(_)) => {}
                Ok(StartOutcome::Existing(e)) => assert_eq!(e.id, created[0]),
                Err(e) => panic!("start: {e}"),
            }
        }

        // Eight updates from the same read: one wins.
        let updates = stores.iter().enumerate().map(|(i, s)| {
            let mut rec = execution(&created[0], "race-1");
            rec.trigger = format!("writer-{i}");
            async move { s.update_execution(rec).await }
        });
        let results = futures::future::join_all(updates).await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );

        // Eight takers of one lease: one holder.
        let takers = stores.iter().enumerate().map(|(i, s)| async move {
            s.acquire_lease("env:race", &format!("h{i}"), Duration::seconds(30))
                .await
        });
        let results = futures::future::join_all(takers).await;
        let holders: Vec<&str> = results
            .iter()
            .filter_map(|r| match r {
                Ok(LeaseOutcome::Acquired(l)) => Some(l.holder.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(holders.len(), 1, "{results:?}");

        // Eight processes take over one lease from a process gone: one wins.
        let gone = stores[0]
            .lease("env:race")
            .await
            .expect("lease")
            .expect("held");
        let takers = stores.iter().enumerate().map(|(i, s)| {
            let gone = gone.clone();
            async move {
                s.take_over_lease("env:race", &gone, &format!("t{i}"), Duration::seconds(30))
                    .await
            }
        });
        let results = futures::future::join_all(takers).await;
        let winners: Vec<&str> = results
            .iter()
            .filter_map(|r| match r {
                Ok(LeaseOutcome::Acquired(l)) => Some(l.holder.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for r in &results {
            match r {
                Ok(LeaseOutcome::Held(l)) => assert_eq!(l.holder, winners[0]),
                Ok(LeaseOutcome::Acquired(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }

        // Eight audit appends at once: one chain, no gaps.
        let appends = stores
            .iter()
            .enumerate()
            .map(|(i, s)| async move { s.append_audit(audit_entry("race", i as u64)).await });
        for r in futures::future::join_all(appends).await {
            r.expect("audit appends retry until they chain");
        }
        let records = stores[0].audit(Some("race"), None).await.expect("audit");
        assert_eq!(records.len(), 8);
        assert!(
            verify_audit(&stores[0], "race")
                .await
                .expect("verify")
                .is_empty()
        );

        // Eight joiners: distinct tickets in arrival order.
        let joins = stores.iter().enumerate().map(|(i, s)| async move {
            s.join_queue("env:race", &format!("q{i}"), Duration::seconds(30))
                .await
        });
        let mut tickets: Vec<u64> = futures::future::join_all(joins)
            .await
            .into_iter()
            .map(|r| r.expect("join").ticket)
            .collect();
        tickets.sort_unstable();
        tickets.dedup();
        assert_eq!(tickets.len(), 8);
        assert_eq!(stores[0].queue("env:race").await.expect("queue").len(), 8);
    });
}

/// 32 executions appending 20 events each, one event per call as the
/// engine does, each in its own task as the runner runs them, through one
/// store: their appends share transactions (group commit), each history
/// ends gap-free, and there are fewer write requests than appends (on a
/// single-threaded and on a multi-threaded runtime). Without group commit:
/// one request each.
#[test]
fn dynamodb_group_commit_shares_requests_between_executions() {
    if moto().is_none() {
        return;
    }
    const EXECUTIONS: u64 = 32;
    const EVENTS: u64 = 20;
    const APPENDS: u64 = EXECUTIONS * EVENTS;
    /// Runs the executions; returns the write requests they took.
    async fn run(table: &str, prefix: &'static str, group_commit: bool) -> u64 {
        let mut store = DynamoStore::connect(table).await.expect("open");
        store.set_group_commit(group_commit);
        let store = std::sync::Arc::new(store);
        let started = std::time::Instant::now();
        let runs: Vec<_> = (0..EXECUTIONS)
            .map(|x| {
                let store = store.clone();
                tokio::spawn(async move {
                    let id = format!("{prefix}-{x}");
                    for seq in 1..=EVENTS {
                        let mut e = event(seq);
                        e.details = json!({"execution": x, "seq": seq});
                        store
                            .append_events(&id, vec![e])
                            .await
                            .unwrap_or_else(|e| panic!("{id} event {seq}: {e}"));
                    }
                })
            })
            .collect();
        for r in futures::future::join_all(runs).await {
            r.expect("execution task");
        }
        let requests = store.write_requests();
        eprintln!(
            "{prefix}: {APPENDS} appends (one per transition) in {requests} write requests ({:.3} per transition), {:?}",
            requests as f64 / APPENDS as f64,
            started.elapsed()
        );
        for x in 0..EXECUTIONS {
            let id = format!("{prefix}-{x}");
            let events = store.events(&id).await.expect("events");
            let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=EVENTS).collect::<Vec<_>>(), "{id}");
            assert!(
                events
                    .iter()
                    .all(|e| e.details == json!({"execution": x, "seq": e.seq})),
                "{id}: every event is its own execution's"
            );
        }
        requests
    }
    let table = block(moto_table("group"));
    let grouped = block(run(&table, "grouped", true));
    assert!(
        grouped < APPENDS,
        "{grouped} write requests for {APPENDS} appends"
    );
    let threaded = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(&table, "threaded", true));
    assert!(
        threaded < APPENDS,
        "{threaded} write requests for {APPENDS} appends"
    );
    let single = block(run(&table, "single", false));
    assert_eq!(
        single, APPENDS,
        "without group commit: one request per append"
    );
}

/// A batch refused inside a group commit (its sequence number is taken)
/// fails alone: the other executions' batches in the same transaction are
/// written, and the refused one leaves nothing behind.
#[test]
fn dynamodb_a_refused_batch_fails_alone_inside_a_group_commit() {
    if moto().is_none() {
        return;
    }
    block(async {
        let table = moto_table("grouprefused").await;
        let store = DynamoStore::connect(&table).await.expect("open");
        store
            .append_events("dup", vec![event(1), event(2)])
            .await
            .expect("seed");
        let before = store.write_requests();

        // Queued together (none of them waits before all are queued), so
        // they form one group: eight good batches and one whose first
        // event (2) is already stored.
        let mut stale = event(2);
        stale.details = json!({"stale": true});
        let mut calls = Vec::new();
        for x in 0..8 {
            calls.push((format!("ok-{x}"), vec![event(1), event(2)]));
        }
        calls.insert(4, ("dup".to_string(), vec![stale, event(3)]));
        let results = futures::future::join_all(
            calls
                .iter()
                .map(|(id, events)| store.append_events(id, events.clone())),
        )
        .await;
        for ((id, _), r) in calls.iter().zip(&results) {
            if id == "dup" {
                match r {
                    Err(e @ StoreError::Conflict(_)) => {
                        let m = e.to_string();
                        eprintln!("{m}");
                        assert!(m.contains("dup") && m.contains("where 3 is next"), "{m}");
                    }
                    other => panic!("the stale batch must be refused: {other:?}"),
                }
            } else {
                assert!(r.is_ok(), "{id}: {r:?}");
                assert_eq!(
                    store.events(id).await.expect("events"),
                    vec![event(1), event(2)],
                    "{id}"
                );
            }
        }
        assert_eq!(
            store.events("dup").await.expect("events"),
            vec![event(1), event(2)],
            "nothing of the refused batch was written"
        );
        assert_eq!(
            store.write_requests() - before,
            2,
            "one group transaction, refused, then the same group without the stale batch"
        );

        // Two batches of one execution queued together go in successive
        // requests: the second, with the same sequence number, is refused
        // on its own.
        let mut a = event(3);
        a.details = json!({"writer": "a"});
        let mut b = event(3);
        b.details = json!({"writer": "b"});
        let (ra, rb, rc) = futures::join!(
            store.append_events("dup", vec![a.clone()]),
            store.append_events("dup", vec![b]),
            store.append_events("ok-0", vec![event(3)]),
        );
        assert!(ra.is_ok(), "{ra:?}");
        assert!(matches!(rb, Err(StoreError::Conflict(_))), "{rb:?}");
        assert!(rc.is_ok(), "{rc:?}");
        assert_eq!(
            store.events("dup").await.expect("events"),
            vec![event(1), event(2), a]
        );
    });
}

// ----- DynamoDB errors, with wiremock standing in for DynamoDB -----------------

const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#;

fn dynamodb_error(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(400)
        .insert_header("content-type", "application/x-amz-json-1.0")
        .set_body_string(body)
}

fn dynamodb_ok(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/x-amz-json-1.0")
        .set_body_string(body)
}

fn target(op: &str) -> wiremock::matchers::HeaderExactMatcher {
    header("x-amz-target", format!("DynamoDB_20120810.{op}").as_str())
}

/// A store whose client talks to `server`, retrying `attempts` times fast.
fn mock_store(server: &MockServer, attempts: u32) -> DynamoStore {
    let conf = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .http_client(piflow_aws_config::http_client())
        .endpoint_url(server.uri())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(std::time::Duration::from_millis(1))
                .with_max_backoff(std::time::Duration::from_millis(5)),
        )
        .build();
    DynamoStore::with_client(aws_sdk_dynamodb::Client::from_conf(conf), "piflow-mock")
}

fn answer(token: &str) -> TaskAnswer {
    TaskAnswer {
        token: token.into(),
        outcome: json!({"output": 1}),
        at: Utc::now(),
    }
}

#[test]
fn dynamodb_throttling_is_retried_then_reported_clearly() {
    block(async {
        // Throttled three times, then accepted: the SDK retries with back-off.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(target("PutItem"))
            .respond_with(dynamodb_error(THROTTLED))
            .up_to_n_times(3)
            .expect(3)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(target("PutItem"))
            .respond_with(dynamodb_ok("{}"))
            .expect(1)
            .mount(&server)
            .await;
        let store = mock_store(&server, 6);
        store
            .answer_task(answer("t1"))
            .await
            .expect("retried until accepted");
        assert_eq!(
            store.write_requests(),
            1,
            "SDK retries are one write request"
        );

        // The same for a history append (a transaction).
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(target("TransactWriteItems"))
            .respond_with(dynamodb_error(THROTTLED))
            .up_to_n_times(2)
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(target("TransactWriteItems"))
            .respond_with(dynamodb_ok("{}"))
            .expect(1)
            .mount(&server)
            .await;
        let store = mock_store(&server, 6);
        store
            .append_events("e1", vec![event(1)])
            .await
            .expect("retried until accepted");

        // Always throttled: a clear error once the attempts are spent.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(dynamodb_error(THROTTLED))
            .expect(3)
            .mount(&server)
            .await;
        let store = mock_store(&server, 3);
        match store.answer_task(answer("t2")).await {
            Err(e @ StoreError::Throttled(_)) => {
                let m = e.to_string();
                eprintln!("{m}");
                assert_eq!(e.code(), "store-throttled");
                assert!(
                    m.contains("throttled") && m.contains("after 3 attempts"),
                    "{m}"
                );
                assert!(m.contains("on-demand") && m.contains("capacity"), "{m}");
            }
            other => panic!("expected a throttling error: {other:?}"),
        }
    });
}

#[test]
fn dynamodb_cancelled_transactions_are_retried_by_the_store() {
    const CANCELLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, ThrottlingError]","CancellationReasons":[{"Code":"None"},{"Code":"ThrottlingError","Message":"Throughput exceeds the current capacity for one or more global secondary indexes."}]}"#;
    const REFUSED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None]","CancellationReasons":[{"Code":"ConditionalCheckFailed","Message":"The conditional request failed","Item":{"PK":{"S":"EX#e1"},"SK":{"S":"EVHEAD"},"last":{"N":"7"}}},{"Code":"None"}]}"#;
    block(async {
        // Cancelled twice for throttling (the SDK does not retry that), then
        // accepted.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(target("TransactWriteItems"))
            .respond_with(dynamodb_error(CANCELLED))
            .up_to_n_times(2)
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(target("TransactWriteItems"))
            .respond_with(dynamodb_ok("{}"))
            .expect(1)
            .mount(&server)
            .await;
        let store = mock_store(&server, 3);
        store
            .append_events("e1", vec![event(1)])
            .await
            .expect("retried until accepted");

        // Always cancelled for throttling: a clear error.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(dynamodb_error(CANCELLED))
            .mount(&server)
            .await;
        let store = mock_store(&server, 3);
        match store.append_events("e1", vec![event(1)]).await {
            Err(e @ StoreError::Throttled(_)) => {
                let m = e.to_string();
                eprintln!("{m}");
                assert!(
                    m.contains("after 8 attempts") && m.contains("on-demand"),
                    "{m}"
                );
            }
            other => panic!("expected a throttling error: {other:?}"),
        }

        // A refused condition is a conflict at once, naming the next number.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(dynamodb_error(REFUSED))
            .expect(1)
            .mount(&server)
            .await;
        let store = mock_store(&server, 3);
        match store.append_events("e1", vec![event(3)]).await {
            Err(e @ StoreError::Conflict(_)) => {
                let m = e.to_string();
                eprintln!("{m}");
                assert!(m.contains("event 3 where 8 is next"), "{m}");
            }
            other => panic!("expected a conflict: {other:?}"),
        }
    });
}

#[test]
fn dynamodb_bad_credentials_are_reported_clearly() {
    block(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(dynamodb_error(
                r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
            ))
            .mount(&server)
            .await;
        let store = mock_store(&server, 3);
        for result in [
            store.check_table().await.map(|_| ()),
            store.execution("e1").await.map(|_| ()),
            store.append_events("e1", vec![event(1)]).await,
        ] {
            match result {
                Err(e @ StoreError::Auth(_)) => {
                    let m = e.to_string();
                    eprintln!("{m}");
                    assert_eq!(e.code(), "store-auth");
                    assert!(m.contains("UnrecognizedClientException"), "{m}");
                    assert!(
                        m.contains("AWS_PROFILE") && m.contains("AWS_ACCESS_KEY_ID"),
                        "{m}"
                    );
                }
                other => panic!("expected a credentials error: {other:?}"),
            }
        }
        // Not retried: one request per call.
        assert_eq!(server.received_requests().await.map(|r| r.len()), Some(3));
    });
}

#[test]
fn dynamodb_missing_credentials_are_reported_clearly() {
    block(async {
        let server = MockServer::start().await;
        let conf = aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .http_client(piflow_aws_config::http_client())
            .endpoint_url(server.uri())
            .region(Region::new("us-east-1"))
            .build();
        let store =
            DynamoStore::with_client(aws_sdk_dynamodb::Client::from_conf(conf), "piflow-mock");
        match store.execution("e1").await {
            Err(e @ StoreError::Auth(_)) => {
                let m = e.to_string();
                eprintln!("{m}");
                assert!(
                    m.contains("credentials") && m.contains("AWS_PROFILE"),
                    "{m}"
                );
            }
            other => panic!("expected a credentials error: {other:?}"),
        }
        assert_eq!(server.received_requests().await.map(|r| r.len()), Some(0));
    });
}

#[test]
fn dynamodb_missing_table_from_the_service_is_reported_clearly() {
    block(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(dynamodb_error(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
            ))
            .mount(&server)
            .await;
        let store = mock_store(&server, 3);
        let e = store.lease("env:prod").await.expect_err("no table");
        let m = e.to_string();
        eprintln!("{m}");
        assert!(
            m.contains("table piflow-mock does not exist (region us-east-1)"),
            "{m}"
        );
        assert!(
            m.contains("piflow store init --store dynamodb://piflow-mock"),
            "{m}"
        );
    });
}

// ----- The runner keeps its leases while the store is slow --------------------

use piflow_engine::{AuditFuture, AuditLog, MockConfig, SystemClock, TaskRegistry};
use piflow_runner::{Runner, exec_key};
use piflow_store::{
    AuditRecord as Record, DefinitionVersion, ExecutionQuery, Lease, StoreFuture, Waiter,
};
use std::sync::Arc;

/// A store whose execution-record reads take `delay` (a store that answers
/// slowly); every other call goes straight through. A running execution's
/// lease keeper reads the record for stop requests: that read must not
/// hold back the renewals.
struct SlowRecordReads {
    inner: Arc<dyn Store>,
    delay: std::time::Duration,
}

impl AuditLog for SlowRecordReads {
    fn append_entry(&self, entry: AuditEntry) -> AuditFuture<'_, Record> {
        self.inner.append_entry(entry)
    }
    fn records(
        &self,
        env: &str,
        since: Option<chrono::DateTime<Utc>>,
    ) -> AuditFuture<'_, Vec<Record>> {
        self.inner.records(env, since)
    }
}

impl Store for SlowRecordReads {
    fn publish(&self, new: NewDefinition) -> StoreFuture<'_, DefinitionVersion> {
        self.inner.publish(new)
    }
    fn definition(&self, w: &str, v: u64) -> StoreFuture<'_, Option<DefinitionVersion>> {
        self.inner.definition(w, v)
    }
    fn definitions(&self, w: Option<&str>) -> StoreFuture<'_, Vec<DefinitionVersion>> {
        self.inner.definitions(w)
    }
    fn latest_definition(&self, w: &str) -> StoreFuture<'_, Option<DefinitionVersion>> {
        self.inner.latest_definition(w)
    }
    fn workflows(&self) -> StoreFuture<'_, Vec<String>> {
        self.inner.workflows()
    }
    fn set_alias(&self, w: &str, alias: &str, v: u64) -> StoreFuture<'_, ()> {
        self.inner.set_alias(w, alias, v)
    }
    fn alias(&self, w: &str, alias: &str) -> StoreFuture<'_, Option<u64>> {
        self.inner.alias(w, alias)
    }
    fn start_execution(&self, record: ExecutionRecord) -> StoreFuture<'_, StartOutcome> {
        self.inner.start_execution(record)
    }
    fn update_execution(&self, record: ExecutionRecord) -> StoreFuture<'_, ExecutionRecord> {
        self.inner.update_execution(record)
    }
    fn execution(&self, id: &str) -> StoreFuture<'_, Option<ExecutionRecord>> {
        let read = self.inner.execution(id);
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            read.await
        })
    }
    fn list_executions(&self, q: ExecutionQuery) -> StoreFuture<'_, Vec<ExecutionRecord>> {
        self.inner.list_executions(q)
    }
    fn append_events(&self, id: &str, events: Vec<StoredEvent>) -> StoreFuture<'_, ()> {
        self.inner.append_events(id, events)
    }
    fn events(&self, id: &str) -> StoreFuture<'_, Vec<StoredEvent>> {
        self.inner.events(id)
    }
    fn append_audit(&self, entry: AuditEntry) -> StoreFuture<'_, Record> {
        self.inner.append_audit(entry)
    }
    fn audit_head(&self, env: &str) -> StoreFuture<'_, Option<Record>> {
        self.inner.audit_head(env)
    }
    fn audit(
        &self,
        env: Option<&str>,
        since: Option<chrono::DateTime<Utc>>,
    ) -> StoreFuture<'_, Vec<Record>> {
        self.inner.audit(env, since)
    }
    fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreFuture<'_, LeaseOutcome> {
        self.inner.acquire_lease(key, holder, ttl)
    }
    fn take_over_lease(
        &self,
        key: &str,
        current: &Lease,
        holder: &str,
        ttl: Duration,
    ) -> StoreFuture<'_, LeaseOutcome> {
        self.inner.take_over_lease(key, current, holder, ttl)
    }
    fn release_lease(&self, key: &str, holder: &str) -> StoreFuture<'_, ()> {
        self.inner.release_lease(key, holder)
    }
    fn lease(&self, key: &str) -> StoreFuture<'_, Option<Lease>> {
        self.inner.lease(key)
    }
    fn join_queue(&self, key: &str, holder: &str, ttl: Duration) -> StoreFuture<'_, Waiter> {
        self.inner.join_queue(key, holder, ttl)
    }
    fn queue(&self, key: &str) -> StoreFuture<'_, Vec<Waiter>> {
        self.inner.queue(key)
    }
    fn leave_queue(&self, key: &str, holder: &str) -> StoreFuture<'_, ()> {
        self.inner.leave_queue(key, holder)
    }
    fn answer_task(&self, answer: TaskAnswer) -> StoreFuture<'_, ()> {
        self.inner.answer_task(answer)
    }
    fn task_answer(&self, token: &str) -> StoreFuture<'_, Option<TaskAnswer>> {
        self.inner.task_answer(token)
    }
    fn put_resource(&self, r: Resource) -> StoreFuture<'_, Resource> {
        self.inner.put_resource(r)
    }
    fn resource(&self, kind: &str, name: &str) -> StoreFuture<'_, Option<Resource>> {
        self.inner.resource(kind, name)
    }
    fn resources(&self, kind: &str) -> StoreFuture<'_, Vec<Resource>> {
        self.inner.resources(kind)
    }
}

/// Four seconds of Waits after a Task: five commits, one a second.
const KEPT: &str = r#"{"StartAt": "Deploy", "States": {
  "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "W1"},
  "W1": {"Type": "Wait", "Seconds": 2, "Next": "W2"},
  "W2": {"Type": "Wait", "Seconds": 2, "Next": "W3"},
  "W3": {"Type": "Wait", "Seconds": 2, "Next": "W4"},
  "W4": {"Type": "Wait", "Seconds": 2, "Next": "W5"},
  "W5": {"Type": "Wait", "Seconds": 2, "End": true}}}"#;

/// A 2 s lease, record reads that take 5 s: a resumed execution and a
/// redriven one, each running five lease lifetimes, keep their leases (a
/// renewal every third of the lease, whatever the reads do) and finish.
/// (With a shorter lease, one renewal through a loaded emulator can take
/// longer than the lease has left, as on a real overloaded store: the
/// execution then stops, rightly, and the test says nothing of the reads.)
/// While the keeper waited for its read before renewing again, the leases
/// lapsed between renewals and the executions stopped with
/// `journal-lease-expired`.
async fn slow_reads_do_not_hold_back_lease_renewals(inner: Arc<dyn Store>) {
    let ttl = std::time::Duration::from_secs(2);
    let store: Arc<dyn Store> = Arc::new(SlowRecordReads {
        inner,
        delay: std::time::Duration::from_secs(5),
    });
    let version = store
        .publish(NewDefinition {
            workflow: "kept".into(),
            definition: KEPT.into(),
            author: "test".into(),
            source_commit: None,
        })
        .await
        .expect("publish");
    let runner = |mocks: serde_json::Value| {
        let tasks = TaskRegistry::new()
            .with_mocks(MockConfig::from_value(&json!({ "States": mocks }), None).expect("mocks"));
        let mut r = Runner::new(store.clone(), tasks, Arc::new(SystemClock));
        r.lease_ttl = ttl;
        r
    };

    // Resumed: RUNNING, its process gone and its lease expired.
    let mut orphan = execution("kept:orphan", "orphan");
    orphan.workflow = "kept".into();
    orphan.version = version.version;
    orphan.input = json!({});
    assert!(matches!(
        store.start_execution(orphan).await.expect("record"),
        StartOutcome::Created(_)
    ));
    store
        .acquire_lease(&exec_key("kept:orphan"), "gone", Duration::milliseconds(1))
        .await
        .expect("lease");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = runner(json!({"Deploy": {"Return": {"ok": true}}}));
    let f = r.resume("kept:orphan").await.expect("resume");
    let cause = f.outcome.as_ref().and_then(|o| o.cause.clone());
    assert_eq!(f.record.status, Status::Succeeded, "resume: {cause:?}");

    // Redriven: failed in Deploy, then run again from there.
    let r = runner(json!({"Deploy": [
        {"Throw": {"Error": "Deploy.Failed", "Cause": "not yet"}},
        {"Return": {"ok": true}}
    ]}));
    let f = r
        .start(piflow_runner::StartRequest {
            workflow: "kept".into(),
            definition: KEPT.into(),
            source_commit: None,
            author: "test".into(),
            name: Some("redriven".into()),
            input: json!({}),
            trigger: "test".into(),
            env: None,
            wait: false,
        })
        .await
        .expect("start");
    assert_eq!(f.record.status, Status::Failed);
    let t = std::time::Instant::now();
    let f = r.redrive("kept:redriven").await.expect("redrive");
    let cause = f.outcome.as_ref().and_then(|o| o.cause.clone());
    assert_eq!(f.record.status, Status::Succeeded, "redrive: {cause:?}");
    assert!(t.elapsed() > ttl * 4, "ran {:?}", t.elapsed());
}

fn block_threaded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn embedded_slow_reads_do_not_hold_back_lease_renewals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("piflow.redb")).expect("open");
    block_threaded(slow_reads_do_not_hold_back_lease_renewals(Arc::new(store)));
}

#[test]
fn dynamodb_slow_reads_do_not_hold_back_lease_renewals() {
    if moto().is_none() {
        return;
    }
    block_threaded(async {
        let table = moto_table("kept").await;
        let store = piflow_store::open(Some(&format!("dynamodb://{table}")))
            .await
            .expect("open");
        slow_reads_do_not_hold_back_lease_renewals(store).await;
    });
}
