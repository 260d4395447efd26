//! Credentials never reach any output: runs of the shipped pack with `-v` against registries
//! behind htpasswd and token auth (and one that echoes the credentials it receives back in its
//! answers), then every output — stdout, stderr and each file in the results folder, whatever
//! its name — is searched for the password, its base64 forms and the tokens issued.

mod common;

use std::path::Path;

use base64::Engine as _;
use common::fake::{Action, FakeServer};
use common::registry::{htpasswd_auth, Options, Registry};
use common::token::{TokenOptions, TokenServer};
use common::{cli, TempDir};

const USER: &str = "carol";
const PASSWORD: &str = "Tr0ub4dor&3-secret";

/// Every form a credential could leak in.
fn forms(user: &str, password: &str) -> Vec<String> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let url = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pair = format!("{user}:{password}");
    vec![
        password.to_string(),
        b64.encode(password),
        url.encode(password),
        b64.encode(&pair),
        url.encode(&pair),
        pair,
    ]
}

/// Every output of a run: stdout, stderr, and each file under the results folder.
fn outputs(o: &std::process::Output, dir: &Path) -> Vec<(String, String)> {
    let mut all = vec![
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        ),
        (
            "stderr".to_string(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
    ];
    fn walk(dir: &Path, all: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, all);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                all.push((
                    p.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    walk(dir, &mut all);
    all
}

/// Runs the shipped pack verbosely and asserts no secret appears in any output.
fn run_and_search(addr: &str, password: &str, tokens: impl Fn() -> Vec<String>) -> String {
    let out = TempDir::new("secrets");
    let mut args = vec!["run", "-v", "--results-dir", out.0.to_str().unwrap()];
    // Every kind of request (blob uploads of all kinds, manifests, tags, referrers, the extra
    // cases) in a fraction of the time of the whole pack.
    for group in [
        "ping",
        "sha256 blobs",
        "image",
        "artifacts-with-subject",
        "extra",
    ] {
        args.extend(["--filter", group]);
    }
    let o = cli(
        &args,
        &[
            ("OCI_REGISTRY", addr),
            ("OCI_TLS", "disabled"),
            ("OCI_USERNAME", USER),
            ("OCI_PASSWORD", password),
        ],
    );
    let all = outputs(&o, &out.0);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.iter().any(|n| n.ends_with("results.yaml"))
            && names.iter().any(|n| n.ends_with("junit.xml"))
            && names.iter().any(|n| n.ends_with("report.html")),
        "{names:?}"
    );
    let mut secrets = forms(USER, password);
    for t in tokens() {
        // the whole token, and its signature (what makes it a credential)
        secrets.extend(t.rsplit('.').next().map(String::from));
        secrets.push(t);
    }
    for (name, text) in &all {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{name} holds the secret `{s}`");
        }
    }
    // The run did send credentials, masked in the traces.
    let console = format!("{}{}", all[0].1, all[1].1);
    assert!(
        console.contains("> Authorization: Basic ***")
            || console.contains("> Authorization: Bearer ***"),
        "{console}"
    );
    console
}

#[test]
fn htpasswd_credentials_never_appear_in_any_output() {
    let keys = TempDir::new("htpasswd");
    let reg = Registry::docker_with(&Options {
        auth: Some(htpasswd_auth(&keys.0, USER, PASSWORD)),
        ..Options::default()
    });
    run_and_search(&reg.addr, PASSWORD, Vec::new);
    // A wrong password is a secret too, also when every test fails because of it.
    let console = run_and_search(&reg.addr, "wr0ng-pa55word-xyz", Vec::new);
    assert!(
        console.contains("rejected the credentials of user `carol`"),
        "{console}"
    );
}

#[test]
fn credentials_echoed_by_the_registry_are_masked() {
    let keys = TempDir::new("htpasswd");
    let reg = Registry::docker_with(&Options {
        auth: Some(htpasswd_auth(&keys.0, USER, PASSWORD)),
        ..Options::default()
    });
    // A registry that repeats the Authorization it received in a header and in error bodies.
    let proxy = FakeServer::proxy(&reg.addr, |req, mut resp| {
        if let Some(auth) = req.header("authorization") {
            resp = resp.header("X-Echo", auth);
            if resp.status >= 400 {
                resp.body = format!(
                    "{{\"errors\":[{{\"code\":\"DENIED\",\"message\":\"you sent {auth}\"}}]}}"
                )
                .into_bytes();
            }
        }
        Action::Respond(resp)
    });
    let console = run_and_search(&proxy.addr, PASSWORD, Vec::new);
    assert!(console.contains("< X-Echo: Basic ***"), "{console}");
    assert!(console.contains("you sent Basic ***"), "{console}");
}

#[test]
fn tokens_and_credentials_never_appear_in_any_output() {
    let dir = TempDir::new("token-secrets");
    let tokens = TokenServer::start(
        &dir.0,
        TokenOptions {
            user: Some((USER.into(), PASSWORD.into())),
            ..TokenOptions::default()
        },
    );
    let reg = Registry::docker_with(&Options {
        auth: Some(tokens.registry_auth()),
        ..Options::default()
    });
    let issued = || -> Vec<String> {
        tokens
            .grants()
            .into_iter()
            .filter_map(|g| g.token)
            .collect()
    };
    run_and_search(&reg.addr, PASSWORD, issued);
    assert!(
        issued().len() >= 3,
        "tokens were issued: {:?}",
        tokens.grants()
    );
}
