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
