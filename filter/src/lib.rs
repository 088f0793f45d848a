//! Rendition's proxy-wasm module: a thin shell that feeds Envoy's requests to
//! `rendition-shared` and acts on its decisions. Image bytes never pass through the VM.
//!
//! One module, two roles, chosen by the plugin configuration (see [`config`]):
//! * **HTTP filter** (per worker): [`http::ImageRequest`] classifies each request, computes the
//!   capability mask, reads the index from shared data and routes hits to the sidecar; the
//!   root context sends the notifies the requests queue ([`outbox`]).
//! * **Index sync** (one per process, `envoy.bootstrap.wasm` with `singleton: true`):
//!   [`sync::IndexSync`] follows the sidecar's change feed into shared data.
//!
//! A panic would trap the VM, so clippy denies `unwrap`/`expect`/`panic` here, and the panic
//! hook below reports any panic that still happens to Envoy's log before the trap.

pub mod bucket_cache;
pub mod clock;
pub mod config;
pub mod header_map;
pub mod http;
pub mod key_cache;
pub mod metrics;
pub mod outbox;
pub mod sync;

use clock::now_ms;
use config::PluginConfig;
use http::{ImageRequest, WorkerState};
use metrics::FilterMetrics;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use rendition_shared::wire::NOTIFY_PATH;
use std::rc::Rc;
use std::time::Duration;
use sync::IndexSync;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    install();
}}

/// Installs the panic hook and the root context factory (what `main!` runs in the VM; native
/// tests call it against their mock host).
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let _ =
            proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("rendition: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(PluginRoot::default()) });
}

/// The root context: unconfigured until `on_configure` tells it its role.
#[derive(Default)]
pub struct PluginRoot {
    role: Option<Role>,
}

enum Role {
    Filter(Rc<WorkerState>),
    IndexSync(Box<IndexSync>),
}

fn log(level: LogLevel, message: &str) {
    let _ = proxy_wasm::hostcalls::log(level, message);
}

impl PluginRoot {
    /// Sends what the worker's requests queued, within the in-flight bound.
    fn send_notifies(&self, worker: &WorkerState) {
        let now = now_ms();
        let config = &worker.config;
        loop {
            let Some(notice) = worker
                .outbox
                .borrow_mut()
                .next(config.notify_in_flight, now)
            else {
                return;
            };
            let body = notice.body.to_json();
            let headers = vec![
                (":method", "POST"),
                (":path", NOTIFY_PATH),
                (":authority", config.sidecar_authority.as_str()),
                (":scheme", "http"),
                ("content-type", "application/json"),
            ];
            let timeout = Duration::from_millis(config.notify_timeout_ms);
            match self.dispatch_http_call(
                &config.sidecar_cluster,
                headers,
                Some(&body),
                vec![],
                timeout,
            ) {
                Ok(_) => {
                    worker.outbox.borrow_mut().in_flight += 1;
                    worker.metrics.notifies_sent.inc();
                }
                Err(status) => {
                    worker.metrics.notifies_failed.inc();
                    log(
                        LogLevel::Debug,
                        &format!("rendition: notify not sent: {status:?}"),
                    );
                }
            }
        }
    }
}

impl Context for PluginRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        match &mut self.role {
            Some(Role::IndexSync(sync)) => sync.on_http_call_response(token_id, body_size),
            Some(Role::Filter(worker)) => {
                // Room for the next waiting notice, and maybe a counter to flush: tick again.
                worker.wake();
                let mut outbox = worker.outbox.borrow_mut();
                outbox.in_flight = outbox.in_flight.saturating_sub(1);
                // 202 queued/merged/exists; 429 queue full, 403 unconfigured host, none = timeout.
                let status = proxy_wasm::hostcalls::get_map_value(
                    proxy_wasm::types::MapType::HttpCallResponseHeaders,
                    ":status",
                )
                .ok()
                .flatten();
                if status.as_deref() != Some("202") {
                    worker.metrics.notifies_failed.inc();
                    log(
                        LogLevel::Debug,
                        &format!(
                            "rendition: notify answered {}",
                            status.as_deref().unwrap_or("nothing")
                        ),
                    );
                }
            }
            None => {}
        }
    }
}

impl RootContext for PluginRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match PluginConfig::parse(&bytes) {
            Ok(PluginConfig::Filter(config)) => {
                // No tick yet: the first request starts it (WorkerState::wake).
                self.role = Some(Role::Filter(Rc::new(WorkerState::new(
                    config,
                    FilterMetrics::define(),
                ))));
                true
            }
            Ok(PluginConfig::IndexSync(config)) => {
                let sync = IndexSync::new(config);
                self.set_tick_period(sync.tick_period());
                self.role = Some(Role::IndexSync(Box::new(sync)));
                true
            }
            Err(e) => {
                // Refuse to start rather than misbehave: Envoy then rejects the config.
                log(LogLevel::Error, &format!("rendition: {e}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        match &mut self.role {
            Some(Role::IndexSync(sync)) => sync.on_tick(),
            Some(Role::Filter(worker)) => {
                let worker = Rc::clone(worker);
                self.send_notifies(&worker);
                worker.metrics.flush();
                // Nothing left to send: stop ticking until a request or a notify answer needs
                // it again. A timer firing every 25 ms on every worker otherwise costs idle
                // Envoys CPU for nothing (docs/benchmarks.md, "Idle").
                if worker.outbox.borrow().waiting() == 0 {
                    worker.sleep();
                    self.set_tick_period(Duration::ZERO);
                }
            }
            None => {}
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        match &self.role {
            Some(Role::Filter(worker)) => Some(Box::new(ImageRequest::new(Rc::clone(worker)))),
            _ => None,
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
