//! A state: its type, common fields and transition, Retry and Catch, and
//! the Wait, Fail and Parallel states.

use crate::diagnostics::{Code, child_pointer};
use crate::model::*;
use crate::source::{Node, NodeKind, Span};

use super::exprs::NumberCheck;
use super::fields::{STATE_TYPES, did_you_mean, suggest};
use super::{Loader, is_rfc3339};

impl Loader {
    pub(super) fn state(
        &mut self,
        name: &str,
        node: &Node,
        ptr: &str,
        parent_lang: QueryLanguage,
    ) -> Option<State> {
        let Some(fields) = node.as_object() else {
            self.error(
                Code::WrongType,
                ptr,
                node.span,
                format!("state {name:?} must be an object, not {}", node.type_name()),
            );
            return None;
        };
        let type_name = match node.get("Type") {
            None => {
                self.error(
                    Code::MissingField,
                    ptr,
                    node.span,
                    format!("state {name:?} has no Type"),
                );
                return None;
            }
            Some(t) => match t.as_str() {
                Some(s) if STATE_TYPES.contains(&s) => s,
                Some(s) => {
                    let hint = did_you_mean(suggest(s, STATE_TYPES.iter().copied()));
                    self.error(
                        Code::InvalidValue,
                        &child_pointer(ptr, "Type"),
                        t.span,
                        format!(
                            "state {name:?} has unknown Type {s:?} (one of Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map){hint}"
                        ),
                    );
                    return None;
                }
                None => {
                    self.wrong_type(&child_pointer(ptr, "Type"), t, "Type", "a string");
                    return None;
                }
            },
        };
        let own_lang = self.query_language(node, ptr);
        if parent_lang == QueryLanguage::Jsonata
            && own_lang == Some(QueryLanguage::JsonPath)
            && let Some(n) = node.get("QueryLanguage")
        {
            self.error(
                Code::QueryLanguage,
                &child_pointer(ptr, "QueryLanguage"),
                n.span,
                "QueryLanguage cannot be \"JSONPath\" when the state machine is set to \"JSONata\"",
            );
        }
        let lang = own_lang.unwrap_or(parent_lang);
        self.check_fields(fields, ptr, type_name, lang);

        let comment = self.opt_string(node, ptr, "Comment");
        let input_path = node
            .get("InputPath")
            .and_then(|n| self.json_path_field(n, &child_pointer(ptr, "InputPath"), "InputPath"));
        let output_path = node
            .get("OutputPath")
            .and_then(|n| self.json_path_field(n, &child_pointer(ptr, "OutputPath"), "OutputPath"));
        let output = node
            .get("Output")
            .map(|n| self.jsonata_template(n, &child_pointer(ptr, "Output")));
        let assign = node
            .get("Assign")
            .and_then(|n| self.assign(n, &child_pointer(ptr, "Assign"), lang));
        let transition = self.transition(node, ptr, type_name);

        let kind = match type_name {
            "Pass" => StateKind::Pass(Pass {
                result: node.get("Result").map(Node::to_value),
                result_path: node
                    .get("ResultPath")
                    .and_then(|n| self.result_path(n, &child_pointer(ptr, "ResultPath"))),
                parameters: node
                    .get("Parameters")
                    .map(|n| self.payload_template(n, &child_pointer(ptr, "Parameters"))),
            }),
            "Task" => StateKind::Task(Box::new(self.task(node, ptr, lang)?)),
            "Choice" => StateKind::Choice(self.choice(node, ptr, lang)),
            "Wait" => StateKind::Wait(self.wait(node, ptr, lang)?),
            "Succeed" => StateKind::Succeed,
            "Fail" => StateKind::Fail(self.fail(node, ptr, lang)),
            "Parallel" => StateKind::Parallel(self.parallel(node, ptr, lang)?),
            "Map" => StateKind::Map(Box::new(self.map(node, ptr, lang)?)),
            _ => return None,
        };
        Some(State {
            name: name.to_string(),
            pointer: ptr.to_string(),
            comment,
            query_language: lang,
            input_path,
            output_path,
            output,
            assign,
            transition,
            kind,
        })
    }

    fn transition(&mut self, node: &Node, ptr: &str, type_name: &str) -> Transition {
        let terminal_type = matches!(type_name, "Choice" | "Succeed" | "Fail");
        let next = node.get("Next");
        let end = node.get("End");
        if terminal_type {
            return Transition::Terminal;
        }
        match (next, end) {
            (Some(n), Some(e)) => {
                let ends = matches!(e.kind, NodeKind::Bool(true));
                if ends {
                    self.error(
                        Code::ExclusiveFields,
                        &child_pointer(ptr, "End"),
                        e.span,
                        "Next and End cannot be used together",
                    );
                } else {
                    self.boolean(e, &child_pointer(ptr, "End"), "End");
                }
                match n.as_str() {
                    Some(s) => Transition::Next(s.to_string()),
                    None => {
                        self.wrong_type(&child_pointer(ptr, "Next"), n, "Next", "a state name");
                        Transition::End
                    }
                }
            }
            (Some(n), None) => match n.as_str() {
                Some(s) => Transition::Next(s.to_string()),
                None => {
                    self.wrong_type(&child_pointer(ptr, "Next"), n, "Next", "a state name");
                    Transition::End
                }
            },
            (None, Some(e)) => match self.boolean(e, &child_pointer(ptr, "End"), "End") {
                Some(true) => Transition::End,
                Some(false) => {
                    self.error(
                        Code::MissingField,
                        ptr,
                        e.span,
                        format!("a {type_name} state with \"End\": false needs Next"),
                    );
                    Transition::End
                }
                None => Transition::End,
            },
            (None, None) => {
                self.error(
                    Code::MissingField,
                    ptr,
                    node.span,
                    format!("a {type_name} state needs Next or \"End\": true"),
                );
                Transition::End
            }
        }
    }

    pub(super) fn result_handling(
        &mut self,
        node: &Node,
        ptr: &str,
        lang: QueryLanguage,
    ) -> ResultHandling {
        let parameters = node
            .get("Parameters")
            .map(|n| self.payload_template(n, &child_pointer(ptr, "Parameters")));
        let arguments = node.get("Arguments").map(|n| {
            let aptr = child_pointer(ptr, "Arguments");
            self.jsonata_template(n, &aptr)
        });
        let result_selector = node.get("ResultSelector").map(|n| {
            let sptr = child_pointer(ptr, "ResultSelector");
            if n.as_object().is_none() {
                self.wrong_type(&sptr, n, "ResultSelector", "an object");
            }
            self.payload_template(n, &sptr)
        });
        let result_path = node
            .get("ResultPath")
            .and_then(|n| self.result_path(n, &child_pointer(ptr, "ResultPath")));
        let retry = match node.get("Retry") {
            Some(n) => self.retriers(n, &child_pointer(ptr, "Retry")),
            None => Vec::new(),
        };
        let catch = match node.get("Catch") {
            Some(n) => self.catchers(n, &child_pointer(ptr, "Catch"), lang),
            None => Vec::new(),
        };
        ResultHandling {
            parameters,
            arguments,
            result_selector,
            result_path,
            retry,
            catch,
        }
    }

    fn error_equals(&mut self, node: &Node, ptr: &str) -> Vec<String> {
        let Some(n) = node.get("ErrorEquals") else {
            self.error(
                Code::MissingField,
                ptr,
                node.span,
                "ErrorEquals is required",
            );
            return Vec::new();
        };
        let eptr = child_pointer(ptr, "ErrorEquals");
        let Some(items) = n.as_array() else {
            self.wrong_type(&eptr, n, "ErrorEquals", "an array of error names");
            return Vec::new();
        };
        if items.is_empty() {
            self.error(
                Code::InvalidValue,
                &eptr,
                n.span,
                "ErrorEquals needs at least one error name",
            );
        }
        let mut out = Vec::new();
        // The first States.ALL, by its index in the source array.
        let mut states_all = None;
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => {
                    if s == "States.ALL" && states_all.is_none() {
                        states_all = Some((i, item.span));
                    }
                    out.push(s.to_string());
                }
                None => self.wrong_type(
                    &child_pointer(&eptr, &i.to_string()),
                    item,
                    "an ErrorEquals entry",
                    "a string",
                ),
            }
        }
        if let Some((i, span)) = states_all
            && items.len() > 1
        {
            self.error(
                Code::StatesAll,
                &child_pointer(&eptr, &i.to_string()),
                span,
                "States.ALL must appear alone in ErrorEquals",
            );
        }
        out
    }

    fn retriers(&mut self, n: &Node, ptr: &str) -> Vec<Retrier> {
        let Some(items) = n.as_array() else {
            self.wrong_type(ptr, n, "Retry", "an array of retriers");
            return Vec::new();
        };
        const FIELDS: &[&str] = &[
            "ErrorEquals",
            "IntervalSeconds",
            "MaxAttempts",
            "BackoffRate",
            "MaxDelaySeconds",
            "JitterStrategy",
            "Comment",
        ];
        let mut out = Vec::new();
        let mut catch_all = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let iptr = child_pointer(ptr, &i.to_string());
            let Some(fields) = item.as_object() else {
                self.wrong_type(&iptr, item, "a retrier", "an object");
                continue;
            };
            self.unknown_keys(fields, &iptr, FIELDS, "in a retrier");
            let mut r = Retrier {
                error_equals: self.error_equals(item, &iptr),
                ..Retrier::default()
            };
            if r.error_equals.iter().any(|e| e == "States.ALL") {
                catch_all.push((i, item.span));
            }
            if let Some(v) = item.get("IntervalSeconds")
                && let Some(u) = self.positive_int(
                    v,
                    &child_pointer(&iptr, "IntervalSeconds"),
                    "IntervalSeconds",
                    1,
                )
            {
                r.interval_seconds = u;
            }
            if let Some(v) = item.get("MaxAttempts")
                && let Some(u) =
                    self.positive_int(v, &child_pointer(&iptr, "MaxAttempts"), "MaxAttempts", 0)
            {
                r.max_attempts = u;
            }
            if let Some(v) = item.get("MaxDelaySeconds") {
                r.max_delay_seconds = self.positive_int(
                    v,
                    &child_pointer(&iptr, "MaxDelaySeconds"),
                    "MaxDelaySeconds",
                    1,
                );
            }
            if let Some(v) = item.get("BackoffRate") {
                let bptr = child_pointer(&iptr, "BackoffRate");
                match &v.kind {
                    NodeKind::Number(num) => match num.as_f64() {
                        Some(f) if f >= 1.0 => r.backoff_rate = f,
                        _ => self.error(
                            Code::InvalidValue,
                            &bptr,
                            v.span,
                            format!("BackoffRate must be ≥ 1.0, not {num}"),
                        ),
                    },
                    _ => self.wrong_type(&bptr, v, "BackoffRate", "a number"),
                }
            }
            if let Some(v) = item.get("JitterStrategy") {
                match v.as_str() {
                    Some("FULL") => r.jitter = Jitter::Full,
                    Some("NONE") => r.jitter = Jitter::None,
                    _ => self.error(
                        Code::InvalidValue,
                        &child_pointer(&iptr, "JitterStrategy"),
                        v.span,
                        "JitterStrategy must be \"FULL\" or \"NONE\"",
                    ),
                }
            }
            out.push(r);
        }
        self.states_all_last(&catch_all, items.len(), ptr, "Retry");
        out
    }

    /// `catch_all`: the index in the source array and the span of each
    /// retrier or catcher whose ErrorEquals holds States.ALL; `count`: the
    /// length of that array.
    fn states_all_last(
        &mut self,
        catch_all: &[(usize, Span)],
        count: usize,
        ptr: &str,
        what: &str,
    ) {
        for &(i, span) in catch_all {
            if i + 1 != count {
                self.error(
                    Code::StatesAll,
                    &child_pointer(ptr, &i.to_string()),
                    span,
                    format!("a {what} entry with States.ALL must be the last one"),
                );
            }
        }
    }

    fn catchers(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Vec<Catcher> {
        let Some(items) = n.as_array() else {
            self.wrong_type(ptr, n, "Catch", "an array of catchers");
            return Vec::new();
        };
        let fields: &[&str] = match lang {
            QueryLanguage::JsonPath => &["ErrorEquals", "Next", "ResultPath", "Assign", "Comment"],
            QueryLanguage::Jsonata => &["ErrorEquals", "Next", "Output", "Assign", "Comment"],
        };
        let mut out = Vec::new();
        let mut catch_all = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let iptr = child_pointer(ptr, &i.to_string());
            let Some(entries) = item.as_object() else {
                self.wrong_type(&iptr, item, "a catcher", "an object");
                continue;
            };
            for (k, _) in entries {
                if !fields.contains(&k.name.as_str()) {
                    let kptr = child_pointer(&iptr, &k.name);
                    if matches!(k.name.as_str(), "ResultPath" | "Output") {
                        self.error(
                            Code::QueryLanguage,
                            &kptr,
                            k.span,
                            format!(
                                "{} is not available in a catcher of a {} state",
                                k.name,
                                lang.as_str()
                            ),
                        );
                    } else {
                        let hint = did_you_mean(suggest(&k.name, fields.iter().copied()));
                        self.error(
                            Code::UnknownField,
                            &kptr,
                            k.span,
                            format!("unknown field \"{}\" in a catcher{hint}", k.name),
                        );
                    }
                }
            }
            let error_equals = self.error_equals(item, &iptr);
            if error_equals.iter().any(|e| e == "States.ALL") {
                catch_all.push((i, item.span));
            }
            let next = match item.get("Next") {
                Some(nn) => match nn.as_str() {
                    Some(s) => s.to_string(),
                    None => {
                        self.wrong_type(&child_pointer(&iptr, "Next"), nn, "Next", "a state name");
                        continue;
                    }
                },
                None => {
                    self.error(Code::MissingField, &iptr, item.span, "a catcher needs Next");
                    continue;
                }
            };
            let result_path = if lang == QueryLanguage::JsonPath {
                item.get("ResultPath")
                    .and_then(|r| self.result_path(r, &child_pointer(&iptr, "ResultPath")))
            } else {
                None
            };
            let output = if lang == QueryLanguage::Jsonata {
                item.get("Output")
                    .map(|o| self.jsonata_template(o, &child_pointer(&iptr, "Output")))
            } else {
                None
            };
            let assign = item
                .get("Assign")
                .and_then(|a| self.assign(a, &child_pointer(&iptr, "Assign"), lang));
            out.push(Catcher {
                error_equals,
                next,
                result_path,
                output,
                assign,
                pointer: iptr,
            });
        }
        self.states_all_last(&catch_all, items.len(), ptr, "Catch");
        out
    }

    fn wait(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Option<Wait> {
        let present: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
            .into_iter()
            .filter(|f| node.get(f).is_some())
            .collect();
        if present.is_empty() {
            self.error(
                Code::MissingField,
                ptr,
                node.span,
                "a Wait state needs one of Seconds, SecondsPath, Timestamp or TimestampPath",
            );
            return None;
        }
        if present.len() > 1 {
            let second = node.get(present[1]).map(|n| n.span).unwrap_or(node.span);
            self.error(
                Code::ExclusiveFields,
                &child_pointer(ptr, present[1]),
                second,
                format!("a Wait state takes exactly one of Seconds, SecondsPath, Timestamp and TimestampPath; it has {}", present.join(" and ")),
            );
            return None;
        }
        let field = present[0];
        let n = node.get(field)?;
        let fptr = child_pointer(ptr, field);
        let until = match field {
            "Seconds" | "SecondsPath" => WaitUntil::Seconds(self.number_source(
                node,
                ptr,
                "Seconds",
                Some("SecondsPath"),
                lang,
                NumberCheck::Int {
                    min: 0,
                    max: 99_999_999,
                },
            )?),
            "TimestampPath" => WaitUntil::TimestampPath(self.reference_path(n, &fptr, field)?),
            _ => match n.as_str() {
                Some(s) => {
                    if lang == QueryLanguage::Jsonata
                        && let Some(r) = self.jsonata(s, &fptr, n.span)
                    {
                        return r.map(|e| Wait {
                            until: WaitUntil::TimestampJsonata(e),
                        });
                    }
                    if !is_rfc3339(s) {
                        self.error(
                            Code::InvalidTimestamp,
                            &fptr,
                            n.span,
                            format!("Timestamp {s:?} is not an RFC 3339 timestamp (e.g. \"2016-03-14T01:59:00Z\")"),
                        );
                        return None;
                    }
                    WaitUntil::Timestamp(s.to_string())
                }
                None => {
                    self.wrong_type(&fptr, n, field, "an RFC 3339 timestamp string");
                    return None;
                }
            },
        };
        Some(Wait { until })
    }

    fn fail(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Fail {
        let field = |this: &mut Self, name: &str, path_name: &str| -> Option<StringSource> {
            this.exclusive(node, ptr, name, path_name);
            if let Some(n) = node.get(name) {
                let fptr = child_pointer(ptr, name);
                let Some(s) = n.as_str() else {
                    this.wrong_type(&fptr, n, name, "a string");
                    return None;
                };
                if lang == QueryLanguage::Jsonata
                    && let Some(r) = this.jsonata(s, &fptr, n.span)
                {
                    return r.map(StringSource::Jsonata);
                }
                return Some(StringSource::Literal(s.to_string()));
            }
            if let Some(n) = node.get(path_name) {
                let fptr = child_pointer(ptr, path_name);
                let Some(s) = n.as_str() else {
                    this.wrong_type(&fptr, n, path_name, "a path or intrinsic function string");
                    return None;
                };
                return this
                    .payload_expr(s, &fptr, n.span, path_name)
                    .map(StringSource::Path);
            }
            None
        };
        let error = field(self, "Error", "ErrorPath");
        let cause = field(self, "Cause", "CausePath");
        Fail { error, cause }
    }

    fn parallel(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Option<Parallel> {
        let io = self.result_handling(node, ptr, lang);
        let bptr = child_pointer(ptr, "Branches");
        let Some(n) = node.get("Branches") else {
            self.error(
                Code::MissingField,
                ptr,
                node.span,
                "a Parallel state needs Branches",
            );
            return None;
        };
        let Some(items) = n.as_array() else {
            self.wrong_type(&bptr, n, "Branches", "an array of branches");
            return None;
        };
        if items.is_empty() {
            self.error(
                Code::InvalidValue,
                &bptr,
                n.span,
                "Branches needs at least one branch",
            );
        }
        let mut branches = Vec::new();
        for (i, b) in items.iter().enumerate() {
            let iptr = child_pointer(&bptr, &i.to_string());
            let Some(fields) = b.as_object() else {
                self.wrong_type(&iptr, b, "a branch", "an object with StartAt and States");
                continue;
            };
            self.unknown_keys(
                fields,
                &iptr,
                &["StartAt", "States", "Comment"],
                "in a Parallel branch",
            );
            if let Some(s) = self.scope(b, &iptr, lang, "Parallel branch") {
                branches.push(s);
            }
        }
        Some(Parallel { branches, io })
    }
}
