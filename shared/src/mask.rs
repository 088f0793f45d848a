//! The 32-bit capability mask (layout in docs/architecture.md and `shared/tests/mask_golden.rs`).
//!
//! | bits | field             | values                                        |
//! |------|-------------------|-----------------------------------------------|
//! | 0-1  | image format      | 00 original, 01 WebP, 10 AVIF, 11 SVG          |
//! | 2-3  | viewport class    | 00 mobile, 01 tablet, 10 desktop (11 invalid)  |
//! | 4    | pixel density     | 0 = 1x, 1 = 2x+                               |
//! | 5    | Save-Data         | 0 off, 1 on                                    |
//! | 6-7  | transfer encoding | 00 identity, 01 gzip, 10 brotli (11 invalid)   |
//! | 8-31 | reserved          | 0                                             |
//!
//! Why a bitmask and not a hash of headers: fallback is computable (clear a bit, try again),
//! the value is constant-size, and `0x09` can be read by a person (WebP, desktop, 1x).
//!
//! Two values look alike and are not: [`CapabilityMask::DEFAULT`] is `0x08` (desktop, original,
//! 1x, identity: the original as first stored, the most common client), while
//! `CapabilityMask::from_bits(0)` is mobile/original/1x: the most *constrained* client.

use core::fmt;

/// Image format: bits 0-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ImageFormat {
    /// The source's own format (JPEG stays JPEG, PNG stays PNG), possibly re-encoded smaller.
    Original = 0,
    Webp = 1,
    Avif = 2,
    /// A vectorized variant. Never derived from a request; the sidecar may store one.
    Svg = 3,
}

/// Viewport class: bits 2-3. The value 3 is not a class and makes a mask invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Viewport {
    Mobile = 0,
    Tablet = 1,
    Desktop = 2,
}

/// Pixel density: bit 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Density {
    X1 = 0,
    /// Any device pixel ratio of 1.5 or more.
    X2 = 1,
}

/// Transfer encoding: bits 6-7. Images never vary on it (they are already compressed); it is
/// carried so one mask type could serve every resource kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TransferEncoding {
    Identity = 0,
    Gzip = 1,
    Brotli = 2,
}

impl ImageFormat {
    /// Every format, in bit order.
    pub const ALL: [ImageFormat; 4] = [Self::Original, Self::Webp, Self::Avif, Self::Svg];
    /// The raster formats of the variant matrix.
    pub const RASTER: [ImageFormat; 3] = [Self::Webp, Self::Avif, Self::Original];

    const fn from_bits(bits: u32) -> Self {
        match bits & 0b11 {
            0 => Self::Original,
            1 => Self::Webp,
            2 => Self::Avif,
            _ => Self::Svg,
        }
    }

    /// Lower-case name used in logs, headers and the CLI.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Original => "original",
            Self::Webp => "webp",
            Self::Avif => "avif",
            Self::Svg => "svg",
        }
    }
}

impl Viewport {
    /// Every class, in bit order.
    pub const ALL: [Viewport; 3] = [Self::Mobile, Self::Tablet, Self::Desktop];

    const fn from_bits(bits: u32) -> Option<Self> {
        match bits & 0b11 {
            0 => Some(Self::Mobile),
            1 => Some(Self::Tablet),
            2 => Some(Self::Desktop),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::Tablet => "tablet",
            Self::Desktop => "desktop",
        }
    }
}

impl Density {
    pub const ALL: [Density; 2] = [Self::X1, Self::X2];

    /// The factor the viewport's target width is multiplied by.
    pub const fn factor(self) -> u32 {
        match self {
            Self::X1 => 1,
            Self::X2 => 2,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::X1 => "1x",
            Self::X2 => "2x",
        }
    }
}

impl TransferEncoding {
    const fn from_bits(bits: u32) -> Option<Self> {
        match bits & 0b11 {
            0 => Some(Self::Identity),
            1 => Some(Self::Gzip),
            2 => Some(Self::Brotli),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Brotli => "brotli",
        }
    }
}

/// Why a `u32` is not a capability mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskError {
    /// Bits 2-3 are `11`.
    InvalidViewport,
    /// Bits 6-7 are `11`.
    InvalidTransferEncoding,
    /// One of bits 8-31 is set.
    ReservedBitsSet,
}

impl fmt::Display for MaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidViewport => "viewport bits 2-3 are 11, which is no viewport class",
            Self::InvalidTransferEncoding => "transfer-encoding bits 6-7 are 11 (reserved)",
            Self::ReservedBitsSet => "reserved bits 8-31 are not zero",
        })
    }
}

/// A validated capability mask. Construct it from fields, from a request
/// ([`crate::ClientProfile::from_headers`]) or from raw bits ([`CapabilityMask::from_bits`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapabilityMask(u32);

const FORMAT_SHIFT: u32 = 0;
const VIEWPORT_SHIFT: u32 = 2;
const DENSITY_SHIFT: u32 = 4;
const SAVE_DATA_SHIFT: u32 = 5;
const TRANSFER_SHIFT: u32 = 6;

impl CapabilityMask {
    /// `0x08`: desktop, original format, 1x, Save-Data off, identity. The mask the original
    /// is known by before any variant exists, and the last step of the fallback chain.
    pub const DEFAULT: CapabilityMask = CapabilityMask::new(
        ImageFormat::Original,
        Viewport::Desktop,
        Density::X1,
        false,
        TransferEncoding::Identity,
    );

    /// Sentinel sent in a notify to ask for the whole variant matrix (hot URL warmup). It is
    /// not a valid mask (viewport bits are `11`), so it can never collide with one.
    pub const WARMUP_SENTINEL: u32 = 0xFFFF_FFFE;

    /// Bits that describe an image variant (format, viewport, density, Save-Data). A stored
    /// image variant is identified by these six bits; the transfer-encoding bits are zero.
    pub const SLOT_BITS: u32 = 0x3F;

    /// Builds a mask from its fields.
    pub const fn new(
        format: ImageFormat,
        viewport: Viewport,
        density: Density,
        save_data: bool,
        transfer: TransferEncoding,
    ) -> Self {
        CapabilityMask(
            (format as u32) << FORMAT_SHIFT
                | (viewport as u32) << VIEWPORT_SHIFT
                | (density as u32) << DENSITY_SHIFT
                | (save_data as u32) << SAVE_DATA_SHIFT
                | (transfer as u32) << TRANSFER_SHIFT,
        )
    }

    /// Decodes raw bits, refusing reserved values. `from_bits(0)` is mobile/original/1x.
    pub const fn from_bits(bits: u32) -> Result<Self, MaskError> {
        if bits & !0xFF != 0 {
            return Err(MaskError::ReservedBitsSet);
        }
        if Viewport::from_bits(bits >> VIEWPORT_SHIFT).is_none() {
            return Err(MaskError::InvalidViewport);
        }
        if TransferEncoding::from_bits(bits >> TRANSFER_SHIFT).is_none() {
            return Err(MaskError::InvalidTransferEncoding);
        }
        Ok(CapabilityMask(bits))
    }

    /// The raw 32-bit value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn format(self) -> ImageFormat {
        ImageFormat::from_bits(self.0 >> FORMAT_SHIFT)
    }

    pub const fn viewport(self) -> Viewport {
        match Viewport::from_bits(self.0 >> VIEWPORT_SHIFT) {
            Some(v) => v,
            // Unreachable: every constructor validates the viewport bits.
            None => Viewport::Desktop,
        }
    }

    pub const fn density(self) -> Density {
        if self.0 >> DENSITY_SHIFT & 1 == 1 {
            Density::X2
        } else {
            Density::X1
        }
    }

    pub const fn save_data(self) -> bool {
        self.0 >> SAVE_DATA_SHIFT & 1 == 1
    }

    pub const fn transfer(self) -> TransferEncoding {
        match TransferEncoding::from_bits(self.0 >> TRANSFER_SHIFT) {
            Some(t) => t,
            None => TransferEncoding::Identity,
        }
    }

    /// The same mask with another format.
    pub const fn with_format(self, format: ImageFormat) -> Self {
        CapabilityMask(self.0 & !(0b11 << FORMAT_SHIFT) | (format as u32) << FORMAT_SHIFT)
    }

    /// The same mask with another density.
    pub const fn with_density(self, density: Density) -> Self {
        CapabilityMask(self.0 & !(1 << DENSITY_SHIFT) | (density as u32) << DENSITY_SHIFT)
    }

    /// The image-variant part of the mask: transfer encoding cleared (images are stored once,
    /// already compressed). This is the mask a stored image variant is known by.
    pub const fn slot(self) -> CapabilityMask {
        CapabilityMask(self.0 & Self::SLOT_BITS)
    }
}

impl Default for CapabilityMask {
    /// `0x08`, not `0`: see the module docs.
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `0x09`: two lower-case hex digits with the `0x` prefix, as in the debug header.
impl fmt::LowerHex for CapabilityMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(10);
        self.push_hex(&mut text);
        f.write_str(&text)
    }
}

impl CapabilityMask {
    /// Appends what `{:x}` writes (`0x09`) without `core::fmt`: the filter's debug header
    /// writes one or two per image request.
    pub fn push_hex(&self, out: &mut String) {
        out.push_str("0x");
        crate::hex::push_u32(out, self.0, 2);
    }
}

/// `0x09 (webp, desktop, 1x, save-data off, identity)`.
impl fmt::Display for CapabilityMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:x} ({}, {}, {}, save-data {}, {})",
            self,
            self.format().name(),
            self.viewport().name(),
            self.density().name(),
            if self.save_data() { "on" } else { "off" },
            self.transfer().name()
        )
    }
}

impl fmt::Debug for CapabilityMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapabilityMask({self})")
    }
}
