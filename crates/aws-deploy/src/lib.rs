//! piflow-aws-deploy: running piflow's workflows and triggers on AWS when a
//! team outgrows one machine. [`stepfunctions`] translates a definition's
//! `piflow:` steps into Step Functions integrations and deploys it
//! (versions, aliases); [`eventbridge`] turns `piflow.yaml`'s rules into
//! EventBridge rules and targets; [`policy`] derives the least-privilege IAM
//! policy. See docs/scale-out.md.
//!
//! **Invariant.** A definition that uses what Step Functions lacks is
//! refused before any API call; deploying the same definition twice changes
//! nothing.
//!
//! **May depend on:** `piflow-asl`, `piflow-triggers` (the rules of
//! `piflow.yaml`), `piflow-aws-config`, aws-sdk-sfn, aws-sdk-eventbridge.
//!
//! **Never:** the store, the runner, a step.
pub mod eventbridge;
pub mod policy;
pub mod stepfunctions;
