//! The plugin's JSON configuration (Envoy `configuration`, Istio `pluginConfig`), parsed and
//! validated once in `on_configure`. Unknown keys are errors that name the key, so a typo
//! refuses to start instead of silently running with a default. `{}` (or nothing) is a
//! working filter with every default.
//!
//! One module plays two roles, told apart by the configuration:
//! * the HTTP filter (any object without `index_sync`): [`FilterConfig`];
//! * the index-sync singleton (`{"index_sync": {...}}`, loaded as an `envoy.bootstrap.wasm`
//!   service with `singleton: true` and the filter's `vm_id`): [`SyncConfig`].

use rendition_shared::hot::DEFAULT_HOT_THRESHOLD;
use rendition_shared::request::DEFAULT_IMAGE_EXTENSIONS;
use rendition_shared::table::{MAX_BUCKETS, MAX_WAYS};
use rendition_shared::wire::{DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT, MAX_FEED_WAIT_MS};
use serde::Deserialize;

/// Which role this root context plays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginConfig {
    Filter(FilterConfig),
    IndexSync(SyncConfig),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncEnvelope {
    index_sync: SyncConfig,
}

impl PluginConfig {
    /// Parses and validates; errors start with `configuration:` and name the key.
    pub fn parse(bytes: &[u8]) -> Result<PluginConfig, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(PluginConfig::Filter(FilterConfig::default()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("configuration: {e}"))?;
        if value.get("index_sync").is_some() {
            let env: SyncEnvelope =
                serde_json::from_value(value).map_err(|e| format!("configuration: {e}"))?;
            env.index_sync.validate()?;
            Ok(PluginConfig::IndexSync(env.index_sync))
        } else {
            let config: FilterConfig =
                serde_json::from_value(value).map_err(|e| format!("configuration: {e}"))?;
            config.validate()?;
            Ok(PluginConfig::Filter(config))
        }
    }
}

/// Options of the HTTP filter.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Add the `x-rendition: hit|miss|bypass; mask=0x..; variant=0x..` response header.
    pub debug_header: bool,
    /// Path extensions treated as images (case-insensitive, without the dot).
    pub image_extensions: Vec<String>,
    /// Envoy cluster of the sidecar, for notifies.
    pub sidecar_cluster: String,
    /// `:authority` sent with notifies (the sidecar does not route on it).
    pub sidecar_authority: String,
    /// Timeout of one notify call.
    pub notify_timeout_ms: u64,
    /// Notifies waiting to be sent per worker; more are dropped and counted.
    pub notify_queue: usize,
    /// Notify calls in flight per worker.
    pub notify_in_flight: usize,
    /// The same (URL, mask) is not notified again by a worker within this time.
    pub renotify_after_ms: u64,
    /// Fallback hits before a warmup notify (docs/architecture.md, "Hot URLs"; 0 = off).
    pub hot_threshold: u32,
    /// Slots of the per-worker hot-URL table.
    pub hot_table_slots: usize,
    /// Responses declaring a larger `Content-Length` are not sent to the sidecar.
    pub max_source_bytes: u64,
    /// Add `Vary` to image responses (turn off only when nothing caches them downstream).
    pub vary: bool,
    /// Add `Accept-CH` naming the client hints the mask reads.
    pub accept_ch: bool,
    /// Hits are routed only while the index sync heard from the sidecar this recently.
    pub sidecar_stale_after_ms: u64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            debug_header: true,
            image_extensions: DEFAULT_IMAGE_EXTENSIONS
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            sidecar_cluster: "sidecar".into(),
            sidecar_authority: "rendition-sidecar".into(),
            notify_timeout_ms: 1_000,
            notify_queue: 256,
            notify_in_flight: 16,
            renotify_after_ms: 10_000,
            hot_threshold: DEFAULT_HOT_THRESHOLD,
            hot_table_slots: 4096,
            max_source_bytes: 10 << 20,
            vary: true,
            accept_ch: true,
            sidecar_stale_after_ms: 20_000,
        }
    }
}

impl FilterConfig {
    fn validate(&self) -> Result<(), String> {
        if self.image_extensions.is_empty() {
            return Err("configuration: image_extensions: must list at least one extension".into());
        }
        for ext in &self.image_extensions {
            if ext.is_empty()
                || ext.starts_with('.')
                || !ext.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "configuration: image_extensions: {ext:?} is not a bare extension like \"jpg\""
                ));
            }
        }
        non_empty("sidecar_cluster", &self.sidecar_cluster)?;
        non_empty("sidecar_authority", &self.sidecar_authority)?;
        in_range("notify_timeout_ms", self.notify_timeout_ms, 10, 60_000)?;
        in_range("notify_queue", self.notify_queue as u64, 1, 65_536)?;
        in_range("notify_in_flight", self.notify_in_flight as u64, 1, 1_024)?;
        in_range("renotify_after_ms", self.renotify_after_ms, 0, 3_600_000)?;
        in_range("hot_table_slots", self.hot_table_slots as u64, 1, 1 << 20)?;
        in_range("max_source_bytes", self.max_source_bytes, 1, 1 << 32)?;
        in_range(
            "sidecar_stale_after_ms",
            self.sidecar_stale_after_ms,
            1_000,
            3_600_000,
        )
    }
}

/// Options of the index-sync singleton.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Envoy cluster of the sidecar.
    pub sidecar_cluster: String,
    /// `:authority` of the feed requests.
    pub sidecar_authority: String,
    /// Shared-data buckets (power of two). The key space is exactly this plus one meta key.
    pub buckets: u32,
    /// Sources per bucket before the oldest is evicted. Capacity = buckets x ways.
    pub ways: u8,
    /// Long-poll: how long the sidecar may hold a feed request with nothing new.
    pub poll_wait_ms: u64,
    /// Entries per feed page.
    pub page_limit: u32,
    /// Pause after a failed poll before the next one.
    pub retry_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            sidecar_cluster: "sidecar".into(),
            sidecar_authority: "rendition-sidecar".into(),
            buckets: 1 << 16,
            ways: 4,
            poll_wait_ms: 5_000,
            page_limit: DEFAULT_FEED_LIMIT,
            retry_ms: 1_000,
        }
    }
}

impl SyncConfig {
    fn validate(&self) -> Result<(), String> {
        non_empty("index_sync.sidecar_cluster", &self.sidecar_cluster)?;
        non_empty("index_sync.sidecar_authority", &self.sidecar_authority)?;
        if !self.buckets.is_power_of_two() || self.buckets > MAX_BUCKETS {
            return Err(format!(
                "configuration: index_sync.buckets: {} is not a power of two up to {MAX_BUCKETS}",
                self.buckets
            ));
        }
        in_range(
            "index_sync.ways",
            u64::from(self.ways),
            1,
            u64::from(MAX_WAYS),
        )?;
        // The sidecar cuts a longer wait or a larger page to these; refusing them here keeps
        // the configuration saying what happens.
        in_range(
            "index_sync.poll_wait_ms",
            self.poll_wait_ms,
            0,
            MAX_FEED_WAIT_MS,
        )?;
        in_range(
            "index_sync.page_limit",
            u64::from(self.page_limit),
            1,
            u64::from(MAX_FEED_LIMIT),
        )?;
        in_range("index_sync.retry_ms", self.retry_ms, 100, 60_000)
    }
}

fn non_empty(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("configuration: {key}: must not be empty"));
    }
    Ok(())
}

fn in_range(key: &str, value: u64, lo: u64, hi: u64) -> Result<(), String> {
    if value < lo || value > hi {
        return Err(format!(
            "configuration: {key}: {value} is outside {lo}..={hi}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_defaults() {
        let filter = PluginConfig::Filter(FilterConfig::default());
        assert_eq!(PluginConfig::parse(b""), Ok(filter.clone()));
        assert_eq!(PluginConfig::parse(b"{}"), Ok(filter));
        assert_eq!(
            PluginConfig::parse(br#"{"index_sync": {}}"#),
            Ok(PluginConfig::IndexSync(SyncConfig::default()))
        );
    }

    #[test]
    fn errors_name_the_key() {
        for (json, key) in [
            (r#"{"debug_headr": false}"#, "debug_headr"),
            (r#"{"image_extensions": [".jpg"]}"#, "image_extensions"),
            (r#"{"debug_header": "yes"}"#, "configuration"),
            (r#"{"notify_timeout_ms": 0}"#, "notify_timeout_ms"),
            (r#"{"sidecar_cluster": ""}"#, "sidecar_cluster"),
            (r#"{"index_sync": {"buckets": 1000}}"#, "index_sync.buckets"),
            (r#"{"index_sync": {"ways": 0}}"#, "index_sync.ways"),
            (r#"{"index_sync": {"bukets": 1}}"#, "bukets"),
            (
                r#"{"index_sync": {}, "debug_header": true}"#,
                "debug_header",
            ),
        ] {
            let e = PluginConfig::parse(json.as_bytes()).unwrap_err();
            assert!(
                e.starts_with("configuration:") && e.contains(key),
                "{json}: {e}"
            );
        }
    }
}
