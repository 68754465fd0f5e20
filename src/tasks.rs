//! The task registry of every execution this binary runs: `--mock`
//! responses and the built-in steps (`piflow-steps`). The crates below
//! (the runner, the trigger service) are handed it; they do not know the
//! steps.

use std::sync::Arc;

use serde_json::Value;

use piflow_engine::{MockConfig, MockFile, TaskRegistry};
use piflow_steps::AuditHandle;
use piflow_store::Store;
use piflow_triggers::TriggerService;

/// `--mock FILE[#CASE]`: mocked task responses (a piflow or Step
/// Functions Local mock file, optionally with #TESTCASE or
/// #MACHINE/TESTCASE), read and checked before anything runs. The whole
/// file is kept: a Step Functions API start of `…:stateMachine:NAME#CASE`
/// runs with NAME's test case CASE.
#[derive(Default)]
pub struct Mocks(Option<(Arc<MockFile>, Arc<MockConfig>)>);

impl Mocks {
    /// Read `--mock`; the error names the file.
    pub fn read(spec: Option<&str>) -> Result<Mocks, String> {
        let Some(spec) = spec else {
            return Ok(Mocks(None));
        };
        let (file, case) = match spec.split_once('#') {
            Some((f, c)) => (f, Some(c)),
            None => (spec, None),
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("[invalid-mock] --mock {file}: cannot read it: {e}"))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("[invalid-mock] --mock {file} is not valid JSON: {e}"))?;
        let whole = MockFile::from_value(&value)
            .map_err(|e| format!("[{}] --mock {file}: {e}", e.code()))?;
        let chosen = whole
            .select(case)
            .map_err(|e| format!("[{}] --mock {spec}: {e}", e.code()))?;
        Ok(Mocks(Some((Arc::new(whole), chosen))))
    }
}

/// The registry: the mocked responses, then the built-in steps, which
/// reach the store through `store`. The one place the binary registers
/// the built-in steps.
pub fn registry(mocks: Mocks, store: AuditHandle) -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    if let Mocks(Some((file, chosen))) = mocks {
        tasks = tasks.with_shared_mocks(chosen).with_mock_file(file);
    }
    piflow_steps::register_builtins(&mut tasks, store);
    tasks
}

/// The trigger service over an open store, its steps reaching that store.
pub fn service(store: Arc<dyn Store>, mocks: Mocks) -> TriggerService {
    let tasks = registry(mocks, AuditHandle::ready(store.clone()));
    TriggerService::new(store, tasks)
}
