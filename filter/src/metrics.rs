//! Envoy stats defined with `proxy_define_metric`. Envoy prefixes them `wasmcustom.`; every
//! worker defines the same names and Envoy sums them into one stat, so
//! `curl 127.0.0.1:9901/stats?filter=rendition` shows the whole process.
//!
//! A metric that cannot be defined is logged once and then skipped: stats never fail a request.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType};
use rendition_shared::response::NotOptimizable;
use rendition_shared::FallbackStep;

/// A defined metric (or none, when the host refused it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Metric(Option<u32>);

impl Metric {
    fn define(kind: MetricType, name: &str) -> Metric {
        match hostcalls::define_metric(kind, name) {
            Ok(id) => Metric(Some(id)),
            Err(e) => {
                let _ = hostcalls::log(
                    LogLevel::Warn,
                    &format!("rendition: metric {name} not defined: {e:?}"),
                );
                Metric(None)
            }
        }
    }

    pub fn add(self, n: i64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::increment_metric(id, n);
        }
    }

    pub fn inc(self) {
        self.add(1);
    }

    pub fn set(self, value: u64) {
        if let Some(id) = self.0 {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}

/// A counter that adds up locally and reaches Envoy on [`FilterMetrics::flush`]: a host call
/// per increment per request costs more than the rest of the filter's decision (measured with
/// `benches/filter_bench.py`), so the worker's root context flushes on its tick instead.
#[derive(Debug, Default)]
pub struct Counter {
    metric: Metric,
    pending: std::cell::Cell<i64>,
}

impl Counter {
    fn define(name: &str) -> Counter {
        Counter {
            metric: Metric::define(MetricType::Counter, name),
            pending: std::cell::Cell::new(0),
        }
    }

    pub fn add(&self, n: i64) {
        self.pending.set(self.pending.get() + n);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    fn flush(&self) {
        let n = self.pending.replace(0);
        if n != 0 {
            self.metric.add(n);
        }
    }
}

/// The filter's counters (per worker definitions of process-wide stats), at most one tick
/// (25 ms) behind.
#[derive(Debug, Default)]
pub struct FilterMetrics {
    /// Requests the filter ran on, whatever their path. With the filter scoped to the image
    /// routes (envoy/envoy.yaml) other requests never reach it, and this counter shows it.
    pub entered: Counter,
    /// Requests the filter classified as images (GET/HEAD, image path, no credentials).
    pub requests: Counter,
    pub bypassed: Counter,
    pub hits: Counter,
    pub misses: Counter,
    /// Hits by the fallback step that found the variant, in [`FallbackStep::ALL`] order.
    pub by_step: [Counter; 6],
    /// A hit was routed to the sidecar but the origin answered (Envoy's retry to the origin).
    pub hit_failovers: Counter,
    /// The index says a variant exists but the sync has not heard from the sidecar lately.
    pub sidecar_unusable: Counter,
    pub notifies_sent: Counter,
    pub notifies_failed: Counter,
    pub notifies_dropped: Counter,
    pub warmups_sent: Counter,
    pub index_unavailable: Counter,
    /// Misses not sent to the sidecar, by reason, in [`NotOptimizable::ALL`] order (the
    /// origin's `no-transform` and `Vary` among them).
    pub not_optimized: [Counter; 7],
}

impl FilterMetrics {
    /// Sends what accumulated since the last flush.
    pub fn flush(&self) {
        for c in [
            &self.entered,
            &self.requests,
            &self.bypassed,
            &self.hits,
            &self.misses,
            &self.hit_failovers,
            &self.sidecar_unusable,
            &self.notifies_sent,
            &self.notifies_failed,
            &self.notifies_dropped,
            &self.warmups_sent,
            &self.index_unavailable,
        ]
        .into_iter()
        .chain(self.by_step.iter())
        .chain(self.not_optimized.iter())
        {
            c.flush();
        }
    }

    pub fn define() -> FilterMetrics {
        let c = Counter::define;
        FilterMetrics {
            entered: c("rendition.entered"),
            requests: c("rendition.requests"),
            bypassed: c("rendition.bypassed"),
            hits: c("rendition.hits"),
            misses: c("rendition.misses"),
            by_step: FallbackStep::ALL
                .map(|s| Counter::define(&format!("rendition.hits_by_step.{}", s.name()))),
            hit_failovers: c("rendition.hit_failovers"),
            sidecar_unusable: c("rendition.sidecar_unusable"),
            notifies_sent: c("rendition.notifies_sent"),
            notifies_failed: c("rendition.notifies_failed"),
            notifies_dropped: c("rendition.notifies_dropped"),
            warmups_sent: c("rendition.warmups_sent"),
            index_unavailable: c("rendition.index_unavailable"),
            not_optimized: NotOptimizable::ALL
                .map(|r| Counter::define(&format!("rendition.not_optimized.{}", r.name()))),
        }
    }

    pub fn not_optimized(&self, why: NotOptimizable) -> Option<&Counter> {
        NotOptimizable::ALL
            .iter()
            .position(|r| *r == why)
            .and_then(|i| self.not_optimized.get(i))
    }

    pub fn step(&self, step: FallbackStep) -> Option<&Counter> {
        FallbackStep::ALL
            .iter()
            .position(|s| *s == step)
            .and_then(|i| self.by_step.get(i))
    }
}

/// The index sync's stats (defined by the singleton only).
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncMetrics {
    /// Sources in the shared-data table (gauge).
    pub records: Metric,
    /// Feed sequence applied (gauge).
    pub applied_seq: Metric,
    /// How far the applied sequence trails the sidecar's newest (gauge, in changes).
    pub lag_changes: Metric,
    /// Milliseconds since a feed answer last arrived, set on every tick (gauge; a long-poll
    /// with nothing new answers every `poll_wait_ms`).
    pub since_contact_ms: Metric,
    pub polls: Metric,
    pub poll_failures: Metric,
    pub resyncs: Metric,
    pub evictions: Metric,
    pub entries_applied: Metric,
}

impl SyncMetrics {
    pub fn define() -> SyncMetrics {
        let c = |name: &str| Metric::define(MetricType::Counter, name);
        let g = |name: &str| Metric::define(MetricType::Gauge, name);
        SyncMetrics {
            records: g("rendition.index.records"),
            applied_seq: g("rendition.index.applied_seq"),
            lag_changes: g("rendition.index.lag_changes"),
            since_contact_ms: g("rendition.index.since_contact_ms"),
            polls: c("rendition.index.polls"),
            poll_failures: c("rendition.index.poll_failures"),
            resyncs: c("rendition.index.resyncs"),
            evictions: c("rendition.index.evictions"),
            entries_applied: c("rendition.index.entries_applied"),
        }
    }
}
