//! From request headers to a [`ClientProfile`]: the capability mask plus the formats the
//! client accepts and the reasons behind each field.
//!
//! Runs on every image request inside the wasm filter, so it takes borrowed byte slices,
//! allocates nothing, and cannot panic on any input (a property test feeds it random bytes).
//!
//! The rules, in the order they are applied (docs/architecture.md, "The capability mask"):
//!
//! * **Format**: `Accept` elements are compared as whole media types, case-insensitively;
//!   `q=0` refuses a type, and a refusal wins over an acceptance of the same type. Wildcards
//!   (`image/*`, `*/*`) count for nothing: Safari 13 sent `image/*` and could not decode WebP.
//!   The mask carries the best accepted format: AVIF, else WebP, else original.
//! * **Viewport**: a viewport-width hint (`Sec-CH-Viewport-Width`, else `Viewport-Width`) wins:
//!   <= 600 CSS px is mobile, <= 1024 tablet, else desktop. These are 1.25x and 1.33x the mobile
//!   and tablet variant widths (480, 768), so a class never serves an image much narrower than
//!   the viewport. Then `Sec-CH-UA-Mobile: ?1` means mobile. Then the `User-Agent`: tablet
//!   markers are tested before mobile ones because iPad and Android-tablet UAs also say
//!   "Mobile"/"Android" (an Android UA without "Mobi" is a tablet, except Opera Mini, a phone
//!   browser that omits it); `Sec-CH-UA-Mobile: ?0` overrides a mobile UA (Chrome's "request
//!   desktop site"). No usable signal means desktop, the most common client.
//! * **Density**: a DPR hint (`Sec-CH-DPR`, else `DPR`) of 1.5 or more is 2x. Without one, only
//!   iPhone/iPad/iPod UAs are taken as 2x: every Apple device that still sends such a UA is
//!   Retina, while Android and desktop ratios vary, and we ask for the hint with `Accept-CH`.
//! * **Save-Data**: `on`, case-insensitive.
//! * **Transfer encoding**: `br`, else `gzip`/`x-gzip`, else identity (`*` counts for nothing).
//!
//! For single-valued headers the first occurrence wins; `Accept` and `Accept-Encoding` are
//! lists, so every occurrence contributes. Values are trimmed; an unparsable `Sec-CH-*` hint
//! falls back to its legacy twin (`DPR`, `Viewport-Width`) and then to the User-Agent. Numbers
//! are Rust float syntax (`2`, `2.625`, `.5`, `1e0`); NaN, infinities, zero and negatives are
//! ignored. The `q` parameter name is case-insensitive.

use crate::mask::{CapabilityMask, Density, ImageFormat, TransferEncoding, Viewport};

/// Set of formats a client accepts. The original is always accepted: it is what the URL
/// serves without us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AcceptedFormats(u8);

impl AcceptedFormats {
    /// Only the original.
    pub const ORIGINAL_ONLY: AcceptedFormats = AcceptedFormats(1 << ImageFormat::Original as u8);
    /// Every format (for tests and tools).
    pub const ALL: AcceptedFormats = AcceptedFormats(0b1111);

    pub const fn contains(self, format: ImageFormat) -> bool {
        self.0 & (1 << format as u8) != 0
    }

    #[must_use]
    pub const fn with(self, format: ImageFormat) -> Self {
        AcceptedFormats(self.0 | 1 << format as u8)
    }

    /// The best raster format in this set: AVIF, else WebP, else the original.
    pub const fn best_raster(self) -> ImageFormat {
        if self.contains(ImageFormat::Avif) {
            ImageFormat::Avif
        } else if self.contains(ImageFormat::Webp) {
            ImageFormat::Webp
        } else {
            ImageFormat::Original
        }
    }

    pub const fn bits(self) -> u8 {
        self.0
    }
}

/// Which signal decided the viewport class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewportReason {
    /// `Sec-CH-Viewport-Width` or `Viewport-Width`.
    WidthHint,
    /// `Sec-CH-UA-Mobile: ?1`.
    MobileHint,
    /// A tablet marker in the User-Agent.
    UserAgentTablet,
    /// A mobile marker in the User-Agent.
    UserAgentMobile,
    /// A mobile UA overridden by `Sec-CH-UA-Mobile: ?0`.
    MobileHintOverride,
    /// Nothing said otherwise.
    Default,
}

/// Which signal decided the pixel density.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DensityReason {
    /// `Sec-CH-DPR` or `DPR`.
    DprHint,
    /// An iPhone/iPad/iPod User-Agent.
    UserAgentApple,
    /// Nothing said otherwise.
    Default,
}

/// Request headers the profile read (what `rendition mask` reports). The `Vary` a response gets
/// is the fixed list in `crate::response::VARY`, not this set: a cache must key on every header
/// that could change the mask, including the ones this request did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UsedHeaders(u16);

impl UsedHeaders {
    pub const ACCEPT: u16 = 1 << 0;
    pub const USER_AGENT: u16 = 1 << 1;
    pub const SAVE_DATA: u16 = 1 << 2;
    pub const ACCEPT_ENCODING: u16 = 1 << 3;
    pub const SEC_CH_DPR: u16 = 1 << 4;
    pub const DPR: u16 = 1 << 5;
    pub const SEC_CH_VIEWPORT_WIDTH: u16 = 1 << 6;
    pub const VIEWPORT_WIDTH: u16 = 1 << 7;
    pub const SEC_CH_UA_MOBILE: u16 = 1 << 8;

    /// Header names in the order of the bits above.
    pub const NAMES: [&'static str; 9] = [
        "Accept",
        "User-Agent",
        "Save-Data",
        "Accept-Encoding",
        "Sec-CH-DPR",
        "DPR",
        "Sec-CH-Viewport-Width",
        "Viewport-Width",
        "Sec-CH-UA-Mobile",
    ];

    pub const fn contains(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// Names of the headers present in the request and read by the rules.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| n)
    }
}

/// Everything the filter needs to know about a client to pick a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientProfile {
    pub mask: CapabilityMask,
    pub accepts: AcceptedFormats,
    pub viewport_reason: ViewportReason,
    pub density_reason: DensityReason,
    pub used: UsedHeaders,
}

/// Viewport widths (CSS px) at or under which a width hint means mobile / tablet.
pub const MOBILE_MAX_VIEWPORT_WIDTH: f32 = 600.0;
pub const TABLET_MAX_VIEWPORT_WIDTH: f32 = 1024.0;
/// Device pixel ratio from which a client is 2x.
pub const MIN_2X_DPR: f32 = 1.5;

#[derive(Default)]
struct Seen<'a> {
    user_agent: Option<&'a [u8]>,
    save_data: Option<&'a [u8]>,
    sec_ch_dpr: Option<&'a [u8]>,
    dpr: Option<&'a [u8]>,
    sec_ch_viewport_width: Option<&'a [u8]>,
    viewport_width: Option<&'a [u8]>,
    sec_ch_ua_mobile: Option<&'a [u8]>,
    accept: ListTokens,
    accept_encoding: ListTokens,
    used: u16,
}

/// Tokens of a list header: bit set when accepted, bit set when refused with q=0.
#[derive(Default, Clone, Copy)]
struct ListTokens {
    accepted: u8,
    refused: u8,
}

impl ListTokens {
    fn has(self, bit: u8) -> bool {
        self.accepted & bit != 0 && self.refused & bit == 0
    }
}

const TOKEN_AVIF: u8 = 1;
const TOKEN_WEBP: u8 = 2;
const TOKEN_SVG: u8 = 4;
const TOKEN_BR: u8 = 1;
const TOKEN_GZIP: u8 = 2;

impl ClientProfile {
    /// Builds the profile from `(name, value)` header pairs in any order and any name case.
    pub fn from_headers<'a, I>(headers: I) -> ClientProfile
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        let mut seen = Seen::default();
        for (name, value) in headers {
            seen.take(name, value);
        }
        seen.profile()
    }
}

fn first<'a>(slot: &mut Option<&'a [u8]>, value: &'a [u8]) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

impl<'a> Seen<'a> {
    fn take(&mut self, name: &'a [u8], value: &'a [u8]) {
        // Dispatch on length first: one compare rules out almost every header.
        let bit = match name.len() {
            6 if name.eq_ignore_ascii_case(b"accept") => {
                scan_list(value, &mut self.accept, accept_token);
                UsedHeaders::ACCEPT
            }
            10 if name.eq_ignore_ascii_case(b"user-agent") => {
                first(&mut self.user_agent, value);
                UsedHeaders::USER_AGENT
            }
            9 if name.eq_ignore_ascii_case(b"save-data") => {
                first(&mut self.save_data, value);
                UsedHeaders::SAVE_DATA
            }
            15 if name.eq_ignore_ascii_case(b"accept-encoding") => {
                scan_list(value, &mut self.accept_encoding, encoding_token);
                UsedHeaders::ACCEPT_ENCODING
            }
            10 if name.eq_ignore_ascii_case(b"sec-ch-dpr") => {
                first(&mut self.sec_ch_dpr, value);
                UsedHeaders::SEC_CH_DPR
            }
            3 if name.eq_ignore_ascii_case(b"dpr") => {
                first(&mut self.dpr, value);
                UsedHeaders::DPR
            }
            21 if name.eq_ignore_ascii_case(b"sec-ch-viewport-width") => {
                first(&mut self.sec_ch_viewport_width, value);
                UsedHeaders::SEC_CH_VIEWPORT_WIDTH
            }
            14 if name.eq_ignore_ascii_case(b"viewport-width") => {
                first(&mut self.viewport_width, value);
                UsedHeaders::VIEWPORT_WIDTH
            }
            16 if name.eq_ignore_ascii_case(b"sec-ch-ua-mobile") => {
                first(&mut self.sec_ch_ua_mobile, value);
                UsedHeaders::SEC_CH_UA_MOBILE
            }
            _ => 0,
        };
        self.used |= bit;
    }

    fn profile(&self) -> ClientProfile {
        let mut accepts = AcceptedFormats::ORIGINAL_ONLY;
        if self.accept.has(TOKEN_AVIF) {
            accepts = accepts.with(ImageFormat::Avif);
        }
        if self.accept.has(TOKEN_WEBP) {
            accepts = accepts.with(ImageFormat::Webp);
        }
        if self.accept.has(TOKEN_SVG) {
            accepts = accepts.with(ImageFormat::Svg);
        }
        let ua = UaMarkers::scan(self.user_agent.unwrap_or(b""));
        let (viewport, viewport_reason) = self.viewport(ua);
        let (density, density_reason) = self.density(ua);
        let save_data = self
            .save_data
            .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"on"));
        let transfer = if self.accept_encoding.has(TOKEN_BR) {
            TransferEncoding::Brotli
        } else if self.accept_encoding.has(TOKEN_GZIP) {
            TransferEncoding::Gzip
        } else {
            TransferEncoding::Identity
        };
        ClientProfile {
            mask: CapabilityMask::new(
                accepts.best_raster(),
                viewport,
                density,
                save_data,
                transfer,
            ),
            accepts,
            viewport_reason,
            density_reason,
            used: UsedHeaders(self.used),
        }
    }

    fn viewport(&self, ua: UaMarkers) -> (Viewport, ViewportReason) {
        let width = self
            .sec_ch_viewport_width
            .and_then(positive_number)
            .or_else(|| self.viewport_width.and_then(positive_number));
        if let Some(w) = width {
            let class = if w <= MOBILE_MAX_VIEWPORT_WIDTH {
                Viewport::Mobile
            } else if w <= TABLET_MAX_VIEWPORT_WIDTH {
                Viewport::Tablet
            } else {
                Viewport::Desktop
            };
            return (class, ViewportReason::WidthHint);
        }
        let ua_mobile_hint = self.sec_ch_ua_mobile.map(<[u8]>::trim_ascii);
        if ua_mobile_hint == Some(b"?1") {
            return (Viewport::Mobile, ViewportReason::MobileHint);
        }
        match ua.class() {
            Some(Viewport::Tablet) => (Viewport::Tablet, ViewportReason::UserAgentTablet),
            Some(Viewport::Mobile) if ua_mobile_hint == Some(b"?0") => {
                (Viewport::Desktop, ViewportReason::MobileHintOverride)
            }
            Some(Viewport::Mobile) => (Viewport::Mobile, ViewportReason::UserAgentMobile),
            _ => (Viewport::Desktop, ViewportReason::Default),
        }
    }

    fn density(&self, ua: UaMarkers) -> (Density, DensityReason) {
        let dpr = self
            .sec_ch_dpr
            .and_then(positive_number)
            .or_else(|| self.dpr.and_then(positive_number));
        if let Some(ratio) = dpr {
            let d = if ratio >= MIN_2X_DPR {
                Density::X2
            } else {
                Density::X1
            };
            return (d, DensityReason::DprHint);
        }
        if ua.is_apple_retina() {
            return (Density::X2, DensityReason::UserAgentApple);
        }
        (Density::X1, DensityReason::Default)
    }
}

/// User-Agent markers, found in one pass over the UA (this runs on every image request).
#[derive(Clone, Copy, Default)]
struct UaMarkers(u16);

impl UaMarkers {
    const IPAD: u16 = 1 << 0;
    const IPHONE: u16 = 1 << 1;
    const IPOD: u16 = 1 << 2;
    /// `Tablet`, but not Windows' `Tablet PC` (sent by touch laptops running IE/old Edge).
    const TABLET: u16 = 1 << 3;
    const KINDLE: u16 = 1 << 4;
    const SILK: u16 = 1 << 5;
    const PLAYBOOK: u16 = 1 << 6;
    const ANDROID: u16 = 1 << 7;
    /// `Mobi`: covers "Mobile" and Opera's "Mobi".
    const MOBI: u16 = 1 << 8;
    const OPERA_MINI: u16 = 1 << 9;
    /// IEMobile, Windows Phone, BlackBerry: phones that may not say "Mobi".
    const OTHER_PHONE: u16 = 1 << 10;

    /// One pass; a `match` on the byte keeps the common case (a lower-case letter) to one
    /// compare, and literal prefixes let the compiler inline every comparison. Matching is
    /// case-sensitive: UAs spell these markers consistently.
    fn scan(ua: &[u8]) -> UaMarkers {
        let mut found = 0u16;
        for i in 0..ua.len() {
            let rest = &ua[i + 1..];
            found |= match ua[i] {
                b'i' if rest.starts_with(b"Pad") => Self::IPAD,
                b'i' if rest.starts_with(b"Phone") => Self::IPHONE,
                b'i' if rest.starts_with(b"Pod") => Self::IPOD,
                b'T' if rest.starts_with(b"ablet") && !rest[5..].starts_with(b" PC") => {
                    Self::TABLET
                }
                b'K' if rest.starts_with(b"indle") => Self::KINDLE,
                b'S' if rest.starts_with(b"ilk/") => Self::SILK,
                b'P' if rest.starts_with(b"layBook") => Self::PLAYBOOK,
                b'A' if rest.starts_with(b"ndroid") => Self::ANDROID,
                b'M' if rest.starts_with(b"obi") => Self::MOBI,
                b'O' if rest.starts_with(b"pera Mini") => Self::OPERA_MINI,
                b'I' if rest.starts_with(b"EMobile") => Self::OTHER_PHONE,
                b'W' if rest.starts_with(b"indows Phone") => Self::OTHER_PHONE,
                b'B' if rest.starts_with(b"lackBerry") => Self::OTHER_PHONE,
                _ => 0,
            };
        }
        UaMarkers(found)
    }

    fn has(self, bits: u16) -> bool {
        self.0 & bits != 0
    }

    fn is_apple_retina(self) -> bool {
        self.has(Self::IPHONE | Self::IPAD | Self::IPOD)
    }

    /// Tablet or mobile; `None` means no marker (desktop).
    fn class(self) -> Option<Viewport> {
        let android_tablet =
            self.has(Self::ANDROID) && !self.has(Self::MOBI) && !self.has(Self::OPERA_MINI);
        if self.has(Self::IPAD | Self::TABLET | Self::KINDLE | Self::SILK | Self::PLAYBOOK)
            || android_tablet
        {
            return Some(Viewport::Tablet);
        }
        if self.has(Self::MOBI | Self::IPHONE | Self::IPOD | Self::OPERA_MINI | Self::OTHER_PHONE) {
            return Some(Viewport::Mobile);
        }
        None
    }
}

/// A finite number > 0, or `None` (garbage, NaN, inf, negative and zero are all ignored).
fn positive_number(value: &[u8]) -> Option<f32> {
    let text = core::str::from_utf8(value.trim_ascii()).ok()?;
    let n: f32 = text.parse().ok()?;
    (n.is_finite() && n > 0.0).then_some(n)
}

/// Walks a comma-separated list header, classifying each element's token with `classify`
/// and recording whether it was accepted or refused (`q=0`).
fn scan_list(value: &[u8], tokens: &mut ListTokens, classify: impl Fn(&[u8]) -> u8) {
    for element in value.split(|&b| b == b',') {
        let mut parts = element.split(|&b| b == b';');
        let token = parts.next().unwrap_or_default().trim_ascii();
        let bit = classify(token);
        if bit == 0 {
            continue;
        }
        if parts.any(is_zero_q) {
            tokens.refused |= bit;
        } else {
            tokens.accepted |= bit;
        }
    }
}

fn accept_token(token: &[u8]) -> u8 {
    if token.eq_ignore_ascii_case(b"image/avif") {
        TOKEN_AVIF
    } else if token.eq_ignore_ascii_case(b"image/webp") {
        TOKEN_WEBP
    } else if token.eq_ignore_ascii_case(b"image/svg+xml") {
        TOKEN_SVG
    } else {
        0
    }
}

fn encoding_token(token: &[u8]) -> u8 {
    if token.eq_ignore_ascii_case(b"br") {
        TOKEN_BR
    } else if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
        TOKEN_GZIP
    } else {
        0
    }
}

/// `q=0`, `q = 0.000` and friends: a weight of zero, which RFC 9110 defines as "not acceptable".
fn is_zero_q(param: &[u8]) -> bool {
    let mut kv = param.splitn(2, |&b| b == b'=');
    let name = kv.next().unwrap_or_default().trim_ascii();
    let Some(value) = kv.next() else {
        return false;
    };
    if !name.eq_ignore_ascii_case(b"q") {
        return false;
    }
    match value.trim_ascii() {
        [b'0'] => true,
        [b'0', b'.', zeros @ ..] => zeros.iter().all(|&b| b == b'0'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ua_markers() {
        let m = UaMarkers::scan(b"Mozilla/5.0 (Windows NT 6.2; Touch; Tablet PC 2.0; rv:11.0)");
        assert_eq!(m.class(), None, "Tablet PC is a laptop");
        let m = UaMarkers::scan(b"Tablet PC 2.0; Tablet;");
        assert_eq!(m.class(), Some(Viewport::Tablet));
        let m = UaMarkers::scan(b"Opera/9.80 (Android; Opera Mini/7.5.33361/31.1448; U; en)");
        assert_eq!(m.class(), Some(Viewport::Mobile));
        let m = UaMarkers::scan(b"(iPad; CPU OS 12_5 like Mac OS X) Mobile/15E148");
        assert_eq!(m.class(), Some(Viewport::Tablet));
        assert!(m.is_apple_retina());
        assert_eq!(UaMarkers::scan(b"").class(), None);
        assert_eq!(UaMarkers::scan(b"i").class(), None);
    }

    #[test]
    fn zero_q_forms() {
        for p in [&b"q=0"[..], b" q = 0.", b"Q=0.000", b"q=0.0"] {
            assert!(is_zero_q(p), "{:?}", core::str::from_utf8(p));
        }
        for p in [&b"q=0.1"[..], b"q=1", b"q", b"level=0", b"q=00", b"q=.0"] {
            assert!(!is_zero_q(p), "{:?}", core::str::from_utf8(p));
        }
    }
}
