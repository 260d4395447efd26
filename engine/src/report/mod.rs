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
use crate::results::{Cited, Finding, RunResult};

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

/// The catalogue entries a finding cites, in its order (ids the catalogue cannot place are left
/// out: the finding still names them).
pub fn cited<'a>(r: &'a RunResult, f: &Finding) -> Vec<&'a Cited> {
    f.req
        .iter()
        .filter_map(|id| r.requirements.get(id))
        .collect()
}

/// One cited requirement on one line: `R75 MUST: statement <link>`.
pub fn cited_line(c: &Cited) -> String {
    format!("{} {}: {} <{}>", c.id, c.level, c.statement, c.link)
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
    use crate::report::fixtures::{case, run};
    use crate::results::Status;

    #[test]
    fn every_reporter_shows_the_cited_requirements_of_failures_and_warnings() {
        let mut f = case("blobs/chunked", Status::Fail);
        f.failures = vec![Finding {
            message: "PATCH /v2/x: expected status 416, got 202".into(),
            source: "specs/c.yaml:9:7".into(),
            level: crate::scenario::Level::Must,
            req: vec!["R75".into(), "R999".into()],
            exchange: None,
        }];
        let mut w = case("blobs/head", Status::Pass);
        w.warnings = vec![Finding {
            message: "header Content-Length is missing".into(),
            source: "specs/h.yaml:4:7".into(),
            level: crate::scenario::Level::Should,
            req: vec!["R39".into()],
            exchange: None,
        }];
        let mut r = run(vec![("blobs", vec![f, w])]);
        for (id, level, statement, link) in [
            (
                "R75",
                "MUST",
                "An out-of-order chunk gets 416.",
                "https://spec#pushing-a-blob-in-chunks",
            ),
            (
                "R39",
                "SHOULD",
                "A HEAD gives Content-Length.",
                "https://spec#checking",
            ),
        ] {
            r.requirements.insert(
                id.into(),
                Cited {
                    id: id.into(),
                    level: level.into(),
                    statement: statement.into(),
                    link: link.into(),
                },
            );
        }
        let fail_line =
            "R75 MUST: An out-of-order chunk gets 416. <https://spec#pushing-a-blob-in-chunks>";
        let warn_line = "R39 SHOULD: A HEAD gives Content-Length. <https://spec#checking>";
        let console = console::summary(&r, false);
        assert!(
            console.contains(&format!("          {fail_line}\n")),
            "{console}"
        );
        assert!(console.contains(warn_line), "{console}");
        assert!(
            !console.contains("R999 "),
            "an unknown id has no line of its own: {console}"
        );
        let xml = junit::render(&r);
        assert!(xml.contains(&junit::escape(fail_line)), "{xml}");
        assert!(xml.contains(&junit::escape(warn_line)), "{xml}");
        // The page escapes `/` in text and attributes as `&#x2f;`.
        let page = html::render(&r)
            .expect("renders")
            .html
            .replace("&#x2f;", "/");
        assert!(
            page.contains(r#"<a href="https://spec#pushing-a-blob-in-chunks">R75</a> <b>MUST</b>: An out-of-order chunk gets 416."#),
            "{page}"
        );
        assert!(page.contains(r#"<a href="https://spec#checking">R39</a>"#));
        let results = yaml::render(&r);
        for want in [
            "statement: An out-of-order chunk gets 416.",
            "link: https://spec#pushing-a-blob-in-chunks",
            "level: SHOULD",
        ] {
            assert!(results.contains(want), "{want} in {results}");
        }
    }

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
