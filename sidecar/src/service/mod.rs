//! The sidecar service: the HTTP API and the workers behind it.
//!
//! * [`state`]: what handlers and workers share ([`AppState`]).
//! * [`queue`]: the bounded, per-source deduplicated work queue.
//! * [`work`]: what a worker does with a source (fetch, pipeline, store, publish).
//! * [`share`]: the worker's use of the shared tier (copy, lease, upload, purge log).
//! * [`revalidate`], [`gate`], [`sweep`]: freshness and revalidation, and the record sweep.
//! * [`routes`]: the public routes (the filter, Envoy, orchestrators); [`admin`]: the
//!   operators' routes behind one guard; [`report`]: the report page; [`stats`]: counters,
//!   with [`histogram`]: latency histograms and the per-format series.
//!
//! `app(state)` builds the router, so tests drive it without a port; [`serve`] serves it on a
//! listener through [`connections`] (timeouts, the connection bound, shutdown with a deadline).

pub mod admin;
pub mod api_error;
pub mod connections;
pub mod gate;
pub mod histogram;
pub mod ledger;
pub mod queue;
pub mod report;
pub mod revalidate;
pub mod routes;
pub mod share;
pub mod state;
pub mod stats;
pub mod sweep;
pub mod work;

pub use state::AppState;

use axum::Router;
use std::sync::Arc;

/// Every route, public and admin, over `state`.
pub fn app(state: Arc<AppState>) -> Router {
    routes::router()
        .merge(admin::router(&state))
        .with_state(state)
}

/// Serves until SIGINT/SIGTERM, then stops accepting and drains (`server.drain_timeout_ms`).
pub async fn serve(state: Arc<AppState>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_until(state, listener, shutdown_signal()).await
}

/// Serves until `shutdown` completes, then drains; the connection limits come from
/// `[server]` and the process's descriptor limit.
pub async fn serve_until(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = connections::ConnectionLimits::new(&state.config.server, connections::fd_limit());
    let router = app(Arc::clone(&state));
    connections::serve(state, router, listener, limits, shutdown).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}
