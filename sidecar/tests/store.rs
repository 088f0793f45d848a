//! The sled store: durability across reopen, LRU eviction under the budget, checksums, the
//! change feed and purge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendition_shared::{CapabilityMask, SlotSet, SourceKey};
use rendition_sidecar::encode::{Codec, EncodeError, Encoded};
use rendition_sidecar::pipeline::{Outcome, Variant, VariantError};
use rendition_sidecar::store::{SourceMeta, Store};
use std::time::Duration;

fn m(bits: u32) -> CapabilityMask {
    CapabilityMask::from_bits(bits).unwrap()
}

fn variant(primary: u32, also: &[u32], size: usize) -> Outcome {
    variant_of(primary, also, vec![primary as u8; size])
}

/// A variant with these bytes (stores keep identical bytes once: tests that need distinct
/// payloads make them distinct).
fn variant_of(primary: u32, also: &[u32], bytes: Vec<u8>) -> Outcome {
    let mut slots: SlotSet = also.iter().map(|&b| m(b)).collect();
    slots.insert(m(primary));
    Outcome::Stored(Variant {
        primary: m(primary),
        slots,
        width: 480,
        height: 320,
        encoded: Encoded {
            codec: Codec::Webp,
            bytes,
            quality: 75,
            lossless: false,
        },
        encode_time: Duration::ZERO,
        score_time: Duration::ZERO,
        score: Some(71.5),
        attempts: 2,
        target: Some(70.0),
    })
}

fn meta(key: &SourceKey) -> SourceMeta {
    SourceMeta {
        key: key.to_string(),
        source_bytes: 100_000,
        ..SourceMeta::default()
    }
}

#[test]
fn variants_survive_reopen_and_aliases_resolve() {
    let dir = tempdir();
    let key = SourceKey::new("shop.example", "/hero.jpg").unwrap();
    let seq;
    {
        let store = Store::open(&dir, 1 << 30).unwrap();
        seq = store
            .put_outcomes(
                &key,
                &meta(&key),
                &[
                    variant(0x09, &[0x19], 1000),
                    Outcome::Lost {
                        slots: [m(0x08)].into_iter().collect(),
                        reason: "not smaller".into(),
                    },
                ],
                false,
            )
            .unwrap();
        store.flush().unwrap();
    }
    let store = reopen(&dir);
    let (record, smeta) = store.record(&key.id()).unwrap().unwrap();
    assert_eq!(record.seq, seq);
    assert!(record.stored.contains(m(0x09)) && record.stored.contains(m(0x19)));
    assert!(record.lost.contains(m(0x08)));
    assert_eq!(smeta.lost_reasons, vec![(0x08, "not smaller".to_owned())]);
    let v = store.variant(&key.id(), m(0x19)).unwrap().unwrap();
    assert_eq!(v.variant.bytes.len(), 1000);
    assert_eq!(v.variant.bytes[0], 0x09, "alias 0x19 serves the 0x09 blob");
    assert_eq!(v.variant.meta.content_type, "image/webp");
    assert!(store.variant(&key.id(), m(0x0a)).unwrap().is_none());
}

#[test]
fn eviction_keeps_the_store_under_budget_oldest_first() {
    let dir = tempdir();
    let store = Store::open(&dir, 25_000).unwrap();
    let mut keys = Vec::new();
    for i in 0..10 {
        let key = SourceKey::new("h", &format!("/{i}.jpg")).unwrap();
        store
            .put_outcomes(
                &key,
                &meta(&key),
                &[variant_of(0x09, &[], vec![i; 5_000])],
                false,
            )
            .unwrap();
        store.evict_to_budget().unwrap();
        keys.push(key);
        assert!(
            store.stats().unwrap().payload_bytes <= 25_000,
            "under budget after each write"
        );
    }
    let alive: Vec<bool> = keys
        .iter()
        .map(|k| store.variant(&k.id(), m(0x09)).unwrap().is_some())
        .collect();
    assert!(
        alive[9] && !alive[0],
        "newest kept, oldest evicted: {alive:?}"
    );
    // evicted slots are cleared from the record (not marked lost: they may come back)
    let (r, _) = store.record(&keys[0].id()).unwrap().unwrap();
    assert!(r.stored.is_empty() && r.lost.is_empty());
}

#[test]
fn feed_has_one_entry_per_source_and_pages() {
    let dir = tempdir();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let a = SourceKey::new("h", "/a.jpg").unwrap();
    let b = SourceKey::new("h", "/b.jpg").unwrap();
    let s1 = store
        .put_outcomes(&a, &meta(&a), &[variant(0x01, &[], 10)], false)
        .unwrap();
    let s2 = store
        .put_outcomes(&b, &meta(&b), &[variant(0x01, &[], 10)], false)
        .unwrap();
    let s3 = store
        .put_outcomes(&a, &meta(&a), &[variant(0x02, &[], 10)], false)
        .unwrap();
    assert!(s1 < s2 && s2 < s3, "monotonic");
    let page = store.feed_since(0, 100).unwrap();
    assert_eq!(page.last_seq, s3);
    assert_eq!(page.entries.len(), 2, "a's older change is compacted away");
    assert_eq!(page.entries[0].key, b.id());
    assert_eq!(page.entries[1].key, a.id());
    assert!(
        page.entries[1].record.stored.contains(m(0x01))
            && page.entries[1].record.stored.contains(m(0x02))
    );
    assert!(store.feed_since(s3, 100).unwrap().entries.is_empty());
    assert_eq!(store.feed_since(0, 1).unwrap().entries.len(), 1);
    // the store id survives reopen; a new database gets a new one
    let id = store.store_id();
    drop(store);
    assert_eq!(reopen(&dir).store_id(), id);
    assert_ne!(Store::open(&tempdir(), 1 << 30).unwrap().store_id(), id);
}

#[test]
fn republish_moves_a_record_to_the_head_of_the_feed_unchanged() {
    let dir = tempdir();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let a = SourceKey::new("h", "/a.jpg").unwrap();
    let b = SourceKey::new("h", "/b.jpg").unwrap();
    let s1 = store
        .put_outcomes(&a, &meta(&a), &[variant(0x01, &[0x09], 10)], false)
        .unwrap();
    let s2 = store
        .put_outcomes(&b, &meta(&b), &[variant(0x01, &[], 10)], false)
        .unwrap();
    let before = store.record(&a.id()).unwrap().unwrap().0;
    let s3 = store.republish(&a.id()).unwrap().unwrap();
    assert!(s3 > s2 && s2 > s1);
    let page = store.feed_since(s2, 10).unwrap();
    assert_eq!(page.entries.len(), 1, "a follower past s2 sees a again");
    assert_eq!(page.entries[0].key, a.id());
    let after = page.entries[0].record;
    assert_eq!(
        (after.stored, after.lost, after.refused),
        (before.stored, before.lost, before.refused)
    );
    assert_eq!(after.seq, s3);
    assert_eq!(
        store.feed_since(0, 10).unwrap().entries.len(),
        2,
        "still one entry per source"
    );
    let unknown = SourceKey::new("h", "/nope.jpg").unwrap();
    assert_eq!(store.republish(&unknown.id()).unwrap(), None);
}

#[test]
fn purge_leaves_a_tombstone_in_the_feed() {
    let dir = tempdir();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let a = SourceKey::new("h", "/img/a.jpg").unwrap();
    let b = SourceKey::new("h", "/img/b.jpg").unwrap();
    let c = SourceKey::new("h", "/css/c.png").unwrap();
    for k in [&a, &b, &c] {
        store
            .put_outcomes(k, &meta(k), &[variant(0x01, &[], 100)], false)
            .unwrap();
    }
    let before = store.last_seq().unwrap();
    assert_eq!(store.purge_prefix("h/img/").unwrap(), 2);
    assert!(store.variant(&a.id(), m(0x01)).unwrap().is_none());
    assert!(store.variant(&c.id(), m(0x01)).unwrap().is_some());
    let page = store.feed_since(before, 100).unwrap();
    assert_eq!(page.entries.len(), 2);
    assert!(page.entries.iter().all(|e| e.record.stored.is_empty()));
    // one 100-byte variant (plus its metadata) is left
    let left = store.stats().unwrap().payload_bytes;
    assert!((100..1000).contains(&left), "payload after purge: {left}");
}

#[test]
fn refused_sources_are_flagged() {
    let dir = tempdir();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let k = SourceKey::new("h", "/bomb.png").unwrap();
    store
        .refuse(
            &k,
            &meta(&k),
            "100000x100000 is over the 50000000-pixel limit",
        )
        .unwrap();
    let (r, smeta) = store.record(&k.id()).unwrap().unwrap();
    assert!(r.refused);
    assert!(smeta.refused.unwrap().contains("pixel limit"));
}

#[test]
fn a_corrupted_blob_is_never_served() {
    let dir = tempdir();
    let k = SourceKey::new("h", "/a.jpg").unwrap();
    {
        let store = Store::open(&dir, 1 << 30).unwrap();
        store
            .put_outcomes(&k, &meta(&k), &[variant(0x09, &[], 4000)], false)
            .unwrap();
        store.flush().unwrap();
    }
    // Flip one payload byte behind the store's back, through sled itself.
    {
        let db = sled::open(&dir).unwrap();
        let t = db.open_tree("payloads").unwrap();
        let (hash, v) = t.first().unwrap().unwrap();
        let mut v = v.to_vec();
        let last = v.len() - 1;
        v[last] ^= 0xFF;
        t.insert(&hash, v).unwrap();
        db.flush().unwrap();
    }
    let store = reopen(&dir);
    let err = store.variant(&k.id(), m(0x09)).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
}

#[test]
fn identical_bytes_under_two_keys_are_stored_once() {
    let dir = tempdir();
    let a = SourceKey::new("h", "/a.jpg").unwrap();
    let b = SourceKey::new("h", "/copy-of-a.jpg").unwrap();
    let c = SourceKey::new("h", "/c.jpg").unwrap();
    let same = || variant_of(0x09, &[0x19], vec![7; 6_000]);
    let store = Store::open(&dir, 1 << 30).unwrap();
    store.put_outcomes(&a, &meta(&a), &[same()], false).unwrap();
    let one = store.stats().unwrap();
    assert!(
        one.payload_bytes > 6_000 && one.payload_bytes < 7_000,
        "{one:?}"
    );
    assert_eq!((one.deduplicated_bytes, one.deduplicated_variants), (0, 0));

    store.put_outcomes(&b, &meta(&b), &[same()], false).unwrap();
    store
        .put_outcomes(
            &c,
            &meta(&c),
            &[variant_of(0x09, &[0x19], vec![8; 6_000])],
            false,
        )
        .unwrap();
    let three = store.stats().unwrap();
    let entry = one.payload_bytes - 6_000; // the entry: meta, CRC, hash
    assert_eq!(
        three.payload_bytes,
        one.payload_bytes + entry + (entry + 6_000),
        "b's bytes are a's; c's are its own"
    );
    assert_eq!(
        (three.deduplicated_bytes, three.deduplicated_variants),
        (6_000, 1)
    );
    for (k, slot, first) in [(&a, 0x19, 7), (&b, 0x09, 7), (&b, 0x19, 7), (&c, 0x09, 8)] {
        let v = store.variant(&k.id(), m(slot)).unwrap().unwrap();
        assert_eq!((v.variant.bytes.len(), v.variant.bytes[0]), (6_000, first));
        assert_eq!(
            v.source.key,
            k.to_string(),
            "each key keeps its own record and meta"
        );
    }

    // The shared bytes outlive one key's purge, and go with the last reference.
    assert!(store.purge(&a.id()).unwrap());
    let after_a = store.stats().unwrap();
    assert_eq!(after_a.payload_bytes, three.payload_bytes - entry);
    assert_eq!(
        (after_a.deduplicated_bytes, after_a.deduplicated_variants),
        (0, 0)
    );
    assert_eq!(
        store
            .variant(&b.id(), m(0x19))
            .unwrap()
            .unwrap()
            .variant
            .bytes[0],
        7
    );
    assert!(store.purge(&b.id()).unwrap());
    assert!(store.purge(&c.id()).unwrap());
    assert_eq!(
        store.stats().unwrap().payload_bytes,
        0,
        "nothing left, nothing counted"
    );

    // Counters survive a reopen.
    store.put_outcomes(&a, &meta(&a), &[same()], false).unwrap();
    store.put_outcomes(&b, &meta(&b), &[same()], false).unwrap();
    let before = store.stats().unwrap();
    store.flush().unwrap();
    drop(store);
    let store = reopen(&dir);
    let after = store.stats().unwrap();
    assert_eq!(
        (
            after.payload_bytes,
            after.deduplicated_bytes,
            after.deduplicated_variants
        ),
        (before.payload_bytes, 6_000, 1)
    );
}

#[test]
fn replacing_or_evicting_a_key_that_shares_bytes_keeps_the_other_whole() {
    let dir = tempdir();
    let a = SourceKey::new("h", "/a.jpg").unwrap();
    let b = SourceKey::new("h", "/b.jpg").unwrap();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let shared = || variant_of(0x09, &[], vec![3; 5_000]);
    store
        .put_outcomes(&a, &meta(&a), &[shared()], false)
        .unwrap();
    store
        .put_outcomes(&b, &meta(&b), &[shared()], false)
        .unwrap();
    // a's original changed: its new variant has other bytes; b still has the old ones.
    store
        .put_outcomes(
            &a,
            &meta(&a),
            &[variant_of(0x09, &[], vec![4; 5_000])],
            true,
        )
        .unwrap();
    let s = store.stats().unwrap();
    assert_eq!((s.deduplicated_bytes, s.deduplicated_variants), (0, 0));
    assert_eq!(
        store
            .variant(&a.id(), m(0x09))
            .unwrap()
            .unwrap()
            .variant
            .bytes[0],
        4
    );
    assert_eq!(
        store
            .variant(&b.id(), m(0x09))
            .unwrap()
            .unwrap()
            .variant
            .bytes[0],
        3
    );

    // a changes back: shared again, and eviction of the least recently served entry frees
    // only that entry's meta while the other still points at the bytes.
    store
        .put_outcomes(&a, &meta(&a), &[shared()], true)
        .unwrap();
    assert_eq!(store.stats().unwrap().deduplicated_variants, 1);
    drop(store);
    let store = Store::open(&dir, 1).unwrap();
    assert_eq!(
        store.evict_to_budget().unwrap(),
        2,
        "both entries had to go"
    );
    let s = store.stats().unwrap();
    assert_eq!(
        (
            s.payload_bytes,
            s.deduplicated_bytes,
            s.deduplicated_variants
        ),
        (0, 0, 0)
    );
    assert!(store.variant(&b.id(), m(0x09)).unwrap().is_none());
}

#[test]
fn a_store_written_with_inline_blobs_is_still_served_and_purged() {
    use rendition_sidecar::store::layout::{encode_blob, variant_key, VariantMeta};
    let dir = tempdir();
    let k = SourceKey::new("h", "/old.jpg").unwrap();
    {
        let store = Store::open(&dir, 1 << 30).unwrap();
        store
            .put_outcomes(&k, &meta(&k), &[variant(0x09, &[], 10)], false)
            .unwrap();
        store.flush().unwrap();
    }
    // Replace the entry with the inline layout older versions wrote, bytes and all.
    {
        let db = sled::open(&dir).unwrap();
        let t = db.open_tree("variants").unwrap();
        let vm = VariantMeta {
            content_type: "image/webp".into(),
            codec: "webp".into(),
            width: 480,
            height: 320,
            bytes: 4,
            quality: 75,
            lossless: false,
            score: None,
            attempts: 1,
            class: "photo".into(),
            slots: 1 << 0x09,
            source_etag: None,
            source_last_modified: None,
            cache_control: None,
            created: 1,
        };
        let key = variant_key(&k.id(), m(0x09));
        t.insert(key, encode_blob(&vm, &[1, 2, 3, 4]).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let store = reopen(&dir);
    let v = store.variant(&k.id(), m(0x09)).unwrap().unwrap();
    assert_eq!(&v.variant.bytes[..], &[1, 2, 3, 4]);
    assert!(store.purge(&k.id()).unwrap());
    assert!(store.variant(&k.id(), m(0x09)).unwrap().is_none());
}

/// Opens a store just dropped: sled's flusher thread can hold the file lock for a moment
/// after the last handle goes (seen once in ~100 runs).
fn reopen(dir: &std::path::Path) -> Store {
    for _ in 0..100 {
        match Store::open(dir, 1 << 30) {
            Ok(store) => return store,
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
    panic!("reopen: the lock was never released")
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rendition-store-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn served_variants_answer_from_memory_until_the_store_changes() {
    let dir = tempdir();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let a = SourceKey::new("h", "/img/a.jpg").unwrap();
    let b = SourceKey::new("h", "/img/b.jpg").unwrap();
    store
        .put_outcomes(&a, &meta(&a), &[variant(0x09, &[0x19], 300)], false)
        .unwrap();
    assert!(
        store.hot_variant(&a.id(), m(0x19)).is_none(),
        "not served yet"
    );
    let served = store.variant(&a.id(), m(0x19)).unwrap().unwrap();
    let hot = store
        .hot_variant(&a.id(), m(0x19))
        .expect("kept after a serve");
    assert_eq!(hot.variant.bytes, served.variant.bytes);
    assert_eq!(
        (hot.variant.crc, hot.variant.meta.width),
        (served.variant.crc, served.variant.meta.width)
    );
    // Any committed change (here another source's variants) drops the copies...
    store
        .put_outcomes(&b, &meta(&b), &[variant(0x01, &[], 100)], false)
        .unwrap();
    assert!(store.hot_variant(&a.id(), m(0x19)).is_none());
    // ...and a purge can never be answered from memory.
    store.variant(&a.id(), m(0x19)).unwrap().unwrap();
    assert!(store.purge(&a.id()).unwrap());
    assert!(store.hot_variant(&a.id(), m(0x19)).is_none());
    assert!(store.variant(&a.id(), m(0x19)).unwrap().is_none());
}

#[test]
fn a_replacement_swaps_every_slot_in_one_change() {
    let dir = tempdir();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let a = SourceKey::new("h", "/a.jpg").unwrap();
    store
        .put_outcomes(
            &a,
            &meta(&a),
            &[variant(0x01, &[], 100), variant(0x09, &[0x19], 200)],
            false,
        )
        .unwrap();
    let before = store.stats().unwrap().payload_bytes;
    // The new original's first phase: one slot. Every old slot goes in the same change.
    store
        .put_outcomes(&a, &meta(&a), &[variant(0x09, &[], 300)], true)
        .unwrap();
    let (r, _) = store.record(&a.id()).unwrap().unwrap();
    assert_eq!(r.stored.iter().collect::<Vec<_>>(), vec![m(0x09)]);
    assert!(
        store.variant(&a.id(), m(0x01)).unwrap().is_none(),
        "old slot gone"
    );
    assert!(
        store.variant(&a.id(), m(0x19)).unwrap().is_none(),
        "old alias gone"
    );
    let v = store.variant(&a.id(), m(0x09)).unwrap().unwrap();
    assert_eq!(v.variant.bytes.len(), 300, "the new bytes");
    assert!(
        store.stats().unwrap().payload_bytes < before,
        "old blobs freed"
    );
}

#[test]
fn a_refusal_removes_the_variants_it_finds() {
    let dir = tempdir();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let a = SourceKey::new("h", "/a.jpg").unwrap();
    store
        .put_outcomes(&a, &meta(&a), &[variant(0x09, &[0x19], 200)], false)
        .unwrap();
    store
        .refuse(&a, &meta(&a), "Cache-Control: no-transform")
        .unwrap();
    let (r, smeta) = store.record(&a.id()).unwrap().unwrap();
    assert!(r.refused && r.stored.is_empty());
    assert_eq!(
        smeta.refused.as_deref(),
        Some("Cache-Control: no-transform")
    );
    assert!(store.variant(&a.id(), m(0x09)).unwrap().is_none());
    assert_eq!(store.stats().unwrap().payload_bytes, 0, "no orphaned blob");
}

#[test]
fn records_without_variants_expire_into_tombstones_that_expire_into_a_watermark() {
    let dir = tempdir();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let kept = SourceKey::new("h", "/kept.jpg").unwrap();
    let lost = SourceKey::new("h", "/lost.jpg").unwrap();
    let refused = SourceKey::new("h", "/refused.jpg").unwrap();
    store
        .put_outcomes(&kept, &meta(&kept), &[variant(0x09, &[], 10)], false)
        .unwrap();
    let lost_only = Outcome::Lost {
        slots: [m(0x09)].into_iter().collect(),
        reason: "not smaller".into(),
    };
    store
        .put_outcomes(&lost, &meta(&lost), &[lost_only], false)
        .unwrap();
    let refused_seq = store
        .refuse(&refused, &meta(&refused), "not an image")
        .unwrap();
    // Not old enough: nothing goes.
    let now = rendition_sidecar::store::now_secs();
    assert_eq!(store.delete_empty_records(now - 60, 100).unwrap(), 0);
    // Old enough: the two without variants go, the one with a variant stays.
    assert_eq!(store.delete_empty_records(now + 1, 100).unwrap(), 2);
    assert!(store.record(&lost.id()).unwrap().is_none());
    assert!(store.record(&refused.id()).unwrap().is_none());
    assert!(store.record(&kept.id()).unwrap().is_some());
    assert_eq!(store.stats().unwrap().sources, 1);
    // The feed says so: an empty record for each deleted source, newer than its last change.
    let page = store.feed_since(refused_seq, 100).unwrap();
    let forgotten: Vec<_> = page
        .entries
        .iter()
        .filter(|e| e.record.is_empty())
        .map(|e| e.key)
        .collect();
    assert_eq!(forgotten.len(), 2);
    assert!(forgotten.contains(&lost.id()) && forgotten.contains(&refused.id()));
    assert_eq!(page.compacted_seq, 0);
    // The tombstones leave the feed later; the watermark tells a follower that was behind.
    assert_eq!(store.compact_feed(now - 60).unwrap(), 0, "too young");
    assert_eq!(store.compact_feed(now + 10).unwrap(), 2);
    let page = store.feed_since(0, 100).unwrap();
    assert_eq!(page.entries.len(), 1, "only the live source");
    assert!(page.compacted_seq > refused_seq);
    // A source that comes back after its deletion is a new record, in order after it.
    store
        .put_outcomes(&lost, &meta(&lost), &[variant(0x01, &[], 10)], false)
        .unwrap();
    assert!(store.record(&lost.id()).unwrap().is_some());
}

#[test]
fn an_encode_failure_is_kept_as_lost_until_the_source_changes() {
    let dir = tempdir();
    let store = Store::open(&dir, 1 << 30).unwrap();
    let a = SourceKey::new("h", "/tall.png").unwrap();
    let failed = Outcome::Failed {
        slots: [m(0x09), m(0x19)].into_iter().collect(),
        error: VariantError::Encode(EncodeError::new(Codec::Webp, "bad dimension")),
    };
    store
        .put_outcomes(&a, &meta(&a), &[variant(0x0a, &[], 100), failed], false)
        .unwrap();
    let (r, sm) = store.record(&a.id()).unwrap().unwrap();
    // Remembered: a notify for these slots finds them lost and queues nothing.
    assert!(r.lost.contains(m(0x09)) && r.lost.contains(m(0x19)));
    assert!(r.stored.contains(m(0x0a)));
    assert!(
        sm.lost_reasons
            .iter()
            .any(|(slot, why)| *slot == 0x09 && why == "encode failed: webp encoder: bad dimension"),
        "{:?}",
        sm.lost_reasons
    );
    // A new original (a replacement) starts over: the slots may be tried again.
    store
        .put_outcomes(&a, &meta(&a), &[variant(0x0a, &[], 120)], true)
        .unwrap();
    let (r, sm) = store.record(&a.id()).unwrap().unwrap();
    assert!(!r.lost.contains(m(0x09)));
    assert!(sm.lost_reasons.is_empty());
}
