//! The admin routes: operators and Prometheus. One guard for all of them ([`require_admin`],
//! a route layer), so no handler can forget it: loopback peers, or the configured bearer token.
//!
//! | route                 | who calls it                 | what                                   |
//! |-----------------------|------------------------------|----------------------------------------|
//! | `GET /stats`          | operators                    | JSON counters                          |
//! | `GET /metrics`        | Prometheus                   | text exposition                        |
//! | `POST /purge`         | operators                    | purge a URL or a prefix                |
//! | `GET /report`         | operators                    | HTML: variant matrix + images per source |
//! | `GET /report/source/{key}` | the report page         | the original, fetched from its origin  |

use super::api_error::ApiError;
use super::report;
use super::share;
use super::state::AppState;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rendition_shared::bucket::PurgeScope;
use rendition_shared::{KeyId, SourceKey};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

/// The admin routes, behind [`require_admin`].
pub fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/purge", post(purge))
        .route("/report", get(report))
        .route("/report/source/{key}", get(report_source))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(state),
            require_admin,
        ))
}

/// Admin routes answer loopback peers, or anyone with the configured bearer token.
fn admin_allowed(w: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
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
async fn require_admin(State(w): State<Arc<AppState>>, request: Request, next: Next) -> Response {
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

fn gauges(w: &AppState) -> Vec<(&'static str, &'static str, u64)> {
    let s = w.store.stats().unwrap_or_default();
    vec![
        (
            "queue_depth",
            "Sources queued or being processed.",
            w.queue.depth() as u64,
        ),
        (
            "store_payload_bytes",
            "Stored variant payload bytes.",
            s.payload_bytes,
        ),
        ("store_budget_bytes", "cache_size_bytes.", s.budget_bytes),
        (
            "store_deduplicated_bytes",
            "Bytes not stored again because identical variant bytes already were.",
            s.deduplicated_bytes,
        ),
        (
            "store_deduplicated_variants",
            "Stored variants whose bytes another variant had already stored.",
            s.deduplicated_variants,
        ),
        ("store_sources", "Sources with a record.", s.sources),
        (
            "index_last_seq",
            "Newest change-feed sequence number.",
            s.last_seq,
        ),
    ]
}

/// The shared tier's counters (none without one).
fn tier_counters(w: &AppState) -> Vec<(&'static str, &'static str, u64)> {
    w.fleet
        .as_ref()
        .map(|f| f.stats.snapshot())
        .unwrap_or_default()
}

async fn stats(State(w): State<Arc<AppState>>) -> Response {
    let g: Vec<(&str, u64)> = gauges(&w).into_iter().map(|(n, _, v)| (n, v)).collect();
    Json(w.stats.to_json(&tier_counters(&w), &g)).into_response()
}

async fn metrics(State(w): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        w.stats.to_prometheus(&tier_counters(&w), &gauges(&w)),
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

async fn report(State(w): State<Arc<AppState>>, Query(q): Query<ReportQuery>) -> Response {
    let store = Arc::clone(&w.store);
    let limit = q.limit.unwrap_or(report::DEFAULT_LIMIT);
    match tokio::task::spawn_blocking(move || report::gather(&store, q.offset, limit)).await {
        Ok(Ok(r)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            report::render(&r),
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
async fn report_source(State(w): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
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

/// The body of `POST /purge`: `{"host": "...", "path": "/..."}` purges one source;
/// `{"prefix": "host/path"}` every source whose canonical key starts with it. `rendition
/// purge` sends this same type.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
}

impl Purge {
    /// One source: the request's Host and its path with the query.
    pub fn source(host: String, path: String) -> Purge {
        Purge {
            host: Some(host),
            path: Some(path),
            prefix: None,
        }
    }

    /// Every source whose canonical key (host, then path) starts with `prefix`.
    pub fn prefix(prefix: String) -> Purge {
        Purge {
            host: None,
            path: None,
            prefix: Some(prefix),
        }
    }
}

async fn purge(
    State(w): State<Arc<AppState>>,
    body: Result<Json<Purge>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(p)) = body else {
        return ApiError(
            StatusCode::BAD_REQUEST,
            "body must be JSON {host, path} or {prefix}",
        )
        .into_response();
    };
    let scope = match (p.host, p.path, p.prefix) {
        (Some(h), Some(path), None) => match SourceKey::new(&h, &path) {
            Ok(k) => PurgeScope::Key(k.to_string()),
            Err(e) => {
                tracing::warn!("purge refused: bad key: {e}");
                return ApiError(StatusCode::BAD_REQUEST, "invalid host or path").into_response();
            }
        },
        (None, None, Some(prefix)) if !prefix.is_empty() => {
            PurgeScope::Prefix(prefix.to_ascii_lowercase())
        }
        _ => {
            return ApiError(
                StatusCode::BAD_REQUEST,
                "body must be JSON {host, path} or {prefix}",
            )
            .into_response()
        }
    };
    let store = Arc::clone(&w.store);
    let local = scope.clone();
    let result = tokio::task::spawn_blocking(move || match local {
        PurgeScope::Key(k) => match SourceKey::from_canonical(&k) {
            Ok(key) => store
                .purge(&key.id())
                .map(u32::from)
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("bad key: {e}")),
        },
        PurgeScope::Prefix(prefix) => store.purge_prefix(&prefix).map_err(|e| e.to_string()),
    })
    .await;
    match result {
        Ok(Ok(n)) => {
            w.published_latest();
            // Every other sidecar of the fleet applies it from the shared purge log.
            let fleet = match (&w.fleet, share::log_purge(&w, scope).await) {
                (None, _) => "off",
                (Some(_), Ok(())) => "logged",
                (Some(_), Err(e)) => {
                    tracing::warn!("purge not logged to the shared tier: {e}");
                    "unavailable"
                }
            };
            Json(serde_json::json!({ "purged": n, "fleet": fleet })).into_response()
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
