//! Per-worker queue of notifies waiting to be sent to the sidecar. Plain Rust, no host calls:
//! the root context drains it on its tick.
//!
//! Why a queue on the root context rather than a call from the request: Envoy cancels the HTTP
//! calls of a stream context when the stream ends, and a small cached image ends long before
//! the sidecar answers. Calls made by the root context outlive the request, their answers come
//! back to code that can count failures, and the number in flight is bounded.
//!
//! Bounded three ways: at most `capacity` waiting (more are dropped and counted); one waiting
//! notice per (URL, mask); and a direct-mapped table that remembers what this worker sent
//! recently, so a popular image missed by many clients at once costs one notify, not thousands.

use rendition_shared::wire::Notify;
use rendition_shared::KeyId;
use std::collections::VecDeque;

/// A notify waiting to be sent: its body (the contract with the sidecar) and the source's key
/// id, which the dedup table is keyed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub body: Notify,
    pub key: Option<KeyId>,
}

impl Notice {
    fn tag(&self) -> u64 {
        tag_of(self.key, self.body.mask)
    }
}

fn tag_of(key: Option<KeyId>, mask: u32) -> u64 {
    let seed = key.map_or(0, KeyId::bucket_seed);
    // Spread the mask over every bit so the masks of one URL land in different slots.
    seed ^ u64::from(mask).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What [`Outbox::push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The same notice is waiting or was sent recently.
    Duplicate,
    /// The queue is full.
    Dropped,
}

#[derive(Debug)]
pub struct Outbox {
    waiting: VecDeque<Notice>,
    capacity: usize,
    /// (tag, sent at ms) per slot.
    recent: Vec<(u64, u64)>,
    renotify_after_ms: u64,
    pub in_flight: usize,
}

impl Outbox {
    pub fn new(capacity: usize, recent_slots: usize, renotify_after_ms: u64) -> Outbox {
        Outbox {
            waiting: VecDeque::new(),
            capacity,
            recent: vec![(0, 0); recent_slots.max(1).next_power_of_two()],
            renotify_after_ms,
            in_flight: 0,
        }
    }

    pub fn push(&mut self, notice: Notice, now_ms: u64) -> Pushed {
        let tag = notice.tag();
        let sent_recently = notice.key.is_some() && self.sent_tag_recently(tag, now_ms);
        if sent_recently || self.waiting.iter().any(|n| n.tag() == tag && *n == notice) {
            return Pushed::Duplicate;
        }
        if self.waiting.len() >= self.capacity {
            return Pushed::Dropped;
        }
        self.waiting.push_back(notice);
        Pushed::Queued
    }

    /// Whether this worker sent the notice of `key` and `mask` within `renotify_after_ms`:
    /// [`Outbox::push`] would drop it as a duplicate, so the caller need not build it.
    pub fn sent_recently(&self, key: KeyId, mask: u32, now_ms: u64) -> bool {
        self.sent_tag_recently(tag_of(Some(key), mask), now_ms)
    }

    fn sent_tag_recently(&self, tag: u64, now_ms: u64) -> bool {
        let (seen_tag, at) = self.recent[self.slot(tag)];
        seen_tag == tag && now_ms.saturating_sub(at) < self.renotify_after_ms
    }

    /// The next notice to send, when the in-flight bound allows one; remembered as sent.
    pub fn next(&mut self, max_in_flight: usize, now_ms: u64) -> Option<Notice> {
        if self.in_flight >= max_in_flight {
            return None;
        }
        let notice = self.waiting.pop_front()?;
        let tag = notice.tag();
        let slot = self.slot(tag);
        self.recent[slot] = (tag, now_ms);
        Some(notice)
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.in_flight == 0
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn slot(&self, tag: u64) -> usize {
        (tag >> 20) as usize & (self.recent.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rendition_shared::SourceKey;

    fn notice(path: &str, mask: u32) -> Notice {
        Notice {
            body: Notify {
                host: "h".into(),
                path: path.into(),
                mask,
                etag: None,
                last_modified: None,
            },
            key: Some(SourceKey::new("h", path).unwrap().id()),
        }
    }

    #[test]
    fn dedups_waiting_and_recent_and_bounds_the_queue() {
        let mut o = Outbox::new(2, 64, 1_000);
        assert_eq!(o.push(notice("/a.jpg", 1), 0), Pushed::Queued);
        assert_eq!(o.push(notice("/a.jpg", 1), 0), Pushed::Duplicate);
        assert_eq!(o.push(notice("/a.jpg", 9), 0), Pushed::Queued);
        assert_eq!(o.push(notice("/b.jpg", 1), 0), Pushed::Dropped);
        assert_eq!(o.next(1, 10).unwrap().body.mask, 1);
        o.in_flight = 1;
        assert!(o.next(1, 10).is_none(), "in-flight bound");
        o.in_flight = 0;
        assert_eq!(o.next(1, 10).unwrap().body.mask, 9);
        assert!(o.is_idle());
        // Sent at 10: a repeat within 1000 ms is a duplicate, after it is queued again.
        assert_eq!(o.push(notice("/a.jpg", 1), 500), Pushed::Duplicate);
        assert_eq!(o.push(notice("/a.jpg", 1), 1_011), Pushed::Queued);
    }

    /// The check a request makes before building a notice agrees with `push`: only what was
    /// sent (not merely queued) within the window counts, per URL and mask.
    #[test]
    fn sent_recently_matches_push() {
        let mut o = Outbox::new(8, 64, 1_000);
        let key = |p: &str| SourceKey::new("h", p).unwrap().id();
        assert_eq!(o.push(notice("/a.jpg", 1), 0), Pushed::Queued);
        assert!(!o.sent_recently(key("/a.jpg"), 1, 0), "queued is not sent");
        assert!(o.next(1, 10).is_some());
        assert!(o.sent_recently(key("/a.jpg"), 1, 500));
        assert_eq!(o.push(notice("/a.jpg", 1), 500), Pushed::Duplicate);
        assert!(!o.sent_recently(key("/a.jpg"), 2, 500), "another mask");
        assert!(!o.sent_recently(key("/b.jpg"), 1, 500), "another URL");
        assert!(!o.sent_recently(key("/a.jpg"), 1, 1_010), "window over");
        assert_eq!(o.push(notice("/a.jpg", 1), 1_010), Pushed::Queued);
    }
}
