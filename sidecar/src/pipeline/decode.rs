//! Step 4, decode once: source bytes to 8-bit RGBA, plus the metadata later steps need (ICC
//! profile, EXIF orientation, whether the source is grey) and, for animated GIFs, every frame
//! with its display time and the loop count, as browsers play them.
//!
//! JPEG goes through libjpeg-turbo's decoder (as vendored in mozjpeg, whose changes are all on
//! the encoder side), with its defaults: accurate integer IDCT and fancy upsampling, which is
//! what Chrome and Firefox use. The decoder can move SSIMULACRA2 scores by itself, so we
//! decode the way browsers do. PNG, GIF and WebP go through the `image` crate. 16-bit and
//! palette PNGs (with tRNS) come out as 8-bit RGBA.

use super::gif_blocks;
use super::refusal::Refusal;
use crate::image_types::{Animation, Frame, Rgba, SourceFormat};
use mozjpeg::{ColorSpace, Decompress, Marker, ALL_MARKERS};
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A decoded source.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub image: Rgba,
    /// Embedded ICC profile, if any.
    pub icc: Option<Vec<u8>>,
    /// The source stores one grey channel (plus alpha): its pixels came out with R = G = B,
    /// and a grey ICC profile applies to them.
    pub gray: bool,
    /// EXIF orientation (1-8); 1 when absent.
    pub orientation: u8,
    /// How the JPEG stored its colour: CMYK sources need a conversion (done here, naively,
    /// when there is no profile; through the profile in the colour step otherwise).
    pub cmyk: Option<CmykData>,
    /// Every frame and the loop count, when the source is an animation of more than one
    /// frame.
    pub frames: Option<Animation>,
    /// Estimated quality of a JPEG source (from its luminance quantization table).
    pub jpeg_quality: Option<u8>,
}

/// Raw CMYK samples kept for an ICC conversion.
#[derive(Clone, Debug)]
pub struct CmykData {
    pub samples: Vec<u8>,
    /// Adobe APP14 files store inverted CMYK.
    pub inverted: bool,
}

pub fn decode(bytes: &[u8], format: SourceFormat) -> Result<Decoded, Refusal> {
    match format {
        SourceFormat::Jpeg => decode_jpeg(bytes),
        SourceFormat::Png => decode_with_image(bytes, image::ImageFormat::Png),
        SourceFormat::Webp => decode_with_image(bytes, image::ImageFormat::WebP),
        SourceFormat::Gif => decode_gif(bytes),
    }
}

fn decode_jpeg(bytes: &[u8]) -> Result<Decoded, Refusal> {
    // libjpeg reports fatal errors by unwinding through the mozjpeg crate.
    let result = catch_unwind(AssertUnwindSafe(|| -> std::io::Result<Decoded> {
        let d = Decompress::with_markers(ALL_MARKERS).from_mem(bytes)?;
        let (width, height) = (d.width() as u32, d.height() as u32);
        let mut exif = None;
        let mut icc_chunks: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut adobe = false;
        for m in d.markers() {
            match m.marker {
                Marker::APP(1) if m.data.starts_with(b"Exif\0\0") => {
                    exif = Some(m.data[6..].to_vec())
                }
                Marker::APP(2) if m.data.starts_with(b"ICC_PROFILE\0") && m.data.len() > 14 => {
                    icc_chunks.push((m.data[12], m.data[14..].to_vec()))
                }
                Marker::APP(14) if m.data.starts_with(b"Adobe") => adobe = true,
                _ => {}
            }
        }
        icc_chunks.sort_by_key(|(seq, _)| *seq);
        let icc =
            (!icc_chunks.is_empty()).then(|| icc_chunks.into_iter().flat_map(|(_, c)| c).collect());
        let is_cmyk = matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);
        let gray = d.color_space() == ColorSpace::JCS_GRAYSCALE;
        let (image, cmyk) = if is_cmyk {
            let mut s = d.to_colorspace(ColorSpace::JCS_CMYK)?;
            let samples = s.read_scanlines::<u8>()?;
            s.finish()?;
            let image = cmyk_to_rgba_naive(&samples, width, height, adobe);
            (
                image,
                Some(CmykData {
                    samples,
                    inverted: adobe,
                }),
            )
        } else {
            let mut s = d.rgba()?;
            let data = s.read_scanlines::<u8>()?;
            s.finish()?;
            (
                Rgba {
                    width,
                    height,
                    data,
                },
                None,
            )
        };
        Ok(Decoded {
            image,
            icc,
            gray,
            orientation: exif.as_deref().map_or(1, super::orient::exif_orientation),
            cmyk,
            frames: None,
            jpeg_quality: estimate_jpeg_quality(bytes),
        })
    }));
    match result {
        Ok(Ok(d)) if d.image.data.len() == d.image.width as usize * d.image.height as usize * 4 => {
            Ok(d)
        }
        Ok(Ok(_)) => Err(Refusal::Malformed(
            "jpeg: decoder returned a short image".into(),
        )),
        Ok(Err(e)) => Err(Refusal::Malformed(format!("jpeg: {e}"))),
        Err(panic) => Err(Refusal::Malformed(panic_message(&panic))),
    }
}

/// CMYK to RGB without a profile: the usual `(1 - c)(1 - k)` approximation.
fn cmyk_to_rgba_naive(samples: &[u8], width: u32, height: u32, inverted: bool) -> Rgba {
    let mut data = Vec::with_capacity(width as usize * height as usize * 4);
    for px in samples.chunks_exact(4) {
        let (c, m, y, k) = if inverted {
            (px[0], px[1], px[2], px[3])
        } else {
            (255 - px[0], 255 - px[1], 255 - px[2], 255 - px[3])
        };
        let ch = |v: u8| ((u16::from(v) * u16::from(k) + 127) / 255) as u8;
        data.extend_from_slice(&[ch(c), ch(m), ch(y), 255]);
    }
    Rgba {
        width,
        height,
        data,
    }
}

fn decode_with_image(bytes: &[u8], format: image::ImageFormat) -> Result<Decoded, Refusal> {
    use image::ImageDecoder;
    let name = if format == image::ImageFormat::Png {
        "png"
    } else {
        "webp"
    };
    let err = |e: image::ImageError| Refusal::Malformed(format!("{name}: {e}"));
    let reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder = reader.into_decoder().map_err(err)?;
    let icc = decoder.icc_profile().ok().flatten();
    let gray = matches!(
        decoder.color_type(),
        image::ColorType::L8
            | image::ColorType::La8
            | image::ColorType::L16
            | image::ColorType::La16
    );
    let orientation = decoder
        .exif_metadata()
        .ok()
        .flatten()
        .map_or(1, |e| super::orient::exif_orientation(&e));
    let img = image::DynamicImage::from_decoder(decoder).map_err(err)?;
    let rgba = img.into_rgba8();
    let (width, height) = rgba.dimensions();
    Ok(Decoded {
        image: Rgba {
            width,
            height,
            data: rgba.into_raw(),
        },
        icc,
        gray,
        orientation,
        cmyk: None,
        frames: None,
        jpeg_quality: None,
    })
}

fn decode_gif(bytes: &[u8]) -> Result<Decoded, Refusal> {
    use image::AnimationDecoder;
    let err = |e: image::ImageError| Refusal::Malformed(format!("gif: {e}"));
    let decoder = image::codecs::gif::GifDecoder::new(Cursor::new(bytes)).map_err(err)?;
    let mut frames = Vec::new();
    for frame in decoder.into_frames() {
        let frame = frame.map_err(err)?;
        let (num, den) = frame.delay().numer_denom_ms();
        let delay_ms = gif_frame_ms(num.checked_div(den).unwrap_or(0));
        let buffer = frame.into_buffer();
        let (width, height) = buffer.dimensions();
        frames.push(Frame {
            image: Rgba {
                width,
                height,
                data: buffer.into_raw(),
            },
            delay_ms,
        });
    }
    let first = frames
        .first()
        .map(|f| f.image.clone())
        .ok_or_else(|| Refusal::Malformed("gif: no frame".into()))?;
    Ok(Decoded {
        image: first,
        icc: None,
        gray: false,
        orientation: 1,
        cmyk: None,
        frames: (frames.len() > 1).then(|| Animation {
            frames,
            loop_count: gif_plays(gif_blocks::loop_count(bytes)),
        }),
        jpeg_quality: None,
    })
}

/// A GIF frame delay as browsers play it: Chrome, Firefox and Safari all show a frame whose
/// delay is 0 or 1 centisecond (0-10 ms) for 100 ms, so that old GIFs written with no delay
/// do not spin as fast as the machine can draw. Every other delay is kept to the millisecond.
pub fn gif_frame_ms(delay_ms: u32) -> u32 {
    if delay_ms <= 10 {
        100
    } else {
        delay_ms
    }
}

/// The total number of plays (WebP's loop count: 0 forever) of a GIF with this NETSCAPE loop
/// count. A GIF without one plays once. A count of n > 0 means n repeats after the first play:
/// n + 1 plays, as Chrome plays it and libwebp's `gif2webp` converts it (65535 stays 65535,
/// the most WebP can say).
pub fn gif_plays(netscape_loop_count: Option<u16>) -> u16 {
    match netscape_loop_count {
        None => 1,
        Some(0) => 0,
        Some(n) => n.saturating_add(1),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "decoder failed".to_owned()
    }
}

/// Estimates a JPEG's quality (1-100) by matching its first quantization table against the
/// IJG standard luminance table scaled by each quality, as ImageMagick's `identify` does.
/// A feature for the quality model: a source already at q60 has less to give.
pub fn estimate_jpeg_quality(b: &[u8]) -> Option<u8> {
    const STD_LUMA: [u16; 64] = [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
        56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
        104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ];
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        if marker == 0xDA {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if marker == 0xDB && len >= 67 {
            let seg = b.get(i + 4..i + 2 + len)?;
            let sixteen_bit = seg[0] >> 4 != 0;
            if sixteen_bit {
                return None;
            }
            // Quantization tables are stored in zigzag order, the standard table in natural
            // order; the sums compare without reordering.
            let sum: u32 = seg[1..65].iter().map(|&v| u32::from(v)).sum();
            let best = (1..=100u32).min_by_key(|&q| {
                let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
                let s: u32 = STD_LUMA
                    .iter()
                    .map(|&t| ((u32::from(t) * scale + 50) / 100).clamp(1, 255))
                    .sum();
                s.abs_diff(sum)
            })?;
            return Some(best as u8);
        }
        i += 2 + len.max(2);
    }
    None
}
