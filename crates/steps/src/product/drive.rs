//! Forward and back: each wave's services through their drivers (ECS-native
//! deployments, task sets for `EXTERNAL`), and every moved service back on
//! its release before.

use aws_sdk_ecs::types as ecs_t;
use serde_json::{Value, json};

use super::gates::Gates;
use super::{Before, Outcome, Run, Service, cause_of};
use crate::ecs_native::{
    Ended, Native, Revision, RevisionError, Strategy, aws_err, fail, plan_revision,
    register_with_image,
};
use piflow_engine::{Failure, TaskHandler};

impl Run {
    /// Every wave in turn; `Some(reason)` when a service failed (the
    /// other services of its wave were stopped).
    pub(super) async fn forward(
        &self,
        befores: &[Before],
        outcomes: &mut [Outcome],
    ) -> Option<String> {
        let gates = Gates::new(self);
        for (wi, wave) in self.plan.waves.iter().enumerate() {
            let results = futures::future::join_all(
                wave.iter()
                    .map(|i| self.forward_one(*i, &befores[*i], &gates)),
            )
            .await;
            let mut failed = Vec::new();
            for (i, o) in wave.iter().zip(results) {
                if matches!(o.outcome.as_str(), "rolled-back" | "failed") {
                    failed.push(format!(
                        "{}: {}",
                        self.plan.services[*i].name,
                        o.reason.clone().unwrap_or_else(|| o.outcome.clone())
                    ));
                }
                outcomes[*i] = o;
            }
            if !failed.is_empty() {
                return Some(format!("wave {}: {}", wi + 1, failed.join("; ")));
            }
        }
        // Every wave done: the gates once more, for the whole product.
        if let Some(why) = gates.final_check().await {
            return Some(format!("after every wave: {why}"));
        }
        None
    }

    /// One service, forward; a failure ends as an outcome (and stops the
    /// other services of the wave).
    async fn forward_one(&self, i: usize, before: &Before, gates: &Gates<'_>) -> Outcome {
        let s = &self.plan.services[i];
        if s.task_definition.is_none() && s.image.is_none() {
            // A release to recorded task definitions that do not name this
            // service (it joined the product later): it stays as it is.
            return Outcome {
                outcome: "unchanged".into(),
                after: Some(before.json()),
                deployment: None,
                reason: Some("not in the release rolled to".into()),
            };
        }
        let r = match before.controller.as_str() {
            "EXTERNAL" => self.external(s, before, false).await,
            _ => self.native_forward(s, before, gates).await,
        };
        match r {
            Ok(o) => {
                if matches!(o.outcome.as_str(), "rolled-back" | "failed") {
                    gates.abort(&s.name, o.reason.as_deref().unwrap_or(&o.outcome));
                }
                o
            }
            Err(f) => {
                let why = cause_of(&f);
                gates.abort(&s.name, &why);
                Outcome {
                    outcome: if f.error_name() == "BlueGreen.RolledBack" {
                        "rolled-back".into()
                    } else {
                        "failed".into()
                    },
                    after: None,
                    deployment: None,
                    reason: Some(why),
                }
            }
        }
    }

    async fn native_forward(
        &self,
        s: &Service,
        before: &Before,
        gates: &Gates<'_>,
    ) -> Result<Outcome, Failure> {
        let native = self.native(s, "");
        let td = match (&s.task_definition, &s.image) {
            (Some(td), _) => td.clone(),
            (None, Some(image)) => self.revision(&native, s, before, image).await?,
            (None, None) => {
                return Err(fail(
                    "InvalidInput",
                    format!("service {}: no image", s.name),
                ));
            }
        };
        let rollout = if before.shifts || !self.plan.rollout.strategy.shifts_traffic() {
            self.plan.rollout.clone()
        } else {
            // Checked before the release: only reached on a resume after
            // the service changed.
            return Err(fail(
                "InvalidInput",
                format!("service {}: no alternate target group", s.name),
            ));
        };
        let ended = native.deploy(&td, &rollout, Some(gates)).await?;
        let image = self.image_after(s, &td, None).await;
        let after = json!({"task_definition": td, "image": image});
        Ok(match ended {
            Ended::Succeeded { deployment } => Outcome {
                outcome: "deployed".into(),
                after: Some(after),
                deployment,
                reason: None,
            },
            Ended::Unchanged => Outcome {
                outcome: "unchanged".into(),
                after: Some(after),
                deployment: None,
                reason: None,
            },
            Ended::RolledBack { deployment, reason } => Outcome {
                outcome: "rolled-back".into(),
                after: None,
                deployment: Some(deployment),
                reason: Some(reason),
            },
        })
    }

    /// The task definition with the release's image: the family's latest
    /// revision when it already runs the image, else a new revision of the
    /// service's current one with only that image changed.
    async fn revision(
        &self,
        native: &Native<'_>,
        s: &Service,
        before: &Before,
        image: &str,
    ) -> Result<String, Failure> {
        if before.image.as_deref() == Some(image) {
            return Ok(before.task_definition.clone());
        }
        let current = &before.task_definition;
        let (td, idx, family) =
            match plan_revision(&self.ecs, current, s.container.as_deref(), image).await {
                Ok(Revision::Reuse(arn)) => return Ok(arn),
                Ok(Revision::Register { td, idx, family }) => (td, idx, family),
                Err(RevisionError::Aws(what, e)) => return Err(aws_err(*e, &what)),
                Err(RevisionError::Missing(why)) => return Err(fail("NotFound", why)),
            };
        let before_v = json!({"task_definition": current, "image": before.image});
        native
            .audit(
                "deploy.register-task-definition",
                "begin",
                before_v.clone(),
                json!({"family": family, "image": image}),
                "registering",
            )
            .await?;
        let arn = register_with_image(&self.ecs, &td, idx, image, &native.token)
            .await
            .map_err(|e| aws_err(e, &format!("registering a revision of {family}")))?;
        native
            .audit(
                "deploy.register-task-definition",
                "done",
                before_v,
                json!({"task_definition": arn, "image": image}),
                "registered",
            )
            .await?;
        Ok(arn)
    }

    /// An `EXTERNAL` service through the task-set step: forward to the
    /// release's image or task definition, or (`back`) to its release
    /// before.
    async fn external(&self, s: &Service, before: &Before, back: bool) -> Result<Outcome, Failure> {
        let r = &self.plan.rollout;
        let mut input = json!({
            "region": self.request.input.get("region"),
            "role_arn": self.request.input.get("role_arn"),
            "environment": self.plan.env,
            "cluster": self.plan.cluster,
            "service": s.service,
            "container": s.container,
        });
        if back {
            input["task_definition"] = json!(before.task_definition);
            input["strategy"] = json!({"strategy": "all-at-once", "bake_seconds": 0});
        } else {
            match (&s.task_definition, &s.image) {
                (Some(td), _) => input["task_definition"] = json!(td),
                (None, image) => input["image"] = json!(image),
            }
            let kind = match r.strategy {
                Strategy::Canary => "canary",
                Strategy::Linear => "linear",
                Strategy::BlueGreen | Strategy::Rolling => "all-at-once",
            };
            // The task-set step takes seconds: the rollout's own seconds
            // when it gave them, else its minutes.
            let secs = |k: &str, minutes: i32| {
                self.request
                    .input
                    .pointer(&format!("/rollout/{k}"))
                    .and_then(Value::as_u64)
                    .unwrap_or(minutes as u64 * 60)
            };
            input["strategy"] = json!({
                "strategy": kind,
                "percent": r.percent.round().clamp(1.0, 100.0) as u64,
                "interval_seconds": secs("interval_seconds", r.step_minutes),
                "bake_seconds": secs("bake_seconds", r.bake_minutes),
                "alarms": r.alarms,
            });
        }
        if let Value::Object(m) = &mut input {
            m.retain(|_, v| !v.is_null());
        }
        let mut request = self.request.clone();
        request.input = input;
        request.idempotency_token = format!(
            "{}/{}{}",
            self.token(),
            s.name,
            if back { ".back" } else { "" }
        );
        let out = self.step.bluegreen.invoke(request).await?;
        let td = out
            .get("task_definition")
            .and_then(Value::as_str)
            .unwrap_or(&before.task_definition)
            .to_string();
        let image = self.image_after(s, &td, back.then_some(before)).await;
        Ok(Outcome {
            outcome: if back { "returned" } else { "deployed" }.into(),
            after: Some(json!({"task_definition": td, "image": image})),
            deployment: out
                .get("task_set")
                .and_then(Value::as_str)
                .map(str::to_string),
            reason: None,
        })
    }

    /// The image a service runs on `td` after its roll: known without a
    /// read when the release gave the image (or, going back, when `td` is
    /// the release before's); else read from the task definition.
    async fn image_after(&self, s: &Service, td: &str, back: Option<&Before>) -> Option<String> {
        match back {
            Some(b) if b.task_definition == td => return b.image.clone(),
            Some(_) => {}
            None if s.task_definition.is_none() => return s.image.clone(),
            None => {}
        }
        self.container_image(td, s.container.as_deref())
            .await
            .ok()
            .flatten()
    }

    /// Every service back on its release before, the waves in reverse
    /// order; the problems of those that could not be.
    pub(super) async fn roll_back(
        &self,
        befores: &[Before],
        outcomes: &mut [Outcome],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for wave in self.plan.waves.iter().rev() {
            let results = futures::future::join_all(
                wave.iter()
                    .map(|i| self.back_one(&self.plan.services[*i], &befores[*i], &outcomes[*i])),
            )
            .await;
            for (i, r) in wave.iter().zip(results) {
                match r {
                    Ok(Some(o)) => outcomes[*i] = o,
                    Ok(None) => {}
                    Err(f) => {
                        let why = cause_of(&f);
                        problems.push(format!("{}: {why}", self.plan.services[*i].name));
                        outcomes[*i].outcome = "rollback-failed".into();
                        outcomes[*i].reason = Some(why);
                    }
                }
            }
        }
        problems
    }

    /// One service back on its release before; `None` when it never left.
    async fn back_one(
        &self,
        s: &Service,
        before: &Before,
        now: &Outcome,
    ) -> Result<Option<Outcome>, Failure> {
        if before.controller == "EXTERNAL" {
            let svc = self.native(s, "").describe().await?;
            let primary = svc
                .task_sets()
                .iter()
                .find(|t| t.status() == Some("PRIMARY"))
                .and_then(|t| t.task_definition())
                .unwrap_or_default()
                .to_string();
            // Settle first (all traffic to the primary task set, any other
            // deleted): what a roll cut short, or refused on a split
            // listener, may have left.
            if svc.task_sets().len() > 1 || now.outcome == "failed" {
                let mut request = self.request.clone();
                request.input = json!({
                    "region": self.request.input.get("region"),
                    "environment": self.plan.env,
                    "cluster": self.plan.cluster,
                    "service": s.service,
                    "rollback": true,
                });
                if let Value::Object(m) = &mut request.input {
                    m.retain(|_, v| !v.is_null());
                }
                request.idempotency_token = format!("{}/{}", self.token(), s.name);
                self.step.bluegreen.invoke(request).await?;
            }
            if primary == before.task_definition && !self.plan.force {
                return Ok(None);
            }
            let mut o = self.external(s, before, true).await?;
            o.reason = now.reason.clone();
            return Ok(Some(o));
        }
        let forward = self.native(s, "");
        // A deployment of this release still running: stop it first.
        if let Some(arn) = forward
            .records
            .iter()
            .rev()
            .find(|r| {
                r.entry.token.as_deref()
                    == Some(&format!("{}#deploy.update-service#done", forward.token))
            })
            .and_then(|r| r.entry.after.get("deployment"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| now.deployment.clone())
        {
            let d = forward.describe_deployment(&arn).await?;
            if matches!(
                d.status(),
                Some(
                    ecs_t::ServiceDeploymentStatus::Pending
                        | ecs_t::ServiceDeploymentStatus::InProgress
                )
            ) {
                forward
                    .stop(
                        &arn,
                        d.lifecycle_stage().map(|s| s.as_str()).unwrap_or(""),
                        "the release is rolling back",
                    )
                    .await?;
            }
            // Wait for it to end (ECS rolls it back).
            loop {
                let d = forward.describe_deployment(&arn).await?;
                use ecs_t::ServiceDeploymentStatus as S;
                match d.status() {
                    Some(
                        S::Successful | S::RollbackSuccessful | S::Stopped | S::RollbackFailed,
                    ) => break,
                    _ => tokio::time::sleep(self.step.poll).await,
                }
            }
        }
        let svc = forward.describe().await?;
        if svc.task_definition() == Some(before.task_definition.as_str()) {
            if now.outcome == "deployed" {
                // Moved and found back already (a resumed rollback).
                return Ok(Some(Outcome {
                    outcome: "returned".into(),
                    after: Some(before.json()),
                    deployment: now.deployment.clone(),
                    reason: now.reason.clone(),
                }));
            }
            return Ok(None);
        }
        let back = self.native(s, ".back");
        let rollout = self.plan.rollout.for_rollback(before.shifts);
        match back.deploy(&before.task_definition, &rollout, None).await? {
            Ended::Succeeded { deployment } => Ok(Some(Outcome {
                outcome: "returned".into(),
                after: Some(before.json()),
                deployment,
                reason: now.reason.clone(),
            })),
            Ended::Unchanged => Ok(None),
            Ended::RolledBack { deployment, reason } => Err(fail(
                "RollbackFailed",
                format!(
                    "ECS service {}: the deployment back to {} ({deployment}) was itself rolled back: {reason}",
                    s.service, before.task_definition
                ),
            )),
        }
    }
}
