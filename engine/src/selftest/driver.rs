//! `oci-conform selftest`: does every case catch what it claims, and does conformant but
//! unusual behaviour pass?
//!
//! A baseline run goes through a proxy that changes nothing. Then each alteration gets a run
//! of its own through its own proxy: a violation runs the tests its `filter` (default:
//! `caught_by`) names, a variant the whole pack. Runs go several at a time (`--runs`); each
//! has its own repositories (the alteration id is a path component of repo1 and repo2) and
//! its own seed, so runs share no tag, manifest or upload, and content only where its bytes
//! are fixed (the empty blob); a row that does not hold is run again alone before it counts.
//! Every run is bounded in time: when it overruns, its proxy closes every connection and the
//! run ends at once.
//!
//! Verdicts, against the baseline: a violation is **caught** when a test under one of its
//! `caught_by` prefixes FAILs, that test did not FAIL in the baseline, and its reason holds
//! the `because` fragment; else **missed**. A variant is **clean** when no test FAILs or
//! Errors that did not in the baseline; else **false-fail**.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde_json::{json, Value as J};

use super::alteration::{Alteration, Kind, Unprovoked};
use super::proxy::{self, Proxy};
use crate::config::{Config, Tls};
use crate::diag::{did_you_mean, Diagnostic, Pos};
use crate::pack::Pack;
use crate::plan;
use crate::redact::Redactor;
use crate::results::{RunResult, Status};

/// How a self-test runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The registry's name, matched against alterations' `targets` (empty: none named).
    pub target: String,
    /// Only these alteration ids.
    pub only: Vec<String>,
    /// Runs at the same time.
    pub runs: usize,
    /// The longest a run may take.
    pub run_timeout: Duration,
    /// No progress lines.
    pub quiet: bool,
    /// Write the reports of every run, not only of rows that do not hold.
    pub keep: bool,
}

/// The verdict of one alteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A named test FAILed, newly, for the stated reason.
    Caught,
    /// No named test FAILed newly (or not for the stated reason).
    Missed,
    /// A variant added no FAIL and no Error.
    Clean,
    /// A variant added a FAIL or an Error.
    FalseFail,
}

impl Verdict {
    /// The spelling in selftest.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Caught => "caught",
            Verdict::Missed => "missed",
            Verdict::Clean => "clean",
            Verdict::FalseFail => "false-fail",
        }
    }

    /// Whether the row is as it should be.
    pub fn holds(self) -> bool {
        matches!(self, Verdict::Caught | Verdict::Clean)
    }
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Alteration id.
    pub id: String,
    /// Violation or variant.
    pub kind: Kind,
    /// Requirement ids.
    pub req: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Tests that FAILed (or Errored) in this run and not in the baseline.
    pub failed: Vec<String>,
    /// The catching test's reason, or why the row does not hold.
    pub reason: String,
    /// Exchanges the alteration changed.
    pub applied: u64,
    /// Wall time of the run.
    pub duration: Duration,
    /// Whether the verdict comes from a second run, alone.
    pub rerun: bool,
}

/// What one run of the pack gave.
struct Outcome {
    /// Test id → status and reason, in plan order.
    tests: IndexMap<String, (Status, String)>,
    result: Option<RunResult>,
    applied: u64,
    log: Vec<String>,
    timed_out: bool,
    duration: Duration,
    /// The run could not be made (planning or proxy failed).
    error: Option<String>,
}

/// A row and, when its reports are to be written, the run behind it.
type Finished = (Row, Option<Outcome>);

/// Everything a self-test found.
pub struct Report {
    /// The rows, in alteration order.
    pub rows: Vec<Row>,
    /// The baseline's own FAILs and Errors (test id, status, reason).
    pub baseline: Vec<(String, Status, String)>,
    /// Tests the baseline ran.
    pub baseline_tests: usize,
    /// Wall time of the baseline.
    pub baseline_duration: Duration,
    /// Alterations left out: not for this target or spec version.
    pub not_applicable: Vec<String>,
    /// Wall time in all.
    pub duration: Duration,
    /// Where the reports of the baseline and of rows that do not hold were written.
    pub dir: PathBuf,
    /// The baseline seed.
    pub seed: u64,
}

impl Report {
    /// Whether every row holds.
    pub fn holds(&self) -> bool {
        self.rows.iter().all(|r| r.verdict.holds())
    }

    /// How many rows have each verdict.
    pub fn count(&self, v: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == v).count()
    }
}

/// The alterations a self-test runs: those for this target and version, or the named ones.
pub fn select(
    all: Vec<Alteration>,
    opts: &Options,
    pack: &Pack,
) -> Result<(Vec<Arc<Alteration>>, Vec<String>), Diagnostic> {
    let names = pack.names();
    let version = &pack.spec_version;
    for id in &opts.only {
        if !all.iter().any(|a| a.id == *id) {
            let mut d = Diagnostic::new(Pos::default(), format!("no alteration `{id}`"));
            if let Some(s) = did_you_mean(id, all.iter().map(|a| a.id.as_str())) {
                d = d.with_hint(format!("did you mean `{s}`?"));
            }
            return Err(d);
        }
    }
    let mut chosen = Vec::new();
    let mut left_out = Vec::new();
    for a in all {
        if !opts.only.is_empty() && !opts.only.contains(&a.id) {
            continue;
        }
        if a.applies(&opts.target, &names) {
            chosen.push(Arc::new(a));
        } else if !opts.only.is_empty() {
            return Err(Diagnostic::new(
                a.pos.clone(),
                format!(
                    "alteration `{}` is for {} (this run: target `{}`, spec {version})",
                    a.id,
                    scope_text(&a),
                    if opts.target.is_empty() {
                        "none"
                    } else {
                        &opts.target
                    },
                ),
            )
            .with_hint("pass --target NAME for the registry under test"));
        } else {
            left_out.push(a.id);
        }
    }
    Ok((chosen, left_out))
}

fn scope_text(a: &Alteration) -> String {
    let t = if a.targets.is_empty() {
        "every registry".to_string()
    } else {
        format!("targets {}", a.targets.join(", "))
    };
    if a.versions.is_empty() {
        t
    } else {
        format!("{t}, spec {}", a.versions.join(", "))
    }
}

/// Repository `repo` with `label` inserted before its last component (`conformance/repo1` →
/// `conformance/<label>/repo1`), so each run has repositories of its own.
pub fn repo_for(repo: &str, label: &str) -> String {
    match repo.rsplit_once('/') {
        Some((parent, last)) => format!("{parent}/{label}/{last}"),
        None => format!("{label}/{repo}"),
    }
}

/// Runs the self-test: the baseline, then every alteration.
///
/// `redactor` learns the run's secrets (credentials, tokens) and scrubs every file written;
/// scrub the table and selftest.yaml with it too.
pub fn run(
    pack: &Pack,
    config: &Config,
    alterations: Vec<Arc<Alteration>>,
    not_applicable: Vec<String>,
    seed: u64,
    opts: &Options,
    redactor: &Redactor,
) -> Result<Report, Diagnostic> {
    let t0 = Instant::now();
    let dir = PathBuf::from(&config.results_dir).join("selftest");
    // The ids of the whole pack, to tell a `caught_by` naming nothing from one that passed.
    let full = plan::build(pack, config, &[], seed)?;
    let mut ids = Vec::new();
    full.root.walk(&mut |n, _| {
        if let plan::PlanKind::Case(_) = n.kind {
            ids.push(n.id.clone());
        }
    });
    drop(full);

    // An alteration whose tests are not in the pack is a row that does not hold, without a run.
    let unrunnable: Vec<Option<String>> = alterations.iter().map(|a| unrunnable(a, &ids)).collect();
    let runnable = || {
        alterations
            .iter()
            .zip(&unrunnable)
            .filter(|(_, u)| u.is_none())
            .map(|(a, _)| a)
    };
    let whole_pack = runnable().any(|a| a.run_filter(&ids).is_empty());
    let mut base_filter: Vec<String> = Vec::new();
    if !whole_pack {
        for a in runnable() {
            for f in a.run_filter(&ids) {
                if !base_filter.contains(&f) {
                    base_filter.push(f);
                }
            }
        }
    }
    let ctx = Ctx {
        pack,
        config,
        opts,
        dir: dir.clone(),
        redactor,
    };
    if !opts.quiet {
        eprintln!(
            "selftest · {} · spec {} · {} · {} alterations{} · seed {seed}",
            if opts.target.is_empty() {
                "no target named"
            } else {
                &opts.target
            },
            pack.spec_version,
            config.base_url(),
            alterations.len(),
            if not_applicable.is_empty() {
                String::new()
            } else {
                format!(" ({} not for this target/version)", not_applicable.len())
            }
        );
    }
    let baseline = if runnable().next().is_some() {
        ctx.run_once("baseline", seed, &base_filter, Vec::new())
    } else {
        Outcome::none()
    };
    if let Some(e) = &baseline.error {
        return Err(Diagnostic::new(Pos::default(), format!("baseline: {e}")));
    }
    if baseline.timed_out {
        return Err(Diagnostic::new(
            Pos::default(),
            format!(
                "the baseline run took longer than {} s without any alteration",
                opts.run_timeout.as_secs()
            ),
        )
        .with_hint("raise --run-timeout, or check that the registry answers"));
    }
    if let Some(r) = &baseline.result {
        let _ = crate::report::write_all(&dir.join("baseline"), r, redactor);
    }
    let baseline_failures: Vec<(String, Status, String)> = baseline
        .tests
        .iter()
        .filter(|(_, (s, _))| matches!(s, Status::Fail | Status::Error))
        .map(|(id, (s, r))| (id.clone(), *s, r.clone()))
        .collect();
    if !opts.quiet {
        eprintln!(
            "baseline: {} tests, {} FAIL, {} Error ({:.1} s)",
            baseline.tests.len(),
            baseline_failures
                .iter()
                .filter(|f| f.1 == Status::Fail)
                .count(),
            baseline_failures
                .iter()
                .filter(|f| f.1 == Status::Error)
                .count(),
            baseline.duration.as_secs_f64()
        );
    }

    // Every alteration, several at a time.
    let total = alterations.len();
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..total).collect());
    let rows: Mutex<Vec<Option<Finished>>> = Mutex::new((0..total).map(|_| None).collect());
    let done = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..opts.runs.max(1).min(total.max(1)) {
            s.spawn(|| loop {
                let Some(i) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    return;
                };
                let a = &alterations[i];
                if let Some(why) = &unrunnable[i] {
                    let row = Row {
                        reason: why.clone(),
                        verdict: match a.kind {
                            Kind::Violation => Verdict::Missed,
                            Kind::Variant => Verdict::FalseFail,
                        },
                        ..verdict(a, &Outcome::none(), &Outcome::none(), &ids, false)
                    };
                    if let Ok(mut r) = rows.lock() {
                        r[i] = Some((row, None));
                    }
                    continue;
                }
                let out = ctx.run_once(
                    &a.id,
                    seed + 1 + i as u64,
                    &a.run_filter(&ids),
                    vec![a.clone()],
                );
                let row = verdict(a, &baseline, &out, &ids, false);
                if let Ok(mut n) = done.lock() {
                    *n += 1;
                    if !opts.quiet {
                        eprintln!(
                            "[{}/{total}] {:<10} {} ({:.1} s)",
                            *n,
                            row.verdict.as_str(),
                            a.id,
                            row.duration.as_secs_f64()
                        );
                    }
                }
                let keep = (!row.verdict.holds() || opts.keep).then_some(out);
                if let Ok(mut r) = rows.lock() {
                    r[i] = Some((row, keep));
                }
            });
        }
    });
    let mut rows: Vec<Finished> = rows
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();

    // A row that does not hold counts only once it does not hold alone either.
    if opts.runs > 1 {
        for (i, (row, kept)) in rows.iter_mut().enumerate() {
            if row.verdict.holds() || unrunnable[i].is_some() {
                continue;
            }
            let a = &alterations[i];
            if !opts.quiet {
                eprintln!("again, alone: {}", a.id);
            }
            let out = ctx.run_once(
                &a.id,
                seed + 1 + i as u64,
                &a.run_filter(&ids),
                vec![a.clone()],
            );
            *row = verdict(a, &baseline, &out, &ids, true);
            *kept = Some(out);
        }
    }
    for (row, kept) in &rows {
        if let Some(out) = kept {
            let d = dir.join(&row.id);
            if let Some(r) = &out.result {
                let _ = crate::report::write_all(&d, r, redactor);
            }
            let _ = std::fs::create_dir_all(&d);
            let _ = std::fs::write(
                d.join("proxy.log"),
                redactor.scrub(&(out.log.join("\n") + "\n")),
            );
        }
    }
    Ok(Report {
        rows: rows.into_iter().map(|(r, _)| r).collect(),
        baseline: baseline_failures,
        baseline_tests: baseline.tests.len(),
        baseline_duration: baseline.duration,
        not_applicable,
        duration: t0.elapsed(),
        dir,
        seed,
    })
}

/// What every run shares.
struct Ctx<'a> {
    pack: &'a Pack,
    config: &'a Config,
    opts: &'a Options,
    dir: PathBuf,
    redactor: &'a Redactor,
}

impl Ctx<'_> {
    /// One run of the pack (or of `filter`) through a proxy applying `alterations`, with
    /// repositories named after `label`.
    fn run_once(
        &self,
        label: &str,
        seed: u64,
        filter: &[String],
        alterations: Vec<Arc<Alteration>>,
    ) -> Outcome {
        let t0 = Instant::now();
        let failed = |e: String| Outcome {
            tests: IndexMap::new(),
            result: None,
            applied: 0,
            log: Vec::new(),
            timed_out: false,
            duration: t0.elapsed(),
            error: Some(e),
        };
        let proxy = match Proxy::start(proxy::Options {
            listen: "127.0.0.1:0".into(),
            upstream: self.config.base_url(),
            tls: self.config.tls,
            ca_file: self.config.tls_ca_file.as_ref().map(PathBuf::from),
            timeout: Duration::from_secs(self.config.request_timeout),
            alterations,
            echo: false,
        }) {
            Ok(p) => p,
            Err(e) => return failed(e),
        };
        let mut cfg = self.config.clone();
        cfg.registry = proxy.addr.to_string();
        cfg.tls = Tls::Disabled;
        cfg.tls_ca_file = None;
        cfg.repo1 = repo_for(&self.config.repo1, label);
        cfg.repo2 = repo_for(&self.config.repo2, label);
        cfg.seed = Some(seed);
        cfg.results_dir = self.dir.join(label).display().to_string();
        let plan = match plan::build(self.pack, &cfg, filter, seed) {
            Ok(p) => p,
            Err(d) => return failed(d.message),
        };
        let redactor = self.redactor.clone();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let timed_out = std::sync::atomic::AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            let timed_out = &timed_out;
            let proxy = &proxy;
            s.spawn(move || {
                if stop_rx.recv_timeout(self.opts.run_timeout)
                    == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                {
                    timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                    proxy.stop();
                }
            });
            let r =
                crate::run::execute(self.pack, &plan, &cfg, seed, &crate::run::Silent, &redactor);
            let _ = stop_tx.send(());
            r
        });
        let applied = proxy.applied().values().sum();
        let log = proxy.log();
        let proxy_origin = format!("http://{}", proxy.addr);
        drop(proxy);
        let result = match result {
            Ok(r) => r,
            Err(e) => return failed(e),
        };
        // What the run could not delete through the alteration (a registry that refuses
        // deletes leaves everything) is deleted from the registry itself, so later runs see a
        // registry as small as the first did.
        self.delete_leftovers(&result.leftovers, &proxy_origin);
        let tests = result
            .root
            .cases()
            .into_iter()
            .map(|c| {
                (
                    c.id.clone(),
                    (c.status, c.reason.clone().unwrap_or_default()),
                )
            })
            .collect();
        Outcome {
            tests,
            result: Some(result),
            applied,
            log,
            timed_out: timed_out.load(std::sync::atomic::Ordering::SeqCst),
            duration: t0.elapsed(),
            error: None,
        }
    }
}

impl Ctx<'_> {
    /// Deletes leftovers (`URL (why)`, newest first) straight from the registry.
    fn delete_leftovers(&self, leftovers: &[String], proxy_origin: &str) {
        if leftovers.is_empty() {
            return;
        }
        let cfg = crate::http::ClientConfig {
            timeout: Duration::from_secs(self.config.request_timeout),
            tls: self.config.tls,
            ca_file: self.config.tls_ca_file.as_ref().map(PathBuf::from),
            username: self.config.username.clone(),
            password: crate::redact::Secret::new(self.config.password.clone()),
            cache_auth: self.config.cache_auth,
            connections: 1,
            registry: self.config.base_url(),
            ..crate::http::ClientConfig::default()
        };
        let Ok(client) = crate::http::Client::new(cfg, self.redactor.clone()) else {
            return;
        };
        for left in leftovers {
            let url = left.split(' ').next().unwrap_or_default();
            let Some(path) = url.strip_prefix(proxy_origin) else {
                continue;
            };
            let req = crate::http::Request {
                method: "DELETE".into(),
                url: format!("{}{path}", self.config.base_url()),
                auth: true,
                ..crate::http::Request::default()
            };
            let _ = client.send(&req, &crate::http::Recv::default());
        }
    }
}

/// The verdict of an alteration's run against the baseline.
fn verdict(a: &Alteration, base: &Outcome, run: &Outcome, ids: &[String], rerun: bool) -> Row {
    let bad = |s: Status| matches!(s, Status::Fail | Status::Error);
    let newly: Vec<(&String, &(Status, String))> = run
        .tests
        .iter()
        .filter(|(id, (s, _))| bad(*s) && !base.tests.get(*id).is_some_and(|(b, _)| bad(*b)))
        .collect();
    let failed: Vec<String> = newly.iter().map(|(id, _)| (*id).clone()).collect();
    let mut row = Row {
        id: a.id.clone(),
        kind: a.kind,
        req: a.req.clone(),
        verdict: Verdict::Missed,
        failed,
        reason: String::new(),
        applied: run.applied,
        duration: run.duration,
        rerun,
    };
    if let Some(e) = &run.error {
        row.verdict = if a.kind == Kind::Variant {
            Verdict::FalseFail
        } else {
            Verdict::Missed
        };
        row.reason = format!("the run could not be made: {e}");
        return row;
    }
    let under = |id: &str| a.caught_by.iter().any(|p| id.starts_with(p.value.as_str()));
    match a.kind {
        Kind::Violation => {
            let because = a.because.as_deref().unwrap_or("");
            let catching = newly
                .iter()
                .find(|(id, (s, why))| *s == Status::Fail && under(id) && why.contains(because));
            if let Some((id, (_, why))) = catching {
                row.verdict = Verdict::Caught;
                row.reason = format!("{id}: {why}");
                return row;
            }
            row.reason = missed_reason(a, base, run, ids);
        }
        Kind::Variant => {
            if run.timed_out {
                row.verdict = Verdict::FalseFail;
                row.reason = "the run did not finish in time".into();
            } else if let Some((id, (s, why))) = newly.first() {
                row.verdict = Verdict::FalseFail;
                row.reason = format!("{id}: {s}: {why}");
            } else {
                row.verdict = Verdict::Clean;
                if run.applied == 0 {
                    // Clean, but say that nothing was exercised.
                    row.reason = "the alteration never matched an exchange".into();
                }
            }
        }
    }
    row
}

/// Why an alteration cannot run: a `caught_by` or `filter` prefix that names no test.
fn unrunnable(a: &Alteration, ids: &[String]) -> Option<String> {
    let none = |p: &str| !ids.iter().any(|id| id.starts_with(p));
    if let Some(c) = a.caught_by.iter().find(|c| none(&c.value)) {
        return Some(format!("no test `{}` in the pack ({})", c.value, c.pos));
    }
    a.filter
        .iter()
        .find(|f| none(f))
        .map(|f| format!("its filter `{f}` names no test of the pack ({})", a.pos))
}

impl Outcome {
    /// No run at all (nothing to compare with, nothing altered).
    fn none() -> Self {
        Outcome {
            tests: IndexMap::new(),
            result: None,
            applied: 0,
            log: Vec::new(),
            timed_out: false,
            duration: Duration::ZERO,
            error: None,
        }
    }
}

/// Why a violation was not caught, as precisely as the runs tell.
fn missed_reason(a: &Alteration, base: &Outcome, run: &Outcome, ids: &[String]) -> String {
    for p in &a.caught_by {
        if !ids.iter().any(|id| id.starts_with(p.value.as_str())) {
            return format!("no test `{}` in the pack ({})", p.value, p.pos);
        }
    }
    if run.timed_out {
        return "the run did not finish in time".into();
    }
    if run.applied == 0 {
        return "the alteration never matched an exchange".into();
    }
    let under: Vec<(&String, &(Status, String))> = run
        .tests
        .iter()
        .filter(|(id, _)| a.caught_by.iter().any(|p| id.starts_with(p.value.as_str())))
        .collect();
    if under.is_empty() {
        return "the run had none of the `caught_by` tests (check `filter`)".into();
    }
    let already: Vec<&String> = under
        .iter()
        .filter(|(id, _)| base.tests.get(*id).is_some_and(|(s, _)| *s == Status::Fail))
        .map(|(id, _)| *id)
        .collect();
    if already.len() == under.len() {
        return format!("the baseline already FAILs {}", already[0]);
    }
    if let (Some(because), Some((id, (_, why)))) = (
        &a.because,
        under.iter().find(|(id, (s, _))| {
            *s == Status::Fail && base.tests.get(*id).is_none_or(|(b, _)| *b != Status::Fail)
        }),
    ) {
        return format!("{id} FAILed, but its reason lacks `{because}`: {why}");
    }
    let statuses: Vec<String> = under
        .iter()
        .take(3)
        .map(|(id, (s, _))| format!("{id}: {s}"))
        .collect();
    format!(
        "no named test FAILed ({}{})",
        statuses.join(", "),
        if under.len() > 3 { ", …" } else { "" }
    )
}

/// The console table.
pub fn table(report: &Report, color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let w = report
        .rows
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(10)
        .max(10);
    let mut out = format!(
        "{:<w$}  {:<9}  {:<14}  {:<10}  TEST / REASON\n",
        "ALTERATION", "KIND", "REQUIREMENT", "VERDICT"
    );
    for r in &report.rows {
        let verdict = format!("{:<10}", r.verdict.as_str());
        let verdict = match r.verdict {
            Verdict::Caught | Verdict::Clean => paint("32", &verdict),
            Verdict::Missed | Verdict::FalseFail => paint("31;1", &verdict),
        };
        let mut why = r.reason.clone();
        if r.verdict == Verdict::FalseFail && r.failed.len() > 1 {
            why.push_str(&format!(" (+{} more)", r.failed.len() - 1));
        }
        if r.rerun {
            why.push_str(" [run again alone]");
        }
        out.push_str(&format!(
            "{:<w$}  {:<9}  {:<14}  {verdict}  {}\n",
            r.id,
            r.kind.as_str(),
            r.req.join(","),
            first_line(&brief(&why), 160),
        ));
    }
    if !report.baseline.is_empty() {
        out.push_str(&format!(
            "\nBaseline FAILs and Errors ({}; the registry's own, no alteration can be caught there):\n",
            report.baseline.len()
        ));
        for (id, s, why) in &report.baseline {
            out.push_str(&format!(
                "  {s:<5} {id}: {}\n",
                first_line(&brief(why), 140)
            ));
        }
    }
    let violations = report
        .rows
        .iter()
        .filter(|r| r.kind == Kind::Violation)
        .count();
    let variants = report.rows.len() - violations;
    out.push_str(&format!(
        "\n{} violations: {} caught, {} missed · {} variants: {} clean, {} false-fail{} · baseline {} tests in {:.1} s · {:.1} s in all\n",
        violations,
        report.count(Verdict::Caught),
        report.count(Verdict::Missed),
        variants,
        report.count(Verdict::Clean),
        report.count(Verdict::FalseFail),
        if report.not_applicable.is_empty() {
            String::new()
        } else {
            format!(" · {} not for this target/version", report.not_applicable.len())
        },
        report.baseline_tests,
        report.baseline_duration.as_secs_f64(),
        report.duration.as_secs_f64(),
    ));
    let alone = report
        .rows
        .iter()
        .filter(|r| r.rerun && r.verdict.holds())
        .count();
    if alone >= 2 {
        out.push_str(&format!(
            "note: {alone} rows held only when run alone: runs at the same time disturbed each other \
             (a registry that stores a blob once for every repository deletes it from all); \
             --runs 1 spares the second runs\n"
        ));
    }
    let verdict = if report.holds() {
        paint("32;1", "every row holds")
    } else {
        paint("31;1", "some rows do not hold")
    };
    out.push_str(&format!(
        "{verdict}; reports of the baseline and of rows that do not hold: {}\n",
        crate::diag::display_path(&report.dir)
    ));
    out
}

/// A reason with URL queries cut (`?…`), so the table shows what was wrong.
fn brief(s: &str) -> String {
    static QUERY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\?[^\s?]*?(:\s|\s|$)").expect("static regex")
    });
    QUERY.replace_all(s, "?…$1").into_owned()
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

/// `selftest.yaml`: the rows under `alterations:`, the baseline's own failures, counts.
pub fn yaml(report: &Report, pack: &Pack, config: &Config, opts: &Options) -> String {
    let rows: Vec<J> = report
        .rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "kind": r.kind.as_str(),
                "req": r.req,
                "verdict": r.verdict.as_str(),
                "failed": r.failed,
                "reason": r.reason,
                "applied": r.applied,
                "durationSeconds": (r.duration.as_secs_f64() * 1000.0).round() / 1000.0,
                "rerun": r.rerun,
            })
        })
        .collect();
    let mut counts: IndexMap<&str, usize> = IndexMap::new();
    for v in [
        Verdict::Caught,
        Verdict::Missed,
        Verdict::Clean,
        Verdict::FalseFail,
    ] {
        counts.insert(v.as_str(), report.count(v));
    }
    let doc = json!({
        "status": if report.holds() { "ok" } else { "failed" },
        "target": opts.target,
        "registry": config.base_url(),
        "specVersion": pack.spec_version,
        "seed": report.seed,
        "counts": counts,
        "notApplicable": report.not_applicable,
        "durationSeconds": (report.duration.as_secs_f64() * 10.0).round() / 10.0,
        "baseline": {
            "tests": report.baseline_tests,
            "durationSeconds": (report.baseline_duration.as_secs_f64() * 10.0).round() / 10.0,
            "failures": report.baseline.iter().map(|(id, s, why)| json!({"id": id, "status": s.as_str(), "reason": why})).collect::<Vec<_>>(),
        },
        "alterations": rows,
    });
    let mut out =
        String::from("# oci-conform selftest: one row per alteration (see docs/maintainers.md)\n");
    out.push_str(&serde_saphyr::to_string(&doc).unwrap_or_default());
    out
}

/// `selftest --list`: every alteration with its scope; then, over the requirement catalogue,
/// the observable registry MUST / MUST NOT of the pack's version without a violation that
/// breaks them (and the notes saying why none can be provoked), or — without a catalogue —
/// the requirement ids the cases cite that no violation breaks.
pub fn list(
    all: &[Alteration],
    notes: &[Unprovoked],
    pack: &Pack,
    config: &Config,
    target: &str,
) -> Result<String, Diagnostic> {
    let mut out = String::new();
    let w = all.iter().map(|a| a.id.len()).max().unwrap_or(10).max(10);
    for a in all {
        let here = a.applies(target, &pack.names());
        out.push_str(&format!(
            "{}{:<w$}  {:<9}  {:<14}  {}\n",
            if here { "  " } else { "- " },
            a.id,
            a.kind.as_str(),
            a.req.join(","),
            match a.kind {
                Kind::Violation => format!(
                    "caught by {}{}",
                    a.caught_by
                        .iter()
                        .map(|c| c.value.as_str())
                        .collect::<Vec<_>>()
                        .join(" | "),
                    if a.targets.is_empty() && a.versions.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", scope_text(a))
                    }
                ),
                Kind::Variant => a.summary.clone(),
            }
        ));
    }
    let violations = all.iter().filter(|a| a.kind == Kind::Violation).count();
    out.push_str(&format!(
        "{} alterations: {violations} violations, {} variants ('-': not for target `{target}`, spec {})\n",
        all.len(),
        all.len() - violations,
        pack.spec_version,
    ));
    let plan = plan::build(pack, config, &[], 1)?;
    let mut cited: IndexMap<String, Vec<String>> = IndexMap::new();
    plan.root.walk(&mut |n, _| {
        if let plan::PlanKind::Case(_) = n.kind {
            for r in &n.req {
                let tests = cited.entry(r.clone()).or_default();
                if tests.len() < 2 && !tests.contains(&n.id) {
                    tests.push(n.id.clone());
                }
            }
        }
    });
    if let Some(e) = &pack.every_response {
        for r in e
            .headers
            .iter()
            .flat_map(|(_, m)| m.req.iter())
            .chain(e.assert.iter().flat_map(|a| a.req.iter()))
        {
            cited
                .entry(r.clone())
                .or_insert_with(|| vec!["(every response)".into()]);
        }
    }
    let names = pack.names();
    let breaking = |id: &str| -> Vec<&str> {
        all.iter()
            .filter(|a| a.kind == Kind::Violation && a.for_version(&names))
            .filter(|a| {
                a.req.iter().any(|r| {
                    r == id
                        || pack.catalogue.as_ref().is_some_and(|c| {
                            c.resolve(r, &pack.spec_version).iter().any(|e| e.id == id)
                        })
                })
            })
            .map(|a| a.id.as_str())
            .collect()
    };
    let Some(catalogue) = &pack.catalogue else {
        let mut missing: Vec<(&String, &Vec<String>)> = cited
            .iter()
            .filter(|(r, _)| breaking(r).is_empty())
            .collect();
        missing.sort_by_key(|(r, _)| crate::results::req_order(r));
        out.push_str(&format!(
            "\nRequirement ids the cases cite without a violation that breaks them ({} of {}; no requirement catalogue next to the pack):\n",
            missing.len(),
            cited.len()
        ));
        for (r, tests) in missing {
            out.push_str(&format!("  {r:<6} cited by {}\n", tests.join(", ")));
        }
        return Ok(out);
    };
    let duties: Vec<_> = catalogue
        .of_version(&pack.spec_version)
        .filter(|r| r.is_checkable_duty())
        .collect();
    let mut with = 0;
    let mut noted = Vec::new();
    let mut without = Vec::new();
    for r in &duties {
        if !breaking(&r.id).is_empty() {
            with += 1;
        } else if let Some(n) = notes.iter().find(|n| n.req.contains(&r.id)) {
            noted.push((*r, n));
        } else {
            without.push(*r);
        }
    }
    out.push_str(&format!(
        "\nObservable registry MUST / MUST NOT of spec {} in the catalogue: {}; {with} broken by a violation, {} noted as not provokable, {} without either\n",
        pack.spec_version,
        duties.len(),
        noted.len(),
        without.len()
    ));
    let line = |r: &crate::requirements::Requirement| {
        format!(
            "  {:<6} {:<8} {:<7} {}",
            r.id,
            r.level.as_str(),
            r.observable.as_str(),
            first_line(&r.statement, 90)
        )
    };
    for (r, n) in &noted {
        out.push_str(&format!(
            "{}\n         not provokable ({}): {}\n",
            line(r),
            n.pos,
            first_line(&n.why, 140)
        ));
    }
    for r in &without {
        out.push_str(&format!(
            "{}\n         no violation{}\n",
            line(r),
            match cited.get(&r.id) {
                Some(t) => format!("; cited by {}", t.join(", ")),
                None => "; no case cites it".to_string(),
            }
        ));
    }
    Ok(out)
}

/// The specs folder alterations are read from for a pack (its parent folder).
pub fn specs_of(pack_dir: &Path) -> PathBuf {
    pack_dir.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(tests: &[(&str, Status, &str)]) -> Outcome {
        Outcome {
            tests: tests
                .iter()
                .map(|(id, s, r)| (id.to_string(), (*s, r.to_string())))
                .collect(),
            result: None,
            applied: 3,
            log: Vec::new(),
            timed_out: false,
            duration: Duration::ZERO,
            error: None,
        }
    }

    fn alteration(kind: Kind, caught_by: &[&str], because: Option<&str>) -> Alteration {
        Alteration {
            id: "x".into(),
            kind,
            summary: String::new(),
            req: vec!["R1".into()],
            spec: Vec::new(),
            note: None,
            targets: Vec::new(),
            versions: Vec::new(),
            rules: Vec::new(),
            caught_by: caught_by
                .iter()
                .map(|c| crate::de::Located::synthetic(c.to_string()))
                .collect(),
            because: because.map(String::from),
            filter: Vec::new(),
            pos: Pos::default(),
        }
    }

    #[test]
    fn a_violation_is_caught_only_by_a_new_fail_with_the_reason() {
        let ids = vec!["a/one".to_string(), "a/two".to_string(), "b".to_string()];
        let base = outcome(&[
            ("a/one", Status::Fail, "old"),
            ("a/two", Status::Pass, ""),
            ("b", Status::Pass, ""),
        ]);
        let v = alteration(Kind::Violation, &["a/"], Some("got 200"));
        let run = outcome(&[
            ("a/one", Status::Fail, "got 200"),
            ("a/two", Status::Pass, ""),
            ("b", Status::Pass, ""),
        ]);
        let row = verdict(&v, &base, &run, &ids, false);
        assert_eq!(
            row.verdict,
            Verdict::Missed,
            "a/one failed in the baseline already"
        );
        let run = outcome(&[
            ("a/one", Status::Fail, ""),
            ("a/two", Status::Fail, "expected 201, got 200"),
            ("b", Status::Pass, ""),
        ]);
        let row = verdict(&v, &base, &run, &ids, false);
        assert_eq!(
            (row.verdict, row.failed.clone()),
            (Verdict::Caught, vec!["a/two".to_string()])
        );
        let run = outcome(&[("a/two", Status::Fail, "something else")]);
        let row = verdict(&v, &base, &run, &ids, false);
        assert_eq!(row.verdict, Verdict::Missed);
        assert!(row.reason.contains("lacks `got 200`"), "{}", row.reason);
        let gone = alteration(Kind::Violation, &["c/"], None);
        let row = verdict(&gone, &base, &run, &ids, false);
        assert!(row.reason.contains("no test `c/`"), "{}", row.reason);
    }

    #[test]
    fn a_variant_is_clean_without_new_fails_or_errors() {
        let ids = vec!["a".to_string(), "b".to_string()];
        let base = outcome(&[("a", Status::Fail, "old"), ("b", Status::Pass, "")]);
        let v = alteration(Kind::Variant, &[], None);
        let row = verdict(
            &v,
            &base,
            &outcome(&[("a", Status::Fail, "x"), ("b", Status::Skip, "")]),
            &ids,
            false,
        );
        assert_eq!(row.verdict, Verdict::Clean);
        let row = verdict(
            &v,
            &base,
            &outcome(&[("a", Status::Pass, ""), ("b", Status::Error, "boom")]),
            &ids,
            false,
        );
        assert_eq!(row.verdict, Verdict::FalseFail);
        assert_eq!(row.failed, vec!["b".to_string()]);
    }

    #[test]
    fn each_run_has_its_own_repositories() {
        assert_eq!(
            repo_for("conformance/repo1", "put-200"),
            "conformance/put-200/repo1"
        );
        assert_eq!(repo_for("repo", "b"), "b/repo");
    }
}
