//! The typo corpus: each file under engine/tests/typos/ (see its README) makes one typo in a
//! small pack shaped like the shipped ones (engine/tests/typos/fixture/); each file under
//! engine/tests/typos/shipped/ makes one in a copy of the shipped packs (the examples of the
//! issue that asked for these checks). Every typo must make `lint` exit 2 naming the mistake
//! at its file:line, and make `run` refuse the pack (exit 2) before anything is sent: no typo
//! may leave a run green with its check gone.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use oci_conform::yaml::{self, Node, Value};

use common::{bin, root, TempDir};

/// One typo of the corpus.
struct Typo {
    name: String,
    file: String,
    find: String,
    replace: String,
    commands: Vec<String>,
    expect: Vec<String>,
    /// Whether `run` must refuse the pack too (false for a case the configuration disables).
    run: bool,
}

fn text(node: &Node, key: &str, name: &str) -> String {
    node.get(key)
        .and_then(Node::as_str)
        .unwrap_or_else(|| panic!("{name}: `{key}` is a string"))
        .to_string()
}

fn texts(node: &Node, key: &str, name: &str) -> Vec<String> {
    match node.get(key).map(|n| &n.value) {
        None => Vec::new(),
        Some(Value::Seq(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .unwrap_or_else(|| panic!("{name}: `{key}` lists strings"))
                    .to_string()
            })
            .collect(),
        Some(_) => panic!("{name}: `{key}` is a list"),
    }
}

fn corpus(dir: &Path, lint: &str) -> Vec<Typo> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the corpus folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let name = f.file_stem().unwrap().to_string_lossy().to_string();
            let node = yaml::load(f).unwrap_or_else(|d| panic!("{d}"));
            let mut commands = texts(&node, "commands", &name);
            if commands.is_empty() {
                commands.push(lint.into());
            }
            Typo {
                file: text(&node, "file", &name),
                find: text(&node, "find", &name),
                replace: text(&node, "replace", &name),
                expect: texts(&node, "expect", &name),
                run: !matches!(node.get("run").map(|n| &n.value), Some(Value::Bool(false))),
                commands,
                name,
            }
        })
        .collect()
}

/// Where a corpus makes its typos.
#[derive(Clone, Copy)]
enum Base {
    /// The small pack of engine/tests/typos/fixture/ (with the repository's schemas).
    Fixture,
    /// The repository's specs/, datasets/ and schemas/.
    Shipped,
}

/// A fresh copy of `base` in a temporary folder.
fn fresh(base: Base) -> TempDir {
    let dir = TempDir::new("typo");
    match base {
        Base::Fixture => common::copy_dir(&root().join("engine/tests/typos/fixture"), &dir.0),
        Base::Shipped => {
            for d in ["specs", "datasets"] {
                common::copy_dir(&root().join(d), &dir.join(d));
            }
        }
    }
    common::copy_dir(&root().join("schemas"), &dir.join("schemas"));
    dir
}

/// Runs the binary in `dir`: exit code and output (stdout then stderr).
fn oci(dir: &Path, args: &str) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir).args(args.split_whitespace());
    for (k, _) in std::env::vars() {
        if k.starts_with("OCI_") {
            cmd.env_remove(k);
        }
    }
    // A run that wrongly gets past loading fails fast against a closed port.
    let out = cmd
        .env("NO_COLOR", "1")
        .env("OCI_REGISTRY", "127.0.0.1:9")
        .env("OCI_TLS", "disabled")
        .output()
        .expect("run oci-conform");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn the_fixture_is_clean_and_runs() {
    let dir = fresh(Base::Fixture);
    let (code, out) = oci(&dir.0, "lint specs/t");
    assert_eq!(code, Some(0), "{out}");
    // Against the closed port of its configuration every request fails: the run goes on to the
    // end (FAIL, exit 4), which is what a typo must prevent.
    let (code, out) = oci(&dir.0, "run --specs specs --spec-version t");
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("Total.........................:         13"),
        "{out}"
    );
}

#[test]
fn every_typo_is_an_error_at_its_place_before_anything_is_sent() {
    let typos = corpus(&root().join("engine/tests/typos"), "lint specs/t");
    assert!(typos.len() >= 30, "the corpus has {} typos", typos.len());
    // The kinds span the four kinds of input.
    let area = |t: &Typo| match t.file.as_str() {
        "oci-conformance.yaml" => "config",
        f if f.starts_with("datasets/") => "dataset",
        f if f.ends_with("pack.yaml") => "pack",
        _ => "scenario",
    };
    for a in ["config", "dataset", "pack", "scenario"] {
        assert!(typos.iter().any(|t| area(t) == a), "no {a} typo");
    }
    let problems = check_all(&typos, Base::Fixture, "run --specs specs --spec-version t");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn the_issue_examples_are_errors_in_the_shipped_pack() {
    let typos = corpus(&root().join("engine/tests/typos/shipped"), "lint specs/1.1");
    assert!(
        typos.len() >= 10,
        "the shipped corpus has {} typos",
        typos.len()
    );
    let problems = check_all(
        &typos,
        Base::Shipped,
        "run --specs specs --spec-version 1.1",
    );
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Checks every typo, a few at a time.
fn check_all(typos: &[Typo], base: Base, run: &str) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let chunks: Vec<&[Typo]> = typos.chunks(typos.len().div_ceil(threads)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|t| check(t, base, run))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    })
}

/// What is wrong with how the binary takes one typo, if anything.
fn check(t: &Typo, base: Base, run: &str) -> Option<String> {
    let name = &t.name;
    let located = t.expect.iter().any(|f| {
        let mut parts = f.rsplitn(3, ':');
        let col = parts.next().unwrap_or_default();
        let line = parts.next().unwrap_or_default();
        let file = parts.next().unwrap_or_default();
        file.ends_with(".yaml") && line.parse::<u32>().is_ok() && col.parse::<u32>().is_ok()
    });
    if !located {
        return Some(format!("{name}: `expect` names no file:line:col"));
    }
    let dir = fresh(base);
    let path = dir.join(&t.file);
    let original = std::fs::read_to_string(&path).unwrap_or_default();
    if original.matches(&t.find).count() != 1 {
        return Some(format!("{name}: `find` is not in {} exactly once", t.file));
    }
    std::fs::write(&path, original.replacen(&t.find, &t.replace, 1)).unwrap();
    let mut commands = t.commands.clone();
    if t.run {
        commands.push(run.to_string());
    }
    for (i, c) in commands.iter().enumerate() {
        let (code, out) = oci(&dir.0, c);
        if code != Some(2) {
            return Some(format!("{name}: `{c}` exited {code:?}, not 2:\n{out}"));
        }
        if out.contains("panicked") {
            return Some(format!("{name}: `{c}` panicked:\n{out}"));
        }
        if out.contains("Results written") || out.contains("tests · seed") {
            return Some(format!("{name}: `{c}` started the run:\n{out}"));
        }
        if i == 0 {
            for f in &t.expect {
                if !out.contains(f.as_str()) {
                    return Some(format!("{name}: `{f}` not in the output of `{c}`:\n{out}"));
                }
            }
        }
    }
    None
}
