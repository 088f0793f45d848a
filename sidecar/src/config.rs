//! Sidecar configuration: one struct per component, each with defaults, loaded from an
//! optional TOML file, then environment variables and flags (`rendition serve --help`), and
//! validated at start with errors that name the key. No file is needed for the defaults.

use crate::pipeline::limits::Limits;
use rendition_shared::{canonical_host, ProactiveFlags, ViewportWidths};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the sidecar listens on (127.0.0.1:8181: next to the app, loopback only).
    pub listen: SocketAddr,
    /// sled database folder.
    pub data_dir: PathBuf,
    /// Budget for stored variant payload; least recently served variants are evicted past it.
    pub cache_size_bytes: u64,
    /// Perceptual quality target (SSIMULACRA2, 0-100).
    pub target_ssimulacra2: f32,
    /// Points the target drops for Save-Data clients.
    pub savedata_score_reduction: f32,
    /// The learned model picks each format's first quality (off: the codec dials do).
    pub learned_quality: LearnedQualityConfig,
    /// Bearer token for /stats, /metrics and /purge from non-loopback peers (unset: loopback only).
    pub admin_token: Option<String>,
    pub limits: Limits,
    pub origins: OriginsConfig,
    pub variants: VariantsConfig,
    pub queue: QueueConfig,
    pub freshness: FreshnessConfig,
    pub records: RecordsConfig,
    pub shared_store: SharedStoreConfig,
    pub server: ServerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8181)),
            data_dir: PathBuf::from("rendition-data"),
            cache_size_bytes: 1 << 30,
            target_ssimulacra2: 70.0,
            savedata_score_reduction: 15.0,
            learned_quality: LearnedQualityConfig::default(),
            admin_token: None,
            limits: Limits::default(),
            origins: OriginsConfig::default(),
            variants: VariantsConfig::default(),
            queue: QueueConfig::default(),
            freshness: FreshnessConfig::default(),
            records: RecordsConfig::default(),
            shared_store: SharedStoreConfig::default(),
            server: ServerConfig::default(),
        }
    }
}

/// Which formats use the learned quality model (docs/quality.md) for their first encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnedQualityConfig {
    pub webp: bool,
    pub avif: bool,
    pub jpeg: bool,
}

impl Default for LearnedQualityConfig {
    fn default() -> Self {
        LearnedQualityConfig {
            webp: true,
            avif: true,
            jpeg: true,
        }
    }
}

/// Where originals are fetched from. A notify names a host and a path, never an address: the
/// request always goes to a configured base URL, with the original Host header (over https,
/// under the original host name too: `crate::origin`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginsConfig {
    /// Base URL for hosts not in `hosts`. An empty string unsets it (TOML has no null):
    /// then only mapped hosts are fetched and a notify for any other host is refused (403).
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub default: Option<String>,
    /// Host (as in the request's Host header) to base URL. Keys are canonicalized like a
    /// request's host ([`Config::normalize`]): `Static.Example.com:80` maps
    /// `static.example.com`.
    pub hosts: BTreeMap<String, String>,
    pub timeout_ms: u64,
    /// Follow redirects, only to the same origin or from http to https on the same host. Off
    /// by default.
    pub follow_redirects: bool,
    /// Which roots https origins' certificates must chain to: the Mozilla roots compiled into
    /// the binary (`webpki`), or the system's store (`system`).
    pub tls_roots: TlsRoots,
    /// PEM file of more CA certificates to trust (an internal CA, a test CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// The trust roots of https origins (`origins.tls_roots`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsRoots {
    Webpki,
    System,
}

impl Default for OriginsConfig {
    fn default() -> Self {
        OriginsConfig {
            default: Some("http://127.0.0.1:8080".to_owned()),
            hosts: BTreeMap::new(),
            timeout_ms: 5_000,
            follow_redirects: false,
            tls_roots: TlsRoots::Webpki,
            ca_file: None,
        }
    }
}

/// `origins.default` as written in a file, a flag or the environment: `""` is unset.
pub fn default_origin(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.to_owned())
}

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(default_origin(&String::deserialize(d)?))
}

fn none_is_empty<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or_default())
}

/// The generation switches and variant widths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VariantsConfig {
    /// `--proactive-image-variants`: generate siblings from the same decode (off by default:
    /// only what clients ask for is made).
    pub proactive_image_variants: bool,
    /// Off: `--no-proactive-viewport-variants`.
    pub proactive_viewport_variants: bool,
    /// Off: `--no-proactive-savedata-variants`.
    pub proactive_savedata_variants: bool,
    /// Off: `--no-proactive-density-variants`.
    pub proactive_density_variants: bool,
    pub mobile_width: u32,
    pub tablet_width: u32,
    pub desktop_width: u32,
    /// `--enable-warmup`: honour the 0xFFFFFFFE warmup sentinel (whole matrix).
    pub enable_warmup: bool,
}

impl Default for VariantsConfig {
    fn default() -> Self {
        VariantsConfig {
            proactive_image_variants: false,
            proactive_viewport_variants: true,
            proactive_savedata_variants: true,
            proactive_density_variants: true,
            mobile_width: 480,
            tablet_width: 768,
            desktop_width: 0,
            enable_warmup: false,
        }
    }
}

impl VariantsConfig {
    /// Each width at most [`MAX_VIEWPORT_WIDTH`], and mobile <= tablet <= desktop, where 0
    /// (the original's width) counts as wider than any number.
    fn check_widths(&self) -> Result<(), ConfigError> {
        let widths = [
            ("variants.mobile_width", self.mobile_width),
            ("variants.tablet_width", self.tablet_width),
            ("variants.desktop_width", self.desktop_width),
        ];
        for (key, w) in widths {
            if w > MAX_VIEWPORT_WIDTH {
                return Err(err(
                    key,
                    format!("{w} is more than {MAX_VIEWPORT_WIDTH} px (2x slots double it; 0 keeps the original width)"),
                ));
            }
        }
        let span = |w: u32| if w == 0 { u32::MAX } else { w };
        for pair in widths.windows(2) {
            let [(narrow_key, narrow), (wide_key, wide)] = [pair[0], pair[1]];
            if span(narrow) > span(wide) {
                let shown = |w: u32| {
                    if w == 0 {
                        "0 (the original width)".to_owned()
                    } else {
                        w.to_string()
                    }
                };
                return Err(err(
                    narrow_key,
                    format!(
                        "{} is wider than {wide_key} = {}",
                        shown(narrow),
                        shown(wide)
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn widths(&self) -> ViewportWidths {
        ViewportWidths {
            mobile: self.mobile_width,
            tablet: self.tablet_width,
            desktop: self.desktop_width,
        }
    }

    pub fn proactive(&self) -> ProactiveFlags {
        ProactiveFlags {
            enabled: self.proactive_image_variants,
            viewport: self.proactive_viewport_variants,
            save_data: self.proactive_savedata_variants,
            density: self.proactive_density_variants,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Sources waiting for a worker; a notify past this is dropped and counted.
    pub capacity: usize,
    /// CPU workers (0: one per core).
    pub workers: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 1024,
            workers: 0,
        }
    }
}

/// Revalidation of stored originals with their origin (docs/operations.md, "Images that
/// change"). How long an original stays fresh is the origin's to say (its caching headers);
/// these bound how often the sidecar may ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FreshnessConfig {
    /// A source is revalidated at most once in this time (the origin sees one conditional
    /// request per stale period at most, however many hits).
    pub revalidate_min_interval_ms: u64,
    /// After a failed revalidation (timeout, 5xx), stale variants keep being served and the
    /// next attempt waits this long.
    pub revalidate_retry_after_ms: u64,
    /// Revalidations running at once, across sources.
    pub revalidations_in_flight: usize,
}

impl Default for FreshnessConfig {
    fn default() -> Self {
        FreshnessConfig {
            revalidate_min_interval_ms: 1_000,
            revalidate_retry_after_ms: 10_000,
            revalidations_in_flight: 16,
        }
    }
}

/// The HTTP listener's connection handling (`service::connections`, docs/operations.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// From the first byte of a request to the end of its headers; a connection slower than
    /// this is closed.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in progress is closed after this long without a byte.
    pub idle_timeout_ms: u64,
    /// Open connections at most; the bound is lowered further to stay under the process's
    /// file descriptor limit.
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, how long requests in progress may take to finish before the
    /// remaining connections are dropped.
    pub drain_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 4096,
            drain_timeout_ms: 10_000,
        }
    }
}

/// How long a record that holds no variant (refused, purged, lost, all evicted) is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsConfig {
    /// Seconds after its last change; then the record is deleted (the filters are told
    /// through the feed) and, after as long again, its tombstone leaves the feed. A deleted
    /// refusal is asked again at the next miss.
    pub empty_ttl_secs: u64,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            empty_ttl_secs: 86_400,
        }
    }
}

impl RecordsConfig {
    /// How often the sweep runs: a quarter of the time to live, between 1 s and a minute.
    pub fn sweep_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs((self.empty_ttl_secs / 4).clamp(1, 60))
    }
}

/// The shared tier: an S3-compatible bucket every sidecar of a fleet reads and writes, so each
/// variant is made once per fleet (docs/fleet.md). Off by default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedStoreConfig {
    pub enabled: bool,
    /// The S3 endpoint (`https://s3.us-east-1.amazonaws.com`, `http://minio:9000`, ...);
    /// empty: AWS's own for `region`.
    pub endpoint: String,
    pub bucket: String,
    /// Everything of this fleet lives under it (several fleets can share a bucket).
    pub prefix: String,
    pub region: String,
    /// Credentials: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`)
    /// from the environment, or this file in the AWS shared-credentials format (`[default]`,
    /// `aws_access_key_id = ...`, `aws_secret_access_key = ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// The profile read from `credentials_file`.
    pub credentials_profile: String,
    /// Send unsigned requests (a bucket open to this network, as SeaweedFS without identities).
    pub anonymous: bool,
    /// Every request to the bucket gives up after this long; serving never waits for it.
    pub timeout_ms: u64,
    /// How long a lease on a source lasts without renewal (a crashed encoder is taken over
    /// after it); renewed every third of it while the encode runs.
    pub lease_secs: u64,
    /// How often a sidecar waiting for another's encode looks at the manifest.
    pub wait_poll_ms: u64,
    /// How often the purge log is read (a purge anywhere reaches every pod within this,
    /// plus the time to purge locally).
    pub purge_poll_ms: u64,
    /// After a failed request the tier is left alone this long (encodes run locally, counted).
    pub retry_after_ms: u64,
    /// This sidecar's name in leases, manifests and purge entries; empty: the host name.
    pub node_id: String,
}

impl Default for SharedStoreConfig {
    fn default() -> Self {
        SharedStoreConfig {
            enabled: false,
            endpoint: String::new(),
            bucket: String::new(),
            prefix: "rendition".into(),
            region: "us-east-1".into(),
            credentials_file: None,
            credentials_profile: "default".into(),
            anonymous: false,
            timeout_ms: 3_000,
            lease_secs: 60,
            wait_poll_ms: 500,
            purge_poll_ms: 2_000,
            retry_after_ms: 5_000,
            node_id: String::new(),
        }
    }
}

/// What a `listen` beyond loopback exposes ([`Config::exposure`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// No `admin_token`: worth a warning.
    Open(String),
    /// With `admin_token`: the public routes are still open to whoever reaches the port.
    Token(String),
}

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The widest viewport target, in px at 1x: 2x slots are twice as wide, and WebP holds at most
/// 16383 px in either dimension.
pub const MAX_VIEWPORT_WIDTH: u32 = 8191;

/// The most workers: each holds a decoded source at once (docs/operations.md, "Memory").
pub const MAX_WORKERS: usize = 256;

/// The longest `shared_store.lease_secs` accepted (a day); it also keeps the lease's
/// millisecond arithmetic far from overflow.
pub const MAX_LEASE_SECS: u64 = 86_400;

impl Config {
    /// Reads a TOML file (all keys optional).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(&path.display().to_string(), e.to_string()))?;
        toml::from_str(&text).map_err(|e| {
            let key = e.span().and_then(|span| key_at(&text, span.start));
            let key = key.unwrap_or_else(|| path.display().to_string());
            err(&key, e.message().to_owned())
        })
    }

    /// Canonicalizes what is compared with requests: `origins.hosts` keys become hosts as a
    /// request's source key holds them (lower-case, no trailing dot, no `:80`/`:443`,
    /// `rendition_shared::canonical_host`). Two keys naming one host with different URLs are
    /// an error; with the same URL they merge. Call before [`Config::validate`].
    pub fn normalize(&mut self) -> Result<(), ConfigError> {
        let mut hosts: BTreeMap<String, String> = BTreeMap::new();
        let mut written: BTreeMap<String, String> = BTreeMap::new();
        for (host, url) in std::mem::take(&mut self.origins.hosts) {
            let canonical = canonical_host(&host)
                .map_err(|e| err(&format!("origins.hosts.{host:?}"), format!("{e}")))?;
            if let Some(other_url) = hosts.get(&canonical) {
                if *other_url != url {
                    let other = written.get(&canonical).cloned().unwrap_or_default();
                    return Err(err(
                        &format!("origins.hosts.{host:?}"),
                        format!(
                            "{host:?} and {other:?} both name host {canonical} with different URLs"
                        ),
                    ));
                }
            }
            written.insert(canonical.clone(), host);
            hosts.insert(canonical, url);
        }
        self.origins.hosts = hosts;
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cache_size_bytes == 0 {
            return Err(err("cache_size_bytes", "must be greater than 0"));
        }
        if !(0.0..=100.0).contains(&self.target_ssimulacra2) {
            return Err(err(
                "target_ssimulacra2",
                format!("{} is outside 0-100", self.target_ssimulacra2),
            ));
        }
        if !(0.0..=100.0).contains(&self.savedata_score_reduction) {
            return Err(err(
                "savedata_score_reduction",
                format!("{} is outside 0-100", self.savedata_score_reduction),
            ));
        }
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_source_bytes", l.max_source_bytes),
            ("limits.max_pixels", l.max_pixels),
            ("limits.max_frames", u64::from(l.max_frames)),
            ("limits.max_animation_pixels", l.max_animation_pixels),
        ] {
            if value == 0 {
                return Err(err(key, "must be greater than 0"));
            }
        }
        self.variants.check_widths()?;
        if self.queue.workers > MAX_WORKERS {
            return Err(err(
                "queue.workers",
                format!(
                    "{} is more than {MAX_WORKERS} (0 means one per core; each worker holds a decoded source)",
                    self.queue.workers
                ),
            ));
        }
        if self.origins.default.is_none() && self.origins.hosts.is_empty() {
            return Err(err(
                "origins",
                "set origins.default or at least one origins.hosts entry",
            ));
        }
        if let Some(d) = &self.origins.default {
            check_base_url("origins.default", d)?;
        }
        for (host, url) in &self.origins.hosts {
            if canonical_host(host).ok().as_deref() != Some(host.as_str()) {
                return Err(err(
                    &format!("origins.hosts.{host:?}"),
                    "not a canonical host (Config::normalize makes it one)",
                ));
            }
            check_base_url(&format!("origins.hosts.{host}"), url)?;
        }
        check_https_names(&self.origins.hosts)?;
        if let Some(path) = &self.origins.ca_file {
            if !path.is_file() {
                return Err(err(
                    "origins.ca_file",
                    format!("{} is not a readable file", path.display()),
                ));
            }
        }
        if self.origins.timeout_ms == 0 {
            return Err(err("origins.timeout_ms", "must be greater than 0"));
        }
        if self.queue.capacity == 0 {
            return Err(err("queue.capacity", "must be greater than 0"));
        }
        if self.freshness.revalidations_in_flight == 0 {
            return Err(err(
                "freshness.revalidations_in_flight",
                "must be greater than 0",
            ));
        }
        if self.records.empty_ttl_secs == 0 {
            return Err(err("records.empty_ttl_secs", "must be greater than 0"));
        }
        let s = &self.shared_store;
        if s.enabled {
            if s.bucket.trim().is_empty() {
                return Err(err(
                    "shared_store.bucket",
                    "must be set when shared_store.enabled",
                ));
            }
            if !s.endpoint.is_empty() {
                let parsed = reqwest::Url::parse(&s.endpoint)
                    .map_err(|e| err("shared_store.endpoint", format!("{:?}: {e}", s.endpoint)))?;
                if parsed.scheme() != "http" && parsed.scheme() != "https" {
                    return Err(err("shared_store.endpoint", "an http:// or https:// URL"));
                }
            }
            for (key, value) in [
                ("shared_store.timeout_ms", s.timeout_ms),
                ("shared_store.lease_secs", s.lease_secs),
                ("shared_store.wait_poll_ms", s.wait_poll_ms),
                ("shared_store.purge_poll_ms", s.purge_poll_ms),
            ] {
                if value == 0 {
                    return Err(err(key, "must be greater than 0"));
                }
            }
            if s.lease_secs > MAX_LEASE_SECS {
                return Err(err(
                    "shared_store.lease_secs",
                    format!("at most {MAX_LEASE_SECS} (a day): a lease outliving its encoder that long stalls its source"),
                ));
            }
            if s.lease_secs.saturating_mul(1000) < s.timeout_ms.saturating_mul(3) {
                return Err(err(
                    "shared_store.lease_secs",
                    "must be at least three request timeouts (shared_store.timeout_ms), or a lease could lapse while it is renewed",
                ));
            }
            if let Some(path) = &s.credentials_file {
                if !path.is_file() {
                    return Err(err(
                        "shared_store.credentials_file",
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
        }
        let s = &self.server;
        for (key, value) in [
            ("server.header_read_timeout_ms", s.header_read_timeout_ms),
            ("server.idle_timeout_ms", s.idle_timeout_ms),
            ("server.max_connections", s.max_connections as u64),
            ("server.drain_timeout_ms", s.drain_timeout_ms),
        ] {
            if value == 0 {
                return Err(err(key, "must be greater than 0"));
            }
        }
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(err("admin_token", "must be at least 16 characters"));
        }
        Ok(())
    }

    /// What `listen` exposes when it is beyond loopback (said at start and by `check-config`);
    /// `None` on loopback. The public routes never take a token, so the network must keep them
    /// to Envoy; the token only opens the admin routes.
    pub fn exposure(&self) -> Option<Exposure> {
        if self.listen.ip().is_loopback() {
            return None;
        }
        let public = format!(
            "listen {} is beyond loopback: /notify, /v/ and /index take no token, so anyone who reaches this port can read variants and make the sidecar fetch and encode; keep it reachable only by Envoy (NetworkPolicy, firewall)",
            self.listen
        );
        Some(match self.admin_token {
            None => Exposure::Open(format!(
                "{public}. admin_token is unset: /stats, /metrics, /purge and /report answer loopback peers only"
            )),
            Some(_) => Exposure::Token(format!(
                "{public}. admin_token opens /stats, /metrics, /purge and /report to other peers"
            )),
        })
    }

    /// Worker count: configured, or one per core.
    pub fn workers(&self) -> usize {
        if self.queue.workers > 0 {
            self.queue.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// Over https a source is requested under its own host name (for SNI), which the resolver maps
/// to its base URL's host. Two hosts that differ only in their port would then need two
/// different addresses for one name: refused.
fn check_https_names(hosts: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for (host, url) in hosts {
        let name = host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n);
        let base = url
            .split("://")
            .nth(1)
            .unwrap_or(url)
            .split('/')
            .next()
            .unwrap_or(url);
        let base = base.rsplit_once(':').map_or(base, |(b, _)| b);
        match seen.get(name) {
            Some((other, other_base))
                if *other_base != base
                    && (url.starts_with("https") || hosts[*other].starts_with("https")) =>
            {
                return Err(err(
                    &format!("origins.hosts.{host}"),
                    format!("{host} and {other} map to different https origins; TLS names one host, so they must share a base host"),
                ));
            }
            _ => {
                seen.insert(name, (host.as_str(), base));
            }
        }
    }
    Ok(())
}

/// The dotted key (`variants.mobile_width`) of the `key = value` line holding byte `at`, from
/// the line itself and the nearest `[table]` header above it. toml's own message names the
/// key for unknown fields but not for a value of the wrong type.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let name = line.split_once('=')?.0.trim().trim_matches('"');
    let table = before[..line_start]
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')))
        .map(|t| t.trim().to_owned());
    Some(match table {
        Some(t) => format!("{t}.{name}"),
        None => name.to_owned(),
    })
}

fn check_base_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| err(key, format!("{url:?}: {e}")))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(err(
            key,
            format!("{url:?}: an origin is an http:// or https:// URL"),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(err(
            key,
            format!("{url:?}: credentials do not belong in a base URL"),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(err(
            key,
            format!("{url:?}: a base URL has no query or fragment"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let c = Config {
            target_ssimulacra2: 120.0,
            ..Config::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "config: target_ssimulacra2: 120 is outside 0-100"
        );
        let mut c = Config::default();
        c.origins
            .hosts
            .insert("shop.example".into(), "ftp://x".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("config: origins.hosts.shop.example:"));
        let e = toml::from_str::<Config>("cache_sise_bytes = 5").unwrap_err();
        assert!(e.message().contains("cache_sise_bytes"), "{e}");
        let e = toml::from_str::<Config>("[variants]\nmobile_width = \"wide\"").unwrap_err();
        assert!(e.to_string().contains("mobile_width"), "{e}");
    }

    #[test]
    fn a_lease_is_at_most_a_day() {
        let with = |secs: u64| {
            let mut c = Config::default();
            c.shared_store.enabled = true;
            c.shared_store.bucket = "b".into();
            c.shared_store.lease_secs = secs;
            c.validate()
        };
        with(MAX_LEASE_SECS).unwrap();
        let e = with(MAX_LEASE_SECS + 1).unwrap_err().to_string();
        assert!(
            e.starts_with("config: shared_store.lease_secs: at most 86400"),
            "{e}"
        );
        let e = with(u64::MAX).unwrap_err().to_string();
        assert!(e.starts_with("config: shared_store.lease_secs:"), "{e}");
    }

    #[test]
    fn toml_overrides_defaults() {
        let c: Config = toml::from_str("cache_size_bytes = 1000\n[variants]\nproactive_image_variants = true\n[origins.hosts]\n\"a.example\" = \"http://10.0.0.1:80\"").unwrap();
        assert_eq!(c.cache_size_bytes, 1000);
        assert!(c.variants.proactive_image_variants);
        assert_eq!(c.origins.hosts["a.example"], "http://10.0.0.1:80");
        assert_eq!(c.variants.mobile_width, 480);
        c.validate().unwrap();
    }

    fn loaded(text: &str) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).unwrap();
        c.normalize()?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn origin_host_keys_are_canonical_like_request_hosts() {
        let c = loaded(
            "[origins.hosts]\n\"Static.Example.COM:80\" = \"http://10.0.0.1\"\n\"img.example.:443\" = \"https://10.0.0.2\"\n\"alt.example:8443\" = \"http://10.0.0.3\"",
        )
        .unwrap();
        let keys: Vec<&str> = c.origins.hosts.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["alt.example:8443", "img.example", "static.example.com"]
        );
        // What a request for each host looks up: its source key's host.
        for key in ["static.example.com", "img.example"] {
            assert!(c.origins.hosts.contains_key(key), "{key}");
        }
        let same = loaded(
            "[origins.hosts]\n\"a.example\" = \"http://10.0.0.1\"\n\"A.example:80\" = \"http://10.0.0.1\"",
        )
        .unwrap();
        assert_eq!(same.origins.hosts.len(), 1);
        let clash = loaded(
            "[origins.hosts]\n\"a.example\" = \"http://10.0.0.1\"\n\"A.example:80\" = \"http://10.0.0.2\"",
        )
        .unwrap_err()
        .to_string();
        assert!(
            clash.contains("both name host a.example with different URLs"),
            "{clash}"
        );
        let bad = loaded("[origins.hosts]\n\"a b\" = \"http://10.0.0.1\"")
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("config: origins.hosts.\"a b\":"), "{bad}");
        // A config built in code and never normalized is refused, not silently unmatched.
        let mut raw = Config::default();
        raw.origins
            .hosts
            .insert("A.example".into(), "http://10.0.0.1".into());
        assert!(raw.validate().is_err());
    }

    #[test]
    fn listening_beyond_loopback_is_said() {
        assert_eq!(Config::default().exposure(), None);
        let open = loaded("listen = \"0.0.0.0:8181\"").unwrap();
        match open.exposure() {
            Some(Exposure::Open(why)) => {
                assert!(why.starts_with("listen 0.0.0.0:8181 is beyond loopback: /notify, /v/ and /index take no token"), "{why}");
                assert!(why.contains("admin_token is unset"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let token =
            loaded("listen = \"[::]:8181\"\nadmin_token = \"0123456789abcdef0123\"").unwrap();
        assert!(matches!(token.exposure(), Some(Exposure::Token(_))));
        let v6_loopback = loaded("listen = \"[::1]:8181\"").unwrap();
        assert_eq!(v6_loopback.exposure(), None);
    }

    #[test]
    fn each_limit_is_named_when_zero() {
        for key in [
            "max_source_bytes",
            "max_pixels",
            "max_frames",
            "max_animation_pixels",
        ] {
            let e = loaded(&format!("[limits]\n{key} = 0")).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("config: limits.{key}: must be greater than 0")
            );
        }
    }

    #[test]
    fn widths_and_workers_are_checked() {
        let e = loaded("[variants]\ndesktop_width = 20000").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config: variants.desktop_width: 20000 is more than 8191 px"),
            "{e}"
        );
        let e = loaded("[variants]\nmobile_width = 1024\ntablet_width = 768").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config: variants.mobile_width: 1024 is wider than variants.tablet_width = 768"
        );
        let e = loaded("[variants]\ntablet_width = 0\ndesktop_width = 1920").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config: variants.tablet_width: 0 (the original width) is wider than variants.desktop_width = 1920"
        );
        loaded("[variants]\ntablet_width = 0").unwrap();
        loaded("[variants]\nmobile_width = 360\ntablet_width = 360\ndesktop_width = 1920").unwrap();
        let e = loaded("[queue]\nworkers = 100000").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config: queue.workers: 100000 is more than 256"),
            "{e}"
        );
        loaded("[queue]\nworkers = 0").unwrap();
    }

    #[test]
    fn server_section_is_read_and_checked() {
        let c: Config =
            toml::from_str("[server]\nidle_timeout_ms = 2000\nmax_connections = 10").unwrap();
        assert_eq!(c.server.idle_timeout_ms, 2000);
        assert_eq!(c.server.max_connections, 10);
        assert_eq!(c.server.header_read_timeout_ms, 10_000);
        c.validate().unwrap();
        let zero: Config = toml::from_str("[server]\ndrain_timeout_ms = 0").unwrap();
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "config: server.drain_timeout_ms: must be greater than 0"
        );
        let e = toml::from_str::<Config>("[server]\nmax_connections = \"many\"").unwrap_err();
        assert!(e.to_string().contains("max_connections"), "{e}");
    }

    #[test]
    fn the_default_origin_can_be_unset() {
        let kept: Config = toml::from_str("[origins]\ntimeout_ms = 100").unwrap();
        assert_eq!(
            kept.origins.default.as_deref(),
            Some("http://127.0.0.1:8080")
        );
        let only_mapped: Config = toml::from_str(
            "[origins]\ndefault = \"\"\n[origins.hosts]\n\"a.example\" = \"http://10.0.0.1\"",
        )
        .unwrap();
        assert_eq!(only_mapped.origins.default, None);
        only_mapped.validate().unwrap();
        let again: Config = toml::from_str(&toml::to_string(&only_mapped).unwrap()).unwrap();
        assert_eq!(again, only_mapped, "round trip keeps it unset");
        let none: Config = toml::from_str("[origins]\ndefault = \" \"").unwrap();
        assert_eq!(
            none.validate().unwrap_err().to_string(),
            "config: origins: set origins.default or at least one origins.hosts entry"
        );
    }
}
