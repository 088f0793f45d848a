//! One image request through the filter (docs/filter.md, "A request"). Decisions come from
//! `rendition-shared`; this file only reads headers, reads shared data and acts.
//!
//! * Request: strip client-sent `x-rendition-*`; classify; compute the mask; read the index;
//!   on a hit set `x-rendition-variant: {key}/{slot}` and clear the route cache, so Envoy's
//!   route table sends the request to the sidecar. The path is left as it is: if the sidecar
//!   cannot answer, Envoy's retry sends the very same request to the origin (see
//!   `envoy/envoy.yaml`), so a failed hit still gets the original.
//! * Response: `Vary` and `Accept-CH` on images, the debug header, and on a miss that is a
//!   publicly cacheable image, a notify queued for the root context to send.
//!
//! No body callback is implemented: bodies stream through Envoy untouched.

use crate::bucket_cache::BucketCache;
use crate::clock::now_ms;
use crate::config::FilterConfig;
use crate::header_map::HeaderMap;
use crate::key_cache::KeyCache;
use crate::metrics::FilterMetrics;
use crate::outbox::{Notice, Outbox, Pushed};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, MapType};
use rendition_shared::hot::HotUrls;
use rendition_shared::http_cache::{may_transform, NotTransformable};
use rendition_shared::request::{classify, is_internal_header, Bypass};
use rendition_shared::response::{merge_vary, optimizable, ResponseFacts, ACCEPT_CH};
use rendition_shared::table::{bucket_lookup, IndexMeta, META_KEY};
use rendition_shared::wire::{Notify, VariantRef, VARIANT_HEADER};
use rendition_shared::{
    select, wants_generation, CapabilityMask, ClientProfile, FallbackStep, IndexRecord, KeyId,
    Selection,
};
use std::cell::RefCell;
use std::rc::Rc;

/// How often a worker's root context sends the notifies its requests queued and flushes their
/// counters, while there is any of that to do (an idle worker has no tick: [`WorkerState::wake`]).
pub const NOTIFY_TICK: std::time::Duration = std::time::Duration::from_millis(25);

/// Debug response header.
pub const DEBUG_HEADER: &str = "x-rendition";

/// What one worker's requests share: the configuration, stats, the notify queue, hot URLs.
#[derive(Debug)]
pub struct WorkerState {
    pub config: FilterConfig,
    pub metrics: FilterMetrics,
    pub outbox: RefCell<Outbox>,
    pub hot: RefCell<HotUrls>,
    /// The index meta record and when it was read: re-read at most every [`META_TTL_MS`].
    meta: std::cell::Cell<Option<(IndexMeta, u64)>>,
    /// Buckets read under the current meta record (one shared-data read per bucket per index
    /// change instead of one per request).
    buckets: RefCell<BucketCache>,
    /// The keys of the URLs this worker saw last (SHA-256 once per URL, not once per request).
    keys: RefCell<KeyCache>,
    /// Whether the root context's tick is running.
    ticking: std::cell::Cell<bool>,
    /// `Vary` for an image response that has none (the common case), built once.
    vary: String,
}

/// How long a worker trusts its copy of the index meta record. Every host call costs more
/// than the decision itself; a copy up to 50 ms old can only route a hit to a sidecar that
/// went down in those 50 ms, which Envoy's retry then sends to the origin.
pub const META_TTL_MS: u64 = 50;

impl WorkerState {
    pub fn new(config: FilterConfig, metrics: FilterMetrics) -> WorkerState {
        WorkerState {
            outbox: RefCell::new(Outbox::new(
                config.notify_queue,
                4096,
                config.renotify_after_ms,
            )),
            hot: RefCell::new(HotUrls::new(config.hot_table_slots, config.hot_threshold)),
            config,
            metrics,
            meta: std::cell::Cell::new(None),
            buckets: RefCell::new(BucketCache::default()),
            keys: RefCell::new(KeyCache::default()),
            ticking: std::cell::Cell::new(false),
            vary: merge_vary(None),
        }
    }

    /// Starts the root context's tick unless it runs: counters moved or a notice was queued,
    /// and both leave on the tick. One host call on the first request after a quiet spell;
    /// none while traffic keeps the tick running. Called from any context of the worker
    /// (Envoy applies a tick period to the context's root).
    pub fn wake(&self) {
        if !self.ticking.replace(true) {
            let _ = hostcalls::set_tick_period(NOTIFY_TICK);
        }
    }

    /// Notes that the root context stopped its tick (it found nothing left to do).
    pub fn sleep(&self) {
        self.ticking.set(false);
    }
}

/// Why a candidate request goes to the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MissReason {
    /// No variant fits (or none stored yet).
    NoVariant,
    /// The source was refused by the sidecar (not an image, over a limit...).
    Refused,
    /// Variants exist but the sidecar has not been heard from lately.
    SidecarDown,
    /// The index could not be read (no sync yet, or a malformed record).
    NoIndex,
    /// Routed to the sidecar, but the origin answered (Envoy's retry).
    Failover,
}

impl MissReason {
    const fn name(self) -> &'static str {
        match self {
            Self::NoVariant => "no_variant",
            Self::Refused => "refused",
            Self::SidecarDown => "sidecar_down",
            Self::NoIndex => "no_index",
            Self::Failover => "failover",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Not an image request: no header, nothing.
    Untouched,
    Bypass(&'static str, CapabilityMask),
    Hit {
        mask: CapabilityMask,
        slot: CapabilityMask,
        step: FallbackStep,
    },
    Miss(MissReason, CapabilityMask),
}

/// The source a candidate request names, kept for the notify.
#[derive(Debug)]
struct Source {
    host: String,
    path: String,
    key: KeyId,
    /// Whether the sidecar should be asked to generate the client's slot.
    wants: bool,
}

/// One per HTTP request.
pub struct ImageRequest {
    worker: Rc<WorkerState>,
    outcome: Outcome,
    source: Option<Source>,
}

impl ImageRequest {
    pub fn new(worker: Rc<WorkerState>) -> ImageRequest {
        ImageRequest {
            worker,
            outcome: Outcome::Untouched,
            source: None,
        }
    }

    /// The index record of `key`, or why there is none to trust.
    fn lookup(&self, key: &KeyId) -> Result<(Option<IndexRecord>, bool), MissReason> {
        let now = now_ms();
        let meta = match self.worker.meta.get() {
            Some((meta, read_at)) if now.saturating_sub(read_at) < META_TTL_MS => meta,
            _ => {
                let meta = match self.get_shared_data(META_KEY) {
                    (Some(bytes), _) => {
                        IndexMeta::decode(&bytes).map_err(|_| MissReason::NoIndex)?
                    }
                    (None, _) => return Err(MissReason::NoIndex),
                };
                self.worker.meta.set(Some((meta, now)));
                meta
            }
        };
        let usable = meta.sidecar_usable(now, self.worker.config.sidecar_stale_after_ms);
        let mut buckets = self.worker.buckets.borrow_mut();
        let record = buckets
            .get(&meta, meta.bucket_of(key), |k| self.get_shared_data(k).0)
            .and_then(|bucket| bucket_lookup(bucket, meta.epoch, key));
        Ok((record, usable))
    }

    fn decide(&mut self, profile: &ClientProfile, host: &str, path: &str) -> Outcome {
        let mask = profile.mask;
        let Ok((source_key, key)) = self.worker.keys.borrow_mut().get(host, path) else {
            return Outcome::Bypass("invalid_url", mask);
        };
        let metrics = &self.worker.metrics;
        let found = self.lookup(&key);
        // Without an index every image is worth asking for; with one, only missing slots.
        let wants = found.as_ref().map_or(true, |(record, _)| {
            let r = record.unwrap_or_default();
            wants_generation(r.stored, r.lost, r.refused, profile)
        });
        self.source = Some(Source {
            host: source_key.host().to_owned(),
            path: source_key.path_and_query().to_owned(),
            key,
            wants,
        });
        let (record, usable) = match found {
            Ok((record, usable)) => (record.unwrap_or_default(), usable),
            Err(reason) => {
                metrics.index_unavailable.inc();
                return Outcome::Miss(reason, mask);
            }
        };
        if record.refused {
            return Outcome::Miss(MissReason::Refused, mask);
        }
        match select(record.stored, profile) {
            Selection::Origin => Outcome::Miss(MissReason::NoVariant, mask),
            Selection::Variant { .. } if !usable => {
                metrics.sidecar_unusable.inc();
                Outcome::Miss(MissReason::SidecarDown, mask)
            }
            Selection::Variant { slot, step } => {
                let value = VariantRef { key, slot }.header_value();
                self.set_http_request_header(VARIANT_HEADER, Some(&value));
                clear_route_cache();
                if step.is_fallback() {
                    if wants {
                        // A fallback hit also asks for the client's own slot, so the next
                        // request of this client is an exact hit.
                        self.queue_notice(mask.bits(), None, None);
                    }
                    if self.worker.hot.borrow_mut().record_fallback(&key) {
                        self.worker.metrics.warmups_sent.inc();
                        self.queue_notice(CapabilityMask::WARMUP_SENTINEL, None, None);
                    }
                }
                Outcome::Hit { mask, slot, step }
            }
        }
    }

    fn queue_notice(&self, mask: u32, etag: Option<String>, last_modified: Option<String>) {
        let Some(source) = &self.source else { return };
        let notice = Notice {
            body: Notify {
                host: source.host.clone(),
                path: source.path.clone(),
                mask,
                // An origin's oversize validator is left out, not sent to be refused.
                etag: Notify::bounded_validator(etag),
                last_modified: Notify::bounded_validator(last_modified),
            },
            key: Some(source.key),
        };
        let pushed = self.worker.outbox.borrow_mut().push(notice, now_ms());
        if pushed == Pushed::Dropped {
            self.worker.metrics.notifies_dropped.inc();
        }
    }
}

/// Envoy >= 1.33 no longer re-matches the route after a filter changes request headers; the
/// `clear_route_cache` foreign function asks for it. Older Envoys cleared it by themselves and
/// answer "not found", which is fine.
fn clear_route_cache() {
    let _ = hostcalls::call_foreign_function("clear_route_cache", None);
}

impl Context for ImageRequest {}

impl HttpContext for ImageRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.worker.metrics.entered.inc();
        self.worker.wake();
        let headers = HeaderMap::read(MapType::HttpRequestHeaders);
        for (name, _) in headers.iter() {
            // Internal names are ASCII by construction; anything else is not one of ours.
            match std::str::from_utf8(name) {
                Ok(name) if is_internal_header(name) => self.set_http_request_header(name, None),
                _ => {}
            }
        }
        let method = headers.get(":method").unwrap_or_default();
        let path = headers.get(":path").unwrap_or_default();
        let host = headers
            .get(":authority")
            .or_else(|| headers.get("host"))
            .unwrap_or_default();
        let has_auth = headers.get_bytes("authorization").is_some();
        let extensions = &self.worker.config.image_extensions;
        let verdict = classify(method, path, has_auth, extensions);
        if verdict == Err(Bypass::NotAnImagePath) {
            return Action::Continue;
        }
        let profile = ClientProfile::from_headers(headers.iter());
        self.worker.metrics.requests.inc();
        self.outcome = match verdict {
            Err(reason) => Outcome::Bypass(reason.name(), profile.mask),
            Ok(()) => {
                let (host, path) = (host.to_owned(), path.to_owned());
                self.decide(&profile, &host, &path)
            }
        };
        let m = &self.worker.metrics;
        match self.outcome {
            Outcome::Untouched => {}
            Outcome::Bypass(..) => m.bypassed.inc(),
            Outcome::Hit { step, .. } => {
                m.hits.inc();
                if let Some(c) = m.step(step) {
                    c.inc();
                }
            }
            Outcome::Miss(..) => m.misses.inc(),
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.outcome == Outcome::Untouched {
            return Action::Continue;
        }
        let headers = HeaderMap::read(MapType::HttpResponseHeaders);
        // Each edit below is one host call that changes one header. Replacing the whole map in
        // one call looks cheaper but is not: Envoy removes and re-adds every header of the map
        // for it (docs/benchmarks.md, "What changed in the filter for these figures").
        let served_by_sidecar = headers.get_bytes(VARIANT_HEADER).is_some();
        if served_by_sidecar {
            self.set_http_response_header(VARIANT_HEADER, None);
        }
        if let Outcome::Hit { mask, step, .. } = self.outcome {
            if !served_by_sidecar {
                // Envoy retried at the origin: the sidecar was down, slow or had lost the variant.
                self.worker.metrics.hit_failovers.inc();
                self.worker.metrics.hits.add(-1);
                if let Some(c) = self.worker.metrics.step(step) {
                    c.add(-1);
                }
                self.worker.metrics.misses.inc();
                self.outcome = Outcome::Miss(MissReason::Failover, mask);
            }
        }
        let content_type = headers.get("content-type");
        let is_image = content_type
            .is_some_and(|ct| ct.len() > 6 && ct.as_bytes()[..6].eq_ignore_ascii_case(b"image/"));
        let config = &self.worker.config;
        // `no-transform` from the origin: its response passes exactly as sent, headers too.
        let no_transform = !served_by_sidecar
            && may_transform(headers.get("cache-control"), None)
                == Err(NotTransformable::NoTransform);
        if is_image && !no_transform && !matches!(self.outcome, Outcome::Bypass(..)) {
            if config.vary {
                match headers.get("vary") {
                    None => self.set_http_response_header("vary", Some(&self.worker.vary)),
                    existing => self.set_http_response_header("vary", Some(&merge_vary(existing))),
                }
            }
            if config.accept_ch {
                self.set_http_response_header("accept-ch", Some(ACCEPT_CH));
            }
        }
        if let Outcome::Miss(reason, _) = self.outcome {
            let wants = self.source.as_ref().is_some_and(|s| s.wants);
            if wants && reason != MissReason::Refused && reason != MissReason::Failover {
                let facts = ResponseFacts {
                    status: headers
                        .get(":status")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                    content_type,
                    cache_control: headers.get("cache-control"),
                    vary: headers.get("vary"),
                    has_set_cookie: headers.get_bytes("set-cookie").is_some(),
                    content_length: headers.get("content-length").and_then(|v| v.parse().ok()),
                };
                match optimizable(&facts, config.max_source_bytes) {
                    Ok(()) => {
                        let mask = match self.outcome {
                            Outcome::Miss(_, mask) => mask.bits(),
                            _ => CapabilityMask::DEFAULT.bits(),
                        };
                        self.queue_notice(
                            mask,
                            headers.get("etag").map(str::to_owned),
                            headers.get("last-modified").map(str::to_owned),
                        );
                    }
                    Err(why) => {
                        if let Some(c) = self.worker.metrics.not_optimized(why) {
                            c.inc();
                        }
                        let _ = hostcalls::log(
                            LogLevel::Debug,
                            &format!("rendition: not optimizable: {}", why.name()),
                        );
                    }
                }
            }
        }
        if self.worker.config.debug_header {
            if let Some(value) = debug_value(self.outcome) {
                self.set_http_response_header(DEBUG_HEADER, Some(&value));
            }
        }
        // Counters moved and a notice may be queued: the root's tick sends them.
        self.worker.wake();
        Action::Continue
    }
}

/// The debug header's value: `hit; mask=0x0a; variant=0x0a; step=exact`,
/// `miss; mask=0x0a; reason=no_variant` or `bypass; mask=0x0a; reason=authorization`. Built
/// by hand rather than with `format!`, which was a fifth of a request's own instructions
/// (shared/src/hex.rs says why).
fn debug_value(outcome: Outcome) -> Option<String> {
    let (kind, mask) = match outcome {
        Outcome::Untouched => return None,
        Outcome::Bypass(_, mask) => ("bypass", mask),
        Outcome::Miss(_, mask) => ("miss", mask),
        Outcome::Hit { mask, .. } => ("hit", mask),
    };
    let mut value = String::with_capacity(64);
    value.push_str(kind);
    value.push_str("; mask=");
    mask.push_hex(&mut value);
    match outcome {
        Outcome::Untouched => {}
        Outcome::Bypass(reason, _) => {
            value.push_str("; reason=");
            value.push_str(reason);
        }
        Outcome::Miss(reason, _) => {
            value.push_str("; reason=");
            value.push_str(reason.name());
        }
        Outcome::Hit { slot, step, .. } => {
            value.push_str("; variant=");
            slot.push_hex(&mut value);
            value.push_str("; step=");
            value.push_str(step.name());
        }
    }
    Some(value)
}
