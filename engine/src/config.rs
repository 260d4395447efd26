//! Configuration: the official suite's `oci-conformance.yaml` and `OCI_*` variables.
//!
//! Layers, lowest first: engine defaults → the pack's per-version defaults → legacy variables
//! → the YAML file (`$OCI_CONFIGURATION`, else `./oci-conformance.yaml`) → `OCI_*` variables →
//! command-line flags. Layers are merged as JSON trees, then read into [`Config`]. Every key
//! has one row in [`KEYS`], which drives the variable names, parsing and the documentation.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as J};

use crate::diag::{did_you_mean, Diagnostic, Pos};

/// How a key's text value is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Str,
    /// Boolean, Go `strconv.ParseBool` spellings.
    Bool,
    /// Space-separated list.
    List,
    /// Non-negative integer.
    Int,
    /// One of enabled / insecure / disabled.
    Tls,
}

/// One configuration key: its YAML path, variable name, kind and description.
pub struct Key {
    /// Dotted YAML path, e.g. `apis.blobs.digestHeader`.
    pub path: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// Value kind.
    pub kind: Kind,
    /// What it does.
    pub help: &'static str,
}

macro_rules! keys {
    ($($path:literal, $env:literal, $kind:ident, $help:literal;)*) => {
        /// Every configuration key, in documentation order.
        pub const KEYS: &[Key] = &[$(Key { path: $path, env: $env, kind: Kind::$kind, help: $help }),*];
    };
}

keys! {
    "registry", "OCI_REGISTRY", Str, "registry host[:port] to test";
    "tls", "OCI_TLS", Tls, "enabled (verify certificates), insecure (accept any certificate) or disabled (plain HTTP)";
    "repo1", "OCI_REPO1", Str, "repository the tests push to";
    "repo2", "OCI_REPO2", Str, "second repository (mount source)";
    "username", "OCI_USERNAME", Str, "registry user (used only with a password)";
    "password", "OCI_PASSWORD", Str, "registry password or token; never printed";
    "cacheAuth", "OCI_CACHE_AUTH", Bool, "reuse bearer tokens per scope";
    "logging", "OCI_LOG", Str, "log level: debug, info, warn, error";
    "filterTest", "OCI_FILTER_TEST", Str, "run only tests whose id or name starts with this (or ancestors of it)";
    "resultsDir", "OCI_RESULTS_DIR", Str, "where results.yaml, junit.xml and report.html are written";
    "version", "OCI_VERSION", Str, "spec version: 1.0, 1.1 (stable) or dev (1.1+dev)";
    "apis.ping", "OCI_API_PING", Bool, "GET /v2/";
    "apis.pull", "OCI_API_PULL", Bool, "manifest and blob GET/HEAD";
    "apis.push", "OCI_API_PUSH", Bool, "blob uploads and manifest PUT";
    "apis.blobs.atomic", "OCI_API_BLOBS_ATOMIC", Bool, "a deleted blob is gone at once";
    "apis.blobs.delete", "OCI_API_BLOBS_DELETE", Bool, "blob DELETE";
    "apis.blobs.digestHeader", "OCI_API_BLOBS_DIGEST_HEADER", Bool, "require Docker-Content-Digest on blob GET/HEAD";
    "apis.blobs.mountAnonymous", "OCI_API_BLOBS_MOUNT_ANONYMOUS", Bool, "mount without `from`";
    "apis.blobs.uploadCancel", "OCI_API_BLOBS_UPLOAD_CANCEL", Bool, "DELETE on an upload session";
    "apis.manifests.atomic", "OCI_API_MANIFESTS_ATOMIC", Bool, "a deleted manifest is gone at once";
    "apis.manifests.delete", "OCI_API_MANIFESTS_DELETE", Bool, "manifest DELETE by digest";
    "apis.manifests.digestHeader", "OCI_API_MANIFESTS_DIGEST_HEADER", Bool, "require Docker-Content-Digest on manifest GET/HEAD/PUT";
    "apis.manifests.tagParam", "OCI_API_MANIFESTS_TAG_PARAM", Bool, "`?tag=` on manifest PUT by digest";
    "apis.tags.atomic", "OCI_API_TAGS_ATOMIC", Bool, "a deleted tag is gone at once";
    "apis.tags.delete", "OCI_API_TAGS_DELETE", Bool, "tag DELETE";
    "apis.tags.list", "OCI_API_TAGS_LIST", Bool, "GET tags/list";
    "apis.referrer", "OCI_API_REFERRER", Bool, "referrers API";
    "data.image", "OCI_DATA_IMAGE", Bool, "image data sets (turning it off disables every data set)";
    "data.index", "OCI_DATA_INDEX", Bool, "index data sets";
    "data.indexList", "OCI_DATA_INDEX_LIST", Bool, "nested index";
    "data.sparse", "OCI_DATA_SPARSE", Bool, "manifests referencing blobs that were not pushed";
    "data.artifact", "OCI_DATA_ARTIFACT", Bool, "artifacts";
    "data.subject", "OCI_DATA_SUBJECT", Bool, "artifacts with a subject";
    "data.subjectMissing", "OCI_DATA_SUBJECT_MISSING", Bool, "subject that was never pushed";
    "data.artifactList", "OCI_DATA_ARTIFACT_LIST", Bool, "index of artifacts";
    "data.subjectList", "OCI_DATA_SUBJECT_LIST", Bool, "index with a subject";
    "data.dataField", "OCI_DATA_DATA_FIELD", Bool, "descriptors with `data`";
    "data.nondistributable", "OCI_DATA_NONDISTRIBUTABLE", Bool, "non-distributable layers";
    "data.customFields", "OCI_DATA_CUSTOM_FIELDS", Bool, "unknown JSON fields";
    "data.noLayers", "OCI_DATA_NO_LAYERS", Bool, "image without layers";
    "data.emptyBlob", "OCI_DATA_EMPTY_BLOB", Bool, "zero-byte blob";
    "data.sha512", "OCI_DATA_SHA512", Bool, "sha512 digests";
    "roData.tags", "OCI_RO_DATA_TAGS", List, "read-only mode: existing tags to pull";
    "roData.manifests", "OCI_RO_DATA_MANIFESTS", List, "read-only mode: existing manifest digests";
    "roData.blobs", "OCI_RO_DATA_BLOBS", List, "read-only mode: existing blob digests";
    "roData.referrers", "OCI_RO_DATA_REFERRERS", List, "read-only mode: subjects to list referrers of";
    "requestTimeout", "OCI_REQUEST_TIMEOUT", Int, "seconds one request may take (oci-conform)";
    "seed", "OCI_SEED", Int, "content seed; the same seed reproduces a run (oci-conform)";
    "parallel", "OCI_PARALLEL", Int, "tests that may run at once, each with its own connection; 1 runs them one after the other (oci-conform)";
    "tlsCAFile", "OCI_TLS_CA_FILE", Str, "extra CA certificate (PEM) trusted with tls=enabled (oci-conform)";
    "largeBlobSize", "OCI_LARGE_BLOB_SIZE", Int, "bytes of the large blob, generated while it is pushed and checked while it is pulled; 0 = no large-blob tests (oci-conform)";
}

/// The final configuration of a run.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Registry host[:port].
    pub registry: String,
    /// TLS mode.
    pub tls: Tls,
    /// Main repository.
    pub repo1: String,
    /// Second repository.
    pub repo2: String,
    /// User name.
    pub username: String,
    /// Password (never printed).
    pub password: String,
    /// Token cache per scope.
    pub cache_auth: bool,
    /// Log level.
    pub logging: String,
    /// Test filter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter_test: String,
    /// Results directory.
    pub results_dir: String,
    /// Spec version as selected.
    pub version: String,
    /// API toggles.
    pub apis: J,
    /// Data toggles.
    pub data: J,
    /// Read-only inputs.
    pub ro_data: RoData,
    /// Seconds per request.
    pub request_timeout: u64,
    /// Content seed (chosen at random when absent).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Parallelism.
    pub parallel: u64,
    /// Extra CA file (the key is `tlsCAFile`, not camelCase's `tlsCaFile`).
    #[serde(default, rename = "tlsCAFile", skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
    /// Size of the large-blob data set.
    pub large_blob_size: u64,
}

/// TLS modes.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// HTTPS, certificates verified.
    Enabled,
    /// HTTPS, any certificate accepted.
    Insecure,
    /// Plain HTTP.
    Disabled,
}

/// Read-only mode inputs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
pub struct RoData {
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Manifest digests.
    #[serde(default)]
    pub manifests: Vec<String>,
    /// Blob digests.
    #[serde(default)]
    pub blobs: Vec<String>,
    /// Subjects for referrers.
    #[serde(default)]
    pub referrers: Vec<String>,
}

impl Config {
    /// The registry base URL (`http://` or `https://`).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls == Tls::Disabled {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.registry)
    }

    /// The configuration as JSON with credentials replaced by `***`, as results show it.
    pub fn redacted(&self) -> J {
        let mut v = serde_json::to_value(self).unwrap_or(J::Null);
        for key in ["username", "password"] {
            if v[key].as_str().is_some_and(|s| !s.is_empty()) {
                v[key] = J::from("***");
            }
        }
        v
    }

    /// A boolean toggle by dotted path (`apis.pull`), false when missing.
    pub fn flag(&self, path: &str) -> bool {
        let v = serde_json::to_value(self).unwrap_or(J::Null);
        lookup(&v, path).and_then(J::as_bool).unwrap_or(false)
    }
}

fn lookup<'a>(v: &'a J, path: &str) -> Option<&'a J> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// Engine defaults for every key; a pack adds its per-version defaults on top.
pub fn engine_defaults() -> J {
    json!({
        "registry": "localhost:5000",
        "tls": "enabled",
        "repo1": "conformance/repo1",
        "repo2": "conformance/repo2",
        "username": "",
        "password": "",
        "cacheAuth": true,
        "logging": "warn",
        "resultsDir": "./results",
        "version": "",
        "apis": {
            "ping": true, "pull": true, "push": true,
            "blobs": {"atomic": true, "delete": true, "digestHeader": false, "mountAnonymous": true, "uploadCancel": false},
            "manifests": {"atomic": true, "delete": true, "digestHeader": false, "tagParam": false},
            "tags": {"atomic": true, "delete": true, "list": true},
            "referrer": true
        },
        "data": {
            "image": true, "index": true, "indexList": true, "sparse": false, "artifact": true,
            "subject": true, "subjectMissing": true, "artifactList": true, "subjectList": true,
            "dataField": true, "nondistributable": true, "customFields": true, "noLayers": true,
            "emptyBlob": true, "sha512": true
        },
        "roData": {"tags": [], "manifests": [], "blobs": [], "referrers": []},
        "requestTimeout": 30,
        // Verdicts do not depend on it (see schedule.rs); 8 cuts a run against a distant
        // registry about six times, with as many connections as a docker client uses.
        "parallel": 8,
        "largeBlobSize": 0
    })
}

/// Where configuration values come from before the pack is known.
#[derive(Debug, Default)]
pub struct Sources {
    /// Legacy variables, converted.
    pub legacy: J,
    /// The YAML file's values.
    pub file: J,
    /// `OCI_*` variables.
    pub env: J,
    /// Command-line overrides.
    pub flags: J,
    /// The YAML file used, if any.
    pub file_path: Option<PathBuf>,
    /// Deprecation warnings to print.
    pub warnings: Vec<String>,
}

impl Sources {
    /// The version string that selects the pack (env, then file, then flags win).
    pub fn version(&self) -> String {
        for layer in [&self.flags, &self.env, &self.file] {
            if let Some(v) = layer.get("version").and_then(J::as_str) {
                if !v.is_empty() {
                    return v.to_string();
                }
            }
        }
        String::new()
    }
}

/// Reads the YAML file, the `OCI_*` and legacy variables from `env`.
pub fn gather(env: &IndexMap<String, String>, cwd: &Path, flags: J) -> Result<Sources, Diagnostic> {
    let mut s = Sources {
        flags,
        ..Sources::default()
    };
    let path = match env.get("OCI_CONFIGURATION").filter(|p| !p.is_empty()) {
        Some(p) => {
            let p = cwd.join(p);
            if !p.exists() {
                return Err(Diagnostic::new(
                    Pos::file(&p),
                    "OCI_CONFIGURATION names a file that does not exist",
                ));
            }
            Some(p)
        }
        None => Some(cwd.join("oci-conformance.yaml")).filter(|p| p.exists()),
    };
    if let Some(p) = &path {
        s.file = read_file(p)?;
        s.file_path = Some(p.clone());
    }
    s.env = from_env(env)?;
    let (legacy, warnings) = legacy_env(env)?;
    s.legacy = legacy;
    s.warnings = warnings;
    Ok(s)
}

/// Builds the final configuration from the layers and the pack's defaults.
pub fn resolve(
    sources: &Sources,
    pack_defaults: &J,
    pack_version: &str,
) -> Result<Config, Diagnostic> {
    let mut merged = engine_defaults();
    for layer in [
        pack_defaults,
        &sources.legacy,
        &sources.file,
        &sources.env,
        &sources.flags,
    ] {
        merge(&mut merged, layer);
    }
    merged["version"] = J::from(pack_version);
    let config: Config = serde_json::from_value(merged)
        .map_err(|e| Diagnostic::new(Pos::default(), format!("invalid configuration: {e}")))?;
    if config.registry.trim().is_empty() {
        return Err(Diagnostic::new(Pos::default(), "`registry` is empty")
            .with_hint("set OCI_REGISTRY=host:port"));
    }
    if config.request_timeout == 0 {
        return Err(Diagnostic::new(
            Pos::default(),
            "`requestTimeout` must be at least 1 second",
        ));
    }
    Ok(config)
}

/// Deep-merges `over` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut J, over: &J) {
    match (base, over) {
        (J::Object(b), J::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(J::Null), v);
            }
        }
        (b, o) if !o.is_null() => *b = o.clone(),
        _ => {}
    }
}

fn set_path(root: &mut J, path: &str, value: J) {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let obj = cur.as_object_mut().expect("object");
        if i == parts.len() - 1 {
            obj.insert((*p).to_string(), value);
            return;
        }
        cur = obj.entry((*p).to_string()).or_insert_with(|| json!({}));
    }
}

/// Parses a text value of the given kind; `origin` names where it came from for errors.
pub fn parse_value(kind: Kind, text: &str, origin: &str) -> Result<J, String> {
    match kind {
        Kind::Str => Ok(J::from(text)),
        Kind::Bool => match text {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(J::from(true)),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(J::from(false)),
            _ => Err(format!(
                "{origin}: `{text}` is not a boolean (use true or false)"
            )),
        },
        Kind::List => Ok(J::from(text.split_whitespace().collect::<Vec<_>>())),
        Kind::Int => text
            .trim()
            .parse::<u64>()
            .map(J::from)
            .map_err(|_| format!("{origin}: `{text}` is not a non-negative integer")),

        Kind::Tls => match text.to_lowercase().as_str() {
            "enabled" | "insecure" | "disabled" => Ok(J::from(text.to_lowercase())),
            _ => Err(format!(
                "{origin}: `{text}` is not a TLS mode (use enabled, insecure or disabled)"
            )),
        },
    }
}

/// Integer keys with a lower bound above 0 (a timeout of 0 seconds means nothing).
const MINIMUM: &[(&str, u64)] = &[("requestTimeout", 1)];

/// Checks a parsed value against its key's lower bound; `origin` names where it came from.
fn check_minimum(path: &str, value: &J, origin: &str) -> Result<(), String> {
    match (MINIMUM.iter().find(|(p, _)| *p == path), value.as_u64()) {
        (Some((_, min)), Some(n)) if n < *min => {
            Err(format!("{origin}: `{n}` is below the minimum of {min}"))
        }
        _ => Ok(()),
    }
}

/// The `OCI_*` variables as a JSON layer (empty values count as unset).
pub fn from_env(env: &IndexMap<String, String>) -> Result<J, Diagnostic> {
    let mut out = json!({});
    for key in KEYS {
        if let Some(v) = env.get(key.env).filter(|v| !v.is_empty()) {
            let parsed = parse_value(key.kind, v, key.env)
                .and_then(|p| check_minimum(key.path, &p, key.env).map(|()| p))
                .map_err(|m| Diagnostic::new(Pos::default(), m))?;
            set_path(&mut out, key.path, parsed);
        }
    }
    Ok(out)
}

/// Deprecated variables of the old suite, converted the way the official suite converts them.
fn legacy_env(env: &IndexMap<String, String>) -> Result<(J, Vec<String>), Diagnostic> {
    let mut out = json!({});
    let mut warnings = Vec::new();
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    let mut warn =
        |old: &str, new: &str| warnings.push(format!("WARNING: {old} is deprecated, use {new}"));
    let bool_of = |k: &str, v: &str| {
        parse_value(Kind::Bool, v, k).map_err(|m| Diagnostic::new(Pos::default(), m))
    };
    if let Some(v) = get("OCI_ROOT_URL") {
        warn("OCI_ROOT_URL", "OCI_REGISTRY and OCI_TLS");
        let v = v.to_lowercase();
        let v = v.trim_end_matches('/');
        let (scheme, host) = v.split_once("://").unwrap_or(("https", v));
        set_path(&mut out, "registry", J::from(host));
        set_path(
            &mut out,
            "tls",
            J::from(if scheme == "http" {
                "disabled"
            } else {
                "enabled"
            }),
        );
    }
    if let Some(v) = get("OCI_NAMESPACE") {
        warn("OCI_NAMESPACE", "OCI_REPO1");
        set_path(
            &mut out,
            "repo1",
            J::from(v.to_lowercase().trim_end_matches('/')),
        );
    }
    if let Some(v) = get("OCI_CROSSMOUNT_NAMESPACE") {
        warn("OCI_CROSSMOUNT_NAMESPACE", "OCI_REPO2");
        set_path(
            &mut out,
            "repo2",
            J::from(v.to_lowercase().trim_end_matches('/')),
        );
    }
    if let Some(v) = get("OCI_TEST_PULL") {
        warn("OCI_TEST_PULL", "OCI_API_PULL");
        set_path(&mut out, "apis.pull", bool_of("OCI_TEST_PULL", &v)?);
    }
    if let Some(v) = get("OCI_TEST_PUSH") {
        warn("OCI_TEST_PUSH", "OCI_API_PUSH");
        set_path(&mut out, "apis.push", bool_of("OCI_TEST_PUSH", &v)?);
    }
    if let Some(v) = get("OCI_TEST_CONTENT_DISCOVERY") {
        warn(
            "OCI_TEST_CONTENT_DISCOVERY",
            "OCI_API_TAGS_LIST and OCI_API_REFERRER",
        );
        let b = bool_of("OCI_TEST_CONTENT_DISCOVERY", &v)?;
        set_path(&mut out, "apis.tags.list", b.clone());
        set_path(&mut out, "apis.referrer", b);
    }
    if let Some(v) = get("OCI_TEST_CONTENT_MANAGEMENT") {
        warn(
            "OCI_TEST_CONTENT_MANAGEMENT",
            "OCI_API_TAGS_DELETE, OCI_API_MANIFESTS_DELETE and OCI_API_BLOBS_DELETE",
        );
        let b = bool_of("OCI_TEST_CONTENT_MANAGEMENT", &v)?;
        for p in [
            "apis.tags.delete",
            "apis.manifests.delete",
            "apis.blobs.delete",
        ] {
            set_path(&mut out, p, b.clone());
        }
    }
    if let Some(v) = get("OCI_DEBUG") {
        warn("OCI_DEBUG", "OCI_LOG=debug");
        if bool_of("OCI_DEBUG", &v)?.as_bool() == Some(true) {
            set_path(&mut out, "logging", J::from("debug"));
        }
    }
    for (var, path) in [
        ("OCI_TAG_NAME", "roData.tags"),
        ("OCI_MANIFEST_DIGEST", "roData.manifests"),
        ("OCI_BLOB_DIGEST", "roData.blobs"),
    ] {
        if let Some(v) = get(var) {
            warn(
                var,
                &format!(
                    "OCI_RO_DATA_{}",
                    path.rsplit('.').next().unwrap_or_default().to_uppercase()
                ),
            );
            set_path(
                &mut out,
                path,
                J::from(v.split_whitespace().collect::<Vec<_>>()),
            );
        }
    }
    Ok((out, warnings))
}

/// Reads `oci-conformance.yaml`, rejecting unknown keys with a suggestion and bad values with
/// their line.
fn read_file(path: &Path) -> Result<J, Diagnostic> {
    let node = crate::yaml::load(path)?;
    let mut out = json!({});
    walk_file(&node, "", &mut out)?;
    Ok(out)
}

fn walk_file(node: &crate::yaml::Node, prefix: &str, out: &mut J) -> Result<(), Diagnostic> {
    use crate::yaml::Value as Y;
    let Y::Map(entries) = &node.value else {
        if prefix.is_empty() && matches!(node.value, Y::Null) {
            return Ok(());
        }
        return Err(Diagnostic::new(
            node.pos.clone(),
            format!("expected a mapping, found {}", node.value.kind()),
        ));
    };
    for (k, v) in entries {
        let name = k.scalar_text();
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let Some(key) = KEYS.iter().find(|key| key.path == path) {
            let value = match (&v.value, key.kind) {
                (Y::Null, _) => continue,
                (Y::Seq(items), Kind::List) => J::from(
                    items
                        .iter()
                        .map(crate::yaml::Node::scalar_text)
                        .collect::<Vec<_>>(),
                ),
                (Y::Bool(b), Kind::Bool) => J::from(*b),
                (Y::Int(i), Kind::Int) if *i >= 0 => J::from(*i),
                (Y::Seq(_) | Y::Map(_), _) => {
                    return Err(Diagnostic::new(
                        v.pos.clone(),
                        format!(
                            "`{path}` expects {}, found {}",
                            kind_name(key.kind),
                            v.value.kind()
                        ),
                    ))
                }
                _ => parse_value(key.kind, &v.scalar_text(), &format!("`{path}`"))
                    .map_err(|m| Diagnostic::new(v.pos.clone(), m))?,
            };
            check_minimum(&path, &value, &format!("`{path}`"))
                .map_err(|m| Diagnostic::new(v.pos.clone(), m))?;
            set_path(out, &path, value);
        } else if KEYS
            .iter()
            .any(|key| key.path.starts_with(&format!("{path}.")))
        {
            walk_file(v, &path, out)?;
        } else if path == "commit" || path == "legacy" {
            // Written by the official suite into its own results; harmless on input.
        } else {
            let siblings: Vec<&str> = KEYS
                .iter()
                .filter_map(|key| {
                    let rest = if prefix.is_empty() {
                        Some(key.path)
                    } else {
                        key.path.strip_prefix(&format!("{prefix}."))
                    };
                    rest.map(|r| r.split('.').next().unwrap_or(r))
                })
                .collect();
            let mut d =
                Diagnostic::new(k.pos.clone(), format!("unknown configuration key `{path}`"));
            d = match did_you_mean(&name, siblings.iter().copied()) {
                Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                None => {
                    let mut uniq = siblings.clone();
                    uniq.dedup();
                    d.with_hint(format!("known keys here: {}", uniq.join(", ")))
                }
            };
            return Err(d);
        }
    }
    Ok(())
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Str => "a string",
        Kind::Bool => "true or false",
        Kind::List => "a list",
        Kind::Int => "an integer",
        Kind::Tls => "enabled, insecure or disabled",
    }
}

/// Parses `--set key=value` overrides into a JSON layer.
pub fn parse_overrides(items: &[String]) -> Result<J, Diagnostic> {
    let mut out = json!({});
    for item in items {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            Diagnostic::new(
                Pos::default(),
                format!("`--set {item}`: expected key=value"),
            )
        })?;
        let key = KEYS
            .iter()
            .find(|key| key.path == k || key.env == k)
            .ok_or_else(|| {
                let mut d =
                    Diagnostic::new(Pos::default(), format!("`--set {item}`: unknown key `{k}`"));
                if let Some(s) = did_you_mean(k, KEYS.iter().map(|key| key.path)) {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                }
                d
            })?;
        let origin = format!("--set {k}");
        let v = parse_value(key.kind, v, &origin)
            .and_then(|p| check_minimum(key.path, &p, &origin).map(|()| p))
            .map_err(|m| Diagnostic::new(Pos::default(), m))?;
        set_path(&mut out, key.path, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oci-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn precedence_env_over_file_over_legacy_over_pack_defaults() {
        let dir = tmpdir("prec");
        std::fs::write(
            dir.join("oci-conformance.yaml"),
            "registry: file:1\nrepo1: file/repo\napis:\n  pull: false\n",
        )
        .unwrap();
        let e = env(&[
            ("OCI_REGISTRY", "env:2"),
            ("OCI_NAMESPACE", "Legacy/Repo/"),
            ("OCI_CROSSMOUNT_NAMESPACE", "legacy/two"),
        ]);
        let s = gather(&e, &dir, json!({})).unwrap();
        let c = resolve(
            &s,
            &json!({"apis": {"referrer": false, "pull": true}}),
            "1.0",
        )
        .unwrap();
        assert_eq!(c.registry, "env:2");
        assert_eq!(c.repo1, "file/repo");
        assert_eq!(c.repo2, "legacy/two");
        assert!(!c.flag("apis.pull"), "file beats pack defaults");
        assert!(!c.flag("apis.referrer"), "pack default applies");
        assert!(c.flag("apis.push"), "engine default applies");
        assert_eq!(c.version, "1.0");
        assert!(s.warnings.iter().any(|w| w.contains("OCI_NAMESPACE")));
    }

    #[test]
    fn flags_beat_env_and_empty_env_is_unset() {
        let s = gather(
            &env(&[("OCI_REPO1", ""), ("OCI_TLS", "DISABLED")]),
            &tmpdir("flags"),
            json!({"registry": "flag:3"}),
        )
        .unwrap();
        let c = resolve(&s, &json!({}), "1.1").unwrap();
        assert_eq!(c.registry, "flag:3");
        assert_eq!(c.repo1, "conformance/repo1");
        assert_eq!(c.tls, Tls::Disabled);
        assert_eq!(c.base_url(), "http://flag:3");
    }

    #[test]
    fn bad_values_are_named() {
        let e = gather(
            &env(&[("OCI_API_PULL", "perhaps")]),
            &tmpdir("bad1"),
            json!({}),
        )
        .unwrap_err();
        assert!(
            e.message.contains("OCI_API_PULL") && e.message.contains("perhaps"),
            "{}",
            e.message
        );
        let e = gather(&env(&[("OCI_TLS", "maybe")]), &tmpdir("bad2"), json!({})).unwrap_err();
        assert!(e.message.contains("OCI_TLS"), "{}", e.message);
    }

    #[test]
    fn unknown_file_keys_suggest() {
        let dir = tmpdir("unknown");
        std::fs::write(
            dir.join("oci-conformance.yaml"),
            "registry: x\napis:\n  blobs:\n    atomik: true\n",
        )
        .unwrap();
        let e = gather(&env(&[]), &dir, json!({})).unwrap_err();
        assert_eq!(
            e.message,
            "unknown configuration key `apis.blobs.atomic`".replace("atomic", "atomik")
        );
        assert_eq!(e.pos.line, 4);
        assert_eq!(e.hint.as_deref(), Some("did you mean `atomic`?"));
        std::fs::write(dir.join("oci-conformance.yaml"), "apis:\n  pull: perhaps\n").unwrap();
        let e = gather(&env(&[]), &dir, json!({})).unwrap_err();
        assert_eq!(e.pos.line, 2);
    }

    #[test]
    fn missing_configuration_file_is_an_error() {
        let e = gather(
            &env(&[("OCI_CONFIGURATION", "nope.yaml")]),
            &tmpdir("missing"),
            json!({}),
        )
        .unwrap_err();
        assert!(e.message.contains("does not exist"));
    }

    #[test]
    fn redaction_hides_credentials() {
        let s = gather(
            &env(&[("OCI_USERNAME", "u"), ("OCI_PASSWORD", "hunter2")]),
            &tmpdir("red"),
            json!({}),
        )
        .unwrap();
        let c = resolve(&s, &json!({}), "1.1").unwrap();
        let r = c.redacted().to_string();
        assert!(!r.contains("hunter2") && r.contains("***"), "{r}");
    }

    #[test]
    fn overrides_parse_by_path_or_env_name() {
        let o =
            parse_overrides(&["apis.pull=false".into(), "OCI_DATA_SPARSE=true".into()]).unwrap();
        assert_eq!(
            o,
            json!({"apis": {"pull": false}, "data": {"sparse": true}})
        );
        let e = parse_overrides(&["apis.pul=false".into()]).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `apis.pull`?"));
    }
}
