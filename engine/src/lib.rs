//! oci-conform: a conformance suite for the OCI Distribution Spec whose test cases are YAML.
//!
//! The pipeline runs one way, with plain data between stages:
//! config → pack (scenarios + datasets) → plan → run → results → reports.

pub mod de;
pub mod diag;
pub mod yaml;
pub mod template;
pub mod scenario;
pub mod content;
pub mod dataset;
pub mod config;
pub mod http;
pub mod pack;
pub mod redact;
pub mod expect;
pub mod plan;
pub mod results;
pub mod run;
pub mod report;
pub mod cli;
pub mod lint;
