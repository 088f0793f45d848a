//! The index as it lives in Envoy shared data: a fixed bucket table plus one meta record.
//!
//! Envoy shared data is a string-keyed map per `vm_id` that can be written but never deleted
//! from. So the key space is fixed by design: `buckets` bucket keys (a power of two, set by the
//! singleton's configuration) and one meta key, whatever the number of images. A source's
//! bucket is the low bits of its [`KeyId`] (uniform: SHA-256); a bucket holds up to `ways`
//! entries; a full bucket evicts its oldest entry (lowest sequence number), which only makes
//! that source look like a miss again (the original is served and the filter notifies).
//!
//! A resync (the sidecar's store changed identity or went back in sequence) must forget every
//! record at once without deleting keys. The meta record carries an `epoch`; each bucket is
//! stamped with the epoch it was written in, and a bucket from an older epoch reads as empty.
//!
//! Meta record, version 1, 48 bytes, little-endian:
//!
//! | offset | size | field      | meaning                                                    |
//! |--------|------|------------|------------------------------------------------------------|
//! | 0      | 1    | version    | `1`                                                        |
//! | 1      | 1    | flags      | bit 0 `SIDECAR_UP`: the last poll of the feed succeeded    |
//! | 2      | 1    | ways       | entries per bucket (1..=16)                                |
//! | 3      | 1    | reserved   | zero                                                       |
//! | 4      | 4    | epoch      | bumped on every resync                                     |
//! | 8      | 4    | buckets    | bucket count, a power of two (1..=2^20)                    |
//! | 12     | 4    | reserved   | zero                                                       |
//! | 16     | 8    | store_id   | the sidecar store being followed                           |
//! | 24     | 8    | applied_seq| the feed sequence applied so far                           |
//! | 32     | 8    | updated_ms | host clock of the last successful poll (ms since epoch)    |
//! | 40     | 8    | records    | entries in the table: added minus removed since the resync |
//!
//! Bucket value, version 1: an 8-byte header (version `1`, count, two zero bytes, epoch u32)
//! followed by `count` 44-byte [`IndexEntry`]s.

use crate::key::KeyId;
use crate::record::{le_u32, le_u64, IndexEntry, IndexRecord, RecordError, ENTRY_LEN};

/// Shared-data key of the meta record.
pub const META_KEY: &str = "rendition/index/meta";
/// Encoded size of the meta record.
pub const META_LEN: usize = 48;
/// Encoded size of a bucket header.
pub const BUCKET_HEADER_LEN: usize = 8;
/// Largest bucket count the meta record accepts (2^20 keys: ~50 MB of shared data when full).
pub const MAX_BUCKETS: u32 = 1 << 20;
/// Largest bucket width.
pub const MAX_WAYS: u8 = 16;

const TABLE_VERSION: u8 = 1;
const FLAG_SIDECAR_UP: u8 = 1;

/// The singleton's view of the sync, published for every worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexMeta {
    pub sidecar_up: bool,
    pub ways: u8,
    pub epoch: u32,
    pub buckets: u32,
    pub store_id: u64,
    pub applied_seq: u64,
    pub updated_ms: u64,
    pub records: u64,
}

impl IndexMeta {
    /// A fresh table: epoch 1, nothing applied, sidecar not yet seen.
    pub fn new(buckets: u32, ways: u8) -> IndexMeta {
        IndexMeta {
            sidecar_up: false,
            ways,
            epoch: 1,
            buckets,
            store_id: 0,
            applied_seq: 0,
            updated_ms: 0,
            records: 0,
        }
    }

    pub fn encode(&self) -> [u8; META_LEN] {
        let mut out = [0u8; META_LEN];
        out[0] = TABLE_VERSION;
        out[1] = if self.sidecar_up { FLAG_SIDECAR_UP } else { 0 };
        out[2] = self.ways;
        out[4..8].copy_from_slice(&self.epoch.to_le_bytes());
        out[8..12].copy_from_slice(&self.buckets.to_le_bytes());
        out[16..24].copy_from_slice(&self.store_id.to_le_bytes());
        out[24..32].copy_from_slice(&self.applied_seq.to_le_bytes());
        out[32..40].copy_from_slice(&self.updated_ms.to_le_bytes());
        out[40..48].copy_from_slice(&self.records.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<IndexMeta, RecordError> {
        let b: &[u8; META_LEN] = bytes
            .try_into()
            .map_err(|_| RecordError::Length(bytes.len()))?;
        if b[0] != TABLE_VERSION {
            return Err(RecordError::Version(b[0]));
        }
        if b[1] & !FLAG_SIDECAR_UP != 0 {
            return Err(RecordError::UnknownFlags(b[1]));
        }
        if b[3] != 0 || b[12..16].iter().any(|&x| x != 0) {
            return Err(RecordError::ReservedNotZero);
        }
        let buckets = le_u32(b, 8);
        if !buckets.is_power_of_two() || buckets > MAX_BUCKETS || b[2] == 0 || b[2] > MAX_WAYS {
            return Err(RecordError::InvalidSlot);
        }
        Ok(IndexMeta {
            sidecar_up: b[1] & FLAG_SIDECAR_UP != 0,
            ways: b[2],
            epoch: le_u32(b, 4),
            buckets,
            store_id: le_u64(b, 16),
            applied_seq: le_u64(b, 24),
            updated_ms: le_u64(b, 32),
            records: le_u64(b, 40),
        })
    }

    /// The bucket a key lives in.
    pub fn bucket_of(&self, key: &KeyId) -> u32 {
        (key.bucket_seed() & u64::from(self.buckets - 1)) as u32
    }

    /// Whether the sidecar can be routed to at `now_ms`: the last poll succeeded and is recent.
    /// `stale_after_ms` covers a singleton that stopped polling (its VM died, say).
    pub fn sidecar_usable(&self, now_ms: u64, stale_after_ms: u64) -> bool {
        self.sidecar_up && now_ms.saturating_sub(self.updated_ms) <= stale_after_ms
    }
}

/// Shared-data key of bucket `index`.
pub fn bucket_key(index: u32) -> String {
    format!("rendition/index/b/{index:x}")
}

/// Finds `key` in a bucket value of the current `epoch`. An absent, stale or malformed bucket
/// finds nothing: the filter then treats the request as a miss, which is always safe.
pub fn bucket_lookup(bucket: &[u8], epoch: u32, key: &KeyId) -> Option<IndexRecord> {
    entries(bucket, epoch)?
        .find(|chunk| chunk[..KeyId::LEN] == key.0)
        .and_then(|chunk| IndexRecord::decode(&chunk[KeyId::LEN..]).ok())
}

/// What [`bucket_upsert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsert {
    Replaced,
    Added,
    /// The bucket was full: the entry with the lowest sequence number made room.
    Evicted,
    /// The stored entry is newer than the one offered: nothing changed.
    Stale,
    /// The entry was empty (the sidecar deleted or purged the source): the key left the bucket.
    Removed,
    /// The entry was empty and the key was not in the bucket: nothing changed.
    Absent,
}

/// Returns the bucket value with `entry` written into it, in `epoch`. A bucket from another
/// epoch or one that does not decode starts empty.
pub fn bucket_upsert(
    bucket: Option<&[u8]>,
    epoch: u32,
    ways: u8,
    entry: &IndexEntry,
) -> (Vec<u8>, Upsert) {
    let mut kept: Vec<[u8; ENTRY_LEN]> = bucket
        .and_then(|b| entries(b, epoch))
        .map(|it| {
            it.filter_map(|c| <[u8; ENTRY_LEN]>::try_from(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let encoded = entry.encode();
    let seq_of = |c: &[u8; ENTRY_LEN]| IndexRecord::decode(&c[KeyId::LEN..]).map_or(0, |r| r.seq);
    let found = kept.iter().position(|c| c[..KeyId::LEN] == entry.key.0);
    if let Some(i) = found {
        if seq_of(&kept[i]) > entry.record.seq {
            return (encode_bucket(epoch, &kept), Upsert::Stale);
        }
    }
    // An empty record reads the same as no record: free its way for another source. Every
    // copy goes: a bucket this code wrote holds a key once, but a damaged one may not, and a
    // copy left behind would answer lookups for a deleted source.
    if entry.record.is_empty() {
        let before = kept.len();
        kept.retain(|c| c[..KeyId::LEN] != entry.key.0);
        let outcome = if kept.len() < before {
            Upsert::Removed
        } else {
            Upsert::Absent
        };
        return (encode_bucket(epoch, &kept), outcome);
    }
    let outcome = if let Some(i) = found {
        kept[i] = encoded;
        Upsert::Replaced
    } else if kept.len() < usize::from(ways.max(1)) {
        kept.push(encoded);
        Upsert::Added
    } else {
        let oldest = kept
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| seq_of(c))
            .map_or(0, |(i, _)| i);
        kept[oldest] = encoded;
        Upsert::Evicted
    };
    (encode_bucket(epoch, &kept), outcome)
}

fn encode_bucket(epoch: u32, entries: &[[u8; ENTRY_LEN]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BUCKET_HEADER_LEN + entries.len() * ENTRY_LEN);
    out.push(TABLE_VERSION);
    out.push(entries.len() as u8);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&epoch.to_le_bytes());
    for e in entries {
        out.extend_from_slice(e);
    }
    out
}

/// The entry chunks of a well-formed bucket of `epoch`.
fn entries(bucket: &[u8], epoch: u32) -> Option<core::slice::ChunksExact<'_, u8>> {
    let header = bucket.get(..BUCKET_HEADER_LEN)?;
    let body = &bucket[BUCKET_HEADER_LEN..];
    let well_formed = header[0] == TABLE_VERSION
        && header[2] == 0
        && header[3] == 0
        && le_u32(header, 4) == epoch
        && body.len() == usize::from(header[1]) * ENTRY_LEN;
    well_formed.then(|| body.chunks_exact(ENTRY_LEN))
}
