//! Best-fit selection: the fallback chain, step by step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use rendition_shared::{
    select_for, wants_generation, AcceptedFormats, CapabilityMask, ClientProfile, FallbackStep,
    ImageFormat, Selection, SlotSet,
};

fn m(bits: u32) -> CapabilityMask {
    CapabilityMask::from_bits(bits).unwrap()
}

fn set(bits: &[u32]) -> SlotSet {
    bits.iter().map(|&b| m(b)).collect()
}

const ALL_RASTER: AcceptedFormats = AcceptedFormats::ORIGINAL_ONLY
    .with(ImageFormat::Webp)
    .with(ImageFormat::Avif);

fn pick(stored: &[u32], mask: u32, accepts: AcceptedFormats) -> Option<(u32, FallbackStep)> {
    match select_for(set(stored), m(mask), accepts) {
        Selection::Variant { slot, step } => Some((slot.bits(), step)),
        Selection::Origin => None,
    }
}

#[test]
fn chain_for_avif_mobile_2x() {
    use FallbackStep::*;
    // client: AVIF, mobile, 2x (0x12). Remove the winner each time and watch the chain.
    let mut stored = vec![0x12, 0x02, 0x11, 0x01, 0x10, 0x00, 0x08];
    let expected = [
        (0x12, Exact),
        (0x02, Density1x),
        (0x11, FormatDowngrade),
        (0x01, FormatDowngrade),
        (0x10, FormatDowngrade),
        (0x00, Baseline),
        (0x08, Default),
    ];
    for want in expected {
        assert_eq!(pick(&stored, 0x12, ALL_RASTER), Some(want));
        stored.retain(|&b| b != want.0);
    }
    assert_eq!(pick(&stored, 0x12, ALL_RASTER), None);
}

#[test]
fn save_data_and_viewport_are_preserved_until_default() {
    // client: WebP tablet 1x Save-Data (0x25); only other viewports / non-Save-Data stored
    let stored = [0x05, 0x21, 0x29];
    assert_eq!(pick(&stored, 0x25, ALL_RASTER), None);
    let stored = [0x05, 0x21, 0x29, 0x08];
    assert_eq!(
        pick(&stored, 0x25, ALL_RASTER),
        Some((0x08, FallbackStep::Default))
    );
}

#[test]
fn never_serves_an_unaccepted_format() {
    // Stored AVIF and WebP only; a client that accepts neither gets the origin.
    let stored = [0x0a, 0x09];
    assert_eq!(pick(&stored, 0x08, AcceptedFormats::ORIGINAL_ONLY), None);
    // A mask that claims AVIF without the client accepting it is not trusted.
    assert_eq!(pick(&stored, 0x0a, AcceptedFormats::ORIGINAL_ONLY), None);
    let webp_only = AcceptedFormats::ORIGINAL_ONLY.with(ImageFormat::Webp);
    assert_eq!(
        pick(&stored, 0x0a, webp_only),
        Some((0x09, FallbackStep::Exact))
    );
}

#[test]
fn svg_serves_every_viewport_when_accepted() {
    let stored = [0x0b, 0x01];
    let with_svg = ALL_RASTER.with(ImageFormat::Svg);
    for mask in [0x01, 0x12, 0x35, 0x0a] {
        assert_eq!(
            pick(&stored, mask, with_svg),
            Some((0x0b, FallbackStep::Svg))
        );
    }
    assert_eq!(
        pick(&stored, 0x01, ALL_RASTER),
        Some((0x01, FallbackStep::Exact))
    );
}

#[test]
fn transfer_encoding_bits_do_not_matter_for_images() {
    assert_eq!(
        pick(&[0x0a], 0x8a, ALL_RASTER),
        Some((0x0a, FallbackStep::Exact))
    );
}

#[test]
fn generation_wanted_only_for_missing_slots() {
    let p = ClientProfile::from_headers([(&b"Accept"[..], &b"image/webp"[..])]); // 0x09
    assert!(wants_generation(SlotSet::EMPTY, SlotSet::EMPTY, false, &p));
    assert!(!wants_generation(set(&[0x09]), SlotSet::EMPTY, false, &p));
    assert!(
        !wants_generation(SlotSet::EMPTY, set(&[0x09]), false, &p),
        "lost is remembered"
    );
    assert!(
        !wants_generation(SlotSet::EMPTY, SlotSet::EMPTY, true, &p),
        "refused source"
    );
    assert!(FallbackStep::Density1x.is_fallback());
    assert!(!FallbackStep::Exact.is_fallback());
}
