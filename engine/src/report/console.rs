//! The console summary: failures with their reasons and where they were decided, warnings,
//! then the counts and the API and data tables in the official suite's layout.

use std::fmt::Write as _;

use crate::results::{RunResult, Status};

/// Warnings listed before "… and N more".
const WARNINGS_SHOWN: usize = 20;

/// A status word, in colour when `color`.
pub fn paint(s: Status, color: bool) -> String {
    painted(s, s.as_str(), color)
}

/// `text` in the colour of `s` (padding stays outside the escape codes' count).
fn painted(s: Status, text: &str, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match s {
        Status::Pass => "32",
        Status::Fail => "31",
        Status::Error => "1;31",
        Status::Skip => "33",
        Status::Disabled | Status::Unknown => "90",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Renders the closing summary.
pub fn summary(r: &RunResult, color: bool) -> String {
    let mut out = String::new();
    let cases = r.root.cases();
    let failed: Vec<_> = cases
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Error))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "Failures ({}):", failed.len());
        for c in &failed {
            let _ = writeln!(
                out,
                "  {} {}",
                painted(c.status, &format!("{:<5}", c.status.as_str()), color),
                c.id
            );
            let mut refs = Vec::new();
            if !c.spec.is_empty() {
                refs.push(format!("spec {}", c.spec.join(", ")));
            }
            for f in &c.failures {
                let _ = writeln!(out, "        {}", super::shorten_queries(&f.message));
                let mut at = vec![format!("at {}", f.source)];
                if !f.req.is_empty() {
                    at.push(f.req.join(", "));
                }
                at.extend(refs.iter().cloned());
                let _ = writeln!(out, "          {}", at.join(" · "));
                for cited in super::cited(r, f) {
                    let _ = writeln!(out, "          {}", super::cited_line(cited));
                }
            }
            if c.failures.is_empty() {
                let reason = c.reason.as_deref().unwrap_or("(no reason)");
                let _ = writeln!(out, "        {}", super::shorten_queries(reason));
                let mut at = vec![format!("at {}", c.source)];
                at.extend(refs);
                let _ = writeln!(out, "          {}", at.join(" · "));
            }
        }
        out.push('\n');
    }
    let warned: Vec<_> = cases.iter().filter(|c| !c.warnings.is_empty()).collect();
    if !warned.is_empty() {
        let _ = writeln!(
            out,
            "Warnings — SHOULD/MAY not met, not failures ({}):",
            warned.len()
        );
        for c in warned.iter().take(WARNINGS_SHOWN) {
            let w = &c.warnings[0];
            let more = if c.warnings.len() > 1 {
                format!(" (+{} more)", c.warnings.len() - 1)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {}: [{}] {}{more}  ({})",
                c.id,
                w.level.as_str(),
                w.message,
                w.source
            );
            for cited in super::cited(r, w) {
                let _ = writeln!(out, "      {}", super::cited_line(cited));
            }
        }
        if warned.len() > WARNINGS_SHOWN {
            let _ = writeln!(
                out,
                "  … and {} more (see results.yaml or report.html)",
                warned.len() - WARNINGS_SHOWN
            );
        }
        out.push('\n');
    }
    let counts = r.counts();
    let _ = writeln!(out, "OCI Conformance Result: {}", paint(r.status(), color));
    for (name, n, s) in [
        ("Disabled", counts.disabled, Status::Disabled),
        ("Skip", counts.skip, Status::Skip),
        ("Pass", counts.pass, Status::Pass),
        ("FAIL", counts.fail, Status::Fail),
        ("Error", counts.error, Status::Error),
    ] {
        let value = format!("{n:>10}");
        let value = if n > 0 {
            painted(s, &value, color)
        } else {
            value
        };
        let _ = writeln!(out, "  {name:.<30}: {value}");
    }
    let _ = writeln!(out, "  {:.<30}: {:>10}", "Total", counts.total);
    let _ = writeln!(out, "  {:.<30}: {:>10}", "Warnings", counts.warnings);
    for (title, map) in [("API conformance", &r.apis), ("Data conformance", &r.data)] {
        let _ = writeln!(out, "\n{title}:");
        for (name, s) in map {
            let value = painted(*s, &format!("{:>10}", s.as_str()), color);
            let _ = writeln!(out, "  {name:.<30}: {value}");
        }
    }
    let _ = writeln!(
        out,
        "\nSeed {} · {:.1} s · spec {} · {} · packs {}",
        r.seed,
        r.duration.as_secs_f64(),
        r.spec_version,
        r.registry,
        r.packs_label()
    );
    out
}

/// One exchange as printed by `run -v` (credentials already masked in the record).
pub fn exchange(e: &crate::http::Exchange) -> String {
    let mut out = format!("> {} {}", e.method, e.url);
    if let Some(n) = &e.note {
        let _ = write!(out, "  ({n})");
    }
    out.push('\n');
    for (k, v) in &e.request_headers {
        let _ = writeln!(out, "> {k}: {v}");
    }
    if e.request_body.len > 0 {
        let _ = writeln!(out, "> {}", body(&e.request_body));
    }
    match (e.status, &e.error) {
        (Some(s), err) => {
            let _ = writeln!(out, "< {s} ({:.1} ms)", e.elapsed_ms);
            for (k, v) in &e.response_headers {
                let _ = writeln!(out, "< {k}: {v}");
            }
            if e.response_body.len > 0 {
                let _ = writeln!(out, "< {}", body(&e.response_body));
            }
            if let Some(err) = err {
                let _ = writeln!(out, "! {err}");
            }
        }
        (None, Some(err)) => {
            let _ = writeln!(out, "! {err}");
        }
        (None, None) => {}
    }
    out
}

/// A body as text, or its size and digest.
fn body(b: &crate::http::BodySummary) -> String {
    match &b.text {
        Some(t) if t.len() as u64 == b.len => t.clone(),
        Some(t) => format!(
            "{t} ({} bytes, {})",
            b.len,
            b.digest.as_deref().unwrap_or("")
        ),
        None => format!(
            "({} bytes, not text, {}{})",
            b.len,
            b.digest.as_deref().unwrap_or(""),
            b.head
                .as_ref()
                .map(|h| format!(", starting {h}"))
                .unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{case, run as run_of};
    use crate::results::{CaseResult, Finding};
    use crate::scenario::Level;

    fn run(cases: Vec<CaseResult>) -> RunResult {
        run_of(vec![("g", cases)])
    }

    #[test]
    fn failures_come_first_with_reason_and_place() {
        let mut f = case("blobs/get", Status::Fail);
        f.spec = vec!["end-2".into()];
        f.failures = vec![Finding {
            message: "GET /v2/x: expected status 200, got 404".into(),
            source: "specs/blobs.yaml:12:7".into(),
            level: Level::Must,
            req: vec!["R12".into()],
            exchange: Some(0),
        }];
        let mut w = case("ping", Status::Pass);
        w.warnings = vec![Finding {
            message: "header Docker-Distribution-API-Version is missing".into(),
            source: "specs/ping.yaml:9:9".into(),
            level: Level::Should,
            req: vec![],
            exchange: None,
        }];
        let out = summary(&run(vec![w, f]), false);
        let fail_at = out.find("Failures (1):").expect("failures listed");
        assert!(
            fail_at < out.find("OCI Conformance Result: FAIL").unwrap(),
            "{out}"
        );
        assert!(out.contains("  FAIL  blobs/get\n        GET /v2/x: expected status 200, got 404\n          at specs/blobs.yaml:12:7 · R12 · spec end-2\n"), "{out}");
        assert!(out.contains("ping: [SHOULD] header Docker-Distribution-API-Version is missing  (specs/ping.yaml:9:9)"), "{out}");
        assert!(
            out.contains("  Blob get......................:       FAIL\n"),
            "{out}"
        );
        assert!(!out.contains('\x1b'), "no colour when off: {out}");
        assert!(summary(&run(vec![case("a", Status::Fail)]), true).contains("\x1b[31m"));
    }
}
