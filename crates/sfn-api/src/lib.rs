//! piflow-sfn-api: the AWS Step Functions API, so that the AWS CLI, boto3
//! and the SDKs drive piflow with nothing changed but the endpoint.
//!
//! **Invariant.** A request is authenticated ([`sigv4`]: AWS Signature
//! Version 4 against the server's key pairs) before its body is read as an
//! operation; an operation is answered in AWS's shapes, and every failure
//! with AWS's error type (`__type`) and a message that names what and
//! where, so SDK error handling works unchanged. Executions go through the
//! same store and runner as `piflow run`.
//!
//! **May depend on:** `piflow-asl`, `piflow-engine`, `piflow-store`,
//! `piflow-runner`, `piflow-triggers`; serde, chrono, hmac, sha2, subtle,
//! uuid, tracing, futures, tokio (GetActivityTask's wait for a task).
//!
//! **Never:** an HTTP server (the binary's `serve` is the adapter that
//! hands requests here), an AWS SDK crate, a panic on any input.

pub mod activities;
pub mod api;
pub mod arn;
pub mod executions;
pub mod history;
pub mod machines;
mod mock_shapes;
pub mod ops;
pub mod paging;
pub mod sigv4;
pub mod test_state;
pub mod versions;

pub use api::{Answer, Api, ApiError, Backend, Launcher, Run};
pub use arn::Identity;
pub use test_state::test_state;
