//! The origin's caching contract as a shared cache reads it (`rendition_shared::http_cache`):
//! Cache-Control directives, the transform rules, freshness lifetimes, ages and HTTP dates.

use rendition_shared::http_cache::{
    format_http_date, freshness_lifetime, http_date, initial_age_ms, may_transform, CacheControl,
    CachingHeaders, LifetimeSource, NotTransformable, DEFAULT_HEURISTIC_SECS, MAX_HEURISTIC_SECS,
};

/// Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date.
const EXAMPLE: u64 = 784_111_777;

#[test]
fn http_dates_in_all_three_forms() {
    assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(EXAMPLE));
    assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(EXAMPLE));
    assert_eq!(http_date("Sun Nov  6 08:49:37 1994"), Some(EXAMPLE));
    assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(
        http_date("Wed, 21 Oct 2026 07:28:00 GMT"),
        Some(1_792_567_680)
    );
    assert_eq!(
        http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
        Some(1_835_481_599)
    );
    for bad in [
        "",
        "0",
        "-1",
        "tomorrow",
        "Sun, 06 Nov 1994 08:49:37",     // no zone
        "Sun, 06 Nov 1994 08:49:37 CET", // not GMT
        "Sun, 06 Foo 1994 08:49:37 GMT", // no such month
        "Sun, 32 Nov 1994 08:49:37 GMT", // no such day
        "Sun, 06 Nov 1994 24:49:37 GMT", // no such hour
        "Sun, 06 Nov 1994 08:49:37:01 GMT",
        "Sun, 06 Nov 1969 08:49:37 GMT",  // before the epoch
        "Sun, 06 Nov 10000 08:49:37 GMT", // five-digit year
        "Sun, 06 Nov 99999999999999999 08:49:37 GMT", // would overflow the day count
        "Sun, 06 Nov -9223372036854775808 08:49:37 GMT",
        "Sun, 06 Nov 1994 -1:49:37 GMT", // negative fields
        "Sun, 06 Nov 1994 08:-1:37 GMT",
        "Sun, 06 Nov 1994 08:49:-1 GMT",
    ] {
        assert_eq!(http_date(bad), None, "{bad:?}");
    }
    for secs in [0, EXAMPLE, 1_792_567_680, 1_835_481_599, 4_102_444_800] {
        assert_eq!(http_date(&format_http_date(secs)), Some(secs));
    }
    assert_eq!(format_http_date(EXAMPLE), "Sun, 06 Nov 1994 08:49:37 GMT");
}

#[test]
fn cache_control_directives() {
    let cc = CacheControl::parse(r#"public, Max-Age=600, s-maxage="60", no-transform, foo=bar"#);
    assert_eq!(cc.max_age, Some(600));
    assert_eq!(cc.s_maxage, Some(60));
    assert!(cc.public && cc.no_transform && !cc.private);
    assert!(
        cc.requires_validation(),
        "s-maxage implies proxy-revalidate (RFC 9111 5.2.2.10)"
    );
    let cc = CacheControl::parse("public, max-age=600");
    assert!(!cc.requires_validation());
    // A delta given twice with two values is stale, the same value twice is that value, one
    // past what fits is 2^31 seconds (RFC 9111 1.2.2), and a sign is no number.
    let deltas: [(&str, Option<u64>, Option<u64>); 6] = [
        ("max-age=0, max-age=86400", Some(0), None),
        ("max-age=86400, max-age=0", Some(0), None),
        ("max-age=60, max-age=60", Some(60), None),
        ("s-maxage=5, s-maxage=9", None, Some(0)),
        ("max-age=99999999999999999999999", Some(1 << 31), None),
        ("max-age=-5", Some(0), None),
    ];
    for (value, max_age, s_maxage) in deltas {
        let cc = CacheControl::parse(value);
        assert_eq!((cc.max_age, cc.s_maxage), (max_age, s_maxage), "{value}");
    }
    let cc = CacheControl::parse("max-age=abc, must-revalidate");
    assert_eq!(cc.max_age, Some(0), "a malformed delta reads as stale");
    assert!(cc.requires_validation());
    assert!(CacheControl::parse("no-cache").requires_validation());
    assert!(CacheControl::parse("proxy-revalidate").requires_validation());
    assert_eq!(CacheControl::parse(""), CacheControl::default());
}

#[test]
fn what_may_be_transformed() {
    assert_eq!(may_transform(None, None), Ok(()));
    assert_eq!(
        may_transform(Some("public, max-age=60"), Some("Accept-Encoding")),
        Ok(())
    );
    assert_eq!(
        may_transform(Some("max-age=60, no-transform"), None),
        Err(NotTransformable::NoTransform)
    );
    assert_eq!(
        may_transform(Some("private"), None),
        Err(NotTransformable::Private)
    );
    assert_eq!(
        may_transform(Some("no-store"), None),
        Err(NotTransformable::Private)
    );
    assert_eq!(
        may_transform(None, Some("Accept")),
        Err(NotTransformable::Vary)
    );
    assert_eq!(
        may_transform(None, Some("Cookie")),
        Err(NotTransformable::Vary)
    );
    assert_eq!(may_transform(None, Some("*")), Err(NotTransformable::Vary));
    // no-cache asks for validation, not for leaving the bytes alone.
    assert_eq!(may_transform(Some("no-cache"), None), Ok(()));
}

fn headers<'a>(
    cc: Option<&'a str>,
    expires: Option<&'a str>,
    last_modified: Option<&'a str>,
) -> CachingHeaders<'a> {
    CachingHeaders {
        cache_control: cc,
        expires,
        date: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
        last_modified,
        age: None,
    }
}

#[test]
fn freshness_lifetime_in_rfc_9111_order() {
    let at = EXAMPLE;
    // (Cache-Control, Expires, Last-Modified) -> (lifetime, source, validate once stale)
    type Row<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        u64,
        LifetimeSource,
        bool,
    );
    let table: [Row; 10] = [
        // s-maxage: also validate once stale (it implies proxy-revalidate).
        (
            Some("s-maxage=60, max-age=600"),
            None,
            None,
            60,
            LifetimeSource::SMaxAge,
            true,
        ),
        (
            Some("max-age=600"),
            Some("Sun, 06 Nov 1994 09:49:37 GMT"),
            None,
            600,
            LifetimeSource::MaxAge,
            false,
        ),
        (
            None,
            Some("Sun, 06 Nov 1994 09:49:37 GMT"),
            None,
            3600,
            LifetimeSource::Expires,
            false,
        ),
        (None, Some("0"), None, 0, LifetimeSource::Expires, false),
        (
            None,
            Some("Sun, 06 Nov 1994 07:49:37 GMT"),
            None,
            0,
            LifetimeSource::Expires,
            false,
        ),
        // A tenth of the ten days since it last changed: one day.
        (
            None,
            None,
            Some("Thu, 27 Oct 1994 08:49:37 GMT"),
            86_400,
            LifetimeSource::LastModified,
            false,
        ),
        // Years old: capped at a day.
        (
            None,
            None,
            Some("Sun, 06 Nov 1984 08:49:37 GMT"),
            MAX_HEURISTIC_SECS,
            LifetimeSource::LastModified,
            false,
        ),
        (
            Some("public"),
            None,
            None,
            DEFAULT_HEURISTIC_SECS,
            LifetimeSource::Default,
            false,
        ),
        (
            Some("no-cache, max-age=600"),
            None,
            None,
            0,
            LifetimeSource::NoCache,
            true,
        ),
        (
            Some("max-age=60, must-revalidate"),
            None,
            None,
            60,
            LifetimeSource::MaxAge,
            true,
        ),
    ];
    for (cc, expires, lm, lifetime, source, validate) in table {
        let f = freshness_lifetime(&headers(cc, expires, lm), at);
        assert_eq!(
            (f.lifetime_secs, f.source, f.requires_validation),
            (lifetime, source, validate),
            "{cc:?} {expires:?} {lm:?}"
        );
    }
    // Without Date, the arrival time stands for it.
    let no_date = CachingHeaders {
        date: None,
        expires: Some("Sun, 06 Nov 1994 08:59:37 GMT"),
        ..CachingHeaders::default()
    };
    assert_eq!(freshness_lifetime(&no_date, EXAMPLE).lifetime_secs, 600);
}

#[test]
fn initial_age_is_the_larger_of_date_and_age_plus_the_round_trip() {
    let ms = |s: u64| s * 1000;
    // Date 10.5 s before arrival, no Age: 10.5 s.
    let h = CachingHeaders {
        date: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
        ..CachingHeaders::default()
    };
    assert_eq!(
        initial_age_ms(&h, ms(EXAMPLE + 9), ms(EXAMPLE + 10) + 500),
        10_500
    );
    // An upstream cache says 100 s; the request took 2 s: 102 s.
    let h = CachingHeaders {
        age: Some("100"),
        ..h
    };
    assert_eq!(
        initial_age_ms(&h, ms(EXAMPLE + 8), ms(EXAMPLE + 10)),
        102_000
    );
    // A Date in the future (clock skew) counts for nothing.
    let h = CachingHeaders {
        date: Some("Sun, 06 Nov 1994 09:49:37 GMT"),
        age: None,
        ..CachingHeaders::default()
    };
    assert_eq!(initial_age_ms(&h, ms(EXAMPLE), ms(EXAMPLE)), 0);
}
