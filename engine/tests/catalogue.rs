//! The requirement catalogue (`specs/requirements.yaml`): it loads, it agrees with the packs,
//! and it says what the issue asks of it for each version.

mod common;

use common::registry::Registry;
use common::{root, run_against, status_of, text, TempDir};
use oci_conform::pack;
use oci_conform::requirements::{self, Binds, Level, Observable};

fn catalogue() -> requirements::Catalogue {
    requirements::load(&root().join("specs/requirements.yaml"))
        .unwrap_or_else(|d| panic!("{}", d.render()))
}

#[test]
fn every_pack_finds_the_catalogue_and_shares_its_version_and_spec_url() {
    let cat = catalogue();
    for dir in ["1.0", "1.1", "dev"] {
        let p = pack::load(&root().join("specs").join(dir))
            .unwrap_or_else(|d| panic!("{}", d.render()));
        let c = p
            .catalogue
            .as_ref()
            .expect("the pack found specs/requirements.yaml");
        assert_eq!(c.requirements.len(), cat.requirements.len());
        let v = cat
            .version(&p.spec_version)
            .unwrap_or_else(|| panic!("no catalogue version for specVersion {}", p.spec_version));
        assert_eq!(
            Some(&v.url),
            p.spec_url.as_ref(),
            "{dir}: links use the pack's spec text"
        );
        assert!(cat.of_version(&p.spec_version).count() > 100, "{dir}");
    }
}

#[test]
fn every_entry_says_why_it_is_not_observable_and_links_its_section_in_each_version() {
    let cat = catalogue();
    for r in &cat.requirements {
        if r.observable != Observable::Yes {
            assert!(
                r.observable_why.as_deref().is_some_and(|w| !w.is_empty()),
                "{}",
                r.id
            );
        }
        // Client rules constrain the test's own requests: a registry cannot be seen breaking them.
        if r.binds == Binds::Client && r.level != Level::May {
            assert_eq!(r.observable, Observable::No, "{}: a client rule", r.id);
        }
        for v in &r.versions {
            let link = r.link_in(v);
            let base = &cat.version(v).expect("known version").url;
            assert!(link.starts_with(&format!("{base}#")), "{}: {link}", r.id);
            assert!(!link.ends_with('#'), "{}", r.id);
        }
        assert!(
            !r.statement.trim().is_empty() && !r.statement.contains('\n'),
            "{}",
            r.id
        );
    }
}

#[test]
fn replacements_point_forward_in_time() {
    let cat = catalogue();
    let order = |v: &str| cat.versions.iter().position(|x| x.id == v).expect("known");
    for r in &cat.requirements {
        for n in &r.replaced_by {
            let next = cat.get(n).expect("known id");
            let last_old = r.versions.iter().map(|v| order(v)).max().unwrap();
            let first_new = next.versions.iter().map(|v| order(v)).min().unwrap();
            assert!(first_new > last_old, "{} → {n}", r.id);
        }
    }
}

/// docker-registry accepts a chunk that does not start where the upload stands (202 instead
/// of 416): the FAIL names R75, and every place a user reads it says what R75 asks and links
/// its section of the v1.1.1 text.
#[test]
fn a_fail_on_docker_registry_shows_its_requirement_in_console_report_and_junit() {
    let reg = Registry::docker();
    let out = TempDir::new("cited");
    let id = "sha256 blobs/chunked out-of-order/blob-patch-chunked";
    let (o, r) = run_against(&reg.addr, &out.0, &["--filter", id], &[]);
    assert_eq!(status_of(&r, id), "FAIL", "{}", text(&o));
    let cat = catalogue();
    let r75 = cat.get("R75").expect("R75");
    let link = r75.link_in("1.1");
    assert_eq!(
        link,
        "https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pushing-a-blob-in-chunks"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = format!("R75 MUST: {} <{link}>", r75.statement);
    assert!(stdout.contains(&line), "console lacks `{line}`:\n{stdout}");

    let html = std::fs::read_to_string(out.join("report.html"))
        .expect("report.html")
        .replace("&#x2f;", "/");
    let html_line = format!("<a href=\"{link}\">R75</a> <b>MUST</b>: {}", r75.statement);
    assert!(html.contains(&html_line), "report.html lacks {html_line}");

    let junit = std::fs::read_to_string(out.join("junit.xml"))
        .expect("junit.xml")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let failure = junit
        .split("<failure ")
        .nth(1)
        .and_then(|f| f.split("</failure>").next())
        .expect("a <failure> element");
    assert!(
        failure.contains(&line),
        "the <failure> text lacks `{line}`:\n{failure}"
    );

    let test = r["tests"]
        .as_array()
        .and_then(|t| t.iter().find(|x| x["id"] == id))
        .expect("the test in results.yaml");
    let cited: Vec<&serde_json::Value> = test["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .flat_map(|f| f["requirements"].as_array().into_iter().flatten())
        .filter(|c| c["id"] == "R75")
        .collect();
    assert!(!cited.is_empty(), "results.yaml: {test}");
    assert_eq!(cited[0]["link"], link);
    assert_eq!(cited[0]["level"], "MUST");
    assert_eq!(cited[0]["statement"], r75.statement.as_str());
}

/// A pack of its own next to a small catalogue: lint fails on an unknown id and on an id of
/// another version (unless a version switch keeps the check out of this one), and warns on the
/// registry MUST no case checks.
#[test]
fn lint_checks_citations_both_ways() {
    let dir = TempDir::new("citations");
    std::fs::write(
        dir.join("requirements.yaml"),
        r#"versions:
  - {id: "1.1", specVersion: "1.1", title: Spec 1.1, url: "https://x/1.1"}
  - {id: dev, specVersion: "9", url: "https://x/dev"}
requirements:
  - {id: R1, versions: ["1.1", dev], level: MUST, binds: registry, section: A, observable: yes, statement: one}
  - {id: R2, versions: [dev], level: MUST, binds: registry, section: A, observable: yes, statement: two}
  - {id: R3, versions: ["1.1"], level: MUST NOT, binds: registry, section: A, observable: partly, why: w, statement: three}
  - {id: R4, versions: ["1.1"], level: MUST, binds: client, section: A, observable: no, why: w, statement: four}
"#,
    )
    .unwrap();
    let pack = dir.join("p");
    std::fs::create_dir_all(&pack).unwrap();
    std::fs::write(
        pack.join("pack.yaml"),
        format!(
            "schemaVersion: 1\nname: t\nspecVersion: \"1.1\"\nschemas: {}\nvars: {{dev_only: false}}\nitems:\n  - use: case.yaml\n",
            root().join("schemas").display()
        ),
    )
    .unwrap();
    std::fs::write(
        pack.join("case.yaml"),
        "name: c\nreq: [R1]\nsteps:\n  - request: {method: GET, url: /v2/}\n    expect:\n      status: 200\n      headers:\n        A: {present: false, req: [R99]}\n        B: {present: false, req: [R2]}\n        C: {when: dev_only, present: false, req: [R2]}\n        D: {present: false, req: [R2, R1]}\n",
    )
    .unwrap();
    let o = common::cli(&["lint", pack.to_str().unwrap()], &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("error: unknown requirement id `R99`"), "{t}");
    assert!(t.contains("case.yaml:8:35"), "the id's own position: {t}");
    assert!(
        t.contains("error: `R2` is not a requirement of Spec 1.1 (its text is in dev)"),
        "{t}"
    );
    assert!(t.contains("case.yaml:9:35"), "{t}");
    assert!(
        !t.contains("case.yaml:10:"),
        "a check a version switch turns off: {t}"
    );
    assert!(
        !t.contains("case.yaml:11:"),
        "a list that names this version's entry too: {t}"
    );
    assert_eq!(t.matches("error:").count(), 2, "{t}");
    assert!(
        t.contains("warning: no case of the 1.1 pack checks R3 (MUST NOT registry, observable: partly): three"),
        "the coverage gap: {t}"
    );
    assert!(!t.contains("checks R4"), "client rules are no gap: {t}");
}

/// docs/coverage-<version>.md is what `oci-conform coverage --format md` prints for the pack:
/// a case added, moved or removed (or a catalogue entry changed) makes it stale.
#[test]
fn coverage_docs_are_current() {
    let mut stale = Vec::new();
    for version in ["1.0", "1.1", "dev"] {
        let o = common::cli(
            &["coverage", "--spec-version", version, "--format", "md"],
            &[],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let now = String::from_utf8(o.stdout).expect("utf-8");
        let file = format!("docs/coverage-{version}.md");
        let committed = std::fs::read_to_string(root().join(&file)).unwrap_or_default();
        if committed != now {
            stale.push(format!(
                "{file} is stale; regenerate it with\n  cargo run -q -- coverage --spec-version {version} --format md > {file}"
            ));
        }
        // The counts the issue asks for, as the report states them.
        assert!(now.contains("| entries of this version |"), "{file}");
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

/// The coverage report lists every observable registry MUST of 1.1 with the cases checking
/// it, and reads statuses from results.yaml files.
#[test]
fn coverage_lists_cases_and_the_status_each_registry_got() {
    let out = TempDir::new("coverage");
    let results = out.join("docker");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::write(
        results.join("results.yaml"),
        "registry: http://r\npack: {specVersion: \"1.1\"}\ntests:\n  - {id: a, status: FAIL, req: [R75], failures: [{message: m, source: s, level: MUST, req: [R75]}]}\n  - {id: b, status: Pass, req: [R45, R37]}\n  - {id: c, status: Pass, req: [R39], warnings: [{message: m, source: s, level: SHOULD, req: [R39]}]}\n",
    )
    .unwrap();
    let path = results.join("results.yaml");
    let o = common::cli(
        &[
            "coverage",
            "--spec-version",
            "1.1",
            "--format",
            "yaml",
            "--results",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let doc: serde_json::Value =
        serde_saphyr::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(doc["registries"][0][0], "docker");
    let row = |id: &str| {
        doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id}"))
            .clone()
    };
    assert_eq!(row("R75")["statuses"][0], "FAIL");
    assert_eq!(row("R45")["statuses"][0], "Pass");
    assert_eq!(row("R37")["statuses"][0], "Pass");
    assert_eq!(row("R39")["statuses"][0], "warning");
    assert_eq!(row("R171")["statuses"][0], "—");
    let r75 = row("R75");
    assert_eq!(r75["extent"], "full");
    assert!(r75["cases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["at"] == "specs/1.1/ops/blob-patch-chunked.yaml:2"));
    // Every observable registry MUST / MUST NOT of 1.1 is a row; the uncovered ones say so.
    let cat = catalogue();
    let duties: Vec<&str> = cat
        .of_version("1.1")
        .filter(|r| r.is_checkable_duty())
        .map(|r| r.id.as_str())
        .collect();
    assert!(duties.len() >= 74, "{}", duties.len());
    for id in &duties {
        let r = row(id);
        assert_eq!(r["duty"], true, "{id}");
        let cases = r["cases"].as_array().map_or(0, Vec::len);
        assert_eq!(r["extent"] == "none", cases == 0, "{id}: {r}");
    }
    let html = common::cli(&["coverage", "--format", "html"], &[]);
    let page = String::from_utf8_lossy(&html.stdout);
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.contains("R75</a>"),
        "{page}"
    );
}

/// Every id the three packs cite, in any `req:` list of any file they read, is an entry.
#[test]
fn every_cited_id_resolves() {
    let cat = catalogue();
    let mut cited = std::collections::BTreeSet::new();
    for dir in ["1.0", "1.1", "dev"] {
        let mut loader = pack::Loader::default();
        let p = pack::load_with(&root().join("specs").join(dir), &mut loader)
            .unwrap_or_else(|d| panic!("{}", d.render()));
        for c in oci_conform::citations::collect(&loader) {
            assert!(cat.get(&c.id).is_some(), "{}: `{}`", c.pos, c.id);
            // In this pack's version it means an entry of that version (or, under a version
            // switch that is false here, nothing: lint checks which).
            let _ = cat.resolve(&c.id, &p.spec_version);
            cited.insert(c.id);
        }
    }
    assert!(cited.len() > 130, "{}", cited.len());
}
