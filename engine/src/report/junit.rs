//! `junit.xml`: one `<testsuite>` per top-level group, one `<testcase>` per case, with
//! `<failure>`, `<skipped>` and `<error>` elements that CI viewers understand.

use std::fmt::Write as _;

use crate::results::{CaseResult, ResultNode, RunResult, Status};

/// Escapes text for XML attributes and content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

fn counts(cases: &[&CaseResult]) -> (usize, usize, usize, usize, f64) {
    let fail = cases.iter().filter(|c| c.status == Status::Fail).count();
    let err = cases.iter().filter(|c| c.status == Status::Error).count();
    let skip = cases
        .iter()
        .filter(|c| matches!(c.status, Status::Skip | Status::Disabled))
        .count();
    let time = cases.iter().map(|c| c.duration.as_secs_f64()).sum();
    (cases.len(), fail, err, skip, time)
}

/// Renders junit.xml.
pub fn render(r: &RunResult) -> String {
    let all = r.root.cases();
    let (n, fail, err, skip, _) = counts(&all);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{n}\" failures=\"{fail}\" errors=\"{err}\" skipped=\"{skip}\" time=\"{:.3}\">",
        escape(&r.root.name),
        r.duration.as_secs_f64()
    );
    for child in &r.root.children {
        let (name, cases) = match child {
            ResultNode::Group(g) => (g.name.clone(), g.cases()),
            ResultNode::Case(c) => (c.name.clone(), vec![c.as_ref()]),
        };
        let (n, fail, err, skip, time) = counts(&cases);
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{fail}\" errors=\"{err}\" skipped=\"{skip}\" time=\"{time:.3}\">",
            escape(&name)
        );
        for c in cases {
            testcase(&mut out, c);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn testcase(out: &mut String, c: &CaseResult) {
    let (classname, name) = match c.id.rsplit_once('/') {
        Some((group, leaf)) => (group.replace('/', "."), leaf.to_string()),
        None => (String::new(), c.id.clone()),
    };
    let _ = write!(
        out,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
        escape(&classname),
        escape(&name),
        c.duration.as_secs_f64()
    );
    let reason = c.reason.clone().unwrap_or_default();
    let mut details = String::new();
    for f in &c.failures {
        let _ = writeln!(
            details,
            "{}: {} [{}]",
            f.source,
            f.message,
            f.level.as_str()
        );
    }
    for w in &c.warnings {
        let _ = writeln!(
            details,
            "warning: {}: {} [{}]",
            w.source,
            w.message,
            w.level.as_str()
        );
    }
    let _ = writeln!(details, "case: {}", c.source);
    if !c.spec.is_empty() {
        let _ = writeln!(details, "spec: {}", c.spec.join(", "));
    }
    let body = match c.status {
        Status::Fail => format!(
            "      <failure type=\"FAIL\" message=\"{}\">{}</failure>\n",
            escape(&reason),
            escape(&details)
        ),
        Status::Error => format!(
            "      <error type=\"Error\" message=\"{}\">{}</error>\n",
            escape(&reason),
            escape(&details)
        ),
        Status::Skip | Status::Disabled => format!(
            "      <skipped message=\"{}: {}\"/>\n",
            c.status.as_str(),
            escape(&reason)
        ),
        _ => String::new(),
    };
    let mut log = String::new();
    for (i, e) in c.exchanges.iter().enumerate() {
        let _ = writeln!(
            log,
            "#{} {} {} -> {}",
            i + 1,
            e.method,
            e.url,
            e.status
                .map_or_else(|| e.error.clone().unwrap_or_default(), |s| s.to_string())
        );
    }
    if body.is_empty() && log.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    out.push_str(&body);
    if !log.is_empty() {
        let _ = writeln!(out, "      <system-out>{}</system-out>", escape(&log));
    }
    out.push_str("    </testcase>\n");
}
