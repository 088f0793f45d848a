//! The image types every other layer shares: pixels ([`Rgba`], [`Frame`], [`Animation`]), what a source is
//! ([`SourceFormat`]) and what it shows ([`ContentClass`], [`ImageStats`]).
//!
//! They sit below everything else in the crate so that the flow is one way:
//! `pipeline` -> `quality` -> `encode` -> `image_types`. Nothing here imports another module
//! of the crate.

pub mod classify;

pub use classify::{ContentClass, ImageStats};

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

/// One frame of an animation, full canvas, with its display time.
#[derive(Clone, Debug)]
pub struct Frame {
    pub image: Rgba,
    /// How long the frame is shown, as browsers show the source's (docs/sidecar.md).
    pub delay_ms: u32,
}

/// An animation: every frame, and how many times it plays.
#[derive(Clone, Debug)]
pub struct Animation {
    pub frames: Vec<Frame>,
    /// Plays in all, counted as WebP's loop count is: 0 forever, n > 0 exactly n times.
    pub loop_count: u16,
}

/// Formats the pipeline decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl SourceFormat {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }
}
