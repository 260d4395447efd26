//! A spec pack: `specs/<version>/pack.yaml` and every scenario and dataset file it reaches.
//!
//! `pack.yaml` names the spec version (and the version strings that select it), the per-version
//! configuration defaults, the API labels with the toggles that gate them, the data sets with
//! theirs, and the root items of the test tree. Files are referenced with `use:` paths relative
//! to the referencing file; a pack may use another pack's files (dev builds on 1.1), never the
//! other way round, so pinning a version pins its behaviour.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::dataset::{self, DatasetSpec, RecipeResolver};
use crate::de::{from_node, Located, Raw};
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::requirements::{self, Catalogue};
use crate::scenario::{self, NodeSpec, Resolver};
use crate::source;
use crate::template::{Expr, ValueTmpl};
use crate::yaml::{self, Node, Value as Y};

/// Marker for an error already recorded in the loader's list.
const REPORTED: &str = "\u{0}reported";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PackDef {
    #[serde(default)]
    schema_version: Option<u32>,
    /// Applied (and removed) by `resolve_extends` before this struct is read.
    #[serde(default, rename = "extends")]
    _extends: Option<String>,
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    name: String,
    spec_version: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    spec: SpecDef,
    #[serde(default)]
    defaults: Option<Raw>,
    #[serde(default)]
    apis: Vec<ApiDef>,
    #[serde(default)]
    datasets: Vec<DatasetRefDef>,
    #[serde(default)]
    vars: IndexMap<String, Raw>,
    #[serde(default)]
    schemas: Option<String>,
    #[serde(default)]
    every_response: Option<Raw>,
    #[serde(default)]
    touches: Option<Raw>,
    items: Raw,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SpecDef {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    anchors: IndexMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiDef {
    name: String,
    #[serde(default)]
    requires: Option<Located<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetRefDef {
    #[serde(rename = "use")]
    use_: Located<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display: Option<String>,
    #[serde(default)]
    with: IndexMap<String, Raw>,
    #[serde(default)]
    requires: Option<Located<String>>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    report: Option<bool>,
}

/// A loaded, compiled pack.
#[derive(Debug)]
pub struct Pack {
    /// The pack directory.
    pub dir: PathBuf,
    /// Root node name (`OCI Conformance Test`).
    pub name: String,
    /// The spec version the pack encodes.
    pub spec_version: String,
    /// Version strings that select this pack.
    pub aliases: Vec<String>,
    /// Description.
    pub summary: Option<String>,
    /// Link to the spec text.
    pub spec_url: Option<String>,
    /// Anchor → URL (or fragment) for reports.
    pub anchors: IndexMap<String, String>,
    /// Configuration defaults of this version.
    pub defaults: serde_json::Value,
    /// API labels in report order, with the configuration condition that enables each.
    pub apis: Vec<(String, Option<Expr>)>,
    /// Data sets in run order.
    pub datasets: Vec<DatasetRef>,
    /// Variables bound at the root.
    pub vars: Vec<(String, ValueTmpl)>,
    /// The test tree.
    pub root: NodeSpec,
    /// Where JSON Schemas for `expect.body.schema` live.
    pub schemas_dir: PathBuf,
    /// Checks applied to every answer of the run (e.g. the Warning header rules).
    pub every_response: Option<crate::scenario::ExpectSpec>,
    /// The requirement catalogue next to the packs, if there is one.
    pub catalogue: Option<Arc<Catalogue>>,
    /// What each request touches, in the keys of the schedule (for the schedule audit).
    pub touches: Vec<crate::audit::TouchRule>,
    /// Every file the pack reads.
    pub files: Vec<PathBuf>,
    /// A digest over all those files, so results name the exact pack content.
    pub digest: String,
}

/// A data set as the pack uses it.
#[derive(Debug)]
pub struct DatasetRef {
    /// The compiled dataset file.
    pub spec: Arc<DatasetSpec>,
    /// Name override.
    pub name: Option<String>,
    /// Display name override.
    pub display: Option<String>,
    /// Parameters.
    pub with: Vec<(String, ValueTmpl)>,
    /// Configuration condition.
    pub requires: Option<Expr>,
    /// Which flow iterates it (`sets` by default).
    pub group: String,
    /// Whether its display name appears in the `data` map (official data sets only).
    pub report: bool,
    /// Where the reference is written.
    pub pos: Pos,
}

/// What a file read by the loader holds, and so which schema it is written against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `pack.yaml`.
    Pack,
    /// A scenario file (a node of the test tree).
    Scenario,
    /// A dataset or recipe file.
    Dataset,
    /// The requirement catalogue (`specs/requirements.yaml`).
    Requirements,
}

/// Loads scenario and dataset files once each, resolving `use:` paths.
#[derive(Default)]
pub struct Loader {
    nodes: HashMap<PathBuf, Arc<NodeSpec>>,
    datasets: HashMap<PathBuf, Arc<DatasetSpec>>,
    stack: Vec<PathBuf>,
    /// Every problem found so far.
    pub diags: Diagnostics,
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
    /// The kind of each file in `files`.
    pub kinds: HashMap<PathBuf, FileKind>,
}

impl Loader {
    /// Records a file about to be read.
    fn note(&mut self, path: &Path, kind: FileKind) {
        if !self.files.iter().any(|f| f == path) {
            self.files.push(path.to_path_buf());
        }
        self.kinds.insert(path.to_path_buf(), kind);
    }

    fn path_from(&self, path: &str, from: &Pos) -> PathBuf {
        let base = from
            .file
            .as_ref()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        source::confine(&base, normalize(&base.join(path)))
    }

    fn enter(&mut self, path: &Path, from: &Pos, kind: FileKind) -> Result<Node, Diagnostic> {
        if self.stack.iter().any(|p| p == path) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain([&path.to_path_buf()])
                .map(|p| crate::diag::display_path(p))
                .collect();
            return Err(Diagnostic::new(
                from.clone(),
                format!("`use` cycle: {}", chain.join(" → ")),
            ));
        }
        if !source::is_file(path) {
            return Err(Diagnostic::new(
                from.clone(),
                format!("no such file: {}", crate::diag::display_path(path)),
            ));
        }
        self.note(path, kind);
        yaml::load(path)
    }

    /// Loads and compiles one scenario file.
    pub fn node_file(&mut self, path: &Path, from: &Pos) -> Result<Arc<NodeSpec>, Diagnostic> {
        let path = normalize(path);
        if let Some(n) = self.nodes.get(&path) {
            return Ok(n.clone());
        }
        let node = self.enter(&path, from, FileKind::Scenario)?;
        self.stack.push(path.clone());
        let compiled = scenario::compile_node(&node, self);
        self.stack.pop();
        match compiled {
            Ok(spec) => {
                let spec = Arc::new(spec);
                self.nodes.insert(path, spec.clone());
                Ok(spec)
            }
            Err(d) => {
                self.record(d);
                Err(Diagnostic::new(from.clone(), REPORTED))
            }
        }
    }

    /// Loads and compiles one dataset or recipe file.
    pub fn dataset_file(
        &mut self,
        path: &Path,
        from: &Pos,
    ) -> Result<Arc<DatasetSpec>, Diagnostic> {
        let path = normalize(path);
        if let Some(d) = self.datasets.get(&path) {
            return Ok(d.clone());
        }
        let node = self.enter(&path, from, FileKind::Dataset)?;
        self.stack.push(path.clone());
        let compiled = dataset::compile(&node, self);
        self.stack.pop();
        match compiled {
            Ok(spec) => {
                let spec = Arc::new(spec);
                self.datasets.insert(path, spec.clone());
                Ok(spec)
            }
            Err(d) => {
                self.record(d);
                Err(Diagnostic::new(from.clone(), REPORTED))
            }
        }
    }

    fn record(&mut self, d: Diagnostics) {
        for x in d.0 {
            if x.message != REPORTED && !self.diags.0.contains(&x) {
                self.diags.push(x);
            }
        }
    }
}

impl Resolver for Loader {
    fn resolve(&mut self, path: &str, from: &Pos) -> Result<Arc<NodeSpec>, Diagnostic> {
        let p = self.path_from(path, from);
        self.node_file(&p, from)
    }
}

impl RecipeResolver for Loader {
    fn resolve_recipe(&mut self, path: &str, from: &Pos) -> Result<Arc<DatasetSpec>, Diagnostic> {
        let p = self.path_from(path, from);
        self.dataset_file(&p, from)
    }
}

/// Removes `.` and `..` components without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Loads the pack in `dir` (which holds `pack.yaml`).
pub fn load(dir: &Path) -> Result<Pack, Diagnostics> {
    load_with(dir, &mut Loader::default())
}

/// Loads the pack in `dir` with `loader`, which keeps the list of files read (and their kinds)
/// even when loading fails, so `lint` can check each of them against its schema.
pub fn load_with(dir: &Path, loader: &mut Loader) -> Result<Pack, Diagnostics> {
    let dir = normalize(&source::absolute(dir));
    let file = dir.join("pack.yaml");
    loader.note(&file, FileKind::Pack);
    let node = resolve_extends(yaml::load(&file).map_err(Diagnostics::from)?, loader, 0)?;
    let def: PackDef = from_node(&node).map_err(Diagnostics::from)?;
    let mut diags = Diagnostics::default();
    if def.schema_version.is_some_and(|v| v != 1) {
        diags.push(Diagnostic::new(
            Pos::file(&file),
            "unsupported schemaVersion (this engine reads version 1)",
        ));
    }

    let apis = def
        .apis
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.requires
                    .as_ref()
                    .and_then(|r| Expr::new(&r.value, &r.pos).map_err(|d| diags.push(d)).ok()),
            )
        })
        .collect();

    let mut datasets = Vec::new();
    let dataset_nodes = match node.get("datasets").map(|n| &n.value) {
        Some(Y::Seq(items)) => items.clone(),
        _ => Vec::new(),
    };
    for (i, d) in def.datasets.iter().enumerate() {
        let path = loader.path_from(&d.use_.value, &d.use_.pos);
        let Ok(spec) = loader.dataset_file(&path, &d.use_.pos).map_err(|e| {
            if e.message != REPORTED {
                diags.push(e);
            }
        }) else {
            continue;
        };
        diags.0.extend(dataset::check_with(
            &spec,
            dataset_nodes.get(i).and_then(|n| n.get("with")),
        ));
        let with = d
            .with
            .iter()
            .filter_map(|(k, v)| {
                ValueTmpl::from_raw(v)
                    .map_err(|e| diags.push(e))
                    .ok()
                    .map(|v| (k.clone(), v))
            })
            .collect();
        datasets.push(DatasetRef {
            spec,
            name: d.name.clone(),
            display: d.display.clone(),
            with,
            requires: d
                .requires
                .as_ref()
                .and_then(|r| Expr::new(&r.value, &r.pos).map_err(|e| diags.push(e)).ok()),
            group: d.group.clone().unwrap_or_else(|| "sets".into()),
            report: d.report.unwrap_or(true),
            pos: d.use_.pos.clone(),
        });
    }

    let vars = def
        .vars
        .iter()
        .filter_map(|(k, v)| {
            ValueTmpl::from_raw(v)
                .map_err(|e| diags.push(e))
                .ok()
                .map(|v| (k.clone(), v))
        })
        .collect();

    // The root is a group named after the pack holding the pack's items.
    let root_node = Node {
        pos: def.items.0.pos.clone(),
        value: Y::Map(vec![
            (
                Node::synthetic(Y::Str("name".into())),
                Node::synthetic(Y::Str(def.name.clone())),
            ),
            (Node::synthetic(Y::Str("items".into())), def.items.0.clone()),
        ]),
    };
    let root = match scenario::compile_node(&root_node, loader) {
        Ok(r) => Some(r),
        Err(d) => {
            loader.record(d);
            None
        }
    };
    let every_response = match &def.every_response {
        Some(raw) => match scenario::compile_expect(&raw.0) {
            Ok(e) => Some(e),
            Err(d) => {
                diags.0.extend(d.0);
                None
            }
        },
        None => None,
    };
    let catalogue = match load_catalogue(&dir, loader) {
        Ok(c) => c.map(Arc::new),
        Err(d) => {
            diags.0.extend(d.0);
            None
        }
    };
    let touches = match &def.touches {
        Some(raw) => crate::audit::compile(raw).unwrap_or_else(|d| {
            diags.0.extend(d.0);
            Vec::new()
        }),
        None => Vec::new(),
    };
    diags.0.append(&mut loader.diags.0);
    let Some(root) = root.filter(|_| diags.is_empty()) else {
        return Err(diags);
    };

    let defaults = def
        .defaults
        .as_ref()
        .map_or(serde_json::json!({}), |d| d.0.to_json());
    let schemas_dir = schemas_dir(&dir, def.schemas.as_deref());
    let digest = files_digest(&loader.files);
    Ok(Pack {
        dir,
        name: def.name,
        spec_version: def.spec_version,
        aliases: def.aliases,
        summary: def.summary,
        spec_url: def.spec.url,
        anchors: def.spec.anchors,
        defaults,
        apis,
        datasets,
        vars,
        root,
        schemas_dir,
        every_response,
        catalogue,
        touches,
        files: loader.files.clone(),
        digest,
    })
}

/// Where the requirement catalogue of the pack in `dir` is: `requirements.yaml` in the nearest
/// folder above the pack that has one (`specs/requirements.yaml` for the shipped packs).
pub fn catalogue_path(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .skip(1)
        .map(|a| a.join("requirements.yaml"))
        .find(|p| source::is_file(p))
}

/// Reads the requirement catalogue of the pack in `dir`, recording the file so `lint` checks
/// it against its schema; `None` when there is none (packs kept elsewhere, such as test packs).
pub fn load_catalogue(dir: &Path, loader: &mut Loader) -> Result<Option<Catalogue>, Diagnostics> {
    let Some(path) = catalogue_path(dir) else {
        return Ok(None);
    };
    loader.note(&path, FileKind::Requirements);
    requirements::load(&path).map(Some)
}

/// The schemas folder of the pack in `dir`: its `schemas:` entry, else the nearest `schemas/`
/// folder above it, else the embedded one.
pub fn schemas_dir(dir: &Path, declared: Option<&str>) -> PathBuf {
    if let Some(d) = declared {
        return normalize(&dir.join(d));
    }
    // The nearest `schemas/` folder above the pack that holds the format schemas (so packs
    // kept elsewhere, such as test packs, find the repository's schemas too).
    // A pack with no such folder above it gets the schemas built into the engine.
    dir.ancestors()
        .map(|a| a.join("schemas"))
        .find(|s| source::is_file(&s.join(crate::schema::SCENARIO)))
        .unwrap_or_else(|| Path::new(source::EMBEDDED_ROOT).join("schemas"))
}

/// Applies `extends: ../1.1/pack.yaml`: the base pack's keys, with this file's keys on top
/// (`defaults` and `vars` merged key by key, everything else replaced). Paths inside the base
/// stay relative to the base file, since every node remembers the file it came from.
fn resolve_extends(node: Node, loader: &mut Loader, depth: usize) -> Result<Node, Diagnostics> {
    let Some(ext) = node.get("extends").cloned() else {
        return Ok(node);
    };
    let Some(path) = ext.as_str() else {
        return Err(Diagnostic::new(
            ext.pos.clone(),
            "`extends` is the path of another pack.yaml",
        )
        .into());
    };
    if depth > 8 {
        return Err(Diagnostic::new(ext.pos.clone(), "`extends` chain too long (a cycle?)").into());
    }
    let base_file = loader.path_from(path, &ext.pos);
    if !source::is_file(&base_file) {
        return Err(Diagnostic::new(
            ext.pos.clone(),
            format!("no such file: {}", crate::diag::display_path(&base_file)),
        )
        .into());
    }
    loader.note(&base_file, FileKind::Pack);
    let base = resolve_extends(yaml::load(&base_file)?, loader, depth + 1)?;
    let (Y::Map(mut entries), Y::Map(over)) = (base.value, node.value) else {
        return Err(Diagnostic::new(node.pos, "a pack file is a mapping").into());
    };
    for (k, v) in over {
        let key = k.scalar_text();
        if key == "extends" {
            continue;
        }
        match entries.iter_mut().find(|(bk, _)| bk.scalar_text() == key) {
            Some((_, slot)) if matches!(key.as_str(), "defaults" | "vars") => merge_nodes(slot, v),
            Some(entry) => *entry = (k, v),
            None => entries.push((k, v)),
        }
    }
    Ok(Node {
        value: Y::Map(entries),
        pos: node.pos,
    })
}

/// Deep-merges mapping `over` into `base` (other values replace).
fn merge_nodes(base: &mut Node, over: Node) {
    match (&mut base.value, over.value) {
        (Y::Map(b), Y::Map(o)) => {
            for (k, v) in o {
                match b
                    .iter_mut()
                    .find(|(bk, _)| bk.scalar_text() == k.scalar_text())
                {
                    Some((_, slot)) => merge_nodes(slot, v),
                    None => b.push((k, v)),
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.pos = over.pos;
        }
    }
}

fn files_digest(files: &[PathBuf]) -> String {
    use sha2::Digest as _;
    let mut sorted: Vec<&PathBuf> = files.iter().collect();
    sorted.sort();
    let mut h = sha2::Sha256::new();
    for f in sorted {
        h.update(source::read(f).unwrap_or_default());
    }
    format!("sha256:{}", crate::template::hex(&h.finalize()))
}

/// The pack folders of `specs_dir` (those holding a `pack.yaml`), in name order.
pub fn available(specs_dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let entries = source::read_dir(specs_dir).map_err(|e| {
        Diagnostic::new(
            Pos::file(specs_dir),
            format!("cannot read the specs folder: {e}"),
        )
        .with_hint("pass --specs DIR or set OCI_SPECS_DIR to the folder holding 1.0/, 1.1/, dev/")
    })?;
    Ok(entries
        .into_iter()
        .filter(|p| source::is_file(&p.join("pack.yaml")))
        .collect())
}

/// Finds the pack whose `specVersion` or `aliases` match `version` among `specs_dir/*/`.
pub fn find(specs_dir: &Path, version: &str) -> Result<PathBuf, Diagnostic> {
    let mut known = Vec::new();
    for dir in available(specs_dir)? {
        let node = yaml::load(&dir.join("pack.yaml"))?;
        let version_of = node
            .get("specVersion")
            .map(Node::scalar_text)
            .unwrap_or_default();
        let mut names = vec![version_of.clone()];
        if let Some(Y::Seq(items)) = node.get("aliases").map(|n| &n.value) {
            names.extend(items.iter().map(Node::scalar_text));
        }
        if names.iter().any(|n| n == version) {
            return Ok(dir);
        }
        known.push(version_of);
    }
    Err(Diagnostic::new(
        Pos::file(specs_dir),
        format!("unsupported config version `{version}`"),
    )
    .with_hint(format!("packs available: {}", known.join(", "))))
}

/// The specs folder: the one given (`--specs`, `OCI_SPECS_DIR`), else the embedded one.
pub fn specs_dir(explicit: Option<&Path>) -> PathBuf {
    source::Packs::choose(explicit).specs_dir()
}
