//! Optimized PNG with oxipng (preset 2, no zopfli: zopfli costs ~100x the time for ~5%).
//! oxipng also reduces the colour type and bit depth (RGBA -> palette when <= 256 colours).

use super::{Codec, Encoded};
use crate::pipeline::Rgba;
use oxipng::{BitDepth, ColorType, Options, RawImage};

pub fn encode(img: &Rgba) -> Result<Encoded, String> {
    let raw = RawImage::new(
        img.width,
        img.height,
        ColorType::RGBA,
        BitDepth::Eight,
        img.data.clone(),
    )
    .map_err(|e| format!("png: {e}"))?;
    let bytes = raw
        .create_optimized_png(&Options::from_preset(2))
        .map_err(|e| format!("png: {e}"))?;
    Ok(Encoded {
        codec: Codec::Png,
        bytes,
        quality: 100,
        lossless: true,
    })
}
