//! oci-conform: a conformance suite for the OCI Distribution Spec whose test cases are YAML.
//!
//! The pipeline runs one way, with plain data between stages:
//! config → pack (scenarios + datasets) → plan → run → results → reports.

pub mod audit;
pub mod auth;
pub mod check;
pub mod citations;
pub mod cli;
pub mod config;
pub mod content;
pub mod coverage;
pub mod dataset;
pub mod de;
pub mod diag;
pub mod expect;
pub mod http;
pub mod lint;
pub mod pack;
pub mod plan;
pub mod redact;
pub mod report;
pub mod requirements;
pub mod resolve;
pub mod results;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod schema;
pub mod shell;
pub mod source;
pub mod template;
pub mod tls;
pub mod yaml;
