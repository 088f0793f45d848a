//! The variant matrix: which slots exist, how big each one is for a given source, which slots
//! share one encode, and the order the sidecar generates them in.
//!
//! A *slot* is an image-variant mask: the low six bits of a [`CapabilityMask`] (format,
//! viewport, density, Save-Data) with transfer encoding zero. Six bits make 64 positions, so a
//! set of slots is one `u64` ([`SlotSet`]); the 16 positions whose viewport bits are `11` are
//! never members. The raster matrix is 3 formats x 3 viewports x 2 densities x 2 Save-Data
//! = 36 slots; SVG adds one ([`SVG_SLOT`]) because a vector serves every viewport and density.

use crate::mask::{CapabilityMask, Density, ImageFormat, TransferEncoding, Viewport};

/// The one slot an SVG variant is stored under: SVG, desktop, 1x, Save-Data off (`0x0b`).
/// Selection serves it to any viewport and density.
pub const SVG_SLOT: CapabilityMask = CapabilityMask::new(
    ImageFormat::Svg,
    Viewport::Desktop,
    Density::X1,
    false,
    TransferEncoding::Identity,
);

/// A set of slots, bit `i` standing for slot mask `i`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SlotSet(u64);

/// Bit positions whose viewport bits are `11`: never slots.
const INVALID_SLOTS: u64 = {
    let mut bits = 0u64;
    let mut i = 0;
    while i < 64 {
        if (i >> 2) & 0b11 == 0b11 {
            bits |= 1 << i;
        }
        i += 1;
    }
    bits
};

/// Slots whose format bits are `11` (SVG) other than [`SVG_SLOT`].
const NON_CANONICAL_SVG: u64 = {
    let mut bits = 0u64;
    let mut i = 0;
    while i < 64 {
        if i & 0b11 == 0b11 && i != SVG_SLOT.bits() as usize {
            bits |= 1 << i;
        }
        i += 1;
    }
    bits
};

impl SlotSet {
    pub const EMPTY: SlotSet = SlotSet(0);
    /// The 36 raster slots.
    pub const ALL_RASTER: SlotSet = SlotSet(!INVALID_SLOTS & !(NON_CANONICAL_SVG | 1 << 0x0b));
    /// The 36 raster slots plus [`SVG_SLOT`]: 37.
    pub const ALL: SlotSet = SlotSet(Self::ALL_RASTER.0 | 1 << 0x0b);

    /// From raw bits; `None` when a bit names no slot.
    pub const fn from_bits(bits: u64) -> Option<SlotSet> {
        if bits & !Self::ALL.0 != 0 {
            None
        } else {
            Some(SlotSet(bits))
        }
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether the slot of `mask` (transfer encoding ignored) is in the set.
    pub const fn contains(self, mask: CapabilityMask) -> bool {
        self.0 & (1u64 << mask.slot().bits()) != 0
    }

    pub fn insert(&mut self, mask: CapabilityMask) {
        self.0 |= 1u64 << mask.slot().bits();
        self.0 &= Self::ALL.0;
    }

    pub fn remove(&mut self, mask: CapabilityMask) {
        self.0 &= !(1u64 << mask.slot().bits());
    }

    #[must_use]
    pub const fn union(self, other: SlotSet) -> SlotSet {
        SlotSet(self.0 | other.0)
    }

    #[must_use]
    pub const fn difference(self, other: SlotSet) -> SlotSet {
        SlotSet(self.0 & !other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// Slots in ascending mask order.
    pub fn iter(self) -> impl Iterator<Item = CapabilityMask> {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let i = rest.trailing_zeros();
            rest &= rest - 1;
            CapabilityMask::from_bits(i).ok()
        })
    }
}

impl core::fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|m| m.bits()))
            .finish()
    }
}

impl FromIterator<CapabilityMask> for SlotSet {
    fn from_iter<T: IntoIterator<Item = CapabilityMask>>(iter: T) -> Self {
        let mut set = SlotSet::EMPTY;
        for m in iter {
            set.insert(m);
        }
        set
    }
}

/// Target widths per viewport class at 1x, in pixels; 0 means "do not resize" (defaults
/// `--mobile-width 480`, `--tablet-width 768`, `--desktop-width 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewportWidths {
    pub mobile: u32,
    pub tablet: u32,
    pub desktop: u32,
}

impl Default for ViewportWidths {
    fn default() -> Self {
        ViewportWidths {
            mobile: 480,
            tablet: 768,
            desktop: 0,
        }
    }
}

impl ViewportWidths {
    pub const fn for_viewport(self, viewport: Viewport) -> u32 {
        match viewport {
            Viewport::Mobile => self.mobile,
            Viewport::Tablet => self.tablet,
            Viewport::Desktop => self.desktop,
        }
    }
}

/// The shortest side a resize may produce. Rounding a side of `n` px moves the aspect ratio by
/// up to `1/(2n)`: 3% at 16 px, 50% at 1 px (a 65000x8 strip at 480 px wide would be 480x1).
pub const MIN_SIDE: u32 = 16;

/// Output size of a slot for a `width` x `height` source: the viewport's target width times
/// the density, never wider than the source (no upscaling), aspect ratio kept. A target width
/// that would make a side shorter than [`MIN_SIDE`] is raised to the narrowest width that
/// keeps both sides at least that long; a source already shorter than that is not resized.
/// SVG keeps the source size (it scales by itself).
pub fn slot_size(
    slot: CapabilityMask,
    width: u32,
    height: u32,
    widths: ViewportWidths,
) -> (u32, u32) {
    let target = widths.for_viewport(slot.viewport());
    if slot.format() == ImageFormat::Svg || target == 0 || width == 0 || height == 0 {
        return (width, height);
    }
    let (w, h) = (u64::from(width), u64::from(height));
    let min = u64::from(MIN_SIDE);
    // The narrowest width whose height, rounded, is still MIN_SIDE px: ceil(min * w / h).
    let narrowest = min.max((min * w).div_ceil(h));
    let wanted = (u64::from(target) * u64::from(slot.density().factor())).max(narrowest);
    if wanted >= w {
        return (width, height);
    }
    // Round half up, in integers so host and wasm agree to the pixel.
    let new_h = (h * wanted + w / 2) / w;
    (wanted as u32, new_h as u32)
}

/// One encode that serves every slot in `slots`: same format, Save-Data and pixel size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeJob {
    pub format: ImageFormat,
    pub save_data: bool,
    pub width: u32,
    pub height: u32,
    /// The slot the job is stored under (the first wanted slot with this size) ...
    pub primary: CapabilityMask,
    /// ... and every wanted slot it also answers for, `primary` included.
    pub slots: SlotSet,
}

/// Groups `wanted` slots (in the given order) into encodes: slots that come out at the same
/// format, Save-Data and pixel size are one encode, stored once. Jobs keep the order of their
/// first slot, so the slot a client asked for is encoded first.
pub fn plan_encodes(
    wanted: &[CapabilityMask],
    width: u32,
    height: u32,
    widths: ViewportWidths,
) -> Vec<EncodeJob> {
    let mut jobs: Vec<EncodeJob> = Vec::with_capacity(wanted.len());
    for &slot in wanted {
        let slot = slot.slot();
        let (w, h) = slot_size(slot, width, height, widths);
        let same = jobs.iter_mut().find(|j| {
            j.format == slot.format()
                && j.save_data == slot.save_data()
                && (j.width, j.height) == (w, h)
        });
        match same {
            Some(job) => job.slots.insert(slot),
            None => jobs.push(EncodeJob {
                format: slot.format(),
                save_data: slot.save_data(),
                width: w,
                height: h,
                primary: slot,
                slots: [slot].into_iter().collect(),
            }),
        }
    }
    jobs
}

/// The proactive switches (`--proactive-image-variants`, `--no-proactive-*-variants`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProactiveFlags {
    /// Generate siblings at all. Off: only the slot the client asked for.
    pub enabled: bool,
    pub viewport: bool,
    pub save_data: bool,
    pub density: bool,
}

impl ProactiveFlags {
    /// The defaults: proactive generation off; each dimension on once it is enabled.
    pub const DEFAULT: ProactiveFlags = ProactiveFlags {
        enabled: false,
        viewport: true,
        save_data: true,
        density: true,
    };
    /// Everything: what a warmup sentinel asks for.
    pub const FULL: ProactiveFlags = ProactiveFlags {
        enabled: true,
        viewport: true,
        save_data: true,
        density: true,
    };
}

/// Slots to generate after a notify for `requested`, the requested slot first, then its
/// siblings in the generation loop's order (Save-Data off/on, 1x/2x, mobile/tablet/desktop,
/// WebP/AVIF/original). With proactive generation off only the requested slot is returned
/// (only the exact format requested: the client told us which one it wants). SVG is never in this list: whether a source
/// gets one depends on its content, which only the sidecar knows.
pub fn generation_order(requested: CapabilityMask, flags: ProactiveFlags) -> Vec<CapabilityMask> {
    let requested = requested.slot();
    let mut order = Vec::with_capacity(36);
    if requested.format() != ImageFormat::Svg {
        order.push(requested);
    }
    if !flags.enabled {
        return order;
    }
    for save_data in [false, true] {
        if save_data != requested.save_data() && !flags.save_data {
            continue;
        }
        for density in Density::ALL {
            if density != requested.density() && !flags.density {
                continue;
            }
            for viewport in Viewport::ALL {
                if viewport != requested.viewport() && !flags.viewport {
                    continue;
                }
                for format in ImageFormat::RASTER {
                    let slot = CapabilityMask::new(
                        format,
                        viewport,
                        density,
                        save_data,
                        TransferEncoding::Identity,
                    );
                    if slot != requested {
                        order.push(slot);
                    }
                }
            }
        }
    }
    order
}

/// Every raster slot in the generation loop's order: what a warmup sentinel generates.
pub fn full_matrix_order() -> Vec<CapabilityMask> {
    let mut order = generation_order(
        CapabilityMask::DEFAULT.with_format(ImageFormat::Webp),
        ProactiveFlags::FULL,
    );
    // Put the loop's natural first slot first: mobile/WebP/1x/Save-Data off.
    order.sort_by_key(|m| {
        (
            m.save_data(),
            m.density() as u8,
            m.viewport() as u8,
            raster_rank(m.format()),
        )
    });
    order
}

fn raster_rank(format: ImageFormat) -> u8 {
    match format {
        ImageFormat::Webp => 0,
        ImageFormat::Avif => 1,
        ImageFormat::Original => 2,
        ImageFormat::Svg => 3,
    }
}
