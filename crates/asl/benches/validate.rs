//! Benchmarks for definition validation (`piflow_asl::validate_text` and
//! friends). Figures and how to reproduce them: `docs/benchmarks.md`.
//!
//! Groups:
//!
//! - `validate_text/N`: generated JSON definition of N states, JSON text →
//!   diagnostics (parse + load + graph checks), N = 1,000 and 10,000.
//! - `validate_unlimited/N`: the same pipeline as `validate_text` (line index,
//!   `parse_json`, `validate_node`) without the 8 MiB source-size gate, for
//!   N = 1,000, 10,000 and 100,000. The 100,000-state definition is larger
//!   than `MAX_SOURCE_BYTES`, so `validate_text` itself refuses it at once.
//! - `breakdown/{parse_json,parse_yaml,load_check}/N`: the JSON reader, the
//!   YAML reader, and load + graph checks (`validate_node`) separately.
//! - `validate_yaml/10000`: the 10,000-state definition as block-style YAML.
//! - `validate_typed/10000`: `validate_text` of the 10,000-state definition
//!   with an input schema, so type inference and the data-path checks run
//!   over the whole graph; `validate_typed/workflows`: the five shipped
//!   workflows, each with its `schemas/NAME.input.json` (no step contracts:
//!   the language crate's benchmark knows no step).
//! - `corpus/all`: every `definition` of the conformance corpus in one
//!   iteration (skipped, with a message, when the corpus is absent).
//!
//! Environment hooks (run before any benchmark):
//!
//! - `PIFLOW_BENCH_EMIT_DIR=DIR`: write `gen1k`, `gen10k` and `gen100k`
//!   `.asl.json` and `.asl.yaml` files into DIR.
//! - `PIFLOW_BENCH_RSS_FILE=PATH`: validate that one file (`.json` or
//!   `.yaml`) once, without the size gate, print the process's peak RSS
//!   (`VmHWM`) and exit without benchmarking; run it under `/usr/bin/time -v`
//!   to measure a definition the CLI refuses as too large.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

/// The same allocator as the piflow binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use piflow_asl::source::{MAX_SOURCE_BYTES, Node, SourceText, Span, parse_json};
use piflow_asl::yaml::parse_yaml;
use piflow_asl::{
    Format, LoadOptions, SchemaFile, Schemas, Validation, validate_node, validate_state_value,
    validate_text, validate_text_with,
};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------

const HANDLER: &str = "Handler";

fn state_name(i: usize) -> String {
    format!("S{i:06}")
}

/// A valid definition of `n` states (n ≥ 2): n − 1 states in a forward chain
/// ending in a Succeed state, plus one shared Fail handler that every Task
/// catches to. In every block of ten: Pass states with `.$` paths and
/// `States.Format`, a Task (`lambda:invoke`) with Retry and Catch, a Wait, and a
/// Choice (NumericEquals, And/Not, StringEqualsPath, Default).
fn generate(n: usize) -> Value {
    assert!(n >= 2, "a generated definition needs at least 2 states");
    let chain = n - 1; // the last state of the chain is the Succeed state
    let mut states = Map::with_capacity(n);
    for i in 0..chain {
        let name = state_name(i);
        let next = state_name(i + 1);
        let state = if i + 1 == chain {
            json!({ "Type": "Succeed", "Comment": "end of the chain" })
        } else {
            match i % 10 {
                1 | 6 => task(i, &next),
                4 => json!({
                    "Type": "Wait",
                    "Comment": format!("pause {i}"),
                    "Seconds": 1 + i % 5,
                    "Next": next
                }),
                // A Choice may jump two ahead, but never past the Succeed state.
                9 if i + 2 < chain => choice(i, &next, &state_name(i + 2)),
                _ => pass(i, &next),
            }
        };
        states.insert(name, state);
    }
    states.insert(
        HANDLER.to_string(),
        json!({
            "Type": "Fail",
            "Comment": "shared handler for every caught Task error",
            "Error": "Generated.Failed",
            "Cause": "a Task failed after its retries"
        }),
    );
    json!({
        "Comment": format!("generated benchmark definition with {n} states"),
        "StartAt": state_name(0),
        "TimeoutSeconds": 3600,
        "States": Value::Object(states)
    })
}

fn pass(i: usize, next: &str) -> Value {
    json!({
        "Type": "Pass",
        "Parameters": {
            "id.$": "$.id",
            "step": i,
            "label.$": "States.Format('{}', $.x)",
            "execution.$": "$$.Execution.Id",
            "detail": { "items.$": "$.items[0:2]", "kind": "pass" }
        },
        "ResultPath": format!("$.steps.s{}", i % 100),
        "Next": next
    })
}

fn task(i: usize, next: &str) -> Value {
    json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": format!("arn:aws:lambda:eu-west-1:123456789012:function:step-{}", i % 7),
            "Payload.$": "$"
        },
        "ResultSelector": { "body.$": "$.Payload" },
        "ResultPath": "$.result",
        "TimeoutSeconds": 60,
        "Retry": [
            {
                "ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"],
                "IntervalSeconds": 2,
                "MaxAttempts": 3,
                "BackoffRate": 2.0
            },
            { "ErrorEquals": ["States.Timeout"], "MaxAttempts": 1 }
        ],
        "Catch": [
            { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": HANDLER }
        ],
        "Next": next
    })
}

fn choice(i: usize, next: &str, skip: &str) -> Value {
    json!({
        "Type": "Choice",
        "Choices": [
            { "Variable": "$.count", "NumericEquals": i, "Next": skip },
            {
                "And": [
                    { "Variable": "$.status", "StringEqualsPath": "$.expected" },
                    { "Not": { "Variable": "$.done", "BooleanEquals": true } }
                ],
                "Next": next
            }
        ],
        "Default": next
    })
}

fn generate_json(n: usize) -> String {
    serde_json::to_string(&generate(n)).expect("serialise generated definition")
}

// ---------------------------------------------------------------------------
// JSON value → block-style YAML (every string double-quoted)
// ---------------------------------------------------------------------------

fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => yaml_map(m, 0, false, &mut out),
        Value::Array(a) if !a.is_empty() => yaml_seq(a, 0, false, &mut out),
        other => {
            yaml_scalar(other, &mut out);
            out.push('\n');
        }
    }
    out
}

/// Scalars and empty collections, on one line. A JSON string literal is a
/// valid YAML double-quoted scalar.
fn yaml_scalar(v: &Value, out: &mut String) {
    match v {
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        other => out.push_str(&other.to_string()),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

/// Entries of a mapping at `indent`; when `inline` the first entry continues
/// the current line (after a `- `).
fn yaml_map(m: &Map<String, Value>, indent: usize, inline: bool, out: &mut String) {
    for (k, (key, v)) in m.iter().enumerate() {
        if k > 0 || !inline {
            out.extend(std::iter::repeat_n(' ', indent));
        }
        yaml_scalar(&Value::String(key.clone()), out);
        out.push(':');
        yaml_child(v, indent, out);
    }
}

fn yaml_seq(a: &[Value], indent: usize, inline: bool, out: &mut String) {
    for (k, v) in a.iter().enumerate() {
        if k > 0 || !inline {
            out.extend(std::iter::repeat_n(' ', indent));
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => yaml_map(m, indent + 2, true, out),
            Value::Array(a) if !a.is_empty() => yaml_seq(a, indent + 2, true, out),
            other => {
                yaml_scalar(other, out);
                out.push('\n');
            }
        }
    }
}

fn yaml_child(v: &Value, indent: usize, out: &mut String) {
    if is_block(v) {
        out.push('\n');
        match v {
            Value::Object(m) => yaml_map(m, indent + 2, false, out),
            Value::Array(a) => yaml_seq(a, indent + 2, false, out),
            _ => unreachable!(),
        }
    } else {
        out.push(' ');
        yaml_scalar(v, out);
        out.push('\n');
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `validate_text` without its `MAX_SOURCE_BYTES` gate: the same steps (line
/// index, positioned parse, load + graph checks).
fn validate_unlimited(name: &str, text: &str, format: Format) -> Validation {
    let source = SourceText::new(name, text);
    let node = match format {
        Format::Json => parse_json(text),
        Format::Yaml => parse_yaml(text),
    }
    .expect("definition parses");
    let v = validate_node(&node, LoadOptions::default());
    black_box(&source);
    v
}

fn assert_valid(what: &str, v: &Validation) {
    if !v.is_valid() {
        for d in v.errors().take(20) {
            eprintln!("{what}: {d:?}");
        }
        panic!(
            "{what}: generated definition is invalid ({} errors)",
            v.errors().count()
        );
    }
    let warnings = v.diagnostics.len();
    assert_eq!(
        warnings, 0,
        "{what}: unexpected warnings: {:?}",
        v.diagnostics
    );
}

fn label(n: usize) -> String {
    if n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The environment hooks (see the module documentation). Listed first in
/// the criterion group so that they run before any measurement.
fn env_hooks(_c: &mut Criterion) {
    if let Some(dir) = std::env::var_os("PIFLOW_BENCH_EMIT_DIR") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create PIFLOW_BENCH_EMIT_DIR");
        for n in [1_000, 10_000, 100_000] {
            let value = generate(n);
            let json_text = serde_json::to_string(&value).expect("serialise");
            let yaml_text = to_yaml(&value);
            for (ext, text) in [("json", &json_text), ("yaml", &yaml_text)] {
                let path = dir.join(format!("gen{}.asl.{ext}", label(n)));
                std::fs::write(&path, text).expect("write generated definition");
                eprintln!("wrote {} ({} bytes)", path.display(), text.len());
            }
        }
    }
    if let Some(path) = std::env::var_os("PIFLOW_BENCH_RSS_FILE") {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path).expect("read PIFLOW_BENCH_RSS_FILE");
        let name = path.display().to_string();
        let before = peak_rss_kib();
        let v = validate_unlimited(&name, &text, Format::from_path(&name));
        let after = peak_rss_kib();
        assert_valid(&name, &v);
        eprintln!(
            "{name}: {} bytes, valid; peak RSS {} KiB once read, {} KiB after validating it",
            text.len(),
            before.unwrap_or(0),
            after.unwrap_or(0)
        );
        std::process::exit(0);
    }
}

// ---------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------

fn measurement_time(n: usize) -> Duration {
    match n {
        0..=1_000 => Duration::from_secs(5),
        1_001..=10_000 => Duration::from_secs(10),
        _ => Duration::from_secs(30),
    }
}

fn bench_generated(c: &mut Criterion) {
    let sizes = [1_000usize, 10_000, 100_000];
    let texts: Vec<(usize, String)> = sizes.iter().map(|&n| (n, generate_json(n))).collect();

    let mut group = c.benchmark_group("validate_text");
    group.sample_size(10);
    for (n, text) in &texts {
        let name = format!("gen{}.asl.json", label(*n));
        if text.len() > MAX_SOURCE_BYTES {
            eprintln!(
                "validate_text/{n}: skipped, the definition is {} bytes and validate_text refuses more than {MAX_SOURCE_BYTES} (see validate_unlimited/{n})",
                text.len()
            );
            continue;
        }
        let v = validate_text(&name, text, Format::Json, LoadOptions::default());
        assert_valid(&name, &v);
        eprintln!("validate_text/{n}: {} bytes of JSON", text.len());
        group.measurement_time(measurement_time(*n));
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            b.iter(|| {
                validate_text(
                    black_box(&name),
                    black_box(text),
                    Format::Json,
                    LoadOptions::default(),
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("validate_unlimited");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    for (n, text) in &texts {
        let name = format!("gen{}.asl.json", label(*n));
        group.measurement_time(measurement_time(*n));
        group.throughput(Throughput::Elements(*n as u64));
        // Checked inside the routine, so that a filtered-out run does not pay
        // for validating the 100,000-state definition (about a minute).
        let mut checked = false;
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            if !checked {
                assert_valid(&name, &validate_unlimited(&name, text, Format::Json));
                checked = true;
            }
            b.iter(|| validate_unlimited(black_box(&name), black_box(text), Format::Json))
        });
    }
    group.finish();
}

/// Where the time goes: the positioned JSON reader and YAML reader alone, and
/// load + graph checks alone (on a node tree built from a `serde_json::Value`,
/// so without reading text). The JSON reader is measured for 1k and 10k only:
/// at 100k it takes tens of seconds per iteration.
fn bench_breakdown(c: &mut Criterion) {
    let mut group = c.benchmark_group("breakdown");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    for n in [1_000usize, 10_000, 100_000] {
        let value = generate(n);
        group.measurement_time(measurement_time(n));
        group.throughput(Throughput::Elements(n as u64));
        if n <= 10_000 {
            let json_text = serde_json::to_string(&value).expect("serialise");
            group.bench_with_input(BenchmarkId::new("parse_json", n), &json_text, |b, t| {
                b.iter(|| parse_json(black_box(t)).expect("parses"))
            });
        }
        let yaml_text = to_yaml(&value);
        group.bench_with_input(BenchmarkId::new("parse_yaml", n), &yaml_text, |b, t| {
            b.iter(|| parse_yaml(black_box(t)).expect("parses"))
        });
        let node = Node::from_value(&value, Span::default());
        assert_valid("load_check", &validate_node(&node, LoadOptions::default()));
        group.bench_with_input(BenchmarkId::new("load_check", n), &node, |b, node| {
            b.iter(|| validate_node(black_box(node), LoadOptions::default()))
        });
    }
    group.finish();
}

fn bench_yaml(c: &mut Criterion) {
    let n = 10_000usize;
    let text = to_yaml(&generate(n));
    let name = format!("gen{}.asl.yaml", label(n));
    assert!(
        text.len() <= MAX_SOURCE_BYTES,
        "the YAML definition is {} bytes, over the limit",
        text.len()
    );
    let v = validate_text(&name, &text, Format::Yaml, LoadOptions::default());
    assert_valid(&name, &v);
    eprintln!("validate_yaml/{n}: {} bytes of YAML", text.len());

    let mut group = c.benchmark_group("validate_yaml");
    group.sample_size(10);
    group.measurement_time(measurement_time(n));
    group.throughput(Throughput::Elements(n as u64));
    group.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
        b.iter(|| {
            validate_text(
                black_box(&name),
                black_box(text),
                Format::Yaml,
                LoadOptions::default(),
            )
        })
    });
    group.finish();
}

/// One corpus definition, prepared outside the timed loop.
enum CorpusItem {
    /// A state machine, as JSON text.
    Machine { name: String, text: String },
    /// A TestState definition without "States": one state, as a value.
    State(Value),
}

fn conformance_dir() -> PathBuf {
    match std::env::var_os("PIFLOW_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

fn load_corpus(dir: &Path) -> Option<Vec<CorpusItem>> {
    let cases = dir.join("cases");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&cases)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut items = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read corpus case");
        let case: Value = serde_json::from_str(&text).expect("corpus case is JSON");
        let Some(definition) = case.get("definition") else {
            continue;
        };
        let is_test_state = case.get("kind").and_then(Value::as_str) == Some("test_state");
        if is_test_state && definition.get("States").is_none() {
            items.push(CorpusItem::State(definition.clone()));
        } else {
            let name = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = serde_json::to_string(definition).expect("serialise definition");
            items.push(CorpusItem::Machine { name, text });
        }
    }
    Some(items)
}

/// Validate every corpus item; returns the number found valid.
fn validate_corpus(items: &[CorpusItem]) -> usize {
    let mut valid = 0;
    for item in items {
        let ok = match item {
            CorpusItem::Machine { name, text } => {
                validate_text(name, text, Format::Json, LoadOptions::default()).is_valid()
            }
            CorpusItem::State(value) => {
                let (state, diagnostics) = validate_state_value(value);
                state.is_some() && !diagnostics.iter().any(|d| d.is_error())
            }
        };
        valid += usize::from(ok);
    }
    valid
}

fn bench_corpus(c: &mut Criterion) {
    let dir = conformance_dir();
    let Some(items) = load_corpus(&dir) else {
        eprintln!(
            "corpus: skipped, no conformance corpus at {} (set PIFLOW_CONFORMANCE_DIR)",
            dir.display()
        );
        return;
    };
    let states = items
        .iter()
        .filter(|i| matches!(i, CorpusItem::State(_)))
        .count();
    let bytes: usize = items
        .iter()
        .map(|i| match i {
            CorpusItem::Machine { text, .. } => text.len(),
            CorpusItem::State(_) => 0,
        })
        .sum();
    let valid = validate_corpus(&items);
    eprintln!(
        "corpus: {} definitions ({} machines, {bytes} bytes of JSON; {states} single TestState states); {valid} valid",
        items.len(),
        items.len() - states
    );

    let mut group = c.benchmark_group("corpus");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function("all", |b| b.iter(|| validate_corpus(black_box(&items))));
    group.finish();
}

/// The input schema of the generated definitions: the fields their paths
/// read, all required, nothing else.
fn generated_schema() -> Schemas {
    Schemas {
        input: Some(SchemaFile {
            file: "gen.input.json".into(),
            root: json!({
                "type": "object",
                "required": ["id", "x", "items", "count", "status", "expected", "done"],
                "properties": {
                    "id": {"type": "string"},
                    "x": {"type": "string"},
                    "items": {"type": "array", "items": {"type": "integer"}},
                    "count": {"type": "integer"},
                    "status": {"type": "string"},
                    "expected": {"type": "string"},
                    "done": {"type": "boolean"}
                },
                "additionalProperties": false
            }),
        }),
        ..Schemas::default()
    }
}

fn bench_typed(c: &mut Criterion) {
    let n = 10_000;
    let text = generate_json(n);
    let name = format!("gen{}.asl.json", label(n));
    let schemas = generated_schema();
    let v = validate_text_with(&name, &text, Format::Json, LoadOptions::default(), &schemas);
    assert_valid(&name, &v);
    assert!(v.diagnostics.is_empty(), "{:?}", v.diagnostics);
    let mut group = c.benchmark_group("validate_typed");
    group.sample_size(10);
    group.measurement_time(measurement_time(n));
    group.throughput(Throughput::Elements(n as u64));
    group.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
        b.iter(|| {
            validate_text_with(
                black_box(&name),
                black_box(text),
                Format::Json,
                LoadOptions::default(),
                &schemas,
            )
        })
    });

    // The shipped workflows as `piflow validate workflows/` sees them.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shipped: Vec<(String, String, Schemas)> =
        ["upgrade", "deploy", "rollback", "hold", "restore"]
            .iter()
            .map(|w| {
                let path = root.join(format!("workflows/{w}.asl.yaml"));
                let schema = root.join(format!("schemas/{w}.input.json"));
                let text = std::fs::read_to_string(&path).unwrap();
                (
                    path.display().to_string(),
                    text,
                    Schemas::read(Some(&schema), None),
                )
            })
            .collect();
    for (name, text, schemas) in &shipped {
        let v = validate_text_with(name, text, Format::Yaml, LoadOptions::default(), schemas);
        assert!(v.diagnostics.is_empty(), "{name}: {:?}", v.diagnostics);
    }
    group.throughput(Throughput::Elements(shipped.len() as u64));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("workflows", |b| {
        b.iter(|| {
            for (name, text, schemas) in &shipped {
                black_box(validate_text_with(
                    name,
                    text,
                    Format::Yaml,
                    LoadOptions::default(),
                    schemas,
                ));
            }
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    env_hooks,
    bench_typed,
    bench_generated,
    bench_breakdown,
    bench_yaml,
    bench_corpus
);
criterion_main!(benches);
