//! `report.html`: one self-contained page (inline CSS, no script, no network loads) rendered
//! from the minijinja template `report.html.j2` compiled into the binary.
//!
//! This module turns a [`RunResult`] into a plain view model — every string the page shows,
//! already formatted — so the template only lays it out. Failing and erroring tests carry
//! every exchange in full plus a `curl` reproduction; the others get one line per exchange,
//! which keeps a full run (≈900 tests, thousands of exchanges) small enough to open quickly.

use std::sync::LazyLock;

use minijinja::value::Serde;
use minijinja::{context, Environment, Value};
use serde::Serialize;

use super::curl::{self, Reproduction};
use super::spec_links::{self, SpecLink};
use crate::http::{BodySummary, Exchange};
use crate::results::{CaseResult, Finding, ResultNode, RunResult, Status};

/// The page template (HTML auto-escaping applies: the name ends in `.html`).
const TEMPLATE: &str = include_str!("report.html.j2");

/// Above this many failing tests their details start closed.
const OPEN_FAILURES: usize = 30;
/// Exchange lines listed for a test that did not fail.
const BRIEF_LINES: usize = 12;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A template bug is a programming error caught by the tests; render() reports it.
    let _ = env.add_template("report.html", TEMPLATE);
    env
});

/// The rendered page and the body files its commands read.
pub struct Rendered {
    /// The HTML text.
    pub html: String,
    /// Request bodies of failing tests, to write next to the page.
    pub bodies: Vec<curl::BodyFile>,
}

#[derive(Serialize)]
struct Count {
    label: &'static str,
    n: usize,
    class: &'static str,
}

#[derive(Serialize)]
struct RollUp {
    name: String,
    status: &'static str,
    class: &'static str,
    cells: Vec<Cell>,
}

#[derive(Serialize)]
struct Cell {
    n: usize,
    class: &'static str,
}

#[derive(Serialize)]
struct Filter {
    id: &'static str,
    label: &'static str,
    n: usize,
    checked: bool,
}

#[derive(Serialize)]
struct Section {
    name: String,
    status: &'static str,
    class: &'static str,
    summary: String,
    tests: Vec<TestView>,
}

#[derive(Serialize)]
struct FindingView {
    message: String,
    source: String,
    level: &'static str,
    req: String,
    cited: Vec<crate::results::Cited>,
    exchange: Option<String>,
    exchange_n: Option<usize>,
}

#[derive(Serialize)]
struct BodyView {
    kind: &'static str,
    text: String,
    len: u64,
    digest: String,
}

#[derive(Serialize)]
struct ExchangeView {
    anchor: String,
    n: usize,
    method: String,
    url: String,
    status: String,
    class: &'static str,
    elapsed: String,
    note: String,
    error: String,
    request_headers: Vec<(String, String)>,
    request_body: BodyView,
    response_headers: Vec<(String, String)>,
    response_body: BodyView,
}

#[derive(Serialize)]
struct BriefLine {
    method: String,
    path: String,
    status: String,
    class: &'static str,
}

#[derive(Serialize)]
struct TestView {
    anchor: String,
    id: String,
    status: &'static str,
    class: &'static str,
    reason: String,
    reason_short: String,
    warned: bool,
    open: bool,
    full: bool,
    source: String,
    spec: Vec<SpecLink>,
    req: String,
    apis: String,
    data: String,
    level: &'static str,
    note: String,
    duration: String,
    findings: Vec<FindingView>,
    warnings: Vec<FindingView>,
    exchanges: Vec<ExchangeView>,
    brief: Vec<BriefLine>,
    brief_more: usize,
    curl: String,
}

/// CSS class of a status.
fn class(s: Status) -> &'static str {
    match s {
        Status::Unknown => "unknown",
        Status::Disabled => "disabled",
        Status::Skip => "skip",
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Error => "error",
    }
}

/// Statuses a test can end with, as table columns.
const COLUMNS: [Status; 5] = [
    Status::Disabled,
    Status::Skip,
    Status::Pass,
    Status::Fail,
    Status::Error,
];

/// Renders the page.
pub fn render(r: &RunResult) -> Result<Rendered, String> {
    let cases = r.root.cases();
    let counts = r.counts();
    let problems = counts.fail + counts.error;
    let opts = curl::Options::from_config(&r.config);
    let mut bodies = Vec::new();
    let mut index = 0usize;
    let mut sections = Vec::new();
    for child in &r.root.children {
        let (name, list, status) = match child {
            ResultNode::Group(g) => (g.name.clone(), g.cases(), g.status()),
            ResultNode::Case(c) => (c.name.clone(), vec![c.as_ref()], c.status),
        };
        let c = crate::results::Counts::of(list.iter().copied());
        let tests = list
            .iter()
            .map(|case| {
                index += 1;
                test_view(
                    r,
                    case,
                    index,
                    problems <= OPEN_FAILURES,
                    &opts,
                    &mut bodies,
                )
            })
            .collect();
        sections.push(Section {
            name,
            status: status.as_str(),
            class: class(status),
            summary: section_summary(&c),
            tests,
        });
    }
    let roll = |map: &indexmap::IndexMap<String, Status>,
                of: &dyn Fn(&CaseResult, &str) -> bool| {
        map.iter()
            .map(|(name, s)| RollUp {
                name: name.clone(),
                status: s.as_str(),
                class: class(*s),
                cells: COLUMNS
                    .iter()
                    .map(|col| {
                        let n = cases
                            .iter()
                            .filter(|c| c.status == *col && of(c, name))
                            .count();
                        Cell {
                            n,
                            class: if n > 0 { class(*col) } else { "" },
                        }
                    })
                    .collect(),
            })
            .collect::<Vec<_>>()
    };
    let apis = roll(&r.apis, &|c, name| c.apis.iter().any(|a| a == name));
    let data = roll(&r.data, &|c, name| c.data.as_deref() == Some(name));
    let status = r.status();
    let headline = match status {
        Status::Fail | Status::Error => format!(
            "{} of {} tests failed{}",
            counts.fail,
            counts.total,
            if counts.error > 0 {
                format!(", {} could not be decided (Error)", counts.error)
            } else {
                String::new()
            }
        ),
        Status::Pass => format!("All {} tests that ran passed", counts.pass),
        _ => "Nothing conclusive ran".into(),
    };
    let pct = |n: usize| {
        if counts.total == 0 {
            0.0
        } else {
            (n as f64 * 1000.0 / counts.total as f64).round() / 10.0
        }
    };
    let meter = vec![
        (class(Status::Pass), pct(counts.pass)),
        (class(Status::Fail), pct(counts.fail + counts.error)),
        (class(Status::Skip), pct(counts.skip + counts.disabled)),
    ];
    let engine = format!("oci-conform {}", env!("CARGO_PKG_VERSION"));
    let meta: Vec<(&str, String)> = vec![
        ("Registry", r.registry.clone()),
        ("Started", r.started.clone()),
        ("Duration", seconds(r.duration.as_secs_f64())),
        ("Engine", engine.clone()),
        ("Pack", format!("{} ({})", r.pack_dir, r.pack_source)),
        ("Pack digest", r.pack_digest.clone()),
        ("Seed", r.seed.to_string()),
        ("Parallel", r.parallel.to_string()),
    ];
    let failures: Vec<(String, String, String)> = sections
        .iter()
        .flat_map(|s| s.tests.iter())
        .filter(|t| t.full)
        .map(|t| (t.anchor.clone(), t.id.clone(), t.reason_short.clone()))
        .collect();
    let filters = vec![
        Filter {
            id: "all",
            label: "All",
            n: counts.total,
            checked: problems == 0,
        },
        Filter {
            id: "fail",
            label: "FAIL / Error",
            n: problems,
            checked: problems > 0,
        },
        Filter {
            id: "skip",
            label: "Skip / Disabled",
            n: counts.skip + counts.disabled,
            checked: false,
        },
        Filter {
            id: "warn",
            label: "Warnings",
            n: counts.warnings,
            checked: false,
        },
        Filter {
            id: "pass",
            label: "Pass",
            n: counts.pass,
            checked: false,
        },
    ];
    let tmpl = ENV
        .get_template("report.html")
        .map_err(|e| format!("report template: {e}"))?;
    let html = tmpl
        .render(context! {
            title => format!("{} · {} · {}", status.as_str(), r.registry, engine),
            verdict => status.as_str(),
            verdict_class => class(status),
            headline => headline,
            counts => Value::from(Serde(vec![
                Count { label: "Pass", n: counts.pass, class: "pass" },
                Count { label: "FAIL", n: counts.fail, class: "fail" },
                Count { label: "Error", n: counts.error, class: "error" },
                Count { label: "Skip", n: counts.skip, class: "skip" },
                Count { label: "Disabled", n: counts.disabled, class: "disabled" },
                Count { label: "Total", n: counts.total, class: "total" },
                Count { label: "Warnings", n: counts.warnings, class: "warn" },
            ])),
            meter => Value::from(Serde(&meter)),
            engine => engine,
            registry => r.registry.clone(),
            spec_version => r.spec_version.clone(),
            spec_url => r.spec_url.clone(),
            meta => Value::from(Serde(&meta)),
            config_yaml => serde_saphyr::to_string(&r.config).unwrap_or_default(),
            columns => COLUMNS.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            apis => Value::from(Serde(&apis)),
            data => Value::from(Serde(&data)),
            leftovers => r.leftovers.clone(),
            failures => Value::from(Serde(&failures)),
            filters => Value::from(Serde(&filters)),
            sections => Value::from(Serde(&sections)),
            has_bodies => !bodies.is_empty(),
        })
        .map_err(|e| format!("report template: {e:#}"))?;
    Ok(Rendered { html, bodies })
}

fn section_summary(c: &crate::results::Counts) -> String {
    let mut parts = Vec::new();
    for (n, label) in [
        (c.fail, "FAIL"),
        (c.error, "Error"),
        (c.pass, "Pass"),
        (c.skip, "Skip"),
        (c.disabled, "Disabled"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {label}"));
        }
    }
    parts.join(" · ")
}

fn test_view(
    r: &RunResult,
    c: &CaseResult,
    index: usize,
    open_failures: bool,
    opts: &curl::Options,
    bodies: &mut Vec<curl::BodyFile>,
) -> TestView {
    let anchor = format!("t{index}");
    let full = matches!(c.status, Status::Fail | Status::Error);
    let finding = |f: &Finding| FindingView {
        message: f.message.clone(),
        source: f.source.clone(),
        level: f.level.as_str(),
        req: f.req.join(", "),
        cited: super::cited(r, f).into_iter().cloned().collect(),
        exchange: f.exchange.map(|i| format!("{anchor}-x{}", i + 1)),
        exchange_n: f.exchange.map(|i| i + 1),
    };
    // Exchanges a warning points at are shown in full even when the test passed.
    let warned_exchanges: Vec<usize> = c.warnings.iter().filter_map(|w| w.exchange).collect();
    let mut exchanges = Vec::new();
    let mut brief = Vec::new();
    for (i, e) in c.exchanges.iter().enumerate() {
        if full || warned_exchanges.contains(&i) {
            exchanges.push(exchange_view(e, &anchor, i + 1));
        } else if brief.len() < BRIEF_LINES {
            brief.push(BriefLine {
                method: e.method.clone(),
                path: short(&super::shorten_queries(&path_of(&e.url)), 160),
                status: status_text(e),
                class: status_class(e),
            });
        }
    }
    let brief_more = if full {
        0
    } else {
        c.exchanges
            .len()
            .saturating_sub(exchanges.len() + brief.len())
    };
    let curl = if full && !c.exchanges.is_empty() {
        let Reproduction {
            script,
            bodies: files,
        } = curl::reproduce(&c.exchanges, opts);
        bodies.extend(files);
        script
    } else {
        String::new()
    };
    let reason = c.reason.clone().unwrap_or_default();
    TestView {
        anchor: anchor.clone(),
        id: c.id.clone(),
        status: c.status.as_str(),
        class: class(c.status),
        reason_short: short(&super::shorten_queries(&reason), 240),
        reason,
        warned: !c.warnings.is_empty(),
        open: full && open_failures,
        full,
        source: c.source.clone(),
        spec: spec_links::links(r.spec_url.as_deref(), &r.anchors, &c.spec),
        req: c.req.join(", "),
        apis: c.apis.join(", "),
        data: c.data.clone().unwrap_or_default(),
        level: c.level.as_str(),
        note: c.note.clone().unwrap_or_default(),
        duration: seconds(c.duration.as_secs_f64()),
        findings: c.failures.iter().map(finding).collect(),
        warnings: c.warnings.iter().map(finding).collect(),
        exchanges,
        brief,
        brief_more,
        curl,
    }
}

fn exchange_view(e: &Exchange, anchor: &str, n: usize) -> ExchangeView {
    ExchangeView {
        anchor: format!("{anchor}-x{n}"),
        n,
        method: e.method.clone(),
        url: e.url.clone(),
        status: status_text(e),
        class: status_class(e),
        elapsed: format!("{:.1} ms", e.elapsed_ms),
        note: e.note.clone().unwrap_or_default(),
        error: e.error.clone().unwrap_or_default(),
        request_headers: e.request_headers.clone(),
        request_body: body_view(&e.request_body),
        response_headers: e.response_headers.clone(),
        response_body: body_view(&e.response_body),
    }
}

fn body_view(b: &BodySummary) -> BodyView {
    let digest = b.digest.clone().unwrap_or_default();
    if b.len == 0 {
        return BodyView {
            kind: "none",
            text: String::new(),
            len: 0,
            digest,
        };
    }
    match &b.text {
        Some(t) => {
            let pretty = (t.len() as u64 == b.len)
                .then(|| serde_json::from_str::<serde_json::Value>(t).ok())
                .flatten()
                .filter(|v| v.is_object() || v.is_array())
                .and_then(|v| serde_json::to_string_pretty(&v).ok());
            BodyView {
                kind: if pretty.is_some() { "json" } else { "text" },
                text: pretty.unwrap_or_else(|| t.clone()),
                len: b.len,
                digest,
            }
        }
        // The first bytes in hex, never the raw bytes.
        None => BodyView {
            kind: "binary",
            text: b.head.clone().unwrap_or_default(),
            len: b.len,
            digest,
        },
    }
}

fn status_text(e: &Exchange) -> String {
    match (e.status, &e.error) {
        (Some(s), _) => s.to_string(),
        (None, Some(_)) => "error".into(),
        _ => "—".into(),
    }
}

fn status_class(e: &Exchange) -> &'static str {
    match e.status {
        Some(200..=299) => "ok",
        Some(300..=399) => "redir",
        Some(_) => "bad",
        None => "err",
    }
}

/// The URL from its path on (the registry is named once at the top).
fn path_of(url: &str) -> String {
    url.split_once("://")
        .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string()))
        .unwrap_or_else(|| url.to_string())
}

/// At most `max` characters, with an ellipsis when cut.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// `12 ms` or `1.25 s`.
fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{case, exchange, run};
    use crate::scenario::Level;

    fn failing(id: &str) -> CaseResult {
        let mut c = case(id, Status::Fail);
        c.reason = Some("GET /v2/r/blobs/sha256:ab: expected status 200, got 404".into());
        c.spec = vec!["end-2".into()];
        c.req = vec!["R36".into()];
        c.failures = vec![Finding {
            message: c.reason.clone().unwrap_or_default(),
            source: "specs/1.1/ops/blob-get.yaml:14:15".into(),
            level: Level::Must,
            req: vec!["R36".into()],
            exchange: Some(1),
        }];
        c
    }

    #[test]
    fn a_full_run_stays_small_and_quick_to_render() {
        // About the size of a full 1.1 run: 900 tests, 5400 exchanges, 40 failures.
        let groups: Vec<(String, Vec<CaseResult>)> = (0..10)
            .map(|g| {
                let cases = (0..90)
                    .map(|i| {
                        let id = format!("group {g}/sub/test-{i}[layer-{i}]");
                        let mut c = if i % 23 == 0 { failing(&id) } else { case(&id, Status::Pass) };
                        c.exchanges = (0..6)
                            .map(|n| exchange("GET", &format!("http://127.0.0.1:5000/v2/conformance/repo1/blobs/uploads/{n}?_state={}", "x".repeat(200)), 200))
                            .collect();
                        c
                    })
                    .collect();
                (format!("group {g}"), cases)
            })
            .collect();
        let r = run(groups
            .iter()
            .map(|(n, c)| (n.as_str(), c.clone()))
            .collect());
        let t = std::time::Instant::now();
        let page = render(&r).expect("renders");
        let took = t.elapsed();
        let fails = r.counts().fail;
        assert_eq!(fails, 40);
        assert_eq!(
            page.html.matches("<div class=\"ex\" id=").count(),
            fails * 6,
            "failing tests carry every exchange"
        );
        assert_eq!(page.html.matches("<pre class=\"curl\">").count(), fails);
        assert!(
            page.html.len() < 2_500_000,
            "report.html is {} bytes",
            page.html.len()
        );
        assert!(
            took < std::time::Duration::from_secs(10),
            "rendering took {took:?}"
        );
        eprintln!("900 tests: {} bytes in {took:?}", page.html.len());
    }

    #[test]
    fn text_is_escaped_and_failures_are_linked_to_the_spec() {
        let mut f = failing("blobs/get");
        f.reason = Some("<script>alert(1)</script>".into());
        f.exchanges = vec![
            exchange("HEAD", "http://r/v2/", 200),
            exchange("GET", "http://r/v2/r/blobs/sha256:ab", 404),
        ];
        let r = run(vec![("blobs", vec![f, case("blobs/head", Status::Pass)])]);
        let html = render(&r).expect("renders").html;
        assert!(!html.contains("<script>alert"), "text must be escaped");
        assert!(html.contains("&lt;script&gt;alert(1)"));
        // minijinja's HTML escaping writes `/` as `&#x2f;`; browsers read it back as `/`.
        let s = |t: &str| t.replace('/', "&#x2f;");
        assert!(html.contains(&format!("href=\"{}\"", s("https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#endpoints"))), "spec link missing");
        assert!(
            html.contains(&s("specs/1.1/ops/blob-get.yaml:14:15")),
            "finding place missing"
        );
        assert!(
            html.contains("on <a href=\"#t1-x2\">exchange #2</a>"),
            "finding links its exchange"
        );
        assert!(html.contains("id=\"show-fail\" class=\"flt\" checked"));
        assert!(
            html.contains("-H &quot;Authorization: Bearer $TOKEN&quot;"),
            "curl line with a token variable"
        );
        assert!(
            html.contains("&quot;BLOB_UNKNOWN&quot;"),
            "JSON answer shown"
        );
    }

    #[test]
    fn a_clean_run_shows_everything_and_no_curl() {
        let r = run(vec![(
            "ping",
            vec![case("ping", Status::Pass), case("skip", Status::Skip)],
        )]);
        let page = render(&r).expect("renders");
        assert!(page.html.contains("id=\"show-all\" class=\"flt\" checked"));
        assert!(!page.html.contains("<pre class=\"curl\">"));
        assert!(page.bodies.is_empty());
        assert!(page.html.contains("<span class=\"pill big\">Pass</span>"));
    }
}
