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
use proxy_wasm::types::{Action, MapType};
use rendition_shared::hot::HotUrls;
use rendition_shared::http_cache::{may_transform, NotTransformable};
use rendition_shared::request::{classify, is_internal_header, Bypass};
use rendition_shared::response::{merge_vary, optimizable, ResponseFacts, ACCEPT_CH, VARY};
use rendition_shared::table::{bucket_lookup, IndexMeta, META_KEY};
use rendition_shared::wire::{Notify, VariantRef, VARIANT_HEADER};
use rendition_shared::{
    select, wants_generation, CapabilityMask, ClientProfile, FallbackStep, IndexRecord, KeyId,
    Selection, SourceKey,
};
use std::borrow::Cow;
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
    /// The worker's cached canonical key (no copy of the URL per request).
    url: Rc<SourceKey>,
    key: KeyId,
    /// Whether the sidecar should be asked to generate the client's slot.
    wants: bool,
}

/// What routing reads from the request headers, found in the profile's pass over the map.
#[derive(Default)]
struct RequestFacts<'a> {
    method: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    has_authorization: bool,
    has_internal: bool,
}

impl<'a> RequestFacts<'a> {
    /// The first of each wins, as a lookup by name would. Names compare case-insensitively
    /// (Envoy hands them over lowercase, a mock host need not), after a length check that
    /// most names fail at once.
    fn take(&mut self, name: &'a [u8], value: &'a [u8]) {
        let is = |wanted: &str| name.eq_ignore_ascii_case(wanted.as_bytes());
        let slot = match name.len() {
            7 if is(":method") => &mut self.method,
            5 if is(":path") => &mut self.path,
            10 if is(":authority") => &mut self.authority,
            4 if is("host") => &mut self.host,
            13 if is("authorization") => {
                self.has_authorization = true;
                return;
            }
            _ => {
                self.has_internal |= is_internal_header(name);
                return;
            }
        };
        slot.get_or_insert(value);
    }
}

/// The response headers the filter reads, found in one pass over the map.
#[derive(Default)]
struct ResponseView<'a> {
    status: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    /// List headers: every line, joined (one line stays borrowed).
    cache_control: Option<Cow<'a, [u8]>>,
    vary: Option<Cow<'a, [u8]>>,
    etag: Option<&'a [u8]>,
    last_modified: Option<&'a [u8]>,
    content_length: Option<&'a [u8]>,
    set_cookie: bool,
    /// The sidecar marks what it serves with the variant header.
    variant: bool,
}

impl<'a> ResponseView<'a> {
    /// As [`RequestFacts::take`]: first of each, names case-insensitive after a length check,
    /// except the list headers the decision reads (`Cache-Control`, `Vary`): a list sent as
    /// several lines is one comma-joined value (RFC 9110 5.3), so a `Vary: Cookie` on a
    /// second line is seen, and the `Vary` written back keeps it.
    fn of(headers: &'a HeaderMap) -> ResponseView<'a> {
        let mut view = ResponseView::default();
        for (name, value) in headers.iter() {
            let is = |wanted: &str| name.eq_ignore_ascii_case(wanted.as_bytes());
            let slot = match name.len() {
                7 if is(":status") => &mut view.status,
                12 if is("content-type") => &mut view.content_type,
                13 if is("cache-control") => {
                    join_line(&mut view.cache_control, value);
                    continue;
                }
                13 if is("last-modified") => &mut view.last_modified,
                4 if is("vary") => {
                    join_line(&mut view.vary, value);
                    continue;
                }
                4 if is("etag") => &mut view.etag,
                14 if is("content-length") => &mut view.content_length,
                10 if is("set-cookie") => {
                    view.set_cookie = true;
                    continue;
                }
                n if n == VARIANT_HEADER.len() && is(VARIANT_HEADER) => {
                    view.variant = true;
                    continue;
                }
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        view
    }

    fn facts(&self) -> ResponseFacts<'_> {
        ResponseFacts {
            status: text(self.status).and_then(|s| s.parse().ok()).unwrap_or(0),
            content_type: text(self.content_type),
            cache_control: text(self.cache_control.as_deref()),
            vary: text(self.vary.as_deref()),
            has_set_cookie: self.set_cookie,
            content_length: text(self.content_length).and_then(|v| v.parse().ok()),
        }
    }
}

/// Adds one line of a list header to what was read of it so far.
fn join_line<'a>(joined: &mut Option<Cow<'a, [u8]>>, line: &'a [u8]) {
    match joined {
        None => *joined = Some(Cow::Borrowed(line)),
        Some(lines) => {
            let lines = lines.to_mut();
            lines.extend_from_slice(b", ");
            lines.extend_from_slice(line);
        }
    }
}

/// A header value as text, when it is UTF-8 (a value that is not reads as absent).
fn text(value: Option<&[u8]>) -> Option<&str> {
    value.and_then(|v| std::str::from_utf8(v).ok())
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
            url: source_key,
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
                        self.queue_notice(mask.bits(), None);
                    }
                    if self.worker.hot.borrow_mut().record_fallback(&key) {
                        self.worker.metrics.warmups_sent.inc();
                        self.queue_notice(CapabilityMask::WARMUP_SENTINEL, None);
                    }
                }
                Outcome::Hit { mask, slot, step }
            }
        }
    }

    /// Queues a notify for this request's source, unless this worker sent the same one lately:
    /// then nothing is parsed, built or copied, the common case on a popular miss. With a miss
    /// `response`, a response not worth optimizing is counted by why and not sent, and its
    /// validators go along.
    fn queue_notice(&self, mask: u32, response: Option<&ResponseView<'_>>) {
        let Some(source) = &self.source else { return };
        let now = now_ms();
        if self
            .worker
            .outbox
            .borrow()
            .sent_recently(source.key, mask, now)
        {
            return;
        }
        if let Some(response) = response {
            if let Err(why) = optimizable(&response.facts(), self.worker.config.max_source_bytes) {
                if let Some(c) = self.worker.metrics.not_optimized(why) {
                    c.inc();
                }
                return;
            }
        }
        let validator = |v: Option<&str>| Notify::bounded_validator(v.map(str::to_owned));
        let notice = Notice {
            body: Notify {
                host: source.url.host().to_owned(),
                path: source.url.path_and_query().to_owned(),
                mask,
                // An origin's oversize validator is left out, not sent to be refused.
                etag: validator(response.and_then(|r| text(r.etag))),
                last_modified: validator(response.and_then(|r| text(r.last_modified))),
            },
            key: Some(source.key),
        };
        if self.worker.outbox.borrow_mut().push(notice, now) == Pushed::Dropped {
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
        // One pass over the map: the client profile reads its headers, and the same walk picks
        // out what routing needs (each lookup by name is a walk of its own).
        let mut seen = RequestFacts::default();
        let profile = ClientProfile::from_headers(headers.iter().inspect(|&(name, value)| {
            seen.take(name, value);
        }));
        if seen.has_internal {
            for (name, _) in headers.iter() {
                // Internal names are ASCII by construction.
                if is_internal_header(name) {
                    if let Ok(name) = std::str::from_utf8(name) {
                        self.set_http_request_header(name, None);
                    }
                }
            }
        }
        let method = text(seen.method).unwrap_or_default();
        let path = text(seen.path).unwrap_or_default();
        let host = text(seen.authority.or(seen.host)).unwrap_or_default();
        let extensions = &self.worker.config.image_extensions;
        let verdict = classify(method, path, seen.has_authorization, extensions);
        if verdict == Err(Bypass::NotAnImagePath) {
            return Action::Continue;
        }
        self.worker.metrics.requests.inc();
        self.outcome = match verdict {
            Err(reason) => Outcome::Bypass(reason.name(), profile.mask),
            Ok(()) => self.decide(&profile, host, path),
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
        let response = ResponseView::of(&headers);
        // Each edit below is one host call that changes one header. Replacing the whole map in
        // one call looks cheaper but is not: Envoy removes and re-adds every header of the map
        // for it (docs/benchmarks.md, "What changed in the filter for these figures").
        let served_by_sidecar = response.variant;
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
        let is_image = text(response.content_type)
            .is_some_and(|ct| ct.len() > 6 && ct.as_bytes()[..6].eq_ignore_ascii_case(b"image/"));
        let config = &self.worker.config;
        // `no-transform` from the origin: its response passes exactly as sent, headers too.
        let no_transform = !served_by_sidecar
            && may_transform(text(response.cache_control.as_deref()), None)
                == Err(NotTransformable::NoTransform);
        if is_image && !no_transform && !matches!(self.outcome, Outcome::Bypass(..)) {
            if config.vary {
                match text(response.vary.as_deref()) {
                    None => self.set_http_response_header("vary", Some(VARY)),
                    Some(existing) => {
                        // Nothing to add (a variant from the sidecar, or `*`): no host call.
                        if let Some(merged) = merge_vary(existing) {
                            self.set_http_response_header("vary", Some(&merged));
                        }
                    }
                }
            }
            if config.accept_ch {
                self.set_http_response_header("accept-ch", Some(ACCEPT_CH));
            }
        }
        if let Outcome::Miss(reason, mask) = self.outcome {
            let wants = self.source.as_ref().is_some_and(|s| s.wants);
            if wants && reason != MissReason::Refused && reason != MissReason::Failover {
                self.queue_notice(mask.bits(), Some(&response));
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
