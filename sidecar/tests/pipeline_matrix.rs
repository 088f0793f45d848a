//! The full variant matrix through the real pipeline and real codecs, for every kind of
//! source the issue names; every stored variant is decoded back and checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use image::RgbaImage;
use rendition_shared::{
    full_matrix_order, slot_size, ImageFormat, SlotSet, ViewportWidths, MIN_SIDE,
};
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
    assert_eq!(p.frames.as_ref().map(|a| a.frames.len()), Some(3));
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
fn animated_gif_keeps_its_loop_count_and_every_frame_time() {
    // 0 and 1 cs play as 100 ms in browsers; 2 cs (20 ms) is the shortest kept as is; the
    // last frame's time too (it was the average of the others, and 0-1 cs became 20 ms).
    let delays_cs = [0, 1, 2, 7, 13];
    let want_ms = vec![100, 100, 20, 70, 130];
    for (repeat, plays) in [
        (None, 1), // no NETSCAPE extension: played once (it looped forever)
        (Some(gif::Repeat::Infinite), 0),
        (Some(gif::Repeat::Finite(3)), 4), // 3 repeats after the first play
    ] {
        let (p, out) = run(&common::gif_with_delays(&delays_cs, repeat));
        let animation = p.frames.as_ref().unwrap();
        assert_eq!(animation.loop_count, plays, "{repeat:?}");
        let decoded: Vec<i32> = animation.frames.iter().map(|f| f.delay_ms as i32).collect();
        assert_eq!(decoded, want_ms, "{repeat:?}: decoded delays");
        let mut webps = 0;
        for o in &out {
            let Outcome::Stored(v) = o else { continue };
            assert_eq!(
                common::webp_timing(&v.encoded.bytes),
                (u32::from(plays), want_ms.clone()),
                "{repeat:?}: loop count and frame times read back from the WebP"
            );
            webps += 1;
        }
        assert_eq!(webps, 2, "Save-Data off and on");
    }
}

#[test]
fn gray_images_with_a_gray_profile_are_colour_managed() {
    let (w, h) = (64u32, 48u32);
    let gray: Vec<u8> = (0..w * h)
        .map(|i| (20 + (i % w) * 2 + i / w) as u8)
        .collect();
    let mean = |v: &mut dyn Iterator<Item = f64>| {
        let (sum, n) = v.fold((0.0, 0.0), |(s, n), x| (s + x, n + 1.0));
        sum / n
    };
    let srgb = |v: u8| {
        let l = f64::from(v) / 255.0;
        255.0
            * if l <= 0.003_130_8 {
                12.92 * l
            } else {
                1.055 * l.powf(1.0 / 2.4) - 0.055
            }
    };
    let want = mean(&mut gray.iter().map(|&v| srgb(v)));
    let untagged = mean(&mut gray.iter().map(|&v| f64::from(v)));
    assert!(
        want - untagged > 40.0,
        "the profile must move the mean: {untagged} -> {want}"
    );
    let icc = common::linear_gray_profile();
    for (name, bytes, tolerance) in [
        ("png", common::gray_png_with_icc(&gray, w, h, &icc), 1.0),
        ("jpeg", common::gray_jpeg_with_icc(&gray, w, h, &icc), 2.0),
    ] {
        let p = pipeline::prepare(&bytes, &Default::default()).unwrap();
        assert!(p.notes.is_empty(), "{name}: {:?}", p.notes);
        let px = p.image.data.chunks_exact(4);
        assert!(
            px.clone().all(|c| c[0] == c[1] && c[1] == c[2]),
            "{name}: still grey"
        );
        let got = mean(&mut px.map(|c| f64::from(c[0])));
        assert!(
            (got - want).abs() <= tolerance,
            "{name}: mean {got:.1}, colour-managed {want:.1}, untagged {untagged:.1}"
        );
    }
}

#[test]
fn thin_strips_keep_their_shape() {
    // 4000x40: mobile and tablet share 1600x16 (480 wide would be 480x5, 4.8 px rounded up);
    // 2000x8 is never resized (it was 480x2). Every variant decodes at its slot's size
    // (check_matrix), and no resize leaves a side under MIN_SIDE px.
    for (w, h) in [(4000u32, 40u32), (2000, 8)] {
        let img = RgbaImage::from_fn(w, h, |x, y| {
            image::Rgba([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x + y) % 256) as u8,
                255,
            ])
        });
        let (p, out) = run(&common::png(&img));
        check_matrix(&p, &out);
        let mut sizes = Vec::new();
        for o in &out {
            if let Outcome::Stored(v) = o {
                if !sizes.contains(&(v.width, v.height)) {
                    sizes.push((v.width, v.height));
                }
            }
        }
        sizes.sort_unstable();
        let want = if h == 40 {
            vec![(1600, 16), (4000, 40)]
        } else {
            vec![(2000, 8)]
        };
        assert_eq!(sizes, want, "{w}x{h}");
        for (vw, vh) in sizes {
            assert!(
                (vw, vh) == (w, h) || vw.min(vh) >= MIN_SIDE,
                "{w}x{h} -> {vw}x{vh}"
            );
        }
    }
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
    let s6 = Libaom::fixed(6).encode(&p.image, 60, hints).unwrap().bytes;
    let s8 = Libaom::fixed(8).encode(&p.image, 60, hints).unwrap().bytes;
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
