//! The trigger service: the one way an entry point starts a workflow.
//!
//! Every start goes the same way: resolve the workflow → read and validate
//! it ([`Workflow`]) → check the input (the payload limit, then the
//! workflow's input schema: [`Workflow::check_input`]) → start through the
//! durable runner ([`TriggerService::start`]). On top of that:
//!
//! - the tag pipeline ([`Rules::plan_tag`], [`TriggerService::admit_tag`]):
//!   piflow.yaml's `tags:` rule → the input → the checks → the `tag-moved`
//!   refusal → the `trigger.tag` audit record; a refusal is a
//!   [`TagRefusal`] with a stable code, audited as `trigger.refused`
//!   ([`TriggerService::refuse`]);
//! - the event pipeline ([`Rules::plan_event`],
//!   [`TriggerService::receive_event`]): the `events:` rules an event
//!   matches → their inputs → the checks → the execution names → the
//!   durable dedupe record, so that an event starts its executions once;
//! - what `piflow watch` remembers of a repository ([`watch`]).
//!
//! `piflow run`, `piflow trigger tag`, `piflow watch` (and the git hooks,
//! which call `piflow trigger tag`) and `piflow serve` call these; they keep
//! only parsing, printing, exit codes and HTTP. The caller hands the service
//! its task registry (the built-in steps live in `piflow-steps`, which this
//! crate does not know).

use std::sync::Arc;

use serde_json::Value;

use piflow_engine::{SystemClock, TaskRegistry};
use piflow_runner::{Finished, Runner, RunnerError, StartRequest};
use piflow_store::Store;

mod event;
mod rules;
mod tag;
pub mod watch;
pub mod workflow;

#[cfg(test)]
mod tests;

pub use event::EventReceipt;
pub use rules::{PreloadError, Rules};
pub use tag::{
    Admission, AdmitError, RefusalKind, TagEvent, TagPlan, TagRefusal, TagSource, TagStop,
    TagTriggerError, audit_refusal, fetch_and_resolve,
};
pub use workflow::{InputError, SchemaError, StartOptions, Workflow, WorkflowError};

/// The audit environment of refusals whose tag names no environment, of
/// accepted events, and of what `watch` remembers.
pub const TRIGGERS_ENV: &str = crate::events::EVENTS_ENV;

/// Why [`TriggerService::trigger`] started nothing.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

impl TriggerError {
    pub fn code(&self) -> &'static str {
        match self {
            TriggerError::Input(e) => e.code(),
            TriggerError::Runner(e) => e.code(),
        }
    }
}

/// Starts executions durably on one store, with the caller's tasks.
pub struct TriggerService {
    store: Arc<dyn Store>,
    runner: Runner,
}

impl TriggerService {
    /// A service over `store` whose executions run `tasks` (built by the
    /// caller: the built-in steps, mocks) on the wall clock.
    pub fn new(store: Arc<dyn Store>, tasks: TaskRegistry) -> TriggerService {
        let runner = Runner::new(store.clone(), tasks, Arc::new(SystemClock));
        TriggerService { store, runner }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The runner, to attach a history sink or a notice before starting.
    pub fn runner_mut(&mut self) -> &mut Runner {
        &mut self.runner
    }

    /// Start a checked request and run it to its end (or return the
    /// existing execution of that name and input).
    pub async fn start(&self, request: StartRequest) -> Result<Finished, RunnerError> {
        self.runner.start(request).await
    }

    /// Check `input` against the workflow and start it.
    pub async fn trigger(
        &self,
        workflow: &Workflow,
        input: Value,
        opts: StartOptions,
    ) -> Result<Finished, TriggerError> {
        workflow.check_input(&input)?;
        Ok(self.start(workflow.start_request(input, opts)).await?)
    }
}
