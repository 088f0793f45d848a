//! What crosses between the filter and the sidecar over HTTP, defined once for both: the
//! request header of the hit route ([`VARIANT_HEADER`], [`VariantRef`]), the body of
//! `POST /notify` ([`Notify`]) and the query of `GET /index` ([`FeedRequest`]). The index
//! records and feed pages, which cross too, are in [`crate::record`].
//! `shared/tests/wire_golden.rs` pins the bytes, and the filter's and the sidecar's own tests
//! send and accept the same golden body (`shared/tests/golden/`).

use crate::key::{KeyError, KeyId, SourceKey};
use crate::mask::{CapabilityMask, MaskError};
use serde::{Deserialize, Serialize};

/// Request header of the hit route, set by the filter: `{key id}/{slot}` ([`VariantRef`]).
/// Envoy's route table sends a request carrying it to the sidecar; the sidecar also sends it
/// back on the response, which is how the filter tells a sidecar answer from the origin's
/// (after a failover) and removes it before the client sees it. Client-sent copies never get
/// this far: the filter strips the whole `x-rendition-` namespace from every request.
pub const VARIANT_HEADER: &str = "x-rendition-variant";

/// The variant a hit is routed to: a source and the slot chosen for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VariantRef {
    pub key: KeyId,
    pub slot: CapabilityMask,
}

impl VariantRef {
    /// `{32 lower-case hex digits}/{slot in lower-case hex, no prefix}`, e.g. `…e3/a`.
    pub fn header_value(&self) -> String {
        let mut value = String::with_capacity(2 * KeyId::LEN + 1 + 8);
        self.key.push_hex(&mut value);
        value.push('/');
        crate::hex::push_u32(&mut value, self.slot.bits(), 1);
        value
    }

    /// The inverse of [`Self::header_value`]; `None` for anything else.
    pub fn parse(value: &str) -> Option<VariantRef> {
        let (key, slot) = value.split_once('/')?;
        Some(VariantRef {
            key: KeyId::from_hex(key)?,
            slot: parse_mask_hex(slot)?,
        })
    }
}

/// A mask written in hex, with or without `0x` (the debug header and the operator route
/// `/v/{key}/{mask}` show masks as `0x0a`; the hit route writes `a`).
pub fn parse_mask_hex(text: &str) -> Option<CapabilityMask> {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    if hex.is_empty() || hex.len() > 8 {
        return None;
    }
    let bits = u32::from_str_radix(hex, 16).ok()?;
    CapabilityMask::from_bits(bits).ok()
}

/// Path of the notify endpoint: `POST`, body a [`Notify`], answered 202 at once.
pub const NOTIFY_PATH: &str = "/notify";

/// Path of the change feed: `GET` with a [`FeedRequest`] query, answered with a
/// [`crate::record::FeedPage`].
pub const INDEX_PATH: &str = "/index";

/// The longest the sidecar holds a feed request that has nothing new (a larger `wait_ms` is
/// cut to this). The filter's configuration refuses a longer `poll_wait_ms`, and its request
/// timeout is the wait plus [`FEED_ANSWER_MARGIN_MS`].
pub const MAX_FEED_WAIT_MS: u64 = 30_000;

/// Room a feed request's timeout leaves beyond its long-poll wait for the answer itself.
pub const FEED_ANSWER_MARGIN_MS: u64 = 2_000;

/// The most entries one feed page carries (a larger `limit` is cut to this).
pub const MAX_FEED_LIMIT: u32 = 10_000;

/// Entries per page when the request names no `limit`.
pub const DEFAULT_FEED_LIMIT: u32 = 1_000;

/// The query of `GET /index`: the changes after sequence `since`, at most `limit` of them,
/// waiting up to `wait_ms` for one when there is none yet. The filter writes it with
/// [`FeedRequest::path`]; the sidecar reads it with serde (missing fields take their defaults)
/// and bounds it with [`FeedRequest::page_limit`] and [`FeedRequest::granted_wait_ms`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct FeedRequest {
    /// The last sequence the follower applied; 0 for everything.
    #[serde(default)]
    pub since: u64,
    /// Long-poll: how long to wait for a change when there is none.
    #[serde(default)]
    pub wait_ms: u64,
    /// Entries per page. Read as a 64-bit number so that any count up to `u64::MAX` is cut to
    /// [`MAX_FEED_LIMIT`], not refused (what is not a number at all is a 400).
    #[serde(default)]
    pub limit: Option<u64>,
}

impl FeedRequest {
    /// Path and query, e.g. `/index?since=7&wait_ms=5000&limit=1000`.
    pub fn path(&self) -> String {
        let limit = self.page_limit();
        format!(
            "{INDEX_PATH}?since={}&wait_ms={}&limit={limit}",
            self.since, self.wait_ms
        )
    }

    /// The page size the sidecar uses: the request's, in 1..=[`MAX_FEED_LIMIT`].
    pub fn page_limit(&self) -> u32 {
        let limit = self
            .limit
            .unwrap_or(u64::from(DEFAULT_FEED_LIMIT))
            .clamp(1, u64::from(MAX_FEED_LIMIT));
        u32::try_from(limit).unwrap_or(MAX_FEED_LIMIT)
    }

    /// The long-poll wait the sidecar grants, at most [`MAX_FEED_WAIT_MS`].
    pub fn granted_wait_ms(&self) -> u64 {
        self.wait_ms.min(MAX_FEED_WAIT_MS)
    }

    /// How long the follower waits for the answer: the granted wait plus the margin.
    pub fn timeout_ms(&self) -> u64 {
        self.granted_wait_ms() + FEED_ANSWER_MARGIN_MS
    }
}

/// The largest `POST /notify` body the sidecar reads: a source key is at most
/// [`crate::key::MAX_KEY_LEN`] bytes, which JSON escaping can grow up to six-fold, plus two
/// bounded validators. Anything larger is not a notify the filter sends.
pub const MAX_NOTIFY_BYTES: usize = 32 * 1024;

/// The longest `etag` or `last_modified` a notify may carry. An HTTP-date is 29 bytes and the
/// entity tags origins send are a few dozen; RFC 9110 sets no bound, so this one is generous.
/// The filter leaves out a longer validator rather than sending it (the sidecar learns the
/// real one when it fetches); the sidecar answers 400 to one that is longer. Without a bound,
/// anyone who reaches `/notify` could park megabytes per queued job.
pub const MAX_VALIDATOR_LEN: usize = 512;

/// Body of `POST /notify`: a miss the filter saw, or a warmup. JSON, unknown fields refused
/// (a typo must not pass for an absent optional field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// The request's Host (`:authority`), as sent.
    pub host: String,
    /// Path and query, as requested.
    pub path: String,
    /// The client's capability mask, or [`CapabilityMask::WARMUP_SENTINEL`] for the whole
    /// matrix.
    pub mask: u32,
    /// The origin's validators on the response the filter saw, when it had them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// What a notify asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    /// One slot (the mask with its transfer-encoding bits cleared).
    Slot(CapabilityMask),
    /// The whole matrix (the warmup sentinel).
    Warmup,
}

/// Why bytes are not a notify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyError {
    /// Not JSON `{host, path, mask[, etag, last_modified]}`.
    Body,
    /// The host and path make no source key.
    Key(KeyError),
    /// The body is longer than [`MAX_NOTIFY_BYTES`].
    TooLarge,
    /// `etag` or `last_modified` (named) is longer than [`MAX_VALIDATOR_LEN`].
    ValidatorTooLong(&'static str),
}

impl Notify {
    /// Parses a body: JSON of exactly this shape, nothing after it but whitespace, within
    /// [`MAX_NOTIFY_BYTES`], validators within [`MAX_VALIDATOR_LEN`].
    pub fn parse(body: &[u8]) -> Result<Notify, NotifyError> {
        if body.len() > MAX_NOTIFY_BYTES {
            return Err(NotifyError::TooLarge);
        }
        let n: Notify = serde_json::from_slice(body).map_err(|_| NotifyError::Body)?;
        if n.etag.as_ref().is_some_and(|v| v.len() > MAX_VALIDATOR_LEN) {
            return Err(NotifyError::ValidatorTooLong("etag"));
        }
        if n.last_modified
            .as_ref()
            .is_some_and(|v| v.len() > MAX_VALIDATOR_LEN)
        {
            return Err(NotifyError::ValidatorTooLong("last_modified"));
        }
        Ok(n)
    }

    /// A response's validator as a notify may carry it: `None` when it is longer than
    /// [`MAX_VALIDATOR_LEN`] (what the filter sends).
    pub fn bounded_validator(value: Option<String>) -> Option<String> {
        value.filter(|v| v.len() <= MAX_VALIDATOR_LEN)
    }

    /// The JSON the filter sends.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The source the notify names.
    pub fn key(&self) -> Result<SourceKey, KeyError> {
        SourceKey::new(&self.host, &self.path)
    }

    /// The warmup sentinel, or a valid mask reduced to its image slot.
    pub fn requested(&self) -> Result<Requested, MaskError> {
        if self.mask == CapabilityMask::WARMUP_SENTINEL {
            Ok(Requested::Warmup)
        } else {
            CapabilityMask::from_bits(self.mask).map(|m| Requested::Slot(m.slot()))
        }
    }
}
