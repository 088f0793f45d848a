//! What the quality model sees of one output: cheap statistics of the resized pixels (the same
//! sample-grid pass the classifier uses), the output size, the source's format and estimated
//! JPEG quality, computed once per output size in microseconds; then per format the probe
//! ([`super::probe`]: its three scores, and the slope and reach of its segment that meets the
//! target), and the score target. The target-dependent tail is filled by
//! `rendition_shared::curve::complete_row`, which the trainer calls too.
//!
//! The order is the model's input layout: `FEATURE_NAMES[i]` is column `i` of the training
//! data (`rendition label`) and of every prediction. Changing it means retraining (`make train`).

use crate::image_types::classify::{self, ContentClass, ImageStats};
use crate::image_types::{Rgba, SourceFormat};
use rendition_shared::curve::{complete_row, ProbeLine, PROBE_POINTS, TARGET_COLUMNS};

/// The per-output columns; the probe and target columns follow them
/// (`rendition_shared::curve::TARGET_COLUMNS`).
const OUTPUT_COLUMNS: [&str; 14] = [
    "width",
    "height",
    "log2_pixels",
    "log2_unique_colors",
    "flat_ratio",
    "edge_ratio",
    "noise",
    "luma_mean",
    "luma_std",
    "has_alpha",
    "grayscale",
    "class",
    "source_format",
    "source_jpeg_quality",
];
pub const N_FEATURES: usize = OUTPUT_COLUMNS.len() + TARGET_COLUMNS.len();
pub const FEATURE_NAMES: [&str; N_FEATURES] = {
    let mut names = [""; N_FEATURES];
    let mut i = 0;
    while i < N_FEATURES {
        names[i] = if i < OUTPUT_COLUMNS.len() {
            OUTPUT_COLUMNS[i]
        } else {
            TARGET_COLUMNS[i - OUTPUT_COLUMNS.len()]
        };
        i += 1;
    }
    names
};

/// The per-output part, and the probe of one format once [`OutputFeatures::with_probe`] set it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputFeatures {
    pub values: [f64; N_FEATURES],
    pub probe: ProbeLine,
}

impl OutputFeatures {
    /// `pixels` are the resized pixels the variant is encoded from.
    pub fn of(
        pixels: &Rgba,
        source_format: SourceFormat,
        source_jpeg_quality: Option<u8>,
    ) -> OutputFeatures {
        Self::from_stats(
            &classify::stats(pixels),
            pixels.width,
            pixels.height,
            source_format,
            source_jpeg_quality,
        )
    }

    pub fn from_stats(
        s: &ImageStats,
        width: u32,
        height: u32,
        source_format: SourceFormat,
        source_jpeg_quality: Option<u8>,
    ) -> OutputFeatures {
        let class = classify::classify(s);
        let values = [
            f64::from(width),
            f64::from(height),
            (f64::from(width) * f64::from(height)).max(1.0).log2(),
            f64::from(s.unique_colors.max(1)).log2(),
            f64::from(s.flat_ratio),
            f64::from(s.edge_ratio),
            f64::from(s.noise),
            f64::from(s.luma_mean),
            f64::from(s.luma_var).sqrt(),
            f64::from(u8::from(s.has_alpha)),
            f64::from(u8::from(s.grayscale)),
            match class {
                ContentClass::Photo => 0.0,
                ContentClass::Screenshot => 1.0,
                ContentClass::Illustration => 2.0,
                ContentClass::Noisy => 3.0,
            },
            match source_format {
                SourceFormat::Jpeg => 0.0,
                SourceFormat::Png => 1.0,
                SourceFormat::Gif => 2.0,
                SourceFormat::Webp => 3.0,
            },
            f64::from(source_jpeg_quality.unwrap_or(0)),
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ];
        OutputFeatures {
            values,
            probe: ProbeLine {
                points: [(0, 0.0); PROBE_POINTS],
            },
        }
    }

    /// With the format's probe ([`super::probe`]): the model of a format reads its own.
    pub fn with_probe(&self, probe: ProbeLine) -> OutputFeatures {
        let mut values = self.values;
        complete_row(&mut values, &probe, 0.0);
        OutputFeatures { values, probe }
    }

    /// The model input for one score target.
    pub fn with_target(&self, target: f64) -> [f64; N_FEATURES] {
        let mut v = self.values;
        complete_row(&mut v, &self.probe, target);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed models were trained on this layout: a change here means `make train`.
    #[test]
    fn the_model_input_layout_is_fixed() {
        assert_eq!(N_FEATURES, 20);
        assert_eq!(FEATURE_NAMES[..3], ["width", "height", "log2_pixels"]);
        assert_eq!(FEATURE_NAMES[13], "source_jpeg_quality");
        assert_eq!(FEATURE_NAMES[14..], TARGET_COLUMNS);
    }
}
