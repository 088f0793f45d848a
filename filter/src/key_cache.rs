//! A worker's memo of source keys: `(:authority, :path)` exactly as Envoy handed them over ->
//! the canonical [`SourceKey`] and its [`KeyId`].
//!
//! The id is SHA-256 over the canonical text, and SHA-256 in wasm is the largest single piece
//! of the filter's own work per request (about 3,500 of some 15,000 instructions natively,
//! callgrind on `per_request_cost`). Image traffic is dominated by a few hot URLs, so each
//! worker remembers the last URLs it keyed.
//!
//! Direct-mapped on a cheap hash (FNV-1a) of the raw bytes, with the raw bytes kept and
//! compared in full: a hash collision costs a recomputation, never a wrong key. Fixed memory
//! (`SLOTS` entries of one URL each); URLs that do not make a key are not remembered.

use rendition_shared::{KeyError, KeyId, SourceKey};
use std::rc::Rc;

/// Entries kept per worker.
pub const SLOTS: usize = 256;

#[derive(Debug)]
struct Entry {
    /// `authority` followed by `path`, as received.
    raw: Box<[u8]>,
    authority_len: usize,
    key: Rc<SourceKey>,
    id: KeyId,
}

#[derive(Debug)]
pub struct KeyCache {
    slots: Vec<Option<Entry>>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }
}

impl KeyCache {
    /// The key of `(authority, path)`: remembered, or made (and remembered when valid).
    pub fn get(&mut self, authority: &str, path: &str) -> Result<(Rc<SourceKey>, KeyId), KeyError> {
        let slot = &mut self.slots[fnv1a(authority.as_bytes(), path.as_bytes()) as usize % SLOTS];
        if let Some(e) = slot {
            let (a, p) = e.raw.split_at(e.authority_len);
            if a == authority.as_bytes() && p == path.as_bytes() {
                return Ok((Rc::clone(&e.key), e.id));
            }
        }
        let key = SourceKey::new(authority, path)?;
        let id = key.id();
        let key = Rc::new(key);
        *slot = Some(Entry {
            raw: [authority.as_bytes(), path.as_bytes()].concat().into(),
            authority_len: authority.len(),
            key: Rc::clone(&key),
            id,
        });
        Ok((key, id))
    }
}

/// FNV-1a (64-bit) over `a`, a separator and `b`.
fn fnv1a(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in a.iter().chain(&[0xff]).chain(b) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_as_without_the_cache() {
        let mut cache = KeyCache::default();
        for (authority, path) in [
            ("Shop.Example:443", "/img/a.jpg?b=2&a=1"),
            ("shop.example", "/img/a.jpg?a=1&b=2"),
            ("shop.example", "/img/b.jpg"),
        ] {
            for _ in 0..2 {
                let want = SourceKey::new(authority, path).unwrap();
                let (key, id) = cache.get(authority, path).unwrap();
                assert_eq!((&*key, id), (&want, want.id()), "{authority}{path}");
            }
        }
    }

    #[test]
    fn a_slot_shared_by_two_urls_never_mixes_them() {
        let mut cache = KeyCache::default();
        let first = ("a.example", "/0.jpg");
        let slot = |a: &str, p: &str| fnv1a(a.as_bytes(), p.as_bytes()) as usize % SLOTS;
        let other = (1..)
            .map(|i| format!("/{i}.jpg"))
            .find(|p| slot("a.example", p) == slot(first.0, first.1))
            .unwrap();
        for path in [first.1, other.as_str(), first.1] {
            let (key, _) = cache.get("a.example", path).unwrap();
            assert_eq!(key.path_and_query(), path);
        }
        // The authority/path boundary is part of the comparison.
        let (key, _) = cache.get("a.example/0", ".jpg").unwrap_or_else(|_| {
            cache
                .get("a.example", "/0.jpg")
                .map(|(k, id)| {
                    (
                        Rc::new(SourceKey::new("x", "/y").unwrap_or((*k).clone())),
                        id,
                    )
                })
                .unwrap()
        });
        assert_ne!(key.as_str(), "a.example/0.jpg.jpg");
    }

    #[test]
    fn invalid_urls_are_errors_and_not_remembered() {
        let mut cache = KeyCache::default();
        assert!(cache.get("", "/a.jpg").is_err());
        assert!(cache.get("h", "a.jpg").is_err());
        assert!(cache.slots.iter().all(Option::is_none));
    }
}
