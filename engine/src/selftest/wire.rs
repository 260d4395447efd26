//! HTTP/1.1 on the proxy's client side: request heads, request bodies framed by
//! `Content-Length` or `chunked`, answer heads, and answer bodies written with a length or
//! chunked. Only what a proxy in front of a registry needs; no pipelining beyond reading the
//! next request after an answer.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::template::decode_component;

/// The longest request head accepted.
const MAX_HEAD: usize = 64 << 10;

/// A request line and its headers.
#[derive(Debug, Clone)]
pub struct Head {
    /// Method as sent.
    pub method: String,
    /// Request target (path and query) as sent.
    pub target: String,
    /// HTTP/1.x minor version.
    pub minor: u8,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client keeps the connection open after the answer.
    pub fn keep_alive(&self) -> bool {
        let conn = self
            .header("connection")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if self.minor == 0 {
            conn.contains("keep-alive")
        } else {
            !conn.contains("close")
        }
    }

    /// How the request body is framed.
    pub fn framing(&self) -> Result<Framing, String> {
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            return Ok(Framing::Chunked);
        }
        match self.header("content-length") {
            None => Ok(Framing::None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Framing::Length)
                .map_err(|_| format!("bad Content-Length `{v}`")),
        }
    }
}

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// This many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Reads the next request head; `Ok(None)` when the client closed the connection between
/// requests.
pub fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request head cut short",
                ))
            };
        }
        // Look for the end of the head in what was read so far plus the new bytes.
        let old = buf.len();
        buf.extend_from_slice(available);
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let head = Head {
                    method: req.method.unwrap_or_default().to_string(),
                    target: req.path.unwrap_or_default().to_string(),
                    minor: req.version.unwrap_or(1),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                };
                r.consume(n - old);
                return Ok(Some(head));
            }
            Ok(httparse::Status::Partial) => {
                let n = buf.len() - old;
                r.consume(n);
                if buf.len() > MAX_HEAD {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "request head too large",
                    ));
                }
            }
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not an HTTP request: {e}"),
                ))
            }
        }
    }
}

/// A request body as a reader: stops at the end of the body, decoding chunks.
pub struct BodyReader<'a> {
    inner: &'a mut BufReader<TcpStream>,
    state: State,
}

enum State {
    Length(u64),
    /// Bytes left in the current chunk (0: a size line comes next).
    Chunk(u64),
    Done,
}

impl<'a> BodyReader<'a> {
    /// A reader of a body framed as `framing`.
    pub fn new(inner: &'a mut BufReader<TcpStream>, framing: Framing) -> Self {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunk(0),
        };
        BodyReader { inner, state }
    }

    /// Reads and discards the rest of the body (so the next request can be read).
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        let n = (&mut *self.inner).take(4096).read_line(&mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body cut short",
            ));
        }
        Ok(line.trim_end().to_string())
    }
}

impl Read for BodyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Length(left) => {
                    let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut out[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "request body cut short",
                        ));
                    }
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::Done
                    } else {
                        State::Length(left)
                    };
                    return Ok(n);
                }
                State::Chunk(0) => {
                    let line = self.line()?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad chunk size `{line}`"),
                        )
                    })?;
                    if size == 0 {
                        // Trailers up to the empty line.
                        while !self.line().map(|l| l.is_empty())? {}
                        self.state = State::Done;
                    } else {
                        self.state = State::Chunk(size);
                    }
                }
                State::Chunk(left) => {
                    let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut out[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "chunked body cut short",
                        ));
                    }
                    let left = left - n as u64;
                    if left == 0 {
                        let mut crlf = [0u8; 2];
                        self.inner.read_exact(&mut crlf)?;
                    }
                    self.state = State::Chunk(left);
                    if left == 0 {
                        // The next read starts with a size line.
                        self.state = State::Chunk(0);
                    }
                    return Ok(n);
                }
            }
        }
    }
}

/// The reason phrase of a status.
fn reason(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Status")
}

/// Writes a status line and headers; `framing` adds `Content-Length` or
/// `Transfer-Encoding: chunked` (None: the headers already say it, or there is no body).
pub fn write_head(
    out: &mut impl Write,
    status: u16,
    headers: &[(String, String)],
    framing: Framing,
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    match framing {
        Framing::Length(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::None => {}
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

/// Writes chunks of the transfer coding; `finish` ends the body.
pub struct ChunkedWriter<W: Write>(pub W);

impl<W: Write> Write for ChunkedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.0, "{:x}\r\n", buf.len())?;
        self.0.write_all(buf)?;
        self.0.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> ChunkedWriter<W> {
    /// Writes the last chunk.
    pub fn finish(mut self) -> io::Result<W> {
        self.0.write_all(b"0\r\n\r\n")?;
        self.0.flush()?;
        Ok(self.0)
    }
}

/// The pairs of a raw query string: (raw pair text, decoded name, decoded value).
pub fn query_pairs(raw: &str) -> Vec<(String, String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (p.to_string(), decode_component(k), decode_component(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected pair: what is written to the first is read from the second.
    fn pair(bytes: &[u8]) -> BufReader<TcpStream> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        a.write_all(bytes).unwrap();
        drop(a);
        BufReader::new(b)
    }

    #[test]
    fn heads_and_bodies_are_framed() {
        let mut r = pair(
            b"PATCH /u?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n\
              PUT /v HTTP/1.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nwxyz",
        );
        let h = read_head(&mut r).unwrap().unwrap();
        assert_eq!((h.method.as_str(), h.target.as_str()), ("PATCH", "/u?x=1"));
        assert_eq!(h.framing().unwrap(), Framing::Chunked);
        let mut body = Vec::new();
        BodyReader::new(&mut r, h.framing().unwrap())
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(body, b"abcde");
        let h = read_head(&mut r).unwrap().unwrap();
        assert!(!h.keep_alive());
        let mut body = Vec::new();
        BodyReader::new(&mut r, h.framing().unwrap())
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(body, b"wxyz");
        assert!(read_head(&mut r).unwrap().is_none());
    }

    #[test]
    fn a_garbled_head_is_an_error() {
        let mut r = pair(b"\x00\x01 not http\r\n\r\n");
        assert!(read_head(&mut r).is_err());
    }

    #[test]
    fn chunks_are_written() {
        let mut w = ChunkedWriter(Vec::new());
        w.write_all(b"hello").unwrap();
        assert_eq!(w.finish().unwrap(), b"5\r\nhello\r\n0\r\n\r\n");
    }

    #[test]
    fn queries_decode() {
        assert_eq!(decode_component("sha256%3Aab+c%2"), "sha256:ab+c%2");
        let q = query_pairs("n=2&last=a%2Fb&flag");
        assert_eq!(q[1], ("last=a%2Fb".into(), "last".into(), "a/b".into()));
        assert_eq!(q[2].1, "flag");
    }
}
