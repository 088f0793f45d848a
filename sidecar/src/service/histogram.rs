//! Latency histograms for `/metrics` (Prometheus text exposition: `_bucket{le=...}`, `_sum`,
//! `_count`), and the format label that the per-format series share.
//!
//! Lock-free: one atomic per bucket, the sum in microseconds. Buckets are stored apart and
//! made cumulative when rendered, so `_count` is the `+Inf` bucket of the same read.

use crate::encode::Codec;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The formats a variant is served in: the `format` label of the per-format series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Avif,
    Webp,
    Jpeg,
    Png,
    Svg,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Avif,
        Format::Webp,
        Format::Jpeg,
        Format::Png,
        Format::Svg,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Format::Avif => "avif",
            Format::Webp => "webp",
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }

    pub const fn of_codec(codec: Codec) -> Format {
        match codec {
            Codec::Avif => Format::Avif,
            Codec::Webp => Format::Webp,
            Codec::Jpeg => Format::Jpeg,
            Codec::Png => Format::Png,
            Codec::Svg => Format::Svg,
        }
    }

    /// From a stored variant's `Content-Type`.
    pub fn of_content_type(content_type: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.codec().content_type() == content_type)
    }

    const fn codec(self) -> Codec {
        match self {
            Format::Avif => Codec::Avif,
            Format::Webp => Codec::Webp,
            Format::Jpeg => Codec::Jpeg,
            Format::Png => Codec::Png,
            Format::Svg => Codec::Svg,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// One value per format.
#[derive(Debug)]
pub struct PerFormat<T>([T; 5]);

impl<T> PerFormat<T> {
    pub fn new(make: impl Fn() -> T) -> PerFormat<T> {
        PerFormat([make(), make(), make(), make(), make()])
    }

    pub fn get(&self, f: Format) -> &T {
        &self.0[f.index()]
    }

    pub fn iter(&self) -> impl Iterator<Item = (Format, &T)> {
        Format::ALL.into_iter().zip(self.0.iter())
    }
}

impl PerFormat<AtomicU64> {
    pub fn add(&self, f: Format, n: u64) {
        self.get(f).fetch_add(n, Ordering::Relaxed);
    }

    pub fn load(&self, f: Format) -> u64 {
        self.get(f).load(Ordering::Relaxed)
    }
}

impl Default for PerFormat<AtomicU64> {
    fn default() -> Self {
        PerFormat::new(AtomicU64::default)
    }
}

/// Upper bounds of the serve latency buckets, in seconds: a hit from memory takes tens of
/// microseconds, one from sled a millisecond or so, one that waits for a revalidation up to
/// the origin's timeout.
pub const SERVE_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Upper bounds of the encode latency buckets, in seconds: a small WebP takes milliseconds,
/// a verified 12 MP AVIF tens of seconds.
pub const ENCODE_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; one more than `bounds` for what lies above the last.
    buckets: Vec<AtomicU64>,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let seconds = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The series of this histogram with `labels` (`format="avif"`, or empty) appended to
    /// `out`, without `# HELP`/`# TYPE` (the caller writes those once per name).
    pub fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_is_the_last() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(2));
        let mut out = String::new();
        h.render("x_seconds", "format=\"avif\"", &mut out);
        assert_eq!(
            out,
            "x_seconds_bucket{format=\"avif\",le=\"0.001\"} 1\n\
             x_seconds_bucket{format=\"avif\",le=\"0.01\"} 3\n\
             x_seconds_bucket{format=\"avif\",le=\"+Inf\"} 4\n\
             x_seconds_sum{format=\"avif\"} 2.0105\n\
             x_seconds_count{format=\"avif\"} 4\n"
        );
        let mut bare = String::new();
        Histogram::new(&[1.0]).render("y", "", &mut bare);
        assert_eq!(
            bare,
            "y_bucket{le=\"1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n"
        );
    }

    #[test]
    fn formats_come_from_codecs_and_content_types() {
        assert_eq!(Format::of_content_type("image/avif"), Some(Format::Avif));
        assert_eq!(Format::of_content_type("image/svg+xml"), Some(Format::Svg));
        assert_eq!(Format::of_content_type("image/gif"), None);
        assert_eq!(Format::of_codec(Codec::Jpeg).name(), "jpeg");
        for f in Format::ALL {
            assert_eq!(Format::of_codec(f.codec()), f);
        }
    }
}
