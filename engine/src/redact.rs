//! Secrets: passwords, Basic credentials and bearer tokens never reach any output.
//!
//! Requests are recorded with credential headers replaced at the source, and every text an
//! output writes passes through [`Redactor::scrub`], which replaces any known secret (and its
//! base64 forms) wherever it appears — a second line of defence for echoes in bodies.

use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine as _;

/// What replaces a secret.
pub const MASK: &str = "***";

/// A string that prints as `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The real value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Headers whose values are always masked in records.
pub fn is_sensitive_header(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-registry-auth"
    )
}

/// Known secret values of a run; shared by the HTTP client (which learns tokens) and outputs.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Registers a secret (and its base64 forms); short values are ignored to avoid noise.
    pub fn add(&self, secret: &str) {
        if secret.len() < 3 {
            return;
        }
        if let Ok(mut s) = self.secrets.write() {
            for v in [
                secret.to_string(),
                base64::engine::general_purpose::STANDARD.encode(secret),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
            ] {
                if !s.contains(&v) {
                    s.push(v);
                }
            }
            // Longest first, so a secret inside another is replaced as part of the longer one.
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    /// Registers user and password as they travel in Basic auth.
    pub fn add_basic(&self, user: &str, password: &str) {
        self.add(password);
        let pair = format!("{user}:{password}");
        if let Ok(mut s) = self.secrets.write() {
            for v in [
                base64::engine::general_purpose::STANDARD.encode(&pair),
                pair,
            ] {
                if !s.contains(&v) {
                    s.push(v);
                }
            }
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    /// Replaces every known secret in `text`.
    pub fn scrub(&self, text: &str) -> String {
        let Ok(secrets) = self.secrets.read() else {
            return text.to_string();
        };
        let mut out = text.to_string();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    /// Replaces every known secret in raw bytes (request bodies written next to reports).
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let Ok(secrets) = self.secrets.read() else {
            return bytes.to_vec();
        };
        let mut out = bytes.to_vec();
        for s in secrets.iter().map(String::as_bytes) {
            if s.is_empty() || !out.windows(s.len()).any(|w| w == s) {
                continue;
            }
            let mut next = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(s) {
                    next.extend_from_slice(MASK.as_bytes());
                    i += s.len();
                } else {
                    next.push(out[i]);
                    i += 1;
                }
            }
            out = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_masked() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn scrub_removes_plain_and_base64_forms() {
        let r = Redactor::default();
        r.add_basic("alice", "s3cret-pw");
        r.add("tok.en.value");
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw");
        let text = format!("pw=s3cret-pw auth=Basic {b64} bearer tok.en.value");
        let out = r.scrub(&text);
        assert!(
            !out.contains("s3cret") && !out.contains(&b64) && !out.contains("tok.en"),
            "{out}"
        );
        assert_eq!(out, "pw=*** auth=Basic *** bearer ***");
    }

    #[test]
    fn scrub_bytes_keeps_binary_and_removes_secrets() {
        let r = Redactor::default();
        r.add("s3cret-pw");
        let mut body = vec![0u8, 0xff, 0x10];
        body.extend_from_slice(b"s3cret-pw");
        body.push(0x80);
        assert_eq!(
            r.scrub_bytes(&body),
            [0u8, 0xff, 0x10, b'*', b'*', b'*', 0x80]
        );
        let clean = [1u8, 2, 3, 0xfe];
        assert_eq!(r.scrub_bytes(&clean), clean);
    }
}
