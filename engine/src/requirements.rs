//! The requirement catalogue: `specs/requirements.yaml`, one entry per normative sentence of
//! each spec version the packs cover, by the id cases cite in `req:`.
//!
//! Lint checks every citation against it, the results carry each cited entry's level,
//! statement and link, and `oci-conform coverage` lists, per entry, the cases that check it.
//! Entries name the versions whose text holds them; `replaced_by` links an entry to the one
//! that takes its place in a later version. A case shared by several packs may cite any entry
//! of such a lineage: [`Catalogue::resolve`] gives, per version, the entry of that version.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::de::{from_node, Located};
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::yaml::Node;

/// The keyword of a normative sentence.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum Level {
    /// An absolute requirement.
    #[serde(rename = "MUST")]
    Must,
    /// An absolute prohibition.
    #[serde(rename = "MUST NOT")]
    MustNot,
    /// A recommendation.
    #[serde(rename = "SHOULD")]
    Should,
    /// A recommendation against.
    #[serde(rename = "SHOULD NOT")]
    ShouldNot,
    /// Something allowed (which a test must then accept).
    #[serde(rename = "MAY")]
    May,
    /// Behaviour the spec states without an RFC 2119 keyword (endpoint table, "will return").
    #[serde(rename = "STATED")]
    Stated,
}

impl Level {
    /// The keyword as the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::MustNot => "MUST NOT",
            Level::Should => "SHOULD",
            Level::ShouldNot => "SHOULD NOT",
            Level::May => "MAY",
            Level::Stated => "STATED",
        }
    }

    /// MUST or MUST NOT: the levels a FAIL can rest on.
    pub fn is_absolute(self) -> bool {
        matches!(self, Level::Must | Level::MustNot)
    }
}

/// Who a sentence obliges.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Binds {
    /// The registry.
    Registry,
    /// The client.
    Client,
    /// Both (grammars of names and references).
    Both,
}

impl Binds {
    /// The name the catalogue uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Binds::Registry => "registry",
            Binds::Client => "client",
            Binds::Both => "both",
        }
    }
}

/// Whether a black-box HTTP test can see a breach.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Observable {
    /// Always.
    Yes,
    /// Only under conditions a test cannot bring about.
    Partly,
    /// Never.
    No,
}

impl Observable {
    /// The name the catalogue uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Observable::Yes => "yes",
            Observable::Partly => "partly",
            Observable::No => "no",
        }
    }
}

/// A spec version the catalogue covers.
#[derive(Clone, Debug)]
pub struct SpecVersion {
    /// The name entries use: `1.0`, `1.1`, `dev`.
    pub id: String,
    /// The `specVersion` of the pack testing it (`1.1+dev` for dev).
    pub spec_version: String,
    /// Its name in reports.
    pub title: String,
    /// Its text.
    pub url: String,
}

/// One normative sentence.
#[derive(Clone, Debug)]
pub struct Requirement {
    /// The id cases cite.
    pub id: String,
    /// The versions whose text holds it (catalogue version ids).
    pub versions: Vec<String>,
    /// The entries that take its place in a later version.
    pub replaced_by: Vec<String>,
    /// The entries whose place it takes (the inverse of `replaced_by`).
    pub replaces: Vec<String>,
    /// Its keyword.
    pub level: Level,
    /// Who it obliges.
    pub binds: Binds,
    /// Whether a black-box test can see a breach.
    pub observable: Observable,
    /// Why it is only partly or not observable.
    pub observable_why: Option<String>,
    /// The heading of its section (in the newest version holding it).
    pub section: String,
    /// Its link in the newest version holding it.
    pub link: String,
    /// Version id → link to its section in that version's text.
    pub links: IndexMap<String, String>,
    /// The duty in one line.
    pub statement: String,
    /// Where the entry is written.
    pub pos: Pos,
}

impl Requirement {
    /// Whether the sentence is in the text of `version` (a catalogue version id).
    pub fn in_version(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// The link to its section in `version`'s text (the newest one when it is not there).
    pub fn link_in(&self, version: &str) -> &str {
        self.links.get(version).unwrap_or(&self.link)
    }

    /// An observable registry MUST or MUST NOT: what a conformance run should check.
    pub fn is_checkable_duty(&self) -> bool {
        self.level.is_absolute() && self.binds != Binds::Client && self.observable != Observable::No
    }
}

/// The loaded catalogue.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    /// The file it was read from.
    pub path: PathBuf,
    /// The versions, oldest first.
    pub versions: Vec<SpecVersion>,
    /// The entries, in file order.
    pub requirements: Vec<Requirement>,
    index: HashMap<String, usize>,
}

impl Catalogue {
    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&Requirement> {
        self.index.get(id).map(|&i| &self.requirements[i])
    }

    /// The catalogue version id for a pack's `specVersion` or a version id (`1.1+dev` → `dev`).
    pub fn version_id(&self, version: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.id == version || v.spec_version == version)
            .map(|v| v.id.as_str())
    }

    /// The version with this id or `specVersion`.
    pub fn version(&self, version: &str) -> Option<&SpecVersion> {
        let id = self.version_id(version)?;
        self.versions.iter().find(|v| v.id == id)
    }

    /// The entries in the text of `version` (a version id or a pack's `specVersion`).
    pub fn of_version<'a>(&'a self, version: &str) -> impl Iterator<Item = &'a Requirement> {
        let id = self.version_id(version).unwrap_or(version).to_string();
        self.requirements.iter().filter(move |r| r.in_version(&id))
    }

    /// Whether entry `id` is in the text of `version`.
    pub fn applies(&self, id: &str, version: &str) -> bool {
        let v = self.version_id(version).unwrap_or(version);
        self.get(id).is_some_and(|r| r.in_version(v))
    }

    /// What a citation of `id` means in `version`: the entry itself when that version holds
    /// it, else the entries of its lineage (through `replaced_by` either way) that it holds,
    /// nearest first. Empty when the id is unknown or no entry of the lineage is in `version`.
    pub fn resolve(&self, id: &str, version: &str) -> Vec<&Requirement> {
        let v = self.version_id(version).unwrap_or(version);
        let Some(start) = self.get(id) else {
            return Vec::new();
        };
        if start.in_version(v) {
            return vec![start];
        }
        let mut seen = vec![start.id.as_str()];
        let mut frontier = vec![start];
        let mut found = Vec::new();
        while found.is_empty() && !frontier.is_empty() {
            let mut next = Vec::new();
            for r in frontier {
                for n in r.replaced_by.iter().chain(&r.replaces) {
                    if seen.contains(&n.as_str()) {
                        continue;
                    }
                    seen.push(n);
                    if let Some(e) = self.get(n) {
                        if e.in_version(v) {
                            found.push(e);
                        }
                        next.push(e);
                    }
                }
            }
            frontier = next;
        }
        found
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CatalogueDef {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    versions: Vec<VersionDef>,
    requirements: Vec<Located<RequirementDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VersionDef {
    id: String,
    spec_version: String,
    #[serde(default)]
    title: Option<String>,
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequirementDef {
    id: Located<String>,
    versions: Located<Vec<String>>,
    #[serde(default)]
    replaced_by: Vec<Located<String>>,
    level: Level,
    binds: Binds,
    section: String,
    #[serde(default)]
    sections: IndexMap<String, String>,
    observable: Observable,
    #[serde(default)]
    why: Option<String>,
    statement: String,
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to `-`.
pub fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Reads and checks the catalogue at `path`.
pub fn load(path: &Path) -> Result<Catalogue, Diagnostics> {
    let node = crate::yaml::load(path).map_err(Diagnostics::from)?;
    compile(&node, path)
}

/// Checks a parsed catalogue: ids unique, versions known, replacements consistent.
pub fn compile(node: &Node, path: &Path) -> Result<Catalogue, Diagnostics> {
    let def: CatalogueDef = from_node(node).map_err(Diagnostics::from)?;
    let mut diags = Diagnostics::default();
    if def.schema_version.is_some_and(|v| v != 1) {
        diags.push(Diagnostic::new(
            node.pos.clone(),
            "unsupported schemaVersion (this engine reads version 1)",
        ));
    }
    let versions: Vec<SpecVersion> = def
        .versions
        .into_iter()
        .map(|v| SpecVersion {
            title: v.title.unwrap_or_else(|| v.id.clone()),
            id: v.id,
            spec_version: v.spec_version,
            url: v.url,
        })
        .collect();
    let known: Vec<&str> = versions.iter().map(|v| v.id.as_str()).collect();
    let mut cat = Catalogue {
        path: path.to_path_buf(),
        versions: versions.clone(),
        ..Catalogue::default()
    };
    let mut replaced: Vec<(usize, Vec<Located<String>>)> = Vec::new();
    for located in def.requirements {
        let pos = located.pos;
        let r = located.value;
        if cat.index.contains_key(&r.id.value) {
            diags.push(Diagnostic::new(
                r.id.pos.clone(),
                format!("duplicate requirement id `{}`", r.id.value),
            ));
            continue;
        }
        for v in r.versions.value.iter().chain(r.sections.keys()) {
            if !known.contains(&v.as_str()) {
                diags.push(
                    Diagnostic::new(r.versions.pos.clone(), format!("unknown version `{v}`"))
                        .with_hint(format!("the catalogue's versions: {}", known.join(", "))),
                );
            }
        }
        if r.versions.value.is_empty() {
            diags.push(Diagnostic::new(
                r.versions.pos.clone(),
                "an entry names at least one version",
            ));
        }
        if r.observable != Observable::Yes && r.why.as_deref().is_none_or(str::is_empty) {
            diags.push(Diagnostic::new(
                pos.clone(),
                format!(
                    "`{}` is observable: {}, so it needs `why`",
                    r.id.value,
                    r.observable.as_str()
                ),
            ));
        }
        // Links in version order; the newest version holding the entry gives `link`.
        let mut links = IndexMap::new();
        for v in &versions {
            if r.versions.value.contains(&v.id) {
                let heading = r.sections.get(&v.id).unwrap_or(&r.section);
                links.insert(
                    v.id.clone(),
                    format!("{}#{}", v.url, heading_anchor(heading)),
                );
            }
        }
        let newest = versions
            .iter()
            .rev()
            .find(|v| r.versions.value.contains(&v.id));
        let section = newest
            .and_then(|v| r.sections.get(&v.id))
            .unwrap_or(&r.section)
            .clone();
        let link = links.values().last().cloned().unwrap_or_default();
        cat.index.insert(r.id.value.clone(), cat.requirements.len());
        replaced.push((cat.requirements.len(), r.replaced_by));
        cat.requirements.push(Requirement {
            id: r.id.value,
            versions: r.versions.value,
            replaced_by: Vec::new(),
            replaces: Vec::new(),
            level: r.level,
            binds: r.binds,
            observable: r.observable,
            observable_why: r.why,
            section,
            link,
            links,
            statement: r.statement,
            pos,
        });
    }
    for (i, targets) in replaced {
        for t in targets {
            let Some(&j) = cat.index.get(&t.value) else {
                diags.push(Diagnostic::new(
                    t.pos.clone(),
                    format!("`replaced_by` names an unknown id `{}`", t.value),
                ));
                continue;
            };
            let (old, new) = (&cat.requirements[i], &cat.requirements[j]);
            let overlap: Vec<&String> = old
                .versions
                .iter()
                .filter(|v| new.versions.contains(v))
                .collect();
            if !overlap.is_empty() || i == j {
                diags.push(Diagnostic::new(
                    t.pos.clone(),
                    format!(
                        "`{}` replaces `{}` in a later version, so they share no version (both name {:?})",
                        new.id, old.id, overlap
                    ),
                ));
                continue;
            }
            let (old_id, new_id) = (old.id.clone(), new.id.clone());
            cat.requirements[i].replaced_by.push(new_id);
            cat.requirements[j].replaces.push(old_id);
        }
    }
    if diags.is_empty() {
        Ok(cat)
    } else {
        Err(diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Catalogue, Diagnostics> {
        let node = crate::yaml::parse(Path::new("requirements.yaml"), text).expect("parses");
        compile(&node, Path::new("requirements.yaml"))
    }

    const HEAD: &str = "versions:\n  - {id: \"1.0\", specVersion: \"1.0\", url: \"https://x/v1.0.1/spec.md\"}\n  - {id: dev, specVersion: \"1.1+dev\", url: \"https://x/main/spec.md\"}\nrequirements:\n";

    #[test]
    fn anchors_follow_github() {
        assert_eq!(
            heading_anchor("Checking if content exists in the registry"),
            "checking-if-content-exists-in-the-registry"
        );
        assert_eq!(heading_anchor("POST then PUT"), "post-then-put");
        assert_eq!(
            heading_anchor("Referrers Tag Schema"),
            "referrers-tag-schema"
        );
    }

    #[test]
    fn lineages_resolve_per_version_both_ways() {
        let cat = parse(&format!(
            "{HEAD}  - {{id: R1, versions: [\"1.0\"], replaced_by: [R2], level: SHOULD, binds: registry, section: Pulling blobs, observable: yes, statement: a}}\n  - {{id: R2, versions: [dev], level: MUST, binds: registry, section: Pulling blobs, sections: {{dev: Blobs}}, observable: yes, statement: b}}\n  - {{id: R3, versions: [dev], level: MUST, binds: client, section: X, observable: no, why: client, statement: c}}\n"
        ))
        .unwrap_or_else(|d| panic!("{}", d.render()));
        assert_eq!(cat.version_id("1.1+dev"), Some("dev"));
        assert!(cat.applies("R2", "1.1+dev") && !cat.applies("R2", "1.0"));
        let ids = |id, v| {
            cat.resolve(id, v)
                .iter()
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("R1", "dev"), ["R2"]);
        assert_eq!(ids("R2", "1.0"), ["R1"]);
        assert_eq!(ids("R3", "1.0"), Vec::<String>::new());
        assert_eq!(cat.get("R2").unwrap().replaces, ["R1"]);
        assert_eq!(cat.get("R2").unwrap().link, "https://x/main/spec.md#blobs");
        assert_eq!(
            cat.get("R1").unwrap().link_in("1.0"),
            "https://x/v1.0.1/spec.md#pulling-blobs"
        );
        assert_eq!(cat.of_version("dev").count(), 2);
        assert!(cat.get("R2").unwrap().is_checkable_duty());
        assert!(!cat.get("R3").unwrap().is_checkable_duty());
    }

    #[test]
    fn inconsistent_entries_are_errors_with_positions() {
        let err = parse(&format!(
            "{HEAD}  - {{id: R1, versions: [\"1.1\"], replaced_by: [R9], level: MUST, binds: registry, section: X, observable: partly, statement: a}}\n  - {{id: R1, versions: [dev], level: MUST, binds: registry, section: X, observable: yes, statement: b}}\n"
        ))
        .unwrap_err();
        let text = err.render();
        for want in [
            "unknown version `1.1`",
            "needs `why`",
            "duplicate requirement id `R1`",
            "unknown id `R9`",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        assert!(err.0.iter().all(|d| d.pos.line > 0), "{text}");
    }
}
