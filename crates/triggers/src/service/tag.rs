//! Git tags as triggers: a tag resolved in a repository → the first
//! `tags:` rule it matches → the workflow's input → the checks → the
//! execution named after the tag (so the same tag twice is one execution)
//! → the `tag-moved` refusal → the `trigger.tag` audit record → the start.
//! A tag that starts nothing is a [`TagRefusal`], audited as
//! `trigger.refused`.
//!
//! Two callers: the command line (`piflow trigger tag`, `piflow watch`,
//! the git hooks) and `piflow serve`'s webhooks. Their records and reasons
//! differ in small ways kept as they were ([`TagSource`]).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::rules::{Lookup, Rules};
use super::workflow::{InputError, SchemaError, Workflow, WorkflowError};
use super::{TRIGGERS_ENV, TriggerService};
use crate::config::TagVars;
use crate::events::input_environment;
use crate::tags::{GitError, TagInfo, execution_name, git, resolve_tag};
use piflow_runner::{StartRequest, execution_id};
use piflow_store::{AuditEntry, AuditRecord, ExecutionRecord, Store, StoreError};

/// Where a tag comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSource {
    /// `piflow trigger tag`, `piflow watch` or a git hook; `repo` as shown
    /// in the records (canonical).
    Command { repo: String },
    /// A tag push to `piflow serve`'s webhooks, resolved in the clone `repo`.
    Webhook { repo: String },
}

impl TagSource {
    fn is_webhook(&self) -> bool {
        matches!(self, TagSource::Webhook { .. })
    }
}

/// A tag to trigger: what git holds about it, who pushed (or ran) it, and
/// where it comes from.
#[derive(Debug, Clone)]
pub struct TagEvent {
    pub info: TagInfo,
    /// `cli:USER`, `watch:USER`, `github:PUSHER`, `gitlab:USER`.
    pub actor: String,
    pub origin: TagSource,
}

impl TagEvent {
    pub fn tag(&self) -> &str {
        &self.info.name
    }
}

/// Why a tag starts nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// No rule accepts the tag, or one of its fields is malformed: the code
    /// `no-rule`, `malformed-version`, `malformed-region`, `malformed-env`
    /// or `malformed-team`.
    Rule(&'static str),
    /// The rule cannot build the input, or the input is too large or does
    /// not match the workflow's schema.
    InputInvalid,
    /// The rule's workflow is not there.
    NoWorkflow,
    /// The tag started an execution with another input: it was moved.
    TagMoved,
    /// The input the rule builds breaks its environment's policy
    /// (piflow.yaml `environments:`): `policy-loosened`, `policy-invalid`,
    /// `environment-unknown` or `environment-mismatch`.
    Policy(&'static str),
}

impl RefusalKind {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        ("no-rule", "no tag rule matches the tag"),
        ("malformed-version", "the tag's version is malformed"),
        ("malformed-region", "the tag's region is malformed"),
        ("malformed-env", "the tag's environment is malformed"),
        ("malformed-team", "the tag's team is malformed"),
        (
            "input-invalid",
            "the rule's input cannot be built or checked",
        ),
        ("no-workflow", "the rule's workflow is not there"),
        ("tag-moved", "the tag was moved to another commit"),
    ];

    pub fn code(self) -> &'static str {
        match self {
            RefusalKind::Rule(code) => code,
            RefusalKind::InputInvalid => "input-invalid",
            RefusalKind::NoWorkflow => "no-workflow",
            RefusalKind::TagMoved => "tag-moved",
            RefusalKind::Policy(code) => code,
        }
    }
}

/// A tag that starts nothing, with what its `trigger.refused` record holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{}] {reason}", self.code())]
pub struct TagRefusal {
    pub kind: RefusalKind,
    pub tag: String,
    /// The tag's `<env>`, when a rule captured one.
    pub env: Option<String>,
    pub reason: String,
    pub actor: String,
    pub commit: String,
    /// piflow.yaml, as shown.
    pub config: String,
    pub origin: TagSource,
}

impl TagRefusal {
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The environment the refusal is audited in: the tag's, else
    /// [`TRIGGERS_ENV`].
    pub fn audit_env(&self) -> &str {
        self.env.as_deref().unwrap_or(TRIGGERS_ENV)
    }

    /// The `trigger.refused` audit record.
    pub fn record(&self) -> AuditEntry {
        let code = self.code();
        let mut after = json!({"reason": self.reason, "code": code});
        if let TagSource::Command { repo } = &self.origin {
            after["repo"] = json!(repo);
        }
        after["commit"] = json!(self.commit);
        after["config"] = json!(self.config);
        AuditEntry {
            env: self.audit_env().to_string(),
            actor: self.actor.clone(),
            action: "trigger.refused".into(),
            target: self.tag.clone(),
            before: Value::Null,
            after,
            result: format!("refused: {code}"),
            execution: None,
            at: chrono::Utc::now(),
            token: None,
        }
    }
}

/// Why [`Rules::plan_tag`] stops.
#[derive(Debug, thiserror::Error)]
pub enum TagStop {
    /// Refused: audit it ([`TriggerService::refuse`]); nothing starts.
    #[error(transparent)]
    Refused(Box<TagRefusal>),
    /// The rule's workflow cannot be read or does not validate.
    #[error(transparent)]
    Workflow(WorkflowError),
    /// The workflow's input schema cannot be used.
    #[error(transparent)]
    Schema(SchemaError),
}

impl TagStop {
    pub fn code(&self) -> &'static str {
        match self {
            TagStop::Refused(r) => r.code(),
            TagStop::Workflow(e) => e.code(),
            TagStop::Schema(e) => e.code(),
        }
    }
}

/// A tag a rule accepted, its input checked: what
/// [`TriggerService::admit_tag`] records and the runner starts.
#[derive(Debug, Clone)]
pub struct TagPlan {
    pub event: TagEvent,
    /// The rule's position in `tags:` (0-based) and its pattern.
    pub rule: usize,
    pub pattern: String,
    /// The rule's `workflow:` text.
    pub rule_workflow: String,
    pub workflow: Arc<Workflow>,
    pub input: Value,
    /// The tag's `<env>`.
    pub env: Option<String>,
    /// The lease environment: the tag's, else the input's `environment`.
    pub lease_env: Option<String>,
    /// The execution's name (after the tag) and id (`WORKFLOW:NAME`).
    pub name: String,
    pub id: String,
    /// piflow.yaml, as shown.
    pub config: String,
}

impl TagPlan {
    pub fn tag(&self) -> &str {
        self.event.tag()
    }

    /// The runner's request: the execution named after the tag, holding
    /// the lease environment.
    pub fn start_request(&self, author: String, wait: bool) -> StartRequest {
        StartRequest {
            workflow: self.workflow.name.clone(),
            definition: self.workflow.definition.clone(),
            source_commit: self.workflow.source_commit(),
            author,
            name: Some(self.name.clone()),
            input: self.input.clone(),
            trigger: format!("git-tag:{}", self.tag()),
            env: self.lease_env.clone(),
            wait,
        }
    }

    /// The `trigger.tag` audit record; its token makes the same tag twice
    /// one record.
    pub fn record(&self) -> AuditEntry {
        let info = &self.event.info;
        let (webhook, repo) = match &self.event.origin {
            TagSource::Command { repo } => (false, repo),
            TagSource::Webhook { repo } => (true, repo),
        };
        let mut after = json!({
            "workflow": self.workflow.name,
            "execution": self.id,
            "rule": self.rule + 1,
        });
        if webhook {
            after["repo"] = json!(repo);
        }
        after["pattern"] = json!(self.pattern);
        if !webhook {
            after["repo"] = json!(repo);
        }
        after["commit"] = json!(info.commit);
        after["annotated"] = json!(info.annotated);
        after["tagger"] = json!(info.tagger());
        after["date"] = json!(info.date);
        AuditEntry {
            env: self
                .lease_env
                .clone()
                .unwrap_or_else(|| TRIGGERS_ENV.to_string()),
            actor: self.event.actor.clone(),
            action: "trigger.tag".into(),
            target: self.tag().to_string(),
            before: Value::Null,
            after,
            result: "accepted".into(),
            execution: Some(self.id.clone()),
            at: chrono::Utc::now(),
            token: Some(format!("trigger.tag:{}", self.id)),
        }
    }

    fn refusal(&self, kind: RefusalKind, reason: String) -> TagRefusal {
        refusal(&self.event, &self.config, self.env.clone(), kind, reason)
    }

    /// The refusal of a tag that started `existing` with another input.
    fn moved(&self, existing: &ExecutionRecord) -> TagRefusal {
        let (tag, id, commit) = (self.tag(), &self.id, &self.event.info.commit);
        let reason = if self.event.origin.is_webhook() {
            format!(
                "tag {tag:?} started execution {id} with another input; it now points at commit {commit}: a tag starts one execution, so tag a new version instead of moving it"
            )
        } else {
            let before = existing
                .input
                .pointer("/release/commit")
                .and_then(Value::as_str)
                .map(|c| format!(" (its input then named commit {c})"))
                .unwrap_or_default();
            format!(
                "tag {tag:?} started execution {id} on {} with another input{before}; it now points at commit {commit}: a tag starts one execution, so tag a new version instead of moving it",
                existing
                    .started
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        };
        self.refusal(RefusalKind::TagMoved, reason)
    }
}

fn refusal(
    event: &TagEvent,
    config: &str,
    env: Option<String>,
    kind: RefusalKind,
    reason: String,
) -> TagRefusal {
    TagRefusal {
        kind,
        tag: event.tag().to_string(),
        env,
        reason,
        actor: event.actor.clone(),
        commit: event.info.commit.clone(),
        config: config.to_string(),
        origin: event.origin.clone(),
    }
}

impl Rules {
    /// Match the tag against the `tags:` rules, build its input, find and
    /// load the workflow and check the input (the payload limit, then the
    /// schema).
    pub fn plan_tag(&self, event: &TagEvent) -> Result<TagPlan, TagStop> {
        let config = self.config();
        let shown = config.shown();
        let tag = event.tag();
        let webhook = event.origin.is_webhook();
        let refuse = |env: Option<String>, kind, reason| {
            TagStop::Refused(Box::new(refusal(event, &shown, env, kind, reason)))
        };
        let (rule, fields) = config
            .match_tag(tag)
            .map_err(|r| refuse(r.env, RefusalKind::Rule(r.code), r.reason))?;
        let env = fields.env.clone();
        let input = rule
            .input(&TagVars::new(fields, &event.info))
            .map_err(|e| {
                let reason = format!("rule {} of {shown}: {e}", rule.index + 1);
                refuse(env.clone(), RefusalKind::InputInvalid, reason)
            })?;
        let input = config.estate.apply(input).map_err(|e| {
            let reason = format!("rule {} of {shown}: {e}", rule.index + 1);
            refuse(env.clone(), RefusalKind::Policy(e.code), reason)
        })?;
        let workflow = match self.workflow(&rule.workflow) {
            Ok(w) => w,
            Err(Lookup::Failed(e)) => return Err(TagStop::Workflow(e)),
            Err(Lookup::NotLoaded) => {
                let reason = format!(
                    "rule {} names workflow {:?}, which was not loaded",
                    rule.index + 1,
                    rule.workflow
                );
                return Err(refuse(env, RefusalKind::NoWorkflow, reason));
            }
            Err(Lookup::NotFound) => {
                let base = config.base_dir();
                let looked = if rule.workflow.contains('/') || rule.workflow.contains('.') {
                    format!("no file {}", base.join(&rule.workflow).display())
                } else {
                    format!(
                        "no workflows/{}.asl.yaml (or .asl.yml, .asl.json, .yaml, .yml, .json) in {} or in the working directory",
                        rule.workflow,
                        base.display()
                    )
                };
                let reason = format!(
                    "rule {} of {shown} names workflow {:?}: {looked}",
                    rule.index + 1,
                    rule.workflow,
                );
                return Err(refuse(env, RefusalKind::NoWorkflow, reason));
            }
        };
        match workflow.check_input(&input) {
            Ok(()) => {}
            Err(InputError::Schema(e)) => return Err(TagStop::Schema(e)),
            Err(e) if webhook => {
                let reason = format!("tag {tag:?}: {e}");
                return Err(refuse(env, RefusalKind::InputInvalid, reason));
            }
            Err(e @ InputError::TooLarge { .. }) => {
                return Err(refuse(env, RefusalKind::InputInvalid, e.to_string()));
            }
            Err(InputError::Mismatch { schema, problems }) => {
                let reason = format!(
                    "the input rule {} of {shown} builds for tag {tag:?} does not match {}: {}",
                    rule.index + 1,
                    schema.display(),
                    problems.join("; ")
                );
                return Err(refuse(env, RefusalKind::InputInvalid, reason));
            }
        }
        let name = execution_name(tag);
        let id = execution_id(&workflow.name, &name);
        let lease_env = env.clone().or_else(|| input_environment(&input));
        Ok(TagPlan {
            event: event.clone(),
            rule: rule.index,
            pattern: rule.pattern.as_str().to_string(),
            rule_workflow: rule.workflow.clone(),
            workflow,
            input,
            env,
            lease_env,
            name,
            id,
            config: shown,
        })
    }
}

/// What [`TriggerService::admit_tag`] found.
#[derive(Debug, Clone)]
pub enum Admission {
    /// Recorded (`trigger.tag`): start it ([`TagPlan::start_request`]). On
    /// the command line this includes a tag triggered before with the same
    /// input: the runner answers with the existing execution.
    Start,
    /// A webhook's tag that started this execution already, with the same
    /// input: nothing is recorded or started again.
    Duplicate(Box<ExecutionRecord>),
}

/// Why [`TriggerService::admit_tag`] starts nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The tag was moved (`tag-moved`): audit it.
    #[error(transparent)]
    Refused(Box<TagRefusal>),
    /// The store could not say whether the execution exists.
    #[error(transparent)]
    Lookup(StoreError),
    /// The `trigger.tag` record could not be written: nothing may start.
    #[error("the trigger could not be recorded, so nothing was started: {0}")]
    Record(StoreError),
}

impl AdmitError {
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::Refused(r) => r.code(),
            AdmitError::Lookup(e) | AdmitError::Record(e) => e.code(),
        }
    }
}

/// Write a refusal's `trigger.refused` record.
pub async fn audit_refusal(
    store: &dyn Store,
    refusal: &TagRefusal,
) -> Result<AuditRecord, StoreError> {
    store.append_audit(refusal.record()).await
}

impl TriggerService {
    /// Audit a refusal (`trigger.refused`).
    pub async fn refuse(&self, refusal: &TagRefusal) -> Result<AuditRecord, StoreError> {
        audit_refusal(self.store.as_ref(), refusal).await
    }

    /// Refuse a tag moved since it started its execution, then write the
    /// `trigger.tag` record: after this the tag may start.
    pub async fn admit_tag(&self, plan: &TagPlan) -> Result<Admission, AdmitError> {
        match self.store.execution(&plan.id).await {
            Ok(Some(r)) if r.input != plan.input => {
                return Err(AdmitError::Refused(Box::new(plan.moved(&r))));
            }
            Ok(Some(r)) if plan.event.origin.is_webhook() => {
                return Ok(Admission::Duplicate(Box::new(r)));
            }
            Ok(_) => {}
            Err(e) => return Err(AdmitError::Lookup(e)),
        }
        self.store
            .append_audit(plan.record())
            .await
            .map_err(AdmitError::Record)?;
        Ok(Admission::Start)
    }

    /// The whole tag pipeline in one call: plan, audit a refusal, admit,
    /// start (and run to the end).
    pub async fn trigger_tag(
        &self,
        rules: &Rules,
        event: &TagEvent,
        author: String,
        wait: bool,
    ) -> Result<piflow_runner::Finished, TagTriggerError> {
        let plan = match rules.plan_tag(event) {
            Ok(p) => p,
            Err(TagStop::Refused(r)) => return Err(self.refused(r).await),
            Err(TagStop::Workflow(e)) => return Err(TagTriggerError::Workflow(e)),
            Err(TagStop::Schema(e)) => return Err(TagTriggerError::Schema(e)),
        };
        match self.admit_tag(&plan).await {
            Ok(Admission::Start) => {}
            Ok(Admission::Duplicate(r)) => return Err(TagTriggerError::Duplicate(r.id)),
            Err(AdmitError::Refused(r)) => return Err(self.refused(r).await),
            Err(AdmitError::Lookup(e) | AdmitError::Record(e)) => {
                return Err(TagTriggerError::Store(e));
            }
        }
        Ok(self.start(plan.start_request(author, wait)).await?)
    }

    async fn refused(&self, r: Box<TagRefusal>) -> TagTriggerError {
        if let Err(e) = self.refuse(&r).await {
            tracing::warn!(tag = %r.tag, error = %e, "the refusal could not be audited");
        }
        TagTriggerError::Refused(r)
    }
}

/// Why [`TriggerService::trigger_tag`] ran nothing.
#[derive(Debug, thiserror::Error)]
pub enum TagTriggerError {
    /// Refused, and audited.
    #[error(transparent)]
    Refused(Box<TagRefusal>),
    #[error(transparent)]
    Workflow(WorkflowError),
    #[error(transparent)]
    Schema(SchemaError),
    /// A webhook's tag whose execution exists (its id).
    #[error("tag already started execution {0}")]
    Duplicate(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Runner(#[from] piflow_runner::RunnerError),
}

impl TagTriggerError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[("duplicate", "the tag already started this execution")];

    pub fn code(&self) -> &'static str {
        match self {
            TagTriggerError::Refused(r) => r.code(),
            TagTriggerError::Workflow(e) => e.code(),
            TagTriggerError::Schema(e) => e.code(),
            TagTriggerError::Duplicate(_) => "duplicate",
            TagTriggerError::Store(e) => e.code(),
            TagTriggerError::Runner(e) => e.code(),
        }
    }
}

/// Resolve a pushed tag in a local clone, after `git fetch --tags` when it
/// has a remote (a failed fetch resolves with the tags already fetched).
/// Blocking: it runs git.
pub fn fetch_and_resolve(repo: &Path, tag: &str) -> Result<TagInfo, GitError> {
    let remotes = git(repo, &["remote"]).unwrap_or_default();
    if !remotes.trim().is_empty()
        && let Err(e) = git(repo, &["fetch", "--tags", "--quiet"])
    {
        tracing::warn!(error = %e, "git fetch --tags failed; resolving with the tags already fetched");
    }
    resolve_tag(repo, tag)
}
