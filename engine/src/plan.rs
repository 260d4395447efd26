//! The plan: the expanded test tree, decided before anything is sent.
//!
//! Planning evaluates what the configuration and the datasets determine — `for_each` lists,
//! `use` parameters, `vars`, names, API and data labels, `requires` toggles and `--filter` —
//! and yields [`PlanNode`]s. Conditions that depend on answers (`when`, `skip_unless`) stay
//! attached to the nodes and are evaluated by the runner. `oci-conform list` prints this plan.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::Value;

use crate::config::Config;
use crate::content::Store;
use crate::dataset::{self, Dataset, GenContext};
use crate::diag::{Diagnostic, Pos};
use crate::pack::Pack;
use crate::results::Status;
use crate::scenario::{CaseSpec, Level, NodeBody, NodeSpec};
use crate::template::{from_json, map_value, Expr, Scope, Tmpl};

/// A planned node.
#[derive(Debug)]
pub struct PlanNode<'p> {
    /// Unique path-like id (no root prefix), e.g. `sha256 blobs/post+put/blob-head`.
    pub id: String,
    /// Name, as the official suite names the node.
    pub name: String,
    /// Full name including the root.
    pub path: String,
    /// Variables bound at this node (for_each item, `with`, `vars`).
    pub vars: IndexMap<String, Value>,
    /// Data label.
    pub data: Option<String>,
    /// API labels.
    pub apis: Vec<String>,
    /// Spec anchors.
    pub spec: Vec<String>,
    /// Requirement ids.
    pub req: Vec<String>,
    /// Level.
    pub level: Level,
    /// Where the node is written.
    pub source: Pos,
    /// One-line description.
    pub summary: Option<String>,
    /// Judgement notes.
    pub note: Option<String>,
    /// The parameters of the file this node uses (`params:`), as bound for it.
    pub params: Vec<(String, Value)>,
    /// Why the node is Disabled, if it is.
    pub disabled: Option<String>,
    /// Run-time conditions: all must hold, else the node is omitted.
    pub when: Vec<&'p Expr>,
    /// Run-time conditions: when one is false, the node's cases are recorded as Skip.
    pub skip_unless: Vec<(&'p Expr, Option<&'p Tmpl>)>,
    /// Keys of shared resources: a node holding a key starts only after every earlier node
    /// (in plan order) holding it has finished, its ancestors excepted.
    pub exclusive: Vec<String>,
    /// Keys of shared resources the node only reads: it waits only for earlier exclusive
    /// holders, and runs alongside other readers.
    pub shared: Vec<String>,
    /// `(key, class)`: the node (a case, or every case below a group) never runs at the same
    /// time as a holder of the key in another class, whichever comes first.
    pub apart: Vec<(String, String)>,
    /// The concurrent batches this node belongs to among its parent group's children,
    /// outermost first (empty: the node runs in sequence with its siblings).
    pub lanes: Vec<Lane>,
    /// Position in a pre-order walk of the plan (the root is 0).
    pub order: usize,
    /// Position of the last node of this node's subtree (itself for a case).
    pub last: usize,
    /// Group or case.
    pub kind: PlanKind<'p>,
}

/// Where a node runs inside a concurrent batch of its siblings: the siblings of one batch run
/// at the same time, one lane each; the nodes of a lane run one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// The batch (unique in the plan).
    pub batch: u32,
    /// The lane inside the batch (unique in the plan).
    pub lane: u32,
}

/// What a planned node is.
#[derive(Debug)]
pub enum PlanKind<'p> {
    /// A group.
    Group {
        /// Children in order.
        children: Vec<PlanNode<'p>>,
        /// Whether children may run concurrently.
        parallel: bool,
    },
    /// A case and its steps.
    Case(&'p CaseSpec),
}

impl PlanNode<'_> {
    /// Number of cases below (or 1 for a case).
    pub fn case_count(&self) -> usize {
        match &self.kind {
            PlanKind::Case(_) => 1,
            PlanKind::Group { children, .. } => children.iter().map(PlanNode::case_count).sum(),
        }
    }

    /// Visits every node depth-first.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Self, usize)) {
        fn go<'a, 'p>(
            n: &'a PlanNode<'p>,
            depth: usize,
            f: &mut impl FnMut(&'a PlanNode<'p>, usize),
        ) {
            f(n, depth);
            if let PlanKind::Group { children, .. } = &n.kind {
                for c in children {
                    go(c, depth + 1, f);
                }
            }
        }
        go(self, 0, f);
    }
}

/// One step of a sequence of siblings: a node on its own, or the lanes of a concurrent batch
/// (each lane a run of siblings that go one after the other).
pub enum Step<'a, 'p> {
    /// A node run in sequence.
    One(&'a PlanNode<'p>),
    /// The lanes of one batch, in plan order.
    Batch(Vec<&'a [PlanNode<'p>]>),
}

/// Splits siblings into the steps the runner takes at nesting `level` of their lanes.
pub fn steps<'a, 'p>(nodes: &'a [PlanNode<'p>], level: usize) -> Vec<Step<'a, 'p>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < nodes.len() {
        let Some(lane) = nodes[i].lanes.get(level) else {
            out.push(Step::One(&nodes[i]));
            i += 1;
            continue;
        };
        let end = i + nodes[i..]
            .iter()
            .take_while(|n| n.lanes.get(level).map(|l| l.batch) == Some(lane.batch))
            .count();
        let mut lanes = Vec::new();
        let mut start = i;
        for j in i + 1..=end {
            if j == end || nodes[j].lanes[level].lane != nodes[start].lanes[level].lane {
                lanes.push(&nodes[start..j]);
                start = j;
            }
        }
        out.push(Step::Batch(lanes));
        i = end;
    }
    out
}

/// The whole plan.
pub struct Plan<'p> {
    /// The root group.
    pub root: PlanNode<'p>,
    /// Root scope (config, datasets, pack vars).
    pub scope: Arc<Scope>,
    /// Generated data sets by name.
    pub datasets: IndexMap<String, Dataset>,
    /// API labels with whether they are enabled.
    pub apis: Vec<(String, bool)>,
    /// Data display names with their preset status.
    pub data: Vec<(String, Status)>,
    /// Item bytes.
    pub store: Arc<Store>,
    /// Content seed.
    pub seed: u64,
    /// What each request touches, for the schedule audit (the pack's `touches:`).
    pub touches: &'p [crate::audit::TouchRule],
}

/// Label a use site contributes to the node it includes.
#[derive(Default, Clone)]
struct Site<'p> {
    name: Option<String>,
    key: Option<String>,
    when: Vec<&'p Expr>,
    skip_unless: Vec<(&'p Expr, Option<&'p Tmpl>)>,
    disabled: Option<String>,
    apis: Vec<String>,
    data: Option<String>,
    spec: Vec<String>,
    req: Vec<String>,
    level: Option<Level>,
    exclusive: Vec<String>,
    shared: Vec<String>,
    apart: Vec<(String, String)>,
    summary: Option<String>,
    note: Option<String>,
    pos: Option<Pos>,
    parallel: Option<bool>,
    params: Vec<(String, Value)>,
}

struct Parent<'a> {
    scope: &'a Arc<Scope>,
    id: &'a str,
    path: &'a str,
    data: Option<&'a str>,
    level: Level,
}

struct Planner<'p> {
    disabled_apis: HashMap<String, String>,
    filters: Vec<String>,
    /// Last batch or lane id handed out.
    lane_ids: std::cell::Cell<u32>,
    _p: std::marker::PhantomData<&'p ()>,
}

/// The nodes one expansion of a scenario node yields (one `for_each` item): a unit that a
/// parallel group runs as one lane.
type Unit<'p> = Vec<PlanNode<'p>>;

/// Builds the plan: generates the data sets, then expands the tree.
pub fn build<'p>(
    pack: &'p Pack,
    config: &Config,
    filters: &[String],
    seed: u64,
) -> Result<Plan<'p>, Diagnostic> {
    let config_value = from_json(&config.redacted());
    let store = Arc::new(Store::default());
    let mut globals = IndexMap::new();
    globals.insert("config".to_string(), config_value.clone());
    let cfg_scope = Scope::root(globals.clone());
    let ctx = cfg_scope.context();

    // API toggles.
    let mut apis = Vec::new();
    let mut disabled_apis = HashMap::new();
    for (name, requires) in &pack.apis {
        let enabled = match requires {
            Some(e) => e.truthy(&ctx)?,
            None => true,
        };
        if !enabled {
            let why = requires.as_ref().map(|e| e.src).unwrap_or_default();
            disabled_apis.insert(
                name.clone(),
                format!("API `{name}` is disabled by the configuration (`{why}`)"),
            );
        }
        apis.push((name.clone(), enabled));
    }

    // Data sets.
    let mut datasets = IndexMap::new();
    let mut data = Vec::new();
    let mut lists: IndexMap<String, Vec<Value>> = IndexMap::new();
    let gen = GenContext {
        seed,
        store: &store,
        globals: globals.clone(),
    };
    for d in &pack.datasets {
        let mut with = IndexMap::new();
        for (k, v) in &d.with {
            with.insert(k.clone(), v.eval(&ctx)?);
        }
        let enabled = match &d.requires {
            Some(e) => e.truthy(&ctx)?,
            None => true,
        };
        let (name, display) = dataset::header(&d.spec, &with)?;
        let name = d.name.clone().unwrap_or(name);
        let display = d.display.clone().unwrap_or(display);
        if !enabled {
            if d.report {
                data.push((display, Status::Disabled));
            }
            continue;
        }
        let ds = dataset::generate(&d.spec, Some(&name), Some(&display), &with, &gen)?;
        if d.report {
            data.push((display, Status::Unknown));
        }
        lists
            .entry(d.group.clone())
            .or_default()
            .push(ds.value.clone());
        if datasets.contains_key(&name) {
            return Err(Diagnostic::new(
                d.pos.clone(),
                format!("two data sets are named `{name}`"),
            ));
        }
        datasets.insert(name, ds);
    }

    let mut root_vars = globals;
    root_vars.insert("seed".into(), Value::from(seed.to_string()));
    root_vars.insert("registry".into(), Value::from(config.base_url()));
    root_vars.insert(
        "pack".into(),
        map_value([
            ("name", Value::from(pack.name.as_str())),
            ("specVersion", Value::from(pack.spec_version.as_str())),
        ]),
    );
    root_vars.insert(
        "datasets".into(),
        map_value(datasets.iter().map(|(k, d)| (k.clone(), d.value.clone()))),
    );
    root_vars.insert(
        "dataset_groups".into(),
        map_value(lists.into_iter().map(|(k, v)| (k, Value::from(v)))),
    );
    let scope = Scope::root(root_vars);
    for (k, v) in &pack.vars {
        let val = v.eval(&scope.context())?;
        scope.set(k, val);
    }

    let planner = Planner {
        disabled_apis,
        filters: filters
            .iter()
            .map(|f| normalize_filter(f, &pack.name))
            .filter(|f| !f.is_empty())
            .collect(),
        lane_ids: std::cell::Cell::new(0),
        _p: std::marker::PhantomData,
    };
    let parent = Parent {
        scope: &scope,
        id: "",
        path: "",
        data: None,
        level: Level::Must,
    };
    let mut nodes: Vec<PlanNode<'p>> = planner
        .expand(&pack.root, &scope, &parent, Site::default(), true)?
        .into_iter()
        .flatten()
        .collect();
    if nodes.len() != 1 {
        return Err(Diagnostic::new(
            pack.root.pos.clone(),
            "the pack root must be a single group",
        ));
    }
    let mut root = nodes.remove(0);
    root.id = String::new();
    root.lanes.clear();
    number(&mut root, 0);
    Ok(Plan {
        root,
        scope,
        datasets,
        apis,
        data,
        store,
        seed,
        touches: &pack.touches,
    })
}

/// Accepts ids and official full names (`OCI Conformance Test/…`).
fn normalize_filter(f: &str, root: &str) -> String {
    let f = f.trim().trim_matches('/');
    f.strip_prefix(root)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(f)
        .to_string()
}

enum FilterMatch {
    /// The node and everything below are selected.
    Inside,
    /// The node is an ancestor of a selected node.
    Ancestor,
    /// Not selected.
    Out,
}

impl<'p> Planner<'p> {
    fn filter(&self, id: &str, name_path: &str) -> FilterMatch {
        if self.filters.is_empty() {
            return FilterMatch::Inside;
        }
        let mut ancestor = false;
        for f in &self.filters {
            for candidate in [id, name_path] {
                if candidate.starts_with(f.as_str()) {
                    return FilterMatch::Inside;
                }
                if f.starts_with(candidate) {
                    ancestor = true;
                }
            }
        }
        if ancestor {
            FilterMatch::Ancestor
        } else {
            FilterMatch::Out
        }
    }

    /// Expands one node, naming the node in any error (templates are shared by many nodes).
    fn expand(
        &self,
        spec: &'p NodeSpec,
        scope: &Arc<Scope>,
        parent: &Parent<'_>,
        site: Site<'p>,
        filtered: bool,
    ) -> Result<Vec<Unit<'p>>, Diagnostic> {
        self.expand_inner(spec, scope, parent, site, filtered)
            .map_err(|mut d| {
                if !d
                    .hint
                    .as_deref()
                    .unwrap_or_default()
                    .contains("while planning")
                {
                    let within = if parent.path.is_empty() {
                        "the root".to_string()
                    } else {
                        format!("`{}`", parent.path)
                    };
                    let item = describe_scope(scope);
                    d.hint = Some(format!(
                        "{}while planning {within}{item}",
                        d.hint.map(|h| format!("{h}; ")).unwrap_or_default()
                    ));
                }
                d
            })
    }

    /// Expands one node (with its for_each and use sites) into planned nodes, one unit per
    /// `for_each` item.
    fn expand_inner(
        &self,
        spec: &'p NodeSpec,
        scope: &Arc<Scope>,
        parent: &Parent<'_>,
        site: Site<'p>,
        filtered: bool,
    ) -> Result<Vec<Unit<'p>>, Diagnostic> {
        let ctx = scope.context();
        let bindings: Vec<Option<(String, Value, usize)>> = match &spec.for_each {
            None => vec![None],
            Some((var, e)) => {
                let list = e.eval(&ctx)?;
                crate::scenario::list_items(e, &list)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Some((var.clone(), v, i)))
                    .collect()
            }
        };
        let mut out = Vec::new();
        for binding in bindings {
            let mut vars = IndexMap::new();
            let mut key = site.key.clone();
            if let Some((var, v, i)) = &binding {
                vars.insert(var.clone(), v.clone());
                if key.is_none() {
                    key = Some(item_key(v, *i));
                }
            }
            let s = Scope::child(scope, vars);
            // Parameters first, so names and labels can use them.
            let params = match &spec.uses {
                Some(u) => bind_params(u, &s, &spec.pos)?,
                None => Vec::new(),
            };
            for (k, v) in &spec.vars {
                let val = v.eval(&s.context())?;
                s.set(k, val);
            }
            let ctx = s.context();
            if let Some(k) = &spec.key {
                key = Some(k.render(&ctx)?);
            }

            let mut here = site.clone();
            here.key = key;
            if !params.is_empty() {
                here.params = params;
            }
            if here.name.is_none() {
                if let Some(n) = &spec.name {
                    here.name = Some(n.render(&ctx)?);
                }
            }
            here.when.extend(spec.when.iter());
            if let Some(e) = &spec.skip_unless {
                here.skip_unless.push((e, spec.skip_reason.as_ref()));
            }
            if here.disabled.is_none() {
                if let Some(r) = &spec.requires {
                    if !r.truthy(&ctx)? {
                        here.disabled =
                            Some(format!("disabled by the configuration (`{}`)", r.src));
                    }
                }
            }
            for a in &spec.api {
                let label = a.render(&ctx)?;
                if !label.trim().is_empty() && !here.apis.contains(&label) {
                    here.apis.push(label);
                }
            }
            if here.data.is_none() {
                if let Some(d) = &spec.data {
                    here.data = Some(d.render(&ctx)?);
                }
            }
            here.spec.extend(spec.spec.iter().cloned());
            here.req.extend(spec.req.iter().cloned());
            here.level = here.level.or(spec.level);
            for e in &spec.exclusive {
                push_keys(&mut here.exclusive, &e.eval(&ctx)?);
            }
            for e in &spec.shared {
                push_keys(&mut here.shared, &e.eval(&ctx)?);
            }
            if let Some(a) = &spec.apart {
                push_classes(&mut here.apart, &a.eval(&ctx)?, a)?;
            }
            here.summary = here.summary.or_else(|| spec.summary.clone());
            here.note = match (here.note.take(), &spec.note) {
                (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
                (a, b) => a.or_else(|| b.clone()),
            };
            here.pos = here.pos.or_else(|| Some(spec.pos.clone()));
            here.parallel = here
                .parallel
                .or(if spec.parallel { Some(true) } else { None });

            if let Some(u) = &spec.uses {
                out.push(
                    self.expand(&u.node, &s, parent, here, filtered)?
                        .into_iter()
                        .flatten()
                        .collect(),
                );
                continue;
            }
            if let (None, NodeBody::Group(items)) = (&here.name, &spec.body) {
                // An unnamed group only groups: its children take its place.
                let inherited = Site {
                    key: here.key.clone(),
                    when: here.when.clone(),
                    skip_unless: here.skip_unless.clone(),
                    disabled: here.disabled.clone(),
                    data: here.data.clone(),
                    level: here.level,
                    spec: here.spec.clone(),
                    req: here.req.clone(),
                    exclusive: here.exclusive.clone(),
                    shared: here.shared.clone(),
                    apart: here.apart.clone(),
                    apis: here.apis.clone(),
                    ..Site::default()
                };
                let mut units = Vec::new();
                for item in items {
                    units.extend(self.expand(item, &s, parent, inherited.clone(), filtered)?);
                }
                if here.parallel == Some(true) {
                    self.batch(&mut units);
                }
                out.push(units.into_iter().flatten().collect());
                continue;
            }
            out.push(self.node(spec, &s, parent, here, filtered)?);
        }
        Ok(out)
    }

    /// Makes units one concurrent batch, one lane per unit (outside any batch they were in).
    fn batch(&self, units: &mut [Unit<'p>]) {
        if units.iter().filter(|u| !u.is_empty()).count() < 2 {
            return;
        }
        let next = || {
            self.lane_ids.set(self.lane_ids.get() + 1);
            self.lane_ids.get()
        };
        let batch = next();
        for unit in units.iter_mut() {
            let lane = Lane {
                batch,
                lane: next(),
            };
            for n in unit.iter_mut() {
                n.lanes.insert(0, lane);
            }
        }
    }

    /// Builds the planned node for a group or case whose labels are settled.
    fn node(
        &self,
        spec: &'p NodeSpec,
        scope: &Arc<Scope>,
        parent: &Parent<'_>,
        site: Site<'p>,
        filtered: bool,
    ) -> Result<Vec<PlanNode<'p>>, Diagnostic> {
        let name = site.name.clone().unwrap_or_default();
        let mut id_part = name.clone();
        if let Some(k) = &site.key {
            if !k.is_empty() && !name.contains(k.as_str()) {
                id_part = format!("{name}[{k}]");
            }
        }
        let id = if parent.id.is_empty() && parent.path.is_empty() {
            String::new()
        } else if parent.id.is_empty() {
            id_part
        } else {
            format!("{}/{id_part}", parent.id)
        };
        let path = if parent.path.is_empty() {
            name.clone()
        } else {
            format!("{}/{name}", parent.path)
        };
        let name_path = path
            .split_once('/')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default();
        let mut inside = !filtered;
        if filtered && !id.is_empty() {
            match self.filter(&id, &name_path) {
                FilterMatch::Inside => inside = true,
                FilterMatch::Ancestor => {}
                FilterMatch::Out => return Ok(Vec::new()),
            }
        }
        let data = site.data.clone().or_else(|| parent.data.map(String::from));
        let level = site.level.unwrap_or(parent.level);
        let mut disabled = site.disabled.clone();
        if disabled.is_none() {
            disabled = site
                .apis
                .iter()
                .find_map(|a| self.disabled_apis.get(a).cloned());
        }
        let vars = vars_below(scope, parent.scope);
        let kind = match &spec.body {
            NodeBody::Case(case) => PlanKind::Case(case),
            NodeBody::Group(items) => {
                let me = Parent {
                    scope,
                    id: &id,
                    path: &path,
                    data: data.as_deref(),
                    level,
                };
                let mut units = Vec::new();
                for item in items {
                    let child_site = Site {
                        disabled: disabled.clone(),
                        // held by the cases: a group holding it while its cases wait for
                        // slots could block the cases holding it in another class
                        apart: site.apart.clone(),
                        ..Site::default()
                    };
                    units.extend(self.expand(item, scope, &me, child_site, !inside)?);
                }
                let parallel = site.parallel.unwrap_or(false);
                if parallel {
                    self.batch(&mut units);
                }
                let mut children = Vec::new();
                let mut seen: HashMap<String, usize> = HashMap::new();
                for mut c in units.into_iter().flatten() {
                    let n = seen.entry(c.id.clone()).or_insert(0);
                    *n += 1;
                    if *n > 1 {
                        let new_id = format!("{}#{n}", c.id);
                        rename(&mut c, &new_id);
                    }
                    children.push(c);
                }
                if filtered && !inside && children.is_empty() {
                    return Ok(Vec::new());
                }
                PlanKind::Group { children, parallel }
            }
            NodeBody::Use => unreachable!("use sites are expanded before"),
        };
        Ok(vec![PlanNode {
            id,
            name,
            path,
            vars,
            data,
            apis: site.apis,
            spec: dedup(site.spec),
            req: dedup(site.req),
            level,
            source: site.pos.unwrap_or_else(|| spec.pos.clone()),
            summary: site.summary,
            note: site.note,
            params: site.params,
            disabled,
            when: site.when,
            skip_unless: site.skip_unless,
            apart: site.apart,
            shared: dedup(site.shared)
                .into_iter()
                .filter(|k| !site.exclusive.contains(k))
                .collect(),
            exclusive: dedup(site.exclusive),
            lanes: Vec::new(),
            order: 0,
            last: 0,
            kind,
        }])
    }
}

/// Binds the parameters of a `use` in its scope: the `with:` values, then the declared
/// defaults of those not given; a declared parameter without a default must be given or
/// already be defined where the file is used. Returns what the declared ones are bound to.
fn bind_params(
    u: &crate::scenario::Use,
    s: &Arc<Scope>,
    site: &Pos,
) -> Result<Vec<(String, Value)>, Diagnostic> {
    let file = u
        .node
        .pos
        .file
        .as_ref()
        .map(|f| crate::diag::display_path(f))
        .unwrap_or_default();
    let declared = |k: &str| u.node.params.iter().find(|p| p.name == k);
    let typed = |k: &str, val: &Value, at: Pos| -> Result<(), Diagnostic> {
        match declared(k) {
            Some(p) if !p.type_.admits(val) => Err(Diagnostic::new(
                at,
                format!(
                    "parameter `{k}` of {file} is of type `{}`, found {}",
                    p.type_.as_str(),
                    crate::scenario::describe(val)
                ),
            )
            .with_hint(p.doc.clone())),
            _ => Ok(()),
        }
    };
    for (k, v) in &u.with {
        let val = v.eval(&s.context())?;
        typed(k, &val, v.pos())?;
        s.set(k, val);
    }
    let mut bound = Vec::new();
    for p in &u.node.params {
        if !u.with.iter().any(|(k, _)| *k == p.name) {
            match &p.default {
                Some(d) => {
                    let val = d.eval(&s.context())?;
                    typed(&p.name, &val, d.pos())?;
                    s.set(&p.name, val);
                }
                None => match s.lookup(&p.name) {
                    Some(val) if !val.is_undefined() => typed(&p.name, &val, site.clone())?,
                    _ => {
                        return Err(Diagnostic::new(
                            site.clone(),
                            format!("{file} needs parameter `{}`: {}", p.name, p.doc),
                        )
                        .with_hint(format!(
                            "give it in `with:`, or define `{}` where the file is used",
                            p.name
                        )))
                    }
                },
            }
        }
        bound.push((p.name.clone(), s.lookup(&p.name).unwrap_or_default()));
    }
    Ok(bound)
}

/// Adds the keys a rendered `exclusive` or `shared` entry names: a key, or a list of keys; empty ones and
/// none are left out, so a key can be conditional (`"{{ 'tag:' ~ ref if by_tag }}"`).
pub(crate) fn push_keys(out: &mut Vec<String>, v: &Value) {
    if v.is_undefined() || v.is_none() {
        return;
    }
    if v.kind() == minijinja::value::ValueKind::Seq {
        if let Ok(items) = v.try_iter() {
            for item in items {
                push_keys(out, &item);
            }
        }
        return;
    }
    let key = v.to_string();
    if !key.is_empty() {
        out.push(key);
    }
}

/// Adds the `(key, class)` pairs an `apart` mapping renders to; an empty key or class is left
/// out, so a class can be conditional (`"{{ 'write' if by_tag }}"`).
fn push_classes(
    out: &mut Vec<(String, String)>,
    v: &Value,
    at: &crate::template::ValueTmpl,
) -> Result<(), Diagnostic> {
    if v.kind() != minijinja::value::ValueKind::Map {
        return Err(Diagnostic::new(
            at.pos(),
            format!("`apart` maps keys to classes, got {}", v.kind()),
        ));
    }
    if let Ok(keys) = v.try_iter() {
        for key in keys {
            let class = v.get_item(&key).unwrap_or_default();
            if class.is_none() || class.is_undefined() {
                continue;
            }
            let (key, class) = (key.to_string(), class.to_string());
            if !key.is_empty() && !class.is_empty() && !out.contains(&(key.clone(), class.clone()))
            {
                out.push((key, class));
            }
        }
    }
    Ok(())
}

/// Numbers the nodes in pre-order (`order`) and records where each subtree ends (`last`);
/// returns the next free number.
fn number(node: &mut PlanNode<'_>, next: usize) -> usize {
    node.order = next;
    let mut next = next + 1;
    if let PlanKind::Group { children, .. } = &mut node.kind {
        for c in children {
            next = number(c, next);
        }
    }
    node.last = next - 1;
    next
}

/// The variables bound between a group's scope and a node's scope (for_each items, `with`
/// parameters of use sites, `vars`), outer first so inner bindings win.
fn vars_below(scope: &Arc<Scope>, stop: &Arc<Scope>) -> IndexMap<String, Value> {
    let mut frames = Vec::new();
    let mut cur = Some(scope.clone());
    while let Some(f) = cur {
        if Arc::ptr_eq(&f, stop) {
            break;
        }
        frames.push(f.clone());
        cur = f.parent.clone();
    }
    let mut out = IndexMap::new();
    for f in frames.iter().rev() {
        if let Ok(v) = f.vars.lock() {
            for (k, val) in v.iter() {
                out.insert(k.clone(), val.clone());
            }
        }
    }
    out
}

/// The for_each items bound nearest to a scope, for error messages.
fn describe_scope(scope: &Arc<Scope>) -> String {
    let vars = scope.vars.lock().map(|v| v.clone()).unwrap_or_default();
    let parts: Vec<String> = vars
        .iter()
        .take(3)
        .map(|(k, v)| {
            // An item by its name; another mapping or list only by its kind.
            let shown = match v.get_attr("name").ok().filter(|n| !n.is_undefined()) {
                Some(n) => n.to_string(),
                None if matches!(
                    v.kind(),
                    minijinja::value::ValueKind::Map | minijinja::value::ValueKind::Seq
                ) =>
                {
                    crate::scenario::describe(v)
                }
                None => v.to_string(),
            };
            format!("{k}={}", shown.chars().take(60).collect::<String>())
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// Renames a node's id and the ids below it (for repeated sibling names).
fn rename(node: &mut PlanNode<'_>, new_id: &str) {
    let old = std::mem::replace(&mut node.id, new_id.to_string());
    if let PlanKind::Group { children, .. } = &mut node.kind {
        for c in children {
            let rest = c.id.strip_prefix(&old).unwrap_or(&c.id).to_string();
            let id = format!("{new_id}{rest}");
            rename(c, &id);
        }
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.into_iter().filter(|x| seen.insert(x.clone())).collect()
}

/// A readable key for a for_each item: its `name` or `key` attribute, a scalar, or the index.
fn item_key(v: &Value, index: usize) -> String {
    for attr in ["key", "name"] {
        if let Ok(a) = v.get_attr(attr) {
            if !a.is_undefined() && !a.is_none() {
                return a.to_string();
            }
        }
    }
    match v.kind() {
        minijinja::value::ValueKind::String
        | minijinja::value::ValueKind::Number
        | minijinja::value::ValueKind::Bool => v.to_string(),
        _ => index.to_string(),
    }
}
