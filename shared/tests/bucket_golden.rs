//! Golden names and JSON of the shared tier's bucket layout (`rendition_shared::bucket`): what
//! every sidecar of a fleet writes and reads, across versions. A change here is a new layout
//! (a new `v2/` directory), not an edit of these tables.

use rendition_shared::bucket::{
    BucketLayout, Lease, Manifest, ManifestLost, ManifestSource, ManifestVariant, PurgeEntry,
    PurgeScope, LAYOUT,
};
use rendition_shared::KeyId;

fn key() -> KeyId {
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = 0xa0 + i as u8;
    }
    KeyId(id)
}

#[test]
fn object_names() {
    let l = BucketLayout::new("/fleet-a/");
    assert_eq!(LAYOUT, 1);
    assert_eq!(l.object("ab12"), "fleet-a/v1/objects/ab12");
    assert_eq!(
        l.manifest(&key()),
        "fleet-a/v1/manifests/a0a1a2a3a4a5a6a7a8a9aaabacadaeaf.json"
    );
    assert_eq!(
        l.lease(&key()),
        "fleet-a/v1/leases/a0a1a2a3a4a5a6a7a8a9aaabacadaeaf.json"
    );
    assert_eq!(l.purges(), "fleet-a/v1/purges/");
    assert_eq!(l.probe("pod-a"), "fleet-a/v1/probe/pod-a");
    let purge = l.purge(1_790_000_000_123, "pod-a", 0xbeef);
    assert_eq!(
        purge,
        "fleet-a/v1/purges/1790000000123-pod-a-000000000000beef.json"
    );
    assert_eq!(BucketLayout::purge_time(&purge), Some(1_790_000_000_123));
    // Names sort by time: the purge log is listed in order.
    assert!(l.purge(999, "z", 0) < l.purge(1_000, "a", 0));
    assert_eq!(BucketLayout::new("").object("x"), "v1/objects/x");
}

fn manifest() -> Manifest {
    Manifest {
        layout: LAYOUT,
        key: "shop.example/img/a.jpg".into(),
        generation: 2,
        written_ms: 1_790_000_000_000,
        writer: "pod-a".into(),
        source: ManifestSource {
            etag: Some("\"v1\"".into()),
            cache_control: Some("public, max-age=600".into()),
            validated_at_ms: 1_789_999_999_000,
            initial_age_ms: 1_000,
            lifetime: 600,
            lifetime_source: Some("max-age".into()),
            hash: Some("00112233445566778899aabbccddeeff".into()),
            bytes: 112_525,
            width: 640,
            height: 427,
            format: Some("jpeg".into()),
            class: Some("photo".into()),
            ..ManifestSource::default()
        },
        variants: vec![ManifestVariant {
            primary: 0x09,
            slots: 1 << 0x09 | 1 << 0x19,
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            bytes: 0,
            content_type: "image/webp".into(),
            codec: "webp".into(),
            width: 640,
            height: 427,
            quality: 71,
            lossless: false,
            score: Some(70.5),
            attempts: 1,
        }],
        lost: vec![ManifestLost {
            slot: 0x08,
            reason: "jpeg 640x427 is 120000 bytes, not smaller than the 112525-byte source".into(),
        }],
        refused: None,
    }
}

#[test]
fn manifest_json() {
    let json = serde_json::to_string(&manifest()).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"layout":1,"key":"shop.example/img/a.jpg","generation":2,"#,
            r#""written_ms":1790000000000,"writer":"pod-a","#,
            r#""source":{"etag":"\"v1\"","last_modified":null,"cache_control":"public, max-age=600","#,
            r#""expires":null,"validated_at_ms":1789999999000,"initial_age_ms":1000,"lifetime":600,"#,
            r#""lifetime_source":"max-age","must_revalidate":false,"#,
            r#""hash":"00112233445566778899aabbccddeeff","bytes":112525,"width":640,"height":427,"#,
            r#""format":"jpeg","class":"photo"},"#,
            r#""variants":[{"primary":9,"slots":33554944,"#,
            r#""sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","#,
            r#""bytes":0,"content_type":"image/webp","codec":"webp","width":640,"height":427,"#,
            r#""quality":71,"lossless":false,"score":70.5,"attempts":1}],"#,
            r#""lost":[{"slot":8,"reason":"jpeg 640x427 is 120000 bytes, not smaller than the 112525-byte source"}],"#,
            r#""refused":null}"#
        )
    );
    let back: Manifest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, manifest());
    // Fresh for 600 s from an age of 1 s at validation.
    assert!(back.source.is_fresh(1_789_999_999_000 + 598_000));
    assert!(!back.source.is_fresh(1_789_999_999_000 + 599_000));
}

#[test]
fn lease_and_purge_json() {
    let lease = Lease {
        layout: LAYOUT,
        key: "shop.example/img/a.jpg".into(),
        holder: "pod-b".into(),
        expires_ms: 1_790_000_060_000,
    };
    assert_eq!(
        serde_json::to_string(&lease).unwrap(),
        r#"{"layout":1,"key":"shop.example/img/a.jpg","holder":"pod-b","expires_ms":1790000060000}"#
    );
    assert!(!lease.expired(1_790_000_059_999) && lease.expired(1_790_000_060_000));
    let one = PurgeEntry {
        layout: LAYOUT,
        scope: PurgeScope::Key("shop.example/img/a.jpg".into()),
        at_ms: 1_790_000_000_123,
        writer: "pod-a".into(),
    };
    assert_eq!(
        serde_json::to_string(&one).unwrap(),
        r#"{"layout":1,"scope":{"key":"shop.example/img/a.jpg"},"at_ms":1790000000123,"writer":"pod-a"}"#
    );
    let prefix = PurgeEntry {
        scope: PurgeScope::Prefix("shop.example/img/".into()),
        ..one.clone()
    };
    assert_eq!(
        serde_json::to_string(&prefix.scope).unwrap(),
        r#"{"prefix":"shop.example/img/"}"#
    );
    assert!(one.covers("shop.example/img/a.jpg") && !one.covers("shop.example/img/b.jpg"));
    assert!(prefix.covers("shop.example/img/b.jpg") && !prefix.covers("shop.example/css/x"));
}
