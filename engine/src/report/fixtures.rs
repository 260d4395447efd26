//! Result trees for the reporters' unit tests.

use std::time::Duration;

use crate::http::{BodySummary, Exchange};
use crate::results::{CaseResult, GroupResult, ResultNode, RunResult, Status};
use crate::scenario::Level;

/// A case with a status and nothing else.
pub fn case(id: &str, status: Status) -> CaseResult {
    CaseResult {
        id: id.into(),
        name: id.rsplit('/').next().unwrap_or(id).into(),
        path: id.into(),
        status,
        reason: None,
        failures: vec![],
        warnings: vec![],
        apis: vec![],
        data: None,
        spec: vec![],
        req: vec![],
        level: Level::Must,
        source: "specs/x.yaml:3:1".into(),
        note: None,
        duration: Duration::from_millis(3),
        exchanges: vec![],
    }
}

/// A recorded exchange with a JSON answer.
pub fn exchange(method: &str, url: &str, status: u16) -> Exchange {
    let text = r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#;
    Exchange {
        method: method.into(),
        url: url.into(),
        request_headers: vec![("Authorization".into(), "Bearer ***".into())],
        status: Some(status),
        response_headers: vec![("Content-Type".into(), "application/json".into())],
        response_body: BodySummary {
            len: text.len() as u64,
            text: Some(text.into()),
            ..BodySummary::default()
        },
        elapsed_ms: 1.5,
        ..Exchange::default()
    }
}

/// A run whose root holds `groups`, each a group of cases.
pub fn run(groups: Vec<(&str, Vec<CaseResult>)>) -> RunResult {
    let children = groups
        .into_iter()
        .map(|(name, cases)| {
            ResultNode::Group(GroupResult {
                id: name.into(),
                name: name.into(),
                path: name.into(),
                children: cases
                    .into_iter()
                    .map(|c| ResultNode::Case(Box::new(c)))
                    .collect(),
                duration: Duration::ZERO,
            })
        })
        .collect();
    RunResult {
        root: GroupResult {
            id: String::new(),
            name: "OCI Conformance Test".into(),
            path: String::new(),
            children,
            duration: Duration::ZERO,
        },
        apis: [("Blob get".to_string(), Status::Fail)]
            .into_iter()
            .collect(),
        data: [("Image".to_string(), Status::Pass)].into_iter().collect(),
        config: serde_json::json!({"registry": "r", "tls": "disabled", "password": "***"}),
        seed: 7,
        spec_version: "1.1".into(),
        pack_dir: "specs/1.1".into(),
        pack_source: "embedded".into(),
        pack_digest: "sha256:00".into(),
        spec_url: Some(
            "https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md".into(),
        ),
        anchors: Default::default(),
        started: "2025-01-01T00:00:00Z".into(),
        duration: Duration::from_millis(1500),
        registry: "http://r".into(),
        leftovers: vec![],
        parallel: 1,
        requirements: Default::default(),
    }
}
