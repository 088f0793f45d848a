//! The sidecar's HTTP API (DESIGN.md "Sidecar"). `app(worker)` builds the router, so tests
//! drive it without a port; `serve` binds it with graceful shutdown.
//!
//! | route                 | who calls it                 | what                                   |
//! |-----------------------|------------------------------|----------------------------------------|
//! | `POST /notify`        | the filter, fire-and-forget  | queue generation; 202 at once          |
//! | `GET /v/{key}/{mask}` | operators, tests             | variant bytes (HEAD too, ETag, 304)     |
//! | any other `GET` path  | Envoy, on the filter's route | the variant named by `x-rendition-variant` |
//! | `GET /index?since=N`  | the filter's singleton       | change-feed page; `wait_ms` long-polls |
//! | `GET /healthz`        | orchestrators                | liveness + store check                 |
//! | `GET /stats`          | operators (loopback/token)   | JSON counters (seed names)             |
//! | `GET /metrics`        | Prometheus (loopback/token)  | text exposition                        |
//! | `POST /purge`         | operators (loopback/token)   | purge a URL or a prefix                |
//! | `GET /report`         | operators (loopback/token)   | HTML: variant matrix + images per source |
//! | `GET /report/source/{key}` | the report page         | the original, fetched from its origin  |
//!
//! Errors carry a status and a public message; internals are logged, never returned.

use crate::worker::{Job, Requested, Submitted, Worker};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rendition_shared::{CapabilityMask, KeyId, SourceKey};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A response error: status and a message safe to show a client.
#[derive(Debug)]
pub struct ApiError(StatusCode, &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}

/// Request header of the filter's hit route, and response header naming the variant served.
pub const VARIANT_HEADER: &str = "x-rendition-variant";

/// Request headers the variants vary on (the filter sets the precise list per request).
pub const VARY: &str = "Accept, Save-Data, Sec-CH-DPR, DPR, Sec-CH-Viewport-Width, Viewport-Width, Sec-CH-UA-Mobile, User-Agent";

pub fn app(worker: Arc<Worker>) -> Router {
    // Admin routes: one guard for all of them, so no handler can forget it.
    let admin = Router::new()
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/purge", post(purge))
        .route("/report", get(report))
        .route("/report/source/{key}", get(report_source))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&worker),
            require_admin,
        ));
    Router::new()
        .route("/notify", post(notify))
        .route("/v/{key}/{mask}", get(variant))
        .route("/index", get(index))
        .route("/healthz", get(healthz))
        .merge(admin)
        .fallback(variant_by_header)
        .with_state(worker)
}

/// Body of `POST /notify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    pub host: String,
    /// Path and query, as requested.
    pub path: String,
    /// The client's capability mask, or 4294967294 (0xFFFFFFFE) for warmup.
    pub mask: u32,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
}

async fn notify(
    State(w): State<Arc<Worker>>,
    body: Result<Json<Notify>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let refuse = |status, msg| {
        w.stats.add(&w.stats.notifications_refused, 1);
        ApiError(status, msg).into_response()
    };
    let Ok(Json(n)) = body else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "body must be JSON {host, path, mask}",
        );
    };
    let Ok((key, requested)) = crate::notify_req::validate(&n) else {
        return refuse(StatusCode::BAD_REQUEST, "invalid host or path");
    };
    if !w.origins.is_configured(key.host()) {
        return refuse(StatusCode::FORBIDDEN, "host has no configured origin");
    }
    let requested = match requested {
        Ok(Requested::Warmup) if !w.config.variants.enable_warmup => {
            w.stats.add(&w.stats.notifications_skipped_dedup, 1);
            return (StatusCode::ACCEPTED, "warmup disabled\n").into_response();
        }
        Ok(r) => r,
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "invalid mask"),
    };
    // Seed 004's fast path: the requested variant exists (or is known not worth making).
    if let (Requested::Slot(m), Ok(Some((r, meta)))) = (requested, w.store.record(&key.id())) {
        let same_source = n.etag.is_none() || meta.etag == n.etag;
        if same_source && (r.refused || r.stored.contains(m) || r.lost.contains(m)) {
            w.stats.add(&w.stats.notifications_skipped_dedup, 1);
            // The filter asked for what exists, so its index lacks this record: send it again.
            let store = Arc::clone(&w.store);
            let id = key.id();
            match tokio::task::spawn_blocking(move || store.republish(&id)).await {
                Ok(Ok(Some(seq))) => {
                    w.feed.send_replace(seq);
                }
                Ok(Err(e)) => tracing::warn!(%id, "republish failed: {e}"),
                _ => {}
            }
            return (StatusCode::ACCEPTED, "exists\n").into_response();
        }
    }
    w.stats.add(&w.stats.notifications_received, 1);
    let job = Job {
        key,
        requested,
        etag: n.etag,
        last_modified: n.last_modified,
    };
    match w.submit(job) {
        Submitted::Queued => (StatusCode::ACCEPTED, "queued\n").into_response(),
        Submitted::Merged => {
            w.stats.add(&w.stats.notifications_skipped_dedup, 1);
            (StatusCode::ACCEPTED, "merged\n").into_response()
        }
        Submitted::Dropped => {
            w.stats.add(&w.stats.queue_dropped, 1);
            ApiError(StatusCode::TOO_MANY_REQUESTS, "queue full").into_response()
        }
    }
}

fn parse_mask(text: &str) -> Option<CapabilityMask> {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    let bits = u32::from_str_radix(hex, 16).ok()?;
    CapabilityMask::from_bits(bits).ok()
}

async fn variant(
    State(w): State<Arc<Worker>>,
    Path((key, mask)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (Some(id), Some(mask)) = (KeyId::from_hex(&key), parse_mask(&mask)) else {
        return ApiError(StatusCode::NOT_FOUND, "no such variant").into_response();
    };
    serve_variant(w, id, mask, &headers).await
}

/// The filter's hit route: the original request (Host and path untouched, so Envoy can retry
/// it at the origin) carrying `x-rendition-variant: {key}/{mask}`. The key must be the id of
/// this very Host + path: a forged header can never fetch another URL's (or host's) variant.
/// Anything else is a 404, which Envoy's retry policy turns into the origin's answer.
async fn variant_by_header(
    State(w): State<Arc<Worker>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let not_found = || ApiError(StatusCode::NOT_FOUND, "no such variant").into_response();
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        return not_found();
    }
    let Some((key, mask)) = headers
        .get(VARIANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once('/'))
    else {
        return not_found();
    };
    let (Some(id), Some(mask)) = (KeyId::from_hex(key), parse_mask(mask)) else {
        return not_found();
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    match SourceKey::new(host, path) {
        Ok(k) if k.id() == id => serve_variant(w, id, mask, &headers).await,
        _ => {
            w.stats.add(&w.stats.variants_not_found, 1);
            not_found()
        }
    }
}

async fn serve_variant(
    w: Arc<Worker>,
    id: KeyId,
    mask: CapabilityMask,
    headers: &HeaderMap,
) -> Response {
    let found = match w.store.hot_variant(&id, mask) {
        Some(v) => Ok(Ok(Some(v))),
        None => {
            let store = Arc::clone(&w.store);
            tokio::task::spawn_blocking(move || store.variant(&id, mask)).await
        }
    };
    let v = match found {
        Ok(Ok(Some(v))) => v,
        Ok(Ok(None)) => {
            w.stats.add(&w.stats.variants_not_found, 1);
            return ApiError(StatusCode::NOT_FOUND, "no such variant").into_response();
        }
        Ok(Err(e)) => {
            w.stats.add(&w.stats.store_errors, 1);
            w.stats.add(&w.stats.variants_not_found, 1);
            tracing::error!(%id, mask = %format!("{mask:x}"), "variant not served: {e}");
            return ApiError(StatusCode::NOT_FOUND, "no such variant").into_response();
        }
        Err(e) => {
            tracing::error!("variant lookup task failed: {e}");
            return ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let etag = format!("\"{:08x}\"", v.crc);
    let cache_control = derive_cache_control(v.meta.cache_control.as_deref());
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::VARY, VARY)
        .header(
            VARIANT_HEADER,
            format!(
                "{mask:x}; {}x{}; q={}",
                v.meta.width, v.meta.height, v.meta.quality
            ),
        );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|inm| inm.split(',').any(|t| t.trim() == etag))
    {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    w.stats.add(&w.stats.variants_served, 1);
    w.stats.add(&w.stats.bytes_served, v.bytes.len() as u64);
    builder = builder
        .header(header::CONTENT_TYPE, v.meta.content_type)
        .header(header::CONTENT_LENGTH, v.bytes.len());
    builder.body(Body::from(v.bytes)).unwrap_or_default()
}

/// The origin's `Cache-Control` carries over (a variant lives as long as its source), minus
/// anything that no longer applies; without one, an hour.
fn derive_cache_control(origin: Option<&str>) -> HeaderValue {
    let kept: Vec<&str> = origin
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| {
            let d = d.to_ascii_lowercase();
            d.starts_with("max-age")
                || d.starts_with("s-maxage")
                || d == "public"
                || d == "immutable"
                || d.starts_with("stale-")
        })
        .collect();
    let value = if kept
        .iter()
        .any(|d| d.to_ascii_lowercase().starts_with("max-age"))
    {
        kept.join(", ")
    } else {
        "public, max-age=3600".to_owned()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("public, max-age=3600"))
}

#[derive(Deserialize)]
struct IndexQuery {
    #[serde(default)]
    since: u64,
    /// Long-poll: wait up to this long (capped at 30 s) for a change when there is none.
    #[serde(default)]
    wait_ms: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn index(State(w): State<Arc<Worker>>, Query(q): Query<IndexQuery>) -> Response {
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let mut rx = w.feed.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.wait_ms.min(30_000));
    loop {
        let store = Arc::clone(&w.store);
        let page = match tokio::task::spawn_blocking(move || store.feed_since(q.since, limit)).await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!("feed read failed: {e}");
                return ApiError(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
                    .into_response();
            }
            Err(_) => {
                return ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                    .into_response()
            }
        };
        // A restarted sidecar with a lower sequence answers at once, so the follower resyncs.
        let waiting = page.entries.is_empty()
            && q.since <= page.last_seq
            && tokio::time::Instant::now() < deadline;
        if !waiting
            || tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
        {
            return (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                page.encode(),
            )
                .into_response();
        }
    }
}

async fn healthz(State(w): State<Arc<Worker>>) -> Response {
    match w.store.last_seq() {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!("health check: store: {e}");
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

/// Admin routes answer loopback peers, or anyone with the configured bearer token.
fn admin_allowed(w: &Worker, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    if let Some(token) = &w.config.admin_token {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| constant_time_eq(b.as_bytes(), token.as_bytes())) {
            return true;
        }
    }
    // In-process tests have no peer address: they are the process itself.
    peer.is_none_or(|p| p.ip().is_loopback())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The guard of the admin routes: 403 unless [`admin_allowed`].
async fn require_admin(State(w): State<Arc<Worker>>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if admin_allowed(&w, peer, request.headers()) {
        next.run(request).await
    } else {
        ApiError(StatusCode::FORBIDDEN, "forbidden").into_response()
    }
}

fn gauges(w: &Worker) -> Vec<(&'static str, &'static str, u64)> {
    let s = w.store.stats().unwrap_or_default();
    vec![
        (
            "queue_depth",
            "Sources queued or being processed.",
            w.queue_depth() as u64,
        ),
        (
            "store_payload_bytes",
            "Stored variant payload bytes.",
            s.payload_bytes,
        ),
        ("store_budget_bytes", "cache_size_bytes.", s.budget_bytes),
        ("store_sources", "Sources with a record.", s.sources),
        (
            "index_last_seq",
            "Newest change-feed sequence number.",
            s.last_seq,
        ),
    ]
}

async fn stats(State(w): State<Arc<Worker>>) -> Response {
    let g: Vec<(&str, u64)> = gauges(&w).into_iter().map(|(n, _, v)| (n, v)).collect();
    Json(w.stats.to_json(&g)).into_response()
}

async fn metrics(State(w): State<Arc<Worker>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        w.stats.to_prometheus(&gauges(&w)),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ReportQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    limit: Option<usize>,
}

async fn report(State(w): State<Arc<Worker>>, Query(q): Query<ReportQuery>) -> Response {
    let store = Arc::clone(&w.store);
    let limit = q.limit.unwrap_or(crate::report::DEFAULT_LIMIT);
    match tokio::task::spawn_blocking(move || crate::report::gather(&store, q.offset, limit)).await
    {
        Ok(Ok(r)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            crate::report::render(&r),
        )
            .into_response(),
        Ok(Err(e)) => {
            w.stats.add(&w.stats.store_errors, 1);
            tracing::error!("report: {e}");
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
        Err(_) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    }
}

/// The original of a stored source, fetched from its configured origin (the sidecar keeps no
/// copy), so the report can show it beside its variants.
async fn report_source(State(w): State<Arc<Worker>>, Path(key): Path<String>) -> Response {
    let not_found = || ApiError(StatusCode::NOT_FOUND, "no such source").into_response();
    let Some(id) = KeyId::from_hex(&key) else {
        return not_found();
    };
    let Ok(Some((_, meta))) = w.store.record(&id) else {
        return not_found();
    };
    let Ok(source) = SourceKey::from_canonical(&meta.key) else {
        return not_found();
    };
    match w.origins.fetch(&source).await {
        Ok(f) => {
            let content_type = crate::pipeline::sniff::sniff(&f.bytes)
                .map_or("application/octet-stream", |s| s.content_type());
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                f.bytes,
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(%source, "report: original not fetched: {e}");
            ApiError(StatusCode::BAD_GATEWAY, "origin unavailable").into_response()
        }
    }
}

/// `{"host": "...", "path": "/..."}` purges one source; `{"prefix": "host/path"}` every source
/// whose canonical key starts with it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purge {
    host: Option<String>,
    path: Option<String>,
    prefix: Option<String>,
}

async fn purge(
    State(w): State<Arc<Worker>>,
    body: Result<Json<Purge>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(p)) = body else {
        return ApiError(
            StatusCode::BAD_REQUEST,
            "body must be JSON {host, path} or {prefix}",
        )
        .into_response();
    };
    let store = Arc::clone(&w.store);
    let result = tokio::task::spawn_blocking(move || match (p.host, p.path, p.prefix) {
        (Some(h), Some(path), None) => match SourceKey::new(&h, &path) {
            Ok(k) => store
                .purge(&k.id())
                .map(u32::from)
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("bad key: {e}")),
        },
        (None, None, Some(prefix)) if !prefix.is_empty() => store
            .purge_prefix(&prefix.to_ascii_lowercase())
            .map_err(|e| e.to_string()),
        _ => Err("bad request".to_owned()),
    })
    .await;
    match result {
        Ok(Ok(n)) => {
            if let Ok(seq) = w.store.last_seq() {
                w.feed.send_replace(seq);
            }
            Json(serde_json::json!({ "purged": n })).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!("purge refused: {e}");
            ApiError(
                StatusCode::BAD_REQUEST,
                "body must be JSON {host, path} or {prefix}",
            )
            .into_response()
        }
        Err(_) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    }
}

/// Binds and serves until SIGINT/SIGTERM, then stops accepting and lets requests finish.
pub async fn serve(worker: Arc<Worker>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = app(worker).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
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
