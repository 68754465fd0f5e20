//! The Choice state: its rules, JSONPath comparisons and JSONata
//! conditions.

use crate::diagnostics::{Code, child_pointer};
use crate::model::*;
use crate::path::parse_json_path;
use crate::source::{Key, Node, NodeKind};

use super::fields::{did_you_mean, suggest};
use super::{Loader, is_rfc3339};

impl Loader {
    pub(super) fn choice(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Choice {
        let default = match node.get("Default") {
            Some(d) => match d.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    self.wrong_type(&child_pointer(ptr, "Default"), d, "Default", "a state name");
                    None
                }
            },
            None => None,
        };
        let mut choices = Vec::new();
        let cptr = child_pointer(ptr, "Choices");
        match node.get("Choices") {
            None => self.error(
                Code::MissingField,
                ptr,
                node.span,
                "a Choice state needs Choices",
            ),
            Some(n) => match n.as_array() {
                None => self.wrong_type(&cptr, n, "Choices", "an array of choice rules"),
                Some(items) => {
                    if items.is_empty() {
                        self.error(
                            Code::InvalidValue,
                            &cptr,
                            n.span,
                            "Choices needs at least one rule",
                        );
                    }
                    for (i, item) in items.iter().enumerate() {
                        let iptr = child_pointer(&cptr, &i.to_string());
                        if let Some(b) = self.choice_branch(item, &iptr, lang) {
                            choices.push(b);
                        }
                    }
                }
            },
        }
        Choice { choices, default }
    }

    fn choice_branch(
        &mut self,
        item: &Node,
        ptr: &str,
        lang: QueryLanguage,
    ) -> Option<ChoiceBranch> {
        if item.as_object().is_none() {
            self.wrong_type(ptr, item, "a choice rule", "an object");
            return None;
        }
        if let Some(e) = item.get("End") {
            self.error(
                Code::FieldNotAllowed,
                &child_pointer(ptr, "End"),
                e.span,
                "a choice rule cannot end the state machine: it needs Next (use a Succeed state)",
            );
        }
        let next = match item.get("Next") {
            Some(n) => match n.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    self.wrong_type(&child_pointer(ptr, "Next"), n, "Next", "a state name");
                    None
                }
            },
            None => {
                self.error(
                    Code::MissingField,
                    ptr,
                    item.span,
                    "a top-level choice rule needs Next",
                );
                None
            }
        };
        let rule = self.choice_rule(item, ptr, lang, true);
        let assign = item
            .get("Assign")
            .and_then(|a| self.assign(a, &child_pointer(ptr, "Assign"), lang));
        let output = item
            .get("Output")
            .map(|o| self.jsonata_template(o, &child_pointer(ptr, "Output")));
        Some(ChoiceBranch {
            rule: rule?,
            next: next?,
            assign,
            output,
            comment: item
                .get("Comment")
                .and_then(Node::as_str)
                .map(str::to_string),
            pointer: ptr.to_string(),
        })
    }

    fn choice_rule(
        &mut self,
        item: &Node,
        ptr: &str,
        lang: QueryLanguage,
        top: bool,
    ) -> Option<ChoiceRule> {
        let Some(entries) = item.as_object() else {
            self.wrong_type(ptr, item, "a choice rule", "an object");
            return None;
        };
        let mut allowed: Vec<&str> = vec!["Comment"];
        if top {
            allowed.extend(["Next", "Assign", "End"]);
            if lang == QueryLanguage::Jsonata {
                allowed.push("Output");
            }
        }
        if lang == QueryLanguage::Jsonata {
            allowed.push("Condition");
            for (k, _) in entries {
                if !allowed.contains(&k.name.as_str()) {
                    let kptr = child_pointer(ptr, &k.name);
                    if k.name == "Variable"
                        || k.name == "And"
                        || k.name == "Or"
                        || k.name == "Not"
                        || comparison_of(&k.name).is_some()
                    {
                        self.error(
                            Code::QueryLanguage,
                            &kptr,
                            k.span,
                            format!("{} is a JSONPath choice field; a JSONata choice rule uses Condition", k.name),
                        );
                    } else {
                        let hint = did_you_mean(suggest(&k.name, allowed.iter().copied()));
                        self.error(
                            Code::UnknownField,
                            &kptr,
                            k.span,
                            format!("unknown field \"{}\" in a choice rule{hint}", k.name),
                        );
                    }
                }
            }
            if !top {
                return None;
            }
            let Some(c) = item.get("Condition") else {
                self.error(
                    Code::MissingField,
                    ptr,
                    item.span,
                    "a JSONata choice rule needs Condition",
                );
                return None;
            };
            let cptr = child_pointer(ptr, "Condition");
            return match &c.kind {
                NodeKind::Bool(b) => Some(ChoiceRule::Condition(ConditionExpr::Literal(*b))),
                NodeKind::String(s) => match self.jsonata(s, &cptr, c.span) {
                    Some(Some(e)) => Some(ChoiceRule::Condition(ConditionExpr::Jsonata(e))),
                    Some(None) => None,
                    None => {
                        self.error(
                            Code::InvalidJsonata,
                            &cptr,
                            c.span,
                            "Condition must be a JSONata expression \"{% ... %}\" or a boolean",
                        );
                        None
                    }
                },
                _ => {
                    self.wrong_type(&cptr, c, "Condition", "a JSONata expression or a boolean");
                    None
                }
            };
        }
        // JSONPath rules.
        allowed.extend(["Variable", "And", "Or", "Not"]);
        let mut ops: Vec<(&Key, &Node, Comparison, OperandType, bool)> = Vec::new();
        for (k, v) in entries {
            if allowed.contains(&k.name.as_str()) {
                continue;
            }
            if let Some((op, ty, is_path)) = comparison_of(&k.name) {
                ops.push((k, v, op, ty, is_path));
                continue;
            }
            let kptr = child_pointer(ptr, &k.name);
            if k.name == "Condition" || k.name == "Output" {
                self.error(
                    Code::QueryLanguage,
                    &kptr,
                    k.span,
                    format!("{} is a JSONata field; this state uses JSONPath", k.name),
                );
            } else {
                let cands = allowed
                    .iter()
                    .copied()
                    .chain(Comparison::ALL.iter().map(|(n, _, _, _)| *n));
                let hint = did_you_mean(suggest(&k.name, cands));
                self.error(
                    Code::UnknownField,
                    &kptr,
                    k.span,
                    format!("unknown field \"{}\" in a choice rule{hint}", k.name),
                );
            }
        }
        let combinators: Vec<&str> = ["And", "Or", "Not"]
            .into_iter()
            .filter(|c| item.get(c).is_some())
            .collect();
        let variable = item.get("Variable");
        if combinators.len() + usize::from(!ops.is_empty()) > 1 || ops.len() > 1 {
            self.error(
                Code::ExclusiveFields,
                ptr,
                item.span,
                "a choice rule holds exactly one of And, Or, Not or a single comparison",
            );
            return None;
        }
        if let Some(c) = combinators.first() {
            if let Some(v) = variable {
                self.error(
                    Code::FieldNotAllowed,
                    &child_pointer(ptr, "Variable"),
                    v.span,
                    format!("Variable cannot be used with {c}"),
                );
            }
            let n = item.get(c)?;
            let cptr = child_pointer(ptr, c);
            if *c == "Not" {
                if n.as_object().is_none() {
                    self.wrong_type(&cptr, n, "Not", "a choice rule object");
                    return None;
                }
                return self
                    .choice_rule(n, &cptr, lang, false)
                    .map(|r| ChoiceRule::Not(Box::new(r)));
            }
            let Some(items) = n.as_array() else {
                self.wrong_type(&cptr, n, c, "an array of choice rules");
                return None;
            };
            if items.is_empty() {
                self.error(
                    Code::InvalidValue,
                    &cptr,
                    n.span,
                    format!("{c} needs at least one rule"),
                );
            }
            let rules: Vec<ChoiceRule> = items
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    self.choice_rule(r, &child_pointer(&cptr, &i.to_string()), lang, false)
                })
                .collect();
            if rules.len() != items.len() {
                return None;
            }
            return Some(if *c == "And" {
                ChoiceRule::And(rules)
            } else {
                ChoiceRule::Or(rules)
            });
        }
        let Some((k, v, op, ty, is_path)) = ops.into_iter().next() else {
            self.error(
                Code::MissingField,
                ptr,
                item.span,
                "a choice rule needs a comparison (e.g. StringEquals), And, Or or Not",
            );
            return None;
        };
        let Some(var) = variable else {
            self.error(
                Code::MissingField,
                ptr,
                item.span,
                format!("the comparison {} needs Variable", k.name),
            );
            return None;
        };
        let vptr = || child_pointer(ptr, "Variable");
        let variable = match var.as_str() {
            Some(s) => match parse_json_path(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.error(
                        Code::InvalidPath,
                        &vptr(),
                        var.span,
                        format!("Variable {s:?} is not a valid path: {e}"),
                    );
                    None
                }
            },
            None => {
                self.wrong_type(&vptr(), var, "Variable", "a path string");
                None
            }
        };
        let kptr = || child_pointer(ptr, &k.name);
        let operand = if is_path {
            match v.as_str() {
                Some(s) => match parse_json_path(s) {
                    Ok(p) => Some(Operand::Path(p)),
                    Err(e) => {
                        self.error(
                            Code::InvalidPath,
                            &kptr(),
                            v.span,
                            format!("{} {s:?} is not a valid path: {e}", k.name),
                        );
                        None
                    }
                },
                None => {
                    self.wrong_type(&kptr(), v, &k.name, "a path string");
                    None
                }
            }
        } else {
            let ok = match ty {
                OperandType::Boolean => matches!(v.kind, NodeKind::Bool(_)),
                OperandType::Number => matches!(v.kind, NodeKind::Number(_)),
                OperandType::String => matches!(v.kind, NodeKind::String(_)),
                OperandType::Timestamp => match v.as_str() {
                    Some(s) => {
                        if !is_rfc3339(s) {
                            self.error(
                                Code::InvalidTimestamp,
                                &kptr(),
                                v.span,
                                format!("{} {s:?} is not an RFC 3339 timestamp", k.name),
                            );
                        }
                        true
                    }
                    None => false,
                },
            };
            if !ok {
                let want = match ty {
                    OperandType::Boolean => "a boolean",
                    OperandType::Number => "a number",
                    OperandType::String => "a string",
                    OperandType::Timestamp => "a timestamp string",
                };
                self.wrong_type(&kptr(), v, &k.name, want);
                None
            } else {
                Some(Operand::Literal(v.to_value()))
            }
        };
        Some(ChoiceRule::Compare {
            variable: variable?,
            op,
            operand: operand?,
        })
    }
}

fn comparison_of(field: &str) -> Option<(Comparison, OperandType, bool)> {
    for (name, op, ty, has_path) in Comparison::ALL {
        if field == *name {
            return Some((*op, *ty, false));
        }
        if *has_path && field.strip_suffix("Path") == Some(name) {
            return Some((*op, *ty, true));
        }
    }
    None
}
