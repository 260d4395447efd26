//! Datasets: the OCI content the scenarios push, described in YAML and generated from a seed.
//!
//! A dataset is a list of items. Each item is a blob or a manifest whose bytes come from
//! `random` (size), `text`, `json` (structured YAML written as compact JSON — the digest is of
//! exactly those bytes), `tar` (a tar archive, optionally gzipped) or `generated` (a large blob
//! streamed from the seed, never held in memory). Items can reference earlier items through
//! `item('name')` / `items('glob*')` to build descriptors, and `use:` a recipe file (a dataset
//! with parameters) whose items are added under a name prefix. The engine knows bytes and
//! digests; what a manifest looks like is written in the dataset files.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use indexmap::IndexMap;
use minijinja::value::{Object, Value};
use minijinja::{Error as MjError, ErrorKind, State};
use serde::Deserialize;

use crate::content::{Content, Hasher, Rng, Store};
use crate::de::{from_node, Located, Raw};
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::template::{map_value, to_json, Expr, Scope, Tmpl, ValueTmpl};
use crate::yaml::Node;

/// Items above this size are not exposed as base64 to templates.
const MAX_INLINE: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetDef {
    #[serde(rename = "schemaVersion", default)]
    _schema_version: Option<u32>,
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    #[serde(default)]
    name: Option<Located<String>>,
    #[serde(default)]
    display: Option<Located<String>>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    params: IndexMap<String, Raw>,
    items: Vec<Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemDef {
    #[serde(default)]
    name: Option<Located<String>>,
    #[serde(default)]
    for_each: Option<IndexMap<String, Located<String>>>,
    #[serde(default)]
    when: Option<Located<String>>,
    #[serde(rename = "use", default)]
    use_: Option<Located<String>>,
    #[serde(default)]
    with: IndexMap<String, Raw>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    media_type: Option<Located<String>>,
    #[serde(default)]
    random: Option<Raw>,
    #[serde(default)]
    text: Option<Located<String>>,
    #[serde(default)]
    json: Option<Raw>,
    #[serde(default)]
    tar: Option<TarDef>,
    #[serde(default)]
    generated: Option<Raw>,
    #[serde(default)]
    tags: Option<Raw>,
    #[serde(default)]
    push: Option<Raw>,
    #[serde(default)]
    corrupt: Option<CorruptDef>,
    #[serde(default)]
    algorithm: Option<Located<String>>,
    #[serde(default)]
    fields: IndexMap<String, Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TarDef {
    files: Vec<TarFileDef>,
    #[serde(default)]
    gzip: Option<Raw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TarFileDef {
    name: Located<String>,
    text: Located<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorruptDef {
    append: Located<String>,
}

/// Whether an item is pushed to the blob or the manifest endpoint.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A blob.
    #[default]
    Blob,
    /// A manifest.
    Manifest,
}

/// Named value templates (`with:` parameters).
type Params = Vec<(String, ValueTmpl)>;

/// What an item's source produced: its bytes, the uncompressed bytes of a gzipped tar (for
/// diff ids), and the parsed JSON of a `json` item.
type Produced = (Content, Option<Vec<u8>>, Option<Value>);

/// A compiled dataset or recipe file.
#[derive(Debug)]
pub struct DatasetSpec {
    /// Key of the data set (node name), template over params.
    pub name: Option<Tmpl>,
    /// Display name used in reports, template over params.
    pub display: Option<Tmpl>,
    /// Description.
    pub summary: Option<String>,
    /// Parameters and their defaults.
    pub params: Vec<(String, ValueTmpl)>,
    /// Items in order.
    pub items: Vec<ItemSpec>,
    /// Where the file starts.
    pub pos: Pos,
}

/// One compiled item (or a `use` of a recipe).
#[derive(Debug)]
pub struct ItemSpec {
    name: Option<Tmpl>,
    pos: Pos,
    for_each: Option<(String, Expr)>,
    when: Option<Expr>,
    uses: Option<(Arc<DatasetSpec>, Params)>,
    role: Role,
    media_type: Option<Tmpl>,
    source: Source,
    tags: Option<ValueTmpl>,
    push: Option<ValueTmpl>,
    corrupt: Option<Tmpl>,
    algorithm: Option<Tmpl>,
    fields: Vec<(String, ValueTmpl)>,
}

#[derive(Debug)]
enum Source {
    None,
    Random(ValueTmpl),
    Text(Tmpl),
    Json(ValueTmpl),
    Tar(Vec<(Tmpl, Tmpl)>, Option<ValueTmpl>),
    Generated(ValueTmpl),
}

/// Loads recipe files referenced by `use:` (implemented by the pack loader).
pub trait RecipeResolver {
    /// Loads the recipe `path` refers to, relative to the file at `from`.
    fn resolve_recipe(&mut self, path: &str, from: &Pos) -> Result<Arc<DatasetSpec>, Diagnostic>;
}

/// Compiles a dataset file, collecting every problem found.
pub fn compile(node: &Node, resolver: &mut dyn RecipeResolver) -> Result<DatasetSpec, Diagnostics> {
    let mut diags = Diagnostics::default();
    let def: DatasetDef = from_node(node)?;
    let mut items = Vec::new();
    for raw in &def.items {
        match item_spec(&raw.0, resolver) {
            Ok(i) => items.push(i),
            Err(d) => diags.0.extend(d.0),
        }
    }
    let mut params = Vec::new();
    for (k, v) in &def.params {
        match ValueTmpl::from_raw(v) {
            Ok(t) => params.push((k.clone(), t)),
            Err(d) => diags.push(d),
        }
    }
    let name = opt_tmpl(&mut diags, &def.name);
    let display = opt_tmpl(&mut diags, &def.display);
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(DatasetSpec {
        name,
        display,
        summary: def.summary,
        params,
        items,
        pos: node.pos.clone(),
    })
}

/// Checks the `with:` given to a dataset or recipe against the parameters it declares
/// (`algorithm` is always one): a misspelt name would leave the default in place, quietly.
/// `with` is the `with:` mapping node, for the positions of its keys.
pub fn check_with(spec: &DatasetSpec, with: Option<&Node>) -> Vec<Diagnostic> {
    let Some(crate::yaml::Value::Map(entries)) = with.map(|w| &w.value) else {
        return Vec::new();
    };
    let file = spec
        .pos
        .file
        .as_ref()
        .map(|f| crate::diag::display_path(f))
        .unwrap_or_default();
    let declared: Vec<&str> = spec
        .params
        .iter()
        .map(|(p, _)| p.as_str())
        .chain(["algorithm"])
        .collect();
    let mut out = Vec::new();
    for (k, _) in entries {
        let key = k.scalar_text();
        if declared.contains(&key.as_str()) {
            continue;
        }
        let d = Diagnostic::new(
            k.pos.clone(),
            format!("unknown parameter `{key}` of {file}"),
        );
        out.push(
            match crate::diag::did_you_mean(&key, declared.iter().copied()) {
                Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                None => d.with_hint(format!("{file} declares: {}", declared.join(", "))),
            },
        );
    }
    out
}

/// Compiles an optional template, recording a problem instead of failing.
fn opt_tmpl(diags: &mut Diagnostics, s: &Option<Located<String>>) -> Option<Tmpl> {
    s.as_ref()
        .and_then(|s| Tmpl::new(&s.value, &s.pos).map_err(|d| diags.push(d)).ok())
}

fn item_spec(node: &Node, resolver: &mut dyn RecipeResolver) -> Result<ItemSpec, Diagnostics> {
    let def: ItemDef = from_node(node)?;
    let mut diags = Diagnostics::default();
    let t = opt_tmpl;
    let v = |diags: &mut Diagnostics, s: &Option<Raw>| -> Option<ValueTmpl> {
        s.as_ref()
            .and_then(|s| ValueTmpl::from_raw(s).map_err(|d| diags.push(d)).ok())
    };
    let sources = [
        def.random.is_some(),
        def.text.is_some(),
        def.json.is_some(),
        def.tar.is_some(),
        def.generated.is_some(),
    ];
    let n_sources = sources.iter().filter(|s| **s).count();
    if def.use_.is_some() {
        if n_sources > 0 {
            diags.push(Diagnostic::new(
                node.pos.clone(),
                "an item with `use` takes its content from the recipe",
            ));
        }
    } else {
        if def.name.is_none() {
            diags.push(Diagnostic::new(node.pos.clone(), "missing key `name`"));
        }
        if n_sources != 1 {
            diags.push(
                Diagnostic::new(
                    node.pos.clone(),
                    "an item needs exactly one of `random`, `text`, `json`, `tar` or `generated`",
                )
                .with_hint("or `use` a recipe file"),
            );
        }
    }
    let source = if let Some(r) = &def.random {
        v(&mut diags, &Some(r.clone())).map_or(Source::None, Source::Random)
    } else if def.text.is_some() {
        t(&mut diags, &def.text).map_or(Source::None, Source::Text)
    } else if def.json.is_some() {
        v(&mut diags, &def.json).map_or(Source::None, Source::Json)
    } else if let Some(tar) = &def.tar {
        let files = tar
            .files
            .iter()
            .filter_map(|f| {
                Some((
                    t(&mut diags, &Some(f.name.clone()))?,
                    t(&mut diags, &Some(f.text.clone()))?,
                ))
            })
            .collect();
        Source::Tar(files, v(&mut diags, &tar.gzip))
    } else if def.generated.is_some() {
        v(&mut diags, &def.generated).map_or(Source::None, Source::Generated)
    } else {
        Source::None
    };
    let uses = match &def.use_ {
        Some(path) => match resolver.resolve_recipe(&path.value, &path.pos) {
            Ok(spec) => {
                diags.0.extend(check_with(&spec, node.get("with")));
                let with = def
                    .with
                    .iter()
                    .filter_map(|(k, r)| {
                        ValueTmpl::from_raw(r)
                            .map_err(|d| diags.push(d))
                            .ok()
                            .map(|v| (k.clone(), v))
                    })
                    .collect();
                Some((spec, with))
            }
            Err(d) => {
                diags.push(d);
                None
            }
        },
        None => None,
    };
    let for_each = match &def.for_each {
        Some(m) if m.len() == 1 => {
            let (k, e) = m.iter().next().expect("one entry");
            Expr::new(&e.value, &e.pos)
                .map_err(|d| diags.push(d))
                .ok()
                .map(|e| (k.clone(), e))
        }
        Some(_) => {
            diags.push(Diagnostic::new(
                node.get("for_each").unwrap_or(node).pos.clone(),
                "`for_each` takes exactly one `name: expression` entry",
            ));
            None
        }
        None => None,
    };
    let spec = ItemSpec {
        name: t(&mut diags, &def.name),
        pos: def
            .name
            .as_ref()
            .map_or_else(|| node.pos.clone(), |n| n.pos.clone()),
        for_each,
        when: def
            .when
            .as_ref()
            .and_then(|w| Expr::new(&w.value, &w.pos).map_err(|d| diags.push(d)).ok()),
        uses,
        role: def.role.unwrap_or_default(),
        media_type: t(&mut diags, &def.media_type),
        source,
        tags: v(&mut diags, &def.tags),
        push: v(&mut diags, &def.push),
        corrupt: def
            .corrupt
            .as_ref()
            .and_then(|c| t(&mut diags, &Some(c.append.clone()))),
        algorithm: t(&mut diags, &def.algorithm),
        fields: def
            .fields
            .iter()
            .filter_map(|(k, r)| {
                ValueTmpl::from_raw(r)
                    .map_err(|d| diags.push(d))
                    .ok()
                    .map(|v| (k.clone(), v))
            })
            .collect(),
    };
    if diags.is_empty() {
        Ok(spec)
    } else {
        Err(diags)
    }
}

/// A generated data set, ready for the scenarios.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Key (node name), e.g. `image`.
    pub name: String,
    /// Display name, e.g. `Image`.
    pub display: String,
    /// The data set as exposed to templates (`name`, `display`, `items`, `blobs`, `manifests`, `tags`).
    pub value: Value,
    /// Ids of the items whose content the store holds.
    pub item_ids: Vec<String>,
}

/// Everything generation needs.
pub struct GenContext<'a> {
    /// Run seed.
    pub seed: u64,
    /// Where item bytes go.
    pub store: &'a Store,
    /// Variables visible to dataset templates (e.g. `config`).
    pub globals: IndexMap<String, Value>,
}

/// The display name and key of a data set, without generating it.
pub fn header(
    spec: &DatasetSpec,
    with: &IndexMap<String, Value>,
) -> Result<(String, String), Diagnostic> {
    let scope = params_scope(spec, with, &IndexMap::new(), None)?;
    let ctx = scope.context();
    let name = spec
        .name
        .as_ref()
        .map(|n| n.render(&ctx))
        .transpose()?
        .unwrap_or_default();
    let display = spec
        .display
        .as_ref()
        .map(|n| n.render(&ctx))
        .transpose()?
        .unwrap_or_else(|| name.clone());
    Ok((name, display))
}

/// The scope of a dataset or recipe: globals, then its parameters (given values win over
/// defaults). `algorithm` flows down from an enclosing data set unless given explicitly.
fn params_scope(
    spec: &DatasetSpec,
    with: &IndexMap<String, Value>,
    globals: &IndexMap<String, Value>,
    inherited_algorithm: Option<Value>,
) -> Result<Arc<Scope>, Diagnostic> {
    let mut with = with.clone();
    if let Some(a) = inherited_algorithm {
        with.entry("algorithm".to_string()).or_insert(a);
    }
    let with = &with;
    let root = Scope::root(globals.clone());
    let scope = Scope::child(&root, IndexMap::new());
    for (k, v) in &spec.params {
        let val = match with.get(k) {
            Some(given) => given.clone(),
            None => v.eval(&scope.context())?,
        };
        scope.set(k, val);
    }
    for (k, v) in with {
        if k == "algorithm" {
            scope.set(k, v.clone());
            continue;
        }
        if !spec.params.iter().any(|(p, _)| p == k) {
            return Err(Diagnostic::new(
                spec.pos.clone(),
                format!(
                    "unknown parameter `{k}`; this file declares: {}",
                    spec.params
                        .iter()
                        .map(|(p, _)| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if scope.lookup("algorithm").is_none() {
        scope.set("algorithm", Value::from("sha256"));
    }
    Ok(scope)
}

/// Generates a data set: evaluates every item, stores its bytes and digests it.
pub fn generate(
    spec: &DatasetSpec,
    name_override: Option<&str>,
    display_override: Option<&str>,
    with: &IndexMap<String, Value>,
    cx: &GenContext<'_>,
) -> Result<Dataset, Diagnostic> {
    let mut globals = cx.globals.clone();
    globals.insert("seed".into(), Value::from(cx.seed.to_string()));
    let scope = params_scope(spec, with, &globals, None)?;
    let (name, display) = header(spec, with)?;
    let name = name_override.map_or(name, String::from);
    let display = display_override.map_or(display, String::from);
    if name.is_empty() {
        return Err(Diagnostic::new(
            spec.pos.clone(),
            "a data set needs a `name`",
        ));
    }
    let registry = Arc::new(Mutex::new(IndexMap::<String, Value>::new()));
    let mut gen = Generator {
        dataset: name.clone(),
        cx,
        registry: registry.clone(),
        ids: Vec::new(),
    };
    gen.items(spec, &scope, "")?;

    let items: Vec<Value> = registry
        .lock()
        .map(|r| r.values().cloned().collect())
        .unwrap_or_default();
    let pushed = |role: &str| -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        items
            .iter()
            .filter(|i| {
                attr(i, "role") == role && i.get_attr("push").map(|p| p.is_true()).unwrap_or(false)
            })
            .filter(|i| seen.insert(attr(i, "digest")))
            .cloned()
            .collect()
    };
    let blobs = pushed("blob");
    let manifests = pushed("manifest");
    let mut tags = Vec::new();
    for m in &manifests {
        if let Ok(ts) = m.get_attr("tags") {
            if let Ok(iter) = ts.try_iter() {
                for t in iter {
                    tags.push(map_value([
                        ("name", t.clone()),
                        ("digest", m.get_attr("digest").unwrap_or_default()),
                        ("manifest", m.clone()),
                    ]));
                }
            }
        }
    }
    let by_name: IndexMap<Value, Value> = registry
        .lock()
        .map(|r| {
            r.iter()
                .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let value = map_value([
        ("name", Value::from(name.as_str())),
        ("display", Value::from(display.as_str())),
        ("algorithm", scope.lookup("algorithm").unwrap_or_default()),
        (
            "params",
            map_value(
                spec.params
                    .iter()
                    .map(|(k, _)| (k.clone(), scope.lookup(k).unwrap_or_default())),
            ),
        ),
        ("items", Value::from(by_name)),
        ("all", Value::from(items.clone())),
        ("blobs", Value::from(blobs)),
        ("manifests", Value::from(manifests)),
        ("tags", Value::from(tags)),
    ]);
    Ok(Dataset {
        name,
        display,
        value,
        item_ids: gen.ids,
    })
}

fn attr(v: &Value, name: &str) -> String {
    v.get_attr(name).map(|a| a.to_string()).unwrap_or_default()
}

struct Generator<'a, 'b> {
    dataset: String,
    cx: &'a GenContext<'b>,
    registry: Arc<Mutex<IndexMap<String, Value>>>,
    ids: Vec<String>,
}

impl Generator<'_, '_> {
    fn items(
        &mut self,
        spec: &DatasetSpec,
        scope: &Arc<Scope>,
        prefix: &str,
    ) -> Result<(), Diagnostic> {
        let lookup = Value::from_object(ItemLookup {
            registry: self.registry.clone(),
            prefix: prefix.to_string(),
            glob: false,
        });
        let glob = Value::from_object(ItemLookup {
            registry: self.registry.clone(),
            prefix: prefix.to_string(),
            glob: true,
        });
        let scope = Scope::child(
            scope,
            [("item".to_string(), lookup), ("items".to_string(), glob)]
                .into_iter()
                .collect(),
        );
        for item in &spec.items {
            let iterations: Vec<Option<(String, Value, usize)>> = match &item.for_each {
                None => vec![None],
                Some((var, e)) => {
                    let list = e.eval(&scope.context())?;
                    crate::scenario::list_items(e, &list)?
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| Some((var.clone(), v, i)))
                        .collect()
                }
            };
            for binding in iterations {
                // The item and its position (`index`, from 0) are visible to the item.
                let vars = binding
                    .into_iter()
                    .flat_map(|(k, v, i)| [(k, v), ("index".to_string(), Value::from(i))])
                    .collect();
                let s = Scope::child(&scope, vars);
                if let Some(w) = &item.when {
                    if !w.truthy(&s.context())? {
                        continue;
                    }
                }
                self.item(item, &s, prefix)?;
            }
        }
        Ok(())
    }

    fn item(
        &mut self,
        item: &ItemSpec,
        scope: &Arc<Scope>,
        prefix: &str,
    ) -> Result<(), Diagnostic> {
        let ctx = scope.context();
        let local = item
            .name
            .as_ref()
            .map(|n| n.render(&ctx))
            .transpose()?
            .unwrap_or_default();
        let full = match (prefix.is_empty(), local.is_empty()) {
            (true, _) => local.clone(),
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}/{local}"),
        };
        // Random values are seeded per item path, so they do not depend on evaluation order.
        let rng = Arc::new(RngObject(Mutex::new(Rng::from_label(&format!(
            "{}/{}/{full}",
            self.cx.seed, self.dataset
        )))));
        let scope = Scope::child(
            scope,
            [("rng".to_string(), Value::from_dyn_object(rng))]
                .into_iter()
                .collect(),
        );
        let ctx = scope.context();
        if let Some((recipe, with)) = &item.uses {
            let mut given = IndexMap::new();
            for (k, v) in with {
                given.insert(k.clone(), v.eval(&ctx)?);
            }
            let mut globals = self.cx.globals.clone();
            globals.insert("seed".into(), Value::from(self.cx.seed.to_string()));
            let rscope = params_scope(recipe, &given, &globals, scope.lookup("algorithm"))?;
            return self.items(recipe, &rscope, &full);
        }
        if self
            .registry
            .lock()
            .map(|r| r.contains_key(&full))
            .unwrap_or(false)
        {
            return Err(Diagnostic::new(
                item.pos.clone(),
                format!("duplicate item name `{full}`"),
            ));
        }
        let algorithm = match &item.algorithm {
            Some(a) => a.render(&ctx)?,
            None => scope
                .lookup("algorithm")
                .map_or_else(|| "sha256".into(), |v| v.to_string()),
        };
        let (content, uncompressed, json) = self.content(item, &ctx, &full)?;
        // Digest, size and base64 describe the bytes before any corruption is appended.
        // In-memory items get both digests (scenarios accept either algorithm in digest
        // headers), each computed once; streamed items compute theirs when asked (LazyDigests).
        let both: Vec<(&str, String)> = if content.bytes().is_some() {
            ["sha256", "sha512"]
                .into_iter()
                .filter_map(|a| content.digest(a, None).map(|d| (a, d)))
                .collect()
        } else {
            Vec::new()
        };
        let digest = both
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, d)| d.clone())
            .or_else(|| content.digest(&algorithm, None))
            .ok_or_else(|| {
                Diagnostic::new(
                    item.pos.clone(),
                    format!("unknown digest algorithm `{algorithm}`"),
                )
            })?;
        let size = content.len();
        let inline = content.bytes().is_some().then(|| {
            let digests = both.iter().map(|(a, d)| (*a, Value::from(d.as_str())));
            let b64 = content
                .bytes()
                .filter(|b| b.len() as u64 <= MAX_INLINE)
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_slice()));
            (map_value(digests.collect::<Vec<_>>()), b64)
        });
        let content = match &item.corrupt {
            None => content,
            Some(extra) => {
                let mut bytes = content
                    .bytes()
                    .map(|b| b.as_ref().clone())
                    .unwrap_or_default();
                bytes.extend_from_slice(extra.render(&ctx)?.as_bytes());
                Content::Bytes(Arc::new(bytes))
            }
        };
        let media_type = item
            .media_type
            .as_ref()
            .map(|m| m.render(&ctx))
            .transpose()?;
        let id = format!("{}/{full}", self.dataset);
        self.cx.store.insert(&id, content.clone());
        if item.corrupt.is_none() {
            // Checks of answers compare with these: they are not computed a second time.
            for (alg, d) in &both {
                self.cx.store.remember(&id, alg, d);
            }
        }
        self.ids.push(id.clone());

        let mut entries: Vec<(String, Value)> = vec![
            ("id".into(), Value::from(id)),
            ("name".into(), Value::from(full.as_str())),
            (
                "role".into(),
                Value::from(if item.role == Role::Manifest {
                    "manifest"
                } else {
                    "blob"
                }),
            ),
            ("algorithm".into(), Value::from(algorithm.as_str())),
            ("digest".into(), Value::from(digest.as_str())),
            ("size".into(), Value::from(size)),
            ("length".into(), Value::from(content.len())),
            ("corrupt".into(), Value::from(content.len() != size)),
            (
                "mediaType".into(),
                media_type.clone().map_or(Value::from(()), Value::from),
            ),
        ];
        let mut descriptor = vec![(
            "mediaType",
            media_type.clone().map_or(Value::from(()), Value::from),
        )];
        descriptor.push(("digest", Value::from(digest.as_str())));
        descriptor.push(("size", Value::from(size)));
        if media_type.is_none() {
            descriptor.remove(0);
        }
        entries.push(("descriptor".into(), map_value(descriptor)));
        if let Some((digests, b64)) = inline {
            entries.push(("digests".into(), digests));
            if let Some(b) = b64 {
                entries.push(("base64".into(), Value::from(b)));
            }
        } else {
            let lazy = LazyDigests(content.clone());
            entries.push(("digests".into(), Value::from_object(lazy)));
        }
        let diff_id = match &uncompressed {
            Some(raw) => crate::template::digest_bytes(&algorithm, raw).unwrap_or_default(),
            None => digest.clone(),
        };
        entries.push(("diff_id".into(), Value::from(diff_id)));
        if let Some(j) = json {
            entries.push(("json".into(), j));
        }
        let tags = match &item.tags {
            Some(t) => t.eval(&ctx)?,
            None => Value::from(Vec::<Value>::new()),
        };
        entries.push(("tags".into(), tags));
        let push = match &item.push {
            Some(p) => p.eval(&ctx)?.is_true(),
            None => true,
        };
        entries.push(("push".into(), Value::from(push)));
        if !item.fields.is_empty() {
            // Extra attributes may use the item's own digest, size, base64… as `self`.
            let own = Scope::child(
                &scope,
                [("self".to_string(), map_value(entries.clone()))]
                    .into_iter()
                    .collect(),
            );
            let own_ctx = own.context();
            for (k, v) in &item.fields {
                let val = v.eval(&own_ctx)?;
                entries.push((k.clone(), val));
            }
        }
        if let Ok(mut r) = self.registry.lock() {
            r.insert(full, map_value(entries));
        }
        Ok(())
    }

    /// The item's bytes, the uncompressed bytes of a gzipped tar, and parsed JSON content.
    fn content(&self, item: &ItemSpec, ctx: &Value, full: &str) -> Result<Produced, Diagnostic> {
        let size_of = |v: &ValueTmpl| -> Result<u64, Diagnostic> {
            let val = v.eval(ctx)?;
            u64::try_from(val.clone()).map_err(|_| {
                Diagnostic::new(
                    item.pos.clone(),
                    format!("size must be a non-negative integer, got `{val}`"),
                )
            })
        };
        Ok(match &item.source {
            Source::None => (Content::Bytes(Arc::new(Vec::new())), None, None),
            Source::Random(size) => {
                let n = size_of(size)?;
                let mut bytes = vec![0u8; n as usize];
                Rng::from_label(&format!("{}/{}/{full}/bytes", self.cx.seed, self.dataset))
                    .fill(&mut bytes);
                (Content::Bytes(Arc::new(bytes)), None, None)
            }
            Source::Generated(size) => {
                let len = size_of(size)?;
                let seed = Rng::from_label(&format!(
                    "{}/{}/{full}/generated",
                    self.cx.seed, self.dataset
                ))
                .next_u64();
                (Content::generated(seed, len), None, None)
            }
            Source::Text(t) => (
                Content::Bytes(Arc::new(t.render(ctx)?.into_bytes())),
                None,
                None,
            ),
            Source::Json(v) => {
                let bytes = Arc::new(v.eval_json_bytes(ctx)?);
                let json = Value::from_object(LazyJson {
                    bytes: bytes.clone(),
                    parsed: std::sync::OnceLock::new(),
                });
                (Content::Bytes(bytes), None, Some(json))
            }
            Source::Tar(files, gzip) => {
                let mut entries = Vec::new();
                for (name, text) in files {
                    entries.push((name.render(ctx)?, text.render(ctx)?.into_bytes()));
                }
                let tar = tar_archive(&entries);
                let gz = match gzip {
                    Some(g) => g.eval(ctx)?.is_true(),
                    None => false,
                };
                if gz {
                    let mut enc = flate2::GzBuilder::new()
                        .mtime(0)
                        .write(Vec::new(), flate2::Compression::default());
                    enc.write_all(&tar)
                        .and_then(|()| enc.try_finish())
                        .map_err(|e| Diagnostic::new(item.pos.clone(), format!("gzip: {e}")))?;
                    let bytes = enc
                        .finish()
                        .map_err(|e| Diagnostic::new(item.pos.clone(), format!("gzip: {e}")))?;
                    (Content::Bytes(Arc::new(bytes)), Some(tar), None)
                } else {
                    (Content::Bytes(Arc::new(tar)), None, None)
                }
            }
        })
    }
}

/// A minimal POSIX ustar archive of regular files (mode 0644, mtime 0), as image layers hold.
pub fn tar_archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = [0u8; 512];
        let name_bytes = name.as_bytes();
        h[..name_bytes.len().min(100)].copy_from_slice(&name_bytes[..name_bytes.len().min(100)]);
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// `item('name')` and `items('glob*')` in dataset templates: earlier items of the same data
/// set, looked up first under the current recipe prefix, then from the top.
#[derive(Debug)]
struct ItemLookup {
    registry: Arc<Mutex<IndexMap<String, Value>>>,
    prefix: String,
    glob: bool,
}

impl Object for ItemLookup {
    fn call(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        args: &[Value],
    ) -> Result<Value, MjError> {
        let pattern = args.first().and_then(Value::as_str).ok_or_else(|| {
            MjError::new(
                ErrorKind::InvalidOperation,
                "item()/items() take an item name",
            )
        })?;
        let reg = self
            .registry
            .lock()
            .map_err(|_| MjError::new(ErrorKind::InvalidOperation, "lock"))?;
        let scoped = if self.prefix.is_empty() {
            pattern.to_string()
        } else {
            format!("{}/{pattern}", self.prefix)
        };
        if self.glob {
            for candidate in [&scoped, &pattern.to_string()] {
                let found: Vec<Value> = reg
                    .iter()
                    .filter(|(k, _)| glob_match(candidate, k))
                    .map(|(_, v)| v.clone())
                    .collect();
                if !found.is_empty() {
                    return Ok(Value::from(found));
                }
            }
            return Ok(Value::from(Vec::<Value>::new()));
        }
        reg.get(&scoped)
            .or_else(|| reg.get(pattern))
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = reg.keys().map(String::as_str).collect();
                let close = crate::diag::did_you_mean(&scoped, known.iter().copied())
                    .or_else(|| crate::diag::did_you_mean(pattern, known.iter().copied()))
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                MjError::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "no item `{pattern}` defined before this one ({close}known: {})",
                        known.join(", ")
                    ),
                )
            })
    }
}

/// `*` matches any run of characters except `/` (one recipe level).
fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .take_while(|&i| !rest[..i].contains('/'))
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob_match(tail, &rest[i..]))
        }
    }
}

/// `digests` of a streamed item: each algorithm's digest is computed when a template first
/// reads it, then remembered, so a gigabyte blob is not hashed for an algorithm nothing checks.
#[derive(Debug)]
struct LazyDigests(Content);

impl Object for LazyDigests {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let alg = key.as_str().filter(|a| Hasher::new(a).is_some())?;
        self.0.digest(alg, None).map(Value::from)
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&["sha256", "sha512"])
    }
}

/// `json` of an item: its bytes parsed when a template first reads it. Most items' JSON is
/// never read (only referrers look into manifests), and the largest are megabytes.
#[derive(Debug)]
struct LazyJson {
    bytes: Arc<Vec<u8>>,
    parsed: std::sync::OnceLock<Value>,
}

impl LazyJson {
    fn value(&self) -> &Value {
        self.parsed.get_or_init(|| {
            serde_json::from_slice::<serde_json::Value>(&self.bytes)
                .map_or(Value::UNDEFINED, |j| crate::template::from_json(&j))
        })
    }
}

impl Object for LazyJson {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        match self.value().kind() {
            minijinja::value::ValueKind::Seq => minijinja::value::ObjectRepr::Seq,
            _ => minijinja::value::ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.value()
            .get_item(key)
            .ok()
            .filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        let v = self.value();
        match v.try_iter() {
            Ok(items) if v.kind() == minijinja::value::ValueKind::Map => {
                minijinja::value::Enumerator::Values(items.collect())
            }
            Ok(_) => minijinja::value::Enumerator::Seq(v.len().unwrap_or(0)),
            Err(_) => minijinja::value::Enumerator::Empty,
        }
    }
}

/// `rng.text(n)` / `rng.int()` in dataset templates: seeded per item.
#[derive(Debug)]
struct RngObject(Mutex<Rng>);

impl Object for RngObject {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, MjError> {
        let mut rng = self
            .0
            .lock()
            .map_err(|_| MjError::new(ErrorKind::InvalidOperation, "lock"))?;
        match method {
            "text" => {
                let n = args
                    .first()
                    .and_then(|v| usize::try_from(v.clone()).ok())
                    .unwrap_or(26);
                Ok(Value::from(rng.text(n)))
            }
            "int" => Ok(Value::from(rng.next_u64() >> 1)),
            "hex" => {
                let n = args
                    .first()
                    .and_then(|v| usize::try_from(v.clone()).ok())
                    .unwrap_or(64);
                let mut bytes = vec![0u8; n.div_ceil(2)];
                rng.fill(&mut bytes);
                Ok(Value::from(crate::template::hex(&bytes)[..n].to_string()))
            }
            _ => Err(MjError::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// JSON of a template value (used by tests and reports).
pub fn value_json(v: &Value) -> serde_json::Value {
    to_json(v).unwrap_or(serde_json::Value::Null)
}

/// Stream-digests any reader with `alg`, returning the digest and the number of bytes read.
pub fn digest_reader(alg: &str, mut r: impl std::io::Read) -> std::io::Result<(String, u64)> {
    let mut h = Hasher::new(alg)
        .ok_or_else(|| std::io::Error::other(format!("unknown algorithm {alg}")))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((h.finish(), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;
    use std::path::Path;

    struct Recipes(IndexMap<String, Arc<DatasetSpec>>);
    impl RecipeResolver for Recipes {
        fn resolve_recipe(
            &mut self,
            path: &str,
            from: &Pos,
        ) -> Result<Arc<DatasetSpec>, Diagnostic> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| Diagnostic::new(from.clone(), format!("no recipe {path}")))
        }
    }

    fn spec(src: &str, recipes: &mut Recipes) -> DatasetSpec {
        compile(&parse(Path::new("d.yaml"), src).unwrap(), recipes)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const IMAGE: &str = r#"
params: { tag: null, layers: 2 }
items:
  - name: "layer-{{ i }}"
    for_each: { i: "range(layers)" }
    media_type: application/vnd.oci.image.layer.v1.tar+gzip
    tar: { files: [{ name: "./f-{{ i }}.txt", text: "file {{ i }} {{ rng.int() }}\n" }], gzip: true }
  - name: config
    media_type: application/vnd.oci.image.config.v1+json
    json: { rootfs: { type: layers, diff_ids: "{{ items('layer-*') | map(attribute='diff_id') | list }}" } }
  - name: manifest
    role: manifest
    media_type: application/vnd.oci.image.manifest.v1+json
    tags: "{{ [tag] if tag else [] }}"
    json:
      schemaVersion: 2
      config: "{{ item('config').descriptor }}"
      layers: "{{ items('layer-*') | map(attribute='descriptor') | list }}"
"#;

    fn gen(seed: u64) -> (Dataset, Store) {
        let mut recipes = Recipes(IndexMap::new());
        let image = Arc::new(spec(IMAGE, &mut recipes));
        recipes.0.insert("image.yaml".into(), image);
        let ds = spec(
            "name: index\ndisplay: Index\nitems:\n  - { name: amd64, use: image.yaml }\n  - { name: arm64, use: image.yaml, with: { tag: x } }\n",
            &mut recipes,
        );
        let store = Store::default();
        let cx = GenContext {
            seed,
            store: &store,
            globals: IndexMap::new(),
        };
        (
            generate(&ds, None, None, &IndexMap::new(), &cx).unwrap(),
            store,
        )
    }

    #[test]
    fn generates_manifests_whose_digest_is_of_the_bytes() {
        let (ds, store) = gen(7);
        let v = value_json(&ds.value);
        assert_eq!(v["blobs"].as_array().unwrap().len(), 6);
        assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(v["tags"][0]["name"], "x");
        let m = &v["items"]["arm64/manifest"];
        let bytes = store.get(m["id"].as_str().unwrap()).unwrap();
        let raw = bytes.bytes().unwrap();
        assert_eq!(
            crate::template::digest_bytes("sha256", raw).unwrap(),
            m["digest"]
        );
        let parsed: serde_json::Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(
            parsed["layers"][1]["digest"],
            v["items"]["arm64/layer-1"]["digest"]
        );
        assert_eq!(parsed["config"]["size"], v["items"]["arm64/config"]["size"]);
        // diff_ids are digests of the uncompressed tar, not of the gzip bytes
        let cfg: serde_json::Value = serde_json::from_slice(
            store
                .get(v["items"]["arm64/config"]["id"].as_str().unwrap())
                .unwrap()
                .bytes()
                .unwrap(),
        )
        .unwrap();
        assert_ne!(
            cfg["rootfs"]["diff_ids"][0],
            v["items"]["arm64/layer-0"]["digest"]
        );
        assert!(
            raw.starts_with(br#"{"schemaVersion":2,"config":{"mediaType""#),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = value_json(&gen(7).0.value);
        let b = value_json(&gen(7).0.value);
        let c = value_json(&gen(8).0.value);
        assert_eq!(
            a["items"]["amd64/manifest"]["digest"],
            b["items"]["amd64/manifest"]["digest"]
        );
        assert_ne!(
            a["items"]["amd64/manifest"]["digest"],
            c["items"]["amd64/manifest"]["digest"]
        );
        assert_ne!(
            a["items"]["amd64/layer-0"]["digest"],
            a["items"]["arm64/layer-0"]["digest"]
        );
    }

    #[test]
    fn corrupt_items_declare_the_original_digest() {
        let mut r = Recipes(IndexMap::new());
        let ds = spec(
            "name: b\nitems:\n  - { name: bad, random: 100, corrupt: { append: 'oh no' } }\n",
            &mut r,
        );
        let store = Store::default();
        let cx = GenContext {
            seed: 1,
            store: &store,
            globals: IndexMap::new(),
        };
        let v = value_json(
            &generate(&ds, None, None, &IndexMap::new(), &cx)
                .unwrap()
                .value,
        );
        let item = &v["items"]["bad"];
        let content = store.get(item["id"].as_str().unwrap()).unwrap();
        assert_eq!(content.len(), 105);
        assert_eq!(item["size"], 100);
        assert_eq!(
            content.digest("sha256", Some((0, 99))).unwrap(),
            item["digest"]
        );
        assert_ne!(content.digest("sha256", None).unwrap(), item["digest"]);
    }

    #[test]
    fn errors_point_at_items() {
        let mut r = Recipes(IndexMap::new());
        let e = compile(
            &parse(
                Path::new("d.yaml"),
                "name: b\nitems:\n  - { name: x, random: 1, text: a }\n",
            )
            .unwrap(),
            &mut r,
        )
        .unwrap_err();
        assert!(e.0[0].message.contains("exactly one of"), "{e}");
        assert_eq!(e.0[0].pos.line, 3);
        let ds = spec(
            "name: b\nitems:\n  - { name: x, json: { a: \"{{ item('nope') }}\" } }\n",
            &mut r,
        );
        let store = Store::default();
        let cx = GenContext {
            seed: 1,
            store: &store,
            globals: IndexMap::new(),
        };
        let e = generate(&ds, None, None, &IndexMap::new(), &cx).unwrap_err();
        assert!(e.message.contains("no item `nope`"), "{}", e.message);
        assert_eq!(e.pos.line, 3);
    }

    #[test]
    fn tar_archive_has_valid_header_checksum() {
        let t = tar_archive(&[("./a.txt".into(), b"hello".to_vec())]);
        assert_eq!(t.len(), 512 + 512 + 1024);
        let stored = u32::from_str_radix(std::str::from_utf8(&t[148..154]).unwrap(), 8).unwrap();
        let mut h = t[..512].to_vec();
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|b| u32::from(*b)).sum::<u32>());
    }

    #[test]
    fn glob_matches_within_one_level() {
        assert!(glob_match("layer-*", "layer-0"));
        assert!(glob_match("a/layer-*", "a/layer-12"));
        assert!(!glob_match("layer-*", "a/layer-0"));
        assert!(!glob_match("layer-*", "layer-0/x"));
    }
}
