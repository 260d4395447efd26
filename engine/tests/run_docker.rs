//! The real binary against a real docker-registry (distribution 2.8) on loopback.

mod common;

use common::registry::Registry;
use common::{run_against, status_of, text, TempDir};

fn run(reg: &str, out: &TempDir, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    run_against(reg, &out.0, &[&["--seed", "42"], extra].concat(), &[])
}

#[test]
fn docker_registry_gets_the_expected_verdicts() {
    let reg = Registry::docker();
    let out = TempDir::new("results");
    let (o, r) = run(&reg.addr, &out, &[]);
    let log = text(&o);
    assert!(out.join("junit.xml").exists(), "{log}");
    // Verdicts the official suite also reaches on distribution 2.8.
    assert_eq!(r["apis"]["Ping"], "Pass", "{log}");
    assert_eq!(r["apis"]["Blob post only"], "Skip");
    assert_eq!(r["apis"]["Blob post put"], "Pass");
    assert_eq!(r["apis"]["Tag delete"], "Skip");
    assert_eq!(r["apis"]["Manifest delete"], "Pass");
    assert_eq!(r["apis"]["Blob upload cancel"], "Disabled");
    assert_eq!(
        status_of(&r, "sha256 blobs/post only/blob-post-only"),
        "Skip"
    );
    assert_eq!(status_of(&r, "image/push/manifest-by-tag[image]"), "Pass");
    // Every official API name is present.
    assert_eq!(r["apis"].as_object().unwrap().len(), 28);
    assert_eq!(r["seed"], 42);
    assert!(r["counts"]["Total"].as_u64().unwrap() > 50);
}

#[test]
fn the_same_seed_sends_the_same_content() {
    let reg = Registry::docker();
    let (a, b) = (TempDir::new("a"), TempDir::new("b"));
    let (_, ra) = run(&reg.addr, &a, &["--filter", "image/push"]);
    let reg2 = Registry::docker();
    let (_, rb) = run(&reg2.addr, &b, &["--filter", "image/push"]);
    let ids = |r: &serde_json::Value| {
        r["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&ra), ids(&rb));
    assert!(
        ids(&ra).iter().all(|i| i.starts_with("image/push")),
        "{:?}",
        ids(&ra)
    );
}
