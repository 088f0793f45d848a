//! Keeping stored originals current: freshness from the origin's headers, and revalidation
//! once it runs out.
//!
//! * Every stored source carries its freshness: when the origin last confirmed it, how old it
//!   was then, and its lifetime ([`stamp`], from `rendition_shared::http_cache`).
//! * A hit on a stale source is served at once, stale, and starts one background revalidation
//!   ([`in_background`]); a source the origin marked `must-revalidate`, `proxy-revalidate` or
//!   `no-cache` is validated first instead ([`before_serving`]), and anything but a 304 sends
//!   the client to the origin.
//! * A revalidation is a conditional GET with the stored validators ([`revalidate`]):
//!   - 304: the lifetime is renewed from the 304's headers; nothing is fetched or decoded;
//!   - 200 with the same bytes or validators: renewed the same way;
//!   - 200 with a new original: a replacement job regenerates every stored slot from the bytes
//!     just fetched and swaps them in one transaction (the old variants are served until then);
//!   - 404 or 410: the source is purged; `no-transform`, `private` or a `Vary` that appeared:
//!     refused (and purged);
//!   - an error (timeout, 5xx): the stale variants stay; the next try waits
//!     `freshness.revalidate_retry_after_ms`.
//! * [`super::gate`] keeps it to one revalidation per source at a time and per interval.

use super::gate::Pass;
use super::queue::{Job, Submitted};
use super::state::AppState;
use crate::origin::{FetchError, Fetched, OriginCaching, Revalidated};
use crate::store::SourceMeta;
use rendition_shared::http_cache::{freshness_lifetime, initial_age_ms, may_transform};
use rendition_shared::wire::Requested;
use rendition_shared::{CapabilityMask, IndexRecord, KeyId, SourceKey};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What a revalidation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The stored original is current (304, or the same bytes again): renewed.
    Confirmed,
    /// A new original: its variants are being made (a replacement job is queued).
    Changed,
    /// 404/410: purged.
    Gone,
    /// The origin's answer forbids optimizing it now: refused and purged.
    Refused(String),
    /// The origin did not answer usefully; the stored variants stay.
    Failed(String),
    /// Nothing to revalidate (no record any more).
    Unknown,
}

/// Stamps `meta` with what an origin response says about caching it: validators, caching
/// headers, when it was confirmed, how old it was then, how long it stays fresh.
pub fn stamp(meta: &mut SourceMeta, caching: &OriginCaching, request_ms: u64, response_ms: u64) {
    let headers = caching.headers();
    let freshness = freshness_lifetime(&headers, response_ms / 1000);
    meta.etag = caching.etag.clone();
    meta.last_modified = caching.last_modified.clone();
    meta.cache_control = caching.cache_control.clone();
    meta.expires = caching.expires.clone();
    meta.validated_at_ms = response_ms;
    meta.initial_age_ms = initial_age_ms(&headers, request_ms, response_ms);
    meta.lifetime = freshness.lifetime_secs;
    meta.lifetime_source = Some(freshness.source.name().to_owned());
    meta.must_revalidate = freshness.requires_validation;
}

/// Hex of the first 128 bits of the SHA-256 of an original's bytes.
pub fn source_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a fetched original is another one than the stored: different validators when both
/// sides have them, else different bytes.
pub fn is_new_original(stored: &SourceMeta, fetched: &Fetched) -> bool {
    let differ = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => Some(a != b),
        _ => None,
    };
    let validators = differ(&stored.etag, &fetched.caching.etag)
        .or_else(|| differ(&stored.last_modified, &fetched.caching.last_modified));
    match (validators, &stored.source_hash) {
        (Some(true), _) => true,
        (Some(false), _) => false,
        (None, Some(hash)) => *hash != source_hash(&fetched.bytes),
        // Nothing to compare with: only new if the source had no stored original at all.
        (None, None) => false,
    }
}

/// Starts a background revalidation of `id` unless the gate says one ran or runs already.
pub fn in_background(state: &Arc<AppState>, id: KeyId) {
    let Some(pass) = state.revalidations.try_start(id) else {
        return;
    };
    let state = Arc::clone(state);
    tokio::spawn(async move {
        run(&state, pass).await;
    });
}

/// Validates `id` now, for a hit that may not be served stale. `None` when another
/// revalidation of it is running (the caller serves the origin instead of waiting).
pub async fn before_serving(state: &Arc<AppState>, id: KeyId) -> Option<Outcome> {
    let pass = state.revalidations.try_start(id)?;
    Some(run(state, pass).await)
}

async fn run(state: &Arc<AppState>, pass: Pass) -> Outcome {
    let outcome = revalidate(state, pass.id()).await;
    let s = &state.stats;
    let counter = match &outcome {
        Outcome::Confirmed => &s.revalidations_not_modified,
        Outcome::Changed => &s.revalidations_changed,
        Outcome::Gone => &s.revalidations_gone,
        Outcome::Refused(_) => &s.revalidations_refused,
        Outcome::Failed(_) => &s.revalidation_errors,
        Outcome::Unknown => &s.revalidations_unknown,
    };
    s.add(counter, 1);
    state
        .revalidations
        .finish(pass, matches!(outcome, Outcome::Failed(_)));
    outcome
}

/// One revalidation of `id` with its origin.
pub async fn revalidate(state: &Arc<AppState>, id: KeyId) -> Outcome {
    let store = &state.store;
    let (record, meta) = match store.record(&id) {
        Ok(Some(found)) => found,
        Ok(None) => return Outcome::Unknown,
        Err(e) => return Outcome::Failed(format!("store: {e}")),
    };
    let Ok(key) = SourceKey::from_canonical(&meta.key) else {
        return Outcome::Unknown;
    };
    state.stats.add(&state.stats.revalidations, 1);
    let answer = state
        .origins
        .revalidate(&key, meta.etag.as_deref(), meta.last_modified.as_deref())
        .await;
    let stored_caching = OriginCaching {
        etag: meta.etag.clone(),
        last_modified: meta.last_modified.clone(),
        cache_control: meta.cache_control.clone(),
        expires: meta.expires.clone(),
        ..OriginCaching::default()
    };
    match answer {
        Ok(Revalidated::NotModified {
            caching,
            request_ms,
            response_ms,
        }) => {
            let updated = stored_caching.updated_by(&caching);
            if let Err(why) = may_transform(updated.cache_control.as_deref(), None) {
                return refuse(state, &key, &meta, why.describe());
            }
            renew(state, &key, &updated, request_ms, response_ms, None)
        }
        Ok(Revalidated::Modified(fetched))
            if !is_new_original(&meta, &fetched) && !refused_unread(&record, &meta) =>
        {
            let hash = source_hash(&fetched.bytes);
            renew(
                state,
                &key,
                &fetched.caching,
                fetched.request_ms,
                fetched.response_ms,
                Some(hash),
            )
        }
        Ok(Revalidated::Modified(fetched)) => {
            tracing::info!(%key, "the origin has a new original: regenerating its variants");
            // The first stored slot stands for the rest: the job regenerates every one.
            let first = record
                .stored
                .iter()
                .next()
                .unwrap_or(CapabilityMask::DEFAULT);
            let job = Job {
                key,
                requested: Requested::Slot(first),
                etag: fetched.caching.etag.clone(),
                last_modified: fetched.caching.last_modified.clone(),
                replacement: Some(Arc::new(fetched)),
            };
            match state.queue.submit(job) {
                Submitted::Dropped => {
                    state.stats.add(&state.stats.queue_dropped, 1);
                    Outcome::Failed("queue full".into())
                }
                Submitted::Queued | Submitted::Merged => Outcome::Changed,
            }
        }
        Ok(Revalidated::Gone(status)) => {
            tracing::info!(%key, "the origin answered {status}: purging");
            match store.purge(&id) {
                Ok(_) => {
                    state.published_latest();
                    Outcome::Gone
                }
                Err(e) => {
                    tracing::warn!(%key, "purge failed, stale variants stay: {e}");
                    state.stats.add(&state.stats.store_errors, 1);
                    Outcome::Failed(format!("purge: {e}"))
                }
            }
        }
        Err(e) if e.is_refusal() => {
            let reason = e.to_string();
            refuse(state, &key, &meta, &reason)
        }
        Err(e) => {
            tracing::warn!(%key, "revalidation failed, stale variants stay: {e}");
            Outcome::Failed(e.to_string())
        }
    }
}

/// A source refused on the origin's response headers alone (`private`, `no-transform`, over
/// the size limit): its bytes were never read, so there is nothing to compare with, and an
/// answer the origin now lets us read is a new original to us.
fn refused_unread(record: &IndexRecord, meta: &SourceMeta) -> bool {
    record.refused && meta.source_hash.is_none()
}

fn renew(
    state: &AppState,
    key: &SourceKey,
    caching: &OriginCaching,
    request_ms: u64,
    response_ms: u64,
    hash: Option<String>,
) -> Outcome {
    let renewed = state.store.renew(&key.id(), |m| {
        stamp(m, caching, request_ms, response_ms);
        if let Some(h) = &hash {
            m.source_hash = Some(h.clone());
        }
    });
    match renewed {
        Ok(true) => Outcome::Confirmed,
        Ok(false) => Outcome::Unknown,
        Err(e) => {
            state.stats.add(&state.stats.store_errors, 1);
            Outcome::Failed(format!("store: {e}"))
        }
    }
}

fn refuse(state: &AppState, key: &SourceKey, meta: &SourceMeta, reason: &str) -> Outcome {
    tracing::info!(%key, "refused on revalidation: {reason}");
    match state.store.refuse(key, meta, reason) {
        Ok(seq) => {
            state.published(seq);
            Outcome::Refused(reason.to_owned())
        }
        Err(e) => {
            state.stats.add(&state.stats.store_errors, 1);
            Outcome::Failed(format!("store: {e}"))
        }
    }
}

/// The refusal a fetch error stands for, if it is about the source itself.
pub fn refusal_of(e: &FetchError) -> Option<String> {
    e.is_refusal().then(|| e.to_string())
}
