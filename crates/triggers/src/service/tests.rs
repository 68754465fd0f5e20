//! The service's refusals and starts, on an embedded store in a tempdir
//! (no git: the tags' [`TagInfo`] is made up).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::config::TriggerConfig;
use crate::tags::TagInfo;
use piflow_engine::TaskRegistry;
use piflow_store::Store;
use piflow_store::embedded::EmbeddedStore;

const PASS: &str = r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}"#;

const TAG: &str = "dev_us-east-1/research/1.0";

/// A directory with piflow.yaml (`config`), workflows/ and schemas/.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(config: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
        std::fs::write(dir.path().join("piflow.yaml"), config).unwrap();
        Site { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) -> &Site {
        std::fs::write(self.path().join(rel), text).unwrap();
        self
    }

    fn rules(&self) -> Rules {
        Rules::on_demand(TriggerConfig::load(&self.path().join("piflow.yaml")).unwrap())
    }

    fn service(&self) -> TriggerService {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(self.path().join("store.redb")).unwrap());
        TriggerService::new(store, TaskRegistry::new())
    }
}

fn config(workflow: &str, input: &str) -> String {
    format!(
        "tags:\n  - pattern: \"<env>_<region>/<team>/<version>\"\n    workflow: {workflow}\n    input: {input}\n"
    )
}

const INPUT: &str =
    r#"{environment: "{env}", release: {version: "{version}", commit: "{commit}"}}"#;

fn info(commit: &str) -> TagInfo {
    TagInfo {
        name: TAG.into(),
        annotated: true,
        object: "f".repeat(40),
        commit: commit.into(),
        tagger_name: "Tina Tagger".into(),
        tagger_email: "tina@example.com".into(),
        date: "2026-03-04T05:06:07+02:00".into(),
        message: "Release 1.0".into(),
    }
}

fn event(commit: &str, origin: TagSource) -> TagEvent {
    TagEvent {
        info: info(commit),
        actor: "cli:tester".into(),
        origin,
    }
}

fn command() -> TagSource {
    TagSource::Command {
        repo: "/repos/app".into(),
    }
}

fn webhook() -> TagSource {
    TagSource::Webhook {
        repo: "/clones/app".into(),
    }
}

fn refused(stop: TagStop) -> TagRefusal {
    match stop {
        TagStop::Refused(r) => *r,
        other => panic!("not a refusal: {other:?}"),
    }
}

async fn audit(service: &TriggerService, action: &str) -> Vec<Value> {
    service
        .store()
        .audit(None, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.action == action)
        .map(|r| serde_json::to_value(&r.entry).unwrap())
        .collect()
}

#[tokio::test]
async fn a_rule_naming_no_workflow_is_refused_and_audited() {
    let site = Site::new(&config("missing", INPUT));
    let service = site.service();
    let r = refused(
        site.rules()
            .plan_tag(&event(&"a".repeat(40), command()))
            .unwrap_err(),
    );
    assert_eq!(r.code(), "no-workflow");
    assert_eq!(r.kind, RefusalKind::NoWorkflow);
    assert_eq!(r.env.as_deref(), Some("dev"));
    assert!(
        r.reason.starts_with("rule 1 of ") && r.reason.contains("no workflows/missing.asl.yaml"),
        "{}",
        r.reason
    );
    service.refuse(&r).await.unwrap();
    let records = audit(&service, "trigger.refused").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let rec = &records[0];
    assert_eq!(rec["env"], "dev");
    assert_eq!(rec["target"], TAG);
    assert_eq!(rec["result"], "refused: no-workflow");
    assert_eq!(rec["after"]["code"], "no-workflow");
    assert_eq!(rec["after"]["repo"], "/repos/app");
    let keys: Vec<&String> = rec["after"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["reason", "code", "repo", "commit", "config"]);

    // Loaded beforehand (`piflow serve`): the same rule fails at start-up.
    let config = TriggerConfig::load(&site.path().join("piflow.yaml")).unwrap();
    let e = Rules::preload(config, true).unwrap_err();
    assert_eq!(e.code(), "no-workflow");
    assert!(e.to_string().contains("\"missing\""), "{e}");
    assert!(service.store().executions(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_input_over_the_payload_limit_starts_nothing() {
    let big = json!({"blob": "x".repeat(workflow::payload_limit())});
    let site = Site::new(&config("tiny", "\"@big.json\""));
    site.write("workflows/tiny.asl.json", PASS)
        .write("big.json", &big.to_string());
    let service = site.service();
    let r = refused(
        site.rules()
            .plan_tag(&event(&"a".repeat(40), command()))
            .unwrap_err(),
    );
    assert_eq!(r.code(), "input-invalid");
    assert!(
        r.reason.starts_with("the input is ") && r.reason.contains("at most 262144 bytes"),
        "{}",
        r.reason
    );
    // From a webhook, the reason names the tag.
    let r = refused(
        site.rules()
            .plan_tag(&event(&"a".repeat(40), webhook()))
            .unwrap_err(),
    );
    assert!(r.reason.starts_with(&format!("tag {TAG:?}: the input is ")));

    // `piflow run`'s way: the workflow, then the input.
    let w = Workflow::load(&site.path().join("workflows/tiny.asl.json"), None).unwrap();
    let e = service
        .trigger(&w, big, StartOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "input-invalid");
    assert!(matches!(
        e,
        TriggerError::Input(InputError::TooLarge { limit: 262144, .. })
    ));
    assert!(service.store().executions(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_input_the_schema_refuses_starts_nothing() {
    let site = Site::new(&config("tiny", INPUT));
    site.write("workflows/tiny.asl.json", PASS).write(
        "schemas/tiny.input.json",
        r#"{"type": "object", "required": ["service"]}"#,
    );
    let service = site.service();
    let r = refused(
        site.rules()
            .plan_tag(&event(&"a".repeat(40), command()))
            .unwrap_err(),
    );
    assert_eq!(r.code(), "input-invalid");
    assert!(
        r.reason
            .starts_with(&format!("the input rule 1 of {}", site.path().display()))
            && r.reason
                .contains(&format!("builds for tag {TAG:?} does not match"))
            && r.reason.contains("\"service\" is a required property"),
        "{}",
        r.reason
    );
    service.refuse(&r).await.unwrap();
    assert_eq!(audit(&service, "trigger.refused").await.len(), 1);

    // The same schema, checked directly and by an event rule.
    let w = Workflow::load(
        &site.path().join("workflows/tiny.asl.json"),
        Some(site.path()),
    )
    .unwrap();
    match w.check_input(&json!({"environment": "dev"})) {
        Err(InputError::Mismatch { schema, problems }) => {
            assert!(schema.ends_with("schemas/tiny.input.json"), "{schema:?}");
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].starts_with("at /: "), "{problems:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(w.check_input(&json!({"service": "api"})).is_ok());
    assert!(service.store().executions(None).await.unwrap().is_empty());

    // An unusable schema is an error, not a refusal: the workflow does not
    // validate (its types cannot be checked), naming the schema.
    site.write("schemas/tiny.input.json", "{not json");
    match site
        .rules()
        .plan_tag(&event(&"a".repeat(40), command()))
        .unwrap_err()
    {
        TagStop::Workflow(WorkflowError::Invalid { errors, .. }) => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].code, piflow_asl::Code::SchemaInvalid);
            assert!(
                errors[0].message.contains("tiny.input.json is not JSON"),
                "{errors:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_moved_tag_is_refused_and_the_same_tag_is_one_execution() {
    let site = Site::new(&config("tiny", INPUT));
    site.write("workflows/tiny.asl.json", PASS);
    let service = site.service();
    let rules = site.rules();
    let first = event(&"a".repeat(40), command());
    let f = service
        .trigger_tag(&rules, &first, "tester".into(), true)
        .await
        .unwrap();
    assert_eq!(f.record.status, piflow_engine::Status::Succeeded);
    assert!(!f.existing);
    let id = f.record.id.clone();
    assert!(id.starts_with("tiny:dev_us-east-1-research-1-0-"), "{id}");
    assert_eq!(f.record.trigger, format!("git-tag:{TAG}"));
    assert_eq!(f.record.env.as_deref(), Some("dev"));

    let records = audit(&service, "trigger.tag").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["env"], "dev");
    assert_eq!(records[0]["execution"], id.as_str());
    let keys: Vec<&String> = records[0]["after"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "workflow",
            "execution",
            "rule",
            "pattern",
            "repo",
            "commit",
            "annotated",
            "tagger",
            "date"
        ]
    );

    // The same tag again: the existing execution, one record.
    let again = service
        .trigger_tag(&rules, &first, "tester".into(), true)
        .await
        .unwrap();
    assert!(again.existing);
    assert_eq!(again.record.id, id);
    assert_eq!(audit(&service, "trigger.tag").await.len(), 1);
    // From a webhook: a duplicate, nothing recorded or run.
    let plan = rules.plan_tag(&event(&"a".repeat(40), webhook())).unwrap();
    assert!(matches!(
        service.admit_tag(&plan).await.unwrap(),
        Admission::Duplicate(r) if r.id == id
    ));

    // Moved to another commit: another input under the same name.
    let moved = event(&"b".repeat(40), command());
    match service
        .trigger_tag(&rules, &moved, "tester".into(), true)
        .await
        .unwrap_err()
    {
        TagTriggerError::Refused(r) => {
            assert_eq!(r.code(), "tag-moved");
            assert!(
                r.reason.contains(&id)
                    && r.reason
                        .contains(&format!("its input then named commit {}", "a".repeat(40)))
                    && r.reason
                        .contains(&format!("now points at commit {}", "b".repeat(40))),
                "{}",
                r.reason
            );
        }
        other => panic!("{other:?}"),
    }
    let refusals = audit(&service, "trigger.refused").await;
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0]["after"]["code"], "tag-moved");
    assert_eq!(service.store().executions(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_event_starts_its_executions_once() {
    let site = Site::new(
        "events:\n  - name: deployed\n    pattern: {source: [app]}\n    workflow: tiny\n    environment: dev\n",
    );
    site.write("workflows/tiny.asl.json", PASS).write(
        "schemas/tiny.input.json",
        r#"{"type": "object", "required": ["detail"]}"#,
    );
    let config = TriggerConfig::load(&site.path().join("piflow.yaml")).unwrap();
    let rules = Rules::preload(config, false).unwrap();
    let service = site.service();
    let ev = json!({"id": "e-1", "source": "app", "detail-type": "x", "detail": {}});
    let not_running = |_: &str| false;
    let first = service
        .receive_event(&rules, &ev, "e-1", "test", not_running)
        .await
        .unwrap();
    assert!(first.first());
    assert_eq!(first.start.len(), 1);
    assert!(first.refused.is_empty());
    let p = &first.start[0];
    assert!(p.id.starts_with("tiny:deployed-e-1-"), "{}", p.id);
    assert_eq!(p.env.as_deref(), Some("dev"));
    assert_eq!(audit(&service, crate::events::ACCEPTED).await.len(), 1);

    // Redelivered before the start: the planned execution, again.
    let again = service
        .receive_event(&rules, &ev, "e-1", "test", not_running)
        .await
        .unwrap();
    assert!(!again.first());
    assert_eq!(again.ids(), first.ids());
    assert_eq!(again.start.len(), 1);

    let req = rules
        .event_request(p, "event:e-1".into(), "serve:tester".into())
        .unwrap();
    let f = service.start(req).await.unwrap();
    assert_eq!(f.record.status, piflow_engine::Status::Succeeded);
    let third = service
        .receive_event(&rules, &ev, "e-1", "test", not_running)
        .await
        .unwrap();
    assert!(third.start.is_empty(), "started already");

    // A matching event the schema refuses: a misfire, nothing planned.
    let bad = json!({"id": "e-2", "source": "app"});
    let (planned, refused) = rules.plan_event(&bad, "e-2");
    assert!(planned.is_empty());
    assert_eq!(refused[0].code, "input-invalid");
    assert!(
        refused[0]
            .reason
            .starts_with("rule \"deployed\" on event \"e-2\": the input does not match"),
        "{}",
        refused[0].reason
    );
}
