//! Triggers: what starts executions. Among them: EventBridge event patterns
//! ([`pattern`]) to select events, and input transformers ([`transform`]) to
//! shape what a matched event passes to the workflow. See `docs/triggers.md`.
//!
//! Layering: may use `asl`, `engine` and `store`; no AWS SDK crate.

pub mod config;
pub mod events;
pub mod pattern;
pub mod tags;
pub mod transform;

pub use pattern::{Pattern, PatternError, PatternErrorKind, PatternSet};
pub use transform::{InputPath, InputTransformer, RuleContext, TransformError};
