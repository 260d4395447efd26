//! Alterations: what the self-test proxy does to a registry's answers, read from YAML.
//!
//! An alteration file (`specs/alterations/*.yaml`) holds a list of alterations. Each has an
//! id, a kind (a **violation** the suite must catch, or a conformant **variant** it must not
//! fail), the requirement ids it breaks or relies on, and one or more **rules**: a `match`
//! (method, path regex, query and request headers, the upstream status and answer headers,
//! JSON pointers of the answer body, an expression, the n-th occurrence) and an `edit` (what
//! happens to the answer). The model is plain HTTP: it knows methods, paths, queries,
//! headers, statuses and JSON bodies, nothing of OCI.
//!
//! Everything is compiled when the file is read (regexes, templates, JSON pointers), so a
//! mistake is a load error with its file:line, and the proxy never re-parses.

use std::collections::HashSet;
use std::path::PathBuf;

use indexmap::IndexMap;
use minijinja::value::Value;
use serde::Deserialize;
use serde_json::Value as J;

use crate::de::{from_node, Located, Raw};
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::template::{from_json, map_value, Expr, Tmpl, ValueTmpl};
use crate::yaml::{Node, Value as Y};

/// Whether the suite must catch an alteration or must let it pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Breaks a MUST: a test named in `caught_by` must FAIL.
    Violation,
    /// Conformant but unusual: the run must give no FAIL or Error the baseline did not have.
    Variant,
}

impl Kind {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Violation => "violation",
            Kind::Variant => "variant",
        }
    }
}

/// One compiled alteration.
#[derive(Debug)]
pub struct Alteration {
    /// Unique id (lower-case words joined by `-`; also a repository path component).
    pub id: String,
    /// Violation or variant.
    pub kind: Kind,
    /// One line saying what the registry does differently.
    pub summary: String,
    /// Requirement ids it breaks (violations) or relies on (variants).
    pub req: Vec<String>,
    /// Spec anchors.
    pub spec: Vec<String>,
    /// Why the alteration is what it claims (the sentence that allows a variant).
    pub note: Option<String>,
    /// Registries it applies to (`--target`); empty: every registry.
    pub targets: Vec<String>,
    /// Spec versions (the pack's `specVersion`) it applies to; empty: every version.
    pub versions: Vec<String>,
    /// What the proxy does, in order.
    pub rules: Vec<Rule>,
    /// Test id prefixes of which one must FAIL (violations).
    pub caught_by: Vec<Located<String>>,
    /// A fragment the catching test's reason must contain.
    pub because: Option<String>,
    /// Test id prefixes the run includes (default: `caught_by`; variants: the whole pack).
    pub filter: Vec<String>,
    /// Where the alteration is written.
    pub pos: Pos,
}

impl Alteration {
    /// Whether it applies to this registry (`target`, empty when none was named) and to a
    /// pack known by these names (its `specVersion` and `aliases`).
    pub fn applies(&self, target: &str, pack_names: &[String]) -> bool {
        let for_target = self.targets.is_empty() || self.targets.iter().any(|t| t == target);
        for_target && self.for_version(pack_names)
    }

    /// Whether it applies to a pack known by these names.
    pub fn for_version(&self, pack_names: &[String]) -> bool {
        self.versions.is_empty() || self.versions.iter().any(|v| pack_names.contains(v))
    }

    /// The `--filter` prefixes of its run (empty: the whole pack): `filter` when given; for a
    /// violation, else, the groups holding its `caught_by` tests (a prefix that is a test's
    /// id stands for the group it is in, whose other tests set it up), found among `ids`,
    /// the test ids of the whole pack.
    pub fn run_filter(&self, ids: &[String]) -> Vec<String> {
        if !self.filter.is_empty() {
            return self.filter.clone();
        }
        if self.kind == Kind::Variant {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for c in &self.caught_by {
            let p = c.value.as_str();
            let group = if ids.iter().any(|id| id == p) {
                p.rsplit_once('/').map_or(p, |(g, _)| g)
            } else {
                p
            };
            if !out.iter().any(|o| o == group) {
                out.push(group.to_string());
            }
        }
        out
    }
}

/// A match and what happens to the answers it selects.
#[derive(Debug)]
pub struct Rule {
    /// Which exchanges it selects.
    pub when: Match,
    /// What it does to them.
    pub edit: Edit,
    /// Where the rule is written.
    pub pos: Pos,
}

impl Rule {
    /// Whether the rule acts before the request is forwarded (it answers by itself), so it can
    /// only look at the request.
    pub fn answers_itself(&self) -> bool {
        self.edit.respond.is_some()
    }

    /// Whether deciding the match or applying the edit needs the whole answer body in memory.
    pub fn needs_body(&self) -> bool {
        let m = &self.when;
        let e = &self.edit;
        !m.json.is_empty()
            || m.size.is_some()
            || m.when
                .as_ref()
                .is_some_and(|w| w.src.contains("answer.json"))
            || e.body.is_some()
            || !e.json.is_empty()
            || e.reformat.is_some()
            || e.stale
            || e.paginate.is_some()
            || e.body_on_head
    }
}

/// A condition on a query parameter, a header or a JSON pointer.
#[derive(Debug)]
pub enum Cond {
    /// Present (with a value matching the regex, when given).
    Present(Option<regex::Regex>),
    /// Absent.
    Absent,
}

impl Cond {
    /// Whether a value (None: absent) satisfies the condition.
    pub fn holds(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Cond::Absent, v) => v.is_none(),
            (Cond::Present(_), None) => false,
            (Cond::Present(None), Some(_)) => true,
            (Cond::Present(Some(re)), Some(v)) => re.is_match(v),
        }
    }
}

/// Which occurrences of a match a rule acts on (counted after every other condition held).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nth {
    /// First occurrence acted on (1-based).
    pub from: u64,
    /// Last occurrence acted on (None: every one from `from` on).
    pub to: Option<u64>,
    /// What is counted separately.
    pub per: Per,
}

/// The key occurrences are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// Every match of the rule together.
    Rule,
    /// Each request path (without the query) on its own.
    Path,
    /// Each method and path on its own.
    Request,
}

/// The conditions of a rule; all must hold.
#[derive(Debug, Default)]
pub struct Match {
    /// Methods (empty: any).
    pub methods: Vec<String>,
    /// A regex searched in the request path (without the query).
    pub path: Option<regex::Regex>,
    /// Query parameters (decoded values).
    pub query: Vec<(String, Cond)>,
    /// Request headers (names lower-case).
    pub headers: Vec<(String, Cond)>,
    /// Statuses of the upstream answer.
    pub status: Option<StatusSet>,
    /// Headers of the upstream answer (names lower-case).
    pub answer_headers: Vec<(String, Cond)>,
    /// JSON pointers of the answer body (a body that is not JSON matches no pointer).
    pub json: Vec<(String, Cond)>,
    /// Bounds on the answer body size.
    pub size: Option<(Option<u64>, Option<u64>)>,
    /// An expression over `request`, `captures` and `answer`.
    pub when: Option<Expr>,
    /// Which occurrences.
    pub nth: Option<Nth>,
}

impl Match {
    /// Whether any condition is about the answer (so it is decided after forwarding).
    pub fn looks_at_answer(&self) -> bool {
        self.status.is_some()
            || !self.answer_headers.is_empty()
            || !self.json.is_empty()
            || self.size.is_some()
            || self.when.as_ref().is_some_and(|w| w.src.contains("answer"))
    }

    /// Whether the request conditions hold; the path's captures when they do.
    pub fn request_holds(&self, req: &RequestView) -> Option<Vec<String>> {
        if !self.methods.is_empty()
            && !self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&req.method))
        {
            return None;
        }
        let captures = match &self.path {
            None => vec![req.path.clone()],
            Some(re) => {
                let c = re.captures(&req.path)?;
                c.iter()
                    .map(|m| m.map(|m| m.as_str().to_string()).unwrap_or_default())
                    .collect()
            }
        };
        for (name, cond) in &self.query {
            if !cond.holds(req.query_value(name)) {
                return None;
            }
        }
        for (name, cond) in &self.headers {
            if !cond.holds(req.header(name)) {
                return None;
            }
        }
        Some(captures)
    }

    /// Whether the answer conditions hold (the request conditions already did).
    pub fn answer_holds(&self, answer: &Answer, json: Option<&J>) -> bool {
        if let Some(s) = &self.status {
            if !s.contains(answer.status) {
                return false;
            }
        }
        for (name, cond) in &self.answer_headers {
            if !cond.holds(answer.header(name)) {
                return false;
            }
        }
        for (pointer, cond) in &self.json {
            let found = json.and_then(|j| j.pointer(pointer)).map(|v| match v {
                J::String(s) => s.clone(),
                other => other.to_string(),
            });
            if !cond.holds(found.as_deref()) {
                return false;
            }
        }
        if let Some((min, max)) = self.size {
            let len = answer.body.as_ref().map_or(0, |b| b.len() as u64);
            if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
                return false;
            }
        }
        true
    }
}

/// A set of statuses: codes and classes (`4xx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl StatusSet {
    /// Whether `s` is in the set.
    pub fn contains(&self, s: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&s))
    }
}

/// What a rule does to the answers it selects, applied in the order of the fields.
#[derive(Debug, Default)]
pub struct Edit {
    /// Answer without forwarding.
    pub respond: Option<Canned>,
    /// Change the request before it is forwarded.
    pub forward: Option<Forward>,
    /// Give each upload-style Location a fresh one-time token and refuse stale ones.
    pub rotate: Option<Rotate>,
    /// Cut a JSON list into pages linked with `Link`.
    pub paginate: Option<Paginate>,
    /// Replace the status.
    pub status: Option<u16>,
    /// Header changes.
    pub headers: HeaderEdits,
    /// Body change.
    pub body: Option<BodyEdit>,
    /// JSON pointer edits of the body (skipped when the body is not JSON).
    pub json: Vec<JsonOp>,
    /// Write the JSON body again in this form.
    pub reformat: Option<Reformat>,
    /// Serve the last 2xx answer seen for the same method and URL instead of a later non-2xx.
    pub stale: bool,
    /// Send the body with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Milliseconds to wait before answering.
    pub delay_ms: u64,
    /// Close the connection after this answer (`Connection: close`).
    pub close: bool,
    /// Close the connection without answering.
    pub drop: bool,
    /// Never answer (the connection is held until the client gives up).
    pub hang: bool,
    /// Announce the whole body, send this many bytes of it, then close the connection.
    pub cut: Option<u64>,
    /// Send a body even to a HEAD (the body edit's, else as many spaces as announced).
    pub body_on_head: bool,
}

/// A canned answer.
#[derive(Debug)]
pub struct Canned {
    /// Status.
    pub status: u16,
    /// Headers (values are templates).
    pub headers: Vec<(String, Tmpl)>,
    /// Body.
    pub body: Option<BodyEdit>,
}

/// How a request is changed before it is forwarded.
#[derive(Debug, Default)]
pub struct Forward {
    /// New path (a template; `captures` holds the path regex groups).
    pub path: Option<Tmpl>,
    /// Query parameters set (templates).
    pub set_query: Vec<(String, Tmpl)>,
    /// Query parameters removed.
    pub remove_query: Vec<String>,
    /// Request headers removed.
    pub remove_headers: Vec<String>,
    /// Request headers set (templates).
    pub set_headers: Vec<(String, Tmpl)>,
    /// Forward without the request body (Content-Length 0).
    pub drop_body: bool,
}

/// Location rotation: every answer this rule selects whose `Location` path matches
/// `location` gets `param=<token>` added, a new token each time; a later request to that
/// path with another token (or none) gets `refuse`, one with the latest token is forwarded
/// without it.
#[derive(Debug)]
pub struct Rotate {
    /// The query parameter carrying the token.
    pub param: String,
    /// Which Locations rotate (regex searched in the Location's path).
    pub location: regex::Regex,
    /// The answer to a stale or missing token.
    pub refuse: Canned,
}

/// Pagination of a JSON list in the answer.
#[derive(Debug)]
pub struct Paginate {
    /// JSON pointer of the list.
    pub list: String,
    /// Items per page.
    pub size: usize,
    /// Query parameter carrying the cursor.
    pub cursor: String,
    /// Query parameter by which the client asks for at most that many items (e.g. `n`).
    pub limit: Option<String>,
    /// What the cursor holds.
    pub by: CursorBy,
}

/// What a pagination cursor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CursorBy {
    /// The last item of the previous page (string lists): the next page starts after it.
    Value,
    /// The index of the first item of the page.
    Index,
}

/// Header changes, applied in this order: remove, rewrite, set, add.
#[derive(Debug, Default)]
pub struct HeaderEdits {
    /// Headers removed (names as written; compared without case).
    pub remove: Vec<String>,
    /// Regex replacements in a header's values (`$1` refers to groups).
    pub rewrite: Vec<(String, regex::Regex, String)>,
    /// Headers set, replacing any value (templates; `value` is the current value).
    pub set: Vec<(String, Tmpl)>,
    /// Headers added next to existing values (templates).
    pub add: Vec<(String, Tmpl)>,
}

impl HeaderEdits {
    fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rewrite.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }
}

/// A change of the body bytes.
#[derive(Debug)]
pub enum BodyEdit {
    /// XOR 0xff into the byte at this offset (negative: from the end); no-op on an empty body.
    Flip(i64),
    /// Keep the first N bytes.
    Truncate(u64),
    /// Put text before the body.
    Prepend(Tmpl),
    /// Put text after the body.
    Append(Tmpl),
    /// Replace the body with text.
    Text(Tmpl),
    /// Replace the body with compact JSON.
    Json(ValueTmpl),
    /// Remove the body.
    Empty,
}

/// How a JSON body is written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reformat {
    /// No whitespace.
    Compact,
    /// Indented.
    Pretty,
}

/// One JSON pointer edit; a `*` segment stands for every element or member.
#[derive(Debug)]
pub enum JsonOp {
    /// Remove the member or element.
    Remove(Vec<String>),
    /// Set a member or element (created when missing).
    Set(Vec<String>, ValueTmpl),
    /// Insert into a list at an index (`-`: at the end).
    Insert(Vec<String>, ValueTmpl),
    /// Remove a list's last element.
    Pop(Vec<String>),
    /// Remove a list's first element.
    Shift(Vec<String>),
    /// Reverse a list.
    Reverse(Vec<String>),
}

/// The request as the proxy received it.
#[derive(Debug, Clone, Default)]
pub struct RequestView {
    /// Method.
    pub method: String,
    /// Path without the query, as sent.
    pub path: String,
    /// Query parameters in order, percent-decoded.
    pub query: Vec<(String, String)>,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// `http://host:port` as the client reached the proxy.
    pub origin: String,
}

impl RequestView {
    /// First value of a query parameter.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path with the query encoded again.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let q: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    crate::template::encode_component(k),
                    crate::template::encode_component(v)
                )
            })
            .collect();
        format!("{}?{}", self.path, q.join("&"))
    }
}

/// An answer on its way to the client.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers in order (names as received).
    pub headers: Vec<(String, String)>,
    /// The body when it is held in memory (None: it streams from upstream unchanged).
    pub body: Option<Vec<u8>>,
}

impl Answer {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Removes every value of a header.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Replaces every value of a header with one.
    pub fn set_header(&mut self, name: &str, value: String) {
        match self
            .headers
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                self.headers[i].1 = value;
                let mut seen = false;
                self.headers.retain(|(k, _)| {
                    if !k.eq_ignore_ascii_case(name) {
                        return true;
                    }
                    let keep = !seen;
                    seen = true;
                    keep
                });
            }
            None => self.headers.push((name.to_string(), value)),
        }
    }
}

/// The template context of a rule: `request` (method, path, target, query, headers,
/// origin), `captures` (the path regex groups, 0 = the whole match), once forwarded `answer`
/// (status, headers with lower-case names, json: the parsed body or none, size), and in a
/// header `set` the header's current `value` (none when absent).
pub fn context(
    req: &RequestView,
    captures: &[String],
    answer: Option<(&Answer, Option<&J>)>,
    value: Option<&str>,
) -> Value {
    let lower = |h: &[(String, String)]| {
        let mut m: IndexMap<String, Value> = IndexMap::new();
        for (k, v) in h {
            m.entry(k.to_ascii_lowercase())
                .or_insert_with(|| Value::from(v.clone()));
        }
        map_value(m)
    };
    let mut query: IndexMap<String, Value> = IndexMap::new();
    for (k, v) in &req.query {
        query
            .entry(k.clone())
            .or_insert_with(|| Value::from(v.clone()));
    }
    let request = map_value([
        ("method", Value::from(req.method.clone())),
        ("path", Value::from(req.path.clone())),
        ("target", Value::from(req.target())),
        ("query", map_value(query)),
        ("headers", lower(&req.headers)),
        ("origin", Value::from(req.origin.clone())),
    ]);
    let mut top = vec![
        ("request", request),
        ("captures", Value::from(captures.to_vec())),
    ];
    if let Some((a, json)) = answer {
        top.push((
            "answer",
            map_value([
                ("status", Value::from(a.status)),
                ("headers", lower(&a.headers)),
                ("json", json.map_or(Value::from(()), from_json)),
                (
                    "size",
                    Value::from(a.body.as_ref().map_or(0, |b| b.len() as u64)),
                ),
            ]),
        ));
    }
    top.push(("value", value.map_or(Value::from(()), Value::from)));
    map_value(top)
}

// ----- applying edits to a held answer -------------------------------------------------------

/// Applies a body edit to bytes.
pub fn edit_body(edit: &BodyEdit, body: &mut Vec<u8>, ctx: &Value) -> Result<(), Diagnostic> {
    match edit {
        BodyEdit::Flip(at) => {
            let len = body.len() as i64;
            let i = if *at < 0 { len + at } else { *at };
            if (0..len).contains(&i) {
                body[i as usize] ^= 0xff;
            }
        }
        BodyEdit::Truncate(n) => body.truncate(*n as usize),
        BodyEdit::Prepend(t) => {
            let mut out = t.render(ctx)?.into_bytes();
            out.append(body);
            *body = out;
        }
        BodyEdit::Append(t) => body.extend_from_slice(t.render(ctx)?.as_bytes()),
        BodyEdit::Text(t) => *body = t.render(ctx)?.into_bytes(),
        BodyEdit::Json(v) => *body = v.eval_json_bytes(ctx)?,
        BodyEdit::Empty => body.clear(),
    }
    Ok(())
}

/// Applies JSON pointer edits to a document.
pub fn edit_json(ops: &[JsonOp], doc: &mut J, ctx: &Value) -> Result<(), Diagnostic> {
    for op in ops {
        match op {
            JsonOp::Remove(path) => at_parents(doc, path, &mut |parent, last| match parent {
                J::Object(m) => {
                    m.shift_remove(last);
                }
                J::Array(a) => {
                    if let Some(i) = index(last, a.len()) {
                        a.remove(i);
                    }
                }
                _ => {}
            }),
            JsonOp::Set(path, v) => {
                let value = v.eval_json(ctx)?;
                at_parents(doc, path, &mut |parent, last| match parent {
                    J::Object(m) => {
                        m.insert(last.to_string(), value.clone());
                    }
                    J::Array(a) => {
                        if last == "-" {
                            a.push(value.clone());
                        } else if let Some(i) = index(last, a.len()) {
                            a[i] = value.clone();
                        }
                    }
                    _ => {}
                });
            }
            JsonOp::Insert(path, v) => {
                let value = v.eval_json(ctx)?;
                at_parents(doc, path, &mut |parent, last| {
                    if let J::Array(a) = parent {
                        let i = if last == "-" {
                            Some(a.len())
                        } else {
                            last.parse::<usize>().ok().filter(|i| *i <= a.len())
                        };
                        if let Some(i) = i {
                            a.insert(i, value.clone());
                        }
                    }
                });
            }
            JsonOp::Pop(path) => at_all(doc, path, &mut |v| {
                if let J::Array(a) = v {
                    a.pop();
                }
            }),
            JsonOp::Shift(path) => at_all(doc, path, &mut |v| {
                if let J::Array(a) = v {
                    if !a.is_empty() {
                        a.remove(0);
                    }
                }
            }),
            JsonOp::Reverse(path) => at_all(doc, path, &mut |v| {
                if let J::Array(a) = v {
                    a.reverse();
                }
            }),
        }
    }
    Ok(())
}

fn index(seg: &str, len: usize) -> Option<usize> {
    seg.parse::<usize>().ok().filter(|i| *i < len)
}

/// Calls `f` on every value the path reaches (`*` = every element or member).
fn at_all(doc: &mut J, path: &[String], f: &mut dyn FnMut(&mut J)) {
    let Some((first, rest)) = path.split_first() else {
        f(doc);
        return;
    };
    match doc {
        J::Object(m) if first == "*" => m.values_mut().for_each(|v| at_all(v, rest, f)),
        J::Array(a) if first == "*" => a.iter_mut().for_each(|v| at_all(v, rest, f)),
        J::Object(m) => {
            if let Some(v) = m.get_mut(first.as_str()) {
                at_all(v, rest, f);
            }
        }
        J::Array(a) => {
            let len = a.len();
            if let Some(i) = index(first, len) {
                at_all(&mut a[i], rest, f);
            }
        }
        _ => {}
    }
}

/// Calls `f` on the parent of every value the path names, with the last segment.
fn at_parents(doc: &mut J, path: &[String], f: &mut dyn FnMut(&mut J, &str)) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    at_all(doc, parents, &mut |parent| {
        if last == "*" {
            // every member or element of the parent: apply to each key in turn
            let keys: Vec<String> = match parent {
                J::Object(m) => m.keys().cloned().collect(),
                J::Array(a) => (0..a.len()).rev().map(|i| i.to_string()).collect(),
                _ => Vec::new(),
            };
            for k in keys {
                f(parent, &k);
            }
        } else {
            f(parent, last);
        }
    });
}

/// Splits a JSON pointer into unescaped segments.
fn pointer_segments(p: &str, pos: &Pos) -> Result<Vec<String>, Diagnostic> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(
            Diagnostic::new(pos.clone(), format!("`{p}` is not a JSON pointer")).with_hint(
                "a JSON pointer starts with `/`, e.g. `/tags/0` or `/manifests/*/annotations`",
            ),
        );
    };
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

// ----- reading the YAML ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    #[serde(default)]
    alterations: Vec<Raw>,
    #[serde(default)]
    unprovoked: Vec<Located<UnprovokedDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnprovokedDef {
    req: Vec<String>,
    why: String,
}

/// Requirements no violation breaks, and why none can be provoked from outside.
#[derive(Debug, Clone)]
pub struct Unprovoked {
    /// The requirement ids.
    pub req: Vec<String>,
    /// Why a proxy in front of a registry cannot make a case FAIL on them.
    pub why: String,
    /// Where the note is written.
    pub pos: Pos,
}

/// The `unprovoked` notes of every alteration file.
pub fn unprovoked(files: &[(PathBuf, Node)]) -> Vec<Unprovoked> {
    let mut out = Vec::new();
    for (_, node) in files {
        if let Ok(def) = from_node::<FileDef>(node) {
            out.extend(def.unprovoked.into_iter().map(|u| Unprovoked {
                req: u.value.req,
                why: u.value.why,
                pos: u.pos,
            }));
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlterationDef {
    id: Located<String>,
    kind: Kind,
    summary: String,
    #[serde(default)]
    req: Vec<String>,
    #[serde(default)]
    spec: Vec<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default, rename = "match")]
    match_: Option<Raw>,
    #[serde(default)]
    edit: Option<Raw>,
    #[serde(default)]
    rules: Vec<Raw>,
    #[serde(default)]
    caught_by: Vec<Located<String>>,
    #[serde(default)]
    because: Option<String>,
    #[serde(default)]
    filter: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    #[serde(rename = "match", default)]
    match_: Option<Raw>,
    #[serde(default)]
    edit: Option<Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchDef {
    #[serde(default)]
    method: Option<Raw>,
    #[serde(default)]
    path: Option<Located<String>>,
    #[serde(default)]
    query: IndexMap<String, Raw>,
    #[serde(default)]
    headers: IndexMap<String, Raw>,
    #[serde(default)]
    status: Option<Raw>,
    #[serde(default)]
    answer_headers: IndexMap<String, Raw>,
    #[serde(default)]
    json: IndexMap<String, Raw>,
    #[serde(default)]
    size: Option<SizeDef>,
    #[serde(default)]
    when: Option<Located<String>>,
    #[serde(default)]
    nth: Option<Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeDef {
    #[serde(default)]
    min: Option<u64>,
    #[serde(default)]
    max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NthDef {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    to: Option<u64>,
    #[serde(default)]
    per: Option<Per>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditDef {
    #[serde(default)]
    respond: Option<CannedDef>,
    #[serde(default)]
    forward: Option<ForwardDef>,
    #[serde(default)]
    rotate: Option<RotateDef>,
    #[serde(default)]
    paginate: Option<PaginateDef>,
    #[serde(default)]
    status: Option<Located<u16>>,
    #[serde(default)]
    headers: Option<HeadersDef>,
    #[serde(default)]
    body: Option<Raw>,
    #[serde(default)]
    json: Vec<Raw>,
    #[serde(default)]
    reformat: Option<Reformat>,
    #[serde(default)]
    stale: bool,
    #[serde(default)]
    chunked: bool,
    #[serde(default)]
    delay: Option<u64>,
    #[serde(default)]
    close: bool,
    #[serde(default)]
    drop: bool,
    #[serde(default)]
    hang: bool,
    #[serde(default)]
    cut: Option<u64>,
    #[serde(default)]
    body_on_head: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedDef {
    status: Located<u16>,
    #[serde(default)]
    headers: IndexMap<String, Located<String>>,
    #[serde(default)]
    body: Option<Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardDef {
    #[serde(default)]
    path: Option<Located<String>>,
    #[serde(default)]
    query: Option<QueryEditDef>,
    #[serde(default)]
    headers: Option<QueryEditDef>,
    #[serde(default)]
    drop_body: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryEditDef {
    #[serde(default)]
    set: IndexMap<String, Located<String>>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateDef {
    param: String,
    location: Located<String>,
    refuse: CannedDef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaginateDef {
    list: Located<String>,
    size: Located<usize>,
    cursor: String,
    #[serde(default)]
    limit: Option<String>,
    by: CursorBy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersDef {
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    rewrite: IndexMap<String, RewriteDef>,
    #[serde(default)]
    set: IndexMap<String, Located<String>>,
    #[serde(default)]
    add: IndexMap<String, Located<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewriteDef {
    from: Located<String>,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyDef {
    #[serde(default)]
    flip: Option<i64>,
    #[serde(default)]
    truncate: Option<u64>,
    #[serde(default)]
    prepend: Option<Located<String>>,
    #[serde(default)]
    append: Option<Located<String>>,
    #[serde(default)]
    text: Option<Located<String>>,
    #[serde(default)]
    json: Option<Raw>,
    #[serde(default)]
    empty: Option<bool>,
}

/// Records the error of `r` and gives its value.
fn ok<T>(diags: &mut Diagnostics, r: Result<T, Diagnostic>) -> Option<T> {
    r.map_err(|d| diags.push(d)).ok()
}

/// The grammar of an alteration id: it becomes a repository path component.
static ID: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new("^[a-z0-9]+(-[a-z0-9]+)*$").expect("static regex")
});

/// Compiles one alteration file (its parsed tree).
pub fn compile_file(node: &Node) -> Result<Vec<Alteration>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let def: FileDef = from_node(node).map_err(Diagnostics::from)?;
    if def.schema_version.is_some_and(|v| v != 1) {
        diags.push(Diagnostic::new(
            node.key_pos("schemaVersion")
                .cloned()
                .unwrap_or_else(|| node.pos.clone()),
            "unsupported schemaVersion (this engine reads version 1)",
        ));
    }
    let mut out = Vec::new();
    for raw in &def.alterations {
        if let Some(a) = compile_alteration(&mut diags, &raw.0) {
            out.push(a);
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Compiles every alteration file, checking that ids are unique across them.
pub fn compile_all(files: &[(PathBuf, Node)]) -> Result<Vec<Alteration>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut all: Vec<Alteration> = Vec::new();
    for (_, node) in files {
        match compile_file(node) {
            Ok(list) => all.extend(list),
            Err(d) => diags.0.extend(d.0),
        }
    }
    let mut seen: IndexMap<String, Pos> = IndexMap::new();
    for a in &all {
        if let Some(first) = seen.get(&a.id) {
            diags.push(
                Diagnostic::new(a.pos.clone(), format!("duplicate alteration id `{}`", a.id))
                    .with_hint(format!("first defined at {first}")),
            );
        } else {
            seen.insert(a.id.clone(), a.pos.clone());
        }
    }
    if diags.is_empty() {
        Ok(all)
    } else {
        Err(diags)
    }
}

fn compile_alteration(diags: &mut Diagnostics, node: &Node) -> Option<Alteration> {
    let def: AlterationDef = ok(diags, from_node(node))?;
    let before = diags.0.len();
    if !ID.is_match(&def.id.value) {
        diags.push(
            Diagnostic::new(
                def.id.pos.clone(),
                format!(
                    "alteration id `{}` is not lower-case words joined by `-`",
                    def.id.value
                ),
            )
            .with_hint("the id names the repositories of its run, e.g. `blob-put-not-201`"),
        );
    }
    let mut rules = Vec::new();
    match (&def.match_, &def.edit, def.rules.is_empty()) {
        (m, Some(e), true) => {
            if let Some(r) = compile_rule(diags, m.as_ref(), e, node.pos.clone()) {
                rules.push(r);
            }
        }
        (None, None, false) => {
            for raw in &def.rules {
                let Some(rd) = ok(diags, from_node::<RuleDef>(&raw.0)) else {
                    continue;
                };
                let Some(e) = &rd.edit else {
                    diags.push(Diagnostic::new(raw.0.pos.clone(), "a rule needs an `edit`"));
                    continue;
                };
                if let Some(r) = compile_rule(diags, rd.match_.as_ref(), e, raw.0.pos.clone()) {
                    rules.push(r);
                }
            }
        }
        (_, _, false) => diags.push(
            Diagnostic::new(
                node.pos.clone(),
                "an alteration has `rules`, or `match` and `edit`, not both",
            )
            .with_hint("move the `match`/`edit` pair into `rules`"),
        ),
        (_, None, true) => diags.push(
            Diagnostic::new(
                node.pos.clone(),
                "an alteration needs an `edit` (or `rules`)",
            )
            .with_hint("e.g. `match: {method: PUT, status: 201}` and `edit: {status: 200}`"),
        ),
    }
    match def.kind {
        Kind::Violation if def.caught_by.is_empty() => diags.push(
            Diagnostic::new(
                node.key_pos("kind")
                    .cloned()
                    .unwrap_or_else(|| node.pos.clone()),
                "a violation names the tests that must FAIL in `caught_by`",
            )
            .with_hint("test id prefixes as `oci-conform list` prints them"),
        ),
        Kind::Variant if !def.caught_by.is_empty() || def.because.is_some() => {
            diags.push(Diagnostic::new(
                node.key_pos("caught_by")
                    .or_else(|| node.key_pos("because"))
                    .cloned()
                    .unwrap_or_else(|| node.pos.clone()),
                "a variant is conformant: nothing may FAIL, so it has no `caught_by` or `because`",
            ));
        }
        _ => {}
    }
    if diags.0.len() > before {
        return None;
    }
    Some(Alteration {
        id: def.id.value,
        kind: def.kind,
        summary: def.summary,
        req: def.req,
        spec: def.spec,
        note: def.note,
        targets: def.targets,
        versions: def.versions,
        rules,
        caught_by: def.caught_by,
        because: def.because,
        filter: def.filter,
        pos: node.pos.clone(),
    })
}

fn compile_rule(diags: &mut Diagnostics, m: Option<&Raw>, e: &Raw, pos: Pos) -> Option<Rule> {
    let before = diags.0.len();
    let when = match m {
        Some(raw) => compile_match(diags, &raw.0),
        None => Some(Match::default()),
    };
    let edit = compile_edit(diags, &e.0);
    let (when, edit) = (when?, edit?);
    if edit.respond.is_some() && when.looks_at_answer() {
        diags.push(
            Diagnostic::new(
                e.0.key_pos("respond").cloned().unwrap_or_else(|| e.0.pos.clone()),
                "a rule that answers by itself (`respond`) cannot look at the upstream answer",
            )
            .with_hint("its `match` may only name method, path, query, headers, nth (and a `when` without `answer`)"),
        );
    }
    if diags.0.len() > before {
        return None;
    }
    Some(Rule { when, edit, pos })
}

fn compile_match(diags: &mut Diagnostics, node: &Node) -> Option<Match> {
    let def: MatchDef = ok(diags, from_node(node))?;
    let methods = match &def.method {
        None => Vec::new(),
        Some(raw) => strings(diags, &raw.0, "a method or a list of methods")?
            .into_iter()
            .map(|m| m.to_ascii_uppercase())
            .collect(),
    };
    let path = def
        .path
        .as_ref()
        .and_then(|p| ok(diags, regex(&p.value, &p.pos)));
    let conds = |diags: &mut Diagnostics, m: &IndexMap<String, Raw>, lower: bool| {
        m.iter()
            .filter_map(|(k, v)| {
                let name = if lower {
                    k.to_ascii_lowercase()
                } else {
                    k.clone()
                };
                ok(diags, cond(&v.0)).map(|c| (name, c))
            })
            .collect::<Vec<_>>()
    };
    let query = conds(diags, &def.query, false);
    let headers = conds(diags, &def.headers, true);
    let answer_headers = conds(diags, &def.answer_headers, true);
    let mut json = Vec::new();
    for (k, v) in &def.json {
        let p = v.0.pos.clone();
        if ok(diags, pointer_segments(k, &p)).is_some() {
            if let Some(c) = ok(diags, cond(&v.0)) {
                json.push((k.clone(), c));
            }
        }
    }
    let status = def
        .status
        .as_ref()
        .and_then(|s| ok(diags, status_set(&s.0)));
    let when = def
        .when
        .as_ref()
        .and_then(|w| ok(diags, Expr::new(&w.value, &w.pos)));
    let nth = def.nth.as_ref().and_then(|n| ok(diags, nth(&n.0)));
    Some(Match {
        methods,
        path,
        query,
        headers,
        status,
        answer_headers,
        json,
        size: def.size.map(|s| (s.min, s.max)),
        when,
        nth,
    })
}

fn compile_edit(diags: &mut Diagnostics, node: &Node) -> Option<Edit> {
    let def: EditDef = ok(diags, from_node(node))?;
    let before = diags.0.len();
    let respond = def.respond.as_ref().and_then(|c| canned(diags, c));
    let forward = def.forward.as_ref().map(|f| Forward {
        path: f
            .path
            .as_ref()
            .and_then(|p| ok(diags, Tmpl::new(&p.value, &p.pos))),
        set_query: f
            .query
            .iter()
            .flat_map(|q| q.set.iter())
            .filter_map(|(k, v)| ok(diags, Tmpl::new(&v.value, &v.pos)).map(|t| (k.clone(), t)))
            .collect(),
        remove_query: f.query.iter().flat_map(|q| q.remove.clone()).collect(),
        remove_headers: f.headers.iter().flat_map(|h| h.remove.clone()).collect(),
        set_headers: f
            .headers
            .iter()
            .flat_map(|h| h.set.iter())
            .filter_map(|(k, v)| ok(diags, Tmpl::new(&v.value, &v.pos)).map(|t| (k.clone(), t)))
            .collect(),
        drop_body: f.drop_body,
    });
    let rotate = def.rotate.as_ref().and_then(|r| {
        let location = ok(diags, regex(&r.location.value, &r.location.pos))?;
        let refuse = canned(diags, &r.refuse)?;
        Some(Rotate {
            param: r.param.clone(),
            location,
            refuse,
        })
    });
    let paginate = def.paginate.as_ref().and_then(|p| {
        ok(diags, pointer_segments(&p.list.value, &p.list.pos))?;
        if p.size.value == 0 {
            diags.push(Diagnostic::new(
                p.size.pos.clone(),
                "a page holds at least one item",
            ));
            return None;
        }
        Some(Paginate {
            list: p.list.value.clone(),
            size: p.size.value,
            cursor: p.cursor.clone(),
            limit: p.limit.clone(),
            by: p.by,
        })
    });
    let status = def.status.as_ref().and_then(|s| ok(diags, status_code(s)));
    let mut headers = HeaderEdits::default();
    if let Some(h) = &def.headers {
        headers.remove = h.remove.clone();
        for (name, r) in &h.rewrite {
            if let Some(re) = ok(diags, regex(&r.from.value, &r.from.pos)) {
                headers.rewrite.push((name.clone(), re, r.to.clone()));
            }
        }
        for (name, v) in &h.set {
            if let Some(t) = ok(diags, Tmpl::new(&v.value, &v.pos)) {
                headers.set.push((name.clone(), t));
            }
        }
        for (name, v) in &h.add {
            if let Some(t) = ok(diags, Tmpl::new(&v.value, &v.pos)) {
                headers.add.push((name.clone(), t));
            }
        }
    }
    let body = def.body.as_ref().and_then(|b| body_edit(diags, &b.0));
    let json = def
        .json
        .iter()
        .filter_map(|op| json_op(diags, &op.0))
        .collect();
    if [def.drop, def.hang, def.cut.is_some()]
        .iter()
        .filter(|b| **b)
        .count()
        > 1
    {
        diags.push(Diagnostic::new(
            node.pos.clone(),
            "`drop`, `hang` and `cut` each end the exchange: use one",
        ));
    }
    if def.respond.is_some() && (def.forward.is_some() || def.paginate.is_some()) {
        diags.push(Diagnostic::new(
            node.pos.clone(),
            "`respond` answers without forwarding: `forward` and `paginate` would never apply",
        ));
    }
    let edit = Edit {
        respond,
        forward,
        rotate,
        paginate,
        status,
        headers,
        body,
        json,
        reformat: def.reformat,
        stale: def.stale,
        chunked: def.chunked,
        delay_ms: def.delay.unwrap_or(0),
        close: def.close,
        drop: def.drop,
        hang: def.hang,
        cut: def.cut,
        body_on_head: def.body_on_head,
    };
    if diags.0.len() > before {
        return None;
    }
    if edit.is_empty() {
        diags.push(
            Diagnostic::new(node.pos.clone(), "this edit changes nothing").with_hint(
                "set one of: status, headers, body, json, reformat, respond, forward, rotate, \
                 paginate, stale, chunked, delay, close, drop, hang, cut, body_on_head",
            ),
        );
        return None;
    }
    Some(edit)
}

impl Edit {
    fn is_empty(&self) -> bool {
        self.respond.is_none()
            && self.forward.is_none()
            && self.rotate.is_none()
            && self.paginate.is_none()
            && self.status.is_none()
            && self.headers.is_empty()
            && self.body.is_none()
            && self.json.is_empty()
            && self.reformat.is_none()
            && !self.stale
            && !self.chunked
            && self.delay_ms == 0
            && !self.close
            && !self.drop
            && !self.hang
            && self.cut.is_none()
            && !self.body_on_head
    }
}

fn canned(diags: &mut Diagnostics, c: &CannedDef) -> Option<Canned> {
    let status = ok(diags, status_code(&c.status))?;
    let headers = c
        .headers
        .iter()
        .filter_map(|(k, v)| ok(diags, Tmpl::new(&v.value, &v.pos)).map(|t| (k.clone(), t)))
        .collect();
    let body = match &c.body {
        Some(b) => Some(body_edit(diags, &b.0)?),
        None => None,
    };
    Some(Canned {
        status,
        headers,
        body,
    })
}

fn status_code(s: &Located<u16>) -> Result<u16, Diagnostic> {
    if (100..=599).contains(&s.value) {
        Ok(s.value)
    } else {
        Err(Diagnostic::new(
            s.pos.clone(),
            format!("{} is not an HTTP status (100-599)", s.value),
        ))
    }
}

fn regex(src: &str, pos: &Pos) -> Result<regex::Regex, Diagnostic> {
    regex::Regex::new(src)
        .map_err(|e| Diagnostic::new(pos.clone(), format!("invalid regular expression: {e}")))
}

/// A string or a list of strings.
fn strings(diags: &mut Diagnostics, node: &Node, what: &str) -> Option<Vec<String>> {
    match &node.value {
        Y::Str(s) => Some(vec![s.clone()]),
        Y::Seq(items) if items.iter().all(|i| i.as_str().is_some()) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(String::from))
                .collect(),
        ),
        other => {
            diags.push(Diagnostic::new(
                node.pos.clone(),
                format!("expected {what}, found {}", other.kind()),
            ));
            None
        }
    }
}

/// `true` (present), `false` (absent) or a regex the value must contain a match of.
fn cond(node: &Node) -> Result<Cond, Diagnostic> {
    match &node.value {
        Y::Bool(true) => Ok(Cond::Present(None)),
        Y::Bool(false) => Ok(Cond::Absent),
        Y::Str(s) => Ok(Cond::Present(Some(regex(s, &node.pos)?))),
        Y::Int(_) | Y::Float(_) => Ok(Cond::Present(Some(regex(
            &format!("^{}$", regex::escape(&node.scalar_text())),
            &node.pos,
        )?))),
        other => Err(Diagnostic::new(
            node.pos.clone(),
            format!(
                "expected true (present), false (absent) or a regex, found {}",
                other.kind()
            ),
        )),
    }
}

/// `200`, `"4xx"`, or a list of them.
fn status_set(node: &Node) -> Result<StatusSet, Diagnostic> {
    let one = |n: &Node| -> Result<(u16, u16), Diagnostic> {
        match &n.value {
            Y::Int(i) if (100..=599).contains(i) => Ok((*i as u16, *i as u16)),
            Y::Str(s) if s.len() == 3 && s.ends_with("xx") => match s[..1].parse::<u16>() {
                Ok(c) if (1..=5).contains(&c) => Ok((c * 100, c * 100 + 99)),
                _ => Err(Diagnostic::new(
                    n.pos.clone(),
                    format!("`{s}` is not a status class"),
                )),
            },
            _ => Err(Diagnostic::new(
                n.pos.clone(),
                format!(
                    "expected a status (200) or class (\"4xx\"), found `{}`",
                    n.scalar_text()
                ),
            )),
        }
    };
    match &node.value {
        Y::Seq(items) => items
            .iter()
            .map(one)
            .collect::<Result<_, _>>()
            .map(StatusSet),
        _ => one(node).map(|r| StatusSet(vec![r])),
    }
}

/// `2` (only the second), or `{from, to, per}`.
fn nth(node: &Node) -> Result<Nth, Diagnostic> {
    match &node.value {
        Y::Int(i) if *i >= 1 => Ok(Nth {
            from: *i as u64,
            to: Some(*i as u64),
            per: Per::Rule,
        }),
        Y::Map(_) => {
            let d: NthDef = from_node(node)?;
            let from = d.from.unwrap_or(1).max(1);
            if d.to.is_some_and(|t| t < from) {
                return Err(Diagnostic::new(node.pos.clone(), "`to` is before `from`"));
            }
            Ok(Nth {
                from,
                to: d.to,
                per: d.per.unwrap_or(Per::Rule),
            })
        }
        _ => Err(Diagnostic::new(
            node.pos.clone(),
            "expected an occurrence (1, 2, …) or {from, to, per}",
        )),
    }
}

fn body_edit(diags: &mut Diagnostics, node: &Node) -> Option<BodyEdit> {
    let def: BodyDef = ok(diags, from_node(node))?;
    let mut edits = Vec::new();
    if let Some(i) = def.flip {
        edits.push(BodyEdit::Flip(i));
    }
    if let Some(n) = def.truncate {
        edits.push(BodyEdit::Truncate(n));
    }
    for (t, make) in [
        (&def.prepend, BodyEdit::Prepend as fn(Tmpl) -> BodyEdit),
        (&def.append, BodyEdit::Append),
        (&def.text, BodyEdit::Text),
    ] {
        if let Some(t) = t {
            edits.push(make(ok(diags, Tmpl::new(&t.value, &t.pos))?));
        }
    }
    if let Some(j) = &def.json {
        edits.push(BodyEdit::Json(ok(diags, ValueTmpl::new(&j.0))?));
    }
    if def.empty == Some(true) {
        edits.push(BodyEdit::Empty);
    }
    if edits.len() != 1 {
        diags.push(
            Diagnostic::new(node.pos.clone(), "a body edit is exactly one of its keys")
                .with_hint("flip, truncate, prepend, append, text, json or empty: true"),
        );
        return None;
    }
    edits.pop()
}

/// One of `{remove: /p}`, `{set: {/p: v}}`, `{insert: {/p/0: v}}`, `{pop: /p}`,
/// `{shift: /p}`, `{reverse: /p}`.
fn json_op(diags: &mut Diagnostics, node: &Node) -> Option<JsonOp> {
    const OPS: &[&str] = &["remove", "set", "insert", "pop", "shift", "reverse"];
    let Y::Map(entries) = &node.value else {
        diags.push(Diagnostic::new(
            node.pos.clone(),
            "a JSON edit is a mapping such as `{remove: /name}`",
        ));
        return None;
    };
    let [(k, v)] = entries.as_slice() else {
        diags.push(Diagnostic::new(
            node.pos.clone(),
            "a JSON edit has exactly one key",
        ));
        return None;
    };
    let op = k.scalar_text();
    let path_of = |diags: &mut Diagnostics, n: &Node| -> Option<Vec<String>> {
        let Some(p) = n.as_str() else {
            diags.push(Diagnostic::new(
                n.pos.clone(),
                "expected a JSON pointer such as `/tags`",
            ));
            return None;
        };
        ok(diags, pointer_segments(p, &n.pos))
    };
    let with_value = |diags: &mut Diagnostics| -> Option<(Vec<String>, ValueTmpl)> {
        let Y::Map(pairs) = &v.value else {
            diags.push(Diagnostic::new(
                v.pos.clone(),
                format!("`{op}` takes a mapping from a JSON pointer to a value"),
            ));
            return None;
        };
        let [(p, value)] = pairs.as_slice() else {
            diags.push(Diagnostic::new(
                v.pos.clone(),
                format!("`{op}` takes one pointer"),
            ));
            return None;
        };
        let segs = ok(diags, pointer_segments(&p.scalar_text(), &p.pos))?;
        Some((segs, ok(diags, ValueTmpl::new(value))?))
    };
    Some(match op.as_str() {
        "remove" => JsonOp::Remove(path_of(diags, v)?),
        "pop" => JsonOp::Pop(path_of(diags, v)?),
        "shift" => JsonOp::Shift(path_of(diags, v)?),
        "reverse" => JsonOp::Reverse(path_of(diags, v)?),
        "set" => {
            let (p, val) = with_value(diags)?;
            JsonOp::Set(p, val)
        }
        "insert" => {
            let (p, val) = with_value(diags)?;
            JsonOp::Insert(p, val)
        }
        other => {
            let mut d = Diagnostic::new(k.pos.clone(), format!("unknown key `{other}`"));
            d.hint = Some(
                match crate::diag::did_you_mean(other, OPS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("expected one of: {}", OPS.join(", ")),
                },
            );
            diags.push(d);
            return None;
        }
    })
}

/// Ids of `alterations` that appear more than once (for callers that merge lists).
pub fn duplicate_ids(alterations: &[Alteration]) -> Vec<String> {
    let mut seen = HashSet::new();
    alterations
        .iter()
        .filter(|a| !seen.insert(a.id.as_str()))
        .map(|a| a.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Alteration>, Diagnostics> {
        let node = crate::yaml::parse(std::path::Path::new("test.yaml"), text).expect("yaml");
        compile_file(&node)
    }

    fn one(text: &str) -> Alteration {
        match parse(text) {
            Ok(mut v) => v.remove(0),
            Err(d) => panic!("{}", d.render()),
        }
    }

    fn req(method: &str, target: &str) -> RequestView {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        RequestView {
            method: method.into(),
            path: path.into(),
            query: query
                .split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
            headers: vec![("range".into(), "bytes=0-9".into())],
            origin: "http://127.0.0.1:1".into(),
        }
    }

    const PUT_200: &str = "
alterations:
  - id: put-200
    kind: violation
    summary: PUT answers 200
    match: {method: PUT, path: /blobs/uploads/, status: [201, \"4xx\"], query: {digest: '^sha256:', mount: false}}
    edit: {status: 200}
    caught_by: [blobs/put]
";

    #[test]
    fn a_match_reads_method_path_query_and_status() {
        let a = one(PUT_200);
        let m = &a.rules[0].when;
        assert!(m
            .request_holds(&req("PUT", "/v2/r/blobs/uploads/u?digest=sha256:ab"))
            .is_some());
        assert!(m
            .request_holds(&req("put", "/v2/r/blobs/uploads/u?digest=sha256:ab"))
            .is_some());
        assert!(m
            .request_holds(&req("PATCH", "/v2/r/blobs/uploads/u?digest=sha256:ab"))
            .is_none());
        assert!(
            m.request_holds(&req("PUT", "/v2/r/blobs/uploads/u"))
                .is_none(),
            "digest missing"
        );
        assert!(
            m.request_holds(&req(
                "PUT",
                "/v2/r/blobs/uploads/u?digest=sha256:ab&mount=x"
            ))
            .is_none(),
            "mount must be absent"
        );
        let answer = |s| Answer {
            status: s,
            ..Answer::default()
        };
        assert!(m.answer_holds(&answer(201), None));
        assert!(m.answer_holds(&answer(404), None));
        assert!(!m.answer_holds(&answer(202), None));
        assert_eq!(a.run_filter(&[]), vec!["blobs/put".to_string()]);
        assert_eq!(
            a.run_filter(&["blobs/put".to_string()]),
            vec!["blobs".to_string()],
            "a test stands for its group"
        );
    }

    #[test]
    fn json_edits_follow_pointers_and_wildcards() {
        let a = one("
alterations:
  - id: j
    kind: variant
    summary: s
    edit:
      json:
        - remove: /name
        - remove: /manifests/*/annotations
        - set: {/manifests/*/artifactType: '{{ request.query.t }}'}
        - insert: {/tags/0: first}
        - reverse: /tags
        - pop: /tags
        - shift: /list
");
        let mut doc = serde_json::json!({
            "name": "r", "tags": ["a", "b"], "list": [1, 2, 3],
            "manifests": [{"annotations": {"x": "y"}, "d": 1}, {"d": 2}]
        });
        let r = req("GET", "/x?t=type");
        let ctx = context(&r, &[], None, None);
        edit_json(&a.rules[0].edit.json, &mut doc, &ctx).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "tags": ["b", "a"], "list": [2, 3],
                "manifests": [{"d": 1, "artifactType": "type"}, {"d": 2, "artifactType": "type"}]
            })
        );
    }

    #[test]
    fn body_edits_change_bytes() {
        let ctx = context(&req("GET", "/"), &[], None, None);
        let mut b = b"abc".to_vec();
        edit_body(&BodyEdit::Flip(-1), &mut b, &ctx).unwrap();
        assert_eq!(b, [b'a', b'b', b'c' ^ 0xff]);
        edit_body(&BodyEdit::Truncate(1), &mut b, &ctx).unwrap();
        assert_eq!(b, b"a");
        edit_body(&BodyEdit::Prepend(Tmpl::literal(" ")), &mut b, &ctx).unwrap();
        assert_eq!(b, b" a");
        let mut empty = Vec::new();
        edit_body(&BodyEdit::Flip(0), &mut empty, &ctx).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn nth_and_conditions_compile() {
        let a = one("
alterations:
  - id: n
    kind: variant
    summary: s
    match: {nth: {from: 2, per: path}, headers: {Range: '^bytes='}, json: {/manifests/0: true}}
    edit: {body: {flip: 0}}
");
        let m = &a.rules[0].when;
        assert_eq!(
            m.nth,
            Some(Nth {
                from: 2,
                to: None,
                per: Per::Path
            })
        );
        assert!(
            m.request_holds(&req("GET", "/")).is_some(),
            "header names compare lower-case"
        );
        let doc = serde_json::json!({"manifests": [1]});
        assert!(m.answer_holds(&Answer::default(), Some(&doc)));
        assert!(!m.answer_holds(
            &Answer::default(),
            Some(&serde_json::json!({"manifests": []}))
        ));
        assert!(a.rules[0].needs_body());
    }

    #[test]
    fn mistakes_are_reported_with_their_line() {
        let cases = [
            (
                "    match: {path: '(' }\n    edit: {status: 200}\n",
                "invalid regular expression",
            ),
            ("    edit: {status: 700}\n", "not an HTTP status"),
            ("    edit: {body: {flip: 0, truncate: 1}}\n", "exactly one"),
            ("    edit: {json: [{rmove: /a}]}\n", "did you mean `remove`"),
            ("    edit: {}\n", "changes nothing"),
            (
                "    match: {status: 200}\n    edit: {respond: {status: 201}}\n",
                "cannot look at the upstream answer",
            ),
            ("    edit: {stauts: 200}\n", "unknown key `stauts`"),
        ];
        for (body, want) in cases {
            let text =
                format!("alterations:\n  - id: bad\n    kind: variant\n    summary: s\n{body}");
            let err = parse(&text).expect_err(body).render();
            assert!(err.contains(want), "{body}: {err}");
            assert!(err.contains("test.yaml:"), "{err}");
        }
        let err = parse(
            "alterations:\n  - {id: Bad_Id, kind: violation, summary: s, edit: {status: 200}}\n",
        )
        .expect_err("bad id")
        .render();
        assert!(
            err.contains("lower-case") && err.contains("caught_by"),
            "{err}"
        );
    }

    #[test]
    fn set_header_keeps_one_value() {
        let mut a = Answer {
            headers: vec![
                ("Link".into(), "a".into()),
                ("x".into(), "1".into()),
                ("link".into(), "b".into()),
            ],
            ..Answer::default()
        };
        a.set_header("LINK", "c".into());
        assert_eq!(
            a.headers,
            vec![
                ("Link".to_string(), "c".to_string()),
                ("x".into(), "1".into())
            ]
        );
    }
}
