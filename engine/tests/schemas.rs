//! The JSON Schemas in `schemas/` are the contract of the YAML formats. These tests keep them
//! and the Rust loaders from drifting apart: every shipped file validates, every schema object
//! has exactly the keys of its Rust struct, the configuration schema has exactly the keys of
//! `config::KEYS`, docs/format.md documents every key, and `lint` reports schema violations.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as J};

use common::{cli, root, text, TempDir};
use oci_conform::config::{self, Kind, KEYS};
use oci_conform::diag::Diagnostic;
use oci_conform::pack::{self, FileKind, Loader};
use oci_conform::schema::{self, FormatSchemas};
use oci_conform::yaml;
use oci_conform::{dataset, requirements, scenario};

fn schemas_dir() -> PathBuf {
    root().join("schemas")
}

fn schema_json(name: &str) -> J {
    let text = std::fs::read_to_string(schemas_dir().join(name)).expect("schema readable");
    serde_json::from_str(&text).expect("schema is JSON")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable folder")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

/// What a shipped file is, by where it lives.
fn kind_of(path: &Path) -> FileKind {
    let rel = path.strip_prefix(root()).expect("under the repository");
    if rel.starts_with("datasets") {
        FileKind::Dataset
    } else if path.file_name().is_some_and(|n| n == "requirements.yaml") {
        FileKind::Requirements
    } else if path.file_name().is_some_and(|n| n == "pack.yaml") {
        FileKind::Pack
    } else {
        FileKind::Scenario
    }
}

#[test]
fn every_shipped_file_validates_against_its_schema() {
    let mut files = Vec::new();
    yaml_files(&root().join("specs"), &mut files);
    yaml_files(&root().join("datasets"), &mut files);
    let mut schemas = FormatSchemas::new(&schemas_dir());
    let mut problems = Vec::new();
    let mut kinds = BTreeSet::new();
    for file in &files {
        let kind = kind_of(file);
        kinds.insert(format!("{kind:?}"));
        let node = yaml::load(file).unwrap_or_else(|d| panic!("{d}"));
        problems.extend(schemas.check(&node, kind).iter().map(Diagnostic::to_string));
        // The editor hint on the first lines must name the schema of the file's kind.
        let text = std::fs::read_to_string(file).expect("readable");
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("yaml-language-server: $schema="))
        {
            let target = line.split("$schema=").nth(1).unwrap_or_default().trim();
            let resolved = pack::normalize(&file.parent().expect("parent").join(target));
            if resolved != schemas_dir().join(schema::file_for(kind)) {
                problems.push(format!(
                    "{}: `$schema={target}` is not {}",
                    file.display(),
                    schema::file_for(kind)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        kinds.len(),
        4,
        "packs, scenarios, datasets and the catalogue were all checked: {kinds:?}"
    );
}

// ----- schema objects ⇔ Rust structs ---------------------------------------------------------

/// One schema object and a document that reaches the matching Rust struct: `@` is where the
/// object goes. Documents are JSON, which is YAML.
struct Row {
    schema: &'static str,
    pointer: &'static str,
    kind: FileKind,
    context: &'static str,
}

const STEP: &str = r#"{"name": "c", "steps": [@]}"#;

const ROWS: &[Row] = &[
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/node",
        kind: FileKind::Scenario,
        context: "@",
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/param",
        kind: FileKind::Scenario,
        context: r#"{"name": "g", "params": {"p": @}, "items": []}"#,
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/step",
        kind: FileKind::Scenario,
        context: STEP,
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/request",
        kind: FileKind::Scenario,
        context: r#"{"name": "c", "steps": [{"request": @}]}"#,
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/requestBody",
        kind: FileKind::Scenario,
        context: r#"{"name": "c", "steps": [{"request": {"method": "GET", "url": "/", "body": @}}]}"#,
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/expect",
        kind: FileKind::Scenario,
        context: r#"{"name": "c", "steps": [{"expect": @}]}"#,
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/bodyExpect",
        kind: FileKind::Scenario,
        context: r#"{"name": "c", "steps": [{"expect": {"body": @}}]}"#,
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/matcher",
        kind: FileKind::Scenario,
        context: r#"{"name": "c", "steps": [{"expect": {"headers": {"A": @}}}]}"#,
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/assert",
        kind: FileKind::Scenario,
        context: r#"{"name": "c", "steps": [{"expect": {"assert": [@]}}]}"#,
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/unsupported",
        kind: FileKind::Scenario,
        context: r#"{"name": "c", "steps": [{"request": {"method": "GET", "url": "/"}, "unsupported": [@]}]}"#,
    },
    Row {
        schema: schema::SCENARIO,
        pointer: "/$defs/retry",
        kind: FileKind::Scenario,
        context: r#"{"name": "c", "steps": [{"request": {"method": "GET", "url": "/"}, "retry": @}]}"#,
    },
    Row {
        schema: schema::DATASET,
        pointer: "/$defs/dataset",
        kind: FileKind::Dataset,
        context: "@",
    },
    Row {
        schema: schema::DATASET,
        pointer: "/$defs/item",
        kind: FileKind::Dataset,
        context: r#"{"items": [@]}"#,
    },
    Row {
        schema: schema::DATASET,
        pointer: "/$defs/tar",
        kind: FileKind::Dataset,
        context: r#"{"items": [{"name": "i", "tar": @}]}"#,
    },
    Row {
        schema: schema::DATASET,
        pointer: "/$defs/tarFile",
        kind: FileKind::Dataset,
        context: r#"{"items": [{"name": "i", "tar": {"files": [@]}}]}"#,
    },
    Row {
        schema: schema::DATASET,
        pointer: "/$defs/corrupt",
        kind: FileKind::Dataset,
        context: r#"{"items": [{"name": "i", "random": 1, "corrupt": @}]}"#,
    },
    Row {
        schema: schema::PACK,
        pointer: "/$defs/pack",
        kind: FileKind::Pack,
        context: "@",
    },
    Row {
        schema: schema::PACK,
        pointer: "/$defs/spec",
        kind: FileKind::Pack,
        context: r#"{"name": "p", "specVersion": "1", "items": [], "spec": @}"#,
    },
    Row {
        schema: schema::PACK,
        pointer: "/$defs/touch",
        kind: FileKind::Pack,
        context: r#"{"name": "p", "specVersion": "1", "items": [], "touches": [@]}"#,
    },
    Row {
        schema: schema::PACK,
        pointer: "/$defs/api",
        kind: FileKind::Pack,
        context: r#"{"name": "p", "specVersion": "1", "items": [], "apis": [@]}"#,
    },
    Row {
        schema: schema::PACK,
        pointer: "/$defs/datasetRef",
        kind: FileKind::Pack,
        context: r#"{"name": "p", "specVersion": "1", "items": [], "datasets": [@]}"#,
    },
    Row {
        schema: schema::REQUIREMENTS,
        pointer: "/$defs/catalogue",
        kind: FileKind::Requirements,
        context: "@",
    },
    Row {
        schema: schema::REQUIREMENTS,
        pointer: "/$defs/version",
        kind: FileKind::Requirements,
        context: r#"{"versions": [@], "requirements": []}"#,
    },
    Row {
        schema: schema::REQUIREMENTS,
        pointer: "/$defs/requirement",
        kind: FileKind::Requirements,
        context: r#"{"versions": [{"id": "x", "specVersion": "x", "url": "u"}], "requirements": [@]}"#,
    },
];

/// A key no struct has and no field is close to, so the loader lists every field it knows.
const EXTRA: &str = "qqqqqqqqqqqqqqqq";

/// Feeds a document to the engine's typed loader for `kind`; returns what it reported.
fn load(kind: FileKind, doc: &str, tmp: &TempDir) -> Vec<Diagnostic> {
    let file = tmp.join(if kind == FileKind::Pack {
        "pack.yaml"
    } else {
        "doc.yaml"
    });
    std::fs::write(&file, doc).expect("write document");
    let node = yaml::load(&file).unwrap_or_else(|d| panic!("{d}\n{doc}"));
    let mut loader = Loader::default();
    let result = match kind {
        FileKind::Scenario => scenario::compile_node(&node, &mut loader).map(|_| ()),
        FileKind::Dataset => dataset::compile(&node, &mut loader).map(|_| ()),
        FileKind::Pack => pack::load(&tmp.0).map(|_| ()),
        FileKind::Requirements => requirements::compile(&node, &file).map(|_| ()),
    };
    let mut out = result.err().map(|d| d.0).unwrap_or_default();
    out.extend(loader.diags.0);
    out
}

/// Errors the typed reader raises (as opposed to checks made after reading).
fn is_read_error(d: &Diagnostic) -> bool {
    [
        "unknown key",
        "unknown value",
        "missing key",
        "duplicate key",
        "expected ",
    ]
    .iter()
    .any(|p| d.message.starts_with(p))
}

/// Follows `$ref`s inside one schema document.
fn resolve<'a>(doc: &'a J, mut s: &'a J) -> &'a J {
    while let Some(r) = s.get("$ref").and_then(J::as_str) {
        s = doc
            .pointer(r.trim_start_matches('#'))
            .expect("$ref resolves");
    }
    s
}

/// A minimal value the schema accepts, as a YAML author would write it.
fn sample(doc: &J, s: &J) -> J {
    let s = resolve(doc, s);
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(first) = s
        .get("enum")
        .and_then(J::as_array)
        .and_then(|e| e.iter().find(|v| !v.is_null()))
    {
        return first.clone();
    }
    if let Some(first) = s.get("anyOf").and_then(|a| a.get(0)) {
        return sample(doc, first);
    }
    let ty = match &s["type"] {
        J::String(t) => t.as_str(),
        J::Array(ts) => ts.first().and_then(J::as_str).unwrap_or("string"),
        _ => "string",
    };
    match ty {
        "integer" | "number" => json!(s["minimum"].as_u64().unwrap_or(0).max(1)),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => {
            let mut out = serde_json::Map::new();
            for req in s["required"].as_array().into_iter().flatten() {
                let name = req.as_str().expect("property name");
                out.insert(name.to_string(), sample(doc, &s["properties"][name]));
            }
            if s["minProperties"].as_u64().unwrap_or(0) > 0 {
                out.insert("v".into(), sample(doc, &s["additionalProperties"]));
            }
            J::Object(out)
        }
        _ => json!("x"),
    }
}

fn properties(doc: &J, pointer: &str) -> BTreeSet<String> {
    doc.pointer(pointer)
        .and_then(|o| o["properties"].as_object())
        .unwrap_or_else(|| panic!("{pointer} has properties"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_table_covers_every_schema_object() {
    for name in [
        schema::SCENARIO,
        schema::DATASET,
        schema::PACK,
        schema::REQUIREMENTS,
    ] {
        let doc = schema_json(name);
        let objects: BTreeSet<String> = doc["$defs"]
            .as_object()
            .expect("$defs")
            .iter()
            .filter(|(_, d)| d.get("properties").is_some())
            .map(|(k, _)| format!("/$defs/{k}"))
            .collect();
        let rows: BTreeSet<String> = ROWS
            .iter()
            .filter(|r| r.schema == name)
            .map(|r| r.pointer.to_string())
            .collect();
        assert_eq!(
            objects, rows,
            "{name}: every object with properties needs a row in ROWS"
        );
    }
}

#[test]
fn schema_objects_have_exactly_the_keys_of_their_rust_structs() {
    let tmp = TempDir::new("drift");
    let mut schemas = FormatSchemas::new(&schemas_dir());
    for row in ROWS {
        let doc = schema_json(row.schema);
        let props = properties(&doc, row.pointer);
        assert_eq!(
            doc.pointer(row.pointer)
                .and_then(|o| o.get("additionalProperties")),
            Some(&json!(false)),
            "{}#{}: the structs deny unknown fields, so must the schema",
            row.schema,
            row.pointer
        );

        // One unknown key: the loader rejects it and lists the fields it knows, which must
        // be the schema's properties; the schema rejects it at the same position.
        let extra = row.context.replace('@', &format!(r#"{{"{EXTRA}": 1}}"#));
        let reported = load(row.kind, &extra, &tmp);
        let typed = reported
            .iter()
            .find(|d| d.message == format!("unknown key `{EXTRA}`"))
            .unwrap_or_else(|| {
                panic!(
                    "{}: the loader accepted `{EXTRA}`: {reported:?}",
                    row.pointer
                )
            });
        let fields: BTreeSet<String> = typed
            .hint
            .as_deref()
            .and_then(|h| h.strip_prefix("expected one of: "))
            .unwrap_or_else(|| panic!("{}: no field list in {typed:?}", row.pointer))
            .split(", ")
            .map(String::from)
            .collect();
        assert_eq!(
            props, fields,
            "{}#{}: schema properties vs Rust fields",
            row.schema, row.pointer
        );
        let node = yaml::parse(Path::new("doc.yaml"), &extra).expect("parses");
        let by_schema = schemas.check(&node, row.kind);
        let schema_diag = by_schema
            .iter()
            .find(|d| d.message == typed.message)
            .unwrap_or_else(|| {
                panic!(
                    "{}: the schema accepted `{EXTRA}`: {by_schema:?}",
                    row.pointer
                )
            });
        assert_eq!(
            (schema_diag.pos.line, schema_diag.pos.col),
            (typed.pos.line, typed.pos.col),
            "{}: both report the key at the same place, so lint reports it once",
            row.pointer
        );

        // Every property at once, each with a value the schema allows: the loader reads them.
        let object = props
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    sample(
                        &doc,
                        &doc.pointer(row.pointer).expect("object")["properties"][p],
                    ),
                )
            })
            .collect::<serde_json::Map<_, _>>();
        let all = row.context.replace('@', &J::Object(object).to_string());
        let read_errors: Vec<String> = load(row.kind, &all, &tmp)
            .iter()
            .filter(|d| is_read_error(d))
            .map(Diagnostic::to_string)
            .collect();
        assert!(
            read_errors.is_empty(),
            "{}: {all}\n{}",
            row.pointer,
            read_errors.join("\n")
        );
    }
}

// ----- configuration ---------------------------------------------------------------------------

/// Leaf paths of the configuration schema with their schemas.
fn config_leaves<'a>(props: &'a J, prefix: &str, out: &mut Vec<(String, &'a J)>) {
    for (k, v) in props.as_object().expect("properties") {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v.get("properties") {
            Some(p) => config_leaves(p, &path, out),
            None => out.push((path, v)),
        }
    }
}

fn types_of(s: &J) -> Vec<&str> {
    match &s["type"] {
        J::String(t) => vec![t.as_str()],
        J::Array(ts) => ts.iter().filter_map(J::as_str).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn config_schema_covers_exactly_the_configuration_keys() {
    let doc = schema_json(schema::CONFIG);
    let mut leaves = Vec::new();
    config_leaves(&doc["properties"], "", &mut leaves);
    let accepted_extras = ["commit", "legacy"];
    let schema_paths: BTreeSet<&str> = leaves
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| !accepted_extras.contains(p))
        .collect();
    let key_paths: BTreeSet<&str> = KEYS.iter().map(|k| k.path).collect();
    assert_eq!(schema_paths, key_paths);
    for extra in accepted_extras {
        assert!(
            leaves.iter().any(|(p, _)| p == extra),
            "`{extra}` is accepted by the reader"
        );
    }
    for key in KEYS {
        let (_, s) = leaves.iter().find(|(p, _)| p == key.path).expect("leaf");
        let types = types_of(s);
        let ok = match key.kind {
            Kind::Str => types.contains(&"string"),
            Kind::Bool => types.contains(&"boolean") && !types.contains(&"string"),
            Kind::Int => types.contains(&"integer") && !types.contains(&"string"),
            Kind::List => types.contains(&"array"),
            Kind::Tls => s["enum"] == json!(["enabled", "insecure", "disabled", null]),
        };
        assert!(ok, "{}: schema {s} does not fit {:?}", key.path, key.kind);
        let description = s["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(key.env),
            "{}: description names {}",
            key.path,
            key.env
        );
    }
}

#[test]
fn config_reader_and_schema_agree_on_keys() {
    let dir = TempDir::new("config");
    let file = dir.join("oci-conformance.yaml");
    let mut schemas = FormatSchemas::new(&schemas_dir());
    let mut full = json!({"commit": "abc", "legacy": false});
    for key in KEYS {
        let value = match key.kind {
            Kind::Str => json!("x"),
            Kind::Bool => json!(false),
            Kind::Int => json!(7),
            Kind::List => json!(["a", "b"]),
            Kind::Tls => json!("disabled"),
        };
        let mut at = &mut full;
        let parts: Vec<&str> = key.path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            at = at
                .as_object_mut()
                .expect("object")
                .entry(*p)
                .or_insert_with(|| json!({}));
        }
        at[parts[parts.len() - 1]] = value;
    }
    let gather = |doc: &J| {
        std::fs::write(&file, doc.to_string()).expect("write config");
        config::gather(&Default::default(), &dir.0, json!({}))
    };
    let parsed = |doc: &J| yaml::parse(&file, &doc.to_string()).expect("parses");
    gather(&full).unwrap_or_else(|d| panic!("the reader refuses a full configuration: {d}"));
    let found = schemas.validate(schema::CONFIG, &parsed(&full));
    assert!(
        found.is_empty(),
        "the schema refuses a full configuration: {found:?}"
    );

    // An unknown key at every level is refused by both.
    for level in [
        "",
        "apis",
        "apis.blobs",
        "apis.manifests",
        "apis.tags",
        "data",
        "roData",
    ] {
        let mut doc = full.clone();
        let target = level
            .split('.')
            .filter(|p| !p.is_empty())
            .fold(&mut doc, |d, p| &mut d[p]);
        target[EXTRA] = json!(true);
        let e = gather(&doc).expect_err("unknown key refused by the reader");
        assert!(
            e.message.starts_with("unknown configuration key"),
            "{level}: {e}"
        );
        let found = schemas.validate(schema::CONFIG, &parsed(&doc));
        assert!(
            found
                .iter()
                .any(|d| d.message == format!("unknown key `{EXTRA}`")),
            "{level}: {found:?}"
        );
    }
}

// ----- documentation ---------------------------------------------------------------------------

#[test]
fn docs_format_md_documents_every_key() {
    let docs = std::fs::read_to_string(root().join("docs/format.md")).expect("docs/format.md");
    let sections: Vec<&str> = docs.split("\n#").collect();
    let mut missing = Vec::new();
    for row in ROWS {
        let marker = format!("`{}#{}`", row.schema, row.pointer);
        let Some(section) = sections.iter().find(|s| s.contains(&marker)) else {
            missing.push(format!("no section marked {marker}"));
            continue;
        };
        let doc = schema_json(row.schema);
        for p in properties(&doc, row.pointer) {
            if !section.contains(&format!("`{p}`")) {
                missing.push(format!("{marker}: `{p}`"));
                continue;
            }
            // The key's table row carries the schema's description, so tooltips and the
            // reference say the same thing.
            let description = doc.pointer(row.pointer).expect("object")["properties"][&p]
                ["description"]
                .as_str()
                .unwrap_or_default()
                .replace('|', "\\|");
            let in_table = section
                .lines()
                .any(|l| l.starts_with(&format!("| `{p}` |")) && l.contains(&description));
            if !in_table {
                missing.push(format!(
                    "{marker}: a `| `{p}` |` row saying \"{description}\""
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/format.md lacks:\n{}",
        missing.join("\n")
    );
}

#[test]
fn complete_file_examples_in_the_docs_validate() {
    let mut schemas = FormatSchemas::new(&schemas_dir());
    let mut checked = 0;
    for doc in ["docs/format.md", "README.md"] {
        let text = std::fs::read_to_string(root().join(doc)).expect("readable");
        for block in text.split("```yaml\n").skip(1) {
            let example = block.split("```").next().unwrap_or_default();
            // Complete files start with their schema comment; the other blocks are fragments.
            let first = example.lines().next().unwrap_or_default();
            let Some(target) = first.split("$schema=").nth(1) else {
                continue;
            };
            let kind = [FileKind::Pack, FileKind::Scenario, FileKind::Dataset]
                .into_iter()
                .find(|k| target.trim().ends_with(schema::file_for(*k)))
                .unwrap_or_else(|| panic!("{doc}: unknown schema in `{first}`"));
            let node = yaml::parse(Path::new(doc), example).unwrap_or_else(|d| panic!("{d}"));
            let found = schemas.check(&node, kind);
            assert!(
                found.is_empty(),
                "{doc}: example does not validate: {found:?}\n{example}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "the pack, scenario and dataset examples were checked ({checked})"
    );
}

// ----- lint --------------------------------------------------------------------------------------

#[test]
fn lint_reports_schema_violations_with_position_once_each() {
    let dir = TempDir::new("lint-schema");
    let f = dir.join("case.yaml");
    std::fs::write(
        &f,
        "name: x\nsteps:\n  - request: {method: GET, url: /v2/}\n    expect:\n      stauts: 200\n      body: {empty: nope}\n    level: SHUOLD\n",
    )
    .unwrap();
    let o = cli(&["lint", f.to_str().unwrap()], &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    // The typed loader stops at the first problem of the step; the schema finds the others.
    assert_eq!(
        t.matches("unknown key `stauts`").count(),
        1,
        "reported once: {t}"
    );
    assert!(t.contains("case.yaml:5:7"), "{t}");
    assert!(t.contains("case.yaml:6:21"), "{t}");
    assert!(t.contains("expected true or false, found `nope`"), "{t}");
    assert!(t.contains("case.yaml:7:12"), "{t}");
    assert!(t.contains("did you mean `SHOULD`?"), "{t}");
    assert!(t.contains("3 problem(s) found"), "{t}");
}

#[test]
fn lint_reports_a_problem_both_checkers_find_once() {
    let dir = TempDir::new("lint-once");
    let f = dir.join("case.yaml");
    std::fs::write(
        &f,
        "name: x\nfor_each: {a: '[1]', b: '[2]'}\nsteps:\n  - request: {method: GET, url: /v2/}\n    expect:\n      body:\n        json: {tags: []}\n",
    )
    .unwrap();
    let o = cli(&["lint", f.to_str().unwrap()], &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert_eq!(t.matches("case.yaml:2:11").count(), 1, "{t}");
    assert_eq!(t.matches("case.yaml:7:22").count(), 1, "{t}");
    assert!(t.contains("`for_each` takes exactly one"), "{t}");
    assert!(t.contains("JSON pointer `tags` must start with `/`"), "{t}");
    assert!(t.contains("2 problem(s) found"), "{t}");
}

#[test]
fn lint_checks_every_file_of_a_pack_against_its_schema() {
    let dir = TempDir::new("lint-pack");
    std::fs::create_dir_all(dir.join("specs/9")).unwrap();
    std::fs::create_dir_all(dir.join("datasets")).unwrap();
    std::fs::write(
        dir.join("specs/9/pack.yaml"),
        "name: t\nspecVersion: '9'\nschemas: ../../schemas\ndatasets:\n  - {use: ../../datasets/d.yaml}\nitems:\n  - use: case.yaml\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("specs/9/case.yaml"),
        "schemaVersion: 2\nname: c\nsteps: [{set: {a: 1}}]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("datasets/d.yaml"),
        "name: d\nitems:\n  - {name: a, random: -1}\n",
    )
    .unwrap();
    let copy = dir.join("schemas");
    std::fs::create_dir_all(&copy).unwrap();
    for name in [
        schema::SCENARIO,
        schema::DATASET,
        schema::PACK,
        schema::CONFIG,
    ] {
        std::fs::copy(schemas_dir().join(name), copy.join(name)).unwrap();
    }
    let o = cli(&["lint", dir.join("specs/9").to_str().unwrap()], &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    // Neither problem stops the typed loader: only the schemas see them.
    assert!(t.contains("case.yaml:1:16"), "{t}");
    assert!(t.contains("expected `1`, found `2`"), "{t}");
    assert!(t.contains("d.yaml:3:23"), "{t}");
    assert!(t.contains("less than the minimum of 0"), "{t}");

    // Without the schemas, lint says so instead of passing silently.
    std::fs::remove_dir_all(&copy).unwrap();
    std::fs::write(
        dir.join("specs/9/case.yaml"),
        "name: c\nsteps: [{set: {a: 1}}]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("datasets/d.yaml"),
        "name: d\nitems:\n  - {name: a, random: 1}\n",
    )
    .unwrap();
    let o = cli(&["lint", dir.join("specs/9").to_str().unwrap()], &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("cannot read schema"), "{t}");
    assert!(t.contains("schemas/pack.schema.json"), "{t}");
}
