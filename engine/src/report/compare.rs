//! `oci-conform compare OLD NEW`: what changed between two results files, regressions first.
//!
//! Both oci-conform's results.yaml and the official suite's (top key `Config`, no `tests`)
//! are read; APIs and data sets are compared by name, tests by id when both files have them.
//! Statuses keep the official order Unknown < Disabled < Skip < Pass < FAIL < Error: a change
//! is a **regression** when it moves up to FAIL/Error or away from Pass, an **improvement**
//! when it leaves FAIL/Error for a verdict or reaches Pass, and any other change (Skip ↔
//! Disabled, Error → FAIL, FAIL → Unknown i.e. not run) is listed as such.

use std::fmt::Write as _;
use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value as J;

use super::console::paint;
use crate::results::Status;

/// One results file, reduced to what is compared.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Where it was read from.
    pub label: String,
    /// Overall status, when the file states it (oci-conform does; the official file does not).
    pub status: Option<Status>,
    /// Spec version, from `pack.specVersion` or `config.version`.
    pub spec_version: Option<String>,
    /// Status per API label.
    pub apis: IndexMap<String, Status>,
    /// Status per data set.
    pub data: IndexMap<String, Status>,
    /// Status and reason per test id; None for files without per-test results.
    pub tests: Option<IndexMap<String, (Status, Option<String>)>>,
}

/// How a status change reads for a registry team.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Worse: towards FAIL/Error, or away from Pass.
    Regression,
    /// Better: out of FAIL/Error, or to Pass.
    Improvement,
    /// Different, neither better nor worse.
    Change,
}

/// What one changed entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `API`, `data` or `test`.
    pub scope: &'static str,
    /// Its name or id.
    pub name: String,
    /// Status in OLD.
    pub old: Status,
    /// Status in NEW.
    pub new: Status,
    /// NEW's reason (tests only).
    pub reason: Option<String>,
    /// How to read it.
    pub kind: Kind,
}

/// The differences between two files.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    /// Changed entries, regressions first, then improvements, then other changes.
    pub changes: Vec<Change>,
    /// Entries only OLD has, as `(scope, name)`.
    pub only_old: Vec<(&'static str, String)>,
    /// Entries only NEW has.
    pub only_new: Vec<(&'static str, String)>,
    /// Whether per-test results were compared (both files have them).
    pub tests_compared: bool,
}

impl Comparison {
    /// Number of regressions.
    pub fn regressions(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.kind == Kind::Regression)
            .count()
    }
}

/// Classifies a status change; None when nothing changed.
pub fn classify(old: Status, new: Status) -> Option<Kind> {
    let failing = |s: Status| s >= Status::Fail;
    if old == new {
        None
    } else if (failing(new) && new > old) || (old == Status::Pass && new < Status::Pass) {
        Some(Kind::Regression)
    } else if new == Status::Unknown {
        // Not run in NEW: no verdict, so not an improvement either.
        Some(Kind::Change)
    } else if (failing(old) && !failing(new)) || new == Status::Pass {
        Some(Kind::Improvement)
    } else {
        Some(Kind::Change)
    }
}

/// Reads a results file; the error names the file and what is wrong with it.
pub fn load(path: &Path) -> Result<Snapshot, String> {
    let label = crate::diag::display_path(path);
    let text = std::fs::read_to_string(path).map_err(|e| format!("{label}: cannot read: {e}"))?;
    parse(&text, &label)
}

/// Parses the text of a results file.
pub fn parse(text: &str, label: &str) -> Result<Snapshot, String> {
    let doc: J =
        serde_saphyr::from_str(text).map_err(|e| format!("{label}: not valid YAML: {e}"))?;
    let Some(map) = doc.as_object() else {
        return Err(format!(
            "{label}: not a results file (expected a mapping at the top)"
        ));
    };
    if !map.contains_key("apis") && !map.contains_key("data") && !map.contains_key("tests") {
        return Err(format!(
            "{label}: not a results file (no `apis`, `data` or `tests` key)"
        ));
    }
    let statuses = |key: &str| -> Result<IndexMap<String, Status>, String> {
        let mut out = IndexMap::new();
        match map.get(key) {
            None | Some(J::Null) => {}
            Some(J::Object(m)) => {
                for (k, v) in m {
                    out.insert(k.clone(), status(v, &format!("{label}: {key}.{k}"))?);
                }
            }
            Some(_) => return Err(format!("{label}: `{key}` is not a mapping")),
        }
        Ok(out)
    };
    let tests = match map.get("tests") {
        None | Some(J::Null) => None,
        Some(J::Array(list)) => {
            let mut out = IndexMap::new();
            for (i, t) in list.iter().enumerate() {
                let Some(id) = t.get("id").and_then(J::as_str) else {
                    return Err(format!("{label}: tests[{i}] has no `id`"));
                };
                let s = status(
                    t.get("status").unwrap_or(&J::Null),
                    &format!("{label}: tests[{i}] ({id})"),
                )?;
                let reason = t.get("reason").and_then(J::as_str).map(String::from);
                out.insert(id.to_string(), (s, reason));
            }
            Some(out)
        }
        Some(_) => return Err(format!("{label}: `tests` is not a list")),
    };
    // oci-conform writes `config`; the official suite's encoder writes `Config`.
    let config = map.get("config").or_else(|| map.get("Config"));
    let spec_version = map
        .get("pack")
        .and_then(|p| p.get("specVersion"))
        .or_else(|| config.and_then(|c| c.get("version")))
        .and_then(|v| match v {
            J::String(s) => Some(s.clone()),
            J::Number(n) => Some(n.to_string()),
            _ => None,
        });
    Ok(Snapshot {
        label: label.to_string(),
        status: map
            .get("status")
            .and_then(J::as_str)
            .and_then(Status::parse),
        spec_version,
        apis: statuses("apis")?,
        data: statuses("data")?,
        tests,
    })
}

fn status(v: &J, what: &str) -> Result<Status, String> {
    v.as_str().and_then(Status::parse).ok_or_else(|| {
        format!(
            "{what}: `{}` is not a status (Unknown, Disabled, Skip, Pass, FAIL, Error)",
            v.to_string().trim_matches('"')
        )
    })
}

/// Compares OLD with NEW.
pub fn compare(old: &Snapshot, new: &Snapshot) -> Comparison {
    let mut out = Comparison::default();
    let mut diff = |scope: &'static str,
                    a: &IndexMap<String, (Status, Option<String>)>,
                    b: &IndexMap<String, (Status, Option<String>)>| {
        for (name, (s_old, _)) in a {
            match b.get(name) {
                Some((s_new, reason)) => {
                    if let Some(kind) = classify(*s_old, *s_new) {
                        out.changes.push(Change {
                            scope,
                            name: name.clone(),
                            old: *s_old,
                            new: *s_new,
                            reason: reason.clone(),
                            kind,
                        });
                    }
                }
                None => out.only_old.push((scope, name.clone())),
            }
        }
        for name in b.keys().filter(|k| !a.contains_key(*k)) {
            out.only_new.push((scope, name.clone()));
        }
    };
    let plain = |m: &IndexMap<String, Status>| -> IndexMap<String, (Status, Option<String>)> {
        m.iter().map(|(k, v)| (k.clone(), (*v, None))).collect()
    };
    diff("API", &plain(&old.apis), &plain(&new.apis));
    diff("data", &plain(&old.data), &plain(&new.data));
    if let (Some(a), Some(b)) = (&old.tests, &new.tests) {
        diff("test", a, b);
        out.tests_compared = true;
    }
    // Stable: within a kind, APIs, then data sets, then tests, each in file order.
    out.changes.sort_by_key(|c| c.kind);
    out
}

/// Renders the comparison for the console.
pub fn render(c: &Comparison, old: &Snapshot, new: &Snapshot, color: bool) -> String {
    let mut out = String::new();
    for (tag, s) in [("OLD", old), ("NEW", new)] {
        let mut facts = Vec::new();
        if let Some(st) = s.status {
            facts.push(paint(st, color));
        }
        if let Some(v) = &s.spec_version {
            facts.push(format!("spec {v}"));
        }
        match &s.tests {
            Some(t) => facts.push(format!("{} tests", t.len())),
            None => facts.push("no per-test results".into()),
        }
        let _ = writeln!(out, "{tag}  {}  ({})", s.label, facts.join(" · "));
    }
    if !c.tests_compared {
        out.push_str("     tests not compared: only APIs and data sets are in both files\n");
    }
    let width = c
        .changes
        .iter()
        .map(|ch| ch.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(70);
    for (kind, title) in [
        (Kind::Regression, "Regressions"),
        (Kind::Improvement, "Improvements"),
        (Kind::Change, "Other changes"),
    ] {
        let list: Vec<&Change> = c.changes.iter().filter(|ch| ch.kind == kind).collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title} ({}):", list.len());
        for ch in list {
            let _ = writeln!(
                out,
                "  {:<5} {:<width$}  {} → {}",
                ch.scope,
                ch.name,
                paint(ch.old, color),
                paint(ch.new, color)
            );
            if kind == Kind::Regression {
                if let Some(r) = &ch.reason {
                    let _ = writeln!(out, "        {r}");
                }
            }
        }
    }
    for (title, list) in [("Only in OLD", &c.only_old), ("Only in NEW", &c.only_new)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title} ({}):", list.len());
        for (scope, name) in list.iter().take(20) {
            let _ = writeln!(out, "  {scope:<5} {name}");
        }
        if list.len() > 20 {
            let _ = writeln!(out, "  … and {} more", list.len() - 20);
        }
    }
    let count = |k: Kind| c.changes.iter().filter(|ch| ch.kind == k).count();
    let _ = writeln!(
        out,
        "\n{} regression(s), {} improvement(s), {} other change(s)",
        count(Kind::Regression),
        count(Kind::Improvement),
        count(Kind::Change)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regressions_follow_the_official_order() {
        use Status::*;
        let k = |a, b| classify(a, b);
        assert_eq!(k(Pass, Fail), Some(Kind::Regression));
        assert_eq!(k(Skip, Error), Some(Kind::Regression));
        assert_eq!(k(Fail, Error), Some(Kind::Regression));
        assert_eq!(k(Pass, Skip), Some(Kind::Regression));
        assert_eq!(k(Pass, Disabled), Some(Kind::Regression));
        assert_eq!(k(Fail, Pass), Some(Kind::Improvement));
        assert_eq!(k(Fail, Skip), Some(Kind::Improvement));
        assert_eq!(k(Skip, Pass), Some(Kind::Improvement));
        assert_eq!(k(Skip, Disabled), Some(Kind::Change));
        assert_eq!(k(Error, Fail), Some(Kind::Change));
        assert_eq!(k(Fail, Unknown), Some(Kind::Change));
        assert_eq!(k(Pass, Unknown), Some(Kind::Regression));
        assert_eq!(k(Unknown, Pass), Some(Kind::Improvement));
        assert_eq!(k(Pass, Pass), None);
    }

    #[test]
    fn reads_both_file_shapes_and_puts_regressions_first() {
        let official = "Config:\n  registry: x\n  version: \"1.1\"\napis:\n  Ping: Pass\n  Tag delete: Skip\n  Blob get: FAIL\ndata:\n  Image: Pass\n";
        let ours = "config:\n  version: \"1.1\"\napis:\n  Ping: FAIL\n  Tag delete: Disabled\n  Blob get: Pass\n  Referrers: Unknown\ndata:\n  Image: Pass\nstatus: FAIL\ntests:\n  - id: ping\n    status: FAIL\n    reason: expected status 200, got 500\n";
        let a = parse(official, "old.yaml").expect("official file");
        let b = parse(ours, "new.yaml").expect("our file");
        assert_eq!(a.spec_version.as_deref(), Some("1.1"));
        assert!(a.tests.is_none());
        let c = compare(&a, &b);
        assert!(!c.tests_compared);
        assert_eq!(c.regressions(), 1);
        assert_eq!(c.changes[0].name, "Ping");
        assert_eq!(c.changes[0].kind, Kind::Regression);
        assert_eq!(c.changes[1].kind, Kind::Improvement);
        assert_eq!(c.changes[2].kind, Kind::Change);
        assert_eq!(c.only_new, vec![("API", "Referrers".to_string())]);
        let text = render(&c, &a, &b, false);
        assert!(
            text.find("Regressions (1):").unwrap() < text.find("Improvements (1):").unwrap(),
            "{text}"
        );
        assert!(text.contains("  API   Ping        Pass → FAIL\n"), "{text}");
        assert!(text.contains("tests not compared"), "{text}");
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        for (text, want) in [
            ("- a\n- b\n", "expected a mapping"),
            ("foo: 1\n", "no `apis`"),
            (
                "apis:\n  Ping: Great\n",
                "apis.Ping: `Great` is not a status",
            ),
            ("apis: [1]\n", "`apis` is not a mapping"),
            ("tests:\n  - status: Pass\n", "tests[0] has no `id`"),
            ("apis: {a: [\n", "not valid YAML"),
        ] {
            let e = parse(text, "f.yaml").expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
