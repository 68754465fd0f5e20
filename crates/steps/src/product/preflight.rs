//! Before any change: every service as ECS has it, and every problem at
//! once.

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types as ecs_t;
use serde_json::{Value, json};

use super::{Before, Run};
use crate::ecs_native::{self, aws_err, fail};
use piflow_engine::Failure;

impl Run {
    /// Before any change: every service as ECS has it, and every problem.
    pub(super) async fn preflight(&self) -> Result<Vec<Before>, Failure> {
        let names: Vec<String> = self
            .plan
            .services
            .iter()
            .map(|s| s.service.clone())
            .collect();
        let found = ecs_native::describe_services(&self.ecs, &self.plan.cluster, &names).await?;
        let mut problems: Vec<String> = Vec::new();
        let mut befores = Vec::new();
        let mut target_groups: Vec<(String, String)> = Vec::new();
        let mut rules: Vec<(String, String)> = Vec::new();
        for s in &self.plan.services {
            let Some(svc) = found
                .iter()
                .find(|x| x.service_name() == Some(s.service.as_str()))
            else {
                problems.push(format!(
                    "service {}: ECS service {} is not in cluster {} (or is not ACTIVE)",
                    s.name, s.service, self.plan.cluster
                ));
                befores.push(Before {
                    controller: "?".into(),
                    task_definition: String::new(),
                    image: None,
                    shifts: false,
                });
                continue;
            };
            let controller = svc
                .deployment_controller()
                .map(|c| c.r#type().as_str().to_string())
                .unwrap_or_else(|| "ECS".into());
            let td = svc.task_definition().unwrap_or_default().to_string();
            let mut shifts = false;
            match controller.as_str() {
                "ECS" => {
                    let advanced: Vec<&ecs_t::AdvancedConfiguration> = svc
                        .load_balancers()
                        .iter()
                        .filter_map(|l| l.advanced_configuration())
                        .collect();
                    shifts = !advanced.is_empty();
                    if self.plan.rollout.strategy.shifts_traffic() && advanced.is_empty() {
                        problems.push(format!(
                            "service {}: a {} release moves traffic between two target groups, and ECS service {} has no load balancer with an alternate target group and a production listener rule (loadBalancers[].advancedConfiguration): add them to the service (Terraform: load_balancer.advanced_configuration), or release with rollout.strategy rolling",
                            s.name,
                            self.plan.rollout.strategy.name(),
                            s.service
                        ));
                    }
                    for a in advanced {
                        if let Some(tg) = a.alternate_target_group_arn() {
                            target_groups.push((s.name.clone(), tg.to_string()));
                        }
                        if let Some(r) = a.production_listener_rule() {
                            rules.push((s.name.clone(), r.to_string()));
                        }
                        if let Some(r) = a.test_listener_rule() {
                            rules.push((s.name.clone(), r.to_string()));
                        }
                    }
                    if let Some(p) = self.deployment_in_progress(&s.service).await? {
                        problems.push(format!(
                            "service {}: deployment {p} of ECS service {} is in progress: wait for it to end (or stop it) and release again",
                            s.name, s.service
                        ));
                    }
                }
                "EXTERNAL" => {
                    if svc
                        .task_sets()
                        .iter()
                        .all(|t| t.status() != Some("PRIMARY"))
                    {
                        problems.push(format!(
                            "service {}: ECS service {} (EXTERNAL controller) has no PRIMARY task set to roll from",
                            s.name, s.service
                        ));
                    }
                }
                other => problems.push(format!(
                    "service {}: ECS service {} uses the {other} deployment controller, which piflow does not drive: it drives ECS (ECS-native blue/green, canary, linear and rolling deployments) and EXTERNAL (task sets). Move the service to the ECS controller (UpdateService deploymentController, or re-create it), or release it with CodeDeploy outside piflow",
                    s.name, s.service
                )),
            }
            // The running task definition: for EXTERNAL services the
            // primary task set's.
            let td = if controller == "EXTERNAL" {
                svc.task_sets()
                    .iter()
                    .find(|t| t.status() == Some("PRIMARY"))
                    .and_then(|t| t.task_definition())
                    .map(str::to_string)
                    .unwrap_or(td)
            } else {
                td
            };
            let image = if td.is_empty() {
                None
            } else {
                match self.container_image(&td, s.container.as_deref()).await {
                    Ok(i) => i,
                    Err(why) => {
                        problems.push(format!("service {}: {why}", s.name));
                        None
                    }
                }
            };
            if let Some(t) = &s.task_definition
                && let Err(why) = self.container_image(t, s.container.as_deref()).await
            {
                problems.push(format!("service {}: {why}", s.name));
            }
            befores.push(Before {
                controller,
                task_definition: td,
                image,
                shifts,
            });
        }
        problems.extend(self.missing_target_groups(&target_groups).await?);
        problems.extend(self.missing_rules(&rules).await?);
        if !self.plan.rollout.alarms.is_empty() {
            let found = crate::alarms::read(&self.cloudwatch, &self.plan.rollout.alarms)
                .await
                .map_err(|e| {
                    fail(
                        "AwsFailed",
                        format!(
                            "reading CloudWatch alarms {}: {e}",
                            self.plan.rollout.alarms.join(", ")
                        ),
                    )
                })?;
            let missing = crate::alarms::missing(&self.plan.rollout.alarms, &found);
            if !missing.is_empty() {
                problems.push(format!(
                    "rollout.alarms names CloudWatch alarm(s) {} that do not exist in the region",
                    missing.join(", ")
                ));
            }
            let firing: Vec<&crate::alarms::Alarm> = found.iter().filter(|a| a.firing()).collect();
            if !firing.is_empty() {
                problems.push(format!(
                    "{} before the release began",
                    crate::alarms::describe_firing(&firing)
                ));
            }
        }
        if problems.is_empty() {
            return Ok(befores);
        }
        self.audit(
            "release.refused",
            Value::Null,
            json!({"version": self.plan.version, "problems": problems}),
            "refused",
        )
        .await?;
        Err(fail(
            "InvalidInput",
            format!(
                "state {}: release {} was refused before any change: {}",
                self.request.state_name,
                self.plan.version,
                problems.join("; ")
            ),
        ))
    }

    /// A deployment of the service that is pending or in progress.
    async fn deployment_in_progress(&self, service: &str) -> Result<Option<String>, Failure> {
        let out = self
            .ecs
            .list_service_deployments()
            .cluster(&self.plan.cluster)
            .service(service)
            .status(ecs_t::ServiceDeploymentStatus::Pending)
            .status(ecs_t::ServiceDeploymentStatus::InProgress)
            .status(ecs_t::ServiceDeploymentStatus::RollbackRequested)
            .status(ecs_t::ServiceDeploymentStatus::RollbackInProgress)
            .status(ecs_t::ServiceDeploymentStatus::StopRequested)
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("listing the deployments of {service}")))?;
        Ok(out
            .service_deployments()
            .first()
            .and_then(|d| d.service_deployment_arn())
            .map(str::to_string))
    }

    /// The image of the container in a task definition (`container`, else
    /// the first); `Err` when there is no such container.
    pub(super) async fn container_image(
        &self,
        td: &str,
        container: Option<&str>,
    ) -> Result<Option<String>, String> {
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(td)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "task definition {td}: {}",
                    aws_err(e, td).cause.unwrap_or_default()
                )
            })?;
        let defs = out
            .task_definition()
            .map(|t| t.container_definitions())
            .unwrap_or_default();
        let def = match container {
            Some(c) => defs.iter().find(|d| d.name() == Some(c)).ok_or_else(|| {
                format!(
                    "task definition {td} has no container {c} (its containers: {})",
                    defs.iter()
                        .filter_map(|d| d.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
            None => defs
                .first()
                .ok_or_else(|| format!("task definition {td} has no container"))?,
        };
        Ok(def.image().map(str::to_string))
    }

    async fn missing_target_groups(
        &self,
        tgs: &[(String, String)],
    ) -> Result<Vec<String>, Failure> {
        let mut problems = Vec::new();
        for (name, tg) in tgs {
            match self
                .elb
                .describe_target_groups()
                .target_group_arns(tg)
                .send()
                .await
            {
                Ok(out) if !out.target_groups().is_empty() => {}
                Ok(_) => problems.push(format!(
                    "service {name}: alternate target group {tg} does not exist"
                )),
                Err(e) if e.code().is_some_and(|c| c.contains("NotFound")) => problems.push(
                    format!("service {name}: alternate target group {tg} does not exist"),
                ),
                Err(e) => {
                    return Err(fail(
                        "AwsFailed",
                        format!("reading target group {tg}: {}", e.code().unwrap_or("error")),
                    ));
                }
            }
        }
        Ok(problems)
    }

    async fn missing_rules(&self, rules: &[(String, String)]) -> Result<Vec<String>, Failure> {
        let mut problems = Vec::new();
        for (name, rule) in rules {
            match self.elb.describe_rules().rule_arns(rule).send().await {
                Ok(out) if !out.rules().is_empty() => {}
                Ok(_) => problems.push(format!(
                    "service {name}: listener rule {rule} does not exist"
                )),
                Err(e) if e.code().is_some_and(|c| c.contains("NotFound")) => problems.push(
                    format!("service {name}: listener rule {rule} does not exist"),
                ),
                Err(e) => {
                    return Err(fail(
                        "AwsFailed",
                        format!(
                            "reading listener rule {rule}: {}",
                            e.code().unwrap_or("error")
                        ),
                    ));
                }
            }
        }
        Ok(problems)
    }
}
