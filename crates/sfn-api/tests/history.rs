//! GetExecutionHistory on the histories of real executions: machines run
//! durably by the runner on an embedded store (as `piflow serve` runs
//! them), their stored events rendered and checked against the shapes of
//! botocore's model (tests/fixtures/history-shapes.json, made by
//! integration/sfn-api/history_shapes.py).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{Duration, Utc};
use serde_json::{Map, Value, json};

use piflow_engine::{Failure, Status, SystemClock, TaskHandler, TaskRegistry, TaskRequest};
use piflow_runner::{Runner, StartRequest};
use piflow_sfn_api::history::{Started, history, history_at};
use piflow_store::embedded::EmbeddedStore;
use piflow_store::{Store, StoredEvent};

const ROLE: &str = "arn:aws:iam::000000000000:role/piflow";

fn started() -> Started<'static> {
    Started {
        role_arn: ROLE,
        version_arn: Some("arn:aws:states:us-east-1:000000000000:stateMachine:m:1"),
        alias_arn: None,
        region: "us-east-1",
    }
}

/// The test's task: `{"fail": E}` fails with E; `{"flaky": n}` fails
/// (`Flaky`) on its first n attempts; `{"down": true}` fails (`Down`) while
/// the switch is on; anything else echoes its input.
struct Tasks {
    down: Arc<AtomicBool>,
}

impl TaskHandler for Tasks {
    fn invoke(
        &self,
        r: TaskRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send + 'static>> {
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move {
            if let Some(e) = r.input.get("fail").and_then(Value::as_str) {
                return Err(Failure::new(e, format!("{e} in {}", r.state_name)));
            }
            if let Some(n) = r.input.get("flaky").and_then(Value::as_u64)
                && u64::from(r.attempt) < n
            {
                return Err(Failure::new("Flaky", "not yet"));
            }
            if r.input.get("down").is_some() && down {
                return Err(Failure::new("Down", "the service is down"));
            }
            Ok(json!({"echo": r.input}))
        })
    }
}

struct Site {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    runner: Runner,
    down: Arc<AtomicBool>,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("piflow.redb")).unwrap());
    let down = Arc::new(AtomicBool::new(false));
    let mut tasks = TaskRegistry::new();
    let handler = Arc::new(Tasks { down: down.clone() });
    tasks.register("arn:aws:states:::lambda:invoke", handler.clone());
    tasks.register("arn:aws:lambda:", handler);
    let runner = Runner::new(store.clone(), tasks, Arc::new(SystemClock));
    Site {
        _dir: dir,
        store,
        runner,
        down,
    }
}

impl Site {
    async fn run(&self, name: &str, definition: Value, input: Value) -> (String, Status) {
        let f = self
            .runner
            .start(StartRequest {
                workflow: name.into(),
                definition: definition.to_string(),
                source_commit: None,
                author: "test".into(),
                name: Some("x".into()),
                input,
                trigger: "test".into(),
                env: None,
                wait: false,
            })
            .await
            .unwrap();
        (f.record.id, f.record.status)
    }

    async fn events(&self, id: &str) -> Vec<StoredEvent> {
        self.store.events(id).await.unwrap()
    }
}

fn body(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn all(events: &[StoredEvent]) -> Vec<Value> {
    let out = history(events, &started(), &body(json!({"maxResults": 1000}))).unwrap();
    assert!(out.get("nextToken").is_none());
    out["events"].as_array().unwrap().clone()
}

/// Pass, Choice, Wait, a Task retried to success, a Task failing into its
/// Catch, Parallel with a Task in a branch, Map over three items (two at a
/// time), a direct Lambda ARN, Succeed.
fn tour() -> Value {
    let lambda = "arn:aws:states:::lambda:invoke";
    json!({
        "StartAt": "Start",
        "States": {
            "Start": {"Type": "Pass", "Result": {"go": true, "items": [1, 2, 3]}, "Assign": {"who": "me", "n": {"deep": [1]}}, "Next": "Pick"},
            "Pick": {"Type": "Choice", "Choices": [{"Variable": "$.go", "BooleanEquals": true, "Next": "Pause"}], "Default": "Start"},
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Flaky"},
            "Flaky": {"Type": "Task", "Resource": lambda, "Parameters": {"flaky": 1},
                "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}],
                "ResultPath": "$.flaky", "Next": "Broken"},
            "Broken": {"Type": "Task", "Resource": lambda, "Parameters": {"fail": "Boom"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.caught", "Next": "Fan"}], "End": true},
            "Fan": {"Type": "Parallel", "ResultPath": "$.fan", "Next": "Each", "Branches": [
                {"StartAt": "B0", "States": {"B0": {"Type": "Task", "Resource": lambda, "Parameters": {"b": 0}, "End": true}}},
                {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "Next": "B1b"}, "B1b": {"Type": "Pass", "End": true}}}
            ]},
            "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.each", "Next": "Direct",
                "ItemProcessor": {"StartAt": "Item", "States": {
                    "Item": {"Type": "Task", "Resource": lambda, "Parameters": {"item.$": "$"}, "Next": "Done"},
                    "Done": {"Type": "Pass", "End": true}}}},
            "Direct": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:f",
                "ResultPath": "$.direct", "Next": "End"},
            "End": {"Type": "Succeed"}
        }
    })
}

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/history-shapes.json")).unwrap()
}

/// Does `v` have the model's `shape` (a structure), member by member?
fn check_structure(fx: &Value, shape: &str, v: &Value, full: bool, at: &str) {
    let s = &fx["shapes"][shape];
    assert!(s.is_object(), "{at}: no shape {shape} in the fixture");
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("{at}: {shape} is not an object: {v}"));
    if full {
        for r in s["required"].as_array().unwrap() {
            let r = r.as_str().unwrap();
            assert!(o.contains_key(r), "{at}: {shape} lacks required {r}: {v}");
        }
    }
    for (k, val) in o {
        let m = &s["members"][k];
        assert!(m.is_object(), "{at}: {shape} has no member {k}: {v}");
        let at = format!("{at}.{k}");
        match m["type"].as_str().unwrap() {
            "string" => {
                let text = val
                    .as_str()
                    .unwrap_or_else(|| panic!("{at} must be a string: {val}"));
                if let Some(max) = m["max"].as_u64() {
                    assert!(text.chars().count() as u64 <= max, "{at} longer than {max}");
                }
            }
            "integer" | "long" => assert!(val.is_u64() || val.is_i64(), "{at}: {val}"),
            "boolean" => assert!(val.is_boolean(), "{at}: {val}"),
            "structure" => check_structure(fx, m["shape"].as_str().unwrap(), val, full, &at),
            "map" => assert!(
                val.as_object().unwrap().values().all(Value::is_string),
                "{at}: {val}"
            ),
            other => panic!("{at}: type {other} not checked"),
        }
    }
}

/// Every event in AWS's shape: HistoryEvent's members only, its required
/// ones, exactly the details member its type calls for, shaped as the
/// model says; data members are JSON text.
fn check_shapes(events: &[Value], full: bool) {
    let fx = fixture();
    let he = &fx["historyEvent"];
    let types: HashSet<&str> = fx["eventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for e in events {
        let o = e.as_object().unwrap();
        for r in he["required"].as_array().unwrap() {
            assert!(o.contains_key(r.as_str().unwrap()), "lacks {r}: {e}");
        }
        let t = e["type"].as_str().unwrap();
        assert!(types.contains(t), "{t} is not an AWS event type");
        assert!(e["timestamp"].is_f64(), "timestamp is epoch seconds: {e}");
        assert!(e["id"].is_u64() && e["previousEventId"].is_u64(), "{e}");
        let want = fx["detailsMemberOfType"][t].as_str();
        let members: Vec<&String> = o.keys().filter(|k| k.ends_with("EventDetails")).collect();
        match want {
            Some(m) => assert_eq!(members, [m], "{t}: {e}"),
            None => assert!(members.is_empty(), "{t} has no details in AWS: {e}"),
        }
        for (k, v) in o {
            assert!(he["members"][k].is_object(), "HistoryEvent has no {k}");
            if k.ends_with("EventDetails") {
                let shape = he["members"][k]["shape"].as_str().unwrap();
                check_structure(&fx, shape, v, full, &format!("{t}.{k}"));
                // Data is JSON text, unless it was cut.
                for data in ["input", "output", "parameters"] {
                    let cut = v[format!("{data}Details")]["truncated"] == true;
                    if let Some(text) = v.get(data)
                        && !cut
                    {
                        let text = text.as_str().unwrap();
                        assert!(
                            serde_json::from_str::<Value>(text).is_ok(),
                            "{t}.{k}.{data} is not JSON text: {}",
                            &text[..text.len().min(200)]
                        );
                    }
                }
            }
        }
    }
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

fn id(e: &Value) -> u64 {
    e["id"].as_u64().unwrap()
}

fn prev(e: &Value) -> u64 {
    e["previousEventId"].as_u64().unwrap()
}

fn named<'a>(events: &'a [Value], t: &str, name: &str) -> Vec<&'a Value> {
    of_type(events, t)
        .into_iter()
        .filter(|e| e["stateEnteredEventDetails"]["name"] == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tour_of_the_states_renders_in_aws_shapes() {
    let s = site();
    let (id_, status) = s.run("tour", tour(), json!({"n": 1})).await;
    assert_eq!(status, Status::Succeeded);
    let stored = s.events(&id_).await;
    let events = all(&stored);
    check_shapes(&events, true);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for t in [
        "ExecutionStarted",
        "PassStateEntered",
        "ChoiceStateExited",
        "WaitStateExited",
        "TaskScheduled",
        "TaskStarted",
        "TaskFailed",
        "TaskSucceeded",
        "ParallelStateStarted",
        "MapStateStarted",
        "MapIterationStarted",
        "MapIterationSucceeded",
        "MapStateSucceeded",
        "LambdaFunctionScheduled",
        "LambdaFunctionSucceeded",
        "SucceedStateEntered",
        "ExecutionSucceeded",
    ] {
        assert!(types.contains(&t), "no {t} in {types:?}");
    }

    // The first event, and AWS's ids.
    assert_eq!(events[0]["type"], "ExecutionStarted");
    assert_eq!((id(&events[0]), prev(&events[0])), (1, 0));
    let d = &events[0]["executionStartedEventDetails"];
    assert_eq!(d["input"], r#"{"n":1}"#);
    assert_eq!(d["inputDetails"], json!({"truncated": false}));
    assert_eq!(d["roleArn"], ROLE);
    assert!(d.get("stateMachineAliasArn").is_none());
    let ids: Vec<u64> = events.iter().map(id).collect();
    assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>());
    for e in &events[1..] {
        assert!(prev(e) < id(e) && prev(e) >= 1, "{e}");
    }

    // Variables a state assigned: name → JSON text; none, no member.
    let exits = of_type(&events, "PassStateExited");
    let d = &exits[0]["stateExitedEventDetails"];
    assert_eq!(d["name"], "Start");
    assert_eq!(
        d["assignedVariables"],
        json!({"who": "\"me\"", "n": "{\"deep\":[1]}"})
    );
    assert_eq!(d["assignedVariablesDetails"], json!({"truncated": false}));
    assert!(
        exits[1]["stateExitedEventDetails"]
            .get("assignedVariables")
            .is_none()
    );

    // A Task: resourceType/resource, region, parameters as JSON text; the
    // retry's TaskScheduled follows the failure, each step the one before.
    let sched = of_type(&events, "TaskScheduled");
    let d = &sched[0]["taskScheduledEventDetails"];
    assert_eq!(
        (&d["resourceType"], &d["resource"], &d["region"]),
        (&json!("lambda"), &json!("invoke"), &json!("us-east-1"))
    );
    assert_eq!(d["parameters"], r#"{"flaky":1}"#);
    let failed = of_type(&events, "TaskFailed");
    assert_eq!(failed[0]["taskFailedEventDetails"]["error"], "Flaky");
    assert_eq!(
        prev(sched[1]),
        id(failed[0]),
        "the retry follows the failure"
    );
    let entered = named(&events, "TaskStateEntered", "Flaky")[0];
    assert_eq!(prev(sched[0]), id(entered));
    let boom = failed
        .iter()
        .find(|e| e["taskFailedEventDetails"]["error"] == "Boom")
        .unwrap();
    assert_eq!(boom["taskFailedEventDetails"]["cause"], "Boom in Broken");
    let succeeded = of_type(&events, "TaskSucceeded");
    assert_eq!(
        succeeded[0]["taskSucceededEventDetails"]["output"],
        r#"{"echo":{"flaky":1}}"#
    );
    assert_eq!(
        succeeded[0]["taskSucceededEventDetails"]["resource"],
        "invoke"
    );

    // Parallel: each branch's first event follows ParallelStateStarted; the
    // branch's events chain within it; the Exited follows a branch's end.
    let par = of_type(&events, "ParallelStateStarted")[0];
    let b0 = named(&events, "TaskStateEntered", "B0")[0];
    let b1 = named(&events, "PassStateEntered", "B1")[0];
    let b1b = named(&events, "PassStateEntered", "B1b")[0];
    assert_eq!(prev(b0), id(par));
    assert_eq!(prev(b1), id(par));
    let b1_exit = of_type(&events, "PassStateExited")
        .into_iter()
        .find(|e| e["stateExitedEventDetails"]["name"] == "B1")
        .unwrap();
    assert_eq!(prev(b1_exit), id(b1));
    assert_eq!(prev(b1b), id(b1_exit));
    let par_exit = of_type(&events, "ParallelStateExited")[0];
    assert!(prev(par_exit) > id(par));
    let out: Value = serde_json::from_str(
        par_exit["stateExitedEventDetails"]["output"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(out["fan"][0], json!({"echo": {"b": 0}}));
    assert_eq!(out["fan"][1]["go"], true, "B1 passes its input through");

    // Map: length, iterations named after the Map state with their index,
    // each iteration chained to MapStateStarted and its states to it.
    let map = of_type(&events, "MapStateStarted")[0];
    assert_eq!(map["mapStateStartedEventDetails"], json!({"length": 3}));
    let iters = of_type(&events, "MapIterationStarted");
    assert_eq!(iters.len(), 3);
    let mut seen: Vec<u64> = iters
        .iter()
        .map(|e| {
            assert_eq!(e["mapIterationStartedEventDetails"]["name"], "Each");
            assert_eq!(prev(e), id(map));
            e["mapIterationStartedEventDetails"]["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [0, 1, 2]);
    let items = named(&events, "TaskStateEntered", "Item");
    assert_eq!(items.len(), 3);
    let iter_ids: HashSet<u64> = iters.iter().map(|e| id(e)).collect();
    for e in items {
        assert!(iter_ids.contains(&prev(e)), "{e}");
    }
    let map_done = of_type(&events, "MapStateSucceeded")[0];
    let last_iter = of_type(&events, "MapIterationSucceeded")
        .into_iter()
        .map(id)
        .max()
        .unwrap();
    assert_eq!(prev(map_done), last_iter);

    // A direct Lambda ARN: LambdaFunction… events, input as JSON text.
    let l = of_type(&events, "LambdaFunctionScheduled")[0];
    assert_eq!(
        l["lambdaFunctionScheduledEventDetails"]["resource"],
        "arn:aws:lambda:us-east-1:000000000000:function:f"
    );
    assert!(
        of_type(&events, "LambdaFunctionStarted")[0]
            .get("lambdaFunctionStartedEventDetails")
            .is_none()
    );

    // The last event closes the execution, after the Succeed state.
    let last = events.last().unwrap();
    assert_eq!(last["type"], "ExecutionSucceeded");
    assert_eq!(prev(last), id(&events[events.len() - 2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_and_redrive_render_in_aws_shapes() {
    let s = site();
    let def = json!({
        "StartAt": "Call",
        "States": {
            "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"down": true}, "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.echo.down", "BooleanEquals": false, "Next": "Stop"}], "Default": "Ok"},
            "Ok": {"Type": "Succeed"},
            "Stop": {"Type": "Fail", "Error": "Nope", "Cause": "false"}
        }
    });
    s.down.store(true, Ordering::SeqCst);
    let (id_, status) = s.run("redrive", def, json!({})).await;
    assert_eq!(status, Status::Failed);
    let failed = all(&s.events(&id_).await);
    check_shapes(&failed, true);
    let last = failed.last().unwrap();
    assert_eq!(last["type"], "ExecutionFailed");
    assert_eq!(
        last["executionFailedEventDetails"],
        json!({"error": "Down", "cause": "the service is down"})
    );

    s.down.store(false, Ordering::SeqCst);
    let f = s.runner.redrive(&id_).await.unwrap();
    assert_eq!(f.record.status, Status::Succeeded);
    let events = all(&s.events(&id_).await);
    check_shapes(&events, true);
    let redriven = of_type(&events, "ExecutionRedriven")[0];
    assert_eq!(
        redriven["executionRedrivenEventDetails"],
        json!({"redriveCount": 1})
    );
    assert_eq!(prev(redriven), id(last), "the redrive follows the failure");
    let after = &events[events.iter().position(|e| e == redriven).unwrap() + 1];
    assert_eq!(prev(after), id(redriven), "{after}");
    assert_eq!(events.last().unwrap()["type"], "ExecutionSucceeded");

    // A timeout: ExecutionTimedOut, its details empty (piflow records none).
    let def = json!({"TimeoutSeconds": 1, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": true}}});
    let (id_, status) = s.run("slow", def, json!({})).await;
    assert_eq!(status, Status::TimedOut);
    let events = all(&s.events(&id_).await);
    check_shapes(&events, true);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "ExecutionTimedOut");
    assert_eq!(last["executionTimedOutEventDetails"], json!({}));
    assert_eq!(prev(last), id(&events[events.len() - 2]));

    // A Fail state: FailStateEntered, then ExecutionFailed with its error.
    let def = json!({"StartAt": "Stop", "States": {"Stop": {"Type": "Fail", "Error": "Nope", "Cause": "no way"}}});
    let (id_, status) = s.run("fail", def, json!({})).await;
    assert_eq!(status, Status::Failed);
    let events = all(&s.events(&id_).await);
    check_shapes(&events, true);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["ExecutionStarted", "FailStateEntered", "ExecutionFailed"]
    );
    assert_eq!(
        events[2]["executionFailedEventDetails"],
        json!({"error": "Nope", "cause": "no way"})
    );
}

/// Every page size, both ways: every event exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_forward_and_reverse_return_every_event_once() {
    let s = site();
    let (id_, _) = s.run("tour", tour(), json!({})).await;
    let stored = s.events(&id_).await;
    let whole: Vec<u64> = all(&stored).iter().map(id).collect();
    assert!(whole.len() > 40);
    for reverse in [false, true] {
        for size in [1usize, 2, 3, 7, whole.len() - 1, whole.len(), 1000] {
            let mut got = Vec::new();
            let mut token: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut b = json!({"maxResults": size, "reverseOrder": reverse});
                if let Some(t) = &token {
                    b["nextToken"] = json!(t);
                }
                let out = history(&stored, &started(), &body(b)).unwrap();
                let page = out["events"].as_array().unwrap();
                assert!(page.len() <= size);
                got.extend(page.iter().map(id));
                pages += 1;
                assert!(pages <= whole.len() + 1, "paging does not end: {got:?}");
                match out.get("nextToken") {
                    Some(t) => {
                        let t = t.as_str().unwrap();
                        assert!((1..=1024).contains(&t.len()));
                        token = Some(t.to_string());
                    }
                    None => break,
                }
            }
            let mut want = whole.clone();
            if reverse {
                want.reverse();
            }
            assert_eq!(got, want, "size {size}, reverse {reverse}");
            assert_eq!(pages, whole.len().div_ceil(size), "size {size}");
        }
    }
    // The default page is 100 (and 0 means the default).
    for b in [json!({}), json!({"maxResults": 0})] {
        let out = history(&stored, &started(), &body(b)).unwrap();
        assert_eq!(
            out["events"].as_array().unwrap().len(),
            whole.len().min(100)
        );
    }
    // Events appended after a page was read come on the next pages.
    let first = history(&stored, &started(), &body(json!({"maxResults": 5}))).unwrap();
    let mut longer = stored.clone();
    let mut extra = stored.last().unwrap().clone();
    extra.seq += 1;
    extra.event_type = "ExecutionRedriven".into();
    extra.details = json!({"redriveCount": 1});
    extra.key = Some("/~redrive1".into());
    longer.push(extra);
    let next = history(
        &longer,
        &started(),
        &body(json!({"maxResults": 1000, "nextToken": first["nextToken"]})),
    )
    .unwrap();
    assert_eq!(
        next["events"].as_array().unwrap().len(),
        longer.len() - 5,
        "the rest, with the appended event"
    );
}

fn refused(events: &[StoredEvent], b: Value) -> (String, String) {
    let e =
        history(events, &started(), &body(b.clone())).expect_err(&format!("{b} must be refused"));
    assert_eq!(e.status, 400);
    (e.kind.to_string(), e.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_garbled_stale_and_foreign_tokens_are_refused() {
    let s = site();
    let quick = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "C"}, "C": {"Type": "Pass", "End": true}}});
    let (a, _) = s.run("a", quick.clone(), json!({})).await;
    let (b, _) = s.run("b", quick, json!({})).await;
    let a = s.events(&a).await;
    let b = s.events(&b).await;
    let page = history(&a, &started(), &body(json!({"maxResults": 2}))).unwrap();
    let token = page["nextToken"].as_str().unwrap().to_string();

    // Every single-character change, and then some.
    let mut bad: Vec<String> = (0..token.len())
        .map(|i| {
            let mut t = token.clone().into_bytes();
            t[i] = if t[i] == b'f' { b'e' } else { b'f' };
            String::from_utf8(t).unwrap()
        })
        .collect();
    bad.extend([
        token[..token.len() - 2].to_string(),
        format!("{token}00"),
        token.to_uppercase(),
        "é".repeat(34),
        "AAAA".into(),
        "00".into(),
        "0".repeat(68),
        "{\"after\": 1}".into(),
    ]);
    for t in &bad {
        let (kind, message) = refused(&a, json!({"nextToken": t}));
        assert_eq!(kind, "InvalidToken", "{t}");
        assert!(message.contains("nextToken"), "{message}");
    }
    // Of another execution's history.
    let (kind, message) = refused(&b, json!({"nextToken": token}));
    assert_eq!(kind, "InvalidToken");
    assert!(message.contains("another execution"), "{message}");
    // Of the other direction.
    let (kind, message) = refused(&a, json!({"nextToken": token, "reverseOrder": true}));
    assert_eq!(kind, "InvalidToken");
    assert!(message.contains("reverseOrder"), "{message}");
    // Naming an event the history does not hold (stale).
    let (kind, message) = refused(&a[..1], json!({"nextToken": token}));
    assert_eq!(kind, "InvalidToken");
    assert!(message.contains("stale"), "{message}");
    // Older than 24 hours.
    let later = Utc::now() + Duration::hours(25);
    let e = history_at(&a, &started(), &body(json!({"nextToken": token})), later).unwrap_err();
    assert_eq!(e.kind, "InvalidToken");
    assert!(e.message.contains("expired"), "{}", e.message);
    // Still good.
    let rest = history(&a, &started(), &body(json!({"nextToken": token}))).unwrap();
    assert_eq!(rest["events"][0]["id"], 3);

    // Fields outside AWS's constraints.
    for (b, kind, says) in [
        (
            json!({"maxResults": 1001}),
            "ValidationException",
            "between 0 and 1000",
        ),
        (
            json!({"maxResults": -1}),
            "ValidationException",
            "maxResults",
        ),
        (
            json!({"maxResults": "5"}),
            "SerializationException",
            "maxResults",
        ),
        (
            json!({"reverseOrder": "yes"}),
            "SerializationException",
            "reverseOrder",
        ),
        (
            json!({"includeExecutionData": 1}),
            "SerializationException",
            "includeExecutionData",
        ),
        (
            json!({"nextToken": ""}),
            "ValidationException",
            "between 1 and 1024",
        ),
        (
            json!({"nextToken": "a".repeat(1025)}),
            "ValidationException",
            "between 1 and 1024",
        ),
        (
            json!({"nextToken": 7}),
            "SerializationException",
            "nextToken",
        ),
    ] {
        let (k, message) = refused(&a, b.clone());
        assert_eq!(k, kind, "{b}");
        assert!(message.contains(says), "{b}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_execution_data_only_the_details_remain() {
    let s = site();
    let (id_, _) = s.run("tour", tour(), json!({"secret": 1})).await;
    let stored = s.events(&id_).await;
    let out = history(
        &stored,
        &started(),
        &body(json!({"includeExecutionData": false, "maxResults": 1000})),
    )
    .unwrap();
    let events = out["events"].as_array().unwrap();
    check_shapes(events, false);
    let text = serde_json::to_string(events).unwrap();
    assert!(!text.contains("secret"), "{text}");
    for e in events {
        for (k, d) in e.as_object().unwrap() {
            if !k.ends_with("EventDetails") {
                continue;
            }
            for data in ["input", "output", "parameters", "assignedVariables"] {
                assert!(d.get(data).is_none(), "{k}.{data} is shown: {e}");
            }
        }
    }
    let started_ev = &events[0]["executionStartedEventDetails"];
    assert_eq!(started_ev["inputDetails"], json!({"truncated": false}));
    let exited = of_type(events, "PassStateExited")[0];
    assert_eq!(
        exited["stateExitedEventDetails"]["outputDetails"],
        json!({"truncated": false})
    );
    assert_eq!(events.len(), all(&stored).len());
}

#[test]
fn data_over_256_kib_is_cut_and_marked() {
    let at = Utc::now();
    let ev = |seq, t: &str, details: Value| StoredEvent {
        seq,
        event_type: t.into(),
        state: Some("A".into()),
        timestamp: at,
        details,
        key: None,
        checkpoint: None,
    };
    let big = "x".repeat(300 * 1024);
    let events = vec![
        ev(1, "ExecutionStarted", json!({"big": big})),
        ev(2, "PassStateEntered", json!("small")),
        ev(3, "piflow.SomethingElse", json!({})),
        ev(
            4,
            "ParallelStateFailed",
            json!({"error": "E", "cause": "c"}),
        ),
        ev(
            5,
            "ExecutionFailed",
            json!({"error": "E".repeat(300), "cause": null}),
        ),
    ];
    let out = history(&events, &started(), &body(json!({}))).unwrap();
    let got = out["events"].as_array().unwrap();
    let d = &got[0]["executionStartedEventDetails"];
    assert_eq!(d["inputDetails"], json!({"truncated": true}));
    let input = d["input"].as_str().unwrap();
    assert_eq!(input.len(), 256 * 1024);
    assert!(input.starts_with(r#"{"big":"xxx"#));
    assert_eq!(got[1]["stateEnteredEventDetails"]["input"], r#""small""#);
    assert_eq!(got[1]["stateEnteredEventDetails"]["name"], "A");
    // An event type AWS does not have is left out; ParallelStateFailed has
    // no details in AWS; error is cut to AWS's 256 characters.
    let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "ParallelStateFailed",
            "ExecutionFailed"
        ]
    );
    assert_eq!(got[2].as_object().unwrap().len(), 4, "{}", got[2]);
    let f = &got[3]["executionFailedEventDetails"];
    assert_eq!(f["error"].as_str().unwrap().len(), 256);
    assert!(f.get("cause").is_none());
    // Keyless events (an execution that is not durable) chain in order.
    let prevs: Vec<u64> = got.iter().map(prev).collect();
    assert_eq!(prevs, [0, 1, 2, 4]);
    // The timestamp: epoch seconds with milliseconds.
    let ts = got[0]["timestamp"].as_f64().unwrap();
    assert!((ts - at.timestamp_millis() as f64 / 1000.0).abs() < 1e-6);
    check_shapes(got, true);
    let empty = history(&[], &started(), &body(json!({}))).unwrap();
    assert_eq!(empty, json!({"events": []}));
}
