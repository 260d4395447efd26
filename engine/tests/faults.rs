//! Registries that misbehave: a fake registry that hangs, resets, cuts bodies short, trickles
//! them a byte at a time, answers garbage or 5xx, and redirects to storage on another port (each
//! a FAIL with its reason, the run going on to the end); one that stops answering altogether
//! (the run gives up on it after a few timeouts); and content left behind: a real registry whose deletes a proxy
//! refuses (leftovers listed), and a normal one (left empty).

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::fake::{Action, FakeServer, Resp};
use common::registry::Registry;
use common::{reason, run_against, status_of, text, TempDir};

const USER: &str = "bob";
const PASSWORD: &str = "s3cond-s3cret";
/// The bytes of the `hello` item of engine/tests/packs/faults/content.yaml.
const HELLO: &[u8] = b"hello from storage\n";

/// A registry that asks for Basic credentials, then misbehaves according to the repository
/// named in the path (see engine/tests/packs/faults/cases.yaml).
fn faulty_registry(storage: &str) -> FakeServer {
    let storage = storage.to_string();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    FakeServer::start(move |req| {
        if req.header("authorization") != Some(basic.as_str()) {
            return Action::Respond(
                Resp::new(401, b"").header("WWW-Authenticate", "Basic realm=\"faults\""),
            );
        }
        let p = req.path.as_str();
        let json = |s: u16, b: &str| {
            Action::Respond(Resp::new(s, b.as_bytes()).header("Content-Type", "application/json"))
        };
        if p == "/v2/" {
            json(200, "{}")
        } else if p.starts_with("/v2/faults/hang/") {
            Action::Hang
        } else if p.starts_with("/v2/faults/reset/") {
            Action::Reset(Resp::new(200, &[b'x'; 1000]), 100)
        } else if p.starts_with("/v2/faults/stall/") {
            Action::Stall(Resp::new(200, &[b'x'; 1000]), 100)
        } else if p.starts_with("/v2/faults/trickle/") {
            Action::Trickle(Resp::new(200, &[b'x'; 1000]), Duration::from_millis(200))
        } else if p.starts_with("/v2/faults/cut/") {
            Action::CutBody(Resp::new(200, &[b'x'; 1000]), 100)
        } else if p.starts_with("/v2/faults/garbage/") {
            json(200, r#"{"name": "faults/garbage", "tags": ["v1", "v2"#)
        } else if p.starts_with("/v2/faults/error/") {
            Action::Respond(
                Resp::new(503, b"<html><body>upstream exploded</body></html>")
                    .header("Content-Type", "text/html"),
            )
        } else if p.starts_with("/v2/faults/raw/") {
            Action::Raw(b"\x00\x01\x02 this is not HTTP at all\r\n\r\n".to_vec())
        } else if p.starts_with("/v2/faults/redirect/") {
            let digest = p.rsplit('/').next().unwrap_or_default();
            Action::Respond(Resp::new(307, b"").header(
                "Location",
                &format!("http://{storage}/storage/{digest}?sig=abc"),
            ))
        } else if p.starts_with("/v2/faults/upload/") {
            Action::Respond(
                Resp::new(202, b"")
                    .header("Location", &format!("http://{storage}/upload/1?state=x")),
            )
        } else if p.starts_with("/v2/faults/ok/") {
            json(200, r#"{"name": "faults/ok", "tags": []}"#)
        } else {
            json(
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"no such repository"}]}"#,
            )
        }
    })
}

#[test]
fn a_misbehaving_registry_fails_each_case_with_its_reason_and_the_run_ends() {
    let storage = FakeServer::start(|req| {
        if req.method == "PUT" {
            return Action::Respond(Resp::new(201, b"").header("Location", "/stored"));
        }
        Action::Respond(Resp::new(200, HELLO).header("Content-Type", "application/octet-stream"))
    });
    let registry = faulty_registry(&storage.addr);
    let out = TempDir::new("faults");
    let t0 = Instant::now();
    let (o, r) = run_against(
        &registry.addr,
        &out.0,
        &[
            "--specs",
            "engine/tests/packs",
            "--spec-version",
            "test-faults",
        ],
        &[
            ("OCI_REQUEST_TIMEOUT", "1"),
            ("OCI_USERNAME", USER),
            ("OCI_PASSWORD", PASSWORD),
        ],
    );
    let log = text(&o);
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the run must not hang: {log}"
    );
    assert_eq!(o.status.code(), Some(4), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    let expect = |id: &str, status: &str, fragments: &[&str]| {
        assert_eq!(status_of(&r, id), status, "{id}: {}", reason(&r, id));
        for f in fragments {
            assert!(
                reason(&r, id).contains(f),
                "{id}: `{f}` not in `{}`",
                reason(&r, id)
            );
        }
    };
    expect("faults/ping", "Pass", &[]);
    expect(
        "faults/hang",
        "FAIL",
        &["GET /v2/faults/hang/tags/list: timed out after 1 s"],
    );
    let closed =
        "answered 200 but the connection was closed or reset after 100 of 1000 bytes of the body";
    expect("faults/reset", "FAIL", &[closed]);
    expect("faults/cut", "FAIL", &[closed]);
    expect(
        "faults/stall",
        "FAIL",
        &["answered 200 but the body timed out after 1 s without data (100 of 1000 bytes received)"],
    );
    expect(
        "faults/trickle",
        "FAIL",
        &[
            "answered 200 but the body came too slowly: ",
            " of 1000 bytes in ",
            "more than the 1.0 s its size allows",
        ],
    );
    expect(
        "faults/garbage-json",
        "FAIL",
        &[
            "body is not JSON (EOF while parsing",
            r#"{"name": "faults/garbage", "tags": ["v1", "v2"#,
        ],
    );
    // The finding points at the `body:` line of the case.
    let garbage = r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "faults/garbage-json")
        .unwrap();
    let source = garbage["failures"][0]["source"]
        .as_str()
        .unwrap_or_default();
    assert!(
        source.starts_with("engine/tests/packs/faults/cases.yaml:"),
        "{garbage}"
    );
    expect(
        "faults/server-error",
        "FAIL",
        &["expected status 200, got 503 (body: <html><body>upstream exploded</body></html>)"],
    );
    expect(
        "faults/not-http",
        "FAIL",
        &["GET /v2/faults/raw/tags/list: "],
    );
    expect("faults/redirect", "Pass", &[]);
    expect("faults/upload-elsewhere", "Pass", &[]);
    expect("faults/after", "Pass", &[]);

    // The console names each failure with its reason.
    assert!(log.contains("timed out after 1 s"), "{log}");
    assert!(log.contains("body is not JSON"), "{log}");

    // Credentials went to the registry, never to the storage it redirected to.
    let redirected = registry
        .requests()
        .into_iter()
        .find(|q| q.path.starts_with("/v2/faults/redirect/"))
        .expect("the redirect was asked");
    assert!(redirected.header("authorization").is_some());
    let fetched = storage.requests();
    assert_eq!(fetched.len(), 2, "{fetched:?}");
    assert!(fetched[0].path.starts_with("/storage/sha256:"));
    assert!(fetched[1]
        .path
        .starts_with("/upload/1?state=x&digest=sha256"));
    assert_eq!(fetched[1].body, HELLO);
    for f in &fetched {
        assert!(
            f.header("authorization").is_none(),
            "credentials leaked to storage: {} {:?}",
            f.path,
            f.headers
        );
    }
}

/// What a registry created, by URL path, as seen by a proxy: the `Location` of every 201.
type Created = Arc<Mutex<BTreeSet<String>>>;

fn record_created(created: &Created, req_method: &str, resp: &Resp) {
    if resp.status == 201 && matches!(req_method, "PUT" | "POST") {
        if let Some(loc) = resp.get("location") {
            let path = loc
                .split_once("://")
                .map_or(loc, |(_, r)| &r[r.find('/').unwrap_or(r.len())..]);
            created.lock().unwrap().insert(path.to_string());
        }
    }
}

/// Runs the shipped pack (specs/, default version), whole or only the groups in `filters`.
fn run_shipped_pack(
    addr: &str,
    filters: &[&str],
) -> (std::process::Output, serde_json::Value, TempDir) {
    let out = TempDir::new("leftovers");
    let mut args = vec!["-q"];
    for f in filters {
        args.extend(["--filter", f]);
    }
    let (o, r) = run_against(addr, &out.0, &args, &[]);
    (o, r, out)
}

fn path_of(url: &str) -> String {
    let url = url.split(' ').next().unwrap_or(url);
    url.split_once("://")
        .map_or(url, |(_, r)| &r[r.find('/').unwrap_or(r.len())..])
        .to_string()
}

#[test]
fn content_a_registry_will_not_delete_is_listed_as_leftovers() {
    let reg = Registry::docker();
    let created: Created = Arc::default();
    let seen = created.clone();
    let proxy = FakeServer::proxy(&reg.addr, move |req, resp| {
        if req.method == "DELETE" {
            return Action::Respond(Resp::new(
                405,
                br#"{"errors":[{"code":"UNSUPPORTED","message":"deletes are off"}]}"#,
            ));
        }
        record_created(&seen, &req.method, &resp);
        Action::Respond(resp)
    });
    // Blobs of both digest algorithms, an image (manifests and tags), artifacts with a
    // subject (referrers) and the extra cases: every kind of content, in a fraction of the time.
    let (o, r, _out) = run_shipped_pack(
        &proxy.addr,
        &[
            "sha256 blobs",
            "sha512 blobs",
            "image",
            "artifacts-with-subject",
            "extra",
        ],
    );
    let left: Vec<String> = r["leftovers"]
        .as_array()
        .expect("leftovers in results.yaml")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert!(!left.is_empty(), "{}", text(&o));
    assert!(
        left.iter().all(|l| l.ends_with("(DELETE answered 405)")),
        "{left:?}"
    );
    // Everything the registry created is listed: the run tracked every push (also under
    // the name the registry gave it, e.g. a sha512 upload stored under its sha256 digest).
    let listed: BTreeSet<String> = left.iter().map(|l| path_of(l)).collect();
    let created = created.lock().unwrap().clone();
    assert!(!created.is_empty());
    let missing: Vec<&String> = created.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "not listed: {missing:?} (listed: {listed:?})"
    );
}

#[test]
fn a_normal_registry_is_left_empty() {
    let reg = Registry::docker();
    let (o, r, _out) = run_shipped_pack(&reg.addr, &[]);
    assert_eq!(r["leftovers"], serde_json::json!([]), "{}", text(&o));
    // Every piece of content that reached the registry (its blob store keeps the bytes until
    // garbage collection) must be unreachable from both repositories.
    let store = reg.dir.join("data/docker/registry/v2/blobs");
    let mut digests = Vec::new();
    for alg in std::fs::read_dir(&store)
        .expect("the run stored content")
        .flatten()
    {
        for prefix in std::fs::read_dir(alg.path()).unwrap().flatten() {
            for hex in std::fs::read_dir(prefix.path()).unwrap().flatten() {
                digests.push(format!(
                    "{}:{}",
                    alg.file_name().to_string_lossy(),
                    hex.file_name().to_string_lossy()
                ));
            }
        }
    }
    assert!(digests.len() > 50, "the run pushed content: {digests:?}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.oci.artifact.manifest.v1+json";
    let mut still = Vec::new();
    for repo in ["conformance/repo1", "conformance/repo2"] {
        for d in &digests {
            for kind in ["blobs", "manifests"] {
                let url = format!("http://{}/v2/{repo}/{kind}/{d}", reg.addr);
                let status = agent
                    .get(&url)
                    .header("Accept", accept)
                    .call()
                    .unwrap()
                    .status()
                    .as_u16();
                if status != 404 {
                    still.push(format!("{status} {url}"));
                }
            }
        }
        let mut resp = agent
            .get(format!("http://{}/v2/{repo}/tags/list", reg.addr))
            .call()
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        let tags = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|j| j["tags"].as_array().map(Vec::len))
            .unwrap_or(0);
        assert!(status == 404 || tags == 0, "{repo} still has tags: {body}");
    }
    assert!(
        still.is_empty(),
        "still there after the run:\n{}",
        still.join("\n")
    );
}

#[test]
fn a_registry_that_stops_answering_ends_the_run_after_a_few_timeouts() {
    // Answers the ping, then nothing: without giving up, the shipped pack would wait one
    // timeout per request (over a thousand seconds here).
    let dead = FakeServer::start(|req| {
        if req.path == "/v2/" {
            Action::Respond(Resp::new(200, b"{}").header("Content-Type", "application/json"))
        } else {
            Action::Hang
        }
    });
    let out = TempDir::new("dead");
    let t0 = Instant::now();
    let (o, r) = run_against(
        &dead.addr,
        &out.0,
        &["-q", "-j", "2"],
        &[("OCI_REQUEST_TIMEOUT", "1")],
    );
    let log = text(&o);
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "the run must give up on a dead registry: {log}"
    );
    assert_eq!(o.status.code(), Some(4), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let tests = r["tests"].as_array().unwrap();
    let reasons = |fragment: &str| {
        tests
            .iter()
            .filter(|t| t["status"] == "FAIL")
            .filter(|t| t["reason"].as_str().unwrap_or("").contains(fragment))
            .count()
    };
    // The first requests time out (one per lane and a few more), the rest are not sent.
    let timed_out = reasons("timed out after 1 s without an answer");
    let given_up = reasons(
        "not sent: the registry stopped answering (5 requests in a row timed out after 1 s)",
    );
    assert!((1..=8).contains(&timed_out), "{timed_out} timed out: {log}");
    assert!(given_up > 500, "{given_up} given up: {log}");
    // Only the ping and the first few requests reached the registry.
    let asked = dead.requests().len();
    assert!(asked < 20, "{asked} requests reached the registry");
}

#[test]
fn a_registry_that_reads_an_upload_too_slowly_fails_it_in_the_time_its_size_allows() {
    use std::io::{BufRead, BufReader, Read};
    // Reads the body 64 KiB every 50 ms: always some progress (no write ever waits a whole
    // timeout), but 32 MiB would take half a minute.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        while r.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let mut buf = vec![0u8; 64 << 10];
        while r.read(&mut buf).is_ok_and(|n| n > 0) {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let client = oci_conform::http::Client::new(
        oci_conform::http::ClientConfig {
            timeout: Duration::from_secs(1),
            tls: oci_conform::config::Tls::Disabled,
            // 32 MiB at 16 MiB/s: 2 s beyond the timeout.
            min_rate: 16 << 20,
            ..Default::default()
        },
        oci_conform::redact::Redactor::default(),
    )
    .unwrap();
    let req = oci_conform::http::Request {
        method: "PUT".into(),
        url: format!("http://{addr}/v2/slow/blobs/uploads/1?digest=sha256:00"),
        body: oci_conform::http::ReqBody::Bytes(Arc::new(vec![7u8; 32 << 20])),
        ..Default::default()
    };
    let t0 = Instant::now();
    let out = client.send(&req, &oci_conform::http::Recv::default());
    let took = t0.elapsed();
    let err = out.result.expect_err("the upload must fail").to_string();
    assert_eq!(
        err,
        "the registry took the 33554432-byte body too slowly: not sent after 3 s \
         (the request timeout plus 1 s per 16384 KiB)"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

#[test]
fn an_answer_that_never_ends_is_given_up() {
    let server = FakeServer::start(|_| Action::Endless);
    let client = oci_conform::http::Client::new(
        oci_conform::http::ClientConfig {
            tls: oci_conform::config::Tls::Disabled,
            max_unannounced: 8 << 20,
            ..Default::default()
        },
        oci_conform::redact::Redactor::default(),
    )
    .unwrap();
    let req = oci_conform::http::Request {
        method: "GET".into(),
        url: format!("http://{}/v2/endless/tags/list", server.addr),
        ..Default::default()
    };
    let resp = client
        .send(&req, &oci_conform::http::Recv::default())
        .result
        .expect("an answer");
    assert_eq!(resp.status, 200);
    let why = resp.body_error.expect("the body is given up");
    assert!(
        why.starts_with("the body goes on without a Content-Length past 8388608 bytes"),
        "{why}"
    );
}
