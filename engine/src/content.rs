//! Bytes the run sends: dataset items held in memory, or large items generated on the fly.
//!
//! Large items are never held in memory: their bytes come from a seeded generator that can be
//! replayed from any offset, so a chunked upload or a range request reads exactly the slice it
//! needs and memory stays flat for multi-GB blobs.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, RwLock};

use sha2::Digest as _;

/// Where an item's bytes come from.
#[derive(Clone, Debug)]
pub enum Content {
    /// Bytes in memory.
    Bytes(Arc<Vec<u8>>),
    /// `len` pseudo-random bytes from `seed`, regenerated on every read.
    Generated {
        /// Generator seed.
        seed: u64,
        /// Length in bytes.
        len: u64,
    },
}

impl Content {
    /// Total length.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Generated { len, .. } => *len,
        }
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over bytes `start..=end` (or the whole content).
    pub fn reader(&self, range: Option<(u64, u64)>) -> Box<dyn Read + Send> {
        let (start, end) = range.unwrap_or((0, self.len().saturating_sub(1)));
        let count = if self.is_empty() {
            0
        } else {
            end.saturating_sub(start) + 1
        };
        match self {
            Content::Bytes(b) => Box::new(SliceReader {
                bytes: b.clone(),
                pos: start as usize,
                end: (start + count) as usize,
            }),
            Content::Generated { seed, .. } => Box::new(GenReader::new(*seed, start, count)),
        }
    }

    /// Bytes in memory, if this content is small.
    pub fn bytes(&self) -> Option<&Arc<Vec<u8>>> {
        match self {
            Content::Bytes(b) => Some(b),
            Content::Generated { .. } => None,
        }
    }

    /// Digest of the content (or of a range) with `alg`, streaming.
    pub fn digest(&self, alg: &str, range: Option<(u64, u64)>) -> Option<String> {
        let mut hasher = Hasher::new(alg)?;
        let mut r = self.reader(range);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Some(hasher.finish())
    }
}

struct SliceReader {
    bytes: Arc<Vec<u8>>,
    pos: usize,
    end: usize,
}

impl Read for SliceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let end = self.end.min(self.bytes.len());
        let n = buf.len().min(end.saturating_sub(self.pos));
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A streaming digest over one of the supported algorithms.
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher for `alg` (`sha256`, `sha512`).
    pub fn new(alg: &str) -> Option<Self> {
        match alg {
            "sha256" => Some(Hasher::Sha256(sha2::Sha256::new())),
            "sha512" => Some(Hasher::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest as `alg:hex`.
    pub fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", crate::template::hex(&h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", crate::template::hex(&h.finalize())),
        }
    }
}

/// A small, fast, seedable generator (xoshiro256**), so content is reproducible from `--seed`.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from a 64-bit value (expanded with splitmix64).
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// A generator seeded from a text label (hashed), e.g. `seed/dataset/item`.
    pub fn from_label(label: &str) -> Self {
        let h = sha2::Sha256::digest(label.as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        Rng::new(u64::from_le_bytes(b))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Fills a buffer with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// `n` characters of base32 text (A–Z, 2–7), like Go's `rand.Text()`.
    pub fn text(&mut self, n: usize) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        (0..n)
            .map(|_| ALPHABET[(self.next_u64() % 32) as usize] as char)
            .collect()
    }
}

/// Reads generated bytes from an offset: the stream is made of 8-byte words from a generator
/// re-seeded every block, so any offset is reached without generating what comes before.
struct GenReader {
    seed: u64,
    pos: u64,
    remaining: u64,
    block: Vec<u8>,
    block_index: u64,
}

const GEN_BLOCK: u64 = 64 * 1024;

impl GenReader {
    fn new(seed: u64, start: u64, count: u64) -> Self {
        GenReader {
            seed,
            pos: start,
            remaining: count,
            block: Vec::new(),
            block_index: u64::MAX,
        }
    }
}

impl Read for GenReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let index = self.pos / GEN_BLOCK;
        if index != self.block_index {
            self.block.resize(GEN_BLOCK as usize, 0);
            Rng::new(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)).fill(&mut self.block);
            self.block_index = index;
        }
        let offset = (self.pos % GEN_BLOCK) as usize;
        let n = buf
            .len()
            .min(self.block.len() - offset)
            .min(self.remaining as usize);
        buf[..n].copy_from_slice(&self.block[offset..offset + n]);
        self.pos += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// All item bytes of a run, by item id (`dataset/item`).
#[derive(Debug, Default)]
pub struct Store {
    items: RwLock<HashMap<String, Content>>,
    digests: RwLock<HashMap<DigestKey, String>>,
}

/// Item id, algorithm and byte range of a remembered digest.
type DigestKey = (String, String, Option<(u64, u64)>);

impl Store {
    /// Registers content under an id.
    pub fn insert(&self, id: &str, content: Content) {
        if let Ok(mut m) = self.items.write() {
            m.insert(id.to_string(), content);
        }
    }

    /// Content by id.
    pub fn get(&self, id: &str) -> Option<Content> {
        self.items.read().ok()?.get(id).cloned()
    }

    /// Digest of an item (or a range of it), computed once and remembered: large items are
    /// hashed by streaming, so repeated checks must not re-read them.
    pub fn digest(&self, id: &str, alg: &str, range: Option<(u64, u64)>) -> Option<String> {
        let key = (id.to_string(), alg.to_string(), range);
        if let Some(d) = self.digests.read().ok()?.get(&key) {
            return Some(d.clone());
        }
        let d = self.get(id)?.digest(alg, range)?;
        if let Ok(mut m) = self.digests.write() {
            m.insert(key, d.clone());
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_content_is_seekable_and_reproducible() {
        let c = Content::Generated {
            seed: 42,
            len: 200_000,
        };
        let mut all = Vec::new();
        c.reader(None).read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 200_000);
        let mut part = Vec::new();
        c.reader(Some((70_000, 140_000)))
            .read_to_end(&mut part)
            .unwrap();
        assert_eq!(part, all[70_000..=140_000]);
        assert_eq!(
            c.digest("sha256", None),
            crate::template::digest_bytes("sha256", &all)
        );
        let other = Content::Generated {
            seed: 43,
            len: 200_000,
        };
        assert_ne!(other.digest("sha256", None), c.digest("sha256", None));
    }

    #[test]
    fn byte_ranges_of_memory_content() {
        let c = Content::Bytes(Arc::new(b"0123456789".to_vec()));
        let mut out = String::new();
        c.reader(Some((2, 4))).read_to_string(&mut out).unwrap();
        assert_eq!(out, "234");
        let empty = Content::Bytes(Arc::new(Vec::new()));
        assert_eq!(
            empty.digest("sha256", None).unwrap(),
            crate::template::digest_bytes("sha256", b"").unwrap()
        );
    }

    #[test]
    fn rng_text_is_base32() {
        let t = Rng::new(1).text(26);
        assert_eq!(t.len(), 26);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        assert_eq!(
            Rng::from_label("a").next_u64(),
            Rng::from_label("a").next_u64()
        );
    }
}
