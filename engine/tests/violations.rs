//! A real registry behind a proxy that breaks the spec on purpose: each violation must be
//! reported as FAIL on the right test, with a reason naming what was wrong.

mod common;

use common::fake::{Action, FakeServer};
use common::registry::Registry;
use common::{cli, reason, results, status_of, TempDir};

fn run_through(proxy: &FakeServer, filter: &str) -> serde_json::Value {
    let out = TempDir::new("viol");
    let o = cli(
        &[
            "run",
            "--results-dir",
            out.0.to_str().unwrap(),
            "--filter",
            filter,
            "--seed",
            "7",
        ],
        &[("OCI_REGISTRY", &proxy.addr), ("OCI_TLS", "disabled")],
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "a violation must exit with 4: {}",
        common::text(&o)
    );
    results(&out.0)
}

#[test]
fn wrong_status_on_blob_put_fails_the_push() {
    let reg = Registry::docker();
    let proxy = FakeServer::proxy(&reg.addr, |req, mut resp| {
        if req.method == "PUT" && req.path.contains("/blobs/uploads/") && resp.status == 201 {
            resp.status = 200;
        }
        Action::Respond(resp)
    });
    let r = run_through(&proxy, "sha256 blobs/post+put");
    assert_eq!(status_of(&r, "sha256 blobs/post+put/blob-post-put"), "FAIL");
    assert!(
        reason(&r, "sha256 blobs/post+put/blob-post-put").contains("expected status 201, got 200"),
        "{}",
        reason(&r, "sha256 blobs/post+put/blob-post-put")
    );
    assert_eq!(r["apis"]["Blob post put"], "FAIL");
}

#[test]
fn missing_location_header_fails() {
    let reg = Registry::docker();
    let proxy = FakeServer::proxy(&reg.addr, |req, resp| {
        if req.method == "POST" && req.path.contains("/blobs/uploads/") {
            return Action::Respond(resp.without("location"));
        }
        Action::Respond(resp)
    });
    let r = run_through(&proxy, "sha256 blobs/post+put");
    assert_eq!(status_of(&r, "sha256 blobs/post+put/blob-post-put"), "FAIL");
    assert!(
        reason(&r, "sha256 blobs/post+put/blob-post-put").contains("header Location is missing")
    );
}

#[test]
fn corrupted_blob_body_fails_the_get() {
    let reg = Registry::docker();
    // The push verifies its upload with a first GET; corrupt only the later GETs.
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    let proxy = FakeServer::proxy(&reg.addr, move |req, mut resp| {
        if req.method == "GET"
            && req.path.contains("/blobs/sha256:")
            && resp.status == 200
            && !resp.body.is_empty()
            && !seen.lock().unwrap().insert(req.path.clone())
        {
            resp.body[0] ^= 0xff;
        }
        Action::Respond(resp)
    });
    let r = run_through(&proxy, "sha256 blobs/post+put");
    assert_eq!(status_of(&r, "sha256 blobs/post+put/blob-get"), "FAIL");
    assert!(
        reason(&r, "sha256 blobs/post+put/blob-get").contains("body differs"),
        "{}",
        reason(&r, "sha256 blobs/post+put/blob-get")
    );
}

/// The worked example of docs/maintainers.md: a registry that answers 200 to HEAD of a blob it
/// does not have breaks R41, and `extra/absent content/head missing blob` catches it.
#[test]
fn head_of_a_missing_blob_must_be_404() {
    let reg = Registry::docker();
    let proxy = FakeServer::proxy(&reg.addr, |req, mut resp| {
        if req.method == "HEAD" && req.path.contains("/blobs/") && resp.status == 404 {
            resp.status = 200;
        }
        Action::Respond(resp)
    });
    let r = run_through(&proxy, "extra/absent content/head missing blob");
    let id = "extra/absent content/head missing blob";
    assert_eq!(status_of(&r, id), "FAIL");
    assert!(
        reason(&r, id).contains("expected status 404, got 200"),
        "{}",
        reason(&r, id)
    );
    assert_eq!(
        r["tests"].as_array().unwrap().len(),
        1,
        "the filter runs only this case"
    );
}
