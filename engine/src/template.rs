//! Templates and expressions (minijinja, strict undefined).
//!
//! Three shapes appear in scenario files:
//! - [`Tmpl`]: a string template such as `"/v2/{{ repo }}/blobs/{{ blob.digest }}"`;
//! - [`Expr`]: a bare expression such as `pushed and config.apis.pull` (conditions, loops);
//! - [`ValueTmpl`]: a YAML value whose strings are templates; a string that is exactly one
//!   `{{ … }}` keeps the type of its result, so `"{{ dataset.tags }}"` is a list.
//!
//! Everything is compiled once when the pack loads, against one process-wide environment, so
//! template syntax errors are load errors with a file:line, and running never re-parses.

pub mod names;

use std::sync::{Arc, LazyLock, OnceLock};

use base64::Engine as _;
use minijinja::value::{Kwargs, Object, Rest, Value};
use minijinja::{Environment, Error as MjError, ErrorKind, State, UndefinedBehavior};
use sha2::Digest as _;

use crate::de::Raw;
use crate::diag::{Diagnostic, Pos};
use crate::yaml::{Node, Value as Y};

/// The process-wide template environment with the engine's filters and functions.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.add_filter("digest", filter_digest);
    env.add_filter("b64encode", |s: String| {
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    });
    env.add_filter("b64decode", filter_b64decode);
    env.add_filter("with_query", filter_with_query);
    env.add_filter("sort_bytes", filter_sort_bytes);
    env.add_filter("sort_lexical", filter_sort_lexical);
    env.add_filter("split_list", filter_split_list);
    env.add_filter("dict_from", filter_dict_from);
    env.add_filter("map_format", filter_map_format);
    env.add_filter("omit", filter_omit);
    env.add_filter("merge", filter_merge);
    env.add_test("matching", test_matching);
    env.add_function("urljoin", fn_urljoin);
    env.add_function("chunks", fn_chunks);
    env.add_function("repeat", fn_repeat);
    env.add_function("token", fn_token);
    env.add_function("subset", fn_subset);
    env.add_function("fail", |msg: String| -> Result<Value, MjError> {
        Err(MjError::new(ErrorKind::InvalidOperation, msg))
    });
    env
});

/// The shared environment (for callers that build their own templates, such as reports).
pub fn env() -> &'static Environment<'static> {
    &ENV
}

/// A compiled string template with its source position.
#[derive(Clone)]
pub struct Tmpl {
    /// The template text.
    pub src: &'static str,
    /// Where it was written.
    pub pos: Pos,
    compiled: Option<Arc<minijinja::Template<'static, 'static>>>,
    names: Arc<OnceLock<names::Names>>,
}

impl std::fmt::Debug for Tmpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tmpl({:?})", self.src)
    }
}

impl Tmpl {
    /// Compiles `src`; plain strings without `{{`/`{%` are kept as literals.
    pub fn new(src: &str, pos: &Pos) -> Result<Self, Diagnostic> {
        let src: &'static str = Box::leak(src.to_string().into_boxed_str());
        let compiled = if is_template(src) {
            let t = ENV
                .template_from_str(src)
                .map_err(|e| template_error(pos, src, &e))?;
            Some(Arc::new(t))
        } else {
            None
        };
        Ok(Tmpl {
            src,
            pos: pos.clone(),
            compiled,
            names: Arc::default(),
        })
    }

    /// A literal string (no template syntax), built by the engine.
    pub fn literal(s: &str) -> Self {
        Tmpl {
            src: Box::leak(s.to_string().into_boxed_str()),
            pos: Pos::default(),
            compiled: None,
            names: Arc::default(),
        }
    }

    /// Renders the template against `ctx`.
    pub fn render(&self, ctx: &Value) -> Result<String, Diagnostic> {
        match &self.compiled {
            None => Ok(self.src.to_string()),
            Some(t) => t
                .render(ctx)
                .map_err(|e| failure(&self.pos, self.src, self.names(), ctx, &e)),
        }
    }

    /// The variables the template reads.
    pub fn names(&self) -> &names::Names {
        self.names.get_or_init(|| {
            if self.compiled.is_some() {
                names::Names::of_template(self.src)
            } else {
                names::Names::default()
            }
        })
    }

    /// Whether the text contains template syntax.
    pub fn is_dynamic(&self) -> bool {
        self.compiled.is_some()
    }
}

/// A compiled expression (`when`, `for_each`, assertions).
#[derive(Clone)]
pub struct Expr {
    /// The expression text.
    pub src: &'static str,
    /// Where it was written.
    pub pos: Pos,
    compiled: Arc<minijinja::Expression<'static, 'static>>,
    names: Arc<OnceLock<names::Names>>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.src)
    }
}

impl Expr {
    /// Compiles an expression; a whole-string `{{ … }}` wrapper is accepted and removed.
    pub fn new(src: &str, pos: &Pos) -> Result<Self, Diagnostic> {
        let inner = single_expression(src).unwrap_or(src).trim();
        if inner.is_empty() {
            return Err(Diagnostic::new(pos.clone(), "empty expression"));
        }
        let src: &'static str = Box::leak(inner.to_string().into_boxed_str());
        let compiled = ENV
            .compile_expression(src)
            .map_err(|e| template_error(pos, src, &e))?;
        Ok(Expr {
            src,
            pos: pos.clone(),
            compiled: Arc::new(compiled),
            names: Arc::default(),
        })
    }

    /// Evaluates the expression.
    pub fn eval(&self, ctx: &Value) -> Result<Value, Diagnostic> {
        self.compiled
            .eval(ctx)
            .map_err(|e| failure(&self.pos, self.src, self.names(), ctx, &e))
    }

    /// Evaluates the expression as a condition. A condition that reads an undefined name is an
    /// error, not false: `when: config.apis.psuh` must not quietly turn a check off.
    pub fn truthy(&self, ctx: &Value) -> Result<bool, Diagnostic> {
        let v = self.eval(ctx)?;
        if let Some(d) = self.undefined(ctx) {
            return Err(d);
        }
        if v.is_undefined() {
            return Err(Diagnostic::new(
                self.pos.clone(),
                format!("the condition `{}` is undefined", self.src),
            )
            .with_hint("write `x is defined` or `x | default(false)` for what may be missing"));
        }
        Ok(v.is_true())
    }

    /// The first name the expression reads that `ctx` leaves undefined, as an error.
    pub fn undefined(&self, ctx: &Value) -> Option<Diagnostic> {
        undefined_error(&self.pos, self.src, self.names(), ctx)
    }

    /// The variables the expression reads.
    pub fn names(&self) -> &names::Names {
        self.names.get_or_init(|| names::Names::of_expr(self.src))
    }
}

/// The error for the first undefined name a template reads, placed at the name.
fn undefined_error(pos: &Pos, src: &str, names: &names::Names, ctx: &Value) -> Option<Diagnostic> {
    let m = names.missing(ctx, &names::Known).into_iter().next()?;
    let mut d = Diagnostic::new(names::position(pos, src, m.offset), m.message);
    d.hint = m.hint;
    Some(d)
}

/// A failed evaluation as a diagnostic: an undefined name is named (minijinja only says
/// "undefined value"), anything else keeps minijinja's message.
fn failure(pos: &Pos, src: &str, names: &names::Names, ctx: &Value, e: &MjError) -> Diagnostic {
    // An undefined value fails in many ways (`2 * sise`: "unsupported types number and
    // undefined"); the undefined name is what to fix.
    if let Some(d) = undefined_error(pos, src, names, ctx) {
        return d;
    }
    template_error(pos, src, e)
}

/// A YAML value whose strings are templates (a whole-string `{{ x }}` keeps x's type).
#[derive(Clone, Debug)]
pub enum ValueTmpl {
    /// A constant (no template inside), and where it is written.
    Const(Value, Pos),
    /// A string that is one expression: evaluates to any type.
    Expr(Expr),
    /// A string template: evaluates to a string.
    Str(Tmpl),
    /// A list of value templates.
    Seq(Vec<ValueTmpl>, Pos),
    /// A mapping; keys are string templates.
    Map(Vec<(Tmpl, ValueTmpl)>, Pos),
}

/// One template inside a [`ValueTmpl`].
pub enum Part<'a> {
    /// A whole-string expression.
    Expr(&'a Expr),
    /// A string template (or a mapping key).
    Tmpl(&'a Tmpl),
}

impl ValueTmpl {
    /// Compiles a raw YAML node.
    pub fn new(node: &Node) -> Result<Self, Diagnostic> {
        Ok(match &node.value {
            Y::Str(s) => Self::from_text(s, &node.pos)?,
            Y::Seq(items) => {
                let items = items
                    .iter()
                    .map(ValueTmpl::new)
                    .collect::<Result<Vec<_>, _>>()?;
                if items.iter().all(|i| matches!(i, ValueTmpl::Const(..))) {
                    let values = items
                        .into_iter()
                        .filter_map(|i| match i {
                            ValueTmpl::Const(v, _) => Some(v),
                            _ => None,
                        })
                        .collect::<Vec<_>>();
                    ValueTmpl::Const(Value::from(values), node.pos.clone())
                } else {
                    ValueTmpl::Seq(items, node.pos.clone())
                }
            }
            Y::Map(entries) => {
                let mut out = Vec::new();
                for (k, v) in entries {
                    out.push((Tmpl::new(&k.scalar_text(), &k.pos)?, ValueTmpl::new(v)?));
                }
                ValueTmpl::Map(out, node.pos.clone())
            }
            _ => ValueTmpl::Const(
                Value::from(minijinja::value::Serde(node.to_json())),
                node.pos.clone(),
            ),
        })
    }

    /// Compiles a string as a YAML string value is compiled: a whole `{{ x }}` keeps x's type.
    pub fn from_text(s: &str, pos: &Pos) -> Result<Self, Diagnostic> {
        Ok(if let Some(inner) = single_expression(s) {
            ValueTmpl::Expr(Expr::new(inner, pos)?)
        } else if is_template(s) {
            ValueTmpl::Str(Tmpl::new(s, pos)?)
        } else {
            ValueTmpl::Const(Value::from(s), pos.clone())
        })
    }

    /// Compiles a raw field.
    pub fn from_raw(raw: &Raw) -> Result<Self, Diagnostic> {
        Self::new(&raw.0)
    }

    /// A constant value.
    pub fn constant(v: Value) -> Self {
        ValueTmpl::Const(v, Pos::default())
    }

    /// The constant value, when there is no template inside.
    pub fn as_const(&self) -> Option<&Value> {
        match self {
            ValueTmpl::Const(v, _) => Some(v),
            _ => None,
        }
    }

    /// Every template inside, depth first (mapping keys before their values).
    pub fn parts(&self) -> Vec<Part<'_>> {
        let mut out = Vec::new();
        self.collect_parts(&mut out);
        out
    }

    fn collect_parts<'a>(&'a self, out: &mut Vec<Part<'a>>) {
        match self {
            ValueTmpl::Const(..) => {}
            ValueTmpl::Expr(e) => out.push(Part::Expr(e)),
            ValueTmpl::Str(t) => out.push(Part::Tmpl(t)),
            ValueTmpl::Seq(items, _) => items.iter().for_each(|i| i.collect_parts(out)),
            ValueTmpl::Map(entries, _) => {
                for (k, v) in entries {
                    if k.is_dynamic() {
                        out.push(Part::Tmpl(k));
                    }
                    v.collect_parts(out);
                }
            }
        }
    }

    /// Evaluates to a minijinja value. A whole-string expression that is undefined because it
    /// reads an undefined name is an error (`"{{ blob.digst }}"`); one that is undefined on
    /// purpose (`"{{ x if cond }}"` with cond false) is the undefined value.
    pub fn eval(&self, ctx: &Value) -> Result<Value, Diagnostic> {
        Ok(match self {
            ValueTmpl::Const(v, _) => v.clone(),
            ValueTmpl::Expr(e) => {
                let v = e.eval(ctx)?;
                if v.is_undefined() {
                    if let Some(d) = e.undefined(ctx) {
                        return Err(d);
                    }
                }
                v
            }
            ValueTmpl::Str(t) => Value::from(t.render(ctx)?),
            ValueTmpl::Seq(items, _) => Value::from(
                items
                    .iter()
                    .map(|i| i.eval(ctx))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            ValueTmpl::Map(entries, _) => {
                // An entry whose value is undefined (`"{{ x if cond }}"` with cond false) is left
                // out, so optional fields are written naturally.
                let mut m = Vec::new();
                for (k, v) in entries {
                    let val = v.eval(ctx)?;
                    if !val.is_undefined() {
                        m.push((k.render(ctx)?, val));
                    }
                }
                map_value(m)
            }
        })
    }

    /// Evaluates to JSON.
    pub fn eval_json(&self, ctx: &Value) -> Result<serde_json::Value, Diagnostic> {
        let v = self.eval(ctx)?;
        to_json(&v).map_err(|e| {
            Diagnostic::new(self.pos(), format!("value cannot be written as JSON: {e}"))
        })
    }

    /// Evaluates to compact JSON text, written straight from the value (no intermediate JSON
    /// tree: a 4 MB manifest is not copied twice on its way out).
    pub fn eval_json_bytes(&self, ctx: &Value) -> Result<Vec<u8>, Diagnostic> {
        let v = self.eval(ctx)?;
        serde_json::to_vec(&v).map_err(|e| {
            Diagnostic::new(self.pos(), format!("value cannot be written as JSON: {e}"))
        })
    }

    /// Where the value is written.
    pub fn pos(&self) -> Pos {
        match self {
            ValueTmpl::Expr(e) => e.pos.clone(),
            ValueTmpl::Str(t) => t.pos.clone(),
            ValueTmpl::Const(_, p) | ValueTmpl::Seq(_, p) | ValueTmpl::Map(_, p) => p.clone(),
        }
    }
}

/// Converts a minijinja value to JSON, keeping integers as integers.
pub fn to_json(v: &Value) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(v)
}

/// Builds a mapping value that keeps insertion order.
pub fn map_value<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
    let m: indexmap::IndexMap<Value, Value> = entries
        .into_iter()
        .map(|(k, v)| (Value::from(k.into()), v))
        .collect();
    Value::from(m)
}

/// Converts JSON to a minijinja value.
pub fn from_json(v: &serde_json::Value) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// Whether a string contains template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// If `s` is exactly one `{{ expr }}`, the expression inside.
fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(
        inner
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim(),
    )
}

/// A template or expression error placed at the YAML position of its source.
fn template_error(pos: &Pos, src: &str, e: &MjError) -> Diagnostic {
    let mut msg = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    if let Some(inner) = std::error::Error::source(e) {
        msg.push_str(&format!(" ({inner})"));
    }
    let short: String = src.chars().take(120).collect();
    Diagnostic::new(pos.clone(), format!("template error: {msg}"))
        .with_hint(format!("in `{short}`"))
}

/// A scope chain exposed to templates without copying: lookups walk from the innermost frame.
#[derive(Debug, Default)]
pub struct Scope {
    /// The variables of this frame.
    pub vars: std::sync::Mutex<indexmap::IndexMap<String, Value>>,
    /// The enclosing frame.
    pub parent: Option<Arc<Scope>>,
}

impl Scope {
    /// A new frame below `parent`.
    pub fn child(parent: &Arc<Scope>, vars: indexmap::IndexMap<String, Value>) -> Arc<Scope> {
        Arc::new(Scope {
            vars: std::sync::Mutex::new(vars),
            parent: Some(parent.clone()),
        })
    }

    /// A root frame.
    pub fn root(vars: indexmap::IndexMap<String, Value>) -> Arc<Scope> {
        Arc::new(Scope {
            vars: std::sync::Mutex::new(vars),
            parent: None,
        })
    }

    /// Looks a name up through the chain.
    pub fn lookup(&self, key: &str) -> Option<Value> {
        if let Some(v) = self.vars.lock().ok()?.get(key) {
            return Some(v.clone());
        }
        self.parent.as_ref().and_then(|p| p.lookup(key))
    }

    /// Sets a variable in this frame.
    pub fn set(&self, key: &str, value: Value) {
        if let Ok(mut vars) = self.vars.lock() {
            vars.insert(key.to_string(), value);
        }
    }

    /// Assigns to the nearest frame up to `top` (included) that declares `key`; returns false
    /// when none does. Frames above `top` (shared by other cases) are never changed.
    pub fn assign_within(&self, key: &str, value: Value, top: &Arc<Scope>) -> bool {
        if let Ok(mut vars) = self.vars.lock() {
            if let Some(slot) = vars.get_mut(key) {
                *slot = value;
                return true;
            }
        }
        if std::ptr::eq(self, Arc::as_ptr(top)) {
            return false;
        }
        self.parent
            .as_ref()
            .is_some_and(|p| p.assign_within(key, value, top))
    }

    /// Assigns to the nearest frame that declares `key`; returns false when none does.
    pub fn assign(&self, key: &str, value: Value) -> bool {
        if let Ok(mut vars) = self.vars.lock() {
            if let Some(slot) = vars.get_mut(key) {
                *slot = value;
                return true;
            }
        }
        self.parent.as_ref().is_some_and(|p| p.assign(key, value))
    }

    /// The context value for templates.
    pub fn context(self: &Arc<Self>) -> Value {
        Value::from_object(ScopeObject(self.clone()))
    }

    /// All visible names (innermost wins), for error messages.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .vars
            .lock()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(p) = &self.parent {
            for n in p.names() {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        names
    }
}

#[derive(Debug)]
struct ScopeObject(Arc<Scope>);

impl Object for ScopeObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.lookup(key.as_str()?)
    }
    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(self.0.names().into_iter().map(Value::from).collect())
    }
}

// ----- filters and functions ---------------------------------------------------------------

/// Hex digest of bytes with the named algorithm, `alg:hex`.
pub fn digest_bytes(alg: &str, bytes: &[u8]) -> Option<String> {
    let hex = match alg {
        "sha256" => hex(&sha2::Sha256::digest(bytes)),
        "sha512" => hex(&sha2::Sha512::digest(bytes)),
        _ => return None,
    };
    Some(format!("{alg}:{hex}"))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn filter_digest(s: String, alg: Option<String>) -> Result<String, MjError> {
    let alg = alg.unwrap_or_else(|| "sha256".into());
    digest_bytes(&alg, s.as_bytes()).ok_or_else(|| {
        MjError::new(
            ErrorKind::InvalidOperation,
            format!("unknown digest algorithm `{alg}`"),
        )
    })
}

fn filter_b64decode(s: String) -> Result<String, MjError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.as_bytes())
        .map_err(|e| MjError::new(ErrorKind::InvalidOperation, format!("invalid base64: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|_| MjError::new(ErrorKind::InvalidOperation, "base64 content is not UTF-8"))
}

/// Appends query parameters to a URL, keeping its existing query; list values repeat the key.
fn filter_with_query(url: String, kwargs: Kwargs) -> Result<String, MjError> {
    let mut pairs = Vec::new();
    for key in kwargs.args() {
        let v: Value = kwargs.get(key)?;
        push_query_pairs(&mut pairs, key, &v);
    }
    kwargs.assert_all_used()?;
    Ok(append_query(&url, &pairs))
}

/// Expands a query value into pairs: lists repeat the key, none/undefined is skipped.
pub fn push_query_pairs(pairs: &mut Vec<(String, String)>, key: &str, v: &Value) {
    if v.is_none() || v.is_undefined() {
        return;
    }
    if v.kind() == minijinja::value::ValueKind::Seq {
        if let Ok(iter) = v.try_iter() {
            for item in iter {
                pairs.push((key.to_string(), item.to_string()));
            }
        }
    } else {
        pairs.push((key.to_string(), v.to_string()));
    }
}

/// Appends encoded pairs to a URL's query string.
pub fn append_query(url: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return url.to_string();
    }
    let (base, frag) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let mut out = base.to_string();
    let mut sep = if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    for (k, v) in pairs {
        out.push_str(sep);
        out.push_str(&encode_component(k));
        out.push('=');
        out.push_str(&encode_component(v));
        sep = "&";
    }
    if let Some(f) = frag {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (repository names and digests in query strings are often encoded).
pub fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves a reference URL against a base URL (RFC 3986, the cases registries use).
pub fn resolve_url(base: &str, reference: &str) -> String {
    if reference.contains("://") {
        return reference.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some(r) = reference.strip_prefix("//") {
        return format!("{scheme}://{r}");
    }
    if reference.starts_with('/') {
        return format!("{scheme}://{authority}{reference}");
    }
    let path = &rest[authority_end..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    if reference.starts_with('?') {
        return format!("{scheme}://{authority}{path}{reference}");
    }
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{scheme}://{authority}{dir}{reference}")
}

/// `value is matching('^[A-Z_]+$')`: the whole value matches the regular expression.
fn test_matching(value: String, pattern: String) -> Result<bool, MjError> {
    let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        MjError::new(
            ErrorKind::InvalidOperation,
            format!("invalid regular expression: {e}"),
        )
    })?;
    Ok(re.is_match(&value))
}

fn fn_urljoin(base: String, reference: String) -> String {
    resolve_url(&base, &reference)
}

/// Byte ranges covering `total` bytes in pieces of `size`: `{start, end, length, index, last}`.
/// Largest string `repeat` builds: a typo in a count must not exhaust memory.
const MAX_REPEAT_BYTES: usize = 64 << 20;
/// Most chunks `chunks` lists.
const MAX_CHUNKS: u64 = 1_000_000;

fn fn_repeat(s: String, n: usize) -> Result<String, MjError> {
    match s.len().checked_mul(n) {
        Some(len) if len <= MAX_REPEAT_BYTES => Ok(s.repeat(n)),
        _ => Err(MjError::new(
            ErrorKind::InvalidOperation,
            format!(
                "repeat would build more than {} MiB",
                MAX_REPEAT_BYTES >> 20
            ),
        )),
    }
}

fn fn_chunks(total: u64, size: u64) -> Result<Value, MjError> {
    if size == 0 {
        return Err(MjError::new(
            ErrorKind::InvalidOperation,
            "chunk size must be positive",
        ));
    }
    if total.div_ceil(size) > MAX_CHUNKS {
        return Err(MjError::new(
            ErrorKind::InvalidOperation,
            format!("chunks({total}, {size}) would list more than {MAX_CHUNKS} chunks"),
        ));
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while start < total {
        let end = (start + size).min(total) - 1;
        out.push(map_value([
            ("start", Value::from(start)),
            ("end", Value::from(end)),
            ("length", Value::from(end - start + 1)),
            ("index", Value::from(index)),
            ("last", Value::from(end + 1 == total)),
        ]));
        start = end + 1;
        index += 1;
    }
    Ok(Value::from(out))
}

/// A deterministic token derived from the run seed and a label (unique names per run).
fn fn_token(state: &State, label: String, len: Option<usize>) -> Result<String, MjError> {
    let seed = state
        .lookup("seed")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let h = hex(&sha2::Sha256::digest(format!("{seed}/{label}").as_bytes()));
    Ok(h[..len.unwrap_or(16).min(64)].to_string())
}

/// Whether `expected` is contained in `actual`: mappings by key (recursively), lists by
/// every expected item matching some actual item, scalars by equality.
fn fn_subset(actual: Value, expected: Value) -> Result<bool, MjError> {
    let a =
        to_json(&actual).map_err(|e| MjError::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let e =
        to_json(&expected).map_err(|e| MjError::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(json_subset(&a, &e))
}

/// JSON containment used by `subset()` and by the `contains` matcher.
pub fn json_subset(actual: &serde_json::Value, expected: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (actual, expected) {
        (J::Object(a), J::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| json_subset(av, ev))),
        (J::Array(a), J::Array(e)) => e.iter().all(|ev| a.iter().any(|av| json_subset(av, ev))),
        (J::Number(a), J::Number(e)) => a.as_f64() == e.as_f64(),
        _ => actual == expected,
    }
}

fn filter_sort_bytes(v: Value) -> Result<Value, MjError> {
    let mut items: Vec<String> = v.try_iter()?.map(|i| i.to_string()).collect();
    items.sort();
    Ok(Value::from(items))
}

fn filter_sort_lexical(v: Value) -> Result<Value, MjError> {
    let mut items: Vec<String> = v.try_iter()?.map(|i| i.to_string()).collect();
    items.sort_by(|a, b| {
        a.to_lowercase()
            .cmp(&b.to_lowercase())
            .then_with(|| a.cmp(b))
    });
    Ok(Value::from(items))
}

/// Splits comma-separated header values (RFC 9110 lists) into trimmed, non-empty items.
fn filter_split_list(v: Value) -> Result<Value, MjError> {
    let mut out = Vec::new();
    let parts: Vec<String> = if v.kind() == minijinja::value::ValueKind::Seq {
        v.try_iter()?.map(|i| i.to_string()).collect()
    } else if v.is_none() || v.is_undefined() {
        Vec::new()
    } else {
        vec![v.to_string()]
    };
    for p in parts {
        out.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }
    Ok(Value::from(out))
}

/// Formats each item of a list into a pattern, `{}` marking where the item goes.
fn filter_map_format(v: Value, pattern: String) -> Result<Value, MjError> {
    Ok(Value::from(
        v.try_iter()?
            .map(|i| pattern.replace("{}", &i.to_string()))
            .collect::<Vec<_>>(),
    ))
}

/// Builds a mapping from a list of keys and one value or a list of values.
fn filter_dict_from(keys: Value, values: Value) -> Result<Value, MjError> {
    let keys: Vec<Value> = keys.try_iter()?.collect();
    let vals: Vec<Value> = if values.kind() == minijinja::value::ValueKind::Seq {
        values.try_iter()?.collect()
    } else {
        vec![values; keys.len()]
    };
    Ok(map_value(
        keys.into_iter().zip(vals).map(|(k, v)| (k.to_string(), v)),
    ))
}

/// A mapping without the given keys.
fn filter_omit(v: Value, keys: Rest<String>) -> Result<Value, MjError> {
    let mut m = Vec::new();
    for k in v.try_iter()? {
        let ks = k.to_string();
        if !keys.contains(&ks) {
            m.push((ks, v.get_item(&k)?));
        }
    }
    Ok(map_value(m))
}

/// A mapping with the entries of another mapping added (later wins).
fn filter_merge(v: Value, other: Value) -> Result<Value, MjError> {
    let mut m: indexmap::IndexMap<String, Value> = indexmap::IndexMap::new();
    for src in [&v, &other] {
        if src.is_none() || src.is_undefined() {
            continue;
        }
        for k in src.try_iter()? {
            m.insert(k.to_string(), src.get_item(&k)?);
        }
    }
    Ok(map_value(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;
    use std::path::Path;

    fn ctx(json: serde_json::Value) -> Value {
        Value::from(minijinja::value::Serde(json))
    }

    #[test]
    fn value_templates_keep_types() {
        let n = parse(
            Path::new("v.yaml"),
            "a: '{{ xs }}'\nb: 'n={{ n }}'\nc: [1, '{{ n + 1 }}']\n",
        )
        .unwrap();
        let v = ValueTmpl::new(&n).unwrap();
        let out = v
            .eval_json(&ctx(serde_json::json!({"xs": [1, 2], "n": 3})))
            .unwrap();
        assert_eq!(
            out,
            serde_json::json!({"a": [1, 2], "b": "n=3", "c": [1, 4]})
        );
    }

    #[test]
    fn undefined_entries_are_omitted() {
        let n = parse(
            Path::new("v.yaml"),
            "a: 1\nb: '{{ x if x }}'\nc: '{{ y if y }}'\n",
        )
        .unwrap();
        let out = ValueTmpl::new(&n)
            .unwrap()
            .eval_json(&ctx(serde_json::json!({"x": 0, "y": "s"})))
            .unwrap();
        assert_eq!(out, serde_json::json!({"a": 1, "c": "s"}));
    }

    #[test]
    fn strict_undefined_is_an_error_with_position() {
        let t = Tmpl::new(
            "/v2/{{ repoo }}/x",
            &Pos::new(&Arc::new("s.yaml".into()), 4, 10),
        )
        .unwrap();
        let e = t
            .render(&ctx(serde_json::json!({"repo": "r"})))
            .unwrap_err();
        assert_eq!(e.pos.line, 4);
        assert!(e.message.contains("undefined"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_fail_at_compile_time() {
        let e = Tmpl::new("{{ a +  }}", &Pos::new(&Arc::new("s.yaml".into()), 2, 3)).unwrap_err();
        assert_eq!(e.pos.line, 2);
        assert!(e.message.contains("syntax"), "{}", e.message);
        assert!(Expr::new("a and", &Pos::default()).is_err());
    }

    #[test]
    fn expressions_accept_braces() {
        let e = Expr::new("{{ n > 2 }}", &Pos::default()).unwrap();
        assert!(e.truthy(&ctx(serde_json::json!({"n": 3}))).unwrap());
    }

    #[test]
    fn with_query_keeps_existing_query_and_repeats_lists() {
        let t = Tmpl::new(
            "{{ url | with_query(digest=d, tag=['a', 'b']) }}",
            &Pos::default(),
        )
        .unwrap();
        let out = t
            .render(&ctx(serde_json::json!({"url": "http://h/v2/r/blobs/uploads/u?_state=x%3D", "d": "sha256:ab"})))
            .unwrap();
        assert_eq!(
            out,
            "http://h/v2/r/blobs/uploads/u?_state=x%3D&digest=sha256%3Aab&tag=a&tag=b"
        );
    }

    #[test]
    fn resolves_relative_urls() {
        assert_eq!(
            resolve_url("http://h:5000/v2/r/blobs/uploads/", "/v2/r/x?a=1"),
            "http://h:5000/v2/r/x?a=1"
        );
        assert_eq!(resolve_url("http://h/v2/r/", "u1"), "http://h/v2/r/u1");
        assert_eq!(
            resolve_url("http://h/v2/r/", "https://s3/x"),
            "https://s3/x"
        );
        assert_eq!(resolve_url("https://h/a/b", "//cdn/x"), "https://cdn/x");
    }

    #[test]
    fn chunks_cover_the_range() {
        let e = Expr::new(
            "chunks(10, 4) | map(attribute='length') | list",
            &Pos::default(),
        )
        .unwrap();
        assert_eq!(
            to_json(&e.eval(&ctx(serde_json::json!({}))).unwrap()).unwrap(),
            serde_json::json!([4, 4, 2])
        );
    }

    #[test]
    fn digests_and_subsets() {
        let e = Expr::new("'' | digest", &Pos::default()).unwrap();
        assert_eq!(
            e.eval(&ctx(serde_json::json!({}))).unwrap().to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let e = Expr::new("subset(a, b)", &Pos::default()).unwrap();
        let c = ctx(
            serde_json::json!({"a": [{"d": 1, "x": {"k": "v", "z": 2}}, {"d": 2}], "b": [{"x": {"k": "v"}}]}),
        );
        assert!(e.truthy(&c).unwrap());
        let c = ctx(serde_json::json!({"a": [{"d": 1}], "b": [{"d": 3}]}));
        assert!(!e.truthy(&c).unwrap());
    }

    #[test]
    fn sorting_orders() {
        let e = Expr::new("[xs | sort_bytes, xs | sort_lexical]", &Pos::default()).unwrap();
        let out = to_json(
            &e.eval(&ctx(serde_json::json!({"xs": ["b", "A", "a", "B1"]})))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            serde_json::json!([["A", "B1", "a", "b"], ["A", "a", "b", "B1"]])
        );
    }

    #[test]
    fn scope_chain_lookup_and_assign() {
        let root = Scope::root([("a".to_string(), Value::from(1))].into_iter().collect());
        let child = Scope::child(
            &root,
            [("b".to_string(), Value::from(2))].into_iter().collect(),
        );
        let e = Expr::new("a + b", &Pos::default()).unwrap();
        assert_eq!(e.eval(&child.context()).unwrap(), Value::from(3));
        assert!(child.assign("a", Value::from(10)));
        assert_eq!(root.lookup("a"), Some(Value::from(10)));
        assert!(!child.assign("zz", Value::from(1)));
    }
}

#[cfg(test)]
mod strict_tests {
    use super::*;

    #[test]
    fn default_and_membership_work_in_strict_mode() {
        let ctx = Value::from(minijinja::value::Serde(
            serde_json::json!({"h": {"location": "x"}}),
        ));
        assert_eq!(
            Expr::new("missing | default(3)", &Pos::default())
                .unwrap()
                .eval(&ctx)
                .unwrap(),
            Value::from(3)
        );
        assert!(Expr::new("'location' in h", &Pos::default())
            .unwrap()
            .truthy(&ctx)
            .unwrap());
        assert!(Expr::new("missing is not defined", &Pos::default())
            .unwrap()
            .truthy(&ctx)
            .unwrap());
        assert!(Expr::new("h.nope is not defined", &Pos::default())
            .unwrap()
            .truthy(&ctx)
            .unwrap());
    }
}
