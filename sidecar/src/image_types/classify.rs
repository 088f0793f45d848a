//! Photo, screenshot, illustration or noisy, from cheap pixel statistics on a sample of at most
//! ~64k pixels (pipeline step 6). The class decides how each codec is driven (sharp YUV and
//! lossless candidates for screenshots and flat art, denoising for noisy sources) and is a
//! feature of the quality model, which also reads the statistics: that is why both live here,
//! below the pipeline, the quality model and the encoders.

use super::Rgba;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentClass {
    Photo,
    Screenshot,
    Illustration,
    Noisy,
}

impl ContentClass {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Screenshot => "screenshot",
            Self::Illustration => "illustration",
            Self::Noisy => "noisy",
        }
    }
}

/// Pixel statistics of an image (on a sample grid).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageStats {
    /// Distinct RGB colours among the sampled pixels (capped at 65536).
    pub unique_colors: u32,
    /// Share of sampled horizontal neighbour pairs that are exactly equal: UI and flat art.
    pub flat_ratio: f32,
    /// Share of sampled neighbour pairs with a luma step above 48: edges and text.
    pub edge_ratio: f32,
    /// Mean absolute second difference of luma where the local slope is small: sensor grain.
    pub noise: f32,
    pub luma_mean: f32,
    pub luma_var: f32,
    /// Some pixel is not fully opaque.
    pub has_alpha: bool,
    /// Every sampled pixel has R = G = B.
    pub grayscale: bool,
}

const MAX_SAMPLES: u64 = 65_536;

pub fn stats(img: &Rgba) -> ImageStats {
    let (w, h) = (img.width as usize, img.height as usize);
    let pixels = (w as u64) * (h as u64);
    let step = ((pixels / MAX_SAMPLES) as f64).sqrt().ceil().max(1.0) as usize;
    let luma = |i: usize| {
        let p = &img.data[i * 4..i * 4 + 4];
        (u32::from(p[0]) * 54 + u32::from(p[1]) * 183 + u32::from(p[2]) * 19) as f32 / 256.0
    };
    let mut colors = HashSet::with_capacity(4096);
    let (mut pairs, mut flat, mut edges) = (0u32, 0u32, 0u32);
    let (mut noise_sum, mut noise_n) = (0f64, 0u32);
    let (mut sum, mut sum_sq, mut n) = (0f64, 0f64, 0u32);
    let mut has_alpha = false;
    let mut grayscale = true;
    for y in (0..h).step_by(step) {
        for x in (0..w).step_by(step) {
            let i = y * w + x;
            let p = &img.data[i * 4..i * 4 + 4];
            if colors.len() < 65_536 {
                colors.insert(u32::from_le_bytes([p[0], p[1], p[2], 0]));
            }
            has_alpha |= p[3] != 255;
            grayscale &= p[0] == p[1] && p[1] == p[2];
            let l = luma(i);
            sum += f64::from(l);
            sum_sq += f64::from(l) * f64::from(l);
            n += 1;
            if x + 2 < w {
                pairs += 1;
                let q = &img.data[i * 4 + 4..i * 4 + 8];
                flat += u32::from(p == q);
                let (l1, l2) = (luma(i + 1), luma(i + 2));
                edges += u32::from((l1 - l).abs() > 48.0);
                if (l2 - l).abs() < 16.0 {
                    noise_sum += f64::from((l1 - (l + l2) / 2.0).abs());
                    noise_n += 1;
                }
            }
        }
    }
    let n = f64::from(n.max(1));
    let mean = sum / n;
    ImageStats {
        unique_colors: colors.len() as u32,
        flat_ratio: flat as f32 / pairs.max(1) as f32,
        edge_ratio: edges as f32 / pairs.max(1) as f32,
        noise: (noise_sum / f64::from(noise_n.max(1))) as f32,
        luma_mean: mean as f32,
        luma_var: (sum_sq / n - mean * mean).max(0.0) as f32,
        has_alpha,
        grayscale,
    }
}

/// The class from the statistics. Thresholds were set on the demo images and the MATE photos
/// of benches/fixtures.sh: flat art has few colours, or runs of identical pixels *and* few
/// colours *and* hard edges (smooth, heavily compressed photos also have runs of identical
/// pixels, but thousands of colours and no hard edges); screenshots have runs and many hard
/// edges (text); noisy photos have grain in smooth areas and almost no identical neighbours.
pub fn classify(s: &ImageStats) -> ContentClass {
    if s.flat_ratio >= 0.35 && s.edge_ratio >= 0.04 && s.unique_colors > 64 {
        ContentClass::Screenshot
    } else if s.unique_colors <= 256
        || (s.flat_ratio >= 0.5 && s.unique_colors <= 4096 && s.edge_ratio >= 0.002)
    {
        ContentClass::Illustration
    } else if s.noise >= 5.0 && s.flat_ratio < 0.05 {
        ContentClass::Noisy
    } else {
        ContentClass::Photo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32, mut f: impl FnMut(u32, u32) -> [u8; 4]) -> Rgba {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&f(x, y));
            }
        }
        Rgba {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn flat_logo_is_illustration() {
        let img = image(200, 200, |x, _| {
            if x < 100 {
                [255, 0, 0, 255]
            } else {
                [0, 0, 0, 0]
            }
        });
        let s = stats(&img);
        assert!(s.has_alpha);
        assert_eq!(classify(&s), ContentClass::Illustration);
    }

    #[test]
    fn grain_is_noisy_and_gradient_is_photo() {
        // xorshift noise around a gradient
        let mut seed = 0x2545F491u32;
        let mut grain = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed % 41) as i32 - 20
        };
        // independent grain per channel, as a sensor makes it
        let noisy = image(256, 256, |x, y| {
            let base = ((x + y) / 2) as i32;
            let mut px = [255u8; 4];
            for c in px.iter_mut().take(3) {
                *c = (base + grain()).clamp(0, 255) as u8;
            }
            px
        });
        assert_eq!(classify(&stats(&noisy)), ContentClass::Noisy);
        let smooth = image(256, 256, |x, y| {
            [x as u8, y as u8, ((x * y) / 256) as u8, 255]
        });
        assert_eq!(classify(&stats(&smooth)), ContentClass::Photo);
    }
}
