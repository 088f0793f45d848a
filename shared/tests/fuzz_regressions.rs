//! Inputs the fuzz targets (fuzz/fuzz_targets/, `make fuzz`) found, replayed as the filter
//! and the sidecar see them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use rendition_shared::SourceKey;

/// mask_parse, crash-a06bb1e3: a `Host` header whose first byte is 0xA0 (not UTF-8). The host
/// reaches the filter as a string with U+FFFD in it; the canonical text lower-cased it byte by
/// byte (`byte as char`), so it held "Ã¯Â¿Â½" instead, and the key rebuilt from that text (the
/// sidecar keeps only the text) was another source, with another id.
#[test]
fn non_ascii_host_canonical_text_round_trips() {
    let crasher_host: &[u8] = b"\xa0shop.example";
    let host = String::from_utf8_lossy(crasher_host);
    let key = SourceKey::new(&host, "/img/photo-49.jpg?w=49").unwrap();
    assert_eq!(key.as_str(), "\u{fffd}shop.example/img/photo-49.jpg?w=49");
    let again = SourceKey::from_canonical(key.as_str()).unwrap();
    assert_eq!(again, key);
    assert_eq!(again.id(), key.id());

    // An unencoded IDN: ASCII letters lower-cased, the rest kept as it is.
    let idn = SourceKey::new("BÜCHER.Example:443", "/a.png").unwrap();
    assert_eq!(idn.as_str(), "bÜcher.example/a.png");
    assert_eq!(idn.host(), "bÜcher.example");
    assert_eq!(SourceKey::from_canonical(idn.as_str()).unwrap(), idn);
    // ASCII hosts are unchanged (their ids are in keys.rs's golden values).
    assert_eq!(
        SourceKey::new("Example.COM.", "/x.jpg").unwrap().as_str(),
        "example.com/x.jpg"
    );
}
