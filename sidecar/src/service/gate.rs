//! Which sources may be revalidated now: one revalidation per source at a time, a source not
//! asked again within an interval of its last one (longer after a failure), and a bounded
//! number at once across sources. A flood of stale hits (or of notifies with forged
//! validators) on one image then costs its origin one conditional request, not one per hit.
//!
//! Bookkeeping only: `super::revalidate` does the asking.

use rendition_shared::KeyId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before the table is swept of old ones (each is a few dozen bytes).
const SWEEP_AT: usize = 65_536;

#[derive(Debug)]
struct Entry {
    started: Instant,
    running: bool,
    failed: bool,
}

pub struct RevalidationGate {
    entries: Mutex<HashMap<KeyId, Entry>>,
    min_interval: Duration,
    retry_after: Duration,
    max_running: usize,
}

/// A permission to revalidate one source; [`RevalidationGate::finish`] gives it back.
#[derive(Debug)]
#[must_use = "finish() the revalidation, or its source stays locked until the gate sweeps"]
pub struct Pass(KeyId);

impl Pass {
    pub fn id(&self) -> KeyId {
        self.0
    }
}

impl RevalidationGate {
    pub fn new(min_interval: Duration, retry_after: Duration, max_running: usize) -> Self {
        RevalidationGate {
            entries: Mutex::new(HashMap::new()),
            min_interval,
            retry_after,
            max_running: max_running.max(1),
        }
    }

    /// A pass for `id` when none is running for it, the last one is old enough, and fewer
    /// than the limit run at all.
    pub fn try_start(&self, id: KeyId) -> Option<Pass> {
        let now = Instant::now();
        let mut entries = self.entries.lock().ok()?;
        if entries.len() >= SWEEP_AT {
            let keep = self.retry_after.max(self.min_interval);
            entries.retain(|_, e| e.running || now.duration_since(e.started) < keep);
        }
        if let Some(e) = entries.get(&id) {
            let wait = if e.failed {
                self.retry_after
            } else {
                self.min_interval
            };
            if e.running || now.duration_since(e.started) < wait {
                return None;
            }
        }
        if entries.values().filter(|e| e.running).count() >= self.max_running {
            return None;
        }
        entries.insert(
            id,
            Entry {
                started: now,
                running: true,
                failed: false,
            },
        );
        Some(Pass(id))
    }

    /// Ends a revalidation; a failed one waits `retry_after` before the next.
    pub fn finish(&self, pass: Pass, failed: bool) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(e) = entries.get_mut(&pass.0) {
                e.running = false;
                e.failed = failed;
            }
        }
    }

    /// Revalidations running now.
    pub fn running(&self) -> usize {
        self.entries
            .lock()
            .map_or(0, |e| e.values().filter(|e| e.running).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_a_time_per_source_then_an_interval_longer_after_a_failure() {
        let gate = RevalidationGate::new(Duration::ZERO, Duration::from_secs(3600), 2);
        let (a, b, c) = (KeyId([1; 16]), KeyId([2; 16]), KeyId([3; 16]));
        let pass = gate.try_start(a).unwrap();
        assert!(gate.try_start(a).is_none(), "running");
        let pb = gate.try_start(b).unwrap();
        assert!(gate.try_start(c).is_none(), "two at once at most");
        gate.finish(pass, false);
        let pass = gate.try_start(a).unwrap();
        gate.finish(pass, true);
        assert!(gate.try_start(a).is_none(), "failed: wait retry_after");
        assert_eq!(gate.running(), 1);
        gate.finish(pb, false);
        assert!(gate.try_start(c).is_some());
    }

    #[test]
    fn the_interval_holds_after_a_success() {
        let gate = RevalidationGate::new(Duration::from_secs(3600), Duration::from_secs(3600), 8);
        let id = KeyId([9; 16]);
        let pass = gate.try_start(id).unwrap();
        gate.finish(pass, false);
        assert!(gate.try_start(id).is_none());
    }
}
