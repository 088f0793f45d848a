//! Golden bytes of the 28-byte index record and the 44-byte index entry (layout v1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use rendition_shared::{
    CapabilityMask, IndexEntry, IndexRecord, KeyId, RecordError, SlotSet, SourceKey, ENTRY_LEN,
    RECORD_LEN,
};

fn slots(masks: &[u32]) -> SlotSet {
    masks
        .iter()
        .map(|&b| CapabilityMask::from_bits(b).unwrap())
        .collect()
}

#[test]
fn golden_record_bytes() {
    let record = IndexRecord {
        // stored: 0x01 (webp mobile), 0x08 (default), 0x0b (svg) -> bits 1, 8, 11
        stored: slots(&[0x01, 0x08, 0x0b]),
        // lost: 0x20 (original, mobile, 1x, Save-Data) -> bit 32
        lost: slots(&[0x20]),
        refused: false,
        seq: 0x0102_0304_0506_0708,
    };
    #[rustfmt::skip]
    let expected: [u8; RECORD_LEN] = [
        0x01,                   // version 1
        0x00,                   // flags: not refused
        0x00, 0x00,             // reserved
        // stored = 1<<1 | 1<<8 | 1<<11 = 0x0000_0000_0000_0902, little-endian
        0x02, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // lost = 1<<32 = 0x0000_0001_0000_0000, little-endian
        0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        // seq = 0x0102030405060708, little-endian
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    ];
    assert_eq!(record.encode(), expected);
    assert_eq!(IndexRecord::decode(&expected), Ok(record));
}

#[test]
fn golden_refused_record() {
    let record = IndexRecord {
        refused: true,
        seq: 7,
        ..IndexRecord::default()
    };
    let mut expected = [0u8; RECORD_LEN];
    expected[0] = 1; // version
    expected[1] = 1; // REFUSED
    expected[20] = 7; // seq
    assert_eq!(record.encode(), expected);
    assert_eq!(IndexRecord::decode(&expected), Ok(record));
}

#[test]
fn golden_entry_is_key_then_record() {
    let key = SourceKey::new("example.com", "/a.jpg").unwrap();
    let entry = IndexEntry {
        key: key.id(),
        record: IndexRecord {
            seq: 1,
            ..Default::default()
        },
    };
    let bytes = entry.encode();
    assert_eq!(bytes.len(), ENTRY_LEN);
    assert_eq!(&bytes[..16], &key.id().0);
    assert_eq!(bytes[16], 1, "version byte right after the key");
    assert_eq!(IndexEntry::decode(&bytes), Ok(entry));
}

#[test]
fn decode_refuses_bad_bytes() {
    let good = IndexRecord {
        seq: 1,
        ..Default::default()
    }
    .encode();
    assert_eq!(
        IndexRecord::decode(&good[..27]),
        Err(RecordError::Length(27))
    );
    let mut b = good;
    b[0] = 2;
    assert_eq!(IndexRecord::decode(&b), Err(RecordError::Version(2)));
    let mut b = good;
    b[1] = 0x80;
    assert_eq!(
        IndexRecord::decode(&b),
        Err(RecordError::UnknownFlags(0x80))
    );
    let mut b = good;
    b[3] = 1;
    assert_eq!(IndexRecord::decode(&b), Err(RecordError::ReservedNotZero));
    // bit 12 = mask 0x0c: viewport bits 11, no slot
    let mut b = good;
    b[5] = 0x10;
    assert_eq!(IndexRecord::decode(&b), Err(RecordError::InvalidSlot));
    // bit 3 = mask 0x03 (SVG at mobile) is not the canonical SVG slot 0x0b
    let mut b = good;
    b[4] = 0x08;
    assert_eq!(IndexRecord::decode(&b), Err(RecordError::InvalidSlot));
    let mut b = good;
    b[4] = 1; // stored 0x00
    b[12] = 1; // lost 0x00
    assert_eq!(IndexRecord::decode(&b), Err(RecordError::StoredAndLost));
}

#[test]
fn key_id_hex_round_trips() {
    let id = SourceKey::new("Example.COM:443", "/p.png?b=2&a=1")
        .unwrap()
        .id();
    let hex = id.to_string();
    assert_eq!(hex.len(), 32);
    assert_eq!(KeyId::from_hex(&hex), Some(id));
    assert_eq!(KeyId::from_hex(&hex.to_uppercase()), Some(id));
    assert_eq!(KeyId::from_hex(&hex[..31]), None);
    assert_eq!(KeyId::from_hex("zz000000000000000000000000000000"), None);
}

#[test]
fn golden_feed_page() {
    use rendition_shared::{FeedPage, FEED_HEADER_LEN};
    let key = SourceKey::new("example.com", "/a.jpg").unwrap();
    let entry = IndexEntry {
        key: key.id(),
        record: IndexRecord {
            seq: 9,
            ..Default::default()
        },
    };
    let page = FeedPage {
        store_id: 0xAB,
        last_seq: 12,
        compacted_seq: 0x0102,
        entries: vec![entry],
    };
    let bytes = page.encode();
    #[rustfmt::skip]
    let header: [u8; FEED_HEADER_LEN] = [
        2, 0, 0, 0, 0, 0, 0, 0,          // version 2, reserved
        0xAB, 0, 0, 0, 0, 0, 0, 0,       // store_id 0xAB
        12, 0, 0, 0, 0, 0, 0, 0,         // last_seq 12
        1, 0, 0, 0,                      // count 1
        0, 0, 0, 0,                      // reserved
        0x02, 0x01, 0, 0, 0, 0, 0, 0,    // compacted_seq 0x0102
    ];
    assert_eq!(&bytes[..FEED_HEADER_LEN], &header);
    assert_eq!(bytes.len(), FEED_HEADER_LEN + ENTRY_LEN);
    assert_eq!(FeedPage::decode(&bytes), Ok(page.clone()));
    assert_eq!(FeedPage::decode(&bytes[..48]), Err(RecordError::Length(48)));
    let mut bad = bytes.clone();
    bad[3] = 1;
    assert_eq!(FeedPage::decode(&bad), Err(RecordError::ReservedNotZero));
    let mut unknown = bytes.clone();
    unknown[0] = 3;
    assert_eq!(FeedPage::decode(&unknown), Err(RecordError::Version(3)));

    // A version 1 page (an older sidecar during an upgrade): the 32-byte header, no
    // compacted_seq, read as 0.
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&bytes[1..32]);
    v1.extend_from_slice(&bytes[FEED_HEADER_LEN..]);
    assert_eq!(
        FeedPage::decode(&v1),
        Ok(FeedPage {
            compacted_seq: 0,
            ..page
        })
    );
}
