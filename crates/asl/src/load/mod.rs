//! Building the typed model from a [`Node`] tree, reporting every problem.
//!
//! The loader never stops at the first problem: each field is checked on its
//! own and a state with problems still yields as much model as possible, so
//! that the graph rules in [`super::check`] also run. A definition is valid
//! when no error-severity diagnostic was produced.
//!
//! The loader is one [`Loader`] whose methods are spread over the files of
//! this module, by what they read:
//!
//! - this file: the machine, its scopes and state names;
//! - `fields`: which fields a state may have, and plain field values;
//! - `exprs`: paths, intrinsic functions, JSONata and payload templates;
//! - `states`: a state, its transition, Retry and Catch, and the Wait,
//!   Fail and Parallel states;
//! - `task`, `choice` and `map`: the Task, Choice and Map states.

mod choice;
mod exprs;
mod fields;
mod map;
mod states;
mod task;

use std::collections::HashMap;

use indexmap::IndexMap;

use crate::diagnostics::{Code, Diagnostic, child_pointer};
use crate::model::*;
use crate::source::{Key, Node, Span};

pub use fields::suggest;

/// Longest state name AWS accepts.
pub const MAX_STATE_NAME: usize = 80;
/// Longest Map label AWS accepts.
pub const MAX_LABEL: usize = 40;

/// Options that change what is valid.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    pub machine_type: MachineType,
}

pub struct Loader {
    pub diagnostics: Vec<Diagnostic>,
    options: LoadOptions,
    /// Every state name seen, with its pointer (names are unique machine-wide).
    names: HashMap<String, String>,
}

impl Loader {
    pub fn new(options: LoadOptions) -> Self {
        Loader {
            diagnostics: Vec::new(),
            options,
            names: HashMap::new(),
        }
    }

    fn error(&mut self, code: Code, ptr: &str, span: Span, msg: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::error(code, ptr, msg).at(span));
    }

    fn warn(&mut self, code: Code, ptr: &str, span: Span, msg: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::warning(code, ptr, msg).at(span));
    }

    fn wrong_type(&mut self, ptr: &str, node: &Node, field: &str, want: &str) {
        self.error(
            Code::WrongType,
            ptr,
            node.span,
            format!("{field} must be {want}, not {}", node.type_name()),
        );
    }

    /// Load a whole state machine.
    pub fn machine(&mut self, node: &Node) -> Option<StateMachine> {
        let Some(fields) = node.as_object() else {
            self.error(
                Code::WrongType,
                "",
                node.span,
                format!(
                    "a state machine definition must be a JSON object, not {}",
                    node.type_name()
                ),
            );
            return None;
        };
        const TOP: &[&str] = &[
            "Comment",
            "StartAt",
            "States",
            "Version",
            "TimeoutSeconds",
            "QueryLanguage",
        ];
        self.unknown_keys(fields, "", TOP, "at the top level of a state machine");
        let query_language = self
            .query_language(node, "")
            .unwrap_or(QueryLanguage::JsonPath);
        let comment = self.opt_string(node, "", "Comment");
        let version = self.opt_string(node, "", "Version");
        if let Some(v) = &version
            && v != "1.0"
            && let Some(n) = node.get("Version")
        {
            self.warn(
                Code::InvalidValue,
                "/Version",
                n.span,
                format!("Version {v:?}: the only ASL version is \"1.0\""),
            );
        }
        let timeout_seconds = node
            .get("TimeoutSeconds")
            .and_then(|n| self.positive_int(n, "/TimeoutSeconds", "TimeoutSeconds", 0));
        let scope = self.scope(node, "", query_language, "state machine");
        Some(StateMachine {
            comment,
            version,
            timeout_seconds,
            query_language,
            scope: scope?,
        })
    }

    /// Load one state on its own (as the TestState API takes it).
    pub fn single_state(&mut self, node: &Node, name: &str) -> Option<State> {
        self.state(name, node, "", QueryLanguage::JsonPath)
    }

    fn scope(&mut self, node: &Node, ptr: &str, lang: QueryLanguage, what: &str) -> Option<Scope> {
        let start_at = node.get("StartAt");
        let states = node.get("States");
        let mut missing = Vec::new();
        if states.is_none() {
            missing.push("States");
        }
        if start_at.is_none() {
            missing.push("StartAt");
        }
        if !missing.is_empty() {
            self.error(
                Code::MissingField,
                ptr,
                node.span,
                format!("the {what} needs {}", missing.join(" and ")),
            );
        }
        let start = match start_at {
            Some(n) => match n.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    self.wrong_type(&child_pointer(ptr, "StartAt"), n, "StartAt", "a string");
                    None
                }
            },
            None => None,
        };
        let states_ptr = child_pointer(ptr, "States");
        let mut map =
            IndexMap::with_capacity(states.and_then(Node::as_object).map_or(0, <[_]>::len));
        let mut broken = Vec::new();
        if let Some(n) = states {
            match n.as_object() {
                Some(entries) => {
                    if entries.is_empty() {
                        self.error(
                            Code::MissingField,
                            &states_ptr,
                            n.span,
                            format!("States of the {what} is empty: it needs at least one state"),
                        );
                    }
                    for (key, value) in entries {
                        let sptr = child_pointer(&states_ptr, &key.name);
                        self.state_name(key, &sptr);
                        match self.state(&key.name, value, &sptr, lang) {
                            Some(state) => {
                                map.insert(key.name.clone(), state);
                            }
                            None => broken.push(key.name.clone()),
                        }
                    }
                }
                None => self.wrong_type(&states_ptr, n, "States", "an object of states"),
            }
        }
        Some(Scope {
            comment: node
                .get("Comment")
                .and_then(|c| c.as_str())
                .map(str::to_string),
            start_at: start?,
            states: map,
            broken,
            pointer: ptr.to_string(),
        })
    }

    fn state_name(&mut self, key: &Key, ptr: &str) {
        let name = &key.name;
        let len = name.chars().count();
        if len == 0 {
            self.error(
                Code::InvalidName,
                ptr,
                key.span,
                "a state name cannot be empty",
            );
        } else if len > MAX_STATE_NAME {
            self.error(
                Code::InvalidName,
                ptr,
                key.span,
                format!("state name is {len} characters long; the limit is {MAX_STATE_NAME}"),
            );
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            self.error(
                Code::InvalidName,
                ptr,
                key.span,
                format!("state name contains the control character {c:?}"),
            );
        }
        if let Some(first) = self.names.get(name) {
            let msg = format!(
                "state name {name:?} is already used at {first}: names must be unique in the whole state machine, including branches and Map processors"
            );
            self.error(Code::DuplicateState, ptr, key.span, msg);
        } else {
            self.names.insert(name.clone(), ptr.to_string());
        }
    }
}

/// Is `s` an RFC 3339 date-time with a `T` separator and an explicit offset?
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|x| x.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    let zone_ok = match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len() && digits(i + 1..i + 3) && b[i + 3] == b':' && digits(i + 4..i + 6)
        }
        _ => false,
    };
    zone_ok && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        for ok in [
            "2016-03-14T01:59:00Z",
            "2016-03-14T01:59:00.123Z",
            "2016-03-14T01:59:00+05:30",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2016-13-05T21:29:29Z",
            "05-12-2016T21:29:29Z",
            "2016-12-05T25:29:29Z",
            "2016-12-05 21:29:29Z",
            "2016-12-05T21:29:29",
            "{% '2016-03-14T01:59:00Z' %}",
            "",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
