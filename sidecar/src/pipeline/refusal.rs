//! Why a source is not optimized: the one error type of steps 2-8, kept in its own file so the
//! step modules and the code that runs them depend on it, not on each other.

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
    #[error(
        "{frames} frames of {pixels} pixels in all, over the {limit}-pixel limit for an animation"
    )]
    TooManyAnimationPixels {
        frames: u32,
        pixels: u64,
        limit: u64,
    },
    #[error("{frames} frames, over the {limit}-frame limit")]
    TooManyFrames { frames: u32, limit: u32 },
    #[error("zero width or height")]
    ZeroSize,
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("internal: {0}")]
    Internal(String),
}
