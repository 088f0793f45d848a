//! Steps 8-11 for the slots a source is asked for: per output size, resize once; per format at
//! that size, pick the first quality, reuse an identical encode or encode and verify, and pass
//! the size gate; then, for eligible flat art, one SVG.
//!
//! Sizes come from `rendition_shared::plan_encodes`. Each size is a [`SizeWork`]: the resized
//! pixels and what every format at that size shares (the model's features and probe, the
//! SSIMULACRA2 reference), each made at most once and only when a job needs it.

use super::prepare::Prepared;
use super::refusal::Refusal;
use super::resize;
use super::vectorize::{self, VectorizeError};
use crate::encode::{self, avif::AvifEncoder, Codec, EncodeError, EncodeHints, Encoded};
use crate::image_types::{Rgba, SourceFormat};
use crate::quality::features::OutputFeatures;
use crate::quality::probe::Probe;
use crate::quality::verify::{self, Reference, ScoreError, VerifyError};
use crate::quality::QualityPolicy;
use rendition_shared::{
    curve::ProbeLine, plan_encodes, CapabilityMask, EncodeJob, ImageFormat, SlotSet,
    ViewportWidths, SVG_SLOT,
};
use std::time::{Duration, Instant};

/// One stored variant: the encode, and every slot it answers for.
#[derive(Clone, Debug)]
pub struct Variant {
    pub primary: CapabilityMask,
    pub slots: SlotSet,
    pub width: u32,
    pub height: u32,
    pub encoded: Encoded,
    pub encode_time: Duration,
    /// The part of `encode_time` spent decoding and scoring candidates.
    pub score_time: Duration,
    /// SSIMULACRA2 of the stored bytes, when verified.
    pub score: Option<f64>,
    /// Encodes it took (1 without verification).
    pub attempts: u8,
    /// The score it was verified against.
    pub target: Option<f64>,
}

/// Why a variant was not made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VariantError {
    #[error("resize: {0}")]
    Resize(Refusal),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Score(#[from] ScoreError),
    #[error(transparent)]
    Vectorize(#[from] VectorizeError),
}

impl From<VerifyError> for VariantError {
    fn from(e: VerifyError) -> VariantError {
        match e {
            VerifyError::Encode(e) => VariantError::Encode(e),
            VerifyError::Score(e) => VariantError::Score(e),
        }
    }
}

/// What step 9c made for one job, before the size gate.
struct Made {
    encoded: Encoded,
    /// SSIMULACRA2 of the bytes, when verified.
    score: Option<f64>,
    attempts: u8,
    score_time: Duration,
}

impl Made {
    fn unverified(encoded: Encoded) -> Made {
        Made {
            encoded,
            score: None,
            attempts: 1,
            score_time: Duration::ZERO,
        }
    }
}

/// The result for one encode job.
#[derive(Clone, Debug)]
pub enum Outcome {
    Stored(Variant),
    /// Not stored, with the reason; the slots are remembered as lost (never retried).
    Lost {
        slots: SlotSet,
        reason: String,
    },
    /// The encoder failed. Encoders are deterministic (the same pixels and settings fail the
    /// same way again), so the store remembers the slots as lost with this error until the
    /// source changes, instead of retrying them on every notify.
    Failed {
        slots: SlotSet,
        error: VariantError,
    },
}

impl Outcome {
    /// The slots not stored and why, for `Lost` and `Failed` alike.
    pub fn lost(&self) -> Option<(SlotSet, String)> {
        match self {
            Outcome::Stored(_) => None,
            Outcome::Lost { slots, reason } => Some((*slots, reason.clone())),
            Outcome::Failed { slots, error } => Some((*slots, format!("encode failed: {error}"))),
        }
    }
}

/// The codec for a matrix format, given the source; `Err` says why there is none.
pub fn codec_for(
    format: ImageFormat,
    source: SourceFormat,
    animated: bool,
) -> Result<Codec, &'static str> {
    match (format, source) {
        (ImageFormat::Webp, _) => Ok(Codec::Webp),
        (ImageFormat::Avif, _) if animated => Err("animated source: no animated AVIF is made"),
        (ImageFormat::Avif, _) => Ok(Codec::Avif),
        (ImageFormat::Original, SourceFormat::Jpeg) => Ok(Codec::Jpeg),
        (ImageFormat::Original, SourceFormat::Png) => Ok(Codec::Png),
        (ImageFormat::Original, SourceFormat::Gif) => {
            Err("GIF source: no GIF re-encoder; WebP serves it")
        }
        (ImageFormat::Original, SourceFormat::Webp) => Err("WebP source: the WebP slots serve it"),
        (ImageFormat::Svg, _) => Err("SVG is decided by the vectorizer, not the matrix"),
    }
}

/// What `generate` needs besides the source.
pub struct Encoders<'a> {
    pub widths: ViewportWidths,
    /// The first quality tried for each lossy variant.
    pub quality: &'a dyn QualityPolicy,
    pub avif: &'a dyn AvifEncoder,
    /// Verify every lossy variant against a SSIMULACRA2 target; None encodes once at the
    /// policy's quality.
    pub verify: Option<Targets>,
}

/// The perceptual targets of step 10b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Targets {
    /// SSIMULACRA2 target (`target_ssimulacra2`, 70).
    pub score: f64,
    /// Subtracted for Save-Data slots (`savedata_score_reduction`, 15), floored at 0.
    pub save_data_reduction: f64,
}

impl Targets {
    pub fn for_slot(self, save_data: bool) -> f64 {
        if save_data {
            (self.score - self.save_data_reduction).max(0.0)
        } else {
            self.score
        }
    }
}

/// Steps 8-10 for `wanted` slots (in priority order). Sizes are computed by `shared`; each
/// distinct size is resized once; identical encodes (same codec, quality and size, e.g. a
/// lossless PNG with and without Save-Data) are made once and stored once.
pub fn generate(src: &Prepared, wanted: &[CapabilityMask], enc: &Encoders<'_>) -> Vec<Outcome> {
    // Animations are not resized (every frame would need it): every slot gets full size.
    let widths = if src.frames.is_some() {
        ViewportWidths {
            mobile: 0,
            tablet: 0,
            desktop: 0,
        }
    } else {
        enc.widths
    };
    let jobs = plan_encodes(wanted, src.image.width, src.image.height, widths);
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for job in &jobs {
        if !sizes.contains(&(job.width, job.height)) {
            sizes.push((job.width, job.height));
        }
    }
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(jobs.len());
    for (w, h) in sizes {
        let at_size = jobs.iter().filter(|j| (j.width, j.height) == (w, h));
        // Step 8: resize once; `None` is the source's own size.
        match resize::resize(&src.image, w, h) {
            Ok(resized) => {
                let mut work = SizeWork::new(src, enc, resized.as_ref().unwrap_or(&src.image));
                for job in at_size {
                    work.run(job, &mut outcomes);
                }
            }
            Err(refusal) => outcomes.extend(at_size.map(|job| Outcome::Failed {
                slots: job.slots,
                error: VariantError::Resize(refusal.clone()),
            })),
        }
    }
    outcomes
}

/// The jobs of one output size and what they share.
struct SizeWork<'a> {
    src: &'a Prepared,
    enc: &'a Encoders<'a>,
    hints: EncodeHints,
    /// The pixels at this size (resized, or the source's own): their size is the output's.
    pixels: &'a Rgba,
    /// The quality model's features of these pixels, when the policy reads them.
    features: Option<OutputFeatures>,
    /// The model's probe: one mosaic per size, scored once per format that asks for it.
    probe: Option<Result<Probe, VerifyError>>,
    probed: Vec<(Codec, Option<ProbeLine>)>,
    /// One SSIMULACRA2 reference per size, built when the first lossy job needs one (in
    /// strips it reads `pixels` instead of holding a copy).
    reference: Option<Result<Reference<'a>, ScoreError>>,
}

impl<'a> SizeWork<'a> {
    fn new(src: &'a Prepared, enc: &'a Encoders<'a>, pixels: &'a Rgba) -> SizeWork<'a> {
        let features = (enc.verify.is_some() && enc.quality.wants_features())
            .then(|| OutputFeatures::of(pixels, src.format, src.jpeg_quality));
        SizeWork {
            src,
            enc,
            hints: EncodeHints {
                class: src.class,
                grayscale: src.stats.grayscale,
                opaque: !src.stats.has_alpha,
            },
            pixels,
            features,
            probe: None,
            probed: Vec::new(),
            reference: None,
        }
    }

    /// Steps 9-10 for one job; the outcome is appended to `outcomes` (those of earlier jobs,
    /// this size's among them).
    fn run(&mut self, job: &EncodeJob, outcomes: &mut Vec<Outcome>) {
        let codec = match codec_for(job.format, self.src.format, self.src.frames.is_some()) {
            Ok(c) => c,
            Err(reason) => {
                outcomes.push(Outcome::Lost {
                    slots: job.slots,
                    reason: reason.to_owned(),
                });
                return;
            }
        };
        if let Some(max) = codec.max_side() {
            if self.pixels.width > max || self.pixels.height > max {
                outcomes.push(Outcome::Lost {
                    slots: job.slots,
                    reason: format!(
                        "{} holds at most {max} px on a side, this output is {}x{}",
                        codec.name(),
                        self.pixels.width,
                        self.pixels.height
                    ),
                });
                return;
            }
        }
        let target = self.enc.verify.map(|t| t.for_slot(job.save_data));
        let quality = self.first_quality(codec, job.save_data, target);
        if self.reuse_identical(outcomes, codec, quality, target, job.slots) {
            return;
        }
        let started = Instant::now();
        let result = self.encode_and_verify(codec, quality, target);
        outcomes.push(self.size_gate(job, codec, result, started.elapsed(), target));
    }

    /// Step 9a: the first quality to try. With a target and a policy that reads features,
    /// the policy predicts it (with the format's probe when it asks for one); otherwise, and
    /// when the probe fails, the policy's codec dial.
    fn first_quality(&mut self, codec: Codec, save_data: bool, target: Option<f64>) -> u8 {
        let policy = self.enc.quality;
        let (Some(features), Some(target)) = (&self.features, target) else {
            return policy.quality(codec, save_data);
        };
        if !policy.wants_probe(codec) {
            return policy.first_quality(codec, save_data, features, target);
        }
        if self.src.frames.is_some() {
            return policy.quality(codec, save_data);
        }
        let line = match self.probed.iter().find(|(c, _)| *c == codec) {
            Some((_, line)) => *line,
            None => {
                let pixels = self.pixels;
                let line = self
                    .probe
                    .get_or_insert_with(|| Probe::new(pixels))
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|p| p.scores(codec, self.hints))
                    .map_err(|e| tracing::debug!("probe {codec}: {e}"))
                    .ok();
                self.probed.push((codec, line));
                line
            }
        };
        match line {
            Some(line) => {
                policy.first_quality(codec, save_data, &features.with_probe(line), target)
            }
            None => policy.quality(codec, save_data),
        }
    }

    /// Step 9b: an earlier job at this size with the same codec and quality (or target) made
    /// these bytes already (a lossless PNG with and without Save-Data, say): its variant
    /// answers for these slots too, and nothing is encoded.
    fn reuse_identical(
        &self,
        outcomes: &mut [Outcome],
        codec: Codec,
        quality: u8,
        target: Option<f64>,
        slots: SlotSet,
    ) -> bool {
        let size = (self.pixels.width, self.pixels.height);
        let same = outcomes.iter_mut().find_map(|o| match o {
            Outcome::Stored(v)
                if v.encoded.codec == codec
                    && (v.width, v.height) == size
                    && (v.target == target
                        && (target.is_some() || v.encoded.quality == quality)
                        || codec == Codec::Png) =>
            {
                Some(v)
            }
            _ => None,
        });
        match same {
            Some(v) => {
                v.slots = v.slots.union(slots);
                true
            }
            None => false,
        }
    }

    /// Step 9c: encode at `quality`; with a target, a lossy still is verified (searched
    /// until its score lands in the band). Returns the bytes, their score and the encodes.
    fn encode_and_verify(
        &mut self,
        codec: Codec,
        quality: u8,
        target: Option<f64>,
    ) -> Result<Made, VariantError> {
        let pixels = self.pixels;
        let (hints, frames, avif) = (self.hints, &self.src.frames, self.enc.avif);
        let encode_once = |q: u8| match (codec, frames) {
            (Codec::Webp, Some(frames)) => encode::webp::encode_animation(frames, q, hints),
            (Codec::Webp, None) => encode::webp::encode(pixels, q, hints),
            (Codec::Avif, _) => avif.encode(pixels, q, hints),
            (Codec::Jpeg, _) => encode::jpeg::encode(pixels, q, hints),
            (Codec::Png, _) => encode::png::encode(pixels),
            (Codec::Svg, _) => Err(EncodeError::new(
                Codec::Svg,
                "made by the vectorizer, not the matrix",
            )),
        };
        let lossy = matches!(codec, Codec::Webp | Codec::Avif | Codec::Jpeg);
        match target {
            // Animations are not scored (one reference per frame would be needed).
            Some(t) if lossy && frames.is_none() => {
                let reference = self
                    .reference
                    .get_or_insert_with(|| Reference::new(pixels))
                    .as_ref()
                    .map_err(|e| VariantError::Score(e.clone()))?;
                verified(codec, quality, t, reference, pixels, hints, encode_once)
            }
            _ => Ok(Made::unverified(encode_once(quality)?)),
        }
    }

    /// Step 10: a variant not smaller than the source is not stored; its slots are lost,
    /// with the reason.
    fn size_gate(
        &self,
        job: &EncodeJob,
        codec: Codec,
        result: Result<Made, VariantError>,
        encode_time: Duration,
        target: Option<f64>,
    ) -> Outcome {
        let source_bytes = self.src.source_bytes;
        match result {
            Ok(Made { encoded, .. }) if encoded.bytes.len() as u64 >= source_bytes => {
                Outcome::Lost {
                    slots: job.slots,
                    reason: format!(
                    "{codec} {}x{} is {} bytes, not smaller than the {source_bytes}-byte source",
                    self.pixels.width,
                    self.pixels.height,
                    encoded.bytes.len(),
                ),
                }
            }
            Ok(Made {
                encoded,
                score,
                attempts,
                score_time,
            }) => Outcome::Stored(Variant {
                primary: job.primary,
                slots: job.slots,
                width: self.pixels.width,
                height: self.pixels.height,
                encoded,
                encode_time,
                score_time,
                score,
                attempts,
                target,
            }),
            Err(error) => Outcome::Failed {
                slots: job.slots,
                error,
            },
        }
    }
}

/// Step 10b for one lossy job: search from the policy's quality for the band around `target`;
/// a screenshot or flat art whose lossy WebP stays under the band tries lossless.
fn verified(
    codec: Codec,
    first: u8,
    target: f64,
    reference: &Reference,
    pixels: &Rgba,
    hints: EncodeHints,
    encode_once: impl FnMut(u8) -> Result<Encoded, EncodeError>,
) -> Result<Made, VariantError> {
    let band = verify::Band::around(target);
    let v = verify::search(band, codec, first, reference, encode_once)?;
    if codec == Codec::Webp && hints.is_graphic() && v.score < band.lo {
        return Ok(Made {
            encoded: encode::webp::encode_lossless(pixels, hints)?,
            score: Some(100.0),
            attempts: v.attempts + 1,
            score_time: v.score_time,
        });
    }
    Ok(Made {
        encoded: v.encoded,
        score: Some(v.score),
        attempts: v.attempts,
        score_time: v.score_time,
    })
}

/// Step 11: the SVG slot for `src`, stored when eligible, faithful and smaller than both the
/// source and `best_raster` (the smallest full-size raster variant, when one was made).
pub fn generate_svg(src: &Prepared, best_raster: Option<usize>) -> Outcome {
    let slots: SlotSet = [SVG_SLOT].into_iter().collect();
    let lost = |reason: String| Outcome::Lost { slots, reason };
    if let Err(why) = vectorize::eligible(src) {
        return lost(format!("no SVG: {why}"));
    }
    let started = Instant::now();
    let failed = |error: VectorizeError| Outcome::Failed {
        slots,
        error: VariantError::Vectorize(error),
    };
    let svg = match vectorize::vectorize(&src.image) {
        Ok(s) => s,
        Err(error) => return failed(error),
    };
    let fidelity = match vectorize::fidelity(&svg, &src.image) {
        Ok(f) => f,
        Err(error) => return failed(error),
    };
    if !fidelity.passes() {
        return lost(format!(
            "no SVG: traced image differs (mean error {:.2}, {:.2}% pixels off)",
            fidelity.mean_error,
            fidelity.bad_share * 100.0
        ));
    }
    let limit = best_raster.map_or(src.source_bytes, |b| (b as u64).min(src.source_bytes));
    if svg.len() as u64 >= limit {
        return lost(format!(
            "no SVG: {} bytes, not smaller than {limit}",
            svg.len()
        ));
    }
    Outcome::Stored(Variant {
        primary: SVG_SLOT,
        slots,
        width: src.image.width,
        height: src.image.height,
        encoded: Encoded {
            codec: Codec::Svg,
            bytes: svg.into_bytes(),
            quality: 100,
            lossless: false,
        },
        encode_time: started.elapsed(),
        score_time: Duration::ZERO,
        score: None,
        attempts: 1,
        target: None,
    })
}

/// The smallest stored raster variant at the source's full size, in bytes.
pub fn smallest_full_size(src: &Prepared, outcomes: &[Outcome]) -> Option<usize> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Stored(v)
                if (v.width, v.height) == (src.image.width, src.image.height)
                    && v.encoded.codec != Codec::Svg =>
            {
                Some(v.encoded.bytes.len())
            }
            _ => None,
        })
        .min()
}
