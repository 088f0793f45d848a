//! Every byte layout the filter reads from shared data or from the sidecar's feed, on
//! arbitrary bytes: the 28-byte record, the 44-byte entry, a feed page, the table's meta
//! record and a bucket (lookup and upsert), then `sync::follow` on a decoded page.
//!
//! Whatever decodes must encode back to the same bytes (decoding validates every field, so a
//! valid value has exactly one encoding); a bucket after an upsert must find what was written.
//! Seeds: the golden bytes of shared/tests (committed in fuzz/seeds/index_record).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rendition_shared::sync::follow;
use rendition_shared::table::{
    bucket_lookup, bucket_upsert, IndexMeta, Upsert, BUCKET_HEADER_LEN, MAX_WAYS,
};
use rendition_shared::{FeedPage, IndexEntry, IndexRecord, KeyId, ENTRY_LEN};

fn le_u64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    let n = b.len().min(8);
    x[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(x)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = IndexRecord::decode(data) {
        assert_eq!(&r.encode()[..], data);
        assert_eq!(r.stored.bits() & r.lost.bits(), 0);
    }
    if let Ok(e) = IndexEntry::decode(data) {
        assert_eq!(&e.encode()[..], data);
    }
    if let Ok(meta) = IndexMeta::decode(data) {
        assert_eq!(&meta.encode()[..], data);
        assert!(meta.buckets.is_power_of_two());
        for key in [KeyId([0; 16]), KeyId([0xff; 16])] {
            assert!(meta.bucket_of(&key) < meta.buckets);
        }
        let _ = meta.sidecar_usable(le_u64(data), 5000);
    }
    if let Ok(page) = FeedPage::decode(data) {
        assert_eq!(page.encode(), data);
        // Follow the page from a fresh table and from one that already applied another store.
        let fresh = IndexMeta::new(1024, 4);
        let mut ahead = IndexMeta::new(1024, 4);
        ahead.store_id = page.store_id ^ 1;
        ahead.applied_seq = page.last_seq.wrapping_add(1);
        ahead.epoch = u32::MAX;
        for (meta, since) in [(fresh, 0), (fresh, page.last_seq), (ahead, 7)] {
            let step = follow(meta, since, &page, 42);
            assert!(step.meta.epoch >= 1);
            assert!(step.meta.sidecar_up && step.meta.updated_ms == 42);
            assert_eq!(step.meta.store_id, page.store_id);
            assert!(step.apply.is_empty() || step.apply == &page.entries[..]);
            if step.resynced {
                assert_eq!(step.meta.records, 0);
                assert_ne!(step.meta.epoch, meta.epoch);
            }
        }
    }

    // A bucket: the whole input, read in the epoch its header claims.
    let epoch = data
        .get(4..8)
        .map_or(1, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let first_key = data
        .get(BUCKET_HEADER_LEN..BUCKET_HEADER_LEN + KeyId::LEN)
        .map_or([0; 16], |k| {
            let mut id = [0u8; 16];
            id.copy_from_slice(k);
            id
        });
    let found = bucket_lookup(data, epoch, &KeyId(first_key));
    let _ = bucket_lookup(data, epoch.wrapping_add(1), &KeyId(first_key));

    // Upsert an entry for that key (a new sequence number and slot set taken from the input).
    let ways = (data.len() % (usize::from(MAX_WAYS) + 1)) as u8;
    let seq = le_u64(data.get(data.len().saturating_sub(8)..).unwrap_or_default());
    let entry = IndexEntry {
        key: KeyId(first_key),
        record: IndexRecord {
            seq,
            refused: seq & 1 == 1,
            ..IndexRecord::default()
        },
    };
    let (bucket, outcome) = bucket_upsert(Some(data), epoch, ways, &entry);
    assert!(bucket.len() >= BUCKET_HEADER_LEN);
    assert_eq!((bucket.len() - BUCKET_HEADER_LEN) % ENTRY_LEN, 0);
    assert_eq!(
        usize::from(bucket[1]),
        (bucket.len() - BUCKET_HEADER_LEN) / ENTRY_LEN
    );
    let now = bucket_lookup(&bucket, epoch, &entry.key);
    match outcome {
        Upsert::Stale => {
            assert!(found.is_some_and(|r| r.seq > seq), "{found:?} {seq}");
            assert_eq!(bucket, data, "a stale upsert changes nothing");
        }
        // An empty record deletes: the key is gone, and `Absent` only when it was not there.
        Upsert::Removed | Upsert::Absent => {
            assert!(entry.record.is_empty(), "{outcome:?}");
            assert_eq!(now, None);
            if outcome == Upsert::Absent {
                assert_eq!(found, None);
            }
        }
        _ => assert_eq!(now, Some(entry.record), "{outcome:?}"),
    }
    // And the same upsert into an absent bucket.
    let (fresh, outcome) = bucket_upsert(None, epoch, ways, &entry);
    if entry.record.is_empty() {
        assert_eq!(outcome, Upsert::Absent);
        assert_eq!(bucket_lookup(&fresh, epoch, &entry.key), None);
    } else {
        assert_eq!(outcome, Upsert::Added);
        assert_eq!(bucket_lookup(&fresh, epoch, &entry.key), Some(entry.record));
    }
});
