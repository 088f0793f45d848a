//! Quality: which encoder quality a variant is first encoded at ([`QualityPolicy`]: the fixed
//! codec dials, or the learned model), and the SSIMULACRA2 verification that re-encodes until
//! the score is in the band ([`verify`]).

pub mod features;
pub mod model;
pub mod probe;
pub mod verify;

use crate::encode::Codec;
use features::OutputFeatures;

/// Chooses the encoder quality (0-100) for a variant.
pub trait QualityPolicy: Send + Sync {
    fn name(&self) -> &'static str;
    /// The quality without anything known of the image (the codec dials).
    fn quality(&self, codec: Codec, save_data: bool) -> u8;
    /// The first quality to try for a variant verified against `target`; a learned policy
    /// predicts it from the output's features.
    fn first_quality(
        &self,
        codec: Codec,
        save_data: bool,
        _features: &OutputFeatures,
        _target: f64,
    ) -> u8 {
        self.quality(codec, save_data)
    }
    /// Whether [`Self::first_quality`] reads the features (they cost a pass over the pixels).
    fn wants_features(&self) -> bool {
        false
    }
    /// Whether [`Self::first_quality`] for `codec` reads the probe scores (they cost two small
    /// encodes, [`probe`]).
    fn wants_probe(&self, _codec: Codec) -> bool {
        false
    }
}

/// Where in the band the learned policy aims its first encode, as a share of the band's width
/// from its low edge: 0.45 is `t + 1.95` at tolerance 5 (band `[t - 3, t + 8]`). Not the
/// target itself: the band is lopsided, and a prediction that lands a little low falls out of
/// it. Not the middle either: every point above the target costs bytes against the oracle.
/// Grouped cross-validation on the training images: each 0.05 lower puts about 0.8% fewer
/// first encodes in the band and saves about 1.3% of the bytes (docs/quality.md).
pub const AIM_IN_BAND: f64 = 0.45;

/// The learned policy: one LightGBM regressor per format predicts the quality that reaches the target,
/// so the first encode usually lands in the band. A format whose model is off (the
/// `--no-learned-quality-*` flags) or absent uses the codec dials.
#[derive(Clone, Copy, Debug)]
pub struct LearnedQuality {
    pub dials: CodecDials,
    pub webp: bool,
    pub avif: bool,
    pub jpeg: bool,
}

impl LearnedQuality {
    pub fn all() -> LearnedQuality {
        LearnedQuality {
            dials: CodecDials::default(),
            webp: true,
            avif: true,
            jpeg: true,
        }
    }

    fn model(&self, codec: Codec) -> Option<&'static model::Model> {
        let m = match codec {
            Codec::Webp if self.webp => &model::WEBP,
            Codec::Avif if self.avif => &model::AVIF,
            Codec::Jpeg if self.jpeg => &model::JPEG,
            _ => return None,
        };
        (!m.is_empty()).then_some(m)
    }
}

impl QualityPolicy for LearnedQuality {
    fn name(&self) -> &'static str {
        "learned"
    }

    fn quality(&self, codec: Codec, save_data: bool) -> u8 {
        self.dials.quality(codec, save_data)
    }

    fn first_quality(
        &self,
        codec: Codec,
        save_data: bool,
        features: &OutputFeatures,
        target: f64,
    ) -> u8 {
        match self.model(codec) {
            Some(m) => {
                let band = verify::Band::around(target);
                let aim = band.lo + AIM_IN_BAND * (band.hi - band.lo);
                let q = m.predict(&features.with_target(aim));
                q.round().clamp(f64::from(verify::floor(codec)), 100.0) as u8
            }
            None => self.dials.quality(codec, save_data),
        }
    }

    fn wants_features(&self) -> bool {
        self.webp || self.avif || self.jpeg
    }

    fn wants_probe(&self, codec: Codec) -> bool {
        self.model(codec).is_some()
    }
}

/// The fixed codec dials: WebP 75 (50 with Save-Data), AVIF libaom quantizer 25 (35 with
/// Save-Data) = libavif quality 60 (44), JPEG 85 (50 with Save-Data). These are the common
/// defaults of image optimizers (docs/architecture.md, "Where the numbers come from"); they
/// are the starting point when the learned model is off, and the baseline `make eval` beats.
#[derive(Clone, Copy, Debug)]
pub struct CodecDials {
    pub webp: u8,
    pub webp_save_data: u8,
    pub avif: u8,
    pub avif_save_data: u8,
    pub jpeg: u8,
    pub jpeg_save_data: u8,
}

impl Default for CodecDials {
    fn default() -> Self {
        CodecDials {
            webp: 75,
            webp_save_data: 50,
            avif: 60,
            avif_save_data: 44,
            jpeg: 85,
            jpeg_save_data: 50,
        }
    }
}

impl QualityPolicy for CodecDials {
    fn name(&self) -> &'static str {
        "codec-dials"
    }

    fn quality(&self, codec: Codec, save_data: bool) -> u8 {
        match (codec, save_data) {
            (Codec::Webp, false) => self.webp,
            (Codec::Webp, true) => self.webp_save_data,
            (Codec::Avif, false) => self.avif,
            (Codec::Avif, true) => self.avif_save_data,
            (Codec::Jpeg, false) => self.jpeg,
            (Codec::Jpeg, true) => self.jpeg_save_data,
            (Codec::Png | Codec::Svg, _) => 100,
        }
    }
}

/// libavif quality for a libaom quantizer (0-63, lower is better), libavif's own mapping.
pub const fn avif_quality_for_quantizer(q: u8) -> u8 {
    let q = if q > 63 { 63 } else { q } as u32;
    ((63 - q) * 100 / 63) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_quantizers_map_to_libavif_quality() {
        // libavif: quantizer = ((100 - quality) * 63 + 50) / 100
        let back = |q: u32| ((100 - q) * 63 + 50) / 100;
        assert_eq!(back(u32::from(CodecDials::default().avif)), 25);
        assert_eq!(back(u32::from(CodecDials::default().avif_save_data)), 35);
        assert_eq!(avif_quality_for_quantizer(25), 60);
    }
}
