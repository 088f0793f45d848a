//! The Rendition sidecar: fetches each original once, decodes it once, generates the variant
//! matrix, stores it in sled and serves it. The binary (`rendition`) wraps this library.

pub mod config;
pub mod encode;
pub mod hot_variants;
pub mod notify_req;
pub mod origin;
pub mod pipeline;
pub mod quality;
pub mod report;
pub mod server;
pub mod stats;
pub mod store;
pub mod worker;
