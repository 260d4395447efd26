//! `oci-conform proxy` in front of a real docker-registry, driven with curl: the named
//! alteration changes exactly the answers it matches, everything else passes through (bodies
//! both ways, chunked uploads, HEAD lengths, kept-alive connections, Locations on the proxy),
//! and an upstream that does not answer is a 502.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::{bin, free_port, TempDir};

/// A running `oci-conform proxy`, killed on drop.
struct ProxyProcess {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
}

impl ProxyProcess {
    fn start(upstream: &str, apply: &[&str], dir: &TempDir) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join("proxy.log");
        let mut cmd = Command::new(bin());
        cmd.args(["proxy", "--upstream", upstream, "--listen", &addr]);
        for a in apply {
            cmd.args(["--apply", a]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start oci-conform proxy");
        let start = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the proxy did not listen: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ProxyProcess { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed")
}

/// The status and headers (names lower-case) of `curl -i` output, and the body.
fn parse(o: &Output) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let raw = &o.stdout;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[test]
fn the_named_violation_alters_only_its_answers() {
    let reg = Registry::docker();
    let dir = TempDir::new("proxy");
    let proxy = ProxyProcess::start(&reg.addr, &["upload-put-not-201"], &dir);
    let base = format!("http://{}", proxy.addr);
    let blob = b"bytes through the proxy\n".repeat(1000);
    let file = dir.join("blob");
    std::fs::write(&file, &blob).unwrap();
    let digest = sha256(&blob);

    // POST: passed through, the Location points at the proxy, not at the registry.
    let (status, h, _) = parse(&curl(&[
        "-i",
        "-X",
        "POST",
        &format!("{base}/v2/t/p/blobs/uploads/"),
    ]));
    assert_eq!(status, 202);
    let location = header(&h, "location").expect("Location").to_string();
    assert!(
        location.starts_with(&base) && !location.contains(&reg.addr),
        "{location}"
    );

    // The closing PUT, sent chunked: the alteration turns its 201 into 200.
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = curl(&[
        "-i",
        "-X",
        "PUT",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{location}{sep}digest={digest}"),
    ]);
    let (status, h, _) = parse(&put);
    assert_eq!(
        status,
        200,
        "altered: {}",
        String::from_utf8_lossy(&put.stdout)
    );
    assert_eq!(header(&h, "docker-content-digest"), Some(digest.as_str()));

    // The blob arrived whole; GET and HEAD pass through unchanged, on one connection.
    let url = format!("{base}/v2/t/p/blobs/{digest}");
    let both = curl(&["-v", "-o", "/dev/null", &url, "-o", "/dev/null", &url]);
    let trace = String::from_utf8_lossy(&both.stderr);
    assert!(
        trace.contains("Re-using existing connection") || trace.contains("Reusing existing"),
        "keep-alive: {trace}"
    );
    let (status, _, body) = parse(&curl(&["-i", &url]));
    assert_eq!(status, 200);
    assert_eq!(body, blob);
    let (status, h, body) = parse(&curl(&["-I", &url]));
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "content-length"),
        Some(blob.len().to_string().as_str())
    );
    assert!(body.is_empty());

    // The proxy prints each exchange and the alteration that changed it.
    let log = proxy.log();
    let put_line = log
        .lines()
        .find(|l| l.starts_with("PUT "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        put_line.contains("→ 200") && put_line.contains("[upload-put-not-201]"),
        "{log}"
    );
    assert!(
        log.lines()
            .filter(|l| l.starts_with("GET "))
            .all(|l| !l.contains('[')),
        "GETs are not altered: {log}"
    );
}

#[test]
fn an_upstream_that_does_not_answer_is_a_502_and_unknown_alterations_are_refused() {
    let dir = TempDir::new("proxy-down");
    let dead = format!("127.0.0.1:{}", free_port());
    let proxy = ProxyProcess::start(&dead, &[], &dir);
    let (status, _, body) = parse(&curl(&["-i", &format!("http://{}/v2/", proxy.addr)]));
    assert_eq!(status, 502);
    assert!(
        String::from_utf8_lossy(&body).contains("upstream"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    let o = common::cli(
        &["proxy", "--upstream", &dead, "--apply", "upload-put-not-20"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::text(&o));
    assert!(
        common::text(&o).contains("did you mean `upload-put-not-201`"),
        "{}",
        common::text(&o)
    );
}

/// The edits a registry cannot show by itself, on a stub upstream: pages served by the proxy,
/// rotating upload URLs, a cache that keeps what was deleted, occurrences, answers cut short,
/// chunked framing, and redirects to a path the proxy serves.
#[test]
fn the_stateful_edits_do_what_they_say() {
    use common::fake::{Action, FakeServer, Resp};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let deleted = Arc::new(AtomicBool::new(false));
    let gone = deleted.clone();
    let upstream = FakeServer::start(move |req| {
        let p = req.path.as_str();
        let json = |s: u16, b: &str| {
            Action::Respond(Resp::new(s, b.as_bytes()).header("Content-Type", "application/json"))
        };
        if p.starts_with("/v2/r/tags/list") {
            json(200, r#"{"name":"r","tags":["a","b","c","d","e"]}"#)
        } else if p.starts_with("/v2/r/blobs/uploads/") {
            Action::Respond(
                Resp::new(202, b"").header("Location", "/v2/r/blobs/uploads/u1?_state=x"),
            )
        } else if p == "/v2/r/manifests/m" && req.method == "DELETE" {
            gone.store(true, Ordering::SeqCst);
            json(202, "")
        } else if p == "/v2/r/manifests/m" {
            if gone.load(Ordering::SeqCst) {
                json(
                    404,
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}"#,
                )
            } else {
                json(200, r#"{"schemaVersion":2}"#)
            }
        } else if p == "/v2/r/blobs/sha256:b" {
            Action::Respond(Resp::new(200, &[b'z'; 5000]))
        } else {
            json(404, r#"{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}"#)
        }
    });
    let dir = TempDir::new("proxy-edits");
    std::fs::create_dir_all(dir.join("specs/alterations")).unwrap();
    std::fs::write(
        dir.join("specs/alterations/test.yaml"),
        r#"schemaVersion: 1
alterations:
  - id: pages
    kind: variant
    summary: tag lists in pages of two
    match: {method: GET, path: /tags/list$}
    edit: {paginate: {list: /tags, size: 2, cursor: last, limit: n, by: value}}
  - id: turns
    kind: variant
    summary: upload URLs rotate
    match: {path: /blobs/uploads/}
    edit:
      rotate:
        param: turn
        location: /blobs/uploads/
        refuse: {status: 404, body: {json: {errors: [{code: BLOB_UPLOAD_UNKNOWN, message: old}]}}}
  - id: cache
    kind: violation
    summary: deleted manifests stay
    match: {method: GET, path: /manifests/}
    edit: {stale: true}
    caught_by: [x]
  - id: second
    kind: violation
    summary: the second blob GET is cut after 10 bytes, the third chunked
    rules:
      - match: {method: GET, path: "/blobs/sha256:", nth: 2}
        edit: {cut: 10}
      - match: {method: GET, path: "/blobs/sha256:", nth: 3}
        edit: {chunked: true}
    caught_by: [x]
  - id: redirected
    kind: variant
    summary: blob GETs redirected
    rules:
      - match: {method: GET, path: '^/v2/.+/blobs/sha256:[a-z]+$', status: 200}
        edit: {status: 307, headers: {set: {Location: "/_redirected{{ request.target }}"}}, body: {empty: true}}
      - match: {path: ^/_redirected(/.*)$}
        edit: {forward: {path: "{{ captures[1] }}"}}
"#,
    )
    .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let specs = dir.join("specs");
    let start = |apply: &str| {
        let log = dir.join(&format!("{apply}.log"));
        let child = Command::new(bin())
            .args([
                "proxy",
                "--upstream",
                &upstream.addr,
                "--listen",
                &addr,
                "--apply",
                apply,
            ])
            .arg("--specs")
            .arg(&specs)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the proxy");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ProxyProcess {
            child,
            addr: addr.clone(),
            log,
        }
    };
    let base = format!("http://{addr}");

    // Pages of two, the Link leading on until the list ends; n=0 is empty, without a Link.
    let p = start("pages");
    let mut url = format!("{base}/v2/r/tags/list?n=3");
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (status, h, body) = parse(&curl(&["-i", &url]));
        assert_eq!(status, 200);
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let tags = doc["tags"].as_array().unwrap().clone();
        assert!(tags.len() <= 2, "{doc}");
        seen.extend(tags);
        match header(&h, "link") {
            Some(l) => {
                let next = l.trim_start_matches('<').split('>').next().unwrap();
                assert!(next.contains("n=3") && next.contains("last="), "{l}");
                url = format!("{base}{next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    let (_, h, body) = parse(&curl(&["-i", &format!("{base}/v2/r/tags/list?n=0")]));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["tags"],
        serde_json::json!([])
    );
    assert!(header(&h, "link").is_none());
    drop(p);

    // Each answer hands out a new upload URL; the previous one is refused.
    let p = start("turns");
    let (_, h, _) = parse(&curl(&[
        "-i",
        "-X",
        "POST",
        &format!("{base}/v2/r/blobs/uploads/"),
    ]));
    let first = header(&h, "location").unwrap().to_string();
    assert!(first.contains("turn=t1"), "{first}");
    let abs = |l: &str| {
        if l.starts_with('/') {
            format!("{base}{l}")
        } else {
            l.to_string()
        }
    };
    let (status, h, _) = parse(&curl(&["-i", "-X", "PATCH", "--data", "x", &abs(&first)]));
    assert_eq!(status, 202);
    let second = header(&h, "location").unwrap().to_string();
    assert!(second.contains("turn=t2"), "{second}");
    let (status, _, body) = parse(&curl(&["-i", "-X", "PATCH", "--data", "x", &abs(&first)]));
    assert_eq!(status, 404, "the old URL is refused");
    assert!(String::from_utf8_lossy(&body).contains("BLOB_UPLOAD_UNKNOWN"));
    drop(p);

    // A deleted manifest is still served from the cache.
    let p = start("cache");
    let m = format!("{base}/v2/r/manifests/m");
    assert_eq!(parse(&curl(&["-i", &m])).0, 200);
    assert_eq!(parse(&curl(&["-i", "-X", "DELETE", &m])).0, 202);
    let (status, _, body) = parse(&curl(&["-i", &m]));
    assert_eq!((status, body), (200, br#"{"schemaVersion":2}"#.to_vec()));
    drop(p);

    // The first GET whole, the second cut short (curl: transfer closed early), the third chunked.
    let p = start("second");
    let b = format!("{base}/v2/r/blobs/sha256:b");
    assert_eq!(parse(&curl(&["-i", &b])).2.len(), 5000);
    let cut = curl(&["-i", &b]);
    assert_eq!(
        cut.status.code(),
        Some(18),
        "partial transfer: {}",
        text_of(&cut)
    );
    let (_, h, body) = parse(&curl(&["-i", &b]));
    assert_eq!(header(&h, "transfer-encoding"), Some("chunked"));
    assert!(header(&h, "content-length").is_none());
    assert_eq!(body.len(), 5000, "curl decodes the chunks");
    drop(p);

    // A redirect to a path the proxy serves from upstream.
    let p = start("redirected");
    let (status, h, _) = parse(&curl(&["-i", &b]));
    assert_eq!(status, 307);
    assert_eq!(
        header(&h, "location"),
        Some("/_redirected/v2/r/blobs/sha256:b")
    );
    let followed = curl(&[
        "-L",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        &b,
    ]);
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "200 5000");
    drop(p);
}

fn text_of(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
