//! HTTP: one ureq agent for the whole run.
//!
//! - 4xx/5xx are answers, not errors; redirects are followed only when a step allows it, by
//!   this module (so each hop is recorded and `Authorization` is dropped when the host changes);
//! - every request has inactivity timeouts, so a registry that stops answering fails that
//!   request after `requestTimeout` seconds instead of hanging the run; a body must also arrive
//!   (or be taken) within that time plus one second per [`MIN_RATE`] bytes, so a registry that
//!   trickles a byte at a time fails too; after [`GIVE_UP_AFTER`] requests in a row time out
//!   the registry is taken as unresponsive and the rest of the run fails fast;
//! - bodies stream in both directions; response bodies are digested while they stream (no
//!   content decoding: the bytes hashed are the bytes sent) and only a bounded prefix is kept;
//! - authentication follows the registry's challenge: Basic, or the token flow with the scopes
//!   each request needs, tokens cached per scope until they expire.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ureq::http;

use crate::auth::{merge_scopes, pick_challenge, token_expiry, TokenCache};
pub use crate::auth::{parse_challenge, scopes_for, Challenge};
use crate::config::Tls;
use crate::content::{Content, StreamDigests};
use crate::redact::{is_sensitive_header, Redactor, Secret, MASK};
use crate::template::{encode_component, resolve_url};
use crate::tls;

/// Bytes of a response body kept in memory for checks and reports (the rest is only hashed).
pub const DEFAULT_KEEP: u64 = 8 << 20;
/// Bytes of a body shown in records.
const EXCERPT: usize = 4096;
/// The slowest transfer accepted for a body, in bytes per second (beyond the request timeout).
pub const MIN_RATE: u64 = 256 << 10;
/// Requests in a row that time out without an answer before the registry is taken as
/// unresponsive: later requests are not sent, so a dead registry ends the run in a few
/// timeouts instead of one per request.
pub const GIVE_UP_AFTER: usize = 5;

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
    /// The registry's base URL: credentials go to its origin only (empty: to the origin of
    /// each request's own URL).
    pub registry: String,
    /// The slowest body transfer accepted, in bytes per second beyond the timeout
    /// (normally [`MIN_RATE`]).
    pub min_rate: u64,
    /// The longest answer body without a `Content-Length` read before giving up (an endless
    /// stream would otherwise keep up any rate forever).
    pub max_unannounced: u64,
}

impl Default for ClientConfig {
    /// The official defaults (30 s, TLS verified, anonymous), one connection, no limits beyond
    /// the rate floor.
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(30),
            tls: Tls::Enabled,
            ca_file: None,
            username: String::new(),
            password: Secret::new(""),
            cache_auth: true,
            connections: 1,
            registry: String::new(),
            min_rate: MIN_RATE,
            max_unannounced: u64::MAX,
        }
    }
}

/// A request body.
#[derive(Clone, Debug, Default)]
pub enum ReqBody {
    /// No body.
    #[default]
    None,
    /// Bytes in memory.
    Bytes(Arc<Vec<u8>>),
    /// A dataset item's bytes or a range of them, streamed, with their sha256 digest when it
    /// is already known (records then need not hash the body again on every send).
    Content(Content, Option<(u64, u64)>, Option<String>),
}

impl ReqBody {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            ReqBody::None => 0,
            ReqBody::Bytes(b) => b.len() as u64,
            ReqBody::Content(c, None, _) => c.len(),
            ReqBody::Content(_, Some((s, e)), _) => e.saturating_sub(*s) + 1,
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
            // Read from the shared bytes, not a copy of them.
            ReqBody::Bytes(b) => Content::Bytes(b.clone()).reader(None),
            ReqBody::Content(c, r, _) => c.reader(*r),
        }
    }

    fn summary(&self) -> BodySummary {
        match self {
            ReqBody::None => BodySummary::default(),
            ReqBody::Bytes(b) => BodySummary::of(b, b.len() as u64, None),
            ReqBody::Content(c, r, known) => match c.bytes() {
                Some(b) if c.len() <= EXCERPT as u64 * 1024 => {
                    let (s, e) = r.unwrap_or((0, c.len().saturating_sub(1)));
                    let slice = if b.is_empty() {
                        &b[..]
                    } else {
                        &b[s as usize..=(e as usize).min(b.len() - 1)]
                    };
                    BodySummary::of(slice, slice.len() as u64, known.clone())
                }
                // Streamed content is not hashed just for the record (reports hash it if they
                // need to write it out).
                _ => BodySummary {
                    len: self.len(),
                    text: None,
                    digest: known.clone().or_else(|| c.known_digest("sha256", *r)),
                    head: None,
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
    /// Why authentication did not succeed, when the answer is a 401 (shown with the failure).
    pub auth_error: Option<String>,
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
    /// The first bytes in hex, when the body is not text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
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
        let head = text
            .is_none()
            .then(|| crate::expect::hex_head(bytes))
            .filter(|h| !h.is_empty());
        BodySummary {
            len,
            text,
            digest,
            head,
        }
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
    /// The TLS handshake failed (untrusted or invalid certificate, not a TLS server).
    Tls(String),
    /// A body was still being sent after the time its size allows (bytes, seconds allowed,
    /// bytes per second beyond the timeout).
    SlowBody(u64, u64, u64),
    /// Not sent: this many requests in a row had timed out (count, timeout in seconds).
    Unresponsive(usize, u64),
    /// Any other transport problem (reset, protocol).
    Transport(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Timeout(s) => write!(f, "timed out after {s} s without an answer"),
            HttpError::Connect(m) => write!(f, "cannot connect: {m}"),
            HttpError::Request(m) => write!(f, "invalid request: {m}"),
            HttpError::Tls(m) => write!(f, "TLS error: {m}"),
            HttpError::SlowBody(n, s, rate) => write!(
                f,
                "the registry took the {n}-byte body too slowly: not sent after {s} s \
                 (the request timeout plus 1 s per {} KiB)",
                rate >> 10
            ),
            HttpError::Unresponsive(n, s) => write!(
                f,
                "not sent: the registry stopped answering ({n} requests in a row timed out \
                 after {s} s)"
            ),
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

/// The HTTP client of a run.
pub struct Client {
    agent: ureq::Agent,
    cfg: ClientConfig,
    redactor: Redactor,
    tokens: TokenCache,
    /// Set once the registry asked for Basic credentials: they are then sent up front.
    basic: AtomicBool,
    /// The token endpoint (realm URL, service) of the last Bearer challenge, so a token for a
    /// new scope set is fetched before the request instead of after a 401.
    bearer: Mutex<Option<(String, String)>>,
    /// Cleared when a token request fails, so a refusing token server is asked once per
    /// request (after the 401), not twice.
    prefetch: AtomicBool,
    /// Requests in a row that timed out without an answer (reset by any answer).
    silent: AtomicUsize,
    /// Whether plain-HTTP HEADs go over their own connection, read byte for byte (not when a
    /// proxy from the environment would carry them).
    raw_heads: bool,
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
        builder = builder.tls_config(tls::config(cfg.tls, cfg.ca_file.as_deref())?);
        Ok(Client {
            agent: ureq::Agent::with_parts(
                builder.build(),
                ureq::unversioned::transport::DefaultConnector::default(),
                crate::resolve::CachingResolver::default(),
            ),
            tokens: TokenCache::new(cfg.cache_auth),
            cfg,
            redactor,
            basic: AtomicBool::new(false),
            bearer: Mutex::new(None),
            prefetch: AtomicBool::new(true),
            silent: AtomicUsize::new(0),
            raw_heads: !["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty())),
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
    ///
    /// Credentials go only to the registry's origin (scheme, host and port): a redirect to, or
    /// an upload `Location` on, another origin (blob storage) gets no `Authorization`.
    pub fn send(&self, req: &Request, recv: &Recv) -> Outcome {
        let mut exchanges = Vec::new();
        let mut method = req.method.clone();
        let mut url = req.url.clone();
        let mut body = req.body.clone();
        let origin = if self.cfg.registry.is_empty() {
            origin_of(&req.url)
        } else {
            origin_of(&self.cfg.registry)
        };
        // What answered a challenge during this request; reused for its same-origin
        // redirects even when tokens are not cached between requests.
        let mut answered: Option<Secret> = None;
        let mut tried_auth = false;
        let mut hops = 0;
        loop {
            let credentials = req.auth && origin_of(&url) == origin;
            let auth = if credentials {
                answered
                    .clone()
                    .or_else(|| self.auth_for(&method, &url, &mut exchanges))
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
            let mut resp = match result {
                Ok(r) => r,
                Err(e) => {
                    return Outcome {
                        result: Err(e),
                        exchanges,
                    }
                }
            };
            if resp.status == 401 && credentials {
                if tried_auth {
                    resp.auth_error = Some(self.refused(&resp, auth.as_ref()));
                } else {
                    tried_auth = true;
                    match self.answer_challenge(&resp, &method, &url, auth.as_ref(), &mut exchanges)
                    {
                        Ok(header) => {
                            answered = Some(header);
                            continue;
                        }
                        Err(why) => resp.auth_error = Some(self.redactor.scrub(&why)),
                    }
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
            request_body: {
                let mut s = body.summary();
                s.text = s.text.map(|t| self.redactor.scrub(&t));
                s
            },
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
        let result = if self.silent.load(Ordering::Relaxed) >= GIVE_UP_AFTER {
            Err(HttpError::Unresponsive(
                GIVE_UP_AFTER,
                self.cfg.timeout.as_secs(),
            ))
        } else if method == "HEAD" && self.raw_heads && url.starts_with("http://") {
            self.raw_head(url, &sent, start)
        } else {
            self.run_agent(builder, (method, url), body, chunked, recv, start)
        };
        match &result {
            Err(HttpError::Timeout(_)) => {
                self.silent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => self.silent.store(0, Ordering::Relaxed),
            Err(_) => {}
        }
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

    /// Sends a request through the shared agent and reads the answer.
    fn run_agent(
        &self,
        builder: http::request::Builder,
        (method, url): (&str, &str),
        body: &ReqBody,
        chunked: bool,
        recv: &Recv,
        start: Instant,
    ) -> Result<Response, HttpError> {
        let body_time = self.body_allowance(body.len());
        // A request without a body is sent without one: a reader body, even empty, would go
        // out chunked, and a server that does not read bodies on GET may then close the
        // connection with an RST that destroys the answer before it is read.
        let run = if body.is_empty() && !chunked {
            builder.body(()).map(|r| self.agent.run(r))
        } else {
            builder
                .body(ureq::SendBody::from_owned_reader(body.reader()))
                .map(|r| {
                    let r = self
                        .agent
                        .configure_request(r)
                        .timeout_send_body(Some(body_time))
                        .build();
                    self.agent.run(r)
                })
        };
        match run {
            Err(e) => Err(HttpError::Request(e.to_string())),
            Ok(Err(ureq::Error::Timeout(ureq::Timeout::SendBody))) => Err(HttpError::SlowBody(
                body.len(),
                body_time.as_secs(),
                self.cfg.min_rate,
            )),
            Ok(Err(e)) => Err(self.map_error(e)),
            Ok(Ok(resp)) => Ok(self.read(resp, url, method, recv, start)),
        }
    }

    /// A HEAD over plain HTTP on a connection of its own (`Connection: close`), read byte for
    /// byte: through ureq a body sent with a HEAD answer is dropped, or left on the connection
    /// to corrupt the next answer, so this is the only way to see it (RFC 9110 §9.3.2: a HEAD
    /// answer has no content).
    fn raw_head(
        &self,
        url: &str,
        headers: &[(String, String)],
        start: Instant,
    ) -> Result<Response, HttpError> {
        use std::io::Write;
        use std::net::ToSocketAddrs;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| HttpError::Request(format!("bad URL: {e}")))?;
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let t = self.cfg.timeout;
        let timeout = || HttpError::Timeout(t.as_secs());
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| HttpError::Connect(format!("{host}: {e}")))?
            .collect();
        let mut last = HttpError::Connect(format!("{host}: no address"));
        let mut stream = None;
        for a in &addrs {
            match std::net::TcpStream::connect_timeout(a, t) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => last = timeout(),
                Err(e) => last = HttpError::Connect(e.to_string()),
            }
        }
        let mut stream = stream.ok_or(last)?;
        let _ = stream.set_nodelay(true);
        let mut head = format!(
            "HEAD {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: oci-conform/{}\r\n\
             Connection: close\r\n",
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .set_write_timeout(Some(t))
            .and_then(|()| stream.write_all(head.as_bytes()))
            .map_err(|e| self.io_error(&e))?;
        // The answer's head, within the timeout in all.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let left = t.saturating_sub(start.elapsed());
            if left.is_zero() || buf.len() > 1 << 20 {
                return Err(timeout());
            }
            let _ = stream.set_read_timeout(Some(left));
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(HttpError::Transport(
                        "the connection was closed before an answer".into(),
                    ))
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(&e)),
            }
        };
        let text = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .filter(|l| l.starts_with("HTTP/"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| {
                HttpError::Transport(format!(
                    "protocol: not an HTTP answer: {}",
                    self.redactor
                        .scrub(&String::from_utf8_lossy(&buf[..end.min(200)]))
                ))
            })?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (canonical_header(k.trim()), v.trim().to_string()))
            .collect();
        // Whatever comes after the head, until the server closes (it was asked to) or is
        // quiet for a moment, is a body the answer must not have.
        let mut extra = (buf.len() - end) as u64;
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        while extra < 1 << 20 {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => extra += n as u64,
            }
        }
        Ok(Response {
            status,
            headers,
            url: url.to_string(),
            body_error: (extra > 0).then(|| {
                format!(
                    "the answer to a HEAD carries a body ({extra} bytes after the headers); \
                     a HEAD answer has none (RFC 9110 §9.3.2)"
                )
            }),
            elapsed: start.elapsed(),
            ..Response::default()
        })
    }

    /// A transport error of the raw HEAD connection.
    fn io_error(&self, e: &std::io::Error) -> HttpError {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::TimedOut | K::WouldBlock => HttpError::Timeout(self.cfg.timeout.as_secs()),
            K::ConnectionRefused => HttpError::Connect(e.to_string()),
            _ => HttpError::Transport(self.redactor.scrub(&e.to_string())),
        }
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
        let mut hashers = StreamDigests::new(&recv.digests);
        // Most answers are a few hundred bytes: a buffer their size (when announced), not 64 KiB.
        let announced = out
            .header("content-length")
            .and_then(|v| v.trim().parse().ok());
        let mut buf = vec![0u8; announced.map_or(64 << 10, |n: usize| n.clamp(1, 64 << 10))];
        let mut reader = resp.into_body().into_reader();
        let body_start = Instant::now();
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hashers.update(&buf[..n]);
                    let room = recv.keep.saturating_sub(out.body.len() as u64) as usize;
                    out.body.extend_from_slice(&buf[..n.min(room)]);
                    out.body_len += n as u64;
                    // The inactivity timeout resets on every byte: a body trickled a byte at a
                    // time is stopped by the time its (announced) size allows.
                    let size = announced.map_or(0, |a| a as u64).max(out.body_len);
                    let allowed = self.body_allowance(size);
                    if body_start.elapsed() > allowed {
                        out.body_error = Some(self.slow_body(&out, body_start, allowed));
                        break;
                    }
                    if announced.is_none() && out.body_len > self.cfg.max_unannounced {
                        out.body_error = Some(format!(
                            "the body goes on without a Content-Length past {} bytes (more \
                             than twice the largest content of the run): given up",
                            self.cfg.max_unannounced
                        ));
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    out.body_error = Some(self.body_failure(&e, &out));
                    break;
                }
            }
        }
        if out.body_error.is_none() {
            out.digests = hashers.finish();
        }
        out.elapsed = start.elapsed();
        out
    }

    /// The time a body of `len` bytes may take: the request timeout plus its size at
    /// [`MIN_RATE`].
    fn body_allowance(&self, len: u64) -> Duration {
        self.cfg.timeout + Duration::from_secs_f64(len as f64 / self.cfg.min_rate.max(1) as f64)
    }

    /// Why a body was given up while still arriving.
    fn slow_body(&self, so_far: &Response, start: Instant, allowed: Duration) -> String {
        let of = of_announced(so_far);
        format!(
            "the body came too slowly: {}{of} bytes in {:.1} s, more than the {:.1} s its size \
             allows (the request timeout plus 1 s per {} KiB)",
            so_far.body_len,
            start.elapsed().as_secs_f64(),
            allowed.as_secs_f64(),
            self.cfg.min_rate >> 10
        )
    }

    /// Why a body could not be read to its end, with how far it got.
    fn body_failure(&self, e: &std::io::Error, so_far: &Response) -> String {
        use std::io::ErrorKind as K;
        let of = of_announced(so_far);
        let got = so_far.body_len;
        if e.kind() == K::TimedOut || e.to_string().contains("timeout") {
            let secs = self.cfg.timeout.as_secs();
            format!("the body timed out after {secs} s without data ({got}{of} bytes received)")
        } else if matches!(
            e.kind(),
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted
        ) {
            // ureq reports a reset during the body as the peer closing, so both read alike.
            format!("the connection was closed or reset after {got}{of} bytes of the body")
        } else {
            let e = self.redactor.scrub(&e.to_string());
            format!("the body could not be read after {got}{of} bytes: {e}")
        }
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
            ureq::Error::Rustls(r) => HttpError::Tls(tls::reason(&r.to_string())),
            ureq::Error::Tls(m) => HttpError::Tls(tls::reason(m)),
            ureq::Error::Io(io) if tls::is_tls_error(&io) => {
                HttpError::Tls(tls::reason(&io.to_string()))
            }
            other => HttpError::Transport(self.redactor.scrub(&other.to_string())),
        }
    }

    /// The `Authorization` to send before any challenge: Basic once the registry asked for it,
    /// else a cached token for the request's scopes, else a token fetched now from the token
    /// server the registry named earlier (saves a 401 and a resent body per new scope set).
    fn auth_for(&self, method: &str, url: &str, exchanges: &mut Vec<Exchange>) -> Option<Secret> {
        if self.basic.load(Ordering::Relaxed) && self.has_credentials() {
            return Some(self.basic_header());
        }
        if !self.tokens.enabled() {
            return None;
        }
        let scopes = scopes_for(method, url);
        if let Some(t) = self.tokens.get(&scopes) {
            return Some(t);
        }
        if !self.prefetch.load(Ordering::Relaxed) {
            return None;
        }
        let (realm, service) = self.bearer.lock().ok()?.clone()?;
        self.fetch_token(&realm, &service, &scopes, exchanges)
            .ok()
            .map(|(t, _)| t)
    }

    fn basic_header(&self) -> Secret {
        let pair = format!("{}:{}", self.cfg.username, self.cfg.password.expose());
        Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// Answers a 401 challenge with the `Authorization` to retry with, or says why it cannot.
    fn answer_challenge(
        &self,
        resp: &Response,
        method: &str,
        url: &str,
        sent: Option<&Secret>,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Secret, String> {
        let Some(challenge) = pick_challenge(resp.header_all("www-authenticate")) else {
            return Err("the registry answered 401 without a WWW-Authenticate challenge".into());
        };
        match challenge.scheme.as_str() {
            "basic" => {
                if !self.has_credentials() {
                    return Err("the registry asks for credentials (Basic); set OCI_USERNAME and OCI_PASSWORD".into());
                }
                if sent.is_some_and(|s| s.expose().starts_with("Basic ")) {
                    return Err(self.refused(resp, sent));
                }
                self.basic.store(true, Ordering::Relaxed);
                Ok(self.basic_header())
            }
            "bearer" => {
                let Some(realm) = challenge.params.get("realm").filter(|r| !r.is_empty()) else {
                    return Err(
                        "the registry's Bearer challenge names no realm (token server)".into(),
                    );
                };
                let realm = resolve_url(url, realm);
                let service = challenge.params.get("service").cloned().unwrap_or_default();
                if let Ok(mut b) = self.bearer.lock() {
                    *b = Some((realm.clone(), service.clone()));
                }
                // What the request needs, united with what the registry says it needs.
                let ours = scopes_for(method, url);
                let asked: Vec<String> =
                    challenge.params.get("scope").cloned().into_iter().collect();
                let scopes = merge_scopes(&[&ours, &asked]);
                let (token, expires) = self.fetch_token(&realm, &service, &scopes, exchanges)?;
                self.tokens.put(&ours, &token, expires);
                Ok(token)
            }
            other => Err(format!(
                "the registry asks for `{other}` authentication, which oci-conform does not support"
            )),
        }
    }

    /// Why the registry still answers 401 although credentials were sent.
    fn refused(&self, resp: &Response, sent: Option<&Secret>) -> String {
        let challenge = pick_challenge(resp.header_all("www-authenticate"));
        let param = |k: &str| {
            challenge
                .as_ref()
                .and_then(|c| c.params.get(k))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        match sent {
            Some(s) if s.expose().starts_with("Basic ") => format!(
                "the registry rejected the credentials of user `{}`",
                self.cfg.username
            ),
            Some(_) => {
                let mut m = String::from("the registry refused the token");
                if let Some(scope) = param("scope") {
                    m.push_str(&format!(" for scope `{scope}`"));
                }
                if let Some(e) = param("error") {
                    m.push_str(&format!(" ({e})"));
                }
                self.redactor.scrub(&m)
            }
            None => "the registry answered 401 and no credentials could be sent".into(),
        }
    }

    /// Asks the token server for a token covering `scopes`, caches it, and returns the
    /// `Authorization` value with its expiry; the error says what the token server did.
    fn fetch_token(
        &self,
        realm: &str,
        service: &str,
        scopes: &[String],
        exchanges: &mut Vec<Exchange>,
    ) -> Result<(Secret, Instant), String> {
        let mut token_url = realm.to_string();
        let mut params: Vec<(&str, &str)> = Vec::new();
        if !service.is_empty() {
            params.push(("service", service));
        }
        for s in scopes {
            params.push(("scope", s));
        }
        if self.has_credentials() {
            params.push(("account", &self.cfg.username));
        }
        for (i, (k, v)) in params.iter().enumerate() {
            let sep = if i == 0 && !realm.contains('?') {
                '?'
            } else {
                '&'
            };
            token_url.push_str(&format!("{sep}{k}={}", encode_component(v)));
        }
        // Anonymous token requests carry no Authorization at all (not an empty Basic pair).
        let auth = self.has_credentials().then(|| self.basic_header());
        let headers = vec![("Accept".to_string(), "application/json".to_string())];
        let recv = Recv {
            digests: Vec::new(),
            keep: 1 << 20,
        };
        let asked_at = Instant::now();
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
            ..BodySummary::default()
        };
        exchanges.push(ex);
        let fail = |m: String| {
            self.prefetch.store(false, Ordering::Relaxed);
            Err(m)
        };
        let server = realm.split('?').next().unwrap_or(realm);
        let resp = match result {
            Ok(r) => r,
            Err(e) => return fail(format!("the token request to {server} failed: {e}")),
        };
        if resp.status != 200 {
            let who = if self.has_credentials() {
                format!(" for user `{}`", self.cfg.username)
            } else {
                " to an anonymous request".to_string()
            };
            let body = crate::expect::response_excerpt(&resp);
            let detail = if body.is_empty() {
                String::new()
            } else {
                format!(": {}", self.redactor.scrub(&body))
            };
            return fail(format!(
                "the token server {server} answered {}{who}{detail}",
                resp.status
            ));
        }
        let json = serde_json::from_slice::<serde_json::Value>(&resp.body).ok();
        let field = |k: &str| {
            json.as_ref()
                .and_then(|j| j.get(k))
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
                .map(String::from)
        };
        let Some(token) = field("token").or_else(|| field("access_token")) else {
            return fail(format!(
                "the token server {server} answered 200 without a token (expected JSON with `token` or `access_token`)"
            ));
        };
        self.redactor.add(&token);
        if let Some(refresh) = field("refresh_token") {
            self.redactor.add(&refresh);
        }
        let expires_in = json
            .as_ref()
            .and_then(|j| j.get("expires_in"))
            .and_then(serde_json::Value::as_f64);
        let expires = token_expiry(asked_at, expires_in);
        let secret = Secret::new(format!("Bearer {token}"));
        self.tokens.put(scopes, &secret, expires);
        self.prefetch.store(true, Ordering::Relaxed);
        Ok((secret, expires))
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

/// `scheme://host:port` of a URL (lower-case, default ports made explicit), the unit
/// credentials are scoped to.
fn origin_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return String::new();
    };
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':')
    });
    if has_port {
        format!("{scheme}://{authority}")
    } else {
        let port = if scheme == "https" { 443 } else { 80 };
        format!("{scheme}://{authority}:{port}")
    }
}

/// ` of N` for an answer that announced N body bytes, else nothing.
fn of_announced(resp: &Response) -> String {
    resp.header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|n| format!(" of {n}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
