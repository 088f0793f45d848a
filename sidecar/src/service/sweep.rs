//! The record sweep: records that hold no variant (refused, purged, lost, or all evicted) are
//! deleted once unchanged for `records.empty_ttl_secs`, each leaving a tombstone in the feed so
//! the filters forget the source as well; tombstones leave the feed after as long again. A
//! cache-busting flood of distinct URLs then costs records for one time-to-live, not forever.

use super::state::AppState;
use crate::store::now_secs;
use std::sync::Arc;

/// Records deleted per sweep at most (the rest wait for the next one).
const MAX_PER_SWEEP: usize = 10_000;

/// One sweep; returns (records deleted, tombstones dropped).
pub fn sweep_once(state: &AppState) -> (usize, usize) {
    let ttl = state.config.records.empty_ttl_secs;
    let cutoff = now_secs().saturating_sub(ttl);
    let deleted = state
        .store
        .delete_empty_records(cutoff, MAX_PER_SWEEP)
        .unwrap_or_else(|e| {
            state.stats.add(&state.stats.store_errors, 1);
            tracing::error!("record sweep: {e}");
            0
        });
    let compacted = state.store.compact_feed(cutoff).unwrap_or_else(|e| {
        state.stats.add(&state.stats.store_errors, 1);
        tracing::error!("feed compaction: {e}");
        0
    });
    let s = &state.stats;
    s.add(&s.records_deleted, deleted as u64);
    s.add(&s.tombstones_compacted, compacted as u64);
    if deleted > 0 || compacted > 0 {
        state.published_latest();
    }
    (deleted, compacted)
}

/// Sweeps every `records.sweep_interval()` until the runtime stops.
pub fn spawn(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.records.sweep_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = Arc::clone(&state);
            let _ = tokio::task::spawn_blocking(move || sweep_once(&s)).await;
        }
    })
}
