//! The variant store, in sled: what is stored for each source, the change feed the filters
//! follow, and the byte budget.
//!
//! * [`layout`]: the trees and the bytes of every key and value (pinned by a golden test).
//! * [`hot`]: in-memory copies of variants served recently, so a hit skips sled.
//! * [`Store`] (here): the operations, each one sled transaction across the trees.
//!
//! Every change to a source is one transaction, so a crash leaves either the old or the new
//! state, never half of one; on top, each blob carries a CRC32 that is checked every time it is
//! served. The change feed keeps one entry per source (its newest), so `/index?since=0` is
//! bounded by the number of sources, not by history. The byte budget (`cache_size_bytes`)
//! counts payload bytes (variant bytes + metadata) and evicts the least recently served variant
//! first. Identical variant bytes are stored once (`layout`: payloads by content hash), so
//! the same image under two URLs or two ETags costs its bytes once; `StoreStats` says how much
//! that saved.

pub mod hot;
pub mod layout;

use crate::pipeline::{Outcome, Variant};
use hot::{HotVariants, DEFAULT_BUDGET_BYTES};
use layout::{
    access_value, blob_crc, corrupt, decode_entry, decode_feed_value, decode_record, encode_alias,
    encode_feed_value, encode_record, encode_shared, entry_crc, is_blob, lru_key, parse_access,
    parse_refs, refs_value, variant_key, ContentHash, Entry, META_BYTES, META_COMPACTED_SEQ,
    META_DEDUPLICATED_BYTES, META_DEDUPLICATED_VARIANTS, META_FLEET_PURGE_CURSOR, META_STORE_ID,
};
pub use layout::{ServedVariant, SourceMeta, StoreError, StoredVariant, VariantMeta};
use rendition_shared::{
    CapabilityMask, FeedPage, IndexEntry, IndexRecord, KeyId, SlotSet, SourceKey,
};
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Store statistics for `/stats` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StoreStats {
    pub payload_bytes: u64,
    pub budget_bytes: u64,
    pub sources: u64,
    pub last_seq: u64,
    /// Bytes not stored again because identical bytes already were (content hash).
    pub deduplicated_bytes: u64,
    /// Stored variants whose bytes another variant had already stored.
    pub deduplicated_variants: u64,
}

/// What one change did to the byte counters (kept in `meta` and in memory).
#[derive(Clone, Copy, Debug, Default)]
struct Delta {
    /// Payload bytes: entries plus `payloads` (what `cache_size_bytes` bounds).
    bytes: i64,
    deduplicated_bytes: i64,
    deduplicated_variants: i64,
}

impl std::ops::AddAssign for Delta {
    fn add_assign(&mut self, o: Delta) {
        self.bytes += o.bytes;
        self.deduplicated_bytes += o.deduplicated_bytes;
        self.deduplicated_variants += o.deduplicated_variants;
    }
}

impl std::ops::SubAssign for Delta {
    fn sub_assign(&mut self, o: Delta) {
        self.bytes -= o.bytes;
        self.deduplicated_bytes -= o.deduplicated_bytes;
        self.deduplicated_variants -= o.deduplicated_variants;
    }
}

pub struct Store {
    db: sled::Db,
    variants: Tree,
    records: Tree,
    feed: Tree,
    lru: Tree,
    access: Tree,
    payloads: Tree,
    payload_refs: Tree,
    meta: Tree,
    budget: u64,
    store_id: u64,
    payload_bytes: AtomicU64,
    deduplicated_bytes: AtomicU64,
    deduplicated_variants: AtomicU64,
    /// Renewals (`Store::renew`) since the store opened.
    renewals: AtomicU64,
    /// Verified variants served recently, answered without sled (crate::hot_variants).
    hot: HotVariants,
}

/// Don't rewrite a variant's access time more often than this (a hit must stay cheap).
const ACCESS_GRANULARITY_SECS: u64 = 60;

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Unix milliseconds (freshness is kept in milliseconds: `SourceMeta::age_ms`).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A `feed` key (8 bytes, big-endian) as a sequence number.
fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    key.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt("feed key"))
}

fn tx_err<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn flatten<T>(r: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    })
}

impl Store {
    /// Opens (or creates) the store at `path` with a payload budget in bytes.
    pub fn open(path: &Path, budget: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(200))
            .open()?;
        let meta = db.open_tree("meta")?;
        let store_id = match meta.get(META_STORE_ID)? {
            Some(v) if v.len() == 8 => {
                u64::from_le_bytes(v.as_ref().try_into().map_err(|_| corrupt("store id"))?)
            }
            _ => {
                let id = new_store_id();
                meta.insert(META_STORE_ID, &id.to_le_bytes())?;
                id
            }
        };
        let counter = |name: &[u8]| -> Result<u64, StoreError> {
            Ok(meta
                .get(name)?
                .and_then(|v| v.as_ref().try_into().ok().map(u64::from_le_bytes))
                .unwrap_or(0))
        };
        let payload = counter(META_BYTES)?;
        let deduplicated_bytes = counter(META_DEDUPLICATED_BYTES)?;
        let deduplicated_variants = counter(META_DEDUPLICATED_VARIANTS)?;
        Ok(Store {
            variants: db.open_tree("variants")?,
            records: db.open_tree("records")?,
            feed: db.open_tree("feed")?,
            lru: db.open_tree("lru")?,
            access: db.open_tree("access")?,
            payloads: db.open_tree("payloads")?,
            payload_refs: db.open_tree("payload_refs")?,
            meta,
            db,
            budget,
            store_id,
            payload_bytes: AtomicU64::new(payload),
            deduplicated_bytes: AtomicU64::new(deduplicated_bytes),
            deduplicated_variants: AtomicU64::new(deduplicated_variants),
            renewals: AtomicU64::new(0),
            hot: HotVariants::new(DEFAULT_BUDGET_BYTES, ACCESS_GRANULARITY_SECS),
        })
    }

    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// The record and source metadata of a source.
    pub fn record(&self, key: &KeyId) -> Result<Option<(IndexRecord, SourceMeta)>, StoreError> {
        self.records
            .get(key.0)?
            .map(|v| decode_record(&v))
            .transpose()
    }

    /// Writes what the pipeline produced for a source (stored variants, lost slots) and
    /// returns the record's new sequence number. With `replace`, whatever the source had is
    /// removed in the same transaction: the new original's variants take the old ones' place
    /// at once, and no slot ever holds one of each.
    pub fn put_outcomes(
        &self,
        key: &SourceKey,
        source: &SourceMeta,
        outcomes: &[Outcome],
        replace: bool,
    ) -> Result<u64, StoreError> {
        let id = key.id();
        let seq = self.db.generate_id()? + 1;
        let now = now_secs();
        let mut blobs: Vec<(&Variant, Vec<u8>, ContentHash)> = Vec::new();
        for o in outcomes {
            if let Outcome::Stored(v) = o {
                let meta = VariantMeta {
                    content_type: v.encoded.codec.content_type().to_owned(),
                    codec: v.encoded.codec.name().to_owned(),
                    width: v.width,
                    height: v.height,
                    bytes: v.encoded.bytes.len() as u64,
                    quality: v.encoded.quality,
                    lossless: v.encoded.lossless,
                    score: v.score.map(|s| s as f32),
                    attempts: u32::from(v.attempts),
                    class: source.class.clone().unwrap_or_default(),
                    slots: v.slots.bits(),
                    source_etag: source.etag.clone(),
                    source_last_modified: source.last_modified.clone(),
                    cache_control: source.cache_control.clone(),
                    created: now,
                };
                let (entry, hash) = encode_shared(&meta, &v.encoded.bytes)?;
                blobs.push((v, entry, hash));
            }
        }
        self.change(|tx| {
            let Tx {
                variants,
                records,
                feed,
                lru,
                access,
                ..
            } = *tx;
            let (mut record, mut smeta) = match records.get(id.0)? {
                Some(v) => match decode_record(&v) {
                    Ok(r) => r,
                    Err(e) => return tx_err(e),
                },
                None => (IndexRecord::default(), SourceMeta::default()),
            };
            let mut delta = Delta::default();
            if replace {
                for s in SlotSet::ALL.iter() {
                    delta -= remove_slot(tx, &id, s)?;
                }
                record.stored = SlotSet::EMPTY;
                record.lost = SlotSet::EMPTY;
                smeta.lost_reasons.clear();
            }
            for (v, entry, hash) in &blobs {
                for slot in v.slots.iter() {
                    delta -= remove_slot(tx, &id, slot)?;
                }
                delta += add_payload(tx, hash, &v.encoded.bytes)?;
                variants.insert(&variant_key(&id, v.primary), entry.as_slice())?;
                delta.bytes += entry.len() as i64;
                for slot in v.slots.iter().filter(|s| *s != v.primary) {
                    variants.insert(&variant_key(&id, slot), &encode_alias(v.primary)[..])?;
                }
                lru.insert(&lru_key(seq, &id, v.primary), &[][..])?;
                access.insert(&variant_key(&id, v.primary), &access_value(seq, now))?;
                record.stored = record.stored.union(v.slots);
                record.lost = record.lost.difference(v.slots);
            }
            let mut lost_reasons = smeta.lost_reasons.clone();
            for (slots, reason) in outcomes.iter().filter_map(Outcome::lost) {
                let fresh = slots.difference(record.stored);
                record.lost = record.lost.union(fresh);
                for s in fresh.iter() {
                    lost_reasons.retain(|(m, _)| u32::from(*m) != s.bits());
                    lost_reasons.push((s.bits() as u8, reason.clone()));
                }
            }
            let old_seq = record.seq;
            record.seq = seq;
            record.refused = false;
            smeta = SourceMeta {
                lost_reasons,
                updated: now,
                refused: None,
                ..source.clone()
            };
            publish(records, feed, &id, old_seq, &record, &smeta)?;
            Ok(delta)
        })?;
        Ok(seq)
    }

    /// Records that a source was refused (never generate or notify for it again until its
    /// record expires or the origin changes it); any variant it had is removed with it.
    pub fn refuse(
        &self,
        key: &SourceKey,
        source: &SourceMeta,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let id = key.id();
        let seq = self.db.generate_id()? + 1;
        let now = now_secs();
        self.change(|tx| {
            let Tx { records, feed, .. } = *tx;
            let old = match records.get(id.0)? {
                Some(v) => decode_record(&v).map(|(r, _)| r.seq).unwrap_or(0),
                None => 0,
            };
            let mut delta = Delta::default();
            for s in SlotSet::ALL.iter() {
                delta -= remove_slot(tx, &id, s)?;
            }
            let record = IndexRecord {
                refused: true,
                seq,
                ..IndexRecord::default()
            };
            let meta = SourceMeta {
                refused: Some(reason.to_owned()),
                updated: now,
                ..source.clone()
            };
            publish(records, feed, &id, old, &record, &meta)?;
            Ok(delta)
        })?;
        Ok(seq)
    }

    /// Updates a source's metadata after the origin confirmed it (a 304): its validators and
    /// caching headers, and when it was confirmed. No variant changes, so nothing goes to the
    /// feed and no in-memory copy is dropped (a copy carries the freshness it was read with;
    /// once that says stale, the server reads the store again and finds this). Returns false
    /// when the source has no record any more.
    pub fn renew(&self, id: &KeyId, update: impl Fn(&mut SourceMeta)) -> Result<bool, StoreError> {
        let done = flatten(self.records.transaction(|records| {
            let Some(value) = records.get(id.0)? else {
                return Ok(false);
            };
            let (record, mut meta) = match decode_record(&value) {
                Ok(found) => found,
                Err(e) => return tx_err(e),
            };
            update(&mut meta);
            meta.updated = now_secs();
            match encode_record(&record, &meta) {
                Ok(v) => records.insert(&id.0, v)?,
                Err(e) => return tx_err(e),
            };
            Ok(true)
        }))?;
        self.renewals.fetch_add(1, Ordering::AcqRel);
        Ok(done)
    }

    /// Renewals since the store opened (see `ServedVariant::renewals`).
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Acquire)
    }

    /// Moves a source's record to the head of the feed under a new sequence number, unchanged
    /// otherwise. A notify for a slot that is already stored means that filter has not got the
    /// record (its shared-data bucket evicted it, or its index was reset): this sends it again.
    /// Returns the new sequence, or None when the source is unknown.
    pub fn republish(&self, id: &KeyId) -> Result<Option<u64>, StoreError> {
        let seq = self.db.generate_id()? + 1;
        let done = flatten((&self.records, &self.feed).transaction(|(records, feed)| {
            let Some(value) = records.get(id.0)? else {
                return Ok(false);
            };
            let (mut record, meta) = match decode_record(&value) {
                Ok(found) => found,
                Err(e) => return tx_err(e),
            };
            let old = record.seq;
            record.seq = seq;
            publish(records, feed, id, old, &record, &meta)?;
            Ok(true)
        }))?;
        Ok(done.then_some(seq))
    }

    /// The variant answering `slot` when an in-memory copy of it is current: no I/O, no
    /// blocking, so the server calls it on the async worker before falling back to
    /// [`Store::variant`].
    pub fn hot_variant(&self, key: &KeyId, slot: CapabilityMask) -> Option<Arc<ServedVariant>> {
        self.hot.get(key, slot, now_secs())
    }

    /// The variant answering `slot` (aliases resolved), its checksum verified, with its
    /// source's metadata (the freshness a hit is served with); the LRU is touched (at most
    /// once a minute) and the result kept for [`Store::hot_variant`].
    pub fn variant(
        &self,
        key: &KeyId,
        slot: CapabilityMask,
    ) -> Result<Option<Arc<ServedVariant>>, StoreError> {
        let generation = self.hot.generation();
        // Taken before the read: a renewal during it makes the copy look older, never newer.
        let renewals = self.renewals();
        let Some(variant) = self.read_variant(key, slot)? else {
            return Ok(None);
        };
        let Some((_, source)) = self.record(key)? else {
            return Ok(None);
        };
        let served = Arc::new(ServedVariant {
            variant,
            source,
            renewals,
        });
        self.hot.put(key, slot, &served, generation, now_secs());
        Ok(Some(served))
    }

    fn read_variant(
        &self,
        key: &KeyId,
        slot: CapabilityMask,
    ) -> Result<Option<StoredVariant>, StoreError> {
        let Some(mut value) = self.variants.get(variant_key(key, slot))? else {
            return Ok(None);
        };
        let mut primary = slot.slot();
        if let Entry::Alias(p) = decode_entry(&value)? {
            primary = p;
            value = match self.variants.get(variant_key(key, p))? {
                Some(v) => v,
                None => return Ok(None),
            };
        }
        let (meta, bytes, crc, ok) = match decode_entry(&value)? {
            Entry::Shared {
                meta,
                meta_len,
                crc,
                hash,
            } => {
                let Some(payload) = self.payloads.get(hash)? else {
                    return Err(corrupt(format!("payload missing for {key}/{primary:x}")));
                };
                let ok = value
                    .get(8..8 + meta_len)
                    .map(|meta_json| entry_crc(meta_json, &payload))
                    == Some(crc);
                (meta, bytes::Bytes::from_owner(payload), crc, ok)
            }
            Entry::Blob { meta, body_at, crc } => {
                // `blob_crc` is `None` when `body_at` does not fit the value, so the slice
                // below only runs on an offset that fits.
                if blob_crc(&value, body_at) != Some(crc) {
                    return Err(corrupt(format!("checksum mismatch for {key}/{primary:x}")));
                }
                let body = bytes::Bytes::from_owner(value).slice(body_at..);
                (meta, body, crc, true)
            }
            Entry::Alias(_) => return Err(corrupt("alias points at an alias")),
        };
        if !ok || bytes.len() as u64 != meta.bytes {
            return Err(corrupt(format!("checksum mismatch for {key}/{primary:x}")));
        }
        self.touch(key, primary);
        Ok(Some(StoredVariant { meta, bytes, crc }))
    }

    /// The metadata of the blob answering `slot` and the slot it is stored under (aliases
    /// resolved), without reading it as a serve: the LRU is not touched and the body's checksum
    /// is not verified (the report page lists what exists; serving verifies).
    pub fn variant_meta(
        &self,
        key: &KeyId,
        slot: CapabilityMask,
    ) -> Result<Option<(CapabilityMask, VariantMeta)>, StoreError> {
        let mut primary = slot.slot();
        let mut value = self.variants.get(variant_key(key, slot))?;
        if let Some(Entry::Alias(p)) = value.as_deref().map(decode_entry).transpose()? {
            primary = p;
            value = self.variants.get(variant_key(key, p))?;
        }
        match value.as_deref().map(decode_entry).transpose()? {
            Some(Entry::Blob { meta, .. } | Entry::Shared { meta, .. }) => {
                Ok(Some((primary, meta)))
            }
            Some(Entry::Alias(_)) => Err(corrupt("alias points at an alias")),
            None => Ok(None),
        }
    }

    /// Moves a variant to the young end of the LRU, at most once a minute.
    fn touch(&self, key: &KeyId, primary: CapabilityMask) {
        let now = now_secs();
        let vk = variant_key(key, primary);
        let old = self
            .access
            .get(vk)
            .ok()
            .flatten()
            .and_then(|v| parse_access(&v));
        if old.is_some_and(|(_, t)| now.saturating_sub(t) < ACCESS_GRANULARITY_SECS) {
            return;
        }
        let Ok(tick) = self.db.generate_id() else {
            return;
        };
        if let Some((old_tick, _)) = old {
            let _ = self.lru.remove(lru_key(old_tick, key, primary));
        }
        let _ = self.lru.insert(lru_key(tick, key, primary), &[][..]);
        let _ = self.access.insert(vk, &access_value(tick, now));
    }

    /// Evicts least recently served variants until the payload fits the budget. Returns how
    /// many blobs were evicted.
    pub fn evict_to_budget(&self) -> Result<u32, StoreError> {
        let mut evicted = 0;
        while self.payload_bytes.load(Ordering::Relaxed) > self.budget {
            let Some((lk, _)) = self.lru.first()? else {
                break;
            };
            if lk.len() != 25 {
                self.lru.remove(lk)?;
                continue;
            }
            let mut id = [0u8; 16];
            id.copy_from_slice(&lk[8..24]);
            let id = KeyId(id);
            let slot =
                CapabilityMask::from_bits(u32::from(lk[24])).map_err(|e| corrupt(e.to_string()))?;
            self.evict(&id, slot, &lk)?;
            evicted += 1;
        }
        Ok(evicted)
    }

    fn evict(
        &self,
        id: &KeyId,
        primary: CapabilityMask,
        lru_entry: &[u8],
    ) -> Result<(), StoreError> {
        let seq = self.db.generate_id()? + 1;
        self.change(|tx| {
            let Tx {
                variants,
                records,
                feed,
                lru,
                ..
            } = *tx;
            lru.remove(lru_entry)?;
            let slots = match variants.get(variant_key(id, primary))? {
                Some(v) => match decode_entry(&v) {
                    Ok(entry) => entry
                        .meta()
                        .and_then(|m| SlotSet::from_bits(m.slots))
                        .unwrap_or_default(),
                    Err(_) => SlotSet::EMPTY,
                },
                None => return Ok(Delta::default()), // already gone: a stale LRU entry
            };
            let mut delta = Delta::default();
            for s in slots.iter().chain(std::iter::once(primary)) {
                delta -= remove_slot(tx, id, s)?;
            }
            if let Some(v) = records.get(id.0)? {
                let (mut record, smeta) = match decode_record(&v) {
                    Ok(r) => r,
                    Err(e) => return tx_err(e),
                };
                let old_seq = record.seq;
                record.stored = record.stored.difference(slots);
                record.seq = seq;
                publish(records, feed, id, old_seq, &record, &smeta)?;
            }
            Ok(delta)
        })?;
        Ok(())
    }

    /// Removes every variant of a source and leaves an empty record (a tombstone the feed
    /// carries to the filters, which cannot delete shared data). Returns whether it existed.
    pub fn purge(&self, id: &KeyId) -> Result<bool, StoreError> {
        let Some((record, smeta)) = self.record(id)? else {
            return Ok(false);
        };
        let seq = self.db.generate_id()? + 1;
        self.change(|tx| {
            let Tx { records, feed, .. } = *tx;
            let mut delta = Delta::default();
            for s in SlotSet::ALL.iter() {
                delta -= remove_slot(tx, id, s)?;
            }
            let tomb = IndexRecord {
                seq,
                ..IndexRecord::default()
            };
            let tomb_meta = SourceMeta {
                key: smeta.key.clone(),
                updated: now_secs(),
                ..SourceMeta::default()
            };
            publish(records, feed, id, record.seq, &tomb, &tomb_meta)?;
            Ok(delta)
        })?;
        Ok(true)
    }

    /// Purges every source whose canonical key starts with `prefix` (host + path prefix).
    pub fn purge_prefix(&self, prefix: &str) -> Result<u32, StoreError> {
        let mut ids = Vec::new();
        for item in self.records.iter() {
            let (k, v) = item?;
            let (record, meta) = decode_record(&v)?;
            if meta.key.starts_with(prefix)
                && (!record.stored.is_empty() || !record.lost.is_empty() || record.refused)
            {
                let mut id = [0u8; 16];
                id.copy_from_slice(&k);
                ids.push(KeyId(id));
            }
        }
        let mut n = 0;
        for id in ids {
            n += u32::from(self.purge(&id)?);
        }
        Ok(n)
    }

    /// Changes after `since`, oldest first, at most `limit`. A deleted source's tombstone is an
    /// empty record ("forget it"); `compacted_seq` says up to where tombstones were dropped.
    pub fn feed_since(&self, since: u64, limit: usize) -> Result<FeedPage, StoreError> {
        let mut entries = Vec::new();
        for item in self
            .feed
            .range((since.saturating_add(1)).to_be_bytes()..)
            .take(limit)
        {
            let (seq, value) = item?;
            let seq = seq_of(&seq)?;
            let (key, deleted_at) =
                decode_feed_value(&value).ok_or_else(|| corrupt("feed entry"))?;
            if deleted_at.is_some() {
                let record = IndexRecord {
                    seq,
                    ..IndexRecord::default()
                };
                entries.push(IndexEntry { key, record });
            } else if let Some((record, _)) = self.record(&key)? {
                // A live entry is always the record's newest change; a mismatch is a change
                // that committed after this page's range was read: it comes in the next page.
                if record.seq == seq {
                    entries.push(IndexEntry { key, record });
                }
            }
        }
        Ok(FeedPage {
            store_id: self.store_id,
            last_seq: self.last_seq()?,
            compacted_seq: self.compacted_seq()?,
            entries,
        })
    }

    /// The shared tier's purge-log cursor (the last entry applied here), if any.
    pub fn fleet_purge_cursor(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta
            .get(META_FLEET_PURGE_CURSOR)?
            .and_then(|v| String::from_utf8(v.to_vec()).ok()))
    }

    pub fn set_fleet_purge_cursor(&self, name: &str) -> Result<(), StoreError> {
        self.meta.insert(META_FLEET_PURGE_CURSOR, name.as_bytes())?;
        Ok(())
    }

    fn compacted_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(META_COMPACTED_SEQ)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0))
    }

    /// Deletes the records that hold no variant (refused, purged, lost, or all evicted) and
    /// were last changed before `changed_before` (Unix seconds), at most `limit` of them; each
    /// leaves a tombstone in the feed so the filters forget the source too. Returns how many
    /// were deleted. Bounds the store under a flood of distinct URLs.
    pub fn delete_empty_records(
        &self,
        changed_before: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let mut doomed = Vec::new();
        for item in self.records.iter() {
            let (k, v) = item?;
            let record = IndexRecord::decode(v.get(..rendition_shared::RECORD_LEN).unwrap_or(&[]))
                .map_err(|e| corrupt(e.to_string()))?;
            if !record.stored.is_empty() {
                continue;
            }
            let (_, meta) = decode_record(&v)?;
            if meta.updated < changed_before {
                let mut id = [0u8; 16];
                id.copy_from_slice(&k);
                doomed.push(KeyId(id));
                if doomed.len() >= limit {
                    break;
                }
            }
        }
        let now = now_secs();
        let mut deleted = 0;
        for id in doomed {
            let seq = self.db.generate_id()? + 1;
            let gone = flatten((&self.records, &self.feed).transaction(|(records, feed)| {
                let Some(value) = records.get(id.0)? else {
                    return Ok(false);
                };
                let (record, meta) = match decode_record(&value) {
                    Ok(found) => found,
                    Err(e) => return tx_err(e),
                };
                // Changed since it was picked (a notify made variants): not ours to delete.
                if !record.stored.is_empty() || meta.updated >= changed_before {
                    return Ok(false);
                }
                records.remove(&id.0)?;
                feed.remove(&record.seq.to_be_bytes())?;
                feed.insert(&seq.to_be_bytes(), encode_feed_value(&id, Some(now)))?;
                Ok(true)
            }))?;
            deleted += usize::from(gone);
        }
        Ok(deleted)
    }

    /// Drops the tombstones of records deleted before `deleted_before` (Unix seconds) from the
    /// feed, and raises `compacted_seq` to the newest one dropped: a filter that asks from
    /// below it has missed a deletion and resyncs. Returns how many were dropped.
    pub fn compact_feed(&self, deleted_before: u64) -> Result<usize, StoreError> {
        let mut dropped = Vec::new();
        for item in self.feed.iter() {
            let (seq, value) = item?;
            if let Some((_, Some(at))) = decode_feed_value(&value) {
                if at < deleted_before {
                    dropped.push(seq_of(&seq)?);
                }
            }
        }
        let Some(&newest) = dropped.iter().max() else {
            return Ok(0);
        };
        let compacted = self.compacted_seq()?.max(newest);
        // The watermark first: a reader between the two sees it raised before the tombstones
        // go, which at worst makes a follower resync once more than it needs to.
        self.meta
            .insert(META_COMPACTED_SEQ, &compacted.to_le_bytes())?;
        for seq in &dropped {
            self.feed.remove(seq.to_be_bytes())?;
        }
        Ok(dropped.len())
    }

    pub fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .feed
            .last()?
            .and_then(|(k, _)| k.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats {
            payload_bytes: self.payload_bytes.load(Ordering::Relaxed),
            budget_bytes: self.budget,
            sources: self.records.len() as u64,
            last_seq: self.last_seq()?,
            deduplicated_bytes: self.deduplicated_bytes.load(Ordering::Relaxed),
            deduplicated_variants: self.deduplicated_variants.load(Ordering::Relaxed),
        })
    }

    /// Every source with its record (for the report page and tools).
    pub fn sources(
        &self,
    ) -> impl Iterator<Item = Result<(KeyId, IndexRecord, SourceMeta), StoreError>> + '_ {
        self.records.iter().map(|item| {
            let (k, v) = item?;
            let mut id = [0u8; 16];
            if k.len() != 16 {
                return Err(corrupt("record key"));
            }
            id.copy_from_slice(&k);
            let (r, m) = decode_record(&v)?;
            Ok((KeyId(id), r, m))
        })
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Runs one change across all trees as a single sled transaction. `f` returns what it did
    /// to the byte counters; the persisted counters and the in-memory ones are updated with it,
    /// so no change can forget them.
    fn change(&self, f: impl Fn(&Tx<'_>) -> TxResult<Delta>) -> Result<(), StoreError> {
        let trees = (
            &self.variants,
            &self.records,
            &self.feed,
            &self.lru,
            &self.access,
            &self.payloads,
            &self.payload_refs,
            &self.meta,
        );
        let delta = flatten(trees.transaction(
            |(variants, records, feed, lru, access, payloads, payload_refs, meta)| {
                let delta = f(&Tx {
                    variants,
                    records,
                    feed,
                    lru,
                    access,
                    payloads,
                    payload_refs,
                })?;
                add_to_counter(meta, META_BYTES, delta.bytes)?;
                add_to_counter(meta, META_DEDUPLICATED_BYTES, delta.deduplicated_bytes)?;
                add_to_counter(
                    meta,
                    META_DEDUPLICATED_VARIANTS,
                    delta.deduplicated_variants,
                )?;
                Ok(delta)
            },
        ))?;
        self.hot.invalidate();
        apply(&self.payload_bytes, delta.bytes);
        apply(&self.deduplicated_bytes, delta.deduplicated_bytes);
        apply(&self.deduplicated_variants, delta.deduplicated_variants);
        Ok(())
    }
}

/// Adds a signed delta to an in-memory counter, never below zero.
fn apply(counter: &AtomicU64, delta: i64) {
    let d = delta.unsigned_abs();
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(if delta >= 0 {
            v.saturating_add(d)
        } else {
            v.saturating_sub(d)
        })
    });
}

/// The trees a change may touch (the byte counter in `meta` is `Store::change`'s job).
#[derive(Clone, Copy)]
struct Tx<'a> {
    variants: &'a TransactionalTree,
    records: &'a TransactionalTree,
    feed: &'a TransactionalTree,
    lru: &'a TransactionalTree,
    access: &'a TransactionalTree,
    payloads: &'a TransactionalTree,
    payload_refs: &'a TransactionalTree,
}

/// Removes one slot's entry (and, for a blob, its LRU entries and its reference to a shared
/// payload); returns what that freed (subtract it).
fn remove_slot(tx: &Tx<'_>, id: &KeyId, slot: CapabilityMask) -> TxResult<Delta> {
    let vk = variant_key(id, slot);
    let Some(old) = tx.variants.remove(&vk)? else {
        return Ok(Delta::default());
    };
    if !is_blob(&old) {
        return Ok(Delta::default());
    }
    if let Some((tick, _)) = tx.access.remove(&vk)?.and_then(|v| parse_access(&v)) {
        tx.lru.remove(&lru_key(tick, id, slot))?;
    }
    let mut freed = Delta {
        bytes: old.len() as i64,
        ..Delta::default()
    };
    if let Ok(Entry::Shared { hash, .. }) = decode_entry(&old) {
        freed += drop_payload_ref(tx, &hash)?;
    }
    Ok(freed)
}

/// Stores `bytes` under their content hash, or counts one more reference when they already
/// are there; returns what that added.
fn add_payload(tx: &Tx<'_>, hash: &ContentHash, bytes: &[u8]) -> TxResult<Delta> {
    let refs = tx
        .payload_refs
        .get(hash)?
        .and_then(|v| parse_refs(&v))
        .unwrap_or(0);
    // A reference count without its payload (never written so) is repaired, not trusted.
    let stored = refs > 0 && tx.payloads.get(hash)?.is_some();
    tx.payload_refs.insert(
        &hash[..],
        &refs_value(if stored { refs + 1 } else { 1 })[..],
    )?;
    if stored {
        return Ok(Delta {
            bytes: 0,
            deduplicated_bytes: bytes.len() as i64,
            deduplicated_variants: 1,
        });
    }
    tx.payloads.insert(&hash[..], bytes)?;
    Ok(Delta {
        bytes: bytes.len() as i64,
        ..Delta::default()
    })
}

/// Drops one reference to a payload, and the payload with its last one; returns what that
/// freed.
fn drop_payload_ref(tx: &Tx<'_>, hash: &ContentHash) -> TxResult<Delta> {
    let refs = tx
        .payload_refs
        .get(hash)?
        .and_then(|v| parse_refs(&v))
        .unwrap_or(0);
    if refs > 1 {
        tx.payload_refs
            .insert(&hash[..], &refs_value(refs - 1)[..])?;
        let size = tx.payloads.get(hash)?.map_or(0, |p| p.len() as i64);
        return Ok(Delta {
            bytes: 0,
            deduplicated_bytes: size,
            deduplicated_variants: 1,
        });
    }
    tx.payload_refs.remove(&hash[..])?;
    let size = tx.payloads.remove(&hash[..])?.map_or(0, |p| p.len() as i64);
    Ok(Delta {
        bytes: size,
        ..Delta::default()
    })
}

/// Writes a source's record (already carrying its new sequence number) and moves the source's
/// feed entry from `old_seq` to it: the feed holds one entry per source, its newest change.
fn publish(
    records: &TransactionalTree,
    feed: &TransactionalTree,
    id: &KeyId,
    old_seq: u64,
    record: &IndexRecord,
    meta: &SourceMeta,
) -> TxResult<()> {
    let value = match encode_record(record, meta) {
        Ok(v) => v,
        Err(e) => return tx_err(e),
    };
    records.insert(&id.0, value)?;
    feed.remove(&old_seq.to_be_bytes())?;
    feed.insert(&record.seq.to_be_bytes(), &id.0)?;
    Ok(())
}

fn add_to_counter(meta: &TransactionalTree, name: &[u8], delta: i64) -> TxResult<()> {
    if delta == 0 {
        return Ok(());
    }
    let current = meta
        .get(name)?
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_le_bytes))
        .unwrap_or(0);
    let next = if delta >= 0 {
        current.saturating_add(delta as u64)
    } else {
        current.saturating_sub(delta.unsigned_abs())
    };
    meta.insert(name, &next.to_le_bytes())?;
    Ok(())
}

/// A store id unique enough to tell two databases apart: hashed time and process id.
fn new_store_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish().max(1)
}
