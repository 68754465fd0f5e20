//! `piflow:cloudformation-deploy`: create or update a CloudFormation stack
//! through a change set.
//!
//! Input: `region`, `role_arn?`, `environment` (required), `stack`,
//! `template` (a file path relative to the working directory) or
//! `template_body` (the template inline), `parameters?` (`{Key: Value}`),
//! `capabilities?` (`["CAPABILITY_IAM", …]`), `tags?` (`{Key: Value}`),
//! `timeout_seconds?` (default 3600).
//!
//! `ValidateTemplate`, then `CreateChangeSet` (type CREATE when the stack
//! does not exist, UPDATE otherwise; the change set's name and client token
//! derive from the idempotency token, so a re-invocation finds the change
//! set it made instead of making another), wait for the change set, then
//! `ExecuteChangeSet` and poll `DescribeStacks` until a terminal status.
//! A change set without changes is deleted and the output is
//! `{stack, status: "UNCHANGED"}`. A stack that ends rolled back or failed
//! fails `CloudFormation.Failed` with its first failed resource events.
//!
//! Test hook: [`CfnDeploy::endpoint`] sends the CloudFormation calls to
//! another endpoint (a wiremock that injects a failed deployment).

use std::time::{Duration, Instant};

use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudformation::types as cfn_t;
use serde_json::{Map, Value, json};

use super::AuditHandle;
use super::aws_step;
use piflow_engine::{Failure, TaskRequest};

const STEP: &str = "CloudFormation";
/// CloudFormation's limit for an inline `TemplateBody`.
const MAX_BODY: usize = 51_200;

/// The step and its test hooks.
#[derive(Clone)]
pub struct CfnDeploy {
    pub store: AuditHandle,
    /// A CloudFormation endpoint (tests); `None`: the standard configuration.
    pub endpoint: Option<String>,
    /// How often the change set and the stack are read while waiting.
    pub poll: Duration,
}

impl CfnDeploy {
    pub fn new(store: AuditHandle) -> Self {
        CfnDeploy {
            store,
            endpoint: None,
            poll: Duration::from_secs(5),
        }
    }
}

super::real_time_step!(CfnDeploy);

fn fail(reason: &str, cause: impl Into<String>) -> Failure {
    Failure::new(format!("{STEP}.{reason}"), cause)
}

/// An SDK error's code and text.
fn err_text<E, R>(e: &aws_sdk_cloudformation::error::SdkError<E, R>) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or("").to_string();
    let text = match e.code() {
        Some(c) => format!("{c}: {}", e.message().unwrap_or("")),
        None => format!("{}", DisplayErrorContext(e)),
    };
    (code, text)
}

fn aws_err<E, R>(e: aws_sdk_cloudformation::error::SdkError<E, R>, what: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (_, text) = err_text(&e);
    fail("AwsFailed", format!("{what}: {text}"))
}

/// Is this the message of a change set that has nothing to do?
fn no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// The change set name for an idempotency token (`[A-Za-z][-A-Za-z0-9]*`).
pub fn change_set_name(token: &str) -> String {
    let h = piflow_engine::sha256_hex(token.as_bytes());
    format!("piflow-{}", &h[..32.min(h.len())])
}

/// The parsed input.
struct Spec {
    stack: String,
    body: String,
    /// Where the template came from (for messages).
    source: String,
    parameters: Vec<(String, String)>,
    capabilities: Vec<String>,
    tags: Vec<(String, String)>,
    timeout: Duration,
}

/// A JSON scalar as a CloudFormation string value.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(a) => a
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

fn parse(request: &TaskRequest) -> Result<Spec, Failure> {
    let input = &request.input;
    let bad = |m: String| fail("InvalidInput", format!("state {}: {m}", request.state_name));
    let stack = input
        .get("stack")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad("piflow:cloudformation-deploy needs \"stack\" (the stack name) in its input".into())
        })?
        .to_string();
    let (body, source) = match (
        input.get("template_body").and_then(Value::as_str),
        input.get("template"),
    ) {
        (Some(b), _) => (b.to_string(), "template_body".to_string()),
        (None, Some(Value::String(path))) => {
            let full = std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| path.into());
            let body = std::fs::read_to_string(&full).map_err(|e| {
                bad(format!(
                    "cannot read the template file {path} ({}): {e}; the path is relative to the working directory",
                    full.display()
                ))
            })?;
            (body, path.clone())
        }
        _ => {
            return Err(bad(
                "piflow:cloudformation-deploy needs \"template\" (a file path) or \"template_body\" (the template) in its input".into(),
            ));
        }
    };
    if body.len() > MAX_BODY {
        return Err(bad(format!(
            "the template {source} has {} bytes; CloudFormation takes at most {MAX_BODY} bytes inline: shrink it or split it into nested stacks",
            body.len()
        )));
    }
    let pairs = |k: &str| -> Result<Vec<(String, String)>, Failure> {
        match input.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(key, v)| {
                    scalar(v).map(|s| (key.clone(), s)).ok_or_else(|| {
                        bad(format!(
                            "{k}.{key} must be a string, number, boolean or list, not {v}"
                        ))
                    })
                })
                .collect(),
            Some(v) => Err(bad(format!(
                "\"{k}\" must be an object {{Key: Value}}, not {v}"
            ))),
        }
    };
    let parameters = pairs("parameters")?;
    let tags = pairs("tags")?;
    let capabilities = match input.get("capabilities") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| {
                c.as_str().map(str::to_string).ok_or_else(|| {
                    bad(format!(
                        "\"capabilities\" must list strings such as CAPABILITY_IAM, not {c}"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(bad(format!("\"capabilities\" must be a list, not {v}"))),
    };
    let timeout = match input.get("timeout_seconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => v.as_u64().ok_or_else(|| {
            bad(format!(
                "\"timeout_seconds\" must be a whole number, not {v}"
            ))
        })?,
    };
    Ok(Spec {
        stack,
        body,
        source,
        parameters,
        capabilities,
        tags,
        timeout: Duration::from_secs(timeout),
    })
}

/// One invocation's context.
struct Run {
    step: CfnDeploy,
    request: TaskRequest,
    env: String,
    spec: Spec,
    cfn: aws_sdk_cloudformation::Client,
    name: String,
    deadline: Instant,
}

impl CfnDeploy {
    async fn run(self, request: TaskRequest) -> Result<Value, Failure> {
        let env = aws_step::environment(&request, STEP)?;
        let spec = parse(&request)?;
        let sdk = aws_step::sdk_config(&request, STEP).await?;
        let cfn = match &self.endpoint {
            Some(url) => aws_sdk_cloudformation::Client::from_conf(
                aws_sdk_cloudformation::config::Builder::from(&sdk)
                    .endpoint_url(url)
                    .build(),
            ),
            None => aws_sdk_cloudformation::Client::new(&sdk),
        };
        let name = change_set_name(&request.idempotency_token);
        let deadline = Instant::now() + spec.timeout;
        let run = Run {
            step: self,
            request,
            env,
            spec,
            cfn,
            name,
            deadline,
        };
        run.deploy().await
    }
}

impl Run {
    /// An audit record (deduplicated per token, action and `key`).
    async fn audited(
        &self,
        key: &str,
        before: Value,
        after: Value,
        result: &str,
    ) -> Result<(), Failure> {
        aws_step::record(
            &self.step.store,
            &self.request,
            STEP,
            aws_step::Change {
                env: &self.env,
                action: "cloudformation.deploy",
                target: &self.spec.stack,
                before,
                after,
                result,
                token: format!(
                    "{}#cloudformation.deploy#{key}",
                    self.request.idempotency_token
                ),
            },
        )
        .await?;
        Ok(())
    }

    /// The after record; a failure to write it is logged, not returned
    /// (the side effect already happened).
    async fn after(&self, after: Value, result: &str) {
        if let Err(e) = self.audited("after", Value::Null, after, result).await {
            tracing::warn!(stack = %self.spec.stack, error = ?e.cause, "audit record not written");
        }
    }

    async fn describe_stack(&self) -> Result<Option<cfn_t::Stack>, Failure> {
        match self
            .cfn
            .describe_stacks()
            .stack_name(&self.spec.stack)
            .send()
            .await
        {
            Ok(out) => Ok(out.stacks().first().cloned()),
            Err(e) => {
                let (code, text) = err_text(&e);
                if code == "ValidationError" && text.contains("does not exist") {
                    Ok(None)
                } else {
                    Err(fail(
                        "AwsFailed",
                        format!("DescribeStacks {}: {text}", self.spec.stack),
                    ))
                }
            }
        }
    }

    async fn describe_change_set(
        &self,
    ) -> Result<
        Option<aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput>,
        Failure,
    > {
        match self
            .cfn
            .describe_change_set()
            .stack_name(&self.spec.stack)
            .change_set_name(&self.name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) => {
                let (code, text) = err_text(&e);
                if code.starts_with("ChangeSetNotFound") || text.contains("does not exist") {
                    Ok(None)
                } else {
                    Err(fail(
                        "AwsFailed",
                        format!(
                            "DescribeChangeSet {} of stack {}: {text}",
                            self.name, self.spec.stack
                        ),
                    ))
                }
            }
        }
    }

    fn timed_out(&self, what: &str) -> Option<Failure> {
        (Instant::now() >= self.deadline).then(|| {
            fail(
                "Timeout",
                format!(
                    "stack {}: {what} after {} s (timeout_seconds); the deployment may still be running: look at the stack's events in the console, then run the step again",
                    self.spec.stack,
                    self.spec.timeout.as_secs()
                ),
            )
        })
    }

    async fn deploy(self) -> Result<Value, Failure> {
        let stack = self.describe_stack().await?;
        let status = stack
            .as_ref()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_string());
        let existing = self.describe_change_set().await?;
        let executed = existing.as_ref().is_some_and(|cs| {
            matches!(
                cs.execution_status().map(|s| s.as_str()),
                Some("EXECUTE_IN_PROGRESS" | "EXECUTE_COMPLETE" | "EXECUTE_FAILED")
            )
        });
        if executed {
            tracing::info!(stack = %self.spec.stack, change_set = %self.name, "change set already executed: waiting for the stack");
            return self.wait_stack().await;
        }
        if existing.is_none() {
            if !self.create_change_set(status.as_deref()).await? {
                return Ok(json!({"stack": self.spec.stack, "status": "UNCHANGED"}));
            }
        } else {
            tracing::info!(stack = %self.spec.stack, change_set = %self.name, "change set already created: reusing it");
        }
        let cs = self.wait_change_set().await?;
        let Some(cs_id) = cs else {
            return Ok(json!({"stack": self.spec.stack, "status": "UNCHANGED"}));
        };
        self.cfn
            .execute_change_set()
            .stack_name(&self.spec.stack)
            .change_set_name(&self.name)
            .client_request_token(&self.name)
            .send()
            .await
            .map_err(|e| {
                aws_err(
                    e,
                    &format!(
                        "ExecuteChangeSet {} ({cs_id}) of stack {}",
                        self.name, self.spec.stack
                    ),
                )
            })?;
        tracing::info!(stack = %self.spec.stack, change_set = %self.name, "change set executing");
        self.wait_stack().await
    }

    /// Create the change set: `false` when there is nothing to change.
    async fn create_change_set(&self, status: Option<&str>) -> Result<bool, Failure> {
        let stack = &self.spec.stack;
        let kind = match status {
            None | Some("REVIEW_IN_PROGRESS") => cfn_t::ChangeSetType::Create,
            Some("ROLLBACK_COMPLETE") => {
                return Err(fail(
                    "StackRollbackComplete",
                    format!(
                        "stack {stack} is in ROLLBACK_COMPLETE: its creation failed and was rolled back, and such a stack cannot be updated; delete it (aws cloudformation delete-stack --stack-name {stack}) and run the step again to create it anew"
                    ),
                ));
            }
            Some(s) if s.ends_with("_IN_PROGRESS") => {
                return Err(fail(
                    "StackBusy",
                    format!(
                        "stack {stack} is in {s}: another operation is running on it; wait until it ends, then run the step again"
                    ),
                ));
            }
            Some("DELETE_COMPLETE") => cfn_t::ChangeSetType::Create,
            Some(_) => cfn_t::ChangeSetType::Update,
        };
        if let Err(e) = self
            .cfn
            .validate_template()
            .template_body(&self.spec.body)
            .send()
            .await
        {
            let (code, text) = err_text(&e);
            return Err(if code == "ValidationError" {
                invalid_template(&self.spec.source, stack, &text)
            } else {
                fail(
                    "AwsFailed",
                    format!("ValidateTemplate for stack {stack}: {text}"),
                )
            });
        }
        let params: Map<String, Value> = self
            .spec
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let before = json!({
            "stack_status": status,
            "change_set": self.name,
            "type": kind.as_str(),
            "template": self.spec.source,
            "parameters": params,
        });
        self.audited("before", before, Value::Null, "deploying")
            .await?;
        let mut req = self
            .cfn
            .create_change_set()
            .stack_name(stack)
            .change_set_name(&self.name)
            .client_token(&self.name)
            .change_set_type(kind)
            .template_body(&self.spec.body)
            .description(format!(
                "piflow {} state {}",
                self.request.execution, self.request.state_name
            ));
        for (k, v) in &self.spec.parameters {
            req = req.parameters(
                cfn_t::Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build(),
            );
        }
        for c in &self.spec.capabilities {
            req = req.capabilities(cfn_t::Capability::from(c.as_str()));
        }
        for (k, v) in &self.spec.tags {
            let tag = cfn_t::Tag::builder().key(k).value(v).build();
            req = req.tags(tag);
        }
        match req.send().await {
            Ok(out) => {
                tracing::info!(stack = %stack, change_set = %self.name, id = out.id().unwrap_or(""), "change set created");
                Ok(true)
            }
            Err(e) => {
                let (code, text) = err_text(&e);
                if code == "ValidationError" && no_changes(&text) {
                    // Some implementations refuse an empty change set at
                    // once instead of failing it.
                    tracing::info!(stack = %stack, "no changes");
                    self.after(json!({"status": "UNCHANGED"}), "unchanged")
                        .await;
                    return Ok(false);
                }
                let f = if code == "ValidationError" {
                    invalid_template(&self.spec.source, stack, &text)
                } else {
                    fail(
                        "AwsFailed",
                        format!("CreateChangeSet for stack {stack}: {text}"),
                    )
                };
                self.after(json!({"error": f.cause}), "failed").await;
                Err(f)
            }
        }
    }

    /// Wait until the change set is ready: `Some(id)` to execute, `None`
    /// when it had no changes (it is deleted).
    async fn wait_change_set(&self) -> Result<Option<String>, Failure> {
        loop {
            let Some(cs) = self.describe_change_set().await? else {
                return Err(fail(
                    "AwsFailed",
                    format!(
                        "change set {} of stack {} vanished while waiting for it (deleted by someone else?); run the step again",
                        self.name, self.spec.stack
                    ),
                ));
            };
            let status = cs.status().map(|s| s.as_str()).unwrap_or("");
            match status {
                "CREATE_COMPLETE" => {
                    return Ok(Some(cs.change_set_id().unwrap_or(&self.name).to_string()));
                }
                "FAILED" => {
                    let reason = cs.status_reason().unwrap_or("").to_string();
                    if no_changes(&reason) {
                        if let Err(e) = self
                            .cfn
                            .delete_change_set()
                            .stack_name(&self.spec.stack)
                            .change_set_name(&self.name)
                            .send()
                            .await
                        {
                            tracing::warn!(stack = %self.spec.stack, error = %err_text(&e).1, "empty change set not deleted");
                        }
                        tracing::info!(stack = %self.spec.stack, "no changes");
                        self.after(json!({"status": "UNCHANGED"}), "unchanged")
                            .await;
                        return Ok(None);
                    }
                    let f = invalid_template(
                        &self.spec.source,
                        &self.spec.stack,
                        &format!("change set {} failed: {reason}", self.name),
                    );
                    self.after(json!({"error": f.cause}), "failed").await;
                    return Err(f);
                }
                _ => {}
            }
            if let Some(f) = self.timed_out(&format!("change set {} still {status}", self.name)) {
                return Err(f);
            }
            tokio::time::sleep(self.step.poll).await;
        }
    }

    async fn wait_stack(&self) -> Result<Value, Failure> {
        loop {
            let Some(s) = self.describe_stack().await? else {
                return Err(fail(
                    "Failed",
                    format!(
                        "stack {} does not exist after executing change set {}",
                        self.spec.stack, self.name
                    ),
                ));
            };
            let status = s
                .stack_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            match status.as_str() {
                "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" => {
                    let outputs: Map<String, Value> = s
                        .outputs()
                        .iter()
                        .map(|o| {
                            (
                                o.output_key().unwrap_or("").to_string(),
                                json!(o.output_value().unwrap_or("")),
                            )
                        })
                        .collect();
                    let out = json!({
                        "stack": self.spec.stack,
                        "stack_id": s.stack_id(),
                        "status": status,
                        "outputs": outputs,
                        "change_set": self.name,
                    });
                    self.after(out.clone(), "succeeded").await;
                    tracing::info!(stack = %self.spec.stack, %status, "stack deployed");
                    return Ok(out);
                }
                st if st.ends_with("_IN_PROGRESS") => {}
                st => {
                    let events = self.failed_events().await;
                    let rolled_back = st.ends_with("ROLLBACK_COMPLETE");
                    let estate = if rolled_back {
                        "CloudFormation rolled the stack back, so its resources are as before"
                    } else {
                        "the rollback did not complete, so the stack may be half-changed: fix the cause, then continue the rollback (aws cloudformation continue-update-rollback) or delete the stack"
                    };
                    let remedy = if st == "ROLLBACK_COMPLETE" {
                        format!(
                            "; a stack whose creation was rolled back cannot be updated: delete it (aws cloudformation delete-stack --stack-name {}) before running the step again",
                            self.spec.stack
                        )
                    } else {
                        String::new()
                    };
                    let cause = format!(
                        "stack {} ended {st} ({}) after change set {}: {}; {estate}{remedy}",
                        self.spec.stack,
                        s.stack_status_reason().unwrap_or("no reason given"),
                        self.name,
                        if events.is_empty() {
                            "no failed resource events".to_string()
                        } else {
                            events.join("; ")
                        },
                    );
                    self.after(json!({"status": st, "failed_resources": events}), "failed")
                        .await;
                    return Err(fail("Failed", cause));
                }
            }
            if let Some(f) = self.timed_out(&format!("still {status}")) {
                return Err(f);
            }
            tokio::time::sleep(self.step.poll).await;
        }
    }

    /// The first failed resource events (oldest first), as
    /// `LogicalId (Type) STATUS: reason`.
    async fn failed_events(&self) -> Vec<String> {
        let out = match self
            .cfn
            .describe_stack_events()
            .stack_name(&self.spec.stack)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                return vec![format!(
                    "(the stack's events could not be read: {})",
                    err_text(&e).1
                )];
            }
        };
        let stack = self.spec.stack.as_str();
        // Newest first: this operation's events end at the stack's own
        // CREATE_IN_PROGRESS / UPDATE_IN_PROGRESS.
        let mut failed: Vec<String> = out
            .stack_events()
            .iter()
            .take_while(|e| {
                !(e.logical_resource_id() == Some(stack)
                    && matches!(
                        e.resource_status().map(|s| s.as_str()),
                        Some("CREATE_IN_PROGRESS" | "UPDATE_IN_PROGRESS")
                    ))
            })
            .filter(|e| {
                e.resource_status()
                    .is_some_and(|s| s.as_str().ends_with("_FAILED"))
                    && e.logical_resource_id() != Some(stack)
            })
            .map(|e| {
                format!(
                    "{} ({}) {}: {}",
                    e.logical_resource_id().unwrap_or("?"),
                    e.resource_type().unwrap_or("?"),
                    e.resource_status().map(|s| s.as_str()).unwrap_or("?"),
                    e.resource_status_reason().unwrap_or("no reason given")
                )
            })
            .collect();
        // DescribeStackEvents lists the newest first.
        failed.reverse();
        failed.truncate(3);
        failed
    }
}

fn invalid_template(source: &str, stack: &str, text: &str) -> Failure {
    fail(
        "InvalidTemplate",
        format!("CloudFormation rejected the template {source} for stack {stack}: {text}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_stable() {
        let a = change_set_name("tok");
        assert_eq!(a, change_set_name("tok"));
        assert_ne!(a, change_set_name("tok2"));
        assert!(a.len() <= 128 && a.starts_with("piflow-"));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    fn req(input: Value) -> TaskRequest {
        TaskRequest {
            execution: "e".into(),
            state_name: "Stack".into(),
            resource: "piflow:cloudformation-deploy".into(),
            input,
            task_token: None,
            idempotency_token: "t".into(),
            credentials: None,
            attempt: 0,
        }
    }

    #[test]
    fn inputs_are_parsed_and_refused() {
        let s = parse(&req(json!({
            "stack": "app", "template_body": "{}",
            "parameters": {"A": 1, "B": ["x", "y"], "C": true},
            "capabilities": ["CAPABILITY_IAM"], "tags": {"t": "v"},
        })))
        .expect("valid");
        assert_eq!(
            s.parameters,
            vec![
                ("A".to_string(), "1".to_string()),
                ("B".into(), "x,y".into()),
                ("C".into(), "true".into())
            ]
        );
        assert_eq!(s.timeout, Duration::from_secs(3600));
        for bad in [
            json!({"template_body": "{}"}),
            json!({"stack": "app"}),
            json!({"stack": "app", "template": "no/such/file.yaml"}),
            json!({"stack": "app", "template_body": "{}", "parameters": ["A"]}),
            json!({"stack": "app", "template_body": "{}", "parameters": {"A": {"x": 1}}}),
            json!({"stack": "app", "template_body": "{}", "capabilities": "CAPABILITY_IAM"}),
            json!({"stack": "app", "template_body": "{}", "timeout_seconds": -1}),
            json!({"stack": "app", "template_body": "x".repeat(MAX_BODY + 1)}),
        ] {
            let e = parse(&req(bad.clone())).err().expect("refused");
            assert_eq!(e.error_name(), "CloudFormation.InvalidInput", "{bad}");
        }
    }

    #[test]
    fn no_change_messages() {
        assert!(no_changes(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(no_changes("No updates are to be performed."));
        assert!(!no_changes("Template format error"));
    }
}
