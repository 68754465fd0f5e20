//! Durable transitions per second: executions run by the runner, each
//! transition committed to the store before the next state runs.
//!
//! `cargo bench --bench durable` measures the embedded store (with group
//! commit, and with an fsync per transition for comparison). With a moto
//! server and the standard AWS environment it also measures DynamoDB:
//!
//! ```text
//! integration/emulator/setup.sh
//! .emu/venv/bin/python integration/emulator/moto_server.py -H 127.0.0.1 -p 5055 &
//! MOTO_PORT=5055 AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_REGION=us-east-1 \
//!   AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
//!   cargo bench --bench durable
//! ```
//!
//! A transition is one state run (its entry and exit events). Each
//! execution is a chain of `STATES` Pass states, so the figures measure the
//! journal, not the tasks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::sync::Arc;
use std::time::Instant;

use piflow_asl::{LoadOptions, validate_value};
use piflow_engine::{Status, SystemClock, TaskRegistry};
use piflow_runner::{Runner, StartRequest};
use piflow_store::Store;
use piflow_store::embedded::EmbeddedStore;
use serde_json::json;

#[path = "../../../benches/common/mod.rs"]
mod common;
use common::pass_chain;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STATES: usize = 100;

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
                Ok(f) if f.record.status == Status::Succeeded => {}
                Ok(f) => panic!(
                    "execution ended {}: {:?}",
                    f.record.status,
                    f.outcome.map(|o| (o.error, o.cause))
                ),
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
    // Writes: commits (embedded) or write requests (DynamoDB), per transition.
    let per_s = f.transitions as f64 / f.seconds;
    match writes {
        Some(w) => println!(
            "{label:<58} {per_s:>10.0} transitions/s  {:>6.3} writes/transition",
            w as f64 / f.transitions as f64
        ),
        None => println!("{label:<58} {per_s:>10.0} transitions/s"),
    }
}

/// The median of three measurements (the machine is shared and noisy).
async fn median3<F, Fut>(mut run: F) -> (Figures, u64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = (Figures, u64)>,
{
    let mut all = Vec::new();
    for i in 0..3 {
        all.push(run(i).await);
    }
    all.sort_by(|a, b| {
        let ra = a.0.transitions as f64 / a.0.seconds;
        let rb = b.0.transitions as f64 / b.0.seconds;
        ra.total_cmp(&rb)
    });
    all.swap_remove(1)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir_in("target").or_else(|_| tempfile::tempdir()).expect("tempdir");
        println!(
            "durable transitions: executions of {STATES} Pass states, each state committed before the next runs (median of 3)"
        );
        for (concurrency, executions, group) in [
            (1usize, 20usize, true),
            (1, 20, false),
            (16, 160, true),
            (64, 640, true),
            (64, 320, false),
            (256, 1280, true),
        ] {
            let (f, writes) = median3(|i| {
                let path = dir
                    .path()
                    .join(format!("{concurrency}-{group}-{i}.redb"));
                async move {
                    let mut store = EmbeddedStore::open(&path).expect("open");
                    store.set_group_commit(group);
                    let store = Arc::new(store);
                    let f = measure(store.clone(), executions, concurrency, "e").await;
                    (f, store.commits())
                }
            })
            .await;
            report(
                &format!(
                    "embedded, {}, {concurrency} concurrent",
                    if group { "group commit" } else { "a commit per append" }
                ),
                &f,
                Some(writes),
            );
        }
        if std::env::var("MOTO_PORT").is_ok() {
            for (concurrency, executions) in [(1usize, 5usize), (16, 64), (64, 128)] {
                let table = format!("piflow-bench-{}", uuid::Uuid::new_v4().simple());
                if let Err(e) = piflow_store::dynamodb::init(&table).await {
                    println!("dynamodb: cannot create the table: {e}");
                    return;
                }
                let store = match piflow_store::dynamodb::DynamoStore::connect(&table).await {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        println!("dynamodb: {e}");
                        return;
                    }
                };
                let f = measure(store.clone(), executions, concurrency, "d").await;
                report(
                    &format!("dynamodb (moto), {concurrency} concurrent"),
                    &f,
                    Some(store.write_requests()),
                );
            }
        } else {
            println!(
                "dynamodb: skipped (set MOTO_PORT and the AWS environment; see the top of crates/runner/benches/durable.rs)"
            );
        }
    });
}
