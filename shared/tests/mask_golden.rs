//! Golden table of the capability mask's bits (docs/architecture.md) and its worked examples.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use rendition_shared::{
    CapabilityMask, ClientProfile, Density, ImageFormat, MaskError, TransferEncoding, Viewport,
};

use Density::*;
use ImageFormat::*;
use TransferEncoding::*;
use Viewport::*;

/// Each row written out by hand, bit by bit:  TE(7-6) SD(5) D(4) VP(3-2) F(1-0).
#[rustfmt::skip]
const GOLDEN: &[(u32, ImageFormat, Viewport, Density, bool, TransferEncoding)] = &[
    // bits     76 5 4 32 10
    (0x00, /* 00 0 0 00 00 */ Original, Mobile,  X1, false, Identity), // Decode(0): most constrained
    (0x01, /* 00 0 0 00 01 */ Webp,     Mobile,  X1, false, Identity), // mobile Chrome
    (0x02, /* 00 0 0 00 10 */ Avif,     Mobile,  X1, false, Identity),
    (0x03, /* 00 0 0 00 11 */ Svg,      Mobile,  X1, false, Identity),
    (0x04, /* 00 0 0 01 00 */ Original, Tablet,  X1, false, Identity),
    (0x08, /* 00 0 0 10 00 */ Original, Desktop, X1, false, Identity), // DEFAULT
    (0x09, /* 00 0 0 10 01 */ Webp,     Desktop, X1, false, Identity), // decoded by hand
    (0x0a, /* 00 0 0 10 10 */ Avif,     Desktop, X1, false, Identity),
    (0x0b, /* 00 0 0 10 11 */ Svg,      Desktop, X1, false, Identity), // the SVG slot
    (0x10, /* 00 0 1 00 00 */ Original, Mobile,  X2, false, Identity),
    (0x1a, /* 00 0 1 10 10 */ Avif,     Desktop, X2, false, Identity),
    (0x20, /* 00 1 0 00 00 */ Original, Mobile,  X1, true,  Identity),
    (0x35, /* 00 1 1 01 01 */ Webp,     Tablet,  X2, true,  Identity),
    (0x3a, /* 00 1 1 10 10 */ Avif,     Desktop, X2, true,  Identity), // last raster slot bit
    (0x48, /* 01 0 0 10 00 */ Original, Desktop, X1, false, Gzip),
    (0x8a, /* 10 0 0 10 10 */ Avif,     Desktop, X1, false, Brotli),   // desktop Chrome, br
    (0xb6, /* 10 1 1 01 10 */ Avif,     Tablet,  X2, true,  Brotli),
];

#[test]
fn golden_bits_encode_and_decode() {
    for &(bits, f, v, d, sd, te) in GOLDEN {
        let built = CapabilityMask::new(f, v, d, sd, te);
        assert_eq!(built.bits(), bits, "encode {f:?} {v:?} {d:?} {sd} {te:?}");
        let decoded = CapabilityMask::from_bits(bits).unwrap();
        assert_eq!(
            (
                decoded.format(),
                decoded.viewport(),
                decoded.density(),
                decoded.save_data(),
                decoded.transfer()
            ),
            (f, v, d, sd, te),
            "decode {bits:#04x}"
        );
    }
}

#[test]
fn default_is_0x08_and_differs_from_decode_zero() {
    // Decoding 0 is not the default mask: 0 is mobile, the default is desktop.
    assert_eq!(CapabilityMask::default().bits(), 0x08);
    assert_eq!(CapabilityMask::DEFAULT.viewport(), Desktop);
    let zero = CapabilityMask::from_bits(0).unwrap();
    assert_eq!(zero.viewport(), Mobile);
    assert_ne!(zero, CapabilityMask::default());
}

#[test]
fn mask_0x09_decoded_by_hand() {
    // "bits 0-1 = 01 (WebP), bits 2-3 = 10 (Desktop), bit 4 = 0 (1x), bit 5 = 0 (no
    // Save-Data), bits 6-7 = 00 (Identity)"
    let m = CapabilityMask::from_bits(0x09).unwrap();
    assert_eq!(
        m.to_string(),
        "0x09 (webp, desktop, 1x, save-data off, identity)"
    );
}

#[test]
fn mobile_chrome_webp_is_0x01() {
    // /images/hero.jpg from mobile Chrome (WebP, no AVIF, 1x without a DPR hint) is 0x01.
    let p = ClientProfile::from_headers([
        (&b"User-Agent"[..], &b"Mozilla/5.0 (Linux; Android 10; SM-G973F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.99 Mobile Safari/537.36"[..]),
        (b"Accept", b"image/webp,image/apng,image/*,*/*;q=0.8"),
    ]);
    assert_eq!(p.mask.bits(), 0x01);
}

#[test]
fn empty_request_is_default_mask() {
    let p = ClientProfile::from_headers(std::iter::empty());
    assert_eq!(p.mask, CapabilityMask::DEFAULT);
}

#[test]
fn invalid_bits_are_refused() {
    assert_eq!(
        CapabilityMask::from_bits(0x0c),
        Err(MaskError::InvalidViewport)
    );
    assert_eq!(
        CapabilityMask::from_bits(0xc8),
        Err(MaskError::InvalidTransferEncoding)
    );
    assert_eq!(
        CapabilityMask::from_bits(0x108),
        Err(MaskError::ReservedBitsSet)
    );
    assert!(CapabilityMask::from_bits(CapabilityMask::WARMUP_SENTINEL).is_err());
}

#[test]
fn every_valid_byte_round_trips() {
    let valid = (0u32..256)
        .filter(|b| CapabilityMask::from_bits(*b).is_ok())
        .count();
    // 4 formats x 3 viewports x 2 x 2 x 3 transfer encodings
    assert_eq!(valid, 4 * 3 * 2 * 2 * 3);
    for b in 0u32..256 {
        if let Ok(m) = CapabilityMask::from_bits(b) {
            let again = CapabilityMask::new(
                m.format(),
                m.viewport(),
                m.density(),
                m.save_data(),
                m.transfer(),
            );
            assert_eq!(again.bits(), b);
            assert_eq!(format!("{m:x}"), format!("0x{b:02x}"));
        }
    }
}

#[test]
fn slot_clears_transfer_encoding_only() {
    let m = CapabilityMask::from_bits(0xb6).unwrap();
    assert_eq!(m.slot().bits(), 0x36);
    assert_eq!(m.with_format(Webp).bits(), 0xb5);
    assert_eq!(m.with_density(X1).bits(), 0xa6);
}
