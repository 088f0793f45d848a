//! The host's clock, in the unit the filter keeps time in. Its own module so that the request
//! path, the sync and the root context all read it without importing one another.

use std::time::UNIX_EPOCH;

/// Host clock in ms since the Unix epoch (0 if the host has none).
pub fn now_ms() -> u64 {
    proxy_wasm::hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}
