//! What the filter decides on the response (docs/filter.md, "A request", steps 5-6) and the headers it adds.
//!
//! A miss is worth a notify only when the origin's answer is a publicly cacheable image that
//! may be transformed: 200, `image/*`, no `Set-Cookie`, not `private` / `no-store`, not
//! `no-transform`, varying on nothing but `Accept-Encoding` ([`crate::http_cache`]), and a
//! declared size under the limit. Anything else may be personal, negotiated by the origin or
//! forbidden to change, and the sidecar would refuse it anyway; not asking saves it the fetch.

use crate::http_cache::{may_transform, NotTransformable};

/// The request headers a variant choice can depend on. Every image response the filter touches
/// carries all of them in `Vary`, whatever this particular request used: a shared cache
/// compares the listed headers of the *next* request, so a shorter per-request list would let
/// a cache hand a client-hint response to a client without hints.
pub const VARY_HEADERS: [&str; 8] = [
    "Accept",
    "Save-Data",
    "Sec-CH-DPR",
    "DPR",
    "Sec-CH-Viewport-Width",
    "Viewport-Width",
    "Sec-CH-UA-Mobile",
    "User-Agent",
];

/// `Vary` on an image response that had none, and on every variant the sidecar serves: the
/// names of [`VARY_HEADERS`] in order (a golden test pins the two together).
pub const VARY: &str =
    "Accept, Save-Data, Sec-CH-DPR, DPR, Sec-CH-Viewport-Width, Viewport-Width, Sec-CH-UA-Mobile, User-Agent";

/// The client hints the filter reads, for `Accept-CH`.
pub const ACCEPT_CH: &str =
    "Sec-CH-DPR, Sec-CH-Viewport-Width, Sec-CH-UA-Mobile, DPR, Viewport-Width";

/// Why a miss response is not sent to the sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotOptimizable {
    Status,
    NotImage,
    SetCookie,
    /// `private` or `no-store`.
    Private,
    /// `Cache-Control: no-transform`.
    NoTransform,
    /// `Vary` on anything but `Accept-Encoding`.
    Vary,
    TooLarge,
}

impl NotOptimizable {
    pub const ALL: [NotOptimizable; 7] = [
        Self::Status,
        Self::NotImage,
        Self::SetCookie,
        Self::Private,
        Self::NoTransform,
        Self::Vary,
        Self::TooLarge,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::NotImage => "not_image",
            Self::SetCookie => "set_cookie",
            Self::Private => "private",
            Self::NoTransform => "no_transform",
            Self::Vary => "vary",
            Self::TooLarge => "too_large",
        }
    }
}

impl From<NotTransformable> for NotOptimizable {
    fn from(n: NotTransformable) -> NotOptimizable {
        match n {
            NotTransformable::NoTransform => Self::NoTransform,
            NotTransformable::Private => Self::Private,
            NotTransformable::Vary => Self::Vary,
        }
    }
}

/// The response headers the decision reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponseFacts<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub cache_control: Option<&'a str>,
    pub vary: Option<&'a str>,
    pub has_set_cookie: bool,
    pub content_length: Option<u64>,
}

/// Whether a miss response should be sent to the sidecar for optimization.
pub fn optimizable(facts: &ResponseFacts<'_>, max_source_bytes: u64) -> Result<(), NotOptimizable> {
    if facts.status != 200 {
        return Err(NotOptimizable::Status);
    }
    let is_image = facts.content_type.is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        essence.len() > 6
            && essence.as_bytes()[..6].eq_ignore_ascii_case(b"image/")
            // An SVG source is already a vector: nothing to encode.
            && !essence[6..].eq_ignore_ascii_case("svg+xml")
    });
    if !is_image {
        return Err(NotOptimizable::NotImage);
    }
    if facts.has_set_cookie {
        return Err(NotOptimizable::SetCookie);
    }
    may_transform(facts.cache_control, facts.vary)?;
    if facts.content_length.is_some_and(|n| n > max_source_bytes) {
        return Err(NotOptimizable::TooLarge);
    }
    Ok(())
}

/// What `Vary` must become on an image response whose `Vary` is `existing`: `existing` with
/// every [`VARY_HEADERS`] name appended that it does not list yet. `None` when there is nothing
/// to change: it lists them all already (what the sidecar sends, [`VARY`]) or is `*`. The
/// filter then leaves the header alone, which saves a host call on every hit.
///
/// One pass over `existing`, noting which of our names it lists (ASCII case-insensitive).
pub fn merge_vary(existing: &str) -> Option<String> {
    let existing = existing.trim();
    // `*` varies on everything already; our exact list is what every variant from the
    // sidecar carries, so a hit answers here without parsing.
    if existing == "*" || existing == VARY {
        return None;
    }
    const _: () = assert!(VARY_HEADERS.len() <= 32, "one bit per name");
    let mut listed = 0u32;
    for token in existing.as_bytes().split(|&b| b == b',') {
        let token = token.trim_ascii();
        if let Some(i) = VARY_HEADERS
            .iter()
            .position(|name| name.as_bytes().eq_ignore_ascii_case(token))
        {
            listed |= 1 << i;
        }
    }
    let missing = (0..VARY_HEADERS.len()).filter(|i| listed & (1 << i) == 0);
    let mut out: Option<String> = None;
    for i in missing {
        let out = out.get_or_insert_with(|| existing.to_owned());
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(VARY_HEADERS[i]);
    }
    out
}
