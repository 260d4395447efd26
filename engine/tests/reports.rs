//! The reports of a real run against docker-registry behind a proxy that breaks the spec:
//! report.html rendered in headless Chromium, junit.xml read by a real XML parser, the curl
//! reproduction executed, the console modes, and `compare` between real runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fake::{Action, FakeServer};
use common::registry::{which, Registry};
use common::{cli, results, status_of, text, TempDir};

const FAILING: &str = "sha256 blobs/post+put/blob-post-put";
const SPEC_ENDPOINTS: &str =
    "https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#endpoints";

/// A proxy that answers blob upload PUTs with 200 instead of 201 (a MUST) and serves
/// manifests with a wrong Content-Type (a SHOULD, so a warning).
fn violating_proxy(reg: &Registry) -> FakeServer {
    FakeServer::proxy(&reg.addr, |req, mut resp| {
        if req.method == "PUT" && req.path.contains("/blobs/uploads/") && resp.status == 201 {
            resp.status = 200;
        }
        if req.method == "GET" && req.path.contains("/manifests/") && resp.status == 200 {
            resp = resp
                .without("content-type")
                .header("Content-Type", "application/octet-stream");
        }
        Action::Respond(resp)
    })
}

fn run(addr: &str, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    // Groups whose verdicts on docker-registry 2.8 are known to pass (the full pack finds
    // real violations in docker-registry, see run_docker.rs).
    let mut args = vec![
        "run",
        "--results-dir",
        out.to_str().unwrap(),
        "--seed",
        "11",
        "--filter",
        "ping",
        "--filter",
        "sha256 blobs/post+put",
        "--filter",
        "image/",
    ];
    args.extend_from_slice(extra);
    let mut all = vec![("OCI_REGISTRY", addr), ("OCI_TLS", "disabled")];
    all.extend_from_slice(env);
    cli(&args, &all)
}

/// Runs a program with a deadline, so a stuck browser cannot hang the test suite.
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(out_pipe).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(err_pipe).unwrap_or_default());
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap().into_bytes(),
        stderr: err.join().unwrap().into_bytes(),
    }
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| which(n))
}

fn browser(bin: &Path, profile: &Path, args: &[&str], page: &Path) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    run_with_timeout(&mut cmd, Duration::from_secs(120))
}

fn test_entry<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no test {id}"))
}

#[test]
fn report_html_renders_in_chromium_with_what_a_failure_needs() {
    let reg = Registry::docker();
    let proxy = violating_proxy(&reg);
    let out = TempDir::new("html");
    let o = run(&proxy.addr, &out.0, &[], &[]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let r = results(&out.0);
    assert_eq!(status_of(&r, FAILING), "FAIL");
    let source = test_entry(&r, FAILING)["source"]
        .as_str()
        .unwrap()
        .to_string();
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html written");
    // The finding starts with its step's name, and results.yaml numbers its exchange as the
    // report does.
    let finding = &test_entry(&r, FAILING)["failures"][0];
    assert!(
        finding["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("upload the blob: PUT "),
        "{finding}"
    );
    let n = finding["exchange"]
        .as_u64()
        .expect("the exchange it was decided on");
    assert!(
        html.contains(&format!("-x{n}\">exchange #{n}</a>")),
        "exchange {n} of results.yaml is not #{n} of the report"
    );

    // Self-contained: nothing is loaded from anywhere.
    for banned in ["<script", "<link", "src=", "@import", "url("] {
        assert!(
            !html.contains(banned),
            "report.html must not contain {banned}"
        );
    }
    // Bodies of the failing requests are written and hold exactly the bytes sent.
    let bodies: Vec<_> = std::fs::read_dir(out.join("bodies"))
        .expect("bodies/ written")
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!bodies.is_empty());
    for b in &bodies {
        let name = b.file_name().unwrap().to_str().unwrap();
        let hex = name
            .strip_prefix("sha256-")
            .and_then(|n| n.strip_suffix(".bin"))
            .expect("named by digest");
        let o = Command::new("sha256sum")
            .arg(b)
            .output()
            .expect("sha256sum");
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with(hex),
            "{name} does not hold the bytes its name says"
        );
    }

    let Some(bin) = chromium() else {
        assert!(
            std::env::var("OCI_REQUIRE_CHROMIUM").is_err(),
            "chromium is required (WITH_CHROMIUM=1 scripts/install-deps)"
        );
        eprintln!("SKIPPED the browser part: chromium is not installed (WITH_CHROMIUM=1 scripts/install-deps)");
        return;
    };
    let page = out.join("report.html");
    let dom = browser(&bin, &out.join("profile-dom"), &["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(
        dom.contains("<table class=\"rollup\" id=\"apis\">"),
        "API table missing from the DOM: {}",
        &dom[..dom.len().min(2000)]
    );
    assert!(
        dom.contains("<table class=\"rollup\" id=\"data\">"),
        "data table missing"
    );
    assert!(dom.contains(">Blob post put</td>"), "API rows missing");
    // The failing test: its curl line, its spec link and its scenario file:line.
    let start = dom
        .find(&format!("<span class=\"tid\">{FAILING}</span>"))
        .expect("failing test in the DOM");
    let details = &dom[dom[..start].rfind("<details").unwrap()..];
    let details = &details[..details.find("</details>").unwrap()];
    assert!(
        details.contains(" open=\"\"") || details.contains(" open>") || details.contains(" open "),
        "a failing test starts open: {}",
        &details[..300]
    );
    assert!(
        details.contains("<pre class=\"curl\">"),
        "curl block missing"
    );
    assert!(
        details.contains("LOCATION_1=$(curl -sS -X 'POST'"),
        "curl line of the POST missing"
    );
    assert!(
        details.contains("--data-binary @'bodies/sha256-"),
        "the PUT reads its body from a file"
    );
    assert!(
        details.contains(&format!("href=\"{SPEC_ENDPOINTS}\"")),
        "spec anchor link missing"
    );
    assert!(details.contains(">end-4a</a>"), "anchor text missing");
    assert!(details.contains(&source), "scenario {source} missing");
    assert!(
        details.contains("expected status 201, got 200"),
        "finding missing"
    );
    assert!(
        dom.contains("Warnings (SHOULD/MAY not met; not failures)"),
        "the SHOULD miss is listed as a warning"
    );
    // The status filter starts on the failures.
    assert!(
        dom.contains("id=\"show-fail\" class=\"flt\" checked"),
        "filter not preset to FAIL"
    );

    let shot = out.join("report.png");
    let o = browser(
        &bin,
        &out.join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,3000",
        ],
        &page,
    );
    let png = std::fs::read(&shot).unwrap_or_else(|_| panic!("no screenshot: {}", text(&o)));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "screenshot is not a real PNG ({} bytes)",
        png.len()
    );
    if let Ok(keep) = std::env::var("OCI_KEEP_REPORT") {
        let keep = PathBuf::from(keep);
        let _ = std::fs::create_dir_all(&keep);
        for f in ["report.html", "report.png", "junit.xml", "results.yaml"] {
            let _ = std::fs::copy(out.join(f), keep.join(f));
        }
    }
}

#[test]
fn the_curl_reproduction_of_a_failure_reproduces_it() {
    if which("curl").is_none() {
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let reg = Registry::docker();
    let proxy = violating_proxy(&reg);
    let out = TempDir::new("curl");
    let o = run(
        &proxy.addr,
        &out.0,
        &["--filter", "sha256 blobs/post+put"],
        &[],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let script = junit_check(&out.0, Some(("sha256 blobs.post+put", "blob-post-put")))["repro"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(script.contains("LOCATION_1=$(curl"), "{script}");
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&out.0)
        .output()
        .expect("bash");
    let shown = text(&o);
    assert!(o.status.success(), "{script}\n{shown}");
    // The PUT through the proxy answers 200 again: the violation is reproduced.
    assert!(
        shown.contains("HTTP/1.1 202"),
        "POST answer not shown: {shown}"
    );
    assert!(
        shown.contains("HTTP/1.1 200"),
        "PUT answer not 200: {shown}"
    );
    assert!(!shown.contains("HTTP/1.1 201"), "{shown}");
}

/// Parses junit.xml with Python's XML parser; returns its tallies (and a failure's
/// reproduction script when `case` names one).
fn junit_check(dir: &Path, case: Option<(&str, &str)>) -> serde_json::Value {
    const PY: &str = r#"
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.iter("testcase")
out = {"root": root.tag, "tests": int(root.get("tests")), "failures": int(root.get("failures")),
       "errors": int(root.get("errors")), "skipped": int(root.get("skipped")),
       "cases": 0, "failure": 0, "error": 0, "skip": 0, "messages": True, "times": True, "classnames": True,
       "suite_tests": sum(int(s.get("tests")) for s in root.iter("testsuite")), "repro": None}
for c in cases:
    out["cases"] += 1
    float(c.get("time"))
    if not c.get("classname"): out["classnames"] = False
    for tag, key in (("failure", "failure"), ("error", "error"), ("skipped", "skip")):
        e = c.find(tag)
        if e is not None:
            out[key] += 1
            if not e.get("message"): out["messages"] = False
            if len(sys.argv) > 3 and c.get("classname") == sys.argv[2] and c.get("name") == sys.argv[3] and tag == "failure":
                out["repro"] = e.text.split("reproduce:\n", 1)[1]
print(json.dumps(out))
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(PY).arg(dir.join("junit.xml"));
    if let Some((class, name)) = case {
        cmd.args([class, name]);
    }
    let o = cmd.output().expect("python3 runs");
    assert!(o.status.success(), "junit.xml does not parse: {}", text(&o));
    serde_json::from_slice(&o.stdout).expect("json from python")
}

#[test]
fn junit_xml_parses_and_agrees_with_results_yaml() {
    let reg = Registry::docker();
    let proxy = violating_proxy(&reg);
    let out = TempDir::new("junit");
    let o = run(&proxy.addr, &out.0, &[], &[]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let r = results(&out.0);
    let c = &r["counts"];
    let j = junit_check(&out.0, Some(("sha256 blobs.post+put", "blob-post-put")));
    assert_eq!(j["root"], "testsuites");
    assert_eq!(j["tests"], c["Total"]);
    assert_eq!(j["cases"], c["Total"]);
    assert_eq!(j["suite_tests"], c["Total"]);
    assert!(c["FAIL"].as_u64().unwrap() > 0);
    assert_eq!(j["failures"], c["FAIL"]);
    assert_eq!(j["failure"], c["FAIL"]);
    assert_eq!(j["error"], c["Error"]);
    let skipped = c["Skip"].as_u64().unwrap() + c["Disabled"].as_u64().unwrap();
    assert!(skipped > 0);
    assert_eq!(j["skipped"], skipped);
    assert_eq!(j["skip"], skipped);
    assert_eq!(
        j["messages"], true,
        "every failure/skipped element has a message"
    );
    assert_eq!(
        j["classnames"], true,
        "every test case has its group as classname"
    );
    assert!(j["repro"].as_str().unwrap().contains("curl -sS"), "{j}");
}

#[test]
fn console_modes_plain_quiet_verbose() {
    let reg = Registry::docker();
    let proxy = violating_proxy(&reg);
    let out = TempDir::new("console");
    let filter = ["--filter", "sha256 blobs/post+put"];
    // Not a terminal: plain lines, no colour, the failure printed when it happens.
    let o = run(&proxy.addr, &out.0, &filter, &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        // the step's name leads what it found
        stderr.contains(&format!("FAIL {FAILING}: upload the blob: PUT /v2/")),
        "{stderr}"
    );
    assert!(
        stderr.contains("] sha256 blobs/post+put\n"),
        "group line missing: {stderr}"
    );
    assert!(
        !stderr.contains('\r') && !format!("{stdout}{stderr}").contains('\x1b'),
        "no live line or colour off a terminal"
    );
    let failures = stdout.find("Failures (").expect("failures listed");
    assert!(failures < stdout.find("OCI Conformance Result: FAIL").unwrap());
    assert!(stdout.contains("expected status 201, got 200"), "{stdout}");
    assert!(
        stdout.contains("          at specs/1.1/"),
        "where the failure was decided: {stdout}"
    );
    // -q: the summary only.
    let o = run(&proxy.addr, &out.0, &[&filter[..], &["-q"]].concat(), &[]);
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "",
        "-q prints nothing but the summary"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("OCI Conformance Result: FAIL"));
    // -v: every request and answer, credentials masked.
    let o = run(
        &proxy.addr,
        &out.0,
        &[&filter[..], &["-v"]].concat(),
        &[("OCI_USERNAME", "alice"), ("OCI_PASSWORD", "pw-s3cret-9")],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("> PUT http://") && stderr.contains("< 200 ("),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("── FAIL {FAILING}")), "{stderr}");
    for f in ["results.yaml", "junit.xml", "report.html"] {
        let t = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(!t.contains("pw-s3cret-9"), "{f} leaks the password");
    }
    assert!(!format!("{}{stderr}", String::from_utf8_lossy(&o.stdout)).contains("pw-s3cret-9"));
}

#[test]
fn on_a_terminal_the_progress_line_is_redrawn_and_no_color_turns_colour_off() {
    if which("script").is_none() {
        eprintln!("SKIPPED: `script` (util-linux) is not installed");
        return;
    }
    let reg = Registry::docker();
    let proxy = violating_proxy(&reg);
    let out = TempDir::new("tty");
    let on_tty = |no_color: bool| {
        let cmd = format!(
            "{} run --results-dir {} --seed 11 --filter 'sha256 blobs/post+put'",
            common::bin().display(),
            out.0.display()
        );
        let mut c = Command::new("script");
        c.args(["-q", "-e", "-c", &cmd, "/dev/null"])
            .current_dir(common::root());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OCI_") || k == "NO_COLOR") {
            c.env_remove(k);
        }
        c.env("OCI_REGISTRY", &proxy.addr)
            .env("OCI_TLS", "disabled")
            .env("COLUMNS", "100");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let o = run_with_timeout(&mut c, Duration::from_secs(120));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let shown = on_tty(false);
    assert!(
        shown.contains("\r\x1b[2K["),
        "live line not redrawn in place: {shown:?}"
    );
    assert!(
        shown.contains("\x1b[31mFAIL"),
        "no colour on a terminal: {shown:?}"
    );
    let shown = on_tty(true);
    assert!(shown.contains("\r\x1b[2K["), "{shown:?}");
    assert!(
        !shown.contains("\x1b[3") && !shown.contains("\x1b[1;3"),
        "NO_COLOR must turn colours off: {shown:?}"
    );
}

fn compare(old: &Path, new: &Path) -> (Option<i32>, String) {
    let o = cli(
        &["compare", old.to_str().unwrap(), new.to_str().unwrap()],
        &[],
    );
    (o.status.code(), text(&o))
}

#[test]
fn compare_lists_changes_and_fails_on_regressions() {
    let reg = Registry::docker();
    let (a, b, c) = (
        TempDir::new("cmp-a"),
        TempDir::new("cmp-b"),
        TempDir::new("cmp-c"),
    );
    assert_eq!(run(&reg.addr, &a.0, &[], &[]).status.code(), Some(0));
    assert_eq!(
        run(&reg.addr, &b.0, &["--set", "apis.tags.delete=false"], &[])
            .status
            .code(),
        Some(0)
    );
    let proxy = violating_proxy(&reg);
    assert_eq!(run(&proxy.addr, &c.0, &[], &[]).status.code(), Some(4));
    let (ra, rb, rc) = (
        a.join("results.yaml"),
        b.join("results.yaml"),
        c.join("results.yaml"),
    );

    // A toggle turned off: Skip → Disabled is a change, not a regression.
    let (code, out) = compare(&ra, &rb);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Other changes ("), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  API   Tag delete ") && l.ends_with("Skip → Disabled")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("  test  image/delete/tag-delete[image]")
                && l.ends_with("→ Disabled")),
        "{out}"
    );
    assert!(out.contains("\n0 regression(s)"), "{out}");

    // A broken registry: regressions first, with NEW's reason, exit 4.
    let (code, out) = compare(&ra, &rc);
    assert_eq!(code, Some(4), "{out}");
    let reg_at = out.find("Regressions (").expect("regressions listed");
    assert!(
        out.find("Improvements (").is_none_or(|i| i > reg_at)
            && out.find("Other changes (").is_none_or(|i| i > reg_at),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("  API   Blob post put ") && l.ends_with("Pass → FAIL")),
        "{out}"
    );
    assert!(out.contains(&format!("  test  {FAILING}")), "{out}");
    assert!(out.contains("expected status 201, got 200"), "{out}");
    // And back: only improvements, exit 0.
    let (code, out) = compare(&rc, &ra);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Improvements (") && !out.contains("Regressions ("),
        "{out}"
    );

    // The official suite's file shape (top key `Config`, no tests): APIs and data compared.
    let official = a.join("official.yaml");
    let ours = results(&a.0);
    let mut doc = String::from("Config:\n  registry: 127.0.0.1:5000\n  version: \"1.1\"\napis:\n");
    for (k, v) in ours["apis"].as_object().unwrap() {
        let v = if k == "Ping" {
            "FAIL"
        } else {
            v.as_str().unwrap()
        };
        doc.push_str(&format!("  {k}: {v}\n"));
    }
    doc.push_str("data:\n  Image: Pass\n  Not A Data Set: Disabled\n");
    std::fs::write(&official, doc).unwrap();
    let (code, out) = compare(&official, &ra);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("tests not compared"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  API   Ping ") && l.ends_with("FAIL → Pass")),
        "{out}"
    );
    assert!(
        out.contains("Only in OLD (1):\n  data  Not A Data Set"),
        "{out}"
    );
    assert!(
        !out.contains("  API   Blob post put"),
        "unchanged APIs are not listed: {out}"
    );
    // The real official files, when this machine has the reference material.
    let refdir = Path::new("/work/shared/reference/official-results");
    if refdir.exists() {
        let (d, f) = (
            refdir.join("docker-registry-2.8.2/results.yaml"),
            refdir.join("ferro-oci-server-1.0.0/results.yaml"),
        );
        let (code, out) = compare(&d, &f);
        assert_eq!(code, Some(4), "{out}");
        assert!(out.lines().any(|l| l.starts_with("  API   Blob delete atomic ") && l.ends_with("Pass → FAIL")), "{out}");
        let (code, out) = compare(&d, &ra);
        assert!(matches!(code, Some(0 | 4)), "{out}");
        // Lines without an arrow are the "Only in" lists: no API may be there.
        assert!(
            !out.lines()
                .any(|l| l.starts_with("  API   ") && !l.contains('→')),
            "the 28 API names match the official ones: {out}"
        );
    }

    // Unreadable input.
    let (code, out) = compare(&a.join("missing.yaml"), &ra);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("missing.yaml: cannot read"), "{out}");
    let (code, out) = compare(&common::root().join("specs/1.1/pack.yaml"), &ra);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("pack.yaml: `apis` is not a mapping"), "{out}");
    std::fs::write(a.join("empty.yaml"), "{}\n").unwrap();
    let (code, out) = compare(&ra, &a.join("empty.yaml"));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("empty.yaml: not a results file"), "{out}");
}
