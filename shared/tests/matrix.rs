//! The variant matrix: 36 + 1 slots, pixel sizes, shared encodes, generation order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use rendition_shared::{
    full_matrix_order, generation_order, plan_encodes, slot_size, CapabilityMask, Density,
    ImageFormat, ProactiveFlags, SlotSet, Viewport, ViewportWidths, MIN_SIDE, SVG_SLOT,
};

fn m(bits: u32) -> CapabilityMask {
    CapabilityMask::from_bits(bits).unwrap()
}

#[test]
fn thirty_six_raster_slots_plus_svg() {
    assert_eq!(SlotSet::ALL_RASTER.len(), 36);
    assert_eq!(SlotSet::ALL.len(), 37);
    assert!(SlotSet::ALL.contains(SVG_SLOT));
    assert!(!SlotSet::ALL_RASTER.contains(SVG_SLOT));
    assert_eq!(SVG_SLOT.bits(), 0x0b);
    for slot in SlotSet::ALL_RASTER.iter() {
        assert_ne!(slot.format(), ImageFormat::Svg);
        assert_eq!(slot.bits() & 0xC0, 0, "slots carry no transfer encoding");
    }
    assert_eq!(full_matrix_order().len(), 36);
    let set: SlotSet = full_matrix_order().into_iter().collect();
    assert_eq!(set, SlotSet::ALL_RASTER);
}

/// Golden table: a 4000x3000 source at default widths (480 / 768 / original).
#[test]
fn slot_sizes_for_a_12mp_source() {
    let w = ViewportWidths::default();
    #[rustfmt::skip]
    let table = [
        (0x01, (480, 360)),   // webp mobile 1x
        (0x11, (960, 720)),   // webp mobile 2x
        (0x05, (768, 576)),   // webp tablet 1x
        (0x15, (1536, 1152)), // webp tablet 2x
        (0x09, (4000, 3000)), // webp desktop 1x: original width
        (0x19, (4000, 3000)), // webp desktop 2x: never upscale
        (0x29, (4000, 3000)), // save-data changes quality, not size
        (0x0b, (4000, 3000)), // svg keeps the source size
    ];
    for (bits, size) in table {
        assert_eq!(slot_size(m(bits), 4000, 3000, w), size, "slot {bits:#04x}");
    }
}

#[test]
fn never_upscale_and_round_heights() {
    let w = ViewportWidths::default();
    assert_eq!(slot_size(m(0x01), 300, 200, w), (300, 200));
    assert_eq!(slot_size(m(0x11), 600, 401, w), (600, 401));
    // 0 means "do not resize"
    let no_mobile = ViewportWidths { mobile: 0, ..w };
    assert_eq!(slot_size(m(0x01), 4000, 3000, no_mobile), (4000, 3000));
    // a desktop width resizes desktop too
    let desktop = ViewportWidths { desktop: 1920, ..w };
    assert_eq!(slot_size(m(0x08), 4000, 3000, desktop), (1920, 1440));
    assert_eq!(slot_size(m(0x18), 4000, 3000, desktop), (3840, 2880));
}

#[test]
fn extreme_aspect_ratios_are_never_distorted() {
    let w = ViewportWidths::default();
    // Shorter than MIN_SIDE already: not resized at any width (it was 480x1 at mobile 1x,
    // 60x squashed).
    for slot in [0x01, 0x11, 0x05, 0x15, 0x09] {
        assert_eq!(slot_size(m(slot), 65_000, 8, w), (65_000, 8), "{slot:#x}");
        assert_eq!(slot_size(m(slot), 1001, 3, w), (1001, 3), "{slot:#x}");
        assert_eq!(slot_size(m(slot), 10_000, 1, w), (10_000, 1), "{slot:#x}");
    }
    // 4000x40: 480 wide would be 4.8 px high; the narrowest width keeping 16 px is 1600,
    // which the mobile and tablet slots (1x and 2x) share, one encode.
    for slot in [0x01, 0x11, 0x05, 0x15] {
        assert_eq!(slot_size(m(slot), 4000, 40, w), (1600, 16), "{slot:#x}");
    }
    assert_eq!(slot_size(m(0x09), 4000, 40, w), (4000, 40));
    let jobs = plan_encodes(&full_matrix_order(), 4000, 40, w);
    assert_eq!(
        jobs.len(),
        3 * 2 * 2,
        "two sizes per format and Save-Data setting"
    );
    // Tall images: the width is the short side; a target width under MIN_SIDE is raised.
    assert_eq!(slot_size(m(0x01), 500, 65_000, w), (480, 62_400));
    let tiny = ViewportWidths { mobile: 4, ..w };
    assert_eq!(slot_size(m(0x01), 400, 400, tiny), (MIN_SIDE, MIN_SIDE));
}

#[test]
fn every_resize_keeps_the_aspect_ratio_within_half_a_pixel() {
    let w = ViewportWidths::default();
    let sides = [
        1, 2, 7, 15, 16, 17, 40, 100, 333, 479, 480, 481, 767, 1000, 4000, 65_535,
    ];
    for &width in &sides {
        for &height in &sides {
            for slot in full_matrix_order() {
                let (sw, sh) = slot_size(slot, width, height, w);
                assert!(
                    sw <= width && sh <= height,
                    "{width}x{height} -> {sw}x{sh}: upscaled"
                );
                if (sw, sh) == (width, height) {
                    continue;
                }
                assert!(
                    sw.min(sh) >= MIN_SIDE,
                    "{width}x{height} -> {sw}x{sh}: too thin"
                );
                // |sh / sw - height / width| within half a pixel of height
                let err =
                    (u64::from(sh) * u64::from(width)).abs_diff(u64::from(height) * u64::from(sw));
                assert!(
                    2 * err <= u64::from(width),
                    "{width}x{height} -> {sw}x{sh}: distorted"
                );
            }
        }
    }
}

#[test]
fn same_size_slots_are_one_encode() {
    // 600 px wide: mobile 2x (960 -> 600), tablet 1x/2x and desktop 1x/2x are all 600 wide.
    let order = full_matrix_order();
    let jobs = plan_encodes(&order, 600, 400, ViewportWidths::default());
    // per (format, save-data): one 480 encode and one 600 encode -> 3 formats x 2 x 2 = 12
    assert_eq!(jobs.len(), 12);
    let covered: SlotSet = jobs
        .iter()
        .fold(SlotSet::EMPTY, |acc, j| acc.union(j.slots));
    assert_eq!(covered, SlotSet::ALL_RASTER);
    let webp_600 = jobs
        .iter()
        .find(|j| j.format == ImageFormat::Webp && !j.save_data && j.width == 600)
        .unwrap();
    assert_eq!(webp_600.slots.len(), 5);
    // a big source has 5 distinct sizes per (format, save-data): 480, 960, 768, 1536, full
    let jobs = plan_encodes(&order, 4000, 3000, ViewportWidths::default());
    assert_eq!(jobs.len(), 3 * 2 * 5);
}

#[test]
fn requested_slot_is_generated_first() {
    let requested = m(0x95); // webp tablet 2x, brotli -> slot 0x15
    let order = generation_order(requested, ProactiveFlags::FULL);
    assert_eq!(order[0].bits(), 0x15);
    assert_eq!(order.len(), 36);
    let jobs = plan_encodes(&order, 4000, 3000, ViewportWidths::default());
    assert_eq!(jobs[0].primary.bits(), 0x15);
}

#[test]
fn default_flags_limit_siblings() {
    let requested = m(0x01);
    assert_eq!(
        generation_order(requested, ProactiveFlags::DEFAULT),
        vec![requested]
    );
    let only_formats = ProactiveFlags {
        enabled: true,
        viewport: false,
        save_data: false,
        density: false,
    };
    let order = generation_order(requested, only_formats);
    assert_eq!(
        order.iter().map(|m| m.bits()).collect::<Vec<_>>(),
        vec![0x01, 0x02, 0x00]
    );
    let no_viewport = ProactiveFlags {
        viewport: false,
        ..ProactiveFlags::FULL
    };
    let order = generation_order(requested, no_viewport);
    assert_eq!(order.len(), 12, "2 save-data x 2 density x 3 formats");
    assert!(order.iter().all(|s| s.viewport() == Viewport::Mobile));
    let no_density = ProactiveFlags {
        density: false,
        ..ProactiveFlags::FULL
    };
    assert!(generation_order(requested, no_density)
        .iter()
        .all(|s| s.density() == Density::X1));
    let no_sd = ProactiveFlags {
        save_data: false,
        ..ProactiveFlags::FULL
    };
    assert!(generation_order(requested, no_sd)
        .iter()
        .all(|s| !s.save_data()));
}
