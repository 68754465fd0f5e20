//! Every built-in step's contract: the JSON Schema of its input and of its
//! output, and the errors it can raise. One file a step in
//! `crates/steps/contracts/NAME.json`, compiled into the binary: the single
//! source of the step's reference (`piflow steps [NAME]`, docs/workflows.md)
//! and of the checks `piflow validate` makes of the states that call it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One step's contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// `piflow:NAME` (as a state's `Resource` names it; `.waitForTaskToken`
    /// apart).
    pub resource: String,
    /// One sentence: what the step does.
    pub summary: String,
    /// The JSON Schema (draft 2020-12) of the step's effective input (after
    /// InputPath and Parameters).
    pub input: Value,
    /// The JSON Schema of what the step returns on success.
    pub output: Value,
    /// The errors the step can raise, with when.
    pub errors: Vec<ErrorDoc>,
}

/// An error a step can raise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDoc {
    /// `Step.Reason`, as a Catch or Retry names it.
    pub error: String,
    pub when: String,
}

/// A contract file that does not read (a build of a broken tree: the
/// crate's tests read every file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("crates/steps/contracts/{file}: {message}")]
pub struct ContractError {
    pub file: &'static str,
    pub message: String,
}

macro_rules! contract_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../contracts/", $name, ".json")))),*]
    };
}

/// The files, by step name.
const FILES: &[(&str, &str)] = contract_files!(
    "approval",
    "audit-note",
    "cloudformation-deploy",
    "ecs-blue-green",
    "efs-restore",
    "health-gate",
    "http-check",
    "last-release",
    "lint",
    "rds-restore",
    "release",
    "repoint",
    "security-scan",
);

/// Every built-in step's contract, sorted by resource.
pub fn all() -> Result<Vec<Contract>, ContractError> {
    let mut out = Vec::with_capacity(FILES.len());
    for (name, text) in FILES {
        let c: Contract = serde_json::from_str(text).map_err(|e| ContractError {
            file: name,
            message: e.to_string(),
        })?;
        if c.resource != format!("piflow:{name}") {
            return Err(ContractError {
                file: name,
                message: format!("names resource {}, not piflow:{name}", c.resource),
            });
        }
        out.push(c);
    }
    out.sort_by(|a, b| a.resource.cmp(&b.resource));
    Ok(out)
}

/// The contract of a resource as a state writes it (`piflow:NAME`, with or
/// without `.waitForTaskToken`).
/// The contracts as validation checks their callers
/// ([`piflow_asl::steps::install`] takes this function): each step's input
/// and output schema and its errors. `None` when a contract does not read
/// (a build error the contracts' own test catches).
pub fn step_specs() -> Option<Vec<piflow_asl::steps::StepSpec>> {
    let contracts = all().ok()?;
    Some(
        contracts
            .into_iter()
            .map(|c| {
                piflow_asl::steps::StepSpec::new(
                    c.resource,
                    c.input,
                    c.output,
                    c.errors.into_iter().map(|e| e.error).collect(),
                )
            })
            .collect(),
    )
}

pub fn find<'a>(contracts: &'a [Contract], resource: &str) -> Option<&'a Contract> {
    let base = resource
        .strip_suffix(".waitForTaskToken")
        .unwrap_or(resource);
    contracts.iter().find(|c| c.resource == base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_reads_and_its_schemas_compile() {
        let all = all().expect("every contract file reads");
        assert_eq!(all.len(), FILES.len());
        for c in &all {
            for (what, schema) in [("input", &c.input), ("output", &c.output)] {
                jsonschema::validator_for(schema)
                    .unwrap_or_else(|e| panic!("{} {what}: {e}", c.resource));
            }
            assert!(!c.summary.is_empty(), "{}", c.resource);
            assert!(!c.errors.is_empty(), "{}", c.resource);
            let prefix_ok = c.errors.iter().all(|e| e.error.contains('.'));
            assert!(prefix_ok, "{}: errors are Step.Reason", c.resource);
        }
    }

    #[test]
    fn every_registered_step_has_a_contract() {
        let all = all().expect("contracts");
        let mut registry = piflow_engine::TaskRegistry::default();
        crate::register_builtins(
            &mut registry,
            crate::AuditHandle::lazy(|| {
                Box::pin(async {
                    Err(piflow_engine::StorageError::new(
                        "test",
                        "no store in this test",
                    ))
                })
            }),
        );
        for resource in registry.resources() {
            if resource.starts_with("piflow:") {
                assert!(
                    find(&all, &resource).is_some(),
                    "{resource} has no contract"
                );
            }
        }
    }
}
