//! The least-privilege IAM policy a translated state machine's role needs,
//! derived from the integrations it actually uses
//! ([`super::stepfunctions::Integration`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::stepfunctions::Integration;

/// Where the resources live: ARN partition, region and account (`*` when
/// unknown).
#[derive(Debug, Clone)]
pub struct PolicyContext {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl PolicyContext {
    /// Partition and account from the execution role's ARN
    /// (`arn:PARTITION:iam::ACCOUNT:role/NAME`), the region as given.
    pub fn from_role(role_arn: Option<&str>, region: Option<&str>) -> PolicyContext {
        let parts: Vec<&str> = role_arn.unwrap_or_default().split(':').collect();
        let field = |i: usize, default: &str| {
            parts
                .get(i)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
                .unwrap_or_else(|| default.to_string())
        };
        PolicyContext {
            partition: field(1, "aws"),
            region: region.filter(|r| !r.is_empty()).unwrap_or("*").to_string(),
            account: field(4, "*"),
        }
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }
}

/// IAM's action prefix for a Step Functions service name (SDK integrations
/// use the SDK's service names).
fn iam_prefix(service: &str) -> &str {
    match service {
        "elasticloadbalancingv2" => "elasticloadbalancing",
        "sfn" | "states" => "states",
        "cloudwatchlogs" => "logs",
        "eventbridge" => "events",
        "efs" => "elasticfilesystem",
        "apigateway" => "execute-api",
        other => other,
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Statements keyed by Sid: actions and resources.
#[derive(Default)]
struct Builder {
    statements: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
}

impl Builder {
    fn allow(&mut self, sid: &str, actions: &[&str], resources: &[String]) {
        let e = self.statements.entry(sid.to_string()).or_default();
        e.0.extend(actions.iter().map(|a| a.to_string()));
        e.1.extend(resources.iter().cloned());
    }
}

/// The policy document (IAM JSON) for these integrations.
pub fn policy_document(integrations: &[Integration], ctx: &PolicyContext) -> Value {
    let mut b = Builder::default();
    for i in integrations {
        match i {
            Integration::CodeBuildSync { project } => {
                b.allow(
                    "CodeBuildSync",
                    &[
                        "codebuild:StartBuild",
                        "codebuild:StopBuild",
                        "codebuild:BatchGetBuilds",
                        "codebuild:BatchGetReports",
                    ],
                    &[ctx.arn("codebuild", &format!("project/{project}"))],
                );
                b.allow(
                    "CodeBuildSyncEvents",
                    &["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                    &[ctx.arn(
                        "events",
                        "rule/StepFunctionsGetEventForCodeBuildStartBuildRule",
                    )],
                );
            }
            Integration::DynamoDbPutItem { table } => b.allow(
                "AuditPutItem",
                &["dynamodb:PutItem"],
                &[ctx.arn("dynamodb", &format!("table/{table}"))],
            ),
            Integration::SnsPublish { topic } => b.allow(
                "ApprovalPublish",
                &["sns:Publish"],
                std::slice::from_ref(topic),
            ),
            Integration::Lambda { arn } => {
                let mut resources = vec![arn.clone()];
                // An unqualified function ARN: allow its versions and aliases.
                if arn.split(':').count() == 7 {
                    resources.push(format!("{arn}:*"));
                }
                b.allow("InvokeSteps", &["lambda:InvokeFunction"], &resources)
            }
            Integration::Activity { .. } => {}
            Integration::Existing { resource } => existing(&mut b, resource, ctx),
        }
    }
    let statements: Vec<Value> = b
        .statements
        .into_iter()
        .map(|(sid, (actions, resources))| {
            json!({
                "Sid": sid,
                "Effect": "Allow",
                "Action": actions.into_iter().collect::<Vec<_>>(),
                "Resource": resources.into_iter().collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A resource the definition already named: its action, on `*` (the
/// resource is chosen by the state's parameters at run time).
fn existing(b: &mut Builder, resource: &str, ctx: &PolicyContext) {
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    if parts.len() < 6 || parts[0] != "arn" {
        return;
    }
    let service = parts[2];
    if service == "lambda" {
        b.allow(
            "FromDefinition",
            &["lambda:InvokeFunction"],
            &[resource.to_string()],
        );
        return;
    }
    if service != "states" || !parts[3].is_empty() {
        // Activities need nothing from the machine's role.
        return;
    }
    let rest = parts[5];
    let (rest, sync) = match rest.split_once(".sync") {
        Some((r, _)) => (r, true),
        None => (rest.trim_end_matches(".waitForTaskToken"), false),
    };
    let (svc, action) = match rest.strip_prefix("aws-sdk:") {
        Some(sdk) => match sdk.split_once(':') {
            Some(p) => p,
            None => return,
        },
        None => match rest.split_once(':') {
            Some(p) => p,
            None => return,
        },
    };
    let prefix = iam_prefix(svc);
    let action = match (svc, action) {
        ("lambda", "invoke") => "InvokeFunction".to_string(),
        (_, a) => upper_first(a),
    };
    let full = format!("{prefix}:{action}");
    b.allow("FromDefinition", &[full.as_str()], &["*".to_string()]);
    if sync && svc == "states" {
        b.allow(
            "FromDefinition",
            &["states:DescribeExecution", "states:StopExecution"],
            &["*".to_string()],
        );
        b.allow(
            "FromDefinitionSyncEvents",
            &["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            &[ctx.arn(
                "events",
                "rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
            )],
        );
    }
}

/// Every action a policy document allows, sorted.
pub fn actions(document: &Value) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    if let Some(statements) = document.get("Statement").and_then(Value::as_array) {
        for s in statements {
            if let Some(actions) = s.get("Action").and_then(Value::as_array) {
                out.extend(actions.iter().filter_map(Value::as_str).map(str::to_string));
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codebuild_and_table_get_scoped_arns() {
        let ctx = PolicyContext::from_role(
            Some("arn:aws:iam::123456789012:role/sfn"),
            Some("eu-west-1"),
        );
        let doc = policy_document(
            &[
                Integration::CodeBuildSync {
                    project: "checks".into(),
                },
                Integration::DynamoDbPutItem {
                    table: "piflow".into(),
                },
            ],
            &ctx,
        );
        let text = doc.to_string();
        assert!(text.contains("arn:aws:codebuild:eu-west-1:123456789012:project/checks"));
        assert!(text.contains("arn:aws:dynamodb:eu-west-1:123456789012:table/piflow"));
        assert_eq!(
            actions(&doc),
            vec![
                "codebuild:BatchGetBuilds",
                "codebuild:BatchGetReports",
                "codebuild:StartBuild",
                "codebuild:StopBuild",
                "dynamodb:PutItem",
                "events:DescribeRule",
                "events:PutRule",
                "events:PutTargets",
            ]
        );
    }

    #[test]
    fn existing_sdk_integration_maps_to_its_iam_action() {
        let ctx = PolicyContext::from_role(None, None);
        let doc = policy_document(
            &[Integration::Existing {
                resource: "arn:aws:states:::aws-sdk:elasticloadbalancingv2:describeTargetHealth"
                    .into(),
            }],
            &ctx,
        );
        assert_eq!(
            actions(&doc),
            vec!["elasticloadbalancing:DescribeTargetHealth"]
        );
    }
}
