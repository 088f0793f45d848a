//! How a worker uses the shared tier (docs/fleet.md), so a fleet makes each variant once:
//!
//! 1. Before generating, read the source's manifest. If it is fresh, not voided by a purge,
//!    and covers the slots wanted, copy their objects into sled (each checked against its
//!    checksum) and publish: no fetch, no decode, no encode ([`plan`] -> [`Plan::Done`]).
//! 2. Else take the source's lease (create-only; an expired one is taken over with a
//!    compare-and-swap). The winner generates, uploads every variant's object, then the
//!    manifest, after each phase ([`after_phase`]), renewing its lease meanwhile, and releases
//!    it at the end.
//! 3. A loser serves originals meanwhile (the filter does) and waits for the manifest, polling
//!    every `shared_store.wait_poll_ms`; a lease that lapses or a wait past two leases puts
//!    the job back in the queue, where it takes the lease ([`wait_for_manifest`]).
//! 4. Purges: logged in the bucket by the sidecar that received them, followed by every
//!    sidecar every `shared_store.purge_poll_ms` (from a cursor kept in sled, so one that was
//!    down catches up) ([`follow_purges`]). A manifest whose original was confirmed before a
//!    purge that covers it is void.
//!
//! The tier failing (down, slow, refusing, corrupt) never blocks serving and never loses
//! local work: the worker generates locally, counted as `shared_fallbacks`.

use super::queue::Job;
use super::state::AppState;
use crate::encode::{Codec, Encoded};
use crate::fleet::{Expect, FleetError, LeaseState, LeaseToken, SharedTier};
use crate::pipeline::{Outcome, Variant};
use crate::store::{now_ms, SourceMeta};
use rendition_shared::bucket::{
    Manifest, ManifestLost, ManifestSource, ManifestVariant, PurgeEntry, PurgeScope, LAYOUT,
};
use rendition_shared::{CapabilityMask, IndexRecord, SlotSet, SourceKey};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ledger::PURGE_LOG_KEPT;
/// How far back the purge log is listed again on every poll: an entry written by a sidecar
/// whose clock is behind ours still sorts after what we applied within this.
const PURGE_RELIST_MS: u64 = 60_000;

/// What the worker does after asking the tier.
pub enum Plan {
    /// Copied from the tier and published: nothing to generate.
    Done,
    /// Another sidecar is making it: wait for its manifest.
    Wait,
    /// Generate here; with a lease, share the result.
    Generate(Option<LeaseHold>),
}

/// A lease this sidecar holds while it generates, renewed every third of its lifetime.
pub struct LeaseHold {
    tier: Arc<SharedTier>,
    token: Arc<Mutex<LeaseToken>>,
    renewal: tokio::task::JoinHandle<()>,
}

impl LeaseHold {
    fn start(tier: Arc<SharedTier>, token: LeaseToken, key: String) -> LeaseHold {
        let token = Arc::new(Mutex::new(token));
        let every = Duration::from_millis(tier.config().lease_secs * 1000 / 3);
        let renewal = {
            let (tier, token) = (Arc::clone(&tier), Arc::clone(&token));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let current = match token.lock() {
                        Ok(t) => t.clone(),
                        Err(_) => return,
                    };
                    match tier.renew_lease(&current, &key).await {
                        Ok(Some(renewed)) => {
                            if let Ok(mut t) = token.lock() {
                                *t = renewed;
                            }
                        }
                        Ok(None) => {
                            tracing::warn!(%key, "lost the lease while generating");
                            return;
                        }
                        Err(e) => tracing::warn!(%key, "lease renewal failed: {e}"),
                    }
                }
            })
        };
        LeaseHold {
            tier,
            token,
            renewal,
        }
    }

    /// Stops renewing and gives the lease back.
    pub async fn release(self) {
        self.renewal.abort();
        let token = self.token.lock().ok().map(|t| t.clone());
        if let Some(token) = token {
            self.tier.release_lease(&token).await;
        }
    }
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        // Released or not, renewal stops with the holder (a crash lets the lease lapse).
        self.renewal.abort();
    }
}

fn slots_of(wanted: &[CapabilityMask]) -> SlotSet {
    wanted.iter().copied().collect()
}

/// Whether a manifest answers every wanted slot (stored or lost), or refuses the source.
fn covers(m: &Manifest, wanted: SlotSet) -> bool {
    if m.refused.is_some() {
        return true;
    }
    let mut known = SlotSet::EMPTY;
    for v in &m.variants {
        known = known.union(SlotSet::from_bits(v.slots).unwrap_or_default());
    }
    for l in &m.lost {
        if let Ok(mask) = CapabilityMask::from_bits(u32::from(l.slot)) {
            known.insert(mask);
        }
    }
    wanted.difference(known).is_empty()
}

/// The manifest of `key` if it may be used now: current layout, not voided by a purge, and
/// its original still fresh. A voided one is deleted.
async fn usable_manifest(
    state: &AppState,
    tier: &SharedTier,
    key: &SourceKey,
) -> Result<Option<(Manifest, Option<String>)>, FleetError> {
    let Some((m, e_tag)) = tier.manifest(&key.id()).await? else {
        return Ok(None);
    };
    if m.layout != LAYOUT || m.key != key.as_str() {
        return Ok(None);
    }
    // Until the purge log has been read once (just after a start), a purged manifest looks
    // like a good one: wait a request timeout for it, else do not use the manifest.
    let within = Duration::from_millis(tier.config().timeout_ms);
    if !state.fleet_ledger.wait_loaded(within).await {
        tracing::debug!(%key, "purge log not read yet: the shared manifest is not used");
        return Ok(None);
    }
    if state.fleet_ledger.voids(&m.key, m.source.validated_at_ms) {
        let _ = tier.delete_manifest(&key.id()).await;
        return Ok(None);
    }
    if !m.source.is_fresh(now_ms()) {
        return Ok(None);
    }
    Ok(Some((m, e_tag)))
}

/// Step 1 and 2: copy from the tier, or take the lease, or wait.
pub async fn plan(
    state: &Arc<AppState>,
    key: &SourceKey,
    wanted: &[CapabilityMask],
    local: Option<&(IndexRecord, SourceMeta)>,
    original_hash: Option<&str>,
) -> Plan {
    let Some(tier) = state.fleet.clone() else {
        return Plan::Generate(None);
    };
    let fallback = |why: FleetError| {
        tracing::info!(%key, "{why}: generating here");
        state.stats.add(&state.stats.shared_fallbacks, 1);
        Plan::Generate(None)
    };
    let usable = |m: &Manifest| {
        covers(m, slots_of(wanted))
            && original_hash.is_none_or(|h| m.source.hash.as_deref() == Some(h))
    };
    // Whether the manifest names an object the bucket lost or holds corrupt: then the
    // source is made again under the lease, so its upload repairs the fleet's copy instead
    // of every pod encoding it on its own from now on.
    let mut repair = false;
    match usable_manifest(state, &tier, key).await {
        Ok(Some((m, _))) if usable(&m) => {
            match copy(state, &tier, key, &m, slots_of(wanted), local).await {
                Ok(()) => return Plan::Done,
                Err(e @ (FleetError::Corrupt(_) | FleetError::Missing(_))) => {
                    tracing::info!(%key, "{e}: making it again for the fleet");
                    repair = true;
                }
                Err(e) => return fallback(e),
            }
        }
        Ok(_) => {}
        Err(e) => return fallback(e),
    }
    match tier.take_lease(&key.id(), key.as_str()).await {
        Ok(LeaseState::Taken { token, taken_over }) => {
            let hold = LeaseHold::start(Arc::clone(&tier), token, key.as_str().to_owned());
            if repair {
                tracing::info!(%key, "shared tier lease taken: repairing the fleet's copy");
                return Plan::Generate(Some(hold));
            }
            // The previous holder may have written its manifest and released its lease between
            // our read and our lease: read once more before making anything.
            if let Ok(Some((m, _))) = usable_manifest(state, &tier, key).await {
                if usable(&m)
                    && copy(state, &tier, key, &m, slots_of(wanted), local)
                        .await
                        .is_ok()
                {
                    hold.release().await;
                    return Plan::Done;
                }
            }
            tracing::info!(%key, taken_over, "shared tier lease taken: generating for the fleet");
            Plan::Generate(Some(hold))
        }
        Ok(LeaseState::Held(lease)) => {
            tracing::debug!(%key, holder = %lease.holder, "another sidecar is making it");
            Plan::Wait
        }
        Err(e) => fallback(e),
    }
}

/// Copies what `wanted` needs from a manifest into the store and publishes it.
async fn copy(
    state: &Arc<AppState>,
    tier: &SharedTier,
    key: &SourceKey,
    m: &Manifest,
    wanted: SlotSet,
    local: Option<&(IndexRecord, SourceMeta)>,
) -> Result<(), FleetError> {
    let meta = source_meta(key, m);
    if let Some(reason) = &m.refused {
        let seq = state
            .store
            .refuse(key, &meta, reason)
            .map_err(|e| FleetError::Unavailable(format!("store: {e}")))?;
        state.published(seq);
        return Ok(());
    }
    // What this store holds by now (a watcher and a job can race to the same copy).
    let held = state
        .store
        .record(&key.id())
        .ok()
        .flatten()
        .filter(|(_, lm)| lm.source_hash == m.source.hash)
        .map_or(SlotSet::EMPTY, |(r, _)| r.stored);
    let wanted = wanted.difference(held);
    let mut outcomes = Vec::new();
    for v in &m.variants {
        let slots = SlotSet::from_bits(v.slots).unwrap_or_default();
        if slots.bits() & wanted.bits() == 0 {
            continue;
        }
        let bytes = tier.object(&v.sha256).await?;
        let (Ok(primary), Some(codec)) = (
            CapabilityMask::from_bits(u32::from(v.primary)),
            Codec::from_name(&v.codec),
        ) else {
            return Err(FleetError::Malformed(
                m.key.clone(),
                format!("variant {v:?}"),
            ));
        };
        outcomes.push(Outcome::Stored(Variant {
            primary,
            slots,
            width: v.width,
            height: v.height,
            encoded: Encoded {
                codec,
                bytes,
                quality: v.quality,
                lossless: v.lossless,
            },
            encode_time: Duration::ZERO,
            score_time: Duration::ZERO,
            score: v.score.map(f64::from),
            attempts: 0,
            target: None,
        }));
    }
    for l in &m.lost {
        if let Ok(mask) = CapabilityMask::from_bits(u32::from(l.slot)) {
            if wanted.contains(mask) {
                outcomes.push(Outcome::Lost {
                    slots: [mask].into_iter().collect(),
                    reason: l.reason.clone(),
                });
            }
        }
    }
    if outcomes.is_empty() {
        return Ok(());
    }
    // Another original than the one stored here: swap, as for a new original.
    let replace = local.is_some_and(|(r, lm)| {
        !r.is_empty() && lm.source_hash.is_some() && lm.source_hash != m.source.hash
    });
    let copied = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Stored(_)))
        .count() as u64;
    let store = Arc::clone(&state.store);
    let key_owned = key.clone();
    let seq = tokio::task::spawn_blocking(move || {
        store.put_outcomes(&key_owned, &meta, &outcomes, replace)
    })
    .await
    .map_err(|e| FleetError::Unavailable(e.to_string()))?
    .map_err(|e| FleetError::Unavailable(format!("store: {e}")))?;
    state.published(seq);
    state.stats.add(&state.stats.shared_copies, copied);
    tracing::info!(%key, variants = copied, "copied from the shared tier");
    Ok(())
}

fn source_meta(key: &SourceKey, m: &Manifest) -> SourceMeta {
    let s = &m.source;
    SourceMeta {
        key: key.to_string(),
        etag: s.etag.clone(),
        last_modified: s.last_modified.clone(),
        cache_control: s.cache_control.clone(),
        expires: s.expires.clone(),
        validated_at_ms: s.validated_at_ms,
        initial_age_ms: s.initial_age_ms,
        lifetime: s.lifetime,
        lifetime_source: s.lifetime_source.clone(),
        must_revalidate: s.must_revalidate,
        source_hash: s.hash.clone(),
        source_bytes: s.bytes,
        width: s.width,
        height: s.height,
        format: s.format.clone(),
        class: s.class.clone(),
        ..SourceMeta::default()
    }
}

fn manifest_source(meta: &SourceMeta) -> ManifestSource {
    ManifestSource {
        etag: meta.etag.clone(),
        last_modified: meta.last_modified.clone(),
        cache_control: meta.cache_control.clone(),
        expires: meta.expires.clone(),
        validated_at_ms: meta.validated_at_ms,
        initial_age_ms: meta.initial_age_ms,
        lifetime: meta.lifetime,
        lifetime_source: meta.lifetime_source.clone(),
        must_revalidate: meta.must_revalidate,
        hash: meta.source_hash.clone(),
        bytes: meta.source_bytes,
        width: meta.width,
        height: meta.height,
        format: meta.format.clone(),
        class: meta.class.clone(),
    }
}

/// After a phase was stored here: upload its variants, then the manifest that names them
/// (merged with what the manifest already had, unless this is a new original).
pub async fn after_phase(
    state: &AppState,
    key: &SourceKey,
    meta: &SourceMeta,
    outcomes: &[Outcome],
    replace: bool,
) {
    let Some(tier) = state.fleet.as_ref() else {
        return;
    };
    let mut uploaded = Vec::new();
    for o in outcomes {
        if let Outcome::Stored(v) = o {
            match tier.put_object(&v.encoded.bytes).await {
                Ok(sha256) => uploaded.push(ManifestVariant {
                    primary: v.primary.bits() as u8,
                    slots: v.slots.bits(),
                    sha256,
                    bytes: v.encoded.bytes.len() as u64,
                    content_type: v.encoded.codec.content_type().to_owned(),
                    codec: v.encoded.codec.name().to_owned(),
                    width: v.width,
                    height: v.height,
                    quality: v.encoded.quality,
                    lossless: v.encoded.lossless,
                    score: v.score.map(|s| s as f32),
                    attempts: u32::from(v.attempts),
                }),
                Err(e) => {
                    tracing::warn!(%key, "not shared: {e}");
                    return;
                }
            }
        }
    }
    let lost: Vec<ManifestLost> = outcomes
        .iter()
        .filter_map(Outcome::lost)
        .flat_map(|(slots, reason)| {
            slots.iter().map(move |s| ManifestLost {
                slot: s.bits() as u8,
                reason: reason.clone(),
            })
        })
        .collect();
    write_manifest(state, tier, key, meta, uploaded, lost, None, replace).await;
}

/// Shares a refusal, so the rest of the fleet does not fetch the source to find out.
pub async fn after_refusal(state: &AppState, key: &SourceKey, meta: &SourceMeta, reason: &str) {
    if let Some(tier) = state.fleet.as_ref() {
        write_manifest(
            state,
            tier,
            key,
            meta,
            Vec::new(),
            Vec::new(),
            Some(reason),
            true,
        )
        .await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_manifest(
    state: &AppState,
    tier: &SharedTier,
    key: &SourceKey,
    meta: &SourceMeta,
    variants: Vec<ManifestVariant>,
    lost: Vec<ManifestLost>,
    refused: Option<&str>,
    replace: bool,
) {
    let id = key.id();
    // A compare-and-swap: another writer in between (a merge of other slots) means read again.
    for _ in 0..4 {
        let raw = match tier.manifest(&id).await {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(%key, "manifest not written: {e}");
                return;
            }
        };
        let expect = raw
            .as_ref()
            .map_or(Expect::Absent, |(_, e_tag)| Expect::Version(e_tag.clone()));
        let generation = raw.as_ref().map_or(0, |(m, _)| m.generation);
        // What stays of the current manifest: its variants and lost slots, when they are of
        // this very original and nothing voids them.
        let kept = raw.filter(|(m, _)| {
            !replace
                && m.layout == LAYOUT
                && m.key == key.as_str()
                && m.refused.is_none()
                && m.source.hash == meta.source_hash
                && state.fleet_ledger.is_loaded()
                && !state.fleet_ledger.voids(&m.key, m.source.validated_at_ms)
        });
        let (mut all_variants, mut all_lost) = match kept {
            Some((m, _)) => (m.variants, m.lost),
            None => (Vec::new(), Vec::new()),
        };
        for v in &variants {
            all_variants.retain(|old| old.slots & v.slots == 0);
            // A slot number past 63 (a foreign or damaged manifest) matches no variant.
            all_lost.retain(|l| v.slots & 1u64.checked_shl(u32::from(l.slot)).unwrap_or(0) == 0);
        }
        all_variants.extend(variants.iter().cloned());
        for l in &lost {
            all_lost.retain(|old| old.slot != l.slot);
            all_lost.push(l.clone());
        }
        let manifest = Manifest {
            layout: LAYOUT,
            key: key.to_string(),
            generation: generation.saturating_add(1),
            written_ms: now_ms(),
            writer: tier.node().to_owned(),
            source: manifest_source(meta),
            variants: if refused.is_some() {
                Vec::new()
            } else {
                all_variants
            },
            lost: if refused.is_some() {
                Vec::new()
            } else {
                all_lost
            },
            refused: refused.map(str::to_owned),
        };
        match tier.write_manifest(&id, &manifest, expect).await {
            Ok(true) => return,
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(%key, "manifest not written: {e}");
                return;
            }
        }
    }
    tracing::warn!(%key, "manifest not written: kept losing the race to other writers");
}

/// Step 3: waits for another sidecar's manifest without holding a worker, then copies it; a
/// lapsed lease or a wait past two leases puts the job back in the queue.
pub fn wait_for_manifest(state: Arc<AppState>, job: Job, wanted: Vec<CapabilityMask>) {
    let Some(tier) = state.fleet.clone() else {
        return;
    };
    // One watcher per source: a second notify while one waits changes nothing.
    if !state.fleet_ledger.start_waiting(job.key.id()) {
        return;
    }
    state.stats.add(&state.stats.shared_waits, 1);
    tokio::spawn(async move {
        let id = job.key.id();
        watch(&state, &tier, job, &wanted).await;
        state.fleet_ledger.stop_waiting(&id);
    });
}

async fn watch(state: &Arc<AppState>, tier: &Arc<SharedTier>, job: Job, wanted: &[CapabilityMask]) {
    {
        let poll = Duration::from_millis(tier.config().wait_poll_ms);
        let deadline = now_ms() + 2 * tier.config().lease_secs * 1000;
        let key = job.key.clone();
        loop {
            tokio::time::sleep(poll).await;
            if let Ok(Some((m, _))) = usable_manifest(state, tier, &key).await {
                if covers(&m, slots_of(wanted)) {
                    let local = state.store.record(&key.id()).ok().flatten();
                    if copy(state, tier, &key, &m, slots_of(wanted), local.as_ref())
                        .await
                        .is_ok()
                    {
                        return;
                    }
                    break;
                }
            }
            let lapsed = match tier.lease(&key.id()).await {
                Ok(Some(lease)) => lease.expired(now_ms()),
                Ok(None) => true,
                Err(_) => true,
            };
            if lapsed || now_ms() > deadline {
                break;
            }
        }
        // Not shared in time: back to the queue, where it takes the lease or falls back.
        if state.queue.submit(job) == super::queue::Submitted::Dropped {
            state.stats.add(&state.stats.queue_dropped, 1);
        }
    }
}

/// Step 4, sending: a purge received here goes to the log (and a key's manifest is deleted).
pub async fn log_purge(state: &AppState, scope: PurgeScope) -> Result<(), FleetError> {
    let Some(tier) = state.fleet.as_ref() else {
        return Ok(());
    };
    if let PurgeScope::Key(k) = &scope {
        if let Ok(key) = SourceKey::from_canonical(k) {
            tier.delete_manifest(&key.id()).await?;
        }
    }
    tier.log_purge(scope).await
}

/// Step 4, following: applies purges logged by any sidecar, from the cursor kept in sled.
pub fn follow_purges(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let tier = state.fleet.clone()?;
    Some(tokio::spawn(async move {
        let poll = Duration::from_millis(tier.config().purge_poll_ms);
        let mut cursor = state.store.fleet_purge_cursor().ok().flatten();
        let mut seen: HashSet<String> = HashSet::new();
        // The first listing reads the whole log, not only what follows the cursor: the
        // ledger is memory, and a purge this pod applied before a restart must still void
        // the older manifests other pods may offer (a prefix purge deletes none of them).
        // What precedes the relist point was applied to the local store already.
        loop {
            let relist_from = cursor.as_deref().and_then(|c| {
                let at = rendition_shared::bucket::BucketLayout::purge_time(c)?;
                let dir = c.rsplit_once('/')?.0;
                Some(format!("{dir}/{:013}", at.saturating_sub(PURGE_RELIST_MS)))
            });
            let list_from = if state.fleet_ledger.is_loaded() {
                relist_from.as_deref()
            } else {
                None
            };
            // `purges_after` leaves out what is in `seen`: every entry here is new.
            match tier.purges_after(list_from, &seen).await {
                Ok(entries) => {
                    for (name, entry) in entries {
                        seen.insert(name.clone());
                        if relist_from
                            .as_deref()
                            .is_none_or(|from| name.as_str() >= from)
                        {
                            apply_purge(&state, &tier, &entry).await;
                        }
                        state.fleet_ledger.add_purge(entry);
                        if cursor.as_deref() < Some(name.as_str()) {
                            let _ = state.store.set_fleet_purge_cursor(&name);
                            cursor = Some(name);
                        }
                    }
                    state.fleet_ledger.mark_loaded();
                    if seen.len() > PURGE_LOG_KEPT {
                        seen.clear();
                    }
                }
                Err(e) => tracing::debug!("purge log: {e}"),
            }
            tokio::time::sleep(poll).await;
        }
    }))
}

async fn apply_purge(state: &Arc<AppState>, tier: &SharedTier, entry: &PurgeEntry) {
    let store = Arc::clone(&state.store);
    let scope = entry.scope.clone();
    let done = tokio::task::spawn_blocking(move || match scope {
        PurgeScope::Key(k) => match SourceKey::from_canonical(&k) {
            Ok(key) => store.purge(&key.id()).map(u32::from),
            Err(_) => Ok(0),
        },
        PurgeScope::Prefix(p) => store.purge_prefix(&p),
    })
    .await;
    match done {
        Ok(Ok(n)) => {
            tier.count_applied_purge();
            if n > 0 {
                tracing::info!(purged = n, from = %entry.writer, "applied a fleet purge");
                state.published_latest();
            }
        }
        Ok(Err(e)) => tracing::error!("fleet purge: {e}"),
        Err(e) => tracing::error!("fleet purge: {e}"),
    }
}

/// Releases a lease at the end of a job (or does nothing without one).
pub async fn finish(lease: Option<LeaseHold>) {
    if let Some(hold) = lease {
        hold.release().await;
    }
}
