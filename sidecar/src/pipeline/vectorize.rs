//! Logos, icons and flat art -> one SVG (vtracer), kept only when it is faithful and small.
//!
//! vtracer traces colour regions into paths; it flattens gradients and softens anti-aliased
//! edges, so an SVG is only offered when:
//!
//! * **eligible**: the source is classified as an illustration, has at most 256 colours in
//!   the sample (flat art, not a gradient or a photo), is still, and has at most 1 MP (icons
//!   and logos; tracing cost grows with area);
//! * **faithful**: rendered back at the source size with resvg and compared on premultiplied
//!   RGBA, the mean absolute error is at most [`MAX_MEAN_ERROR`] per channel (a flattened
//!   gradient or lost detail fails this) and at most [`MAX_BAD_SHARE`] of pixels differ by
//!   more than [`BAD_PIXEL_DIFF`] in some channel (traced edges move by a pixel at most);
//! * **small**: fewer bytes than the smallest full-size raster variant made for the source
//!   (else the raster is the better answer even where SVG is accepted).

use super::prepare::Prepared;
use crate::image_types::{ContentClass, Rgba};
use resvg::{tiny_skia, usvg};

pub const MAX_MEAN_ERROR: f64 = 3.0;
pub const BAD_PIXEL_DIFF: u8 = 64;
pub const MAX_BAD_SHARE: f64 = 0.01;
pub const MAX_PIXELS: u64 = 1_000_000;

/// Why tracing or checking an SVG failed (not why a source gets none: that is [`eligible`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VectorizeError {
    #[error("vtracer: {0}")]
    Trace(String),
    #[error("the traced SVG does not render: {0}")]
    Render(String),
}

/// Why a source gets no SVG attempt, or `Ok` when it does.
pub fn eligible(p: &Prepared) -> Result<(), &'static str> {
    if p.frames.is_some() {
        return Err("animated source");
    }
    if p.class != ContentClass::Illustration {
        return Err("not flat art (class is not illustration)");
    }
    if p.stats.unique_colors > 256 {
        return Err("more than 256 colours: gradients would be flattened");
    }
    if u64::from(p.image.width) * u64::from(p.image.height) > MAX_PIXELS {
        return Err("over 1 MP");
    }
    Ok(())
}

/// Traces the image into an SVG document.
pub fn vectorize(img: &Rgba) -> Result<String, VectorizeError> {
    let mut config = vtracer::Config::from_preset(vtracer::Preset::Poster);
    config.path_precision = Some(1);
    let pipeline = config
        .build()
        .map_err(|e| VectorizeError::Trace(e.to_string()))?;
    let image = vtracer::ColorImage {
        pixels: img.data.clone(),
        width: img.width as usize,
        height: img.height as usize,
    };
    pipeline
        .to_svg(&image)
        .map_err(|e| VectorizeError::Trace(e.to_string()))
}

/// How close the rendered SVG is to the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fidelity {
    pub mean_error: f64,
    pub bad_share: f64,
}

impl Fidelity {
    pub fn passes(self) -> bool {
        self.mean_error <= MAX_MEAN_ERROR && self.bad_share <= MAX_BAD_SHARE
    }
}

/// Renders `svg` at the reference's size and compares premultiplied RGBA.
pub fn fidelity(svg: &str, reference: &Rgba) -> Result<Fidelity, VectorizeError> {
    let tree = usvg::Tree::from_str(svg, &usvg::Options::default())
        .map_err(|e| VectorizeError::Render(e.to_string()))?;
    let mut pixmap = tiny_skia::Pixmap::new(reference.width, reference.height)
        .ok_or_else(|| VectorizeError::Render("empty canvas".into()))?;
    let size = tree.size();
    let transform = tiny_skia::Transform::from_scale(
        reference.width as f32 / size.width(),
        reference.height as f32 / size.height(),
    );
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    let (mut total, mut bad) = (0u64, 0u64);
    for (got, want) in pixmap
        .data()
        .chunks_exact(4)
        .zip(reference.data.chunks_exact(4))
    {
        let a = u16::from(want[3]);
        let premul = |c: u8| ((u16::from(c) * a + 127) / 255) as u8;
        let want = [premul(want[0]), premul(want[1]), premul(want[2]), want[3]];
        let mut worst = 0u8;
        for i in 0..4 {
            let d = got[i].abs_diff(want[i]);
            total += u64::from(d);
            worst = worst.max(d);
        }
        bad += u64::from(worst > BAD_PIXEL_DIFF);
    }
    let pixels = (reference.width as u64 * reference.height as u64).max(1);
    Ok(Fidelity {
        mean_error: total as f64 / (pixels * 4) as f64,
        bad_share: bad as f64 / pixels as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat_logo() -> Rgba {
        let (w, h) = (120u32, 80u32);
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let inside = (x as i32 - 40).pow(2) + (y as i32 - 40).pow(2) < 900;
                data.extend_from_slice(if inside {
                    &[200, 30, 30, 255]
                } else if x > 80 {
                    &[20, 20, 160, 255]
                } else {
                    &[255, 255, 255, 255]
                });
            }
        }
        Rgba {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn flat_art_traces_faithfully() {
        let img = flat_logo();
        let svg = vectorize(&img).unwrap();
        assert!(
            svg.starts_with("<?xml") || svg.starts_with("<svg"),
            "{}",
            &svg[..40.min(svg.len())]
        );
        let f = fidelity(&svg, &img).unwrap();
        assert!(f.passes(), "{f:?}");
    }

    #[test]
    fn lost_detail_fails_the_fidelity_check() {
        // 1-2 px texture: below vtracer's speckle filter, so the trace drops it
        let (w, h) = (96u32, 96u32);
        let mut seed = 0x9E37_79B9u32;
        let mut data = Vec::new();
        for _ in 0..w * h {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let v = if seed.is_multiple_of(2) { 30 } else { 230 };
            data.extend_from_slice(&[v, v, v, 255]);
        }
        let img = Rgba {
            width: w,
            height: h,
            data,
        };
        let svg = vectorize(&img).unwrap();
        let f = fidelity(&svg, &img).unwrap();
        assert!(!f.passes(), "texture lost in tracing must fail: {f:?}");
    }
}
