//! The shared tier's client: one S3-compatible bucket that every sidecar of a fleet reads and
//! writes (docs/fleet.md), through `object_store`. What goes where is
//! `rendition_shared::bucket`; what the worker does with it is `crate::service::share`.
//!
//! * Every request is bounded by `shared_store.timeout_ms` (one retry at most). A failed
//!   request leaves the tier alone for `shared_store.retry_after_ms`: callers get
//!   [`FleetError::Unavailable`] at once and encode locally; serving never touches the tier.
//! * Objects are content-addressed: a download whose SHA-256 is not its name is
//!   [`FleetError::Corrupt`] and never reaches the store.
//! * Leases and manifests use conditional writes: create-only (`If-None-Match: *`) and
//!   compare-and-swap (`If-Match`), so of several sidecars exactly one wins.

use crate::config::SharedStoreConfig;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
    UpdateVersion,
};
use rendition_shared::bucket::{BucketLayout, Lease, Manifest, PurgeEntry, PurgeScope, LAYOUT};
use rendition_shared::KeyId;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why the tier could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// Down, slow, or answering something unexpected: encode locally.
    #[error("shared tier unavailable: {0}")]
    Unavailable(String),
    /// An object's bytes are not what its name says.
    #[error("shared tier object {0} is corrupt (checksum mismatch)")]
    Corrupt(String),
    /// A manifest names an object the bucket does not have (its lifecycle rule expired it).
    #[error("shared tier object {0} is missing")]
    Missing(String),
    /// A document that does not parse.
    #[error("shared tier document {0} does not parse: {1}")]
    Malformed(String, String),
}

/// Why the tier could not be set up at start-up, naming the configuration key to fix.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {message}")]
pub struct ConnectError {
    pub key: &'static str,
    pub message: String,
}

fn connect_error(key: &'static str, message: impl Into<String>) -> ConnectError {
    ConnectError {
        key,
        message: message.into(),
    }
}

macro_rules! tier_counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        /// Every shared-tier operation, error and byte (`/stats`, `/metrics`).
        #[derive(Debug, Default)]
        pub struct TierStats {
            $(#[doc = $help] pub $name: AtomicU64,)*
        }

        impl TierStats {
            /// (name, help, value) for every counter.
            pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

tier_counters! {
    shared_requests: "Requests sent to the shared tier.",
    shared_errors: "Shared-tier requests that failed (timeouts, refusals, unexpected answers).",
    shared_bytes_in: "Bytes read from the shared tier.",
    shared_bytes_out: "Bytes written to the shared tier.",
    shared_skipped: "Shared-tier operations skipped because the tier failed recently.",
    shared_corrupt: "Objects whose bytes did not match their checksum (never stored or served).",
    shared_manifests_written: "Manifests written.",
    shared_objects_written: "Variant objects uploaded.",
    shared_leases_taken: "Leases taken to make a source's variants.",
    shared_leases_taken_over: "Expired leases taken over (their holder stopped).",
    shared_leases_contended: "Leases found held by another sidecar (this one waited for its manifest).",
    shared_purges_logged: "Purges written to the purge log.",
    shared_purges_applied: "Purges read from the log and applied locally.",
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// SHA-256 of bytes, hex: a variant object's name.
pub fn object_name(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A lease this sidecar holds: the object's version as written, for renewing and releasing.
#[derive(Debug, Clone)]
pub struct LeaseToken {
    pub id: KeyId,
    pub e_tag: Option<String>,
}

/// What [`SharedTier::take_lease`] found.
#[derive(Debug)]
pub enum LeaseState {
    /// This sidecar holds it now (`taken_over`: from a holder whose lease had expired).
    Taken { token: LeaseToken, taken_over: bool },
    /// Another sidecar holds it until its expiry.
    Held(Lease),
}

/// How a manifest may be written.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Only if there is none yet.
    Absent,
    /// Only if it is still the version read (its ETag).
    Version(Option<String>),
}

pub struct SharedTier {
    s3: AmazonS3,
    layout: BucketLayout,
    node: String,
    config: SharedStoreConfig,
    down_until_ms: AtomicU64,
    pub stats: TierStats,
}

impl SharedTier {
    /// Builds the client and checks, with one write, read and delete of a probe object, that
    /// the bucket exists and the credentials may write to it: a wrong setting stops the sidecar
    /// at start-up with the key to fix, not at the first image.
    pub async fn connect(config: &SharedStoreConfig) -> Result<SharedTier, ConnectError> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout.min(Duration::from_secs(2)))
                    .with_allow_http(config.endpoint.starts_with("http://")),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_millis(500),
                    base: 2.0,
                },
                max_retries: 1,
                retry_timeout: timeout * 2,
            });
        if !config.endpoint.is_empty() {
            b = b.with_endpoint(&config.endpoint);
        }
        if config.anonymous {
            b = b.with_skip_signature(true);
        } else if let Some(path) = &config.credentials_file {
            let (id, secret, token) = read_credentials(path, &config.credentials_profile)?;
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(token) = token {
                b = b.with_token(token);
            }
        }
        let s3 = b
            .build()
            .map_err(|e| connect_error("shared_store", e.to_string()))?;
        let node = if config.node_id.is_empty() {
            host_name()
        } else {
            config.node_id.clone()
        };
        let tier = SharedTier {
            s3,
            layout: BucketLayout::new(&config.prefix),
            node,
            config: config.clone(),
            down_until_ms: AtomicU64::new(0),
            stats: TierStats::default(),
        };
        tier.probe().await?;
        Ok(tier)
    }

    /// The start-up check. A wrong setting (no such bucket, credentials refused) stops the
    /// sidecar, naming the key; the tier merely not answering yet (down, 5xx, a timeout) does
    /// not: the sidecar starts, works locally, and tries the tier again later.
    async fn probe(&self) -> Result<(), ConnectError> {
        let path = Path::from(self.layout.probe(&self.node));
        let outcome = async {
            // A listing first: on a missing bucket it says so (a write would only be "denied").
            {
                use futures_util::TryStreamExt;
                let listed: Result<Vec<_>, _> = self.s3.list(Some(&path)).try_collect().await;
                listed?;
            }
            self.s3
                .put(&path, PutPayload::from_static(b"rendition"))
                .await?;
            self.s3.get(&path).await?;
            self.s3.delete(&path).await
        }
        .await;
        let Err(e) = outcome else {
            return Ok(());
        };
        let text = e.to_string().replace(['\n', '\r'], " ");
        let lower = text.to_ascii_lowercase();
        if lower.contains("nosuchbucket") || lower.contains("bucket does not exist") {
            return Err(connect_error(
                "shared_store.bucket",
                format!("no bucket {:?} at the endpoint: {text}", self.config.bucket),
            ));
        }
        if [
            "accessdenied",
            "access denied",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "403 forbidden",
        ]
        .iter()
        .any(|w| lower.contains(w))
        {
            return Err(connect_error(
                "shared_store.credentials",
                format!("the bucket refused these credentials (AWS_ACCESS_KEY_ID / shared_store.credentials_file / shared_store.anonymous): {text}"),
            ));
        }
        tracing::warn!(
            endpoint = %self.config.endpoint,
            "shared tier not answering at start-up, working locally until it does: {text}"
        );
        self.failed(e);
        Ok(())
    }

    /// This sidecar's name in the bucket.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn config(&self) -> &SharedStoreConfig {
        &self.config
    }

    /// Whether the tier is worth asking (it did not fail within `retry_after_ms`).
    pub fn available(&self) -> bool {
        now_ms() >= self.down_until_ms.load(Ordering::Relaxed)
    }

    fn gate(&self) -> Result<(), FleetError> {
        if self.available() {
            add(&self.stats.shared_requests, 1);
            Ok(())
        } else {
            add(&self.stats.shared_skipped, 1);
            Err(FleetError::Unavailable(
                "failed recently; local work only for now".into(),
            ))
        }
    }

    /// Counts a failed request. One that could not reach the tier (refused, reset, timed out)
    /// leaves it alone for `retry_after_ms`; one the tier answered with an error (a 5xx on
    /// one object) fails that operation only.
    fn failed(&self, e: object_store::Error) -> FleetError {
        add(&self.stats.shared_errors, 1);
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        let unreachable = [
            "error sending request",
            "timed out",
            "timeout",
            "connection",
            "dns",
        ]
        .iter()
        .any(|w| lower.contains(w));
        if unreachable {
            self.down_until_ms
                .store(now_ms() + self.config.retry_after_ms, Ordering::Relaxed);
        }
        tracing::warn!("shared tier: {text}");
        FleetError::Unavailable(text)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        name: String,
    ) -> Result<Option<(T, Option<String>)>, FleetError> {
        self.gate()?;
        let path = Path::from(name.as_str());
        let got = match self.s3.get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed(e)),
        };
        let e_tag = got.meta.e_tag.clone();
        let bytes = got.bytes().await.map_err(|e| self.failed(e))?;
        add(&self.stats.shared_bytes_in, bytes.len() as u64);
        let doc = serde_json::from_slice(&bytes)
            .map_err(|e| FleetError::Malformed(name, e.to_string()))?;
        Ok(Some((doc, e_tag)))
    }

    /// Writes a JSON document; `Ok(None)` when the condition did not hold (someone else won).
    async fn put_json<T: serde::Serialize>(
        &self,
        name: &str,
        doc: &T,
        mode: PutMode,
    ) -> Result<Option<Option<String>>, FleetError> {
        self.gate()?;
        let body = serde_json::to_vec(doc)
            .map_err(|e| FleetError::Malformed(name.into(), e.to_string()))?;
        add(&self.stats.shared_bytes_out, body.len() as u64);
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self.s3.put_opts(&Path::from(name), body.into(), opts).await {
            Ok(r) => Ok(Some(r.e_tag)),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// The manifest of a source, with its version.
    pub async fn manifest(
        &self,
        id: &KeyId,
    ) -> Result<Option<(Manifest, Option<String>)>, FleetError> {
        self.get_json(self.layout.manifest(id)).await
    }

    /// Writes a manifest if `expect` holds; `Ok(false)` when another writer got there first.
    pub async fn write_manifest(
        &self,
        id: &KeyId,
        manifest: &Manifest,
        expect: Expect,
    ) -> Result<bool, FleetError> {
        let mode = match expect {
            Expect::Absent => PutMode::Create,
            Expect::Version(e_tag) => PutMode::Update(UpdateVersion {
                e_tag,
                version: None,
            }),
        };
        let written = self
            .put_json(&self.layout.manifest(id), manifest, mode)
            .await?
            .is_some();
        if written {
            add(&self.stats.shared_manifests_written, 1);
        }
        Ok(written)
    }

    pub async fn delete_manifest(&self, id: &KeyId) -> Result<(), FleetError> {
        self.gate()?;
        match self.s3.delete(&Path::from(self.layout.manifest(id))).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// A variant's bytes, checked against their name.
    pub async fn object(&self, sha256: &str) -> Result<Vec<u8>, FleetError> {
        self.gate()?;
        let got = self
            .s3
            .get(&Path::from(self.layout.object(sha256)))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => FleetError::Missing(sha256.to_owned()),
                e => self.failed(e),
            })?;
        let bytes = got.bytes().await.map_err(|e| self.failed(e))?;
        add(&self.stats.shared_bytes_in, bytes.len() as u64);
        if object_name(&bytes) != sha256 {
            add(&self.stats.shared_corrupt, 1);
            return Err(FleetError::Corrupt(sha256.to_owned()));
        }
        Ok(bytes.to_vec())
    }

    /// Uploads a variant under its checksum, whatever is there: the name is the checksum, so
    /// that is the same bytes, or the repair of a corrupt copy, and it restarts the object's
    /// age for the bucket's lifecycle rule.
    pub async fn put_object(&self, bytes: &[u8]) -> Result<String, FleetError> {
        let name = object_name(bytes);
        self.gate()?;
        let path = Path::from(self.layout.object(&name));
        match self.s3.put(&path, bytes.to_vec().into()).await {
            Ok(_) => {
                add(&self.stats.shared_bytes_out, bytes.len() as u64);
                add(&self.stats.shared_objects_written, 1);
                Ok(name)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Takes the lease on a source for `shared_store.lease_secs`: created if none exists,
    /// taken over if the one there expired (only if it is still the one read), else reported
    /// as held.
    pub async fn take_lease(&self, id: &KeyId, key: &str) -> Result<LeaseState, FleetError> {
        let name = self.layout.lease(id);
        let mine = self.lease_doc(key);
        if let Some(e_tag) = self.put_json(&name, &mine, PutMode::Create).await? {
            add(&self.stats.shared_leases_taken, 1);
            return Ok(LeaseState::Taken {
                token: LeaseToken { id: *id, e_tag },
                taken_over: false,
            });
        }
        let Some((held, e_tag)) = self.get_json::<Lease>(name.clone()).await? else {
            // Released between the two requests: try once more.
            return match self.put_json(&name, &mine, PutMode::Create).await? {
                Some(e_tag) => {
                    add(&self.stats.shared_leases_taken, 1);
                    Ok(LeaseState::Taken {
                        token: LeaseToken { id: *id, e_tag },
                        taken_over: false,
                    })
                }
                None => Ok(LeaseState::Held(mine)),
            };
        };
        if !held.expired(now_ms()) {
            add(&self.stats.shared_leases_contended, 1);
            return Ok(LeaseState::Held(held));
        }
        let mode = PutMode::Update(UpdateVersion {
            e_tag,
            version: None,
        });
        match self.put_json(&name, &mine, mode).await? {
            Some(e_tag) => {
                add(&self.stats.shared_leases_taken_over, 1);
                tracing::info!(key, previous = %held.holder, "took over an expired lease");
                Ok(LeaseState::Taken {
                    token: LeaseToken { id: *id, e_tag },
                    taken_over: true,
                })
            }
            None => {
                add(&self.stats.shared_leases_contended, 1);
                Ok(LeaseState::Held(held))
            }
        }
    }

    fn lease_doc(&self, key: &str) -> Lease {
        Lease {
            layout: LAYOUT,
            key: key.to_owned(),
            holder: self.node.clone(),
            expires_ms: now_ms() + self.config.lease_secs * 1000,
        }
    }

    /// The lease on a source, if any.
    pub async fn lease(&self, id: &KeyId) -> Result<Option<Lease>, FleetError> {
        Ok(self
            .get_json::<Lease>(self.layout.lease(id))
            .await?
            .map(|(l, _)| l))
    }

    /// Extends a lease this sidecar holds; `Ok(None)` if it was lost meanwhile.
    pub async fn renew_lease(
        &self,
        token: &LeaseToken,
        key: &str,
    ) -> Result<Option<LeaseToken>, FleetError> {
        let mode = PutMode::Update(UpdateVersion {
            e_tag: token.e_tag.clone(),
            version: None,
        });
        let renewed = self
            .put_json(&self.layout.lease(&token.id), &self.lease_doc(key), mode)
            .await?;
        Ok(renewed.map(|e_tag| LeaseToken {
            id: token.id,
            e_tag,
        }))
    }

    /// Gives a lease back (deleted if it is still the one this sidecar wrote).
    pub async fn release_lease(&self, token: &LeaseToken) {
        let name = self.layout.lease(&token.id);
        if let Ok(Some((lease, e_tag))) = self.get_json::<Lease>(name.clone()).await {
            if lease.holder == self.node && e_tag == token.e_tag {
                let _ = self.s3.delete(&Path::from(name)).await;
            }
        }
    }

    /// Adds a purge to the log every sidecar follows.
    pub async fn log_purge(&self, scope: PurgeScope) -> Result<(), FleetError> {
        let at_ms = now_ms();
        let entry = PurgeEntry {
            layout: LAYOUT,
            scope,
            at_ms,
            writer: self.node.clone(),
        };
        let nonce = u64::from_le_bytes(
            Sha256::digest(format!(
                "{}{at_ms}{:?}",
                self.node,
                std::time::Instant::now()
            ))[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let name = self.layout.purge(at_ms, &self.node, nonce);
        self.put_json(&name, &entry, PutMode::Create).await?;
        add(&self.stats.shared_purges_logged, 1);
        Ok(())
    }

    /// Purge entries named after `after` (a name; `None`: all), in order, leaving out (and
    /// not downloading) the names in `seen`: the poll lists a window again every time, and
    /// only what is new in it costs a GET.
    pub async fn purges_after(
        &self,
        after: Option<&str>,
        seen: &std::collections::HashSet<String>,
    ) -> Result<Vec<(String, PurgeEntry)>, FleetError> {
        use futures_util::TryStreamExt;
        self.gate()?;
        let prefix = Path::from(self.layout.purges().trim_end_matches('/'));
        let listed: Vec<object_store::ObjectMeta> = match after {
            Some(offset) => self.s3.list_with_offset(Some(&prefix), &Path::from(offset)),
            None => self.s3.list(Some(&prefix)),
        }
        .try_collect()
        .await
        .map_err(|e| self.failed(e))?;
        let mut names: Vec<String> = listed
            .into_iter()
            .map(|m| m.location.to_string())
            .filter(|name| !seen.contains(name))
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            // One entry that does not read is skipped (and tried again on the next listings
            // while it is within the relist window); it never holds up the others.
            match self.get_json::<PurgeEntry>(name.clone()).await {
                Ok(Some((entry, _))) => out.push((name, entry)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("purge log: {name}: {e}");
                    if !self.available() {
                        return Err(e);
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn count_applied_purge(&self) {
        add(&self.stats.shared_purges_applied, 1);
    }
}

/// Access key, secret and session token of `profile` in an AWS shared-credentials file.
fn read_credentials(
    path: &std::path::Path,
    profile: &str,
) -> Result<(String, String, Option<String>), ConnectError> {
    let key = "shared_store.credentials_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| connect_error(key, format!("{}: {e}", path.display())))?;
    let mut section = String::new();
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if section != profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) => Ok((id, secret, token)),
        _ => Err(connect_error(
            key,
            format!(
                "{}: no aws_access_key_id and aws_secret_access_key in [{profile}]",
                path.display()
            ),
        )),
    }
}

/// The machine's host name (a pod's name in Kubernetes), else "sidecar".
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sidecar".into())
}
