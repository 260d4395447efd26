//! Host name resolution for the HTTP client, remembered for a minute per host.
//!
//! ureq resolves the host of every request, even one that goes out on a pooled connection,
//! and with a resolve timeout it does so on a new thread each time: a thread and a DNS query
//! per request, most of the engine's system time on a loopback registry. Resolving each host
//! once a minute keeps the timeout (on the first lookup) and follows DNS changes in long runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a lookup is reused.
const TTL: Duration = Duration::from_secs(60);

/// ureq's resolver with a cache in front.
#[derive(Debug, Default)]
pub struct CachingResolver {
    inner: DefaultResolver,
    known: Mutex<HashMap<String, (Instant, Vec<SocketAddr>)>>,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        // The scheme too: it decides the default port.
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let lock = || self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, addrs)) = lock().get(&key) {
            if at.elapsed() < TTL {
                let mut out = self.empty();
                for a in addrs {
                    out.push(*a);
                }
                return Ok(out);
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        lock().insert(key, (Instant::now(), addrs.to_vec()));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_reused() {
        let r = CachingResolver::default();
        let config = ureq::Agent::config_builder().build();
        let uri: Uri = "http://127.0.0.1:5000/v2/".parse().unwrap();
        let first = r
            .resolve(&uri, &config, NextTimeout::default())
            .expect("resolves");
        assert_eq!(first.to_vec(), ["127.0.0.1:5000".parse().unwrap()]);
        // A stale entry is what the cache answers with: it was not resolved again.
        let stale: SocketAddr = "10.9.8.7:5000".parse().unwrap();
        r.known
            .lock()
            .unwrap()
            .get_mut("http://127.0.0.1:5000")
            .unwrap()
            .1 = vec![stale];
        let again = r.resolve(&uri, &config, NextTimeout::default()).unwrap();
        assert_eq!(again.to_vec(), [stale]);
        // Another port is another entry.
        let other: Uri = "http://127.0.0.1:5001/".parse().unwrap();
        let o = r.resolve(&other, &config, NextTimeout::default()).unwrap();
        assert_eq!(o.to_vec(), ["127.0.0.1:5001".parse().unwrap()]);
    }
}
