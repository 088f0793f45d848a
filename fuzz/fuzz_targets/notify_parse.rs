//! `POST /notify`'s body parser (`rendition_sidecar::notify_req::parse`: the handler's JSON
//! extractor, then the source key and the mask), on arbitrary bytes.
//! Seeds: the bodies the filter and the service tests send (fuzz/seeds/notify_parse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rendition_shared::key::MAX_KEY_LEN;
use rendition_shared::{CapabilityMask, SourceKey};
use rendition_sidecar::notify_req::parse;
use rendition_sidecar::worker::Requested;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = parse(data) else {
        return;
    };
    let key = &p.key;
    assert!(key.as_str().len() <= MAX_KEY_LEN);
    assert!(key.path_and_query().starts_with('/'));
    assert!(!key.host().is_empty());
    // The store keeps the canonical text; a key rebuilt from it is the same source.
    assert_eq!(
        SourceKey::from_canonical(key.as_str()).as_ref(),
        Ok(key),
        "canonical text {:?}",
        key.as_str()
    );
    match p.requested {
        Ok(Requested::Warmup) => assert_eq!(p.notify.mask, CapabilityMask::WARMUP_SENTINEL),
        Ok(Requested::Slot(m)) => {
            assert_eq!(m, m.slot());
            assert_eq!(m.bits(), p.notify.mask & CapabilityMask::SLOT_BITS);
        }
        Err(_) => assert!(CapabilityMask::from_bits(p.notify.mask).is_err()),
    }
});
