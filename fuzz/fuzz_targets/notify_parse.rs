//! `POST /notify`'s body (`rendition_shared::wire::Notify`: the JSON, then the source key and
//! the mask), on arbitrary bytes.
//! Seeds: the bodies the filter and the service tests send (fuzz/seeds/notify_parse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rendition_shared::key::MAX_KEY_LEN;
use rendition_shared::wire::{Notify, Requested};
use rendition_shared::{CapabilityMask, SourceKey};

fuzz_target!(|data: &[u8]| {
    let Ok(notify) = Notify::parse(data) else {
        return;
    };
    let Ok(key) = notify.key() else {
        return;
    };
    assert!(key.as_str().len() <= MAX_KEY_LEN);
    assert!(key.path_and_query().starts_with('/'));
    assert!(!key.host().is_empty());
    // The store keeps the canonical text; a key rebuilt from it is the same source.
    assert_eq!(
        SourceKey::from_canonical(key.as_str()).as_ref(),
        Ok(&key),
        "canonical text {:?}",
        key.as_str()
    );
    // What the filter would send for it parses back to the same notify.
    assert_eq!(Notify::parse(&notify.to_json()).as_ref(), Ok(&notify));
    match notify.requested() {
        Ok(Requested::Warmup) => assert_eq!(notify.mask, CapabilityMask::WARMUP_SENTINEL),
        Ok(Requested::Slot(m)) => {
            assert_eq!(m, m.slot());
            assert_eq!(m.bits(), notify.mask & CapabilityMask::SLOT_BITS);
        }
        Err(_) => assert!(CapabilityMask::from_bits(notify.mask).is_err()),
    }
});
