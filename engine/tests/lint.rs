//! `oci-conform lint`: positioned errors and suggestions, exit code 2 for bad input.

mod common;

use common::{cli, text, TempDir};

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
