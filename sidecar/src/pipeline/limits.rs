//! Step 3, limits: dimensions and frame count read from the headers alone, checked against
//! the configured limits *before* anything is decoded. A 100000x100000 PNG is a few hundred
//! bytes; decoding it would ask for 40 GB. The same walk refuses what the decoders would get
//! wrong or pay too much for: GIF frames larger than the limits inside a small logical screen
//! (one frame, or all of them together), arithmetic-coded JPEG (the decoder cannot),
//! a PNG ICC profile that inflates past [`MAX_ICC_BYTES`] (a zlib bomb the PNG decoder would
//! inflate up to its 512 MiB allocation limit), and animated PNG and WebP (the decoders
//! return only the first frame: a still variant of an animation would be wrong).

use super::gif_blocks;
use super::refusal::Refusal;
use crate::image_types::SourceFormat;
use serde::{Deserialize, Serialize};

/// What the headers declare, before any decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared {
    pub width: u32,
    pub height: u32,
    /// 1 for still images.
    pub frames: u32,
}

/// Pipeline limits (`[limits]` in the config file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest source accepted, in bytes.
    pub max_source_bytes: u64,
    /// Largest decoded frame, in pixels (50 MP by default: a 12 MP photo is a quarter of it).
    pub max_pixels: u64,
    /// Most frames in an animation.
    pub max_frames: u32,
    /// Most pixels over all frames of an animation.
    pub max_animation_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_bytes: 10 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_frames: 1000,
            max_animation_pixels: 200_000_000,
        }
    }
}

/// Reads the headers and applies `limits`.
pub fn check(bytes: &[u8], format: SourceFormat, limits: &Limits) -> Result<Declared, Refusal> {
    if bytes.len() as u64 > limits.max_source_bytes {
        return Err(Refusal::TooManyBytes {
            bytes: bytes.len() as u64,
            limit: limits.max_source_bytes,
        });
    }
    let declared = match format {
        SourceFormat::Jpeg => jpeg_size(bytes)?,
        SourceFormat::Gif => gif_declared(bytes, limits)?,
        SourceFormat::Png => png_declared(bytes)?,
        SourceFormat::Webp => webp_declared(bytes)?,
    };
    if declared.width == 0 || declared.height == 0 {
        return Err(Refusal::ZeroSize);
    }
    let pixels = u64::from(declared.width) * u64::from(declared.height);
    if pixels > limits.max_pixels {
        return Err(Refusal::TooManyPixels {
            width: declared.width,
            height: declared.height,
            limit: limits.max_pixels,
        });
    }
    if declared.frames > limits.max_frames {
        return Err(Refusal::TooManyFrames {
            frames: declared.frames,
            limit: limits.max_frames,
        });
    }
    // Every decoded frame is a full screen (GIF frames are composited onto it).
    if pixels * u64::from(declared.frames) > limits.max_animation_pixels {
        return Err(Refusal::TooManyAnimationPixels {
            frames: declared.frames,
            pixels: pixels * u64::from(declared.frames),
            limit: limits.max_animation_pixels,
        });
    }
    // Checked last: for a bomb, the size refusal says more than "truncated".
    if format == SourceFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Refusal::Malformed(
            "jpeg: no end-of-image after the scan data (truncated)".into(),
        ));
    }
    Ok(declared)
}

/// Largest embedded ICC profile accepted once inflated (PNG iCCP). libpng refuses chunks over
/// 8 MB by default too; real RGB profiles are a few KB, large print LUTs a few MB.
pub const MAX_ICC_BYTES: usize = 8 << 20;

/// Width and height from the IHDR chunk, which the PNG spec puts first; then the chunks before
/// the image data: an `acTL` (APNG) is refused, an `iCCP` must inflate within
/// [`MAX_ICC_BYTES`]. A chunk running past the end stops the walk (the decoder reports it).
fn png_declared(b: &[u8]) -> Result<Declared, Refusal> {
    if b.len() < 24 || &b[12..16] != b"IHDR" {
        return Err(Refusal::Malformed("png: no IHDR chunk".into()));
    }
    let width = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
    let height = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
    let mut i = 8;
    while let Some(head) = b.get(i..i + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(data) = b.get(i + 8..(i + 8).saturating_add(len)) else {
            break;
        };
        match &head[4..8] {
            b"IDAT" | b"IEND" => break,
            // png 0.18.1 panics expanding a palette that is not whole RGB triples (the spec
            // forbids it; image-rs/image-png#694).
            b"PLTE" if !len.is_multiple_of(3) => {
                return Err(Refusal::Malformed(format!(
                    "png: PLTE chunk of {len} bytes is not RGB triples"
                )))
            }
            b"acTL" => {
                return Err(Refusal::Unsupported(
                    "animated PNG (APNG): served as is, a still variant would drop the animation",
                ))
            }
            b"iCCP" => {
                // keyword (1-79 bytes), NUL, compression method, zlib stream
                let zlib = data
                    .iter()
                    .position(|&c| c == 0)
                    .and_then(|nul| data.get(nul + 2..))
                    .unwrap_or_default();
                if let Err(fdeflate::BoundedDecompressionError::OutputTooLarge { .. }) =
                    fdeflate::decompress_to_vec_bounded(zlib, MAX_ICC_BYTES)
                {
                    return Err(Refusal::Malformed(format!(
                        "png: ICC profile (iCCP) inflates past {MAX_ICC_BYTES} bytes (zlib bomb?)"
                    )));
                }
                // A corrupt stream is the decoder's business: it ignores the profile.
            }
            _ => {}
        }
        i += 12 + len;
    }
    Ok(Declared {
        width,
        height,
        frames: 1,
    })
}

/// Canvas size from the first chunk (`VP8 `, `VP8L` or `VP8X`), read here rather than by the
/// decoder, which wraps a 16384-pixel lossless width to 0. Animated WebP is refused.
fn webp_declared(b: &[u8]) -> Result<Declared, Refusal> {
    let bad = |what: &str| Refusal::Malformed(format!("webp: {what}"));
    // The first chunk's header and its first bytes: 10 for VP8 and VP8X, 5 for VP8L.
    let need = if b.get(12..16) == Some(b"VP8L") {
        25
    } else {
        30
    };
    let data = b.get(20..need).ok_or_else(|| bad("truncated header"))?;
    let le16 = |i: usize| u32::from(u16::from_le_bytes([data[i], data[i + 1]]));
    let le24 = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], 0]);
    let (width, height) = match &b[12..16] {
        b"VP8 " if data[3..6] == [0x9D, 0x01, 0x2A] => (le16(6) & 0x3FFF, le16(8) & 0x3FFF),
        b"VP8L" if data[0] == 0x2F => {
            let bits = u32::from_le_bytes([data[1], data[2], data[3], data[4]]);
            ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        }
        b"VP8X" => {
            if data[0] & 0x02 != 0 {
                return Err(Refusal::Unsupported(
                    "animated WebP: served as is, a still variant would drop the animation",
                ));
            }
            let canvas = (le24(4) + 1, le24(7) + 1);
            // The decoder decodes a still VP8X image's lossy frame at the size the frame's own
            // header states, and only then compares it with the canvas: a 16383x16383 frame
            // inside a 1x1 canvas would get past the pixel limit. Refused here instead.
            if vp8x_lossy_frame_size(b).is_some_and(|frame| frame != canvas) {
                return Err(bad("lossy frame size differs from the VP8X canvas"));
            }
            canvas
        }
        _ => return Err(bad("no VP8, VP8L or VP8X chunk first")),
    };
    Ok(Declared {
        width,
        height,
        frames: 1,
    })
}

/// The frame size in the first `VP8 ` chunk of an extended WebP, which the decoder uses when
/// there is no `VP8L` chunk (a lossless frame is checked against the canvas before decoding).
fn vp8x_lossy_frame_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 12;
    let mut lossy = None;
    while let Some(head) = b.get(i..i + 8) {
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        match &head[..4] {
            b"VP8L" => return None,
            b"VP8 " if lossy.is_none() => lossy = Some(b.get(i + 8..i + 18)?),
            _ => {}
        }
        i = i.saturating_add(8 + size + (size & 1));
    }
    let f = lossy?;
    let le14 = |at: usize| u32::from(u16::from_le_bytes([f[at], f[at + 1]]) & 0x3FFF);
    (f[3..6] == [0x9D, 0x01, 0x2A]).then(|| (le14(6), le14(8)))
}

/// Walks JPEG markers to the first start-of-frame (SOF0-SOF15 except DHT/JPG/DAC).
fn jpeg_size(b: &[u8]) -> Result<Declared, Refusal> {
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return Err(Refusal::Malformed("jpeg: marker expected".into()));
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if (0xD0..=0xD9).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if len < 2 {
            return Err(Refusal::Malformed("jpeg: segment length < 2".into()));
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        // SOF9-11 and SOF13-15: arithmetic coding, which this libjpeg build does not decode.
        if matches!(marker, 0xC9..=0xCB | 0xCD..=0xCF) {
            return Err(Refusal::Unsupported("arithmetic coding"));
        }
        if is_sof {
            let seg = b
                .get(i + 4..i + 4 + 5)
                .ok_or_else(|| Refusal::Malformed("jpeg: truncated SOF".into()))?;
            let height = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
            let width = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
            return Ok(Declared {
                width,
                height,
                frames: 1,
            });
        }
        i += 2 + len;
    }
    Err(Refusal::Malformed(
        "jpeg: no frame header (truncated?)".into(),
    ))
}

/// Whether an end-of-image marker follows the first start-of-scan. Entropy-coded data cannot
/// contain `FF D9` (a data `FF` is stuffed as `FF 00`), and an embedded EXIF thumbnail's EOI
/// sits in APP1, before the scan. libjpeg only *warns* on a truncated file and fills the rest
/// with grey, so without this check we would optimize a broken image.
fn jpeg_is_complete(b: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return false;
        }
        match b[i + 1] {
            0xFF => i += 1,
            0xD0..=0xD9 | 0x01 => i += 2,
            0xDA => return b[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
            _ => i += 2 + usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]])),
        }
    }
    false
}

/// Logical screen size and the number of image descriptors, by walking GIF blocks without
/// decompressing anything (the walk is bounded by `max_source_bytes`, so every frame is
/// counted). Each frame's own rectangle is checked, and so is their sum: the decoder
/// allocates and decodes a frame at its declared size before compositing it onto the screen,
/// so a 65535x65535 frame in a 16x16 GIF would cost 17 GB, and a hundred 3500x3500 frames on
/// a 1x1 screen 1.2 billion decoded pixels.
fn gif_declared(b: &[u8], limits: &Limits) -> Result<Declared, Refusal> {
    let bad = |what: &str| Refusal::Malformed(format!("gif: {what}"));
    let ((width, height), blocks) = gif_blocks::walk(b).map_err(bad)?;
    let mut frames = 0u32;
    let mut frame_pixels = 0u64;
    for block in blocks {
        let gif_blocks::Block::Image {
            width: fw,
            height: fh,
        } = block.map_err(bad)?
        else {
            continue;
        };
        let pixels = u64::from(fw) * u64::from(fh);
        if pixels > limits.max_pixels {
            return Err(Refusal::TooManyPixels {
                width: fw,
                height: fh,
                limit: limits.max_pixels,
            });
        }
        frames += 1;
        frame_pixels += pixels;
    }
    if frames == 0 {
        return Err(bad("no image"));
    }
    if frame_pixels > limits.max_animation_pixels {
        return Err(Refusal::TooManyAnimationPixels {
            frames,
            pixels: frame_pixels,
            limit: limits.max_animation_pixels,
        });
    }
    Ok(Declared {
        width,
        height,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_bomb_header_is_refused_before_decoding() {
        // A valid PNG signature + IHDR claiming 100000 x 100000: refused from 33 bytes.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0]);
        let crc = crc32fast::hash(&png[12..29]);
        png.extend_from_slice(&crc.to_be_bytes());
        let r = check(&png, SourceFormat::Png, &Limits::default());
        assert!(
            matches!(r, Err(Refusal::TooManyPixels { width: 100_000, .. })),
            "{r:?}"
        );
    }

    #[test]
    fn jpeg_sof_is_found_and_zero_size_refused() {
        // SOI, APP0 (len 4), SOF0 with height 0, width 10
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 0, 0, 0, 10, 3, 0, 0, 0,
        ];
        assert_eq!(jpeg_size(&jpeg).map(|p| (p.width, p.height)), Ok((10, 0)));
        assert_eq!(
            check(&jpeg, SourceFormat::Jpeg, &Limits::default()),
            Err(Refusal::ZeroSize)
        );
        assert!(matches!(jpeg_size(&jpeg[..9]), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn too_many_bytes() {
        let limits = Limits {
            max_source_bytes: 4,
            ..Limits::default()
        };
        assert!(matches!(
            check(b"\xFF\xD8\xFF\xE0\0", SourceFormat::Jpeg, &limits),
            Err(Refusal::TooManyBytes { .. })
        ));
    }
}
