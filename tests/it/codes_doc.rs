//! The runtime error codes: each error type's `CODES` lists exactly what its
//! `code()` returns, and docs/codes.md ("## Runtime error codes") lists
//! exactly the codes of the types each section names.
//!
//! A section's heading names its types: "### Title (`TypeA`, `TypeB`)"; its
//! table's first column holds the codes (`` `code` ``).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::Utc;

type Codes = &'static [(&'static str, &'static str)];

const SECTION: &str = "## Runtime error codes";

/// Every error type with its own codes, by the name docs/codes.md uses.
fn registry() -> BTreeMap<&'static str, Codes> {
    use piflow_triggers::service::{InputError, PreloadError, SchemaError, WorkflowError};
    let mut r: BTreeMap<&'static str, Codes> = BTreeMap::from([
        ("ReadError", piflow_asl::file::ReadError::CODES),
        ("InvalidDefinition", piflow_asl::InvalidDefinition::CODES),
        ("StoreError", piflow_store::StoreError::CODES),
        ("JournalError", piflow_engine::JournalError::CODES),
        ("RunnerError", piflow_runner::RunnerError::CODES),
        ("UnknownStatus", piflow_engine::UnknownStatus::CODES),
        ("MockError", piflow_engine::tasks::MockError::CODES),
        ("TokenError", piflow_engine::tokens::TokenError::CODES),
        ("ToolError", piflow_steps::process::ToolError::CODES),
        ("ConfigError", piflow_triggers::config::ConfigError::CODES),
        (
            "PolicyError",
            piflow_triggers::environments::PolicyError::CODES,
        ),
        ("WorkflowError", WorkflowError::CODES),
        ("SchemaError", SchemaError::CODES),
        ("InputError", InputError::CODES),
        ("PreloadError", PreloadError::CODES),
        ("RefusalKind", piflow_triggers::service::RefusalKind::CODES),
        ("GitError", piflow_triggers::tags::GitError::CODES),
        (
            "TagTriggerError",
            piflow_triggers::service::TagTriggerError::CODES,
        ),
        ("EventError", piflow_triggers::events::EventError::CODES),
        ("PatternErrorKind", piflow_triggers::PatternErrorKind::CODES),
        ("TransformError", piflow_triggers::TransformError::CODES),
    ]);
    #[cfg(feature = "serve")]
    {
        r.insert("ApiError", piflow_sfn_api::ApiError::CODES);
        r.insert("AuthError", piflow_sfn_api::sigv4::AuthError::CODES);
        r.insert("KeyPairsError", piflow_sfn_api::sigv4::KeyPairsError::CODES);
    }
    #[cfg(feature = "deploy")]
    {
        r.insert(
            "TranslateError",
            piflow_aws_deploy::stepfunctions::TranslateError::CODES,
        );
        r.insert(
            "DeployError",
            piflow_aws_deploy::stepfunctions::DeployError::CODES,
        );
        r.insert(
            "TriggersError",
            piflow_aws_deploy::eventbridge::TriggersError::CODES,
        );
    }
    r
}

/// The sections of "## Runtime error codes": the types a heading names and
/// the codes its table lists.
fn documented() -> Vec<(String, Vec<String>, Vec<String>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/codes.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines().skip_while(|l| l.trim_end() != SECTION);
    assert!(lines.next().is_some(), "docs/codes.md has no \"{SECTION}\"");
    let mut out: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for line in lines {
        if line.starts_with("## ") {
            break;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            let types = heading
                .rsplit_once('(')
                .and_then(|(_, t)| t.strip_suffix(')'))
                .unwrap_or_else(|| panic!("heading {heading:?} names no types in (`…`)"))
                .split(',')
                .map(|t| t.trim().trim_matches('`').to_string())
                .collect();
            out.push((heading.to_string(), types, Vec::new()));
        } else if let Some(row) = line.strip_prefix("| `") {
            let code = row.split('`').next().unwrap_or_default().to_string();
            let Some(section) = out.last_mut() else {
                panic!("a code row before any section: {line}");
            };
            section.2.push(code);
        }
    }
    out
}

#[test]
fn every_section_lists_the_codes_of_its_types() {
    let registry = registry();
    let sections = documented();
    assert!(sections.len() >= 8, "{sections:?}");
    let mut named = BTreeSet::new();
    let mut problems = Vec::new();
    for (heading, types, codes) in &sections {
        let mut expected = BTreeSet::new();
        for t in types {
            match registry.get(t.as_str()) {
                Some(c) => expected.extend(c.iter().map(|(code, _)| code.to_string())),
                None => problems.push(format!("{heading}: no error type {t} in the registry")),
            }
            named.insert(t.clone());
        }
        let listed: BTreeSet<String> = codes.iter().cloned().collect();
        if listed.len() != codes.len() {
            problems.push(format!("{heading}: a code is listed twice: {codes:?}"));
        }
        let missing: Vec<_> = expected.difference(&listed).collect();
        let extra: Vec<_> = listed.difference(&expected).collect();
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "{heading}: not in the doc: {missing:?}; in the doc but no type has it: {extra:?}"
            ));
        }
    }
    for t in registry.keys() {
        if !named.contains(*t) {
            problems.push(format!("{t} has no section in docs/codes.md"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn codes_are_well_formed_and_documented_once_per_type() {
    for (name, codes) in registry() {
        let mut seen = BTreeSet::new();
        for (code, meaning) in codes {
            assert!(seen.insert(*code), "{name}: {code} twice");
            assert!(!meaning.is_empty(), "{name}: {code} has no meaning");
            assert!(
                code.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
                "{name}: {code} is not kebab-case"
            );
        }
    }
}

/// What `code()` returns for every variant, against the type's `CODES`.
fn check(name: &str, codes: Codes, returned: &[&str]) {
    let listed: BTreeSet<&str> = codes.iter().map(|(c, _)| *c).collect();
    let got: BTreeSet<&str> = returned.iter().copied().collect();
    assert_eq!(
        listed, got,
        "{name}: CODES and the codes its variants return differ"
    );
}

#[test]
fn each_type_returns_exactly_its_codes() {
    use piflow_asl::file::ReadError;
    use piflow_engine::{JournalError, Status, UnknownStatus};
    use piflow_runner::RunnerError;
    use piflow_steps::process::ToolError;
    use piflow_store::StoreError;
    use piflow_triggers::PatternErrorKind as K;
    use piflow_triggers::TransformError as T;
    use piflow_triggers::events::EventError;
    use piflow_triggers::service::{InputError, RefusalKind, SchemaError, WorkflowError};
    use piflow_triggers::tags::GitError;

    let s = String::new;
    let p = PathBuf::new;
    check(
        "ReadError",
        ReadError::CODES,
        &[
            ReadError::Io {
                path: s(),
                source: std::io::Error::other("x"),
            }
            .code(),
            ReadError::NotUtf8 {
                path: s(),
                offset: 0,
            }
            .code(),
            ReadError::TooLarge {
                path: s(),
                size: 0,
                limit: 0,
            }
            .code(),
        ],
    );
    let store = [
        StoreError::Conflict(s()),
        StoreError::NotFound(s()),
        StoreError::Unavailable {
            path: s(),
            reason: s(),
        },
        StoreError::Io(s()),
        StoreError::Corrupt(s()),
        StoreError::Throttled(s()),
        StoreError::Auth(s()),
        StoreError::TooLarge(s()),
    ];
    check(
        "StoreError",
        StoreError::CODES,
        &store.iter().map(StoreError::code).collect::<Vec<_>>(),
    );
    let journal = [
        JournalError::LeaseLost { execution: s() },
        JournalError::LeaseExpired { execution: s() },
        JournalError::Failed(s()),
    ];
    check(
        "JournalError",
        JournalError::CODES,
        &journal.iter().map(JournalError::code).collect::<Vec<_>>(),
    );
    let now = Utc::now();
    let runner = [
        RunnerError::NotFound(s()),
        RunnerError::LeaseHeld {
            key: s(),
            holder: s(),
            until: now,
            waiting: 0,
        },
        RunnerError::Running {
            id: s(),
            holder: s(),
            until: now,
        },
        RunnerError::WrongStatus {
            id: s(),
            status: Status::Running,
            what: s(),
        },
        RunnerError::AlreadyExists {
            workflow: s(),
            name: s(),
        },
        RunnerError::Definition(s()),
        RunnerError::BadRequest(s()),
    ];
    check(
        "RunnerError",
        RunnerError::CODES,
        &runner.iter().map(RunnerError::code).collect::<Vec<_>>(),
    );
    check(
        "UnknownStatus",
        UnknownStatus::CODES,
        &[UnknownStatus(s()).code()],
    );
    let tools = [
        ToolError::Start {
            program: s(),
            reason: s(),
        },
        ToolError::Wait {
            program: s(),
            reason: s(),
        },
        ToolError::Thread(s()),
    ];
    check(
        "ToolError",
        ToolError::CODES,
        &tools.iter().map(ToolError::code).collect::<Vec<_>>(),
    );
    check(
        "WorkflowError",
        WorkflowError::CODES,
        &[
            WorkflowError::NotFound { target: s() }.code(),
            WorkflowError::Invalid {
                shown: s(),
                errors: vec![],
            }
            .code(),
        ],
    );
    let schema = SchemaError {
        path: p(),
        message: s(),
    };
    check("SchemaError", SchemaError::CODES, &[schema.code()]);
    check(
        "InputError",
        InputError::CODES,
        &[
            InputError::TooLarge { size: 1, limit: 0 }.code(),
            InputError::Mismatch {
                schema: p(),
                problems: vec![],
            }
            .code(),
        ],
    );
    let mut refusals: Vec<&str> = [
        "no-rule",
        "malformed-version",
        "malformed-region",
        "malformed-env",
        "malformed-team",
    ]
    .into_iter()
    .map(|c| RefusalKind::Rule(c).code())
    .collect();
    refusals.extend(
        [
            RefusalKind::InputInvalid,
            RefusalKind::NoWorkflow,
            RefusalKind::TagMoved,
        ]
        .map(RefusalKind::code),
    );
    check("RefusalKind", RefusalKind::CODES, &refusals);
    let git = [
        GitError::GitMissing { reason: s() },
        GitError::NotARepository {
            repo: p(),
            reason: s(),
        },
        GitError::NoSuchTag {
            tag: s(),
            repo: p(),
        },
        GitError::NotACommit {
            tag: s(),
            kind: s(),
            object: s(),
        },
        GitError::BadName {
            tag: s(),
            reason: s(),
        },
        GitError::Failed {
            command: s(),
            repo: p(),
            stderr: s(),
        },
    ];
    check(
        "GitError",
        GitError::CODES,
        &git.iter().map(GitError::code).collect::<Vec<_>>(),
    );
    check(
        "EventError",
        EventError::CODES,
        &[
            EventError::NotObject("null").code(),
            EventError::NoId.code(),
        ],
    );
    let kinds = [
        K::NotObject,
        K::EmptyObject,
        K::NotArray,
        K::EmptyArray,
        K::UnknownOperator,
        K::OperatorShape,
        K::WrongOperand,
        K::NumericRange,
        K::Wildcard,
        K::Cidr,
        K::Or,
        K::TooDeep,
        K::TooComplex,
    ];
    check("PatternErrorKind", K::CODES, &kinds.map(K::code));
    let transforms = [
        T::InvalidPath {
            field: s(),
            path: s(),
            reason: s(),
        },
        T::InvalidName {
            name: s(),
            reason: s(),
        },
        T::TooManyPaths { count: 0 },
        T::PlaceholderAsKey {
            name: s(),
            line: 0,
            column: 0,
        },
        T::EventInString {
            name: s(),
            line: 0,
            column: 0,
        },
        T::NotJson {
            line: 0,
            column: 0,
            reason: s(),
        },
        T::Shape(s()),
    ];
    check(
        "TransformError",
        T::CODES,
        &transforms.iter().map(T::code).collect::<Vec<_>>(),
    );
}
