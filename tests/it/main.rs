//! piflow's integration tests: one test binary (one link of the SDK, one
//! build of `common/`, and every test of every file in one pool of threads,
//! instead of twenty binaries run one after another). Each file is a module
//! named as the binary it used to be: `cargo test --test it cli_durable::`
//! runs one file's tests, `cargo test --test it dynamodb_verbs` one test.
//!
//! The tests reach AWS through the moto server (`MOTO_PORT`, see
//! `common/moto.rs`), run the real `piflow` binary, cfn-lint and checkov,
//! and make real git repositories and HTTP requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

mod cli_durable;
mod cli_events;
mod cli_run;
mod cli_steps;
mod cli_validate;
mod codes_doc;
mod deep_input;
mod deploy_stepfunctions;
mod deploy_triggers;
mod release_product;
mod serve;
mod sfn_api;
mod steps_bluegreen;
mod steps_cfn;
mod steps_health;
mod steps_http_check;
mod steps_lint_scan;
mod steps_restore;
mod store;
mod triggers_tags;
mod typed_mutants;
mod workflows_deploy_restore;
mod workflows_e2e;
