//! `oci-conform coverage`: for every requirement of a pack's version, the cases that check it
//! (file:line), fully or partly, and — from results.yaml files — the status each registry got.
//!
//! A case checks a requirement when a `req:` list of it cites the entry (or an entry of its
//! lineage, see [`Catalogue::resolve`]) at a place that runs in this pack. It checks it
//! **fully** when at least one such check can decide a breach at the requirement's level with
//! the pack's default configuration: a MUST-level check (not in `cleanup`) for a MUST or MUST
//! NOT, a MUST- or SHOULD-level one for a SHOULD or SHOULD NOT, any check for the rest. It
//! checks it **partly** when every such check falls short: it can only warn (a SHOULD/MAY-level
//! check of a MUST, a cleanup check), or it runs only when the user turns an option on (its
//! tests are Disabled by default). Conditions on the answers a run gets (a push that must have
//! worked first) do not make a check partial. Citations a version switch turns off in this
//! pack do not count at all.

pub mod render;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::citations::{self, Citation, Planned};
use crate::diag::Pos;
use crate::pack::{Loader, Pack};
use crate::plan::Plan;
use crate::requirements::{Catalogue, Level, Requirement};
use crate::results::Status;

/// How well the pack checks one requirement.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Extent {
    /// No case cites it.
    None,
    /// Every citing check falls short (see the module doc).
    Partly,
    /// At least one check decides it at its level by default.
    Full,
}

impl Extent {
    /// The word reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Extent::None => "none",
            Extent::Partly => "partly",
            Extent::Full => "full",
        }
    }
}

/// One case citing a requirement.
#[derive(Clone, Debug, Serialize)]
pub struct CaseCheck {
    /// The case's name (`(every response)` for the pack's checks on every answer).
    pub name: String,
    /// `file:line` of the case, relative to the folder holding `specs/`.
    pub at: String,
    /// Planned tests of the case (it may be used more than once).
    pub tests: usize,
    /// Full or partly.
    pub extent: Extent,
    /// Why partly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// One requirement of the version and its coverage.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Id.
    pub id: String,
    /// Keyword.
    pub level: String,
    /// Who it binds.
    pub binds: String,
    /// Whether a black-box test can see a breach.
    pub observable: String,
    /// Why not (fully) observable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observable_why: Option<String>,
    /// Section heading.
    pub section: String,
    /// Link to the section in this version's text.
    pub link: String,
    /// The duty in one line.
    pub statement: String,
    /// The best extent over its cases.
    pub extent: Extent,
    /// The cases checking it.
    pub cases: Vec<CaseCheck>,
    /// Status per results file, in the order given (empty without results).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<String>,
    /// Whether it is an observable registry MUST / MUST NOT (what the counts are about).
    pub duty: bool,
}

/// Counts of a coverage report.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Entries of the version.
    pub entries: usize,
    /// Registry (or both) MUST / MUST NOT entries.
    pub registry_must: usize,
    /// Those a black-box test can observe (yes or partly).
    pub observable: usize,
    /// Observable ones some case checks fully.
    pub full: usize,
    /// Observable ones only checked partly.
    pub partly: usize,
    /// Observable ones no case checks.
    pub uncovered: usize,
}

/// A results.yaml file read for its statuses.
#[derive(Clone, Debug)]
pub struct ResultsFile {
    /// The label of its column (`docker=path` gives `docker`; else the folder name).
    pub label: String,
    /// The registry it ran against.
    pub registry: String,
    /// Its spec version.
    pub spec_version: String,
    /// Status per requirement id, already resolved to the report's version.
    pub status: HashMap<String, String>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Coverage {
    /// The spec version (`OCI Distribution Spec v1.1.1`).
    pub title: String,
    /// The catalogue version id (`1.1`).
    pub version: String,
    /// The pack's folder, relative to the folder holding `specs/`.
    pub pack: String,
    /// The catalogue file, likewise.
    pub catalogue: String,
    /// Counts over observable registry MUST / MUST NOT.
    pub counts: Counts,
    /// The results columns: label and registry.
    pub registries: Vec<(String, String)>,
    /// Every entry of the version, in the catalogue's order.
    pub rows: Vec<Row>,
}

/// A path relative to `base` when below it (stable whatever the working folder).
fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| crate::diag::display_path(path))
}

/// Whether a citation's check can decide a breach of `r` at its level.
fn decides(c: &Citation, r: &Requirement) -> bool {
    if c.cleanup {
        return false;
    }
    let check = c.level.as_deref().unwrap_or("MUST");
    match r.level {
        Level::Must | Level::MustNot => check == "MUST",
        Level::Should | Level::ShouldNot => check == "MUST" || check == "SHOULD",
        Level::May | Level::Stated => true,
    }
}

/// Builds the report of a planned pack; `results` adds a status column each.
pub fn build(
    pack: &Pack,
    catalogue: &Catalogue,
    loader: &Loader,
    plan: &Plan<'_>,
    results: &[ResultsFile],
) -> Coverage {
    let version = catalogue
        .version(&pack.spec_version)
        .map(|v| (v.id.clone(), v.title.clone()))
        .unwrap_or_else(|| (pack.spec_version.clone(), pack.spec_version.clone()));
    let v = version.0.as_str();
    // Paths are shown relative to the folder holding the catalogue's folder (the repository).
    let base: PathBuf = catalogue
        .path
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let cites = citations::collect(loader);
    let runtime = citations::exported_names(loader);
    let planned = citations::planned(plan);
    // Requirement id → (case key → check), in file order.
    let mut by_req: HashMap<String, Vec<(String, CaseCheck)>> = HashMap::new();
    for c in &cites {
        let Some(tests) = tests_of(c, &planned) else {
            continue;
        };
        // Not planned in this pack, or turned off by a version switch: not a check here.
        if tests.total == 0 || !live_conditions(c, plan, &runtime) {
            continue;
        }
        for r in catalogue.resolve(&c.id, v) {
            let (name, pos) = match &c.case {
                Some(case) => (case.name.clone(), case.pos.clone()),
                None if c.every_response => ("(every response)".to_string(), c.pos.clone()),
                None => ("(group)".to_string(), c.pos.clone()),
            };
            let at = at(&pos, &base);
            let (extent, why) = if tests.enabled == 0 {
                (
                    Extent::Partly,
                    Some("its tests are Disabled by default (an option turns them on)".into()),
                )
            } else if decides(c, r) {
                (Extent::Full, None)
            } else if c.cleanup {
                (
                    Extent::Partly,
                    Some("a cleanup check: it only warns".into()),
                )
            } else {
                (
                    Extent::Partly,
                    Some(format!(
                        "a {}-level check: it only warns",
                        c.level.as_deref().unwrap_or("MUST")
                    )),
                )
            };
            let list = by_req.entry(r.id.clone()).or_default();
            match list.iter_mut().find(|(k, _)| *k == at) {
                Some((_, check)) if extent > check.extent => {
                    check.extent = extent;
                    check.why = why;
                }
                Some(_) => {}
                None => list.push((
                    at.clone(),
                    CaseCheck {
                        name,
                        at,
                        tests: tests.total.max(1),
                        extent,
                        why,
                    },
                )),
            }
        }
    }
    let mut counts = Counts::default();
    let mut rows = Vec::new();
    for r in catalogue.of_version(v) {
        let cases: Vec<CaseCheck> = by_req
            .remove(&r.id)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        let extent = cases.iter().map(|c| c.extent).max().unwrap_or(Extent::None);
        let duty = r.is_checkable_duty();
        counts.entries += 1;
        if r.level.is_absolute() && r.binds != crate::requirements::Binds::Client {
            counts.registry_must += 1;
        }
        if duty {
            counts.observable += 1;
            match extent {
                Extent::Full => counts.full += 1,
                Extent::Partly => counts.partly += 1,
                Extent::None => counts.uncovered += 1,
            }
        }
        rows.push(Row {
            id: r.id.clone(),
            level: r.level.as_str().to_string(),
            binds: r.binds.as_str().to_string(),
            observable: r.observable.as_str().to_string(),
            observable_why: r.observable_why.clone(),
            section: r.section.clone(),
            link: r.link_in(v).to_string(),
            statement: r.statement.clone(),
            extent,
            cases,
            statuses: results
                .iter()
                .map(|f| f.status.get(&r.id).cloned().unwrap_or_else(|| "—".into()))
                .collect(),
            duty,
        });
    }
    Coverage {
        title: version.1.clone(),
        version: version.0.clone(),
        pack: relative(&pack.dir, &base),
        catalogue: relative(&catalogue.path, &base),
        counts,
        registries: results
            .iter()
            .map(|f| (f.label.clone(), f.registry.clone()))
            .collect(),
        rows,
    }
}

/// The planned tests of a citation's case (for a citation outside any case: one, enabled).
fn tests_of(c: &Citation, planned: &HashMap<Pos, Planned>) -> Option<Planned> {
    match &c.case {
        Some(case) => Some(
            case.first_step
                .as_ref()
                .and_then(|p| planned.get(p))
                .copied()
                .unwrap_or_default(),
        ),
        None => Some(Planned {
            total: 1,
            enabled: 1,
        }),
    }
}

/// No condition on the citation's way is false in this pack (see [`citations::is_live`]).
fn live_conditions(c: &Citation, plan: &Plan<'_>, runtime: &HashSet<String>) -> bool {
    let bare = Citation {
        case: None,
        ..c.clone()
    };
    citations::is_live(&bare, plan, &HashMap::new(), runtime)
}

fn at(pos: &Pos, base: &Path) -> String {
    let file = pos
        .file
        .as_ref()
        .map(|f| relative(f, base))
        .unwrap_or_default();
    format!("{file}:{}", pos.line)
}

/// Reads a results.yaml (`label=path`, or a path labelled by its folder) and the status it
/// gives each requirement of `version`: `FAIL` when a failure cites it, `warning` when only a
/// warning does, else `Pass` when a test citing it passed, `Skip` or `Disabled` when those are
/// all it got, `not decided` when its tests failed or erred on other requirements.
pub fn read_results(
    arg: &str,
    catalogue: &Catalogue,
    version: &str,
) -> Result<ResultsFile, String> {
    let (label, path) = match arg.split_once('=') {
        Some((l, p)) if !l.is_empty() && !l.contains('/') => (l.to_string(), PathBuf::from(p)),
        _ => {
            let p = PathBuf::from(arg);
            let label = p
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| arg.to_string());
            (label, p)
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|e| format!("{} is not a results.yaml: {e}", path.display()))?;
    let tests = doc["tests"].as_array().ok_or_else(|| {
        format!(
            "{} has no `tests` (an oci-conform results.yaml is needed, not the official suite's)",
            path.display()
        )
    })?;
    let ids = |v: &serde_json::Value| -> Vec<String> {
        let mut out = Vec::new();
        for id in v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.as_str())
        {
            let found = catalogue.resolve(id, version);
            if found.is_empty() {
                out.push(id.to_string());
            }
            out.extend(found.into_iter().map(|r| r.id.clone()));
        }
        out
    };
    let mut failed: HashSet<String> = HashSet::new();
    let mut warned: HashSet<String> = HashSet::new();
    let mut seen: HashMap<String, Vec<Status>> = HashMap::new();
    for t in tests {
        let status = t["status"]
            .as_str()
            .and_then(Status::parse)
            .unwrap_or_default();
        for f in t["failures"].as_array().into_iter().flatten() {
            failed.extend(ids(&f["req"]));
        }
        for w in t["warnings"].as_array().into_iter().flatten() {
            warned.extend(ids(&w["req"]));
        }
        for id in ids(&t["req"]) {
            seen.entry(id).or_default().push(status);
        }
    }
    let mut status = HashMap::new();
    for id in failed.iter().chain(&warned).chain(seen.keys()) {
        let s = if failed.contains(id) {
            "FAIL".to_string()
        } else if warned.contains(id) {
            "warning".to_string()
        } else {
            let got = seen.get(id).cloned().unwrap_or_default();
            if got.contains(&Status::Pass) {
                "Pass".into()
            } else if got.contains(&Status::Skip) {
                "Skip".into()
            } else if got.contains(&Status::Disabled) {
                "Disabled".into()
            } else {
                "not decided".into()
            }
        };
        status.insert(id.clone(), s);
    }
    Ok(ResultsFile {
        label,
        registry: doc["registry"].as_str().unwrap_or_default().to_string(),
        spec_version: doc["pack"]["specVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        status,
    })
}
