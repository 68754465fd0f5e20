//! piflow.yaml's rules with the workflows they name: found and loaded when
//! a rule fires (the command line), or all at once beforehand (`piflow
//! serve`, which reads every workflow before it accepts anything).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::workflow::{SchemaError, Workflow, WorkflowError, resolve_rule_workflow};
use crate::config::TriggerConfig;
use crate::events::EventRouter;

/// Where the rules' workflows come from.
#[derive(Debug)]
enum Workflows {
    /// Found and loaded when a rule fires.
    OnDemand,
    /// Loaded beforehand, by the rule's `workflow:` text.
    Loaded(HashMap<String, Arc<Workflow>>),
}

/// Why a rule's workflow is not there.
#[derive(Debug)]
pub(super) enum Lookup {
    /// No file (on demand).
    NotFound,
    /// Not among the workflows loaded beforehand.
    NotLoaded,
    /// Found, but it cannot be read or does not validate.
    Failed(WorkflowError),
}

/// Why [`Rules::preload`] failed; the code is `no-workflow`.
#[derive(Debug, thiserror::Error)]
pub enum PreloadError {
    #[error(
        "{config} names workflow {workflow:?}: no such file, and no workflows/{workflow}.asl.yaml (or .asl.yml, .asl.json, .yaml, .yml, .json) beside it or in the working directory"
    )]
    NotFound { config: String, workflow: String },
    #[error("workflow {} is not valid: {source}", path.display())]
    Workflow {
        path: PathBuf,
        #[source]
        source: WorkflowError,
    },
    #[error(transparent)]
    Schema(SchemaError),
}

impl PreloadError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[("no-workflow", "a rule's workflow could not be loaded")];

    pub fn code(&self) -> &'static str {
        "no-workflow"
    }
}

/// piflow.yaml's rules, the compiled event patterns and the workflows.
#[derive(Debug)]
pub struct Rules {
    config: TriggerConfig,
    router: EventRouter,
    workflows: Workflows,
}

impl Rules {
    /// The rules, with each workflow found and loaded when its rule fires
    /// (`piflow trigger tag`, `piflow watch`).
    pub fn on_demand(config: TriggerConfig) -> Rules {
        Rules {
            router: EventRouter::new(&config.events),
            config,
            workflows: Workflows::OnDemand,
        }
    }

    /// The rules, with every workflow the `events:` rules name (and the
    /// `tags:` rules', with `tags`) read, validated and its input schema
    /// compiled now, not when an event arrives (`piflow serve`).
    pub fn preload(config: TriggerConfig, tags: bool) -> Result<Rules, PreloadError> {
        let mut wanted: Vec<&str> = config.events.iter().map(|r| r.workflow.as_str()).collect();
        if tags {
            wanted.extend(config.tags.iter().map(|r| r.workflow.as_str()));
        }
        let base = config.base_dir();
        let mut loaded = HashMap::new();
        for w in wanted {
            if loaded.contains_key(w) {
                continue;
            }
            let path = resolve_rule_workflow(&base, w).ok_or_else(|| PreloadError::NotFound {
                config: config.shown(),
                workflow: w.to_string(),
            })?;
            let workflow = Workflow::load(&path, Some(&base))
                .map_err(|source| PreloadError::Workflow { path, source })?;
            workflow.prepare().map_err(PreloadError::Schema)?;
            loaded.insert(w.to_string(), Arc::new(workflow));
        }
        Ok(Rules {
            router: EventRouter::new(&config.events),
            config,
            workflows: Workflows::Loaded(loaded),
        })
    }

    pub fn config(&self) -> &TriggerConfig {
        &self.config
    }

    pub fn router(&self) -> &EventRouter {
        &self.router
    }

    /// The workflow a rule names (its `workflow:` text).
    pub(super) fn workflow(&self, workflow: &str) -> Result<Arc<Workflow>, Lookup> {
        match &self.workflows {
            Workflows::Loaded(m) => m.get(workflow).cloned().ok_or(Lookup::NotLoaded),
            Workflows::OnDemand => {
                let base = self.config.base_dir();
                let path = resolve_rule_workflow(&base, workflow).ok_or(Lookup::NotFound)?;
                Workflow::load(&path, Some(&base))
                    .map(Arc::new)
                    .map_err(Lookup::Failed)
            }
        }
    }
}
