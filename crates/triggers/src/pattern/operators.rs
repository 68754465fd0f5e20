//! The operators of a leaf: `prefix`, `suffix`, `equals-ignore-case`,
//! `wildcard`, `exists`, `cidr`, `numeric` and `anything-but`, parsed and
//! validated as EventBridge does (aws/event-ruler
//! src/main/software/amazon/event/ruler/JsonRuleCompiler.java,
//! `processMatchExpression`).

use serde_json::Value;

use super::values::{Cidr, Range, Wildcard, comparable_number};
use super::{AnythingBut, Matcher, OPERATORS, PatternError, PatternErrorKind, type_name};

pub(super) fn parse_matcher(item: &Value, path: &str) -> Result<Matcher, PatternError> {
    use PatternErrorKind as K;
    match item {
        Value::String(s) => Ok(Matcher::Str(s.as_str().into())),
        Value::Number(n) => Ok(Matcher::Num(n.as_f64().unwrap_or(f64::NAN))),
        Value::Bool(b) => Ok(Matcher::Bool(*b)),
        Value::Null => Ok(Matcher::Null),
        Value::Array(_) => Err(PatternError::new(
            K::NotArray,
            path,
            "nested arrays are not allowed in a leaf: list values or operator objects",
        )),
        Value::Object(map) => {
            if map.len() != 1 {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                return Err(PatternError::new(
                    K::OperatorShape,
                    path,
                    format!(
                        "an operator object takes exactly one key, not {} ({})",
                        map.len(),
                        if keys.is_empty() {
                            "none".to_string()
                        } else {
                            keys.join(", ")
                        }
                    ),
                ));
            }
            let Some((op, operand)) = map.iter().next() else {
                return Err(PatternError::new(
                    K::OperatorShape,
                    path,
                    "empty operator object",
                ));
            };
            parse_operator(op, operand, path)
        }
    }
}

fn want_string<'a>(op: &str, operand: &'a Value, path: &str) -> Result<&'a str, PatternError> {
    operand.as_str().ok_or_else(|| {
        PatternError::new(
            PatternErrorKind::WrongOperand,
            path,
            format!("\"{op}\" takes a string, not {}", type_name(operand)),
        )
    })
}

/// `{"prefix": "x"}` or `{"prefix": {"equals-ignore-case": "x"}}`.
fn string_or_ignore_case<'a>(
    op: &str,
    operand: &'a Value,
    path: &str,
) -> Result<(&'a str, bool), PatternError> {
    match operand {
        Value::String(s) => Ok((s, false)),
        Value::Object(m) if m.len() == 1 => match m.get("equals-ignore-case") {
            Some(Value::String(s)) => Ok((s, true)),
            Some(other) => Err(PatternError::new(
                PatternErrorKind::WrongOperand,
                path,
                format!(
                    "\"{op}\": {{\"equals-ignore-case\": …}} takes a string, not {}",
                    type_name(other)
                ),
            )),
            None => Err(PatternError::new(
                PatternErrorKind::UnknownOperator,
                path,
                format!(
                    "\"{op}\" takes a string or {{\"equals-ignore-case\": string}}, not {{\"{}\": …}}",
                    m.keys().next().map(String::as_str).unwrap_or_default()
                ),
            )),
        },
        other => Err(PatternError::new(
            PatternErrorKind::WrongOperand,
            path,
            format!(
                "\"{op}\" takes a string or {{\"equals-ignore-case\": string}}, not {}",
                type_name(other)
            ),
        )),
    }
}

fn parse_operator(op: &str, operand: &Value, path: &str) -> Result<Matcher, PatternError> {
    use PatternErrorKind as K;
    match op {
        "prefix" => {
            let (s, ic) = string_or_ignore_case(op, operand, path)?;
            Ok(if ic {
                Matcher::PrefixIgnoreCase(s.into())
            } else {
                Matcher::Prefix(s.into())
            })
        }
        "suffix" => {
            let (s, ic) = string_or_ignore_case(op, operand, path)?;
            Ok(if ic {
                Matcher::SuffixIgnoreCase(s.into())
            } else {
                Matcher::Suffix(s.into())
            })
        }
        "equals-ignore-case" => Ok(Matcher::EqualsIgnoreCase(
            want_string(op, operand, path)?.into(),
        )),
        "wildcard" => Ok(Matcher::Wildcard(Wildcard::parse(
            want_string(op, operand, path)?,
            path,
        )?)),
        "exists" => match operand {
            Value::Bool(b) => Ok(Matcher::Exists(*b)),
            other => Err(PatternError::new(
                K::WrongOperand,
                path,
                format!("\"exists\" takes true or false, not {}", type_name(other)),
            )),
        },
        "cidr" => Ok(Matcher::Cidr(Cidr::parse(
            want_string(op, operand, path)?,
            path,
        )?)),
        "numeric" => Ok(Matcher::Numeric(Range::parse(operand, path)?)),
        "anything-but" => Ok(Matcher::AnythingBut(AnythingBut::parse(operand, path)?)),
        other => Err(PatternError::new(
            K::UnknownOperator,
            path,
            format!(
                "unknown operator \"{other}\" (known: {})",
                OPERATORS.join(", ")
            ),
        )),
    }
}

impl AnythingBut {
    /// What EventBridge accepts after `anything-but` (JsonRuleCompiler.java,
    /// `processMatchExpression`, `processAnythingButListMatchExpression`,
    /// `processAnythingButValuesSetMatchExpression`):
    ///
    /// - a string, a number, or a non-empty list of only strings or only
    ///   numbers; numbers must be ones event-ruler can compare (within
    ///   ±5.0e9, at most 6 decimals: `ComparableNumber.generate` throws and
    ///   the rule is refused otherwise);
    /// - an object with one key, `prefix`, `suffix`, `equals-ignore-case` or
    ///   `wildcard`, whose value is a string or a list of strings. Lists are
    ///   accepted for all four: event-ruler took lists for
    ///   `equals-ignore-case` first and for `prefix` and `suffix` in
    ///   aws/event-ruler pull request #143 ("Supporting lists of values for
    ///   anything-but-prefix and anything-but-suffix", 2024), and the
    ///   wildcard list is in the user guide's example
    ///   (`{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}`). The
    ///   2023 user guide still said "Anything-but matching only works with a
    ///   single prefix, not a list"; it predates #143. A `prefix` or
    ///   `suffix` may not be empty ("Null prefix/suffix not allowed"), and
    ///   each wildcard is checked like `wildcard`'s.
    ///
    /// An empty list is refused. event-ruler's parser lets an empty list
    /// inside the object through (it builds an `anything-but` with nothing
    /// to exclude), but nothing documents what EventBridge then does, and a
    /// rule that excludes nothing is a mistake; piflow says so.
    pub(super) fn parse(operand: &Value, path: &str) -> Result<Self, PatternError> {
        use PatternErrorKind as K;
        match operand {
            Value::String(s) => Ok(Self::Strings(vec![s.as_str().into()])),
            Value::Number(n) => Ok(Self::Numbers(vec![comparable_number(
                n,
                path,
                "\"anything-but\"",
            )?])),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(PatternError::new(
                        K::EmptyArray,
                        path,
                        "\"anything-but\" takes a non-empty array",
                    ));
                }
                if items.iter().all(Value::is_string) {
                    Ok(Self::Strings(
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(Into::into)
                            .collect(),
                    ))
                } else if items.iter().all(Value::is_number) {
                    let mut numbers = Vec::with_capacity(items.len());
                    for n in items.iter().filter_map(Value::as_number) {
                        numbers.push(comparable_number(n, path, "\"anything-but\"")?);
                    }
                    Ok(Self::Numbers(numbers))
                } else {
                    Err(PatternError::new(
                        K::WrongOperand,
                        path,
                        "\"anything-but\" takes an array of only strings or only numbers",
                    ))
                }
            }
            Value::Object(m) => {
                if m.len() != 1 {
                    return Err(PatternError::new(
                        K::OperatorShape,
                        path,
                        format!(
                            "\"anything-but\" takes an object with exactly one key (prefix, suffix, equals-ignore-case or wildcard), not {}",
                            m.len()
                        ),
                    ));
                }
                let Some((op, v)) = m.iter().next() else {
                    return Err(PatternError::new(K::OperatorShape, path, "empty object"));
                };
                match op.as_str() {
                    "prefix" | "suffix" => {
                        let list = string_list(op, v, path)?;
                        if list.iter().any(|s| s.is_empty()) {
                            return Err(PatternError::new(
                                K::WrongOperand,
                                path,
                                format!(
                                    "\"anything-but\": {{\"{op}\": …}} takes non-empty strings"
                                ),
                            ));
                        }
                        Ok(if op == "prefix" {
                            Self::Prefix(list)
                        } else {
                            Self::Suffix(list)
                        })
                    }
                    "equals-ignore-case" => Ok(Self::EqualsIgnoreCase(string_list(op, v, path)?)),
                    "wildcard" => {
                        let list = string_list(op, v, path)?;
                        Ok(Self::Wildcard(
                            list.iter()
                                .map(|s| Wildcard::parse(s, path))
                                .collect::<Result<_, _>>()?,
                        ))
                    }
                    other => Err(PatternError::new(
                        K::UnknownOperator,
                        path,
                        format!(
                            "\"anything-but\" takes a string, number, array, or an object with prefix, suffix, equals-ignore-case or wildcard, not {{\"{other}\": …}}"
                        ),
                    )),
                }
            }
            other => Err(PatternError::new(
                K::WrongOperand,
                path,
                format!(
                    "\"anything-but\" takes a string, number, array, or an object with prefix, suffix, equals-ignore-case or wildcard, not {}",
                    type_name(other)
                ),
            )),
        }
    }
}

fn string_list(op: &str, v: &Value, path: &str) -> Result<Vec<Box<str>>, PatternError> {
    let bad = || {
        PatternError::new(
            PatternErrorKind::WrongOperand,
            path,
            format!(
                "\"anything-but\": {{\"{op}\": …}} takes a string or a non-empty array of strings, not {}",
                type_name(v)
            ),
        )
    };
    match v {
        Value::String(s) => Ok(vec![s.as_str().into()]),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => Ok(items
            .iter()
            .filter_map(Value::as_str)
            .map(Into::into)
            .collect()),
        _ => Err(bad()),
    }
}
