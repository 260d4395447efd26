//! The variables a template reads, found in its syntax tree, and which of them a scope leaves
//! undefined.
//!
//! minijinja says "undefined value" without saying which, and a comparison with an undefined
//! value is just false, so `when: config.apis.psuh` turns a check off without any error.
//! [`Names`] lists every variable path a template reads (`blob.digest`, `blobs['post-put']`,
//! `item('config').descriptor`), marking those it reads on purpose as optional
//! (`x | default(…)`, `x is defined`, `'k' in x`). [`Names::missing`] looks them up in a scope
//! and names the first undefined part of each, with the closest names that are defined.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use minijinja::machinery::ast;
use minijinja::value::{Value, ValueKind};

use crate::diag::{did_you_mean, Pos};

/// Functions a path may start from (`item('config').descriptor`): they have no side effects,
/// so a check may call them again. `rng.int()` may not be called twice: it would change the
/// generated content.
const PURE_CALLS: [&str; 7] = [
    "item", "items", "token", "urljoin", "chunks", "range", "dict",
];

/// Where a path starts: a variable, or a call of a pure function.
enum Root {
    Var(String),
    Call(Arc<minijinja::Expression<'static, 'static>>),
}

/// One part of a path after its root.
enum Seg {
    /// `x.name`
    Attr(String),
    /// `x['name']`
    Key(String),
}

impl Seg {
    fn name(&self) -> &str {
        match self {
            Seg::Attr(s) | Seg::Key(s) => s,
        }
    }
}

/// A condition a read depends on: `b` in `a and b` is only read when `a` is true, `x` in
/// `y if c else x` only when `c` is false.
pub struct Guard {
    expr: Arc<minijinja::Expression<'static, 'static>>,
    src: &'static str,
    /// The truth value under which the read happens.
    when: bool,
    names: std::sync::OnceLock<Names>,
}

impl Guard {
    /// The variables the condition reads.
    pub fn names(&self) -> &Names {
        self.names.get_or_init(|| Names::of_expr(self.src))
    }

    /// The condition's truth value in `ctx`, when it can be evaluated.
    pub fn eval(&self, ctx: &Value) -> Option<Value> {
        self.expr.eval(ctx.clone()).ok()
    }
}

/// How [`Names::missing`] sees values it cannot know: the plan check gives stand-ins for
/// answers to come; at run time everything is known.
pub trait Oracle {
    /// Whether `v` stands for a value not known yet (its attributes are not checked).
    fn opaque(&self, _v: &Value) -> bool {
        false
    }

    /// Whether `g` holds in `ctx`; None when that is not known (then the read counts).
    fn holds(&self, g: &Guard, ctx: &Value) -> Option<bool> {
        g.eval(ctx).map(|v| v.is_true())
    }
}

/// Everything is known (run time).
pub struct Known;

impl Oracle for Known {}

/// One place a template reads a variable path.
struct PathRef {
    root: Root,
    segs: Vec<Seg>,
    /// Byte offsets in the source: where the path starts, and where it ends after the root
    /// and after each part (`ends[0]` is the end of the root).
    start: usize,
    ends: Vec<usize>,
    /// Read on purpose as perhaps undefined: only the parts before the last must exist.
    optional: bool,
    /// The conditions under which the read happens (`a and b` reads `b` only when `a`).
    guards: Vec<Arc<Guard>>,
}

/// The variable paths one template or expression reads.
#[derive(Default)]
pub struct Names {
    src: String,
    refs: Vec<PathRef>,
    /// False when the template uses statements this analysis does not follow (macros,
    /// includes…): then nothing is reported from it.
    complete: bool,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Names({:?}, {} refs)", self.src, self.refs.len())
    }
}

/// An undefined name found in a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The path as written, e.g. `blob.digst`.
    pub written: String,
    /// What is undefined, e.g. "`blob.digst` is undefined: `blob` has no `digst`".
    pub message: String,
    /// "did you mean `digest`?", when a defined name is close.
    pub hint: Option<String>,
    /// Byte offset of the path in the template source.
    pub offset: usize,
}

/// The names of the environment's globals (functions such as `range` or `chunks`).
static GLOBALS: LazyLock<HashSet<String>> =
    LazyLock::new(|| super::env().globals().map(|(n, _)| n.to_string()).collect());

impl Names {
    /// The names a string template reads.
    pub fn of_template(src: &str) -> Self {
        let syntax = minijinja::syntax::SyntaxConfig::default();
        match minijinja::machinery::parse(src, "<template>", syntax) {
            Ok(stmt) => Self::walk(src, |w| w.stmt(&stmt)),
            Err(_) => Self::default(),
        }
    }

    /// The names a bare expression reads.
    pub fn of_expr(src: &str) -> Self {
        match minijinja::machinery::parse_expr(src) {
            Ok(e) => Self::walk(src, |w| w.expr(&e, Ctx::default())),
            Err(_) => Self::default(),
        }
    }

    fn walk(src: &str, f: impl FnOnce(&mut Walker<'_>)) -> Self {
        let mut w = Walker {
            src,
            refs: Vec::new(),
            guards: Vec::new(),
            bound: vec![HashSet::new()],
            complete: true,
        };
        f(&mut w);
        Names {
            src: src.to_string(),
            refs: w.refs,
            complete: w.complete,
        }
    }

    /// The variables the template reads (the roots of its paths), optional ones included.
    pub fn roots(&self) -> impl Iterator<Item = &str> {
        self.refs.iter().filter_map(|r| match &r.root {
            Root::Var(v) => Some(v.as_str()),
            Root::Call(_) => None,
        })
    }

    /// The paths `ctx` leaves undefined, at most one per path; a read that a condition
    /// known to be false skips (`a and b.c` with `a` false) is not reported.
    pub fn missing(&self, ctx: &Value, oracle: &dyn Oracle) -> Vec<Missing> {
        let mut out: Vec<Missing> = Vec::new();
        if !self.complete {
            return out;
        }
        for r in &self.refs {
            if !r.optional && self.covered(r) {
                continue;
            }
            if let Some(m) = self.check(r, ctx, &|v| oracle.opaque(v)) {
                let skipped = r
                    .guards
                    .iter()
                    .any(|g| oracle.holds(g, ctx).is_some_and(|h| h != g.when));
                if !skipped && !out.iter().any(|o| o.written == m.written) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// Whether a path the template reads goes through a value `oracle` finds opaque (or ends
    /// on a list or mapping holding one): then the template's result depends on the run.
    pub fn reaches_opaque(&self, ctx: &Value, oracle: &dyn Oracle) -> bool {
        let holds = |v: &Value| {
            oracle.opaque(v)
                || (matches!(v.kind(), ValueKind::Map | ValueKind::Seq)
                    && v.try_iter().is_ok_and(|mut it| {
                        it.any(|k| {
                            let child = if v.kind() == ValueKind::Map {
                                v.get_item(&k).unwrap_or_default()
                            } else {
                                k
                            };
                            oracle.opaque(&child)
                        })
                    }))
        };
        self.refs.iter().any(|r| {
            let mut cur = match &r.root {
                Root::Var(name) => ctx.get_attr(name).unwrap_or_default(),
                Root::Call(e) => match e.eval(ctx.clone()) {
                    Ok(v) => v,
                    Err(_) => return false,
                },
            };
            for seg in &r.segs {
                if oracle.opaque(&cur) {
                    return true;
                }
                if cur.kind() != ValueKind::Map {
                    break;
                }
                cur = match seg {
                    Seg::Attr(a) => cur.get_attr(a).unwrap_or_default(),
                    Seg::Key(k) => cur.get_item(&Value::from(k.as_str())).unwrap_or_default(),
                };
            }
            holds(&cur)
        })
    }

    /// Whether an optional read covers `r`: `x.y if x is defined` reads `x.y` only when `x`
    /// is there, so the guard's path being a prefix of `r`'s exempts it.
    fn covered(&self, r: &PathRef) -> bool {
        self.refs.iter().any(|g| {
            g.optional
                && same_root(&g.root, &r.root)
                && g.segs.len() <= r.segs.len()
                && g.segs
                    .iter()
                    .zip(&r.segs)
                    .all(|(a, b)| a.name() == b.name())
        })
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.src
            .get(from..to)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn check(&self, r: &PathRef, ctx: &Value, opaque: &dyn Fn(&Value) -> bool) -> Option<Missing> {
        let mut cur = match &r.root {
            Root::Var(name) => {
                let v = ctx.get_attr(name).unwrap_or_default();
                if v.is_undefined() {
                    if GLOBALS.contains(name) || (r.optional && r.segs.is_empty()) {
                        return None;
                    }
                    let names = scope_names(ctx);
                    let candidates = names
                        .iter()
                        .map(String::as_str)
                        .chain(GLOBALS.iter().map(String::as_str));
                    return Some(Missing {
                        written: name.clone(),
                        message: format!("`{name}` is undefined"),
                        hint: did_you_mean(name, candidates)
                            .map(|s| format!("did you mean `{s}`?")),
                        offset: r.start,
                    });
                }
                v
            }
            Root::Call(e) => e.eval(ctx.clone()).ok()?,
        };
        let checked = if r.optional {
            r.segs.len().saturating_sub(1)
        } else {
            r.segs.len()
        };
        for (i, seg) in r.segs.iter().take(checked).enumerate() {
            if opaque(&cur) || cur.kind() != ValueKind::Map {
                return None;
            }
            let next = match seg {
                Seg::Attr(a) => cur.get_attr(a).unwrap_or_default(),
                Seg::Key(k) => cur.get_item(&Value::from(k.as_str())).unwrap_or_default(),
            };
            if next.is_undefined() {
                let keys: Vec<String> = cur
                    .try_iter()
                    .map(|it| it.map(|k| k.to_string()).collect())
                    .unwrap_or_default();
                if keys.is_empty() {
                    // An object that does not list its keys: nothing to compare with.
                    return None;
                }
                let written = self.text(r.start, r.ends[i + 1]);
                let within = self.text(r.start, r.ends[i]);
                return Some(Missing {
                    message: format!(
                        "`{written}` is undefined: `{within}` has no `{}`",
                        seg.name()
                    ),
                    written,
                    hint: did_you_mean(seg.name(), keys.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| Some(format!("`{within}` has {}", list_keys(&keys)))),
                    offset: r.start,
                });
            }
            cur = next;
        }
        None
    }
}

/// "`a`, `b` and `c`", or the first few of many.
fn list_keys(keys: &[String]) -> String {
    let shown: Vec<String> = keys.iter().take(8).map(|k| format!("`{k}`")).collect();
    let more = keys.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// The names a scope defines (the context lists them).
fn scope_names(ctx: &Value) -> Vec<String> {
    ctx.try_iter()
        .map(|it| it.map(|k| k.to_string()).collect())
        .unwrap_or_default()
}

fn same_root(a: &Root, b: &Root) -> bool {
    match (a, b) {
        (Root::Var(x), Root::Var(y)) => x == y,
        (Root::Call(x), Root::Call(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// The position of byte `offset` of template `src`, which is written at `pos`: on the same
/// line when the template is found there (a quoted or plain scalar), else `pos` itself.
pub fn position(pos: &Pos, src: &str, offset: usize) -> Pos {
    let Some(file) = &pos.file else {
        return pos.clone();
    };
    let Ok(text) = crate::source::read_to_string(file.as_path()) else {
        return pos.clone();
    };
    let Some(line) = text.lines().nth((pos.line as usize).saturating_sub(1)) else {
        return pos.clone();
    };
    let first = src.lines().next().unwrap_or_default();
    if offset > first.len() || first.is_empty() {
        return pos.clone();
    }
    // Characters before the scalar, then search from there (the scalar may be quoted).
    let skip: usize = line
        .chars()
        .take((pos.col as usize).saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    match line.get(skip..).and_then(|rest| rest.find(first)) {
        Some(i) => {
            let byte = skip + i + offset;
            let col = line.get(..byte).map_or(0, |p| p.chars().count()) + 1;
            Pos {
                file: pos.file.clone(),
                line: pos.line,
                col: col as u32,
            }
        }
        None => pos.clone(),
    }
}

/// How an expression is read by its parent.
#[derive(Clone, Copy, Default)]
struct Ctx {
    /// As the operand of `default` or `is defined`: it may be undefined.
    optional: bool,
}

struct Walker<'s> {
    src: &'s str,
    refs: Vec<PathRef>,
    /// The conditions the expression being visited is under.
    guards: Vec<Arc<Guard>>,
    /// Names the template binds itself (`{% for x in … %}`, `{% set %}`), innermost last.
    bound: Vec<HashSet<String>>,
    complete: bool,
}

impl Walker<'_> {
    fn is_bound(&self, name: &str) -> bool {
        self.bound.iter().any(|b| b.contains(name))
    }

    fn bind(&mut self, target: &ast::Expr<'_>) {
        match target {
            ast::Expr::Var(v) => {
                if let Some(top) = self.bound.last_mut() {
                    top.insert(v.id.to_string());
                }
            }
            ast::Expr::List(l) => l.items.iter().for_each(|i| self.bind(i)),
            ast::Expr::Tuple(t) => t.items.iter().for_each(|i| self.bind(i)),
            _ => {}
        }
    }

    fn stmts(&mut self, body: &[ast::Stmt<'_>]) {
        for s in body {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &ast::Stmt<'_>) {
        match s {
            ast::Stmt::Template(t) => self.stmts(&t.children),
            ast::Stmt::EmitExpr(e) => self.expr(&e.expr, Ctx::default()),
            ast::Stmt::EmitRaw(_) => {}
            ast::Stmt::ForLoop(f) => {
                self.expr(&f.iter, Ctx::default());
                self.bound.push(HashSet::from(["loop".to_string()]));
                self.bind(&f.target);
                if let Some(e) = &f.filter_expr {
                    self.expr(e, Ctx::default());
                }
                self.stmts(&f.body);
                self.bound.pop();
                self.stmts(&f.else_body);
            }
            ast::Stmt::IfCond(i) => {
                self.expr(&i.expr, Ctx::default());
                match self.guard(&i.expr, true) {
                    Some(g) => self.under(g, |w| w.stmts(&i.true_body)),
                    None => self.stmts(&i.true_body),
                }
                match self.guard(&i.expr, false) {
                    Some(g) => self.under(g, |w| w.stmts(&i.false_body)),
                    None => self.stmts(&i.false_body),
                }
            }
            ast::Stmt::WithBlock(w) => {
                self.bound.push(HashSet::new());
                for (target, e) in &w.assignments {
                    self.expr(e, Ctx::default());
                    self.bind(target);
                }
                self.stmts(&w.body);
                self.bound.pop();
            }
            ast::Stmt::Set(set) => {
                self.expr(&set.expr, Ctx::default());
                self.bind(&set.target);
            }
            _ => self.complete = false,
        }
    }

    fn args(&mut self, args: &[ast::CallArg<'_>]) {
        for a in args {
            match a {
                ast::CallArg::Pos(e)
                | ast::CallArg::Kwarg(_, e)
                | ast::CallArg::PosSplat(e)
                | ast::CallArg::KwargSplat(e) => self.expr(e, Ctx::default()),
            }
        }
    }

    fn expr(&mut self, e: &ast::Expr<'_>, cx: Ctx) {
        match e {
            ast::Expr::Var(_) | ast::Expr::GetAttr(_) | ast::Expr::GetItem(_) => {
                if !self.path(e, cx.optional) {
                    match e {
                        ast::Expr::GetAttr(g) => self.expr(&g.expr, Ctx::default()),
                        ast::Expr::GetItem(g) => {
                            self.expr(&g.expr, Ctx::default());
                            self.expr(&g.subscript_expr, Ctx::default());
                        }
                        _ => {}
                    }
                }
            }
            ast::Expr::Const(_) => {}
            ast::Expr::Slice(s) => {
                self.expr(&s.expr, Ctx::default());
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part, Ctx::default());
                }
            }
            ast::Expr::UnaryOp(u) => self.expr(&u.expr, Ctx::default()),
            ast::Expr::BinOp(b) => {
                if matches!(b.op, ast::BinOpKind::In) {
                    self.membership(&b.left, &b.right);
                }
                self.expr(&b.left, Ctx::default());
                let when = match b.op {
                    ast::BinOpKind::ScAnd => Some(true),
                    ast::BinOpKind::ScOr => Some(false),
                    _ => None,
                };
                match when.and_then(|w| self.guard(&b.left, w)) {
                    Some(g) => self.under(g, |w| w.expr(&b.right, Ctx::default())),
                    None => self.expr(&b.right, Ctx::default()),
                }
            }
            ast::Expr::Compare(c) => {
                if let [op] = c.ops.as_slice() {
                    if matches!(op.op, ast::CompareOpKind::In | ast::CompareOpKind::NotIn) {
                        self.membership(&c.expr, &op.expr);
                    }
                }
                self.expr(&c.expr, Ctx::default());
                for op in &c.ops {
                    self.expr(&op.expr, Ctx::default());
                }
            }
            ast::Expr::IfExpr(i) => {
                self.expr(&i.test_expr, Ctx::default());
                match self.guard(&i.test_expr, true) {
                    Some(g) => self.under(g, |w| w.expr(&i.true_expr, Ctx::default())),
                    None => self.expr(&i.true_expr, Ctx::default()),
                }
                if let Some(f) = &i.false_expr {
                    match self.guard(&i.test_expr, false) {
                        Some(g) => self.under(g, |w| w.expr(f, Ctx::default())),
                        None => self.expr(f, Ctx::default()),
                    }
                }
            }
            ast::Expr::Filter(f) => {
                let optional = matches!(f.name, "default" | "d");
                if let Some(inner) = &f.expr {
                    self.expr(inner, Ctx { optional });
                }
                self.args(&f.args);
            }
            ast::Expr::Test(t) => {
                let optional = matches!(t.name, "defined" | "undefined");
                self.expr(&t.expr, Ctx { optional });
                self.args(&t.args);
            }
            ast::Expr::Call(c) => {
                match &c.expr {
                    // `d.startswith('x')`: a method of `d`, which must exist itself.
                    ast::Expr::GetAttr(g) => self.expr(&g.expr, Ctx::default()),
                    // `chunks(…)`: a function, looked up like a variable.
                    callee => self.expr(callee, Ctx::default()),
                }
                self.args(&c.args);
            }
            ast::Expr::List(l) => l.items.iter().for_each(|i| self.expr(i, Ctx::default())),
            ast::Expr::Tuple(t) => t.items.iter().for_each(|i| self.expr(i, Ctx::default())),
            ast::Expr::Map(m) => {
                for (k, v) in m.keys.iter().zip(&m.values) {
                    self.expr(k, Ctx::default());
                    self.expr(v, Ctx::default());
                }
            }
        }
    }

    /// A guard made of condition `cond`.
    fn guard(&self, cond: &ast::Expr<'_>, when: bool) -> Option<Arc<Guard>> {
        let span = cond.span();
        let text = self
            .src
            .get(span.start_offset as usize..span.end_offset as usize)?;
        let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
        let expr = super::env().compile_expression(leaked).ok()?;
        Some(Arc::new(Guard {
            expr: Arc::new(expr),
            src: leaked,
            when,
            names: std::sync::OnceLock::new(),
        }))
    }

    /// Visits with one more condition in force.
    fn under(&mut self, g: Arc<Guard>, f: impl FnOnce(&mut Self)) {
        self.guards.push(g);
        f(self);
        self.guards.pop();
    }

    /// `'k' in x` reads `x['k']` on purpose as optional.
    fn membership(&mut self, key: &ast::Expr<'_>, within: &ast::Expr<'_>) {
        let ast::Expr::Const(k) = key else {
            return;
        };
        let Some(k) = k.value.as_str() else {
            return;
        };
        let before = self.refs.len();
        if self.path(within, false) && self.refs.len() == before + 1 {
            if let Some(mut r) = self.refs.pop() {
                r.segs.push(Seg::Key(k.to_string()));
                let end = r.ends.last().copied().unwrap_or(r.start);
                r.ends.push(end);
                r.optional = true;
                self.refs.push(r);
            }
        }
    }

    /// Records `e` as a path when it is one (a variable or pure call followed by attributes
    /// and constant keys); false when it is not.
    fn path(&mut self, e: &ast::Expr<'_>, optional: bool) -> bool {
        let mut segs = Vec::new();
        let mut ends = Vec::new();
        let mut cur = e;
        loop {
            match cur {
                ast::Expr::GetAttr(g) => {
                    segs.push(Seg::Attr(g.name.to_string()));
                    ends.push(g.span().end_offset as usize);
                    cur = &g.expr;
                }
                ast::Expr::GetItem(g) => {
                    let ast::Expr::Const(c) = &g.subscript_expr else {
                        return false;
                    };
                    let Some(k) = c.value.as_str() else {
                        return false;
                    };
                    segs.push(Seg::Key(k.to_string()));
                    ends.push(g.span().end_offset as usize);
                    cur = &g.expr;
                }
                _ => break,
            }
        }
        let root = match cur {
            ast::Expr::Var(v) => {
                if self.is_bound(v.id) {
                    return true;
                }
                Root::Var(v.id.to_string())
            }
            ast::Expr::Call(c) if !segs.is_empty() => {
                let ast::Expr::Var(f) = &c.expr else {
                    return false;
                };
                if !PURE_CALLS.contains(&f.id) || self.is_bound(f.id) {
                    return false;
                }
                // The arguments are read too.
                self.expr(&c.expr, Ctx::default());
                self.args(&c.args);
                let span = c.span();
                let text = self
                    .src
                    .get(span.start_offset as usize..span.end_offset as usize)
                    .unwrap_or_default();
                let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
                match super::env().compile_expression(leaked) {
                    Ok(compiled) => Root::Call(Arc::new(compiled)),
                    Err(_) => return false,
                }
            }
            _ => return false,
        };
        let span = cur.span();
        segs.reverse();
        ends.push(span.end_offset as usize);
        ends.reverse();
        self.refs.push(PathRef {
            root,
            segs,
            start: span.start_offset as usize,
            ends,
            optional,
            guards: self.guards.clone(),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(json: serde_json::Value) -> Value {
        Value::from(minijinja::value::Serde(json))
    }

    fn missing(names: &Names, json: serde_json::Value) -> Vec<String> {
        names
            .missing(&ctx(json), &Known)
            .into_iter()
            .map(|m| {
                format!(
                    "{}{}",
                    m.message,
                    m.hint.map(|h| format!(" ({h})")).unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn names_undefined_variables_and_attributes() {
        let scope = serde_json::json!({"pushed": true, "blob": {"digest": "d", "size": 1},
            "config": {"apis": {"push": true, "pull": true}}});
        assert_eq!(
            missing(&Names::of_expr("pushd"), scope.clone()),
            ["`pushd` is undefined (did you mean `pushed`?)"]
        );
        assert_eq!(
            missing(&Names::of_template("/x/{{ blob.digst }}"), scope.clone()),
            ["`blob.digst` is undefined: `blob` has no `digst` (did you mean `digest`?)"]
        );
        assert_eq!(
            missing(&Names::of_expr("config.apis.psuh and pushed"), scope.clone()),
            ["`config.apis.psuh` is undefined: `config.apis` has no `psuh` (did you mean `push`?)"]
        );
        assert_eq!(
            missing(&Names::of_expr("blob['sise'] > 0"), scope.clone()),
            ["`blob['sise']` is undefined: `blob` has no `sise` (did you mean `size`?)"]
        );
        assert!(missing(&Names::of_expr("range(3) | list"), scope).is_empty());
    }

    #[test]
    fn reads_a_false_condition_skips_are_not_reported() {
        let scope = serde_json::json!({"off": false, "on": true});
        for src in [
            "off and nope",
            "on or nope",
            "nope if off else 1",
            "1 if on else nope",
        ] {
            assert!(
                missing(&Names::of_expr(src), scope.clone()).is_empty(),
                "{src}"
            );
        }
        for src in ["on and nope", "off or nope", "nope if on else 1"] {
            assert_eq!(
                missing(&Names::of_expr(src), scope.clone()).len(),
                1,
                "{src}"
            );
        }
        assert!(missing(
            &Names::of_template("{% if off %}{{ nope }}{% endif %}"),
            scope.clone()
        )
        .is_empty());
    }

    #[test]
    fn optional_reads_are_not_reported() {
        let scope = serde_json::json!({"m": {"json": {"a": 1}}, "h": {"x": 1}});
        for src in [
            "nope | default(1)",
            "nope is defined",
            "m.json.b is defined",
            "m.json.b.c if m.json.b is defined else 0",
            "h.y if 'y' in h else 0",
            "m.json.b | default(0)",
            "'y' in h and h['y']",
        ] {
            assert!(
                missing(&Names::of_expr(src), scope.clone()).is_empty(),
                "{src}: {:?}",
                missing(&Names::of_expr(src), scope.clone())
            );
        }
        // The parts before the optional one must exist.
        assert_eq!(
            missing(&Names::of_expr("mm.json.b | default(0)"), scope.clone()).len(),
            1
        );
    }

    #[test]
    fn loops_methods_and_opaque_values() {
        let scope = serde_json::json!({"xs": [1, 2], "d": "sha256:x", "r": {"json": {}}});
        assert!(missing(
            &Names::of_template("{% for x in xs %}{{ x + loop.index }}{% endfor %}"),
            scope.clone()
        )
        .is_empty());
        assert!(missing(&Names::of_expr("d.startswith('sha256:')"), scope.clone()).is_empty());
        let n = Names::of_expr("r.json.tags");
        let r = ctx(scope.clone()).get_attr("r").unwrap();
        let json = r.get_attr("json").unwrap();
        // `r.json` stands for a body not received yet: its keys are not known.
        struct Opaque(Value);
        impl Oracle for Opaque {
            fn opaque(&self, v: &Value) -> bool {
                v == &self.0
            }
        }
        assert!(n.missing(&ctx(scope.clone()), &Opaque(json)).is_empty());
        assert_eq!(
            n.missing(&ctx(scope), &Known).len(),
            0,
            "empty maps are not compared"
        );
    }

    #[test]
    fn positions_point_at_the_path() {
        let dir = std::env::temp_dir().join(format!("oci-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.yaml");
        std::fs::write(&file, "a:\n  url: \"/v2/{{ rpeo }}/x\"\n").unwrap();
        let pos = Pos::new(&Arc::new(file), 2, 8);
        let src = "/v2/{{ rpeo }}/x";
        let n = Names::of_template(src);
        let m = &n.missing(&ctx(serde_json::json!({"repo": 1})), &Known)[0];
        assert_eq!(position(&pos, src, m.offset).col, 16);
    }
}
