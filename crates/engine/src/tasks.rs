//! Tasks reach the engine through one trait: a resource name resolved in a
//! registry. Built-in steps and AWS integrations register handlers; tests and
//! `piflow run --mock` register a [`MockConfig`] (crate::mocks).

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use super::error::Failure;
pub use super::mocks::{MockConfig, MockError, MockFile, MockResponse};

/// What a Task state asks a handler to do.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// The execution's ARN.
    pub execution: String,
    pub state_name: String,
    /// The resource as written, e.g. `arn:aws:states:::lambda:invoke`.
    pub resource: String,
    /// The effective input (after InputPath/Parameters or Arguments).
    pub input: Value,
    /// Set for `.waitForTaskToken` resources.
    pub task_token: Option<String>,
    /// Unique per state entry and attempt; built-in steps pass it to AWS as
    /// the client token so that a re-invocation is idempotent.
    pub idempotency_token: String,
    pub credentials: Option<Value>,
    /// Which attempt this is (0 = first).
    pub attempt: u32,
}

/// A task implementation.
pub trait TaskHandler: Send + Sync {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>>;

    /// Does the step work in real time (network or disk I/O, SDK timeouts,
    /// polling)? Then on a virtual clock it runs on a real-time runtime
    /// while virtual time stands still (see `Clock::hold`).
    fn real_time(&self) -> bool {
        false
    }
}

/// Resolves a resource to its handler: a mock for the state first, then the
/// longest registered resource prefix.
#[derive(Default, Clone)]
pub struct TaskRegistry {
    handlers: Vec<(String, Arc<dyn TaskHandler>)>,
    mocks: Option<Arc<MockConfig>>,
    /// The whole mock file, for executions that name a test case.
    mock_file: Option<Arc<MockFile>>,
}

impl TaskRegistry {
    pub fn new() -> Self {
        TaskRegistry::default()
    }

    /// Handle every resource starting with `prefix`.
    pub fn register(&mut self, prefix: impl Into<String>, handler: Arc<dyn TaskHandler>) {
        self.handlers.push((prefix.into(), handler));
        self.handlers.sort_by_key(|h| std::cmp::Reverse(h.0.len()));
    }

    /// The registered resources (prefixes), longest first.
    pub fn resources(&self) -> Vec<String> {
        self.handlers.iter().map(|(p, _)| p.clone()).collect()
    }

    pub fn with_mocks(self, mocks: MockConfig) -> Self {
        self.with_shared_mocks(Arc::new(mocks))
    }

    /// Mocked responses shared with other registries (a test case of a
    /// [`MockFile`]); each execution's calls are counted apart.
    pub fn with_shared_mocks(mut self, mocks: Arc<MockConfig>) -> Self {
        self.mocks = Some(mocks);
        self
    }

    /// Keep the whole mock file: an execution that names one of its test
    /// cases gets that case's responses ([`Self::for_execution`]).
    pub fn with_mock_file(mut self, file: Arc<MockFile>) -> Self {
        self.mock_file = Some(file);
        self
    }

    /// The registry one execution of state machine `machine` runs with:
    /// the responses of its test case `test_case` of the mock file, else
    /// the registry's own mocks.
    pub fn for_execution(
        &self,
        machine: &str,
        test_case: Option<&str>,
    ) -> Result<TaskRegistry, MockError> {
        let mut tasks = self.clone();
        if let Some(case) = test_case {
            tasks.mocks = Some(self.test_case(machine, case)?);
        }
        Ok(tasks)
    }

    /// State machine `machine`'s test case `case` of the mock file.
    pub fn test_case(&self, machine: &str, case: &str) -> Result<Arc<MockConfig>, MockError> {
        match &self.mock_file {
            Some(file) => file.case(machine, case),
            None => Err(MockError::NoTestCase(format!(
                "test case {case:?} of {machine:?}: no mock file was given (piflow serve --mock FILE)"
            ))),
        }
    }

    pub fn has_mock(&self, state: &str) -> bool {
        self.mocks.as_ref().is_some_and(|m| m.has(state))
    }

    /// Invoke through the engine's clock: a real-time step on a virtual
    /// clock runs while virtual time stands still.
    pub fn invoke_on(
        &self,
        request: TaskRequest,
        clock: &dyn super::Clock,
    ) -> BoxFuture<'static, Result<Value, Failure>> {
        self.resolve(request, Some(clock))
    }

    /// Run the task: its mocked response, else its handler.
    pub fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        self.resolve(request, None)
    }

    fn resolve(
        &self,
        request: TaskRequest,
        clock: Option<&dyn super::Clock>,
    ) -> BoxFuture<'static, Result<Value, Failure>> {
        if let Some(m) = &self.mocks
            && let Some(r) = m.next(&request.execution, &request.state_name)
        {
            return Box::pin(async move { r });
        }
        match self
            .handlers
            .iter()
            .find(|(p, _)| request.resource.starts_with(p.as_str()))
        {
            Some((_, h)) => match clock {
                Some(c) if h.real_time() => c.hold(h.invoke(request)),
                _ => h.invoke(request),
            },
            None => {
                let resource = request.resource.clone();
                let state = request.state_name.clone();
                Box::pin(async move {
                    Err(Failure::new(
                        "States.TaskFailed",
                        format!(
                            "no handler for resource '{resource}' of state '{state}': piflow has no built-in for it; run with --mock to give the state a mocked response"
                        ),
                    ))
                })
            }
        }
    }
}
