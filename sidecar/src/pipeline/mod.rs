//! The pipeline, as named, ordered steps (each a module, each testable alone):
//!
//! 1. fetch (the service's job: `crate::origin`)
//! 2. [`sniff`]: format from magic bytes
//! 3. [`limits`]: limits from headers, before decoding
//! 4. [`decode`]: once, to RGBA
//! 5. [`orient`] + [`color`]: EXIF orientation, ICC to sRGB, metadata dropped
//! 6. classify (`crate::image_types::classify`, shared with the quality model): photo /
//!    screenshot / illustration / noisy
//! 7. [`denoise`]: noisy sources only
//! 8. per output size: [`resize`] once
//! 9. per missing format at that size: the first quality, then encode and verify
//!    (`crate::quality`, `crate::encode`)
//! 10. size gate: a variant not smaller than the source is dropped, and that is remembered
//! 11. [`vectorize`]: eligible flat art also gets one SVG, when faithful and smaller
//! 12. store (the service's job: `crate::store`)
//!
//! [`prepare()`] runs steps 2-7 once per source; [`generate()`] runs 8-10 for the wanted slots,
//! one [`generate`] size at a time; [`generate_svg`] runs 11.
//!
//! Files depend downward only: the steps on [`refusal`] (limits and decode on [`gif_blocks`]
//! too, the GIF walk both read), [`prepare`] on the steps,
//! [`generate`] on [`prepare`], [`resize`], [`vectorize`] and the layers below the pipeline.

pub mod color;
pub mod decode;
pub mod denoise;
pub mod generate;
pub mod gif_blocks;
pub mod limits;
pub mod orient;
pub mod prepare;
pub mod refusal;
pub mod resize;
pub mod sniff;
pub mod vectorize;

pub use generate::{
    codec_for, generate, generate_svg, smallest_full_size, Encoders, Outcome, Targets, Variant,
    VariantError,
};
pub use prepare::{prepare, Prepared};
pub use refusal::Refusal;
