//! The Amazon States Language: source reading, the typed model, paths,
//! intrinsic functions, JSONata expressions and static validation.
//!
//! This module never touches the network or an AWS SDK: it turns text into a
//! checked [`model::StateMachine`] and a list of [`diagnostics::Diagnostic`]s.

pub mod intrinsic;
pub mod path;
pub mod source;
pub mod yaml;
