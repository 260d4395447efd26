//! The result tree of a run and its roll-ups.
//!
//! The runner produces one [`CaseResult`] per test case, in plan order, inside groups. Status
//! roll-ups (groups, APIs, data sets) follow the official suite: statuses are ordered
//! Unknown < Disabled < Skip < Pass < FAIL < Error and a group takes its children's maximum.
//! Reporters read these structures and nothing else.

use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use crate::http::Exchange;
use crate::requirements::Catalogue;
use crate::scenario::Level;

/// Outcome of a test, ordered as the official suite orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Status {
    /// Nothing recorded.
    #[default]
    Unknown,
    /// Turned off by configuration.
    Disabled,
    /// The registry validly declined an optional feature.
    Skip,
    /// Conformant.
    Pass,
    /// The registry broke the spec.
    Fail,
    /// The engine could not decide (bad scenario at run time, internal problem).
    Error,
}

impl Status {
    /// The official spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "Unknown",
            Status::Disabled => "Disabled",
            Status::Skip => "Skip",
            Status::Pass => "Pass",
            Status::Fail => "FAIL",
            Status::Error => "Error",
        }
    }

    /// Parses the official spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Unknown" => Status::Unknown,
            "Disabled" => Status::Disabled,
            "Skip" => Status::Skip,
            "Pass" => Status::Pass,
            "FAIL" | "Fail" => Status::Fail,
            "Error" => Status::Error,
            _ => return None,
        })
    }

    /// All statuses in order.
    pub const ALL: [Status; 6] = [
        Status::Unknown,
        Status::Disabled,
        Status::Skip,
        Status::Pass,
        Status::Fail,
        Status::Error,
    ];
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check that did not hold.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Finding {
    /// What went wrong, with actual and expected values.
    pub message: String,
    /// `file:line` of the check in the scenario.
    pub source: String,
    /// Level of the broken requirement.
    pub level: Level,
    /// Requirement ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub req: Vec<String>,
    /// Index of the exchange the check was made on (from 0); results.yaml writes its number
    /// (from 1), as the report and junit.xml number exchanges.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_exchange_number"
    )]
    pub exchange: Option<usize>,
}

/// A requirement a finding cites, as reports show it: the catalogue entry of the pack's version.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Cited {
    /// The id (`R75`).
    pub id: String,
    /// Its keyword (`MUST`, `MUST NOT`, …).
    pub level: String,
    /// The duty in one line.
    pub statement: String,
    /// Its section in the spec text of the pack's version.
    pub link: String,
}

/// Rewrites the requirement ids of every case and finding to the catalogue entries of
/// `version` (a citation of an entry another version replaced means that version's entry), and
/// returns the entries the findings cite, by id. Ids the catalogue cannot place stay as written.
pub fn resolve_citations(
    root: &mut GroupResult,
    catalogue: &Catalogue,
    version: &str,
) -> IndexMap<String, Cited> {
    let resolve = |ids: &mut Vec<String>| {
        let mut out: Vec<String> = Vec::new();
        for id in ids.iter() {
            let found = catalogue.resolve(id, version);
            let ids = if found.is_empty() {
                vec![id.clone()]
            } else {
                found.iter().map(|r| r.id.clone()).collect()
            };
            for i in ids {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        *ids = out;
    };
    let v = catalogue.version_id(version).unwrap_or(version).to_string();
    let mut cited = IndexMap::new();
    fn walk(g: &mut GroupResult, f: &mut dyn FnMut(&mut CaseResult)) {
        for c in &mut g.children {
            match c {
                ResultNode::Case(c) => f(c),
                ResultNode::Group(g) => walk(g, f),
            }
        }
    }
    walk(root, &mut |case| {
        resolve(&mut case.req);
        for f in case.failures.iter_mut().chain(case.warnings.iter_mut()) {
            resolve(&mut f.req);
            for id in &f.req {
                if let Some(r) = catalogue.get(id).filter(|r| r.in_version(&v)) {
                    cited.entry(id.clone()).or_insert_with(|| Cited {
                        id: id.clone(),
                        level: r.level.as_str().to_string(),
                        statement: r.statement.clone(),
                        link: r.link_in(&v).to_string(),
                    });
                }
            }
        }
    });
    cited.sort_by(|a, _, b, _| req_order(a).cmp(&req_order(b)));
    cited
}

/// Sort key of a requirement id: letter prefix, then the number (`R9` before `R10`).
pub fn req_order(id: &str) -> (String, u64) {
    let at = id.find(|c: char| c.is_ascii_digit()).unwrap_or(id.len());
    (id[..at].to_string(), id[at..].parse().unwrap_or(0))
}

/// The result of one test case.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// Unique path-like id.
    pub id: String,
    /// Node name (as the official suite names it).
    pub name: String,
    /// Full name including the root and groups.
    pub path: String,
    /// Outcome.
    pub status: Status,
    /// Why it failed, skipped or was disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// MUST-level findings (FAIL).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Finding>,
    /// SHOULD/MAY-level findings: reported, never a FAIL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Finding>,
    /// API labels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apis: Vec<String>,
    /// Data label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Spec anchors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spec: Vec<String>,
    /// Requirement ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub req: Vec<String>,
    /// Requirement level of the case.
    pub level: Level,
    /// `file:line` of the case.
    pub source: String,
    /// Judgement notes from the scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Wall time.
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// Every request and answer (credentials masked).
    #[serde(skip)]
    pub exchanges: Vec<Exchange>,
}

fn ser_exchange_number<S: serde::Serializer>(i: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
    match i {
        Some(i) => s.serialize_u64(*i as u64 + 1),
        None => s.serialize_none(),
    }
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e4).round() / 1e4)
}

/// A node of the result tree.
#[derive(Clone, Debug)]
pub enum ResultNode {
    /// A group and its children.
    Group(GroupResult),
    /// A test case.
    Case(Box<CaseResult>),
}

/// A group of results.
#[derive(Clone, Debug)]
pub struct GroupResult {
    /// Unique id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Full name.
    pub path: String,
    /// Children in plan order.
    pub children: Vec<ResultNode>,
    /// Wall time.
    pub duration: Duration,
}

impl ResultNode {
    /// Status of this node (groups: maximum over children).
    pub fn status(&self) -> Status {
        match self {
            ResultNode::Case(c) => c.status,
            ResultNode::Group(g) => g.status(),
        }
    }
}

impl GroupResult {
    /// Maximum status over the children.
    pub fn status(&self) -> Status {
        self.children
            .iter()
            .map(ResultNode::status)
            .max()
            .unwrap_or_default()
    }

    /// Every case below, in order.
    pub fn cases(&self) -> Vec<&CaseResult> {
        let mut out = Vec::new();
        fn walk<'a>(g: &'a GroupResult, out: &mut Vec<&'a CaseResult>) {
            for c in &g.children {
                match c {
                    ResultNode::Case(c) => out.push(c),
                    ResultNode::Group(g) => walk(g, out),
                }
            }
        }
        walk(self, &mut out);
        out
    }
}

/// Counts per status.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Disabled.
    #[serde(rename = "Disabled")]
    pub disabled: usize,
    /// Skip.
    #[serde(rename = "Skip")]
    pub skip: usize,
    /// Pass.
    #[serde(rename = "Pass")]
    pub pass: usize,
    /// FAIL.
    #[serde(rename = "FAIL")]
    pub fail: usize,
    /// Error.
    #[serde(rename = "Error")]
    pub error: usize,
    /// All results.
    #[serde(rename = "Total")]
    pub total: usize,
    /// Cases with SHOULD/MAY warnings.
    #[serde(rename = "Warnings")]
    pub warnings: usize,
}

impl Counts {
    /// Counts over cases.
    pub fn of<'a>(cases: impl IntoIterator<Item = &'a CaseResult>) -> Self {
        let mut c = Counts::default();
        for case in cases {
            match case.status {
                Status::Disabled => c.disabled += 1,
                Status::Skip => c.skip += 1,
                Status::Pass => c.pass += 1,
                Status::Fail => c.fail += 1,
                Status::Error => c.error += 1,
                Status::Unknown => {}
            }
            if !case.warnings.is_empty() {
                c.warnings += 1;
            }
            c.total += 1;
        }
        c
    }
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The result tree.
    pub root: GroupResult,
    /// Status per API label (every label of the pack, in the pack's order).
    pub apis: IndexMap<String, Status>,
    /// Status per data display name.
    pub data: IndexMap<String, Status>,
    /// Redacted configuration.
    pub config: serde_json::Value,
    /// Content seed.
    pub seed: u64,
    /// Spec version of the pack.
    pub spec_version: String,
    /// Pack directory (an embedded one as its path in the repository, `specs/1.1`).
    pub pack_dir: String,
    /// Where the pack was read: `embedded` (built into the binary) or `folder`.
    pub pack_source: String,
    /// Digest over the pack's files.
    pub pack_digest: String,
    /// Link to the spec text.
    pub spec_url: Option<String>,
    /// Anchor links.
    pub anchors: IndexMap<String, String>,
    /// Start time (RFC 3339).
    pub started: String,
    /// Wall time.
    pub duration: Duration,
    /// Registry base URL.
    pub registry: String,
    /// Content the run pushed and could not delete.
    pub leftovers: Vec<String>,
    /// Parallelism used.
    pub parallel: u64,
    /// The requirements the findings cite, by id (empty without a catalogue).
    pub requirements: IndexMap<String, Cited>,
}

impl RunResult {
    /// The packs in one phrase: `embedded`, or the folder of a pack read from disk.
    pub fn packs_label(&self) -> String {
        if self.pack_source == "embedded" {
            "embedded".to_string()
        } else {
            self.pack_dir.clone()
        }
    }

    /// Counts over all cases.
    pub fn counts(&self) -> Counts {
        Counts::of(self.root.cases())
    }

    /// Overall status.
    pub fn status(&self) -> Status {
        self.root.status()
    }
}

/// API statuses: every label starts Unknown (or Disabled), then takes the maximum over cases.
pub fn roll_up_apis(labels: &[(String, bool)], cases: &[&CaseResult]) -> IndexMap<String, Status> {
    let mut out: IndexMap<String, Status> = labels
        .iter()
        .map(|(name, enabled)| {
            (
                name.clone(),
                if *enabled {
                    Status::Unknown
                } else {
                    Status::Disabled
                },
            )
        })
        .collect();
    for c in cases {
        for api in &c.apis {
            let slot = out.entry(api.clone()).or_default();
            *slot = (*slot).max(c.status);
        }
    }
    out
}

/// Data statuses: every known data set starts at its preset, then takes the maximum over cases.
pub fn roll_up_data(
    presets: &[(String, Status)],
    cases: &[&CaseResult],
) -> IndexMap<String, Status> {
    let mut out: IndexMap<String, Status> = presets.iter().cloned().collect();
    for c in cases {
        if let Some(d) = &c.data {
            let slot = out.entry(d.clone()).or_default();
            *slot = (*slot).max(c.status);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn case(id: &str, status: Status, apis: &[&str], data: Option<&str>) -> CaseResult {
        CaseResult {
            id: id.into(),
            name: id.into(),
            path: id.into(),
            status,
            reason: None,
            failures: vec![],
            warnings: vec![],
            apis: apis.iter().map(|s| (*s).to_string()).collect(),
            data: data.map(String::from),
            spec: vec![],
            req: vec![],
            level: Level::Must,
            source: String::new(),
            note: None,
            duration: Duration::ZERO,
            exchanges: vec![],
        }
    }

    #[test]
    fn statuses_are_ordered_like_the_official_suite() {
        assert!(Status::Unknown < Status::Disabled && Status::Disabled < Status::Skip);
        assert!(
            Status::Skip < Status::Pass
                && Status::Pass < Status::Fail
                && Status::Fail < Status::Error
        );
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn groups_take_the_maximum() {
        let g = GroupResult {
            id: "g".into(),
            name: "g".into(),
            path: "g".into(),
            duration: Duration::ZERO,
            children: vec![
                ResultNode::Case(Box::new(case("a", Status::Pass, &[], None))),
                ResultNode::Group(GroupResult {
                    id: "g/s".into(),
                    name: "s".into(),
                    path: "g/s".into(),
                    duration: Duration::ZERO,
                    children: vec![ResultNode::Case(Box::new(case(
                        "b",
                        Status::Skip,
                        &[],
                        None,
                    )))],
                }),
            ],
        };
        assert_eq!(g.status(), Status::Pass);
        assert_eq!(g.cases().len(), 2);
        let empty = GroupResult {
            id: String::new(),
            name: String::new(),
            path: String::new(),
            children: vec![],
            duration: Duration::ZERO,
        };
        assert_eq!(empty.status(), Status::Unknown);
    }

    #[test]
    fn api_and_data_roll_up() {
        let a = case("a", Status::Pass, &["Blob get"], Some("Image"));
        let b = case("b", Status::Fail, &["Blob get", "Blob head"], Some("Image"));
        let c = case("c", Status::Skip, &["Blob mount"], Some("Index"));
        let cases = vec![&a, &b, &c];
        let apis = roll_up_apis(
            &[
                ("Blob get".into(), true),
                ("Blob head".into(), true),
                ("Blob mount".into(), true),
                ("Referrers".into(), false),
                ("Ping".into(), true),
            ],
            &cases,
        );
        assert_eq!(apis["Blob get"], Status::Fail);
        assert_eq!(apis["Blob mount"], Status::Skip);
        assert_eq!(apis["Referrers"], Status::Disabled);
        assert_eq!(apis["Ping"], Status::Unknown);
        let data = roll_up_data(
            &[
                ("Image".into(), Status::Unknown),
                ("Sparse".into(), Status::Disabled),
            ],
            &cases,
        );
        assert_eq!(data["Image"], Status::Fail);
        assert_eq!(data["Index"], Status::Skip);
        assert_eq!(data["Sparse"], Status::Disabled);
        let counts = Counts::of(cases);
        assert_eq!(
            (counts.pass, counts.fail, counts.skip, counts.total),
            (1, 1, 1, 3)
        );
    }
}
