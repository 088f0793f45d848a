//! Test fixtures: real demo photos, and images generated from them for the cases the pipeline
//! must handle (EXIF rotation, CMYK, 16-bit, grayscale, real alpha, animation).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use image::{ImageEncoder, RgbaImage};
use std::path::PathBuf;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn demo(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("examples/site/img").join(name)).unwrap()
}

/// The demo JPEG photo decoded, as RGBA.
pub fn rocket_rgba() -> RgbaImage {
    let p = rendition_sidecar::pipeline::prepare(&demo("rocket.jpg"), &Default::default()).unwrap();
    RgbaImage::from_raw(p.image.width, p.image.height, p.image.data).unwrap()
}

pub fn png(img: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgba8,
        )
        .unwrap();
    out
}

/// The logo with its white background made transparent: a PNG with real alpha.
pub fn alpha_png() -> Vec<u8> {
    let logo = image::load_from_memory(&demo("logo.png"))
        .unwrap()
        .into_rgba8();
    let mut img = logo;
    for p in img.pixels_mut() {
        if p[0] > 240 && p[1] > 240 && p[2] > 240 {
            p[3] = 0;
        }
    }
    png(&img)
}

/// A 16-bit RGB PNG of the rocket photo.
pub fn png16() -> Vec<u8> {
    let rgba = rocket_rgba();
    let data: Vec<u16> = rgba
        .pixels()
        .flat_map(|p| [p[0], p[1], p[2]])
        .map(|v| u16::from(v) * 257)
        .collect();
    let mut out = Vec::new();
    // PngEncoder takes native-endian u16 samples as bytes
    let native: Vec<u8> = data.iter().flat_map(|v| v.to_ne_bytes()).collect();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &native,
            rgba.width(),
            rgba.height(),
            image::ExtendedColorType::Rgb16,
        )
        .unwrap();
    out
}

/// An 8-bit grayscale PNG.
pub fn gray_png() -> Vec<u8> {
    let rgba = rocket_rgba();
    let gray: Vec<u8> = rgba
        .pixels()
        .map(|p| ((u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10) as u8)
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &gray,
            rgba.width(),
            rgba.height(),
            image::ExtendedColorType::L8,
        )
        .unwrap();
    out
}

/// A grey ICC profile (GRAY colour space, D50) with a linear tone curve: grey level v is
/// linear light v/255, which sRGB encodes far lighter (0.2 linear is level 124, not 51).
pub fn linear_gray_profile() -> Vec<u8> {
    let d50 = lcms2::CIExyY {
        x: 0.3457,
        y: 0.3585,
        Y: 1.0,
    };
    lcms2::Profile::new_gray(&d50, &lcms2::ToneCurve::new(1.0))
        .unwrap()
        .icc()
        .unwrap()
}

/// An 8-bit grey PNG of `gray` (width x height) tagged with `icc`.
pub fn gray_png_with_icc(gray: &[u8], width: u32, height: u32, icc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    enc.set_icc_profile(icc.to_vec()).unwrap();
    enc.write_image(gray, width, height, image::ExtendedColorType::L8)
        .unwrap();
    out
}

/// A one-component (grey) JPEG of `gray` tagged with `icc` (one APP2 ICC_PROFILE segment).
pub fn gray_jpeg_with_icc(gray: &[u8], width: u32, height: u32, icc: &[u8]) -> Vec<u8> {
    std::panic::catch_unwind(|| {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_GRAYSCALE);
        c.set_size(width as usize, height as usize);
        c.set_quality(95.0);
        let mut s = c.start_compress(Vec::new()).unwrap();
        let app2 = [b"ICC_PROFILE\0\x01\x01".as_slice(), icc].concat();
        s.write_marker(mozjpeg::Marker::APP(2), &app2);
        s.write_scanlines(gray).unwrap();
        s.finish().unwrap()
    })
    .unwrap()
}

/// A GIF of distinct 64x48 frames, one per delay (in centiseconds, as GIF stores them), with
/// a NETSCAPE loop extension when `repeat` is given. Each frame carries a full 256-colour
/// local palette, as quantizing encoders write them: the WebP made of it is smaller, so it
/// passes the size gate.
pub fn gif_with_delays(delays_cs: &[u16], repeat: Option<gif::Repeat>) -> Vec<u8> {
    let palette: Vec<u8> = (0..256u32)
        .flat_map(|i| [(i * 7 % 256) as u8, (i * 13 % 256) as u8, (255 - i) as u8])
        .collect();
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, 64, 48, &[]).unwrap();
        if let Some(r) = repeat {
            enc.set_repeat(r).unwrap();
        }
        for (i, &delay) in delays_cs.iter().enumerate() {
            let mut pixels = vec![(i % 4) as u8; 64 * 48];
            pixels[i] = 200; // no two frames alike: libwebp would merge identical ones
            let mut frame = gif::Frame::from_indexed_pixels(64, 48, pixels, None);
            frame.palette = Some(palette.clone());
            frame.delay = delay;
            enc.write_frame(&frame).unwrap();
        }
    }
    out
}

/// The loop count and each frame's duration (ms) of an animated WebP, as libwebp's
/// animation decoder plays it (it reports each frame's end time).
pub fn webp_timing(webp: &[u8]) -> (u32, Vec<i32>) {
    let anim = webp::AnimDecoder::new(webp).decode().unwrap();
    let mut start = 0;
    let mut durations = Vec::new();
    for i in 0..anim.len() {
        let end = anim.get_frame(i).unwrap().get_time_ms();
        durations.push(end - start);
        start = end;
    }
    (anim.loop_count, durations)
}

fn jpeg_with(
    img: &RgbaImage,
    space: mozjpeg::ColorSpace,
    pixels: &[u8],
    app1: Option<&[u8]>,
) -> Vec<u8> {
    std::panic::catch_unwind(|| {
        let mut c = mozjpeg::Compress::new(space);
        c.set_size(img.width() as usize, img.height() as usize);
        c.set_quality(90.0);
        let mut s = c.start_compress(Vec::new()).unwrap();
        if let Some(exif) = app1 {
            s.write_marker(mozjpeg::Marker::APP(1), exif);
        }
        s.write_scanlines(pixels).unwrap();
        s.finish().unwrap()
    })
    .unwrap()
}

/// Minimal big-endian EXIF (TIFF) with one Orientation tag.
pub fn exif_orientation(o: u16) -> Vec<u8> {
    let mut e = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    e.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    e.extend_from_slice(&o.to_be_bytes());
    e.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    e
}

/// The rocket photo re-encoded with EXIF orientation `o`.
pub fn exif_jpeg(o: u16) -> Vec<u8> {
    let img = rocket_rgba();
    jpeg_with(
        &img,
        mozjpeg::ColorSpace::JCS_EXT_RGBA,
        img.as_raw(),
        Some(&exif_orientation(o)),
    )
}

/// The rocket photo as an Adobe-style CMYK JPEG (inverted samples, APP14 marker).
pub fn cmyk_jpeg() -> Vec<u8> {
    let img = rocket_rgba();
    let cmyk: Vec<u8> = img
        .pixels()
        .flat_map(|p| {
            let k = 255 - p[0].max(p[1]).max(p[2]);
            let ink = |v: u8| {
                if k == 255 {
                    0
                } else {
                    ((255 - v - k) as u32 * 255 / (255 - k as u32)) as u8
                }
            };
            // Adobe CMYK is stored inverted
            [255 - ink(p[0]), 255 - ink(p[1]), 255 - ink(p[2]), 255 - k]
        })
        .collect();
    jpeg_with(&img, mozjpeg::ColorSpace::JCS_CMYK, &cmyk, None)
}

/// A 3-frame animated GIF (64x48), one solid colour per frame.
pub fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .unwrap();
        for (i, colour) in [[255u8, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]]
            .iter()
            .enumerate()
        {
            let mut img = RgbaImage::from_pixel(64, 48, image::Rgba(*colour));
            img.put_pixel(i as u32, 0, image::Rgba([255, 255, 255, 255]));
            let frame =
                image::Frame::from_parts(img, 0, 0, image::Delay::from_numer_denom_ms(100, 1));
            enc.encode_frame(frame).unwrap();
        }
    }
    out
}

/// Decodes any variant bytes back to (width, height, RGBA).
pub fn decode_any(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    if bytes.starts_with(b"RIFF") {
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::WebP)
            .expect("webp decodes")
            .into_rgba8();
        (img.width(), img.height(), img.into_raw())
    } else if bytes.get(4..8) == Some(b"ftyp") {
        let rgb = libavif::decode_rgb(bytes).expect("avif decodes");
        (rgb.width(), rgb.height(), rgb.as_slice().to_vec())
    } else {
        let p = rendition_sidecar::pipeline::prepare(bytes, &Default::default()).expect("decodes");
        (p.image.width, p.image.height, p.image.data)
    }
}

/// A flat logo, 900x600 with a transparent background: a ring, a bar and a triangle, with
/// 2x2-supersampled anti-aliased edges as a drawing program makes them. Vectorizable art.
pub fn flat_logo_png() -> Vec<u8> {
    let shape = |x: f32, y: f32| -> Option<[u8; 4]> {
        let r = ((x - 300.0).powi(2) + (y - 300.0).powi(2)).sqrt();
        if (150.0..230.0).contains(&r) {
            Some([220, 40, 40, 255])
        } else if (560.0..840.0).contains(&x) && (120.0..200.0).contains(&y) {
            Some([30, 60, 200, 255])
        } else if y > 260.0 && y < 520.0 && (x - 700.0).abs() < (y - 260.0) * 0.6 {
            Some([250, 190, 20, 255])
        } else {
            None
        }
    };
    let mut img = RgbaImage::from_pixel(900, 600, image::Rgba([0, 0, 0, 0]));
    for (x, y, p) in img.enumerate_pixels_mut() {
        let (mut acc, mut n) = ([0u32; 3], 0u32);
        for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
            if let Some(c) = shape(x as f32 + ox, y as f32 + oy) {
                for i in 0..3 {
                    acc[i] += u32::from(c[i]);
                }
                n += 1;
            }
        }
        if let (Some(r), Some(g), Some(b)) = (
            acc[0].checked_div(n),
            acc[1].checked_div(n),
            acc[2].checked_div(n),
        ) {
            *p = image::Rgba([r as u8, g as u8, b as u8, (n * 255 / 4) as u8]);
        }
    }
    png(&img)
}

/// The service state on a fresh store in a temp dir of its own (`name` tells the tests of one
/// process apart), configured by `tweak`. With `run`, its workers run; without, its queue stays
/// open but is never drained (a closed queue would refuse every job), so notifies are accepted
/// and kept.
pub fn worker(
    name: &str,
    tweak: impl FnOnce(&mut rendition_sidecar::config::Config),
    run: bool,
) -> std::sync::Arc<rendition_sidecar::service::AppState> {
    use rendition_sidecar::service::{work, AppState};
    use rendition_sidecar::{config::Config, encode::avif, quality::CodecDials, store::Store};
    use std::sync::Arc;
    let dir = std::env::temp_dir().join(format!("rendition-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config {
        data_dir: dir.clone(),
        ..Config::default()
    };
    tweak(&mut config);
    config.validate().unwrap();
    let store = Arc::new(Store::open(&dir, config.cache_size_bytes).unwrap());
    let (state, rx) = AppState::new(config, store, None).unwrap();
    if run {
        let worker = work::Worker {
            state: Arc::clone(&state),
            quality: Box::new(CodecDials::default()),
            avif: avif::default_encoder(),
            avif_direct: avif::threaded_encoder(2),
        };
        work::run_workers(Arc::new(worker), rx);
        rendition_sidecar::service::sweep::spawn(Arc::clone(&state));
    } else {
        std::mem::forget(rx);
    }
    state
}

/// Serves `app` on 127.0.0.1 at a free port, until the test's runtime ends.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
