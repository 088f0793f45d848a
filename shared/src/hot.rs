//! Hot-URL warmup: fallback hits counted per URL in a fixed-size table; the URL that
//! reaches the threshold gets one warmup notify (mask `0xFFFFFFFE`, the whole matrix).
//!
//! The table is direct-mapped on the key id: a slot remembers one URL (a 64-bit tag) and its
//! count; another URL landing on the same slot takes it over and starts from one. That bounds
//! memory whatever the URL space (a cache-busting flood only churns slots) at the price of
//! undercounting under collisions, which only delays a warmup. Each Envoy worker keeps its own
//! table (nothing is shared between workers on the request path), so a URL may warm up once per worker; the
//! sidecar's dedup makes the extra ones cheap.

use crate::key::KeyId;

/// Default fallback-hit threshold (docs/architecture.md, "Hot URLs").
pub const DEFAULT_HOT_THRESHOLD: u32 = 5;

#[derive(Clone, Copy, Default)]
struct Slot {
    tag: u64,
    count: u32,
    fired: bool,
}

/// Fallback-hit counters; `threshold` 0 disables warmup.
pub struct HotUrls {
    slots: Vec<Slot>,
    threshold: u32,
}

impl core::fmt::Debug for HotUrls {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HotUrls")
            .field("slots", &self.slots.len())
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl HotUrls {
    /// `slots` is rounded up to a power of two (at least 1).
    pub fn new(slots: usize, threshold: u32) -> HotUrls {
        HotUrls {
            slots: vec![Slot::default(); slots.max(1).next_power_of_two()],
            threshold,
        }
    }

    /// Counts one fallback hit for `key`; true exactly once per URL (while it keeps its slot),
    /// on the hit that reaches the threshold.
    pub fn record_fallback(&mut self, key: &KeyId) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let seed = key.bucket_seed();
        // The high bits pick the slot; the whole seed is the tag (0 never names a URL slot
        // that is in use, since count starts at 1).
        let index = (seed >> 40) as usize & (self.slots.len() - 1);
        let slot = &mut self.slots[index];
        if slot.tag != seed || slot.count == 0 {
            *slot = Slot {
                tag: seed,
                count: 0,
                fired: false,
            };
        }
        slot.count = slot.count.saturating_add(1);
        if !slot.fired && slot.count >= self.threshold {
            slot.fired = true;
            return true;
        }
        false
    }
}
