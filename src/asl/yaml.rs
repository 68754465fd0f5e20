//! YAML reader (placeholder until written).
use super::source::{Node, SyntaxError};

pub fn parse_yaml(_text: &str) -> Result<Node, SyntaxError> {
    Err(SyntaxError { message: "YAML is not supported yet".into(), offset: 0, code: "E_SYNTAX" })
}
