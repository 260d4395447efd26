//! Reporters: they read a [`RunResult`](crate::results::RunResult) and write files or text.
//! None of them sends requests or re-decides a status.

pub mod bodies;
pub mod compare;
pub mod console;
pub mod curl;
#[cfg(test)]
mod fixtures;
pub mod html;
pub mod junit;
pub mod progress;
pub mod spec_links;
pub mod yaml;

use std::path::Path;
use std::sync::LazyLock;

use crate::redact::Redactor;
use crate::results::RunResult;

/// Names of the files every run writes into the results folder.
pub const FILES: [&str; 3] = ["results.yaml", "junit.xml", "report.html"];

/// Query values longer than this are cut in one-line displays.
const QUERY_SHOWN: usize = 24;

static LONG_QUERY: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(&format!(
        r"([?&][A-Za-z0-9_.~-]+=)([^&\s#]{{{QUERY_SHOWN}}})([^&\s#]+)"
    ))
    .expect("static regex")
});

/// Cuts long query values (upload `_state` tokens, digests) to keep one-line messages
/// readable; the full text stays in results.yaml and in the report's details.
pub fn shorten_queries(text: &str) -> String {
    LONG_QUERY
        .replace_all(text, |c: &regex::Captures<'_>| {
            // A message goes on after the URL with `: `; keep that colon.
            let colon = if c[3].ends_with(':') { ":" } else { "" };
            format!("{}{}…{colon}", &c[1], &c[2])
        })
        .into_owned()
}

/// Writes `text` to `dir/name` after removing any known secret.
pub fn write(dir: &Path, name: &str, text: &str, redactor: &Redactor) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), redactor.scrub(text))
}

/// Writes results.yaml, junit.xml, report.html and the request bodies report.html's curl
/// commands read, all through the redactor.
pub fn write_all(dir: &Path, r: &RunResult, redactor: &Redactor) -> std::io::Result<()> {
    write(dir, FILES[0], &yaml::render(r), redactor)?;
    write(dir, FILES[1], &junit::render(r), redactor)?;
    let page = html::render(r).map_err(std::io::Error::other)?;
    write(dir, FILES[2], &page.html, redactor)?;
    bodies::write(dir, &page.bodies, redactor)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_query_values_are_cut() {
        let url = "PUT /v2/r/blobs/uploads/u?_state=TfD513vTG5vRhXpkcspy0k1_NcncvyOPD2TT&digest=sha256%3A0f5ef69da1987a2acab825ece43e: expected 201";
        assert_eq!(
            shorten_queries(url),
            "PUT /v2/r/blobs/uploads/u?_state=TfD513vTG5vRhXpkcspy0k1_…&digest=sha256%3A0f5ef69da1987a2…: expected 201"
        );
        assert_eq!(
            shorten_queries("GET /v2/?n=10&last=abc"),
            "GET /v2/?n=10&last=abc"
        );
    }
}
