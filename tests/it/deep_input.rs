//! Deeply nested input never makes the store unreadable.
//!
//! piflow parses what it accepts with serde_json's limit of 128 nested
//! levels; an input just under that limit sits deeper once it is stored
//! inside a record, and an execution's output can be deeper still. Every
//! depth around the limit is tried through `piflow run --input` on both
//! stores: each input is either run or refused with a clear error, and
//! afterwards every record reads back (`piflow executions`, `piflow
//! history`). The store's own API is tried far beyond the limit.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::{Value, json};

use piflow_store::{ExecutionRecord, Status, Store, StoredEvent};

/// `[[[ … ]]]`: `depth` nested arrays around `"x"`.
fn nested(depth: usize) -> String {
    format!("{}\"x\"{}", "[".repeat(depth), "]".repeat(depth))
}

use common::nested as nested_value;

fn depth_of(v: &Value) -> usize {
    let mut d = 0;
    let mut cur = v;
    loop {
        match cur {
            Value::Array(a) if !a.is_empty() => cur = &a[0],
            Value::Object(m) if !m.is_empty() => cur = m.values().next().unwrap(),
            _ => return d,
        }
        d += 1;
    }
}

struct Site {
    name: &'static str,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("piflow")
}

/// A workflow whose output wraps its input two levels deeper.
const WRAP: &str = r#"
StartAt: Wrap
States:
  Wrap:
    Type: Pass
    Parameters:
      wrapped:
        input.$: $
    End: true
"#;

impl Site {
    fn new(name: &'static str, env: Vec<(String, String)>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        std::fs::write(dir.path().join("workflows/wrap.asl.yaml"), WRAP).unwrap();
        let mut env = env;
        if name == "embedded" {
            env.push((
                "PIFLOW_HOME".into(),
                dir.path().join(".piflow").display().to_string(),
            ));
        }
        Site { name, env, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("PIFLOW_STORE")
            .env_remove("PIFLOW_HOME");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

fn sites() -> Vec<Site> {
    let mut out = vec![Site::new("embedded", vec![])];
    if let Some(moto) = common::moto::moto() {
        let mut env = moto.env_vars();
        env.push((
            "PIFLOW_STORE".into(),
            format!("dynamodb://{}", common::moto::unique("piflow-deep")),
        ));
        let site = Site::new("dynamodb", env);
        let init = site.run(&["store", "init"]);
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        out.push(site);
    }
    out
}

#[test]
fn every_depth_around_the_limit_runs_or_is_refused_and_the_store_stays_readable() {
    for site in sites() {
        let mut ran = Vec::new();
        for depth in 118..=132 {
            let file = site.dir.path().join(format!("in{depth}.json"));
            std::fs::write(&file, format!("{{\"detail\": {}}}", nested(depth))).unwrap();
            let name = format!("d{depth}");
            let out = site.run(&[
                "run",
                "wrap",
                "--input",
                &format!("@{}", file.display()),
                "--name",
                &name,
                "--format",
                "json",
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {
                    // Deeper than serde_json's default limit: read it as the
                    // store does.
                    let v: Value = piflow_store::read_json(&out.stdout).unwrap();
                    assert_eq!(
                        v["status"], "SUCCEEDED",
                        "{}: depth {depth}: {v}",
                        site.name
                    );
                    // The output is the input, two levels deeper.
                    assert_eq!(
                        depth_of(&v["output"]),
                        depth + 3,
                        "{}: depth {depth}",
                        site.name
                    );
                    ran.push(name);
                }
                Some(2) => assert!(
                    err.contains("--input") && err.contains("recursion limit"),
                    "{}: depth {depth}: a refusal names the input and why: {err}",
                    site.name
                ),
                other => panic!("{}: depth {depth}: exit {other:?}: {err}", site.name),
            }
        }
        assert!(
            ran.len() >= 8,
            "{}: inputs under the limit run: {ran:?}",
            site.name
        );
        // Every record reads back, the deepest included.
        let list = site.run(&["executions", "--format", "json"]);
        assert!(
            list.status.success(),
            "{}: piflow executions: {}",
            site.name,
            String::from_utf8_lossy(&list.stderr)
        );
        let listed: Vec<Value> = piflow_store::read_json(&list.stdout).unwrap();
        for name in &ran {
            let id = format!("wrap:{name}");
            assert!(
                listed.iter().any(|e| e["execution"] == id.as_str()),
                "{}: {id} is listed",
                site.name
            );
            let history = site.run(&["history", &id, "--format", "json"]);
            assert!(
                history.status.success(),
                "{}: history {id}: {}",
                site.name,
                String::from_utf8_lossy(&history.stderr)
            );
        }
    }
}

fn record(id: &str, input: Value) -> ExecutionRecord {
    ExecutionRecord {
        id: format!("deep:{id}"),
        workflow: "deep".into(),
        name: id.into(),
        version: 1,
        status: Status::Running,
        input,
        output: None,
        error: None,
        cause: None,
        trigger: "test".into(),
        started: chrono::Utc::now(),
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

/// Far beyond any parse limit: what piflow writes, it reads back.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_reads_back_records_of_any_depth() {
    let (_dir, store): (_, Arc<dyn Store>) = common::steps::temp_store();
    for depth in [127, 128, 129, 200, 1_000] {
        let value = nested_value(depth);
        let id = format!("d{depth}");
        store
            .start_execution(record(&id, value.clone()))
            .await
            .unwrap();
        let event = StoredEvent {
            seq: 1,
            event_type: "PassStateExited".into(),
            state: Some("A".into()),
            timestamp: chrono::Utc::now(),
            details: json!({"output": value.clone()}),
            key: None,
            checkpoint: None,
        };
        store
            .append_events(&format!("deep:{id}"), vec![event])
            .await
            .unwrap();
        let back = store
            .execution(&format!("deep:{id}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(depth_of(&back.input), depth);
        let events = store.events(&format!("deep:{id}")).await.unwrap();
        assert_eq!(depth_of(&events[0].details["output"]), depth);
    }
    let all = store.executions(None).await.unwrap();
    assert_eq!(all.len(), 5, "every record is listed");
}
