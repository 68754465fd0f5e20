//! The driver for a service under the default `ECS` deployment controller:
//! an ECS-native deployment (blue/green, canary, linear or rolling) made by
//! one `UpdateService` and followed through `DescribeServiceDeployments` to
//! its end, while the release's gates watch it.
//!
//! Forward, for one service of a release (token `T/NAME`):
//!
//! 1. the task definition to roll: the family's latest revision when it
//!    already runs the image, else a new revision of the service's current
//!    one with only the container's image changed (audited before and
//!    after; tagged `piflow:token`);
//! 2. `deploy.update-service` `begin` is written, then `UpdateService`
//!    (task definition and `deploymentConfiguration`: the strategy, bake
//!    times, the circuit breaker with rollback, the release's alarms with
//!    rollback; the service's lifecycle hooks and percentages kept), then
//!    `deploy.update-service` `done` with the service deployment's ARN.
//!    `UpdateService` takes no client token (the ECS API has none), so the
//!    records make it idempotent: a re-invocation that finds `begin`
//!    without `done` looks for the deployment (`ListServiceDeployments`
//!    since `begin`, target revision on that task definition) before it
//!    would send a second one;
//! 3. the deployment is followed until it ends. While it runs, the gates
//!    ([`Watch`]) are asked on every poll; a gate that fails writes
//!    `deploy.stop` and calls `StopServiceDeployment` with `ROLLBACK`, and
//!    the driver waits for `ROLLBACK_SUCCESSFUL`. A `PAUSE` lifecycle hook
//!    waiting for an answer is answered after the gates:
//!    `ContinueServiceDeployment` `CONTINUE`, or `ROLLBACK` when a gate
//!    fails (audited as `deploy.hook`).
//!
//! A deployment ECS itself rolls back (circuit breaker, alarm) ends the
//! same way: [`Ended::RolledBack`], with ECS's reason.

use std::time::{Duration, Instant};

use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ecs::types as ecs_t;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::AuditHandle;
use piflow_engine::{AuditRecord, Failure, TaskRequest};

/// The step whose errors the driver raises.
pub(crate) const STEP: &str = "Release";

pub(crate) fn fail(reason: &str, cause: impl Into<String>) -> Failure {
    Failure::new(format!("{STEP}.{reason}"), cause)
}

/// An SDK error as a failure: `NotFound` for a missing resource, else
/// `AwsFailed`; the text names what was asked.
pub(crate) fn aws_err<E, R>(e: aws_sdk_ecs::error::SdkError<E, R>, what: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = match e.code() {
        Some(c) => format!("{c}: {}", e.message().unwrap_or("")),
        None => format!("{}", DisplayErrorContext(&e)),
    };
    if e.code().is_some_and(|c| c.contains("NotFound")) {
        fail(
            "NotFound",
            format!("{what}: {text} (check the name, the region and the account)"),
        )
    } else {
        fail("AwsFailed", format!("{what}: {text}"))
    }
}

/// How a release rolls its services (the environment's rollout policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    BlueGreen,
    Canary,
    Linear,
    Rolling,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "blue-green" | "all-at-once" => Strategy::BlueGreen,
            "canary" => Strategy::Canary,
            "linear" => Strategy::Linear,
            "rolling" => Strategy::Rolling,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::BlueGreen => "blue-green",
            Strategy::Canary => "canary",
            Strategy::Linear => "linear",
            Strategy::Rolling => "rolling",
        }
    }

    /// Does it move traffic between two target groups (so the service
    /// needs an alternate target group and a production listener rule)?
    pub fn shifts_traffic(self) -> bool {
        self != Strategy::Rolling
    }

    fn ecs(self) -> ecs_t::DeploymentStrategy {
        match self {
            Strategy::BlueGreen => ecs_t::DeploymentStrategy::BlueGreen,
            Strategy::Canary => ecs_t::DeploymentStrategy::Canary,
            Strategy::Linear => ecs_t::DeploymentStrategy::Linear,
            Strategy::Rolling => ecs_t::DeploymentStrategy::Rolling,
        }
    }
}

/// The rollout policy of a release.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub strategy: Strategy,
    /// Canary: the share of production traffic first moved; linear: each
    /// step's share.
    pub percent: f64,
    /// Canary: how long the canary bakes; linear: how long each step bakes.
    pub step_minutes: i32,
    /// How long the new revision bakes with all production traffic before
    /// the old one is removed.
    pub bake_minutes: i32,
    /// CloudWatch alarms ECS watches (rollback on) and the gates read.
    pub alarms: Vec<String>,
    /// How long one service's deployment may take before piflow stops it
    /// with a rollback.
    pub timeout: Duration,
}

impl Rollout {
    /// The rollout a rollback uses: all traffic at once, no bake, nothing
    /// watched but ECS's circuit breaker.
    pub fn for_rollback(&self, shifts: bool) -> Rollout {
        Rollout {
            strategy: if shifts {
                Strategy::BlueGreen
            } else {
                Strategy::Rolling
            },
            percent: 100.0,
            step_minutes: 0,
            bake_minutes: 0,
            alarms: Vec::new(),
            timeout: self.timeout,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "strategy": self.strategy.name(),
            "percent": self.percent,
            "step_minutes": self.step_minutes,
            "bake_minutes": self.bake_minutes,
            "alarms": self.alarms,
            "timeout_minutes": self.timeout.as_secs() / 60,
        })
    }

    /// The `deploymentConfiguration` of the `UpdateService`: the
    /// service's own percentages and lifecycle hooks kept.
    fn configuration(
        &self,
        current: Option<&ecs_t::DeploymentConfiguration>,
    ) -> Result<ecs_t::DeploymentConfiguration, Failure> {
        let mut b = ecs_t::DeploymentConfiguration::builder()
            .strategy(self.strategy.ecs())
            .deployment_circuit_breaker(
                ecs_t::DeploymentCircuitBreaker::builder()
                    .enable(true)
                    .rollback(true)
                    .build(),
            );
        if let Some(c) = current {
            b = b
                .set_maximum_percent(c.maximum_percent())
                .set_minimum_healthy_percent(c.minimum_healthy_percent());
            if !c.lifecycle_hooks().is_empty() {
                b = b.set_lifecycle_hooks(Some(c.lifecycle_hooks().to_vec()));
            }
        }
        if self.strategy.shifts_traffic() {
            b = b.bake_time_in_minutes(self.bake_minutes);
        }
        match self.strategy {
            Strategy::Canary => {
                b = b.canary_configuration(
                    ecs_t::CanaryConfiguration::builder()
                        .canary_percent(self.percent)
                        .canary_bake_time_in_minutes(self.step_minutes)
                        .build(),
                );
            }
            Strategy::Linear => {
                b = b.linear_configuration(
                    ecs_t::LinearConfiguration::builder()
                        .step_percent(self.percent)
                        .step_bake_time_in_minutes(self.step_minutes)
                        .build(),
                );
            }
            Strategy::BlueGreen | Strategy::Rolling => {}
        }
        if !self.alarms.is_empty() {
            b = b.alarms(
                ecs_t::DeploymentAlarms::builder()
                    .set_alarm_names(Some(self.alarms.clone()))
                    .enable(true)
                    .rollback(true)
                    .build()
                    .map_err(|e| fail("InvalidInput", format!("deployment alarms: {e}")))?,
            );
        }
        Ok(b.build())
    }
}

/// The gates a release runs while a deployment is in progress: `Some`
/// with the reason when the deployment must be rolled back.
pub trait Watch: Send + Sync {
    fn check<'a>(&'a self, service: &'a str, stage: &'a str) -> BoxFuture<'a, Option<String>>;
}

/// How a deployment ended.
#[derive(Debug, Clone)]
pub enum Ended {
    /// The target revision serves everything.
    Succeeded { deployment: Option<String> },
    /// Nothing was to do: the service runs the target already.
    Unchanged,
    /// ECS (or piflow through `StopServiceDeployment`) rolled it back: the
    /// service is on its source revision again.
    RolledBack { deployment: String, reason: String },
}

/// One service of a release, under the `ECS` controller.
pub struct Native<'a> {
    pub store: &'a AuditHandle,
    pub request: &'a TaskRequest,
    pub env: &'a str,
    pub ecs: &'a aws_sdk_ecs::Client,
    pub cluster: &'a str,
    /// The ECS service's name.
    pub service: &'a str,
    /// The release's token and the service (`T/NAME`, or `T/NAME.back`
    /// for its rollback): the key of every record the driver writes.
    pub token: String,
    /// The records of this release's token (read once when it began).
    pub records: &'a [AuditRecord],
    pub poll: Duration,
    /// Deploy even when the service runs the target already (new tasks).
    pub force: bool,
}

impl Native<'_> {
    fn target(&self) -> String {
        format!("{}/{}", self.cluster, self.service)
    }

    fn token_of(&self, action: &str, key: &str) -> String {
        format!("{}#{action}#{key}", self.token)
    }

    /// The record this driver wrote for `action`/`key`, if any.
    fn recorded(&self, action: &str, key: &str) -> Option<&AuditRecord> {
        let t = self.token_of(action, key);
        self.records
            .iter()
            .rev()
            .find(|r| r.entry.token.as_deref() == Some(t.as_str()))
    }

    /// Write a record (once per `action`/`key` under the token) before or
    /// after a change; a record that cannot be written stops the change.
    pub async fn audit(
        &self,
        action: &str,
        key: &str,
        before: Value,
        after: Value,
        result: &str,
    ) -> Result<AuditRecord, Failure> {
        let target = self.target();
        super::aws_step::record(
            self.store,
            self.request,
            STEP,
            super::aws_step::Change {
                env: self.env,
                action,
                target: &target,
                before,
                after,
                result,
                token: self.token_of(action, key),
            },
        )
        .await
    }

    pub async fn describe(&self) -> Result<ecs_t::Service, Failure> {
        describe_services(self.ecs, self.cluster, &[self.service.to_string()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                fail(
                    "NotFound",
                    format!(
                        "ECS service {} in cluster {}: not found",
                        self.service, self.cluster
                    ),
                )
            })
    }

    /// Roll the service to `task_definition` with `rollout`; `watch` (none
    /// for a rollback) is asked while it runs.
    pub async fn deploy(
        &self,
        task_definition: &str,
        rollout: &Rollout,
        watch: Option<&dyn Watch>,
    ) -> Result<Ended, Failure> {
        let svc = self.describe().await?;
        let current = svc.task_definition().unwrap_or_default().to_string();
        let arn = match self.recorded("deploy.update-service", "done") {
            Some(r) => r
                .entry
                .after
                .get("deployment")
                .and_then(Value::as_str)
                .map(str::to_string),
            None => None,
        };
        let arn = match (arn, self.recorded("deploy.update-service", "begin")) {
            (Some(a), _) => Some(a),
            (None, Some(begin)) => {
                // A crash between the request and its record: find what
                // the request made, if it reached ECS.
                let since = begin.entry.at - chrono::Duration::seconds(60);
                match self.find_deployment(task_definition, since).await? {
                    Some(a) => {
                        self.audit(
                            "deploy.update-service",
                            "done",
                            json!({"task_definition": current}),
                            json!({"task_definition": task_definition, "deployment": a, "found": true}),
                            "updated",
                        )
                        .await?;
                        Some(a)
                    }
                    None => None,
                }
            }
            (None, None) => None,
        };
        let arn = match arn {
            Some(a) => a,
            None if current == task_definition && !self.force => return Ok(Ended::Unchanged),
            None => self.update(&svc, task_definition, rollout).await?,
        };
        self.follow(&arn, rollout, watch).await
    }

    /// `UpdateService`, recorded before and after: the new deployment's ARN.
    async fn update(
        &self,
        svc: &ecs_t::Service,
        task_definition: &str,
        rollout: &Rollout,
    ) -> Result<String, Failure> {
        let current = svc.task_definition().unwrap_or_default().to_string();
        let config = rollout.configuration(svc.deployment_configuration())?;
        let before = json!({"task_definition": current});
        self.audit(
            "deploy.update-service",
            "begin",
            before.clone(),
            json!({"task_definition": task_definition, "rollout": rollout.json()}),
            "updating",
        )
        .await?;
        let out = self
            .ecs
            .update_service()
            .cluster(self.cluster)
            .service(self.service)
            .task_definition(task_definition)
            .deployment_configuration(config)
            .set_force_new_deployment(self.force.then_some(true))
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("updating ECS service {}", self.target())))?;
        let since = chrono::Utc::now() - chrono::Duration::seconds(120);
        let arn = match out
            .service()
            .and_then(|s| s.current_service_deployment())
            .map(str::to_string)
        {
            Some(a) => a,
            None => self
                .find_deployment(task_definition, since)
                .await?
                .ok_or_else(|| {
                    fail(
                        "AwsFailed",
                        format!(
                            "ECS service {}: UpdateService answered, but no service deployment to {task_definition} is listed",
                            self.target()
                        ),
                    )
                })?,
        };
        self.audit(
            "deploy.update-service",
            "done",
            before,
            json!({"task_definition": task_definition, "deployment": arn}),
            "updated",
        )
        .await?;
        Ok(arn)
    }

    /// The newest deployment of the service created since `since` whose
    /// target revision runs `task_definition`.
    async fn find_deployment(
        &self,
        task_definition: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, Failure> {
        let mut next: Option<String> = None;
        let mut candidates: Vec<(String, Option<String>)> = Vec::new();
        loop {
            let out = self
                .ecs
                .list_service_deployments()
                .cluster(self.cluster)
                .service(self.service)
                .created_at(
                    ecs_t::CreatedAt::builder()
                        .after(aws_sdk_ecs::primitives::DateTime::from_secs(
                            since.timestamp(),
                        ))
                        .build(),
                )
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| {
                    aws_err(
                        e,
                        &format!("listing the deployments of ECS service {}", self.target()),
                    )
                })?;
            for d in out.service_deployments() {
                if let Some(a) = d.service_deployment_arn() {
                    candidates.push((
                        a.to_string(),
                        d.target_service_revision_arn().map(str::to_string),
                    ));
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        let revisions: Vec<String> = candidates.iter().filter_map(|(_, r)| r.clone()).collect();
        if revisions.is_empty() {
            return Ok(None);
        }
        let mut on_target: Vec<String> = Vec::new();
        for chunk in revisions.chunks(20) {
            let out = self
                .ecs
                .describe_service_revisions()
                .set_service_revision_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| {
                    aws_err(
                        e,
                        &format!("reading the revisions of ECS service {}", self.target()),
                    )
                })?;
            for r in out.service_revisions() {
                if r.task_definition() == Some(task_definition)
                    && let Some(a) = r.service_revision_arn()
                {
                    on_target.push(a.to_string());
                }
            }
        }
        // ListServiceDeployments lists the newest first.
        Ok(candidates
            .into_iter()
            .find(|(_, r)| r.as_ref().is_some_and(|r| on_target.contains(r)))
            .map(|(a, _)| a))
    }

    pub async fn describe_deployment(
        &self,
        arn: &str,
    ) -> Result<ecs_t::ServiceDeployment, Failure> {
        let out = self
            .ecs
            .describe_service_deployments()
            .service_deployment_arns(arn)
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("service deployment {arn}")))?;
        if let Some(d) = out.service_deployments().first() {
            return Ok(d.clone());
        }
        let why = out
            .failures()
            .first()
            .and_then(|f| f.reason())
            .unwrap_or("not found");
        Err(fail(
            "NotFound",
            format!("service deployment {arn} of {}: {why}", self.target()),
        ))
    }

    /// Follow a deployment to its end, asking `watch` on every poll.
    async fn follow(
        &self,
        arn: &str,
        rollout: &Rollout,
        watch: Option<&dyn Watch>,
    ) -> Result<Ended, Failure> {
        use ecs_t::ServiceDeploymentStatus as S;
        let started = Instant::now();
        // A stop recorded as begun but not as sent is sent again.
        let mut stopping = self.recorded("deploy.stop", "done").is_some();
        // Why piflow stopped it (this invocation or one before it).
        let mut stopped_why: Option<String> = self
            .recorded("deploy.stop", "begin")
            .and_then(|r| r.entry.after.get("reason"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut resend = match (stopping, self.recorded("deploy.stop", "begin")) {
            (false, Some(r)) => r
                .entry
                .after
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        };
        loop {
            if started.elapsed() > rollout.timeout * 2 + Duration::from_secs(600) {
                return Err(fail(
                    "DeploymentFailed",
                    format!(
                        "ECS service {}: deployment {arn} neither finished nor rolled back within {} minutes; see the service's deployments in ECS",
                        self.target(),
                        (rollout.timeout * 2 + Duration::from_secs(600)).as_secs() / 60
                    ),
                ));
            }
            let d = self.describe_deployment(arn).await?;
            let status = d.status().cloned().unwrap_or(S::Pending);
            let stage = d
                .lifecycle_stage()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            match status {
                S::Successful => {
                    self.audit(
                        "deploy.done",
                        "done",
                        Value::Null,
                        self.deployment_json(&d),
                        "succeeded",
                    )
                    .await?;
                    return Ok(Ended::Succeeded {
                        deployment: Some(arn.to_string()),
                    });
                }
                S::RollbackSuccessful => {
                    let reason = match &stopped_why {
                        Some(why) => {
                            format!("piflow stopped it ({why}); ECS: {}", deployment_reason(&d))
                        }
                        None => deployment_reason(&d),
                    };
                    self.audit(
                        "deploy.done",
                        "rolled-back",
                        Value::Null,
                        self.deployment_json(&d),
                        "rolled-back",
                    )
                    .await?;
                    return Ok(Ended::RolledBack {
                        deployment: arn.to_string(),
                        reason,
                    });
                }
                S::Stopped | S::RollbackFailed => {
                    let reason = deployment_reason(&d);
                    self.audit(
                        "deploy.done",
                        "failed",
                        Value::Null,
                        self.deployment_json(&d),
                        "failed",
                    )
                    .await?;
                    return Err(fail(
                        "DeploymentFailed",
                        format!(
                            "ECS service {}: deployment {arn} ended {}: {reason}",
                            self.target(),
                            status.as_str()
                        ),
                    ));
                }
                S::Pending | S::InProgress if !stopping => {
                    let timed_out = started.elapsed() > rollout.timeout;
                    let problem = if let Some(why) = resend.take() {
                        Some(why)
                    } else if timed_out {
                        Some(format!(
                            "the deployment did not finish within {} minutes (stage {stage})",
                            rollout.timeout.as_secs() / 60
                        ))
                    } else {
                        match watch {
                            Some(w) => w.check(self.service, &stage).await,
                            None => None,
                        }
                    };
                    let waiting: Vec<&ecs_t::DeploymentLifecycleHookDetail> = d
                        .lifecycle_hook_details()
                        .iter()
                        .filter(|h| {
                            h.status().map(|s| s.as_str()) == Some("AWAITING_ACTION")
                                && h.target_type()
                                    == Some(&ecs_t::DeploymentLifecycleHookTargetType::Pause)
                        })
                        .collect();
                    if let Some(why) = &problem {
                        stopped_why = Some(why.clone());
                    }
                    match (problem, waiting.first()) {
                        (Some(why), Some(hook)) => {
                            self.answer_hook(arn, hook, &stage, Some(&why)).await?;
                            stopping = true;
                        }
                        (Some(why), None) => {
                            self.stop(arn, &stage, &why).await?;
                            stopping = true;
                        }
                        (None, Some(hook)) => {
                            self.answer_hook(arn, hook, &stage, None).await?;
                        }
                        (None, None) => {}
                    }
                }
                _ => {}
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// `ContinueServiceDeployment` for a paused hook: `CONTINUE`, or
    /// `ROLLBACK` with the gate's reason.
    async fn answer_hook(
        &self,
        arn: &str,
        hook: &ecs_t::DeploymentLifecycleHookDetail,
        stage: &str,
        problem: Option<&str>,
    ) -> Result<(), Failure> {
        let id = hook.hook_id().unwrap_or_default().to_string();
        let action = if problem.is_some() {
            ecs_t::DeploymentLifecycleHookAction::Rollback
        } else {
            ecs_t::DeploymentLifecycleHookAction::Continue
        };
        let before = json!({"deployment": arn, "hook": id, "stage": stage});
        let after = json!({"action": action.as_str(), "reason": problem});
        self.audit(
            "deploy.hook",
            &format!("{id}:begin"),
            before.clone(),
            after.clone(),
            "answering",
        )
        .await?;
        if problem.is_some() {
            self.audit(
                "deploy.stop",
                "begin",
                before.clone(),
                json!({"reason": problem, "through": "lifecycle hook"}),
                "stopping",
            )
            .await?;
        }
        match self
            .ecs
            .continue_service_deployment()
            .service_deployment_arn(arn)
            .hook_id(&id)
            .action(action)
            .send()
            .await
        {
            Ok(_) => {}
            // Answered already (a re-invocation) or timed out meanwhile:
            // the next poll reads what ECS did.
            Err(e) if e.code().is_some_and(|c| c.contains("Conflict")) => {}
            Err(e) => {
                return Err(aws_err(
                    e,
                    &format!("answering lifecycle hook {id} of deployment {arn}"),
                ));
            }
        }
        self.audit(
            "deploy.hook",
            &format!("{id}:done"),
            before.clone(),
            after,
            "answered",
        )
        .await?;
        if problem.is_some() {
            self.audit(
                "deploy.stop",
                "done",
                before,
                json!({"reason": problem, "through": "lifecycle hook"}),
                "stop-requested",
            )
            .await?;
        }
        Ok(())
    }

    /// `StopServiceDeployment` with `ROLLBACK`, recorded before and after.
    pub async fn stop(&self, arn: &str, stage: &str, why: &str) -> Result<(), Failure> {
        let before = json!({"deployment": arn, "stage": stage});
        tracing::warn!(service = %self.target(), %stage, reason = %why, "stopping the deployment with a rollback");
        self.audit(
            "deploy.stop",
            "begin",
            before.clone(),
            json!({"reason": why}),
            "stopping",
        )
        .await?;
        match self
            .ecs
            .stop_service_deployment()
            .service_deployment_arn(arn)
            .stop_type(ecs_t::StopServiceDeploymentStopType::Rollback)
            .send()
            .await
        {
            Ok(_) => {}
            // Rolling back or ended meanwhile: the next poll reads it.
            Err(e) if e.code().is_some_and(|c| c.contains("Conflict")) => {}
            Err(e) => {
                return Err(aws_err(
                    e,
                    &format!("stopping deployment {arn} of {}", self.target()),
                ));
            }
        }
        self.audit(
            "deploy.stop",
            "done",
            before,
            json!({"reason": why, "stop_type": "ROLLBACK"}),
            "stop-requested",
        )
        .await?;
        Ok(())
    }

    fn deployment_json(&self, d: &ecs_t::ServiceDeployment) -> Value {
        json!({
            "deployment": d.service_deployment_arn(),
            "status": d.status().map(|s| s.as_str()),
            "status_reason": d.status_reason(),
            "stage": d.lifecycle_stage().map(|s| s.as_str()),
            "rollback": d.rollback().map(|r| json!({"reason": r.reason(), "revision": r.service_revision_arn()})),
            "alarms": d.alarms().map(|a| json!({"status": a.status().map(|s| s.as_str()), "triggered": a.triggered_alarm_names()})),
            "circuit_breaker": d.deployment_circuit_breaker().map(|c| json!({"status": c.status().map(|s| s.as_str()), "failures": c.failure_count(), "threshold": c.threshold()})),
        })
    }
}

/// Why a deployment ended as it did, in ECS's words.
fn deployment_reason(d: &ecs_t::ServiceDeployment) -> String {
    let mut parts: Vec<String> = Vec::new();
    let clean = |r: &str| r.trim().trim_end_matches('.').to_string();
    if let Some(r) = d.status_reason().filter(|r| !r.is_empty()) {
        parts.push(clean(r));
    }
    if let Some(r) = d
        .rollback()
        .and_then(|r| r.reason())
        .filter(|r| !r.is_empty())
        && !parts.iter().any(|p| *p == clean(r))
    {
        parts.push(clean(r));
    }
    if let Some(a) = d.alarms()
        && !a.triggered_alarm_names().is_empty()
    {
        parts.push(format!(
            "alarm(s) {} triggered",
            a.triggered_alarm_names().join(", ")
        ));
    }
    if parts.is_empty() {
        "no reason given".into()
    } else {
        parts.join("; ")
    }
}

/// DescribeServices in chunks of 10 (the API's limit); a service ECS
/// reports as missing is absent from the answer.
pub async fn describe_services(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    names: &[String],
) -> Result<Vec<ecs_t::Service>, Failure> {
    let mut found = Vec::new();
    for chunk in names.chunks(10) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("ECS cluster {cluster}")))?;
        found.extend(
            out.services()
                .iter()
                .filter(|s| s.status() != Some("INACTIVE"))
                .cloned(),
        );
    }
    Ok(found)
}

/// Which container of a task definition an image goes to: `container`,
/// else the first.
pub fn container_index(
    defs: &[ecs_t::ContainerDefinition],
    container: Option<&str>,
) -> Option<usize> {
    match container {
        Some(c) => defs.iter().position(|d| d.name() == Some(c)),
        None => (!defs.is_empty()).then_some(0),
    }
}

/// What putting `image` into a service's task definition takes.
pub enum Revision {
    /// The family's latest revision already runs the image: roll it
    /// (a re-invocation after a crash, or an image registered before).
    Reuse(String),
    /// Register a revision of `td` with container `idx`'s image changed
    /// ([`register_with_image`]).
    Register {
        td: Box<ecs_t::TaskDefinition>,
        idx: usize,
        family: String,
    },
}

/// Why [`plan_revision`] has no answer: an AWS error (with what was read),
/// or a task definition without the container.
pub enum RevisionError {
    Aws(
        String,
        Box<
            aws_sdk_ecs::error::SdkError<
                aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionError,
            >,
        >,
    ),
    Missing(String),
}

/// The revision to roll for `image`, from the service's `current` task
/// definition: the family's latest when it already runs the image, else a
/// new one to register. Shared by both ECS drivers.
pub async fn plan_revision(
    ecs: &aws_sdk_ecs::Client,
    current: &str,
    container: Option<&str>,
    image: &str,
) -> Result<Revision, RevisionError> {
    let cur = ecs
        .describe_task_definition()
        .task_definition(current)
        .send()
        .await
        .map_err(|e| RevisionError::Aws(format!("task definition {current}"), Box::new(e)))?;
    let Some(td) = cur.task_definition().cloned() else {
        return Err(RevisionError::Missing(format!(
            "task definition {current}: not found"
        )));
    };
    let family = td.family().unwrap_or_default().to_string();
    let Some(idx) = container_index(td.container_definitions(), container) else {
        return Err(RevisionError::Missing(format!(
            "task definition {current} has no container {}",
            container.unwrap_or("(none at all)")
        )));
    };
    let latest = ecs
        .describe_task_definition()
        .task_definition(&family)
        .send()
        .await
        .map_err(|e| RevisionError::Aws(format!("task definition family {family}"), Box::new(e)))?;
    if let Some(l) = latest.task_definition()
        && let Some(i) = container_index(l.container_definitions(), container)
        && l.container_definitions()[i].image() == Some(image)
        && let Some(arn) = l.task_definition_arn()
    {
        return Ok(Revision::Reuse(arn.to_string()));
    }
    Ok(Revision::Register {
        td: Box::new(td),
        idx,
        family,
    })
}

/// Register a revision of `td` with only container `idx`'s image changed
/// (every other field kept), tagged `piflow:token` = `token`: its ARN.
pub async fn register_with_image(
    ecs: &aws_sdk_ecs::Client,
    td: &ecs_t::TaskDefinition,
    idx: usize,
    image: &str,
    token: &str,
) -> Result<
    String,
    aws_sdk_ecs::error::SdkError<
        aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionError,
    >,
> {
    let mut defs = td.container_definitions().to_vec();
    if let Some(d) = defs.get_mut(idx) {
        d.image = Some(image.to_string());
    }
    let out = ecs
        .register_task_definition()
        .family(td.family().unwrap_or_default())
        .set_container_definitions(Some(defs))
        .set_network_mode(td.network_mode.clone())
        .set_requires_compatibilities(td.requires_compatibilities.clone())
        .set_cpu(td.cpu.clone())
        .set_memory(td.memory.clone())
        .set_task_role_arn(td.task_role_arn.clone())
        .set_execution_role_arn(td.execution_role_arn.clone())
        .set_volumes(td.volumes.clone())
        .set_placement_constraints(td.placement_constraints.clone())
        .set_pid_mode(td.pid_mode.clone())
        .set_ipc_mode(td.ipc_mode.clone())
        .set_proxy_configuration(td.proxy_configuration.clone())
        .set_ephemeral_storage(td.ephemeral_storage.clone())
        .set_runtime_platform(td.runtime_platform.clone())
        .tags(
            ecs_t::Tag::builder()
                .key("piflow:token")
                .value(token)
                .build(),
        )
        .send()
        .await?;
    Ok(out
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap_or_default()
        .to_string())
}
