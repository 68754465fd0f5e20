//! The store's behaviour, written once for every backend. The embedded
//! backend runs it here; the DynamoDB backend joins when it exists.

use chrono::{Duration, Utc};
use piflow::store::embedded::EmbeddedStore;
use piflow::store::{
    AuditEntry, ExecutionRecord, LeaseOutcome, NewDefinition, StartOutcome, Store, StoreError,
    StoredEvent, TaskAnswer, verify_audit,
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
        status: "RUNNING".into(),
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
    done.status = "SUCCEEDED".into();
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
        Some("SUCCEEDED".into())
    );
    assert_eq!(
        store
            .executions(Some("SUCCEEDED"))
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(
        store
            .executions(Some("FAILED"))
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
        |q: Vec<piflow::store::Waiter>| q.into_iter().map(|w| w.holder).collect::<Vec<_>>();
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
