//! Steps 2-7, once per source: sniff, limits, decode, orient and colour, classify, denoise.
//! What comes out ([`Prepared`]) is resized and encoded any number of times by
//! [`super::generate`].

use super::limits::{self, Limits};
use super::refusal::Refusal;
use super::{color, decode, denoise, orient, sniff};
use crate::image_types::classify;
use crate::image_types::{Animation, ContentClass, ImageStats, Rgba, SourceFormat};
use std::time::{Duration, Instant};

/// A source after steps 2-7, ready to be resized and encoded any number of times.
#[derive(Debug)]
pub struct Prepared {
    pub format: SourceFormat,
    pub source_bytes: u64,
    /// Oriented, sRGB, denoised when noisy.
    pub image: Rgba,
    /// Every frame and the loop count, for animations.
    pub frames: Option<Animation>,
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
    limits::check(bytes, format, limits)?;
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
