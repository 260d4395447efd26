//! A parallel run decides exactly what a sequential run decides, by construction: for every
//! pack, on docker-registry and on ferro-oci-server, `-j 1`, `-j 8` and `-j 32` (each on a fresh
//! registry, same seed, every optional group switched on) give every test the same status,
//! reason and warnings, in the same order, and the same API and data tables. Upload session
//! URLs are the only thing allowed to differ (the registry makes them).
//!
//! The `-j 1` runs are also the schedule audit over every node: each request a node sends is
//! covered by the keys it holds (no test ends in a "schedule audit" Error), and a node whose
//! key is removed is reported.

mod common;

use common::registry::Registry;
use common::{reason, run_against, status_of, text, TempDir};

/// Every group the packs have, so the audit sees every node: the sparse data set, tag
/// parameters, a small large blob, and the read-only group (reading a tag that is not there).
const ALL_ON: [&str; 6] = [
    "--set",
    "data.sparse=true",
    "--set",
    "apis.manifests.tagParam=true",
    "--set",
    "largeBlobSize=1048576",
];

#[derive(Clone, Copy)]
enum Kind {
    Docker,
    Ferro,
}

fn run(kind: Kind, version: &str, jobs: &str) -> serde_json::Value {
    let reg = match kind {
        Kind::Docker => Registry::docker(),
        Kind::Ferro => Registry::ferro(),
    };
    let out = TempDir::new(&format!("parallel-{version}-j{jobs}"));
    let mut args = vec![
        "-q",
        "-j",
        jobs,
        "--seed",
        "2026",
        "--spec-version",
        version,
    ];
    args.extend(ALL_ON);
    let env = [("OCI_RO_DATA_TAGS", "read-only-absent")];
    let (o, r) = run_against(&reg.addr, &out.0, &args, &env);
    assert_eq!(r["parallel"], jobs.parse::<u64>().unwrap(), "{}", text(&o));
    r
}

/// What must not change: id, status, reason and warnings of every test, in order.
fn verdicts(r: &serde_json::Value) -> Vec<(String, String, String, Vec<String>)> {
    let session = regex::Regex::new(r"/blobs/uploads/[^\s?:;,)\]`]*(\?[^\s:;,)\]`]*)?").unwrap();
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

/// Reasons of the tests the schedule audit reported.
fn audit_errors(r: &serde_json::Value) -> Vec<String> {
    r["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .filter_map(|t| {
            let why = t["reason"].as_str()?;
            why.contains("schedule audit")
                .then(|| format!("{}: {why}", t["id"].as_str().unwrap_or_default()))
        })
        .collect()
}

fn same_verdicts(kind: Kind, version: &str) {
    let [one, eight, many] = std::thread::scope(|s| {
        let runs = ["1", "8", "32"].map(|j| s.spawn(move || run(kind, version, j)));
        runs.map(|h| h.join().unwrap())
    });
    let audit = audit_errors(&one);
    assert!(
        audit.is_empty(),
        "the schedule audit found {} unprotected tests:\n{}",
        audit.len(),
        audit.join("\n")
    );
    let base = verdicts(&one);
    assert!(base.len() > 800, "the whole pack ran: {} tests", base.len());
    for (jobs, other) in [("8", &eight), ("32", &many)] {
        let theirs = verdicts(other);
        let differences: Vec<String> = base
            .iter()
            .zip(&theirs)
            .filter(|(x, y)| x != y)
            .map(|(x, y)| format!("-j 1: {x:?}\n-j {jobs}: {y:?}"))
            .collect();
        assert!(differences.is_empty(), "{}", differences.join("\n"));
        assert_eq!(base.len(), theirs.len(), "same tests with -j {jobs}");
        for key in ["apis", "data", "counts", "leftovers", "status", "requests"] {
            assert_eq!(one[key], other[key], "{key} with -j {jobs}");
        }
    }
    // Not a vacuous comparison: every optional group ran, and the registry fails and declines
    // things.
    for id in ["sparse/push", "tag-param-sha256/push", "large blob/"] {
        assert!(base.iter().any(|t| t.0.starts_with(id)), "{id} was planned");
    }
    let statuses: std::collections::BTreeSet<&str> = base.iter().map(|t| t.1.as_str()).collect();
    assert!(
        statuses.contains("FAIL") && statuses.contains("Skip"),
        "{statuses:?}"
    );
}

#[test]
fn docker_registry_1_0() {
    same_verdicts(Kind::Docker, "1.0");
}

#[test]
fn docker_registry_1_1() {
    same_verdicts(Kind::Docker, "1.1");
}

#[test]
fn docker_registry_dev() {
    same_verdicts(Kind::Docker, "dev");
}

#[test]
fn ferro_1_0() {
    same_verdicts(Kind::Ferro, "1.0");
}

#[test]
fn ferro_1_1() {
    same_verdicts(Kind::Ferro, "1.1");
}

#[test]
fn ferro_dev() {
    same_verdicts(Kind::Ferro, "dev");
}

/// A copy of the repository's packs, datasets and schemas in a temporary folder.
fn packs_copy(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    for part in ["specs", "datasets", "schemas"] {
        common::copy_dir(&common::root().join(part), &dir.join(part));
    }
    dir
}

/// Removes `line` (exactly one) from a file of the copy.
fn remove_line(dir: &TempDir, file: &str, line: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(line).count(), 1, "{file} holds `{line}` once");
    std::fs::write(&path, text.replace(line, "")).unwrap();
}

/// A node that lost its key is an Error naming the node, its request and the key: content of
/// the run always needs its key (blob-get reads a pushed blob), and two nodes that may run at
/// the same time need theirs for what both touch (the data sets' tag lists read the list the
/// other data set writes).
#[test]
fn a_node_without_its_key_is_reported() {
    let copy = packs_copy("audit-packs");
    remove_line(
        &copy,
        "specs/1.1/ops/blob-get.yaml",
        "shared: [\"blob:{{ blob.digests.sha256 }}\"]   # only reads them (keys: see pack.yaml)\n",
    );
    remove_line(
        &copy,
        "specs/1.1/ops/tag-list.yaml",
        "shared: [\"tags:{{ repo }}\"]\n",
    );
    let reg = Registry::docker();
    let out = TempDir::new("audit-run");
    let specs = copy.join("specs");
    let args = [
        "-q",
        "-j",
        "1",
        "--specs",
        specs.to_str().unwrap(),
        "--filter",
        "sha256 blobs/post+put",
        "--filter",
        "image",
        "--filter",
        "image-uncompressed",
    ];
    let (o, r) = run_against(&reg.addr, &out.0, &args, &[]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "an Error exits with 3: {}",
        text(&o)
    );

    let id = "sha256 blobs/post+put/blob-get";
    assert_eq!(status_of(&r, id), "Error");
    let why = reason(&r, id);
    assert!(
        why.contains("schedule audit: `GET /v2/conformance/repo1/blobs/sha256:")
            && why.contains("touches `blob:sha256:")
            && why.contains("without holding that key (shared or exclusive)"),
        "{why}"
    );
    // Its neighbours kept their keys and their verdicts.
    assert_eq!(status_of(&r, "sha256 blobs/post+put/blob-head"), "Pass");

    for (id, other) in [
        ("image/tag-list", "image-uncompressed/"),
        ("image-uncompressed/tag-list", "image/"),
    ] {
        assert_eq!(status_of(&r, id), "Error", "{}", reason(&r, id));
        let why = reason(&r, id);
        assert!(
            why.contains("`GET /v2/conformance/repo1/tags/list` touches `tags:conformance/repo1`")
                && why.contains(&format!("while `{other}")),
            "{why}"
        );
    }
    // Every user of the two files is blamed (the data sets pull their blobs with blob-get
    // too), and nothing else.
    let errors: Vec<&str> = r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "Error")
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(
        errors.iter().all(|id| id.ends_with("/blob-get")
            || id.contains("/blob-get[")
            || id.ends_with("/tag-list")),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 9, "{errors:?}");
}
