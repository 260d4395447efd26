//! `oci-conform selftest` against real registries: every violation of specs/alterations/ that
//! applies to the registry is caught by the test it names, every variant passes the whole
//! pack, on docker-registry (spec 1.1, and the dev-only violations on dev) and on
//! ferro-oci-server; and a violation whose test is gone from the pack makes it fail.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::{cli, root, text, TempDir};

/// Every alteration of a specs folder (compiled as the binary compiles them).
fn alterations(specs: &Path) -> Vec<oci_conform::selftest::alteration::Alteration> {
    let files = oci_conform::pack::alteration_files(specs).expect("alteration files read");
    oci_conform::selftest::alteration::compile_all(&files).expect("alterations compile")
}

/// Runs `selftest` against `reg`; the output, selftest.yaml as JSON, and the wall time.
fn selftest(reg: &Registry, args: &[&str]) -> (Output, serde_json::Value, Duration) {
    let out = TempDir::new("selftest");
    let mut all = vec![
        "selftest",
        "--registry",
        &reg.addr,
        "--results-dir",
        out.0.to_str().unwrap(),
        "-q",
    ];
    all.extend_from_slice(args);
    let t0 = Instant::now();
    let o = cli(&all, &[("OCI_TLS", "disabled")]);
    let took = t0.elapsed();
    let yaml = std::fs::read_to_string(out.join("selftest.yaml"))
        .unwrap_or_else(|_| panic!("selftest.yaml written: {}", text(&o)));
    let doc: serde_json::Value = serde_saphyr::from_str(&yaml).expect("selftest.yaml parses");
    (o, doc, took)
}

fn rows(doc: &serde_json::Value) -> &Vec<serde_json::Value> {
    doc["alterations"].as_array().expect("alterations list")
}

fn count(doc: &serde_json::Value, verdict: &str) -> usize {
    rows(doc).iter().filter(|r| r["verdict"] == verdict).count()
}

/// Every applicable alteration ran and holds: violations caught, variants clean.
fn assert_holds(o: &Output, doc: &serde_json::Value, applicable: usize) {
    let bad: Vec<String> = rows(doc)
        .iter()
        .filter(|r| !matches!(r["verdict"].as_str(), Some("caught" | "clean")))
        .map(|r| format!("{} {}: {}", r["id"], r["verdict"], r["reason"]))
        .collect();
    assert!(
        bad.is_empty(),
        "rows that do not hold:\n{}\n{}",
        bad.join("\n"),
        text(o)
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    assert_eq!(doc["status"], "ok");
    assert_eq!(
        rows(doc).len(),
        applicable,
        "every applicable alteration ran"
    );
    for r in rows(doc) {
        if r["verdict"] == "caught" {
            assert!(
                !r["failed"].as_array().expect("failed").is_empty(),
                "a caught row names the tests that failed: {r}"
            );
        }
    }
}

fn applicable(target: &str, pack_names: &[&str]) -> usize {
    let names: Vec<String> = pack_names.iter().map(|s| s.to_string()).collect();
    alterations(&root().join("specs"))
        .iter()
        .filter(|a| a.applies(target, &names))
        .count()
}

#[test]
fn every_alteration_holds_on_docker_registry() {
    let reg = Registry::docker();
    let (o, doc, took) = selftest(&reg, &["--target", "docker-registry", "--runs", "4"]);
    assert_holds(&o, &doc, applicable("docker-registry", &["1.1", "stable"]));
    eprintln!(
        "docker-registry: {} caught, {} clean in {:.1} s",
        count(&doc, "caught"),
        count(&doc, "clean"),
        took.as_secs_f64()
    );
    assert!(count(&doc, "caught") >= 45, "{}", text(&o));
    assert!(count(&doc, "clean") >= 20, "{}", text(&o));
    // The registry's own defects are listed apart, not hidden.
    assert!(
        !doc["baseline"]["failures"]
            .as_array()
            .expect("baseline failures")
            .is_empty(),
        "docker-registry 2.8 has known defects the baseline lists"
    );
}

#[test]
fn the_dev_violations_hold_on_docker_registry() {
    let names = ["dev".to_string(), "1.1+dev".to_string()];
    let dev: Vec<String> = alterations(&root().join("specs"))
        .into_iter()
        .filter(|a| a.versions == ["dev"] && a.applies("docker-registry", &names))
        .map(|a| a.id)
        .collect();
    assert!(dev.len() >= 4, "{dev:?}");
    let only = dev.join(",");
    let reg = Registry::docker();
    let (o, doc, took) = selftest(
        &reg,
        &[
            "--target",
            "docker-registry",
            "--spec-version",
            "dev",
            "--only",
            &only,
        ],
    );
    assert_holds(&o, &doc, dev.len());
    eprintln!(
        "docker-registry, dev: {} caught in {:.1} s",
        count(&doc, "caught"),
        took.as_secs_f64()
    );
}

#[test]
fn every_alteration_holds_on_ferro() {
    let reg = Registry::ferro();
    // ferro-oci-server keeps one copy of a blob for all repositories and deletes it from all
    // of them, so runs that share fixed content (the empty blob, `{}`) must not overlap.
    let (o, doc, took) = selftest(&reg, &["--target", "ferro-oci-server", "--runs", "1"]);
    assert_holds(&o, &doc, applicable("ferro-oci-server", &["1.1", "stable"]));
    eprintln!(
        "ferro-oci-server: {} caught, {} clean in {:.1} s",
        count(&doc, "caught"),
        count(&doc, "clean"),
        took.as_secs_f64()
    );
    assert!(count(&doc, "caught") >= 60, "{}", text(&o));
    assert!(count(&doc, "clean") >= 20, "{}", text(&o));
}

#[test]
fn a_violation_whose_test_is_gone_makes_the_selftest_fail() {
    // A copy of the packs without the case that catches `blob-head-missing-200`.
    let tmp = TempDir::new("selftest-gone");
    for tree in ["specs", "datasets", "schemas"] {
        common::copy_dir(&root().join(tree), &tmp.join(tree));
    }
    let case = tmp.join("specs/1.1/extra/repository.yaml");
    let yaml = std::fs::read_to_string(&case).unwrap();
    let start = yaml
        .find("  - name: head missing blob\n")
        .expect("the case");
    let end = yaml
        .find("  - name: head missing manifest\n")
        .expect("the next case");
    std::fs::write(&case, format!("{}{}", &yaml[..start], &yaml[end..])).unwrap();
    let specs = tmp.join("specs");
    let specs = specs.to_str().unwrap();

    let reg = Registry::docker();
    let (o, doc, _) = selftest(&reg, &["--specs", specs, "--only", "blob-head-missing-200"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let row = &rows(&doc)[0];
    assert_eq!(row["verdict"], "missed", "{row}");
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .contains("no test `extra/absent content/head missing blob`"),
        "{row}"
    );
    assert!(text(&o).contains("some rows do not hold"), "{}", text(&o));

    // lint says so too, at the alteration's `caught_by`.
    let o = cli(&["lint", &format!("{specs}/alterations")], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("starts with `extra/absent content/head missing blob`")
            && text(&o).contains("alterations/blobs.yaml:"),
        "{}",
        text(&o)
    );
}
