//! The work queue and what a worker does with a source.
//!
//! * Bounded: a notify that finds the queue full is dropped and counted, never buffered.
//! * Deduplicated per source: a notify for a source already queued or running merges its
//!   slot into that job instead of queueing again; a running job requeues itself once if
//!   slots arrived while it ran.
//! * Decode once, publish early: the slot the notifying client asked for is encoded and stored
//!   first (the next request of that client hits), its proactive siblings after, from the same
//!   decoded pixels.
//! * CPU work runs on the blocking pool, one source per worker, `workers` = cores by default.

use crate::config::Config;
use crate::encode::avif::AvifEncoder;
use crate::origin::{FetchError, Origins};
use crate::pipeline::{self, Encoders, Outcome};
use crate::quality::QualityPolicy;
use crate::stats::Stats;
use crate::store::{SourceMeta, Store};
use rendition_shared::{
    full_matrix_order, generation_order, CapabilityMask, KeyId, SlotSet, SourceKey,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// What a notify asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    Slot(CapabilityMask),
    /// The whole matrix (warmup sentinel, `--enable-warmup`).
    Warmup,
}

/// A notify, validated.
#[derive(Clone, Debug)]
pub struct Job {
    pub key: SourceKey,
    pub requested: Requested,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

struct Pending {
    job: Job,
    /// More requests that arrived for the same source.
    more: Vec<Requested>,
    running: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    Queued,
    Merged,
    Dropped,
}

/// Shared by the HTTP handlers and the workers.
pub struct Worker {
    pub config: Config,
    pub store: Arc<Store>,
    pub origins: Origins,
    pub stats: Stats,
    pub quality: Box<dyn QualityPolicy>,
    pub avif: Box<dyn AvifEncoder>,
    /// The newest sequence number written; `/index` long-polls wait on it.
    pub feed: watch::Sender<u64>,
    tx: mpsc::Sender<KeyId>,
    pending: Mutex<HashMap<KeyId, Pending>>,
}

impl Worker {
    /// Builds the worker and the receiving end of its queue (give it to [`run_workers`]).
    pub fn new(
        config: Config,
        store: Arc<Store>,
        quality: Box<dyn QualityPolicy>,
        avif: Box<dyn AvifEncoder>,
    ) -> Result<(Arc<Worker>, mpsc::Receiver<KeyId>), String> {
        let origins = Origins::new(&config.origins, config.limits.max_source_bytes)?;
        let (tx, rx) = mpsc::channel(config.queue.capacity);
        let last = store.last_seq().map_err(|e| e.to_string())?;
        let (feed, _) = watch::channel(last);
        let worker = Worker {
            config,
            store,
            origins,
            stats: Stats::default(),
            quality,
            avif,
            feed,
            tx,
            pending: Mutex::new(HashMap::new()),
        };
        Ok((Arc::new(worker), rx))
    }

    /// Sources waiting or running.
    pub fn queue_depth(&self) -> usize {
        self.pending.lock().map_or(0, |p| p.len())
    }

    /// Queues a job, merging it into a queued or running one for the same source.
    pub fn submit(&self, job: Job) -> Submitted {
        let id = job.key.id();
        let Ok(mut pending) = self.pending.lock() else {
            return Submitted::Dropped;
        };
        if let Some(p) = pending.get_mut(&id) {
            // New validators mean the source changed: the (re)run must see them, and a run
            // already under way must run again, even for a slot it is making.
            let changed = (job.etag.is_some() && job.etag != p.job.etag)
                || (job.last_modified.is_some() && job.last_modified != p.job.last_modified);
            if changed {
                p.job.etag = job.etag;
                p.job.last_modified = job.last_modified;
            }
            let new_slot = p.job.requested != job.requested && !p.more.contains(&job.requested);
            if new_slot || (changed && p.running) {
                p.more.push(job.requested);
            }
            return Submitted::Merged;
        }
        match self.tx.try_send(id) {
            Ok(()) => {
                pending.insert(
                    id,
                    Pending {
                        job,
                        more: Vec::new(),
                        running: false,
                    },
                );
                Submitted::Queued
            }
            Err(_) => Submitted::Dropped,
        }
    }

    fn start(&self, id: &KeyId) -> Option<(Job, Vec<Requested>)> {
        let mut pending = self.pending.lock().ok()?;
        let p = pending.get_mut(id)?;
        p.running = true;
        Some((p.job.clone(), std::mem::take(&mut p.more)))
    }

    /// Ends a run; requeues once when more slots were asked for meanwhile.
    fn finish(&self, id: &KeyId) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let Some(p) = pending.get_mut(id) else { return };
        if p.more.is_empty() {
            pending.remove(id);
            return;
        }
        p.running = false;
        p.job.requested = p.more.remove(0);
        if self.tx.try_send(*id).is_err() {
            pending.remove(id);
            self.stats.add(&self.stats.queue_dropped, 1);
        }
    }

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
                Requested::Slot(m) => generation_order(*m, self.config.variants.proactive()),
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
        let record = match self.store.record(&id) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(key = %job.key, "store read failed: {e}");
                self.stats.add(&self.stats.store_errors, 1);
                return;
            }
        };
        let (mut stored, mut lost) = (SlotSet::EMPTY, SlotSet::EMPTY);
        if let Some((r, meta)) = &record {
            if r.refused {
                return;
            }
            let changed =
                |ours: &Option<String>, theirs: &Option<String>| theirs.is_some() && ours != theirs;
            if changed(&meta.etag, &job.etag) || changed(&meta.last_modified, &job.last_modified) {
                tracing::info!(key = %job.key, "source changed (validators differ): purging its variants");
                if let Err(e) = self.store.purge(&id) {
                    tracing::error!(key = %job.key, "purge failed: {e}");
                }
            } else {
                stored = r.stored;
                lost = r.lost;
            }
        }
        let mut requested = vec![job.requested];
        requested.extend(more);
        let wanted = self.wanted(&requested, stored, lost);
        // SVG is a sibling: attempted with proactive generation or a warmup, once per source.
        let try_svg = (self.config.variants.proactive_image_variants
            || requested.contains(&Requested::Warmup))
            && !stored.contains(rendition_shared::SVG_SLOT)
            && !lost.contains(rendition_shared::SVG_SLOT);
        if wanted.is_empty() && !try_svg {
            self.stats.add(&self.stats.notifications_skipped_dedup, 1);
            return;
        }
        let fetched = match self.origins.fetch(&job.key).await {
            Ok(f) => f,
            Err(e) => {
                self.stats.add(&self.stats.fetch_errors, 1);
                tracing::warn!(key = %job.key, "fetch failed: {e}");
                if matches!(e, FetchError::NotPublic(_) | FetchError::TooLarge(_)) {
                    self.refuse(
                        &job.key,
                        &SourceMeta {
                            key: job.key.to_string(),
                            ..SourceMeta::default()
                        },
                        &e.to_string(),
                    );
                }
                return;
            }
        };
        let this = Arc::clone(self);
        let direct: SlotSet = requested
            .iter()
            .filter_map(|r| {
                if let Requested::Slot(m) = r {
                    Some(m.slot())
                } else {
                    None
                }
            })
            .collect();
        let _ =
            tokio::task::spawn_blocking(move || this.generate(job.key, fetched, wanted, direct))
                .await;
    }

    /// Decode once, then store the directly requested slots first and the siblings after.
    fn generate(
        &self,
        key: SourceKey,
        fetched: crate::origin::Fetched,
        wanted: Vec<CapabilityMask>,
        direct: SlotSet,
    ) {
        let started = Instant::now();
        let mut meta = SourceMeta {
            key: key.to_string(),
            etag: fetched.etag,
            last_modified: fetched.last_modified,
            cache_control: fetched.cache_control,
            source_bytes: fetched.bytes.len() as u64,
            ..SourceMeta::default()
        };
        let prepared = match pipeline::prepare(&fetched.bytes, &self.config.limits) {
            Ok(p) => p,
            Err(refusal) => {
                self.stats.add(&self.stats.images_refused, 1);
                tracing::warn!(%key, "source refused: {refusal}");
                self.refuse(&key, &meta, &refusal.to_string());
                return;
            }
        };
        drop(fetched.bytes);
        for note in &prepared.notes {
            tracing::info!(%key, "{note}");
        }
        meta.width = prepared.image.width;
        meta.height = prepared.image.height;
        meta.format = Some(prepared.format.name().to_owned());
        meta.class = Some(prepared.class.name().to_owned());
        let encoders = Encoders {
            widths: self.config.variants.widths(),
            quality: self.quality.as_ref(),
            avif: self.avif.as_ref(),
            verify: Some(pipeline::Targets {
                score: f64::from(self.config.target_ssimulacra2),
                save_data_reduction: f64::from(self.config.savedata_score_reduction),
            }),
        };
        let (first, rest): (Vec<CapabilityMask>, Vec<CapabilityMask>) =
            wanted.iter().partition(|s| direct.contains(**s));
        for phase in [first, rest] {
            if phase.is_empty() {
                continue;
            }
            let outcomes = pipeline::generate(&prepared, &phase, &encoders);
            self.count(&outcomes, direct);
            match self.store.put_outcomes(&key, &meta, &outcomes) {
                Ok(seq) => {
                    self.feed.send_replace(seq);
                }
                Err(e) => {
                    self.stats.add(&self.stats.store_errors, 1);
                    tracing::error!(%key, "store write failed (disk full?): {e}");
                    return;
                }
            }
            match self.store.evict_to_budget() {
                Ok(n) if n > 0 => {
                    self.stats.add(&self.stats.evictions, u64::from(n));
                    if let Ok(seq) = self.store.last_seq() {
                        self.feed.send_replace(seq);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!("eviction failed: {e}"),
            }
        }
        self.stats.add(&self.stats.images_processed, 1);
        self.stats
            .add(&self.stats.images_us, started.elapsed().as_micros() as u64);
    }

    fn refuse(&self, key: &SourceKey, meta: &SourceMeta, reason: &str) {
        match self.store.refuse(key, meta, reason) {
            Ok(seq) => {
                self.feed.send_replace(seq);
            }
            Err(e) => {
                self.stats.add(&self.stats.store_errors, 1);
                tracing::error!(%key, "store write failed: {e}");
            }
        }
    }

    fn count(&self, outcomes: &[Outcome], direct: SlotSet) {
        let s = &self.stats;
        for o in outcomes {
            match o {
                Outcome::Stored(v) => {
                    s.add(&s.variants_written, 1);
                    if v.slots.bits() & direct.bits() == 0 {
                        s.add(&s.proactive_variants_written, 1);
                    }
                    let counter = match v.encoded.codec {
                        crate::encode::Codec::Webp => &s.webp_generated,
                        crate::encode::Codec::Avif => &s.avif_generated,
                        crate::encode::Codec::Jpeg => &s.jpeg_optimized,
                        crate::encode::Codec::Png => &s.png_optimized,
                        crate::encode::Codec::Svg => &s.svg_generated,
                    };
                    s.add(counter, 1);
                }
                Outcome::Lost { slots, .. } => s.add(&s.variants_lost, u64::from(slots.len())),
                Outcome::Failed { error, .. } => {
                    s.add(&s.encode_failures, 1);
                    tracing::warn!("encode failed: {error}");
                }
            }
        }
    }
}

/// Spawns the workers; they stop when every sender of the queue is gone.
pub fn run_workers(
    worker: Arc<Worker>,
    rx: mpsc::Receiver<KeyId>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    (0..worker.config.workers())
        .map(|_| {
            let worker = Arc::clone(&worker);
            let rx = Arc::clone(&rx);
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(id) = next else { break };
                    if let Some((job, more)) = worker.start(&id) {
                        worker.process(job, more).await;
                    }
                    worker.finish(&id);
                }
            })
        })
        .collect()
}
