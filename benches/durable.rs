//! Durable transitions per second: executions run by the runner, each
//! transition committed to the store before the next state runs.
//!
//! `cargo bench --bench durable` measures the embedded store (with group
//! commit, and with an fsync per transition for comparison). With a moto
//! server and the standard AWS environment it also measures DynamoDB:
//!
//! ```text
//! .emu/venv/bin/moto_server -H 127.0.0.1 -p 5055 &
//! MOTO_PORT=5055 AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_REGION=us-east-1 \
//!   AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
//!   cargo bench --bench durable
//! ```
//!
//! A transition is one state run (its entry and exit events). Each
//! execution is a chain of `STATES` Pass states, so the figures measure the
//! journal, not the tasks.

use std::sync::Arc;
use std::time::Instant;

use piflow::asl::{LoadOptions, validate_value};
use piflow::engine::{SystemClock, TaskRegistry};
use piflow::runner::{Runner, StartRequest};
use piflow::store::Store;
use piflow::store::embedded::EmbeddedStore;
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STATES: usize = 100;

fn pass_chain(n: usize) -> Value {
    let mut states = serde_json::Map::new();
    for i in 0..n {
        let mut s = json!({"Type": "Pass"});
        if i + 1 == n {
            s["End"] = json!(true);
        } else {
            s["Next"] = json!(format!("S{}", i + 1));
        }
        states.insert(format!("S{i}"), s);
    }
    json!({"StartAt": "S0", "States": states})
}

struct Figures {
    transitions: usize,
    seconds: f64,
}

/// Run `executions` executions, `concurrency` at a time, and time them.
async fn measure(
    store: Arc<dyn Store>,
    executions: usize,
    concurrency: usize,
    tag: &str,
) -> Figures {
    let definition = pass_chain(STATES).to_string();
    assert!(validate_value(&pass_chain(STATES), LoadOptions::default()).is_valid());
    let runner = Runner::new(store, TaskRegistry::new(), Arc::new(SystemClock));
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut handles = Vec::new();
    for i in 0..executions {
        let runner = runner.clone();
        let definition = definition.clone();
        let sem = sem.clone();
        let name = format!("{tag}-{i}");
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let f = runner
                .start(StartRequest {
                    workflow: "chain".into(),
                    definition,
                    source_commit: None,
                    author: "bench".into(),
                    name: Some(name),
                    input: json!({}),
                    trigger: "bench".into(),
                    env: None,
                    wait: true,
                })
                .await;
            match f {
                Ok(f) if f.record.status == "SUCCEEDED" => {}
                Ok(f) => panic!("execution ended {}: {:?}", f.record.status, f.record.cause),
                Err(e) => panic!("execution failed to run: {e}"),
            }
        }));
    }
    for h in handles {
        if let Err(e) = h.await {
            panic!("{e}");
        }
    }
    Figures {
        transitions: executions * STATES,
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn report(label: &str, f: &Figures, writes: Option<u64>) {
    let per_s = f.transitions as f64 / f.seconds;
    match writes {
        Some(w) => println!(
            "{label:<58} {per_s:>10.0} transitions/s  {:>6.3} writes/transition",
            w as f64 / f.transitions as f64
        ),
        None => println!("{label:<58} {per_s:>10.0} transitions/s"),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        println!("durable transitions: executions of {STATES} Pass states, each state committed before the next runs");
        for (concurrency, executions) in [(1usize, 20usize), (16, 160), (64, 640), (256, 1280)] {
            let path = dir.path().join(format!("group-{concurrency}.redb"));
            let store = Arc::new(EmbeddedStore::open(&path).expect("open"));
            let f = measure(store.clone(), executions, concurrency, "g").await;
            report(
                &format!("embedded, group commit, {concurrency} concurrent"),
                &f,
                Some(store.commits()),
            );
        }
        for (concurrency, executions) in [(1usize, 20usize), (64, 320)] {
            let path = dir.path().join(format!("single-{concurrency}.redb"));
            let mut store = EmbeddedStore::open(&path).expect("open");
            store.set_group_commit(false);
            let store = Arc::new(store);
            let f = measure(store.clone(), executions, concurrency, "s").await;
            report(
                &format!("embedded, fsync per commit, {concurrency} concurrent"),
                &f,
                Some(store.commits()),
            );
        }
        if std::env::var("MOTO_PORT").is_ok() {
            let table = format!("piflow-bench-{}", uuid::Uuid::new_v4().simple());
            if let Err(e) = piflow::store::dynamodb::init(&table).await {
                println!("dynamodb: cannot create the table: {e}");
                return;
            }
            for (concurrency, executions) in [(1usize, 5usize), (16, 64)] {
                let store = match piflow::store::dynamodb::DynamoStore::connect(&table).await {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        println!("dynamodb: {e}");
                        return;
                    }
                };
                let f = measure(store.clone(), executions, concurrency, &format!("d{concurrency}")).await;
                report(
                    &format!("dynamodb (moto), {concurrency} concurrent"),
                    &f,
                    Some(store.write_requests()),
                );
            }
        } else {
            println!("dynamodb: skipped (set MOTO_PORT and the AWS environment; see the top of benches/durable.rs)");
        }
    });
}
