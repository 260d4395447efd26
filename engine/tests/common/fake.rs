//! A tiny HTTP/1.1 server for tests (std only): answers from a handler, can hang, cut a body
//! short or send garbage — and can proxy to a real registry while altering its answers, which
//! is how tests inject spec violations into an otherwise real registry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the fake server saw it.
#[derive(Clone, Debug, Default)]
pub struct Req {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Req {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer.
#[derive(Clone, Debug, Default)]
pub struct Resp {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    /// A status with a body.
    pub fn new(status: u16, body: &[u8]) -> Self {
        Resp {
            status,
            headers: Vec::new(),
            body: body.to_vec(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// Removes a header.
    pub fn without(mut self, k: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
        self
    }

    /// First value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
pub enum Action {
    /// Answer normally.
    Respond(Resp),
    /// Never answer (until the client gives up).
    Hang,
    /// Send headers announcing a longer body, part of it, then close.
    CutBody(Resp, usize),
    /// Write these bytes and close.
    Raw(Vec<u8>),
    /// Send headers announcing a longer body and part of it, then nothing more (until the
    /// client gives up).
    Stall(Resp, usize),
    /// Send headers without a length, then a chunked body that never ends.
    Endless,
    /// Answer normally, but send the body even to a HEAD (which must not carry one), keeping
    /// the connection open.
    BodyOnHead(Resp),
    /// Send headers, then the body one byte per interval (each byte resets the client's
    /// inactivity timeout).
    Trickle(Resp, Duration),
    /// Send headers announcing a longer body and part of it, then reset the connection (RST,
    /// not FIN). Only for requests without a body: the request is left unread, which is what
    /// makes the kernel reset the connection on close.
    Reset(Resp, usize),
}

type Handler = dyn Fn(&Req) -> Action + Send + Sync;

/// A running fake server, stopped on drop.
pub struct FakeServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    stop: Arc<AtomicBool>,
    /// Requests seen, in order.
    pub seen: Arc<Mutex<Vec<Req>>>,
}

impl FakeServer {
    /// Starts a server answering with `handler`.
    pub fn start(handler: impl Fn(&Req) -> Action + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (stop2, seen2) = (stop.clone(), seen.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (h, s, st) = (handler.clone(), seen2.clone(), stop2.clone());
                        std::thread::spawn(move || serve(stream, &*h, &s, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeServer { addr, stop, seen }
    }

    /// Starts a proxy to a real registry at `upstream`, letting `alter` change answers.
    pub fn proxy(
        upstream: &str,
        alter: impl Fn(&Req, Resp) -> Action + Send + Sync + 'static,
    ) -> Self {
        let upstream = upstream.to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .new_agent();
        let me = Arc::new(Mutex::new(String::new()));
        let me2 = me.clone();
        let server = FakeServer::start(move |req| {
            let url = format!("http://{upstream}{}", req.path);
            let mut b = ureq::http::Request::builder()
                .method(req.method.as_str())
                .uri(&url);
            for (k, v) in &req.headers {
                if !matches!(
                    k.as_str(),
                    "host" | "content-length" | "transfer-encoding" | "connection"
                ) {
                    b = b.header(k.as_str(), v.as_str());
                }
            }
            let has_body =
                !req.body.is_empty() || matches!(req.method.as_str(), "POST" | "PUT" | "PATCH");
            if has_body {
                b = b.header("content-length", req.body.len().to_string());
            }
            let request = b.body(req.body.clone()).expect("request");
            let resp = match agent.run(request) {
                Ok(r) => r,
                Err(e) => return Action::Respond(Resp::new(502, e.to_string().as_bytes())),
            };
            let status = resp.status().as_u16();
            let me = me2.lock().map(|m| m.clone()).unwrap_or_default();
            let headers = resp
                .headers()
                .iter()
                // A HEAD answer keeps the length of the body it does not send.
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "transfer-encoding" | "connection")
                        && (k.as_str() != "content-length" || req.method == "HEAD")
                })
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).replace(&upstream, &me),
                    )
                })
                .collect();
            let body = if req.method == "HEAD" {
                Vec::new()
            } else {
                resp.into_body().read_to_vec().unwrap_or_default()
            };
            alter(
                req,
                Resp {
                    status,
                    headers,
                    body,
                },
            )
        });
        if let Ok(mut m) = me.lock() {
            *m = server.addr.clone();
        }
        server
    }

    /// Requests seen so far.
    pub fn requests(&self) -> Vec<Req> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, handler: &Handler, seen: &Mutex<Vec<Req>>, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        // A request without a body is answered before it is read, so `Reset` can close the
        // connection with the request still unread.
        let early = if reader.buffer().is_empty() {
            peek_head(&out).map(|req| {
                let action = handler(&req);
                (req, action)
            })
        } else {
            None
        };
        if let Some((req, Action::Reset(r, keep))) = &early {
            if let Ok(mut s) = seen.lock() {
                s.push(req.clone());
            }
            let _ = out.write_all(&head_bytes(r, r.body.len()));
            let _ = out.write_all(&r.body[..(*keep).min(r.body.len())]);
            let _ = out.flush();
            // Let the client read the headers and start on the body before the reset.
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        if let Ok(mut s) = seen.lock() {
            s.push(req.clone());
        }
        let head_only = req.method == "HEAD";
        let action = match early {
            Some((_, action)) => action,
            None => handler(&req),
        };
        match action {
            Action::Respond(r) => {
                if write_response(&mut out, &r, head_only).is_err() {
                    return;
                }
            }
            Action::BodyOnHead(r) => {
                if write_response(&mut out, &r, false).is_err() {
                    return;
                }
            }
            Action::Hang => {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Action::CutBody(r, keep) | Action::Reset(r, keep) => {
                let _ = out.write_all(&head_bytes(&r, r.body.len()));
                let _ = out.write_all(&r.body[..keep.min(r.body.len())]);
                let _ = out.flush();
                let _ = out.shutdown(std::net::Shutdown::Both);
                return;
            }
            Action::Stall(r, keep) => {
                let _ = out.write_all(&head_bytes(&r, r.body.len()));
                let _ = out.write_all(&r.body[..keep.min(r.body.len())]);
                let _ = out.flush();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Action::Endless => {
                let _ = out.write_all(b"HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\n\r\n");
                let chunk = [b"10000\r\n".as_slice(), &[b'z'; 0x10000], b"\r\n"].concat();
                while !stop.load(Ordering::Relaxed) && out.write_all(&chunk).is_ok() {}
                return;
            }
            Action::Trickle(r, every) => {
                let _ = out.write_all(&head_bytes(&r, r.body.len()));
                for b in &r.body {
                    std::thread::sleep(every);
                    if stop.load(Ordering::Relaxed)
                        || out.write_all(std::slice::from_ref(b)).is_err()
                        || out.flush().is_err()
                    {
                        return;
                    }
                }
            }
            Action::Raw(bytes) => {
                let _ = out.write_all(&bytes);
                let _ = out.flush();
                let _ = out.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
}

/// Status line and headers announcing `len` body bytes.
fn head_bytes(r: &Resp, len: usize) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {} X\r\nContent-Length: {len}\r\n", r.status);
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The next request's head, read without consuming it, when the request has no body.
fn peek_head(stream: &TcpStream) -> Option<Req> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut last = 0;
    for _ in 0..400 {
        let n = stream.peek(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let mut parts = lines.next()?.split_whitespace();
            let method = parts.next()?.to_string();
            let path = parts.next()?.to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|h| h.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let has_body = headers
                .iter()
                .any(|(k, v)| k == "transfer-encoding" || (k == "content-length" && v != "0"));
            return (!has_body).then_some(Req {
                method,
                path,
                headers,
                body: Vec::new(),
            });
        }
        if n == buf.len() {
            return None;
        }
        if n == last {
            std::thread::sleep(Duration::from_millis(5));
        }
        last = n;
    }
    None
}

fn write_response(out: &mut TcpStream, r: &Resp, head_only: bool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} X\r\n", r.status);
    let mut has_len = false;
    for (k, v) in &r.headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        head.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if !head_only {
        out.write_all(&r.body)?;
    }
    out.flush()
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if n == 0 {
                let mut end = String::new();
                reader.read_line(&mut end).ok()?;
                break;
            }
            let mut chunk = vec![0; n];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).ok()?;
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Req {
        method,
        path,
        headers,
        body,
    })
}
