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

/// Checks a pack folder, the alterations folder, or a single scenario, dataset or alteration
/// file.
pub fn check(target: &Path) -> Diagnostics {
    check_all(target).0
}

/// Checks a pack folder or a single file, returning errors and warnings: for a pack, the
/// warnings are the observable registry MUST / MUST NOT of its version that no case cites.
pub fn check_all(target: &Path) -> (Diagnostics, Diagnostics) {
    if is_alterations(target) {
        return (check_alterations(target), Diagnostics::default());
    }
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

/// Whether `p` is the self-test's alterations folder or a file in it.
fn is_alterations(p: &Path) -> bool {
    let dir = if source::is_dir(p) {
        Some(p)
    } else {
        p.parent()
    };
    dir.and_then(Path::file_name)
        .is_some_and(|n| n == pack::ALTERATIONS)
}

/// Alteration files: their schema, the typed model, unique ids, and — for the whole folder —
/// that every `caught_by` names tests of each pack (next to the folder) the alteration
/// applies to, as planned with the default configuration.
fn check_alterations(target: &Path) -> Diagnostics {
    use crate::selftest::alteration;
    let (dir, files) = if source::is_dir(target) {
        let specs = target.parent().map(Path::to_path_buf).unwrap_or_default();
        match pack::alteration_files(&specs) {
            Ok(f) => (Some(specs), f),
            Err(d) => return d,
        }
    } else {
        match yaml::load(target) {
            Ok(node) => (None, vec![(target.to_path_buf(), node)]),
            Err(d) => return d.into(),
        }
    };
    let mut diags = Diagnostics::default();
    let compiled = alteration::compile_all(&files);
    if let Err(d) = &compiled {
        diags.0.extend(d.0.iter().cloned());
    }
    let mut schemas = FormatSchemas::new(&schemas_near(target));
    let typed: Vec<Pos> = diags.0.iter().map(|d| d.pos.clone()).collect();
    for (_, node) in &files {
        for d in schemas.check(node, pack::FileKind::Alteration) {
            if !typed.contains(&d.pos) && !diags.0.contains(&d) {
                diags.push(d);
            }
        }
    }
    if let (Ok(all), Some(specs)) = (&compiled, dir) {
        diags.0.extend(caught_by_problems(all, &specs).0);
    }
    diags
}

/// `caught_by` and `filter` prefixes that name no test of a pack the alteration applies to.
fn caught_by_problems(
    all: &[crate::selftest::alteration::Alteration],
    specs: &Path,
) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let mut missing: indexmap::IndexMap<(String, String), (Pos, Vec<String>)> =
        indexmap::IndexMap::new();
    for dir in pack::available(specs).unwrap_or_default() {
        // A pack that does not load or plan is reported by its own lint.
        let Ok(pack) = pack::load(&dir) else { continue };
        let Ok(cfg) = config::resolve(
            &config::Sources::default(),
            &pack.defaults,
            &pack.spec_version,
        ) else {
            continue;
        };
        let Ok(plan) = plan::build(&pack, &cfg, &[], 1) else {
            continue;
        };
        let mut ids = Vec::new();
        plan.root.walk(&mut |n, _| {
            if let plan::PlanKind::Case(_) = n.kind {
                ids.push(n.id.clone());
            }
        });
        let names = pack.names();
        for a in all.iter().filter(|a| a.for_version(&names)) {
            let prefixes = a
                .caught_by
                .iter()
                .map(|c| (c.value.clone(), c.pos.clone()))
                .chain(a.filter.iter().map(|f| (f.clone(), a.pos.clone())));
            for (prefix, pos) in prefixes {
                if !ids.iter().any(|id| id.starts_with(prefix.as_str())) {
                    missing
                        .entry((pos.to_string(), prefix.clone()))
                        .or_insert_with(|| (pos.clone(), Vec::new()))
                        .1
                        .push(pack.spec_version.clone());
                }
            }
        }
    }
    for ((_, prefix), (pos, versions)) in missing {
        diags.push(
            Diagnostic::new(
                pos,
                format!(
                    "no test of the {} pack{} starts with `{prefix}`",
                    versions.join(", "),
                    if versions.len() > 1 { "s" } else { "" }
                ),
            )
            .with_hint(format!(
                "`oci-conform list --spec-version {}` prints the test ids; an alteration for some versions only says so in `versions`",
                versions[0]
            )),
        );
    }
    diags
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
