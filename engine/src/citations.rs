//! Where a pack cites requirements: every `req:` id in the files it read, with its position,
//! the case it belongs to, the conditions on the way to it and the level of its check.
//!
//! Lint checks each citation against the catalogue and the pack's version; `coverage` groups
//! them by requirement. Both need what the typed scenario structs drop (the position of each
//! id), so this reads the positioned YAML trees of the files the loader recorded.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Pos};
use crate::pack::{FileKind, Loader};
use crate::plan::{Plan, PlanKind};
use crate::requirements::Catalogue;
use crate::template::Expr;
use crate::yaml::{self, Node, Value as Y};

/// One id in a `req:` list.
#[derive(Clone, Debug)]
pub struct Citation {
    /// The id as written.
    pub id: String,
    /// Where it is written.
    pub pos: Pos,
    /// The case holding it (none for a group's list or the pack's `everyResponse`).
    pub case: Option<CaseSite>,
    /// Conditions on the way from the file's root to the citation: `when`, `skip_unless`,
    /// `requires`, and templated `present`/`level` values (their source text).
    pub conditions: Vec<String>,
    /// The level of the check, when a literal `level:` or `present: SHOULD|MAY` on the way says
    /// one (`None`: MUST, the default).
    pub level: Option<String>,
    /// Whether it sits in a case's `cleanup` (whose failures are only warnings).
    pub cleanup: bool,
    /// Whether it is in the pack's `everyResponse` checks.
    pub every_response: bool,
}

impl Citation {
    /// Whether the check can FAIL a test: MUST level and not in cleanup.
    pub fn can_fail(&self) -> bool {
        !self.cleanup && self.level.as_deref().is_none_or(|l| l == "MUST")
    }
}

/// A case as written in its file.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseSite {
    /// Its `name` (empty when it has none).
    pub name: String,
    /// Where the case mapping starts.
    pub pos: Pos,
    /// Where its first step starts: the planned tests of the case share it.
    pub first_step: Option<Pos>,
}

#[derive(Clone, Default)]
struct Ctx {
    case: Option<CaseSite>,
    conditions: Vec<String>,
    level: Option<String>,
    cleanup: bool,
    every_response: bool,
}

/// Every citation in the scenario files `loader` read, and in the `everyResponse` checks of
/// the pack file that defines them (the nearest in an `extends` chain), in file order.
pub fn collect(loader: &Loader) -> Vec<Citation> {
    let mut out = Vec::new();
    let mut every_seen = false;
    for file in &loader.files {
        let kind = loader.kinds.get(file).copied();
        let Ok(node) = yaml::load(file) else {
            continue;
        };
        match kind {
            Some(FileKind::Scenario) => visit(&node, &Ctx::default(), &mut out),
            // The first pack file with `everyResponse` is the one whose checks apply: the
            // loader records a pack before the packs it extends.
            Some(FileKind::Pack) if !every_seen => {
                if let Some(every) = node.get("everyResponse") {
                    every_seen = true;
                    let ctx = Ctx {
                        every_response: true,
                        ..Ctx::default()
                    };
                    visit(every, &ctx, &mut out);
                }
            }
            _ => {}
        }
    }
    out
}

/// The names cases `export` to their groups: set during a run, so a pack variable of the same
/// name (`referrers_api`, false until the referrers probe says otherwise) is not known before.
pub fn exported_names(loader: &Loader) -> HashSet<String> {
    fn walk(node: &Node, out: &mut HashSet<String>) {
        match &node.value {
            Y::Seq(items) => items.iter().for_each(|i| walk(i, out)),
            Y::Map(entries) => {
                for (k, v) in entries {
                    if k.scalar_text() == "export" {
                        if let Y::Map(names) = &v.value {
                            out.extend(names.iter().map(|(n, _)| n.scalar_text()));
                        }
                    }
                    walk(v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = HashSet::new();
    for file in &loader.files {
        if loader.kinds.get(file) == Some(&FileKind::Scenario) {
            if let Ok(node) = yaml::load(file) {
                walk(&node, &mut out);
            }
        }
    }
    out
}

fn visit(node: &Node, ctx: &Ctx, out: &mut Vec<Citation>) {
    match &node.value {
        Y::Seq(items) => {
            for i in items {
                visit(i, ctx, out);
            }
        }
        Y::Map(entries) => {
            let mut here = ctx.clone();
            // A node with steps is a case (steps of steps stay in their case).
            if here.case.is_none() && node.get("steps").is_some() {
                let first_step = match node.get("steps").map(|s| &s.value) {
                    Some(Y::Seq(steps)) => steps.first().map(|s| s.pos.clone()),
                    _ => None,
                };
                here.case = Some(CaseSite {
                    name: node.get("name").map(Node::scalar_text).unwrap_or_default(),
                    pos: node.pos.clone(),
                    first_step,
                });
            }
            for key in ["when", "skip_unless", "requires"] {
                if let Some(s) = node.get(key).and_then(Node::as_str) {
                    here.conditions.push(s.to_string());
                }
            }
            for key in ["level", "present"] {
                let Some(s) = node.get(key).and_then(Node::as_str) else {
                    continue;
                };
                if crate::template::is_template(s) {
                    here.conditions.push(s.to_string());
                } else if matches!(s, "MUST" | "SHOULD" | "MAY") {
                    here.level = Some(s.to_string());
                }
            }
            for (k, v) in entries {
                let key = k.scalar_text();
                if key == "req" {
                    if let Y::Seq(ids) = &v.value {
                        for id in ids {
                            if let Some(s) = id.as_str() {
                                out.push(Citation {
                                    id: s.to_string(),
                                    pos: id.pos.clone(),
                                    case: here.case.clone(),
                                    conditions: here.conditions.clone(),
                                    level: here.level.clone(),
                                    cleanup: here.cleanup,
                                    every_response: here.every_response,
                                });
                            }
                        }
                    }
                } else if key == "cleanup" {
                    let inner = Ctx {
                        cleanup: true,
                        ..here.clone()
                    };
                    visit(v, &inner, out);
                } else {
                    visit(v, &here, out);
                }
            }
        }
        _ => {}
    }
}

/// How the tests of one written case are planned in a pack with its default configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Planned {
    /// Planned tests of the case.
    pub total: usize,
    /// Those not Disabled.
    pub enabled: usize,
}

/// The planned tests of each written case, by the position of the case's first step.
pub fn planned(plan: &Plan<'_>) -> HashMap<Pos, Planned> {
    let mut out: HashMap<Pos, Planned> = HashMap::new();
    plan.root.walk(&mut |n, _| {
        if let PlanKind::Case(spec) = &n.kind {
            if let Some(first) = spec.steps.first() {
                let p = out.entry(first.pos.clone()).or_default();
                p.total += 1;
                if n.disabled.is_none() {
                    p.enabled += 1;
                }
            }
        }
    });
    out
}

/// Whether a citation can produce a finding in the planned pack: its case has an enabled test
/// with the default configuration, and no condition on its way is false there.
pub fn is_live(
    c: &Citation,
    plan: &Plan<'_>,
    planned: &HashMap<Pos, Planned>,
    runtime: &HashSet<String>,
) -> bool {
    if let Some(case) = &c.case {
        let enabled = case
            .first_step
            .as_ref()
            .and_then(|p| planned.get(p))
            .map_or(0, |p| p.enabled);
        if enabled == 0 {
            return false;
        }
    }
    let ctx = plan.scope.context();
    !c.conditions
        .iter()
        .any(|cond| is_false(cond, &c.pos, &ctx, runtime))
}

/// Whether a condition is false with the pack's variables and configuration alone. Names only a
/// run binds (case variables, captures, answers, exported values) are left undefined: the
/// engine's strict templates fail on them, so a condition counts as false only when it is
/// false without reading them (`upload_status and out_of_order` with `upload_status` false).
fn is_false(cond: &str, pos: &Pos, ctx: &minijinja::Value, runtime: &HashSet<String>) -> bool {
    let Ok(expr) = Expr::new(cond, pos) else {
        return false;
    };
    let known: std::collections::BTreeMap<String, minijinja::Value> = expr
        .names()
        .roots()
        .map(String::from)
        .collect::<HashSet<String>>()
        .into_iter()
        .filter(|n| !runtime.contains(n))
        .filter_map(|n| {
            let v = ctx.get_attr(&n).ok().filter(|v| !v.is_undefined())?;
            Some((n, v))
        })
        .collect();
    expr.eval(&minijinja::Value::from(known))
        .is_ok_and(|v| !v.is_undefined() && !v.is_true())
}

/// Lint's requirement checks of one planned pack: errors for an id the catalogue lacks and
/// for a live citation of an entry (or lineage) not in the pack's version; warnings for each
/// observable registry MUST / MUST NOT of the version that no live citation reaches.
pub fn check(
    catalogue: &Catalogue,
    spec_version: &str,
    citations: &[Citation],
    runtime: &HashSet<String>,
    plan: &Plan<'_>,
) -> (Diagnostics, Diagnostics) {
    let (mut errors, mut warnings) = (Diagnostics::default(), Diagnostics::default());
    let version = catalogue.version(spec_version);
    let title = version.map_or(spec_version, |v| v.title.as_str());
    let Some(v) = version.map(|v| v.id.clone()) else {
        errors.push(
            Diagnostic::new(
                Pos::file(&catalogue.path),
                format!("the catalogue has no version for specVersion `{spec_version}`"),
            )
            .with_hint("add it to `versions:` with this `specVersion`"),
        );
        return (errors, warnings);
    };
    let planned = planned(plan);
    let mut covered: Vec<String> = Vec::new();
    // A `req:` list rests on the ids of it that are in the version: a list shared by several
    // packs may name each version's entry, and only a list with none is wrong.
    let mut lists: HashMap<(Option<std::sync::Arc<PathBuf>>, u32), bool> = HashMap::new();
    for c in citations {
        let ok = !catalogue.resolve(&c.id, &v).is_empty();
        *lists.entry((c.pos.file.clone(), c.pos.line)).or_default() |= ok;
    }
    for c in citations {
        let Some(entry) = catalogue.get(&c.id) else {
            let ids = catalogue.requirements.iter().map(|r| r.id.as_str());
            let mut d =
                Diagnostic::new(c.pos.clone(), format!("unknown requirement id `{}`", c.id));
            d = match did_you_mean(&c.id, ids) {
                Some(s) => d.with_hint(format!(
                    "did you mean `{s}`? The ids are the entries of {}",
                    crate::diag::display_path(&catalogue.path)
                )),
                None => d.with_hint(format!(
                    "the ids are the entries of {}",
                    crate::diag::display_path(&catalogue.path)
                )),
            };
            errors.push(d);
            continue;
        };
        if !is_live(c, plan, &planned, runtime) {
            continue;
        }
        let resolved = catalogue.resolve(&c.id, &v);
        if resolved.is_empty() && !lists[&(c.pos.file.clone(), c.pos.line)] {
            errors.push(
                Diagnostic::new(
                    c.pos.clone(),
                    format!(
                        "`{}` is not a requirement of {title} (its text is in {})",
                        c.id,
                        entry.versions.join(", ")
                    ),
                )
                .with_hint(
                    "a file the packs share cites an entry of another version only under a \
                     condition that is false in this one (a version switch such as \
                     `when: ooo_final_put`), or cites the entry of this version",
                ),
            );
        }
        covered.extend(resolved.iter().map(|r| r.id.clone()));
    }
    for r in catalogue.of_version(&v) {
        if r.is_checkable_duty() && !covered.contains(&r.id) {
            warnings.push(Diagnostic::new(
                r.pos.clone(),
                format!(
                    "no case of the {} pack checks {} ({} {}, observable: {}): {}",
                    v,
                    r.id,
                    r.level.as_str(),
                    r.binds.as_str(),
                    r.observable.as_str(),
                    r.statement
                ),
            ));
        }
    }
    (errors, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn of(text: &str) -> Vec<Citation> {
        let node = yaml::parse(Path::new("c.yaml"), text).expect("parses");
        let mut out = Vec::new();
        visit(&node, &Ctx::default(), &mut out);
        out
    }

    #[test]
    fn a_condition_is_false_only_when_the_pack_alone_makes_it_false() {
        let ctx = crate::template::from_json(
            &serde_json::json!({"on": true, "off": false, "shared": true}),
        );
        let runtime: HashSet<String> = ["shared".to_string()].into();
        let f = |c: &str| is_false(c, &Pos::default(), &ctx, &runtime);
        assert!(f("off"));
        assert!(
            f("off and answer.ok"),
            "short-circuits before the unknown name"
        );
        assert!(f("not on or off"));
        assert!(!f("on"));
        assert!(!f("on and answer.ok"), "an unknown name may be true");
        assert!(
            !f("mode == 'x'"),
            "a comparison with an unknown name is not decided"
        );
        assert!(
            !f("shared and off"),
            "an exported name is set during the run"
        );
        assert!(!f("answer"), "a bare unknown name is not decided");
        assert!(!f("not answer"));
        assert!(!f("answer or off"));
    }

    #[test]
    fn citations_keep_position_case_conditions_and_level() {
        let c = of("name: g\nreq: [R1]\nitems:\n  - name: c\n    req: [R2]\n    steps:\n      - request: {method: GET, url: /}\n        when: \"switch\"\n        expect:\n          headers:\n            A: {present: SHOULD, req: [R3]}\n            B: {present: \"{{ x }}\", req: [R4]}\n    cleanup:\n      - req: [R5]\n");
        let ids: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["R1", "R2", "R3", "R4", "R5"]);
        assert!(c[0].case.is_none());
        assert_eq!(c[1].case.as_ref().unwrap().name, "c");
        assert_eq!((c[1].pos.line, c[1].pos.col), (5, 11));
        assert_eq!(c[2].conditions, ["switch"]);
        assert_eq!(c[2].level.as_deref(), Some("SHOULD"));
        assert!(!c[2].can_fail() && c[1].can_fail());
        assert_eq!(c[3].conditions, ["switch", "{{ x }}"]);
        assert!(c[4].cleanup && !c[4].can_fail());
        assert_eq!(
            c[1].case
                .as_ref()
                .unwrap()
                .first_step
                .as_ref()
                .map(|p| p.line),
            Some(7)
        );
    }
}
