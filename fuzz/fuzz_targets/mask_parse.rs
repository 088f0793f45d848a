//! The filter's per-request decisions on hostile requests, as `filter/src/http.rs` chains
//! them: `request::classify` (method, path, Authorization), `ClientProfile::from_headers`
//! (Accept, User-Agent, client hints, Save-Data, Accept-Encoding -> capability mask),
//! `SourceKey::new` (Host + path), and `select` against a stored slot set.
//!
//! Input: 8 bytes (the stored slot set, little-endian, invalid bits dropped), then a request
//! head as text: `METHOD PATH` on the first line, then `Name: value` lines (`Host` names the
//! source's host). Seeds: tests/headers/browsers.toml, written by scripts/fuzz.sh.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rendition_shared::request::{classify, is_internal_header, DEFAULT_IMAGE_EXTENSIONS};
use rendition_shared::{
    select, wants_generation, CapabilityMask, ClientProfile, ImageFormat, Selection, SlotSet,
    SourceKey,
};

fuzz_target!(|data: &[u8]| {
    let (stored, head) = match data.split_first_chunk::<8>() {
        Some((bits, rest)) => (u64::from_le_bytes(*bits), rest),
        None => (0, data),
    };
    let stored = SlotSet::from_bits(stored & SlotSet::ALL.bits()).unwrap_or_default();
    let mut lines = head.split(|&b| b == b'\n');
    let request_line = lines.next().unwrap_or_default();
    let (method, path) = match request_line.iter().position(|&b| b == b' ') {
        Some(i) => (&request_line[..i], &request_line[i + 1..]),
        None => (request_line, &b""[..]),
    };
    let headers: Vec<(&[u8], &[u8])> = lines
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .map(|l| match l.iter().position(|&b| b == b':') {
            Some(i) => (&l[..i], &l[i + 1..]),
            None => (l, &b""[..]),
        })
        .collect();

    // What the proxy-wasm host hands the filter: strings.
    let method = String::from_utf8_lossy(method);
    let path = String::from_utf8_lossy(path);
    let host = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"host") || *n == b":authority")
        .map(|(_, v)| String::from_utf8_lossy(v).trim().to_owned())
        .unwrap_or_default();
    let has_auth = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"authorization"));
    let _ = classify(&method, &path, has_auth, &DEFAULT_IMAGE_EXTENSIONS);
    for (name, _) in &headers {
        let _ = is_internal_header(name);
    }

    let profile = ClientProfile::from_headers(headers.iter().copied());
    // Header order never matters except for "first occurrence wins"; parsing twice is stable.
    assert_eq!(
        profile,
        ClientProfile::from_headers(headers.iter().copied())
    );
    let mask = profile.mask;
    assert_eq!(
        CapabilityMask::from_bits(mask.bits()),
        Ok(mask),
        "mask {mask}"
    );
    assert_ne!(
        mask.format(),
        ImageFormat::Svg,
        "a request never asks for SVG"
    );
    assert!(profile.accepts.contains(ImageFormat::Original));
    assert!(
        profile.accepts.contains(mask.format()),
        "{mask} {:?}",
        profile.accepts
    );
    assert_eq!(mask.format(), profile.accepts.best_raster());

    match select(stored, &profile) {
        Selection::Variant { slot, .. } => {
            assert!(stored.contains(slot), "{slot} not stored");
            assert!(
                profile.accepts.contains(slot.format()),
                "{slot} not accepted"
            );
            assert_eq!(slot.slot(), slot);
        }
        Selection::Origin => {}
    }
    let _ = wants_generation(stored, SlotSet::EMPTY, false, &profile);

    if let Ok(key) = SourceKey::new(&host, &path) {
        // The sidecar stores the canonical text and rebuilds keys from it (the report page).
        let again = SourceKey::from_canonical(key.as_str());
        assert_eq!(
            again.as_ref(),
            Ok(&key),
            "canonical text {:?}",
            key.as_str()
        );
        assert_eq!(again.map(|k| k.id()), Ok(key.id()));
        assert!(key.path_and_query().starts_with('/'));
    }
});
