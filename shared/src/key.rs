//! The identity of a source image: host + path + normalized query, and its 128-bit id.
//!
//! * Host: lower-cased, a trailing dot dropped, and the default ports `:80`/`:443` dropped,
//!   because `Host: Example.com:443` and `example.com` name the same site.
//! * Path: byte for byte (paths are case-sensitive on most origins; we do not guess).
//! * Query: split on `&`, empty parameters dropped, parameters sorted bytewise, so
//!   `?w=1&h=2` and `?h=2&w=1` are one source. Values are not percent-decoded: an origin may
//!   tell `%2F` from `/`, and a cache that merged them would serve the wrong image.
//! * Fragment: dropped (clients never send one, but tools might).
//!
//! The id is the first 16 bytes of SHA-256 over the canonical text. A URL is picked by whoever
//! sends the request; with a non-cryptographic hash a crafted collision could make host B's URL
//! find host A's variants. Shown as 32 lower-case hex digits in `/v/{key}/{mask}`.

use core::fmt;
use sha2::{Digest, Sha256};

/// Longest canonical key accepted (host + path + query). Longer URLs are not optimized.
pub const MAX_KEY_LEN: usize = 4096;

/// Why a URL has no source key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    EmptyHost,
    /// The path does not start with `/`.
    RelativePath,
    TooLong,
    /// A control character or space in the host or path.
    InvalidByte,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyHost => "empty host",
            Self::RelativePath => "path does not start with '/'",
            Self::TooLong => "URL longer than the 4096-byte key limit",
            Self::InvalidByte => "control character or space in host or path",
        })
    }
}

/// The canonical text of a source: `host/path?sorted&query`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(String);

impl SourceKey {
    /// Canonicalizes `host` and `path_and_query` (as in `:authority` and `:path`).
    pub fn new(host: &str, path_and_query: &str) -> Result<SourceKey, KeyError> {
        let host = host_without_defaults(host)?;
        let without_fragment = path_and_query.split('#').next().unwrap_or_default();
        let (path, query) = match without_fragment.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (without_fragment, None),
        };
        if !path.starts_with('/') {
            return Err(KeyError::RelativePath);
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(KeyError::InvalidByte);
        }
        if host.len() + path_and_query.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        let mut text = String::with_capacity(host.len() + path_and_query.len() + 1);
        push_lowercase(&mut text, host);
        text.push_str(path);
        if let Some(q) = query {
            let mut params: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
            params.sort_unstable();
            for (i, p) in params.iter().enumerate() {
                text.push(if i == 0 { '?' } else { '&' });
                text.push_str(p);
            }
        }
        Ok(SourceKey(text))
    }

    /// Rebuilds a key from its canonical text (as stored by the sidecar), re-checking it.
    pub fn from_canonical(text: &str) -> Result<SourceKey, KeyError> {
        let slash = text.find('/').ok_or(KeyError::RelativePath)?;
        let key = SourceKey::new(&text[..slash], &text[slash..])?;
        Ok(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part (lower-case, default port dropped).
    pub fn host(&self) -> &str {
        self.0.split('/').next().unwrap_or_default()
    }

    /// Path and normalized query, starting with `/`.
    pub fn path_and_query(&self) -> &str {
        &self.0[self.host().len()..]
    }

    pub fn id(&self) -> KeyId {
        KeyId::of(self.0.as_bytes())
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host as a key holds it: lower-case, without a trailing dot and without `:80`/`:443`
/// (`Static.Example.com:80` -> `static.example.com`); other ports are kept. The sidecar
/// normalizes its `origins.hosts` keys with this, so a mapping matches the requests it names.
pub fn canonical_host(host: &str) -> Result<String, KeyError> {
    let host = host_without_defaults(host)?;
    let mut text = String::with_capacity(host.len());
    push_lowercase(&mut text, host);
    Ok(text)
}

/// ASCII case only, char by char: a non-ASCII host (an unencoded IDN, or bytes a client sent)
/// keeps its UTF-8, so the canonical text parses back to the same key.
fn push_lowercase(text: &mut String, host: &str) {
    text.extend(host.chars().map(|c| c.to_ascii_lowercase()));
}

fn host_without_defaults(host: &str) -> Result<&str, KeyError> {
    // Strip to a fixed point, so canonicalizing a canonical host changes nothing
    // (`a:80.:443` -> `a:80.` -> `a:80` -> `a`).
    let mut host = host.trim();
    loop {
        let stripped = host
            .strip_suffix(":80")
            .or_else(|| host.strip_suffix(":443"))
            .or_else(|| host.strip_suffix('.'))
            .unwrap_or(host);
        if stripped.len() == host.len() {
            break;
        }
        host = stripped;
    }
    if host.is_empty() {
        return Err(KeyError::EmptyHost);
    }
    if host.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'/') {
        return Err(KeyError::InvalidByte);
    }
    Ok(host)
}

/// 128-bit id of a [`SourceKey`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    pub const LEN: usize = 16;

    fn of(canonical: &[u8]) -> KeyId {
        let digest = Sha256::digest(canonical);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        KeyId(id)
    }

    /// Parses 32 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<KeyId> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            id[i] = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
        }
        Some(KeyId(id))
    }

    /// The first 8 bytes as a number, for bucketing (the bytes are uniform: SHA-256).
    pub fn bucket_seed(self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl KeyId {
    /// Appends the 32 lower-case hex digits (what `Display` writes) without `core::fmt`.
    pub fn push_hex(&self, out: &mut String) {
        crate::hex::push_bytes(out, &self.0);
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(2 * KeyId::LEN);
        self.push_hex(&mut text);
        f.write_str(&text)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}
