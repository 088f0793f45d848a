//! Source-key normalization: what counts as the same source, and what does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use rendition_shared::{canonical_host, KeyError, SourceKey};

fn key(host: &str, pq: &str) -> String {
    SourceKey::new(host, pq).unwrap().as_str().to_owned()
}

#[test]
fn host_is_case_folded_and_default_ports_dropped() {
    assert_eq!(key("Example.COM", "/a.jpg"), "example.com/a.jpg");
    assert_eq!(key("example.com:443", "/a.jpg"), "example.com/a.jpg");
    assert_eq!(key("example.com:80", "/a.jpg"), "example.com/a.jpg");
    assert_eq!(key("example.com.", "/a.jpg"), "example.com/a.jpg");
    assert_eq!(key("example.com:8080", "/a.jpg"), "example.com:8080/a.jpg");
}

#[test]
fn canonical_host_is_the_host_part_of_a_key() {
    for host in [
        "Static.Example.COM",
        "static.example.com:80",
        "static.example.com:443",
        "static.example.com.",
        "static.example.com:8443",
        "[::1]:8080",
    ] {
        assert_eq!(
            canonical_host(host).unwrap(),
            SourceKey::new(host, "/a.jpg").unwrap().host(),
            "{host}"
        );
    }
    assert_eq!(canonical_host("A.example:80").unwrap(), "a.example");
    assert_eq!(canonical_host(":443"), Err(KeyError::EmptyHost));
    assert_eq!(canonical_host("a b"), Err(KeyError::InvalidByte));
    assert_eq!(canonical_host("a/b"), Err(KeyError::InvalidByte));
}

#[test]
fn query_is_sorted_and_empty_params_dropped() {
    assert_eq!(key("h", "/a.jpg?w=1&h=2"), "h/a.jpg?h=2&w=1");
    assert_eq!(key("h", "/a.jpg?h=2&w=1"), "h/a.jpg?h=2&w=1");
    assert_eq!(key("h", "/a.jpg?&&w=1&"), "h/a.jpg?w=1");
    assert_eq!(key("h", "/a.jpg?"), "h/a.jpg");
    assert_eq!(key("h", "/a.jpg#frag"), "h/a.jpg");
}

#[test]
fn path_and_encoding_are_kept_exactly() {
    assert_ne!(key("h", "/A.jpg"), key("h", "/a.jpg"));
    assert_ne!(key("h", "/a%2Fb.jpg"), key("h", "/a/b.jpg"));
    assert_ne!(key("h", "/a.jpg?x=%41"), key("h", "/a.jpg?x=A"));
}

#[test]
fn hosts_never_share_ids() {
    let a = SourceKey::new("a.example", "/logo.png").unwrap();
    let b = SourceKey::new("b.example", "/logo.png").unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(a.host(), "a.example");
    assert_eq!(a.path_and_query(), "/logo.png");
}

#[test]
fn canonical_text_round_trips() {
    let k = SourceKey::new("Shop.example:443", "/i/p.jpg?z=1&a=2").unwrap();
    let again = SourceKey::from_canonical(k.as_str()).unwrap();
    assert_eq!(again, k);
    assert_eq!(again.id(), k.id());
}

#[test]
fn bad_urls_have_no_key() {
    assert_eq!(SourceKey::new("", "/a"), Err(KeyError::EmptyHost));
    assert_eq!(SourceKey::new(":443", "/a"), Err(KeyError::EmptyHost));
    assert_eq!(SourceKey::new("h", "a.jpg"), Err(KeyError::RelativePath));
    assert_eq!(SourceKey::new("h", "/a b.jpg"), Err(KeyError::InvalidByte));
    assert_eq!(SourceKey::new("h/x", "/a"), Err(KeyError::InvalidByte));
    let long = format!("/{}", "a".repeat(5000));
    assert_eq!(SourceKey::new("h", &long), Err(KeyError::TooLong));
}
