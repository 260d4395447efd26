//! The runner: walks the plan, sends each step's request, checks the answer, records results.
//!
//! Per case the outcome is decided as follows: a scenario problem at run time (a template
//! that cannot be evaluated) is **Error**; a failed MUST-level check is **FAIL**; an answer
//! listed under `unsupported` is **Skip** with its reason (the operation is still completed
//! through the `then` steps, whose failures are FAILs); otherwise **Pass**. SHOULD/MAY-level
//! failures become warnings on the case. Transport problems (timeouts, resets, garbage) are
//! FAILs of the case with the reason; the run always goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use minijinja::value::Value;

use crate::content::Store;
use crate::diag::{Diagnostic, Pos};
use crate::expect::{self, CheckEnv, Schemas};
use crate::http::{Client, Exchange, Recv, ReqBody, Request, Response};
use crate::plan::{Plan, PlanKind, PlanNode, Step};
use crate::results::{CaseResult, Finding, GroupResult, ResultNode, Status};
use crate::scenario::{BodySpec, CaseSpec, Level, RequestSpec, StepSpec};
use crate::schedule::Schedule;
use crate::template::{append_query, from_json, map_value, push_query_pairs, resolve_url, Scope};

/// Receives progress while the run goes on (console, verbose traces).
pub trait Observer: Sync {
    /// A group starts.
    fn group_started(&self, _node: &PlanNode<'_>) {}
    /// A case finished.
    fn case_finished(&self, _case: &CaseResult) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Resources the run created (by URL) and whether they still exist. Each is ordered by the
/// plan position of the step that created it last, not by the clock, so that a parallel run
/// cleans up (and lists leftovers) in the order a sequential run does.
#[derive(Default)]
pub struct Resources(std::sync::Mutex<IndexMap<String, Resource>>);

/// Where a resource was created (plan position of the case, step count in it), and whether
/// it is still there.
#[derive(Clone, Copy)]
struct Resource {
    at: (usize, usize),
    alive: bool,
}

impl Resources {
    fn created(&self, url: String, at: (usize, usize)) {
        if let Ok(mut m) = self.0.lock() {
            let entry = m.entry(url).or_insert(Resource { at, alive: true });
            entry.at = entry.at.max(at);
            entry.alive = true;
        }
    }

    fn deleted(&self, url: &str) {
        if let Ok(mut m) = self.0.lock() {
            if let Some(r) = m.get_mut(url) {
                r.alive = false;
            }
        }
    }

    /// Resources still there, newest first (so manifests go before the blobs they reference).
    pub fn alive(&self) -> Vec<String> {
        let Ok(m) = self.0.lock() else {
            return Vec::new();
        };
        let mut alive: Vec<(&String, &Resource)> = m.iter().filter(|(_, r)| r.alive).collect();
        alive.sort_by_key(|r| std::cmp::Reverse(r.1.at));
        alive.into_iter().map(|(u, _)| u.clone()).collect()
    }
}

/// What the runner needs.
pub struct Runner<'a> {
    /// The HTTP client.
    pub client: &'a Client,
    /// Item bytes.
    pub store: &'a Store,
    /// JSON Schemas for body checks.
    pub schemas: &'a Schemas,
    /// Registry base URL for relative request URLs.
    pub base: String,
    /// Progress receiver.
    pub observer: &'a dyn Observer,
    /// What the run created, for the final cleanup.
    pub resources: &'a Resources,
    /// Checks every answer must pass, whatever the step (the pack's `everyResponse`).
    pub every_response: Option<&'a crate::scenario::ExpectSpec>,
    /// Cases that may run at once (1: strictly one after the other, in plan order).
    pub parallel: usize,
}

/// How the checks of one expectation are recorded.
struct Checked<'a> {
    /// Level of checks that name none.
    level: Level,
    /// Requirement ids of the step.
    req: &'a [String],
    /// What the answer was to (`PUT /v2/…`), put before each message.
    prefix: Option<&'a str>,
}

/// Whether a step sequence goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// What a case accumulates while it runs.
struct CaseState {
    frame: Arc<Scope>,
    failures: Vec<Finding>,
    warnings: Vec<Finding>,
    skip: Option<String>,
    error: Option<String>,
    exchanges: Vec<Exchange>,
    level: Level,
    cleanup: bool,
    /// Plan position of the case, and how many resources it created so far.
    created: (usize, usize),
    /// Steps whose answer matched `unsupported` (they did not do what they declare).
    declined: usize,
    /// MUST-level problems met while cleaning up (recorded as warnings, yet the step failed).
    cleanup_failures: usize,
    /// The `name:` of the innermost named step running, which leads its findings.
    step: Option<String>,
}

impl CaseState {
    fn finding(&mut self, level: Level, message: String, pos: &Pos, req: Vec<String>) {
        let message = match &self.step {
            Some(name) => format!("{name}: {message}"),
            None => message,
        };
        let f = Finding {
            message,
            source: pos.to_string(),
            level,
            req,
            exchange: self.exchanges.len().checked_sub(1),
        };
        if self.cleanup {
            // Cleanup problems are reported, never verdicts.
            if level == Level::Must {
                self.cleanup_failures += 1;
            }
            self.warnings.push(Finding {
                message: format!("cleanup: {}", f.message),
                ..f
            });
        } else if level == Level::Must {
            self.failures.push(f);
        } else {
            self.warnings.push(f);
        }
    }

    fn scenario_error(&mut self, d: &Diagnostic) {
        if self.error.is_none() {
            self.error = Some(scenario_error_text(d));
        }
    }
}

impl Runner<'_> {
    /// Runs the whole plan; the results are in plan order whatever ran at the same time.
    pub fn run(&self, plan: &Plan<'_>) -> GroupResult {
        let start = Instant::now();
        let walk = Walk {
            runner: self,
            schedule: Schedule::new(&plan.root, self.parallel),
        };
        let frame = Scope::child(&plan.scope, plan.root.vars.clone());
        let children = match &plan.root.kind {
            PlanKind::Group { children, .. } => walk.sequence(children, 0, &frame, None),
            PlanKind::Case(_) => Vec::new(),
        };
        let mut root = GroupResult {
            id: plan.root.id.clone(),
            name: plan.root.name.clone(),
            path: plan.root.path.clone(),
            children,
            duration: start.elapsed(),
        };
        crate::audit::apply(plan, &mut root);
        root
    }
}

/// One walk of the plan: runs nodes in sequence, and the lanes of a batch at the same time.
struct Walk<'r, 'a> {
    runner: &'r Runner<'a>,
    schedule: Schedule,
}

impl Walk<'_, '_> {
    /// Runs siblings in order, a concurrent batch (`lanes[level]`) as one step of the sequence.
    fn sequence(
        &self,
        nodes: &[PlanNode<'_>],
        level: usize,
        frame: &Arc<Scope>,
        forced: Option<(Status, String)>,
    ) -> Vec<ResultNode> {
        let mut out = Vec::new();
        for step in crate::plan::steps(nodes, level) {
            match step {
                Step::One(node) => out.extend(self.node(node, frame, forced.clone())),
                Step::Batch(lanes) => out.extend(self.batch(lanes, level, frame, &forced)),
            }
        }
        out
    }

    /// Runs the lanes of one batch, each in its own frame (so what its cases export without a
    /// declaration above stays in the lane), at the same time when the run is parallel.
    fn batch(
        &self,
        lanes: Vec<&[PlanNode<'_>]>,
        level: usize,
        frame: &Arc<Scope>,
        forced: &Option<(Status, String)>,
    ) -> Vec<ResultNode> {
        let run_lane = |lane: &[PlanNode<'_>]| {
            let lane_frame = Scope::child(frame, IndexMap::new());
            self.sequence(lane, level + 1, &lane_frame, forced.clone())
        };
        if self.runner.parallel <= 1 || lanes.len() < 2 {
            return lanes.into_iter().flat_map(run_lane).collect();
        }
        std::thread::scope(|s| {
            let run_lane = &run_lane;
            let handles: Vec<_> = lanes[1..]
                .iter()
                .map(|lane| s.spawn(move || run_lane(lane)))
                .collect();
            // The first lane runs on this thread, which would otherwise only wait.
            let mut out = run_lane(lanes[0]);
            for h in handles {
                match h.join() {
                    Ok(r) => out.extend(r),
                    Err(p) => std::panic::resume_unwind(p),
                }
            }
            out
        })
    }

    /// Runs one node once what it waits for has finished; None when `when` omits it.
    fn node(
        &self,
        node: &PlanNode<'_>,
        parent: &Arc<Scope>,
        forced: Option<(Status, String)>,
    ) -> Option<ResultNode> {
        self.schedule.wait(node);
        // Finished even if it panics, so that nodes waiting for it on other threads go on
        // and the panic reaches the caller instead of leaving them blocked.
        let _finished = self.schedule.finishing(node);
        self.node_inner(node, parent, forced)
    }

    fn node_inner(
        &self,
        node: &PlanNode<'_>,
        parent: &Arc<Scope>,
        forced: Option<(Status, String)>,
    ) -> Option<ResultNode> {
        let runner = self.runner;
        let frame = Scope::child(parent, node.vars.clone());
        let ctx = frame.context();
        let mut forced = forced;
        if forced.is_none() {
            if let Some(reason) = &node.disabled {
                forced = Some((Status::Disabled, reason.clone()));
            }
        }
        if forced.is_none() {
            for w in &node.when {
                match w.truthy(&ctx) {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(d) => {
                        forced = Some((Status::Error, scenario_error_text(&d)));
                    }
                }
            }
        }
        if forced.is_none() {
            for (cond, reason) in &node.skip_unless {
                match cond.truthy(&ctx) {
                    Ok(true) => {}
                    Ok(false) => {
                        let why = reason.map_or_else(
                            || Ok(format!("skipped: `{}` is false", cond.src)),
                            |r| r.render(&ctx),
                        );
                        forced = Some(match why {
                            Ok(w) => (Status::Skip, w),
                            Err(d) => (Status::Error, scenario_error_text(&d)),
                        });
                        break;
                    }
                    Err(d) => {
                        forced = Some((Status::Error, scenario_error_text(&d)));
                        break;
                    }
                }
            }
        }
        match &node.kind {
            PlanKind::Group { children, .. } => {
                let start = Instant::now();
                runner.observer.group_started(node);
                let results = self.sequence(children, 0, &frame, forced);
                Some(ResultNode::Group(GroupResult {
                    id: node.id.clone(),
                    name: node.name.clone(),
                    path: node.path.clone(),
                    children: results,
                    duration: start.elapsed(),
                }))
            }
            PlanKind::Case(case) => {
                let result = match forced {
                    Some((status, reason)) => runner.record(
                        node,
                        status,
                        Some(reason),
                        CaseState::empty(&frame, node.level),
                        Duration::ZERO,
                    ),
                    None => {
                        let _slot = self.schedule.slot(node);
                        let _apart = self.schedule.apart(node);
                        runner.case(node, case, &frame)
                    }
                };
                runner.observer.case_finished(&result);
                Some(ResultNode::Case(Box::new(result)))
            }
        }
    }
}

impl Runner<'_> {
    fn record(
        &self,
        node: &PlanNode<'_>,
        status: Status,
        reason: Option<String>,
        st: CaseState,
        duration: Duration,
    ) -> CaseResult {
        let redactor = self.client.redactor();
        let scrub = |f: Finding| Finding {
            message: redactor.scrub(&f.message),
            ..f
        };
        CaseResult {
            id: node.id.clone(),
            name: node.name.clone(),
            path: node.path.clone(),
            status,
            reason: reason.map(|r| redactor.scrub(&r)),
            failures: st.failures.into_iter().map(scrub).collect(),
            warnings: st.warnings.into_iter().map(scrub).collect(),
            apis: node.apis.clone(),
            data: node.data.clone(),
            spec: node.spec.clone(),
            req: node.req.clone(),
            level: node.level,
            source: node.source.to_string(),
            note: node.note.clone(),
            duration,
            exchanges: st.exchanges,
        }
    }

    fn case(&self, node: &PlanNode<'_>, case: &CaseSpec, node_frame: &Arc<Scope>) -> CaseResult {
        let start = Instant::now();
        let mut st = CaseState::empty(&Scope::child(node_frame, IndexMap::new()), node.level);
        st.created = (node.order, 0);
        let frame = st.frame.clone();
        for step in &case.steps {
            if self.step(step, &frame, &mut st) == Flow::Stop || st.error.is_some() {
                break;
            }
        }
        st.cleanup = true;
        for step in &case.cleanup {
            let _ = self.step(step, &frame, &mut st);
        }
        st.cleanup = false;
        let (status, reason) = if let Some(e) = &st.error {
            (Status::Error, Some(e.clone()))
        } else if !st.failures.is_empty() {
            (
                Status::Fail,
                Some(
                    st.failures
                        .iter()
                        .map(|f| f.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            )
        } else if let Some(s) = &st.skip {
            (Status::Skip, Some(s.clone()))
        } else {
            (Status::Pass, None)
        };
        if !case.export.is_empty() {
            frame.set("status", Value::from(status.as_str()));
            let ctx = frame.context();
            for (k, v) in &case.export {
                match v.eval(&ctx) {
                    Ok(val) => {
                        if !node_frame.assign(k, val.clone()) {
                            node_frame.parent.as_ref().unwrap_or(node_frame).set(k, val);
                        }
                    }
                    Err(d) => st.scenario_error(&d),
                }
            }
            if let (Some(e), Status::Pass | Status::Skip | Status::Fail) = (&st.error, status) {
                let e = e.clone();
                return self.record(node, Status::Error, Some(e), st, start.elapsed());
            }
        }
        self.record(node, status, reason, st, start.elapsed())
    }

    fn step(&self, step: &StepSpec, frame: &Arc<Scope>, st: &mut CaseState) -> Flow {
        let Some((var, list)) = &step.for_each else {
            return match self.holds(step, frame, st) {
                Some(true) => self.step_body(step, frame, st),
                Some(false) => Flow::Continue,
                None => Flow::Stop,
            };
        };
        let items = match list.eval(&frame.context()) {
            Ok(v) => v,
            Err(d) => {
                st.scenario_error(&d);
                return Flow::Stop;
            }
        };
        let iter = match crate::scenario::list_items(list, &items) {
            Ok(items) => items,
            Err(d) => {
                st.scenario_error(&d);
                return Flow::Stop;
            }
        };
        // With a loop, `when` is checked for each item, after earlier items ran.
        for item in iter {
            let f = Scope::child(frame, [(var.clone(), item)].into_iter().collect());
            match self.holds(step, &f, st) {
                Some(true) => {
                    if self.step_body(step, &f, st) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                Some(false) => {}
                None => return Flow::Stop,
            }
        }
        Flow::Continue
    }

    /// Evaluates a step's `when` (None: the condition itself failed, which stops the case).
    fn holds(&self, step: &StepSpec, frame: &Arc<Scope>, st: &mut CaseState) -> Option<bool> {
        let Some(w) = &step.when else {
            return Some(true);
        };
        match w.truthy(&frame.context()) {
            Ok(b) => Some(b),
            Err(d) => {
                st.scenario_error(&d);
                None
            }
        }
    }

    /// Runs a step whose `when` holds, its `name:` (rendered for this item) leading the
    /// findings it makes.
    fn step_body(&self, step: &StepSpec, frame: &Arc<Scope>, st: &mut CaseState) -> Flow {
        let outer = st.step.clone();
        if let Some(n) = &step.name {
            match n.render(&frame.context()) {
                Ok(name) => st.step = Some(name),
                Err(d) => {
                    st.scenario_error(&d);
                    return Flow::Stop;
                }
            }
        }
        let flow = self.step_inner(step, frame, st);
        st.step = outer;
        flow
    }

    fn step_inner(&self, step: &StepSpec, frame: &Arc<Scope>, st: &mut CaseState) -> Flow {
        for (k, v) in &step.set {
            match v.eval(&frame.context()) {
                Ok(val) => st.set(frame, k, val),
                Err(d) => {
                    st.scenario_error(&d);
                    return Flow::Stop;
                }
            }
        }
        if let Some(req) = &step.request {
            return self.request_step(step, req, frame, st);
        }
        for s in &step.steps {
            if self.step(s, frame, st) == Flow::Stop {
                return Flow::Stop;
            }
        }
        if !step.expect.assert.is_empty() {
            let level = step.level.unwrap_or(st.level);
            let before = st.failures.len();
            let checked = Checked {
                level,
                req: &step.req,
                prefix: None,
            };
            if !self.record_checks(&step.expect, None, &frame.context(), &checked, st) {
                return Flow::Stop;
            }
            if st.failures.len() > before && step.stop_on_failure {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Renders the request of a step.
    fn build(&self, req: &RequestSpec, ctx: &Value) -> Result<Request, Diagnostic> {
        let mut url = req.url.render(ctx)?;
        if url.starts_with('/') {
            url = format!("{}{url}", self.base);
        }
        let mut pairs = Vec::new();
        for (k, v) in &req.query {
            push_query_pairs(&mut pairs, k, &v.eval(ctx)?);
        }
        let url = append_query(&url, &pairs);
        let mut headers = Vec::new();
        for (k, v) in &req.headers {
            headers.push((k.clone(), v.render(ctx)?));
        }
        let body = match &req.body {
            None => ReqBody::None,
            Some(BodySpec::Text(t)) => ReqBody::Bytes(Arc::new(t.render(ctx)?.into_bytes())),
            Some(BodySpec::Json(v)) => ReqBody::Bytes(Arc::new(v.eval_json_bytes(ctx)?)),
            Some(BodySpec::Content { id, range }) => {
                let key = id.render(ctx)?;
                let content = self.store.get(&key).ok_or_else(|| {
                    Diagnostic::new(id.pos.clone(), format!("no dataset item `{key}`"))
                })?;
                let range = match range {
                    Some(r) => Some(expect::parse_range(&r.render(ctx)?, &r.pos)?),
                    None => None,
                };
                // Known for whole items (computed when generated), once per part of a small
                // one; a part of a streamed item is not hashed just for the record.
                let digest = match &content {
                    crate::content::Content::Generated { .. } => {
                        content.known_digest("sha256", range)
                    }
                    crate::content::Content::Bytes(_) => self.store.digest(&key, "sha256", range),
                };
                ReqBody::Content(content, range, digest)
            }
        };
        Ok(Request {
            method: req.method.clone(),
            url,
            headers,
            body,
            chunked: req.chunked,
            follow_redirects: req.follow_redirects,
            auth: req.auth,
        })
    }

    fn request_step(
        &self,
        step: &StepSpec,
        req: &RequestSpec,
        frame: &Arc<Scope>,
        st: &mut CaseState,
    ) -> Flow {
        let ctx = frame.context();
        let request = match self.build(req, &ctx) {
            Ok(r) => r,
            Err(d) => {
                st.scenario_error(&d);
                return Flow::Stop;
            }
        };
        let level = step.level.unwrap_or(st.level);
        let keep_small = step.expect.body.as_ref().is_some_and(|b| {
            b.content.is_some() && b.json.is_none() && b.text.is_none() && b.schema.is_none()
        });
        let recv = Recv {
            digests: vec!["sha256".into()],
            keep: if keep_small {
                64 * 1024
            } else {
                crate::http::DEFAULT_KEEP
            },
        };
        let (attempts, delay) = step.retry.unwrap_or((1, 0));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.client.send(&request, &recv);
            st.exchanges.extend(outcome.exchanges);
            let resp = match outcome.result {
                Ok(r) => r,
                Err(e) => {
                    if attempt < attempts {
                        std::thread::sleep(Duration::from_millis(delay));
                        continue;
                    }
                    let msg = format!("{} {}: {e}", request.method, short_url(&request.url));
                    st.finding(Level::Must, msg, &step.pos, step.req.clone());
                    return Flow::Stop;
                }
            };
            st.created.1 += 1;
            self.track_answer(&resp, st.created);
            // Eventually consistent registries: retry until the expectation holds.
            if attempt < attempts && !self.would_pass(step, &resp, frame, level) {
                std::thread::sleep(Duration::from_millis(delay));
                continue;
            }
            let state = |st: &CaseState| {
                (
                    st.failures.len(),
                    st.error.is_some(),
                    st.declined,
                    st.cleanup_failures,
                )
            };
            let before = state(st);
            let flow = self.evaluate(step, &request, &resp, frame, st, level);
            if state(st) == before {
                st.created.1 += 1;
                let at = st.created;
                self.track(step, frame, &resp, at, st);
            }
            return flow;
        }
    }

    /// Records what the registry says it created: the `Location` of a `201 Created` on the
    /// registry, whatever the step's verdict and whether or not a `creates:` names it (a
    /// registry may also name content differently, e.g. store a sha512 upload under its sha256
    /// digest), so the final cleanup deletes it.
    fn track_answer(&self, resp: &Response, at: (usize, usize)) {
        if resp.status != 201 {
            return;
        }
        if let Some(l) = resp.header("location") {
            let url = resolve_url(&resp.url, l);
            let url = url.split('?').next().unwrap_or_default();
            if url.starts_with(&format!("{}/", self.base)) {
                self.resources.created(url.to_string(), at);
            }
        }
    }

    /// Records what a successful step declares it created (`creates:`) or deleted (`deletes:`).
    ///
    /// Whatever statuses a step accepts, only a 2xx creates and only a 2xx or 404 deletes: a
    /// step may accept `405` as "deletion disabled", but then the content is still there.
    ///
    /// Both are rendered with the answer in scope (`response.digest`); one that cannot be
    /// rendered is a scenario error, not a resource quietly left out of the cleanup.
    fn track(
        &self,
        step: &StepSpec,
        frame: &Arc<Scope>,
        resp: &Response,
        at: (usize, usize),
        st: &mut CaseState,
    ) {
        if step.creates.is_none() && step.deletes.is_none() {
            return;
        }
        let status = resp.status;
        let (rframe, _) = response_frame(frame, resp);
        let ctx = rframe.context();
        let absolute = |u: String| {
            let u = if u.starts_with('/') {
                format!("{}{u}", self.base)
            } else {
                u
            };
            u.split('?').next().unwrap_or_default().to_string()
        };
        let success = (200..300).contains(&status);
        match step.creates.as_ref().map(|t| t.render(&ctx)) {
            Some(Ok(u)) if success => self.resources.created(absolute(u), at),
            Some(Err(d)) => st.scenario_error(&d),
            _ => {}
        }
        match step.deletes.as_ref().map(|t| t.render(&ctx)) {
            Some(Ok(u)) if success || matches!(status, 404 | 410) => {
                self.resources.deleted(&absolute(u));
            }
            Some(Err(d)) => st.scenario_error(&d),
            _ => {}
        }
    }

    /// Deletes what the run created and did not delete; returns what is still there.
    pub fn clean_up(&self) -> Vec<String> {
        let mut left = Vec::new();
        for url in self.resources.alive() {
            let req = Request {
                method: "DELETE".into(),
                url: url.clone(),
                auth: true,
                ..Request::default()
            };
            let outcome = self.client.send(&req, &Recv::default());
            match outcome.result {
                Ok(r) if matches!(r.status, 200 | 202 | 204 | 404) => self.resources.deleted(&url),
                Ok(r) => left.push(format!("{url} (DELETE answered {})", r.status)),
                Err(e) => left.push(format!("{url} ({e})")),
            }
        }
        left
    }

    fn would_pass(
        &self,
        step: &StepSpec,
        resp: &Response,
        frame: &Arc<Scope>,
        level: Level,
    ) -> bool {
        let mut probe = CaseState::empty(&Scope::child(frame, IndexMap::new()), level);
        let (rframe, json) = response_frame(frame, resp);
        let ok_status = match &step.expect.status {
            Some(s) => expect::status_set(&s.value, &rframe.context())
                .map(|c| c.contains(&resp.status))
                .unwrap_or(false),
            None => true,
        };
        if !ok_status {
            return false;
        }
        let checked = Checked {
            level,
            req: &step.req,
            prefix: None,
        };
        self.record_checks(
            &step.expect,
            Some((resp, &json)),
            &rframe.context(),
            &checked,
            &mut probe,
        ) && probe.failures.is_empty()
            && probe.error.is_none()
    }

    fn evaluate(
        &self,
        step: &StepSpec,
        request: &Request,
        resp: &Response,
        frame: &Arc<Scope>,
        st: &mut CaseState,
        level: Level,
    ) -> Flow {
        let (rframe, json) = response_frame(frame, resp);
        let ctx = rframe.context();
        let what = format!("{} {}", request.method, short_url(&request.url));
        if let Some(e) = &resp.body_error {
            st.finding(
                Level::Must,
                format!("{what}: answered {} but {e}", resp.status),
                &step.pos,
                step.req.clone(),
            );
            return Flow::Stop;
        }

        // Answers that mean "optional feature not supported".
        for u in &step.unsupported {
            let mut matched = match &u.status {
                Some(s) => match expect::status_set(&s.value, &ctx) {
                    Ok(codes) => codes.contains(&resp.status),
                    Err(d) => {
                        st.scenario_error(&d);
                        return Flow::Stop;
                    }
                },
                None => true,
            };
            if matched && !u.headers.is_empty() {
                let env = CheckEnv {
                    ctx: &ctx,
                    store: self.store,
                    schemas: self.schemas,
                    level,
                    req: &[],
                };
                for (name, m) in &u.headers {
                    let only = crate::scenario::ExpectSpec {
                        headers: vec![(name.clone(), m.clone())],
                        ..Default::default()
                    };
                    match expect::check(&only, Some(resp), None, &env) {
                        Ok(checks) => matched &= checks.iter().all(|c| c.ok),
                        Err(d) => {
                            st.scenario_error(&d);
                            return Flow::Stop;
                        }
                    }
                }
            }
            if matched {
                if let Some(w) = &u.when {
                    match w.truthy(&ctx) {
                        Ok(b) => matched = b,
                        Err(d) => {
                            st.scenario_error(&d);
                            return Flow::Stop;
                        }
                    }
                }
            }
            if !matched {
                continue;
            }
            st.declined += 1;
            match u.reason.render(&ctx) {
                Ok(r) => {
                    if st.skip.is_none() {
                        st.skip = Some(r);
                    }
                }
                Err(d) => {
                    st.scenario_error(&d);
                    return Flow::Stop;
                }
            }
            // Only the alternative's own captures: the step's describe the expected answer.
            if self.captures(&u.capture, &ctx, frame, st).is_err() {
                return Flow::Stop;
            }
            for s in &u.then {
                if self.step(s, frame, st) == Flow::Stop {
                    return Flow::Stop;
                }
            }
            return if u.stop { Flow::Stop } else { Flow::Continue };
        }

        if let Some(s) = &step.expect.status {
            match expect::status_set(&s.value, &ctx) {
                Ok(codes) if !codes.contains(&resp.status) => {
                    let detail = error_detail(resp, json.as_ref().ok());
                    let want = describe_codes(&codes);
                    st.finding(
                        level,
                        format!(
                            "{what}: expected status {want}, got {}{detail}",
                            resp.status
                        ),
                        &s.pos,
                        step.req.clone(),
                    );
                    if level == Level::Must && step.stop_on_failure {
                        return Flow::Stop;
                    }
                    if level == Level::Must {
                        return Flow::Continue;
                    }
                }
                Ok(_) => {}
                Err(d) => {
                    st.scenario_error(&d);
                    return Flow::Stop;
                }
            }
        }
        let before = st.failures.len();
        let checked = Checked {
            level,
            req: &step.req,
            prefix: Some(&what),
        };
        if !self.record_checks(&step.expect, Some((resp, &json)), &ctx, &checked, st) {
            return Flow::Stop;
        }
        if let Some(every) = self.every_response {
            let checked = Checked {
                level: Level::Must,
                req: &[],
                prefix: Some(&what),
            };
            self.record_checks(every, Some((resp, &json)), &ctx, &checked, st);
        }
        if self.captures(&step.capture, &ctx, frame, st).is_err() {
            return Flow::Stop;
        }
        if st.failures.len() > before && step.stop_on_failure {
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// Runs the checks of `expect` and records the failed ones on the case; false when the
    /// scenario itself could not be evaluated (recorded as an Error).
    fn record_checks(
        &self,
        expect: &crate::scenario::ExpectSpec,
        answer: Option<(&Response, &Result<serde_json::Value, String>)>,
        ctx: &Value,
        checked: &Checked<'_>,
        st: &mut CaseState,
    ) -> bool {
        let env = CheckEnv {
            ctx,
            store: self.store,
            schemas: self.schemas,
            level: checked.level,
            req: checked.req,
        };
        match expect::check(expect, answer.map(|a| a.0), answer.map(|a| a.1), &env) {
            Ok(checks) => {
                for c in checks.into_iter().filter(|c| !c.ok) {
                    let message = match checked.prefix {
                        Some(p) => format!("{p}: {}", c.message),
                        None => c.message,
                    };
                    st.finding(c.level, message, &c.pos, c.req);
                }
                true
            }
            Err(d) => {
                st.scenario_error(&d);
                false
            }
        }
    }

    fn captures(
        &self,
        caps: &[(String, crate::template::ValueTmpl)],
        ctx: &Value,
        frame: &Arc<Scope>,
        st: &mut CaseState,
    ) -> Result<(), ()> {
        for (k, v) in caps {
            match v.eval(ctx) {
                Ok(val) => st.set(frame, k, val),
                Err(d) => {
                    st.scenario_error(&d);
                    return Err(());
                }
            }
        }
        Ok(())
    }
}

impl CaseState {
    /// Sets a variable for the rest of the case: where the case (or an enclosing loop of
    /// `frame`) already holds it, so a loop can build up a value set before it; else in
    /// `frame` and in the case's frame, so it outlives the loop.
    fn set(&self, frame: &Arc<Scope>, key: &str, value: Value) {
        if !frame.assign_within(key, value.clone(), &self.frame) {
            frame.set(key, value.clone());
            self.frame.set(key, value);
        }
    }

    fn empty(frame: &Arc<Scope>, level: Level) -> Self {
        CaseState {
            frame: frame.clone(),
            failures: Vec::new(),
            warnings: Vec::new(),
            skip: None,
            error: None,
            exchanges: Vec::new(),
            level,
            cleanup: false,
            created: (0, 0),
            declined: 0,
            cleanup_failures: 0,
            step: None,
        }
    }
}

/// A scenario problem met while running, as the reason of an Error: where it is written (every
/// template carries its file:line:col), what is wrong, and the hint.
fn scenario_error_text(d: &Diagnostic) -> String {
    if d.pos.file.is_some() || d.pos.is_known() {
        format!("scenario error at {d}")
    } else {
        format!("scenario error: {d}")
    }
}

/// Accepted codes for messages: "201", "one of [202, 404]", "4xx".
fn describe_codes(codes: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < codes.len() {
        let c = codes[i];
        if c % 100 == 0
            && codes.len() >= i + 100
            && codes[i..i + 100]
                .iter()
                .enumerate()
                .all(|(k, x)| *x == c + k as u16)
        {
            parts.push(format!("{}xx", c / 100));
            i += 100;
        } else {
            parts.push(c.to_string());
            i += 1;
        }
    }
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        format!("one of [{}]", parts.join(", "))
    }
}

/// The URL without scheme and host, shorter in messages.
fn short_url(url: &str) -> &str {
    url.split_once("://")
        .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
        .unwrap_or(url)
}

/// Why an answer has the wrong status: the registry's error codes or a body excerpt, and why
/// authentication failed when it did.
fn error_detail(resp: &Response, json: Option<&serde_json::Value>) -> String {
    let mut detail = body_detail(resp, json);
    if let Some(why) = &resp.auth_error {
        detail.push_str(&format!("; authentication failed: {why}"));
    }
    detail
}

/// The registry's error codes (when the body is an OCI error document), or a body excerpt.
fn body_detail(resp: &Response, json: Option<&serde_json::Value>) -> String {
    if let Some(errors) = json
        .and_then(|j| j.get("errors"))
        .and_then(|e| e.as_array())
    {
        let codes: Vec<String> = errors
            .iter()
            .map(|e| {
                let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("?");
                match e.get("message").and_then(|m| m.as_str()) {
                    Some(m) if !m.is_empty() => format!("{code}: {m}"),
                    _ => code.to_string(),
                }
            })
            .collect();
        if !codes.is_empty() {
            return format!(" ({})", codes.join(", "));
        }
    }
    if resp.body.is_empty() {
        String::new()
    } else {
        format!(" (body: {})", crate::expect::response_excerpt(resp))
    }
}

/// The fields of `response` in templates (the plan check gives a stand-in the same fields).
pub const RESPONSE_FIELDS: [&str; 10] = [
    "status",
    "links",
    "url",
    "headers",
    "header_values",
    "location",
    "text",
    "json",
    "size",
    "digest",
];

/// A frame holding `response` for templates, and the parsed JSON body (or why it is not JSON).
fn response_frame(
    frame: &Arc<Scope>,
    resp: &Response,
) -> (Arc<Scope>, Result<serde_json::Value, String>) {
    let json: Result<serde_json::Value, String> = if !resp.body_complete() {
        Err(format!(
            "body of {} bytes not kept in memory",
            resp.body_len
        ))
    } else if resp.body.is_empty() {
        Err("empty body".into())
    } else {
        serde_json::from_slice(&resp.body).map_err(|e| e.to_string())
    };
    let mut headers: IndexMap<String, Vec<String>> = IndexMap::new();
    for (k, v) in &resp.headers {
        headers
            .entry(k.to_ascii_lowercase())
            .or_default()
            .push(v.clone());
    }
    let location = resp.header("location").map(|l| resolve_url(&resp.url, l));
    let links = crate::http::parse_links(&resp.header_all("link"));
    let text = if resp.body_complete() {
        std::str::from_utf8(&resp.body).ok().map(String::from)
    } else {
        None
    };
    let value = map_value([
        ("status", Value::from(resp.status)),
        (
            "links",
            map_value(
                links
                    .into_iter()
                    .map(|(rel, target)| (rel, Value::from(resolve_url(&resp.url, &target)))),
            ),
        ),
        ("url", Value::from(resp.url.as_str())),
        (
            "headers",
            map_value(
                headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.join(", ")))),
            ),
        ),
        (
            "header_values",
            map_value(
                headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone()))),
            ),
        ),
        ("location", location.map_or(Value::from(()), Value::from)),
        ("text", text.map_or(Value::from(()), Value::from)),
        (
            "json",
            json.as_ref().ok().map_or(Value::from(()), from_json),
        ),
        ("size", Value::from(resp.body_len)),
        (
            "digest",
            resp.digest("sha256").map_or(Value::from(()), Value::from),
        ),
    ]);
    (
        Scope::child(
            frame,
            [("response".to_string(), value)].into_iter().collect(),
        ),
        json,
    )
}

/// Runs a planned pack against the configured registry and gathers everything the reporters
/// read: what `oci-conform run` does between planning and reporting (and `selftest`, once
/// per alteration).
pub fn execute(
    pack: &crate::pack::Pack,
    plan: &Plan<'_>,
    config: &crate::config::Config,
    seed: u64,
    observer: &dyn Observer,
    redactor: &crate::redact::Redactor,
) -> Result<crate::results::RunResult, String> {
    use crate::http::ClientConfig;
    let client = Client::new(
        ClientConfig {
            timeout: Duration::from_secs(config.request_timeout),
            tls: config.tls,
            ca_file: config.tls_ca_file.as_ref().map(std::path::PathBuf::from),
            username: config.username.clone(),
            password: crate::redact::Secret::new(config.password.clone()),
            cache_auth: config.cache_auth,
            connections: usize::try_from(config.parallel).unwrap_or(usize::MAX),
            registry: config.base_url(),
            min_rate: crate::http::MIN_RATE,
            // Answers are at most the content the run pushed (tag lists and errors are small).
            max_unannounced: plan.store.largest().saturating_mul(2).max(256 << 20),
        },
        redactor.clone(),
    )?;
    let schemas = Schemas::new(&pack.schemas_dir);
    let started = crate::results::now_rfc3339();
    let t0 = Instant::now();
    let resources = Resources::default();
    let runner = Runner {
        client: &client,
        store: &plan.store,
        schemas: &schemas,
        base: config.base_url(),
        observer,
        resources: &resources,
        every_response: pack.every_response.as_ref(),
        parallel: usize::try_from(config.parallel)
            .unwrap_or(usize::MAX)
            .max(1),
    };
    let mut root = runner.run(plan);
    let leftovers = runner.clean_up();
    let requirements = match &pack.catalogue {
        Some(c) => crate::results::resolve_citations(&mut root, c, &pack.spec_version),
        None => IndexMap::new(),
    };
    let cases = root.cases();
    Ok(crate::results::RunResult {
        apis: crate::results::roll_up_apis(&plan.apis, &cases),
        data: crate::results::roll_up_data(&plan.data, &cases),
        root: root.clone(),
        config: config.redacted(),
        seed,
        spec_version: pack.spec_version.clone(),
        pack_dir: crate::diag::display_path(&pack.dir),
        pack_source: crate::source::origin(&pack.dir).to_string(),
        pack_digest: pack.digest.clone(),
        spec_url: pack.spec_url.clone(),
        anchors: pack.anchors.clone(),
        started,
        duration: t0.elapsed(),
        registry: config.base_url(),
        leftovers,
        parallel: config.parallel,
        requirements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ClientConfig;
    use crate::schedule::tests::{pack_of, plan_of};

    /// Runs a plan with `parallel` slots (no request is sent: the cases only set and assert).
    fn statuses(plan: &Plan<'_>, parallel: usize) -> Vec<(String, Status, Option<String>)> {
        let client = Client::new(
            ClientConfig {
                timeout: Duration::from_secs(5),
                tls: crate::config::Tls::Disabled,
                connections: parallel,
                ..ClientConfig::default()
            },
            crate::redact::Redactor::default(),
        )
        .unwrap();
        let schemas = Schemas::new(std::path::Path::new("."));
        let resources = Resources::default();
        let runner = Runner {
            client: &client,
            store: &plan.store,
            schemas: &schemas,
            base: "http://127.0.0.1:9".into(),
            observer: &Silent,
            resources: &resources,
            every_response: None,
            parallel,
        };
        runner
            .run(plan)
            .cases()
            .into_iter()
            .map(|c| (c.id.clone(), c.status, c.reason.clone()))
            .collect()
    }

    #[test]
    fn the_response_of_templates_has_the_fields_the_check_knows() {
        let frame = Scope::root(IndexMap::new());
        let (f, _) = response_frame(&frame, &Response::default());
        let response = f.lookup("response").unwrap();
        let keys: Vec<String> = response
            .try_iter()
            .unwrap()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(keys, RESPONSE_FIELDS);
    }

    #[test]
    fn lanes_keep_their_exports_and_results_stay_in_plan_order() {
        let pack = pack_of(
            "lane-exports",
            r#"
name: T
specVersion: "9"
items:
  - parallel: true
    items:
      - for_each: {i: "range(8)"}
        items:
          - {name: "set{{ i }}", steps: [{set: {x: 1}}], export: {mine: "{{ i }}"}}
          - name: "see{{ i }}"
            steps: [{expect: {assert: [{that: "mine == i", message: "lane {{ i }} sees {{ mine }}"}]}}]
  - name: after
    steps: [{expect: {assert: [{that: "mine is not defined", message: "a lane's export leaked"}]}}]
"#,
        );
        let plan = plan_of(&pack);
        let one = statuses(&plan, 1);
        assert_eq!(one.len(), 17);
        assert!(one.iter().all(|(_, s, _)| *s == Status::Pass), "{one:?}");
        assert_eq!(one[0].0, "set0");
        assert_eq!(one[1].0, "see0");
        assert_eq!(one[16].0, "after");
        for _ in 0..5 {
            assert_eq!(statuses(&plan, 4), one);
        }
    }

    #[test]
    fn a_loop_builds_up_a_value_set_before_it_and_leaves_shared_values_alone() {
        let pack = pack_of(
            "loop-set",
            r#"
name: T
specVersion: "9"
vars: {shared: 1}
items:
  - name: build
    steps:
      - for_each: {s: "[10, 20]"}
        steps:
          - set: {acc: []}
          - for_each: {m: "range(3)"}
            set: {acc: "{{ acc + [m + s] }}", last: "{{ m }}", shared: 2}
          - expect: {assert: [{that: "acc == [s, s + 1, s + 2]", message: "acc is {{ acc }}"}]}
      - expect:
          assert:
            - {that: "last == 2", message: "a value first set in a loop outlives it"}
            - {that: "shared == 2", message: "the case sees its own assignment"}
  - name: next
    steps: [{expect: {assert: [{that: "shared == 1", message: "a case changed a pack variable"}]}}]
"#,
        );
        let plan = plan_of(&pack);
        let got = statuses(&plan, 1);
        assert!(got.iter().all(|(_, s, _)| *s == Status::Pass), "{got:?}");
        assert_eq!(got.len(), 2);
    }
}
