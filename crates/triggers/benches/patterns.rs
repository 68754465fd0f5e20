//! Event pattern matching: one event against 1,000 compiled patterns, through
//! the [`PatternSet`] index and one by one. The target (docs/triggers.md) is
//! under 10 µs per event through the set.
//!
//! `cargo bench --bench patterns`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use piflow_triggers::{Pattern, PatternSet};
use serde_json::{Value, json};

/// The same allocator as the piflow binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SOURCES: usize = 25;
const TYPES: usize = 20;

/// 1,000 patterns shaped like real rules: 25 sources × 20 detail types × 2
/// shapes, with content filters in `detail`; one in five is a prefix on
/// `source` or a top-level `$or` (indexed by prefix, and by each branch).
fn patterns() -> Vec<Pattern> {
    (0..1000)
        .map(|i| {
            let source = format!("com.example.service{}", i % SOURCES);
            let kind = format!("Type {} Changed", (i / SOURCES) % TYPES);
            let p = match i % 10 {
                0 => json!({
                    "source": [{"prefix": format!("com.example.service{}", i % SOURCES)}],
                    "detail": {"level": [{"numeric": [">", i % 7, "<=", 100]}]}
                }),
                5 => json!({"$or": [
                    {"source": [source], "detail": {"state": ["FAILED"]}},
                    {"detail-type": [kind], "detail": {"region": [{"anything-but": {"prefix": "us-"}}]}}
                ]}),
                n if n % 2 == 0 => json!({
                    "source": [source],
                    "detail-type": [kind],
                    "detail": {
                        "state": [{"anything-but": ["PENDING", "RUNNING"]}],
                        "size": [{"numeric": [">=", n, "<", 1000]}]
                    }
                }),
                _ => json!({
                    "source": [source],
                    "detail-type": [kind, "Heartbeat"],
                    "detail": {
                        "region": [{"prefix": "eu-"}],
                        "ip": [{"cidr": "10.0.0.0/8"}],
                        "name": [{"wildcard": "prod-*-web"}]
                    }
                }),
            };
            Pattern::parse(&p).expect("benchmark pattern compiles")
        })
        .collect()
}

fn event() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Type 3 Changed",
        "source": "com.example.service7",
        "account": "111122223333",
        "time": "2026-11-22T05:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:ecs:eu-west-1:111122223333:service/prod/web"],
        "detail": {
            "state": "STOPPED",
            "size": 512,
            "level": 42,
            "region": "eu-west-1",
            "ip": "10.1.2.3",
            "name": "prod-blue-web"
        }
    })
}

fn benches(c: &mut Criterion) {
    let list = patterns();
    let set = PatternSet::new(list.clone());
    let ev = event();
    let mut out = Vec::new();
    set.matching_into(&ev, &mut out);
    let expected: Vec<usize> = (0..list.len()).filter(|&i| list[i].matches(&ev)).collect();
    assert_eq!(
        out, expected,
        "the index must agree with one-by-one matching"
    );
    assert!(!out.is_empty(), "the event should match some patterns");
    assert_eq!(set.unindexed(), 0, "every benchmark pattern is indexed");

    let mut g = c.benchmark_group("patterns");
    g.throughput(Throughput::Elements(1));
    g.bench_function("set_1000_patterns_one_event", |b| {
        b.iter(|| {
            set.matching_into(black_box(&ev), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("linear_1000_patterns_one_event", |b| {
        b.iter(|| black_box(list.iter().filter(|p| p.matches(black_box(&ev))).count()))
    });
    g.bench_function("compile_1000_patterns", |b| {
        b.iter(|| black_box(PatternSet::new(patterns()).len()))
    });
    g.finish();
}

criterion_group!(pattern_benches, benches);
criterion_main!(pattern_benches);
