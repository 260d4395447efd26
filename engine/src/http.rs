//! HTTP: one ureq agent for the whole run.
//!
//! - 4xx/5xx are answers, not errors; redirects are followed only when a step allows it, by
//!   this module (so each hop is recorded and `Authorization` is dropped when the host changes);
//! - every request has inactivity timeouts, so a registry that stops answering fails that
//!   request after `requestTimeout` seconds instead of hanging the run;
//! - bodies stream in both directions; response bodies are digested while they stream (no
//!   content decoding: the bytes hashed are the bytes sent) and only a bounded prefix is kept;
//! - authentication follows the registry's challenge: Basic, or the token flow with the scopes
//!   each request needs, tokens cached per scope until they expire.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ureq::http;

use crate::config::Tls;
use crate::content::{Content, Hasher};
use crate::redact::{is_sensitive_header, Redactor, Secret, MASK};
use crate::template::{encode_component, resolve_url};

/// Bytes of a response body kept in memory for checks and reports (the rest is only hashed).
pub const DEFAULT_KEEP: u64 = 8 << 20;
/// Bytes of a body shown in records.
const EXCERPT: usize = 4096;

/// How the client talks to the registry.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Inactivity timeout per request phase (connect, send, each read).
    pub timeout: Duration,
    /// TLS mode.
    pub tls: Tls,
    /// Extra CA certificate file (PEM).
    pub ca_file: Option<std::path::PathBuf>,
    /// User name for Basic auth and token requests.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Whether bearer tokens are reused per scope.
    pub cache_auth: bool,
    /// Requests that may be in flight at once (parallel runs); the pool keeps that many
    /// connections open.
    pub connections: usize,
}

/// A request body.
#[derive(Clone, Debug, Default)]
pub enum ReqBody {
    /// No body.
    #[default]
    None,
    /// Bytes in memory.
    Bytes(Arc<Vec<u8>>),
    /// A dataset item's bytes or a range of them, streamed.
    Content(Content, Option<(u64, u64)>),
}

impl ReqBody {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            ReqBody::None => 0,
            ReqBody::Bytes(b) => b.len() as u64,
            ReqBody::Content(c, None) => c.len(),
            ReqBody::Content(_, Some((s, e))) => e.saturating_sub(*s) + 1,
        }
    }

    /// Whether there is no body.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the bytes this body sends.
    pub fn reader(&self) -> Box<dyn Read + Send> {
        match self {
            ReqBody::None => Box::new(std::io::empty()),
            ReqBody::Bytes(b) => Box::new(std::io::Cursor::new(b.as_ref().clone())),
            ReqBody::Content(c, r) => c.reader(*r),
        }
    }

    fn summary(&self) -> BodySummary {
        match self {
            ReqBody::None => BodySummary::default(),
            ReqBody::Bytes(b) => BodySummary::of(b, b.len() as u64, None),
            ReqBody::Content(c, r) => match c.bytes() {
                Some(b) if c.len() <= EXCERPT as u64 * 1024 => {
                    let (s, e) = r.unwrap_or((0, c.len().saturating_sub(1)));
                    let slice = if b.is_empty() {
                        &b[..]
                    } else {
                        &b[s as usize..=(e as usize).min(b.len() - 1)]
                    };
                    BodySummary::of(slice, slice.len() as u64, None)
                }
                _ => BodySummary {
                    len: self.len(),
                    text: None,
                    digest: c.digest("sha256", *r),
                },
            },
        }
    }
}

/// A request to send.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: ReqBody,
    /// Chunked transfer encoding instead of Content-Length.
    pub chunked: bool,
    /// Follow 3xx answers.
    pub follow_redirects: bool,
    /// Whether credentials may be sent.
    pub auth: bool,
}

/// What to do with a response body.
#[derive(Clone, Debug)]
pub struct Recv {
    /// Digest algorithms to compute while streaming.
    pub digests: Vec<String>,
    /// Bytes to keep in memory.
    pub keep: u64,
}

impl Default for Recv {
    fn default() -> Self {
        Recv {
            digests: vec!["sha256".into()],
            keep: DEFAULT_KEEP,
        }
    }
}

/// An answer.
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// URL of the final request (after redirects).
    pub url: String,
    /// The first `keep` bytes of the body.
    pub body: Vec<u8>,
    /// Total body length read.
    pub body_len: u64,
    /// Digests of the whole body, `(alg, alg:hex)`.
    pub digests: Vec<(String, String)>,
    /// Set when the body could not be read to its end (reset, timeout, short read).
    pub body_error: Option<String>,
    /// Time from sending to the end of the body.
    pub elapsed: Duration,
}

impl Response {
    /// First value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the whole body is in memory.
    pub fn body_complete(&self) -> bool {
        self.body.len() as u64 == self.body_len && self.body_error.is_none()
    }

    /// The digest of the body with `alg`, if computed.
    pub fn digest(&self, alg: &str) -> Option<&str> {
        self.digests
            .iter()
            .find(|(a, _)| a == alg)
            .map(|(_, d)| d.as_str())
    }
}

/// A short description of a body for records.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct BodySummary {
    /// Length in bytes.
    pub len: u64,
    /// The text, when short and printable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// sha256 digest when the body is not shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl BodySummary {
    fn of(bytes: &[u8], len: u64, digest: Option<String>) -> Self {
        let shown = &bytes[..bytes.len().min(EXCERPT)];
        let text = std::str::from_utf8(shown)
            .ok()
            .filter(|t| t.chars().all(|c| !c.is_control() || c.is_whitespace()))
            .map(|t| {
                if (bytes.len() as u64) < len || bytes.len() > EXCERPT {
                    format!("{t}…")
                } else {
                    t.to_string()
                }
            });
        let digest = if text.is_none() || len as usize > EXCERPT {
            digest.or_else(|| {
                (len == bytes.len() as u64)
                    .then(|| crate::template::digest_bytes("sha256", bytes))
                    .flatten()
            })
        } else {
            None
        };
        BodySummary { len, text, digest }
    }
}

/// One request and its answer as recorded for reports (credentials masked).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Exchange {
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Request headers.
    pub request_headers: Vec<(String, String)>,
    /// Request body.
    pub request_body: BodySummary,
    /// Whether the request body was sent chunked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub chunked: bool,
    /// Status, when an answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response headers.
    pub response_headers: Vec<(String, String)>,
    /// Response body.
    pub response_body: BodySummary,
    /// Transport error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds.
    pub elapsed_ms: f64,
    /// Why the engine sent it (redirect, token request), when not the scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The body as sent (shared, not copied), so reports can write it out for reproduction.
    #[serde(skip)]
    pub sent_body: ReqBody,
}

/// A transport failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// No activity for the timeout.
    Timeout(u64),
    /// The connection could not be made.
    Connect(String),
    /// The request could not be built (bad URL or header from a scenario).
    Request(String),
    /// Any other transport problem (reset, TLS, protocol).
    Transport(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Timeout(s) => write!(f, "timed out after {s} s without an answer"),
            HttpError::Connect(m) => write!(f, "cannot connect: {m}"),
            HttpError::Request(m) => write!(f, "invalid request: {m}"),
            HttpError::Transport(m) => write!(f, "transport error: {m}"),
        }
    }
}

/// A request's outcome with every exchange it took (redirects, auth).
pub struct Outcome {
    /// The final answer or the transport error.
    pub result: Result<Response, HttpError>,
    /// Recorded exchanges in order.
    pub exchanges: Vec<Exchange>,
}

#[derive(Clone)]
struct Token {
    value: Secret,
    expires: Instant,
}

/// The HTTP client of a run.
pub struct Client {
    agent: ureq::Agent,
    cfg: ClientConfig,
    redactor: Redactor,
    tokens: Mutex<HashMap<String, Token>>,
    basic: AtomicBool,
    /// Challenge seen last (realm, service), reused to fetch tokens up front.
    bearer: Mutex<Option<(String, String)>>,
}

impl Client {
    /// Builds the client; fails when the CA file cannot be read.
    pub fn new(cfg: ClientConfig, redactor: Redactor) -> Result<Self, String> {
        if !cfg.password.is_empty() {
            redactor.add_basic(&cfg.username, cfg.password.expose());
        }
        let t = Some(cfg.timeout);
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_resolve(t)
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            .timeout_per_write(t)
            .timeout_await_100(Some(Duration::from_secs(1)))
            .user_agent(format!("oci-conform/{}", env!("CARGO_PKG_VERSION")))
            .accept("")
            .max_idle_connections_per_host(cfg.connections.max(64))
            .max_idle_connections(cfg.connections.max(64));
        builder = builder.tls_config(tls_config(&cfg)?);
        Ok(Client {
            agent: builder.build().new_agent(),
            cfg,
            redactor,
            tokens: Mutex::new(HashMap::new()),
            basic: AtomicBool::new(false),
            bearer: Mutex::new(None),
        })
    }

    /// The redactor that knows this client's secrets.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn has_credentials(&self) -> bool {
        !self.cfg.username.is_empty() && !self.cfg.password.is_empty()
    }

    /// Sends a request, handling authentication challenges and (when allowed) redirects.
    pub fn send(&self, req: &Request, recv: &Recv) -> Outcome {
        let mut exchanges = Vec::new();
        let mut method = req.method.clone();
        let mut url = req.url.clone();
        let mut body = req.body.clone();
        let origin = host_of(&req.url);
        let mut tried_auth = false;
        let mut hops = 0;
        loop {
            let same_host = host_of(&url) == origin;
            let auth = if req.auth && same_host {
                self.cached_auth(&method, &url)
            } else {
                None
            };
            let (result, ex) = self.once(
                &method,
                &url,
                &req.headers,
                auth.as_ref(),
                &body,
                req.chunked,
                recv,
                None,
            );
            exchanges.push(ex);
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    return Outcome {
                        result: Err(e),
                        exchanges,
                    }
                }
            };
            if resp.status == 401 && req.auth && same_host && !tried_auth {
                tried_auth = true;
                if self.authorize(&resp, &method, &url, &mut exchanges) {
                    continue;
                }
            }
            if req.follow_redirects
                && matches!(resp.status, 301 | 302 | 303 | 307 | 308)
                && hops < 10
            {
                if let Some(loc) = resp.header("location") {
                    hops += 1;
                    url = resolve_url(&url, loc);
                    if resp.status == 303 || (matches!(resp.status, 301 | 302) && method == "POST")
                    {
                        method = "GET".into();
                        body = ReqBody::None;
                    }
                    continue;
                }
            }
            return Outcome {
                result: Ok(resp),
                exchanges,
            };
        }
    }

    /// One HTTP exchange, recorded.
    #[allow(clippy::too_many_arguments)]
    fn once(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        auth: Option<&Secret>,
        body: &ReqBody,
        chunked: bool,
        recv: &Recv,
        note: Option<&str>,
    ) -> (Result<Response, HttpError>, Exchange) {
        let start = Instant::now();
        let mut ex = Exchange {
            method: method.to_string(),
            url: self.redactor.scrub(url),
            request_headers: Vec::new(),
            request_body: body.summary(),
            chunked,
            note: note.map(String::from),
            sent_body: body.clone(),
            ..Exchange::default()
        };
        let mut builder = http::Request::builder().method(method).uri(url);
        let mut sent: Vec<(String, String)> = headers.to_vec();
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if chunked {
            if !has("transfer-encoding") {
                sent.push(("Transfer-Encoding".into(), "chunked".into()));
            }
        } else if !has("content-length")
            && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH"))
        {
            sent.push(("Content-Length".into(), body.len().to_string()));
        }
        if let Some(a) = auth {
            sent.push(("Authorization".into(), a.expose().to_string()));
        }
        for (k, v) in &sent {
            builder = builder.header(k.as_str(), v.as_str());
        }
        ex.request_headers = sent
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if is_sensitive_header(k) {
                        mask_auth(v)
                    } else {
                        self.redactor.scrub(v)
                    },
                )
            })
            .collect();
        // A request without a body is sent without one: a reader body, even empty, would go
        // out chunked, and a server that does not read bodies on GET may then close the
        // connection with an RST that destroys the answer before it is read.
        let sent = if body.is_empty() && !chunked {
            builder.body(()).map(|r| self.agent.run(r))
        } else {
            builder
                .body(ureq::SendBody::from_owned_reader(body.reader()))
                .map(|r| self.agent.run(r))
        };
        let result = match sent {
            Err(e) => Err(HttpError::Request(e.to_string())),
            Ok(Err(e)) => Err(self.map_error(e)),
            Ok(Ok(resp)) => Ok(self.read(resp, url, method, recv, start)),
        };
        ex.elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Err(e) => ex.error = Some(self.redactor.scrub(&e.to_string())),
            Ok(r) => {
                ex.status = Some(r.status);
                ex.response_headers = r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            if is_sensitive_header(k) {
                                MASK.to_string()
                            } else {
                                self.redactor.scrub(v)
                            },
                        )
                    })
                    .collect();
                let mut summary =
                    BodySummary::of(&r.body, r.body_len, r.digest("sha256").map(String::from));
                summary.text = summary.text.map(|t| self.redactor.scrub(&t));
                ex.response_body = summary;
                if let Some(e) = &r.body_error {
                    ex.error = Some(e.clone());
                }
            }
        }
        (result, ex)
    }

    fn read(
        &self,
        resp: http::Response<ureq::Body>,
        url: &str,
        method: &str,
        recv: &Recv,
        start: Instant,
    ) -> Response {
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    canonical_header(k.as_str()),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut out = Response {
            status,
            headers,
            url: url.to_string(),
            ..Response::default()
        };
        if method == "HEAD" {
            out.elapsed = start.elapsed();
            return out;
        }
        let mut hashers: Vec<(String, Hasher)> = recv
            .digests
            .iter()
            .filter_map(|a| Hasher::new(a).map(|h| (a.clone(), h)))
            .collect();
        let mut reader = resp.into_body().into_reader();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for (_, h) in &mut hashers {
                        h.update(&buf[..n]);
                    }
                    let room = recv.keep.saturating_sub(out.body.len() as u64) as usize;
                    out.body.extend_from_slice(&buf[..n.min(room)]);
                    out.body_len += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let what = if e.kind() == std::io::ErrorKind::TimedOut
                        || e.to_string().contains("timeout")
                    {
                        format!("body read timed out after {} s", self.cfg.timeout.as_secs())
                    } else {
                        format!("body read failed after {} bytes: {e}", out.body_len)
                    };
                    out.body_error = Some(what);
                    break;
                }
            }
        }
        if out.body_error.is_none() {
            out.digests = hashers.into_iter().map(|(a, h)| (a, h.finish())).collect();
        }
        out.elapsed = start.elapsed();
        out
    }

    fn map_error(&self, e: ureq::Error) -> HttpError {
        let secs = self.cfg.timeout.as_secs();
        match e {
            ureq::Error::Timeout(_) => HttpError::Timeout(secs),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                HttpError::Timeout(secs)
            }
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                HttpError::Connect(e.to_string())
            }
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                HttpError::Connect(io.to_string())
            }
            ureq::Error::BadUri(m) => HttpError::Request(format!("bad URL: {m}")),
            ureq::Error::Http(h) => HttpError::Request(h.to_string()),
            other => HttpError::Transport(self.redactor.scrub(&other.to_string())),
        }
    }

    /// An `Authorization` value already known for this request, if any.
    fn cached_auth(&self, method: &str, url: &str) -> Option<Secret> {
        if !self.has_credentials() && self.bearer.lock().ok()?.is_none() {
            return None;
        }
        if self.basic.load(Ordering::Relaxed) && self.has_credentials() {
            return Some(self.basic_header());
        }
        if !self.cfg.cache_auth {
            return None;
        }
        let scope = scopes_for(method, url).join(" ");
        let tokens = self.tokens.lock().ok()?;
        let t = tokens.get(&scope)?;
        (t.expires > Instant::now()).then(|| Secret::new(format!("Bearer {}", t.value.expose())))
    }

    fn basic_header(&self) -> Secret {
        let pair = format!("{}:{}", self.cfg.username, self.cfg.password.expose());
        Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// Answers a 401 challenge; true when a retry with credentials makes sense.
    fn authorize(
        &self,
        resp: &Response,
        method: &str,
        url: &str,
        exchanges: &mut Vec<Exchange>,
    ) -> bool {
        let Some(challenge) = resp
            .header_all("www-authenticate")
            .into_iter()
            .find_map(parse_challenge)
        else {
            return false;
        };
        match challenge.scheme.as_str() {
            "basic" if self.has_credentials() => {
                self.basic.store(true, Ordering::Relaxed);
                true
            }
            "bearer" => {
                let Some(realm) = challenge.params.get("realm") else {
                    return false;
                };
                let service = challenge.params.get("service").cloned().unwrap_or_default();
                if let Ok(mut b) = self.bearer.lock() {
                    *b = Some((realm.clone(), service.clone()));
                }
                let mut scopes = scopes_for(method, url);
                if let Some(s) = challenge.params.get("scope") {
                    for part in s.split(' ') {
                        if !part.is_empty() && !scopes.iter().any(|x| x == part) {
                            scopes.push(part.to_string());
                        }
                    }
                }
                self.fetch_token(
                    &resolve_url(url, realm),
                    &service,
                    &scopes,
                    method,
                    url,
                    exchanges,
                )
            }
            _ => false,
        }
    }

    fn fetch_token(
        &self,
        realm: &str,
        service: &str,
        scopes: &[String],
        method: &str,
        url: &str,
        exchanges: &mut Vec<Exchange>,
    ) -> bool {
        let mut token_url = format!(
            "{realm}{}service={}",
            if realm.contains('?') { "&" } else { "?" },
            encode_component(service)
        );
        for s in scopes {
            token_url.push_str(&format!("&scope={}", encode_component(s)));
        }
        let auth = self.has_credentials().then(|| self.basic_header());
        let headers = vec![("Accept".to_string(), "application/json".to_string())];
        let recv = Recv {
            digests: Vec::new(),
            keep: 1 << 20,
        };
        let (result, mut ex) = self.once(
            "GET",
            &token_url,
            &headers,
            auth.as_ref(),
            &ReqBody::None,
            false,
            &recv,
            Some("token request"),
        );
        ex.response_body = BodySummary {
            len: ex.response_body.len,
            text: Some("(token response hidden)".into()),
            digest: None,
        };
        exchanges.push(ex);
        let Ok(resp) = result else { return false };
        if resp.status != 200 {
            return false;
        }
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&resp.body) else {
            return false;
        };
        let Some(token) = json
            .get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
        else {
            return false;
        };
        self.redactor.add(token);
        let ttl = json
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(60)
            .max(1);
        // Renew a little early so a token does not expire in flight.
        let expires = Instant::now() + Duration::from_secs(ttl.saturating_sub(ttl.min(10) / 2));
        if let Ok(mut tokens) = self.tokens.lock() {
            let entry = Token {
                value: Secret::new(token),
                expires,
            };
            tokens.insert(scopes_for(method, url).join(" "), entry.clone());
            tokens.insert(scopes.join(" "), entry);
        }
        // Without a cache the token is still used for the retry of this request.
        if !self.cfg.cache_auth {
            if let Ok(mut tokens) = self.tokens.lock() {
                tokens.retain(|_, t| t.expires > Instant::now());
            }
        }
        true
    }
}

/// Masks a credential header but keeps its scheme visible (`Bearer ***`).
fn mask_auth(v: &str) -> String {
    match v.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} {MASK}"),
        None => MASK.to_string(),
    }
}

/// `Content-Type` style capitalisation for display.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
        .replace("Oci-", "OCI-")
        .replace("Www-", "WWW-")
}

fn host_of(url: &str) -> String {
    url.split_once("://")
        .map(|(_, r)| r.split('/').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// `Link` header values (RFC 8288) as `(rel, target)` pairs, e.g. `<url>; rel="next"`.
/// Targets are returned as written; a link without `rel` is left out.
pub fn parse_links(values: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for value in values {
        let mut rest = *value;
        while let Some(start) = rest.find('<') {
            let Some(end) = rest[start..].find('>') else {
                break;
            };
            let target = rest[start + 1..start + end].trim().to_string();
            let after = &rest[start + end + 1..];
            let params_end = after
                .find(",")
                .filter(|i| !after[..*i].contains('<'))
                .map_or(after.len(), |i| i);
            let next_link = after.find('<').unwrap_or(after.len());
            let params = &after[..params_end.min(next_link)];
            for p in params.split(';') {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("rel") {
                        for rel in v.trim().trim_matches('"').split_whitespace() {
                            out.push((rel.to_ascii_lowercase(), target.clone()));
                        }
                    }
                }
            }
            rest = &after[next_link..];
        }
    }
    out
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq)]
pub struct Challenge {
    /// Lower-case scheme.
    pub scheme: String,
    /// Parameters (quoted or token values).
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"` (quoted or bare values).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars
                .by_ref()
                .take_while(|c| *c != ',')
                .collect::<String>()
                .trim()
                .to_string();
        }
        params.insert(key, value);
    }
    Some(Challenge {
        scheme: scheme.to_lowercase(),
        params,
    })
}

/// Token scopes a request needs: pull for reads, pull+push for writes, delete for DELETE,
/// and pull on the source repository of a cross-repository mount.
pub fn scopes_for(method: &str, url: &str) -> Vec<String> {
    let path = url
        .split_once("://")
        .map_or(url, |(_, r)| r.find('/').map_or("", |i| &r[i..]));
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Vec::new();
    };
    // The repository name ends at the last endpoint segment (names may contain `blobs` too).
    let end = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|m| rest.rfind(m))
        .max();
    let Some(repo) = end.map(|i| &rest[..i]).filter(|r| !r.is_empty()) else {
        return Vec::new();
    };
    let actions = match method {
        "GET" | "HEAD" => "pull",
        "DELETE" => "delete",
        _ => "pull,push",
    };
    let mut scopes = vec![format!("repository:{repo}:{actions}")];
    for pair in query.split('&') {
        if let Some(from) = pair.strip_prefix("from=") {
            let from = from.replace("%2F", "/").replace("%2f", "/");
            scopes.push(format!("repository:{from}:pull"));
        }
    }
    scopes
}

fn tls_config(cfg: &ClientConfig) -> Result<ureq::tls::TlsConfig, String> {
    use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
    let mut b = TlsConfig::builder();
    match cfg.tls {
        Tls::Insecure => b = b.disable_verification(true),
        Tls::Enabled | Tls::Disabled => {
            let mut certs = Vec::new();
            let mut files: Vec<std::path::PathBuf> = Vec::new();
            if let Ok(f) = std::env::var("SSL_CERT_FILE") {
                files.push(f.into());
            }
            files.extend(
                [
                    "/etc/ssl/certs/ca-certificates.crt",
                    "/etc/pki/tls/certs/ca-bundle.crt",
                    "/etc/ssl/cert.pem",
                ]
                .iter()
                .map(std::path::PathBuf::from),
            );
            for f in files.iter().filter(|f| f.exists()).take(1) {
                if let Ok(pem) = std::fs::read(f) {
                    certs.extend(
                        parse_pem(&pem)
                            .filter_map(Result::ok)
                            .filter_map(|i| match i {
                                PemItem::Certificate(c) => Some(c),
                                _ => None,
                            }),
                    );
                }
            }
            if let Some(ca) = &cfg.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| format!("cannot read CA file {}: {e}", ca.display()))?;
                let before = certs.len();
                certs.extend(
                    parse_pem(&pem)
                        .filter_map(Result::ok)
                        .filter_map(|i| match i {
                            PemItem::Certificate(c) => Some(c),
                            _ => None,
                        }),
                );
                if certs.len() == before {
                    return Err(format!("CA file {} holds no PEM certificate", ca.display()));
                }
            }
            if !certs.is_empty() {
                b = b.root_certs(RootCerts::new_with_certs(&certs));
            }
        }
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#).unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge("Basic realm=Registry").unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry");
    }

    #[test]
    fn scopes_per_request() {
        assert_eq!(
            scopes_for("GET", "http://h/v2/a/b/blobs/sha256:x"),
            vec!["repository:a/b:pull"]
        );
        assert_eq!(
            scopes_for("PUT", "http://h/v2/a/manifests/t"),
            vec!["repository:a:pull,push"]
        );
        assert_eq!(
            scopes_for("DELETE", "http://h/v2/a/b/manifests/t"),
            vec!["repository:a/b:delete"]
        );
        assert_eq!(
            scopes_for(
                "POST",
                "http://h/v2/r1/blobs/uploads/?mount=sha256:x&from=r%2F2"
            ),
            vec!["repository:r1:pull,push", "repository:r/2:pull"]
        );
        assert!(scopes_for("GET", "http://h/v2/").is_empty());
        // a repository named like an endpoint segment still resolves to the right name
        assert_eq!(
            scopes_for("GET", "http://h/v2/x/blobs/y/manifests/t"),
            vec!["repository:x/blobs/y:pull"]
        );
    }

    #[test]
    fn parses_link_headers() {
        let l = parse_links(&[r#"</v2/r/tags/list?n=2&last=b>; rel="next""#]);
        assert_eq!(
            l,
            vec![("next".to_string(), "/v2/r/tags/list?n=2&last=b".to_string())]
        );
        let l = parse_links(&[r#"<a>; rel=prev, <b>; rel="next last""#]);
        assert_eq!(l.len(), 3);
        assert_eq!(l[1], ("next".to_string(), "b".to_string()));
        assert!(parse_links(&["<x>; title=none"]).is_empty());
    }

    #[test]
    fn header_names_display_canonically() {
        assert_eq!(
            canonical_header("docker-content-digest"),
            "Docker-Content-Digest"
        );
        assert_eq!(canonical_header("oci-subject"), "OCI-Subject");
    }

    #[test]
    fn summaries_show_text_or_digest() {
        let s = BodySummary::of(b"{\"a\":1}", 7, None);
        assert_eq!(s.text.as_deref(), Some("{\"a\":1}"));
        assert!(s.digest.is_none());
        let s = BodySummary::of(&[0u8, 159, 146, 150], 4, None);
        assert!(s.text.is_none());
        assert!(s.digest.unwrap().starts_with("sha256:"));
    }
}
