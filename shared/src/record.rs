//! The index record: what the filter knows about one source, in 28 bytes.
//!
//! The sidecar writes one record per source key into its change feed; the filter's singleton
//! service copies it into Envoy shared data, where every worker reads it on every image
//! request. So it is fixed-size, little-endian, versioned, and decoding it validates every
//! field rather than trusting the bytes (shared data is writable by any plugin in the VM).
//!
//! Layout, version 1 (all integers little-endian):
//!
//! | offset | size | field    | meaning                                                       |
//! |--------|------|----------|---------------------------------------------------------------|
//! | 0      | 1    | version  | `1`                                                           |
//! | 1      | 1    | flags    | bit 0 `REFUSED`: the source was refused; never notify again    |
//! |        |      |          | bits 1-7 zero                                                 |
//! | 2      | 2    | reserved | zero                                                          |
//! | 4      | 8    | stored   | [`SlotSet`]: bit `i` set when slot mask `i` can be served      |
//! | 12     | 8    | lost     | [`SlotSet`]: slots decided not worth storing (not smaller)     |
//! | 20     | 8    | seq      | the sidecar's change sequence number that wrote this record   |
//!
//! `stored` and `lost` never share a bit. An [`IndexEntry`] is the 16-byte [`KeyId`] followed
//! by the record: 44 bytes.

use crate::key::KeyId;
use crate::matrix::SlotSet;
use core::fmt;

/// Current layout version.
pub const RECORD_VERSION: u8 = 1;
/// Encoded size of a record.
pub const RECORD_LEN: usize = 28;
/// Encoded size of an entry (key id + record).
pub const ENTRY_LEN: usize = KeyId::LEN + RECORD_LEN;

/// Flag bit: the source was refused (not an image, over a limit, undecodable).
pub const FLAG_REFUSED: u8 = 1;
const KNOWN_FLAGS: u8 = FLAG_REFUSED;

/// What the filter knows about one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IndexRecord {
    pub stored: SlotSet,
    pub lost: SlotSet,
    pub refused: bool,
    pub seq: u64,
}

impl IndexRecord {
    /// Nothing stored, lost or refused: the same as no record at all.
    pub fn is_empty(&self) -> bool {
        self.stored.is_empty() && self.lost.is_empty() && !self.refused
    }
}

/// Why bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    Length(usize),
    Version(u8),
    UnknownFlags(u8),
    ReservedNotZero,
    /// A bit that names no slot.
    InvalidSlot,
    /// A slot both stored and lost.
    StoredAndLost,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length(n) => write!(f, "record is {n} bytes, expected {RECORD_LEN}"),
            Self::Version(v) => write!(f, "record version {v}, expected {RECORD_VERSION}"),
            Self::UnknownFlags(b) => write!(f, "unknown record flags {b:#04x}"),
            Self::ReservedNotZero => f.write_str("reserved record bytes are not zero"),
            Self::InvalidSlot => f.write_str("slot set names a bit that is no slot"),
            Self::StoredAndLost => f.write_str("a slot is both stored and lost"),
        }
    }
}

impl IndexRecord {
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0] = RECORD_VERSION;
        out[1] = if self.refused { FLAG_REFUSED } else { 0 };
        out[4..12].copy_from_slice(&self.stored.bits().to_le_bytes());
        out[12..20].copy_from_slice(&self.lost.bits().to_le_bytes());
        out[20..28].copy_from_slice(&self.seq.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<IndexRecord, RecordError> {
        let bytes: &[u8; RECORD_LEN] = bytes
            .try_into()
            .map_err(|_| RecordError::Length(bytes.len()))?;
        if bytes[0] != RECORD_VERSION {
            return Err(RecordError::Version(bytes[0]));
        }
        if bytes[1] & !KNOWN_FLAGS != 0 {
            return Err(RecordError::UnknownFlags(bytes[1]));
        }
        if bytes[2] != 0 || bytes[3] != 0 {
            return Err(RecordError::ReservedNotZero);
        }
        let stored = SlotSet::from_bits(le_u64(bytes, 4)).ok_or(RecordError::InvalidSlot)?;
        let lost = SlotSet::from_bits(le_u64(bytes, 12)).ok_or(RecordError::InvalidSlot)?;
        if stored.bits() & lost.bits() != 0 {
            return Err(RecordError::StoredAndLost);
        }
        Ok(IndexRecord {
            stored,
            lost,
            refused: bytes[1] & FLAG_REFUSED != 0,
            seq: le_u64(bytes, 20),
        })
    }
}

/// Little-endian u64 at `at` (callers have checked the length).
pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Little-endian u32 at `at` (callers have checked the length).
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// A record together with the source it describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: KeyId,
    pub record: IndexRecord,
}

impl IndexEntry {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[..KeyId::LEN].copy_from_slice(&self.key.0);
        out[KeyId::LEN..].copy_from_slice(&self.record.encode());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<IndexEntry, RecordError> {
        if bytes.len() != ENTRY_LEN {
            return Err(RecordError::Length(bytes.len()));
        }
        let mut key = [0u8; KeyId::LEN];
        key.copy_from_slice(&bytes[..KeyId::LEN]);
        Ok(IndexEntry {
            key: KeyId(key),
            record: IndexRecord::decode(&bytes[KeyId::LEN..])?,
        })
    }
}

/// Header of a change-feed page (`GET /index?since=SEQ`), 40 bytes, then `count` entries:
///
/// | offset | size | field         | meaning                                                    |
/// |--------|------|---------------|------------------------------------------------------------|
/// | 0      | 1    | version       | `2` (`1`: the 32-byte header without `compacted_seq`, still read) |
/// | 1      | 7    | reserved      | zero                                                       |
/// | 8      | 8    | store_id      | identity of the sidecar's database; a new id means "resync from 0" |
/// | 16     | 8    | last_seq      | the newest sequence number in the store (not only this page) |
/// | 24     | 4    | count         | entries that follow                                        |
/// | 28     | 4    | reserved      | zero                                                       |
/// | 32     | 8    | compacted_seq | changes up to this sequence are no longer all in the feed: a follower that asked from below it (and not from 0) must resync |
///
/// Entries are in ascending `record.seq`; the next request asks `since` = the last entry's seq.
/// An entry whose record is empty (nothing stored, lost or refused) means "forget this source":
/// the sidecar deleted its record.
pub const FEED_HEADER_LEN: usize = 40;
const FEED_HEADER_LEN_V1: usize = 32;
/// Version of the feed page header.
pub const FEED_VERSION: u8 = 2;

/// One page of the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedPage {
    pub store_id: u64,
    pub last_seq: u64,
    /// Deleted sources whose deletion is no longer in the feed have sequence numbers up to
    /// this one (0: nothing was ever compacted away).
    pub compacted_seq: u64,
    pub entries: Vec<IndexEntry>,
}

impl FeedPage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FEED_HEADER_LEN + self.entries.len() * ENTRY_LEN);
        out.push(FEED_VERSION);
        out.extend_from_slice(&[0; 7]);
        out.extend_from_slice(&self.store_id.to_le_bytes());
        out.extend_from_slice(&self.last_seq.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.compacted_seq.to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.encode());
        }
        out
    }

    /// Decodes and validates a page (version 2, or a version 1 page from an older sidecar);
    /// any bad entry rejects the page.
    pub fn decode(bytes: &[u8]) -> Result<FeedPage, RecordError> {
        let header_len = match bytes.first() {
            Some(&FEED_VERSION) => FEED_HEADER_LEN,
            Some(1) => FEED_HEADER_LEN_V1,
            Some(&v) => return Err(RecordError::Version(v)),
            None => return Err(RecordError::Length(0)),
        };
        let header = bytes
            .get(..header_len)
            .ok_or(RecordError::Length(bytes.len()))?;
        if header[1..8].iter().chain(&header[28..32]).any(|&b| b != 0) {
            return Err(RecordError::ReservedNotZero);
        }
        let compacted_seq = if header_len == FEED_HEADER_LEN {
            le_u64(header, 32)
        } else {
            0
        };
        let count = le_u32(header, 24) as usize;
        let body = &bytes[header_len..];
        if body.len() != count.saturating_mul(ENTRY_LEN) {
            return Err(RecordError::Length(bytes.len()));
        }
        let entries = body
            .chunks_exact(ENTRY_LEN)
            .map(IndexEntry::decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FeedPage {
            store_id: le_u64(header, 8),
            last_seq: le_u64(header, 16),
            compacted_seq,
            entries,
        })
    }
}
