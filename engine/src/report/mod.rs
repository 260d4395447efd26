//! Reporters: they read a [`RunResult`](crate::results::RunResult) and write files or text.
//! None of them sends requests or re-decides a status.

pub mod bodies;
pub mod console;
pub mod curl;
pub mod junit;
pub mod spec_links;
pub mod yaml;

use std::path::Path;

use crate::redact::Redactor;

/// Writes `text` to `dir/name` after removing any known secret.
pub fn write(dir: &Path, name: &str, text: &str, redactor: &Redactor) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), redactor.scrub(text))
}
