//! Registry authentication: challenges, token scopes and the token cache.
//!
//! The HTTP client ([`crate::http::Client`]) answers a `401` by reading the registry's
//! `WWW-Authenticate` challenge: Basic, or the token flow of the distribution token spec, where
//! a token is fetched from the challenge's `realm` for the scopes the request needs. This module
//! holds the pieces of that flow that do not touch the network: parsing challenges, computing
//! and merging scopes, and caching tokens per scope until they expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::redact::Secret;
use crate::template::decode_component;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq)]
pub struct Challenge {
    /// Lower-case scheme.
    pub scheme: String,
    /// Parameters (quoted or token values), names lower-case.
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"` (quoted or bare values).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    if header.is_empty() {
        return None;
    }
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

/// The challenge to answer among a response's `WWW-Authenticate` values: Bearer before Basic,
/// because a registry offering both expects token clients to use the token flow.
pub fn pick_challenge<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let all: Vec<Challenge> = headers.into_iter().filter_map(parse_challenge).collect();
    let rank = |c: &Challenge| match c.scheme.as_str() {
        "bearer" => 0,
        "basic" => 1,
        _ => 2,
    };
    all.into_iter().min_by_key(rank)
}

/// Token scopes a request needs: pull for reads, pull+push for writes, delete for DELETE,
/// `registry:catalog:*` for the catalog, and pull on the source repository of a
/// cross-repository mount (`?mount=…&from=…`).
pub fn scopes_for(method: &str, url: &str) -> Vec<String> {
    let path = url
        .split_once("://")
        .map_or(url, |(_, r)| r.find('/').map_or("", |i| &r[i..]));
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Vec::new();
    };
    if rest.trim_end_matches('/') == "_catalog" {
        return vec!["registry:catalog:*".to_string()];
    }
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
    let mut scopes = vec![format!("repository:{}:{actions}", decode_component(repo))];
    for pair in query.split('&') {
        if let Some(from) = pair.strip_prefix("from=").filter(|f| !f.is_empty()) {
            scopes.push(format!("repository:{}:pull", decode_component(from)));
        }
    }
    merge_scopes(&[&scopes])
}

/// Unites scope lists: one `type:name:actions` entry per resource, with every action any list
/// asks for (`pull` + `pull,push` → `pull,push`), in a stable order so equal sets compare equal.
pub fn merge_scopes(lists: &[&[String]]) -> Vec<String> {
    let mut resources: Vec<(String, Vec<String>)> = Vec::new();
    for scope in lists.iter().flat_map(|l| l.iter()) {
        for part in scope.split(' ').filter(|p| !p.is_empty()) {
            // type:name:actions — the name may itself hold colons (`repository:host:5000/x`).
            let (resource, actions) = match part.rsplit_once(':') {
                Some((r, a)) if r.contains(':') => (r.to_string(), a),
                _ => (part.to_string(), ""),
            };
            let entry = match resources.iter_mut().find(|(r, _)| *r == resource) {
                Some(e) => e,
                None => {
                    resources.push((resource, Vec::new()));
                    resources.last_mut().expect("just pushed")
                }
            };
            for a in actions.split(',').filter(|a| !a.is_empty()) {
                if !entry.1.iter().any(|x| x == a) {
                    entry.1.push(a.to_string());
                }
            }
        }
    }
    let order = |a: &str| match a {
        "pull" => 0,
        "push" => 1,
        "delete" => 2,
        _ => 3,
    };
    resources.sort_by(|a, b| a.0.cmp(&b.0));
    resources
        .into_iter()
        .map(|(r, mut actions)| {
            actions.sort_by(|a, b| order(a).cmp(&order(b)).then(a.cmp(b)));
            if actions.is_empty() {
                r
            } else {
                format!("{r}:{}", actions.join(","))
            }
        })
        .collect()
}

/// Bearer tokens per scope set, each until it expires; a disabled cache remembers nothing.
pub struct TokenCache {
    enabled: bool,
    tokens: Mutex<HashMap<Vec<String>, (Secret, Instant)>>,
}

impl TokenCache {
    /// A cache that stores tokens only when `enabled` (`cacheAuth`).
    pub fn new(enabled: bool) -> Self {
        TokenCache {
            enabled,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Whether tokens are kept between requests.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A token for exactly these scopes that has not expired.
    pub fn get(&self, scopes: &[String]) -> Option<Secret> {
        if !self.enabled {
            return None;
        }
        let mut tokens = self.tokens.lock().ok()?;
        let key = merge_scopes(&[scopes]);
        match tokens.get(&key) {
            Some((t, exp)) if *exp > Instant::now() => Some(t.clone()),
            Some(_) => {
                tokens.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Stores a token for a scope set until `expires`.
    pub fn put(&self, scopes: &[String], token: &Secret, expires: Instant) {
        if !self.enabled {
            return;
        }
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(merge_scopes(&[scopes]), (token.clone(), expires));
        }
    }
}

/// When a token received at `received` stops being used: `expires_in` seconds later (60 when
/// the server does not say, as the token spec defines), renewed a little early so a token does
/// not expire while a request is in flight.
pub fn token_expiry(received: Instant, expires_in: Option<f64>) -> Instant {
    let ttl = expires_in
        .filter(|t| t.is_finite() && *t > 0.0)
        .unwrap_or(60.0)
        .min(86_400.0 * 365.0);
    let margin = (ttl / 10.0).min(5.0);
    received + Duration::from_secs_f64(ttl - margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_string()).collect()
    }

    #[test]
    fn parses_challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#).unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge("Basic realm=Registry").unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry");
        let c = parse_challenge(r#"Bearer realm="a\"b", error=insufficient_scope"#).unwrap();
        assert_eq!(c.params["realm"], "a\"b");
        assert_eq!(c.params["error"], "insufficient_scope");
        assert!(parse_challenge("  ").is_none());
        // odd input never panics
        for h in [
            "Bearer =",
            "Bearer realm=\"",
            "x y=z,,,=",
            "Bearer ,,",
            "é ü=\"ö",
        ] {
            let _ = parse_challenge(h);
        }
    }

    #[test]
    fn bearer_wins_over_basic() {
        let c = pick_challenge(["Basic realm=x", "Bearer realm=\"http://t/\""]).unwrap();
        assert_eq!(c.scheme, "bearer");
        assert!(pick_challenge(Vec::<&str>::new()).is_none());
    }

    #[test]
    fn scopes_per_request() {
        assert_eq!(
            scopes_for("GET", "http://h/v2/a/b/blobs/sha256:x"),
            s(&["repository:a/b:pull"])
        );
        assert_eq!(
            scopes_for("PUT", "http://h/v2/a/manifests/t"),
            s(&["repository:a:pull,push"])
        );
        assert_eq!(
            scopes_for("PATCH", "http://h/v2/a/blobs/uploads/123?_state=x"),
            s(&["repository:a:pull,push"])
        );
        assert_eq!(
            scopes_for("DELETE", "http://h/v2/a/b/manifests/t"),
            s(&["repository:a/b:delete"])
        );
        assert_eq!(
            scopes_for(
                "POST",
                "http://h/v2/r1/blobs/uploads/?mount=sha256:x&from=r%2F2"
            ),
            s(&["repository:r/2:pull", "repository:r1:pull,push"])
        );
        assert!(scopes_for("GET", "http://h/v2/").is_empty());
        assert_eq!(
            scopes_for("GET", "http://h/v2/_catalog?n=1"),
            s(&["registry:catalog:*"])
        );
        // a repository named like an endpoint segment still resolves to the right name
        assert_eq!(
            scopes_for("GET", "http://h/v2/x/blobs/y/manifests/t"),
            s(&["repository:x/blobs/y:pull"])
        );
        // a mount from the same repository needs only one entry
        assert_eq!(
            scopes_for("POST", "/v2/r/blobs/uploads/?mount=sha256:x&from=r"),
            s(&["repository:r:pull,push"])
        );
    }

    #[test]
    fn scopes_merge_per_resource() {
        let a = s(&["repository:a:pull"]);
        let b = s(&["repository:a:push,pull repository:b:pull"]);
        let c = s(&["repository:host:5000/x:delete", "registry:catalog:*"]);
        assert_eq!(
            merge_scopes(&[&a, &b, &c]),
            s(&[
                "registry:catalog:*",
                "repository:a:pull,push",
                "repository:b:pull",
                "repository:host:5000/x:delete"
            ])
        );
        assert_eq!(merge_scopes(&[&s(&["weird"])]), s(&["weird"]));
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(decode_component("a%2Fb%2fc"), "a/b/c");
        assert_eq!(decode_component("50%"), "50%");
        assert_eq!(decode_component("%4"), "%4");
        assert_eq!(decode_component("%zz"), "%zz");
    }

    #[test]
    fn cache_keeps_tokens_until_expiry_only_when_enabled() {
        let scopes = s(&["repository:a:pull"]);
        let t = Secret::new("tok");
        let on = TokenCache::new(true);
        on.put(&scopes, &t, Instant::now() + Duration::from_secs(60));
        assert_eq!(
            on.get(&scopes).map(|x| x.expose().to_string()),
            Some("tok".into())
        );
        assert!(on.get(&s(&["repository:a:pull,push"])).is_none());
        on.put(&scopes, &t, Instant::now());
        assert!(on.get(&scopes).is_none(), "an expired token is not reused");
        let off = TokenCache::new(false);
        off.put(&scopes, &t, Instant::now() + Duration::from_secs(60));
        assert!(off.get(&scopes).is_none());
    }

    #[test]
    fn expiry_follows_expires_in() {
        let now = Instant::now();
        assert_eq!(
            token_expiry(now, Some(1.0)),
            now + Duration::from_millis(900)
        );
        assert_eq!(
            token_expiry(now, Some(300.0)),
            now + Duration::from_secs(295)
        );
        assert_eq!(token_expiry(now, None), now + Duration::from_secs(55));
        assert_eq!(token_expiry(now, Some(-5.0)), now + Duration::from_secs(55));
    }
}
