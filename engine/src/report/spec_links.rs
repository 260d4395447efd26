//! Links from a scenario's spec anchors (`end-4a`, `code-3`, a section slug) to the spec text
//! of the pack's version.
//!
//! The spec's endpoint and error-code ids are table cells, not HTML anchors, so they link to
//! the table that defines them (`#endpoints`, `#error-codes`); any other anchor is taken as a
//! heading slug. A pack overrides any of this with `spec.anchors` in its `pack.yaml`
//! (anchor → `#fragment` or full URL).

use indexmap::IndexMap;

/// A spec anchor with where it points.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SpecLink {
    /// The anchor as the scenario writes it.
    pub anchor: String,
    /// Full URL, when the pack names its spec text.
    pub url: Option<String>,
    /// What the link leads to, for a tooltip.
    pub title: String,
}

/// Resolves one anchor against the pack's spec URL and anchor map.
pub fn link(spec_url: Option<&str>, anchors: &IndexMap<String, String>, anchor: &str) -> SpecLink {
    let base = spec_url.map(|u| u.split('#').next().unwrap_or(u).to_string());
    let (target, title) = match anchors.get(anchor) {
        Some(t) => (t.clone(), format!("{anchor} in the spec")),
        None => default_target(anchor),
    };
    let url = if target.starts_with("http://") || target.starts_with("https://") {
        Some(target)
    } else {
        base.map(|b| format!("{b}#{}", target.trim_start_matches('#')))
    };
    SpecLink {
        anchor: anchor.to_string(),
        url,
        title,
    }
}

/// Links for all anchors of a test.
pub fn links(
    spec_url: Option<&str>,
    anchors: &IndexMap<String, String>,
    list: &[String],
) -> Vec<SpecLink> {
    list.iter().map(|a| link(spec_url, anchors, a)).collect()
}

/// The fragment for an anchor the pack does not map, and a tooltip.
fn default_target(anchor: &str) -> (String, String) {
    let id_of = |prefix: &str| {
        anchor
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    };
    if id_of("end-") {
        (
            "endpoints".into(),
            format!("row {anchor} of the spec's endpoint table"),
        )
    } else if id_of("code-") {
        (
            "error-codes".into(),
            format!("row {anchor} of the spec's error code table"),
        )
    } else {
        (slug(anchor), format!("section {anchor} of the spec"))
    }
}

/// GitHub's heading slug: lower case, spaces to dashes, punctuation dropped.
fn slug(s: &str) -> String {
    s.trim_start_matches('#')
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md";

    #[test]
    fn table_ids_link_to_their_tables() {
        let none = IndexMap::new();
        let l = link(Some(SPEC), &none, "end-4a");
        assert_eq!(l.url.as_deref(), Some(&*format!("{SPEC}#endpoints")));
        assert!(l.title.contains("end-4a"));
        let l = link(Some(SPEC), &none, "code-3");
        assert_eq!(l.url.as_deref(), Some(&*format!("{SPEC}#error-codes")));
        let l = link(Some(SPEC), &none, "Pulling blobs");
        assert_eq!(l.url.as_deref(), Some(&*format!("{SPEC}#pulling-blobs")));
        // "end-user" is no table id
        assert!(link(Some(SPEC), &none, "end-user")
            .url
            .unwrap()
            .ends_with("#end-user"));
    }

    #[test]
    fn the_pack_map_wins_and_no_url_means_no_link() {
        let mut map = IndexMap::new();
        map.insert("end-2".to_string(), "#pulling-blobs".to_string());
        map.insert("x".to_string(), "https://example.com/x#y".to_string());
        assert_eq!(
            link(Some(&format!("{SPEC}#top")), &map, "end-2")
                .url
                .as_deref(),
            Some(&*format!("{SPEC}#pulling-blobs"))
        );
        assert_eq!(
            link(None, &map, "x").url.as_deref(),
            Some("https://example.com/x#y")
        );
        assert_eq!(link(None, &map, "end-3").url, None);
    }
}
