//! `curl` commands that reproduce the recorded requests of a test, in order.
//!
//! Credentials never appear: Basic auth becomes `-u "$OCI_USERNAME:$OCI_PASSWORD"`, a bearer
//! token `$TOKEN` (set by the line that reproduces the token request). Bodies shown in full as
//! text are inlined; any other body is referenced as `@bodies/<alg>-<hex>.bin`, a file
//! [`super::bodies`] writes next to the report. URLs that came from an earlier answer's
//! `Location` (upload sessions, redirects) are taken from that answer when the commands run,
//! since they change on every run.

use std::fmt::Write as _;

use crate::http::{Exchange, ReqBody};
use crate::template::resolve_url;

/// Bodies larger than this are not written out (the seed regenerates them).
pub const MAX_BODY_FILE: u64 = 64 << 20;

/// Folder, next to the report, holding request bodies.
pub const BODIES_DIR: &str = "bodies";

/// How the run reached the registry, for flags every command needs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `tls: insecure`: certificates are not verified (`-k`).
    pub insecure: bool,
    /// An extra CA file was configured (`--cacert "$OCI_TLS_CA_FILE"`).
    pub ca_file: bool,
}

impl Options {
    /// Reads the flags from the run's (redacted) configuration.
    pub fn from_config(config: &serde_json::Value) -> Self {
        Options {
            insecure: config.get("tls").and_then(|t| t.as_str()) == Some("insecure"),
            ca_file: config
                .get("tlsCAFile")
                .and_then(|t| t.as_str())
                .is_some_and(|s| !s.is_empty()),
        }
    }
}

/// A request body the commands read from a file.
#[derive(Clone, Debug)]
pub struct BodyFile {
    /// Path relative to the report folder (`bodies/sha256-….bin`).
    pub path: String,
    /// The bytes to write.
    pub body: ReqBody,
}

/// The reproduction of one test.
#[derive(Clone, Debug, Default)]
pub struct Reproduction {
    /// A shell script: comments, then one command per recorded exchange.
    pub script: String,
    /// Body files the script reads.
    pub bodies: Vec<BodyFile>,
}

/// Builds the commands for the exchanges of one test.
pub fn reproduce(exchanges: &[Exchange], opts: &Options) -> Reproduction {
    let mut bodies: Vec<BodyFile> = Vec::new();
    let mut lines = Vec::new();
    // Per exchange: the shell expression of its resolved Location, when a later URL uses it.
    let locations: Vec<Option<(String, String)>> = exchanges
        .iter()
        .map(|e| {
            let raw = e
                .response_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.as_str())?;
            // A path-relative Location cannot be resolved by the shell; keep such URLs literal.
            if !(raw.contains("://") || raw.starts_with('/')) || raw.starts_with("//") {
                return None;
            }
            Some((resolve_url(&e.url, raw), raw.to_string()))
        })
        .collect();
    let mut captured = vec![false; exchanges.len()];
    let mut urls = Vec::with_capacity(exchanges.len());
    for (j, e) in exchanges.iter().enumerate() {
        let from = (0..j).rev().find_map(|i| {
            let (resolved, raw) = locations[i].as_ref()?;
            let rest = e.url.strip_prefix(resolved.as_str())?;
            Some((i, raw, rest))
        });
        urls.push(match from {
            Some((i, raw, rest)) => {
                captured[i] = true;
                let origin = if raw.starts_with('/') {
                    origin_of(&exchanges[i].url)
                } else {
                    ""
                };
                format!("\"{}${{LOCATION_{}}}{}\"", dq(origin), i + 1, dq(rest))
            }
            None => sq(&e.url),
        });
    }
    let mut uses_basic = false;
    let mut uses_bearer = false;
    let mut has_token_line = false;
    for (i, e) in exchanges.iter().enumerate() {
        let mut cmd = String::from("curl -sS");
        if opts.insecure {
            cmd.push_str(" -k");
        }
        if opts.ca_file {
            cmd.push_str(" --cacert \"$OCI_TLS_CA_FILE\"");
        }
        let token = e.note.as_deref() == Some("token request");
        let (body, body_note) = match body_arg(e, &mut bodies) {
            Some((arg, note)) => (Some(arg), note),
            None => (None, None),
        };
        match e.method.as_str() {
            "HEAD" => cmd.push_str(" -I"),
            "GET" if body.is_none() => {}
            m => {
                let _ = write!(cmd, " -X {}", sq(m));
            }
        }
        if !token && !captured[i] && e.method != "HEAD" {
            cmd.push_str(" -i");
        }
        let has = |name: &str| {
            e.request_headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        for (k, v) in &e.request_headers {
            if k.eq_ignore_ascii_case("authorization") {
                let scheme = v.split(' ').next().unwrap_or("").to_ascii_lowercase();
                match scheme.as_str() {
                    "basic" => {
                        uses_basic = true;
                        cmd.push_str(" -u \"$OCI_USERNAME:$OCI_PASSWORD\"");
                    }
                    "bearer" => {
                        uses_bearer = true;
                        cmd.push_str(" -H \"Authorization: Bearer $TOKEN\"");
                    }
                    _ => cmd.push_str(" -H \"Authorization: $AUTHORIZATION\""),
                }
                continue;
            }
            // curl computes Content-Length itself from the body it sends.
            if k.eq_ignore_ascii_case("content-length")
                && body.is_some()
                && v.trim() == e.request_body.len.to_string()
            {
                continue;
            }
            let _ = write!(cmd, " -H {}", sq(&format!("{k}: {v}")));
        }
        if body.is_some() && !has("content-type") {
            // Without this curl would add `Content-Type: application/x-www-form-urlencoded`.
            cmd.push_str(" -H 'Content-Type:'");
        }
        if !has("accept") && e.url.contains("/manifests/") {
            // The engine sends no Accept unless the scenario does; curl would send `*/*`,
            // which some registries answer with a different manifest format.
            cmd.push_str(" -H 'Accept:'");
        }
        if let Some(b) = &body {
            let _ = write!(cmd, " --data-binary {b}");
        }
        let _ = write!(cmd, " {}", urls[i]);
        let mut line = String::new();
        let what = match (e.status, &e.error) {
            (Some(s), _) => format!("answered {s}"),
            (None, Some(err)) => format!("failed: {}", one_line(err)),
            _ => "no answer".into(),
        };
        let _ = writeln!(
            line,
            "# {}. {} {}",
            i + 1,
            e.note.as_deref().unwrap_or("request"),
            what
        );
        if let Some(n) = body_note {
            let _ = writeln!(line, "# {n}");
        }
        if token {
            has_token_line = true;
            let _ = writeln!(line, "TOKEN=$({cmd} | jq -r '.token // .access_token')");
        } else if captured[i] {
            let _ = writeln!(
                line,
                "LOCATION_{}=$({cmd} -D /dev/stderr -o /dev/null -w '%header{{location}}')",
                i + 1
            );
        } else {
            let _ = writeln!(line, "{cmd}");
        }
        lines.push(line);
    }
    let mut script = String::new();
    if uses_basic {
        script.push_str("# credentials: export OCI_USERNAME=… OCI_PASSWORD=…\n");
    }
    if uses_bearer && !has_token_line {
        script.push_str(
            "# TOKEN: a bearer token for this repository (from your registry's token service)\n",
        );
    }
    if !bodies.is_empty() {
        let _ = writeln!(
            script,
            "# run from the results folder: request bodies are in {BODIES_DIR}/"
        );
    }
    if captured.iter().any(|c| *c) {
        script.push_str(
            "# upload and redirect URLs are taken from the earlier answers (curl 7.84+)\n",
        );
    }
    for l in lines {
        script.push_str(&l);
    }
    Reproduction { script, bodies }
}

/// The `--data-binary` argument of a request (and a note when its file is not written),
/// registering a body file when needed.
fn body_arg(e: &Exchange, bodies: &mut Vec<BodyFile>) -> Option<(String, Option<String>)> {
    let len = e.request_body.len;
    if len == 0 {
        return None;
    }
    if let Some(t) = &e.request_body.text {
        if t.len() as u64 == len {
            return Some((sq(t), None));
        }
    }
    let digest = e
        .request_body
        .digest
        .clone()
        .or_else(|| digest_of(&e.sent_body))
        .unwrap_or_else(|| "unknown".into());
    let path = format!("{BODIES_DIR}/{}.bin", digest.replace(':', "-"));
    let writable = e.sent_body.len() == len && len <= MAX_BODY_FILE;
    if writable && !bodies.iter().any(|b| b.path == path) {
        bodies.push(BodyFile {
            path: path.clone(),
            body: e.sent_body.clone(),
        });
    }
    // A body not written is named, so it can be regenerated by a run with the same seed.
    let note = (!writable).then(|| {
        format!("body: {len} bytes, {digest}; not written out (too large or not recorded), rerun oci-conform with the same --seed")
    });
    Some((format!("@{}", sq(&path)), note))
}

/// sha256 of a recorded body, read in full.
fn digest_of(body: &ReqBody) -> Option<String> {
    if body.is_empty() || body.len() > MAX_BODY_FILE {
        return None;
    }
    let mut h = crate::content::Hasher::new("sha256")?;
    let mut r = body.reader();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match std::io::Read::read(&mut r, &mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    Some(h.finish())
}

/// `scheme://host` of a URL.
fn origin_of(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return "";
    };
    let host_end = rest
        .find('/')
        .map_or(url.len(), |i| url.len() - rest.len() + i);
    &url[..host_end]
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Single-quotes a word for POSIX shells.
pub fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Escapes text for use inside double quotes.
fn dq(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '$' | '`' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::http::BodySummary;

    fn ex(method: &str, url: &str, status: u16) -> Exchange {
        Exchange {
            method: method.into(),
            url: url.into(),
            status: Some(status),
            ..Exchange::default()
        }
    }

    #[test]
    fn credentials_become_shell_variables() {
        let mut a = ex("GET", "http://r:5000/v2/", 200);
        a.request_headers = vec![("Authorization".into(), "Basic ***".into())];
        let mut t = ex(
            "GET",
            "http://auth/token?service=r&scope=repository%3Aa%3Apull",
            200,
        );
        t.note = Some("token request".into());
        t.request_headers = vec![("Authorization".into(), "Basic ***".into())];
        let mut b = ex("HEAD", "http://r:5000/v2/a/manifests/t", 404);
        b.request_headers = vec![("Authorization".into(), "Bearer ***".into())];
        let r = reproduce(&[a, t, b], &Options::default());
        assert!(
            r.script
                .contains("curl -sS -i -u \"$OCI_USERNAME:$OCI_PASSWORD\" 'http://r:5000/v2/'"),
            "{}",
            r.script
        );
        assert!(
            r.script.starts_with("# credentials: export OCI_USERNAME"),
            "{}",
            r.script
        );
        assert!(r.script.contains("TOKEN=$(curl -sS -u \"$OCI_USERNAME:$OCI_PASSWORD\" 'http://auth/token?service=r&scope=repository%3Aa%3Apull' | jq -r '.token // .access_token')"), "{}", r.script);
        assert!(r.script.contains("curl -sS -I -H \"Authorization: Bearer $TOKEN\" -H 'Accept:' 'http://r:5000/v2/a/manifests/t'"), "{}", r.script);
        assert!(!r.script.contains("***"), "{}", r.script);
    }

    #[test]
    fn upload_urls_come_from_the_earlier_location() {
        let mut post = ex("POST", "http://r:5000/v2/a/blobs/uploads/", 202);
        post.request_headers = vec![("Content-Length".into(), "0".into())];
        post.response_headers = vec![("Location".into(), "/v2/a/blobs/uploads/u1?_state=x".into())];
        let mut put = ex(
            "PUT",
            "http://r:5000/v2/a/blobs/uploads/u1?_state=x&digest=sha256%3Aab",
            201,
        );
        let bytes = vec![0u8, 1, 2, 255];
        put.request_body = BodySummary {
            len: 4,
            text: None,
            digest: Some("sha256:abcd".into()),
            ..BodySummary::default()
        };
        put.sent_body = ReqBody::Bytes(Arc::new(bytes));
        put.request_headers = vec![
            ("Content-Type".into(), "application/octet-stream".into()),
            ("Content-Length".into(), "4".into()),
        ];
        let r = reproduce(
            &[post, put],
            &Options {
                insecure: true,
                ca_file: false,
            },
        );
        assert!(r.script.contains("LOCATION_1=$(curl -sS -k -X 'POST' -H 'Content-Length: 0' 'http://r:5000/v2/a/blobs/uploads/' -D /dev/stderr -o /dev/null -w '%header{location}')"), "{}", r.script);
        assert!(r.script.contains("--data-binary @'bodies/sha256-abcd.bin' \"http://r:5000${LOCATION_1}&digest=sha256%3Aab\""), "{}", r.script);
        assert!(!r.script.contains("Content-Length: 4"), "{}", r.script);
        assert_eq!(r.bodies.len(), 1);
        assert_eq!(r.bodies[0].path, "bodies/sha256-abcd.bin");
    }

    #[test]
    fn text_bodies_are_inlined_and_quoted() {
        let mut put = ex("PUT", "http://r/v2/a/manifests/t", 400);
        let text = r#"{"a":"it's"}"#;
        put.request_body = BodySummary {
            len: text.len() as u64,
            text: Some(text.into()),
            ..BodySummary::default()
        };
        let r = reproduce(&[put], &Options::default());
        assert!(
            r.script
                .contains(r#"-H 'Content-Type:' -H 'Accept:' --data-binary '{"a":"it'\''s"}'"#),
            "{}",
            r.script
        );
        assert!(r.bodies.is_empty());
    }

    #[test]
    fn quoting_is_shell_safe() {
        assert_eq!(sq("a'b"), "'a'\\''b'");
        assert_eq!(dq("a\"$`\\b"), "a\\\"\\$\\`\\\\b");
        assert_eq!(origin_of("https://h:1/v2/x"), "https://h:1");
        assert_eq!(origin_of("https://h:1"), "https://h:1");
    }
}
