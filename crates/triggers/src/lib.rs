//! piflow-triggers: what starts executions. `piflow.yaml` ([`config`]),
//! git tags ([`tags`]), EventBridge event patterns ([`pattern`]) and input
//! transformers ([`transform`]), and the one trigger service ([`service`])
//! through which every entry point starts a workflow: resolve the workflow →
//! load and validate → payload limit → input schema → audit → start through
//! the runner. See `docs/triggers.md`.
//!
//! **Invariant.** `piflow run`, `piflow trigger tag`, `piflow watch`, the
//! git hooks and `piflow serve` all start executions through the same
//! service calls; a refusal is audited (`trigger.refused`) and starts
//! nothing; the same tag or event twice starts one execution.
//!
//! **May depend on:** `piflow-asl`, `piflow-engine`, `piflow-store`,
//! `piflow-runner`, jsonschema, the `git` command.
//!
//! **Never:** an AWS SDK crate, an HTTP server (the binary's routes are thin
//! adapters over this crate), particular steps (the caller hands it the task
//! registry).

pub mod config;
pub mod environments;
pub mod events;
pub mod pattern;
pub mod service;
pub mod tags;
pub mod transform;

pub use pattern::{Pattern, PatternError, PatternErrorKind, PatternSet};
pub use service::{Rules, TriggerService, Workflow};
pub use transform::{InputPath, InputTransformer, RuleContext, TransformError};
