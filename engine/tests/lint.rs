//! `oci-conform lint`: positioned errors and suggestions, exit code 2 for bad input; and
//! `list`, whose output may go to a reader that stops early.

mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};

use common::{bin, cli, text, TempDir};

#[test]
fn the_shipped_packs_lint_clean() {
    let o = cli(&["lint"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_misspelt_key_is_reported_with_position_and_suggestion() {
    let dir = TempDir::new("lint");
    let f = dir.join("case.yaml");
    std::fs::write(
        &f,
        "name: x\nsteps:\n  - request: {method: GET, url: /v2/}\n    expect:\n      stauts: 200\n",
    )
    .unwrap();
    let o = cli(&["lint", f.to_str().unwrap()], &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("case.yaml:5:7"), "{t}");
    assert!(t.contains("unknown key `stauts`"), "{t}");
    assert!(t.contains("did you mean `status`?"), "{t}");
}

#[test]
fn list_into_a_pipe_closed_early_ends_quietly() {
    // `oci-conform list -v | head -1`: the reader goes after one line.
    let mut child = Command::new(bin())
        .args(["list", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oci-conform");
    let mut first = [0u8; 64];
    let n = child
        .stdout
        .take()
        .expect("stdout")
        .read(&mut first)
        .expect("some output");
    assert!(n > 0);
    // stdout is closed here; the rest of the plan goes nowhere.
    let out = child.wait_with_output().expect("oci-conform ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
