//! What a worker does with a source: decode once, publish early.
//!
//! * The slot the notifying client asked for is encoded and stored first (the next request of
//!   that client hits), its proactive siblings after, from the same decoded pixels.
//! * CPU work runs on the blocking pool, one source per worker, `workers` = cores by default.
//! * Every store change is published to the feed at once, so the filters learn of it.

use super::histogram::Format;
use super::queue::{Job, JobReceiver};
use super::revalidate;
use super::share::{self, LeaseHold, Plan};
use super::state::AppState;
use crate::encode::avif::AvifEncoder;
use crate::encode::Codec;
use crate::origin::{FetchError, Fetched};
use crate::pipeline::{self, Encoders, Outcome, Prepared, VariantError};
use crate::quality::QualityPolicy;
use crate::store::SourceMeta;
use rendition_shared::http_cache::NotTransformable;
use rendition_shared::wire::Requested;
use rendition_shared::{
    full_matrix_order, generation_order, CapabilityMask, SlotSet, SourceKey, SVG_SLOT,
};
use std::sync::Arc;
use std::time::Instant;

/// A worker's tools besides the shared state: the quality policy and the AVIF encoders (one
/// set for all workers; all are stateless).
pub struct Worker {
    pub state: Arc<AppState>,
    pub quality: Box<dyn QualityPolicy>,
    /// For the siblings: one thread per encode.
    pub avif: Box<dyn AvifEncoder>,
    /// For the slots a client asked for (the first phase): a thread per core, because the
    /// client's first hit waits for this encode and siblings can wait.
    pub avif_direct: Box<dyn AvifEncoder>,
}

impl Worker {
    /// The slots a request wants, in generation order, minus what is stored or lost.
    pub fn wanted(
        &self,
        requested: &[Requested],
        stored: SlotSet,
        lost: SlotSet,
    ) -> Vec<CapabilityMask> {
        let mut order: Vec<CapabilityMask> = Vec::new();
        for r in requested {
            let slots = match r {
                Requested::Slot(m) => generation_order(*m, self.state.config.variants.proactive()),
                Requested::Warmup => full_matrix_order(),
            };
            for s in slots {
                if !order.contains(&s) && !stored.contains(s) && !lost.contains(s) {
                    order.push(s);
                }
            }
        }
        order
    }

    /// Processes one source end to end.
    async fn process(self: &Arc<Self>, job: Job, more: Vec<Requested>) {
        let id = job.key.id();
        let record = match self.state.store.record(&id) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(key = %job.key, "store read failed: {e}");
                self.state.stats.add(&self.state.stats.store_errors, 1);
                return;
            }
        };
        let (stored, lost, refused) = record
            .as_ref()
            .map_or((SlotSet::EMPTY, SlotSet::EMPTY, false), |(r, _)| {
                (r.stored, r.lost, r.refused)
            });
        // A refusal stands until the record expires, unless a revalidation found a new
        // original (a replacement).
        if refused && job.replacement.is_none() {
            return;
        }
        let mut requested = vec![job.requested];
        requested.extend(more);
        let svg_decided = stored.contains(SVG_SLOT) || lost.contains(SVG_SLOT);
        let wanted = self.wanted(&requested, stored, lost);
        // SVG is a sibling: attempted with proactive generation or a warmup, once per source.
        let try_svg = (self.state.config.variants.proactive_image_variants
            || requested.contains(&Requested::Warmup))
            && !svg_decided;
        if wanted.is_empty() && !try_svg && job.replacement.is_none() {
            self.state
                .stats
                .add(&self.state.stats.notifications_skipped_dedup, 1);
            return;
        }
        // The shared tier first: another sidecar may have made these already, or be making
        // them. A replacement (a new original found by a revalidation) only counts a
        // manifest of that very original.
        let expected_hash = job
            .replacement
            .as_ref()
            .map(|f| revalidate::source_hash(&f.bytes));
        let lease = if self.state.fleet.is_some() {
            match share::plan(
                &self.state,
                &job.key,
                &wanted,
                record.as_ref(),
                expected_hash.as_deref(),
            )
            .await
            {
                Plan::Done => return,
                Plan::Wait => {
                    share::wait_for_manifest(Arc::clone(&self.state), job, wanted);
                    return;
                }
                Plan::Generate(lease) => lease,
            }
        } else {
            None
        };
        let fetched = match job.replacement {
            Some(f) => Arc::try_unwrap(f).unwrap_or_else(|shared| (*shared).clone()),
            None => match self.state.origins.fetch(&job.key).await {
                Ok(f) => f,
                Err(e) => {
                    self.state.stats.add(&self.state.stats.fetch_errors, 1);
                    tracing::warn!(key = %job.key, "fetch failed: {e}");
                    if e.is_refusal() {
                        self.count_refusal(&e);
                        let meta = SourceMeta {
                            key: job.key.to_string(),
                            ..SourceMeta::default()
                        };
                        self.refuse(&job.key, &meta, &e.to_string());
                        if lease.is_some() {
                            share::after_refusal(&self.state, &job.key, &meta, &e.to_string())
                                .await;
                        }
                    }
                    share::finish(lease).await;
                    return;
                }
            },
        };
        // A new original (the origin's validators or bytes say so, not a notify's claims)
        // replaces every variant of the old one, all slots that were stored made again.
        let replace = match &record {
            Some((r, meta)) if !r.is_empty() => {
                refused || revalidate::is_new_original(meta, &fetched)
            }
            _ => false,
        };
        let wanted = if replace {
            tracing::info!(key = %job.key, "a new original: its variants are replaced");
            let mut again: Vec<Requested> = stored.iter().map(Requested::Slot).collect();
            again.extend(requested.iter().copied());
            self.wanted(&again, SlotSet::EMPTY, SlotSet::EMPTY)
        } else {
            wanted
        };
        let direct: SlotSet = if replace {
            // One phase: the swap is a single transaction.
            wanted.iter().copied().collect()
        } else {
            requested
                .iter()
                .filter_map(|r| match r {
                    Requested::Slot(m) => Some(m.slot()),
                    Requested::Warmup => None,
                })
                .collect()
        };
        self.generate(job.key, fetched, wanted, direct, replace, lease)
            .await;
    }

    /// Decode once, then store the directly requested slots first and the siblings after;
    /// with a lease on the shared tier, each phase is shared as soon as it is stored. With
    /// `replace`, the first store swaps out whatever the source had.
    async fn generate(
        self: &Arc<Self>,
        key: SourceKey,
        fetched: Fetched,
        wanted: Vec<CapabilityMask>,
        direct: SlotSet,
        replace: bool,
        lease: Option<LeaseHold>,
    ) {
        let started = Instant::now();
        let this = Arc::clone(self);
        let k = key.clone();
        let prepared = tokio::task::spawn_blocking(move || this.prepare_source(&k, fetched)).await;
        let (prepared, meta) = match prepared {
            Ok(Ok(ready)) => ready,
            Ok(Err(refused)) => {
                let (meta, reason) = *refused;
                if lease.is_some() {
                    share::after_refusal(&self.state, &key, &meta, &reason).await;
                }
                share::finish(lease).await;
                return;
            }
            Err(e) => {
                tracing::error!(%key, "pipeline task failed: {e}");
                share::finish(lease).await;
                return;
            }
        };
        let prepared = Arc::new(prepared);
        let meta = Arc::new(meta);
        let (first, rest): (Vec<CapabilityMask>, Vec<CapabilityMask>) =
            wanted.iter().partition(|s| direct.contains(**s));
        let mut replace_now = replace;
        for phase in [first, rest] {
            if phase.is_empty() {
                continue;
            }
            let (this, p, m, k) = (
                Arc::clone(self),
                Arc::clone(&prepared),
                Arc::clone(&meta),
                key.clone(),
            );
            let swap = replace_now;
            let stored = tokio::task::spawn_blocking(move || {
                this.store_phase(&k, &p, &m, &phase, direct, swap)
            })
            .await;
            let Ok(Some(outcomes)) = stored else {
                break;
            };
            if lease.is_some() {
                share::after_phase(&self.state, &key, &meta, &outcomes, replace_now).await;
            }
            replace_now = false;
        }
        share::finish(lease).await;
        self.state.stats.add(&self.state.stats.images_processed, 1);
        self.state.stats.add(
            &self.state.stats.images_us,
            started.elapsed().as_micros() as u64,
        );
    }

    /// Steps 2-7 on the fetched bytes, and the source's metadata; a refusal is recorded
    /// (and returned with its reason, to share).
    fn prepare_source(
        &self,
        key: &SourceKey,
        fetched: Fetched,
    ) -> Result<(Prepared, SourceMeta), Box<(SourceMeta, String)>> {
        let mut meta = SourceMeta {
            key: key.to_string(),
            source_bytes: fetched.bytes.len() as u64,
            source_hash: Some(revalidate::source_hash(&fetched.bytes)),
            ..SourceMeta::default()
        };
        revalidate::stamp(
            &mut meta,
            &fetched.caching,
            fetched.request_ms,
            fetched.response_ms,
        );
        let prepared = match pipeline::prepare(&fetched.bytes, &self.state.config.limits) {
            Ok(p) => p,
            Err(refusal) => {
                self.state.stats.add(&self.state.stats.images_refused, 1);
                tracing::warn!(%key, "source refused: {refusal}");
                let reason = refusal.to_string();
                self.refuse(key, &meta, &reason);
                return Err(Box::new((meta, reason)));
            }
        };
        for note in &prepared.notes {
            tracing::info!(%key, "{note}");
        }
        meta.width = prepared.image.width;
        meta.height = prepared.image.height;
        meta.format = Some(prepared.format.name().to_owned());
        meta.class = Some(prepared.class.name().to_owned());
        Ok((prepared, meta))
    }

    /// Steps 8-10 for one phase's slots, stored (and the store kept under its budget).
    /// `None` when the store write failed.
    fn store_phase(
        &self,
        key: &SourceKey,
        prepared: &Prepared,
        meta: &SourceMeta,
        phase: &[CapabilityMask],
        direct: SlotSet,
        replace: bool,
    ) -> Option<Vec<Outcome>> {
        let encoders = Encoders {
            widths: self.state.config.variants.widths(),
            quality: self.quality.as_ref(),
            avif: if phase.iter().all(|s| direct.contains(*s)) {
                self.avif_direct.as_ref()
            } else {
                self.avif.as_ref()
            },
            verify: Some(pipeline::Targets {
                score: f64::from(self.state.config.target_ssimulacra2),
                save_data_reduction: f64::from(self.state.config.savedata_score_reduction),
            }),
        };
        let outcomes = pipeline::generate(prepared, phase, &encoders);
        self.count(key, &outcomes, direct);
        match self.state.store.put_outcomes(key, meta, &outcomes, replace) {
            Ok(seq) => self.state.published(seq),
            Err(e) => {
                self.state.stats.add(&self.state.stats.store_errors, 1);
                tracing::error!(%key, "store write failed (disk full?): {e}");
                return None;
            }
        }
        match self.state.store.evict_to_budget() {
            Ok(n) if n > 0 => {
                self.state
                    .stats
                    .add(&self.state.stats.evictions, u64::from(n));
                self.state.published_latest();
            }
            Ok(_) => {}
            Err(e) => tracing::error!("eviction failed: {e}"),
        }
        Some(outcomes)
    }

    /// Counts a refusal by the origin's answer, for /metrics.
    fn count_refusal(&self, e: &FetchError) {
        let s = &self.state.stats;
        let counter = match e {
            FetchError::NotTransformable(NotTransformable::NoTransform) => &s.refused_no_transform,
            FetchError::NotTransformable(NotTransformable::Vary) => &s.refused_vary,
            FetchError::NotTransformable(NotTransformable::Private) | FetchError::NotPublic(_) => {
                &s.refused_not_public
            }
            FetchError::Tls(_) => &s.refused_tls,
            _ => &s.refused_other,
        };
        s.add(counter, 1);
    }

    fn refuse(&self, key: &SourceKey, meta: &SourceMeta, reason: &str) {
        match self.state.store.refuse(key, meta, reason) {
            Ok(seq) => self.state.published(seq),
            Err(e) => {
                self.state.stats.add(&self.state.stats.store_errors, 1);
                tracing::error!(%key, "store write failed: {e}");
            }
        }
    }

    fn count(&self, key: &SourceKey, outcomes: &[Outcome], direct: SlotSet) {
        let s = &self.state.stats;
        for o in outcomes {
            match o {
                Outcome::Stored(v) => {
                    s.add(&s.variants_written, 1);
                    s.encoded(Format::of_codec(v.encoded.codec), v.encode_time);
                    if v.slots.bits() & direct.bits() == 0 {
                        s.add(&s.proactive_variants_written, 1);
                    }
                    let counter = match v.encoded.codec {
                        Codec::Webp => &s.webp_generated,
                        Codec::Avif => &s.avif_generated,
                        Codec::Jpeg => &s.jpeg_optimized,
                        Codec::Png => &s.png_optimized,
                        Codec::Svg => &s.svg_generated,
                    };
                    s.add(counter, 1);
                }
                Outcome::Lost { slots, .. } => s.add(&s.variants_lost, u64::from(slots.len())),
                Outcome::Failed { slots, error } => {
                    s.add(&s.encode_failures, 1);
                    // Remembered as lost until the source changes (`Outcome::lost`): logged
                    // once per source version, not on every notify.
                    let codec = match error {
                        VariantError::Encode(e) => e.codec.name(),
                        _ => "-",
                    };
                    tracing::warn!(
                        %key,
                        slots = format_args!("{:#x}", slots.bits()),
                        codec,
                        "encode failed, slots kept as lost until the source changes: {error}"
                    );
                }
            }
        }
    }
}

/// Spawns `workers` tasks that take sources off the queue; they stop when every sender of the
/// queue is gone.
pub fn run_workers(worker: Arc<Worker>, rx: JobReceiver) -> Vec<tokio::task::JoinHandle<()>> {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    (0..worker.state.config.workers())
        .map(|_| {
            let worker = Arc::clone(&worker);
            let rx = Arc::clone(&rx);
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(id) = next else { break };
                    let queue = &worker.state.queue;
                    if let Some((job, more)) = queue.start(&id) {
                        worker.process(job, more).await;
                    }
                    if !queue.finish(&id) {
                        worker.state.stats.add(&worker.state.stats.queue_dropped, 1);
                    }
                }
            })
        })
        .collect()
}
