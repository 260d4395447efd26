//! The self-test proxy: a real registry served through alterations.
//!
//! Clients speak HTTP/1.1 to the proxy (keep-alive, request bodies with `Content-Length` or
//! chunked, `Expect: 100-continue`), one thread per connection. Each request goes to the
//! upstream registry through a ureq agent (plain HTTP or TLS, bodies streamed both ways,
//! redirects not followed), unless a rule answers it by itself. The answer passes through the
//! rules of the alterations in order; bodies stream unchanged unless a rule needs them (body
//! and JSON edits, JSON conditions), and are then held in memory. The upstream's origin in
//! answer headers (absolute `Location`s, `Link`s) is replaced by the proxy's own, so clients
//! stay on the proxy. An upstream that cannot be reached, or fails mid-request, is a 502.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minijinja::value::Value;
use serde_json::Value as J;

use super::alteration::{
    context, edit_body, edit_json, Alteration, Answer, BodyEdit, Canned, CursorBy, Per, Reformat,
    RequestView, Rule,
};
use super::wire::{self, BodyReader, ChunkedWriter, Framing, Head};
use crate::config::Tls;
use crate::diag::Diagnostic;

/// How long a client connection may stay idle between requests.
const IDLE: Duration = Duration::from_secs(120);
/// The largest answer body held in memory for a body edit.
const MAX_HELD: u64 = 512 << 20;
/// Lines kept in the exchange log.
const MAX_LOG: usize = 20_000;
/// Hop-by-hop headers (RFC 9110 §7.6.1) and those the proxy frames itself.
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "expect",
];

/// What a proxy is started with.
pub struct Options {
    /// Address to listen on (`127.0.0.1:0` for any free port).
    pub listen: String,
    /// The registry's base URL (`http://host:port` or `https://…`).
    pub upstream: String,
    /// TLS mode towards an `https` upstream.
    pub tls: Tls,
    /// Extra CA file for `tls: enabled`.
    pub ca_file: Option<PathBuf>,
    /// Inactivity timeout of upstream requests.
    pub timeout: Duration,
    /// The alterations applied, in order.
    pub alterations: Vec<Arc<Alteration>>,
    /// Print every exchange to stderr as it happens.
    pub echo: bool,
}

/// A running proxy; stopped when dropped.
pub struct Proxy {
    /// The address it listens on.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

/// A rule of one of the alterations.
struct RuleRef {
    alteration: Arc<Alteration>,
    index: usize,
}

impl RuleRef {
    fn rule(&self) -> &Rule {
        &self.alteration.rules[self.index]
    }

    fn label(&self) -> String {
        if self.alteration.rules.len() == 1 {
            self.alteration.id.clone()
        } else {
            format!("{} rule {}", self.alteration.id, self.index + 1)
        }
    }
}

struct Shared {
    upstream: String,
    agent: ureq::Agent,
    rules: Vec<RuleRef>,
    state: Mutex<State>,
    stop: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
    applied: Vec<AtomicU64>,
    exchanges: AtomicU64,
    log: Mutex<Vec<String>>,
    echo: bool,
    listen: String,
}

/// What rules remember between exchanges.
#[derive(Default)]
struct State {
    /// Occurrences per (rule, key).
    counts: HashMap<(usize, String), u64>,
    /// The last 2xx answer per (rule, method and URL), for `stale`.
    stale: HashMap<(usize, String), Answer>,
    /// The latest Location token per (rule, path), for `rotate`.
    tokens: HashMap<(usize, String), String>,
    next_token: u64,
}

impl Proxy {
    /// Binds and starts serving.
    pub fn start(opts: Options) -> Result<Proxy, String> {
        let listener = TcpListener::bind(&opts.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
        let t = Some(opts.timeout);
        let tls = crate::tls::config(opts.tls, opts.ca_file.as_deref())?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            .timeout_per_write(t)
            .user_agent("")
            .accept("")
            .max_idle_connections_per_host(64)
            .max_idle_connections(64)
            .tls_config(tls)
            .build()
            .new_agent();
        let rules: Vec<RuleRef> = opts
            .alterations
            .iter()
            .flat_map(|a| {
                (0..a.rules.len()).map(|index| RuleRef {
                    alteration: a.clone(),
                    index,
                })
            })
            .collect();
        let shared = Arc::new(Shared {
            upstream: opts.upstream.trim_end_matches('/').to_string(),
            agent,
            applied: rules.iter().map(|_| AtomicU64::new(0)).collect(),
            rules,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            exchanges: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            echo: opts.echo,
            listen: addr.to_string(),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = s.next_conn.fetch_add(1, Ordering::Relaxed);
                if let (Ok(mut conns), Ok(clone)) = (s.conns.lock(), stream.try_clone()) {
                    conns.insert(id, clone);
                }
                let s = s.clone();
                std::thread::spawn(move || s.serve(stream, id));
            }
        });
        Ok(Proxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// Stops accepting and closes every open connection at once (requests in flight fail).
    pub fn stop(&self) {
        if self.shared.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Ok(conns) = self.shared.conns.lock() {
            for c in conns.values() {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Blocks until the proxy stops (for `oci-conform proxy`).
    pub fn wait(mut self) {
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }

    /// How many exchanges each alteration's rules changed, by alteration id.
    pub fn applied(&self) -> HashMap<String, u64> {
        let mut out: HashMap<String, u64> = HashMap::new();
        for (r, n) in self.shared.rules.iter().zip(&self.shared.applied) {
            *out.entry(r.alteration.id.clone()).or_default() += n.load(Ordering::Relaxed);
        }
        out
    }

    /// How many requests the proxy answered.
    pub fn exchanges(&self) -> u64 {
        self.shared.exchanges.load(Ordering::Relaxed)
    }

    /// The exchanges a rule changed (`METHOD target → status [rules]`), oldest first.
    pub fn log(&self) -> Vec<String> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// What the rules decided about how the answer goes out.
#[derive(Default)]
struct Delivery {
    chunked: bool,
    delay_ms: u64,
    close: bool,
    drop: bool,
    hang: bool,
    cut: Option<u64>,
    body_on_head: bool,
    /// A rule set Content-Length itself: it is sent as written.
    length_set: bool,
}

/// The upstream answer's body while it has not been read.
enum Pending {
    /// Already in `Answer::body` (or none).
    Held,
    /// Still to be copied from upstream; its announced length.
    Stream(ureq::BodyReader<'static>, Option<u64>),
}

/// A page the client asked for: (rule, limit, cursor).
type PageAsk = (usize, Option<usize>, Option<String>);

impl Shared {
    fn serve(self: Arc<Self>, stream: TcpStream, id: u64) {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(IDLE));
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(read_half);
        let mut out = stream;
        while !self.stop.load(Ordering::SeqCst) {
            let head = match wire::read_head(&mut reader) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    if e.kind() == io::ErrorKind::InvalidData {
                        let msg = format!("bad request: {e}\n");
                        let _ = wire::write_head(
                            &mut out,
                            400,
                            &[("Content-Type".into(), "text/plain".into())],
                            Framing::Length(msg.len() as u64),
                            true,
                        )
                        .and_then(|()| out.write_all(msg.as_bytes()));
                    }
                    break;
                }
            };
            match self.exchange(&head, &mut reader, &mut out) {
                Ok(true) if head.keep_alive() => {}
                _ => break,
            }
        }
        let _ = out.flush();
        let _ = out.shutdown(std::net::Shutdown::Both);
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
        }
    }

    fn rule(&self, i: usize) -> &Rule {
        self.rules[i].rule()
    }

    /// Counts an occurrence of rule `i`; whether this one is acted on.
    fn count(&self, i: usize, view: &RequestView) -> bool {
        let Some(nth) = &self.rule(i).when.nth else {
            return true;
        };
        let key = match nth.per {
            Per::Rule => String::new(),
            Per::Path => view.path.clone(),
            Per::Request => format!("{} {}", view.method, view.path),
        };
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        let c = st.counts.entry((i, key)).or_insert(0);
        *c += 1;
        *c >= nth.from && nth.to.is_none_or(|t| *c <= t)
    }

    fn when_holds(&self, i: usize, ctx: &Value) -> Result<bool, Diagnostic> {
        match &self.rule(i).when.when {
            Some(e) => e.truthy(ctx),
            None => Ok(true),
        }
    }

    /// Serves one request; whether the connection may carry another.
    fn exchange(
        &self,
        head: &Head,
        reader: &mut BufReader<TcpStream>,
        out: &mut TcpStream,
    ) -> io::Result<bool> {
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        let framing = match head.framing() {
            Ok(f) => f,
            Err(e) => {
                self.plain(out, 400, &format!("bad request: {e}"))?;
                return Ok(false);
            }
        };
        let (path, raw_query) = head.target.split_once('?').unwrap_or((&head.target, ""));
        let mut pairs = wire::query_pairs(raw_query);
        let host = head.header("host").unwrap_or(&self.listen).to_string();
        let mut view = RequestView {
            method: head.method.to_ascii_uppercase(),
            path: path.to_string(),
            query: pairs
                .iter()
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect(),
            headers: head
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            origin: format!("http://{host}"),
        };
        let original_target = head.target.clone();
        if head
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            && framing != Framing::None
        {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = BodyReader::new(reader, framing);
        let mut applied: Vec<usize> = Vec::new();
        let n = self.rules.len();
        let mut selected: Vec<Option<Vec<String>>> = vec![None; n];
        let mut pending: Vec<Option<Vec<String>>> = vec![None; n];
        let mut query_changed = false;

        // A rotated Location: only its latest token is accepted.
        let mut answer: Option<Answer> = None;
        for i in 0..n {
            let Some(rot) = &self.rule(i).edit.rotate else {
                continue;
            };
            let latest = self
                .state
                .lock()
                .ok()
                .and_then(|st| st.tokens.get(&(i, view.path.clone())).cloned());
            let Some(latest) = latest else { continue };
            if view.query_value(&rot.param) == Some(latest.as_str()) {
                pairs.retain(|(_, k, _)| *k != rot.param);
                view.query.retain(|(k, _)| *k != rot.param);
                query_changed = true;
            } else {
                let ctx = context(&view, &[], None, None);
                answer = Some(self.canned(&rot.refuse, &ctx));
                applied.push(i);
                break;
            }
        }

        // Which rules the request selects; those that look at the answer wait for it.
        if answer.is_none() {
            for i in 0..n {
                let rule = self.rule(i);
                let Some(caps) = rule.when.request_holds(&view) else {
                    continue;
                };
                if rule.when.looks_at_answer() {
                    pending[i] = Some(caps);
                    continue;
                }
                let ctx = context(&view, &caps, None, None);
                match self.when_holds(i, &ctx) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(d) => return self.template_failure(out, i, &d),
                }
                if self.count(i, &view) {
                    selected[i] = Some(caps);
                }
            }
        }

        // A rule that answers by itself.
        if answer.is_none() {
            for (i, caps) in selected.iter().enumerate() {
                let (Some(caps), Some(c)) = (caps, &self.rule(i).edit.respond) else {
                    continue;
                };
                let ctx = context(&view, caps, None, None);
                answer = Some(self.canned(c, &ctx));
                break;
            }
        }

        let mut pending_body = Pending::Held;
        let mut page: Option<PageAsk> = None;
        let mut forward_path: Option<String> = None;
        let mut drop_body = false;
        let mut header_edits: (Vec<String>, Vec<(String, String)>) = (Vec::new(), Vec::new());
        if answer.is_none() {
            // Request rewrites: the first rule whose request matches.
            for i in 0..n {
                let caps = selected[i].as_ref().or(pending[i].as_ref());
                let (Some(caps), Some(f)) = (caps, &self.rule(i).edit.forward) else {
                    continue;
                };
                let ctx = context(&view, caps, None, None);
                if let Some(p) = &f.path {
                    match p.render(&ctx) {
                        Ok(p) => forward_path = Some(p),
                        Err(d) => return self.template_failure(out, i, &d),
                    }
                }
                for name in &f.remove_query {
                    pairs.retain(|(_, k, _)| k != name);
                    query_changed = true;
                }
                for (name, t) in &f.set_query {
                    let v = match t.render(&ctx) {
                        Ok(v) => v,
                        Err(d) => return self.template_failure(out, i, &d),
                    };
                    pairs.retain(|(_, k, _)| k != name);
                    pairs.push((
                        format!(
                            "{}={}",
                            crate::template::encode_component(name),
                            crate::template::encode_component(&v)
                        ),
                        name.clone(),
                        v,
                    ));
                    query_changed = true;
                }
                drop_body = f.drop_body;
                header_edits.0 = f.remove_headers.clone();
                for (name, t) in &f.set_headers {
                    match t.render(&ctx) {
                        Ok(v) => header_edits.1.push((name.clone(), v)),
                        Err(d) => return self.template_failure(out, i, &d),
                    }
                }
                if selected[i].is_some() {
                    applied.push(i);
                }
                break;
            }
            // Pagination asks upstream for the whole list and cuts the page itself.
            for i in 0..n {
                let caps = selected[i].as_ref().or(pending[i].as_ref());
                let (Some(_), Some(p)) = (caps, &self.rule(i).edit.paginate) else {
                    continue;
                };
                let limit = p
                    .limit
                    .as_ref()
                    .and_then(|l| view.query_value(l))
                    .and_then(|v| v.parse::<usize>().ok());
                let cursor = view.query_value(&p.cursor).map(String::from);
                pairs.retain(|(_, k, _)| Some(k) != p.limit.as_ref() && *k != p.cursor);
                query_changed = true;
                page = Some((i, limit, cursor));
                break;
            }
            let target = {
                let path = forward_path.as_deref().unwrap_or(path);
                if query_changed || forward_path.is_some() {
                    let q: Vec<&str> = pairs.iter().map(|(raw, _, _)| raw.as_str()).collect();
                    if q.is_empty() {
                        path.to_string()
                    } else {
                        format!("{path}?{}", q.join("&"))
                    }
                } else {
                    original_target.clone()
                }
            };
            match self.forward(head, &target, framing, drop_body, &header_edits, &mut body) {
                Ok((a, p)) => {
                    answer = Some(a);
                    pending_body = p;
                }
                Err(msg) => {
                    let _ = body.drain();
                    self.note(&format!("{} {original_target} → 502 ({msg})", view.method));
                    self.plain(out, 502, &format!("oci-conform proxy: upstream: {msg}"))?;
                    return Ok(false);
                }
            }
        }
        if body.drain().is_err() {
            return Ok(false);
        }
        let mut answer = answer.unwrap_or_default();
        let head_request = view.method == "HEAD";

        // Hold the body when a rule that may act needs it.
        let needs_body = (0..n)
            .any(|i| (selected[i].is_some() || pending[i].is_some()) && self.rule(i).needs_body());
        if needs_body {
            if let Pending::Stream(r, _) = pending_body {
                let mut held = Vec::new();
                if let Err(e) = r.take(MAX_HELD).read_to_end(&mut held) {
                    self.plain(out, 502, &format!("oci-conform proxy: upstream body: {e}"))?;
                    return Ok(false);
                }
                answer.body = Some(held);
                pending_body = Pending::Held;
            }
            if answer.body.is_none() {
                answer.body = Some(Vec::new());
            }
        }

        // The rules, in order, on the answer.
        let mut delivery = Delivery::default();
        let mut json_cache: Option<Option<J>> = None;
        for i in 0..n {
            let caps = if let Some(c) = &selected[i] {
                c.clone()
            } else if let Some(c) = &pending[i] {
                let json = self.json_of(&answer, &mut json_cache);
                if !self.rule(i).when.answer_holds(&answer, json.as_ref()) {
                    continue;
                }
                let ctx = context(&view, c, Some((&answer, json.as_ref())), None);
                match self.when_holds(i, &ctx) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(d) => return self.template_failure(out, i, &d),
                }
                if !self.count(i, &view) {
                    continue;
                }
                c.clone()
            } else {
                continue;
            };
            if let Err(d) = self.apply(
                i,
                &caps,
                &view,
                &original_target,
                &mut answer,
                &mut json_cache,
                &mut delivery,
                page.as_ref().filter(|p| p.0 == i),
            ) {
                return self.template_failure(out, i, &d);
            }
            if !applied.contains(&i) {
                applied.push(i);
            }
        }
        for i in &applied {
            self.applied[*i].fetch_add(1, Ordering::Relaxed);
        }
        let line = format!(
            "{} {original_target} → {}{}",
            view.method,
            answer.status,
            if applied.is_empty() {
                String::new()
            } else {
                let labels: Vec<String> = applied.iter().map(|i| self.rules[*i].label()).collect();
                format!("  [{}]", labels.join(", "))
            }
        );
        if self.echo {
            eprintln!("{line}");
        }
        if !applied.is_empty() {
            self.note(&line);
        }
        self.deliver(out, answer, pending_body, &delivery, head_request)
    }

    /// Sends the request upstream; the answer with its body still to read.
    fn forward(
        &self,
        head: &Head,
        target: &str,
        framing: Framing,
        drop_body: bool,
        (remove, set): &(Vec<String>, Vec<(String, String)>),
        body: &mut BodyReader<'_>,
    ) -> Result<(Answer, Pending), String> {
        let url = format!("{}{target}", self.upstream);
        let mut b = ureq::http::Request::builder()
            .method(head.method.as_str())
            .uri(&url);
        for (k, v) in &head.headers {
            let name = k.to_ascii_lowercase();
            let replaced = remove
                .iter()
                .chain(set.iter().map(|(n, _)| n))
                .any(|r| r.eq_ignore_ascii_case(&name));
            if !HOP.contains(&name.as_str()) && !replaced {
                b = b.header(k.as_str(), v.as_str());
            }
        }
        for (k, v) in set {
            b = b.header(k.as_str(), v.as_str());
        }
        let sent = match (framing, drop_body) {
            (Framing::None, _) => b.body(()).map(|r| self.agent.run(r)),
            (_, true) => {
                let _ = body.drain();
                b.header("content-length", "0")
                    .body(())
                    .map(|r| self.agent.run(r))
            }
            (Framing::Length(n), false) => b
                .header("content-length", n.to_string())
                .body(ureq::SendBody::from_reader(body))
                .map(|r| self.agent.run(r)),
            (Framing::Chunked, false) => b
                .body(ureq::SendBody::from_reader(body))
                .map(|r| self.agent.run(r)),
        };
        let resp = match sent {
            Err(e) => return Err(format!("bad request for upstream: {e}")),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        let mut headers = Vec::new();
        let mut length = None;
        let head_request = head.method.eq_ignore_ascii_case("HEAD");
        for (k, v) in resp.headers() {
            let name = k.as_str();
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            if name == "content-length" {
                length = value.trim().parse::<u64>().ok();
                // A HEAD answer keeps the length of the body it does not send.
                if !head_request {
                    continue;
                }
            } else if HOP.contains(&name) {
                continue;
            }
            headers.push((name.to_string(), value));
        }
        let answer = Answer {
            status,
            headers,
            body: None,
        };
        if head_request {
            return Ok((answer, Pending::Held));
        }
        let reader = resp.into_body().into_reader();
        Ok((answer, Pending::Stream(reader, length)))
    }

    /// The parsed JSON of a held body (parsed once per change).
    fn json_of(&self, answer: &Answer, cache: &mut Option<Option<J>>) -> Option<J> {
        if cache.is_none() {
            *cache = Some(
                answer
                    .body
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<J>(b).ok()),
            );
        }
        cache.clone().flatten()
    }

    /// Applies rule `i`'s edits to the answer.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        i: usize,
        caps: &[String],
        view: &RequestView,
        original_target: &str,
        answer: &mut Answer,
        json_cache: &mut Option<Option<J>>,
        delivery: &mut Delivery,
        page: Option<&PageAsk>,
    ) -> Result<(), Diagnostic> {
        let edit = &self.rule(i).edit;
        let json = self.json_of(answer, json_cache);
        let ctx = context(view, caps, Some((answer, json.as_ref())), None);
        if edit.stale {
            let key = (i, format!("{} {original_target}", view.method));
            if let Ok(mut st) = self.state.lock() {
                if (200..300).contains(&answer.status) {
                    st.stale.insert(key, answer.clone());
                } else if let Some(old) = st.stale.get(&key) {
                    *answer = old.clone();
                    *json_cache = None;
                }
            }
        }
        if let (Some(p), Some((_, limit, cursor))) = (&edit.paginate, page) {
            if (200..300).contains(&answer.status) {
                if let Some(mut doc) = self.json_of(answer, json_cache) {
                    if let Some(J::Array(list)) = doc.pointer_mut(&p.list) {
                        let start = match (p.by, cursor) {
                            (_, None) => 0,
                            (CursorBy::Index, Some(c)) => c.parse::<usize>().unwrap_or(0),
                            (CursorBy::Value, Some(c)) => {
                                let text = |v: &J| match v {
                                    J::String(s) => s.clone(),
                                    other => other.to_string(),
                                };
                                match list.iter().position(|v| text(v) == *c) {
                                    Some(at) => at + 1,
                                    None => list
                                        .iter()
                                        .position(|v| text(v).as_str() > c.as_str())
                                        .unwrap_or(list.len()),
                                }
                            }
                        }
                        .min(list.len());
                        let take = limit.unwrap_or(p.size).min(p.size);
                        let end = (start + take).min(list.len());
                        let more = end < list.len() && take > 0;
                        let next_cursor = match p.by {
                            CursorBy::Index => end.to_string(),
                            CursorBy::Value => match list.get(end.saturating_sub(1)) {
                                Some(J::String(s)) => s.clone(),
                                Some(other) => other.to_string(),
                                None => String::new(),
                            },
                        };
                        *list = list[start..end].to_vec();
                        answer.body = Some(serde_json::to_vec(&doc).unwrap_or_default());
                        *json_cache = None;
                        answer.remove_header("link");
                        if more {
                            let mut q: Vec<(String, String)> = view
                                .query
                                .iter()
                                .filter(|(k, _)| *k != p.cursor && Some(k) != p.limit.as_ref())
                                .cloned()
                                .collect();
                            if let (Some(l), Some(n)) = (&p.limit, limit) {
                                q.push((l.clone(), n.to_string()));
                            }
                            q.push((p.cursor.clone(), next_cursor));
                            let next = RequestView {
                                query: q,
                                ..view.clone()
                            };
                            answer.set_header("Link", format!("<{}>; rel=\"next\"", next.target()));
                        }
                    }
                }
            }
        }
        if let Some(s) = edit.status {
            answer.status = s;
        }
        let h = &edit.headers;
        for name in &h.remove {
            answer.remove_header(name);
        }
        for (name, re, to) in &h.rewrite {
            for (k, v) in answer.headers.iter_mut() {
                if k.eq_ignore_ascii_case(name) {
                    *v = re.replace_all(v, to.as_str()).into_owned();
                }
            }
        }
        for (name, t) in &h.set {
            let current = answer.header(name).map(String::from);
            let c = context(
                view,
                caps,
                Some((answer, json.as_ref())),
                current.as_deref(),
            );
            answer.set_header(name, t.render(&c)?);
            delivery.length_set |= name.eq_ignore_ascii_case("content-length");
        }
        for (name, t) in &h.add {
            let v = t.render(&ctx)?;
            answer.headers.push((name.clone(), v));
            delivery.length_set |= name.eq_ignore_ascii_case("content-length");
        }
        if let Some(b) = &edit.body {
            let body = answer.body.get_or_insert_with(Vec::new);
            edit_body(b, body, &ctx)?;
            *json_cache = None;
        }
        if !edit.json.is_empty() {
            if let Some(mut doc) = self.json_of(answer, json_cache) {
                edit_json(&edit.json, &mut doc, &ctx)?;
                answer.body = Some(serde_json::to_vec(&doc).unwrap_or_default());
                *json_cache = None;
            }
        }
        if let Some(r) = edit.reformat {
            if let Some(doc) = self.json_of(answer, json_cache) {
                answer.body = Some(
                    match r {
                        Reformat::Compact => serde_json::to_vec(&doc),
                        Reformat::Pretty => serde_json::to_vec_pretty(&doc),
                    }
                    .unwrap_or_default(),
                );
                *json_cache = None;
            }
        }
        if let Some(rot) = &edit.rotate {
            if let Some(loc) = answer.header("location").map(String::from) {
                let after_origin = match loc.find("://") {
                    Some(at) => loc[at + 3..]
                        .find('/')
                        .map_or("/", |p| &loc[at + 3 + p..])
                        .to_string(),
                    None => loc.clone(),
                };
                let loc_path = after_origin
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if rot.location.is_match(&loc_path) {
                    if let Ok(mut st) = self.state.lock() {
                        st.next_token += 1;
                        let token = format!("t{}", st.next_token);
                        answer.set_header(
                            "Location",
                            crate::template::append_query(
                                &loc,
                                &[(rot.param.clone(), token.clone())],
                            ),
                        );
                        st.tokens.insert((i, loc_path), token);
                    }
                }
            }
        }
        delivery.chunked |= edit.chunked;
        delivery.delay_ms += edit.delay_ms;
        delivery.close |= edit.close;
        delivery.drop |= edit.drop;
        delivery.hang |= edit.hang;
        if edit.cut.is_some() {
            delivery.cut = edit.cut;
        }
        delivery.body_on_head |= edit.body_on_head;
        Ok(())
    }

    /// A canned answer rendered for this request.
    fn canned(&self, c: &Canned, ctx: &Value) -> Answer {
        let mut headers = Vec::new();
        for (k, t) in &c.headers {
            headers.push((k.clone(), t.render(ctx).unwrap_or_else(|d| d.message)));
        }
        let mut body = Vec::new();
        if let Some(b) = &c.body {
            if let Err(d) = edit_body(b, &mut body, ctx) {
                body = d.message.into_bytes();
            }
            if matches!(b, BodyEdit::Json(_))
                && !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
        }
        Answer {
            status: c.status,
            headers,
            body: Some(body),
        }
    }

    /// Writes the answer out; whether the connection may go on.
    fn deliver(
        &self,
        out: &mut TcpStream,
        mut answer: Answer,
        pending: Pending,
        d: &Delivery,
        head_request: bool,
    ) -> io::Result<bool> {
        if d.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(d.delay_ms));
        }
        if d.drop {
            return Ok(false);
        }
        if d.hang {
            self.hold(out);
            return Ok(false);
        }
        // Upstream origin → the proxy's, in every header (absolute Locations, Links).
        let origin = format!("http://{}", self.listen);
        for (_, v) in answer.headers.iter_mut() {
            if v.contains(&self.upstream) {
                *v = v.replace(&self.upstream, &origin);
            }
        }
        let no_body = matches!(answer.status, 100..=199 | 204 | 304);
        let filler;
        let (framing, held): (Framing, Option<&[u8]>) = if head_request {
            if d.body_on_head {
                let announced = answer
                    .header("content-length")
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let body = match &answer.body {
                    Some(b) if !b.is_empty() => b.clone(),
                    _ => vec![b' '; announced],
                };
                filler = body;
                (Framing::None, Some(&filler[..]))
            } else {
                (Framing::None, None)
            }
        } else if no_body {
            answer.remove_header("content-length");
            (Framing::None, None)
        } else {
            let held = answer.body.as_deref();
            let framing = if d.length_set {
                Framing::None
            } else if d.chunked {
                Framing::Chunked
            } else {
                match (&held, &pending) {
                    (Some(b), _) => Framing::Length(b.len() as u64),
                    (None, Pending::Stream(_, Some(n))) => Framing::Length(*n),
                    (None, Pending::Stream(_, None)) => Framing::Chunked,
                    (None, Pending::Held) => Framing::Length(0),
                }
            };
            (framing, held)
        };
        let close = d.close || d.cut.is_some();
        let mut w = BufWriter::new(&mut *out);
        wire::write_head(&mut w, answer.status, &answer.headers, framing, close)?;
        let copied = if head_request && !d.body_on_head || no_body {
            w.flush()
        } else if let Some(limit) = d.cut {
            let r: Box<dyn Read> = match (held, pending) {
                (Some(b), _) => Box::new(io::Cursor::new(b.to_vec())),
                (None, Pending::Stream(r, _)) => Box::new(r),
                (None, Pending::Held) => Box::new(io::empty()),
            };
            let _ = io::copy(&mut r.take(limit), &mut w);
            let _ = w.flush();
            drop(w);
            let _ = out.shutdown(std::net::Shutdown::Both);
            return Ok(false);
        } else {
            match (held, pending, framing) {
                (Some(b), _, Framing::Chunked) => {
                    let mut c = ChunkedWriter(&mut w);
                    c.write_all(b)?;
                    c.finish().map(|_| ())
                }
                (Some(b), _, _) => w.write_all(b).and_then(|()| w.flush()),
                (None, Pending::Stream(mut r, _), Framing::Chunked) => {
                    let mut c = ChunkedWriter(&mut w);
                    io::copy(&mut r, &mut c)?;
                    c.finish().map(|_| ())
                }
                (None, Pending::Stream(mut r, _), _) => {
                    io::copy(&mut r, &mut w).and_then(|_| w.flush())
                }
                (None, Pending::Held, _) => w.flush(),
            }
        };
        copied?;
        Ok(!close)
    }

    /// Holds a connection without answering until the client closes it or the proxy stops.
    fn hold(&self, out: &mut TcpStream) {
        let _ = out.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = [0u8; 1024];
        while !self.stop.load(Ordering::SeqCst) {
            match out.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    }

    /// A short plain-text answer from the proxy itself.
    fn plain(&self, out: &mut TcpStream, status: u16, text: &str) -> io::Result<()> {
        let body = format!("{text}\n");
        wire::write_head(
            out,
            status,
            &[("Content-Type".into(), "text/plain".into())],
            Framing::Length(body.len() as u64),
            true,
        )?;
        out.write_all(body.as_bytes())?;
        out.flush()
    }

    /// A rule's template failed: the client gets a 500 naming it, and the log says why.
    fn template_failure(&self, out: &mut TcpStream, i: usize, d: &Diagnostic) -> io::Result<bool> {
        let msg = format!(
            "oci-conform proxy: alteration {} at {}: {}",
            self.rules[i].label(),
            d.pos,
            d.message
        );
        self.note(&msg);
        if self.echo {
            eprintln!("{msg}");
        }
        self.plain(out, 500, &msg)?;
        Ok(false)
    }

    fn note(&self, line: &str) {
        if let Ok(mut log) = self.log.lock() {
            if log.len() < MAX_LOG {
                log.push(line.to_string());
            }
        }
    }
}
