//! Step 10b: every lossy variant is scored with SSIMULACRA2 against the resized pixels it was
//! encoded from, decoded the way browsers decode it, and re-encoded until it lands in the band
//! (docs/quality.md).
//!
//! * Band `[t - 0.6 tol, t + 1.6 tol]`, `tol = 5`: `[67, 78]` at the default target 70. It is
//!   lopsided on purpose: a little under the target looks worse, a little over only costs bytes.
//! * Up to [`MAX_ATTEMPTS`] encodes, never under the format's floor. Moves are [`STEP`] (5)
//!   when the score is near the band and proportionally larger (up to [`MAX_STEP`]) when it is
//!   far: from a poor first guess, four steps of 5 cannot reach the band. After two tries the
//!   next quality is the secant estimate through them.
//!   The first in-band result wins; if none lands, the best one is kept: the smallest at or above
//!   the low edge, else the highest score.
//! * Quality-to-score curves are not monotone on screenshots (a higher quality can score
//!   lower). Once one attempt is under the band and another over it, the next quality is the
//!   midpoint between the two, so the search cannot oscillate or walk off the bracket.
//! * Scoring uses `fast-ssim2` (a faster fork of the `ssimulacra2` crate that precomputes the
//!   reference once per size; the tests cross-check it against `ssimulacra2`). Candidates are
//!   decoded with the decoders browsers ship: libjpeg-turbo (as vendored by mozjpeg), libwebp,
//!   libavif; the JPEG decoder alone can move the score.
//! * Memory: a precomputed reference holds the metric's whole pyramid, about
//!   [`PRECOMPUTED_BYTES_PER_PIXEL`] bytes a pixel (1.3 GB at 12 MP), and makes each comparison
//!   about 40% cheaper than computing both sides. Every reference and every comparison in
//!   strips reserves its working set from one process-wide [`SCORING_BUDGET`]: a reference is
//!   precomputed when its reservation fits and leaves room for a comparison in strips, else
//!   its comparisons run in strips (192 rows, about 40 KB a column), each waiting until its
//!   reservation fits. References under [`ALWAYS_PRECOMPUTE_PIXELS`] are precomputed without
//!   asking.

use crate::encode::{Codec, EncodeError, Encoded};
use crate::image_types::Rgba;
use fast_ssim2::{PixelDescriptor, PixelSlice, Ssimulacra2Config, Ssimulacra2Reference};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Band half-widths are multiples of this.
pub const TOLERANCE: f64 = 5.0;
/// Encodes per variant at most.
pub const MAX_ATTEMPTS: usize = 4;
/// Quality step between attempts, the smallest move the search makes.
pub const STEP: u8 = 5;
/// The largest move between two attempts, when the score is far from the target.
pub const MAX_STEP: u8 = 25;
/// Bytes the precomputed references and the strip comparisons of the whole process may hold
/// at once: two 12 MP comparisons in strips (about 196 MB each), or a reference of up to
/// [`MAX_PRECOMPUTED_BYTES`] beside one of them. With room for one 12 MP comparison only
/// (384 MiB), two 12 MP sources took 53.5 s instead of 46.8 (`benches/throughput.sh`).
pub const SCORING_BUDGET: u64 = 512 << 20;
/// The largest reservation a precomputed reference may take: the budget less one 12 MP
/// comparison in strips (3.3 MP). So the other worker's comparison always finds room; with a
/// 4 MP reference allowed, the other worker's 4 MP comparisons waited for it, and the six
/// MATE photos took 43.0 s instead of 39.3 (`benches/sharp_anchor.py`).
pub const MAX_PRECOMPUTED_BYTES: u64 = SCORING_BUDGET - strip_bytes(4000, 3000);
/// A precomputed reference's size per pixel, measured with `examples/score_cost.rs`
/// (2.4 MP: 249 MB, 4.1 MP: 415 MB over the pixels themselves).
pub const PRECOMPUTED_BYTES_PER_PIXEL: u64 = 104;
/// References under this many pixels (up to 218 MB: 2 MP sources and the 1536x1152 outputs)
/// are precomputed without a reservation: they are the most common sizes, in strips they
/// would be mostly halo, and a worker holds one reference at a time, so they add at most
/// 218 MB per worker. (With every reference in the budget, a second 2 MP source on the other
/// worker ran in strips: 2 MP throughput fell from 16.4 to 14.8 matrices a minute.)
pub const ALWAYS_PRECOMPUTE_PIXELS: u64 = 2_100_000;
/// Rows per strip (interior; the metric adds 96 halo rows above and below each strip to warm
/// up its blurs). Short strips are mostly halo: 8 rows made a 12 MP comparison 6.5 s, 192 rows
/// make it 2.3 s and 256 rows 2.0 s (`examples/score_cost.rs`). 192, because two 12 MP
/// comparisons run at once: with 256-row strips the service peaked at 1012 MB on two 12 MP
/// sources (`benches/throughput.sh`), with 192 at 836 MB, for 6% more time.
const STRIP_ROWS: usize = 192;

/// The working set of one comparison in strips: the strip buffers (about 40 KB a column at
/// 192 + 192 rows) and a few bytes a pixel; measured 182 MB at 4000x3000 (estimate 196 MB).
const fn strip_bytes(width: u32, height: u32) -> u64 {
    width as u64 * 40_000 + width as u64 * height as u64 * 3
}

/// A byte budget shared by every scoring thread ([`SCORING_BUDGET`] for the process).
pub struct Budget {
    limit: u64,
    held: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    pub const fn new(limit: u64) -> Budget {
        Budget {
            limit,
            held: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Bytes reserved now.
    pub fn held(&self) -> u64 {
        *self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `bytes` if they fit now, else None.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation<'_>> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        (*held + bytes <= self.limit).then(|| {
            *held += bytes;
            Reservation {
                budget: self,
                bytes,
            }
        })
    }

    /// `bytes` (at most the whole budget), waiting until they fit.
    pub fn reserve(&self, bytes: u64) -> Reservation<'_> {
        let bytes = bytes.min(self.limit);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while *held + bytes > self.limit {
            held = self.freed.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        *held += bytes;
        Reservation {
            budget: self,
            bytes,
        }
    }
}

/// Bytes held from a [`Budget`] until dropped.
pub struct Reservation<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock().unwrap_or_else(|p| p.into_inner());
        *held -= self.bytes;
        self.budget.freed.notify_all();
    }
}

static SCORING: Budget = Budget::new(SCORING_BUDGET);

/// Why a candidate could not be scored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    /// The metric refused the pixels (a size mismatch, a buffer it cannot read).
    #[error("ssimulacra2: {0}")]
    Metric(String),
    /// The candidate does not decode with the decoder a browser would use.
    #[error("{codec} candidate does not decode: {reason}")]
    Decode { codec: Codec, reason: String },
    /// Only lossy formats are scored.
    #[error("{0} is not scored")]
    NotScored(Codec),
}

/// Why a verified encode (or the model's probe) produced nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Score(#[from] ScoreError),
}

/// The acceptable score range around a target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Band {
    pub target: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Band {
    pub fn around(target: f64) -> Band {
        let target = target.max(0.0);
        Band {
            target,
            lo: target - 0.6 * TOLERANCE,
            hi: target + 1.6 * TOLERANCE,
        }
    }

    pub fn contains(&self, score: f64) -> bool {
        score >= self.lo && score <= self.hi
    }
}

/// Lowest encoder quality the search may try, per codec: the bottom of each scale (WebP and
/// AVIF 0, JPEG 1). A lower Save-Data target must be reachable on flat art, whose scores stay high
/// down to the lowest qualities.
pub const fn floor(codec: Codec) -> u8 {
    match codec {
        Codec::Webp | Codec::Avif => 0,
        Codec::Jpeg => 1,
        Codec::Png | Codec::Svg => 100,
    }
}

/// The pixels a variant is encoded from, ready to score candidates against.
pub struct Reference<'a> {
    width: u32,
    height: u32,
    descriptor: PixelDescriptor,
    kind: RefKind<'a>,
}

enum RefKind<'a> {
    /// `_held`: its bytes of the budget, returned when dropped (None: small enough not to ask).
    Precomputed {
        reference: Box<Ssimulacra2Reference>,
        _held: Option<Reservation<'static>>,
    },
    /// The budget had no room: compared in strips, reading the caller's pixels (a copy would
    /// be 48 MB more per worker at 12 MP).
    Strips(&'a [u8]),
}

fn slice<'a>(
    data: &'a [u8],
    w: u32,
    h: u32,
    d: PixelDescriptor,
) -> Result<PixelSlice<'a>, ScoreError> {
    PixelSlice::new(data, w, h, w as usize * 4, d).map_err(|e| ScoreError::Metric(e.to_string()))
}

fn descriptor(img: &Rgba) -> PixelDescriptor {
    if img.is_opaque() {
        PixelDescriptor::RGBX8_SRGB
    } else {
        PixelDescriptor::RGBA8_SRGB
    }
}

fn precompute(
    img: &Rgba,
    held: Option<Reservation<'static>>,
) -> Result<RefKind<'static>, ScoreError> {
    let s = slice(&img.data, img.width, img.height, descriptor(img))?;
    let reference = Ssimulacra2Reference::new(&s).map_err(|e| ScoreError::Metric(e.to_string()))?;
    Ok(RefKind::Precomputed {
        reference: Box::new(reference),
        _held: held,
    })
}

impl<'a> Reference<'a> {
    /// A reference for `img`: precomputed when small or when the scoring budget has room,
    /// else compared in strips (reading `img`, which must outlive it).
    pub fn new(img: &'a Rgba) -> Result<Reference<'a>, ScoreError> {
        let pixels = u64::from(img.width) * u64::from(img.height);
        let kind = if pixels < ALWAYS_PRECOMPUTE_PIXELS {
            precompute(img, None)?
        } else {
            let bytes = pixels * PRECOMPUTED_BYTES_PER_PIXEL;
            match (bytes <= MAX_PRECOMPUTED_BYTES)
                .then(|| SCORING.try_reserve(bytes))
                .flatten()
            {
                Some(held) => precompute(img, Some(held))?,
                None => RefKind::Strips(&img.data),
            }
        };
        Ok(Reference {
            width: img.width,
            height: img.height,
            descriptor: descriptor(img),
            kind,
        })
    }

    /// A precomputed reference that does not borrow `img`, for small images only (the model's
    /// probe mosaic): larger ones are refused rather than held outside the budget.
    pub fn precomputed(img: &Rgba) -> Result<Reference<'static>, ScoreError> {
        if u64::from(img.width) * u64::from(img.height) >= ALWAYS_PRECOMPUTE_PIXELS {
            return Err(ScoreError::Metric(format!(
                "{}x{} is too large to precompute outside the scoring budget",
                img.width, img.height
            )));
        }
        Ok(Reference {
            width: img.width,
            height: img.height,
            descriptor: descriptor(img),
            kind: precompute(img, None)?,
        })
    }

    /// Whether comparisons use a precomputed reference (else they run in strips).
    pub fn is_precomputed(&self) -> bool {
        matches!(self.kind, RefKind::Precomputed { .. })
    }

    /// SSIMULACRA2 of decoded RGBA pixels of the same size (100 = identical).
    pub fn score(&self, rgba: &[u8], width: u32, height: u32) -> Result<f64, ScoreError> {
        if (width, height) != (self.width, self.height) {
            return Err(ScoreError::Metric(format!(
                "candidate is {width}x{height}, reference {}x{}",
                self.width, self.height
            )));
        }
        let candidate = slice(rgba, width, height, self.descriptor)?;
        let score = match &self.kind {
            RefKind::Precomputed { reference, .. } => reference.compare(&candidate),
            RefKind::Strips(data) => {
                let _working_set = SCORING.reserve(strip_bytes(width, height));
                let reference = slice(data, width, height, self.descriptor)?;
                fast_ssim2::compute_ssimulacra2_with_config(
                    &reference,
                    &candidate,
                    &Ssimulacra2Config::strips(STRIP_ROWS),
                )
            }
        };
        score.map_err(|e| ScoreError::Metric(e.to_string()))
    }
}

/// Decodes a candidate the way a browser would, to RGBA.
pub fn decode_as_browser(codec: Codec, bytes: &[u8]) -> Result<Rgba, ScoreError> {
    let undecodable = |reason: String| ScoreError::Decode { codec, reason };
    let rgba = match codec {
        Codec::Jpeg => decode_jpeg(bytes)?,
        Codec::Webp => {
            let img = webp::Decoder::new(bytes)
                .decode()
                .ok_or_else(|| undecodable("libwebp refused it".into()))?;
            let (w, h) = (img.width(), img.height());
            let data = if img.is_alpha() {
                img.to_vec()
            } else {
                img.chunks_exact(3)
                    .flat_map(|p| [p[0], p[1], p[2], 255])
                    .collect()
            };
            Rgba {
                width: w,
                height: h,
                data,
            }
        }
        Codec::Avif => {
            let px = libavif::decode_rgb(bytes).map_err(|e| undecodable(format!("{e:?}")))?;
            Rgba {
                width: px.width(),
                height: px.height(),
                data: px.to_vec(),
            }
        }
        Codec::Png | Codec::Svg => return Err(ScoreError::NotScored(codec)),
    };
    if rgba.data.len() != rgba.width as usize * rgba.height as usize * 4 {
        return Err(undecodable("decoded a short image".into()));
    }
    Ok(rgba)
}

fn decode_jpeg(bytes: &[u8]) -> Result<Rgba, ScoreError> {
    // libjpeg reports fatal errors by unwinding through the mozjpeg crate.
    let result = catch_unwind(AssertUnwindSafe(|| -> std::io::Result<Rgba> {
        let d = mozjpeg::Decompress::new_mem(bytes)?;
        let (width, height) = (d.width() as u32, d.height() as u32);
        let mut s = d.rgba()?;
        let data = s.read_scanlines::<u8>()?;
        s.finish()?;
        Ok(Rgba {
            width,
            height,
            data,
        })
    }));
    match result {
        Ok(Ok(img)) => Ok(img),
        Ok(Err(e)) => Err(ScoreError::Decode {
            codec: Codec::Jpeg,
            reason: e.to_string(),
        }),
        Err(_) => Err(ScoreError::Decode {
            codec: Codec::Jpeg,
            reason: "libjpeg stopped with a fatal error".into(),
        }),
    }
}

/// A verified encode.
#[derive(Clone, Debug)]
pub struct Verified {
    pub encoded: Encoded,
    /// SSIMULACRA2 of the kept candidate (100 for lossless).
    pub score: f64,
    pub attempts: u8,
    pub in_band: bool,
    /// Quality of the first attempt (for the model's evaluation).
    pub first_quality: u8,
    pub first_score: f64,
    /// Time spent decoding and scoring candidates (the price of verification, beside the
    /// encodes).
    pub score_time: Duration,
}

/// Scores one candidate.
pub fn score_encoded(reference: &Reference, encoded: &Encoded) -> Result<f64, ScoreError> {
    if encoded.lossless {
        return Ok(100.0);
    }
    let decoded = decode_as_browser(encoded.codec, &encoded.bytes)?;
    reference.score(&decoded.data, decoded.width, decoded.height)
}

/// Searches qualities from `first` for a candidate in `band`; `encode(q)` makes one.
pub fn search(
    band: Band,
    codec: Codec,
    first: u8,
    reference: &Reference,
    mut encode: impl FnMut(u8) -> Result<Encoded, EncodeError>,
) -> Result<Verified, VerifyError> {
    let floor = floor(codec);
    let mut q = first.clamp(floor, 100);
    let mut tried: Vec<(u8, f64, Encoded)> = Vec::with_capacity(MAX_ATTEMPTS);
    let mut score_time = Duration::ZERO;
    for _ in 0..MAX_ATTEMPTS {
        let encoded = encode(q)?;
        let scoring = Instant::now();
        let score = score_encoded(reference, &encoded)?;
        score_time += scoring.elapsed();
        let lossless = encoded.lossless;
        tried.push((q, score, encoded));
        if band.contains(score) || lossless {
            break;
        }
        match next_quality(&tried, band, floor) {
            Some(next) => q = next,
            None => break,
        }
    }
    let attempts = tried.len() as u8;
    let (first_quality, first_score) = (tried[0].0, tried[0].1);
    let pick = best(&tried, band);
    let (_, score, encoded) = tried.swap_remove(pick);
    Ok(Verified {
        encoded,
        score,
        attempts,
        in_band: band.contains(score),
        first_quality,
        first_score,
        score_time,
    })
}

/// The next quality to try, or None when the search is over.
fn next_quality(tried: &[(u8, f64, Encoded)], band: Band, floor: u8) -> Option<u8> {
    let (q, score, _) = tried.last()?;
    // Highest quality still under the band, lowest quality already over it.
    let under = tried.iter().filter(|t| t.1 < band.lo).map(|t| t.0).max();
    let over = tried.iter().filter(|t| t.1 > band.hi).map(|t| t.0).min();
    let next = match (under, over) {
        (Some(lo), Some(hi)) if lo < hi => {
            if hi - lo <= 1 {
                return None;
            }
            // Bracketed: the secant estimate when it falls strictly inside, else the midpoint.
            secant(tried, band.target)
                .map(|e| e.round())
                .filter(|&e| e > f64::from(lo) && e < f64::from(hi))
                .map_or(lo + (hi - lo) / 2, |e| e as u8)
        }
        // Non-monotone: a lower quality scored over the band and a higher under it.
        (Some(_), Some(_)) => return None,
        _ => {
            // One side only: STEP, or more when the score is far from the target (the secant
            // through the last two tries once there are two), at most MAX_STEP at a time.
            let gap = band.target - score;
            let steps = (gap.abs() / TOLERANCE).round().max(1.0);
            let by_gap = f64::from(*q) + gap.signum() * (steps * f64::from(STEP));
            let estimate = secant(tried, band.target).unwrap_or(by_gap);
            let limit = f64::from(MAX_STEP);
            let wanted = estimate.clamp(f64::from(*q) - limit, f64::from(*q) + limit);
            let next = if gap > 0.0 {
                wanted.max(f64::from(*q) + f64::from(STEP))
            } else {
                wanted.min(f64::from(*q) - f64::from(STEP))
            };
            next.round().clamp(f64::from(floor), 100.0) as u8
        }
    };
    (!tried.iter().any(|t| t.0 == next)).then_some(next)
}

/// The quality where the line through the last two tries reaches `target`, when they differ.
fn secant(tried: &[(u8, f64, Encoded)], target: f64) -> Option<f64> {
    let [.., (q1, s1, _), (q2, s2, _)] = tried else {
        return None;
    };
    let (q1, q2) = (f64::from(*q1), f64::from(*q2));
    ((s2 - s1).abs() > 0.5).then(|| q2 + (target - s2) * (q2 - q1) / (s2 - s1))
}

/// Index of the candidate to keep: the smallest in band; else the smallest at or over the low
/// edge; else the highest score.
fn best(tried: &[(u8, f64, Encoded)], band: Band) -> usize {
    let smallest = |pred: &dyn Fn(f64) -> bool| {
        tried
            .iter()
            .enumerate()
            .filter(|(_, t)| pred(t.1))
            .min_by_key(|(_, t)| t.2.bytes.len())
            .map(|(i, _)| i)
    };
    smallest(&|s| band.contains(s))
        .or_else(|| smallest(&|s| s >= band.lo))
        .or_else(|| {
            tried
                .iter()
                .enumerate()
                .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
                .map(|(i, _)| i)
        })
        .unwrap_or(0)
}
