//! Counters (names and meanings in docs/operations.md), served as JSON (`/stats`) and
//! Prometheus text (`/metrics`), plus what shows the value: variant bytes against the bytes of
//! their originals per format, and the serve and encode latency histograms.

use super::histogram::{Format, Histogram, PerFormat, ENCODE_BOUNDS, SERVE_BOUNDS};
use serde_json::{json, Map, Value};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        /// Process-wide counters (monotonic since start).
        #[derive(Debug)]
        pub struct Stats {
            $(#[doc = $help] pub $name: AtomicU64,)*
            /// Variant payload bytes sent with a body, per format.
            pub served_bytes: PerFormat<AtomicU64>,
            /// The bytes of the originals those variants stand in for, per format: what the
            /// origin would have sent. 1 - served / original is the saving.
            pub served_original_bytes: PerFormat<AtomicU64>,
            /// Variant answers (200 and 304), request to response, per format.
            pub serve_seconds: PerFormat<Histogram>,
            /// Encode and verify time of each stored variant, per format.
            pub encode_seconds: PerFormat<Histogram>,
        }

        impl Default for Stats {
            fn default() -> Self {
                Stats {
                    $($name: AtomicU64::new(0),)*
                    served_bytes: PerFormat::default(),
                    served_original_bytes: PerFormat::default(),
                    serve_seconds: PerFormat::new(|| Histogram::new(SERVE_BOUNDS)),
                    encode_seconds: PerFormat::new(|| Histogram::new(ENCODE_BOUNDS)),
                }
            }
        }

        impl Stats {
            /// (name, help, value) for every counter.
            pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    notifications_received: "Notify requests accepted for processing or dedup.",
    notifications_skipped_dedup: "Notifies skipped because the requested variant already existed or the source was already queued.",
    notifications_refused: "Notifies refused: bad request or unconfigured host.",
    queue_dropped: "Notifies dropped because the work queue was full.",
    images_processed: "Sources decoded and run through the pipeline.",
    images_refused: "Sources refused by the pipeline (not an image, over a limit, malformed).",
    fetch_errors: "Origin fetches that failed.",
    variants_written: "Variants written, directly requested and proactive.",
    proactive_variants_written: "Variants written that the notifying client did not ask for.",
    variants_lost: "Slots not stored because the variant was not smaller than the source.",
    encode_failures: "Encoder errors (the slot may be retried later).",
    webp_generated: "WebP variants written.",
    avif_generated: "AVIF variants written.",
    jpeg_optimized: "Optimized JPEG variants written.",
    png_optimized: "Optimized PNG variants written.",
    svg_generated: "SVG variants written (vectorized flat art).",
    store_errors: "Store writes or reads that failed (disk full, corruption).",
    evictions: "Variants evicted to keep the store under cache_size_bytes.",
    variants_served: "Variant responses served.",
    variants_not_found: "Variant requests with no usable stored variant.",
    bytes_served: "Variant payload bytes served.",
    images_us: "Cumulative microseconds spent processing images (decode, resize, encode).",
    refused_no_transform: "Sources refused because the origin sent Cache-Control: no-transform.",
    refused_vary: "Sources refused because the origin's Vary names a request header other than Accept-Encoding.",
    refused_not_public: "Sources refused because the origin's answer is not publicly cacheable (Set-Cookie, private, no-store).",
    refused_tls: "Sources refused because the origin's TLS certificate is not trusted (or TLS failed).",
    refused_other: "Sources refused for another answer of the origin (over max_source_bytes).",
    stale_hits: "Hits served from a stale source while it was revalidated in the background.",
    validated_hits: "Hits served after validating a must-revalidate or no-cache source first.",
    revalidations: "Conditional requests sent to origins.",
    revalidations_not_modified: "Revalidations that confirmed the stored original (304, or the same bytes): lifetime renewed, nothing decoded.",
    revalidations_changed: "Revalidations that found a new original: its variants are regenerated and swapped in.",
    revalidations_gone: "Revalidations answered 404 or 410: the source was purged.",
    revalidations_refused: "Revalidations whose answer forbids optimizing the source now (no-transform, private, Vary): refused and purged.",
    revalidation_errors: "Revalidations that failed (timeout, 5xx): the stale variants stay, retried later.",
    revalidations_unknown: "Revalidations of a source whose record was gone by then.",
    shared_copies: "Variants copied from the shared tier into this store (made by another sidecar: no decode, no encode).",
    shared_fallbacks: "Sources generated here because the shared tier was unavailable, slow or corrupt.",
    shared_waits: "Sources this sidecar waited for while another held their lease.",
    records_deleted: "Records without variants deleted after records.empty_ttl_secs (their tombstones tell the filters).",
    tombstones_compacted: "Tombstones of deleted records dropped from the feed after as long again.",
    connections_accepted: "Client connections accepted (open now: accepted minus closed).",
    connections_closed: "Client connections closed, for any reason.",
    connections_idle_closed: "Connections closed after server.idle_timeout_ms with no request in progress.",
    connections_header_timeouts: "Connections closed because a request's headers took longer than server.header_read_timeout_ms.",
    connections_evicted: "Idle connections closed to make room for a new one at the connection bound.",
    connections_refused: "Connections answered 503 and closed at the bound, every open one having a request in progress.",
    connections_dropped_at_shutdown: "Connections still open at the drain deadline of a shutdown, dropped.",
}

impl Stats {
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A variant answer: `sent` bytes of a variant (0 for a 304) standing in for an original
    /// of `original` bytes, answered in `took`.
    pub fn served(&self, format: Format, sent: u64, original: u64, took: Duration) {
        self.serve_seconds.get(format).observe(took);
        if sent > 0 {
            self.served_bytes.add(format, sent);
            self.served_original_bytes.add(format, original);
        }
    }

    /// A variant stored after `took` of encoding and verification.
    pub fn encoded(&self, format: Format, took: Duration) {
        self.encode_seconds.get(format).observe(took);
    }

    /// Per format: answers, variant bytes sent and the bytes of their originals (`/stats`).
    fn by_format(&self) -> Value {
        let mut map = Map::new();
        for (f, h) in self.serve_seconds.iter() {
            map.insert(
                f.name().to_owned(),
                json!({
                    "responses": h.count(),
                    "served_bytes": self.served_bytes.load(f),
                    "original_bytes": self.served_original_bytes.load(f),
                    "encoded": self.encode_seconds.get(f).count(),
                }),
            );
        }
        Value::Object(map)
    }

    /// The JSON served by `/stats`: every counter at the top level (these and `more`, the
    /// shared tier's), plus `by_type.images.us` (the image time by resource type),
    /// `by_format` and the given gauges.
    pub fn to_json(&self, more: &[(&str, &str, u64)], gauges: &[(&str, u64)]) -> Value {
        let mut map = Map::new();
        for (name, _, value) in self.snapshot().into_iter().chain(more.iter().copied()) {
            map.insert(name.to_owned(), json!(value));
        }
        map.insert(
            "by_type".to_owned(),
            json!({ "images": { "us": self.images_us.load(Ordering::Relaxed) } }),
        );
        map.insert("by_format".to_owned(), self.by_format());
        for (name, value) in gauges {
            map.insert((*name).to_owned(), json!(value));
        }
        Value::Object(map)
    }

    /// Prometheus text exposition: counters as `rendition_<name>_total`, gauges as is.
    pub fn to_prometheus(
        &self,
        more: &[(&str, &str, u64)],
        gauges: &[(&str, &str, u64)],
    ) -> String {
        let mut out = String::new();
        for (name, help, value) in self.snapshot().into_iter().chain(more.iter().copied()) {
            out.push_str(&format!("# HELP rendition_{name}_total {help}\n# TYPE rendition_{name}_total counter\nrendition_{name}_total {value}\n"));
        }
        for (name, help, value) in gauges {
            out.push_str(&format!("# HELP rendition_{name} {help}\n# TYPE rendition_{name} gauge\nrendition_{name} {value}\n"));
        }
        for (name, help, values) in [
            (
                "rendition_served_bytes_total",
                "Variant payload bytes served, by format.",
                &self.served_bytes,
            ),
            (
                "rendition_served_original_bytes_total",
                "Bytes of the originals that the served variants replaced, by format (the saving is 1 - served_bytes / served_original_bytes).",
                &self.served_original_bytes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (f, v) in values.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{format=\"{}\"}} {}",
                    f.name(),
                    v.load(Ordering::Relaxed)
                );
            }
        }
        for (name, help, histograms) in [
            (
                "rendition_serve_seconds",
                "Variant answers (200 and 304) from request to response, by format.",
                &self.serve_seconds,
            ),
            (
                "rendition_encode_seconds",
                "Encode and verification time of each stored variant, by format.",
                &self.encode_seconds,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (f, h) in histograms.iter() {
                h.render(name, &format!("format=\"{}\"", f.name()), &mut out);
            }
        }
        out
    }
}
