//! The shared-data index table (golden meta bytes, bucket lookup/upsert/eviction/epochs), the
//! feed follower, hot-URL counters and the response rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use rendition_shared::hot::HotUrls;
use rendition_shared::response::{
    merge_vary, optimizable, NotOptimizable, ResponseFacts, VARY, VARY_HEADERS,
};
use rendition_shared::sync::follow;
use rendition_shared::table::{
    bucket_key, bucket_lookup, bucket_upsert, IndexMeta, Upsert, BUCKET_HEADER_LEN, META_LEN,
};
use rendition_shared::{
    CapabilityMask, FeedPage, IndexEntry, IndexRecord, KeyId, SlotSet, SourceKey, ENTRY_LEN,
};

fn key(path: &str) -> KeyId {
    SourceKey::new("example.com", path).unwrap().id()
}

fn entry(k: KeyId, seq: u64, masks: &[u32]) -> IndexEntry {
    let stored: SlotSet = masks
        .iter()
        .map(|&b| CapabilityMask::from_bits(b).unwrap())
        .collect();
    IndexEntry {
        key: k,
        record: IndexRecord {
            stored,
            lost: SlotSet::default(),
            refused: false,
            seq,
        },
    }
}

#[test]
fn golden_meta_bytes() {
    let meta = IndexMeta {
        sidecar_up: true,
        ways: 4,
        epoch: 7,
        buckets: 1 << 16,
        store_id: 0x1122_3344_5566_7788,
        applied_seq: 42,
        updated_ms: 1_000,
        records: 3,
    };
    #[rustfmt::skip]
    let expected: [u8; META_LEN] = [
        0x01, 0x01, 0x04, 0x00,                         // version, flags (up), ways, reserved
        0x07, 0x00, 0x00, 0x00,                         // epoch 7
        0x00, 0x00, 0x01, 0x00,                         // buckets 65536
        0x00, 0x00, 0x00, 0x00,                         // reserved
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // store_id
        0x2a, 0, 0, 0, 0, 0, 0, 0,                      // applied_seq 42
        0xe8, 0x03, 0, 0, 0, 0, 0, 0,                   // updated_ms 1000
        0x03, 0, 0, 0, 0, 0, 0, 0,                      // records 3
    ];
    assert_eq!(meta.encode(), expected);
    assert_eq!(IndexMeta::decode(&expected), Ok(meta));
}

#[test]
fn meta_rejects_bad_bytes() {
    let good = IndexMeta::new(1024, 4).encode();
    assert!(IndexMeta::decode(&good[..47]).is_err());
    for (at, value) in [
        (0, 2u8),
        (1, 0x80),
        (2, 0),
        (2, 17),
        (3, 1),
        (12, 1),
        (8, 3),
    ] {
        let mut bad = good;
        bad[at] = value;
        assert!(IndexMeta::decode(&bad).is_err(), "byte {at} = {value}");
    }
}

#[test]
fn bucket_keys_are_bounded_by_the_bucket_count() {
    let meta = IndexMeta::new(256, 4);
    let mut seen = std::collections::HashSet::new();
    for i in 0..10_000 {
        let b = meta.bucket_of(&key(&format!("/img/{i}.jpg")));
        assert!(b < 256);
        seen.insert(bucket_key(b));
    }
    assert_eq!(
        seen.len(),
        256,
        "10k keys spread over every bucket, and no more keys"
    );
    assert_eq!(bucket_key(0xab), "rendition/index/b/ab");
}

#[test]
fn upsert_then_lookup_and_golden_bucket_header() {
    let k = key("/a.jpg");
    let (bytes, what) = bucket_upsert(None, 3, 4, &entry(k, 9, &[0x08, 0x09]));
    assert_eq!(what, Upsert::Added);
    assert_eq!(&bytes[..BUCKET_HEADER_LEN], &[1, 1, 0, 0, 3, 0, 0, 0]);
    assert_eq!(bytes.len(), BUCKET_HEADER_LEN + ENTRY_LEN);
    let found = bucket_lookup(&bytes, 3, &k).unwrap();
    assert_eq!(found.seq, 9);
    assert!(found
        .stored
        .contains(CapabilityMask::from_bits(0x09).unwrap()));
    assert_eq!(bucket_lookup(&bytes, 3, &key("/b.jpg")), None);
    // Another epoch: the bucket reads as empty, and writing into it starts fresh.
    assert_eq!(bucket_lookup(&bytes, 4, &k), None);
    let (fresh, what) = bucket_upsert(Some(&bytes), 4, 4, &entry(key("/b.jpg"), 1, &[0x08]));
    assert_eq!(what, Upsert::Added);
    assert_eq!(bucket_lookup(&fresh, 4, &k), None);
}

#[test]
fn newer_replaces_older_never_the_reverse() {
    let k = key("/a.jpg");
    let (b, _) = bucket_upsert(None, 1, 4, &entry(k, 5, &[0x08]));
    let (b, what) = bucket_upsert(Some(&b), 1, 4, &entry(k, 6, &[0x08, 0x01]));
    assert_eq!(what, Upsert::Replaced);
    let (b, what) = bucket_upsert(Some(&b), 1, 4, &entry(k, 4, &[]));
    assert_eq!(what, Upsert::Stale);
    assert_eq!(bucket_lookup(&b, 1, &k).unwrap().seq, 6);
    assert_eq!(b.len(), BUCKET_HEADER_LEN + ENTRY_LEN);
}

#[test]
fn a_full_bucket_evicts_its_oldest_entry() {
    let keys: Vec<KeyId> = (0..3).map(|i| key(&format!("/{i}.png"))).collect();
    let mut b = None;
    for (i, k) in keys.iter().enumerate() {
        let (next, what) = bucket_upsert(b.as_deref(), 1, 2, &entry(*k, 10 - i as u64, &[0x08]));
        assert_eq!(
            what,
            if i < 2 {
                Upsert::Added
            } else {
                Upsert::Evicted
            }
        );
        b = Some(next);
    }
    let b = b.unwrap();
    assert_eq!(
        b.len(),
        BUCKET_HEADER_LEN + 2 * ENTRY_LEN,
        "never more than `ways`"
    );
    // keys[1] had the lowest sequence (9 vs 10): it made room for keys[2].
    assert!(bucket_lookup(&b, 1, &keys[0]).is_some());
    assert!(bucket_lookup(&b, 1, &keys[1]).is_none());
    assert!(bucket_lookup(&b, 1, &keys[2]).is_some());
}

#[test]
fn malformed_buckets_find_nothing_and_are_rewritten() {
    let k = key("/a.jpg");
    for junk in [&b""[..], &[1, 5, 0, 0, 1, 0, 0, 0][..], &[9; 52][..]] {
        assert_eq!(bucket_lookup(junk, 1, &k), None);
        let (b, what) = bucket_upsert(Some(junk), 1, 4, &entry(k, 1, &[0x08]));
        assert_eq!(what, Upsert::Added);
        assert!(bucket_lookup(&b, 1, &k).is_some());
    }
}

fn page(store_id: u64, last_seq: u64, entries: Vec<IndexEntry>) -> FeedPage {
    FeedPage {
        store_id,
        last_seq,
        compacted_seq: 0,
        entries,
    }
}

#[test]
fn follow_applies_pages_and_asks_for_more_when_behind() {
    let meta = IndexMeta::new(64, 4);
    let p = page(
        77,
        3,
        vec![entry(key("/a.jpg"), 1, &[8]), entry(key("/b.jpg"), 2, &[8])],
    );
    let step = follow(meta, 0, &p, 5_000);
    assert_eq!(step.apply.len(), 2);
    assert_eq!(step.meta.applied_seq, 2);
    assert_eq!(step.meta.store_id, 77);
    assert!(step.meta.sidecar_up && step.meta.updated_ms == 5_000);
    assert!(step.poll_now, "seq 3 exists: ask again at once");
    let p = page(77, 3, vec![entry(key("/c.jpg"), 3, &[8])]);
    let step = follow(step.meta, 2, &p, 6_000);
    assert!(!step.resynced && !step.poll_now);
    assert_eq!(step.meta.applied_seq, 3);
    // Nothing new: long-poll again, nothing applied, still up.
    let empty = page(77, 3, vec![]);
    let step = follow(step.meta, 3, &empty, 7_000);
    assert!(step.apply.is_empty() && !step.poll_now && !step.resynced);
}

#[test]
fn follow_resyncs_on_a_new_store_or_a_lower_sequence() {
    let mut meta = IndexMeta::new(64, 4);
    meta.store_id = 77;
    meta.applied_seq = 50;
    meta.epoch = 4;
    meta.records = 12;
    // The sidecar restarted on an empty disk: a new store, asked from 50.
    let p = page(99, 2, vec![entry(key("/a.jpg"), 1, &[8])]);
    let step = follow(meta, 50, &p, 1);
    assert!(step.resynced && step.poll_now);
    assert!(
        step.apply.is_empty(),
        "entries after 50 of another store mean nothing"
    );
    assert_eq!(
        (step.meta.epoch, step.meta.applied_seq, step.meta.records),
        (5, 0, 0)
    );
    assert_eq!(step.meta.store_id, 99);
    // Asked from 0 the page is complete: applied at once.
    let step = follow(step.meta, 0, &p, 2);
    assert!(!step.resynced);
    assert_eq!(step.apply.len(), 1);
    // Same store id, but its sequence went back (restored from an old backup).
    let mut meta = step.meta;
    meta.applied_seq = 30;
    let back = page(99, 10, vec![]);
    let step = follow(meta, 30, &back, 3);
    assert!(step.resynced && step.poll_now);
    assert_eq!(step.meta.epoch, 6);
}

#[test]
fn follow_resyncs_when_deletions_after_its_since_were_compacted_away() {
    let mut meta = IndexMeta::new(64, 4);
    meta.store_id = 77;
    meta.applied_seq = 40;
    meta.epoch = 2;
    // Up to date past the compaction: nothing missed.
    let p = FeedPage {
        compacted_seq: 30,
        ..page(77, 45, vec![entry(key("/a.jpg"), 45, &[8])])
    };
    let step = follow(meta, 40, &p, 1);
    assert!(!step.resynced);
    assert_eq!(step.apply.len(), 1);
    // Behind it: deletions we never saw are gone from the feed; forget everything, start over.
    let p = FeedPage {
        compacted_seq: 50,
        ..page(77, 60, vec![entry(key("/b.jpg"), 55, &[8])])
    };
    let step = follow(meta, 40, &p, 2);
    assert!(step.resynced && step.poll_now && step.apply.is_empty());
    assert_eq!((step.meta.epoch, step.meta.applied_seq), (3, 0));
    // From 0 the page is a snapshot: applied, no resync loop.
    let step = follow(step.meta, 0, &p, 3);
    assert!(!step.resynced);
    assert_eq!(step.apply.len(), 1);
}

#[test]
fn an_empty_record_removes_its_source_from_the_bucket() {
    let (a, b) = (key("/a.jpg"), key("/b.jpg"));
    let (bucket, _) = bucket_upsert(None, 1, 4, &entry(a, 1, &[8]));
    let (bucket, _) = bucket_upsert(Some(&bucket), 1, 4, &entry(b, 2, &[8]));
    // No slots: an empty record, which is how the feed says a source was deleted.
    let deleted = entry(a, 3, &[]);
    let (bucket, outcome) = bucket_upsert(Some(&bucket), 1, 4, &deleted);
    assert_eq!(outcome, Upsert::Removed);
    assert_eq!(bucket_lookup(&bucket, 1, &a), None);
    assert!(bucket_lookup(&bucket, 1, &b).is_some());
    assert_eq!(bucket.len(), 8 + 44, "one entry left");
    // An older deletion does not remove a newer record.
    let old = entry(b, 1, &[]);
    assert_eq!(bucket_upsert(Some(&bucket), 1, 4, &old).1, Upsert::Stale);
    // Deleting a key that is not there changes nothing, and says so (the filter's
    // `index.records` gauge counts only real removals).
    let (again, outcome) = bucket_upsert(Some(&bucket), 1, 4, &deleted);
    assert_eq!(outcome, Upsert::Absent);
    assert_eq!(again, bucket);
}

#[test]
fn a_deletion_removes_every_copy_from_a_damaged_bucket() {
    // Buckets this code writes hold a key once; shared data another writer damaged may not.
    let a = key("/a.jpg");
    let (one, _) = bucket_upsert(None, 1, 4, &entry(a, 1, &[8]));
    let mut twice = one.clone();
    twice.extend_from_slice(&one[8..]);
    twice[1] = 2;
    assert!(
        bucket_lookup(&twice, 1, &a).is_some(),
        "the damaged bucket reads"
    );
    let deleted = entry(a, 3, &[]);
    let (bucket, outcome) = bucket_upsert(Some(&twice), 1, 4, &deleted);
    assert_eq!(outcome, Upsert::Removed);
    assert_eq!(bucket_lookup(&bucket, 1, &a), None);
    assert_eq!(bucket.len(), 8, "no entry left");
}

#[test]
fn hot_urls_fire_once_at_the_threshold() {
    let mut hot = HotUrls::new(1024, 5);
    let k = key("/hot.jpg");
    let fired: Vec<bool> = (0..8).map(|_| hot.record_fallback(&k)).collect();
    assert_eq!(
        fired,
        [false, false, false, false, true, false, false, false]
    );
    let mut off = HotUrls::new(16, 0);
    assert!(
        (0..100).all(|_| !off.record_fallback(&k)),
        "threshold 0 disables"
    );
    let mut one = HotUrls::new(16, 1);
    assert!(
        one.record_fallback(&k),
        "threshold 1: the first fallback hit warms up"
    );
}

#[test]
fn hot_url_table_is_bounded_under_a_flood() {
    let mut hot = HotUrls::new(64, 5);
    // 100k distinct URLs once each never fire; memory stays 64 slots.
    assert!((0..100_000).all(|i| !hot.record_fallback(&key(&format!("/x.jpg?{i}")))));
    let k = key("/hot.jpg");
    assert_eq!((0..5).filter(|_| hot.record_fallback(&k)).count(), 1);
}

fn facts<'a>(status: u16, ct: &'a str, cc: Option<&'a str>) -> ResponseFacts<'a> {
    ResponseFacts {
        status,
        content_type: Some(ct),
        cache_control: cc,
        vary: None,
        has_set_cookie: false,
        content_length: Some(1000),
    }
}

#[test]
fn only_public_images_are_optimizable() {
    let max = 10 << 20;
    assert_eq!(optimizable(&facts(200, "image/jpeg", None), max), Ok(()));
    assert_eq!(
        optimizable(
            &facts(200, "IMAGE/PNG; x=y", Some("public, max-age=60")),
            max
        ),
        Ok(())
    );
    assert_eq!(
        optimizable(&facts(200, "image/png", Some("no-cache")), max),
        Ok(())
    );
    assert_eq!(
        optimizable(&facts(304, "image/png", None), max),
        Err(NotOptimizable::Status)
    );
    assert_eq!(
        optimizable(&facts(200, "text/html", None), max),
        Err(NotOptimizable::NotImage)
    );
    assert_eq!(
        optimizable(&facts(200, "image/svg+xml", None), max),
        Err(NotOptimizable::NotImage)
    );
    assert_eq!(
        optimizable(&facts(200, "image/", None), max),
        Err(NotOptimizable::NotImage)
    );
    assert_eq!(
        optimizable(&facts(200, "image/jpeg", Some("max-age=60, Private")), max),
        Err(NotOptimizable::Private)
    );
    assert_eq!(
        optimizable(&facts(200, "image/jpeg", Some("no-store")), max),
        Err(NotOptimizable::Private)
    );
    let mut cookie = facts(200, "image/jpeg", None);
    cookie.has_set_cookie = true;
    assert_eq!(optimizable(&cookie, max), Err(NotOptimizable::SetCookie));
    let mut big = facts(200, "image/jpeg", None);
    big.content_length = Some(max + 1);
    assert_eq!(optimizable(&big, max), Err(NotOptimizable::TooLarge));
    let mut no_type = facts(200, "", None);
    no_type.content_type = None;
    assert_eq!(optimizable(&no_type, max), Err(NotOptimizable::NotImage));
    assert_eq!(
        optimizable(
            &facts(
                200,
                "image/jpeg",
                Some("public, max-age=31536000, immutable")
            ),
            max
        ),
        Ok(())
    );
    assert_eq!(
        optimizable(
            &facts(200, "image/jpeg", Some("max-age=60, No-Transform")),
            max
        ),
        Err(NotOptimizable::NoTransform)
    );
    for (vary, verdict) in [
        ("Accept-Encoding", Ok(())),
        (" accept-encoding ,Accept-Encoding", Ok(())),
        ("", Ok(())),
        ("Accept", Err(NotOptimizable::Vary)),
        ("Accept-Encoding, Cookie", Err(NotOptimizable::Vary)),
        ("Authorization", Err(NotOptimizable::Vary)),
        ("*", Err(NotOptimizable::Vary)),
    ] {
        let mut f = facts(200, "image/jpeg", None);
        f.vary = Some(vary);
        assert_eq!(optimizable(&f, max), verdict, "Vary: {vary}");
    }
}

#[test]
fn vary_keeps_the_origins_list_and_adds_ours_once() {
    let all = "Accept, Save-Data, Sec-CH-DPR, DPR, Sec-CH-Viewport-Width, Viewport-Width, Sec-CH-UA-Mobile, User-Agent";
    assert_eq!(VARY, all, "golden: the value without an origin list");
    assert_eq!(VARY, VARY_HEADERS.join(", "));
    assert_eq!(merge_vary(""), Some(all.to_owned()));
    assert_eq!(merge_vary("Origin"), Some(format!("Origin, {all}")));
    let merged = merge_vary("accept, user-agent").unwrap();
    assert_eq!(merged.matches("ccept").count(), 1);
    assert!(merged.starts_with("accept, user-agent, Save-Data"));
    assert_eq!(merge_vary("*"), None, "* stays as it is");
    assert_eq!(
        merge_vary(VARY),
        None,
        "nothing to add: the sidecar's own Vary"
    );
    assert_eq!(merge_vary(&format!("Origin, {all}")), None, "idempotent");
    assert_eq!(
        merge_vary(&all.to_lowercase()),
        None,
        "names are case-insensitive"
    );
}
