//! The Rendition sidecar: fetches each original once, decodes it once, generates the variant
//! matrix, stores it in sled and serves it. The binary (`rendition`) wraps this library.

pub mod config;
pub mod encode;
pub mod fleet;
pub mod image_types;
pub mod origin;
pub mod pipeline;
pub mod quality;
pub mod service;
pub mod store;
