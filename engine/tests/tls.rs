//! TLS modes against docker-registry serving a self-signed certificate made by the test:
//! `enabled` verifies (system roots plus `OCI_TLS_CA_FILE`), `insecure` accepts any certificate,
//! `disabled` speaks plain HTTP.

mod common;

use std::time::{Duration, Instant};

use common::certs::self_signed_tls;
use common::fake::{Action, FakeServer};
use common::registry::{Options, Registry};
use common::{cli, run_against, status_of, text, TempDir};

/// Runs the `test-auth` pack (push, mount, pull, delete) against `addr` with `env`.
fn run(addr: &str, env: &[(&str, &str)]) -> (std::process::Output, serde_json::Value) {
    let out = TempDir::new("tls");
    let args = [
        "--specs",
        "engine/tests/packs",
        "--spec-version",
        "test-auth",
    ];
    run_against(addr, &out.0, &args, env)
}

fn ping_reason(r: &serde_json::Value) -> String {
    r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "auth/ping")
        .and_then(|t| t["reason"].as_str())
        .unwrap_or("")
        .to_string()
}

fn tls_registry(dir: &TempDir) -> (Registry, std::path::PathBuf) {
    let files = self_signed_tls(&dir.0);
    let reg = Registry::docker_with(&Options {
        tls: Some((files.cert.clone(), files.key)),
        ..Options::default()
    });
    (reg, files.cert)
}

#[test]
fn enabled_without_the_ca_fails_on_the_certificate() {
    let dir = TempDir::new("certs");
    let (reg, _) = tls_registry(&dir);
    let (o, r) = run(&reg.addr, &[("OCI_TLS", "enabled")]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(status_of(&r, "auth/ping"), "FAIL");
    let why = ping_reason(&r);
    assert!(
        why.contains("GET /v2/: TLS error: invalid peer certificate"),
        "{why}"
    );
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert!(why.contains("set OCI_TLS_CA_FILE"), "{why}");
}

#[test]
fn enabled_with_the_ca_file_verifies_and_passes() {
    let dir = TempDir::new("certs");
    let (reg, ca) = tls_registry(&dir);
    let (o, r) = run(
        &reg.addr,
        &[
            ("OCI_TLS", "enabled"),
            ("OCI_TLS_CA_FILE", ca.to_str().unwrap()),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(r["status"], "Pass");
    assert!(r["registry"].as_str().unwrap().starts_with("https://"));
}

#[test]
fn a_ca_file_adds_to_the_system_roots_instead_of_replacing_them() {
    // The registry's certificate stands in for a public CA (SSL_CERT_FILE is where the system
    // roots are read from); the CA file names an unrelated private CA.
    let dir = TempDir::new("certs");
    let (reg, system) = tls_registry(&dir);
    let other = TempDir::new("other-ca");
    let private = self_signed_tls(&other.0).cert;
    let (o, r) = run(
        &reg.addr,
        &[
            ("OCI_TLS", "enabled"),
            ("SSL_CERT_FILE", system.to_str().unwrap()),
            ("OCI_TLS_CA_FILE", private.to_str().unwrap()),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(r["status"], "Pass");
    // And the system roots alone are trusted too.
    let (o, r) = run(
        &reg.addr,
        &[
            ("OCI_TLS", "enabled"),
            ("SSL_CERT_FILE", system.to_str().unwrap()),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(r["status"], "Pass");
}

#[test]
fn insecure_accepts_the_self_signed_certificate() {
    let dir = TempDir::new("certs");
    let (reg, _) = tls_registry(&dir);
    let (o, r) = run(&reg.addr, &[("OCI_TLS", "insecure")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(r["status"], "Pass");
}

#[test]
fn disabled_against_https_fails_with_the_servers_answer() {
    let dir = TempDir::new("certs");
    let (reg, _) = tls_registry(&dir);
    let (o, r) = run(&reg.addr, &[("OCI_TLS", "disabled")]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let why = ping_reason(&r);
    assert!(why.contains("expected status 200, got 400"), "{why}");
    assert!(why.contains("HTTP request to an HTTPS server"), "{why}");
}

#[test]
fn enabled_against_plain_http_says_so() {
    let reg = Registry::docker();
    let (o, r) = run(&reg.addr, &[("OCI_TLS", "enabled")]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let why = ping_reason(&r);
    assert!(why.contains("TLS error"), "{why}");
    assert!(why.contains("OCI_TLS=disabled"), "{why}");
}

#[test]
fn a_ca_file_that_cannot_be_used_is_bad_input() {
    let dir = TempDir::new("certs");
    std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
    for (file, want) in [
        (dir.join("missing.pem"), "cannot read CA file"),
        (dir.join("empty.pem"), "holds no PEM certificate"),
    ] {
        let o = cli(
            &["run", "--results-dir", dir.join("out").to_str().unwrap()],
            &[
                ("OCI_REGISTRY", "127.0.0.1:9"),
                ("OCI_TLS_CA_FILE", file.to_str().unwrap()),
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(want), "{}", text(&o));
    }
}

#[test]
fn a_server_that_never_answers_the_handshake_times_out() {
    let silent = FakeServer::start(|_| Action::Hang);
    let t0 = Instant::now();
    let (o, r) = run(
        &silent.addr,
        &[
            ("OCI_TLS", "enabled"),
            ("OCI_REQUEST_TIMEOUT", "1"),
            ("OCI_FILTER_TEST", "auth/ping"),
        ],
    );
    assert!(t0.elapsed() < Duration::from_secs(60), "the run must end");
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let why = ping_reason(&r);
    assert!(why.contains("timed out after 1 s"), "{why}");
}
