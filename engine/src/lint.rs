//! `oci-conform lint`: loads packs and files the way `run` does, without a registry, and
//! reports every problem with its position — YAML syntax, unknown keys, wrong types, template
//! syntax, `use` paths — then plans each pack and checks every planned case's templates and
//! conditions ([`crate::check`]) under two configurations: the pack's defaults, and every
//! switch on (so cases that only some configurations plan are checked too); and it checks
//! every file it loaded against its JSON Schema in `schemas/`.

use std::path::{Path, PathBuf};

use crate::check;
use crate::config;
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::pack::{self, Loader};
use crate::plan;
use crate::schema::{self, FormatSchemas};
use crate::source;
use crate::yaml;

/// Checks a pack folder or a single scenario/dataset file.
pub fn check(target: &Path) -> Diagnostics {
    check_all(target).0
}

/// Checks a pack folder or a single file, returning errors and warnings: for a pack, the
/// warnings are the observable registry MUST / MUST NOT of its version that no case cites.
pub fn check_all(target: &Path) -> (Diagnostics, Diagnostics) {
    if source::is_dir(target) || target.file_name().is_some_and(|n| n == "pack.yaml") {
        let dir = if source::is_dir(target) {
            target.to_path_buf()
        } else {
            target.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        return check_pack(&dir);
    }
    if target.file_name().is_some_and(|n| n == "requirements.yaml") {
        let mut loader = Loader::default();
        let diags = match crate::requirements::load(target) {
            Ok(_) => Diagnostics::default(),
            Err(d) => d,
        };
        loader.files.push(target.to_path_buf());
        loader
            .kinds
            .insert(target.to_path_buf(), pack::FileKind::Requirements);
        return (
            with_schema_problems(diags, &loader, &schemas_near(target)),
            Diagnostics::default(),
        );
    }
    let mut loader = Loader::default();
    let from = Pos::file(target);
    let is_dataset = target.components().any(|c| c.as_os_str() == "datasets");
    let result = if is_dataset {
        loader.dataset_file(target, &from).map(|_| ())
    } else {
        loader.node_file(target, &from).map(|_| ())
    };
    let mut diags = std::mem::take(&mut loader.diags);
    if let Err(d) = result {
        if !d.message.starts_with('\u{0}') {
            diags.push(d);
        }
    }
    (
        with_schema_problems(diags, &loader, &schemas_near(target)),
        Diagnostics::default(),
    )
}

fn check_pack(dir: &Path) -> (Diagnostics, Diagnostics) {
    let mut loader = Loader::default();
    let (diags, warnings, schemas_dir) = match pack::load_with(dir, &mut loader) {
        Ok(pack) => {
            let (errors, warnings) = plan_problems(&pack, dir, &loader);
            (errors, warnings, pack.schemas_dir)
        }
        Err(d) => (d, Diagnostics::default(), declared_schemas(dir)),
    };
    (with_schema_problems(diags, &loader, &schemas_dir), warnings)
}

/// What planning the pack runs into and what the plan check finds, under each configuration
/// of [`variants`] (a problem only the second finds says so); and, with the defaults, what its
/// citations of the requirement catalogue do (errors, then the coverage gap as warnings).
fn plan_problems(pack: &pack::Pack, dir: &Path, loader: &Loader) -> (Diagnostics, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut warnings = Diagnostics::default();
    let mut first: Vec<String> = Vec::new();
    for (i, (label, layer)) in variants().into_iter().enumerate() {
        let sources = config::Sources {
            flags: layer,
            ..config::Sources::default()
        };
        let found = match config::resolve(&sources, &pack.defaults, &pack.spec_version) {
            Ok(cfg) => match plan::build(pack, &cfg, &[], 1) {
                Ok(plan) => {
                    let mut found =
                        check::plan(&plan, pack.every_response.as_ref(), &pack.schemas_dir).0;
                    if let (0, Some(cat)) = (i, &pack.catalogue) {
                        let cites = crate::citations::collect(loader);
                        let runtime = crate::citations::exported_names(loader);
                        let (e, w) = crate::citations::check(
                            cat,
                            &pack.spec_version,
                            &cites,
                            &runtime,
                            &plan,
                        );
                        found.extend(e.0);
                        warnings = w;
                    }
                    found
                }
                Err(d) => vec![d],
            },
            Err(d) => vec![Diagnostic::new(
                Pos::file(&dir.join("pack.yaml")),
                format!("defaults: {}", d.message),
            )],
        };
        for mut d in found {
            let key = d.to_string();
            if i == 0 {
                first.push(key);
            } else if first.contains(&key) {
                continue;
            } else {
                let note = format!("found with the configuration {label}");
                d.hint = Some(match d.hint {
                    Some(h) => format!("{h}; {note}"),
                    None => note,
                });
            }
            diags.push(d);
        }
    }
    (diags, warnings)
}

/// The configurations a pack is planned with: its defaults (what users run), and every switch
/// on — each API toggle, each data set, a large blob, read-only inputs — so that the cases
/// other configurations plan are checked too. No case of the shipped packs is planned only
/// when a switch is off: a switch off disables or leaves out, it never adds.
fn variants() -> Vec<(&'static str, serde_json::Value)> {
    fn all_on(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Bool(b) => *b = true,
            serde_json::Value::Object(m) => m.values_mut().for_each(all_on),
            _ => {}
        }
    }
    let defaults = config::engine_defaults();
    let mut on = serde_json::json!({"apis": defaults["apis"], "data": defaults["data"]});
    all_on(&mut on);
    let digest = format!("sha256:{}", "0".repeat(64));
    on["roData"] = serde_json::json!({
        "tags": ["latest"],
        "manifests": [digest],
        "blobs": [digest],
        "referrers": [digest],
    });
    on["largeBlobSize"] = serde_json::json!(1 << 20);
    vec![
        ("of the pack's defaults", serde_json::json!({})),
        ("with every switch on", on),
    ]
}

/// The schemas folder a pack that failed to load declares (or the default one).
fn declared_schemas(dir: &Path) -> PathBuf {
    let node = yaml::load(&dir.join("pack.yaml")).ok();
    let declared = node
        .as_ref()
        .and_then(|n| n.get("schemas"))
        .and_then(yaml::Node::as_str);
    pack::schemas_dir(dir, declared)
}

/// The schemas folder for a single file: the nearest `schemas/` above it that holds the
/// format schemas, else the embedded one.
fn schemas_near(file: &Path) -> PathBuf {
    source::absolute(file)
        .ancestors()
        .skip(1)
        .map(|d| d.join("schemas"))
        .find(|d| source::is_file(&d.join(schema::SCENARIO)))
        .unwrap_or_else(|| Path::new(source::EMBEDDED_ROOT).join("schemas"))
}

/// Schema problems of the files a pack load read (`run` and `list` refuse what `lint` refuses).
pub fn schema_problems(loader: &Loader, dir: &Path) -> Diagnostics {
    with_schema_problems(Diagnostics::default(), loader, dir)
}

/// Adds the schema problems of every file the loader read, except those the typed loader
/// already reported at the same position (the typed message is the more specific one).
fn with_schema_problems(mut diags: Diagnostics, loader: &Loader, dir: &Path) -> Diagnostics {
    let mut schemas = FormatSchemas::new(dir);
    let typed: Vec<Pos> = diags.0.iter().map(|d| d.pos.clone()).collect();
    for file in &loader.files {
        let Some(kind) = loader.kinds.get(file) else {
            continue;
        };
        // A file that does not parse was already reported by the loader, with the position
        // of the syntax error; there is no tree to check.
        let Ok(node) = yaml::load(file) else {
            continue;
        };
        for d in schemas.check(&node, *kind) {
            if !typed.contains(&d.pos) && !diags.0.contains(&d) {
                diags.push(d);
            }
        }
    }
    diags
}
