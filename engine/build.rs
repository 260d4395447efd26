//! Embeds the packs: every file under the repository's `specs/`, `datasets/` and `schemas/`
//! becomes an entry of a table compiled into the binary (`$OUT_DIR/embedded_packs.rs`, read by
//! `src/source.rs`), so an installed binary carries the packs it was built with.
//!
//! The three folders sit beside `engine/`, so the crate builds only inside the repository (a
//! checkout, `cargo install --path engine`, `cargo install --git …`). A crate packaged on its
//! own has no packs to carry: the build stops and says so rather than making a binary that
//! cannot run.

use std::path::{Path, PathBuf};

/// The folders embedded, relative to the repository root.
const TREES: [&str; 3] = ["specs", "datasets", "schemas"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("engine/ has a parent")
        .to_path_buf();
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    for tree in TREES {
        let dir = root.join(tree);
        if !dir.is_dir() {
            eprintln!(
                "error: {} is missing.\n\
                 oci-conform embeds the packs ({}) from the repository it is built in; build it \
                 from a checkout: `cargo install --locked --path engine` or \
                 `cargo install --locked --git <repository url> oci-conform`.",
                dir.display(),
                TREES.map(|t| format!("{t}/")).join(", ")
            );
            std::process::exit(1);
        }
        // Cargo scans a folder named here for changes in any file below it, so adding,
        // editing or removing a pack file rebuilds the table.
        println!("cargo:rerun-if-changed={}", dir.display());
        walk(&root, &dir, &mut files);
    }
    files.sort();
    let mut out = String::from(
        "/// Every embedded file as (path relative to the repository root, bytes), sorted by path.\n\
         pub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        out.push_str(&format!("    ({rel:?}, include_bytes!({abs:?})),\n"));
    }
    out.push_str("];\n");
    let target =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("embedded_packs.rs");
    // Written only when it changes, so a rerun that finds nothing new rebuilds nothing.
    if std::fs::read_to_string(&target).ok().as_deref() != Some(out.as_str()) {
        std::fs::write(&target, out).expect("write embedded_packs.rs");
    }
}

/// Collects the files below `dir` as (path relative to `root` with `/` separators, absolute
/// path). Hidden files (editor swap files, `.DS_Store`) are left out.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            panic!("{}: file names must be UTF-8", entry.path().display());
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("below the root")
                .components()
                .map(|c| c.as_os_str().to_str().expect("UTF-8 checked above"))
                .collect::<Vec<_>>()
                .join("/");
            let abs = path.to_str().expect("UTF-8 checked above").to_string();
            out.push((rel, abs));
        }
    }
}
