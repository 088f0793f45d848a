//! The origin's caching contract, read the way a shared cache reads it (RFC 9111), decided
//! without I/O so the filter and the sidecar apply the same rules:
//!
//! * [`CacheControl`]: the directives that matter to a cache that also transforms.
//! * [`may_transform`]: whether a response may be optimized at all: not `no-transform`
//!   (RFC 9110 7.7), not `private` or `no-store`, and varying on nothing but `Accept-Encoding`.
//! * [`Freshness`]: how long a stored response stays fresh ([`freshness_lifetime`]) and how old
//!   it already was when it arrived ([`initial_age_ms`]).
//! * [`http_date`]: the three date formats HTTP allows (RFC 9110 5.6.7), to Unix seconds.
//!
//! Freshness, in the order RFC 9111 4.2.1 gives for a shared cache: `s-maxage`, then
//! `max-age`, then `Expires - Date`; without any of them, a heuristic (4.2.2): a tenth of the
//! time since `Last-Modified`, at most a day; without `Last-Modified`, [`DEFAULT_HEURISTIC_SECS`].
//! `no-cache` means the response must be validated before every use: its lifetime is 0 and it
//! must be revalidated, like `must-revalidate` once stale.

/// Directives of a `Cache-Control` value (only those a transforming shared cache acts on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_cache: bool,
    pub no_store: bool,
    pub private: bool,
    pub no_transform: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub public: bool,
    pub immutable: bool,
}

impl CacheControl {
    /// Parses a `Cache-Control` value. Unknown directives are ignored; a malformed delta
    /// (`max-age=abc`) is treated as 0, the safe reading (RFC 9111 4.2.1: "stale"), and so is
    /// a delta given twice with two values (`max-age=0, max-age=86400`: 4.2.1 allows the first
    /// or stale; stale cannot serve what the origin meant to expire). A delta too large for a
    /// number is 2^31 seconds (RFC 9111 1.2.2). Directive names are case-insensitive; quoted
    /// values are accepted.
    pub fn parse(value: &str) -> CacheControl {
        let mut cc = CacheControl::default();
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let seconds = || arg.map_or(0, delta_seconds);
            match name.to_ascii_lowercase().as_str() {
                "max-age" => once(&mut cc.max_age, seconds()),
                "s-maxage" => once(&mut cc.s_maxage, seconds()),
                "no-cache" => cc.no_cache = true,
                "no-store" => cc.no_store = true,
                "private" => cc.private = true,
                "no-transform" => cc.no_transform = true,
                "must-revalidate" => cc.must_revalidate = true,
                "proxy-revalidate" => cc.proxy_revalidate = true,
                "public" => cc.public = true,
                "immutable" => cc.immutable = true,
                _ => {}
            }
        }
        cc
    }

    /// Once stale, a stored response must not be used without a successful validation
    /// (`must-revalidate`, `proxy-revalidate`, `s-maxage`, which implies `proxy-revalidate`
    /// for a shared cache (RFC 9111 5.2.2.10), and `no-cache`, which makes it stale at once).
    pub fn requires_validation(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some() || self.no_cache
    }
}

/// A delta-seconds argument: digits, or 0 when it is not a number; digits past what fits are
/// 2^31 (RFC 9111 1.2.2).
fn delta_seconds(arg: &str) -> u64 {
    match arg.parse::<u64>() {
        Ok(secs) => secs,
        Err(_) if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) => 1 << 31,
        Err(_) => 0,
    }
}

/// Sets a delta directive; one given again with another value reads as stale (0).
fn once(slot: &mut Option<u64>, secs: u64) {
    *slot = match *slot {
        Some(earlier) if earlier != secs => Some(0),
        _ => Some(secs),
    };
}

/// Why a response must not be optimized (and so is never stored or transformed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotTransformable {
    /// `Cache-Control: no-transform`: the origin forbids changing the bytes (RFC 9110 7.7).
    NoTransform,
    /// `private` or `no-store`: not for a shared store.
    Private,
    /// `Vary` names a request header other than `Accept-Encoding` (or is `*`): the origin's
    /// bytes may differ per client (`Cookie`, `Authorization`) or it negotiates the format
    /// itself (`Accept`), so one stored original cannot stand for every client.
    Vary,
}

impl NotTransformable {
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoTransform => "no_transform",
            Self::Private => "private",
            Self::Vary => "vary",
        }
    }

    /// The reason as an operator reads it in a log or a record.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::NoTransform => "Cache-Control: no-transform (the origin forbids changing the bytes)",
            Self::Private => "not publicly cacheable (Cache-Control: private or no-store)",
            Self::Vary => "Vary on a request header other than Accept-Encoding (the bytes may differ per client)",
        }
    }
}

/// Whether a response with these `Cache-Control` and `Vary` values may be optimized.
pub fn may_transform(
    cache_control: Option<&str>,
    vary: Option<&str>,
) -> Result<(), NotTransformable> {
    if let Some(cc) = cache_control.map(CacheControl::parse) {
        if cc.no_transform {
            return Err(NotTransformable::NoTransform);
        }
        if cc.private || cc.no_store {
            return Err(NotTransformable::Private);
        }
    }
    if let Some(vary) = vary {
        let other = vary
            .split(',')
            .map(str::trim)
            .any(|h| !h.is_empty() && !h.eq_ignore_ascii_case("accept-encoding"));
        if other {
            return Err(NotTransformable::Vary);
        }
    }
    Ok(())
}

/// Without `Last-Modified` nor any explicit lifetime, a response is fresh this long: long
/// enough that a busy image is not revalidated on every other hit, short enough that a
/// replaced image shows within the hour.
pub const DEFAULT_HEURISTIC_SECS: u64 = 3600;
/// The longest heuristic lifetime (RFC 9111 4.2.2 suggests at most a tenth of the time since
/// the last modification; a day caps what that gives for old files).
pub const MAX_HEURISTIC_SECS: u64 = 86_400;

/// Where a freshness lifetime came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifetimeSource {
    SMaxAge,
    MaxAge,
    Expires,
    /// A tenth of the time since `Last-Modified`.
    LastModified,
    /// Nothing said: [`DEFAULT_HEURISTIC_SECS`].
    Default,
    /// `no-cache`: validate before every use.
    NoCache,
}

impl LifetimeSource {
    pub const fn name(self) -> &'static str {
        match self {
            Self::SMaxAge => "s-maxage",
            Self::MaxAge => "max-age",
            Self::Expires => "expires",
            Self::LastModified => "heuristic-last-modified",
            Self::Default => "heuristic-default",
            Self::NoCache => "no-cache",
        }
    }
}

/// How long a response stays fresh, and what to do once it is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub lifetime_secs: u64,
    pub source: LifetimeSource,
    /// Stale means unusable until validated (no serving stale while revalidating).
    pub requires_validation: bool,
}

/// The response headers freshness is computed from.
#[derive(Clone, Copy, Debug, Default)]
pub struct CachingHeaders<'a> {
    pub cache_control: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub date: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    pub age: Option<&'a str>,
}

/// The freshness lifetime of a response received at `response_time` (Unix seconds), as a
/// shared cache computes it.
pub fn freshness_lifetime(h: &CachingHeaders<'_>, response_time: u64) -> Freshness {
    let cc = h.cache_control.map(CacheControl::parse).unwrap_or_default();
    let requires_validation = cc.requires_validation();
    let fresh = |lifetime_secs, source| Freshness {
        lifetime_secs,
        source,
        requires_validation,
    };
    if cc.no_cache {
        return fresh(0, LifetimeSource::NoCache);
    }
    if let Some(s) = cc.s_maxage {
        return fresh(s, LifetimeSource::SMaxAge);
    }
    if let Some(s) = cc.max_age {
        return fresh(s, LifetimeSource::MaxAge);
    }
    // Without a Date, the time the response arrived stands for it (RFC 9110 6.6.1).
    let date = h.date.and_then(http_date).unwrap_or(response_time);
    if let Some(expires) = h.expires {
        // An invalid Expires (often "0" or "-1") means already expired (RFC 9111 5.3).
        let lifetime = http_date(expires).map_or(0, |e| e.saturating_sub(date));
        return fresh(lifetime, LifetimeSource::Expires);
    }
    match h.last_modified.and_then(http_date) {
        Some(modified) => fresh(
            (date.saturating_sub(modified) / 10).min(MAX_HEURISTIC_SECS),
            LifetimeSource::LastModified,
        ),
        None => fresh(DEFAULT_HEURISTIC_SECS, LifetimeSource::Default),
    }
}

/// How old a response already was when it arrived, in milliseconds (RFC 9111 4.2.3,
/// `corrected_initial_age`): the larger of what its `Date` says and what its `Age` plus the
/// round trip say. The request was sent at `request_ms`, the response arrived at
/// `response_ms` (Unix milliseconds: with lifetimes of a few seconds, whole seconds on our
/// side would add a second of error to the origin's own).
pub fn initial_age_ms(h: &CachingHeaders<'_>, request_ms: u64, response_ms: u64) -> u64 {
    let apparent = h
        .date
        .and_then(http_date)
        .map_or(0, |d| response_ms.saturating_sub(d.saturating_mul(1000)));
    let age = h
        .age
        .and_then(|a| a.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let corrected = age
        .saturating_mul(1000)
        .saturating_add(response_ms.saturating_sub(request_ms));
    apparent.max(corrected)
}

/// A stored response's age at `now_ms` (RFC 9111 4.2.3 `current_age`, in milliseconds): its
/// age when the origin last confirmed it (at `validated_at_ms`), plus the time since.
pub fn current_age_ms(initial_age_ms: u64, validated_at_ms: u64, now_ms: u64) -> u64 {
    initial_age_ms.saturating_add(now_ms.saturating_sub(validated_at_ms))
}

/// Whether a response of `age_ms` is still fresh for a lifetime of `lifetime_secs`.
pub fn is_fresh(age_ms: u64, lifetime_secs: u64) -> bool {
    age_ms < lifetime_secs.saturating_mul(1000)
}

/// A date in any of the three forms HTTP allows (RFC 9110 5.6.7), to Unix seconds:
/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate), `Sunday, 06-Nov-94 08:49:37 GMT` (RFC 850,
/// two-digit years from 1970 to 2069) and `Sun Nov  6 08:49:37 1994` (asctime).
pub fn http_date(text: &str) -> Option<u64> {
    let text = text.trim();
    let (_, rest) = text.split_once([',', ' '])?;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        // IMF-fixdate: 06 Nov 1994 08:49:37 GMT
        [d, m, y, t, "GMT"] => (d.parse().ok()?, *m, y.parse::<i64>().ok()?, *t),
        // RFC 850: 06-Nov-94 08:49:37 GMT
        [dmy, t, "GMT"] => {
            let mut f = dmy.split('-');
            let (d, m, y) = (f.next()?, f.next()?, f.next()?);
            let y: i64 = y.parse().ok()?;
            let y = if y < 70 {
                2000 + y
            } else if y < 100 {
                1900 + y
            } else {
                y
            };
            (d.parse().ok()?, m, y, *t)
        }
        // asctime: Nov  6 08:49:37 1994
        [m, d, t, y] => (d.parse().ok()?, *m, y.parse::<i64>().ok()?, *t),
        _ => return None,
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == month)? as i64
        + 1;
    let mut hms = time.split(':');
    // Unsigned, so a `-1` is no number here; the ranges below keep the sum far from overflow.
    let (h, mi, s): (u8, u8, u8) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    // Years outside 1..=9999 are not dates a server sends (RFC 9110 writes four digits), and an
    // unbounded year would overflow the day count below.
    if hms.next().is_some()
        || !(1..=31).contains(&day)
        || !(1..=9999).contains(&year)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1..=12).contains(&m) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Unix seconds as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), for `Date`-like headers.
pub fn format_http_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Both indexes are in range by construction: a remainder of 7, and `m` in 1..=12.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days.rem_euclid(7)) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
