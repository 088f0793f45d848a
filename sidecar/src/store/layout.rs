//! The store's on-disk layout: the sled trees, their keys and the bytes of every value.
//! Everything here is a pure encoding (no sled calls), pinned byte for byte by
//! `sidecar/tests/store_layout.rs`. [`super::Store`] does the reads and writes.
//!
//! Trees (all keys fixed-layout binary; "BE" big-endian so that sled's byte order is numeric):
//!
//! | tree       | key                          | value                                            |
//! |------------|------------------------------|--------------------------------------------------|
//! | `variants` | key id (16) + slot (1)       | a blob or an alias (below)                       |
//! | `records`  | key id (16)                  | [`IndexRecord`] (28 bytes) + [`SourceMeta`] JSON  |
//! | `feed`     | seq (8 BE)                   | key id (16): the latest change of that source; + deletion time (8 BE, Unix s) when the record was deleted |
//! | `lru`      | tick (8 BE) + key id + slot  | empty: eviction order, oldest first              |
//! | `access`   | key id + slot                | tick (8 BE) + unix time (8 BE) of the last touch  |
//! | `payloads` | content hash (16)            | a variant's bytes, as served, stored once however many entries share them |
//! | `payload_refs` | content hash (16)        | how many `variants` entries point at it (u64 LE)  |
//! | `meta`     | `store_id`, `payload_bytes`, `compacted_seq`, `deduplicated_bytes`, `deduplicated_variants` | u64 little-endian each |
//! | `meta`     | `fleet_purge_cursor`         | the shared tier's last purge entry applied (its name, UTF-8) |
//!
//! A `variants` value starts with `RV`, the layout version (1) and a kind byte:
//!
//! | offset | size | shared blob (kind 2, written) | blob (kind 0, read only)   | alias (kind 1)      |
//! |--------|------|-------------------------------|----------------------------|---------------------|
//! | 0      | 2    | `RV`                          | `RV`                       | `RV`                |
//! | 2      | 1    | version `1`                   | version `1`                | version `1`         |
//! | 3      | 1    | kind `2`                      | kind `0`                   | kind `1`            |
//! | 4      | 4    | meta length `n`, u32 LE       | meta length `n`, u32 LE    | (1) the primary slot it points at |
//! | 8      | n    | [`VariantMeta`] as JSON       | [`VariantMeta`] as JSON    |                     |
//! | 8 + n  | 4    | CRC32 of the meta JSON and the variant's bytes, u32 LE | the same |            |
//! | 12 + n | 16   | content hash: the key of the bytes in `payloads` | the variant's bytes (rest) |  |
//!
//! Bytes are stored once at two levels. One encode that answers several slots is one blob under
//! its primary slot and an alias under each other slot. And blobs whose bytes are identical
//! (the same image at two URLs, or under two ETags, or two sources whose encodes came out the
//! same) share one `payloads` entry, counted in `payload_refs` and removed with its last
//! reference. The content hash is the first 128 bits of the bytes' SHA-256: a collision needs
//! about 2^64 stored variants. The CRC, over the entry's meta and the payload, is checked on
//! every read that serves, so a payload that is not the one the entry was written with is
//! never served. Kind 0 (bytes inline) is what stores written before sharing hold; it is read
//! and removed as before, never written.

use rendition_shared::http_cache;
use rendition_shared::{CapabilityMask, IndexRecord, KeyId, RECORD_LEN};
use serde::{Deserialize, Serialize};

/// Metadata stored with each variant blob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantMeta {
    pub content_type: String,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub quality: u8,
    pub lossless: bool,
    /// SSIMULACRA2 score when measured.
    pub score: Option<f32>,
    pub attempts: u32,
    pub class: String,
    /// Every slot this blob answers for (bit set, as in `rendition_shared::SlotSet`).
    pub slots: u64,
    pub source_etag: Option<String>,
    pub source_last_modified: Option<String>,
    /// Derived from the origin's `Cache-Control` when the variant was made.
    pub cache_control: Option<String>,
    /// Unix seconds.
    pub created: u64,
}

/// What the store knows about a source besides its record. Fields added after the first
/// layout default when an older record lacks them (`serde(default)`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceMeta {
    /// Canonical source key (host + path + query).
    pub key: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub cache_control: Option<String>,
    pub source_bytes: u64,
    pub width: u32,
    pub height: u32,
    pub format: Option<String>,
    pub class: Option<String>,
    /// Why the source was refused, when it was.
    pub refused: Option<String>,
    /// Why each lost slot was not stored (slot mask, reason).
    pub lost_reasons: Vec<(u8, String)>,
    /// Unix seconds of the last change to this record.
    pub updated: u64,
    /// The origin's `Expires`, when it sent one.
    pub expires: Option<String>,
    /// Unix milliseconds when the origin last confirmed the original (a 200 or a 304 arrived).
    pub validated_at_ms: u64,
    /// How old the original already was then, in milliseconds (RFC 9111
    /// `corrected_initial_age`).
    pub initial_age_ms: u64,
    /// Freshness lifetime in seconds, from the origin's headers (`rendition_shared::http_cache`).
    pub lifetime: u64,
    /// Where the lifetime came from (`max-age`, `expires`, `heuristic-default`, ...).
    pub lifetime_source: Option<String>,
    /// Once stale, never served before a successful revalidation (`must-revalidate`,
    /// `proxy-revalidate`, `no-cache`).
    pub must_revalidate: bool,
    /// Hex SHA-256 (first 128 bits) of the original's bytes: tells a changed original from the
    /// same one when the origin sends no validators.
    pub source_hash: Option<String>,
}

impl SourceMeta {
    /// The original's age at `now_ms` (Unix milliseconds), in milliseconds: its age when
    /// confirmed, plus the time since.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        http_cache::current_age_ms(self.initial_age_ms, self.validated_at_ms, now_ms)
    }

    /// Whether the stored original (and so every variant of it) is still fresh at `now_ms`.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        http_cache::is_fresh(self.age_ms(now_ms), self.lifetime)
    }
}

/// A variant ready to serve.
#[derive(Clone, Debug)]
pub struct StoredVariant {
    pub meta: VariantMeta,
    pub bytes: bytes::Bytes,
    pub crc: u32,
}

/// A variant with what its source's record says about caching it: what a hit is answered
/// from.
#[derive(Clone, Debug)]
pub struct ServedVariant {
    pub variant: StoredVariant,
    pub source: SourceMeta,
    /// The store's renewal count when this was read (`Store::renewals`): a copy that says
    /// stale is only worth reading again if a renewal happened since.
    pub renewals: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt entry: {0}")]
    Corrupt(String),
}

/// First bytes of every `variants` value.
pub const MAGIC: &[u8; 2] = b"RV";
pub const VERSION: u8 = 1;
pub const KIND_BLOB: u8 = 0;
pub const KIND_ALIAS: u8 = 1;
pub const KIND_SHARED: u8 = 2;
/// Keys of the `meta` tree.
pub const META_STORE_ID: &[u8] = b"store_id";
pub const META_BYTES: &[u8] = b"payload_bytes";
/// The highest sequence of a deletion no longer in the feed (`FeedPage::compacted_seq`).
pub const META_COMPACTED_SEQ: &[u8] = b"compacted_seq";
/// Bytes not stored because an identical payload already was (sum over payloads of
/// (references - 1) x size).
pub const META_DEDUPLICATED_BYTES: &[u8] = b"deduplicated_bytes";
/// Blobs whose bytes another blob already stored (sum over payloads of references - 1).
pub const META_DEDUPLICATED_VARIANTS: &[u8] = b"deduplicated_variants";
/// The last purge-log entry of the shared tier applied here (its object name, UTF-8).
pub const META_FLEET_PURGE_CURSOR: &[u8] = b"fleet_purge_cursor";

/// Key of a slot in the `variants` and `access` trees.
pub fn variant_key(key: &KeyId, slot: CapabilityMask) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..16].copy_from_slice(&key.0);
    k[16] = slot.slot().bits() as u8;
    k
}

/// LRU order is a monotonic tick (sled's `generate_id`), not the clock: many variants are
/// written within one second, and their order must still be the order they were written.
pub fn lru_key(tick: u64, key: &KeyId, slot: CapabilityMask) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[..8].copy_from_slice(&tick.to_be_bytes());
    k[8..24].copy_from_slice(&key.0);
    k[24] = slot.slot().bits() as u8;
    k
}

pub fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// An inline blob (kind 0): the variant's metadata, checksum and bytes in one value. Stores
/// no longer write it (they write [`encode_shared`]); it stays so that the golden test pins
/// what older stores hold, and tests can write one.
pub fn encode_blob(meta: &VariantMeta, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let meta_json = serde_json::to_vec(meta).map_err(|e| corrupt(e.to_string()))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&meta_json);
    crc.update(bytes);
    let mut v = Vec::with_capacity(12 + meta_json.len() + bytes.len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&[VERSION, KIND_BLOB]);
    v.extend_from_slice(&(meta_json.len() as u32).to_le_bytes());
    v.extend_from_slice(&meta_json);
    v.extend_from_slice(&crc.finalize().to_le_bytes());
    v.extend_from_slice(bytes);
    Ok(v)
}

/// The key of a payload in `payloads` and `payload_refs`: the first 128 bits of the SHA-256
/// of the variant's bytes.
pub type ContentHash = [u8; 16];

pub fn content_hash(bytes: &[u8]) -> ContentHash {
    use sha2::{Digest, Sha256};
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&Sha256::digest(bytes)[..16]);
    hash
}

/// The CRC32 an entry carries: over its meta JSON, then the variant's bytes.
pub fn entry_crc(meta_json: &[u8], bytes: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(meta_json);
    crc.update(bytes);
    crc.finalize()
}

/// A shared blob: the variant's metadata and checksum, and the content hash under which its
/// bytes are in `payloads` (stored there by the caller, once for every entry that shares them).
pub fn encode_shared(
    meta: &VariantMeta,
    bytes: &[u8],
) -> Result<(Vec<u8>, ContentHash), StoreError> {
    let meta_json = serde_json::to_vec(meta).map_err(|e| corrupt(e.to_string()))?;
    let hash = content_hash(bytes);
    let mut v = Vec::with_capacity(28 + meta_json.len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&[VERSION, KIND_SHARED]);
    v.extend_from_slice(&(meta_json.len() as u32).to_le_bytes());
    v.extend_from_slice(&meta_json);
    v.extend_from_slice(&entry_crc(&meta_json, bytes).to_le_bytes());
    v.extend_from_slice(&hash);
    Ok((v, hash))
}

/// A `payload_refs` value: how many entries share the payload.
pub fn refs_value(refs: u64) -> [u8; 8] {
    refs.to_le_bytes()
}

pub fn parse_refs(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_le_bytes)
}

/// A `variants` value, decoded.
pub enum Entry {
    /// Bytes inline (stores written before payloads were shared).
    Blob {
        meta: VariantMeta,
        /// Offset of the variant's bytes in the value.
        body_at: usize,
        crc: u32,
    },
    /// Bytes in `payloads` under `hash`.
    Shared {
        meta: VariantMeta,
        /// The meta JSON's length (it is at offset 8): the CRC covers it.
        meta_len: usize,
        crc: u32,
        hash: ContentHash,
    },
    Alias(CapabilityMask),
}

impl Entry {
    /// The metadata of a blob of either kind; None for an alias.
    pub fn meta(&self) -> Option<&VariantMeta> {
        match self {
            Entry::Blob { meta, .. } | Entry::Shared { meta, .. } => Some(meta),
            Entry::Alias(_) => None,
        }
    }
}

pub fn decode_entry(v: &[u8]) -> Result<Entry, StoreError> {
    if v.len() < 5 || &v[..2] != MAGIC || v[2] != VERSION {
        return Err(corrupt("variant header"));
    }
    match v[3] {
        KIND_ALIAS => CapabilityMask::from_bits(u32::from(v[4]))
            .map(Entry::Alias)
            .map_err(|e| corrupt(format!("alias slot: {e}"))),
        kind @ (KIND_BLOB | KIND_SHARED) => {
            let len = u32::from_le_bytes(
                v.get(4..8)
                    .ok_or_else(|| corrupt("blob meta length"))?
                    .try_into()
                    .map_err(|_| corrupt("len"))?,
            ) as usize;
            let meta_json = v.get(8..8 + len).ok_or_else(|| corrupt("blob meta"))?;
            let crc_bytes = v
                .get(8 + len..12 + len)
                .ok_or_else(|| corrupt("blob crc"))?;
            let crc = u32::from_le_bytes(crc_bytes.try_into().map_err(|_| corrupt("crc"))?);
            let meta: VariantMeta = serde_json::from_slice(meta_json)
                .map_err(|e| corrupt(format!("blob meta: {e}")))?;
            if kind == KIND_BLOB {
                return Ok(Entry::Blob {
                    meta,
                    body_at: 12 + len,
                    crc,
                });
            }
            let hash: ContentHash = match v.get(12 + len..) {
                Some(h) if h.len() == 16 => h.try_into().map_err(|_| corrupt("content hash"))?,
                _ => return Err(corrupt("content hash")),
            };
            Ok(Entry::Shared {
                meta,
                meta_len: len,
                crc,
                hash,
            })
        }
        k => Err(corrupt(format!("variant kind {k}"))),
    }
}

/// A `records` value: the index record, then the source's metadata.
pub fn decode_record(v: &[u8]) -> Result<(IndexRecord, SourceMeta), StoreError> {
    let record = IndexRecord::decode(
        v.get(..RECORD_LEN)
            .ok_or_else(|| corrupt("record length"))?,
    )
    .map_err(|e| corrupt(e.to_string()))?;
    let meta = serde_json::from_slice(&v[RECORD_LEN..])
        .map_err(|e| corrupt(format!("source meta: {e}")))?;
    Ok((record, meta))
}

pub fn encode_record(record: &IndexRecord, meta: &SourceMeta) -> Result<Vec<u8>, StoreError> {
    let mut v = record.encode().to_vec();
    v.extend_from_slice(&serde_json::to_vec(meta).map_err(|e| corrupt(e.to_string()))?);
    Ok(v)
}

/// A `feed` value: the source's key id, and for a deleted record the time it was deleted (a
/// tombstone: the filters must hear of the deletion, and it leaves the feed once it is old).
pub fn encode_feed_value(key: &KeyId, deleted_at: Option<u64>) -> Vec<u8> {
    let mut v = key.0.to_vec();
    if let Some(t) = deleted_at {
        v.extend_from_slice(&t.to_be_bytes());
    }
    v
}

/// The inverse of [`encode_feed_value`].
pub fn decode_feed_value(v: &[u8]) -> Option<(KeyId, Option<u64>)> {
    let mut id = [0u8; 16];
    id.copy_from_slice(v.get(..16)?);
    let deleted_at = match v.len() {
        16 => None,
        24 => Some(u64::from_be_bytes(v[16..24].try_into().ok()?)),
        _ => return None,
    };
    Some((KeyId(id), deleted_at))
}

/// An alias: the slot whose blob answers for this one.
pub fn encode_alias(primary: CapabilityMask) -> [u8; 5] {
    [
        MAGIC[0],
        MAGIC[1],
        VERSION,
        KIND_ALIAS,
        primary.bits() as u8,
    ]
}

/// Whether a `variants` value is a blob of either kind (it has bytes, inline or shared, and an
/// LRU entry) rather than an alias.
pub fn is_blob(value: &[u8]) -> bool {
    matches!(value.get(3), Some(&KIND_BLOB) | Some(&KIND_SHARED))
}

/// The CRC32 an inline blob must carry, over its meta JSON and its bytes. `None` when
/// `body_at` does not fit `value`: `decode_entry` checks that, but a stored value is data, and
/// a corrupt one must read as corrupt, not panic.
pub fn blob_crc(value: &[u8], body_at: usize) -> Option<u32> {
    let meta = value.get(8..body_at.checked_sub(4)?)?;
    let bytes = value.get(body_at..)?;
    Some(entry_crc(meta, bytes))
}

/// An `access` value: the LRU tick and the wall-clock second of the last touch.
pub fn access_value(tick: u64, time: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&tick.to_be_bytes());
    v[8..].copy_from_slice(&time.to_be_bytes());
    v
}

pub fn parse_access(v: &[u8]) -> Option<(u64, u64)> {
    let tick = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let time = u64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    Some((tick, time))
}
