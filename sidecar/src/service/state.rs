//! What the HTTP handlers and the workers share: the configuration, the store, the origin
//! client, the counters, the change-feed signal and the work queue.

use super::gate::RevalidationGate;
use super::ledger::FleetLedger;
use super::queue::{JobReceiver, WorkQueue};
use super::stats::Stats;
use crate::config::Config;
use crate::fleet::SharedTier;
use crate::origin::{Origins, OriginsError};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Origins(#[from] OriginsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The application state (axum's `State`).
pub struct AppState {
    pub config: Config,
    pub store: Arc<Store>,
    pub origins: Origins,
    pub stats: Stats,
    /// The newest sequence number written; `/index` long-polls wait on it.
    pub feed: watch::Sender<u64>,
    pub queue: WorkQueue,
    /// Which sources may be revalidated now.
    pub revalidations: RevalidationGate,
    /// The shared tier, when `shared_store.enabled` (connected before the state is built).
    pub fleet: Option<Arc<SharedTier>>,
    /// Purges seen in the shared tier's log, and the sources waited for.
    pub fleet_ledger: FleetLedger,
}

impl AppState {
    /// The state, and the receiving end of its work queue (for `work::run_workers`).
    pub fn new(
        config: Config,
        store: Arc<Store>,
        fleet: Option<Arc<SharedTier>>,
    ) -> Result<(Arc<AppState>, JobReceiver), StartError> {
        let origins = Origins::new(&config.origins, config.limits.max_source_bytes)?;
        let (queue, rx) = WorkQueue::new(config.queue.capacity);
        let last = store.last_seq()?;
        let (feed, _) = watch::channel(last);
        let f = &config.freshness;
        let revalidations = RevalidationGate::new(
            Duration::from_millis(f.revalidate_min_interval_ms),
            Duration::from_millis(f.revalidate_retry_after_ms),
            f.revalidations_in_flight,
        );
        let state = AppState {
            config,
            store,
            origins,
            stats: Stats::default(),
            feed,
            queue,
            revalidations,
            fleet,
            fleet_ledger: FleetLedger::default(),
        };
        Ok((Arc::new(state), rx))
    }

    /// Wakes `/index` long-polls: the store wrote sequence `seq`.
    pub fn published(&self, seq: u64) {
        self.feed.send_replace(seq);
    }

    /// Wakes `/index` long-polls after a change whose sequence the caller does not know
    /// (purges, evictions).
    pub fn published_latest(&self) {
        if let Ok(seq) = self.store.last_seq() {
            self.feed.send_replace(seq);
        }
    }
}
