//! Step 8, resize: once per distinct output size, with fast_image_resize (SIMD convolution,
//! alpha premultiplied during the resize so transparent edges keep no dark fringe). Lanczos3,
//! like imgproxy: the kernel widens with the scale factor, so a 4000->480 downscale averages
//! every source pixel (no aliasing), and stays sharper than an area (box) filter.

use super::refusal::Refusal;
use crate::image_types::Rgba;
use fast_image_resize::{
    images::Image, images::ImageRef, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
};

/// Resized copy, or `None` when `(width, height)` is the source size (no copy made).
pub fn resize(src: &Rgba, width: u32, height: u32) -> Result<Option<Rgba>, Refusal> {
    if (width, height) == (src.width, src.height) {
        return Ok(None);
    }
    let err = |e: &dyn std::fmt::Display| Refusal::Internal(format!("resize: {e}"));
    let view =
        ImageRef::new(src.width, src.height, &src.data, PixelType::U8x4).map_err(|e| err(&e))?;
    let mut dst = Image::new(width, height, PixelType::U8x4);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new()
        .resize(&view, &mut dst, &options)
        .map_err(|e| err(&e))?;
    Ok(Some(Rgba {
        width,
        height,
        data: dst.into_vec(),
    }))
}
