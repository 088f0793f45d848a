//! WebP through libwebp's advanced API. Photos: lossy, method 4. Screenshots and flat art:
//! lossy with sharp YUV (RGB->YUV that keeps coloured edges crisp) *and* a lossless candidate,
//! keeping the smaller: flat art is often smaller lossless than lossy at a good quality.

use super::{Codec, EncodeError, EncodeHints, Encoded};
use crate::image_types::{Animation, Rgba};
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
/// are; lossy otherwise), with the source's loop count and every frame's display time.
pub fn encode_animation(
    animation: &Animation,
    quality: u8,
    hints: EncodeHints,
) -> Result<Encoded, EncodeError> {
    let frames = &animation.frames;
    let first = frames
        .first()
        .ok_or_else(|| failed("animation without frames"))?;
    let lossless = hints.is_graphic();
    let cfg = config(quality, hints, lossless)?;
    let mut enc = AnimEncoder::new(first.image.width, first.image.height, &cfg);
    enc.set_loop_count(i32::from(animation.loop_count));
    let mut t = 0i32;
    for f in frames {
        enc.add_frame(AnimFrame::from_rgba(
            &f.image.data,
            f.image.width,
            f.image.height,
            t,
        ));
        t = t.saturating_add(i32::try_from(f.delay_ms).unwrap_or(i32::MAX));
    }
    let mut bytes = enc
        .try_encode()
        .map_err(|e| failed(format!("animation: {e:?}")))?
        .to_vec();
    set_last_frame_end(&mut bytes, u64::try_from(t).unwrap_or_default())?;
    Ok(Encoded {
        codec: Codec::Webp,
        bytes,
        quality: if lossless { 100 } else { quality },
        lossless,
    })
}

/// Makes the last frame of an animated WebP end at `end_ms`, the animation's full length.
///
/// Frame times are timestamps: a frame lasts until the next one starts, so libwebp learns the
/// last frame's duration from a closing call with the end timestamp. The `webp` crate closes
/// with timestamp 0, which libwebp rejects (timestamps must not decrease); libwebp then gives
/// the last frame the average duration of the others. The 24-bit duration of the last ANMF
/// chunk is set here instead: the end minus the durations before it (libwebp may have merged
/// identical frames, adding their times together, so the chunks are summed rather than the
/// source frames counted).
fn set_last_frame_end(webp: &mut [u8], end_ms: u64) -> Result<(), EncodeError> {
    let bad = |what: &str| failed(format!("animation: {what}"));
    let mut at = 12; // after "RIFF", the size and "WEBP"
    let mut last = None;
    let mut before = 0u64;
    while let Some(head) = webp.get(at..at + 8) {
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if &head[..4] == b"ANMF" {
            let duration = webp
                .get(at + 20..at + 23)
                .ok_or_else(|| bad("ANMF chunk too short"))?;
            let duration = u64::from(u32::from_le_bytes([
                duration[0],
                duration[1],
                duration[2],
                0,
            ]));
            if let Some(previous) = last.replace((at + 20, duration)) {
                before += previous.1;
            }
        }
        at = at.saturating_add(8 + size + (size & 1));
    }
    let (offset, _) = last.ok_or_else(|| bad("no ANMF chunk"))?;
    let duration = end_ms
        .checked_sub(before)
        .filter(|d| *d <= 0xFF_FFFF)
        .ok_or_else(|| bad("frame durations exceed the animation's length"))?;
    webp[offset..offset + 3].copy_from_slice(&(duration as u32).to_le_bytes()[..3]);
    Ok(())
}
