//! The console summary: failures with their reasons, warnings, then the counts and the API
//! and data tables in the official suite's layout.

use std::fmt::Write as _;

use crate::results::{RunResult, Status};

/// Renders the closing summary.
pub fn summary(r: &RunResult, color: bool) -> String {
    let paint = |s: Status| -> String {
        if !color {
            return s.as_str().to_string();
        }
        let code = match s {
            Status::Pass => "32",
            Status::Fail | Status::Error => "31",
            Status::Skip | Status::Disabled => "33",
            Status::Unknown => "90",
        };
        format!("\x1b[{code}m{}\x1b[0m", s.as_str())
    };
    let mut out = String::new();
    let cases = r.root.cases();
    let failed: Vec<_> = cases
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Error))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "Failures ({}):", failed.len());
        for c in &failed {
            let _ = writeln!(out, "  {} {}", paint(c.status), c.id);
            for f in &c.failures {
                let _ = writeln!(out, "      {}  ({})", f.message, f.source);
            }
            if c.failures.is_empty() {
                let _ = writeln!(out, "      {}", c.reason.clone().unwrap_or_default());
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
        for c in warned.iter().take(20) {
            let _ = writeln!(out, "  {}: {}", c.id, c.warnings[0].message);
        }
        if warned.len() > 20 {
            let _ = writeln!(out, "  … and {} more (see results.yaml)", warned.len() - 20);
        }
        out.push('\n');
    }
    let counts = r.counts();
    let _ = writeln!(out, "OCI Conformance Result: {}", paint(r.status()));
    for (name, n) in [
        ("Disabled", counts.disabled),
        ("Skip", counts.skip),
        ("Pass", counts.pass),
        ("FAIL", counts.fail),
        ("Error", counts.error),
        ("Total", counts.total),
    ] {
        let _ = writeln!(out, "  {:.<30}: {n:>10}", name);
    }
    let _ = writeln!(out, "  {:.<30}: {:>10}", "Warnings", counts.warnings);
    out.push_str("\nAPI conformance:\n");
    for (name, s) in &r.apis {
        let _ = writeln!(out, "  {:.<30}: {:>10}", name, s.as_str());
    }
    out.push_str("\nData conformance:\n");
    for (name, s) in &r.data {
        let _ = writeln!(out, "  {:.<30}: {:>10}", name, s.as_str());
    }
    let _ = writeln!(
        out,
        "\nSeed {} · {:.1} s · spec {} · {}",
        r.seed,
        r.duration.as_secs_f64(),
        r.spec_version,
        r.registry
    );
    out
}

/// One exchange as printed by `run -v` (credentials already masked in the record).
pub fn exchange(e: &crate::http::Exchange) -> String {
    let mut out = format!("> {} {}\n", e.method, e.url);
    for (k, v) in &e.request_headers {
        let _ = writeln!(out, "> {k}: {v}");
    }
    if e.request_body.len > 0 {
        let shown = e.request_body.text.clone().unwrap_or_else(|| {
            format!(
                "({} bytes, {})",
                e.request_body.len,
                e.request_body.digest.clone().unwrap_or_default()
            )
        });
        let _ = writeln!(out, "> {shown}");
    }
    match (e.status, &e.error) {
        (Some(s), _) => {
            let _ = writeln!(out, "< {s} ({:.1} ms)", e.elapsed_ms);
            for (k, v) in &e.response_headers {
                let _ = writeln!(out, "< {k}: {v}");
            }
            if e.response_body.len > 0 {
                let shown = e.response_body.text.clone().unwrap_or_else(|| {
                    format!(
                        "({} bytes, {})",
                        e.response_body.len,
                        e.response_body.digest.clone().unwrap_or_default()
                    )
                });
                let _ = writeln!(out, "< {shown}");
            }
        }
        (None, Some(err)) => {
            let _ = writeln!(out, "! {err}");
        }
        _ => {}
    }
    out
}
