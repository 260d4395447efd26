//! A parallel run decides exactly what a sequential run decides: the full default 1.1 pack on
//! docker-registry with `-j 1` and with `-j 8` (each on a fresh registry, same seed) gives every
//! test the same status, reason and warnings, in the same order, and the same API and data
//! tables. Upload session URLs are the only thing allowed to differ (the registry makes them).

mod common;

use common::registry::Registry;
use common::{run_against, text, TempDir};

fn run(jobs: &str) -> serde_json::Value {
    let reg = Registry::docker();
    let out = TempDir::new(&format!("parallel-j{jobs}"));
    let args = ["-q", "-j", jobs, "--seed", "2026"];
    let (o, r) = run_against(&reg.addr, &out.0, &args, &[]);
    assert_eq!(r["parallel"], jobs.parse::<u64>().unwrap(), "{}", text(&o));
    r
}

/// What must not change: id, status, reason and warnings of every test, in order.
fn verdicts(r: &serde_json::Value) -> Vec<(String, String, String, Vec<String>)> {
    let session = regex::Regex::new(r"/blobs/uploads/[^\s?:;,)\]]*(\?[^\s:;,)\]]*)?").unwrap();
    let uuid =
        regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    let norm = |s: &str| {
        let s = session.replace_all(s, "/blobs/uploads/<session>");
        uuid.replace_all(&s, "<uuid>").into_owned()
    };
    r["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| {
            let warnings = t["warnings"]
                .as_array()
                .map(|w| {
                    w.iter()
                        .map(|w| norm(w["message"].as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            (
                t["id"].as_str().unwrap_or_default().to_string(),
                t["status"].as_str().unwrap_or_default().to_string(),
                norm(t["reason"].as_str().unwrap_or_default()),
                warnings,
            )
        })
        .collect()
}

#[test]
fn parallel_and_sequential_runs_reach_the_same_verdicts() {
    let (one, many) = std::thread::scope(|s| {
        let one = s.spawn(|| run("1"));
        let many = s.spawn(|| run("8"));
        (one.join().unwrap(), many.join().unwrap())
    });
    let (a, b) = (verdicts(&one), verdicts(&many));
    assert!(a.len() > 800, "the whole pack ran: {} tests", a.len());
    let differences: Vec<String> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("-j 1: {x:?}\n-j 8: {y:?}"))
        .collect();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(a.len(), b.len(), "same tests");
    for key in ["apis", "data", "counts", "leftovers", "status", "requests"] {
        assert_eq!(one[key], many[key], "{key}");
    }
    // Not a vacuous comparison: the pack has failures and skips on this registry.
    let statuses: std::collections::BTreeSet<&str> = a.iter().map(|t| t.1.as_str()).collect();
    assert!(
        statuses.contains("FAIL") && statuses.contains("Skip"),
        "{statuses:?}"
    );
}
