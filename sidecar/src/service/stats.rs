//! Counters (names and meanings in docs/operations.md), served as JSON (`/stats`) and
//! Prometheus text (`/metrics`).

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        /// Process-wide counters (monotonic since start).
        #[derive(Debug, Default)]
        pub struct Stats {
            $(#[doc = $help] pub $name: AtomicU64,)*
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

    /// The JSON served by `/stats`: every counter at the top level, plus
    /// `by_type.images.us` (the image time by resource type) and the given gauges.
    pub fn to_json(&self, gauges: &[(&str, u64)]) -> Value {
        let mut map = Map::new();
        for (name, _, value) in self.snapshot() {
            map.insert(name.to_owned(), json!(value));
        }
        map.insert(
            "by_type".to_owned(),
            json!({ "images": { "us": self.images_us.load(Ordering::Relaxed) } }),
        );
        for (name, value) in gauges {
            map.insert((*name).to_owned(), json!(value));
        }
        Value::Object(map)
    }

    /// Prometheus text exposition: counters as `rendition_<name>_total`, gauges as is.
    pub fn to_prometheus(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        for (name, help, value) in self.snapshot() {
            out.push_str(&format!("# HELP rendition_{name}_total {help}\n# TYPE rendition_{name}_total counter\nrendition_{name}_total {value}\n"));
        }
        for (name, help, value) in gauges {
            out.push_str(&format!("# HELP rendition_{name} {help}\n# TYPE rendition_{name} gauge\nrendition_{name} {value}\n"));
        }
        out
    }
}
