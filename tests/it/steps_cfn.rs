//! `piflow:cloudformation-deploy` against moto (stacks and change sets);
//! a failed, rolled-back deployment and a stack stuck in ROLLBACK_COMPLETE
//! come from a wiremock CloudFormation (moto does not make deployments
//! fail), through the step's `endpoint` hook.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use piflow_engine::{TaskHandler, TaskRequest};
use piflow_steps::AuditHandle;
use piflow_steps::cfn::{CfnDeploy, change_set_name};
use piflow_store::Store;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An SQS queue whose retention is a parameter, echoed as an output.
const TEMPLATE: &str = r#"{
  "AWSTemplateFormatVersion": "2010-09-09",
  "Parameters": {"Retention": {"Type": "String", "Default": "345600"}},
  "Resources": {
    "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": {"Ref": "Retention"}}}
  },
  "Outputs": {
    "QueueUrl": {"Value": {"Ref": "Queue"}},
    "Retention": {"Value": {"Ref": "Retention"}}
  }
}"#;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    step: CfnDeploy,
    env: String,
}

fn fixture() -> Fixture {
    let (dir, store) = common::steps::temp_store();
    let mut step = CfnDeploy::new(AuditHandle::ready(store.clone()));
    step.poll = Duration::from_millis(50);
    Fixture {
        _dir: dir,
        store,
        step,
        env: common::moto::unique("dev"),
    }
}

fn request(token: &str, input: Value) -> TaskRequest {
    common::steps::step_request(
        "arn:aws:states:us-east-1:123456789012:execution:deploy:test",
        "Stack",
        "piflow:cloudformation-deploy",
        token,
        input,
    )
}

/// A template file under target/ (the tests run in the crate's root, the
/// working directory the relative path is read from).
fn template_file(body: &str) -> String {
    let rel = format!("target/{}.json", common::moto::unique("cfn-test"));
    std::fs::write(env!("CARGO_MANIFEST_DIR").to_string() + "/" + &rel, body)
        .expect("write template");
    rel
}

/// (result, after) of the environment's audit records, oldest first.
async fn trail(f: &Fixture) -> Vec<(String, String, Value)> {
    f.store
        .audit(Some(&f.env), None)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| (r.entry.action, r.entry.result, r.entry.after))
        .collect()
}

async fn cfn_client() -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::new(&piflow_aws_config::sdk_config().await)
}

async fn parameter(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> Option<String> {
    let live = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .expect("describe");
    live.stacks()
        .first()?
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("Retention"))
        .and_then(|p| p.parameter_value())
        .map(str::to_string)
}

async fn outputs(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> Value {
    let live = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .expect("describe");
    let mut m = serde_json::Map::new();
    for o in live
        .stacks()
        .first()
        .map(|s| s.outputs())
        .unwrap_or_default()
    {
        m.insert(
            o.output_key().unwrap_or("").into(),
            json!(o.output_value().unwrap_or("")),
        );
    }
    Value::Object(m)
}

#[tokio::test(flavor = "multi_thread")]
async fn create_reinvoke_update_and_no_op() {
    let Some(_moto) = common::moto::moto() else {
        return;
    };
    let f = fixture();
    let stack = common::moto::unique("app");
    let path = template_file(TEMPLATE);
    let input = |retention: &str| {
        json!({
            "region": "us-east-1",
            "environment": f.env,
            "stack": stack,
            "template": path,
            "parameters": {"Retention": retention},
            "tags": {"owner": "piflow"},
        })
    };

    // Create.
    let t1 = common::moto::unique("tok");
    let out = f
        .step
        .invoke(request(&t1, input("120")))
        .await
        .expect("create");
    assert_eq!(out["status"], "CREATE_COMPLETE", "{out}");
    assert_eq!(out["stack"], json!(stack));
    let cfn = cfn_client().await;
    assert_eq!(parameter(&cfn, &stack).await.as_deref(), Some("120"));
    // moto 5.2.5 computes no outputs for a stack made by a change set (and
    // does not refresh them on update): the step reports what the stack
    // reports.
    assert_eq!(out["outputs"], outputs(&cfn, &stack).await, "{out}");
    assert_eq!(out["change_set"], json!(change_set_name(&t1)));
    let stack_id = out["stack_id"].as_str().expect("stack_id").to_string();

    // Re-invoked with the same token (a crash-resume): the same change set,
    // no second one, same result.
    let again = f
        .step
        .invoke(request(&t1, input("120")))
        .await
        .expect("re-invocation");
    assert_eq!(again["status"], "CREATE_COMPLETE", "{again}");
    assert_eq!(again["stack_id"], json!(stack_id));
    let sets = cfn
        .list_change_sets()
        .stack_name(&stack)
        .send()
        .await
        .expect("list change sets");
    // (moto lists every stack's change sets: filter on the stack.)
    let names: Vec<&str> = sets
        .summaries()
        .iter()
        .filter(|s| s.stack_name() == Some(stack.as_str()))
        .filter_map(|s| s.change_set_name())
        .collect();
    let expected = change_set_name(&t1);
    assert_eq!(
        names,
        vec![expected.as_str()],
        "a re-invocation made a second change set"
    );

    // Update with a changed parameter.
    let t2 = common::moto::unique("tok");
    let out = f
        .step
        .invoke(request(&t2, input("240")))
        .await
        .expect("update");
    assert_eq!(out["status"], "UPDATE_COMPLETE", "{out}");
    assert_eq!(out["stack_id"], json!(stack_id), "the same stack");
    assert_eq!(parameter(&cfn, &stack).await.as_deref(), Some("240"));
    assert_eq!(out["outputs"], outputs(&cfn, &stack).await, "{out}");
    assert_eq!(out["change_set"], json!(change_set_name(&t2)));

    // No-op update.
    let t3 = common::moto::unique("tok");
    let out = f
        .step
        .invoke(request(&t3, input("240")))
        .await
        .expect("no-op");
    assert_eq!(out, json!({"stack": stack, "status": "UNCHANGED"}));

    let t = trail(&f).await;
    let results: Vec<(&str, &str)> = t.iter().map(|(a, r, _)| (a.as_str(), r.as_str())).collect();
    assert_eq!(
        results,
        vec![
            ("cloudformation.deploy", "deploying"),
            ("cloudformation.deploy", "succeeded"),
            ("cloudformation.deploy", "deploying"),
            ("cloudformation.deploy", "succeeded"),
            ("cloudformation.deploy", "deploying"),
            ("cloudformation.deploy", "unchanged"),
        ],
        "one before/after pair per token, none repeated by the re-invocation"
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_template_and_missing_file() {
    let Some(_moto) = common::moto::moto() else {
        return;
    };
    let f = fixture();
    let stack = common::moto::unique("bad");
    let e = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            json!({
                "region": "us-east-1", "environment": f.env, "stack": stack,
                "template_body": "{\"Resources\": {\"Q\": {\"Type\": \"AWS::SQS::Queue\", \"Properties\": {\"QueueName\": {\"Ref\": \"Nope\"}}}}, \"Outputs\": 7}",
            }),
        ))
        .await
        .expect_err("rejected");
    assert_eq!(e.error_name(), "CloudFormation.InvalidTemplate", "{e:?}");
    let cause = e.cause.unwrap_or_default();
    assert!(
        cause.contains("template_body") && cause.contains(&stack),
        "{cause}"
    );

    let e = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            json!({
                "region": "us-east-1", "environment": f.env, "stack": stack,
                "template": "infra/no-such-template.yaml",
            }),
        ))
        .await
        .expect_err("missing file");
    assert_eq!(e.error_name(), "CloudFormation.InvalidInput", "{e:?}");
    assert!(
        e.cause
            .as_deref()
            .is_some_and(|c| c.contains("infra/no-such-template.yaml")),
        "{e:?}"
    );
    // Nothing was created.
    assert!(
        cfn_client()
            .await
            .describe_stacks()
            .stack_name(&stack)
            .send()
            .await
            .is_err(),
        "no stack for a rejected template"
    );
}

const NS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";
const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/shop/1";

fn ok(action: &str, result: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/xml")
        .set_body_string(format!(
            r#"<{action}Response xmlns="{NS}"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"#
        ))
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "text/xml")
        .set_body_string(format!(
            r#"<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"#
        ))
}

fn stack_xml(status: &str) -> String {
    format!(
        r#"<Stacks><member><StackName>shop</StackName><StackId>{STACK_ID}</StackId><StackStatus>{status}</StackStatus><CreationTime>2026-11-20T10:00:00Z</CreationTime></member></Stacks>"#
    )
}

async fn on(server: &MockServer, action: &str, reply: ResponseTemplate, first: Option<u64>) {
    let m = Mock::given(method("POST"))
        .and(body_string_contains(format!("Action={action}&")))
        .respond_with(reply);
    match first {
        Some(n) => m.up_to_n_times(n).with_priority(1).mount(server).await,
        None => m.with_priority(2).mount(server).await,
    }
}

fn event(id: &str, logical: &str, kind: &str, status: &str, reason: &str) -> String {
    format!(
        r#"<member><StackId>{STACK_ID}</StackId><EventId>{id}</EventId><StackName>shop</StackName><LogicalResourceId>{logical}</LogicalResourceId><ResourceType>{kind}</ResourceType><Timestamp>2026-11-22T10:00:0{id}Z</Timestamp><ResourceStatus>{status}</ResourceStatus><ResourceStatusReason>{reason}</ResourceStatusReason></member>"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_update_reports_the_failed_resources() {
    // Credentials and region in the environment (the calls go to wiremock).
    let _ = common::moto::moto();
    let server = MockServer::start().await;
    on(
        &server,
        "DescribeStacks",
        ok("DescribeStacks", &stack_xml("UPDATE_COMPLETE")),
        Some(1),
    )
    .await;
    on(
        &server,
        "DescribeStacks",
        ok("DescribeStacks", &stack_xml("UPDATE_ROLLBACK_COMPLETE")),
        None,
    )
    .await;
    on(
        &server,
        "DescribeChangeSet",
        error(404, "ChangeSetNotFound", "ChangeSet [x] does not exist"),
        Some(1),
    )
    .await;
    on(
        &server,
        "DescribeChangeSet",
        ok(
            "DescribeChangeSet",
            "<ChangeSetName>n</ChangeSetName><ChangeSetId>arn:aws:cloudformation:us-east-1:123456789012:changeSet/n/1</ChangeSetId><StackName>shop</StackName><Status>CREATE_COMPLETE</Status><ExecutionStatus>AVAILABLE</ExecutionStatus>",
        ),
        None,
    )
    .await;
    on(
        &server,
        "ValidateTemplate",
        ok("ValidateTemplate", ""),
        None,
    )
    .await;
    on(
        &server,
        "CreateChangeSet",
        ok(
            "CreateChangeSet",
            &format!("<Id>arn:cs</Id><StackId>{STACK_ID}</StackId>"),
        ),
        None,
    )
    .await;
    on(
        &server,
        "ExecuteChangeSet",
        ok("ExecuteChangeSet", ""),
        None,
    )
    .await;
    let events = [
        event(
            "5",
            "shop",
            "AWS::CloudFormation::Stack",
            "UPDATE_ROLLBACK_COMPLETE",
            "",
        ),
        event(
            "4",
            "Queue",
            "AWS::SQS::Queue",
            "UPDATE_FAILED",
            "Resource handler returned message: boom",
        ),
        event(
            "3",
            "shop",
            "AWS::CloudFormation::Stack",
            "UPDATE_IN_PROGRESS",
            "User Initiated",
        ),
        event(
            "2",
            "Bucket",
            "AWS::S3::Bucket",
            "CREATE_FAILED",
            "an older deployment",
        ),
        event(
            "1",
            "shop",
            "AWS::CloudFormation::Stack",
            "CREATE_IN_PROGRESS",
            "User Initiated",
        ),
    ]
    .concat();
    on(
        &server,
        "DescribeStackEvents",
        ok(
            "DescribeStackEvents",
            &format!("<StackEvents>{events}</StackEvents>"),
        ),
        None,
    )
    .await;

    let mut f = fixture();
    f.step.endpoint = Some(server.uri());
    let e = f
        .step
        .invoke(request(
            "tok-fail",
            json!({"region": "us-east-1", "environment": f.env, "stack": "shop", "template_body": TEMPLATE}),
        ))
        .await
        .expect_err("the deployment failed");
    assert_eq!(e.error_name(), "CloudFormation.Failed", "{e:?}");
    let cause = e.cause.unwrap_or_default();
    for part in [
        "shop",
        "UPDATE_ROLLBACK_COMPLETE",
        "Queue (AWS::SQS::Queue) UPDATE_FAILED",
        "boom",
        "rolled the stack back",
    ] {
        assert!(cause.contains(part), "{part} missing from: {cause}");
    }
    assert!(
        !cause.contains("older deployment"),
        "only this deployment's events: {cause}"
    );

    let t = trail(&f).await;
    let results: Vec<&str> = t.iter().map(|(_, r, _)| r.as_str()).collect();
    assert_eq!(results, vec!["deploying", "failed"]);
    assert_eq!(t[1].2["status"], "UPDATE_ROLLBACK_COMPLETE");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_in_rollback_complete_is_refused_with_the_remedy() {
    // Credentials and region in the environment (the calls go to wiremock).
    let _ = common::moto::moto();
    let server = MockServer::start().await;
    on(
        &server,
        "DescribeStacks",
        ok("DescribeStacks", &stack_xml("ROLLBACK_COMPLETE")),
        None,
    )
    .await;
    on(
        &server,
        "DescribeChangeSet",
        error(404, "ChangeSetNotFound", "ChangeSet [x] does not exist"),
        None,
    )
    .await;
    let mut f = fixture();
    f.step.endpoint = Some(server.uri());
    let e = f
        .step
        .invoke(request(
            "tok-rb",
            json!({"region": "us-east-1", "environment": f.env, "stack": "shop", "template_body": TEMPLATE}),
        ))
        .await
        .expect_err("refused");
    assert_eq!(
        e.error_name(),
        "CloudFormation.StackRollbackComplete",
        "{e:?}"
    );
    assert!(
        e.cause
            .as_deref()
            .is_some_and(|c| c.contains("delete-stack --stack-name shop")),
        "{e:?}"
    );
    let requests = server.received_requests().await.unwrap_or_default();
    assert!(
        !requests
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("Action=CreateChangeSet")),
        "no change set for an unusable stack"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_set_without_changes_is_deleted_and_unchanged() {
    // Credentials and region in the environment (the calls go to wiremock).
    let _ = common::moto::moto();
    let server = MockServer::start().await;
    on(
        &server,
        "DescribeStacks",
        ok("DescribeStacks", &stack_xml("UPDATE_COMPLETE")),
        None,
    )
    .await;
    on(
        &server,
        "DescribeChangeSet",
        error(404, "ChangeSetNotFound", "ChangeSet [x] does not exist"),
        Some(1),
    )
    .await;
    on(
        &server,
        "DescribeChangeSet",
        ok(
            "DescribeChangeSet",
            "<ChangeSetName>n</ChangeSetName><StackName>shop</StackName><Status>FAILED</Status><StatusReason>The submitted information didn't contain changes. Submit different information to create a change set.</StatusReason><ExecutionStatus>UNAVAILABLE</ExecutionStatus>",
        ),
        None,
    )
    .await;
    on(
        &server,
        "ValidateTemplate",
        ok("ValidateTemplate", ""),
        None,
    )
    .await;
    on(
        &server,
        "CreateChangeSet",
        ok(
            "CreateChangeSet",
            &format!("<Id>arn:cs</Id><StackId>{STACK_ID}</StackId>"),
        ),
        None,
    )
    .await;
    on(&server, "DeleteChangeSet", ok("DeleteChangeSet", ""), None).await;
    let mut f = fixture();
    f.step.endpoint = Some(server.uri());
    let out = f
        .step
        .invoke(request(
            "tok-noop",
            json!({"region": "us-east-1", "environment": f.env, "stack": "shop", "template_body": TEMPLATE}),
        ))
        .await
        .expect("unchanged");
    assert_eq!(out, json!({"stack": "shop", "status": "UNCHANGED"}));
    let bodies: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("Action=DeleteChangeSet&")
                && b.contains(&change_set_name("tok-noop"))),
        "the empty change set is deleted: {bodies:?}"
    );
    assert!(
        !bodies
            .iter()
            .any(|b| b.contains("Action=ExecuteChangeSet&")),
        "nothing executed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_that_does_not_settle_times_out() {
    // Credentials and region in the environment (the calls go to wiremock).
    let _ = common::moto::moto();
    let server = MockServer::start().await;
    on(
        &server,
        "DescribeStacks",
        ok("DescribeStacks", &stack_xml("UPDATE_COMPLETE")),
        Some(1),
    )
    .await;
    on(
        &server,
        "DescribeStacks",
        ok("DescribeStacks", &stack_xml("UPDATE_IN_PROGRESS")),
        None,
    )
    .await;
    on(
        &server,
        "DescribeChangeSet",
        error(404, "ChangeSetNotFound", "ChangeSet [x] does not exist"),
        Some(1),
    )
    .await;
    on(
        &server,
        "DescribeChangeSet",
        ok(
            "DescribeChangeSet",
            "<ChangeSetName>n</ChangeSetName><StackName>shop</StackName><Status>CREATE_COMPLETE</Status><ExecutionStatus>AVAILABLE</ExecutionStatus>",
        ),
        None,
    )
    .await;
    on(
        &server,
        "ValidateTemplate",
        ok("ValidateTemplate", ""),
        None,
    )
    .await;
    on(
        &server,
        "CreateChangeSet",
        ok(
            "CreateChangeSet",
            &format!("<Id>arn:cs</Id><StackId>{STACK_ID}</StackId>"),
        ),
        None,
    )
    .await;
    on(
        &server,
        "ExecuteChangeSet",
        ok("ExecuteChangeSet", ""),
        None,
    )
    .await;
    let mut f = fixture();
    f.step.endpoint = Some(server.uri());
    let e = f
        .step
        .invoke(request(
            "tok-slow",
            json!({"region": "us-east-1", "environment": f.env, "stack": "shop", "template_body": TEMPLATE, "timeout_seconds": 0}),
        ))
        .await
        .expect_err("timed out");
    assert_eq!(e.error_name(), "CloudFormation.Timeout", "{e:?}");
    assert!(
        e.cause
            .as_deref()
            .is_some_and(|c| c.contains("UPDATE_IN_PROGRESS") && c.contains("shop")),
        "{e:?}"
    );
}
