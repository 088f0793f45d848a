//! Golden bytes of what crosses between the filter and the sidecar over HTTP
//! (`rendition_shared::wire`): the hit-route header and the notify body. The filter's and the
//! sidecar's own tests send and accept `golden/notify.json` too, so neither side can drift.

use rendition_shared::wire::{
    parse_mask_hex, Notify, NotifyError, Requested, VariantRef, MAX_NOTIFY_BYTES,
    MAX_VALIDATOR_LEN, VARIANT_HEADER,
};
use rendition_shared::{CapabilityMask, KeyError, KeyId, MaskError, SourceKey};

const GOLDEN_NOTIFY: &[u8] = include_bytes!("golden/notify.json");

fn golden() -> Notify {
    Notify {
        host: "shop.example".into(),
        path: "/img/a.jpg?v=2".into(),
        mask: 0x0a,
        etag: Some("\"v1\"".into()),
        last_modified: Some("Wed, 21 Oct 2026 07:28:00 GMT".into()),
    }
}

#[test]
fn notify_json_is_the_golden_bytes_both_ways() {
    assert_eq!(golden().to_json(), GOLDEN_NOTIFY);
    assert_eq!(Notify::parse(GOLDEN_NOTIFY), Ok(golden()));
    let n = golden();
    assert_eq!(
        n.key().map(|k| k.as_str().to_owned()).as_deref(),
        Ok("shop.example/img/a.jpg?v=2")
    );
    assert_eq!(
        n.requested(),
        Ok(Requested::Slot(CapabilityMask::from_bits(0x0a).unwrap()))
    );
}

#[test]
fn optional_fields_are_left_out_not_null() {
    let n = Notify {
        etag: None,
        last_modified: None,
        mask: CapabilityMask::WARMUP_SENTINEL,
        ..golden()
    };
    assert_eq!(
        n.to_json(),
        br#"{"host":"shop.example","path":"/img/a.jpg?v=2","mask":4294967294}"#
    );
    assert_eq!(n.requested(), Ok(Requested::Warmup));
    // null is accepted for an absent validator (older filters wrote it).
    let with_null = br#"{"host":"a","path":"/b.png","mask":1,"etag":null,"last_modified":null}"#;
    assert_eq!(Notify::parse(with_null).unwrap().etag, None);
}

#[test]
fn notify_bodies_that_are_refused() {
    for body in [
        "",
        "{}",
        r#"{"host":"a","path":"/b"}"#,
        r#"{"host":"a","path":"/b","mask":-1}"#,
        r#"{"host":"a","path":"/b","mask":4294967296}"#,
        r#"{"host":"a","path":"/b","mask":1,"extra":1}"#,
        r#"{"host":"a","path":"/b","mask":1} trailing"#,
    ] {
        assert_eq!(
            Notify::parse(body.as_bytes()),
            Err(NotifyError::Body),
            "{body}"
        );
    }
    let relative = Notify::parse(br#"{"host":"a","path":"b","mask":1}"#).unwrap();
    assert_eq!(relative.key(), Err(KeyError::RelativePath));
    let bad_mask = Notify::parse(br#"{"host":"a","path":"/b.png","mask":12}"#).unwrap();
    assert_eq!(bad_mask.requested(), Err(MaskError::InvalidViewport));
    // 0x89 = WebP, desktop, 1x, brotli: the slot drops the transfer encoding.
    let brotli = Notify::parse(br#"{"host":"a","path":"/b.png","mask":137}"#).unwrap();
    assert_eq!(
        brotli.requested(),
        Ok(Requested::Slot(CapabilityMask::from_bits(0x09).unwrap()))
    );
}

#[test]
fn variant_header_value() {
    assert_eq!(VARIANT_HEADER, "x-rendition-variant");
    let key = SourceKey::new("shop.example", "/img/a.jpg").unwrap().id();
    let v = VariantRef {
        key,
        slot: CapabilityMask::from_bits(0x0a).unwrap(),
    };
    // 32 lower-case hex digits of the key id, '/', the slot in lower-case hex without 0x.
    let text = v.header_value();
    assert_eq!(text, format!("{key}/a"));
    assert_eq!(text.len(), 34);
    assert_eq!(VariantRef::parse(&text), Some(v));
    assert_eq!(VariantRef::parse(&format!("{key}/0x0a")), Some(v));
    let zero = KeyId([0; 16]);
    for bad in [
        String::new(),
        format!("{key}"),
        format!("{key}/"),
        format!("{key}/c"),         // viewport bits 11: not a mask
        format!("{key}/100000000"), // more than 32 bits
        format!("{zero}x/a"),
        "nothex/a".to_owned(),
    ] {
        assert_eq!(VariantRef::parse(&bad), None, "{bad}");
    }
    assert_eq!(parse_mask_hex("0x0a").map(|m| m.bits()), Some(0x0a));
    assert_eq!(parse_mask_hex(""), None);
}

#[test]
fn notify_bounds() {
    let with = |field: &str, len: usize| {
        format!(
            r#"{{"host":"a","path":"/b","mask":1,"{field}":"{}"}}"#,
            "x".repeat(len)
        )
    };
    for field in ["etag", "last_modified"] {
        assert!(Notify::parse(with(field, MAX_VALIDATOR_LEN).as_bytes()).is_ok());
        assert_eq!(
            Notify::parse(with(field, MAX_VALIDATOR_LEN + 1).as_bytes()),
            Err(NotifyError::ValidatorTooLong(field))
        );
    }
    // Whitespace is valid JSON: a body that parses, but longer than a notify can be.
    let padded = format!(
        r#"{{"host":"a","path":"/b","mask":1}}{}"#,
        " ".repeat(MAX_NOTIFY_BYTES)
    );
    assert_eq!(Notify::parse(padded.as_bytes()), Err(NotifyError::TooLarge));
    assert_eq!(
        Notify::bounded_validator(Some("x".repeat(MAX_VALIDATOR_LEN + 1))),
        None
    );
    assert_eq!(
        Notify::bounded_validator(Some("\"v1\"".into())),
        Some("\"v1\"".into())
    );
}

#[test]
fn feed_request_query_and_its_bounds() {
    use rendition_shared::wire::{
        FeedRequest, DEFAULT_FEED_LIMIT, FEED_ANSWER_MARGIN_MS, INDEX_PATH, MAX_FEED_LIMIT,
        MAX_FEED_WAIT_MS, NOTIFY_PATH,
    };
    assert_eq!(NOTIFY_PATH, "/notify");
    assert_eq!(INDEX_PATH, "/index");
    assert_eq!(
        (
            MAX_FEED_WAIT_MS,
            FEED_ANSWER_MARGIN_MS,
            MAX_FEED_LIMIT,
            DEFAULT_FEED_LIMIT
        ),
        (30_000, 2_000, 10_000, 1_000)
    );
    let r = FeedRequest {
        since: 7,
        wait_ms: 5_000,
        limit: Some(500),
    };
    assert_eq!(r.path(), "/index?since=7&wait_ms=5000&limit=500");
    assert_eq!(r.timeout_ms(), 7_000);
    // Missing fields take their defaults, as the sidecar reads a bare `/index`.
    let bare: FeedRequest = serde_json::from_str("{}").unwrap();
    assert_eq!(
        bare,
        FeedRequest {
            since: 0,
            wait_ms: 0,
            limit: None
        }
    );
    assert_eq!(bare.page_limit(), DEFAULT_FEED_LIMIT);
    assert_eq!(bare.path(), "/index?since=0&wait_ms=0&limit=1000");
    // Out-of-range requests are cut to the bounds, not refused.
    let greedy = FeedRequest {
        since: u64::MAX,
        wait_ms: u64::MAX,
        limit: Some(u64::MAX),
    };
    assert_eq!(greedy.page_limit(), MAX_FEED_LIMIT);
    assert_eq!(greedy.granted_wait_ms(), MAX_FEED_WAIT_MS);
    assert_eq!(greedy.timeout_ms(), 32_000);
    let zero = FeedRequest {
        limit: Some(0),
        ..bare
    };
    assert_eq!(zero.page_limit(), 1);
    // What the filter writes, the sidecar reads back as written (axum's `Query` is
    // serde_urlencoded), and a count past 32 bits is still a request, cut to the bound.
    for r in [
        bare,
        zero,
        greedy,
        FeedRequest {
            limit: Some(500),
            since: 7,
            wait_ms: 5_000,
        },
    ] {
        let query = r.path().split_once('?').map(|(_, q)| q.to_owned()).unwrap();
        let read: FeedRequest = serde_urlencoded::from_str(&query).unwrap();
        assert_eq!(read.page_limit(), r.page_limit());
        assert_eq!((read.since, read.wait_ms), (r.since, r.wait_ms));
        assert_eq!(read.path(), r.path());
    }
    let huge: FeedRequest = serde_urlencoded::from_str("limit=5000000000").unwrap();
    assert_eq!(huge.page_limit(), MAX_FEED_LIMIT);
    let bare_query: FeedRequest = serde_urlencoded::from_str("").unwrap();
    assert_eq!(bare_query, bare);
}
