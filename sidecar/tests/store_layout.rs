//! Golden bytes of the store's on-disk layout (`rendition_sidecar::store::layout`): every key
//! and value a sled tree holds, written out by hand with what each byte means. A change here is
//! a change of the data format: existing stores would read as corrupt (and be refused, never
//! served), so it needs a new layout version, not an edit of these tables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendition_shared::{CapabilityMask, IndexRecord, KeyId, SlotSet};
use rendition_sidecar::store::layout::{
    access_value, blob_crc, content_hash, decode_entry, decode_record, encode_alias, encode_blob,
    encode_record, encode_shared, entry_crc, is_blob, lru_key, parse_access, parse_refs,
    refs_value, variant_key, Entry, META_BYTES, META_DEDUPLICATED_BYTES,
    META_DEDUPLICATED_VARIANTS, META_STORE_ID,
};
use rendition_sidecar::store::{SourceMeta, VariantMeta};

fn m(bits: u32) -> CapabilityMask {
    CapabilityMask::from_bits(bits).unwrap()
}

/// A key id whose bytes are 0x00, 0x01, ..., 0x0f (easy to see in the tables).
fn key() -> KeyId {
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = i as u8;
    }
    KeyId(id)
}

const KEY_BYTES: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

#[test]
fn keys() {
    // `variants` and `access`: key id (16) + slot (1). The slot of mask 0x8a (brotli) is 0x0a:
    // transfer encoding never reaches the store.
    let mut want = KEY_BYTES.to_vec();
    want.push(0x0a);
    assert_eq!(variant_key(&key(), m(0x8a)).to_vec(), want);

    // `lru`: tick (8, big-endian so sled's byte order is the tick order) + key id + slot.
    let mut want = vec![0, 0, 0, 0, 0, 0, 0x01, 0x02]; // tick 258
    want.extend_from_slice(&KEY_BYTES);
    want.push(0x19);
    assert_eq!(lru_key(258, &key(), m(0x19)).to_vec(), want);

    // `meta`: fixed names.
    assert_eq!(META_STORE_ID, b"store_id");
    assert_eq!(META_BYTES, b"payload_bytes");
    assert_eq!(META_DEDUPLICATED_BYTES, b"deduplicated_bytes");
    assert_eq!(META_DEDUPLICATED_VARIANTS, b"deduplicated_variants");
}

#[test]
fn access_value_is_tick_then_seconds() {
    let v = access_value(258, 1_700_000_000);
    assert_eq!(
        v,
        [
            0, 0, 0, 0, 0, 0, 0x01, 0x02, // tick 258, big-endian
            0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00, // unix second 1,700,000,000, big-endian
        ]
    );
    assert_eq!(parse_access(&v), Some((258, 1_700_000_000)));
    assert_eq!(
        parse_access(&v[..15]),
        None,
        "short values are not access times"
    );
}

#[test]
fn alias() {
    // `RV`, version 1, kind 1 (alias), the primary slot it points at.
    assert_eq!(encode_alias(m(0x09)), [b'R', b'V', 1, 1, 0x09]);
    assert!(!is_blob(&encode_alias(m(0x09))));
    match decode_entry(&encode_alias(m(0x09))).unwrap() {
        Entry::Alias(p) => assert_eq!(p, m(0x09)),
        _ => panic!("an alias decoded as a blob"),
    }
}

fn small_meta() -> VariantMeta {
    VariantMeta {
        content_type: "image/webp".into(),
        codec: "webp".into(),
        width: 2,
        height: 1,
        bytes: 3,
        quality: 75,
        lossless: false,
        score: Some(71.5),
        attempts: 2,
        class: "photo".into(),
        slots: 1 << 0x09 | 1 << 0x19, // 512 + 33,554,432
        source_etag: Some("\"v1\"".into()),
        source_last_modified: None,
        cache_control: Some("public, max-age=600".into()),
        created: 1_700_000_000,
    }
}

#[test]
fn blob() {
    let body = [0xAA, 0xBB, 0xCC];
    let blob = encode_blob(&small_meta(), &body).unwrap();
    // The meta JSON, in field order: what a blob carries besides its bytes.
    let json = concat!(
        r#"{"content_type":"image/webp","codec":"webp","width":2,"height":1,"bytes":3,"#,
        r#""quality":75,"lossless":false,"score":71.5,"attempts":2,"class":"photo","#,
        r#""slots":33554944,"source_etag":"\"v1\"","source_last_modified":null,"#,
        r#""cache_control":"public, max-age=600","created":1700000000}"#
    );
    let n = json.len();
    let mut want = vec![b'R', b'V', 1, 0]; // magic, version 1, kind 0 (blob)
    want.extend_from_slice(&(n as u32).to_le_bytes()); // meta length, little-endian
    want.extend_from_slice(json.as_bytes()); // the meta
    let crc = {
        let mut h = crc32fast::Hasher::new();
        h.update(json.as_bytes());
        h.update(&body);
        h.finalize()
    };
    want.extend_from_slice(&crc.to_le_bytes()); // CRC32 of meta + bytes, little-endian
    want.extend_from_slice(&body); // the variant's bytes, as served
    assert_eq!(blob, want);
    assert_eq!(n, 274, "the meta JSON's length above");
    assert!(is_blob(&blob));

    match decode_entry(&blob).unwrap() {
        Entry::Blob {
            meta,
            body_at,
            crc: stored,
        } => {
            assert_eq!(meta, small_meta());
            assert_eq!(body_at, 12 + n);
            assert_eq!(stored, crc);
            assert_eq!(blob_crc(&blob, body_at), Some(crc));
            // Offsets that do not fit the value read as no checksum, never a panic.
            for bad in [0, 3, 7, blob.len() + 1, usize::MAX] {
                assert_eq!(blob_crc(&blob, bad), None, "body_at {bad}");
            }
            assert_eq!(&blob[body_at..], &body);
        }
        _ => panic!("an inline blob decoded as something else"),
    }
}

/// The JSON of [`small_meta`], in field order.
const SMALL_META_JSON: &str = concat!(
    r#"{"content_type":"image/webp","codec":"webp","width":2,"height":1,"bytes":3,"#,
    r#""quality":75,"lossless":false,"score":71.5,"attempts":2,"class":"photo","#,
    r#""slots":33554944,"source_etag":"\"v1\"","source_last_modified":null,"#,
    r#""cache_control":"public, max-age=600","created":1700000000}"#
);

#[test]
fn shared_blob() {
    let body = [0xAA, 0xBB, 0xCC];
    let (entry, hash) = encode_shared(&small_meta(), &body).unwrap();
    // The content hash: the first 16 bytes of SHA-256(AA BB CC), the key in `payloads` and
    // `payload_refs`.
    let want_hash = [
        0xfa, 0x22, 0xdf, 0xe1, 0xda, 0x90, 0x13, 0xb3, 0xc1, 0x14, 0x50, 0x40, 0xac, 0xae, 0x90,
        0x89,
    ];
    assert_eq!(hash, want_hash);
    assert_eq!(content_hash(&body), want_hash);
    let n = SMALL_META_JSON.len();
    let mut want = vec![b'R', b'V', 1, 2]; // magic, version 1, kind 2 (shared blob)
    want.extend_from_slice(&(n as u32).to_le_bytes()); // meta length, little-endian
    want.extend_from_slice(SMALL_META_JSON.as_bytes()); // the meta
    let crc = entry_crc(SMALL_META_JSON.as_bytes(), &body);
    want.extend_from_slice(&crc.to_le_bytes()); // CRC32 of meta + the payload's bytes
    want.extend_from_slice(&want_hash); // where the bytes are
    assert_eq!(entry, want);
    assert_eq!(entry.len(), 28 + 274);
    assert!(
        is_blob(&entry),
        "a shared blob has an LRU entry like an inline one"
    );
    match decode_entry(&entry).unwrap() {
        Entry::Shared {
            meta,
            meta_len,
            crc: stored,
            hash,
        } => {
            assert_eq!(meta, small_meta());
            assert_eq!((meta_len, stored, hash), (n, crc, want_hash));
        }
        _ => panic!("a shared blob decoded as something else"),
    }
    // A truncated hash is corrupt, not a shorter key.
    assert!(decode_entry(&entry[..entry.len() - 1]).is_err());

    // `payload_refs`: how many entries point at the payload, u64 little-endian.
    assert_eq!(refs_value(3), [3, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(parse_refs(&refs_value(258)), Some(258));
    assert_eq!(parse_refs(&[1, 2, 3]), None);
}

#[test]
fn what_is_not_an_entry_is_corrupt() {
    let good = encode_blob(&small_meta(), &[1, 2, 3]).unwrap();
    let mut wrong_magic = good.clone();
    wrong_magic[0] = b'X';
    let mut wrong_version = good.clone();
    wrong_version[2] = 2;
    let mut wrong_kind = good.clone();
    wrong_kind[3] = 7;
    let mut long_meta = good.clone();
    long_meta[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    for (what, bytes) in [
        ("magic", wrong_magic),
        ("version", wrong_version),
        ("kind", wrong_kind),
        ("meta length past the end", long_meta),
        ("empty", Vec::new()),
        ("alias without its slot", vec![b'R', b'V', 1, 1]),
        ("alias to no mask", vec![b'R', b'V', 1, 1, 0x0c]),
    ] {
        assert!(decode_entry(&bytes).is_err(), "{what}");
    }
}

#[test]
fn record_value_is_the_index_record_then_the_source_meta() {
    let record = IndexRecord {
        stored: [m(0x09), m(0x19)].into_iter().collect(),
        lost: SlotSet::EMPTY,
        refused: false,
        seq: 7,
    };
    let meta = SourceMeta {
        key: "shop.example/a.jpg".into(),
        etag: Some("\"v1\"".into()),
        source_bytes: 1000,
        updated: 1_700_000_000,
        ..SourceMeta::default()
    };
    let value = encode_record(&record, &meta).unwrap();
    // The 28-byte index record of `rendition_shared::record` (pinned there), then the JSON.
    assert_eq!(&value[..28], &record.encode()[..]);
    assert_eq!(
        std::str::from_utf8(&value[28..]).unwrap(),
        concat!(
            r#"{"key":"shop.example/a.jpg","etag":"\"v1\"","last_modified":null,"#,
            r#""cache_control":null,"source_bytes":1000,"width":0,"height":0,"format":null,"#,
            r#""class":null,"refused":null,"lost_reasons":[],"updated":1700000000,"#,
            // freshness: none stamped yet
            r#""expires":null,"validated_at_ms":0,"initial_age_ms":0,"lifetime":0,"#,
            r#""lifetime_source":null,"must_revalidate":false,"source_hash":null}"#
        )
    );
    assert_eq!(decode_record(&value).unwrap(), (record, meta.clone()));
    // A record written before the freshness fields existed still reads (they default).
    let mut old = record.encode().to_vec();
    old.extend_from_slice(
        br#"{"key":"shop.example/a.jpg","etag":"\"v1\"","last_modified":null,"cache_control":null,"source_bytes":1000,"width":0,"height":0,"format":null,"class":null,"refused":null,"lost_reasons":[],"updated":1700000000}"#,
    );
    assert_eq!(decode_record(&old).unwrap(), (record, meta));
    assert!(
        decode_record(&value[..27]).is_err(),
        "shorter than a record"
    );
}
