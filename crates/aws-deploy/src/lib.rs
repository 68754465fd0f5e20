//! piflow-aws-deploy: running piflow's workflows and triggers on AWS.
pub mod eventbridge;
pub mod policy;
pub mod stepfunctions;
