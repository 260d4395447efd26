//! The JSON Schemas of the input formats, and the check of loaded files against them.
//!
//! `schemas/*.schema.json` are the contract of the YAML formats: editors validate against
//! them (`# yaml-language-server: $schema=…`) and `lint` validates every file it loads. The
//! typed loaders stop at the first problem of each struct; a schema sees the whole file, so lint
//! runs both. Schema errors are turned into the same positioned diagnostics as the loaders':
//! the JSON pointer of the failing value is followed through the YAML tree to its line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonschema::error::ValidationErrorKind as Kind;
use serde_json::Value as J;

use crate::diag::{did_you_mean, Diagnostic, Pos};
use crate::pack::FileKind;
use crate::yaml::{Node, Value as Y};

/// Schema of scenario files.
pub const SCENARIO: &str = "scenario.schema.json";
/// Schema of dataset and recipe files.
pub const DATASET: &str = "dataset.schema.json";
/// Schema of `specs/<version>/pack.yaml`.
pub const PACK: &str = "pack.schema.json";
/// Schema of `oci-conformance.yaml` (and of a pack's `defaults`).
pub const CONFIG: &str = "config.schema.json";
/// Schema of the requirement catalogue, `specs/requirements.yaml`.
pub const REQUIREMENTS: &str = "requirements.schema.json";

/// The schema file a kind of file is written against.
pub fn file_for(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Pack => PACK,
        FileKind::Scenario => SCENARIO,
        FileKind::Dataset => DATASET,
        FileKind::Requirements => REQUIREMENTS,
    }
}

/// Parts of a file written in another format, as (JSON pointer, schema file): a pack's
/// `defaults` are configuration and its `items` are scenario nodes. The pack schema only says
/// they are mappings, so each of these formats is described once.
fn nested(kind: FileKind, root: &Node) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    if kind != FileKind::Pack {
        return out;
    }
    if root
        .get("defaults")
        .is_some_and(|d| matches!(d.value, Y::Map(_)))
    {
        out.push(("/defaults".to_string(), CONFIG));
    }
    if let Some(Y::Seq(items)) = root.get("items").map(|i| &i.value) {
        for (i, item) in items.iter().enumerate() {
            if matches!(item.value, Y::Map(_)) {
                out.push((format!("/items/{i}"), SCENARIO));
            }
        }
    }
    out
}

/// A schema file, parsed and compiled.
struct Compiled {
    json: J,
    validator: jsonschema::Validator,
}

/// The format schemas of one folder, each read and compiled on first use.
pub struct FormatSchemas {
    dir: PathBuf,
    loaded: HashMap<String, Result<Arc<Compiled>, Diagnostic>>,
}

impl FormatSchemas {
    /// Schemas read from `dir` (the repository's `schemas/` folder).
    pub fn new(dir: &Path) -> Self {
        FormatSchemas {
            dir: dir.to_path_buf(),
            loaded: HashMap::new(),
        }
    }

    /// Checks a parsed file of `kind` against its schema; problems are sorted by position.
    pub fn check(&mut self, root: &Node, kind: FileKind) -> Vec<Diagnostic> {
        let mut out = self.validate(file_for(kind), root);
        for (pointer, schema) in nested(kind, root) {
            out.extend(self.validate(schema, root.locate(&pointer)));
        }
        out.sort_by_key(|d| (d.pos.line, d.pos.col));
        out.dedup();
        out
    }

    /// Checks `node` against the schema file `name`; a schema that cannot be read or compiled
    /// is itself the problem reported.
    pub fn validate(&mut self, name: &str, node: &Node) -> Vec<Diagnostic> {
        let compiled = match self.get(name) {
            Ok(c) => c,
            Err(d) => return vec![d],
        };
        let instance = node.to_json();
        let errors: Vec<_> = compiled.validator.iter_errors(&instance).collect();
        // A value of the wrong type gets one message, about its type: keywords such as
        // `required` or `oneOf` would otherwise add noise about a mapping that is not one.
        let mistyped: Vec<&str> = errors
            .iter()
            .filter(|e| matches!(e.kind(), Kind::Type { .. }))
            .map(|e| e.instance_path().as_str())
            .collect();
        let mut out = Vec::new();
        for e in &errors {
            if !matches!(e.kind(), Kind::Type { .. })
                && mistyped.contains(&e.instance_path().as_str())
            {
                continue;
            }
            out.extend(problems(node, &compiled.json, e));
        }
        out
    }

    fn get(&mut self, name: &str) -> Result<Arc<Compiled>, Diagnostic> {
        let dir = &self.dir;
        self.loaded
            .entry(name.to_string())
            .or_insert_with(|| compile(&dir.join(name)).map(Arc::new))
            .clone()
    }
}

fn compile(path: &Path) -> Result<Compiled, Diagnostic> {
    let fail = |what: String| {
        Diagnostic::new(Pos::file(path), what).with_hint(
            "lint checks every file against the JSON Schemas in the repository's `schemas/` \
             folder (a pack may name another folder with `schemas:`)",
        )
    };
    let text = crate::source::read_to_string(path)
        .map_err(|e| fail(format!("cannot read schema: {e}")))?;
    let json: J =
        serde_json::from_str(&text).map_err(|e| fail(format!("schema is not valid JSON: {e}")))?;
    let validator =
        jsonschema::validator_for(&json).map_err(|e| fail(format!("invalid JSON Schema: {e}")))?;
    Ok(Compiled { json, validator })
}

/// The diagnostics for one schema error; `root` is the validated node.
fn problems(root: &Node, schema: &J, e: &jsonschema::ValidationError<'_>) -> Vec<Diagnostic> {
    let node = root.locate(e.instance_path().as_str());
    // The schema object holding the failing keyword (`…/additionalProperties` → `…`).
    let keyword_at = e.schema_path().as_str();
    let holder = keyword_at
        .rsplit_once('/')
        .and_then(|(parent, _)| schema.pointer(parent))
        .unwrap_or(&J::Null);
    let at = |message: String| Diagnostic::new(node.pos.clone(), message);
    let one = match e.kind() {
        Kind::AdditionalProperties { unexpected } => {
            return unexpected
                .iter()
                .map(|key| unknown_key(node, key, holder))
                .collect();
        }
        Kind::Required { property } => at(format!(
            "missing key `{}`",
            property.as_str().unwrap_or_default()
        )),
        Kind::PropertyNames { error } => {
            let key = error.instance().as_str().unwrap_or_default();
            let pos = node
                .locate(&format!("/{}", key.replace('~', "~0").replace('/', "~1")))
                .pos
                .clone();
            // The failing keyword is inside `propertyNames`, so its holder is that schema.
            let expected = title(holder).unwrap_or("a valid key");
            Diagnostic::new(pos, format!("invalid key `{key}`: expected {expected}"))
        }
        Kind::Type { .. } => at(format!(
            "expected {}, found {}",
            title(holder).map_or_else(|| type_names(&holder["type"]), String::from),
            found(node)
        )),
        Kind::Enum { options } => {
            let names: Vec<String> = options
                .as_array()
                .map(|o| o.iter().map(scalar_name).collect())
                .unwrap_or_default();
            let d = at(format!("unknown value {}", found(node)));
            with_suggestion(d, node, &names)
        }
        Kind::Constant { expected_value } => at(format!(
            "expected `{}`, found {}",
            scalar_name(expected_value),
            found(node)
        )),
        Kind::AnyOf { .. } => alternatives(node, &holder["anyOf"], "at least one of")
            .unwrap_or_else(|| at(e.to_string())),
        Kind::OneOfNotValid { .. } => alternatives(node, &holder["oneOf"], "exactly one of")
            .unwrap_or_else(|| at(e.to_string())),
        Kind::OneOfMultipleValid { .. } => match titles(&holder["oneOf"]) {
            Some(t) => at(format!(
                "expected exactly one of {}, found several",
                join(&t)
            )),
            None => at(e.to_string()),
        },
        Kind::Not { schema } => match title(schema) {
            Some(t) => at(format!("not allowed: {t}")),
            None => at(e.to_string()),
        },
        Kind::MinProperties { .. } | Kind::MaxProperties { .. } | Kind::Pattern { .. } => {
            match title(holder) {
                Some(t) => at(format!("expected {t}, found {}", found(node))),
                None => at(e.to_string()),
            }
        }
        _ => at(e.to_string()),
    };
    vec![one]
}

/// "unknown key" at the key itself, with a suggestion among the keys the schema allows.
fn unknown_key(node: &Node, key: &str, holder: &J) -> Diagnostic {
    let pos = node.key_pos(key).unwrap_or(&node.pos).clone();
    let allowed: Vec<&str> = holder["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let d = Diagnostic::new(pos, format!("unknown key `{key}`"));
    match did_you_mean(key, allowed.iter().copied()) {
        Some(s) => d.with_hint(format!("did you mean `{s}`?")),
        None if !allowed.is_empty() => {
            d.with_hint(format!("expected one of: {}", allowed.join(", ")))
        }
        None => d,
    }
}

/// The message for a value that matches none (or more than one) of a list of alternatives,
/// named by their `title`s.
fn alternatives(node: &Node, branches: &J, quantity: &str) -> Option<Diagnostic> {
    let names = titles(branches)?;
    let message = if matches!(node.value, Y::Map(_)) {
        format!("expected {quantity} {}", join(&names))
    } else {
        format!("expected {}, found {}", join(&names), found(node))
    };
    // Keyword alternatives (`enum` branches) make "did you mean" possible for a misspelling.
    let words: Vec<String> = branches
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["enum"].as_array())
        .flatten()
        .map(scalar_name)
        .collect();
    Some(with_suggestion(
        Diagnostic::new(node.pos.clone(), message),
        node,
        &words,
    ))
}

fn with_suggestion(d: Diagnostic, node: &Node, words: &[String]) -> Diagnostic {
    let Some(text) = node.as_str() else {
        return d;
    };
    match did_you_mean(text, words.iter().map(String::as_str)) {
        Some(s) => d.with_hint(format!("did you mean `{s}`?")),
        None if !words.is_empty() => d.with_hint(format!("expected one of: {}", words.join(", "))),
        None => d,
    }
}

fn title(schema: &J) -> Option<&str> {
    schema.get("title").and_then(J::as_str)
}

/// The titles of every branch, or None when one has no title.
fn titles(branches: &J) -> Option<Vec<String>> {
    branches
        .as_array()?
        .iter()
        .map(|b| title(b).map(String::from))
        .collect()
}

/// `a`, `a or b`, `a, b or c`.
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The JSON Schema `type` keyword in words, as the YAML author knows the types.
fn type_names(types: &J) -> String {
    let name = |t: &str| match t {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "true or false",
        "array" => "a sequence",
        "object" => "a mapping",
        "null" => "null",
        _ => "a value",
    };
    let list: Vec<String> = match types {
        J::String(t) => vec![name(t).to_string()],
        J::Array(ts) => ts
            .iter()
            .filter_map(J::as_str)
            .map(|t| name(t).to_string())
            .collect(),
        _ => vec!["a value".to_string()],
    };
    join(&list)
}

/// What a YAML value is, for "found …": scalars are quoted (and shortened), collections named.
fn found(node: &Node) -> String {
    match &node.value {
        Y::Null => "null".to_string(),
        Y::Seq(_) | Y::Map(_) => node.value.kind().to_string(),
        // YAML reads `yes`, `on` or `y` as booleans; naming the type explains the surprise.
        Y::Bool(b) => format!("the boolean `{b}`"),
        _ => {
            let text = node.scalar_text();
            let first = text.lines().next().unwrap_or_default();
            let short: String = first.chars().take(40).collect();
            if short.len() < text.len() {
                format!("`{short}…`")
            } else {
                format!("`{short}`")
            }
        }
    }
}

fn scalar_name(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    fn schemas() -> FormatSchemas {
        FormatSchemas::new(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas"))
    }

    fn check(kind: FileKind, src: &str) -> Vec<String> {
        let node = parse(Path::new("f.yaml"), src).unwrap();
        schemas()
            .check(&node, kind)
            .iter()
            .map(|d| {
                let hint = d
                    .hint
                    .as_deref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                format!("{}:{} {}{hint}", d.pos.line, d.pos.col, d.message)
            })
            .collect()
    }

    #[test]
    fn unknown_keys_point_at_the_key_and_suggest() {
        let found = check(
            FileKind::Scenario,
            "name: x\nsteps:\n  - request: {method: GET, url: /v2/}\n    expect:\n      stauts: 200\n      headers:\n        Location: {presnt: true}\n",
        );
        assert_eq!(
            found,
            [
                "5:7 unknown key `stauts` (did you mean `status`?)",
                "7:20 unknown key `presnt` (did you mean `present`?)"
            ]
        );
    }

    #[test]
    fn wrong_types_name_what_was_expected() {
        let found = check(
            FileKind::Scenario,
            "name: x\nparallel: sometimes\nsteps:\n  - request: {method: GET, url: /v2/}\n    expect: {status: {a: 1}, headers: {A: {present: shuold}}}\n",
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0], "2:11 expected true or false, found `sometimes`");
        assert!(
            found[1].starts_with(
                "5:22 expected a status code, a class (4xx), a list or a template, found a mapping"
            ),
            "{found:?}"
        );
        assert_eq!(
            found[2],
            "5:53 expected true or false, a level keyword (MUST, SHOULD, MAY) or a template (`{{ … }}`), found `shuold` (did you mean `SHOULD`?)"
        );
    }

    #[test]
    fn structure_rules_use_titles() {
        let found = check(FileKind::Scenario, "name: x\nitems: []\nsteps: []\n");
        assert_eq!(
            found,
            ["1:1 expected exactly one of `use`, `items` or `steps`, found several"]
        );
        let found = check(FileKind::Scenario, "items:\n  - steps: []\n");
        assert_eq!(found, ["2:5 missing key `name`"]);
        let found = check(FileKind::Scenario, "name: x\nsteps: [{name: z}]\n");
        assert_eq!(
            found,
            ["2:9 expected at least one of `request`, `steps`, `expect` or `set`"]
        );
    }

    #[test]
    fn a_mistyped_value_gets_one_message() {
        let found = check(FileKind::Scenario, "name: x\nsteps: [GET /v2/]\n");
        assert_eq!(found, ["2:9 expected a mapping, found `GET /v2/`"]);
    }

    #[test]
    fn booleans_are_named_as_such() {
        let found = check(FileKind::Scenario, "name: true\nitems: []\n");
        assert_eq!(found, ["1:7 expected a string, found the boolean `true`"]);
    }

    #[test]
    fn json_pointer_keys_are_checked_at_their_value() {
        let found = check(
            FileKind::Scenario,
            "name: x\nsteps:\n  - request: {method: GET, url: /x}\n    expect:\n      body:\n        json: {tags: [], /name: x}\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("6:22 invalid key `tags`: expected a JSON pointer"),
            "{found:?}"
        );
    }

    #[test]
    fn pack_defaults_and_items_are_checked_in_their_own_format() {
        let found = check(
            FileKind::Pack,
            "name: t\nspecVersion: '1'\ndefaults: {apis: {pul: false}}\nitems:\n  - {use: a.yaml, fro_each: {x: y}}\n",
        );
        assert_eq!(
            found,
            [
                "3:19 unknown key `pul` (did you mean `pull`?)",
                "5:19 unknown key `fro_each` (did you mean `for_each`?)"
            ]
        );
    }

    #[test]
    fn dataset_items_need_exactly_one_source() {
        let found = check(
            FileKind::Dataset,
            "items:\n  - {name: a, random: 1, text: x}\n  - {random: 2}\n  - {name: c, rol: blob, json: {}}\n",
        );
        assert_eq!(
            found,
            [
                "2:5 expected exactly one of `use`, `random`, `text`, `json`, `tar` or `generated`, found several",
                "3:5 missing key `name`",
                "4:15 unknown key `rol` (did you mean `role`?)"
            ]
        );
    }

    #[test]
    fn an_unreadable_schema_is_a_clear_error() {
        let mut s = FormatSchemas::new(Path::new("/nonexistent/schemas"));
        let node = parse(Path::new("f.yaml"), "name: x\n").unwrap();
        let found = s.check(&node, FileKind::Scenario);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.starts_with("cannot read schema"),
            "{}",
            found[0].message
        );
        assert!(found[0]
            .to_string()
            .starts_with("/nonexistent/schemas/scenario.schema.json"));
    }
}
