//! Workflows as the trigger service starts them: found (a name or a path),
//! read and validated, with the input schema they declare and the checks
//! every input passes (the payload limit, then the schema).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use piflow_asl::file::{ReadError, read_text};
use piflow_asl::{Diagnostic, Format, LoadOptions, Schemas, StateMachine, validate_text_with};
use piflow_runner::StartRequest;

/// The file name endings of a workflow, in the order they are looked for.
pub const EXTENSIONS: [&str; 6] = ["asl.yaml", "asl.yml", "asl.json", "yaml", "yml", "json"];

/// Find the definition file of a target: a path, else
/// `workflows/TARGET.asl.yaml` (or another of [`EXTENSIONS`]) under the
/// working directory.
pub fn resolve_target(target: &str) -> Option<PathBuf> {
    let p = PathBuf::from(target);
    if p.is_file() {
        return Some(p);
    }
    EXTENSIONS
        .iter()
        .map(|ext| PathBuf::from("workflows").join(format!("{target}.{ext}")))
        .find(|c| c.is_file())
}

/// Find a rule's workflow: a path relative to piflow.yaml's directory
/// (`base`), a name in `workflows/` beside piflow.yaml, or as
/// [`resolve_target`] finds it.
pub fn resolve_rule_workflow(base: &Path, workflow: &str) -> Option<PathBuf> {
    let direct = base.join(workflow);
    if direct.is_file() {
        return Some(direct);
    }
    EXTENSIONS
        .iter()
        .map(|ext| base.join("workflows").join(format!("{workflow}.{ext}")))
        .find(|c| c.is_file())
        .or_else(|| resolve_target(workflow))
}

/// The workflow's name: the file name without `.asl.yaml` etc.
pub fn workflow_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    for ext in EXTENSIONS {
        if let Some(stem) = file.strip_suffix(&format!(".{ext}")) {
            return stem.to_string();
        }
    }
    file
}

/// The input schema of a workflow, if it declares one:
/// `schemas/NAME.input.json` beside the `workflows/` directory that holds
/// it, else under `base` (e.g. beside piflow.yaml), else under the working
/// directory.
pub fn input_schema_path(path: &Path, base: Option<&Path>, name: &str) -> Option<PathBuf> {
    schema_path(path, base, &format!("{name}.input.json"))
}

/// The output schema of a workflow, if it declares one
/// (`schemas/NAME.output.json`, looked for as [`input_schema_path`] does):
/// validation checks the output of its end states against it.
pub fn output_schema_path(path: &Path, base: Option<&Path>, name: &str) -> Option<PathBuf> {
    schema_path(path, base, &format!("{name}.output.json"))
}

/// A workflow's schemas, read (problems reading them become diagnostics).
pub fn workflow_schemas(path: &Path, base: Option<&Path>) -> Schemas {
    let name = workflow_name(path);
    Schemas::read(
        input_schema_path(path, base, &name).as_deref(),
        output_schema_path(path, base, &name).as_deref(),
    )
}

fn schema_path(path: &Path, base: Option<&Path>, file: &str) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = path.parent() {
        // `workflows/../schemas` written as `schemas`, as a user names it.
        let above = match (dir.file_name(), dir.parent()) {
            (Some(_), Some(parent)) => parent.join("schemas"),
            _ => dir.join("../schemas"),
        };
        candidates.push(above.join(file));
        candidates.push(dir.join("schemas").join(file));
    }
    if let Some(base) = base {
        candidates.push(base.join("schemas").join(file));
    }
    candidates.push(PathBuf::from("schemas").join(file));
    candidates.into_iter().find(|c| c.is_file())
}

/// The git commit of the directory that holds the definition, when it is
/// in a repository.
pub fn source_commit(path: &Path) -> Option<String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && commit.len() == 40).then_some(commit)
}

/// The largest input an execution takes, in bytes (256 KiB, as in AWS).
pub fn payload_limit() -> usize {
    piflow_engine::EngineOptions::default().max_payload_bytes
}

/// Why a workflow cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(
        "no workflow {target:?}: not a file, and no workflows/{target}.asl.yaml, .asl.json, .yaml or .json"
    )]
    NotFound { target: String },
    #[error(transparent)]
    Unreadable(#[from] ReadError),
    /// The definition does not validate: `errors` are its error diagnostics.
    #[error("{shown} is not a valid state machine")]
    Invalid {
        shown: String,
        errors: Vec<Diagnostic>,
    },
}

impl WorkflowError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        ("no-workflow", "the workflow is not there"),
        ("definition-invalid", "the workflow does not validate"),
    ];

    /// `no-workflow`, the [`ReadError`]'s code, or `definition-invalid`.
    pub fn code(&self) -> &'static str {
        match self {
            WorkflowError::NotFound { .. } => "no-workflow",
            WorkflowError::Unreadable(e) => e.code(),
            WorkflowError::Invalid { .. } => "definition-invalid",
        }
    }
}

/// An input schema that cannot be used: unreadable, not JSON, or not a
/// JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemaError {
    pub path: PathBuf,
    pub message: String,
}

impl SchemaError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[("schema-invalid", "the input schema cannot be used")];

    pub fn code(&self) -> &'static str {
        "schema-invalid"
    }
}

/// Why an input is not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the input is {size} bytes; an execution's input may be at most {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The input does not match the workflow's schema: one problem a line,
    /// `at POINTER: what`.
    #[error("the input does not match {}: {}", schema.display(), problems.join("; "))]
    Mismatch {
        schema: PathBuf,
        problems: Vec<String>,
    },
    #[error(transparent)]
    Schema(SchemaError),
}

impl InputError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[(
        "input-invalid",
        "the input is too large or does not match the schema",
    )];

    /// `input-invalid`, or `schema-invalid` when the schema itself is.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::TooLarge { .. } | InputError::Mismatch { .. } => "input-invalid",
            InputError::Schema(e) => e.code(),
        }
    }
}

/// An input's size against [`payload_limit`].
pub fn check_size(input: &Value) -> Result<(), InputError> {
    let limit = payload_limit();
    let size = serde_json::to_vec(input).map(|v| v.len()).unwrap_or(0);
    if size > limit {
        return Err(InputError::TooLarge { size, limit });
    }
    Ok(())
}

/// A compiled input schema.
#[derive(Debug)]
pub struct InputSchema {
    pub path: PathBuf,
    validator: jsonschema::Validator,
}

impl InputSchema {
    pub fn load(path: &Path) -> Result<InputSchema, SchemaError> {
        let fail = |message: String| SchemaError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("reading input schema {}: {e}", path.display())))?;
        let schema: Value = serde_json::from_str(&text)
            .map_err(|e| fail(format!("input schema {} is not JSON: {e}", path.display())))?;
        InputSchema::compile(path, &schema)
    }

    /// Compile a schema already read from `path`.
    pub fn compile(path: &Path, schema: &Value) -> Result<InputSchema, SchemaError> {
        let fail = |message: String| SchemaError {
            path: path.to_path_buf(),
            message,
        };
        let validator = jsonschema::validator_for(schema).map_err(|e| {
            fail(format!(
                "input schema {} is not a valid JSON Schema: {e}",
                path.display()
            ))
        })?;
        Ok(InputSchema {
            path: path.to_path_buf(),
            validator,
        })
    }

    /// The input's problems, one a line (`at POINTER: what`).
    pub fn problems(&self, input: &Value) -> Vec<String> {
        self.validator
            .iter_errors(input)
            .map(|e| {
                let ptr = e.instance_path().to_string();
                format!("at {}: {e}", if ptr.is_empty() { "/" } else { &ptr })
            })
            .collect()
    }
}

/// A workflow read and validated: what the runner is given to start it.
#[derive(Debug)]
pub struct Workflow {
    pub path: PathBuf,
    /// The file name without `.asl.yaml`: executions' ids are `NAME:EXECUTION`.
    pub name: String,
    /// The definition's text, as read.
    pub definition: String,
    pub machine: StateMachine,
    schema_path: Option<PathBuf>,
    /// The input schema as read when the definition was validated.
    schema_root: Option<Value>,
    /// Compiled on first use (or by [`Workflow::prepare`]).
    schema: OnceLock<Result<InputSchema, SchemaError>>,
    source_commit: OnceLock<Option<String>>,
}

impl Workflow {
    /// Find a target ([`resolve_target`]) and load it (its schema looked
    /// for beside it and in the working directory).
    pub fn find(target: &str) -> Result<Workflow, WorkflowError> {
        let path = resolve_target(target).ok_or_else(|| WorkflowError::NotFound {
            target: target.to_string(),
        })?;
        Workflow::load(&path, None)
    }

    /// Read and validate the definition at `path`; its input schema is
    /// looked for as [`input_schema_path`] says, with `schema_base`.
    pub fn load(path: &Path, schema_base: Option<&Path>) -> Result<Workflow, WorkflowError> {
        let shown = path.display().to_string();
        let text = read_text(path)?;
        // The data paths are type-checked against the workflow's schemas.
        let name = workflow_name(path);
        let schema_path = input_schema_path(path, schema_base, &name);
        let schemas = Schemas::read(
            schema_path.as_deref(),
            output_schema_path(path, schema_base, &name).as_deref(),
        );
        let v = validate_text_with(
            &shown,
            &text,
            Format::from_path(&shown),
            LoadOptions::default(),
            &schemas,
        );
        let valid = v.is_valid();
        match v.machine {
            Some(machine) if valid => Ok(Workflow {
                path: path.to_path_buf(),
                schema_path,
                schema_root: schemas.input.map(|s| s.root),
                name,
                definition: text,
                machine,
                schema: OnceLock::new(),
                source_commit: OnceLock::new(),
            }),
            _ => Err(WorkflowError::Invalid {
                shown,
                errors: v.diagnostics.into_iter().filter(|d| d.is_error()).collect(),
            }),
        }
    }

    /// Read everything a start needs now rather than at the first start:
    /// the input schema (an unusable one is an error) and the source commit.
    pub fn prepare(&self) -> Result<(), SchemaError> {
        self.source_commit();
        self.schema().map(|_| ())
    }

    /// The input schema file, when the workflow declares one.
    pub fn schema_path(&self) -> Option<&Path> {
        self.schema_path.as_deref()
    }

    fn schema(&self) -> Result<Option<&InputSchema>, SchemaError> {
        let Some(path) = &self.schema_path else {
            return Ok(None);
        };
        let compile = || match &self.schema_root {
            Some(root) => InputSchema::compile(path, root),
            None => InputSchema::load(path),
        };
        match self.schema.get_or_init(compile) {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(e.clone()),
        }
    }

    /// The git commit of the definition's directory (looked up once).
    pub fn source_commit(&self) -> Option<String> {
        self.source_commit
            .get_or_init(|| source_commit(&self.path))
            .clone()
    }

    /// The checks of every input: the payload limit, then the schema.
    pub fn check_input(&self, input: &Value) -> Result<(), InputError> {
        check_size(input)?;
        if let Some(schema) = self.schema().map_err(InputError::Schema)? {
            let problems = schema.problems(input);
            if !problems.is_empty() {
                return Err(InputError::Mismatch {
                    schema: schema.path.clone(),
                    problems,
                });
            }
        }
        Ok(())
    }

    /// The runner's request for an input (checked with
    /// [`Workflow::check_input`] first).
    pub fn start_request(&self, input: Value, opts: StartOptions) -> StartRequest {
        StartRequest {
            workflow: self.name.clone(),
            definition: self.definition.clone(),
            source_commit: self.source_commit(),
            author: opts.author,
            name: opts.name,
            input,
            trigger: opts.trigger,
            env: opts.env,
            wait: opts.wait,
        }
    }
}

/// Who starts an execution, and how.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The execution's name (default: a fresh UUID).
    pub name: Option<String>,
    /// `cli:USER`, `git-tag:TAG`, `event:ID`.
    pub trigger: String,
    /// Recorded with the definition's version.
    pub author: String,
    /// The lease environment held for the whole run.
    pub env: Option<String>,
    /// Wait in the environment's queue (else refuse while it is held).
    pub wait: bool,
}
