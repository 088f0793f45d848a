//! Hostile and broken input: each is refused with a clear reason, before any large allocation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use rendition_sidecar::pipeline::{self, Refusal};

fn refuse(bytes: &[u8]) -> Refusal {
    pipeline::prepare(bytes, &Default::default()).expect_err("must be refused")
}

#[test]
fn truncated_files_of_every_format() {
    for (name, bytes) in [
        ("jpeg", common::demo("rocket.jpg")),
        ("png", common::demo("coffee.png")),
        ("gif", common::animated_gif()),
    ] {
        // Cuts inside the pixel data. (A PNG missing only its IEND chunk still has every pixel
        // and is accepted, as browsers do.)
        for cut in [bytes.len() / 2, bytes.len() * 9 / 10] {
            let r = refuse(&bytes[..cut]);
            assert!(
                matches!(r, Refusal::Malformed(_)),
                "{name} cut at {cut}: {r}"
            );
        }
    }
}

#[test]
fn decompression_bomb_header() {
    // A real JPEG whose SOF claims 65535 x 65535 (4.3 GP): refused from the header.
    let mut jpeg = common::demo("rocket.jpg");
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
        .unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let r = refuse(&jpeg);
    assert_eq!(
        r,
        Refusal::TooManyPixels {
            width: 65535,
            height: 65535,
            limit: 50_000_000
        }
    );
    assert_eq!(
        r.to_string(),
        "65535x65535 is over the 50000000-pixel limit"
    );
}

#[test]
fn zero_size_and_not_an_image() {
    let mut jpeg = common::demo("rocket.jpg");
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
        .unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&[0, 0]);
    assert_eq!(refuse(&jpeg), Refusal::ZeroSize);
    assert_eq!(
        refuse(b"<!doctype html><title>404</title>"),
        Refusal::NotAnImage("text or markup")
    );
    assert_eq!(refuse(b""), Refusal::NotAnImage("empty body"));
}
