//! The index-sync singleton: follows the sidecar's change feed (`GET /index?since=SEQ`,
//! long-polled) and writes it into the shared-data table every worker reads.
//!
//! Loaded once per Envoy process as an `envoy.bootstrap.wasm` service with `singleton: true`
//! and the filter's `vm_id` (shared data is per `vm_id`). The plan for each page comes from
//! [`rendition_shared::sync::follow`]; this file does the I/O: one call in flight at a time,
//! the next one dispatched as soon as a page is applied, a pause of `retry_ms` after a failure
//! (which also marks the sidecar down in the meta record, so workers stop routing hits).

use crate::clock::now_ms;
use crate::config::SyncConfig;
use crate::metrics::SyncMetrics;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, Status};
use rendition_shared::record::{ENTRY_LEN, FEED_HEADER_LEN};
use rendition_shared::sync::follow;
use rendition_shared::table::{bucket_key, bucket_upsert, IndexMeta, Upsert, META_KEY};
use rendition_shared::wire::{FeedRequest, MAX_FEED_LIMIT};
use rendition_shared::{FeedPage, IndexEntry};
use std::time::Duration;

/// Largest feed page accepted: the sidecar's largest page, with room.
const MAX_PAGE_BYTES: usize = 1 << 20;
const _: () = assert!(
    FEED_HEADER_LEN + MAX_FEED_LIMIT as usize * ENTRY_LEN <= MAX_PAGE_BYTES,
    "a full feed page must fit MAX_PAGE_BYTES"
);
/// Attempts at a compare-and-swap write before giving up on one bucket (only this singleton
/// writes, so a conflict means another Envoy generation during a hot restart).
const CAS_ATTEMPTS: usize = 4;

#[derive(Debug)]
pub struct IndexSync {
    config: SyncConfig,
    metrics: SyncMetrics,
    meta: IndexMeta,
    /// The `since` of the call in flight, with its token.
    in_flight: Option<(u32, u64)>,
    /// Host time before which no new poll starts (after a failure).
    next_poll_ms: u64,
    /// The sidecar's newest sequence, from the last page.
    remote_seq: u64,
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, &format!("rendition index sync: {message}"));
}

impl IndexSync {
    /// Starts from the meta record already in shared data (an Envoy reload keeps shared data)
    /// when it has the same geometry; otherwise a new epoch empties whatever is there.
    pub fn new(config: SyncConfig) -> IndexSync {
        let existing = hostcalls::get_shared_data(META_KEY)
            .ok()
            .and_then(|(bytes, _)| bytes)
            .and_then(|b| IndexMeta::decode(&b).ok());
        let meta = match existing {
            Some(m) if m.buckets == config.buckets && m.ways == config.ways => m,
            Some(m) => IndexMeta {
                epoch: m.epoch.wrapping_add(1).max(1),
                ..IndexMeta::new(config.buckets, config.ways)
            },
            None => IndexMeta::new(config.buckets, config.ways),
        };
        let sync = IndexSync {
            config,
            metrics: SyncMetrics::define(),
            meta,
            in_flight: None,
            next_poll_ms: 0,
            remote_seq: 0,
        };
        sync.publish_meta();
        sync
    }

    /// Tick period: a watchdog that restarts polling after failures.
    pub fn tick_period(&self) -> Duration {
        Duration::from_millis(self.config.retry_ms.min(1_000))
    }

    pub fn on_tick(&mut self) {
        let now = now_ms();
        if self.meta.updated_ms > 0 {
            self.metrics
                .since_contact_ms
                .set(now.saturating_sub(self.meta.updated_ms));
        }
        if self.in_flight.is_none() && now >= self.next_poll_ms {
            // After a failure ask without waiting: the answer marks the sidecar up at once,
            // instead of after a whole long-poll.
            let wait = if self.meta.sidecar_up {
                self.config.poll_wait_ms
            } else {
                0
            };
            self.poll(self.meta.applied_seq, wait);
        }
    }

    fn poll(&mut self, since: u64, wait_ms: u64) {
        let request = FeedRequest {
            since,
            wait_ms,
            limit: Some(u64::from(self.config.page_limit)),
        };
        let path = request.path();
        let headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", self.config.sidecar_authority.as_str()),
            (":scheme", "http"),
        ];
        let timeout = Duration::from_millis(request.timeout_ms());
        match hostcalls::dispatch_http_call(
            &self.config.sidecar_cluster,
            headers,
            None,
            vec![],
            timeout,
        ) {
            Ok(token) => {
                self.in_flight = Some((token, since));
                self.metrics.polls.inc();
            }
            Err(status) => self.failed(&format!(
                "dispatch to cluster {:?}: {status:?}",
                self.config.sidecar_cluster
            )),
        }
    }

    fn failed(&mut self, why: &str) {
        self.metrics.poll_failures.inc();
        self.next_poll_ms = now_ms() + self.config.retry_ms;
        if self.meta.sidecar_up {
            log(
                LogLevel::Warn,
                &format!("sidecar unreachable, hits go to the origin: {why}"),
            );
            self.meta.sidecar_up = false;
            self.publish_meta();
        }
    }

    pub fn on_http_call_response(&mut self, token: u32, body_size: usize) {
        let Some((expected, since)) = self.in_flight else {
            return;
        };
        if expected != token {
            return;
        }
        self.in_flight = None;
        let status = hostcalls::get_map_value(
            proxy_wasm::types::MapType::HttpCallResponseHeaders,
            ":status",
        )
        .ok()
        .flatten();
        if status.as_deref() != Some("200") {
            // A timeout or reset arrives with no headers at all.
            return self.failed(&format!(
                "feed answered {}",
                status.as_deref().unwrap_or("nothing")
            ));
        }
        if body_size > MAX_PAGE_BYTES {
            return self.failed(&format!("feed page of {body_size} bytes"));
        }
        let body = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::HttpCallResponseBody,
            0,
            body_size,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let page = match FeedPage::decode(&body) {
            Ok(p) => p,
            Err(e) => return self.failed(&format!("bad feed page: {e}")),
        };
        let was_up = self.meta.sidecar_up;
        let step = follow(self.meta, since, &page, now_ms());
        if step.resynced {
            self.metrics.resyncs.inc();
            log(
                LogLevel::Info,
                &format!(
                    "resync: store {:016x}, epoch {}",
                    page.store_id, step.meta.epoch
                ),
            );
        }
        let mut meta = step.meta;
        let (mut added, mut removed) = (0u64, 0u64);
        for entry in step.apply {
            match self.write_entry(&meta, entry) {
                Some(Upsert::Added) => added += 1,
                Some(Upsert::Removed) => removed += 1,
                Some(Upsert::Evicted) => self.metrics.evictions.inc(),
                Some(_) => {}
                None => log(
                    LogLevel::Warn,
                    "a bucket write failed; until its next change or a resync that source \
                     keeps what the table held (a miss, or a hit on a record now stale)",
                ),
            }
        }
        meta.records = meta.records.saturating_add(added).saturating_sub(removed);
        self.metrics.entries_applied.add(step.apply.len() as i64);
        self.meta = meta;
        self.remote_seq = page.last_seq;
        self.publish_meta();
        if !was_up {
            log(
                LogLevel::Info,
                &format!("following the sidecar feed at seq {}", meta.applied_seq),
            );
        }
        // Behind (or resyncing): ask at once without waiting; up to date: long-poll.
        let wait = if step.poll_now {
            0
        } else {
            self.config.poll_wait_ms
        };
        self.poll(self.meta.applied_seq, wait);
    }

    fn write_entry(&self, meta: &IndexMeta, entry: &IndexEntry) -> Option<Upsert> {
        let key = bucket_key(meta.bucket_of(&entry.key));
        for _ in 0..CAS_ATTEMPTS {
            let (current, cas) = hostcalls::get_shared_data(&key).ok()?;
            let (bytes, what) = bucket_upsert(current.as_deref(), meta.epoch, meta.ways, entry);
            match hostcalls::set_shared_data(&key, Some(&bytes), cas) {
                Ok(()) => return Some(what),
                Err(Status::CasMismatch) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    fn publish_meta(&self) {
        if hostcalls::set_shared_data(META_KEY, Some(&self.meta.encode()), None).is_err() {
            log(LogLevel::Error, "could not publish the index meta record");
        }
        self.metrics.records.set(self.meta.records);
        self.metrics.applied_seq.set(self.meta.applied_seq);
        self.metrics
            .lag_changes
            .set(self.remote_seq.saturating_sub(self.meta.applied_seq));
    }
}
