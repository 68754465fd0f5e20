//! Interpreter speed: state transitions per second on one thread, and a Map
//! over 10,000 items.
//!
//! `cargo bench --bench engine`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use piflow_asl::{LoadOptions, StateMachine, validate_value};
use piflow_engine::{Engine, ExecutionRequest, SystemClock, TaskRegistry};
use serde_json::{Value, json};

/// The same allocator as the piflow binary.
#[path = "../../../benches/common/mod.rs"]
mod common;
use common::pass_chain;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn machine(def: &Value) -> Arc<StateMachine> {
    let v = validate_value(def, LoadOptions::default());
    assert!(v.is_valid(), "{:?}", v.diagnostics);
    Arc::new(v.machine.expect("machine"))
}

/// A loop: Pass increments a counter with States.MathAdd, Choice loops until
/// it reaches `n` (2 transitions per round).
fn choice_loop() -> Value {
    json!({
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Parameters": {"i": 0, "n.$": "$.n"}, "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [
                {"Variable": "$.i", "NumericLessThanPath": "$.n", "Next": "Inc"}
            ], "Default": "Done"},
            "Inc": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)", "n.$": "$.n"}, "Next": "Check"},
            "Done": {"Type": "Succeed"}
        }
    })
}

/// A distributed Map (an inline Map of 10,000 items would pass AWS's
/// 25,000-event history limit, in AWS and in piflow alike).
fn map_10k() -> Value {
    json!({
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "MaxConcurrency": 0,
                "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}, "StartAt": "Double", "States": {
                    "Double": {"Type": "Pass", "Parameters": {"v.$": "States.MathAdd($, $)"}, "End": true}
                }},
                "End": true
            }
        }
    })
}

fn run(
    engine: &Engine,
    rt: &tokio::runtime::Runtime,
    m: &Arc<StateMachine>,
    input: Value,
) -> usize {
    let out = rt.block_on(engine.run(ExecutionRequest {
        machine: m.clone(),
        state_machine_name: "bench".into(),
        execution_name: "e".into(),
        input,
        role_arn: None,
        durable: None,
    }));
    assert_eq!(
        out.status,
        piflow_engine::Status::Succeeded,
        "{:?} {:?}",
        out.error,
        out.cause
    );
    out.history.len()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = Engine::new(TaskRegistry::new(), Arc::new(SystemClock));

    let chain = machine(&pass_chain(1000));
    let mut g = c.benchmark_group("transitions");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("pass_chain_1000", |b| {
        b.iter(|| {
            black_box(run(
                &engine,
                &rt,
                &chain,
                json!({"order": 42, "customer": "acme"}),
            ))
        })
    });
    let lp = machine(&choice_loop());
    // 1 Init + 500 × (Check + Inc) + final Check + Done = 1003 transitions.
    g.throughput(Throughput::Elements(1003));
    g.bench_function("choice_loop_500", |b| {
        b.iter(|| black_box(run(&engine, &rt, &lp, json!({"n": 500}))))
    });
    g.finish();

    let map = machine(&map_10k());
    let items: Vec<Value> = (0..10_000).map(Value::from).collect();
    let mut g = c.benchmark_group("map");
    g.sample_size(10);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("map_10000_items", |b| {
        b.iter(|| black_box(run(&engine, &rt, &map, Value::Array(items.clone()))))
    });
    g.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
