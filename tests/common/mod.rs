//! Shared helpers for integration tests.
#![allow(dead_code)]

pub mod e2e;
pub mod estate;
pub mod health;
pub mod moto;
pub mod steps;

pub mod corpus;
