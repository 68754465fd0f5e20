//! Scale-out to AWS Step Functions: translate a validated piflow definition
//! into a Step Functions definition, and deploy it (create or update the
//! state machine, publish a version, move an alias).
//!
//! The translation replaces every `piflow:` Task resource with a Step
//! Functions integration and copies everything else unchanged (same states,
//! same names, same paths). A step that Step Functions cannot run without
//! code (a loop, a decision over several calls, piflow's own store) must be
//! mapped to a Lambda function or an activity with `--task-arn`; otherwise
//! the translation fails, naming every such state at once, before any AWS
//! API is called. docs/scale-out.md has the mapping table.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use sha2::Digest;

use piflow_asl::{LoadOptions, StateMachine};

/// Step Functions' limit on a definition's size (bytes of JSON).
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;

/// The environment variable carrying the step's name into a CodeBuild build.
pub const CODEBUILD_STEP_VAR: &str = "PIFLOW_STEP";

/// What the translation needs beyond the definition.
#[derive(Debug, Clone, Default)]
pub struct TranslateOptions {
    /// The ARN partition of the generated resources (`aws`, `aws-cn`, …);
    /// empty means `aws`.
    pub partition: String,
    /// The CodeBuild project that runs `piflow:lint` and
    /// `piflow:security-scan`.
    pub codebuild_project: Option<String>,
    /// The store's DynamoDB table, for `piflow:audit-note`.
    pub table: Option<String>,
    /// The SNS topic that carries `piflow:approval`'s task token.
    pub approval_topic: Option<String>,
    /// `piflow:` resource (as written, e.g. `piflow:ecs-blue-green`) → a
    /// Lambda function or activity ARN that runs it.
    pub task_arns: BTreeMap<String, String>,
}

impl TranslateOptions {
    fn partition(&self) -> &str {
        if self.partition.is_empty() {
            "aws"
        } else {
            &self.partition
        }
    }
}

/// A service call the translated machine makes: the input of the IAM policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Integration {
    /// `codebuild:startBuild.sync` on a project.
    CodeBuildSync { project: String },
    /// `dynamodb:putItem` on a table.
    DynamoDbPutItem { table: String },
    /// `sns:publish.waitForTaskToken` on a topic.
    SnsPublish { topic: String },
    /// A Lambda function (directly, or `lambda:invoke.waitForTaskToken`).
    Lambda { arn: String },
    /// An activity: workers poll it; the machine's role needs nothing.
    Activity { arn: String },
    /// A resource the definition already named (not a `piflow:` step).
    Existing { resource: String },
}

/// A lossy or noteworthy mapping, reported next to the definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    pub state: String,
    pub message: String,
}

/// A translated definition.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The Step Functions definition.
    pub definition: Value,
    /// Every service call it makes (sorted, deduplicated).
    pub integrations: Vec<Integration>,
    /// What differs from running the workflow in piflow.
    pub notes: Vec<Note>,
}

impl Translation {
    /// The definition as Step Functions receives it (compact JSON).
    pub fn definition_text(&self) -> String {
        self.definition.to_string()
    }

    /// piflow's content hash of what is deployed: SHA-256 over the definition
    /// text and the execution role, hex.
    pub fn content_hash(&self, role_arn: &str) -> String {
        let mut h = sha2::Sha256::new();
        h.update(self.definition_text().as_bytes());
        h.update(b"\n");
        h.update(role_arn.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One state that cannot be translated as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The state, with its enclosing Parallel/Map states: `Restore/RestoreDatabase`.
    pub state: String,
    /// Its resource, as written.
    pub resource: String,
    pub message: String,
}

/// Why a definition cannot become a Step Functions definition.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TranslateError {
    /// The definition is not valid ASL (piflow validate explains).
    #[error("invalid definition: {0}")]
    Invalid(String),
    /// States that Step Functions cannot run as written: every one is listed.
    #[error("{}", unmappable_message(.problems))]
    Unmappable { problems: Vec<Problem> },
}

impl TranslateError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        ("invalid-definition", "the definition does not validate"),
        (
            "not-translatable",
            "states Step Functions cannot run as written",
        ),
    ];

    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            TranslateError::Invalid(_) => "invalid-definition",
            TranslateError::Unmappable { .. } => "not-translatable",
        }
    }
}

fn unmappable_message(problems: &[Problem]) -> String {
    let mut s = format!(
        "{} state(s) cannot run in Step Functions as written:",
        problems.len()
    );
    for p in problems {
        s.push_str(&format!("\n  - state {}: {}", p.state, p.message));
    }
    let mut give: BTreeSet<String> = BTreeSet::new();
    for p in problems {
        let option = [
            "--codebuild-project NAME",
            "--table TABLE",
            "--approval-topic ARN",
        ]
        .into_iter()
        .find(|o| p.message.contains(&format!("with {o}")));
        match option {
            Some(o) => {
                give.insert(o.to_string());
            }
            None if p.message.contains("--task-arn") => {
                give.insert(format!("--task-arn {}=ARN", p.resource));
            }
            None => {}
        }
    }
    if !give.is_empty() {
        s.push_str("\ngive: ");
        s.push_str(&give.into_iter().collect::<Vec<_>>().join(" "));
        s.push_str(
            " (--task-arn: a Lambda function or activity ARN, for any piflow: resource), or run the workflow in piflow",
        );
    }
    s
}

/// Why a built-in step needs code (a Lambda or an activity) in Step
/// Functions, or `None` when it has a direct integration.
fn needs_code(step: &str) -> Option<&'static str> {
    Some(match step {
        "health-gate" => {
            "decides open/closed from AWS Health events (us-east-1 with us-east-2 failover, failing closed with HealthGate.Closed): a decision over several health:DescribeEvents calls"
        }
        "ecs-blue-green" => {
            "is a loop (register the task definition, create the green task set, shift listener weights, bake while watching target health and alarms, switch primary, delete blue, roll back on failure, resume after a crash)"
        }
        "release" => {
            "is a loop over the product's services (one ECS-native deployment per service, wave after wave, followed to its end while AWS Health, alarms and smoke URLs are watched; every moved service rolled back on failure; resume after a crash)"
        }
        "cloudformation-deploy" => {
            "creates a change set, waits for it, executes it and waits for the stack (polling loops with piflow's failure decisions)"
        }
        "rds-restore" => {
            "restores a snapshot or a point in time and waits until the instance is available (a polling loop)"
        }
        "efs-restore" => {
            "starts an AWS Backup restore job and waits for it to finish (a polling loop)"
        }
        "repoint" => {
            "registers a task definition per service with the restored endpoints and updates each service (a loop over services)"
        }
        "http-check" => {
            "checks a list of URLs with attempts and intervals (Step Functions' HTTP task calls one endpoint through an EventBridge connection)"
        }
        "last-release" => "reads piflow's audit trail (a hash chain in the store)",
        _ => return None,
    })
}

/// Translate a definition (a JSON value: JSON or YAML source read into a
/// value) into a Step Functions definition. Validates it first; fails
/// listing every state that cannot be translated.
pub fn translate(
    source: &Value,
    options: &TranslateOptions,
) -> Result<Translation, TranslateError> {
    if let Err(e) = StateMachine::from_value(source, LoadOptions::default()) {
        return Err(TranslateError::Invalid(e.to_string()));
    }
    let mut definition = source.clone();
    let top_lang = source
        .get("QueryLanguage")
        .and_then(Value::as_str)
        .unwrap_or("JSONPath")
        .to_string();
    let mut t = Translator {
        options,
        top_lang,
        integrations: BTreeSet::new(),
        notes: Vec::new(),
        problems: Vec::new(),
    };
    if let Some(states) = definition.get_mut("States").and_then(Value::as_object_mut) {
        t.scope(states, "");
    }
    let size = definition.to_string().len();
    if size > MAX_DEFINITION_BYTES {
        t.problems.push(Problem {
            state: "(definition)".into(),
            resource: String::new(),
            message: format!(
                "the translated definition is {size} bytes; Step Functions accepts at most {MAX_DEFINITION_BYTES}: split it into nested state machines"
            ),
        });
    }
    if !t.problems.is_empty() {
        return Err(TranslateError::Unmappable {
            problems: t.problems,
        });
    }
    Ok(Translation {
        definition,
        integrations: t.integrations.into_iter().collect(),
        notes: t.notes,
    })
}

struct Translator<'a> {
    options: &'a TranslateOptions,
    top_lang: String,
    integrations: BTreeSet<Integration>,
    notes: Vec<Note>,
    problems: Vec<Problem>,
}

impl Translator<'_> {
    fn scope(&mut self, states: &mut Map<String, Value>, prefix: &str) {
        for (name, state) in states.iter_mut() {
            let path = format!("{prefix}{name}");
            let Some(obj) = state.as_object_mut() else {
                continue;
            };
            match obj.get("Type").and_then(Value::as_str) {
                Some("Task") => self.task(obj, &path),
                Some("Parallel") => {
                    if let Some(branches) = obj.get_mut("Branches").and_then(Value::as_array_mut) {
                        for (i, b) in branches.iter_mut().enumerate() {
                            if let Some(s) = b.get_mut("States").and_then(Value::as_object_mut) {
                                self.scope(s, &format!("{path}/Branches[{i}]/"));
                            }
                        }
                    }
                }
                Some("Map") => {
                    for key in ["ItemProcessor", "Iterator"] {
                        if let Some(s) = obj
                            .get_mut(key)
                            .and_then(|p| p.get_mut("States"))
                            .and_then(Value::as_object_mut)
                        {
                            self.scope(s, &format!("{path}/{key}/"));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn problem(&mut self, state: &str, resource: &str, message: String) {
        self.problems.push(Problem {
            state: state.to_string(),
            resource: resource.to_string(),
            message,
        });
    }

    fn note(&mut self, state: &str, message: String) {
        self.notes.push(Note {
            state: state.to_string(),
            message,
        });
    }

    fn task(&mut self, obj: &mut Map<String, Value>, path: &str) {
        let Some(resource) = obj
            .get("Resource")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return;
        };
        let Some(step) = resource.strip_prefix("piflow:") else {
            self.integrations.insert(Integration::Existing {
                resource: resource.clone(),
            });
            return;
        };
        let jsonata = obj
            .get("QueryLanguage")
            .and_then(Value::as_str)
            .unwrap_or(&self.top_lang)
            == "JSONata";
        let waits = step.ends_with(".waitForTaskToken");
        let base = step.trim_end_matches(".waitForTaskToken");

        if let Some(arn) = self.options.task_arns.get(&resource).cloned() {
            self.mapped(obj, path, &resource, &arn, waits, jsonata);
            return;
        }
        let template_key = if jsonata { "Arguments" } else { "Parameters" };
        if jsonata && matches!(base, "lint" | "security-scan" | "audit-note" | "approval") {
            self.problem(
                path,
                &resource,
                format!(
                    "{resource} in a JSONata state: piflow translates its Arguments only in JSONPath states; write the state with Parameters, or deploy it with --task-arn {resource}=ARN (a Lambda function or activity)"
                ),
            );
            return;
        }
        match base {
            "lint" | "security-scan" => self.codebuild(obj, path, &resource, base, template_key),
            "audit-note" => self.audit_note(obj, path, &resource),
            "approval" if waits => self.approval(obj, path, &resource),
            "approval" => self.problem(
                path,
                &resource,
                "piflow:approval waits for an answer: write it as piflow:approval.waitForTaskToken".into(),
            ),
            other => match needs_code(other) {
                Some(why) => self.problem(
                    path,
                    &resource,
                    format!(
                        "{resource} {why}, which Step Functions cannot express without code: deploy it with --task-arn {resource}=arn:aws:lambda:REGION:ACCOUNT:function:NAME (or an activity ARN), or run it in piflow"
                    ),
                ),
                None => self.problem(
                    path,
                    &resource,
                    format!(
                        "{resource} is not a built-in piflow step: deploy it with --task-arn {resource}=ARN (a Lambda function or activity)"
                    ),
                ),
            },
        }
    }

    /// `--task-arn RESOURCE=ARN`: a Lambda function or an activity runs the step.
    fn mapped(
        &mut self,
        obj: &mut Map<String, Value>,
        path: &str,
        resource: &str,
        arn: &str,
        waits: bool,
        jsonata: bool,
    ) {
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        let is_lambda =
            parts.len() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function";
        let is_activity =
            parts.len() >= 7 && parts[0] == "arn" && parts[2] == "states" && parts[5] == "activity";
        if is_activity {
            obj.insert("Resource".into(), Value::String(arn.to_string()));
            self.integrations.insert(Integration::Activity {
                arn: arn.to_string(),
            });
            self.note(
                path,
                format!("{resource} → activity {arn}: a worker must poll it (GetActivityTask) and answer with the task token"),
            );
            return;
        }
        if !is_lambda {
            self.problem(
                path,
                resource,
                format!(
                    "--task-arn {resource}={arn}: not a Lambda function ARN (arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME) or an activity ARN (arn:PARTITION:states:REGION:ACCOUNT:activity:NAME)"
                ),
            );
            return;
        }
        self.integrations.insert(Integration::Lambda {
            arn: arn.to_string(),
        });
        if !waits {
            // The function receives exactly the input piflow's step receives
            // and its result is the state's result.
            obj.insert("Resource".into(), Value::String(arn.to_string()));
            return;
        }
        if jsonata {
            self.problem(
                path,
                resource,
                format!(
                    "{resource} in a JSONata state with a Lambda function: piflow translates .waitForTaskToken payloads only in JSONPath states; use an activity ARN, or write the state with Parameters"
                ),
            );
            return;
        }
        let mut payload = match obj.remove("Parameters") {
            Some(Value::Object(m)) => m,
            _ => {
                self.note(
                    path,
                    format!(
                        "{resource} → {arn}: the function receives the state input under \"input\""
                    ),
                );
                let mut m = Map::new();
                m.insert("input.$".into(), json!("$"));
                m
            }
        };
        payload.insert("task_token.$".into(), json!("$$.Task.Token"));
        obj.insert(
            "Resource".into(),
            Value::String(format!(
                "arn:{}:states:::lambda:invoke.waitForTaskToken",
                self.options.partition()
            )),
        );
        obj.insert(
            "Parameters".into(),
            json!({"FunctionName": arn, "Payload": Value::Object(payload)}),
        );
        self.note(
            path,
            format!("{resource} → {arn} (lambda:invoke.waitForTaskToken): the function gets the token in \"task_token\"; answer with aws stepfunctions send-task-success"),
        );
    }

    /// `piflow:lint` / `piflow:security-scan` → `codebuild:startBuild.sync`.
    fn codebuild(
        &mut self,
        obj: &mut Map<String, Value>,
        path: &str,
        resource: &str,
        step: &str,
        template_key: &str,
    ) {
        let Some(project) = self.options.codebuild_project.clone() else {
            self.problem(
                path,
                resource,
                format!(
                    "{resource} runs on CodeBuild in Step Functions: give the project with --codebuild-project NAME (its buildspec runs the step from the PIFLOW_* variables), or deploy it with --task-arn {resource}=ARN"
                ),
            );
            return;
        };
        let mut vars = vec![
            json!({"Name": CODEBUILD_STEP_VAR, "Type": "PLAINTEXT", "Value": step}),
            json!({"Name": "PIFLOW_STATE", "Type": "PLAINTEXT", "Value": path}),
        ];
        match obj.remove(template_key) {
            Some(Value::Object(fields)) => {
                for (key, value) in fields {
                    vars.push(env_var(&key, value));
                }
            }
            _ => vars.push(json!({
                "Name": "PIFLOW_INPUT", "Type": "PLAINTEXT", "Value.$": "States.JsonToString($)"
            })),
        }
        obj.insert(
            "Resource".into(),
            Value::String(format!(
                "arn:{}:states:::codebuild:startBuild.sync",
                self.options.partition()
            )),
        );
        obj.insert(
            "Parameters".into(),
            json!({"ProjectName": project, "EnvironmentVariablesOverride": vars}),
        );
        self.integrations.insert(Integration::CodeBuildSync {
            project: project.clone(),
        });
        // A failed build fails the task with States.TaskFailed, not with the
        // step's own error: the Catchers and Retriers that name the step's
        // errors also get States.TaskFailed, so the same paths are taken.
        let prefix = if step == "lint" {
            "Lint."
        } else {
            "SecurityScan."
        };
        let mut widened = false;
        for key in ["Catch", "Retry"] {
            if let Some(list) = obj.get_mut(key).and_then(Value::as_array_mut) {
                for entry in list {
                    if let Some(errors) = entry.get_mut("ErrorEquals").and_then(Value::as_array_mut)
                    {
                        let names_step = errors
                            .iter()
                            .any(|e| e.as_str().is_some_and(|s| s.starts_with(prefix)));
                        let has = errors
                            .iter()
                            .any(|e| e == "States.TaskFailed" || e == "States.ALL");
                        if names_step && !has {
                            errors.push(json!("States.TaskFailed"));
                            widened = true;
                        }
                    }
                }
            }
        }
        self.note(
            path,
            format!(
                "{resource} → codebuild:startBuild.sync on project {project}: the result is the CodeBuild build, not piflow's findings summary{}",
                if widened {
                    format!("; a failed build is States.TaskFailed, added where the state catches or retries {prefix}*")
                } else {
                    String::new()
                }
            ),
        );
    }

    /// `piflow:audit-note` → `dynamodb:putItem` on the store table.
    fn audit_note(&mut self, obj: &mut Map<String, Value>, path: &str, resource: &str) {
        let Some(table) = self.options.table.clone() else {
            self.problem(
                path,
                resource,
                format!(
                    "{resource} writes to piflow's store table in Step Functions: give it with --table TABLE, or deploy it with --task-arn {resource}=ARN"
                ),
            );
            return;
        };
        let fields = match obj.get("Parameters") {
            Some(Value::Object(m))
                if m.contains_key("environment") || m.contains_key("environment.$") =>
            {
                m.clone()
            }
            _ => {
                self.problem(
                    path,
                    resource,
                    format!(
                        "{resource} without \"environment\" in its Parameters: the item's key is built from it at translation time; add Parameters with environment (a value or a path), or deploy it with --task-arn {resource}=ARN"
                    ),
                );
                return;
            }
        };
        let name = path.rsplit('/').next().unwrap_or(path).to_string();
        let mut item = Map::new();
        let mut after = Map::new();
        let special = |k: &str| -> Option<(&'static str, Value)> {
            match k {
                "environment" => Some(("env", Value::Null)),
                "outcome" => Some(("result", json!("noted"))),
                "action" => Some(("action", json!("note"))),
                "target" => Some(("target", json!(name))),
                "before" => Some(("before", Value::Null)),
                _ => None,
            }
        };
        let mut given: BTreeMap<&'static str, Value> = BTreeMap::new();
        for (key, value) in &fields {
            let (bare, is_path) = match key.strip_suffix(".$") {
                Some(b) => (b, true),
                None => (key.as_str(), false),
            };
            match special(bare) {
                Some((attr, _)) => {
                    let v = if attr == "before" {
                        json_attr(value, is_path)
                    } else {
                        string_attr(value, is_path)
                    };
                    given.insert(attr, v);
                }
                None => {
                    after.insert(bare.to_string(), json_attr(value, is_path));
                }
            }
        }
        for k in ["outcome", "action", "target", "before"] {
            if let Some((attr, default)) = special(k) {
                given.entry(attr).or_insert_with(|| {
                    if attr == "before" {
                        json!({"S": "null"})
                    } else {
                        json!({"S": default})
                    }
                });
            }
        }
        let env_expr = match fields.get("environment.$") {
            Some(Value::String(p)) => format!("States.Format('{}#{{}}', {p})", PENDING_PREFIX),
            _ => String::new(),
        };
        let pk = if env_expr.is_empty() {
            let env = fields
                .get("environment")
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default();
            json!({"S": format!("{PENDING_PREFIX}#{env}")})
        } else {
            json!({"S.$": env_expr})
        };
        item.insert("PK".into(), pk);
        item.insert(
            "SK".into(),
            json!({"S.$": "States.Format('{}#{}#{}', $$.State.EnteredTime, $$.Execution.Name, $$.State.Name)"}),
        );
        for (attr, v) in given {
            item.insert(attr.into(), v);
        }
        item.insert("after".into(), json!({"M": Value::Object(after)}));
        item.insert("actor".into(), json!({"S.$": "$$.Execution.Id"}));
        item.insert("execution".into(), json!({"S.$": "$$.Execution.Id"}));
        item.insert("at".into(), json!({"S.$": "$$.State.EnteredTime"}));
        item.insert(
            "token".into(),
            json!({"S.$": "States.Format('{}#{}#{}', $$.Execution.Id, $$.State.Name, $$.State.EnteredTime)"}),
        );
        item.insert("source".into(), json!({"S": "stepfunctions"}));
        obj.insert(
            "Resource".into(),
            Value::String(format!(
                "arn:{}:states:::dynamodb:putItem",
                self.options.partition()
            )),
        );
        obj.insert(
            "Parameters".into(),
            json!({"TableName": table, "Item": Value::Object(item)}),
        );
        self.integrations.insert(Integration::DynamoDbPutItem {
            table: table.clone(),
        });
        let result_null = obj.get("ResultPath") == Some(&Value::Null);
        self.note(
            path,
            format!(
                "{resource} → dynamodb:putItem on {table}: the record lands under PK {PENDING_PREFIX}#<env>, outside the hash chain (one putItem cannot read the chain's head){}",
                if result_null {
                    ""
                } else {
                    "; its result is putItem's, not {env, seq, hash}"
                }
            ),
        );
    }

    /// `piflow:approval.waitForTaskToken` → `sns:publish.waitForTaskToken`.
    fn approval(&mut self, obj: &mut Map<String, Value>, path: &str, resource: &str) {
        let Some(topic) = self.options.approval_topic.clone() else {
            self.problem(
                path,
                resource,
                format!(
                    "{resource} waits for a person in Step Functions: give the SNS topic that carries the task token with --approval-topic ARN, or deploy it with --task-arn {resource}=ARN"
                ),
            );
            return;
        };
        let mut message = match obj.remove("Parameters") {
            Some(Value::Object(m)) => m,
            _ => {
                let mut m = Map::new();
                m.insert("input.$".into(), json!("$"));
                m
            }
        };
        message.insert("token.$".into(), json!("$$.Task.Token"));
        message.insert("state".into(), json!(path));
        obj.insert(
            "Resource".into(),
            Value::String(format!(
                "arn:{}:states:::sns:publish.waitForTaskToken",
                self.options.partition()
            )),
        );
        obj.insert(
            "Parameters".into(),
            json!({"TopicArn": topic, "Message": Value::Object(message)}),
        );
        self.integrations.insert(Integration::SnsPublish {
            topic: topic.clone(),
        });
        self.note(
            path,
            format!(
                "{resource} → sns:publish.waitForTaskToken on {topic}: answer with aws stepfunctions send-task-success/--failure --task-token TOKEN (piflow approve answers piflow's own executions only); no approval.requested audit record is written"
            ),
        );
    }
}

/// The partition key prefix of audit records written by Step Functions.
pub const PENDING_PREFIX: &str = "AUDIT-PENDING";

/// A CodeBuild environment variable carrying one input field as JSON text.
fn env_var(key: &str, value: Value) -> Value {
    let (bare, is_path) = match key.strip_suffix(".$") {
        Some(b) => (b, true),
        None => (key, false),
    };
    let name = format!(
        "PIFLOW_{}",
        bare.chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            })
            .collect::<String>()
    );
    if is_path {
        let expr = value.as_str().unwrap_or("$");
        json!({"Name": name, "Type": "PLAINTEXT", "Value.$": format!("States.JsonToString({expr})")})
    } else {
        json!({"Name": name, "Type": "PLAINTEXT", "Value": value.to_string()})
    }
}

/// A DynamoDB string attribute: the value itself (a string) or its JSON text.
fn string_attr(value: &Value, is_path: bool) -> Value {
    match (is_path, value) {
        (true, Value::String(p)) => json!({"S.$": p}),
        (_, Value::String(s)) => json!({"S": s}),
        (_, other) => json!({"S": other.to_string()}),
    }
}

/// A DynamoDB string attribute holding a value's JSON text.
fn json_attr(value: &Value, is_path: bool) -> Value {
    match (is_path, value) {
        (true, Value::String(p)) => json!({"S.$": format!("States.JsonToString({p})")}),
        (_, other) => json!({"S": other.to_string()}),
    }
}

/// Why a deployment failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{operation} ({target}) failed: {message}; check the role ARN, the region (AWS_REGION) and the credentials (states:{operation} allowed)"
)]
pub struct DeployError {
    pub operation: &'static str,
    pub target: String,
    pub message: String,
}

impl DeployError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[("deploy-failed", "a Step Functions call failed")];

    pub fn code(&self) -> &'static str {
        "deploy-failed"
    }
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub name: String,
    pub role_arn: String,
    pub alias: String,
    /// The definition text (compact JSON).
    pub definition: String,
    /// [`Translation::content_hash`].
    pub content_hash: String,
}

/// What a deployment did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deployed {
    pub state_machine_arn: String,
    pub version_arn: String,
    pub alias_arn: String,
    pub content_hash: String,
    /// The state machine did not exist before.
    pub created: bool,
    /// A version was published (false: the alias already served this content).
    pub new_version: bool,
    /// The alias was created or moved.
    pub alias_moved: bool,
}

fn api_err<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
    target: &str,
) -> impl FnOnce(aws_sdk_sfn::error::SdkError<E>) -> DeployError {
    let target = target.to_string();
    move |e| {
        let message = match &e {
            aws_sdk_sfn::error::SdkError::ServiceError(s) => format!("{}", s.err()),
            other => format!("{}", aws_sdk_sfn::error::DisplayErrorContext(other)),
        };
        DeployError {
            operation,
            target,
            message,
        }
    }
}

/// The version description that carries piflow's content hash.
pub fn version_description(content_hash: &str) -> String {
    format!("piflow content sha256:{content_hash}")
}

/// Create or update the state machine named `request.name`, publish a
/// version unless the alias already serves the same content, and point the
/// alias at it (100%).
pub async fn deploy(
    client: &aws_sdk_sfn::Client,
    request: &DeployRequest,
) -> Result<Deployed, DeployError> {
    use aws_sdk_sfn::types::{RoutingConfigurationListItem, StateMachineType};
    let description = version_description(&request.content_hash);
    let existing = find_state_machine(client, &request.name).await?;
    let (machine_arn, created, current_alias) = match existing {
        Some(arn) => {
            let alias = find_alias(client, &arn, &request.alias).await?;
            (arn, false, alias)
        }
        None => (String::new(), true, None),
    };

    // Unchanged: the alias serves a version with this content hash.
    if let Some((alias_arn, Some(version_arn))) = &current_alias {
        let v = client
            .describe_state_machine()
            .state_machine_arn(version_arn)
            .send()
            .await
            .map_err(api_err("DescribeStateMachine", version_arn))?;
        if v.description() == Some(description.as_str()) {
            tracing::info!(machine = %machine_arn, version = %version_arn, "unchanged: no new version");
            return Ok(Deployed {
                state_machine_arn: machine_arn,
                version_arn: version_arn.clone(),
                alias_arn: alias_arn.clone(),
                content_hash: request.content_hash.clone(),
                created: false,
                new_version: false,
                alias_moved: false,
            });
        }
    }

    let (machine_arn, version_arn) = if created {
        let out = client
            .create_state_machine()
            .name(&request.name)
            .definition(&request.definition)
            .role_arn(&request.role_arn)
            .r#type(StateMachineType::Standard)
            .publish(true)
            .version_description(&description)
            .send()
            .await
            .map_err(api_err("CreateStateMachine", &request.name))?;
        let version = out
            .state_machine_version_arn()
            .unwrap_or_default()
            .to_string();
        (out.state_machine_arn().to_string(), version)
    } else {
        let out = client
            .update_state_machine()
            .state_machine_arn(&machine_arn)
            .definition(&request.definition)
            .role_arn(&request.role_arn)
            .publish(true)
            .version_description(&description)
            .send()
            .await
            .map_err(api_err("UpdateStateMachine", &machine_arn))?;
        let version = out
            .state_machine_version_arn()
            .unwrap_or_default()
            .to_string();
        (machine_arn, version)
    };
    if version_arn.is_empty() {
        return Err(DeployError {
            operation: "PublishStateMachineVersion",
            target: machine_arn,
            message: "the response carried no version ARN".into(),
        });
    }
    tracing::info!(machine = %machine_arn, version = %version_arn, created, "published");

    let route = RoutingConfigurationListItem::builder()
        .state_machine_version_arn(&version_arn)
        .weight(100)
        .build()
        .map_err(|e| DeployError {
            operation: "UpdateStateMachineAlias",
            target: version_arn.clone(),
            message: e.to_string(),
        })?;
    let alias_arn = match current_alias {
        Some((alias_arn, _)) => {
            client
                .update_state_machine_alias()
                .state_machine_alias_arn(&alias_arn)
                .routing_configuration(route)
                .send()
                .await
                .map_err(api_err("UpdateStateMachineAlias", &alias_arn))?;
            alias_arn
        }
        None => client
            .create_state_machine_alias()
            .name(&request.alias)
            .description(format!("piflow alias {}", request.alias))
            .routing_configuration(route)
            .send()
            .await
            .map_err(api_err("CreateStateMachineAlias", &request.alias))?
            .state_machine_alias_arn()
            .to_string(),
    };
    tracing::info!(alias = %alias_arn, version = %version_arn, "alias moved");
    Ok(Deployed {
        state_machine_arn: machine_arn,
        version_arn,
        alias_arn,
        content_hash: request.content_hash.clone(),
        created,
        new_version: true,
        alias_moved: true,
    })
}

/// The ARN of the state machine with this name, if any.
pub async fn find_state_machine(
    client: &aws_sdk_sfn::Client,
    name: &str,
) -> Result<Option<String>, DeployError> {
    let mut next: Option<String> = None;
    loop {
        let out = client
            .list_state_machines()
            .set_next_token(next.take())
            .send()
            .await
            .map_err(api_err("ListStateMachines", name))?;
        if let Some(m) = out.state_machines().iter().find(|m| m.name() == name) {
            return Ok(Some(m.state_machine_arn().to_string()));
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return Ok(None),
        }
    }
}

/// The alias `name` of a state machine: its ARN and the version it routes
/// most traffic to.
async fn find_alias(
    client: &aws_sdk_sfn::Client,
    machine_arn: &str,
    name: &str,
) -> Result<Option<(String, Option<String>)>, DeployError> {
    let wanted = format!("{machine_arn}:{name}");
    let mut next: Option<String> = None;
    let alias_arn = loop {
        let out = client
            .list_state_machine_aliases()
            .state_machine_arn(machine_arn)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(api_err("ListStateMachineAliases", machine_arn))?;
        if let Some(a) = out
            .state_machine_aliases()
            .iter()
            .find(|a| a.state_machine_alias_arn() == wanted)
        {
            break a.state_machine_alias_arn().to_string();
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return Ok(None),
        }
    };
    let out = client
        .describe_state_machine_alias()
        .state_machine_alias_arn(&alias_arn)
        .send()
        .await
        .map_err(api_err("DescribeStateMachineAlias", &alias_arn))?;
    let version = out
        .routing_configuration()
        .iter()
        .max_by_key(|r| r.weight())
        .map(|r| r.state_machine_version_arn().to_string());
    Ok(Some((alias_arn, version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(v: Value) -> Value {
        v
    }

    #[test]
    fn pass_and_choice_are_copied_unchanged() {
        let d = def(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "ResultPath": "$.x", "Next": "B"}, "B": {"Type": "Succeed"}}}),
        );
        let t = translate(&d, &TranslateOptions::default()).unwrap();
        assert_eq!(t.definition, d);
        assert!(t.integrations.is_empty());
    }

    #[test]
    fn unmapped_loop_step_is_named_with_the_remedy() {
        let d = json!({"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "piflow:ecs-blue-green", "End": true}}});
        let e = translate(&d, &TranslateOptions::default()).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("state B: piflow:ecs-blue-green is a loop"),
            "{s}"
        );
        assert!(s.contains("--task-arn piflow:ecs-blue-green=ARN"), "{s}");
    }

    #[test]
    fn codebuild_widens_catchers_naming_the_step_error() {
        let d = json!({"StartAt": "L", "States": {
            "L": {"Type": "Task", "Resource": "piflow:lint", "Parameters": {"path.$": "$.p", "policy": {"fail_on": "error"}},
                  "Catch": [{"ErrorEquals": ["Lint.Failed"], "Next": "F"}], "End": true},
            "F": {"Type": "Fail"}}});
        let o = TranslateOptions {
            codebuild_project: Some("piflow-checks".into()),
            ..Default::default()
        };
        let t = translate(&d, &o).unwrap();
        let l = &t.definition["States"]["L"];
        assert_eq!(l["Resource"], "arn:aws:states:::codebuild:startBuild.sync");
        assert_eq!(
            l["Catch"][0]["ErrorEquals"],
            json!(["Lint.Failed", "States.TaskFailed"])
        );
        let vars = l["Parameters"]["EnvironmentVariablesOverride"]
            .as_array()
            .unwrap();
        assert!(vars.contains(&json!({"Name": "PIFLOW_PATH", "Type": "PLAINTEXT", "Value.$": "States.JsonToString($.p)"})));
        assert!(vars.contains(&json!({"Name": "PIFLOW_POLICY", "Type": "PLAINTEXT", "Value": "{\"fail_on\":\"error\"}"})));
    }
}
