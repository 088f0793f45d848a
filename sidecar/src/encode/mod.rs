//! Encoders: one function per output codec, each taking RGBA pixels and returning bytes.
//! The AVIF encoder sits behind [`avif::AvifEncoder`] so libaom (default) and rav1e (the
//! `ravif` feature) can be swapped and compared.

pub mod avif;
pub mod jpeg;
pub mod png;
pub mod webp;

use crate::image_types::ContentClass;
use serde::Serialize;

/// The codec that produced a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Webp,
    Avif,
    Jpeg,
    Png,
    Svg,
}

impl Codec {
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Webp => "image/webp",
            Self::Avif => "image/avif",
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Svg => "image/svg+xml",
        }
    }

    pub const fn extension(self) -> &'static str {
        match self {
            Self::Webp => "webp",
            Self::Avif => "avif",
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Svg => "svg",
        }
    }

    pub const fn name(self) -> &'static str {
        self.extension()
    }

    /// The largest width or height the format can hold, where that is below any size the
    /// decode limits let through: a WebP's VP8/VP8L header has 14 bits per side, a baseline
    /// JPEG's 16 (libjpeg refuses beyond 65,500). Outputs larger than this are not attempted.
    pub const fn max_side(self) -> Option<u32> {
        match self {
            Self::Webp => Some(16_383),
            Self::Jpeg => Some(65_500),
            Self::Avif | Self::Png | Self::Svg => None,
        }
    }

    /// The codec a [`Self::name`] names.
    pub fn from_name(name: &str) -> Option<Codec> {
        [Self::Webp, Self::Avif, Self::Jpeg, Self::Png, Self::Svg]
            .into_iter()
            .find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an encoder produced nothing. The encoders are deterministic: the same pixels and
/// settings fail the same way again, so the reason is worth keeping with the slot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{codec} encoder: {reason}")]
pub struct EncodeError {
    pub codec: Codec,
    pub reason: String,
}

impl EncodeError {
    pub fn new(codec: Codec, reason: impl Into<String>) -> EncodeError {
        EncodeError {
            codec,
            reason: reason.into(),
        }
    }
}

/// Encoded bytes and how they were made.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub codec: Codec,
    pub bytes: Vec<u8>,
    /// Encoder quality used (0-100); 100 for lossless.
    pub quality: u8,
    pub lossless: bool,
}

/// What an encoder may adapt to besides the quality number.
#[derive(Clone, Copy, Debug)]
pub struct EncodeHints {
    pub class: ContentClass,
    pub grayscale: bool,
    pub opaque: bool,
}

impl EncodeHints {
    /// Sharp edges and flat colour: keep full chroma resolution and try lossless.
    pub fn is_graphic(self) -> bool {
        matches!(
            self.class,
            ContentClass::Screenshot | ContentClass::Illustration
        )
    }
}
