//! WebP through libwebp's advanced API. Photos: lossy, method 4. Screenshots and flat art:
//! lossy with sharp YUV (RGB->YUV that keeps coloured edges crisp) *and* a lossless candidate,
//! keeping the smaller: flat art is often smaller lossless than lossy at a good quality.

use super::{Codec, EncodeError, EncodeHints, Encoded};
use crate::image_types::{Frame, Rgba};
use webp::{AnimEncoder, AnimFrame, Encoder, WebPConfig};

fn failed(reason: impl Into<String>) -> EncodeError {
    EncodeError::new(Codec::Webp, reason)
}

fn config(quality: u8, hints: EncodeHints, lossless: bool) -> Result<WebPConfig, EncodeError> {
    let mut c = WebPConfig::new().map_err(|()| failed("config init failed"))?;
    c.quality = f32::from(quality);
    c.method = 4;
    if lossless {
        c.lossless = 1;
        c.quality = 75.0; // effort, in lossless mode
        c.exact = 0;
    } else if hints.is_graphic() {
        c.use_sharp_yuv = 1;
    }
    Ok(c)
}

pub fn encode(img: &Rgba, quality: u8, hints: EncodeHints) -> Result<Encoded, EncodeError> {
    let enc = Encoder::from_rgba(&img.data, img.width, img.height);
    let lossy = enc
        .encode_advanced(&config(quality, hints, false)?)
        .map_err(|e| failed(format!("{e:?}")))?;
    let mut best = Encoded {
        codec: Codec::Webp,
        bytes: lossy.to_vec(),
        quality,
        lossless: false,
    };
    if hints.is_graphic() {
        if let Ok(lossless) = enc.encode_advanced(&config(quality, hints, true)?) {
            if lossless.len() < best.bytes.len() {
                best = Encoded {
                    codec: Codec::Webp,
                    bytes: lossless.to_vec(),
                    quality: 100,
                    lossless: true,
                };
            }
        }
    }
    Ok(best)
}

/// Lossy at libwebp's fastest method (0), no sharp YUV: the quality model's probe, which only
/// needs scores that rank images like the production settings do.
pub fn encode_fastest(img: &Rgba, quality: u8) -> Result<Encoded, EncodeError> {
    let mut c = WebPConfig::new().map_err(|()| failed("config init failed"))?;
    c.quality = f32::from(quality);
    c.method = 0;
    let bytes = Encoder::from_rgba(&img.data, img.width, img.height)
        .encode_advanced(&c)
        .map_err(|e| failed(format!("{e:?}")))?;
    Ok(Encoded {
        codec: Codec::Webp,
        bytes: bytes.to_vec(),
        quality,
        lossless: false,
    })
}

/// Lossless only (the fallback for screenshots whose lossy encodes stay under the band).
pub fn encode_lossless(img: &Rgba, hints: EncodeHints) -> Result<Encoded, EncodeError> {
    let enc = Encoder::from_rgba(&img.data, img.width, img.height);
    let bytes = enc
        .encode_advanced(&config(100, hints, true)?)
        .map_err(|e| failed(format!("{e:?}")))?;
    Ok(Encoded {
        codec: Codec::Webp,
        bytes: bytes.to_vec(),
        quality: 100,
        lossless: true,
    })
}

/// Every frame of an animation into one animated WebP (lossless for flat art, as GIFs mostly
/// are; lossy otherwise).
pub fn encode_animation(
    frames: &[Frame],
    quality: u8,
    hints: EncodeHints,
) -> Result<Encoded, EncodeError> {
    let first = frames
        .first()
        .ok_or_else(|| failed("animation without frames"))?;
    let lossless = hints.is_graphic();
    let cfg = config(quality, hints, lossless)?;
    let mut enc = AnimEncoder::new(first.image.width, first.image.height, &cfg);
    enc.set_loop_count(0);
    let mut t = 0i32;
    for f in frames {
        enc.add_frame(AnimFrame::from_rgba(
            &f.image.data,
            f.image.width,
            f.image.height,
            t,
        ));
        t = t.saturating_add(f.delay_ms.max(20) as i32);
    }
    let bytes = enc
        .try_encode()
        .map_err(|e| failed(format!("animation: {e:?}")))?
        .to_vec();
    Ok(Encoded {
        codec: Codec::Webp,
        bytes,
        quality: if lossless { 100 } else { quality },
        lossless,
    })
}
