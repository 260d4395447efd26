//! Shell conventions: completion scripts for bash, zsh and fish and man pages, generated from
//! the same definitions as the flags (so they name every subcommand), and `--color`.

mod common;

use common::{cli, text, TempDir};

const SUBCOMMANDS: [&str; 7] = [
    "run",
    "list",
    "lint",
    "compare",
    "packs",
    "completions",
    "man",
];

#[test]
fn completions_name_every_subcommand_and_their_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let o = cli(&["completions", shell], &[]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", text(&o));
        let script = String::from_utf8(o.stdout).unwrap();
        assert!(script.len() > 1000, "{shell}: {} bytes", script.len());
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: no `{sub}`");
        }
        for flag in ["spec-version", "results-dir", "specs", "color", "force"] {
            assert!(script.contains(flag), "{shell}: no `{flag}`");
        }
    }
    // bash itself reads the bash script, and it completes subcommands.
    if let Ok(bash) = which("bash") {
        let o = cli(&["completions", "bash"], &[]);
        let dir = TempDir::new("completions");
        let f = dir.join("oci-conform.bash");
        std::fs::write(&f, &o.stdout).unwrap();
        let probe = format!(
            "source {}; COMP_WORDS=(oci-conform pa); COMP_CWORD=1; _oci__conform oci-conform pa oci-conform; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            f.display()
        );
        let out = std::process::Command::new(bash)
            .args(["-c", &probe])
            .output()
            .unwrap();
        let words = String::from_utf8_lossy(&out.stdout);
        assert!(
            words.lines().any(|w| w == "packs"),
            "{words}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bad = cli(&["completions", "tcsh"], &[]);
    assert_eq!(bad.status.code(), Some(2));
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .ok_or(())
}

#[test]
fn the_man_pages_are_roff_naming_the_subcommands() {
    let o = cli(&["man"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(page.contains(".TH oci-conform 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "no {section}");
    }
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("oci\\-conform\\-{sub}(1)")),
            "no {sub}"
        );
    }
    assert!(page.contains("NO_COLOR"));

    let dir = TempDir::new("man");
    let o = cli(&["man", "--out", dir.0.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for name in ["oci-conform", "oci-conform-run", "oci-conform-packs-export"] {
        let p = std::fs::read_to_string(dir.join(&format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(p.contains(&format!(".TH {name} 1")), "{name}: {p}");
    }
    let run = std::fs::read_to_string(dir.join("oci-conform-run.1")).unwrap();
    assert!(run.contains("spec\\-version"), "{run}");
    // groff, when installed, reads every page (UTF-8, through preconv) without a warning.
    if let Ok(groff) = which("groff") {
        for e in std::fs::read_dir(&dir.0).unwrap() {
            let p = e.unwrap().path();
            let out = std::process::Command::new(&groff)
                .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
                .arg(&p)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", p.display());
            assert!(
                out.stderr.is_empty(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn color_takes_auto_always_never_only() {
    let bad = cli(&["--color", "sometimes", "list"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("always"), "{}", text(&bad));
    // After the subcommand too (a global flag).
    let ok = cli(&["list", "--color", "never", "--filter", "ping"], &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
}
