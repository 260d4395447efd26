//! `oci-conform lint`: loads packs and files the way `run` does, without a registry, and
//! reports every problem with its position — YAML syntax, unknown keys, wrong types, template
//! syntax, `use` paths, and anything planning with the default configuration runs into.

use std::path::Path;

use crate::config;
use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::pack;
use crate::plan;

/// Checks a pack folder or a single scenario/dataset file.
pub fn check(target: &Path) -> Diagnostics {
    if target.is_dir() || target.file_name().is_some_and(|n| n == "pack.yaml") {
        let dir = if target.is_dir() {
            target.to_path_buf()
        } else {
            target.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        return check_pack(&dir);
    }
    let mut loader = pack::Loader::default();
    let from = Pos::file(target);
    let is_dataset = target.components().any(|c| c.as_os_str() == "datasets");
    let result = if is_dataset {
        loader.dataset_file(target, &from).map(|_| ())
    } else {
        loader.node_file(target, &from).map(|_| ())
    };
    let mut diags = loader.diags;
    if let Err(d) = result {
        if !d.message.starts_with('\u{0}') {
            diags.push(d);
        }
    }
    diags
}

fn check_pack(dir: &Path) -> Diagnostics {
    let pack = match pack::load(dir) {
        Ok(p) => p,
        Err(d) => return d,
    };
    let mut diags = Diagnostics::default();
    let sources = config::Sources::default();
    match config::resolve(&sources, &pack.defaults, &pack.spec_version) {
        Ok(cfg) => {
            if let Err(d) = plan::build(&pack, &cfg, &[], 1) {
                diags.push(d);
            }
        }
        Err(d) => diags.push(Diagnostic::new(
            Pos::file(&dir.join("pack.yaml")),
            format!("defaults: {}", d.message),
        )),
    }
    diags
}
