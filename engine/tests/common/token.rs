//! A token server for registry token auth (docker distribution's `auth: token:`), run by the
//! test on loopback: it signs ES256 JWTs with a test key whose certificate travels in the `x5c`
//! header, grants only the scopes asked for (minus the actions a test denies), and records
//! every request so tests can assert which scopes were asked for and that tokens were reused.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

use super::certs::{signing_key, SigningKey};
use super::fake::{Action, FakeServer, Req, Resp};

/// The service name the registry and the token server agree on.
pub const SERVICE: &str = "oci-conform-test-registry";
/// The issuer the registry trusts.
pub const ISSUER: &str = "oci-conform-test-issuer";

/// How the token server behaves.
#[derive(Clone)]
pub struct TokenOptions {
    /// The only credentials it accepts; None = anyone, with or without credentials.
    pub user: Option<(String, String)>,
    /// Actions never granted (e.g. `delete`), to make the registry refuse a request.
    pub deny_actions: Vec<String>,
    /// `expires_in` of every answer.
    pub expires_in: u64,
    /// Name of the JSON field holding the token: `token` or `access_token`.
    pub field: &'static str,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            user: None,
            deny_actions: Vec::new(),
            expires_in: 300,
            field: "token",
        }
    }
}

/// One token request as the server saw it.
#[derive(Clone, Debug)]
pub struct Grant {
    /// `scope` parameters, in order.
    pub scopes: Vec<String>,
    /// `service` parameter.
    pub service: Option<String>,
    /// The user of the Basic credentials sent, if any.
    pub user: Option<String>,
    /// Whether any Authorization header came.
    pub authorization: bool,
    /// Status answered.
    pub status: u16,
    /// The token issued (None when refused).
    pub token: Option<String>,
}

/// A running token server.
pub struct TokenServer {
    /// The server (stopped on drop).
    pub server: FakeServer,
    /// The realm URL to put in the registry's configuration.
    pub realm: String,
    grants: Arc<Mutex<Vec<Grant>>>,
    key: Arc<SigningKey>,
}

impl TokenServer {
    /// Makes a signing key in `dir` and starts the server.
    pub fn start(dir: &Path, opts: TokenOptions) -> Self {
        let key = Arc::new(signing_key(dir));
        let grants = Arc::new(Mutex::new(Vec::new()));
        let (k, g) = (key.clone(), grants.clone());
        let counter = AtomicU64::new(0);
        let server = FakeServer::start(move |req| {
            Action::Respond(answer(
                req,
                &opts,
                &k,
                &g,
                counter.fetch_add(1, Ordering::Relaxed),
            ))
        });
        let realm = format!("http://{}/token", server.addr);
        TokenServer {
            server,
            realm,
            grants,
            key,
        }
    }

    /// The `auth:` section of a docker-registry configuration trusting this server.
    pub fn registry_auth(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm,
            self.key.cert_pem.display()
        )
    }

    /// The live list of token requests, for a fake registry that checks tokens.
    pub fn shared_grants(&self) -> Arc<Mutex<Vec<Grant>>> {
        self.grants.clone()
    }

    /// Token requests seen so far.
    pub fn grants(&self) -> Vec<Grant> {
        self.grants.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

fn answer(
    req: &Req,
    opts: &TokenOptions,
    key: &SigningKey,
    grants: &Mutex<Vec<Grant>>,
    n: u64,
) -> Resp {
    let query = req.path.split_once('?').map_or("", |(_, q)| q);
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    let sent = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let user = sent
        .as_ref()
        .map(|p| p.split_once(':').map_or(p.as_str(), |(u, _)| u).to_string());
    let mut grant = Grant {
        scopes: scopes.clone(),
        service,
        user,
        authorization: req.header("authorization").is_some(),
        status: 200,
        token: None,
    };
    if let Some((u, p)) = &opts.user {
        if sent.as_deref() != Some(format!("{u}:{p}").as_str()) {
            grant.status = 401;
            grants.lock().unwrap().push(grant);
            return Resp::new(
                401,
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}"#,
            )
            .header("Content-Type", "application/json")
            .header("WWW-Authenticate", "Basic realm=\"token\"");
        }
    }
    // Grant exactly what was asked for, minus the denied actions.
    let mut access = Vec::new();
    for scope in scopes.iter().flat_map(|s| s.split(' ')) {
        let Some((resource, actions)) = scope.rsplit_once(':') else {
            continue;
        };
        let Some((typ, name)) = resource.split_once(':') else {
            continue;
        };
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| !a.is_empty() && !opts.deny_actions.iter().any(|d| d == a))
            .collect();
        access.push(json!({"type": typ, "name": name, "actions": granted}));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = json!({
        "iss": ISSUER,
        "sub": grant.user.clone().unwrap_or_default(),
        "aud": SERVICE,
        "exp": now + 900,
        "nbf": now - 60,
        "iat": now,
        "jti": format!("oci-conform-test-{n}-{now}"),
        "access": access,
    });
    let token = sign(key, &claims);
    grant.token = Some(token.clone());
    grants.lock().unwrap().push(grant);
    let body = json!({opts.field: token, "expires_in": opts.expires_in});
    Resp::new(200, body.to_string().as_bytes()).header("Content-Type", "application/json")
}

/// A compact ES256 JWS of `claims`, with the signing certificate in `x5c`.
fn sign(key: &SigningKey, claims: &serde_json::Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&key.cert_der)],
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.pkcs8, &rng)
        .expect("the test signing key is PKCS#8 P-256");
    let sig = pair.sign(&rng, input.as_bytes()).expect("sign");
    format!("{input}.{}", b64(sig.as_ref()))
}

/// Decodes `%XX` and `+` in a query component.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() && s.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
