//! The requirement catalogue (`specs/requirements.yaml`): it loads, it agrees with the packs,
//! and it says what the issue asks of it for each version.

mod common;

use common::root;
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
