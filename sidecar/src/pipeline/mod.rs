//! The pipeline, as named, ordered steps (each a module, each testable alone):
//!
//! 1. fetch (the service's job: `crate::origin`)
//! 2. [`sniff`]: format from magic bytes
//! 3. [`probe`]: limits from headers, before decoding
//! 4. [`decode`]: once, to RGBA
//! 5. [`orient`] + [`color`]: EXIF orientation, ICC to sRGB, metadata dropped
//! 6. [`classify`]: photo / screenshot / illustration / noisy
//! 7. [`denoise`]: noisy sources only
//! 8. per output size: [`resize`] once
//! 9. per missing format at that size: encode (`crate::encode`), with a quality policy
//! 10. size gate: a variant not smaller than the source is dropped, and that is remembered
//! 11. [`vectorize`]: eligible flat art also gets one SVG, when faithful and smaller
//! 12. store (the service's job: `crate::store`)
//!
//! [`prepare`] runs steps 2-7 once per source; [`generate`] runs 8-10 for the wanted slots.

pub mod classify;
pub mod color;
pub mod decode;
pub mod denoise;
pub mod orient;
pub mod probe;
pub mod resize;
pub mod sniff;
pub mod vectorize;

use crate::encode::{self, avif::AvifEncoder, Codec, EncodeHints, Encoded};
use crate::quality::{features::OutputFeatures, probe::Probe, verify, QualityPolicy};
use classify::{ContentClass, ImageStats};
use decode::Frame;
use probe::Limits;
use rendition_shared::{
    curve::ProbeLine, plan_encodes, CapabilityMask, ImageFormat, SlotSet, ViewportWidths, SVG_SLOT,
};
use sniff::SourceFormat;
use std::time::{Duration, Instant};

/// 8-bit RGBA pixels, row-major, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Rgba {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Rgba {
    pub fn is_opaque(&self) -> bool {
        self.data.chunks_exact(4).all(|p| p[3] == 255)
    }
}

impl std::fmt::Debug for Rgba {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rgba({}x{})", self.width, self.height)
    }
}

/// Why a source is not optimized. The message is safe to log and to show an operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not an image: {0}")]
    NotAnImage(&'static str),
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    #[error("source is {bytes} bytes, over the {limit}-byte limit")]
    TooManyBytes { bytes: u64, limit: u64 },
    #[error("{width}x{height} is over the {limit}-pixel limit")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("{frames} frames, over the {limit}-frame limit")]
    TooManyFrames { frames: u32, limit: u32 },
    #[error("zero width or height")]
    ZeroSize,
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// A source after steps 2-7, ready to be resized and encoded any number of times.
#[derive(Debug)]
pub struct Prepared {
    pub format: SourceFormat,
    pub source_bytes: u64,
    /// Oriented, sRGB, denoised when noisy.
    pub image: Rgba,
    /// Every frame, for animations.
    pub frames: Option<Vec<Frame>>,
    pub class: ContentClass,
    pub stats: ImageStats,
    pub jpeg_quality: Option<u8>,
    /// Things worth logging that did not stop the pipeline (an ignored ICC profile, say).
    pub notes: Vec<String>,
    pub decode_time: Duration,
}

/// Steps 2-7.
pub fn prepare(bytes: &[u8], limits: &Limits) -> Result<Prepared, Refusal> {
    let started = Instant::now();
    let format = sniff::sniff(bytes)?;
    probe::check(bytes, format, limits)?;
    let mut decoded = decode::decode(bytes, format)?;
    let orientation = decoded.orientation;
    // Moved, not cloned: an animation at the frame limits is 800 MB of RGBA.
    let frames = decoded.frames.take();
    let jpeg_quality = decoded.jpeg_quality;
    let (image, note) = color::to_srgb(decoded);
    let image = orient::apply(image, orientation);
    let stats = classify::stats(&image);
    let class = classify::classify(&stats);
    let image = if class == ContentClass::Noisy {
        denoise::sigma_filter(&image)
    } else {
        image
    };
    Ok(Prepared {
        format,
        source_bytes: bytes.len() as u64,
        image,
        frames,
        class,
        stats,
        jpeg_quality,
        notes: note.into_iter().collect(),
        decode_time: started.elapsed(),
    })
}

/// One stored variant: the encode, and every slot it answers for.
#[derive(Clone, Debug)]
pub struct Variant {
    pub primary: CapabilityMask,
    pub slots: SlotSet,
    pub width: u32,
    pub height: u32,
    pub encoded: Encoded,
    pub encode_time: Duration,
    /// SSIMULACRA2 of the stored bytes, when verified.
    pub score: Option<f64>,
    /// Encodes it took (1 without verification).
    pub attempts: u8,
    /// The score it was verified against.
    pub target: Option<f64>,
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
    /// The encoder failed: not remembered, a later notify may retry.
    Failed {
        slots: SlotSet,
        error: String,
    },
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
    /// Verify every lossy variant against a SSIMULACRA2 target (seed 002); None encodes once
    /// at the policy's quality.
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
    let animated = src.frames.is_some();
    // Seed 004: GIF bypasses resizing (every frame would need it); all slots get full size.
    let widths = if animated {
        ViewportWidths {
            mobile: 0,
            tablet: 0,
            desktop: 0,
        }
    } else {
        enc.widths
    };
    let jobs = plan_encodes(wanted, src.image.width, src.image.height, widths);
    let hints = EncodeHints {
        class: src.class,
        grayscale: src.stats.grayscale,
        opaque: !src.stats.has_alpha,
    };
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(jobs.len());
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for job in &jobs {
        if !sizes.contains(&(job.width, job.height)) {
            sizes.push((job.width, job.height));
        }
    }
    for (w, h) in sizes {
        // One SSIMULACRA2 reference per size, built when the first lossy job of it needs one.
        let mut reference: Option<Result<verify::Reference, String>> = None;
        let resized = match resize::resize(&src.image, w, h) {
            Ok(r) => r,
            Err(e) => {
                for job in jobs.iter().filter(|j| (j.width, j.height) == (w, h)) {
                    outcomes.push(Outcome::Failed {
                        slots: job.slots,
                        error: e.to_string(),
                    });
                }
                continue;
            }
        };
        let pixels = resized.as_ref().unwrap_or(&src.image);
        let features = (enc.verify.is_some() && enc.quality.wants_features())
            .then(|| OutputFeatures::of(pixels, src.format, src.jpeg_quality));
        // The model's probe: one mosaic per size, scored once per format that asks for it.
        let mut probe: Option<Result<Probe, String>> = None;
        let mut probed: Vec<(Codec, Option<ProbeLine>)> = Vec::new();
        for job in jobs.iter().filter(|j| (j.width, j.height) == (w, h)) {
            let codec = match codec_for(job.format, src.format, animated) {
                Ok(c) => c,
                Err(reason) => {
                    outcomes.push(Outcome::Lost {
                        slots: job.slots,
                        reason: reason.to_owned(),
                    });
                    continue;
                }
            };
            let target = enc.verify.map(|t| t.for_slot(job.save_data));
            let quality = match (&features, target) {
                (Some(f), Some(t)) if !enc.quality.wants_probe(codec) => {
                    enc.quality.first_quality(codec, job.save_data, f, t)
                }
                (Some(f), Some(t)) if src.frames.is_none() => {
                    let scores = match probed.iter().find(|(c, _)| *c == codec) {
                        Some((_, scores)) => *scores,
                        None => {
                            let p = probe.get_or_insert_with(|| Probe::new(pixels));
                            let scores = p
                                .as_ref()
                                .map_err(Clone::clone)
                                .and_then(|p| p.scores(codec, hints))
                                .map_err(|e| tracing::debug!("probe {}: {e}", codec.name()))
                                .ok();
                            probed.push((codec, scores));
                            scores
                        }
                    };
                    // A failed probe leaves the codec dials; verification still runs.
                    match scores {
                        Some(sc) => {
                            enc.quality
                                .first_quality(codec, job.save_data, &f.with_probe(sc), t)
                        }
                        None => enc.quality.quality(codec, job.save_data),
                    }
                }
                _ => enc.quality.quality(codec, job.save_data),
            };
            // Same codec, size and quality (or target) as an earlier job: same bytes, store once.
            if let Some(Outcome::Stored(v)) = outcomes.iter_mut().find(|o| {
                matches!(o, Outcome::Stored(v)
                if v.encoded.codec == codec && (v.width, v.height) == (w, h)
                    && (v.target == target && (target.is_some() || v.encoded.quality == quality)
                        || codec == Codec::Png))
            }) {
                v.slots = v.slots.union(job.slots);
                continue;
            }
            let started = Instant::now();
            let encode_once = |q: u8| match (codec, &src.frames) {
                (Codec::Webp, Some(frames)) => encode::webp::encode_animation(frames, q, hints),
                (Codec::Webp, None) => encode::webp::encode(pixels, q, hints),
                (Codec::Avif, _) => enc.avif.encode(pixels, q, hints),
                (Codec::Jpeg, _) => encode::jpeg::encode(pixels, q, hints),
                (Codec::Png, _) => encode::png::encode(pixels),
                (Codec::Svg, _) => Err("svg is made by vectorize, not the matrix".to_owned()),
            };
            let lossy = matches!(codec, Codec::Webp | Codec::Avif | Codec::Jpeg);
            let result = match target {
                // Animations are not scored (one reference per frame would be needed).
                Some(t) if lossy && src.frames.is_none() => {
                    if reference.is_none() {
                        reference = Some(verify::Reference::new(pixels));
                    }
                    match reference.as_ref() {
                        Some(Ok(r)) => verified(codec, quality, t, r, pixels, hints, encode_once),
                        Some(Err(e)) => Err(e.clone()),
                        None => Err("ssimulacra2: no reference".to_owned()),
                    }
                }
                _ => encode_once(quality).map(|e| (e, None, 1)),
            };
            let encode_time = started.elapsed();
            outcomes.push(match result {
                Ok((encoded, _, _)) if encoded.bytes.len() as u64 >= src.source_bytes => {
                    Outcome::Lost {
                        slots: job.slots,
                        reason: format!(
                            "{} {}x{} is {} bytes, not smaller than the {}-byte source",
                            codec.name(),
                            w,
                            h,
                            encoded.bytes.len(),
                            src.source_bytes
                        ),
                    }
                }
                Ok((encoded, score, attempts)) => Outcome::Stored(Variant {
                    primary: job.primary,
                    slots: job.slots,
                    width: w,
                    height: h,
                    encoded,
                    encode_time,
                    score,
                    attempts,
                    target,
                }),
                Err(error) => Outcome::Failed {
                    slots: job.slots,
                    error,
                },
            });
        }
    }
    outcomes
}

/// Step 10b for one lossy job: search from the policy's quality for the band around `target`;
/// a screenshot or flat art whose lossy WebP stays under the band tries lossless.
fn verified(
    codec: Codec,
    first: u8,
    target: f64,
    reference: &verify::Reference,
    pixels: &Rgba,
    hints: EncodeHints,
    encode_once: impl FnMut(u8) -> Result<Encoded, String>,
) -> Result<(Encoded, Option<f64>, u8), String> {
    let band = verify::Band::around(target);
    let v = verify::search(band, codec, first, reference, encode_once)?;
    if codec == Codec::Webp && hints.is_graphic() && v.score < band.lo {
        let lossless = encode::webp::encode_lossless(pixels, hints)?;
        return Ok((lossless, Some(100.0), v.attempts + 1));
    }
    Ok((v.encoded, Some(v.score), v.attempts))
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
    let svg = match vectorize::vectorize(&src.image) {
        Ok(s) => s,
        Err(error) => return Outcome::Failed { slots, error },
    };
    let fidelity = match vectorize::fidelity(&svg, &src.image) {
        Ok(f) => f,
        Err(error) => return Outcome::Failed { slots, error },
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
