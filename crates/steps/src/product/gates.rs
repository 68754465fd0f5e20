//! The gates a release runs while its deployments run: the other services'
//! failures, AWS Health in the region, the alarms, the smoke URLs.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Run, cause_of};
use crate::ecs_native::Watch;
use piflow_engine::TaskHandler;

/// The gates a release runs while its deployments run.
pub(super) struct Gates<'a> {
    run: &'a Run,
    /// Set when a service failed: the others stop.
    aborted: AtomicBool,
    abort_reason: Mutex<Option<String>>,
    /// Services whose smoke URLs passed with production traffic on the new
    /// revision.
    smoked: Mutex<HashSet<String>>,
    /// Health and alarms are read at most once per poll interval for the
    /// whole release (not once per service).
    last: tokio::sync::Mutex<Option<(std::time::Instant, Option<String>)>>,
}

impl<'a> Gates<'a> {
    pub(super) fn new(run: &'a Run) -> Self {
        Gates {
            run,
            aborted: AtomicBool::new(false),
            abort_reason: Mutex::new(None),
            smoked: Mutex::new(HashSet::new()),
            last: tokio::sync::Mutex::new(None),
        }
    }

    pub(super) fn abort(&self, service: &str, why: &str) {
        if let Ok(mut r) = self.abort_reason.lock()
            && r.is_none()
        {
            *r = Some(format!("service {service} failed ({why})"));
        }
        self.aborted.store(true, Ordering::SeqCst);
    }

    /// AWS Health and the alarms, shared by every service for one poll.
    async fn environment_check(&self) -> Option<String> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < self.run.step.poll
        {
            return answer.clone();
        }
        let answer = self.health_and_alarms().await;
        *last = Some((std::time::Instant::now(), answer.clone()));
        answer
    }

    async fn health_and_alarms(&self) -> Option<String> {
        let plan = &self.run.plan;
        if !plan.health_services.is_empty() {
            let mut request = self.run.request.clone();
            request.input = json!({
                "region": self.run.request.input.get("region"),
                "services": plan.health_services,
                "policy": {"fail_open": plan.fail_open},
            });
            if let Value::Object(m) = &mut request.input {
                m.retain(|_, v| !v.is_null());
            }
            request.idempotency_token = format!("{}#gate", self.run.token());
            match self.run.step.health.invoke(request).await {
                Ok(_) => {}
                Err(f) if f.error_name() == "HealthGate.Closed" => {
                    return Some(cause_of(&f));
                }
                Err(f) => {
                    tracing::warn!(error = %cause_of(&f), "AWS Health could not be read during the release; the deployments go on");
                }
            }
        }
        if !plan.rollout.alarms.is_empty() {
            match crate::alarms::read(&self.run.cloudwatch, &plan.rollout.alarms).await {
                Ok(found) => {
                    let firing: Vec<&crate::alarms::Alarm> =
                        found.iter().filter(|a| a.firing()).collect();
                    if !firing.is_empty() {
                        return Some(crate::alarms::describe_firing(&firing));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "CloudWatch alarms could not be read during the release");
                }
            }
        }
        None
    }

    /// The smoke URLs (`key`: which check this is, for its audit record).
    async fn smoke(&self, attempts: u32, key: &str) -> Option<String> {
        let plan = &self.run.plan;
        if plan.smoke_urls.is_empty() {
            return None;
        }
        let mut request = self.run.request.clone();
        request.input = json!({
            "environment": plan.env,
            "urls": plan.smoke_urls,
            "attempts": attempts,
            "interval_seconds": 1,
        });
        request.idempotency_token = format!("{}#smoke/{key}", self.run.token());
        match self.run.step.http.invoke(request).await {
            Ok(_) => None,
            Err(f) => Some(format!("smoke check failed: {}", cause_of(&f))),
        }
    }

    /// After every wave.
    pub(super) async fn final_check(&self) -> Option<String> {
        if let Some(why) = self.health_and_alarms().await {
            return Some(why);
        }
        self.smoke(5, "release").await
    }
}

impl Watch for Gates<'_> {
    fn check<'b>(&'b self, service: &'b str, stage: &'b str) -> BoxFuture<'b, Option<String>> {
        Box::pin(async move {
            if self.aborted.load(Ordering::SeqCst) {
                return Some(
                    self.abort_reason
                        .lock()
                        .ok()
                        .and_then(|r| r.clone())
                        .unwrap_or_else(|| "another service of the release failed".into()),
                );
            }
            if let Some(why) = self.environment_check().await {
                return Some(why);
            }
            // Smoke URLs once per service, when its new revision has
            // production traffic.
            if matches!(stage, "POST_PRODUCTION_TRAFFIC_SHIFT" | "BAKE_TIME") {
                let first = self
                    .smoked
                    .lock()
                    .map(|mut s| s.insert(service.to_string()))
                    .unwrap_or(false);
                if first && let Some(why) = self.smoke(3, service).await {
                    return Some(why);
                }
            }
            None
        })
    }
}
