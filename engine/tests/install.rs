//! The binary carries its packs: copied alone into an empty folder outside the checkout it runs
//! the full default pack against docker-registry and every test gets the status (and the
//! `file:line`s) of a run from the checkout's folder; `packs export` writes files that lint
//! clean and plan exactly like the embedded packs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::Registry;
use common::{bin, root, text, TempDir};

/// The binary alone in a fresh folder outside the checkout, and that folder.
fn installed() -> (TempDir, PathBuf) {
    let dir = TempDir::new("installed");
    let copy = dir.join("oci-conform");
    std::fs::copy(bin(), &copy).expect("copy the binary");
    assert!(
        !dir.0.starts_with(root()),
        "the copy must be outside the checkout"
    );
    (dir, copy)
}

/// Runs `exe ARGS` in `cwd` with a clean `OCI_*` environment plus `env` (no NO_COLOR).
fn run_in(exe: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.current_dir(cwd).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OCI_") || k == "NO_COLOR" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    // A copy just written can be busy for a moment (ETXTBSY): a process another test thread
    // forked meanwhile holds the write handle until it execs. Wait that out.
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(26) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.expect("run oci-conform"),
        }
    }
    panic!("{} stayed busy", exe.display())
}

/// Per test: id, status, where it is written and where each finding was decided.
fn verdicts(r: &serde_json::Value) -> Vec<(String, String, String, Vec<String>)> {
    let sources = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .map(|l| {
                l.iter()
                    .map(|f| f["source"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    r["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| {
            let mut at = sources(&t["failures"]);
            at.extend(sources(&t["warnings"]));
            (
                t["id"].as_str().unwrap_or_default().to_string(),
                t["status"].as_str().unwrap_or_default().to_string(),
                t["source"].as_str().unwrap_or_default().to_string(),
                at,
            )
        })
        .collect()
}

#[test]
fn the_copied_binary_runs_from_an_empty_folder_with_the_statuses_of_the_checkout() {
    let (dir, exe) = installed();
    let (reg_a, reg_b) = (Registry::docker(), Registry::docker());
    let checkout_out = TempDir::new("checkout-results");
    let seed = ["--seed", "1313"];
    // Both at once, each on its own fresh registry: the embedded packs from the empty folder
    // (coloured on request, NO_COLOR notwithstanding) and the checkout's folder, uncoloured.
    let (installed_run, checkout_run) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            run_in(
                &exe,
                &dir.0,
                &[&["run", "--color", "always"], &seed[..]].concat(),
                &[
                    ("OCI_REGISTRY", &reg_a.addr),
                    ("OCI_TLS", "disabled"),
                    ("NO_COLOR", "1"),
                ],
            )
        });
        let b = s.spawn(|| {
            let out = checkout_out.0.to_str().unwrap();
            let args = [
                &["--color", "never", "run"][..],
                &seed,
                &["--specs", "specs"],
            ];
            run_in(
                &bin(),
                &root(),
                &[&args.concat()[..], &["--results-dir", out]].concat(),
                &[("OCI_REGISTRY", &reg_b.addr), ("OCI_TLS", "disabled")],
            )
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let (ta, tb) = (text(&installed_run), text(&checkout_run));
    assert!(!ta.contains("cannot read"), "{ta}");
    let a = common::results(&dir.join("results"));
    let b = common::results(&checkout_out.0);

    // docker-registry fails some MUSTs, so both exit 4 — the same way.
    assert_eq!(installed_run.status.code(), Some(4), "{ta}");
    assert_eq!(checkout_run.status.code(), Some(4), "{tb}");
    let (va, vb) = (verdicts(&a), verdicts(&b));
    assert!(
        va.len() > 800,
        "the whole default pack ran: {} tests",
        va.len()
    );
    assert_eq!(va.len(), vb.len());
    let differ: Vec<String> = va
        .iter()
        .zip(&vb)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("{x:?}\n  vs {y:?}"))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert_eq!(a["counts"], b["counts"]);
    assert_eq!(a["apis"], b["apis"]);
    assert_eq!(a["data"], b["data"]);
    // Embedded files are named by their path in the repository, as the checkout's are.
    assert!(
        va.iter()
            .all(|(_, _, src, _)| src.starts_with("specs/1.1/")),
        "{:?}",
        va.iter()
            .find(|(_, _, src, _)| !src.starts_with("specs/1.1/"))
    );

    // Where the packs came from, and the same digest for the same bytes.
    assert_eq!(a["pack"]["source"], "embedded");
    assert_eq!(b["pack"]["source"], "folder");
    assert_eq!(a["pack"]["dir"], "specs/1.1");
    assert_eq!(a["pack"]["digest"], b["pack"]["digest"]);
    assert!(ta.contains("packs embedded"), "{ta}");
    assert!(tb.contains("packs specs/1.1"), "{tb}");
    let junit = std::fs::read_to_string(dir.join("results/junit.xml")).unwrap();
    assert!(junit.contains(r#"<property name="packSource" value="embedded"/>"#));
    let html = std::fs::read_to_string(dir.join("results/report.html")).unwrap();
    assert!(
        html.contains(" (embedded)</td>"),
        "the Pack row says where it came from"
    );

    // --color always colours off a terminal despite NO_COLOR; never colours nothing.
    assert!(String::from_utf8_lossy(&installed_run.stdout).contains("\x1b["));
    assert!(!tb.contains('\x1b'), "{tb}");

    // The copy names its packs, lints them and lists nothing of the folder it runs in.
    let v = run_in(&exe, &dir.0, &["--version"], &[]);
    let version = text(&v);
    assert!(version.contains("packs: embedded"), "{version}");
    let digest = a["pack"]["digest"].as_str().unwrap();
    assert!(
        version.contains(&format!("1.1      specs/1.1  {digest}")),
        "{version}"
    );
    let lint = run_in(&exe, &dir.0, &["lint"], &[]);
    assert_eq!(lint.status.code(), Some(0), "{}", text(&lint));
    assert!(text(&lint).contains("ok: 3 target(s) checked (the packs built into this binary)"));
    let entries: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut entries = entries;
    entries.sort();
    assert_eq!(entries, ["oci-conform", "results"], "nothing else written");
}

/// `list` output without its last line (which names the pack folder).
fn plan_of(exe: &Path, cwd: &Path, version: &str, specs: Option<&str>) -> String {
    let mut args = vec!["list", "--schedule", "--spec-version", version];
    if let Some(s) = specs {
        args.extend(["--specs", s]);
    }
    let o = run_in(exe, cwd, &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let (plan, last) = out.trim_end().rsplit_once('\n').unwrap();
    assert!(last.contains(" tests in "), "{last}");
    plan.to_string()
}

#[test]
fn exported_packs_lint_clean_and_plan_like_the_embedded_ones() {
    let (dir, exe) = installed();
    let export = dir.join("packs");
    let t0 = std::time::Instant::now();
    let o = run_in(&exe, &dir.0, &["packs", "export", "packs"], &[]);
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    eprintln!("packs export: {took:?}");

    // Every file of the three folders, byte for byte, and nothing else.
    let mut exported = Vec::new();
    files_below(&export, &export, &mut exported);
    let mut in_repo = Vec::new();
    for tree in ["specs", "datasets", "schemas"] {
        files_below(&root(), &root().join(tree), &mut in_repo);
    }
    exported.sort();
    in_repo.sort();
    assert_eq!(exported, in_repo);
    for rel in &exported {
        assert_eq!(
            std::fs::read(export.join(rel)).unwrap(),
            std::fs::read(root().join(rel)).unwrap(),
            "{rel}"
        );
    }
    // The editor hints point at schemas that are there.
    let hint = regex::Regex::new(r"# yaml-language-server: \$schema=(\S+)").unwrap();
    let mut hints = 0;
    for rel in exported.iter().filter(|r| r.ends_with(".yaml")) {
        let file = export.join(rel);
        let text = std::fs::read_to_string(&file).unwrap();
        for c in hint.captures_iter(&text) {
            hints += 1;
            let target = file.parent().unwrap().join(&c[1]);
            assert!(target.is_file(), "{rel}: {} does not resolve", &c[1]);
        }
    }
    assert!(hints > 50, "{hints} hints");

    let lint = run_in(&exe, &dir.0, &["lint", "packs/specs"], &[]);
    assert_eq!(lint.status.code(), Some(0), "{}", text(&lint));
    assert!(text(&lint).contains("ok: 3 target(s) checked"));
    for version in ["1.0", "1.1", "dev"] {
        assert_eq!(
            plan_of(&exe, &dir.0, version, None),
            plan_of(&exe, &dir.0, version, Some("packs/specs")),
            "plan of {version}"
        );
    }
    // Same bytes, same digests.
    let listed = |args: &[&str]| {
        let o = run_in(&exe, &dir.0, args, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let t = String::from_utf8(o.stdout).unwrap();
        t.lines()
            .skip(1)
            .map(|l| l.split_whitespace().last().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let embedded = listed(&["packs", "list"]);
    assert_eq!(embedded.len(), 3);
    assert!(embedded.iter().all(|d| d.starts_with("sha256:")));
    assert_eq!(
        embedded,
        listed(&["packs", "list", "--specs", "packs/specs"])
    );

    // A folder holding anything is not overwritten without --force; with it the three folders
    // are replaced (a file added to them goes) and the rest of the folder stays.
    std::fs::write(export.join("notes.txt"), "mine").unwrap();
    std::fs::write(export.join("specs/1.1/stale.yaml"), "name: x").unwrap();
    let again = run_in(&exe, &dir.0, &["packs", "export", "packs"], &[]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("the folder is not empty"));
    assert!(text(&again).contains("--force"));
    assert!(export.join("specs/1.1/stale.yaml").exists());
    let forced = run_in(&exe, &dir.0, &["packs", "export", "--force", "packs"], &[]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert!(!export.join("specs/1.1/stale.yaml").exists());
    assert_eq!(
        std::fs::read_to_string(export.join("notes.txt")).unwrap(),
        "mine"
    );

    // Edited, the folder is what --specs runs; run in it without --specs, the binary keeps to
    // its own packs and says that the folder differs.
    let case = export.join("specs/1.1/ping.yaml");
    let edited = std::fs::read_to_string(&case)
        .unwrap()
        .replacen("name: ", "name: edited-", 1);
    std::fs::write(&case, edited).unwrap();
    let in_folder = run_in(&exe, &export, &["list"], &[]);
    assert!(!text(&in_folder).contains("edited-"), "embedded packs used");
    assert!(
        text(&in_folder).contains("differ from the packs built into this binary"),
        "{}",
        text(&in_folder)
    );
    let with_specs = run_in(&exe, &export, &["list", "--specs", "specs"], &[]);
    assert!(
        text(&with_specs).contains("edited-"),
        "{}",
        text(&with_specs)
    );
    assert!(!text(&with_specs).contains("differ from"));
    let from_env = run_in(&exe, &export, &["list"], &[("OCI_SPECS_DIR", "specs")]);
    assert!(text(&from_env).contains("edited-"), "{}", text(&from_env));
}

#[test]
fn a_file_linted_outside_any_checkout_is_checked_against_the_embedded_schemas() {
    let (dir, exe) = installed();
    // Only the schema sees this problem (the typed loader takes any schemaVersion of a case).
    std::fs::write(
        dir.join("case.yaml"),
        "schemaVersion: 2\nname: c\nsteps: [{set: {a: 1}}]\n",
    )
    .unwrap();
    let l = run_in(&exe, &dir.0, &["lint", "case.yaml"], &[]);
    let t = text(&l);
    assert_eq!(l.status.code(), Some(2), "{t}");
    assert!(t.contains("case.yaml:1:16"), "{t}");
    assert!(t.contains("expected `1`, found `2`"), "{t}");
    // A version no pack has names the embedded specs folder as the checkout would.
    let o = run_in(&exe, &dir.0, &["list", "--spec-version", "9.9"], &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("packs available: 1.0, 1.1, 1.1+dev"), "{t}");
    assert!(!t.contains("<embedded>"), "{t}");
}

/// Files below `dir` relative to `base`, `/`-separated, hidden files left out.
fn files_below(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            files_below(base, &p, out);
        } else {
            let rel = p.strip_prefix(base).unwrap();
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
}
