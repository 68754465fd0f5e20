//! EventBridge events as triggers, as far as they are not HTTP: the
//! `events:` rules an event matches → each one's input → the checks of its
//! workflow → the execution's name → the durable dedupe record (so that an
//! event starts its executions once, however often it is delivered) → the
//! `event.accepted` audit record. The caller starts what the receipt says.

use serde_json::Value;

use super::TriggerService;
use super::rules::{Lookup, Rules};
use super::workflow::StartOptions;
use crate::events::{Acceptance, Fired, Misfire, Planned, accept, audit_accepted};
use piflow_runner::{StartRequest, execution_id};
use piflow_store::StoreError;

impl Rules {
    /// Every rule the event matches (in file order), checked: the
    /// executions it plans, and the rules that matched but cannot fire.
    pub fn plan_event(&self, event: &Value, event_id: &str) -> (Vec<Planned>, Vec<Misfire>) {
        let mut planned = Vec::new();
        let mut refused = Vec::new();
        for r in self.router().route(event, event_id) {
            match r.and_then(|f| self.plan_fired(f, event_id)) {
                Ok(p) => planned.push(p),
                Err(m) => refused.push(m),
            }
        }
        (planned, refused)
    }

    /// A fired rule, its workflow found and its input checked, as the
    /// execution it plans.
    fn plan_fired(&self, f: Fired, event_id: &str) -> Result<Planned, Misfire> {
        let misfire = |code: &'static str, reason: String| Misfire {
            rule: f.rule.clone(),
            code,
            reason,
        };
        let workflow = match self.workflow(&f.workflow) {
            Ok(w) => w,
            Err(Lookup::NotLoaded) => {
                return Err(misfire(
                    "no-workflow",
                    format!(
                        "rule {:?}: workflow {:?} was not loaded",
                        f.rule, f.workflow
                    ),
                ));
            }
            Err(Lookup::NotFound) => {
                return Err(misfire(
                    "no-workflow",
                    format!("rule {:?}: no workflow {:?}", f.rule, f.workflow),
                ));
            }
            Err(Lookup::Failed(e)) => {
                return Err(misfire(
                    "no-workflow",
                    format!("rule {:?}: workflow {:?}: {e}", f.rule, f.workflow),
                ));
            }
        };
        let input = self.config().estate.apply(f.input.clone()).map_err(|e| {
            misfire(
                e.code,
                format!("rule {:?} on event {event_id:?}: {e}", f.rule),
            )
        })?;
        workflow.check_input(&input).map_err(|e| {
            misfire(
                e.code(),
                format!("rule {:?} on event {event_id:?}: {e}", f.rule),
            )
        })?;
        Ok(Planned {
            id: execution_id(&workflow.name, &f.name),
            rule: f.rule.clone(),
            workflow: f.workflow.clone(),
            name: f.name,
            env: f.env,
            input,
        })
    }

    /// The runner's request for an execution an event planned (None when
    /// its workflow is not there).
    pub fn event_request(
        &self,
        planned: &Planned,
        trigger: String,
        author: String,
    ) -> Option<StartRequest> {
        let workflow = self.workflow(&planned.workflow).ok()?;
        Some(workflow.start_request(
            planned.input.clone(),
            StartOptions {
                name: Some(planned.name.clone()),
                trigger,
                author,
                env: planned.env.clone(),
                wait: true,
            },
        ))
    }
}

/// What an event delivery came to.
#[derive(Debug, Clone)]
pub struct EventReceipt {
    /// The dedupe record: the first delivery's plans and refusals.
    pub acceptance: Acceptance,
    /// The rules that matched this delivery but could not fire.
    pub refused: Vec<Misfire>,
    /// What the caller starts now: on the first delivery every planned
    /// execution; on a redelivery those the first one never started.
    pub start: Vec<Planned>,
}

impl EventReceipt {
    /// The first delivery of the event.
    pub fn first(&self) -> bool {
        self.acceptance.first
    }

    /// The ids of the executions the event planned.
    pub fn ids(&self) -> Vec<String> {
        self.acceptance
            .planned
            .iter()
            .map(|p| p.id.clone())
            .collect()
    }
}

impl TriggerService {
    /// Plan an event, record it durably once, and audit it
    /// (`event.accepted`) when it matched rules — before anything starts.
    /// `running` says whether this process runs an execution already (a
    /// redelivery starts only what no one runs and no record holds).
    pub async fn receive_event(
        &self,
        rules: &Rules,
        event: &Value,
        event_id: &str,
        actor: &str,
        running: impl Fn(&str) -> bool,
    ) -> Result<EventReceipt, StoreError> {
        let (planned, refused) = rules.plan_event(event, event_id);
        let store = self.store.as_ref();
        let acceptance = accept(store, event, event_id, &planned, &refused).await?;
        if !acceptance.first {
            // Executions the first delivery planned but never started (it
            // stopped in between): audit and start them now.
            let missing = self.unstarted(&acceptance.planned, &running).await;
            if !missing.is_empty() {
                audit_accepted(store, event, event_id, actor, &acceptance).await?;
            }
            return Ok(EventReceipt {
                acceptance,
                refused,
                start: missing,
            });
        }
        // An event that matched rules is audited before its executions start.
        if !acceptance.planned.is_empty() || !acceptance.refused.is_empty() {
            audit_accepted(store, event, event_id, actor, &acceptance).await?;
        }
        Ok(EventReceipt {
            start: acceptance.planned.clone(),
            acceptance,
            refused,
        })
    }

    /// The planned executions that no one runs here (`running`) and the
    /// store has no record of.
    pub async fn unstarted(
        &self,
        planned: &[Planned],
        running: &impl Fn(&str) -> bool,
    ) -> Vec<Planned> {
        let mut out = Vec::new();
        for p in planned {
            if !running(&p.id) && matches!(self.store.execution(&p.id).await, Ok(None)) {
                out.push(p.clone());
            }
        }
        out
    }
}
