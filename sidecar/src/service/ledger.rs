//! What the service remembers about the shared tier between requests: the purges it has
//! seen in the fleet's log (they void older manifests), and the sources it is waiting for
//! (one watcher each). Bookkeeping only; `super::share` acts on it.

use rendition_shared::bucket::PurgeEntry;
use rendition_shared::KeyId;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// Purge entries kept in memory to void old manifests.
pub const PURGE_LOG_KEPT: usize = 10_000;

pub struct FleetLedger {
    purges: Mutex<Vec<PurgeEntry>>,
    waiting: Mutex<HashSet<KeyId>>,
    /// Whether the purge log has been read whole since this sidecar started. Until then a
    /// manifest an old purge voids cannot be told from a good one.
    loaded: tokio::sync::watch::Sender<bool>,
}

impl Default for FleetLedger {
    fn default() -> FleetLedger {
        FleetLedger {
            purges: Mutex::default(),
            waiting: Mutex::default(),
            loaded: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl FleetLedger {
    /// The purge log has been read whole: [`Self::voids`] can be trusted from now on. Called
    /// after every read; only the first one changes anything.
    pub fn mark_loaded(&self) {
        self.loaded
            .send_if_modified(|loaded| !std::mem::replace(loaded, true));
    }

    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Waits at most `within` for the first whole read of the purge log; whether it is done.
    pub async fn wait_loaded(&self, within: Duration) -> bool {
        let mut loaded = self.loaded.subscribe();
        let done = tokio::time::timeout(within, loaded.wait_for(|done| *done))
            .await
            .is_ok_and(|seen| seen.is_ok());
        done
    }

    pub fn add_purge(&self, entry: PurgeEntry) {
        if let Ok(mut e) = self.purges.lock() {
            e.push(entry);
            if e.len() > PURGE_LOG_KEPT {
                let excess = e.len() - PURGE_LOG_KEPT;
                e.drain(..excess);
            }
        }
    }

    /// Whether a purge newer than `confirmed_ms` covers `key`.
    pub fn voids(&self, key: &str, confirmed_ms: u64) -> bool {
        self.purges
            .lock()
            .is_ok_and(|e| e.iter().any(|p| p.at_ms > confirmed_ms && p.covers(key)))
    }

    /// Marks `id` as waited for; false if it already was.
    pub fn start_waiting(&self, id: KeyId) -> bool {
        self.waiting.lock().is_ok_and(|mut w| w.insert(id))
    }

    pub fn stop_waiting(&self, id: &KeyId) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rendition_shared::bucket::{PurgeScope, LAYOUT};

    #[test]
    fn purges_void_what_was_confirmed_before_them() {
        let ledger = FleetLedger::default();
        assert!(!ledger.is_loaded(), "nothing read yet");
        ledger.mark_loaded();
        assert!(ledger.is_loaded());
        ledger.add_purge(PurgeEntry {
            layout: LAYOUT,
            scope: PurgeScope::Prefix("shop.example/img/".into()),
            at_ms: 1_000,
            writer: "pod-a".into(),
        });
        assert!(ledger.voids("shop.example/img/a.jpg", 999));
        assert!(
            !ledger.voids("shop.example/img/a.jpg", 1_000),
            "confirmed after: valid"
        );
        assert!(!ledger.voids("shop.example/css/a.css", 0));
        let id = KeyId([1; 16]);
        assert!(ledger.start_waiting(id));
        assert!(!ledger.start_waiting(id), "one watcher per source");
        ledger.stop_waiting(&id);
        assert!(ledger.start_waiting(id));
    }
}
