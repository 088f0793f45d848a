//! Rendition's proxy-wasm filter: a thin shell that feeds Envoy's request to
//! `rendition-shared` and acts on its decisions. Image bytes never pass through the VM.
//!
//! Today the filter classifies each request, strips client-sent `x-rendition-*` headers,
//! computes the capability mask and reports it in the `x-rendition` response header. The index
//! lookup, hit routing and the notify to the sidecar come with the filter issue; until then
//! every image is served by the origin, and the header says `miss` because no variant exists.
//!
//! A panic would trap the VM, so clippy denies `unwrap`/`expect`/`panic` here, and the panic
//! hook below reports any panic that still happens to Envoy's log before the trap.

pub mod config;

use config::FilterConfig;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use rendition_shared::request::{classify, is_internal_header, Bypass};
use rendition_shared::{CapabilityMask, ClientProfile};
use std::rc::Rc;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("rendition: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FilterRoot::default()) });
}}

/// One per worker thread: holds the parsed configuration.
#[derive(Default)]
pub struct FilterRoot {
    config: Rc<FilterConfig>,
}

impl Context for FilterRoot {}

impl RootContext for FilterRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match FilterConfig::parse(&bytes) {
            Ok(config) => {
                self.config = Rc::new(config);
                true
            }
            Err(e) => {
                // Refuse to start rather than misbehave: Envoy then rejects the config.
                let _ = proxy_wasm::hostcalls::log(LogLevel::Error, &format!("rendition: {e}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ImageRequest {
            config: Rc::clone(&self.config),
            outcome: Outcome::Untouched,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// What the filter decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Not an image request we look at: no header, nothing.
    Untouched,
    Bypass(Bypass, CapabilityMask),
    Miss(CapabilityMask),
}

/// One per HTTP request.
pub struct ImageRequest {
    config: Rc<FilterConfig>,
    outcome: Outcome,
}

impl Context for ImageRequest {}

impl HttpContext for ImageRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let headers = self.get_http_request_headers();
        for (name, _) in headers.iter().filter(|(n, _)| is_internal_header(n)) {
            self.set_http_request_header(name, None);
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let method = header(":method").unwrap_or_default();
        let path = header(":path").unwrap_or_default();
        let has_auth = header("authorization").is_some();
        let profile =
            ClientProfile::from_headers(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        self.outcome = match classify(method, path, has_auth, &self.config.image_extensions) {
            Ok(()) => Outcome::Miss(profile.mask),
            Err(Bypass::NotAnImagePath) => Outcome::Untouched,
            Err(reason) => Outcome::Bypass(reason, profile.mask),
        };
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.config.debug_header {
            let value = match self.outcome {
                Outcome::Untouched => None,
                Outcome::Bypass(reason, mask) => {
                    Some(format!("bypass; mask={mask:x}; reason={}", reason.name()))
                }
                Outcome::Miss(mask) => Some(format!("miss; mask={mask:x}")),
            };
            if let Some(v) = value {
                self.set_http_response_header("x-rendition", Some(&v));
            }
        }
        Action::Continue
    }
}
