//! The shared tier's layout in an S3-compatible bucket: what every sidecar of a fleet reads
//! and writes, so that each variant is made once per fleet. Pure: names and JSON, no I/O (the
//! sidecar's `fleet` module talks to the bucket). Pinned by `shared/tests/bucket_golden.rs`.
//!
//! Everything lives under `{prefix}/v1/` (a new layout gets a new version directory, so two
//! versions of Rendition can share a bucket during an upgrade without reading each other):
//!
//! | object | written | what |
//! |---|---|---|
//! | `objects/{sha256 hex}` | once, by whoever encoded it | one variant's bytes, content-addressed: its name is its checksum, checked before anything is stored or served |
//! | `manifests/{key id hex}.json` | after all its objects exist, replaced whole | one source: its original's validators and freshness, every stored slot and its object, the lost slots and why, or why it was refused ([`Manifest`]) |
//! | `leases/{key id hex}.json` | created only if absent (`If-None-Match: *`), taken over only if unchanged (`If-Match`) | who is making a source's variants, until when ([`Lease`]) |
//! | `purges/{ms:013}-{writer}-{n:016x}.json` | once per purge | a purge of a source or a prefix, and when ([`PurgeEntry`]); names sort by time |
//! | `probe/{writer}` | at start-up, then deleted | the check that the bucket exists and takes writes |
//!
//! A manifest never names an object before the object is complete (uploads are whole objects,
//! and the manifest is written after them), so a half-written upload is never visible. A
//! manifest older than a purge that covers its source is void.

use crate::http_cache;
use crate::key::KeyId;
use serde::{Deserialize, Serialize};

/// The layout version: the `v1/` directory, and `layout` in every JSON document.
pub const LAYOUT: u32 = 1;

/// Object names under a prefix (no leading or trailing `/` on the prefix; empty for the root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketLayout {
    root: String,
}

impl BucketLayout {
    pub fn new(prefix: &str) -> BucketLayout {
        let prefix = prefix.trim_matches('/');
        let root = if prefix.is_empty() {
            format!("v{LAYOUT}")
        } else {
            format!("{prefix}/v{LAYOUT}")
        };
        BucketLayout { root }
    }

    /// `{prefix}/v1/objects/{sha256}`.
    pub fn object(&self, sha256_hex: &str) -> String {
        format!("{}/objects/{sha256_hex}", self.root)
    }

    pub fn manifest(&self, key: &KeyId) -> String {
        format!("{}/manifests/{key}.json", self.root)
    }

    pub fn lease(&self, key: &KeyId) -> String {
        format!("{}/leases/{key}.json", self.root)
    }

    /// Where a sidecar checks at start-up that it may write, read and delete.
    pub fn probe(&self, node: &str) -> String {
        format!("{}/probe/{node}", self.root)
    }

    /// The directory purge entries are listed from.
    pub fn purges(&self) -> String {
        format!("{}/purges/", self.root)
    }

    /// A purge entry's name: time first (zero-padded, so names sort by time), then who wrote
    /// it and a random number (two purges in one millisecond never collide).
    pub fn purge(&self, at_ms: u64, writer: &str, nonce: u64) -> String {
        format!(
            "{}/purges/{at_ms:013}-{writer}-{nonce:016x}.json",
            self.root
        )
    }

    /// The time in a purge entry's name.
    pub fn purge_time(name: &str) -> Option<u64> {
        let file = name.rsplit('/').next()?;
        file.get(..13)?.parse().ok()
    }
}

/// What the origin said about the original a manifest's variants were made from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSource {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    /// Unix ms when the origin last confirmed it, its age then, its lifetime (seconds).
    pub validated_at_ms: u64,
    pub initial_age_ms: u64,
    pub lifetime: u64,
    pub lifetime_source: Option<String>,
    pub must_revalidate: bool,
    /// Hex SHA-256/128 of the original's bytes.
    pub hash: Option<String>,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    pub format: Option<String>,
    pub class: Option<String>,
}

impl ManifestSource {
    /// Whether the original is still fresh at `now_ms` (the rule the sidecar's own records
    /// use too).
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        let age = http_cache::current_age_ms(self.initial_age_ms, self.validated_at_ms, now_ms);
        http_cache::is_fresh(age, self.lifetime)
    }
}

/// One encode in a manifest: its object and every slot it answers for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestVariant {
    /// The slot it is stored under (the lowest six bits of a mask).
    pub primary: u8,
    /// Every slot it answers for (`SlotSet` bits).
    pub slots: u64,
    /// SHA-256 of the bytes, hex: the object's name and its checksum.
    pub sha256: String,
    pub bytes: u64,
    pub content_type: String,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub quality: u8,
    pub lossless: bool,
    pub score: Option<f32>,
    pub attempts: u32,
}

/// A slot decided not worth storing, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestLost {
    pub slot: u8,
    pub reason: String,
}

/// Everything the fleet knows about one source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub layout: u32,
    /// The canonical source key.
    pub key: String,
    /// Bumped by every writer: a manifest only replaces an older generation.
    pub generation: u64,
    pub written_ms: u64,
    /// The sidecar that wrote it (for operators).
    pub writer: String,
    pub source: ManifestSource,
    pub variants: Vec<ManifestVariant>,
    pub lost: Vec<ManifestLost>,
    /// Why the source was refused, when it was (then `variants` is empty).
    pub refused: Option<String>,
}

/// Who is making a source's variants, and until when. A lease past `expires_ms` is free to
/// take over (with `If-Match` on the object as read, so only one taker wins).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub layout: u32,
    pub key: String,
    pub holder: String,
    pub expires_ms: u64,
}

impl Lease {
    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

/// What a purge covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PurgeScope {
    /// One canonical source key.
    Key(String),
    /// Every canonical key that starts with it.
    Prefix(String),
}

/// One entry of the purge log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeEntry {
    pub layout: u32,
    pub scope: PurgeScope,
    pub at_ms: u64,
    pub writer: String,
}

impl PurgeEntry {
    /// Whether this purge covers the canonical key `key`.
    pub fn covers(&self, key: &str) -> bool {
        match &self.scope {
            PurgeScope::Key(k) => k == key,
            PurgeScope::Prefix(p) => key.starts_with(p.as_str()),
        }
    }
}
