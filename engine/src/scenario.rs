//! Scenario files: the test tree as data.
//!
//! A scenario file holds one node of the test tree: a **group** (`items:`) or a **case**
//! (`steps:`), or a `use:` of another file. YAML is read into the `*Def` structs (what the
//! maintainer wrote), then compiled into the `*Spec` structs the planner and runner use:
//! templates compiled, shorthands expanded, every problem reported with its file:line.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::de::{from_node, Located, Raw};
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::template::{Expr, Tmpl, ValueTmpl};
use crate::yaml::{Node, Value as Y};

/// How binding a requirement is; a failed SHOULD/MAY check is a warning, not a FAIL.
#[derive(
    Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize,
)]
pub enum Level {
    /// An optional behaviour.
    #[serde(rename = "MAY")]
    May,
    /// A recommendation.
    #[serde(rename = "SHOULD")]
    Should,
    /// An absolute requirement.
    #[default]
    #[serde(rename = "MUST")]
    Must,
}

impl Level {
    /// The keyword as the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        }
    }
}

// ----- what the YAML says --------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeDef {
    #[serde(rename = "schemaVersion", default)]
    _schema_version: Option<u32>,
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    #[serde(default)]
    name: Option<Located<String>>,
    #[serde(default)]
    key: Option<Located<String>>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(rename = "use", default)]
    use_: Option<Located<String>>,
    #[serde(default)]
    with: IndexMap<String, Raw>,
    /// Read from the node itself by `params_spec` (it needs the positions of the names).
    #[serde(default, rename = "params")]
    _params: Option<Raw>,
    #[serde(default)]
    when: Option<Located<String>>,
    #[serde(default)]
    skip_unless: Option<Located<String>>,
    #[serde(default)]
    skip_reason: Option<Located<String>>,
    #[serde(default)]
    requires: Option<Located<String>>,
    #[serde(default)]
    for_each: Option<IndexMap<String, Located<String>>>,
    #[serde(default)]
    vars: IndexMap<String, Raw>,
    #[serde(default)]
    data: Option<Located<String>>,
    #[serde(default)]
    api: Option<Raw>,
    #[serde(default)]
    spec: Vec<String>,
    #[serde(default)]
    req: Vec<String>,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    parallel: Option<bool>,
    #[serde(default)]
    exclusive: Vec<Located<String>>,
    #[serde(default)]
    shared: Vec<Located<String>>,
    #[serde(default)]
    apart: Option<Raw>,
    #[serde(default)]
    items: Option<Vec<Raw>>,
    #[serde(default)]
    steps: Option<Vec<Raw>>,
    #[serde(default)]
    cleanup: Vec<Raw>,
    #[serde(default)]
    export: IndexMap<String, Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDef {
    #[serde(default)]
    name: Option<Located<String>>,
    #[serde(default)]
    when: Option<Located<String>>,
    #[serde(default)]
    for_each: Option<IndexMap<String, Located<String>>>,
    #[serde(default)]
    set: IndexMap<String, Raw>,
    #[serde(default)]
    request: Option<RequestDef>,
    #[serde(default)]
    expect: Option<ExpectDef>,
    #[serde(default)]
    unsupported: Vec<UnsupportedDef>,
    #[serde(default)]
    capture: IndexMap<String, Raw>,
    #[serde(default)]
    steps: Option<Vec<Raw>>,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    req: Vec<String>,
    #[serde(default)]
    retry: Option<RetryDef>,
    #[serde(default)]
    stop_on_failure: Option<bool>,
    #[serde(default)]
    creates: Option<Located<String>>,
    #[serde(default)]
    deletes: Option<Located<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestDef {
    method: Located<String>,
    url: Located<String>,
    #[serde(default)]
    query: IndexMap<String, Raw>,
    #[serde(default)]
    headers: IndexMap<String, Located<String>>,
    #[serde(default)]
    body: Option<BodyDef>,
    #[serde(default)]
    follow_redirects: Option<bool>,
    #[serde(default)]
    chunked: Option<bool>,
    #[serde(default)]
    auth: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyDef {
    #[serde(default)]
    content: Option<Located<String>>,
    #[serde(default)]
    range: Option<Located<String>>,
    #[serde(default)]
    text: Option<Located<String>>,
    #[serde(default)]
    json: Option<Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectDef {
    #[serde(default)]
    status: Option<Raw>,
    #[serde(default)]
    headers: IndexMap<String, Raw>,
    #[serde(default)]
    body: Option<Located<BodyExpectDef>>,
    #[serde(default)]
    assert: Vec<AssertDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyExpectDef {
    #[serde(default)]
    content: Option<Located<String>>,
    #[serde(default)]
    range: Option<Located<String>>,
    #[serde(default)]
    empty: Option<bool>,
    #[serde(default)]
    text: Option<Located<String>>,
    #[serde(default)]
    json: Option<IndexMap<String, Raw>>,
    #[serde(default)]
    schema: Option<Located<String>>,
    #[serde(default)]
    if_json: Option<bool>,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    req: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherDef {
    #[serde(default)]
    when: Option<Located<String>>,
    #[serde(default)]
    present: Option<Raw>,
    #[serde(default)]
    absent: Option<Raw>,
    #[serde(default)]
    equals: Option<Raw>,
    #[serde(default)]
    one_of: Option<Raw>,
    #[serde(default)]
    matches: Option<Located<String>>,
    #[serde(default)]
    contains: Option<Raw>,
    #[serde(default)]
    length: Option<Raw>,
    #[serde(rename = "type", default)]
    type_: Option<JsonType>,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    req: Vec<String>,
    #[serde(default)]
    message: Option<Located<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertDef {
    that: Located<String>,
    message: Located<String>,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default)]
    req: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsupportedDef {
    #[serde(default)]
    status: Option<Raw>,
    #[serde(default)]
    headers: IndexMap<String, Raw>,
    #[serde(default)]
    when: Option<Located<String>>,
    reason: Located<String>,
    #[serde(default)]
    then: Vec<Raw>,
    #[serde(default)]
    stop: Option<bool>,
    #[serde(default)]
    capture: IndexMap<String, Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryDef {
    attempts: u32,
    #[serde(default)]
    delay_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamDef {
    #[serde(rename = "type")]
    type_: ParamType,
    #[serde(default, rename = "default")]
    _default: Option<Raw>,
    doc: String,
}

/// The type a declared parameter takes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// `true` or `false`.
    Boolean,
    /// A text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// A list.
    Array,
    /// A mapping.
    Object,
    /// Anything.
    Any,
}

impl ParamType {
    /// The name as `params:` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Boolean => "boolean",
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Array => "array",
            ParamType::Object => "object",
            ParamType::Any => "any",
        }
    }

    /// Whether `v` has this type.
    pub fn admits(self, v: &minijinja::value::Value) -> bool {
        use minijinja::value::ValueKind as K;
        match self {
            ParamType::Any => true,
            ParamType::Boolean => v.kind() == K::Bool,
            ParamType::String => v.kind() == K::String,
            ParamType::Integer => v.is_integer(),
            ParamType::Number => v.kind() == K::Number,
            ParamType::Array => v.kind() == K::Seq,
            ParamType::Object => v.kind() == K::Map,
        }
    }
}

/// A parameter a file used with `use:` declares in its `params:` block.
#[derive(Debug)]
pub struct ParamSpec {
    /// The name the file reads.
    pub name: String,
    /// The type its value must have.
    pub type_: ParamType,
    /// The value when a use site does not give one (template over the use site's scope);
    /// none: the use site gives it, or its scope already defines it.
    pub default: Option<ValueTmpl>,
    /// What it does, in one line.
    pub doc: String,
    /// Where it is declared.
    pub pos: Pos,
}

/// JSON value types a matcher can require.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    /// JSON object.
    Object,
    /// JSON array.
    Array,
    /// JSON string.
    String,
    /// JSON number.
    Number,
    /// JSON integer.
    Integer,
    /// JSON boolean.
    Boolean,
    /// JSON null.
    Null,
}

// ----- compiled forms ------------------------------------------------------------------------

/// A node of the test tree, compiled.
#[derive(Debug)]
pub struct NodeSpec {
    /// Display name (template), as the official suite names nodes. A group without a name
    /// only groups: its children take its place in the tree.
    pub name: Option<Tmpl>,
    /// Suffix that makes the id of for_each expansions unique.
    pub key: Option<Tmpl>,
    /// One-line description.
    pub summary: Option<String>,
    /// Why the case is written the way it is (judgement calls, official-suite deviations).
    pub note: Option<String>,
    /// Where the node is written.
    pub pos: Pos,
    /// Another file's node this one stands for, with its parameters.
    pub uses: Option<Use>,
    /// The parameters this node takes when a file uses it (`params:`, at the top of a file).
    pub params: Vec<ParamSpec>,
    /// Omit the node (not counted) when false; evaluated at run time.
    pub when: Option<Expr>,
    /// Record the node as Skip (with `skip_reason`) when false; evaluated at run time.
    pub skip_unless: Option<Expr>,
    /// The reason recorded when `skip_unless` is false.
    pub skip_reason: Option<Tmpl>,
    /// Record the node as Disabled when this configuration condition is false.
    pub requires: Option<Expr>,
    /// Expand the node once per item of a list.
    pub for_each: Option<(String, Expr)>,
    /// Variables bound in the node's scope (plan time).
    pub vars: Vec<(String, ValueTmpl)>,
    /// Data label the results count under.
    pub data: Option<Tmpl>,
    /// API labels the results count under (empty renderings are dropped).
    pub api: Vec<Tmpl>,
    /// Spec anchors such as `end-4a`.
    pub spec: Vec<String>,
    /// Requirement ids such as `R45`.
    pub req: Vec<String>,
    /// Requirement level of the case.
    pub level: Option<Level>,
    /// Whether the children of this group may run concurrently.
    pub parallel: bool,
    /// Keys of shared resources this node must not use concurrently with others; each
    /// renders to a key or a list of keys (empty ones are dropped).
    pub exclusive: Vec<ValueTmpl>,
    /// Keys of shared resources this node only reads: it may run with other readers.
    pub shared: Vec<ValueTmpl>,
    /// Keys of operations that must not overlap in time, each with a class (a mapping).
    pub apart: Option<ValueTmpl>,
    /// Group or case.
    pub body: NodeBody,
}

/// A reference to another scenario file.
#[derive(Debug)]
pub struct Use {
    /// The referenced node.
    pub node: Arc<NodeSpec>,
    /// Parameters bound for it.
    pub with: Vec<(String, ValueTmpl)>,
}

/// What a node contains.
#[derive(Debug)]
pub enum NodeBody {
    /// Child nodes.
    Group(Vec<NodeSpec>),
    /// Steps of a test case.
    Case(CaseSpec),
    /// Only a `use:` (the referenced node provides the body).
    Use,
}

/// A test case.
#[derive(Debug)]
pub struct CaseSpec {
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
    /// Steps that always run at the end, even after a failure; their failures are not verdicts.
    pub cleanup: Vec<StepSpec>,
    /// Values written to enclosing scopes when the case ends (`status` is in the context).
    pub export: Vec<(String, ValueTmpl)>,
}

/// One step of a case.
#[derive(Debug)]
pub struct StepSpec {
    /// Optional name used in messages.
    pub name: Option<Tmpl>,
    /// Where the step is written.
    pub pos: Pos,
    /// Run only when true.
    pub when: Option<Expr>,
    /// Repeat the step (its request or sub-steps) for each item.
    pub for_each: Option<(String, Expr)>,
    /// Case variables set before the request.
    pub set: Vec<(String, ValueTmpl)>,
    /// The HTTP request, if any.
    pub request: Option<RequestSpec>,
    /// Checks on the answer (or, without a request, plain assertions).
    pub expect: ExpectSpec,
    /// Answers that mean "optional feature not supported": Skip with a reason.
    pub unsupported: Vec<UnsupportedSpec>,
    /// Values captured into case variables after the answer (`response` is in the context).
    pub capture: Vec<(String, ValueTmpl)>,
    /// Nested steps (with `for_each`/`when`).
    pub steps: Vec<StepSpec>,
    /// Level of this step's checks.
    pub level: Option<Level>,
    /// Requirement ids this step checks.
    pub req: Vec<String>,
    /// Re-send until the expectation holds (eventually consistent registries).
    pub retry: Option<(u32, u64)>,
    /// Whether a failed check ends the case (default true).
    pub stop_on_failure: bool,
    /// URL of a resource this step creates when it succeeds (deleted at the end if still there).
    pub creates: Option<Tmpl>,
    /// URL of a resource this step deletes when it succeeds.
    pub deletes: Option<Tmpl>,
}

/// An HTTP request template.
#[derive(Debug)]
pub struct RequestSpec {
    /// HTTP method.
    pub method: String,
    /// URL, absolute or relative to the registry.
    pub url: Tmpl,
    /// Query parameters appended to the URL (lists repeat, null is omitted).
    pub query: Vec<(String, ValueTmpl)>,
    /// Request headers.
    pub headers: Vec<(String, Tmpl)>,
    /// Request body.
    pub body: Option<BodySpec>,
    /// Whether redirects are followed.
    pub follow_redirects: bool,
    /// Send the body with chunked transfer encoding (no Content-Length).
    pub chunked: bool,
    /// Whether registry credentials may be used.
    pub auth: bool,
}

/// Where a request body comes from.
#[derive(Debug)]
pub enum BodySpec {
    /// Bytes of a dataset item (by id), optionally a byte range `start-end`.
    Content {
        /// Item id template.
        id: Tmpl,
        /// Inclusive byte range template.
        range: Option<Tmpl>,
    },
    /// A rendered text.
    Text(Tmpl),
    /// A value serialized as compact JSON.
    Json(ValueTmpl),
}

/// Checks on an answer.
#[derive(Debug, Default)]
pub struct ExpectSpec {
    /// Accepted status codes.
    pub status: Option<Located<ValueTmpl>>,
    /// Header checks (names are case-insensitive).
    pub headers: Vec<(String, MatcherSpec)>,
    /// Body checks.
    pub body: Option<BodyExpectSpec>,
    /// Expression checks.
    pub assert: Vec<AssertSpec>,
}

/// Checks on a response body.
#[derive(Debug)]
pub struct BodyExpectSpec {
    /// The body equals a dataset item's bytes (compared by digest while streaming).
    pub content: Option<Tmpl>,
    /// Restrict `content` to an inclusive byte range.
    pub range: Option<Tmpl>,
    /// The body is empty (or not, with `false`).
    pub empty: Option<bool>,
    /// The body equals a rendered text.
    pub text: Option<Tmpl>,
    /// JSON pointer checks; implies the body must be JSON.
    pub json: Option<Vec<(String, MatcherSpec)>>,
    /// A JSON Schema file (in `schemas/`) the body must validate against.
    pub schema: Option<Located<String>>,
    /// Apply `json`/`schema` only when the body is JSON (e.g. 4xx bodies MAY be any format).
    pub if_json: bool,
    /// Level of the body checks.
    pub level: Option<Level>,
    /// Requirement ids.
    pub req: Vec<String>,
    /// Where the body checks are written.
    pub pos: Pos,
}

/// A check on one value (a header or a JSON pointer).
#[derive(Clone, Debug, Default)]
pub struct MatcherSpec {
    /// Make the checks only when this holds (a version switch, an option of the case).
    pub when: Option<Expr>,
    /// Must be present (true), may be absent (false); an expression is evaluated.
    pub present: Option<ValueTmpl>,
    /// Must be absent.
    pub absent: Option<ValueTmpl>,
    /// Equals this value.
    pub equals: Option<ValueTmpl>,
    /// Equals one of these values.
    pub one_of: Option<ValueTmpl>,
    /// Matches this regular expression (whole value).
    pub matches: Option<(regex::Regex, String)>,
    /// Contains this (substring, list items, or JSON subset).
    pub contains: Option<ValueTmpl>,
    /// Has this length.
    pub length: Option<ValueTmpl>,
    /// Has this JSON type.
    pub type_: Option<JsonType>,
    /// Level of the check.
    pub level: Option<Level>,
    /// Requirement ids.
    pub req: Vec<String>,
    /// Message replacing the generated one.
    pub message: Option<Tmpl>,
    /// Where the check is written.
    pub pos: Pos,
}

/// An expression check.
#[derive(Debug)]
pub struct AssertSpec {
    /// The condition.
    pub that: Expr,
    /// The message when it is false.
    pub message: Tmpl,
    /// Level.
    pub level: Option<Level>,
    /// Requirement ids.
    pub req: Vec<String>,
}

/// An answer that means "not supported".
#[derive(Debug)]
pub struct UnsupportedSpec {
    /// Matching status codes.
    pub status: Option<Located<ValueTmpl>>,
    /// Header conditions that must also hold.
    pub headers: Vec<(String, MatcherSpec)>,
    /// Extra condition (`response` in context).
    pub when: Option<Expr>,
    /// Why this answer means the feature is absent.
    pub reason: Tmpl,
    /// Steps that complete the operation another way; their failures are FAILs.
    pub then: Vec<StepSpec>,
    /// End the case after `then`.
    pub stop: bool,
    /// Values captured from this answer.
    pub capture: Vec<(String, ValueTmpl)>,
}

/// Compiles a standalone `expect` block (the pack's `every_response`).
pub fn compile_expect(node: &Node) -> Result<ExpectSpec, Diagnostics> {
    let mut diags = Diagnostics::default();
    let def: Option<ExpectDef> = ok(&mut diags, from_node(node));
    let spec = def.map(|d| expect_spec(&d, &mut diags));
    match spec {
        Some(s) if diags.is_empty() => Ok(s),
        _ => Err(diags),
    }
}

/// Resolves `use:` paths to compiled nodes (implemented by the pack loader).
pub trait Resolver {
    /// Loads the node `path` refers to, relative to the file at `from`.
    fn resolve(&mut self, path: &str, from: &Pos) -> Result<Arc<NodeSpec>, Diagnostic>;
}

/// Compiles a scenario node tree, collecting every problem found.
pub fn compile_node(node: &Node, resolver: &mut dyn Resolver) -> Result<NodeSpec, Diagnostics> {
    let mut diags = Diagnostics::default();
    let spec = node_spec(node, resolver, &mut diags, true);
    match spec {
        Some(s) if diags.is_empty() => Ok(s),
        _ => {
            if diags.is_empty() {
                diags.push(Diagnostic::new(node.pos.clone(), "invalid scenario"));
            }
            Err(diags)
        }
    }
}

/// Runs a fallible compile step, recording its error and returning None on failure.
fn ok<T>(diags: &mut Diagnostics, r: Result<T, Diagnostic>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

fn tmpl(diags: &mut Diagnostics, s: &Located<String>) -> Option<Tmpl> {
    ok(diags, Tmpl::new(&s.value, &s.pos))
}

fn expr(diags: &mut Diagnostics, s: &Located<String>) -> Option<Expr> {
    ok(diags, Expr::new(&s.value, &s.pos))
}

fn value(diags: &mut Diagnostics, raw: &Raw) -> Option<ValueTmpl> {
    ok(diags, ValueTmpl::from_raw(raw))
}

fn values(diags: &mut Diagnostics, m: &IndexMap<String, Raw>) -> Vec<(String, ValueTmpl)> {
    m.iter()
        .filter_map(|(k, v)| value(diags, v).map(|v| (k.clone(), v)))
        .collect()
}

fn for_each(
    diags: &mut Diagnostics,
    m: &Option<IndexMap<String, Located<String>>>,
    node: &Node,
) -> Option<(String, Expr)> {
    let m = m.as_ref()?;
    if m.len() != 1 {
        let at = node.get("for_each").unwrap_or(node);
        diags.push(
            Diagnostic::new(
                at.pos.clone(),
                "`for_each` takes exactly one `name: expression` entry",
            )
            .with_hint("for example `for_each: { blob: dataset.blobs }`"),
        );
        return None;
    }
    let (name, e) = m.iter().next()?;
    expr(diags, e).map(|e| (name.clone(), e))
}

/// The parameters a file declares (`params:` at its top).
fn params_spec(diags: &mut Diagnostics, node: &Node, top: bool) -> Vec<ParamSpec> {
    let Some(block) = node.get("params") else {
        return Vec::new();
    };
    if !top {
        diags.push(
            Diagnostic::new(
                node.key_pos("params")
                    .cloned()
                    .unwrap_or_else(|| block.pos.clone()),
                "`params` belong at the top of a file, where the files that `use` it see them",
            )
            .with_hint("inside a file, bind values with `vars`"),
        );
        return Vec::new();
    }
    let crate::yaml::Value::Map(entries) = &block.value else {
        diags.push(Diagnostic::new(
            block.pos.clone(),
            "`params` maps each parameter name to {type, default, doc}",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let Some(def) = ok(diags, from_node::<ParamDef>(v)) else {
            continue;
        };
        let default = match v.get("default") {
            Some(d) => match ValueTmpl::new(d) {
                Ok(t) => Some(t),
                Err(e) => {
                    diags.push(e);
                    continue;
                }
            },
            None => None,
        };
        if let Some(c) = default.as_ref().and_then(ValueTmpl::as_const) {
            if !def.type_.admits(c) {
                diags.push(Diagnostic::new(
                    default.as_ref().map(ValueTmpl::pos).unwrap_or_default(),
                    format!(
                        "the default of `{}` is {}, not a value of its type `{}`",
                        k.scalar_text(),
                        describe(c),
                        def.type_.as_str()
                    ),
                ));
            }
        }
        out.push(ParamSpec {
            name: k.scalar_text(),
            type_: def.type_,
            default,
            doc: def.doc,
            pos: k.pos.clone(),
        });
    }
    out
}

/// The items a `for_each` expression evaluated to: a list (or what a filter yields). A string
/// or a mapping iterates too (characters, keys), but that is never what a scenario means.
pub fn list_items(
    e: &Expr,
    v: &minijinja::value::Value,
) -> Result<Vec<minijinja::value::Value>, Diagnostic> {
    use minijinja::value::ValueKind as K;
    let items = match v.kind() {
        K::Seq | K::Iterable => v.try_iter().ok(),
        _ => None,
    };
    items.map(Iterator::collect).ok_or_else(|| {
        Diagnostic::new(
            e.pos.clone(),
            format!("`for_each` needs a list, found {}", describe(v)),
        )
        .with_hint("one copy is made per item of a list, e.g. `{blob: dataset.blobs}`")
    })
}

/// A value's kind and text for messages: "the string `yes`".
pub fn describe(v: &minijinja::value::Value) -> String {
    use minijinja::value::ValueKind as K;
    let kind = match v.kind() {
        K::Bool => "the boolean",
        K::String => "the string",
        K::Number => "the number",
        K::Seq => "the list",
        K::Map => "the mapping",
        K::None => return "none".into(),
        K::Undefined => return "undefined".into(),
        _ => "the value",
    };
    match v.kind() {
        K::Map => {
            let keys: Vec<String> = v
                .try_iter()
                .map(|it| it.take(4).map(|k| format!("`{k}`")).collect())
                .unwrap_or_default();
            format!("a mapping (keys {})", keys.join(", "))
        }
        K::Seq => format!("a list of {}", v.len().unwrap_or(0)),
        _ => {
            let text: String = v.to_string().chars().take(60).collect();
            format!("{kind} `{text}`")
        }
    }
}

/// Checks the `with:` of a use site against the parameters the used file declares: an unknown
/// name is a typo that would leave the file with its default, silently.
fn check_with(
    diags: &mut Diagnostics,
    node: &Node,
    with: &[(String, ValueTmpl)],
    target: &NodeSpec,
) {
    let file = target
        .pos
        .file
        .as_ref()
        .map(|f| crate::diag::display_path(f))
        .unwrap_or_default();
    let key_pos = |k: &str| {
        node.get("with")
            .and_then(|w| w.key_pos(k))
            .cloned()
            .unwrap_or_else(|| node.pos.clone())
    };
    for (k, v) in with {
        let Some(p) = target.params.iter().find(|p| &p.name == k) else {
            let declared: Vec<&str> = target.params.iter().map(|p| p.name.as_str()).collect();
            let d = Diagnostic::new(key_pos(k), format!("unknown parameter `{k}` of {file}"));
            diags.push(
                match crate::diag::did_you_mean(k, declared.iter().copied()) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None if declared.is_empty() => d.with_hint(format!(
                    "{file} declares no `params`; a value it reads from `with:` is declared there"
                )),
                    None => d.with_hint(format!("{file} declares: {}", declared.join(", "))),
                },
            );
            continue;
        };
        if let Some(c) = v.as_const() {
            if !p.type_.admits(c) {
                diags.push(Diagnostic::new(
                    v.pos(),
                    format!(
                        "parameter `{k}` of {file} is of type `{}`, found {}",
                        p.type_.as_str(),
                        describe(c)
                    ),
                ));
            }
        }
    }
}

fn node_spec(
    node: &Node,
    resolver: &mut dyn Resolver,
    diags: &mut Diagnostics,
    top: bool,
) -> Option<NodeSpec> {
    let def: NodeDef = ok(diags, from_node(node))?;
    let pos = def
        .name
        .as_ref()
        .map_or_else(|| node.pos.clone(), |n| n.pos.clone());

    let kinds = [def.use_.is_some(), def.items.is_some(), def.steps.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        diags.push(
            Diagnostic::new(
                node.pos.clone(),
                "a node needs exactly one of `use`, `items` or `steps`",
            )
            .with_hint("`items` makes a group, `steps` a test case, `use` includes another file"),
        );
        return None;
    }
    if def.steps.is_some() && def.name.is_none() {
        diags.push(
            Diagnostic::new(node.pos.clone(), "missing key `name`")
                .with_hint("every test case needs a name"),
        );
    }
    if !def.with.is_empty() && def.use_.is_none() {
        diags.push(Diagnostic::new(
            node.key_pos("with").cloned().unwrap_or_else(|| pos.clone()),
            "`with` only goes with `use`",
        ));
    }

    let uses = match &def.use_ {
        Some(path) => {
            let target = ok(diags, resolver.resolve(&path.value, &path.pos));
            target.map(|target| {
                let with = values(diags, &def.with);
                check_with(diags, node, &with, &target);
                Use { node: target, with }
            })
        }
        None => None,
    };
    let params = params_spec(diags, node, top);

    let body = if let Some(items) = &def.items {
        NodeBody::Group(
            items
                .iter()
                .filter_map(|i| node_spec(&i.0, resolver, diags, false))
                .collect(),
        )
    } else if let Some(steps) = &def.steps {
        let case = CaseSpec {
            steps: steps
                .iter()
                .filter_map(|s| step_spec(&s.0, diags))
                .collect(),
            cleanup: def
                .cleanup
                .iter()
                .filter_map(|s| step_spec(&s.0, diags))
                .collect(),
            export: values(diags, &def.export),
        };
        unread_captures(diags, &case);
        NodeBody::Case(case)
    } else {
        NodeBody::Use
    };
    if def.use_.is_none()
        && def.steps.is_none()
        && (!def.cleanup.is_empty() || !def.export.is_empty())
    {
        diags.push(Diagnostic::new(
            pos.clone(),
            "`cleanup` and `export` belong to test cases (nodes with `steps`)",
        ));
    }

    let api = match &def.api {
        None => Vec::new(),
        Some(raw) => match &raw.0.value {
            Y::Str(s) => tmpl(
                diags,
                &Located {
                    pos: raw.0.pos.clone(),
                    value: s.clone(),
                },
            )
            .into_iter()
            .collect(),
            Y::Seq(items) => items
                .iter()
                .filter_map(|i| match i.as_str() {
                    Some(s) => tmpl(
                        diags,
                        &Located {
                            pos: i.pos.clone(),
                            value: s.to_string(),
                        },
                    ),
                    None => {
                        diags.push(Diagnostic::new(i.pos.clone(), "API labels are strings"));
                        None
                    }
                })
                .collect(),
            _ => {
                diags.push(Diagnostic::new(
                    raw.0.pos.clone(),
                    "`api` is a label or a list of labels",
                ));
                Vec::new()
            }
        },
    };

    Some(NodeSpec {
        name: def.name.as_ref().and_then(|n| tmpl(diags, n)),
        key: def.key.as_ref().and_then(|k| tmpl(diags, k)),
        summary: def.summary,
        note: def.note,
        pos,
        uses,
        params,
        when: def.when.as_ref().and_then(|w| expr(diags, w)),
        skip_unless: def.skip_unless.as_ref().and_then(|w| expr(diags, w)),
        skip_reason: def.skip_reason.as_ref().and_then(|w| tmpl(diags, w)),
        requires: def.requires.as_ref().and_then(|w| expr(diags, w)),
        for_each: for_each(diags, &def.for_each, node),
        vars: values(diags, &def.vars),
        data: def.data.as_ref().and_then(|d| tmpl(diags, d)),
        api,
        spec: def.spec,
        req: def.req,
        level: def.level,
        parallel: def.parallel.unwrap_or(false),
        exclusive: def
            .exclusive
            .iter()
            .filter_map(|e| ok(diags, ValueTmpl::from_text(&e.value, &e.pos)))
            .collect(),
        apart: def.apart.as_ref().and_then(|r| value(diags, r)),
        shared: def
            .shared
            .iter()
            .filter_map(|e| ok(diags, ValueTmpl::from_text(&e.value, &e.pos)))
            .collect(),
        body,
    })
}

fn step_spec(node: &Node, diags: &mut Diagnostics) -> Option<StepSpec> {
    let def: StepDef = ok(diags, from_node(node))?;
    let pos = node.pos.clone();
    if def.request.is_none() && def.steps.is_none() && def.expect.is_none() && def.set.is_empty() {
        diags.push(
            Diagnostic::new(
                pos.clone(),
                "a step needs a `request`, nested `steps`, an `expect` or a `set`",
            )
            .with_hint("a step without a request can still `set` variables or `expect` assertions"),
        );
        return None;
    }
    if def.request.is_some() && def.steps.is_some() {
        diags.push(Diagnostic::new(
            pos.clone(),
            "a step has either a `request` or nested `steps`, not both",
        ));
    }
    if def.request.is_none() && (def.creates.is_some() || def.deletes.is_some()) {
        diags.push(Diagnostic::new(
            pos.clone(),
            "`creates` and `deletes` describe a request's effect, so they need a `request`",
        ));
    }
    if def.request.is_none() && !def.unsupported.is_empty() {
        diags.push(Diagnostic::new(
            pos.clone(),
            "`unsupported` describes answers, so it needs a `request`",
        ));
    }
    if def.request.is_none() {
        // Checks of an answer in a step that gets none would never be made: the step would
        // pass without checking what it says.
        if let Some(e) = &def.expect {
            let at = |key: &str| {
                node.get("expect")
                    .and_then(|x| x.key_pos(key))
                    .cloned()
                    .unwrap_or_else(|| pos.clone())
            };
            for (key, given) in [
                ("status", e.status.is_some()),
                ("headers", !e.headers.is_empty()),
                ("body", e.body.is_some()),
            ] {
                if given {
                    diags.push(
                        Diagnostic::new(
                            at(key),
                            format!(
                                "`expect.{key}` checks an answer, but this step sends no `request`"
                            ),
                        )
                        .with_hint(
                            "a step without a request can only `expect` `assert`s on variables",
                        ),
                    );
                }
            }
        }
        if !def.capture.is_empty() {
            diags.push(
                Diagnostic::new(
                    node.key_pos("capture")
                        .cloned()
                        .unwrap_or_else(|| pos.clone()),
                    "`capture` takes values from an answer, but this step sends no `request`",
                )
                .with_hint("use `set` for values that do not come from an answer"),
            );
        }
    }
    let request = def.request.as_ref().and_then(|r| request_spec(r, diags));
    let expect = match &def.expect {
        Some(e) => expect_spec(e, diags),
        None => ExpectSpec::default(),
    };
    Some(StepSpec {
        name: def.name.as_ref().and_then(|n| tmpl(diags, n)),
        pos,
        when: def.when.as_ref().and_then(|w| expr(diags, w)),
        for_each: for_each(diags, &def.for_each, node),
        set: values(diags, &def.set),
        request,
        expect,
        unsupported: def
            .unsupported
            .iter()
            .filter_map(|u| unsupported_spec(u, diags))
            .collect(),
        capture: values(diags, &def.capture),
        steps: def
            .steps
            .iter()
            .flatten()
            .filter_map(|s| step_spec(&s.0, diags))
            .collect(),
        level: def.level,
        req: def.req,
        retry: def
            .retry
            .map(|r| (r.attempts.max(1), r.delay_ms.unwrap_or(200))),
        stop_on_failure: def.stop_on_failure.unwrap_or(true),
        creates: def.creates.as_ref().and_then(|c| tmpl(diags, c)),
        deletes: def.deletes.as_ref().and_then(|c| tmpl(diags, c)),
    })
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn request_spec(def: &RequestDef, diags: &mut Diagnostics) -> Option<RequestSpec> {
    let method = def.method.value.to_uppercase();
    if !METHODS.contains(&method.as_str()) {
        let mut d = Diagnostic::new(
            def.method.pos.clone(),
            format!("unknown HTTP method `{}`", def.method.value),
        );
        if let Some(s) = crate::diag::did_you_mean(&method, METHODS) {
            d = d.with_hint(format!("did you mean `{s}`?"));
        }
        diags.push(d);
    }
    let body = match &def.body {
        None => None,
        Some(b) => {
            let n = [b.content.is_some(), b.text.is_some(), b.json.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if n != 1 {
                diags.push(Diagnostic::new(
                    def.url.pos.clone(),
                    "a body has exactly one of `content`, `text` or `json`",
                ));
                None
            } else if let Some(c) = &b.content {
                Some(BodySpec::Content {
                    id: tmpl(diags, c)?,
                    range: b.range.as_ref().and_then(|r| tmpl(diags, r)),
                })
            } else if let Some(t) = &b.text {
                tmpl(diags, t).map(BodySpec::Text)
            } else {
                b.json
                    .as_ref()
                    .and_then(|j| value(diags, j))
                    .map(BodySpec::Json)
            }
        }
    };
    Some(RequestSpec {
        method,
        url: tmpl(diags, &def.url)?,
        query: values(diags, &def.query),
        headers: def
            .headers
            .iter()
            .filter_map(|(k, v)| tmpl(diags, v).map(|t| (k.clone(), t)))
            .collect(),
        body,
        follow_redirects: def.follow_redirects.unwrap_or(false),
        chunked: def.chunked.unwrap_or(false),
        auth: def.auth.unwrap_or(true),
    })
}

/// Every template of a case, in no particular order.
pub enum Template<'a> {
    /// A string template.
    Tmpl(&'a Tmpl),
    /// An expression.
    Expr(&'a Expr),
    /// A value whose strings are templates.
    Value(&'a ValueTmpl),
}

impl CaseSpec {
    /// Calls `f` on every template of the case: its steps (nested, `unsupported` ones
    /// included), its cleanup and its exports.
    pub fn templates<'a>(&'a self, f: &mut dyn FnMut(Template<'a>)) {
        for s in self.steps.iter().chain(&self.cleanup) {
            s.templates(f);
        }
        for (_, v) in &self.export {
            f(Template::Value(v));
        }
    }
}

impl MatcherSpec {
    fn templates<'a>(&'a self, f: &mut dyn FnMut(Template<'a>)) {
        if let Some(w) = &self.when {
            f(Template::Expr(w));
        }
        let values = [
            &self.present,
            &self.absent,
            &self.equals,
            &self.one_of,
            &self.contains,
            &self.length,
        ];
        for v in values.into_iter().flatten() {
            f(Template::Value(v));
        }
        if let Some(m) = &self.message {
            f(Template::Tmpl(m));
        }
    }
}

impl ExpectSpec {
    /// Calls `f` on every template of the checks.
    pub fn templates<'a>(&'a self, f: &mut dyn FnMut(Template<'a>)) {
        if let Some(s) = &self.status {
            f(Template::Value(&s.value));
        }
        for (_, m) in &self.headers {
            m.templates(f);
        }
        if let Some(b) = &self.body {
            for t in [&b.content, &b.range, &b.text].into_iter().flatten() {
                f(Template::Tmpl(t));
            }
            for (_, m) in b.json.iter().flatten() {
                m.templates(f);
            }
        }
        for a in &self.assert {
            f(Template::Expr(&a.that));
            f(Template::Tmpl(&a.message));
        }
    }
}

impl StepSpec {
    /// Calls `f` on every template of the step and of the steps inside it.
    pub fn templates<'a>(&'a self, f: &mut dyn FnMut(Template<'a>)) {
        for t in [&self.name, &self.creates, &self.deletes]
            .into_iter()
            .flatten()
        {
            f(Template::Tmpl(t));
        }
        if let Some(w) = &self.when {
            f(Template::Expr(w));
        }
        if let Some((_, e)) = &self.for_each {
            f(Template::Expr(e));
        }
        for (_, v) in self.set.iter().chain(&self.capture) {
            f(Template::Value(v));
        }
        if let Some(r) = &self.request {
            f(Template::Tmpl(&r.url));
            for (_, v) in &r.query {
                f(Template::Value(v));
            }
            for (_, t) in &r.headers {
                f(Template::Tmpl(t));
            }
            match &r.body {
                Some(BodySpec::Content { id, range }) => {
                    f(Template::Tmpl(id));
                    if let Some(r) = range {
                        f(Template::Tmpl(r));
                    }
                }
                Some(BodySpec::Text(t)) => f(Template::Tmpl(t)),
                Some(BodySpec::Json(v)) => f(Template::Value(v)),
                None => {}
            }
        }
        self.expect.templates(f);
        for u in &self.unsupported {
            if let Some(s) = &u.status {
                f(Template::Value(&s.value));
            }
            for (_, m) in &u.headers {
                m.templates(f);
            }
            if let Some(w) = &u.when {
                f(Template::Expr(w));
            }
            f(Template::Tmpl(&u.reason));
            for (_, v) in &u.capture {
                f(Template::Value(v));
            }
            for s in &u.then {
                s.templates(f);
            }
        }
        for s in &self.steps {
            s.templates(f);
        }
    }

    /// The names this step and the steps inside it capture from answers, with where.
    fn captured<'a>(&'a self, out: &mut Vec<(&'a str, Pos)>) {
        for (k, v) in &self.capture {
            out.push((k.as_str(), v.pos()));
        }
        for u in &self.unsupported {
            for (k, v) in &u.capture {
                out.push((k.as_str(), v.pos()));
            }
            for s in &u.then {
                s.captured(out);
            }
        }
        for s in &self.steps {
            s.captured(out);
        }
    }
}

/// A value a case captures lives until the case ends, so only the case can read it. One that
/// nothing reads is an error: the step that should read it reads something else, perhaps an
/// older capture of a similar name. (`set` is not held to this: a step may `set` a value only
/// to check it with an `assert`, or do nothing but set.)
fn unread_captures(diags: &mut Diagnostics, case: &CaseSpec) {
    let mut read = std::collections::HashSet::new();
    case.templates(&mut |t| {
        let names = match t {
            Template::Tmpl(t) => vec![t.names()],
            Template::Expr(e) => vec![e.names()],
            Template::Value(v) => v
                .parts()
                .into_iter()
                .map(|p| match p {
                    crate::template::Part::Expr(e) => e.names(),
                    crate::template::Part::Tmpl(t) => t.names(),
                })
                .collect(),
        };
        for n in names {
            read.extend(n.roots().map(String::from));
        }
    });
    let mut assigned = Vec::new();
    for s in case.steps.iter().chain(&case.cleanup) {
        s.captured(&mut assigned);
    }
    let mut reported = std::collections::HashSet::new();
    for (name, pos) in assigned {
        if !read.contains(name) && reported.insert(name) {
            let names: Vec<&str> = read.iter().map(String::as_str).collect();
            let d = Diagnostic::new(
                pos,
                format!("`{name}` is captured here but nothing in the case reads it"),
            );
            diags.push(match crate::diag::did_you_mean(name, names) {
                Some(s) => d.with_hint(format!("the case reads `{s}`: is one of them misspelt?")),
                None => d.with_hint("a capture lives until the case ends; remove it, or read it"),
            });
        }
    }
}

/// The status codes a status value stands for: codes, lists of codes and classes (`4xx`).
pub fn status_codes(v: &serde_json::Value, pos: &Pos) -> Result<Vec<u16>, Diagnostic> {
    let list = match v {
        serde_json::Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut codes = Vec::new();
    for x in &list {
        // A class such as "4xx" stands for all its codes.
        if let Some(class) = x
            .as_str()
            .and_then(|s| s.trim().strip_suffix("xx"))
            .and_then(|d| d.parse::<u16>().ok())
            .filter(|d| (1..=5).contains(d))
        {
            codes.extend(class * 100..class * 100 + 100);
            continue;
        }
        let code = x
            .as_u64()
            .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (100..=599).contains(n))
            .ok_or_else(|| {
                Diagnostic::new(
                    pos.clone(),
                    format!("`{x}` is not a status code (100-599, or a class such as 4xx)"),
                )
            })?;
        codes.push(code);
    }
    Ok(codes)
}

fn status(diags: &mut Diagnostics, raw: &Raw) -> Option<Located<ValueTmpl>> {
    match &raw.0.value {
        Y::Int(_) | Y::Str(_) | Y::Seq(_) => value(diags, raw).and_then(|v| {
            // A constant is checked now; a template when the plan is checked.
            if let Some(c) = v.as_const() {
                let json = crate::template::to_json(c).unwrap_or_default();
                ok(diags, status_codes(&json, &raw.0.pos))?;
            }
            Some(Located {
                pos: raw.0.pos.clone(),
                value: v,
            })
        }),
        other => {
            diags.push(Diagnostic::new(
                raw.0.pos.clone(),
                format!(
                    "`status` is a code or a list of codes, found {}",
                    other.kind()
                ),
            ));
            None
        }
    }
}

fn expect_spec(def: &ExpectDef, diags: &mut Diagnostics) -> ExpectSpec {
    ExpectSpec {
        status: def.status.as_ref().and_then(|s| status(diags, s)),
        headers: matchers(diags, &def.headers),
        body: def.body.as_ref().map(
            |Located {
                 pos: body_pos,
                 value: b,
             }| BodyExpectSpec {
                content: b.content.as_ref().and_then(|c| tmpl(diags, c)),
                range: b.range.as_ref().and_then(|c| tmpl(diags, c)),
                empty: b.empty,
                text: b.text.as_ref().and_then(|c| tmpl(diags, c)),
                json: b.json.as_ref().map(|j| {
                    for (k, v) in j {
                        if !(k.is_empty() || k.starts_with('/')) {
                            diags.push(
                                Diagnostic::new(
                                    v.0.pos.clone(),
                                    format!("JSON pointer `{k}` must start with `/`"),
                                )
                                .with_hint(
                                    "write `/tags` for the `tags` field, `` (empty) for the whole body",
                                ),
                            );
                        }
                    }
                    matchers(diags, j)
                }),
                schema: b.schema.clone(),
                if_json: b.if_json.unwrap_or(false),
                level: b.level,
                req: b.req.clone(),
                pos: b
                    .content
                    .as_ref()
                    .map_or_else(|| body_pos.clone(), |c| c.pos.clone()),
            },
        ),
        assert: def
            .assert
            .iter()
            .filter_map(|a| {
                Some(AssertSpec {
                    that: expr(diags, &a.that)?,
                    message: tmpl(diags, &a.message)?,
                    level: a.level,
                    req: a.req.clone(),
                })
            })
            .collect(),
    }
}

fn matchers(diags: &mut Diagnostics, m: &IndexMap<String, Raw>) -> Vec<(String, MatcherSpec)> {
    m.iter()
        .filter_map(|(k, v)| matcher(diags, v).map(|m| (k.clone(), m)))
        .collect()
}

/// A matcher: a mapping of checks, or a scalar as shorthand for `equals`.
fn matcher(diags: &mut Diagnostics, raw: &Raw) -> Option<MatcherSpec> {
    let pos = raw.0.pos.clone();
    if !matches!(raw.0.value, Y::Map(_)) {
        return Some(MatcherSpec {
            equals: value(diags, raw),
            pos,
            ..MatcherSpec::default()
        });
    }
    let def: MatcherDef = ok(diags, from_node(&raw.0))?;
    let matches = def.matches.as_ref().and_then(|m| {
        ok(
            diags,
            regex::Regex::new(&format!("^(?:{})$", m.value))
                .map(|r| (r, m.value.clone()))
                .map_err(|e| {
                    // The regex crate's message spans lines; its last line says what is wrong.
                    let why = e.to_string();
                    let why = why
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim_start_matches("error: ");
                    Diagnostic::new(
                        m.pos.clone(),
                        format!("invalid regular expression `{}`: {why}", m.value),
                    )
                }),
        )
    });
    Some(MatcherSpec {
        when: def.when.as_ref().and_then(|w| expr(diags, w)),
        present: def.present.as_ref().and_then(|v| value(diags, v)),
        absent: def.absent.as_ref().and_then(|v| value(diags, v)),
        equals: def.equals.as_ref().and_then(|v| value(diags, v)),
        one_of: def.one_of.as_ref().and_then(|v| value(diags, v)),
        matches,
        contains: def.contains.as_ref().and_then(|v| value(diags, v)),
        length: def.length.as_ref().and_then(|v| value(diags, v)),
        type_: def.type_,
        level: def.level,
        req: def.req,
        message: def.message.as_ref().and_then(|m| tmpl(diags, m)),
        pos,
    })
}

fn unsupported_spec(def: &UnsupportedDef, diags: &mut Diagnostics) -> Option<UnsupportedSpec> {
    Some(UnsupportedSpec {
        status: def.status.as_ref().and_then(|s| status(diags, s)),
        headers: matchers(diags, &def.headers),
        when: def.when.as_ref().and_then(|w| expr(diags, w)),
        reason: tmpl(diags, &def.reason)?,
        then: def
            .then
            .iter()
            .filter_map(|s| step_spec(&s.0, diags))
            .collect(),
        stop: def.stop.unwrap_or(false),
        capture: values(diags, &def.capture),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;
    use std::path::Path;

    struct NoFiles;
    impl Resolver for NoFiles {
        fn resolve(&mut self, path: &str, from: &Pos) -> Result<Arc<NodeSpec>, Diagnostic> {
            Err(Diagnostic::new(
                from.clone(),
                format!("no such file `{path}`"),
            ))
        }
    }

    fn compile(src: &str) -> Result<NodeSpec, Diagnostics> {
        compile_node(&parse(Path::new("case.yaml"), src).unwrap(), &mut NoFiles)
    }

    #[test]
    fn compiles_a_case() {
        let n = compile(
            r#"
name: blob-head
api: Blob head
spec: [end-2]
steps:
  - request: { method: HEAD, url: "/v2/{{ repo }}/blobs/{{ blob.digest }}" }
    expect:
      status: 200
      headers:
        Content-Length: "{{ blob.size }}"
        Docker-Content-Digest: { present: false, one_of: ["{{ blob.digest }}"], level: SHOULD }
      body: { empty: true }
"#,
        )
        .unwrap();
        let NodeBody::Case(case) = &n.body else {
            panic!("not a case")
        };
        assert_eq!(case.steps.len(), 1);
        assert_eq!(case.steps[0].expect.headers.len(), 2);
        assert_eq!(case.steps[0].expect.headers[1].1.level, Some(Level::Should));
        assert_eq!(n.api.len(), 1);
    }

    #[test]
    fn reports_all_problems_with_positions() {
        let e = compile(
            r#"
name: x
steps:
  - request: { method: GTE, url: "/v2/" }
    expect: { stauts: 200 }
  - request: { method: GET, url: "{{ a + }}" }
"#,
        )
        .unwrap_err();
        let msgs: Vec<String> =
            e.0.iter()
                .map(|d| format!("{}:{} {}", d.pos.line, d.pos.col, d.message))
                .collect();
        assert_eq!(e.0.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("5:15 unknown key `stauts`"), "{msgs:?}");
        assert!(msgs[1].starts_with("6:"), "{msgs:?}");
        assert_eq!(e.0[0].hint.as_deref(), Some("did you mean `status`?"));
    }

    #[test]
    fn node_needs_exactly_one_body() {
        let e = compile("name: x\nitems: []\nsteps: []\n").unwrap_err();
        assert!(e.0[0].message.contains("exactly one of"), "{}", e);
    }

    #[test]
    fn unknown_method_suggests() {
        let e = compile("name: x\nsteps:\n  - request: { method: PTACH, url: /x }\n").unwrap_err();
        assert_eq!(e.0[0].hint.as_deref(), Some("did you mean `PATCH`?"));
    }
}
