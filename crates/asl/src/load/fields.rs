//! Which fields a state may have (by type and query language), "did you
//! mean" suggestions, and plain field values: strings, whole numbers,
//! booleans, QueryLanguage.

use crate::diagnostics::{Code, child_pointer};
use crate::model::*;
use crate::source::{Key, Node, NodeKind};

use super::Loader;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lang {
    Both,
    Path,
    Ata,
}

use Lang::{Ata, Both, Path};

pub(super) const STATE_TYPES: &[&str] = &[
    "Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map",
];

/// The fields each state type allows, with the query language they belong to.
fn fields_of(state_type: &str) -> &'static [(&'static str, Lang)] {
    match state_type {
        "Pass" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("Parameters", Path),
            ("Result", Path),
            ("ResultPath", Path),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Task" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("Resource", Both),
            ("Parameters", Path),
            ("Arguments", Ata),
            ("ResultSelector", Path),
            ("ResultPath", Path),
            ("Retry", Both),
            ("Catch", Both),
            ("TimeoutSeconds", Both),
            ("TimeoutSecondsPath", Path),
            ("HeartbeatSeconds", Both),
            ("HeartbeatSecondsPath", Path),
            ("Credentials", Both),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Choice" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Choices", Both),
            ("Default", Both),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Wait" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("Seconds", Both),
            ("SecondsPath", Path),
            ("Timestamp", Both),
            ("TimestampPath", Path),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Succeed" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Output", Ata),
        ],
        "Fail" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("Error", Both),
            ("ErrorPath", Path),
            ("Cause", Both),
            ("CausePath", Path),
        ],
        "Parallel" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("Branches", Both),
            ("Parameters", Path),
            ("Arguments", Ata),
            ("ResultSelector", Path),
            ("ResultPath", Path),
            ("Retry", Both),
            ("Catch", Both),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Map" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("ItemProcessor", Both),
            ("Iterator", Both),
            ("ItemsPath", Path),
            ("Items", Ata),
            ("ItemSelector", Both),
            ("Parameters", Path),
            ("ItemReader", Both),
            ("ItemBatcher", Both),
            ("ResultWriter", Both),
            ("MaxConcurrency", Both),
            ("MaxConcurrencyPath", Path),
            ("ToleratedFailureCount", Both),
            ("ToleratedFailureCountPath", Path),
            ("ToleratedFailurePercentage", Both),
            ("ToleratedFailurePercentagePath", Path),
            ("Label", Both),
            ("ResultSelector", Path),
            ("ResultPath", Path),
            ("Retry", Both),
            ("Catch", Both),
            ("Assign", Both),
            ("Output", Ata),
        ],
        _ => &[],
    }
}

/// Every field name any state may have (for "did you mean" suggestions).
fn all_state_fields() -> impl Iterator<Item = &'static str> {
    STATE_TYPES
        .iter()
        .flat_map(|t| fields_of(t).iter().map(|(f, _)| *f))
}

/// The nearest candidate to `word`, if any is close enough to be a typo.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        let contains = lower.contains(&c.to_ascii_lowercase()) && c.len() >= 4;
        let score = if contains { score.max(0.9) } else { score };
        if score >= 0.85 && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

pub(super) fn did_you_mean(s: Option<&str>) -> String {
    s.map(|s| format!("; did you mean \"{s}\"?"))
        .unwrap_or_default()
}

fn jsonata_alternative(field: &str) -> String {
    let alt = match field {
        "Parameters" => "use Arguments",
        "ResultSelector" | "ResultPath" | "OutputPath" | "InputPath" => "use Output (and Assign)",
        "ItemsPath" => "use Items",
        "Result" => "use Output",
        _ => "use the field without \"Path\" with a JSONata expression",
    };
    format!("in JSONata states {alt}")
}

impl Loader {
    pub(super) fn unknown_keys(
        &mut self,
        fields: &[(Key, Node)],
        ptr: &str,
        allowed: &[&str],
        place: &str,
    ) {
        for (k, _) in fields {
            if !allowed.contains(&k.name.as_str()) {
                let hint = did_you_mean(suggest(&k.name, allowed.iter().copied()));
                self.error(
                    Code::UnknownField,
                    &child_pointer(ptr, &k.name),
                    k.span,
                    format!("unknown field \"{}\" {place}{hint}", k.name),
                );
            }
        }
    }

    /// [`Self::unknown_keys`] for an object that takes its payload as
    /// `Parameters` (JSONPath) or `Arguments` (JSONata), besides `common`:
    /// the payload field of the other query language is a `query-language`
    /// error.
    pub(super) fn payload_keys(
        &mut self,
        fields: &[(Key, Node)],
        ptr: &str,
        common: &[&str],
        lang: QueryLanguage,
        place: &str,
    ) {
        let (own, other, instead) = match lang {
            QueryLanguage::JsonPath => (
                "Parameters",
                "Arguments",
                "set \"QueryLanguage\": \"JSONata\" on the state or the machine",
            ),
            QueryLanguage::Jsonata => ("Arguments", "Parameters", "use Arguments"),
        };
        let allowed: Vec<&str> = common.iter().copied().chain([own]).collect();
        for (k, _) in fields {
            if allowed.contains(&k.name.as_str()) {
                continue;
            }
            let kptr = child_pointer(ptr, &k.name);
            if k.name == other {
                self.error(
                    Code::QueryLanguage,
                    &kptr,
                    k.span,
                    format!(
                        "{other} {place} is a {} field, but this state uses {}: {instead}",
                        if lang == QueryLanguage::JsonPath {
                            "JSONata"
                        } else {
                            "JSONPath"
                        },
                        lang.as_str()
                    ),
                );
            } else {
                let hint = did_you_mean(suggest(&k.name, allowed.iter().copied()));
                self.error(
                    Code::UnknownField,
                    &kptr,
                    k.span,
                    format!("unknown field \"{}\" {place}{hint}", k.name),
                );
            }
        }
    }

    pub(super) fn query_language(&mut self, node: &Node, ptr: &str) -> Option<QueryLanguage> {
        let n = node.get("QueryLanguage")?;
        match n.as_str() {
            Some("JSONPath") => Some(QueryLanguage::JsonPath),
            Some("JSONata") => Some(QueryLanguage::Jsonata),
            Some(other) => {
                self.error(
                    Code::InvalidValue,
                    &child_pointer(ptr, "QueryLanguage"),
                    n.span,
                    format!("QueryLanguage must be \"JSONPath\" or \"JSONata\", not {other:?}"),
                );
                None
            }
            None => {
                self.wrong_type(
                    &child_pointer(ptr, "QueryLanguage"),
                    n,
                    "QueryLanguage",
                    "a string",
                );
                None
            }
        }
    }

    pub(super) fn opt_string(&mut self, node: &Node, ptr: &str, field: &str) -> Option<String> {
        let n = node.get(field)?;
        match n.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.wrong_type(&child_pointer(ptr, field), n, field, "a string");
                None
            }
        }
    }

    pub(super) fn positive_int(
        &mut self,
        n: &Node,
        ptr: &str,
        field: &str,
        min: u64,
    ) -> Option<u64> {
        match &n.kind {
            NodeKind::Number(num) => {
                if let Some(u) = num.as_u64() {
                    if u >= min && u <= 99_999_999 {
                        return Some(u);
                    }
                    self.error(
                        Code::InvalidValue,
                        ptr,
                        n.span,
                        format!("{field} must be between {min} and 99999999, not {u}"),
                    );
                    return None;
                }
                self.error(
                    Code::InvalidValue,
                    ptr,
                    n.span,
                    format!("{field} must be a whole number ≥ {min}, not {num}"),
                );
                None
            }
            _ => {
                self.wrong_type(ptr, n, field, "a whole number");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, n: &Node, ptr: &str, field: &str) -> Option<bool> {
        match n.kind {
            NodeKind::Bool(b) => Some(b),
            _ => {
                self.wrong_type(ptr, n, field, "a boolean");
                None
            }
        }
    }

    pub(super) fn exclusive(&mut self, node: &Node, ptr: &str, a: &str, b: &str) -> bool {
        if node.get(a).is_some()
            && let Some(nb) = node.get(b)
        {
            self.error(
                Code::ExclusiveFields,
                &child_pointer(ptr, b),
                nb.span,
                format!("{a} and {b} cannot be used together"),
            );
            return true;
        }
        false
    }

    pub(super) fn check_fields(
        &mut self,
        fields: &[(Key, Node)],
        ptr: &str,
        type_name: &str,
        lang: QueryLanguage,
    ) {
        let allowed = fields_of(type_name);
        for (k, _) in fields {
            match allowed.iter().find(|(f, _)| *f == k.name) {
                Some((_, Both)) => continue,
                Some((_, Path)) if lang == QueryLanguage::JsonPath => continue,
                Some((_, Ata)) if lang == QueryLanguage::Jsonata => continue,
                _ => {}
            }
            let kptr = child_pointer(ptr, &k.name);
            match allowed.iter().find(|(f, _)| *f == k.name) {
                Some((_, Both)) => {}
                Some((_, Path)) if lang == QueryLanguage::JsonPath => {}
                Some((_, Ata)) if lang == QueryLanguage::Jsonata => {}
                Some((f, l)) => {
                    let (belongs, instead) = match l {
                        Path => ("JSONPath", jsonata_alternative(f)),
                        _ => (
                            "JSONata",
                            "set \"QueryLanguage\": \"JSONata\" on the state or the machine"
                                .to_string(),
                        ),
                    };
                    self.error(
                        Code::QueryLanguage,
                        &kptr,
                        k.span,
                        format!(
                            "{f} is a {belongs} field, but this state uses {}: {instead}",
                            lang.as_str()
                        ),
                    );
                }
                None => {
                    if all_state_fields().any(|f| f == k.name) {
                        self.error(
                            Code::FieldNotAllowed,
                            &kptr,
                            k.span,
                            format!("field \"{}\" is not allowed in a {type_name} state", k.name),
                        );
                    } else {
                        let hint = did_you_mean(suggest(&k.name, allowed.iter().map(|(f, _)| *f)));
                        self.error(
                            Code::UnknownField,
                            &kptr,
                            k.span,
                            format!("unknown field \"{}\" in a {type_name} state{hint}", k.name),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("bugInputPath", all_state_fields()),
            Some("InputPath")
        );
        assert_eq!(suggest("Nxt", ["Next", "End"].into_iter()), Some("Next"));
        assert_eq!(suggest("zzzz", ["Next", "End"].into_iter()), None);
    }
}
