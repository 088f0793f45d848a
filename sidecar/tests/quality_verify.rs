//! Step 10b: SSIMULACRA2 verification through the real codecs on real images.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use rendition_shared::{full_matrix_order, CapabilityMask, ViewportWidths};
use rendition_sidecar::encode::avif::{AvifEncoder, Libaom};
use rendition_sidecar::encode::{jpeg, webp, Codec, EncodeHints, Encoded};
use rendition_sidecar::image_types::{ContentClass, Rgba};
use rendition_sidecar::pipeline::{self, Encoders, Outcome, Targets};
use rendition_sidecar::quality::verify::{self, Band, Reference};
use rendition_sidecar::quality::CodecDials;

fn photo() -> Rgba {
    pipeline::prepare(&common::demo("rocket.jpg"), &Default::default())
        .unwrap()
        .image
}

const PHOTO: EncodeHints = EncodeHints {
    class: ContentClass::Photo,
    grayscale: false,
    opaque: true,
};

#[test]
fn the_band_is_lopsided_around_the_target() {
    let b = Band::around(70.0);
    assert_eq!((b.lo, b.hi), (67.0, 78.0));
    assert!(b.contains(67.0) && b.contains(78.0) && !b.contains(66.9) && !b.contains(78.1));
    let t = Targets {
        score: 70.0,
        save_data_reduction: 15.0,
    };
    assert_eq!(t.for_slot(true), 55.0);
    assert_eq!(t.for_slot(false), 70.0);
    let low = Targets {
        score: 10.0,
        save_data_reduction: 15.0,
    };
    assert_eq!(low.for_slot(true), 0.0, "floored at 0");
}

#[test]
fn fast_ssim2_agrees_with_the_ssimulacra2_crate() {
    let img = photo();
    let reference = Reference::new(&img).unwrap();
    for q in [30u8, 60, 90] {
        let enc = jpeg::encode(&img, q, PHOTO).unwrap();
        let fast = verify::score_encoded(&reference, &enc).unwrap();
        let decoded = verify::decode_as_browser(Codec::Jpeg, &enc.bytes).unwrap();
        let to_rgb = |d: &[u8]| -> Vec<[f32; 3]> {
            d.chunks_exact(4)
                .map(|p| {
                    [
                        p[0] as f32 / 255.0,
                        p[1] as f32 / 255.0,
                        p[2] as f32 / 255.0,
                    ]
                })
                .collect()
        };
        let frame = |d: &[u8]| {
            ssimulacra2::Rgb::new(
                to_rgb(d),
                img.width as usize,
                img.height as usize,
                ssimulacra2::TransferCharacteristic::SRGB,
                ssimulacra2::ColorPrimaries::BT709,
            )
            .unwrap()
        };
        let slow =
            ssimulacra2::compute_frame_ssimulacra2(frame(&img.data), frame(&decoded.data)).unwrap();
        assert!(
            (fast - slow).abs() < 0.5,
            "q{q}: fast-ssim2 {fast:.3} vs ssimulacra2 {slow:.3}"
        );
    }
    // Identical pixels score 100.
    assert!(reference.score(&img.data, img.width, img.height).unwrap() > 99.9);
}

#[test]
fn candidates_decode_like_a_browser_for_every_lossy_codec() {
    let img = photo();
    let encoded = [
        jpeg::encode(&img, 70, PHOTO).unwrap(),
        webp::encode(&img, 70, PHOTO).unwrap(),
        Libaom::default().encode(&img, 60, PHOTO).unwrap(),
    ];
    for e in &encoded {
        let d = verify::decode_as_browser(e.codec, &e.bytes).unwrap();
        assert_eq!(
            (d.width, d.height),
            (img.width, img.height),
            "{}",
            e.codec.name()
        );
    }
}

/// `img` repeated to fill `width` x `height`: real photographic detail at any size.
fn tiled(img: &Rgba, width: u32, height: u32) -> Rgba {
    let mut data = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let at = (((y % img.height) * img.width + x % img.width) * 4) as usize;
            data.extend_from_slice(&img.data[at..at + 4]);
        }
    }
    Rgba {
        width,
        height,
        data,
    }
}

#[test]
fn a_scoring_budget_lends_what_fits_and_makes_the_rest_wait() {
    let budget = verify::Budget::new(100);
    let a = budget.try_reserve(60).expect("fits");
    assert!(budget.try_reserve(60).is_none(), "60 + 60 > 100");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let b = budget.reserve(60);
            tx.send(budget.held()).unwrap();
            drop(b);
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            rx.try_recv().is_err(),
            "reserve waits while it does not fit"
        );
        drop(a);
        assert_eq!(
            rx.recv().unwrap(),
            60,
            "and gets its bytes once they are freed"
        );
    });
    assert_eq!(
        budget.held(),
        0,
        "every reservation is returned when dropped"
    );
    let whole = budget.reserve(1_000);
    assert_eq!(
        budget.held(),
        100,
        "more than the budget waits for all of it, not forever"
    );
    drop(whole);
}

#[test]
fn a_reference_the_budget_cannot_hold_is_compared_in_strips_to_the_same_score() {
    // 3.1 MP: a precomputed reference is about 324 MB, and two do not fit in the budget.
    let img = tiled(&photo(), 2400, 1300);
    let first = Reference::new(&img).unwrap();
    let second = Reference::new(&img).unwrap();
    assert!(first.is_precomputed(), "the budget had room for one");
    assert!(
        !second.is_precomputed(),
        "not for two: the second runs in strips"
    );
    let candidate = jpeg::encode(&img, 60, PHOTO).unwrap();
    let (whole, strips) = (
        verify::score_encoded(&first, &candidate).unwrap(),
        verify::score_encoded(&second, &candidate).unwrap(),
    );
    assert!(
        (whole - strips).abs() < 0.5,
        "precomputed {whole:.3}, strips {strips:.3}"
    );
    drop(first);
    let third = Reference::new(&img).unwrap();
    assert!(
        third.is_precomputed(),
        "a dropped reference returns its bytes"
    );
}

#[test]
fn search_lands_in_the_band_from_a_poor_first_guess() {
    let img = photo();
    let reference = Reference::new(&img).unwrap();
    let band = Band::around(70.0);
    for first in [20u8, 95] {
        let v = verify::search(band, Codec::Webp, first, &reference, |q| {
            webp::encode(&img, q, PHOTO)
        })
        .unwrap();
        assert!(v.attempts as usize <= verify::MAX_ATTEMPTS);
        assert!(
            v.in_band || v.score >= band.lo,
            "from q{first}: score {:.1} after {} attempts",
            v.score,
            v.attempts
        );
        assert_eq!(v.first_quality, first);
    }
}

#[test]
fn a_non_monotone_curve_cannot_make_the_search_oscillate() {
    let img = photo();
    let reference = Reference::new(&img).unwrap();
    // Quality q is encoded as 100 - q above 50: scores fall as q rises there.
    let mut calls = Vec::new();
    let v = verify::search(Band::around(70.0), Codec::Jpeg, 60, &reference, |q| {
        calls.push(q);
        let real = if q > 50 { 100 - q } else { q };
        jpeg::encode(&img, real, PHOTO).map(|e| Encoded { quality: q, ..e })
    })
    .unwrap();
    assert!(calls.len() <= verify::MAX_ATTEMPTS, "{calls:?}");
    let mut unique = calls.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        calls.len(),
        "no quality tried twice: {calls:?}"
    );
    assert!(v.score > 0.0);
}

#[test]
fn the_verified_matrix_scores_every_lossy_variant() {
    let prepared = pipeline::prepare(&common::demo("rocket.jpg"), &Default::default()).unwrap();
    let dials = CodecDials::default();
    let enc = Encoders {
        widths: ViewportWidths::default(),
        quality: &dials,
        avif: &Libaom::default(),
        verify: Some(Targets {
            score: 70.0,
            save_data_reduction: 15.0,
        }),
    };
    let wanted: Vec<CapabilityMask> = full_matrix_order()
        .into_iter()
        .filter(|m| m.bits() & 0x10 == 0) // 1x only: 2x of a 640 px source repeats the sizes
        .collect();
    let outcomes = pipeline::generate(&prepared, &wanted, &enc);
    let (mut scored, mut in_band, mut attempts) = (0, 0, 0u32);
    for o in &outcomes {
        let Outcome::Stored(v) = o else { continue };
        if v.encoded.codec == Codec::Png || v.encoded.lossless {
            continue;
        }
        let score = v.score.expect("every lossy variant is scored");
        let target = v.target.unwrap();
        assert!(target == 70.0 || target == 55.0);
        scored += 1;
        attempts += u32::from(v.attempts);
        if Band::around(target).contains(score) {
            in_band += 1;
        } else {
            println!(
                "{:x}: {score:.1} for {target} after {}",
                v.primary, v.attempts
            );
        }
    }
    assert!(scored >= 12, "{scored}");
    println!("{in_band}/{scored} in band, {attempts} encodes");
    assert!(in_band * 10 >= scored * 8, "{in_band}/{scored} in band");
}
