//! A worker's copies of recently read index buckets.
//!
//! Reading a bucket from shared data is a host call whose answer the host copies into the VM
//! through `proxy_on_memory_allocate`: a second entry into the VM, and entries into V8 are
//! the largest cost the filter has (docs/benchmarks.md). Hot images read the same bucket on
//! every request, so each worker keeps the bytes it last read per bucket and trusts them
//! while the index has not moved.
//!
//! Why that is safe: the index-sync singleton writes buckets first and then publishes the
//! meta record with the new `(epoch, applied_seq)` (filter/src/sync.rs). A copy is tagged
//! with the `(epoch, applied_seq)` of the meta the worker held when it read the bucket, so any
//! write the singleton has published since makes the copy miss. A copy can only be as old as
//! the worker's meta record, which it re-reads every `META_TTL_MS` (50 ms) already.
//!
//! Direct-mapped on the bucket index: fixed memory (`SLOTS` copies of at most one bucket
//! each, a few hundred bytes), no eviction policy to get wrong.

use rendition_shared::table::{bucket_key, IndexMeta};

/// Copies kept per worker.
pub const SLOTS: usize = 256;

#[derive(Debug)]
struct Copy {
    bucket: u32,
    epoch: u32,
    applied_seq: u64,
    /// `None`: the bucket did not exist (nothing was ever written there).
    bytes: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct BucketCache {
    slots: Vec<Option<Copy>>,
}

impl Default for BucketCache {
    fn default() -> Self {
        BucketCache {
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }
}

impl BucketCache {
    /// The bytes of `bucket` as of `meta`, from the copy when it is current, otherwise from
    /// `read` (called with the bucket's shared-data key), which then becomes the copy.
    pub fn get<F>(&mut self, meta: &IndexMeta, bucket: u32, read: F) -> Option<&[u8]>
    where
        F: FnOnce(&str) -> Option<Vec<u8>>,
    {
        let slot = &mut self.slots[bucket as usize % SLOTS];
        let current = slot.as_ref().is_some_and(|c| {
            c.bucket == bucket && c.epoch == meta.epoch && c.applied_seq == meta.applied_seq
        });
        if !current {
            *slot = Some(Copy {
                bucket,
                epoch: meta.epoch,
                applied_seq: meta.applied_seq,
                bytes: read(&bucket_key(bucket)),
            });
        }
        slot.as_ref().and_then(|c| c.bytes.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn meta(epoch: u32, applied_seq: u64) -> IndexMeta {
        IndexMeta {
            applied_seq,
            epoch,
            ..IndexMeta::new(1 << 12, 8)
        }
    }

    #[test]
    fn reads_once_while_the_index_stands_still() {
        let reads = Cell::new(0);
        let read = |key: &str| {
            reads.set(reads.get() + 1);
            assert_eq!(key, "rendition/index/b/7");
            Some(vec![1, 2, 3])
        };
        let mut cache = BucketCache::default();
        for _ in 0..5 {
            assert_eq!(cache.get(&meta(1, 10), 7, read), Some(&[1u8, 2, 3][..]));
        }
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn a_published_write_or_resync_reads_again() {
        let reads = Cell::new(0);
        let read = |_: &str| {
            reads.set(reads.get() + 1);
            Some(vec![reads.get()])
        };
        let mut cache = BucketCache::default();
        assert_eq!(cache.get(&meta(1, 10), 7, read), Some(&[1u8][..]));
        assert_eq!(
            cache.get(&meta(1, 11), 7, read),
            Some(&[2u8][..]),
            "new seq"
        );
        assert_eq!(cache.get(&meta(2, 11), 7, read), Some(&[3u8][..]), "resync");
        assert_eq!(cache.get(&meta(2, 11), 7, read), Some(&[3u8][..]));
        assert_eq!(reads.get(), 3);
    }

    #[test]
    fn absent_buckets_are_remembered_and_slots_do_not_mix() {
        let reads = Cell::new(0);
        let mut cache = BucketCache::default();
        let absent = |_: &str| {
            reads.set(reads.get() + 1);
            None
        };
        assert_eq!(cache.get(&meta(1, 1), 3, absent), None);
        assert_eq!(cache.get(&meta(1, 1), 3, absent), None);
        assert_eq!(reads.get(), 1);
        // Same slot, other bucket: replaced, never answered from the other bucket's copy.
        let other = 3 + SLOTS as u32;
        assert_eq!(
            cache.get(&meta(1, 1), other, |_| Some(vec![9])),
            Some(&[9u8][..])
        );
        assert_eq!(cache.get(&meta(1, 1), 3, absent), None);
        assert_eq!(reads.get(), 2);
    }
}
