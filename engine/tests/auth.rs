//! Authentication against real registries: docker-registry with htpasswd (Basic) and with
//! token auth backed by a token server the test runs; plus the client's token cache and
//! expiry against fakes, where timing can be controlled.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::fake::{Action, FakeServer, Resp};
use common::registry::{htpasswd_auth, Options, Registry};
use common::token::{TokenOptions, TokenServer, SERVICE};
use common::{reason, run_against, status_of, text, TempDir};

const USER: &str = "alice";
const PASSWORD: &str = "c0rrect-h0rse";
const REPO1: &str = "conformance/repo1";
const REPO2: &str = "conformance/repo2";

/// Runs the `test-auth` pack (engine/tests/packs/auth) against `addr`.
fn run_auth_pack(
    addr: &str,
    out: &TempDir,
    env: &[(&str, &str)],
) -> (std::process::Output, serde_json::Value) {
    let args = [
        "--specs",
        "engine/tests/packs",
        "--spec-version",
        "test-auth",
        "--seed",
        "3",
    ];
    run_against(addr, &out.0, &args, env)
}

fn all_pass(r: &serde_json::Value) -> bool {
    r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "Pass")
}

fn htpasswd_registry(dir: &TempDir) -> Registry {
    Registry::docker_with(&Options {
        auth: Some(htpasswd_auth(&dir.0, USER, PASSWORD)),
        ..Options::default()
    })
}

#[test]
fn htpasswd_credentials_are_sent_when_challenged() {
    let keys = TempDir::new("htpasswd");
    let reg = htpasswd_registry(&keys);
    let out = TempDir::new("basic-ok");
    let (o, r) = run_auth_pack(
        &reg.addr,
        &out,
        &[("OCI_USERNAME", USER), ("OCI_PASSWORD", PASSWORD)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(all_pass(&r), "{}", text(&o));
    assert_eq!(r["leftovers"], serde_json::json!([]), "{}", text(&o));
}

#[test]
fn htpasswd_wrong_password_fails_the_ping_clearly_and_the_run_ends() {
    let keys = TempDir::new("htpasswd");
    let reg = htpasswd_registry(&keys);
    let out = TempDir::new("basic-wrong");
    let t0 = Instant::now();
    let (o, r) = run_auth_pack(
        &reg.addr,
        &out,
        &[("OCI_USERNAME", USER), ("OCI_PASSWORD", "wrong-password")],
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the run must not hang"
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(status_of(&r, "auth/ping"), "FAIL");
    let why = reason(&r, "auth/ping");
    assert!(why.contains("expected status 200, got 401"), "{why}");
    assert!(
        why.contains(
            "authentication failed: the registry rejected the credentials of user `alice`"
        ),
        "{why}"
    );
    // The console shows the same line.
    assert!(
        text(&o).contains("rejected the credentials of user `alice`"),
        "{}",
        text(&o)
    );
}

#[test]
fn htpasswd_without_credentials_says_how_to_give_them() {
    let keys = TempDir::new("htpasswd");
    let reg = htpasswd_registry(&keys);
    let out = TempDir::new("basic-anon");
    let (o, r) = run_auth_pack(&reg.addr, &out, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let why = reason(&r, "auth/ping");
    assert!(why.contains("set OCI_USERNAME and OCI_PASSWORD"), "{why}");
}

/// docker-registry with token auth, and the token server it trusts.
fn token_registry(dir: &TempDir, opts: TokenOptions) -> (TokenServer, Registry) {
    let tokens = TokenServer::start(&dir.0, opts);
    let reg = Registry::docker_with(&Options {
        auth: Some(tokens.registry_auth()),
        ..Options::default()
    });
    (tokens, reg)
}

fn alice() -> Option<(String, String)> {
    Some((USER.to_string(), PASSWORD.to_string()))
}

#[test]
fn token_flow_asks_for_the_scopes_each_request_needs_and_reuses_tokens() {
    let dir = TempDir::new("token");
    let (tokens, reg) = token_registry(
        &dir,
        TokenOptions {
            user: alice(),
            ..TokenOptions::default()
        },
    );
    // Counts the registry's 401 answers on the way.
    let refusals = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = refusals.clone();
    let proxy = FakeServer::proxy(&reg.addr, move |_, resp| {
        if resp.status == 401 {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Action::Respond(resp)
    });
    let out = TempDir::new("token-ok");
    let (o, r) = run_auth_pack(
        &proxy.addr,
        &out,
        &[("OCI_USERNAME", USER), ("OCI_PASSWORD", PASSWORD)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Only the ping meets a challenge: after it, every request carries a token for the
    // scopes it needs, asked for up front.
    assert_eq!(refusals.load(std::sync::atomic::Ordering::Relaxed), 1);
    // A 201 on the mount proves the token carried pull on the `from` repository: without
    // it distribution silently starts a normal upload (202).
    assert!(all_pass(&r), "{}", text(&o));
    assert_eq!(r["leftovers"], serde_json::json!([]), "{}", text(&o));

    let grants = tokens.grants();
    assert!(grants.iter().all(|g| g.user.as_deref() == Some(USER)));
    assert!(grants
        .iter()
        .all(|g| g.service.as_deref() == Some(SERVICE) && g.status == 200));
    let asked: Vec<Vec<String>> = grants.iter().map(|g| g.scopes.clone()).collect();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
    for want in [
        s(&[]),
        s(&[&format!("repository:{REPO2}:pull,push")]),
        s(&[
            &format!("repository:{REPO1}:pull,push"),
            &format!("repository:{REPO2}:pull"),
        ]),
        s(&[&format!("repository:{REPO1}:pull")]),
        s(&[&format!("repository:{REPO2}:pull")]),
        s(&[&format!("repository:{REPO1}:delete")]),
        s(&[&format!("repository:{REPO2}:delete")]),
    ] {
        assert!(
            asked.contains(&want),
            "scopes {want:?} never asked: {asked:?}"
        );
    }
    // With cacheAuth on, each scope set is asked for once: the three HEADs, the two pushes
    // to repo1 and the final cleanup reuse tokens.
    let distinct: HashSet<&Vec<String>> = asked.iter().collect();
    assert_eq!(
        distinct.len(),
        asked.len(),
        "a token was fetched twice: {asked:?}"
    );
}

#[test]
fn token_flow_without_cache_fetches_a_token_per_request() {
    let dir = TempDir::new("token");
    let (tokens, reg) = token_registry(
        &dir,
        TokenOptions {
            user: alice(),
            ..TokenOptions::default()
        },
    );
    let out = TempDir::new("token-nocache");
    let (o, r) = run_auth_pack(
        &reg.addr,
        &out,
        &[
            ("OCI_USERNAME", USER),
            ("OCI_PASSWORD", PASSWORD),
            ("OCI_CACHE_AUTH", "false"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(all_pass(&r), "{}", text(&o));
    let pulls = tokens
        .grants()
        .iter()
        .filter(|g| g.scopes == [format!("repository:{REPO1}:pull")])
        .count();
    // GET + two HEADs on repo1, each after its own 401.
    assert_eq!(pulls, 3, "{:?}", tokens.grants());
}

#[test]
fn anonymous_token_flow_sends_no_credentials() {
    let dir = TempDir::new("token");
    let (tokens, reg) = token_registry(
        &dir,
        TokenOptions {
            field: "access_token",
            ..TokenOptions::default()
        },
    );
    let out = TempDir::new("token-anon");
    let (o, r) = run_auth_pack(&reg.addr, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(all_pass(&r), "`access_token` is accepted: {}", text(&o));
    assert!(!tokens.grants().is_empty());
    // Not even an empty `Basic Og==` as the official suite sends.
    assert!(tokens.grants().iter().all(|g| !g.authorization));
}

#[test]
fn token_server_refusing_the_credentials_fails_with_its_answer() {
    let dir = TempDir::new("token");
    let (_tokens, reg) = token_registry(
        &dir,
        TokenOptions {
            user: alice(),
            ..TokenOptions::default()
        },
    );
    let out = TempDir::new("token-denied");
    let t0 = Instant::now();
    let (o, r) = run_auth_pack(
        &reg.addr,
        &out,
        &[("OCI_USERNAME", USER), ("OCI_PASSWORD", "not-the-password")],
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the run must not hang"
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let why = reason(&r, "auth/ping");
    assert!(why.contains("expected status 200, got 401"), "{why}");
    assert!(
        why.contains("authentication failed: the token server http://"),
        "{why}"
    );
    assert!(why.contains("answered 401 for user `alice`"), "{why}");
    assert!(why.contains("invalid username or password"), "{why}");
}

#[test]
fn a_scope_the_token_server_withholds_is_named_and_its_content_left_over() {
    let dir = TempDir::new("token");
    let (tokens, reg) = token_registry(
        &dir,
        TokenOptions {
            user: alice(),
            deny_actions: vec!["delete".into()],
            ..TokenOptions::default()
        },
    );
    let out = TempDir::new("token-scope");
    let (o, r) = run_auth_pack(
        &reg.addr,
        &out,
        &[("OCI_USERNAME", USER), ("OCI_PASSWORD", PASSWORD)],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(status_of(&r, "auth/mount"), "Pass");
    assert_eq!(status_of(&r, "auth/delete"), "FAIL");
    let why = reason(&r, "auth/delete");
    assert!(
        why.contains(&format!(
            "the registry refused the token for scope `repository:{REPO1}:delete` (insufficient_scope)"
        )),
        "{why}"
    );
    // The registry refuses the final cleanup's deletes too: all three blobs are left over.
    let left = r["leftovers"].as_array().unwrap();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.iter()
            .all(|l| l.as_str().unwrap().ends_with("(DELETE answered 401)")),
        "{left:?}"
    );
    assert!(tokens
        .grants()
        .iter()
        .any(|g| g.scopes == [format!("repository:{REPO1}:delete")]));
}

/// A fake registry accepting exactly the tokens the token server issued.
fn bearer_registry(tokens: &TokenServer) -> FakeServer {
    let realm = tokens.realm.clone();
    let grants = tokens.shared_grants();
    FakeServer::start(move |req| {
        let ok = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| {
                grants
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|g| g.token.as_deref() == Some(t))
            });
        if ok {
            Action::Respond(Resp::new(200, b"{}"))
        } else {
            Action::Respond(Resp::new(401, b"").header(
                "WWW-Authenticate",
                &format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\""),
            ))
        }
    })
}

fn client(cache: bool) -> oci_conform::http::Client {
    oci_conform::http::Client::new(
        oci_conform::http::ClientConfig {
            timeout: Duration::from_secs(5),
            tls: oci_conform::config::Tls::Disabled,
            username: USER.into(),
            password: oci_conform::redact::Secret::new(PASSWORD),
            cache_auth: cache,
            ..Default::default()
        },
        oci_conform::redact::Redactor::default(),
    )
    .unwrap()
}

fn get(c: &oci_conform::http::Client, url: &str) -> u16 {
    let req = oci_conform::http::Request {
        method: "GET".into(),
        url: url.into(),
        auth: true,
        ..Default::default()
    };
    c.send(&req, &oci_conform::http::Recv::default())
        .result
        .unwrap()
        .status
}

#[test]
fn tokens_are_reused_until_expires_in_runs_out() {
    let dir = TempDir::new("token-expiry");
    let tokens = TokenServer::start(
        &dir.0,
        TokenOptions {
            user: alice(),
            expires_in: 1,
            ..TokenOptions::default()
        },
    );
    let reg = bearer_registry(&tokens);
    let c = client(true);
    let url = format!("http://{}/v2/a/manifests/x", reg.addr);
    assert_eq!(get(&c, &url), 200);
    assert_eq!(get(&c, &url), 200);
    assert_eq!(
        tokens.grants().len(),
        1,
        "the second request reuses the token"
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&c, &url), 200);
    assert_eq!(
        tokens.grants().len(),
        2,
        "an expired token is replaced, before the registry has to refuse it"
    );
    // The renewal was asked up front: no second 401 from the registry.
    let unauthorized = reg
        .requests()
        .iter()
        .filter(|r| r.header("authorization").is_none())
        .count();
    assert_eq!(
        unauthorized, 1,
        "only the very first request goes without a token"
    );
}

#[test]
fn tokens_are_not_kept_when_the_cache_is_off() {
    let dir = TempDir::new("token-nocache");
    let tokens = TokenServer::start(
        &dir.0,
        TokenOptions {
            user: alice(),
            ..TokenOptions::default()
        },
    );
    let reg = bearer_registry(&tokens);
    let c = client(false);
    let url = format!("http://{}/v2/a/manifests/x", reg.addr);
    for _ in 0..3 {
        assert_eq!(get(&c, &url), 200);
    }
    assert_eq!(tokens.grants().len(), 3);
}
