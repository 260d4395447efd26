//! `junit.xml`: one `<testsuite>` per top-level group, one `<testcase>` per test with its
//! group as `classname`, and the `<failure>`, `<error>` and `<skipped>` elements (with a
//! `message`) that CI viewers read — the official suite writes none of them.

use std::fmt::Write as _;

use super::console;
use super::curl;
use super::spec_links;
use crate::results::{CaseResult, ResultNode, RunResult, Status};

/// Escapes text content: markup characters, and characters XML 1.0 does not allow dropped.
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
            c if !allowed(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value; line breaks survive as character references (a parser turns
/// literal ones into spaces).
pub fn escape_attr(s: &str) -> String {
    escape(s)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

/// Whether XML 1.0 allows a character.
fn allowed(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

struct Tally {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    time: f64,
}

fn tally(cases: &[&CaseResult]) -> Tally {
    Tally {
        tests: cases.len(),
        failures: cases.iter().filter(|c| c.status == Status::Fail).count(),
        errors: cases.iter().filter(|c| c.status == Status::Error).count(),
        skipped: cases
            .iter()
            .filter(|c| matches!(c.status, Status::Skip | Status::Disabled))
            .count(),
        time: cases.iter().map(|c| c.duration.as_secs_f64()).sum(),
    }
}

/// Renders junit.xml.
pub fn render(r: &RunResult) -> String {
    let all = r.root.cases();
    let t = tally(&all);
    let opts = curl::Options::from_config(&r.config);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\">",
        escape_attr(&r.root.name),
        t.tests,
        t.failures,
        t.errors,
        t.skipped,
        r.duration.as_secs_f64(),
        escape_attr(&r.started)
    );
    let properties = properties(r);
    for child in &r.root.children {
        let (name, cases) = match child {
            ResultNode::Group(g) => (g.name.clone(), g.cases()),
            ResultNode::Case(c) => (c.name.clone(), vec![c.as_ref()]),
        };
        let t = tally(&cases);
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\">",
            escape_attr(&name),
            t.tests,
            t.failures,
            t.errors,
            t.skipped,
            t.time,
            escape_attr(&r.started)
        );
        out.push_str(&properties);
        for c in cases {
            testcase(&mut out, r, c, &name, &opts);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn properties(r: &RunResult) -> String {
    let mut out = String::from("    <properties>\n");
    for (k, v) in [
        ("registry", r.registry.clone()),
        ("specVersion", r.spec_version.clone()),
        (
            "engine",
            format!("oci-conform {}", env!("CARGO_PKG_VERSION")),
        ),
        ("packSource", r.pack_source.clone()),
        ("packDir", r.pack_dir.clone()),
        ("packDigest", r.pack_digest.clone()),
        ("seed", r.seed.to_string()),
    ] {
        let _ = writeln!(
            out,
            "      <property name=\"{k}\" value=\"{}\"/>",
            escape_attr(&v)
        );
    }
    out.push_str("    </properties>\n");
    out
}

fn testcase(out: &mut String, r: &RunResult, c: &CaseResult, suite: &str, opts: &curl::Options) {
    // The group is the class; a test directly under the root is its own suite and class.
    let (classname, name) = match c.id.rsplit_once('/') {
        Some((group, leaf)) => (group.replace('/', "."), leaf.to_string()),
        None => (suite.to_string(), c.id.clone()),
    };
    let _ = write!(
        out,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\" file=\"{}\"",
        escape_attr(&classname),
        escape_attr(&name),
        c.duration.as_secs_f64(),
        escape_attr(c.source.split(':').next().unwrap_or(""))
    );
    let reason = c.reason.clone().unwrap_or_default();
    let bad = matches!(c.status, Status::Fail | Status::Error);
    let element = match c.status {
        Status::Fail => format!(
            "      <failure message=\"{}\" type=\"FAIL\">{}</failure>\n",
            escape_attr(&reason),
            escape(&details(r, c, opts))
        ),
        Status::Error => format!(
            "      <error message=\"{}\" type=\"Error\">{}</error>\n",
            escape_attr(&reason),
            escape(&details(r, c, opts))
        ),
        Status::Skip | Status::Disabled => format!(
            "      <skipped message=\"{}\"/>\n",
            escape_attr(&format!("{}: {reason}", c.status.as_str()))
        ),
        Status::Pass | Status::Unknown => String::new(),
    };
    let mut log = String::new();
    for w in &c.warnings {
        let _ = writeln!(
            log,
            "warning [{}]: {} ({})",
            w.level.as_str(),
            w.message,
            w.source
        );
        for cited in super::cited(r, w) {
            let _ = writeln!(log, "  {}", super::cited_line(cited));
        }
    }
    for (i, e) in c.exchanges.iter().enumerate() {
        if bad {
            let _ = writeln!(log, "#{}\n{}", i + 1, console::exchange(e));
        } else {
            let status = e
                .status
                .map_or_else(|| e.error.clone().unwrap_or_default(), |s| s.to_string());
            let _ = writeln!(log, "#{} {} {} -> {status}", i + 1, e.method, e.url);
        }
    }
    if element.is_empty() && log.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    out.push_str(&element);
    if !log.is_empty() {
        let _ = writeln!(out, "      <system-out>{}</system-out>", escape(&log));
    }
    out.push_str("    </testcase>\n");
}

/// The text of a failure: findings with their place, spec links, and the curl reproduction.
fn details(r: &RunResult, c: &CaseResult, opts: &curl::Options) -> String {
    let mut d = String::new();
    for f in &c.failures {
        let _ = writeln!(d, "{} [{}]", f.message, f.level.as_str());
        let _ = writeln!(d, "  at {}", f.source);
        for cited in super::cited(r, f) {
            let _ = writeln!(d, "  {}", super::cited_line(cited));
        }
    }
    if c.failures.is_empty() {
        if let Some(reason) = &c.reason {
            let _ = writeln!(d, "{reason}");
        }
    }
    let _ = writeln!(d, "test: {}", c.source);
    for l in spec_links::links(r.spec_url.as_deref(), &r.anchors, &c.spec) {
        let _ = writeln!(d, "spec {}: {}", l.anchor, l.url.unwrap_or(l.title));
    }
    if !c.req.is_empty() {
        let _ = writeln!(d, "requirements: {}", c.req.join(", "));
    }
    if !c.exchanges.is_empty() {
        let repro = curl::reproduce(&c.exchanges, opts);
        let _ = write!(d, "\nreproduce:\n{}", repro.script);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_invalid_characters() {
        assert_eq!(
            escape("a<b>&\"'\u{1}\u{FFFE}c"),
            "a&lt;b&gt;&amp;&quot;&apos;c"
        );
        assert_eq!(escape_attr("one\ntwo\tx"), "one&#10;two&#9;x");
        assert_eq!(escape("ok\n"), "ok\n");
    }
}
