//! Checks of an answer against a step's expectations.
//!
//! Every check yields a [`Check`]: whether it held, a message with the actual and expected
//! values, its level and the scenario position it came from. The runner turns MUST-level
//! failures into FAIL and SHOULD/MAY-level ones into warnings. A problem with the scenario
//! itself (a template that cannot be evaluated) is returned as an error, not as a failed check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::value::Value;

use crate::content::Store;
use crate::diag::{Diagnostic, Pos};
use crate::http::Response;
use crate::scenario::{BodyExpectSpec, ExpectSpec, JsonType, Level, MatcherSpec};
use crate::template::{json_subset, to_json, ValueTmpl};

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Whether it held.
    pub ok: bool,
    /// Description (with actual and expected values when it did not hold).
    pub message: String,
    /// Level.
    pub level: Level,
    /// Requirement ids.
    pub req: Vec<String>,
    /// Where it is written.
    pub pos: Pos,
}

/// Compiled JSON Schemas from the pack's schema folder, loaded on first use.
#[derive(Default)]
pub struct Schemas {
    dir: PathBuf,
    cache: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Schemas {
    /// Schemas read from `dir`.
    pub fn new(dir: &Path) -> Self {
        Schemas {
            dir: dir.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The validator for a schema file name.
    pub fn get(&self, name: &str, pos: &Pos) -> Result<Arc<jsonschema::Validator>, Diagnostic> {
        if let Some(v) = self.cache.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(v);
        }
        let path = self.dir.join(name);
        let shown = crate::diag::display_path(&path);
        let text = crate::source::read_to_string(&path).map_err(|e| {
            Diagnostic::new(pos.clone(), format!("cannot read schema {shown}: {e}"))
        })?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Diagnostic::new(pos.clone(), format!("schema {shown} is not JSON: {e}"))
        })?;
        let v =
            Arc::new(jsonschema::validator_for(&json).map_err(|e| {
                Diagnostic::new(pos.clone(), format!("invalid schema {shown}: {e}"))
            })?);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name.to_string(), v.clone());
        }
        Ok(v)
    }
}

/// What checks need besides the answer.
pub struct CheckEnv<'a> {
    /// Template context (scope plus `response`).
    pub ctx: &'a Value,
    /// Item bytes.
    pub store: &'a Store,
    /// Schemas.
    pub schemas: &'a Schemas,
    /// Level when a check names none.
    pub level: Level,
    /// Requirement ids of the step.
    pub req: &'a [String],
}

/// The status codes a status spec accepts.
pub fn status_set(spec: &ValueTmpl, ctx: &Value) -> Result<Vec<u16>, Diagnostic> {
    let v = to_json(&spec.eval(ctx)?).unwrap_or_default();
    crate::scenario::status_codes(&v, &spec.pos())
}

/// Runs every header, body and assertion check of `expect` (the status is checked by the runner).
pub fn check(
    expect: &ExpectSpec,
    resp: Option<&Response>,
    json: Option<&Result<serde_json::Value, String>>,
    env: &CheckEnv<'_>,
) -> Result<Vec<Check>, Diagnostic> {
    let mut out = Vec::new();
    if let Some(resp) = resp {
        for (name, m) in &expect.headers {
            let values = resp.header_all(name);
            out.extend(header_check(name, &values, m, env)?);
        }
        if let Some(body) = &expect.body {
            out.extend(body_checks(body, resp, json, env)?);
        }
    }
    for a in &expect.assert {
        let ok = a.that.truthy(env.ctx)?;
        let message = if ok {
            format!("assert `{}`", a.that.src)
        } else {
            a.message.render(env.ctx)?
        };
        out.push(Check {
            ok,
            message,
            level: a.level.unwrap_or(env.level),
            req: merge_req(env.req, &a.req),
            pos: a.that.pos.clone(),
        });
    }
    Ok(out)
}

fn merge_req(a: &[String], b: &[String]) -> Vec<String> {
    let mut v = a.to_vec();
    for x in b {
        if !v.contains(x) {
            v.push(x.clone());
        }
    }
    v
}

/// Whether a matcher's `when` holds (no `when`: always).
fn applies(m: &MatcherSpec, ctx: &Value) -> Result<bool, Diagnostic> {
    m.when.as_ref().map_or(Ok(true), |w| w.truthy(ctx))
}

fn truthy(v: &ValueTmpl, ctx: &Value) -> Result<bool, Diagnostic> {
    Ok(v.eval(ctx)?.is_true())
}

/// How strongly a value must be present: `true`/`MUST`, `SHOULD`, `MAY`, or `false` (optional).
/// Returns the level of the "missing" finding, or None when absence is fine.
fn presence(m: &MatcherSpec, ctx: &Value, level: Level) -> Result<Option<Level>, Diagnostic> {
    let Some(p) = &m.present else {
        return Ok(Some(level));
    };
    let v = p.eval(ctx)?;
    Ok(match v.as_str() {
        Some("MUST") => Some(Level::Must),
        Some("SHOULD") => Some(Level::Should),
        Some("MAY") => None,
        _ if v.is_true() => Some(level),
        _ => None,
    })
}

fn show(values: &[&str]) -> String {
    match values.len() {
        0 => "nothing".into(),
        1 => format!("`{}`", values[0]),
        _ => format!("{values:?}"),
    }
}

/// Checks one header; absent optional headers pass.
fn header_check(
    name: &str,
    values: &[&str],
    m: &MatcherSpec,
    env: &CheckEnv<'_>,
) -> Result<Vec<Check>, Diagnostic> {
    let ctx = env.ctx;
    if !applies(m, ctx)? {
        return Ok(Vec::new());
    }
    let level = m.level.unwrap_or(env.level);
    let req = merge_req(env.req, &m.req);
    let mk = |ok: bool, msg: String| matcher_check(m, ctx, level, &req, ok, msg);
    let mut out = Vec::new();
    if let Some(a) = &m.absent {
        if truthy(a, ctx)? {
            out.push(mk(
                values.is_empty(),
                format!("header {name} must be absent, got {}", show(values)),
            )?);
            return Ok(out);
        }
    }
    if values.is_empty() {
        if let Some(l) = presence(m, ctx, level)? {
            let mut c = mk(false, format!("header {name} is missing"))?;
            c.level = l;
            out.push(c);
        }
        return Ok(out);
    }
    let joined = values.join(", ");
    let items: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(e) = &m.equals {
        let want = scalar_text(&e.eval(ctx)?);
        out.push(mk(
            joined.trim() == want.trim(),
            format!("header {name}: expected `{want}`, got {}", show(values)),
        )?);
    }
    if let Some(e) = &m.one_of {
        let want: Vec<String> = list_text(&e.eval(ctx)?);
        out.push(mk(
            want.iter().any(|w| w.trim() == joined.trim()),
            format!(
                "header {name}: expected one of {want:?}, got {}",
                show(values)
            ),
        )?);
    }
    if let Some((re, src)) = &m.matches {
        out.push(mk(
            values.iter().all(|v| re.is_match(v)),
            format!(
                "header {name}: expected to match `{src}`, got {}",
                show(values)
            ),
        )?);
    }
    if let Some(e) = &m.contains {
        let want = list_text(&e.eval(ctx)?);
        let missing: Vec<&String> = want.iter().filter(|w| !items.contains(w)).collect();
        out.push(mk(
            missing.is_empty(),
            format!("header {name}: missing {missing:?} in {}", show(values)),
        )?);
    }
    if let Some(e) = &m.length {
        let want = scalar_text(&e.eval(ctx)?);
        out.push(mk(
            items.len().to_string() == want,
            format!("header {name}: expected {want} items, got {}", items.len()),
        )?);
    }
    Ok(out)
}

/// One check of a matcher; a failed one leads with the matcher's own `message` when it has one.
fn matcher_check(
    m: &MatcherSpec,
    ctx: &Value,
    level: Level,
    req: &[String],
    ok: bool,
    msg: String,
) -> Result<Check, Diagnostic> {
    let message = match (&m.message, ok) {
        (Some(t), false) => format!("{} ({msg})", t.render(ctx)?),
        _ => msg,
    };
    Ok(Check {
        ok,
        message,
        level,
        req: req.to_vec(),
        pos: m.pos.clone(),
    })
}

fn scalar_text(v: &Value) -> String {
    if v.is_none() || v.is_undefined() {
        return String::new();
    }
    v.to_string()
}

fn list_text(v: &Value) -> Vec<String> {
    if v.kind() == minijinja::value::ValueKind::Seq {
        v.try_iter()
            .map(|i| i.map(|x| scalar_text(&x)).collect())
            .unwrap_or_default()
    } else {
        vec![scalar_text(v)]
    }
}

/// Bytes shown in hex when a body is not text.
const HEX_HEAD: usize = 16;

/// The first bytes of a body in hex (`1f 8b 08 00 …`), for bodies that are not text.
pub fn hex_head(body: &[u8]) -> String {
    let head: Vec<String> = body
        .iter()
        .take(HEX_HEAD)
        .map(|b| format!("{b:02x}"))
        .collect();
    let more = if body.len() > HEX_HEAD { " …" } else { "" };
    format!("{}{more}", head.join(" "))
}

/// Whether bytes read as text; a character cut at the end is allowed when the bytes are
/// only the start of the body.
fn is_text(body: &[u8], cut: bool) -> bool {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) if cut && e.error_len().is_none() => {
            std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    text.chars().all(|c| !c.is_control() || c.is_whitespace())
}

/// A body for messages: a short excerpt of text, or — for bytes that are not text — the size,
/// the digest and the first bytes in hex, never the raw bytes.
pub fn body_excerpt(body: &[u8], len: u64, digest: Option<&str>) -> String {
    let cut = body.len() > 300 || (body.len() as u64) < len;
    if is_text(&body[..body.len().min(300)], cut) {
        return excerpt(body);
    }
    format!(
        "{len} bytes, not text{}, starting {}",
        digest.map(|d| format!(", {d}")).unwrap_or_default(),
        hex_head(body)
    )
}

/// The answer's body for messages (see [`body_excerpt`]).
pub fn response_excerpt(resp: &Response) -> String {
    body_excerpt(&resp.body, resp.body_len, resp.digest("sha256"))
}

/// A short, safe excerpt of a text for messages.
pub fn excerpt(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(&body[..body.len().min(300)]);
    let t: String = t
        .chars()
        .map(|c| if c.is_control() && c != ' ' { ' ' } else { c })
        .collect();
    if body.len() > 300 {
        format!("{}…", t.trim())
    } else {
        t.trim().to_string()
    }
}

fn body_checks(
    b: &BodyExpectSpec,
    resp: &Response,
    json: Option<&Result<serde_json::Value, String>>,
    env: &CheckEnv<'_>,
) -> Result<Vec<Check>, Diagnostic> {
    let ctx = env.ctx;
    let level = b.level.unwrap_or(env.level);
    let req = merge_req(env.req, &b.req);
    let mut out = Vec::new();
    let mk = |ok: bool, message: String, pos: &Pos| Check {
        ok,
        message,
        level,
        req: req.clone(),
        pos: pos.clone(),
    };
    if let Some(empty) = b.empty {
        let ok = (resp.body_len == 0) == empty;
        let msg = if empty {
            format!(
                "body must be empty, got {} bytes: {}",
                resp.body_len,
                response_excerpt(resp)
            )
        } else {
            "body must not be empty".to_string()
        };
        out.push(mk(ok, msg, &b.pos));
    }
    if let Some(id_t) = &b.content {
        let id = id_t.render(ctx)?;
        let content = env
            .store
            .get(&id)
            .ok_or_else(|| Diagnostic::new(id_t.pos.clone(), format!("no dataset item `{id}`")))?;
        let range = match &b.range {
            Some(r) => Some(parse_range(&r.render(ctx)?, &r.pos)?),
            None => None,
        };
        let want_len = match range {
            Some((s, e)) => e.saturating_sub(s) + 1,
            None => content.len(),
        };
        let want = env.store.digest(&id, "sha256", range);
        let got = resp.digest("sha256");
        let ok = resp.body_len == want_len && got.is_some() && got == want.as_deref();
        let msg = if ok {
            format!("body equals {id}")
        } else if let Some(e) = &resp.body_error {
            format!("body of {id} could not be read: {e}")
        } else {
            format!(
                "body differs from {id}{}: got {} bytes ({}), expected {want_len} bytes ({}){}",
                range
                    .map(|(s, e)| format!(" bytes {s}-{e}"))
                    .unwrap_or_default(),
                resp.body_len,
                got.unwrap_or("-"),
                want.as_deref().unwrap_or("-"),
                if resp.body.is_empty() {
                    String::new()
                } else {
                    format!("; body starts: {}", response_excerpt(resp))
                }
            )
        };
        out.push(mk(ok, msg, &id_t.pos));
    }
    if let Some(t) = &b.text {
        let want = t.render(ctx)?;
        let got = String::from_utf8_lossy(&resp.body);
        out.push(mk(
            got == want,
            format!(
                "body: expected `{}`, got `{}`",
                excerpt(want.as_bytes()),
                response_excerpt(resp)
            ),
            &t.pos,
        ));
    }
    if b.json.is_some() || b.schema.is_some() {
        let parsed = match json {
            Some(Ok(v)) => Some(v),
            Some(Err(_)) if b.if_json => None,
            Some(Err(e)) => {
                out.push(mk(
                    false,
                    format!("body is not JSON ({e}): {}", response_excerpt(resp)),
                    &b.pos,
                ));
                None
            }
            None => None,
        };
        if let Some(v) = parsed {
            for (ptr, m) in b.json.iter().flatten() {
                out.extend(json_check(v, ptr, m, env, level, &req)?);
            }
            if let Some(schema) = &b.schema {
                let validator = env.schemas.get(&schema.value, &schema.pos)?;
                let errors: Vec<String> = validator
                    .iter_errors(v)
                    .take(5)
                    .map(|e| format!("{} at `{}`", e, e.instance_path()))
                    .collect();
                let ok = errors.is_empty();
                let msg = if ok {
                    format!("body matches {}", schema.value)
                } else {
                    format!(
                        "body does not match {}: {}",
                        schema.value,
                        errors.join("; ")
                    )
                };
                out.push(mk(ok, msg, &schema.pos));
            }
        }
    }
    Ok(out)
}

/// Parses `start-end` (inclusive).
pub fn parse_range(s: &str, pos: &Pos) -> Result<(u64, u64), Diagnostic> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| Diagnostic::new(pos.clone(), format!("range `{s}` is not `start-end`")))?;
    let a = a
        .trim()
        .parse::<u64>()
        .map_err(|_| Diagnostic::new(pos.clone(), format!("range `{s}`: bad start")))?;
    let b = b
        .trim()
        .parse::<u64>()
        .map_err(|_| Diagnostic::new(pos.clone(), format!("range `{s}`: bad end")))?;
    Ok((a, b))
}

fn json_type_ok(v: &serde_json::Value, t: JsonType) -> bool {
    use serde_json::Value as J;
    match t {
        JsonType::Object => v.is_object(),
        JsonType::Array => v.is_array(),
        JsonType::String => v.is_string(),
        JsonType::Number => v.is_number(),
        JsonType::Integer => v.is_i64() || v.is_u64(),
        JsonType::Boolean => v.is_boolean(),
        JsonType::Null => matches!(v, J::Null),
    }
}

fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        format!(
            "{}…",
            &s[..s
                .char_indices()
                .take_while(|(i, _)| *i < 200)
                .last()
                .map_or(0, |(i, c)| i + c.len_utf8())]
        )
    } else {
        s
    }
}

fn json_check(
    doc: &serde_json::Value,
    ptr: &str,
    m: &MatcherSpec,
    env: &CheckEnv<'_>,
    level: Level,
    req: &[String],
) -> Result<Vec<Check>, Diagnostic> {
    let ctx = env.ctx;
    if !applies(m, ctx)? {
        return Ok(Vec::new());
    }
    let level = m.level.unwrap_or(level);
    let req = merge_req(req, &m.req);
    let mk = |ok: bool, msg: String| matcher_check(m, ctx, level, &req, ok, msg);
    let at = if ptr.is_empty() {
        "body".to_string()
    } else {
        format!("`{ptr}`")
    };
    let value = doc.pointer(ptr);
    let mut out = Vec::new();
    if let Some(a) = &m.absent {
        if truthy(a, ctx)? {
            out.push(mk(
                value.is_none(),
                format!(
                    "{at} must be absent, got {}",
                    value.map(short).unwrap_or_default()
                ),
            )?);
            return Ok(out);
        }
    }
    let Some(value) = value else {
        if let Some(l) = presence(m, ctx, level)? {
            let mut c = mk(false, format!("{at} is missing"))?;
            c.level = l;
            out.push(c);
        }
        return Ok(out);
    };
    if let Some(t) = m.type_ {
        out.push(mk(
            json_type_ok(value, t),
            format!("{at}: expected {t:?}, got {}", short(value)).to_lowercase(),
        )?);
    }
    if let Some(e) = &m.equals {
        let want = e.eval_json(ctx)?;
        out.push(mk(
            json_eq(value, &want),
            format!("{at}: expected {}, got {}", short(&want), short(value)),
        )?);
    }
    if let Some(e) = &m.one_of {
        let want = e.eval_json(ctx)?;
        let options = want
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![want.clone()]);
        out.push(mk(
            options.iter().any(|o| json_eq(value, o)),
            format!(
                "{at}: expected one of {}, got {}",
                short(&want),
                short(value)
            ),
        )?);
    }
    if let Some((re, src)) = &m.matches {
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), String::from);
        out.push(mk(
            re.is_match(&text),
            format!("{at}: expected to match `{src}`, got {}", short(value)),
        )?);
    }
    if let Some(e) = &m.contains {
        let want = e.eval_json(ctx)?;
        let ok = match (value, &want) {
            (serde_json::Value::String(s), serde_json::Value::String(w)) => s.contains(w.as_str()),
            (serde_json::Value::Array(items), w) if !w.is_array() => {
                items.iter().any(|i| json_subset(i, w))
            }
            _ => json_subset(value, &want),
        };
        out.push(mk(
            ok,
            format!(
                "{at}: expected to contain {}, got {}",
                short(&want),
                short(value)
            ),
        )?);
    }
    if let Some(e) = &m.length {
        let want = e.eval_json(ctx)?.as_u64().unwrap_or(u64::MAX);
        let len = match value {
            serde_json::Value::Array(a) => a.len(),
            serde_json::Value::Object(o) => o.len(),
            serde_json::Value::String(s) => s.chars().count(),
            _ => usize::MAX,
        } as u64;
        out.push(mk(
            len == want,
            format!("{at}: expected length {want}, got {len}"),
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    fn matcher(src: &str) -> MatcherSpec {
        let text = format!(
            "name: t\nsteps:\n  - request: {{method: GET, url: /}}\n    expect: {{headers: {{X: {src}}}}}\n"
        );
        let node = parse(Path::new("m.yaml"), &text).unwrap();
        struct NoFiles;
        impl crate::scenario::Resolver for NoFiles {
            fn resolve(
                &mut self,
                p: &str,
                f: &Pos,
            ) -> Result<Arc<crate::scenario::NodeSpec>, Diagnostic> {
                Err(Diagnostic::new(f.clone(), p))
            }
        }
        let spec = crate::scenario::compile_node(&node, &mut NoFiles).unwrap();
        let crate::scenario::NodeBody::Case(mut c) = spec.body else {
            panic!()
        };
        c.steps.remove(0).expect.headers.remove(0).1
    }

    fn run(m: &MatcherSpec, values: &[&str]) -> Vec<Check> {
        let ctx = Value::from(minijinja::value::Serde(
            serde_json::json!({"d": "sha256:abc", "tags": ["a", "b"], "on": true}),
        ));
        let store = Store::default();
        let schemas = Schemas::default();
        let env = CheckEnv {
            ctx: &ctx,
            store: &store,
            schemas: &schemas,
            level: Level::Must,
            req: &[],
        };
        header_check("X", values, m, &env).unwrap()
    }

    #[test]
    fn header_equals_and_optional_presence() {
        let m = matcher("{ equals: '{{ d }}', present: false }");
        assert!(run(&m, &[]).is_empty(), "absent optional header passes");
        assert!(run(&m, &["sha256:abc"])[0].ok);
        let c = &run(&m, &["sha256:zzz"])[0];
        assert!(!c.ok);
        assert_eq!(
            c.message,
            "header X: expected `sha256:abc`, got `sha256:zzz`"
        );
        let required = matcher("{ present: '{{ on }}' }");
        assert_eq!(run(&required, &[])[0].message, "header X is missing");
        let should = matcher("{ present: SHOULD }");
        assert_eq!(run(&should, &[])[0].level, Level::Should);
        assert!(run(&matcher("{ present: MAY }"), &[]).is_empty());
    }

    #[test]
    fn header_lists_and_absence() {
        let m = matcher("{ contains: '{{ tags }}' }");
        assert!(run(&m, &["a, b", "c"])[0].ok);
        assert!(!run(&m, &["a"])[0].ok);
        let m = matcher("{ absent: true }");
        assert!(run(&m, &[])[0].ok);
        assert!(!run(&m, &["x"])[0].ok);
        let m = matcher("{ matches: '0-[0-9]+' }");
        assert!(run(&m, &["0-511"])[0].ok);
        assert!(!run(&m, &["bytes 0-511"])[0].ok);
    }

    #[test]
    fn binary_bodies_are_shown_by_size_digest_and_hex() {
        let bin = [0x1f_u8, 0x8b, 0x08, 0x00, 0xff, 0x00, 0x01];
        assert_eq!(
            body_excerpt(&bin, 7, Some("sha256:ab")),
            "7 bytes, not text, sha256:ab, starting 1f 8b 08 00 ff 00 01"
        );
        assert_eq!(
            body_excerpt(b"{\"errors\": []}", 14, None),
            "{\"errors\": []}"
        );
        // a character cut by the excerpt is still text
        assert_eq!(body_excerpt("é".as_bytes(), 2, None), "é");
        assert!(body_excerpt(&[0xc3], 1, None).contains("1 bytes, not text"));
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("0-511", &Pos::default()).unwrap(), (0, 511));
        assert!(parse_range("x", &Pos::default()).is_err());
    }
}
