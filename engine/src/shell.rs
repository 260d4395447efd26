//! Shell integration generated from the command-line definitions: completion scripts
//! (`oci-conform completions bash`) and the man pages (`oci-conform man`), so neither can
//! drift from the flags the binary takes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Writes the completion script of `shell` for `cmd` to `out`.
pub fn completions(shell: Shell, mut cmd: clap::Command, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes the man page of `cmd` (section 1, with its subcommands listed) to `out`.
pub fn man_page(cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    clap_mangen::Man::new(cmd).render(out)
}

/// Writes one man page per command into `dir` (`oci-conform.1`, `oci-conform-run.1`, …) and
/// returns their paths in name order.
pub fn man_pages_to(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd, dir)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "1")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("oci-conform"))
        })
        .collect();
    pages.sort();
    Ok(pages)
}
