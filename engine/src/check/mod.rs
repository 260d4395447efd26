//! The plan check: every template and condition of every planned case, evaluated before
//! anything is sent.
//!
//! `lint`, `list` and `run` walk the plan the way the runner will, with the plan's real values
//! (configuration, data sets, pack variables, `for_each` items, parameters) and stand-ins for
//! what only a run knows ([`stub`]: `response`, what steps capture from it, what cases
//! export). Each template is checked twice:
//!
//! - its variable paths against the scope ([`crate::template::names`]): an undefined name or
//!   attribute is an error naming it, with the closest defined name;
//! - by evaluating it: an error is reported when the template depends on real values only (a
//!   type error, a `for_each` over something that is not a list, a dataset item that does
//!   not exist, a status that is not a code); one that touches a stand-in says nothing about
//!   the scenario.
//!
//! Conditions steer the walk only when they depend on real values: a node or step whose
//! `when` is false with the plan's values never runs and is not checked, but a step whose
//! `when` reads an answer is checked whichever way it would go, so a typo cannot hide in the
//! branch a stand-in did not take.

pub mod stub;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::{Value, ValueKind};

use crate::content::Store;
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::plan::{Plan, PlanKind, PlanNode, Step};
use crate::scenario::{BodySpec, CaseSpec, ExpectSpec, MatcherSpec, RequestSpec, StepSpec};
use crate::template::names::{position, Guard, Names, Oracle};
use crate::template::{Expr, Part, Scope, Tmpl, ValueTmpl};

/// Most items of a `for_each` list whose steps are checked one by one (each item can make
/// other values: a list of 4 ranges is checked 4 times; a list of 10 000 chunks is not).
const MAX_ITEMS: usize = 64;

/// Checks every planned case of `plan`, and the pack's checks of every answer.
pub fn plan(plan: &Plan<'_>, every_response: Option<&ExpectSpec>, schemas: &Path) -> Diagnostics {
    let mut c = Checker {
        store: &plan.store,
        schemas,
        diags: Diagnostics::default(),
        seen: HashSet::new(),
    };
    let frame = Scope::child(&plan.scope, plan.root.vars.clone());
    if let PlanKind::Group { children, .. } = &plan.root.kind {
        c.sequence(children, 0, &frame);
    }
    if let Some(every) = every_response {
        let rframe = Scope::child(
            &frame,
            [("response".to_string(), stub::response())]
                .into_iter()
                .collect(),
        );
        c.expect(every, &rframe.context());
    }
    c.diags
}

/// How the check sees values during the walk: stand-ins are opaque, and a condition that
/// reads one (or a value from the run) is not known.
struct Stand;

impl Oracle for Stand {
    fn opaque(&self, v: &Value) -> bool {
        stub::is_unknown(v)
    }

    fn holds(&self, g: &Guard, ctx: &Value) -> Option<bool> {
        if g.names().reaches_opaque(ctx, self) {
            return None;
        }
        let watch = stub::Watch::start();
        let v = g.eval(ctx)?;
        (!watch.touched() && !stub::is_unknown(&v)).then(|| v.is_true())
    }
}

/// What evaluating one template gave.
struct Eval {
    value: Value,
    /// The value depends on real values only (no stand-in was used).
    known: bool,
}

impl Eval {
    fn unknown() -> Self {
        Eval {
            value: stub::unknown(),
            known: false,
        }
    }
}

struct Checker<'a> {
    store: &'a Store,
    schemas: &'a Path,
    diags: Diagnostics,
    /// Problems already reported, by place and message.
    seen: HashSet<String>,
}

impl Checker<'_> {
    /// Records a problem once per place and message (a file used by many cases is checked
    /// once per case); a repeat that has a hint the first lacked lends it its hint.
    fn report(&mut self, d: Diagnostic) {
        let key = format!("{}: {}", d.pos, d.message);
        if self.seen.insert(key) {
            self.diags.push(d);
        } else if d.hint.is_some() {
            if let Some(first) = self
                .diags
                .0
                .iter_mut()
                .find(|x| x.pos == d.pos && x.message == d.message && x.hint.is_none())
            {
                first.hint = d.hint;
            }
        }
    }

    /// Reports the paths of one template that `ctx` leaves undefined; false when there was one.
    fn names_defined(&mut self, names: &Names, pos: &Pos, src: &str, ctx: &Value) -> bool {
        let missing = names.missing(ctx, &Stand);
        for m in &missing {
            let mut d = Diagnostic::new(position(pos, src, m.offset), m.message.clone());
            d.hint = m.hint.clone();
            self.report(d);
        }
        missing.is_empty()
    }

    /// Whether a template's result depends on the run: it reads a stand-in.
    fn reads_run(&self, names: &Names, ctx: &Value) -> bool {
        names.reaches_opaque(ctx, &Stand)
    }

    /// Evaluates `f` and decides whether its result is known; reports a failure of a template
    /// that depends on real values only.
    fn evaluate(&mut self, reads_run: bool, f: impl FnOnce() -> Result<Value, Diagnostic>) -> Eval {
        let watch = stub::Watch::start();
        let result = f();
        let known = !reads_run && !watch.touched();
        match result {
            Ok(value) => Eval {
                known: known && !stub::is_unknown(&value),
                value,
            },
            Err(d) => {
                if known {
                    self.report(d);
                }
                Eval::unknown()
            }
        }
    }

    fn expr(&mut self, e: &Expr, ctx: &Value) -> Eval {
        if !self.names_defined(e.names(), &e.pos, e.src, ctx) {
            return Eval::unknown();
        }
        let reads_run = self.reads_run(e.names(), ctx);
        self.evaluate(reads_run, || e.eval(ctx))
    }

    fn tmpl(&mut self, t: &Tmpl, ctx: &Value) -> Eval {
        if !self.names_defined(t.names(), &t.pos, t.src, ctx) {
            return Eval::unknown();
        }
        let reads_run = self.reads_run(t.names(), ctx);
        self.evaluate(reads_run, || t.render(ctx).map(Value::from))
    }

    fn value(&mut self, v: &ValueTmpl, ctx: &Value) -> Eval {
        let mut defined = true;
        let mut reads_run = false;
        for p in v.parts() {
            let (names, pos, src) = match p {
                Part::Expr(e) => (e.names(), &e.pos, e.src),
                Part::Tmpl(t) => (t.names(), &t.pos, t.src),
            };
            defined &= self.names_defined(names, pos, src, ctx);
            reads_run |= self.reads_run(names, ctx);
        }
        if !defined {
            return Eval::unknown();
        }
        self.evaluate(reads_run, || v.eval(ctx))
    }

    /// A condition: `Some(value)` when it depends on real values only, `None` when the run
    /// decides (or it could not be evaluated, which is reported).
    fn condition(&mut self, e: &Expr, ctx: &Value) -> Option<bool> {
        let ev = self.expr(e, ctx);
        if !ev.known {
            return None;
        }
        if ev.value.is_undefined() {
            self.report(
                Diagnostic::new(
                    e.pos.clone(),
                    format!("the condition `{}` is undefined", e.src),
                )
                .with_hint("write `x is defined` or `x | default(false)` for what may be missing"),
            );
            return None;
        }
        Some(ev.value.is_true())
    }

    /// Sets a case variable as the runner does (where the case or a loop holds it, else in
    /// the frame and the case); a value from the run is a stand-in.
    fn assign(&mut self, frame: &Arc<Scope>, case: &Arc<Scope>, key: &str, ev: Eval) {
        let value = if ev.known { ev.value } else { stub::unknown() };
        if !frame.assign_within(key, value.clone(), case) {
            frame.set(key, value.clone());
            case.set(key, value);
        }
    }

    /// Siblings in order; each lane of a concurrent batch in a frame of its own, as the runner
    /// gives it (what a lane's cases export without a declaration above stays in the lane).
    fn sequence(&mut self, nodes: &[PlanNode<'_>], level: usize, frame: &Arc<Scope>) {
        for step in crate::plan::steps(nodes, level) {
            match step {
                Step::One(node) => self.node(node, frame),
                Step::Batch(lanes) => {
                    for lane in lanes {
                        let lane_frame = Scope::child(frame, IndexMap::new());
                        self.sequence(lane, level + 1, &lane_frame);
                    }
                }
            }
        }
    }

    fn node(&mut self, node: &PlanNode<'_>, parent: &Arc<Scope>) {
        // A disabled node is recorded, not run.
        if node.disabled.is_some() {
            return;
        }
        let frame = Scope::child(parent, node.vars.clone());
        let ctx = frame.context();
        for w in &node.when {
            if self.condition(w, &ctx) == Some(false) {
                return;
            }
        }
        for (cond, reason) in &node.skip_unless {
            let holds = self.condition(cond, &ctx);
            if let Some(r) = reason {
                self.tmpl(r, &ctx);
            }
            if holds == Some(false) {
                return;
            }
        }
        match &node.kind {
            PlanKind::Group { children, .. } => self.sequence(children, 0, &frame),
            PlanKind::Case(case) => self.case(case, &frame),
        }
    }

    fn case(&mut self, case: &CaseSpec, node_frame: &Arc<Scope>) {
        let frame = Scope::child(node_frame, IndexMap::new());
        for step in case.steps.iter().chain(&case.cleanup) {
            self.step(step, &frame, &frame);
        }
        if case.export.is_empty() {
            return;
        }
        frame.set("status", stub::unknown());
        let ctx = frame.context();
        for (k, v) in &case.export {
            let ev = self.value(v, &ctx);
            let value = if ev.known { ev.value } else { stub::unknown() };
            if !node_frame.assign(k, value.clone()) {
                node_frame
                    .parent
                    .as_ref()
                    .unwrap_or(node_frame)
                    .set(k, value);
            }
        }
    }

    fn step(&mut self, step: &StepSpec, frame: &Arc<Scope>, case: &Arc<Scope>) {
        let Some((var, list)) = &step.for_each else {
            self.step_once(step, frame, case);
            return;
        };
        let ev = self.expr(list, &frame.context());
        if !ev.known {
            let f = Scope::child(
                frame,
                [(var.clone(), stub::unknown())].into_iter().collect(),
            );
            self.step_once(step, &f, case);
            return;
        }
        let items = match crate::scenario::list_items(list, &ev.value) {
            Ok(items) => items,
            Err(d) => {
                // Reported once; the steps are still checked, with a stand-in for the item.
                self.report(d);
                vec![stub::unknown()]
            }
        };
        for item in items.into_iter().take(MAX_ITEMS) {
            let f = Scope::child(frame, [(var.clone(), item)].into_iter().collect());
            self.step_once(step, &f, case);
        }
    }

    fn step_once(&mut self, step: &StepSpec, frame: &Arc<Scope>, case: &Arc<Scope>) {
        let ctx = frame.context();
        if let Some(w) = &step.when {
            if self.condition(w, &ctx) == Some(false) {
                return;
            }
        }
        if let Some(n) = &step.name {
            self.tmpl(n, &ctx);
        }
        for (k, v) in &step.set {
            let ev = self.value(v, &frame.context());
            self.assign(frame, case, k, ev);
        }
        if let Some(req) = &step.request {
            self.request(step, req, frame, case);
            return;
        }
        for s in &step.steps {
            self.step(s, frame, case);
        }
        let ctx = frame.context();
        for a in &step.expect.assert {
            self.condition(&a.that, &ctx);
            self.tmpl(&a.message, &ctx);
        }
    }

    fn request(
        &mut self,
        step: &StepSpec,
        req: &RequestSpec,
        frame: &Arc<Scope>,
        case: &Arc<Scope>,
    ) {
        let ctx = frame.context();
        self.tmpl(&req.url, &ctx);
        for (_, v) in &req.query {
            self.value(v, &ctx);
        }
        for (_, t) in &req.headers {
            self.tmpl(t, &ctx);
        }
        match &req.body {
            Some(BodySpec::Content { id, range }) => self.content(id, range.as_ref(), &ctx),
            Some(BodySpec::Text(t)) => {
                self.tmpl(t, &ctx);
            }
            Some(BodySpec::Json(v)) => {
                self.value(v, &ctx);
            }
            None => {}
        }
        let rframe = Scope::child(
            frame,
            [("response".to_string(), stub::response())]
                .into_iter()
                .collect(),
        );
        let rctx = rframe.context();
        for u in &step.unsupported {
            if let Some(s) = &u.status {
                self.status(&s.value, &rctx);
            }
            for (_, m) in &u.headers {
                self.matcher(m, &rctx);
            }
            if let Some(w) = &u.when {
                self.condition(w, &rctx);
            }
            self.tmpl(&u.reason, &rctx);
            for (k, v) in &u.capture {
                let ev = self.value(v, &rctx);
                self.assign(frame, case, k, ev);
            }
            for s in &u.then {
                self.step(s, frame, case);
            }
        }
        self.expect(&step.expect, &rctx);
        for (k, v) in &step.capture {
            let ev = self.value(v, &rctx);
            self.assign(frame, case, k, ev);
        }
        // Rendered once the answer is in, so they may read it (`response.digest`).
        for t in [&step.creates, &step.deletes].into_iter().flatten() {
            self.tmpl(t, &rframe.context());
        }
    }

    fn expect(&mut self, e: &ExpectSpec, ctx: &Value) {
        if let Some(s) = &e.status {
            self.status(&s.value, ctx);
        }
        for (_, m) in &e.headers {
            self.matcher(m, ctx);
        }
        if let Some(b) = &e.body {
            match &b.content {
                Some(c) => self.content(c, b.range.as_ref(), ctx),
                None => {
                    if let Some(r) = &b.range {
                        self.tmpl(r, ctx);
                    }
                }
            }
            if let Some(t) = &b.text {
                self.tmpl(t, ctx);
            }
            for (_, m) in b.json.iter().flatten() {
                self.matcher(m, ctx);
            }
            if let Some(s) = &b.schema {
                if !crate::source::is_file(&self.schemas.join(&s.value)) {
                    self.report(Diagnostic::new(
                        s.pos.clone(),
                        format!(
                            "no schema `{}` in {}",
                            s.value,
                            crate::diag::display_path(self.schemas)
                        ),
                    ));
                }
            }
        }
        for a in &e.assert {
            self.condition(&a.that, ctx);
            self.tmpl(&a.message, ctx);
        }
    }

    fn matcher(&mut self, m: &MatcherSpec, ctx: &Value) {
        // A matcher whose condition is false with the plan's values is never applied.
        if let Some(w) = &m.when {
            if self.condition(w, ctx) == Some(false) {
                return;
            }
        }
        if let Some(p) = &m.present {
            let ev = self.value(p, ctx);
            if ev.known && !is_presence(&ev.value) {
                self.report(
                    Diagnostic::new(
                        p.pos(),
                        format!(
                            "`present` is true, false, MUST, SHOULD or MAY, found {}",
                            crate::scenario::describe(&ev.value)
                        ),
                    )
                    .with_hint("a misspelt level would count as true, which is MUST"),
                );
            }
        }
        for v in [&m.absent, &m.equals, &m.one_of, &m.contains, &m.length]
            .into_iter()
            .flatten()
        {
            self.value(v, ctx);
        }
        if let Some(t) = &m.message {
            self.tmpl(t, ctx);
        }
    }

    fn status(&mut self, v: &ValueTmpl, ctx: &Value) {
        let ev = self.value(v, ctx);
        if ev.known {
            let json = crate::template::to_json(&ev.value).unwrap_or_default();
            if let Err(d) = crate::scenario::status_codes(&json, &v.pos()) {
                self.report(d);
            }
        }
    }

    /// A dataset item named by a template (`body: {content: …}`) must exist.
    fn content(&mut self, id: &Tmpl, range: Option<&Tmpl>, ctx: &Value) {
        let ev = self.tmpl(id, ctx);
        if ev.known {
            let key = ev.value.to_string();
            if self.store.get(&key).is_none() {
                let ids = self.store.ids();
                let d = Diagnostic::new(id.pos.clone(), format!("no dataset item `{key}`"));
                self.report(
                    match crate::diag::did_you_mean(&key, ids.iter().map(String::as_str)) {
                        Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                        None => {
                            d.with_hint("items are named `<data set>/<item>`, e.g. `{{ blob.id }}`")
                        }
                    },
                );
            }
        }
        if let Some(r) = range {
            let ev = self.tmpl(r, ctx);
            if ev.known {
                if let Err(d) = crate::expect::parse_range(&ev.value.to_string(), &r.pos) {
                    self.report(d);
                }
            }
        }
    }
}

fn is_presence(v: &Value) -> bool {
    v.kind() == ValueKind::Bool
        || v.is_none()
        || matches!(v.as_str(), Some("MUST" | "SHOULD" | "MAY"))
}

#[cfg(test)]
mod tests {
    use crate::schedule::tests::{pack_of, plan_of};

    /// The problems the check finds in a pack, as `line: message (hint)`.
    fn problems(name: &str, yaml: &str) -> Vec<String> {
        let pack = pack_of(name, yaml);
        let plan = plan_of(&pack);
        super::plan(&plan, pack.every_response.as_ref(), &pack.schemas_dir)
            .0
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {}{}",
                    d.pos.line,
                    d.pos.col,
                    d.message,
                    d.hint
                        .as_ref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn names_attributes_and_items_are_checked_without_a_registry() {
        let found = problems(
            "check-names",
            r#"
name: T
specVersion: "9"
vars: {repo: r, blob: {digest: "sha256:0", size: 1}}
items:
  - name: c
    steps:
      - request: {method: GET, url: "/v2/{{ rpeo }}/blobs/{{ blob.digst }}"}
        expect:
          status: "{{ 200 if blob.size else 'abc' }}"
          assert: [{that: "response.stauts == 200", message: m}]
        capture: {location: "{{ response.location }}"}
      - request: {method: PUT, url: "{{ location }}", body: {content: "nope/x"}}
"#,
        );
        assert_eq!(
            found,
            [
                // (the pack file is gone once loaded, so the column is the template's)
                "8:37 `rpeo` is undefined (did you mean `repo`?)",
                "8:37 `blob.digst` is undefined: `blob` has no `digst` (did you mean `digest`?)",
                "11:27 `response.stauts` is undefined: `response` has no `stauts` (did you mean `status`?)",
                "13:71 no dataset item `nope/x` (items are named `<data set>/<item>`, e.g. `{{ blob.id }}`)",
            ]
        );
    }

    #[test]
    fn both_ways_of_a_condition_on_the_answer_are_checked() {
        let found = problems(
            "check-branches",
            r#"
name: T
specVersion: "9"
vars: {off: false}
items:
  - name: c
    steps:
      - request: {method: GET, url: /v2/}
        capture: {code: "{{ response.status }}"}
      - when: "code == 202"
        request: {method: GET, url: "/v2/{{ typo_a }}"}
      - when: "code != 202"
        request: {method: GET, url: "/v2/{{ typo_b }}"}
      # never runs with these values: what it reads is not reported
      - when: off
        set: {late: 1}
      - when: "off and late"
        request: {method: GET, url: "/v2/{{ late }}"}
      - for_each: {c: "'abc'"}
        set: {y: "{{ c }}"}
"#,
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("`typo_a` is undefined"), "{found:?}");
        assert!(found[1].contains("`typo_b` is undefined"), "{found:?}");
        assert!(
            found[2].contains("`for_each` needs a list, found the string `abc`"),
            "{found:?}"
        );
    }

    #[test]
    fn exports_reach_later_cases_as_values_from_the_run() {
        let found = problems(
            "check-exports",
            r#"
name: T
specVersion: "9"
vars: {pushed: false}
items:
  - name: push
    steps: [{request: {method: GET, url: /v2/}}]
    export: {pushed: "{{ status == 'Pass' }}", extra: "{{ 1 }}"}
  - name: read
    skip_unless: pushed
    steps:
      - expect: {assert: [{that: "extra == 1 and pushd", message: m}]}
"#,
        );
        assert_eq!(
            found,
            ["12:34 `pushd` is undefined (did you mean `pushed`?)"],
            "a skip_unless on a value from the run does not hide the case"
        );
    }
}
