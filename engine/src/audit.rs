//! The schedule audit: a parallel run is only as deterministic as the keys its nodes hold.
//!
//! The pack says, with `touches:` rules, which key each request names (a blob or manifest by
//! the sha256 of its bytes, a tag, a tag list) and whether it reads or changes it. After a
//! run, every request every case sent (its recorded exchanges) is mapped to those keys. Two
//! cases that may run at the same time (they sit in different lanes of a parallel batch)
//! and touch the same key, one of them changing it, must both hold that key below the group
//! they share — exclusively to change it, shared or exclusively to read it — or their order
//! is left to timing and `-j N` could disagree with `-j 1`. Each such case becomes an Error
//! naming the request and the missing key.
//!
//! Content or tags only one case touches, and cases that run one after the other anyway, need
//! no key, so the audit asks for keys exactly where the schedule needs them. It reads
//! requests, not timing: a `-j 1` run shows what each node sends, and the verdict of the
//! audit is the same at any `-j`.

use std::collections::HashMap;

use indexmap::IndexMap;
use minijinja::value::Value;
use regex::Regex;
use serde::Deserialize;

use crate::de::{from_node, Located, Raw};
use crate::diag::{Diagnostic, Diagnostics};
use crate::http::{Exchange, ReqBody};
use crate::plan::{Plan, PlanKind, PlanNode};
use crate::results::{CaseResult, GroupResult, ResultNode, Status};
use crate::template::{decode_component, map_value, Expr, ValueTmpl};

/// How a request uses what its key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only reads it: needs the key shared or exclusive.
    Read,
    /// Changes it: needs the key exclusive.
    Write,
    /// Needs the key in either mode (for resources whose writers commute, such as the tag
    /// list, which every tag writer holds shared and a whole-list check holds exclusively).
    Any,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Read => "shared or exclusive",
            Mode::Write => "exclusive",
            Mode::Any => "shared or exclusive",
        }
    }
}

/// One `touches:` rule of a pack.
#[derive(Debug)]
pub struct TouchRule {
    methods: Vec<String>,
    path: Regex,
    key: ValueTmpl,
    mode: Mode,
    always: Option<Expr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    method: Methods,
    path: Located<String>,
    key: Raw,
    mode: Mode,
    #[serde(default)]
    always: Option<Located<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Methods {
    One(String),
    Many(Vec<String>),
}

/// Compiles the `touches:` list of a pack.
pub fn compile(raw: &Raw) -> Result<Vec<TouchRule>, Diagnostics> {
    let defs: Vec<RuleDef> = from_node(&raw.0).map_err(Diagnostics::from)?;
    let mut diags = Diagnostics::default();
    let mut rules = Vec::new();
    for d in defs {
        let path = match Regex::new(&d.path.value) {
            Ok(r) => r,
            Err(e) => {
                diags.push(Diagnostic::new(
                    d.path.pos.clone(),
                    format!("`path` is not a regular expression: {e}"),
                ));
                continue;
            }
        };
        let key = match ValueTmpl::from_raw(&d.key) {
            Ok(k) => k,
            Err(e) => {
                diags.push(e);
                continue;
            }
        };
        let always = match d.always.as_ref().map(|a| Expr::new(&a.value, &a.pos)) {
            Some(Err(e)) => {
                diags.push(e);
                continue;
            }
            Some(Ok(e)) => Some(e),
            None => None,
        };
        let methods = match d.method {
            Methods::One(m) => vec![m],
            Methods::Many(m) => m,
        };
        rules.push(TouchRule {
            methods: methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
            path,
            key,
            mode: d.mode,
            always,
        });
    }
    if diags.is_empty() {
        Ok(rules)
    } else {
        Err(diags)
    }
}

/// A request of a case, mapped to one key.
struct Touch {
    case: usize,
    key: String,
    mode: Mode,
    /// The rule's `always` held: the key is needed whatever else touches it.
    always: bool,
    request: String,
}

/// A case the audit found unprotected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The case that lacks the key.
    pub case: String,
    /// Its request (`GET /v2/…`).
    pub request: String,
    /// The key it does not hold.
    pub key: String,
    /// How it should hold it.
    pub mode: &'static str,
    /// A case that may run at the same time and touches the same key, with its request
    /// (none: the key names content of the run, which always needs its key).
    pub other: Option<(String, String)>,
}

impl Violation {
    /// The reason recorded on the case.
    pub fn message(&self) -> String {
        let why = match &self.other {
            Some((case, request)) => {
                format!("while `{case}` may run at the same time and touches it too (`{request}`)")
            }
            None => "and it names content of the run, which other tests may use".to_string(),
        };
        format!(
            "schedule audit: `{}` touches `{}` without holding that key ({}), {why}: the \
             verdict could depend on timing (add the key to the case; keys: see pack.yaml)",
            short(&self.request),
            self.key,
            self.mode
        )
    }
}

/// A request with long query values cut (upload `_state` tokens run to hundreds of bytes).
fn short(request: &str) -> String {
    let Some((head, query)) = request.split_once('?') else {
        return request.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, v)) if v.len() > 24 => {
                format!("{k}={}…", v.chars().take(16).collect::<String>())
            }
            _ => p.to_string(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

/// A case of the plan, with the nodes from the root down to it.
struct PlannedCase<'a, 'p> {
    chain: Vec<&'a PlanNode<'p>>,
}

/// Audits the run and turns each unprotected case into an Error (its other findings stay).
pub fn apply(plan: &Plan<'_>, root: &mut GroupResult) -> Vec<Violation> {
    let found = audit(plan, root);
    if found.is_empty() {
        return found;
    }
    let mut by_case: HashMap<&str, Vec<&Violation>> = HashMap::new();
    for v in &found {
        by_case.entry(v.case.as_str()).or_default().push(v);
    }
    mark(&mut root.children, &by_case);
    found
}

fn mark(nodes: &mut [ResultNode], by_case: &HashMap<&str, Vec<&Violation>>) {
    for n in nodes {
        match n {
            ResultNode::Group(g) => mark(&mut g.children, by_case),
            ResultNode::Case(c) => {
                if let Some(vs) = by_case.get(c.id.as_str()) {
                    let mut reason: Vec<String> = vs.iter().map(|v| v.message()).collect();
                    reason.extend(c.reason.take());
                    c.reason = Some(reason.join("; "));
                    c.status = Status::Error;
                }
            }
        }
    }
}

/// The violations of a run (none when the pack has no `touches:` rules).
pub fn audit(plan: &Plan<'_>, root: &GroupResult) -> Vec<Violation> {
    if plan.touches.is_empty() {
        return Vec::new();
    }
    let mut cases: Vec<PlannedCase<'_, '_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut chain: Vec<&PlanNode<'_>> = Vec::new();
    collect(&plan.root, &mut chain, &mut cases, &mut index);

    let digests = plan.store.sha256_index();
    let content = map_value(
        digests
            .iter()
            .map(|(d, hex)| (d.clone(), Value::from(hex.as_str()))),
    );
    let mut touches: Vec<Touch> = Vec::new();
    for case in root.cases() {
        let Some(&i) = index.get(case.id.as_str()) else {
            continue;
        };
        for ex in case_requests(case) {
            touches_of(plan.touches, ex, &content, i, &mut touches);
        }
    }

    // Per key, the strongest use by each case, in plan order.
    let mut by_key: IndexMap<&str, IndexMap<usize, (Mode, &str)>> = IndexMap::new();
    for t in &touches {
        let uses = by_key.entry(t.key.as_str()).or_default();
        let slot = uses.entry(t.case).or_insert((t.mode, t.request.as_str()));
        if t.mode == Mode::Write && slot.0 != Mode::Write {
            *slot = (t.mode, t.request.as_str());
        }
    }
    let mut found: Vec<Violation> = Vec::new();
    // Content of the run's data sets: whoever touches it holds its key, whether or not
    // another case happened to touch it on this registry.
    for t in touches.iter().filter(|t| t.always) {
        let chain = &cases[t.case].chain;
        let case = &chain[chain.len() - 1].id;
        if !holds(chain, &t.key, t.mode) && !found.iter().any(|v| &v.case == case && v.key == t.key)
        {
            found.push(Violation {
                case: case.clone(),
                request: t.request.clone(),
                key: t.key.clone(),
                mode: t.mode.as_str(),
                other: None,
            });
        }
    }
    for (key, uses) in &by_key {
        let uses: Vec<(usize, Mode, &str)> = uses.iter().map(|(c, (m, r))| (*c, *m, *r)).collect();
        for (ai, &(a, am, ar)) in uses.iter().enumerate() {
            for &(b, bm, br) in &uses[ai + 1..] {
                if am == Mode::Read && bm == Mode::Read {
                    continue;
                }
                let (ca, cb) = (&cases[a].chain, &cases[b].chain);
                let Some(split) = overlap(ca, cb) else {
                    continue;
                };
                for (me, mode, req, other, oreq) in [(ca, am, ar, cb, br), (cb, bm, br, ca, ar)] {
                    let case = &me[me.len() - 1].id;
                    if holds(&me[split..], key, mode)
                        || found.iter().any(|v| &v.case == case && v.key == *key)
                    {
                        continue;
                    }
                    found.push(Violation {
                        case: case.clone(),
                        request: req.to_string(),
                        key: key.to_string(),
                        mode: mode.as_str(),
                        other: Some((other[other.len() - 1].id.clone(), oreq.to_string())),
                    });
                }
            }
        }
    }
    found
}

fn collect<'a, 'p>(
    node: &'a PlanNode<'p>,
    chain: &mut Vec<&'a PlanNode<'p>>,
    cases: &mut Vec<PlannedCase<'a, 'p>>,
    index: &mut HashMap<&'a str, usize>,
) {
    chain.push(node);
    match &node.kind {
        PlanKind::Case(_) => {
            index.insert(node.id.as_str(), cases.len());
            cases.push(PlannedCase {
                chain: chain.clone(),
            });
        }
        PlanKind::Group { children, .. } => {
            for c in children {
                collect(c, chain, cases, index);
            }
        }
    }
    chain.pop();
}

/// The requests the case's own steps sent (token requests left out; redirect hops and the
/// repeat after an auth challenge are the same request again).
fn case_requests(case: &CaseResult) -> impl Iterator<Item = &Exchange> {
    case.exchanges.iter().filter(|e| e.note.is_none())
}

fn touches_of(
    rules: &[TouchRule],
    ex: &Exchange,
    content: &Value,
    case: usize,
    out: &mut Vec<Touch>,
) {
    let after_scheme = ex.url.split_once("://").map_or(ex.url.as_str(), |(_, r)| r);
    let path_query = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let mut first: IndexMap<String, Value> = IndexMap::new();
    let mut all: IndexMap<String, Vec<Value>> = IndexMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode_component(k), Value::from(decode_component(v)));
        first.entry(k.clone()).or_insert_with(|| v.clone());
        all.entry(k).or_default().push(v);
    }
    let body = match &ex.sent_body {
        ReqBody::None => None,
        ReqBody::Bytes(b) => crate::template::digest_bytes("sha256", b),
        ReqBody::Content(_, _, d) => d.clone(),
    };
    let request = format!("{} {}", ex.method, path_query);
    for rule in rules {
        if !rule.methods.contains(&ex.method) {
            continue;
        }
        let Some(caps) = rule.path.captures(path) else {
            continue;
        };
        let mut vars: Vec<(String, Value)> = vec![
            ("method".into(), Value::from(ex.method.as_str())),
            ("path".into(), Value::from(path)),
            ("query".into(), map_value(first.clone())),
            (
                "query_all".into(),
                map_value(all.iter().map(|(k, v)| (k.clone(), Value::from(v.clone())))),
            ),
            ("content_sha256".into(), content.clone()),
            (
                "body_sha256".into(),
                body.as_deref().map_or(Value::from(()), Value::from),
            ),
        ];
        for name in rule.path.capture_names().flatten() {
            if let Some(m) = caps.name(name) {
                vars.push((name.to_string(), Value::from(decode_component(m.as_str()))));
            }
        }
        // A rule that cannot be evaluated for this request names nothing: the audit is about
        // the requests the rules describe, and a broken rule shows in the audit test.
        let ctx = map_value(vars);
        let Ok(v) = rule.key.eval(&ctx) else {
            continue;
        };
        let always = rule
            .always
            .as_ref()
            .is_some_and(|a| a.truthy(&ctx).unwrap_or(true));
        let mut keys = Vec::new();
        crate::plan::push_keys(&mut keys, &v);
        for key in keys {
            out.push(Touch {
                case,
                key,
                mode: rule.mode,
                always,
                request: request.clone(),
            });
        }
    }
}

/// Whether two cases may run at the same time: where their chains part, the two nodes are in
/// different lanes of one batch. Gives the index where the chains part.
fn overlap(a: &[&PlanNode<'_>], b: &[&PlanNode<'_>]) -> Option<usize> {
    let split = a
        .iter()
        .zip(b)
        .take_while(|(x, y)| x.order == y.order)
        .count();
    let (x, y) = (a.get(split)?, b.get(split)?);
    for (lx, ly) in x.lanes.iter().zip(&y.lanes) {
        if lx.batch != ly.batch {
            return None;
        }
        if lx.lane != ly.lane {
            return Some(split);
        }
    }
    None
}

/// Whether one of `nodes` (the case and its ancestors below the group it shares with the
/// other case) holds `key` in a mode that covers `mode`.
fn holds(nodes: &[&PlanNode<'_>], key: &str, mode: Mode) -> bool {
    nodes.iter().any(|n| {
        n.exclusive.iter().any(|k| k == key)
            || (mode != Mode::Write && n.shared.iter().any(|k| k == key))
    })
}
