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

/// A PNG chunk (length, type, data, CRC).
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    c.extend_from_slice(&crc32fast::hash(&c[4..]).to_be_bytes());
    c
}

/// `png` with `extra` inserted right after IHDR.
fn after_ihdr(png: &[u8], extra: &[u8]) -> Vec<u8> {
    [&png[..33], extra, &png[33..]].concat()
}

#[test]
fn gif_frame_larger_than_its_screen_is_refused_before_decoding() {
    // 16x16 logical screen, one frame claiming 65535x65535: the decoder would allocate the
    // frame (17 GB of RGBA; it reached 4.2 GB RSS and 24 s before) before compositing it.
    let mut gif = b"GIF89a\x10\x00\x10\x00\x80\x00\x00\0\0\0\xff\xff\xff".to_vec();
    gif.extend_from_slice(b"\x2c\0\0\0\0\xff\xff\xff\xff\x00\x02\x02\x44\x01\x00\x3b");
    assert_eq!(
        refuse(&gif),
        Refusal::TooManyPixels {
            width: 65535,
            height: 65535,
            limit: 50_000_000
        }
    );
}

#[test]
fn gif_frame_count_is_exact() {
    // 3000 one-pixel frames: the reason says 3000 (it said 1001, where the walk stopped).
    let mut gif = b"GIF89a\x08\x00\x08\x00\x80\x00\x00\0\0\0\xff\xff\xff".to_vec();
    for _ in 0..3000 {
        gif.extend_from_slice(b"\x2c\0\0\0\0\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
    }
    gif.push(0x3b);
    assert_eq!(
        refuse(&gif),
        Refusal::TooManyFrames {
            frames: 3000,
            limit: 1000
        }
    );
}

#[test]
fn gif_frames_are_limited_by_their_sum_not_the_screen() {
    // A 1x1 logical screen and 100 frames of 3500x3500 (12 MP each, under the 50 MP frame
    // limit): the screen says 100 pixels in all, the frames 1.2 billion, which the decoder
    // decoded one by one (minutes of CPU) before compositing each onto the one pixel.
    let mut frame = gif::Frame::from_indexed_pixels(3500, 3500, vec![1u8; 3500 * 3500], None);
    frame.make_lzw_pre_encoded();
    let mut gif = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut gif, 1, 1, &[0, 0, 0, 255, 255, 255]).unwrap();
        for _ in 0..100 {
            enc.write_lzw_pre_encoded_frame(&frame).unwrap();
        }
    }
    assert!(gif.len() < 2 << 20, "{} bytes", gif.len());
    let r = refuse(&gif);
    assert_eq!(
        r,
        Refusal::TooManyAnimationPixels {
            frames: 100,
            pixels: 1_225_000_000,
            limit: 200_000_000
        }
    );
    assert_eq!(
        r.to_string(),
        "100 frames of 1225000000 pixels in all, over the 200000000-pixel limit for an animation"
    );
    // The same frames on a screen of their size: the screen check says the same.
    let screen = [&gif[..6], &[0xAC, 0x0D, 0xAC, 0x0D], &gif[10..]].concat();
    assert!(matches!(
        refuse(&screen),
        Refusal::TooManyAnimationPixels { frames: 100, .. }
    ));
}

#[test]
fn arithmetic_coded_jpeg_is_unsupported_not_malformed() {
    // SOF9 (sequential) and SOF10 (progressive) arithmetic coding: libjpeg as built here has
    // no arithmetic decoder, and said "Sorry, arithmetic code decoding not supported".
    // The frame header is all the refusal reads, so a relabelled baseline file stands in.
    let jpeg = common::demo("rocket.jpg");
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
        .unwrap();
    for marker in [0xC9, 0xCA] {
        let mut arithmetic = jpeg.clone();
        arithmetic[sof + 1] = marker;
        let r = refuse(&arithmetic);
        assert_eq!(r, Refusal::Unsupported("arithmetic coding"));
        assert_eq!(r.to_string(), "unsupported: arithmetic coding");
    }
}

#[test]
fn png_icc_profile_bomb_is_refused_and_a_normal_profile_is_not() {
    use image::ImageEncoder;
    let png_with_icc = |icc: Vec<u8>| {
        let mut out = Vec::new();
        let mut enc = image::codecs::png::PngEncoder::new(&mut out);
        enc.set_icc_profile(icc).unwrap();
        enc.write_image(&[90u8; 16 * 16 * 3], 16, 16, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    };
    // 9 MiB of zeros deflate to a few KB; the PNG decoder would inflate up to 512 MiB.
    let bomb = png_with_icc(vec![0; 9 << 20]);
    assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
    let r = refuse(&bomb);
    assert!(
        matches!(&r, Refusal::Malformed(m) if m.contains("iCCP") && m.contains("8388608")),
        "{r}"
    );
    // An unparseable but small profile is only ignored (noted), as browsers do.
    let p = pipeline::prepare(&png_with_icc(vec![0; 4096]), &Default::default()).unwrap();
    assert_eq!((p.image.width, p.image.height), (16, 16));
}

#[test]
fn animations_the_decoders_would_flatten_are_refused() {
    // APNG: an acTL chunk before IDAT. The PNG decoder returns the default image only.
    let apng = after_ihdr(
        &common::demo("coffee.png"),
        &chunk(b"acTL", &[0, 0, 0, 2, 0, 0, 0, 0]),
    );
    assert!(matches!(refuse(&apng), Refusal::Unsupported(m) if m.contains("APNG")));
    // Animated WebP: VP8X with the animation flag.
    let mut webp = b"RIFF\x1e\0\0\0WEBPVP8X\x0a\0\0\0\x02\0\0\0\x3f\0\0\x2f\0\0".to_vec();
    webp.extend_from_slice(b"ANIM\x06\0\0\0\0\0\0\0\0\0");
    assert!(matches!(refuse(&webp), Refusal::Unsupported(m) if m.contains("animated WebP")));
}

#[test]
fn webp_bomb_headers_report_their_real_size() {
    // Lossless header 16384x16384 (the widest VP8L): image-webp 0.2.4 wraps 16384 to 0, so the
    // reason was "zero width or height".
    let bits: u32 = 16383 | (16383 << 14);
    let mut vp8l = b"RIFF\x12\0\0\0WEBPVP8L\x06\0\0\0\x2f".to_vec();
    vp8l.extend_from_slice(&bits.to_le_bytes());
    vp8l.push(0);
    let expected = Refusal::TooManyPixels {
        width: 16384,
        height: 16384,
        limit: 50_000_000,
    };
    assert_eq!(refuse(&vp8l), expected);
    let mut vp8x = b"RIFF\x1e\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
    vp8x.extend_from_slice(&[0xFF, 0x3F, 0, 0xFF, 0x3F, 0]);
    vp8x.extend_from_slice(b"VP8L\0\0\0\0");
    assert_eq!(refuse(&vp8x), expected);
}

#[test]
fn webp_lossy_frame_larger_than_its_vp8x_canvas_is_refused_before_decoding() {
    // fuzz/sniff_decode crasher, minimized: a 32x32 VP8X canvas around a VP8 frame whose own
    // header says 10913x10935 (119 MP). image-webp decodes the frame at its header's size and
    // only then compares it with the canvas, so the probe's 32x32 let a 119 MP decode through.
    let crasher: &[u8] = b"RIFF\xa8\x01\0\0WEBPVP8X\x0a\0\0\0\x10\0\0\0\x1f\0\0\x1f\0\0\
        VP8 \x3a\xb7\xe7\x6a\xf0\x07\0\x9d\x01\x2a\xa1\x2a\xb7\x6a";
    assert_eq!(crasher.len(), 48);
    assert_eq!(
        refuse(crasher),
        Refusal::Malformed("webp: lossy frame size differs from the VP8X canvas".into())
    );
    // The same frame size in the canvas: the pixel limit says so.
    let mut same = crasher.to_vec();
    same[24..30].copy_from_slice(&[0xa0, 0x2a, 0, 0xb6, 0x2a, 0]);
    assert!(matches!(
        refuse(&same),
        Refusal::TooManyPixels {
            width: 10913,
            height: 10935,
            ..
        }
    ));
}

#[test]
fn png_palette_that_is_not_rgb_triples_is_refused_before_decoding() {
    // fuzz/sniff_decode crasher, minimized: a palette PNG whose PLTE chunk is 49 bytes. png
    // 0.18.1 panicked expanding it ("range end index 3 out of range for slice of length 1"),
    // outside the JPEG decoder's catch_unwind: the worker's task panicked before the source
    // was recorded as refused, so each later notify fetched it and panicked again.
    let crasher: &[u8] = b"\x89PNG\x0d\x0a\x1a\x0a\x00\x00\x00\x0dIHDR\
        \x00\x00\x00\x14\x00\x00\x00\x20\x08\x03\x00\x00\x00D\xa4\x8a\
        \xc6\x00\x00\x001PLTE\x00\xff\x80\x10\xef\x80\x20\
        \xdf\x800\xcf\xd9/\x80\xe0\x1f\x80\xf0\x0f$\x80\xc4\x8b\
        \x13\x0a\x00\x00\x15m\x9dw\xfb;\xce\xd3Z\x02\x09i\
        \xfbW[\x82\xf4\x17\xb0\xff\xff\xff\xff\xff\xffD\xaeB\
        `\x06IDATx\x9c\xcdR\xe1r\x860\x08k\
        \xa0\xdf\xef\xbd\xff\xb3\xce\x92\x01\x15m\x9dw\xfb;\xce\
        \xd3Z\x02\x09i\xfb\xb0\xff\xff`";
    assert_eq!(crasher.len(), 138);
    assert_eq!(
        refuse(crasher),
        Refusal::Malformed("png: PLTE chunk of 49 bytes is not RGB triples".into())
    );
}
