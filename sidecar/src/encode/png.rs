//! Optimized PNG with oxipng (preset 2, no zopfli: zopfli costs ~100x the time for ~5%).
//! oxipng also reduces the colour type and bit depth (RGBA -> palette when <= 256 colours).

use super::{Codec, EncodeError, Encoded};
use crate::image_types::Rgba;
use oxipng::{BitDepth, ColorType, Options, RawImage};

pub fn encode(img: &Rgba) -> Result<Encoded, EncodeError> {
    let raw = RawImage::new(
        img.width,
        img.height,
        ColorType::RGBA,
        BitDepth::Eight,
        img.data.clone(),
    )
    .map_err(|e| EncodeError::new(Codec::Png, e.to_string()))?;
    let bytes = raw
        .create_optimized_png(&Options::from_preset(2))
        .map_err(|e| EncodeError::new(Codec::Png, e.to_string()))?;
    Ok(Encoded {
        codec: Codec::Png,
        bytes,
        quality: 100,
        lossless: true,
    })
}
