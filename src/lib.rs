//! piflow: an event-driven workflow engine that runs Amazon States Language
//! state machines to release and operate containerised products on AWS.
//!
//! Layers, bottom up: [`asl`] (the language) ← engine ← store/tasks ←
//! [`runner`] (durable executions: the engine journaling to the store) ←
//! triggers ← [`cli`]. See `docs/architecture.md`.

pub mod asl;
pub mod aws;
pub mod cli;
pub mod conformance;
pub mod conformance_services;
pub mod engine;
pub mod runner;
pub mod store;
pub mod tasks;
pub mod triggers;
