//! Variants served recently, kept in memory so a hit is answered on the async worker.
//!
//! A hit read from sled costs a hop to the blocking pool (two thread wake-ups), two tree
//! reads and a CRC of the blob. In front of Envoy that is most of the sidecar's share of a hit
//! (docs/benchmarks.md), and a popular image is the same few variants over and over. So the
//! store keeps the variants it verified and served, keyed by (source, requested slot).
//!
//! Staleness is ruled out by a generation number: the store bumps it after every committed
//! change to its variants (new variants, purges, evictions), and a copy only answers while the
//! generation it was read under is still current. A revalidation that renews a source's
//! freshness changes no variant and bumps nothing: a copy carries the freshness it was read
//! with, and once that says stale the server reads the store again, which has the renewal. The reader takes the generation *before*
//! reading sled, so a change that commits during the read makes the copy stale, never wrong.
//! Any change drops every copy at once; changes are rare next to hits once a site is warm.
//!
//! The LRU of the store still sees the traffic: a copy older than the store's access-time
//! granularity answers as absent, so the next hit goes through the store, which touches the
//! variant's access time and refreshes the copy.
//!
//! Bounded by bytes: a copy that would take the total over the budget empties the map first
//! (a cleared cache only costs sled reads), and a blob over an eighth of the budget is never
//! kept.

use super::layout::ServedVariant;
use rendition_shared::{CapabilityMask, KeyId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

/// Memory for copies by default (the blobs are shared with sled's cache where they overlap).
pub const DEFAULT_BUDGET_BYTES: usize = 32 << 20;

struct Copy {
    variant: Arc<ServedVariant>,
    generation: u64,
    read_at_secs: u64,
}

pub struct HotVariants {
    generation: AtomicU64,
    budget: usize,
    max_age_secs: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    copies: HashMap<(KeyId, u32), Copy>,
    bytes: usize,
}

impl HotVariants {
    /// `max_age_secs`: how long a copy may answer before the store must see the hit again.
    pub fn new(budget: usize, max_age_secs: u64) -> HotVariants {
        HotVariants {
            generation: AtomicU64::new(0),
            budget,
            max_age_secs,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The generation to tag a read with; take it before reading the store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Called after every committed change to the store.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The copy for (`key`, `slot`) when it is current and young enough.
    pub fn get(
        &self,
        key: &KeyId,
        slot: CapabilityMask,
        now_secs: u64,
    ) -> Option<Arc<ServedVariant>> {
        let generation = self.generation();
        let inner = self.inner.lock().ok()?;
        let copy = inner.copies.get(&(*key, slot.bits()))?;
        (copy.generation == generation
            && now_secs.saturating_sub(copy.read_at_secs) < self.max_age_secs)
            .then(|| Arc::clone(&copy.variant))
    }

    /// Keeps `variant`, read from the store under `generation`, for (`key`, `slot`).
    pub fn put(
        &self,
        key: &KeyId,
        slot: CapabilityMask,
        variant: &Arc<ServedVariant>,
        generation: u64,
        now_secs: u64,
    ) {
        let size = variant.variant.bytes.len();
        if size > self.budget / 8 || generation != self.generation() {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.bytes + size > self.budget {
            inner.copies.clear();
            inner.bytes = 0;
        }
        let copy = Copy {
            variant: Arc::clone(variant),
            generation,
            read_at_secs: now_secs,
        };
        if let Some(old) = inner.copies.insert((*key, slot.bits()), copy) {
            inner.bytes -= old.variant.variant.bytes.len();
        }
        inner.bytes += size;
    }

    /// Bytes held by copies (for tests and stats).
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layout::{SourceMeta, StoredVariant, VariantMeta};

    fn variant(len: usize) -> Arc<ServedVariant> {
        let meta = VariantMeta {
            content_type: "image/avif".into(),
            codec: "avif".into(),
            width: 1,
            height: 1,
            bytes: len as u64,
            quality: 50,
            lossless: false,
            score: None,
            attempts: 1,
            class: "photo".into(),
            slots: 1,
            source_etag: None,
            source_last_modified: None,
            cache_control: None,
            created: 0,
        };
        Arc::new(ServedVariant {
            variant: StoredVariant {
                meta,
                bytes: bytes::Bytes::from(vec![7u8; len]),
                crc: 1,
            },
            source: SourceMeta::default(),
            renewals: 0,
        })
    }

    fn slot(bits: u32) -> CapabilityMask {
        CapabilityMask::from_bits(bits).unwrap()
    }

    #[test]
    fn answers_while_the_generation_stands_and_the_copy_is_young() {
        let hot = HotVariants::new(1 << 20, 60);
        let key = KeyId([1; 16]);
        assert!(hot.get(&key, slot(0x0a), 100).is_none());
        hot.put(&key, slot(0x0a), &variant(10), hot.generation(), 100);
        assert_eq!(
            hot.get(&key, slot(0x0a), 159).unwrap().variant.bytes.len(),
            10
        );
        assert!(hot.get(&key, slot(0x08), 100).is_none(), "other slot");
        assert!(
            hot.get(&key, slot(0x0a), 160).is_none(),
            "old: the store must see it"
        );
    }

    #[test]
    fn a_store_change_drops_every_copy_and_late_puts() {
        let hot = HotVariants::new(1 << 20, 60);
        let key = KeyId([1; 16]);
        let before = hot.generation();
        hot.put(&key, slot(0x0a), &variant(10), before, 0);
        hot.invalidate();
        assert!(hot.get(&key, slot(0x0a), 0).is_none());
        // A read that started before the change must not come back as current.
        hot.put(&key, slot(0x0a), &variant(10), before, 0);
        assert!(hot.get(&key, slot(0x0a), 0).is_none());
    }

    #[test]
    fn bounded_by_bytes() {
        let hot = HotVariants::new(800, 60);
        let g = hot.generation();
        hot.put(&KeyId([9; 16]), slot(0x0a), &variant(101), g, 0);
        assert_eq!(hot.bytes(), 0, "over an eighth of the budget: not kept");
        for i in 0..20u8 {
            hot.put(&KeyId([i; 16]), slot(0x0a), &variant(100), g, 0);
            assert!(hot.bytes() <= 800);
        }
        assert!(hot.get(&KeyId([19; 16]), slot(0x0a), 0).is_some());
        hot.put(&KeyId([19; 16]), slot(0x0a), &variant(50), g, 0);
        assert!(hot.bytes() <= 800, "a replaced copy gives its bytes back");
    }
}
