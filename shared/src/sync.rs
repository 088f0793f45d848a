//! How the singleton follows the sidecar's change feed into the shared-data table, decided
//! without I/O: given the published [`IndexMeta`], the `since` it asked and the page it got,
//! what to write and what to ask next.
//!
//! * Same store, entries after `since`: apply them; ask again from the last one at once when
//!   the page did not reach the store's newest sequence, else long-poll.
//! * A different `store_id` (the sidecar's database was replaced), a newest sequence below
//!   what we already applied (it went back in time), or a page saying that changes after our
//!   `since` were compacted away (deleted sources whose deletion we may have missed): **resync**. The epoch is bumped, which
//!   empties every bucket at once (see [`crate::table`]), and the feed is read again from 0.
//!   A page asked from 0 is complete, so it is applied right away.

use crate::record::{FeedPage, IndexEntry};
use crate::table::IndexMeta;

/// What to do with one page.
#[derive(Debug, PartialEq, Eq)]
pub struct SyncStep<'a> {
    /// The meta record to publish once `apply` is written.
    pub meta: IndexMeta,
    /// Entries to upsert, in feed order (ascending sequence).
    pub apply: &'a [IndexEntry],
    /// Whether the table was reset (epoch bumped, `records` zeroed) by this page. The caller
    /// adds to `meta.records` what its upserts added, minus what they removed.
    pub resynced: bool,
    /// Ask the next page at once (more are waiting, or a resync needs the feed from 0)
    /// rather than long-polling.
    pub poll_now: bool,
}

/// Plans one page. `now_ms` stamps the meta record as fresh; `asked_since` is the `since` the
/// page answered.
pub fn follow<'a>(
    meta: IndexMeta,
    asked_since: u64,
    page: &'a FeedPage,
    now_ms: u64,
) -> SyncStep<'a> {
    let mut meta = IndexMeta {
        sidecar_up: true,
        updated_ms: now_ms,
        ..meta
    };
    if meta.store_id == 0 && meta.applied_seq == 0 {
        // First contact: the table is empty, nothing to forget.
        meta.store_id = page.store_id;
    }
    let changed_store = page.store_id != meta.store_id;
    let went_back = page.last_seq < meta.applied_seq || page.last_seq < asked_since;
    // Asked from 0, a page is a full snapshot: nothing missed can matter.
    let missed_deletions = asked_since != 0 && page.compacted_seq > asked_since;
    let mut resynced = false;
    if changed_store || went_back || missed_deletions {
        meta.epoch = meta.epoch.wrapping_add(1).max(1);
        meta.store_id = page.store_id;
        meta.applied_seq = 0;
        meta.records = 0;
        resynced = true;
        if asked_since != 0 {
            // The page answers a question about another store: ask again from the start.
            return SyncStep {
                meta,
                apply: &[],
                resynced,
                poll_now: true,
            };
        }
    }
    let apply: &[IndexEntry] = &page.entries;
    if let Some(last) = apply.last() {
        meta.applied_seq = meta.applied_seq.max(last.record.seq);
    }
    SyncStep {
        poll_now: meta.applied_seq < page.last_seq && !apply.is_empty(),
        meta,
        apply,
        resynced,
    }
}
