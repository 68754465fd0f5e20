//! JSONata expressions inside ASL strings (`"{% expression %}"`).
//!
//! Parsing uses the `jsonata-core` crate (pinned): it claims the full
//! jsonata-js test suite and passed every Step Functions-style expression we
//! tried (see `docs/architecture.md`). Expressions are parsed once, when the
//! definition is loaded, so a syntax error is a validation error.

use std::sync::Arc;

use jsonata_core::ast::AstNode;

use super::diagnostics::Code;

/// A parsed JSONata expression.
#[derive(Debug, Clone)]
pub struct JsonataExpr {
    source: String,
    ast: Arc<AstNode>,
}

impl JsonataExpr {
    /// The expression text, without the `{% %}` delimiters.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn ast(&self) -> &AstNode {
        &self.ast
    }
}

/// The `$states.input.a.b…` paths an expression reads (their field names
/// after `input`, up to the first step that is not a plain name).
pub fn states_input_paths(e: &JsonataExpr) -> Vec<Vec<String>> {
    fn walk(v: &serde_json::Value, out: &mut Vec<Vec<String>>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Array(steps)) =
                    m.get("Path").and_then(|p| p.get("steps"))
                {
                    let node = |i: usize| steps.get(i).and_then(|s| s.get("node"));
                    let is = |i: usize, kind: &str, name: &str| {
                        node(i).and_then(|n| n.get(kind)).and_then(|n| n.as_str()) == Some(name)
                    };
                    if is(0, "Variable", "states") && is(1, "Name", "input") {
                        // `input` itself must be a plain step.
                        let plain = |i: usize| {
                            steps.get(i).is_some_and(|s| {
                                s.get("stages")
                                    .and_then(|x| x.as_array())
                                    .is_none_or(|a| a.is_empty())
                            })
                        };
                        let mut path = Vec::new();
                        let mut i = 2;
                        if plain(1) {
                            while let Some(name) =
                                node(i).and_then(|n| n.get("Name")).and_then(|n| n.as_str())
                            {
                                path.push(name.to_string());
                                if !plain(i) {
                                    break;
                                }
                                i += 1;
                            }
                        }
                        if !path.is_empty() {
                            out.push(path);
                        }
                    }
                }
                for v in m.values() {
                    walk(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    // Only expressions that mention it are walked.
    if e.source.contains("$states")
        && let Ok(v) = serde_json::to_value(&*e.ast)
    {
        walk(&v, &mut out);
    }
    out
}

impl PartialEq for JsonataExpr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Why a string could not be read as a JSONata expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonataError {
    #[error(
        "JSONata expression is not closed: it starts with \"{{%\" but does not end with \"%}}\""
    )]
    Unclosed,
    #[error(
        "JSONata expression must be written as \"{{% expression %}}\", with white space after \"{{%\" and before \"%}}\""
    )]
    NoSpace,
    #[error("JSONata expression is empty")]
    Empty,
    #[error("JSONata syntax error: {0}")]
    Syntax(String),
    #[error("$eval is not available in Step Functions; use $parse")]
    EvalForbidden,
}

impl JsonataError {
    /// The diagnostic code of every JSONata error.
    pub fn code(&self) -> Code {
        Code::InvalidJsonata
    }
}

/// Is this string meant as a JSONata expression (`{%` at the start)?
pub fn is_jsonata_string(s: &str) -> bool {
    s.starts_with("{%")
}

/// Parse `"{% expr %}"`. Returns `None` when the string is a plain literal
/// (it does not start with `{%`; AWS treats such strings, even `" {% x %} "`,
/// as literals).
pub fn parse_jsonata_string(s: &str) -> Option<Result<JsonataExpr, JsonataError>> {
    if !is_jsonata_string(s) {
        return None;
    }
    Some(parse_delimited(s))
}

fn parse_delimited(s: &str) -> Result<JsonataExpr, JsonataError> {
    let Some(inner) = s
        .strip_prefix("{%")
        .and_then(|rest| rest.strip_suffix("%}"))
    else {
        return Err(JsonataError::Unclosed);
    };
    if inner.trim().is_empty() {
        return Err(JsonataError::Empty);
    }
    let starts_ws = inner.chars().next().is_some_and(char::is_whitespace);
    let ends_ws = inner.chars().next_back().is_some_and(char::is_whitespace);
    if !starts_ws || !ends_ws {
        return Err(JsonataError::NoSpace);
    }
    parse_expression(inner.trim())
}

/// Parse a bare JSONata expression (no delimiters).
pub fn parse_expression(expr: &str) -> Result<JsonataExpr, JsonataError> {
    // The parser is a third-party crate: contain any panic it might raise on
    // hostile input so that a definition can never crash piflow.
    let owned = expr.to_string();
    let parsed = std::panic::catch_unwind(move || jsonata_core::parser::parse(&owned))
        .map_err(|_| JsonataError::Syntax("the expression could not be parsed".into()))?;
    let ast = parsed.map_err(|e| JsonataError::Syntax(e.to_string()))?;
    if uses_eval(expr) {
        return Err(JsonataError::EvalForbidden);
    }
    Ok(JsonataExpr {
        source: expr.to_string(),
        ast: Arc::new(ast),
    })
}

fn uses_eval(expr: &str) -> bool {
    let bytes = expr.as_bytes();
    expr.match_indices("$eval").any(|(i, _)| {
        let after = bytes.get(i + 5).copied();
        !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_not_expressions() {
        assert!(parse_jsonata_string("10 %}").is_none());
        assert!(parse_jsonata_string(" {% states.input %} ").is_none());
        assert!(parse_jsonata_string("$states.input").is_none());
    }

    #[test]
    fn well_formed_expressions_parse() {
        for s in [
            "{% $states.input.a + 1 %}",
            "{% \n10         %}",
            "{% $sum($states.input.items) %}",
            "{% $states.input.x ? 'a' : 'b' %}",
        ] {
            let e = parse_jsonata_string(s).unwrap().unwrap();
            assert!(!e.source().is_empty());
        }
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for (s, want) in [
            ("{% 10 %", JsonataError::Unclosed),
            ("{%10%}", JsonataError::NoSpace),
            ("{%  %}", JsonataError::Empty),
            ("{% $eval('1') %}", JsonataError::EvalForbidden),
        ] {
            assert_eq!(parse_jsonata_string(s).unwrap().unwrap_err(), want, "{s}");
        }
        for s in [
            "{% 10 + * 2 %}",
            "{% $sum($states.input.items.numbers %}",
            "{% 420. %}",
        ] {
            assert!(
                matches!(
                    parse_jsonata_string(s).unwrap(),
                    Err(JsonataError::Syntax(_))
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn ast_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<JsonataExpr>();
    }
}
