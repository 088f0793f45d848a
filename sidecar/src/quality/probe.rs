//! The probe: the strongest single feature of the quality model. Pixel statistics say what an
//! image looks like; they cannot say how a given encoder will treat it. So before the first
//! real encode, a *mosaic* of the output (evenly spaced 32x32 tiles of the resized pixels, about
//! a quarter of its area, 128 to 512 px a side) is encoded at three fixed qualities per format
//! with the encoder's fastest settings (WebP method 0, AVIF speed 10; JPEG is fast as it is)
//! and scored with SSIMULACRA2 against itself. The scores say where this image's quality
//! curve sits and how steep it is, at the low qualities Save-Data targets need as well as near
//! the default target; the model turns them into the quality that reaches the target at full
//! size with the production settings.
//!
//! Why tiles at the output's own scale and not a downscaled copy: block codecs work on local
//! blocks, so tiles keep the texture, noise and edges the encoder will meet, while a downscale
//! changes them (measured: a downscaled or centre-cropped probe predicted the full-size score
//! far worse). The mosaic's seams are in both the reference and the candidate.
//!
//! Cost: three fast encodes and three comparisons of a quarter of the pixels, about a quarter
//! of one verified encode of the output (`docs/quality-eval.md` measures it).
//! The label tool (`rendition label`) computes the same probe, so training and serving see the
//! same feature.

use super::verify::VerifyError;
use super::verify::{self, Reference, ScoreError};
use crate::encode::avif::{AvifEncoder, Libaom};
use crate::encode::{jpeg, webp, Codec, EncodeError, EncodeHints, Encoded};
use crate::image_types::{ContentClass, Rgba};
use rendition_shared::curve::{ProbeLine, PROBE_POINTS};

/// Side of one mosaic tile.
pub const TILE: u32 = 32;
/// Mosaic sides in tiles, smallest and largest (128 px and 512 px).
const MIN_TILES: u32 = 4;
const MAX_TILES: u32 = 16;
/// The share of the output's pixels the mosaic aims at.
const AREA_DIVISOR: f64 = 4.0;
/// libaom's fastest speed, for the AVIF probe.
const AVIF_PROBE_SPEED: u8 = 10;

/// The qualities a probe encodes at, per format, ascending: they bracket what the targets
/// 45-90 need, so the scores also give the curve's slope where the target is. The low point
/// is for Save-Data targets on flat art, which need qualities near the floor: with only two
/// points (35 and 75) the model extrapolated there, and grouped cross-validation put 1.6%
/// fewer first encodes in the band.
pub const fn qualities(codec: Codec) -> Option<[u8; PROBE_POINTS]> {
    match codec {
        Codec::Webp | Codec::Avif => Some([10, 35, 75]),
        Codec::Jpeg => Some([20, 50, 80]),
        Codec::Png | Codec::Svg => None,
    }
}

/// The lossy encode the model predicts a quality for. WebP of flat art is always lossy here
/// (the pipeline may still pick lossless later; the model's quality is a lossy quality), with
/// the encoder settings of a photo, the same in labelling, probing and evaluation.
pub fn encode_lossy(
    codec: Codec,
    img: &Rgba,
    quality: u8,
    hints: EncodeHints,
    avif: &dyn AvifEncoder,
) -> Result<Encoded, EncodeError> {
    let lossy_hints = EncodeHints {
        class: ContentClass::Photo,
        ..hints
    };
    match codec {
        Codec::Webp => webp::encode(
            img,
            quality,
            if hints.is_graphic() {
                lossy_hints
            } else {
                hints
            },
        ),
        Codec::Avif => avif.encode(img, quality, hints),
        Codec::Jpeg => jpeg::encode(img, quality, hints),
        Codec::Png | Codec::Svg => Err(EncodeError::new(codec, "not a lossy format")),
    }
}

/// The tile mosaic of `img`: up to `n x n` tiles taken on an evenly spaced grid, `n` chosen so
/// the mosaic is about a quarter of the image (fewer tiles along a side too short for `n`). An image
/// narrower or lower than one tile is its own mosaic.
pub fn mosaic(img: &Rgba) -> Rgba {
    let pixels = u64::from(img.width) * u64::from(img.height);
    let side = ((pixels as f64 / AREA_DIVISOR).sqrt() / f64::from(TILE)).round() as u32;
    let n = side.clamp(MIN_TILES, MAX_TILES);
    let (nx, ny) = (n.min(img.width / TILE), n.min(img.height / TILE));
    if nx == 0 || ny == 0 {
        return img.clone();
    }
    let (mw, mh) = (nx * TILE, ny * TILE);
    let mut data = Vec::with_capacity(mw as usize * mh as usize * 4);
    // Tile origins spread from the first column/row to the last possible one.
    let origin = |i: u32, tiles: u32, extent: u32| {
        (u64::from(i) * u64::from(extent - TILE) / u64::from((tiles - 1).max(1))) as usize
    };
    for ty in 0..ny {
        let y0 = origin(ty, ny, img.height);
        for y in y0..y0 + TILE as usize {
            for tx in 0..nx {
                let row = (y * img.width as usize + origin(tx, nx, img.width)) * 4;
                data.extend_from_slice(&img.data[row..row + TILE as usize * 4]);
            }
        }
    }
    Rgba {
        width: mw,
        height: mh,
        data,
    }
}

/// The probe's encode: the lossy encoder of `codec` at its fastest settings (the scores only
/// have to rank images the way the production settings do, and they do, at a fraction of the
/// time).
fn encode_fast(
    codec: Codec,
    img: &Rgba,
    quality: u8,
    hints: EncodeHints,
) -> Result<Encoded, EncodeError> {
    match codec {
        Codec::Webp => webp::encode_fastest(img, quality),
        Codec::Avif => Libaom::fixed(AVIF_PROBE_SPEED).encode(img, quality, hints),
        Codec::Jpeg => jpeg::encode(img, quality, hints),
        Codec::Png | Codec::Svg => Err(EncodeError::new(codec, "not a lossy format")),
    }
}

/// A mosaic and its SSIMULACRA2 reference, built once per output size and probed per format.
pub struct Probe {
    pixels: Rgba,
    reference: Reference<'static>,
}

impl Probe {
    pub fn new(output: &Rgba) -> Result<Probe, VerifyError> {
        let pixels = mosaic(output);
        let reference = Reference::precomputed(&pixels)?;
        Ok(Probe { pixels, reference })
    }

    /// The mosaic encoded at [`qualities`]`(codec)` and scored, low quality first.
    pub fn scores(&self, codec: Codec, hints: EncodeHints) -> Result<ProbeLine, VerifyError> {
        let qs = qualities(codec).ok_or(VerifyError::Score(ScoreError::NotScored(codec)))?;
        let mut points = [(0, 0.0); PROBE_POINTS];
        for (point, q) in points.iter_mut().zip(qs) {
            let encoded = encode_fast(codec, &self.pixels, q, hints)?;
            *point = (q, verify::score_encoded(&self.reference, &encoded)?);
        }
        Ok(ProbeLine { points })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> Rgba {
        let data = (0..w * h)
            .flat_map(|i| [(i % w) as u8, (i / w) as u8, 7, 255])
            .collect();
        Rgba {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn mosaic_is_a_quarter_of_the_area_within_bounds() {
        // 1024x683 = 699 K px; / 4 = 175 K; sqrt = 418 px = 13 tiles (416 px).
        assert_eq!(mosaic(&gradient(1024, 683)).width, 416);
        // 480x320 = 154 K px; / 4 = 38 K; sqrt = 196 px = 6 tiles (192 px).
        let m = mosaic(&gradient(480, 320));
        assert_eq!((m.width, m.height), (192, 192));
        assert_eq!(m.data.len(), 192 * 192 * 4);
        // 4000x3000 = 12 M; / 4 = 3 M; sqrt = 1732 px = 54 tiles -> clamped to 16 (512 px).
        assert_eq!(mosaic(&gradient(4000, 3000)).width, 512);
        // 200x150 = 30 K; / 4 = 7.5 K; sqrt = 87 px = 3 tiles -> at least 4 across, 4 down.
        assert_eq!(mosaic(&gradient(200, 150)).width, 128);
    }

    #[test]
    fn mosaic_tiles_are_copied_from_an_even_grid() {
        let img = gradient(480, 320);
        let m = mosaic(&img);
        // Tile (0,0) is the image's top-left corner; tile (5,5) its bottom-right corner.
        assert_eq!(&m.data[..4], &img.data[..4]);
        let last_mosaic = m.data.len() - 4;
        let last_image = img.data.len() - 4;
        assert_eq!(&m.data[last_mosaic..], &img.data[last_image..]);
        // Tile (1,0) starts at x = (480 - 32) / 5 = 89.
        assert_eq!(m.data[(TILE as usize) * 4], 89);
    }

    #[test]
    fn a_short_side_takes_fewer_tiles() {
        // 1920x100 = 192 K px; / 4 = 48 K; sqrt = 219 px = 7 tiles across, 3 down (100 / 32).
        let m = mosaic(&gradient(1920, 100));
        assert_eq!((m.width, m.height), (224, 96));
        // Lower than one tile: the image itself.
        let img = gradient(100, 20);
        assert_eq!(mosaic(&img), img);
    }
}
