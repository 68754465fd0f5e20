//! `piflow deploy triggers`: piflow.yaml's trigger rules as EventBridge
//! rules whose target starts the workflow's Step Functions state machine.
//! docs/scale-out.md ("Triggers on EventBridge") describes the mapping.
//!
//! [`plan`] turns the configuration into [`RuleSpec`]s and refuses, naming
//! the rule, what EventBridge would refuse, before any API call; [`apply`]
//! makes the event bus match the plan (PutRule / PutTargets only where
//! DescribeRule / ListTargetsByRule differ) and removes the rules piflow
//! made earlier that the plan no longer has, only when asked to prune.

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use serde_json::{Value, json};

use piflow_triggers::config::{EventInput, TriggerConfig};

/// Every rule piflow creates is named `piflow-…`.
pub const RULE_PREFIX: &str = "piflow-";
/// Every rule piflow creates has a description starting with this.
pub const DESCRIPTION_MARKER: &str = "piflow trigger";
/// The id of the one target piflow puts on a rule.
pub const TARGET_ID: &str = "piflow";
/// EventBridge's limits: rule name length, event pattern length, input
/// template length.
pub const MAX_RULE_NAME: usize = 64;
pub const MAX_PATTERN_LEN: usize = 4096;
pub const MAX_TEMPLATE_LEN: usize = 8192;

/// An input transformer as EventBridge has it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransformerSpec {
    pub input_paths_map: IndexMap<String, String>,
    pub input_template: String,
}

/// The target of a rule: the workflow's state machine (alias).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetSpec {
    pub id: String,
    pub arn: String,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_transformer: Option<TransformerSpec>,
}

/// One EventBridge rule with its target.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleSpec {
    pub name: String,
    pub event_bus_name: String,
    pub description: String,
    pub event_pattern: Value,
    pub state: String,
    /// The piflow.yaml rule (`events: NAME` or `tags[N]`), not sent to AWS.
    #[serde(skip)]
    pub source: String,
    /// The workflow it starts, not sent to AWS.
    #[serde(skip)]
    pub workflow: String,
    pub targets: Vec<TargetSpec>,
}

/// Why `piflow deploy triggers` stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TriggersError {
    /// Refused before any API call.
    #[error("{rule}: {message}")]
    Invalid { rule: String, message: String },
    #[error(
        "{operation} ({target}) failed: {message}; check the region (AWS_REGION), the credentials (events:{operation} allowed) and the event bus"
    )]
    Api {
        operation: &'static str,
        target: String,
        message: String,
    },
}

impl TriggersError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        (
            "invalid-trigger",
            "a rule cannot become an EventBridge rule",
        ),
        ("deploy-failed", "an EventBridge call failed"),
    ];

    pub fn code(&self) -> &'static str {
        match self {
            TriggersError::Invalid { .. } => "invalid-trigger",
            TriggersError::Api { .. } => "deploy-failed",
        }
    }
}

/// What to plan with.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub event_bus: String,
    /// The role EventBridge assumes to start executions.
    pub role_arn: String,
    /// The CodeCommit repository whose tags the `tags:` rules watch; `None`
    /// refuses any `tags:` rule.
    pub codecommit_repo: Option<String>,
    /// Workflow name (as `piflow deploy` names the state machine) → target
    /// ARN (alias or state machine).
    pub targets: BTreeMap<String, String>,
}

/// The state machine name `piflow deploy` gives a workflow reference (a name
/// in workflows/ or a path): the file name without `.asl.yaml` & co.
pub fn workflow_machine_name(workflow: &str) -> String {
    let file = workflow.rsplit(['/', '\\']).next().unwrap_or(workflow);
    for ext in [
        ".asl.yaml",
        ".asl.yml",
        ".asl.json",
        ".yaml",
        ".yml",
        ".json",
    ] {
        if let Some(stem) = file.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    file.to_string()
}

/// Whether EventBridge accepts a rule name: 1–64 of `.`, `-`, `_`, letters
/// and digits.
pub fn check_rule_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_RULE_NAME {
        return Err(format!(
            "the EventBridge rule name {name:?} has {} characters; EventBridge allows 1 to {MAX_RULE_NAME}: shorten the rule's name",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "the EventBridge rule name {name:?} contains {c:?}; EventBridge allows letters, digits, '.', '-' and '_': rename the rule"
        ));
    }
    Ok(())
}

/// Whether EventBridge accepts an event pattern: a non-empty object whose
/// leaves are arrays, at most [`MAX_PATTERN_LEN`] characters as JSON.
pub fn check_pattern(pattern: &Value) -> Result<(), String> {
    fn leaves(v: &Value, path: &str) -> Result<(), String> {
        match v {
            Value::Object(m) => {
                if m.is_empty() {
                    return Err(format!(
                        "{path} is an empty object; EventBridge refuses it: give it a field with an array of values"
                    ));
                }
                for (k, v) in m {
                    leaves(v, &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            Value::Array(a) if a.is_empty() => Err(format!(
                "{path} is an empty array; EventBridge refuses it: list at least one value"
            )),
            Value::Array(_) => Ok(()),
            _ => Err(format!(
                "{path} is a {}, not an array; EventBridge wants every match value in an array, e.g. [{v}]",
                kind(v)
            )),
        }
    }
    if !pattern.is_object() {
        return Err(format!("the pattern is a {}, not an object", kind(pattern)));
    }
    leaves(pattern, "pattern")?;
    let len = pattern.to_string().len();
    if len > MAX_PATTERN_LEN {
        return Err(format!(
            "the pattern is {len} characters as JSON; EventBridge allows {MAX_PATTERN_LEN}: split the rule"
        ));
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The literal text a tag pattern starts with (before its first
/// placeholder).
pub fn tag_literal_prefix(pattern: &str) -> &str {
    pattern.split('<').next().unwrap_or_default()
}

/// The event pattern of a `tags:` rule: a tag created in `repo_arn` whose
/// name starts with the tag pattern's literal prefix (every tag when the
/// pattern starts with a placeholder). piflow's grammar (fields, versions,
/// regions) is not checked by EventBridge.
pub fn tag_event_pattern(repo_arn: &str, tag_pattern: &str) -> Value {
    let prefix = tag_literal_prefix(tag_pattern);
    let mut detail = json!({
        "event": ["referenceCreated"],
        "referenceType": ["tag"],
    });
    if !prefix.is_empty() {
        detail["referenceName"] = json!([{"prefix": prefix}]);
    }
    json!({
        "source": ["aws.codecommit"],
        "detail-type": ["CodeCommit Repository State Change"],
        "resources": [repo_arn],
        "detail": detail,
    })
}

/// The input transformer of a `tags:` rule: the tag and its commit.
pub fn tag_transformer(workflow: &str) -> TransformerSpec {
    let mut map = IndexMap::new();
    for (k, v) in [
        ("id", "$.id"),
        ("time", "$.time"),
        ("repository", "$.detail.repositoryName"),
        ("tag", "$.detail.referenceName"),
        ("commit", "$.detail.commitId"),
    ] {
        map.insert(k.to_string(), v.to_string());
    }
    TransformerSpec {
        input_paths_map: map,
        input_template: format!(
            "{{\"trigger\": {{\"source\": \"aws.codecommit\", \"event\": <id>, \"time\": <time>, \"repository\": <repository>, \"tag\": <tag>, \"commit\": <commit>, \"workflow\": {}}}}}",
            Value::String(workflow.to_string())
        ),
    }
}

/// The EventBridge rules for a configuration. `raw` is piflow.yaml as JSON
/// (the input transformers' text exactly as written). Every refusal names
/// the rule and comes before any API call.
pub fn plan(
    config: &TriggerConfig,
    raw: &Value,
    options: &PlanOptions,
) -> Result<Vec<RuleSpec>, TriggersError> {
    let mut out: Vec<RuleSpec> = Vec::new();
    let target_for = |rule: &str, workflow: &str| -> Result<String, TriggersError> {
        let machine = workflow_machine_name(workflow);
        options
            .targets
            .get(&machine)
            .cloned()
            .ok_or_else(|| TriggersError::Invalid {
                rule: rule.to_string(),
                message: format!(
                    "workflow {workflow} has no deployed state machine named {machine}: run `piflow deploy {workflow} --to stepfunctions --role-arn ARN` first, or give --alias-arn {machine}=ARN"
                ),
            })
    };
    for rule in &config.events {
        let label = format!("events: {}", rule.name);
        let name = format!("{RULE_PREFIX}{}", rule.name);
        check_rule_name(&name).map_err(|message| TriggersError::Invalid {
            rule: label.clone(),
            message,
        })?;
        check_pattern(&rule.pattern_json).map_err(|message| TriggersError::Invalid {
            rule: label.clone(),
            message,
        })?;
        let arn = target_for(&label, &rule.workflow)?;
        let raw_rule = &raw["events"][rule.index];
        let (input_path, input_transformer) = match &rule.input {
            EventInput::Event => (None, None),
            EventInput::Path(p) => (Some(p.as_str().to_string()), None),
            EventInput::Transformer(_) => {
                let t = &raw_rule["input_transformer"];
                let template =
                    t["input_template"]
                        .as_str()
                        .ok_or_else(|| TriggersError::Invalid {
                            rule: label.clone(),
                            message: "input_transformer.input_template is not a string".into(),
                        })?;
                if template.len() > MAX_TEMPLATE_LEN {
                    return Err(TriggersError::Invalid {
                        rule: label,
                        message: format!(
                            "input_template is {} characters; EventBridge allows {MAX_TEMPLATE_LEN}",
                            template.len()
                        ),
                    });
                }
                let mut map = IndexMap::new();
                if let Some(m) = t["input_paths_map"].as_object() {
                    for (k, v) in m {
                        let v = v.as_str().ok_or_else(|| TriggersError::Invalid {
                            rule: label.clone(),
                            message: format!("input_paths_map.{k} is not a string"),
                        })?;
                        map.insert(k.clone(), v.to_string());
                    }
                }
                (
                    None,
                    Some(TransformerSpec {
                        input_paths_map: map,
                        input_template: template.to_string(),
                    }),
                )
            }
        };
        out.push(RuleSpec {
            name,
            event_bus_name: options.event_bus.clone(),
            description: format!(
                "{DESCRIPTION_MARKER} (piflow.yaml events: {}) starts workflow {}",
                rule.name, rule.workflow
            ),
            event_pattern: rule.pattern_json.clone(),
            state: "ENABLED".into(),
            source: label,
            workflow: rule.workflow.clone(),
            targets: vec![TargetSpec {
                id: TARGET_ID.into(),
                arn,
                role_arn: options.role_arn.clone(),
                input_path,
                input_transformer,
            }],
        });
    }
    for rule in &config.tags {
        let label = format!("tags[{}] {}", rule.index, rule.pattern.as_str());
        let Some(repo) = options.codecommit_repo.as_deref() else {
            return Err(TriggersError::Invalid {
                rule: label,
                message: "a tags: rule needs the CodeCommit repository whose tags reach EventBridge: --codecommit-repo arn:aws:codecommit:REGION:ACCOUNT:NAME".into(),
            });
        };
        if !repo.starts_with("arn:") || !repo.contains(":codecommit:") {
            return Err(TriggersError::Invalid {
                rule: label,
                message: format!(
                    "--codecommit-repo {repo:?} is not a CodeCommit repository ARN (arn:aws:codecommit:REGION:ACCOUNT:NAME)"
                ),
            });
        }
        let machine = workflow_machine_name(&rule.workflow);
        let name = format!("{RULE_PREFIX}tags-{}-{machine}", rule.index);
        check_rule_name(&name).map_err(|message| TriggersError::Invalid {
            rule: label.clone(),
            message,
        })?;
        let pattern = tag_event_pattern(repo, rule.pattern.as_str());
        check_pattern(&pattern).map_err(|message| TriggersError::Invalid {
            rule: label.clone(),
            message,
        })?;
        let arn = target_for(&label, &rule.workflow)?;
        out.push(RuleSpec {
            name,
            event_bus_name: options.event_bus.clone(),
            description: format!(
                "{DESCRIPTION_MARKER} (piflow.yaml tags[{}]: {}) starts workflow {}",
                rule.index,
                rule.pattern.as_str(),
                rule.workflow
            ),
            event_pattern: pattern,
            state: "ENABLED".into(),
            source: label,
            workflow: rule.workflow.clone(),
            targets: vec![TargetSpec {
                id: TARGET_ID.into(),
                arn,
                role_arn: options.role_arn.clone(),
                input_path: None,
                input_transformer: Some(tag_transformer(&rule.workflow)),
            }],
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &out {
        if !seen.insert(r.name.clone()) {
            return Err(TriggersError::Invalid {
                rule: r.source.clone(),
                message: format!("another rule is also deployed as {}: rename one", r.name),
            });
        }
    }
    Ok(out)
}

/// The IAM policy of the role EventBridge assumes (`--role-arn`): start
/// executions of every target. Its trust policy names
/// `events.amazonaws.com`.
pub fn role_policy(rules: &[RuleSpec]) -> Value {
    let mut arns: Vec<String> = rules
        .iter()
        .flat_map(|r| r.targets.iter().map(|t| t.arn.clone()))
        .collect();
    arns.sort();
    arns.dedup();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PiflowTriggersStartExecution",
            "Effect": "Allow",
            "Action": "states:StartExecution",
            "Resource": arns,
        }]
    })
}

/// The trust policy of that role.
pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }]
    })
}

/// What [`apply`] did to one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    /// A piflow rule no longer in piflow.yaml, deleted (`--prune`).
    Deleted,
    /// A piflow rule no longer in piflow.yaml, kept (no `--prune`).
    Stale,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub rule: String,
    pub action: Action,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub arn: String,
}

fn api_err<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
    target: &str,
) -> impl FnOnce(aws_sdk_eventbridge::error::SdkError<E>) -> TriggersError {
    let target = target.to_string();
    move |e| {
        let message = match &e {
            aws_sdk_eventbridge::error::SdkError::ServiceError(s) => format!("{}", s.err()),
            other => format!("{}", aws_sdk_eventbridge::error::DisplayErrorContext(other)),
        };
        TriggersError::Api {
            operation,
            target,
            message,
        }
    }
}

fn build_err(operation: &'static str, target: &str) -> impl FnOnce(String) -> TriggersError {
    let target = target.to_string();
    move |message| TriggersError::Api {
        operation,
        target,
        message,
    }
}

/// The rule as deployed: (pattern, state, description, arn), or None.
async fn describe(
    client: &aws_sdk_eventbridge::Client,
    spec: &RuleSpec,
) -> Result<Option<(Option<Value>, String, String, String)>, TriggersError> {
    match client
        .describe_rule()
        .name(&spec.name)
        .event_bus_name(&spec.event_bus_name)
        .send()
        .await
    {
        Ok(out) => Ok(Some((
            out.event_pattern()
                .and_then(|p| serde_json::from_str::<Value>(p).ok()),
            out.state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            out.description().unwrap_or_default().to_string(),
            out.arn().unwrap_or_default().to_string(),
        ))),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(api_err("DescribeRule", &spec.name)(e)),
    }
}

async fn list_targets(
    client: &aws_sdk_eventbridge::Client,
    rule: &str,
    bus: &str,
) -> Result<Vec<TargetSpec>, TriggersError> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_targets_by_rule()
            .rule(rule)
            .event_bus_name(bus)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(api_err("ListTargetsByRule", rule))?;
        for t in page.targets() {
            out.push(TargetSpec {
                id: t.id().to_string(),
                arn: t.arn().to_string(),
                role_arn: t.role_arn().unwrap_or_default().to_string(),
                input_path: t.input_path().map(str::to_string),
                input_transformer: t.input_transformer().map(|x| TransformerSpec {
                    input_paths_map: x
                        .input_paths_map()
                        .map(|m| {
                            let mut sorted: Vec<_> = m.iter().collect();
                            sorted.sort();
                            sorted
                                .into_iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    input_template: x.input_template().to_string(),
                }),
            });
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

/// Targets compared regardless of the order of `InputPathsMap`.
fn same_targets(a: &[TargetSpec], b: &[TargetSpec]) -> bool {
    let norm = |v: &[TargetSpec]| -> Vec<Value> {
        let mut v: Vec<Value> = v
            .iter()
            .map(|t| {
                let mut t = t.clone();
                if let Some(x) = &mut t.input_transformer {
                    x.input_paths_map.sort_keys();
                }
                serde_json::to_value(t).unwrap_or(Value::Null)
            })
            .collect();
        v.sort_by_key(|x| x.to_string());
        v
    };
    norm(a) == norm(b)
}

fn sdk_target(t: &TargetSpec) -> Result<aws_sdk_eventbridge::types::Target, TriggersError> {
    use aws_sdk_eventbridge::types::{InputTransformer, Target};
    let transformer = match &t.input_transformer {
        Some(x) => Some(
            InputTransformer::builder()
                .set_input_paths_map(Some(
                    x.input_paths_map
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<HashMap<_, _>>(),
                ))
                .input_template(&x.input_template)
                .build()
                .map_err(|e| build_err("PutTargets", &t.arn)(e.to_string()))?,
        ),
        None => None,
    };
    Target::builder()
        .id(&t.id)
        .arn(&t.arn)
        .role_arn(&t.role_arn)
        .set_input_path(t.input_path.clone())
        .set_input_transformer(transformer)
        .build()
        .map_err(|e| build_err("PutTargets", &t.arn)(e.to_string()))
}

/// Make the event bus match `rules`; with `prune`, delete the piflow rules
/// (name `piflow-…`, description [`DESCRIPTION_MARKER`]) on the bus that
/// `rules` does not have, else report them as [`Action::Stale`].
pub async fn apply(
    client: &aws_sdk_eventbridge::Client,
    rules: &[RuleSpec],
    event_bus: &str,
    prune: bool,
) -> Result<Vec<Outcome>, TriggersError> {
    use aws_sdk_eventbridge::types::RuleState;
    let mut outcomes = Vec::new();
    for spec in rules {
        let current = describe(client, spec).await?;
        let targets = match &current {
            Some(_) => list_targets(client, &spec.name, &spec.event_bus_name).await?,
            None => Vec::new(),
        };
        let rule_same = current.as_ref().is_some_and(|(p, s, d, _)| {
            p.as_ref() == Some(&spec.event_pattern) && s == &spec.state && d == &spec.description
        });
        let targets_same = same_targets(&targets, &spec.targets);
        if rule_same && targets_same {
            let arn = current.map(|c| c.3).unwrap_or_default();
            tracing::info!(rule = %spec.name, "unchanged");
            outcomes.push(Outcome {
                rule: spec.name.clone(),
                action: Action::Unchanged,
                arn,
            });
            continue;
        }
        let mut arn = current.as_ref().map(|c| c.3.clone()).unwrap_or_default();
        if !rule_same {
            let out = client
                .put_rule()
                .name(&spec.name)
                .event_bus_name(&spec.event_bus_name)
                .event_pattern(spec.event_pattern.to_string())
                .state(RuleState::Enabled)
                .description(&spec.description)
                .send()
                .await
                .map_err(api_err("PutRule", &spec.name))?;
            arn = out.rule_arn().unwrap_or_default().to_string();
        }
        if !targets_same {
            let wanted: Vec<&str> = spec.targets.iter().map(|t| t.id.as_str()).collect();
            let extra: Vec<String> = targets
                .iter()
                .filter(|t| !wanted.contains(&t.id.as_str()))
                .map(|t| t.id.clone())
                .collect();
            if !extra.is_empty() {
                client
                    .remove_targets()
                    .rule(&spec.name)
                    .event_bus_name(&spec.event_bus_name)
                    .set_ids(Some(extra))
                    .send()
                    .await
                    .map_err(api_err("RemoveTargets", &spec.name))?;
            }
            let mut req = client
                .put_targets()
                .rule(&spec.name)
                .event_bus_name(&spec.event_bus_name);
            for t in &spec.targets {
                req = req.targets(sdk_target(t)?);
            }
            let out = req
                .send()
                .await
                .map_err(api_err("PutTargets", &spec.name))?;
            if out.failed_entry_count() > 0 {
                let why: Vec<String> = out
                    .failed_entries()
                    .iter()
                    .map(|f| {
                        format!(
                            "{}: {} {}",
                            f.target_id().unwrap_or_default(),
                            f.error_code().unwrap_or_default(),
                            f.error_message().unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(TriggersError::Api {
                    operation: "PutTargets",
                    target: spec.name.clone(),
                    message: why.join("; "),
                });
            }
        }
        let action = if current.is_some() {
            Action::Updated
        } else {
            Action::Created
        };
        tracing::info!(rule = %spec.name, action = ?action, "rule deployed");
        outcomes.push(Outcome {
            rule: spec.name.clone(),
            action,
            arn,
        });
    }

    // Rules piflow made earlier that piflow.yaml no longer has.
    let wanted: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let mut next: Option<String> = None;
    let mut stale = Vec::new();
    loop {
        let page = client
            .list_rules()
            .name_prefix(RULE_PREFIX)
            .event_bus_name(event_bus)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(api_err("ListRules", event_bus))?;
        for r in page.rules() {
            let name = r.name().unwrap_or_default();
            let ours = name.starts_with(RULE_PREFIX)
                && r.description()
                    .is_some_and(|d| d.starts_with(DESCRIPTION_MARKER));
            if ours && !wanted.contains(&name) {
                stale.push((name.to_string(), r.arn().unwrap_or_default().to_string()));
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    for (name, arn) in stale {
        if !prune {
            tracing::warn!(rule = %name, "not in piflow.yaml; kept (--prune deletes it)");
            outcomes.push(Outcome {
                rule: name,
                action: Action::Stale,
                arn,
            });
            continue;
        }
        let ids: Vec<String> = list_targets(client, &name, event_bus)
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect();
        if !ids.is_empty() {
            client
                .remove_targets()
                .rule(&name)
                .event_bus_name(event_bus)
                .set_ids(Some(ids))
                .send()
                .await
                .map_err(api_err("RemoveTargets", &name))?;
        }
        client
            .delete_rule()
            .name(&name)
            .event_bus_name(event_bus)
            .send()
            .await
            .map_err(api_err("DeleteRule", &name))?;
        tracing::info!(rule = %name, "deleted (--prune)");
        outcomes.push(Outcome {
            rule: name,
            action: Action::Deleted,
            arn,
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_pattern_uses_the_literal_prefix() {
        let p = tag_event_pattern("arn:aws:codecommit:us-east-1:1:r", "release/<version>");
        assert_eq!(
            p["detail"]["referenceName"],
            json!([{"prefix": "release/"}])
        );
        let p = tag_event_pattern(
            "arn:aws:codecommit:us-east-1:1:r",
            "<env>_<region>/<team>/<version>",
        );
        assert!(p["detail"].get("referenceName").is_none());
        assert_eq!(p["detail"]["referenceType"], json!(["tag"]));
    }

    #[test]
    fn rule_names_and_patterns_eventbridge_refuses() {
        assert!(check_rule_name("piflow-ok.name_1").is_ok());
        assert!(check_rule_name("piflow-bad name").is_err());
        assert!(check_rule_name(&"x".repeat(65)).is_err());
        assert!(check_pattern(&json!({"source": ["a"]})).is_ok());
        assert!(check_pattern(&json!({"source": "a"})).is_err());
        assert!(check_pattern(&json!({"detail": {}})).is_err());
        assert!(check_pattern(&json!({"source": [&"x".repeat(5000)]})).is_err());
    }
}
