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
