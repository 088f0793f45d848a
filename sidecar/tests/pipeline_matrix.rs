//! The full variant matrix through the real pipeline and real codecs, for every kind of
//! source the issue names; every stored variant is decoded back and checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use rendition_shared::{full_matrix_order, slot_size, ImageFormat, SlotSet, ViewportWidths};
use rendition_sidecar::encode::avif::Libaom;
use rendition_sidecar::encode::Codec;
use rendition_sidecar::image_types::{ContentClass, SourceFormat};
use rendition_sidecar::pipeline::{self, Encoders, Outcome, Prepared};
use rendition_sidecar::quality::CodecDials;

fn run(bytes: &[u8]) -> (Prepared, Vec<Outcome>) {
    let prepared = pipeline::prepare(bytes, &Default::default()).unwrap();
    let dials = CodecDials::default();
    let enc = Encoders {
        widths: ViewportWidths::default(),
        quality: &dials,
        avif: &Libaom::default(),
        verify: None,
    };
    let outcomes = pipeline::generate(&prepared, &full_matrix_order(), &enc);
    (prepared, outcomes)
}

/// Every slot is accounted for exactly once; stored variants decode at their slot's size.
fn check_matrix(prepared: &Prepared, outcomes: &[Outcome]) -> SlotSet {
    let mut seen = SlotSet::EMPTY;
    let mut stored = SlotSet::EMPTY;
    for o in outcomes {
        let slots = match o {
            Outcome::Stored(v) => {
                let (w, h, _) = common::decode_any(&v.encoded.bytes);
                assert_eq!(
                    (w, h),
                    (v.width, v.height),
                    "{:x} decodes at its size",
                    v.primary
                );
                for slot in v.slots.iter() {
                    let expected = if prepared.frames.is_some() {
                        (prepared.image.width, prepared.image.height)
                    } else {
                        slot_size(
                            slot,
                            prepared.image.width,
                            prepared.image.height,
                            ViewportWidths::default(),
                        )
                    };
                    assert_eq!(expected, (w, h), "slot {slot:x}");
                }
                assert!(
                    (v.encoded.bytes.len() as u64) < prepared.source_bytes,
                    "size gate"
                );
                stored = stored.union(v.slots);
                v.slots
            }
            Outcome::Lost { slots, .. } => *slots,
            Outcome::Failed { slots, error } => panic!("encode failed for {slots:?}: {error}"),
        };
        assert!(seen.bits() & slots.bits() == 0, "a slot appears twice");
        seen = seen.union(slots);
    }
    assert_eq!(seen, SlotSet::ALL_RASTER, "every raster slot is answered");
    stored
}

fn codecs(outcomes: &[Outcome]) -> Vec<Codec> {
    outcomes
        .iter()
        .filter_map(|o| {
            if let Outcome::Stored(v) = o {
                Some(v.encoded.codec)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn jpeg_photo_full_matrix() {
    let (p, out) = run(&common::demo("rocket.jpg"));
    assert_eq!(p.format, SourceFormat::Jpeg);
    assert_eq!(p.class, ContentClass::Photo);
    assert_eq!(
        p.jpeg_quality,
        Some(95),
        "estimated from the quantization table"
    );
    let stored = check_matrix(&p, &out);
    assert_eq!(
        stored,
        SlotSet::ALL_RASTER,
        "a q95 photo shrinks in every slot"
    );
    let c = codecs(&out);
    assert!(c.contains(&Codec::Webp) && c.contains(&Codec::Avif) && c.contains(&Codec::Jpeg));
    // 640 px source: mobile 1x (480) plus one full-size group -> 2 sizes x 3 formats x 2 SD
    assert_eq!(out.len(), 12);
}

#[test]
fn save_data_variants_are_smaller() {
    let (_, out) = run(&common::demo("rocket.jpg"));
    for o in &out {
        let Outcome::Stored(v) = o else { continue };
        if v.primary.save_data() {
            continue;
        }
        let sd = v.primary.slot();
        let sd = rendition_shared::CapabilityMask::from_bits(sd.bits() | 0x20).unwrap();
        let twin = out.iter().find_map(|o| match o {
            Outcome::Stored(t) if t.slots.contains(sd) => Some(t.encoded.bytes.len()),
            _ => None,
        });
        assert!(
            twin.unwrap() < v.encoded.bytes.len(),
            "{:x}: Save-Data twin is smaller",
            v.primary
        );
    }
}

#[test]
fn png_with_alpha_keeps_alpha_everywhere() {
    let (p, out) = run(&common::alpha_png());
    assert!(p.stats.has_alpha);
    check_matrix(&p, &out);
    for o in &out {
        let Outcome::Stored(v) = o else { continue };
        let (_, _, rgba) = common::decode_any(&v.encoded.bytes);
        let transparent = rgba.chunks(4).filter(|px| px[3] < 128).count();
        assert!(
            transparent > rgba.len() / 4 / 10,
            "{:x} {:?} kept transparency",
            v.primary,
            v.encoded.codec
        );
    }
    assert!(
        codecs(&out).contains(&Codec::Png),
        "original format stays PNG"
    );
}

#[test]
fn exif_rotated_jpeg_is_upright() {
    let (p, out) = run(&common::exif_jpeg(6));
    // 640x427 rotated 90 degrees: portrait
    assert_eq!((p.image.width, p.image.height), (427, 640));
    check_matrix(&p, &out);
}

#[test]
fn cmyk_jpeg_becomes_rgb() {
    let (p, out) = run(&common::cmyk_jpeg());
    let reference = common::rocket_rgba();
    // mean absolute error against the RGB original, per channel
    let err: u64 = p
        .image
        .data
        .chunks(4)
        .zip(reference.as_raw().chunks(4))
        .map(|(a, b)| (0..3).map(|i| u64::from(a[i].abs_diff(b[i]))).sum::<u64>())
        .sum();
    let mae = err as f64 / (reference.len() as f64 * 0.75);
    assert!(
        mae < 8.0,
        "CMYK decoded close to the RGB original (MAE {mae:.2})"
    );
    check_matrix(&p, &out);
}

#[test]
fn sixteen_bit_png_is_handled() {
    let (p, out) = run(&common::png16());
    assert_eq!((p.image.width, p.image.height), (640, 427));
    check_matrix(&p, &out);
}

#[test]
fn grayscale_png_stays_gray() {
    let (p, out) = run(&common::gray_png());
    assert!(p.stats.grayscale);
    check_matrix(&p, &out);
}

#[test]
fn animated_gif_becomes_animated_webp() {
    let (p, out) = run(&common::animated_gif());
    assert_eq!(p.frames.as_ref().map(Vec::len), Some(3));
    let stored = check_matrix(&p, &out);
    for slot in stored.iter() {
        assert_eq!(
            slot.format(),
            ImageFormat::Webp,
            "only WebP slots for an animation"
        );
    }
    let webp = out
        .iter()
        .find_map(|o| {
            if let Outcome::Stored(v) = o {
                Some(v.encoded.bytes.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert!(
        webp.windows(4).any(|w| w == b"ANIM"),
        "animated WebP (ANIM chunk)"
    );
    assert_eq!(
        webp.windows(4).filter(|w| *w == b"ANMF").count(),
        3,
        "every frame kept"
    );
}

#[test]
fn flat_logo_gets_a_faithful_svg() {
    let (p, out) = run(&common::flat_logo_png());
    assert_eq!(p.class, ContentClass::Illustration);
    let best = pipeline::smallest_full_size(&p, &out);
    let svg = match pipeline::generate_svg(&p, best) {
        Outcome::Stored(v) => v,
        other => panic!("a flat logo must vectorize: {other:?} (best raster {best:?})"),
    };
    assert_eq!(svg.primary, rendition_shared::SVG_SLOT);
    assert_eq!(svg.encoded.codec, Codec::Svg);
    assert!(
        svg.encoded.bytes.len() < best.unwrap(),
        "smaller than every full-size raster"
    );
    let text = String::from_utf8(svg.encoded.bytes.clone()).unwrap();
    let f = rendition_sidecar::pipeline::vectorize::fidelity(&text, &p.image).unwrap();
    assert!(f.passes(), "{f:?}");
}

#[test]
fn photos_get_no_svg() {
    let (p, out) = run(&common::demo("rocket.jpg"));
    let best = pipeline::smallest_full_size(&p, &out);
    assert!(matches!(
        pipeline::generate_svg(&p, best),
        Outcome::Lost { .. }
    ));
}

#[test]
fn classification_of_real_images() {
    let table = [
        (
            "rocket.jpg",
            common::demo("rocket.jpg"),
            ContentClass::Photo,
        ),
        (
            "coffee.png",
            common::demo("coffee.png"),
            ContentClass::Photo,
        ),
        (
            "logo.png",
            common::demo("logo.png"),
            ContentClass::Illustration,
        ),
        (
            "flat logo",
            common::flat_logo_png(),
            ContentClass::Illustration,
        ),
    ];
    for (name, bytes, class) in table {
        let p = pipeline::prepare(&bytes, &Default::default()).unwrap();
        assert_eq!(p.class, class, "{name}: {:?}", p.stats);
    }
}

#[test]
fn avif_speed_reaches_the_encoder() {
    use rendition_sidecar::encode::avif::AvifEncoder;
    let p = pipeline::prepare(&common::demo("rocket.jpg"), &Default::default()).unwrap();
    let hints = rendition_sidecar::encode::EncodeHints {
        class: p.class,
        grayscale: false,
        opaque: true,
    };
    let s6 = Libaom { speed: 6 }
        .encode(&p.image, 60, hints)
        .unwrap()
        .bytes;
    let s8 = Libaom { speed: 8 }
        .encode(&p.image, 60, hints)
        .unwrap()
        .bytes;
    assert_ne!(
        s6, s8,
        "libaom speed 6 and 8 must produce different streams"
    );
}

#[test]
fn outputs_beyond_a_formats_side_limit_are_not_attempted() {
    // 40x17000: narrower than every viewport width, so every slot is full size, and taller
    // than a WebP can be (16,383 px a side). libwebp would fail on each attempt.
    let img = image::RgbaImage::from_fn(40, 17_000, |x, y| {
        image::Rgba([(x * 6) as u8, (y % 251) as u8, ((x + y) % 200) as u8, 255])
    });
    let (_, outcomes) = run(&common::png(&img));
    let mut webp_lost = 0u32;
    for o in &outcomes {
        match o {
            Outcome::Lost { slots, reason } if reason.starts_with("webp") => {
                assert!(
                    reason.contains("16383") && reason.contains("40x17000"),
                    "{reason}"
                );
                webp_lost += slots.len();
            }
            Outcome::Failed { error, .. } => {
                assert!(
                    !error.to_string().starts_with("webp"),
                    "WebP was attempted: {error}"
                )
            }
            Outcome::Stored(v) => assert_ne!(v.encoded.codec, Codec::Webp),
            Outcome::Lost { .. } => {}
        }
    }
    // Every WebP slot (format bits 01) of the raster matrix.
    let webp_slots = SlotSet::ALL_RASTER
        .iter()
        .filter(|s| s.bits() & 0b11 == 0b01)
        .count();
    assert_eq!(webp_lost as usize, webp_slots);
}
