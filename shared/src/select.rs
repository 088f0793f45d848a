//! Best-fit selection (the fallback chain of docs/architecture.md) and the decision to ask for generation.
//!
//! For a client profile and the set of stored slots, the chain is:
//!
//! 0. **SVG**: when the client lists `image/svg+xml` and an SVG variant exists. A vector is
//!    right for every viewport and density, and the sidecar keeps one only when it is smaller
//!    than the source and passes the fidelity check.
//! 1. **Exact**: the client's slot.
//! 2. **Density 1x**: the same at 1x (a 1x image on a 2x screen is softer, but loads faster).
//! 3. **Format downgrade**: AVIF -> WebP -> original, each at the client's density then at 1x,
//!    skipping formats the client did not accept.
//! 4. **Baseline**: original format, 1x, same viewport and Save-Data (the last candidate of 3,
//!    named apart because it is the last format step that keeps the client's viewport).
//! 5. **Default**: slot `0x08`, the desktop-size optimized original.
//! 6. Otherwise the **origin** serves the original.
//!
//! Every candidate's format is in the client's [`AcceptedFormats`]: the original always is,
//! WebP/AVIF/SVG only when the client listed them. The property tests hold us to that.

use crate::headers::{AcceptedFormats, ClientProfile};
use crate::mask::{CapabilityMask, Density, ImageFormat};
use crate::matrix::{SlotSet, SVG_SLOT};

/// Which step of the chain found the variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FallbackStep {
    Svg,
    Exact,
    Density1x,
    FormatDowngrade,
    Baseline,
    Default,
}

impl FallbackStep {
    pub const ALL: [FallbackStep; 6] = [
        Self::Svg,
        Self::Exact,
        Self::Density1x,
        Self::FormatDowngrade,
        Self::Baseline,
        Self::Default,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Svg => "svg",
            Self::Exact => "exact",
            Self::Density1x => "density_1x",
            Self::FormatDowngrade => "format_downgrade",
            Self::Baseline => "baseline",
            Self::Default => "default",
        }
    }

    /// Whether the client got less than its own slot (a "fallback hit").
    pub const fn is_fallback(self) -> bool {
        !matches!(self, Self::Svg | Self::Exact)
    }
}

/// What to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// A stored variant, and the step that found it.
    Variant {
        slot: CapabilityMask,
        step: FallbackStep,
    },
    /// Nothing stored fits: let the request through to the origin.
    Origin,
}

/// Picks the best stored slot for `profile` from `stored`.
pub fn select(stored: SlotSet, profile: &ClientProfile) -> Selection {
    select_for(stored, profile.mask, profile.accepts)
}

/// [`select`] on a bare mask and accepted-format set.
pub fn select_for(stored: SlotSet, mask: CapabilityMask, accepts: AcceptedFormats) -> Selection {
    if stored.is_empty() {
        return Selection::Origin;
    }
    let hit = |slot: CapabilityMask, step| {
        (stored.contains(slot) && accepts.contains(slot.format())).then_some(Selection::Variant {
            slot: slot.slot(),
            step,
        })
    };
    if let Some(s) = hit(SVG_SLOT, FallbackStep::Svg) {
        return s;
    }
    let wanted = mask.slot();
    // The client's own format is the best it accepts; anything else in the mask is a caller bug
    // we refuse to act on rather than serve an unaccepted format.
    let format = if accepts.contains(wanted.format()) && wanted.format() != ImageFormat::Svg {
        wanted.format()
    } else {
        accepts.best_raster()
    };
    let wanted = wanted.with_format(format);
    if let Some(s) = hit(wanted, FallbackStep::Exact) {
        return s;
    }
    if wanted.density() == Density::X2 {
        if let Some(s) = hit(wanted.with_density(Density::X1), FallbackStep::Density1x) {
            return s;
        }
    }
    for &lower in lower_formats(format) {
        let step = if lower == ImageFormat::Original {
            FallbackStep::Baseline
        } else {
            FallbackStep::FormatDowngrade
        };
        let at_density = wanted.with_format(lower);
        if at_density.density() == Density::X2 {
            // Original at 2x is not the baseline (which is 1x): it is still a downgrade.
            if let Some(s) = hit(at_density, FallbackStep::FormatDowngrade) {
                return s;
            }
        }
        if let Some(s) = hit(at_density.with_density(Density::X1), step) {
            return s;
        }
    }
    if let Some(s) = hit(CapabilityMask::DEFAULT, FallbackStep::Default) {
        return s;
    }
    Selection::Origin
}

/// Formats below `format` in the chain AVIF -> WebP -> original.
fn lower_formats(format: ImageFormat) -> &'static [ImageFormat] {
    match format {
        ImageFormat::Avif => &[ImageFormat::Webp, ImageFormat::Original],
        ImageFormat::Webp => &[ImageFormat::Original],
        ImageFormat::Original | ImageFormat::Svg => &[],
    }
}

/// Whether a request should ask the sidecar to generate: its exact slot is neither stored nor
/// known to be not worth storing (`lost`), and the source was not refused.
pub fn wants_generation(
    stored: SlotSet,
    lost: SlotSet,
    refused: bool,
    profile: &ClientProfile,
) -> bool {
    if refused {
        return false;
    }
    let slot = profile.mask.slot();
    !stored.contains(slot) && !lost.contains(slot)
}
