//! The work queue: which sources wait for a worker, and what each was asked for.
//!
//! * Bounded: a notify that finds the queue full is dropped and counted, never buffered.
//! * Deduplicated per source: a notify for a source already queued or running merges its slot
//!   into that job instead of queueing again; a running job requeues itself once if slots
//!   arrived while it ran.
//!
//! What a worker does with a job is `super::work`.

use crate::origin::Fetched;
use rendition_shared::wire::Requested;
use rendition_shared::{KeyId, SourceKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A notify, validated.
#[derive(Clone, Debug)]
pub struct Job {
    pub key: SourceKey,
    pub requested: Requested,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// A revalidation found a new original: these are its bytes (no second fetch), and every
    /// stored variant is made again from them and swapped in at once.
    pub replacement: Option<Arc<Fetched>>,
}

/// What [`WorkQueue::submit`] did with a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    Queued,
    Merged,
    Dropped,
}

/// The receiving end: the ids of sources to work on, in order.
pub type JobReceiver = mpsc::Receiver<KeyId>;

struct Pending {
    job: Job,
    /// More requests that arrived for the same source.
    more: Vec<Requested>,
    running: bool,
}

pub struct WorkQueue {
    tx: mpsc::Sender<KeyId>,
    pending: Mutex<HashMap<KeyId, Pending>>,
}

impl WorkQueue {
    /// A queue of `capacity` sources, and its receiving end.
    pub fn new(capacity: usize) -> (WorkQueue, JobReceiver) {
        let (tx, rx) = mpsc::channel(capacity);
        let queue = WorkQueue {
            tx,
            pending: Mutex::new(HashMap::new()),
        };
        (queue, rx)
    }

    /// Sources waiting or running.
    pub fn depth(&self) -> usize {
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
            let replacement = job.replacement.is_some();
            if replacement {
                p.job.replacement = job.replacement;
            }
            let new_slot = p.job.requested != job.requested && !p.more.contains(&job.requested);
            if new_slot || ((changed || replacement) && p.running) {
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

    /// Marks a source's job running and hands it out with the requests merged into it.
    pub fn start(&self, id: &KeyId) -> Option<(Job, Vec<Requested>)> {
        let mut pending = self.pending.lock().ok()?;
        let p = pending.get_mut(id)?;
        p.running = true;
        // The replacement goes with this run; one that arrives while it runs stays for the
        // requeue.
        let replacement = p.job.replacement.take();
        let job = Job {
            replacement,
            ..p.job.clone()
        };
        Some((job, std::mem::take(&mut p.more)))
    }

    /// Ends a run; requeues once when more slots were asked for meanwhile. Returns false when
    /// that requeue found the queue full (the caller counts it).
    pub fn finish(&self, id: &KeyId) -> bool {
        let Ok(mut pending) = self.pending.lock() else {
            return true;
        };
        let Some(p) = pending.get_mut(id) else {
            return true;
        };
        if p.more.is_empty() {
            pending.remove(id);
            return true;
        }
        p.running = false;
        p.job.requested = p.more.remove(0);
        if self.tx.try_send(*id).is_err() {
            pending.remove(id);
            return false;
        }
        true
    }
}
