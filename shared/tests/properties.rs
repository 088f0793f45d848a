//! Property tests: no input panics, selection never serves an unaccepted format, and encodings
//! round-trip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use proptest::prelude::*;
use rendition_shared::{
    select, select_for, AcceptedFormats, CapabilityMask, ClientProfile, ImageFormat, IndexEntry,
    IndexRecord, Selection, SlotSet, SourceKey,
};

const NAMES: [&[u8]; 10] = [
    b"accept",
    b"User-Agent",
    b"save-data",
    b"Accept-Encoding",
    b"sec-ch-dpr",
    b"DPR",
    b"Sec-CH-Viewport-Width",
    b"viewport-width",
    b"sec-ch-ua-mobile",
    b"x-other",
];

fn header() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let name = prop_oneof![
        proptest::sample::select(NAMES.to_vec()).prop_map(<[u8]>::to_vec),
        proptest::collection::vec(any::<u8>(), 0..24),
    ];
    let value = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "[a-z/+*;=., 0-9qQ?-]{0,80}".prop_map(String::into_bytes),
    ];
    (name, value)
}

fn slot_set() -> impl Strategy<Value = SlotSet> {
    any::<u64>().prop_map(|b| SlotSet::from_bits(b & SlotSet::ALL.bits()).unwrap_or_default())
}

fn accepts() -> impl Strategy<Value = AcceptedFormats> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(w, a, s)| {
        let mut f = AcceptedFormats::ORIGINAL_ONLY;
        if w {
            f = f.with(ImageFormat::Webp);
        }
        if a {
            f = f.with(ImageFormat::Avif);
        }
        if s {
            f = f.with(ImageFormat::Svg);
        }
        f
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_headers_never_panic_and_give_a_valid_mask(
        headers in proptest::collection::vec(header(), 0..12)
    ) {
        let p = ClientProfile::from_headers(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        prop_assert!(CapabilityMask::from_bits(p.mask.bits()).is_ok());
        prop_assert!(p.accepts.contains(p.mask.format()), "the mask's format is accepted");
        prop_assert_ne!(p.mask.format(), ImageFormat::Svg);
    }

    #[test]
    fn selection_only_returns_accepted_stored_formats(
        stored in slot_set(), bits in 0u32..256, accepts in accepts()
    ) {
        let Ok(mask) = CapabilityMask::from_bits(bits) else { return Ok(()) };
        if let Selection::Variant { slot, .. } = select_for(stored, mask, accepts) {
            prop_assert!(accepts.contains(slot.format()));
            prop_assert!(stored.contains(slot));
        }
    }

    #[test]
    fn selection_from_real_parsing_is_accepted(
        headers in proptest::collection::vec(header(), 0..8), stored in slot_set()
    ) {
        let p = ClientProfile::from_headers(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        if let Selection::Variant { slot, .. } = select(stored, &p) {
            prop_assert!(p.accepts.contains(slot.format()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..64), raw in any::<u32>()) {
        let _ = IndexRecord::decode(&bytes);
        let _ = IndexEntry::decode(&bytes);
        let _ = CapabilityMask::from_bits(raw);
        let text = String::from_utf8_lossy(&bytes);
        let _ = SourceKey::new(&text, &text);
        let _ = SourceKey::from_canonical(&text);
    }

    #[test]
    fn records_round_trip(stored in slot_set(), lost in slot_set(), refused in any::<bool>(), seq in any::<u64>()) {
        let lost = lost.difference(stored);
        let r = IndexRecord { stored, lost, refused, seq };
        prop_assert_eq!(IndexRecord::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn key_normalization_is_idempotent(host in "[A-Za-z0-9.-]{1,20}(:[0-9]{1,5})?", path in "/[a-z0-9/._%-]{0,30}", query in "([a-z0-9=%]{0,6}&?){0,5}") {
        let pq = if query.is_empty() { path } else { format!("{path}?{query}") };
        if let Ok(k) = SourceKey::new(&host, &pq) {
            let again = SourceKey::from_canonical(k.as_str()).unwrap();
            prop_assert_eq!(&again, &k);
        }
    }

    /// Dates come from the origin's `Date`, `Expires` and `Last-Modified`: any numbers in the
    /// date's shape (signs, huge years, out-of-range fields) give a date or `None`, never a
    /// panic, and a date that parses formats back to itself.
    #[test]
    fn http_dates_never_panic(day in "[+-]?[0-9]{1,4}", year in "[+-]?[0-9]{1,20}", h in "[+-]?[0-9]{1,3}", m in "[+-]?[0-9]{1,3}", sec in "[+-]?[0-9]{1,3}", noise in ".{0,40}") {
        for text in [
            format!("Sun, {day} Nov {year} {h}:{m}:{sec} GMT"),
            format!("Sunday, {day}-Nov-{year} {h}:{m}:{sec} GMT"),
            format!("Sun Nov {day} {h}:{m}:{sec} {year}"),
            noise.clone(),
        ] {
            if let Some(secs) = rendition_shared::http_cache::http_date(&text) {
                let again = rendition_shared::http_cache::format_http_date(secs);
                prop_assert_eq!(rendition_shared::http_cache::http_date(&again), Some(secs));
            }
        }
    }

    /// Every second from 1970 to the end of 9999 (the years `http_date` reads) formats as a
    /// date that parses back to it: the two halves of the date code are each other's inverse.
    #[test]
    fn http_dates_format_and_parse_back(secs in 0..=253_402_300_799u64) {
        let text = rendition_shared::http_cache::format_http_date(secs);
        prop_assert_eq!(rendition_shared::http_cache::http_date(&text), Some(secs), "{}", text);
    }
}
