//! Rendition's decision logic, shared by the wasm filter and the sidecar.
//!
//! Everything here is a pure function of its inputs: no I/O, no clock, no randomness, no
//! proxy-wasm and no async runtime. That is what lets the same code decide in the Envoy filter
//! (wasm32, per request, where a panic traps the VM) and in the sidecar (native, per source),
//! and be tested exhaustively on the host.
//!
//! * [`mask`]: the 32-bit capability mask (docs/architecture.md has the bit layout).
//! * [`headers`]: request headers to a [`ClientProfile`] (mask + accepted formats + reasons).
//! * [`matrix`]: the 36 + 1 variant slots, their pixel sizes, shared encodes, generation order.
//! * [`select`]: best-fit selection with its fallback chain.
//! * [`key`]: source keys (host + path + normalized query) and their 128-bit ids.
//! * [`record`]: the 28-byte index record the filter reads from shared data.
//! * [`request`]: which requests the filter may touch, and the internal header namespace.
//! * [`http_cache`]: the origin's caching contract: `Cache-Control`, `Vary`, freshness, age,
//!   HTTP dates.
//! * [`response`]: which miss responses are worth a notify; `Vary` and `Accept-CH`.
//! * [`table`]: the index as a fixed bucket table in Envoy shared data.
//! * [`sync`]: following the sidecar's change feed into that table.
//! * [`hot`]: hot-URL warmup counters.
//! * [`bucket`]: the shared tier's layout in an S3-compatible bucket (manifests, objects,
//!   leases, the purge log), for a fleet of sidecars.
//! * [`curve`]: quality-to-score curves and the quality model's training label.
//! * [`labels`]: the quality model's training data (one JSON line per labelled output).
//! * [`wire`]: what crosses between filter and sidecar over HTTP: the hit-route header and
//!   the notify body.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod bucket;
pub mod curve;
pub mod headers;
pub mod hex;
pub mod hot;
pub mod http_cache;
pub mod key;
pub mod labels;
pub mod mask;
pub mod matrix;
pub mod record;
pub mod request;
pub mod response;
pub mod select;
pub mod sync;
pub mod table;
pub mod wire;

pub use headers::{AcceptedFormats, ClientProfile, DensityReason, UsedHeaders, ViewportReason};
pub use key::{canonical_host, KeyError, KeyId, SourceKey};
pub use mask::{CapabilityMask, Density, ImageFormat, MaskError, TransferEncoding, Viewport};
pub use matrix::{
    full_matrix_order, generation_order, plan_encodes, slot_size, EncodeJob, ProactiveFlags,
    SlotSet, ViewportWidths, MIN_SIDE, SVG_SLOT,
};
pub use record::{
    FeedPage, IndexEntry, IndexRecord, RecordError, ENTRY_LEN, FEED_HEADER_LEN, RECORD_LEN,
    RECORD_VERSION,
};
pub use select::{select, select_for, wants_generation, FallbackStep, Selection};
