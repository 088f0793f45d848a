//! The public routes: what the filter, Envoy and orchestrators call. No admin guard; each
//! handler validates everything it reads.
//!
//! | route                 | who calls it                 | what                                   |
//! |-----------------------|------------------------------|----------------------------------------|
//! | `POST /notify`        | the filter, fire-and-forget  | queue generation; 202 at once          |
//! | `GET /v/{key}/{mask}` | operators, tests             | variant bytes (HEAD too, ETag, 304)     |
//! | any other `GET` path  | Envoy, on the filter's route | the variant named by `x-rendition-variant` |
//! | `GET /index?since=N`  | the filter's singleton       | change-feed page; `wait_ms` long-polls |
//! | `GET /healthz`        | orchestrators                | liveness + store check                 |

use super::api_error::ApiError;
use super::histogram::Format;
use super::queue::{Job, Submitted};
use super::revalidate;
use super::state::AppState;
use crate::store::{now_ms, ServedVariant, SourceMeta};
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rendition_shared::http_cache::CacheControl;
use rendition_shared::wire::{
    parse_mask_hex, FeedRequest, Notify, NotifyError, Requested, VariantRef, INDEX_PATH,
    MAX_NOTIFY_BYTES, NOTIFY_PATH, VARIANT_HEADER,
};
use rendition_shared::{CapabilityMask, KeyId, SourceKey};
use std::sync::Arc;
use std::time::{Duration, Instant};

// The refusal messages below name the bound.
const _: () = assert!(rendition_shared::wire::MAX_VALIDATOR_LEN == 512);

/// The public routes; anything else is tried as the filter's hit route.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        // A larger body is not a notify: refused (413) before it is read whole.
        .route(
            NOTIFY_PATH,
            post(notify).layer(DefaultBodyLimit::max(MAX_NOTIFY_BYTES)),
        )
        .route("/v/{key}/{mask}", get(variant))
        .route(INDEX_PATH, get(index))
        .route("/healthz", get(healthz))
        .fallback(variant_by_header)
}

async fn notify(State(w): State<Arc<AppState>>, body: Bytes) -> Response {
    let refuse = |status, msg| {
        w.stats.add(&w.stats.notifications_refused, 1);
        ApiError(status, msg).into_response()
    };
    let n = match Notify::parse(&body) {
        Ok(n) => n,
        Err(NotifyError::ValidatorTooLong(field)) => {
            let msg = match field {
                "etag" => "etag is longer than 512 bytes",
                _ => "last_modified is longer than 512 bytes",
            };
            return refuse(StatusCode::BAD_REQUEST, msg);
        }
        Err(NotifyError::TooLarge) => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "notify body too large")
        }
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "body must be JSON {host, path, mask}",
            )
        }
    };
    let Ok(key) = n.key() else {
        return refuse(StatusCode::BAD_REQUEST, "invalid host or path");
    };
    if !w.origins.is_configured(key.host()) {
        return refuse(StatusCode::FORBIDDEN, "host has no configured origin");
    }
    let requested = match n.requested() {
        Ok(Requested::Warmup) if !w.config.variants.enable_warmup => {
            w.stats.add(&w.stats.notifications_skipped_dedup, 1);
            return (StatusCode::ACCEPTED, "warmup disabled\n").into_response();
        }
        Ok(r) => r,
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "invalid mask"),
    };
    // The fast path: the requested variant exists, is known not worth making, or the source
    // is refused. The answer says which, so a notify is never told "queued" for work the
    // worker would drop.
    if let Ok(Some((r, meta))) = w.store.record(&key.id()) {
        let answer = match requested {
            _ if r.refused => Some(format!(
                "exists; refused: {}",
                meta.refused.as_deref().unwrap_or("-")
            )),
            Requested::Slot(m) if r.stored.contains(m) => Some("exists".to_owned()),
            Requested::Slot(m) if r.lost.contains(m) => Some(format!(
                "exists; not made: {}",
                meta.lost_reasons
                    .iter()
                    .find(|(slot, _)| u32::from(*slot) == m.bits())
                    .map_or("-", |(_, why)| why.as_str())
            )),
            _ => None,
        };
        if let Some(answer) = answer {
            w.stats.add(&w.stats.notifications_skipped_dedup, 1);
            // Validators other than ours are a hint that the original changed, never proof (a
            // notify can come from anyone who reaches the sidecar): ask the origin with ours,
            // at most once per source per interval. Nothing is discarded unless it confirms;
            // a refused or lost source is tried again only when it does.
            let differs =
                |theirs: &Option<String>, ours: &Option<String>| theirs.is_some() && theirs != ours;
            if differs(&n.etag, &meta.etag) || differs(&n.last_modified, &meta.last_modified) {
                revalidate::in_background(&w, key.id());
                return (
                    StatusCode::ACCEPTED,
                    format!("{answer}; revalidating with the origin\n"),
                )
                    .into_response();
            }
            // The filter asked for what exists, so its index lacks this record: send it again.
            let store = Arc::clone(&w.store);
            let id = key.id();
            match tokio::task::spawn_blocking(move || store.republish(&id)).await {
                Ok(Ok(Some(seq))) => w.published(seq),
                Ok(Err(e)) => tracing::warn!(%id, "republish failed: {e}"),
                _ => {}
            }
            return (StatusCode::ACCEPTED, format!("{answer}\n")).into_response();
        }
    }
    w.stats.add(&w.stats.notifications_received, 1);
    let job = Job {
        key,
        requested,
        etag: n.etag,
        last_modified: n.last_modified,
        replacement: None,
    };
    match w.queue.submit(job) {
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

async fn variant(
    State(w): State<Arc<AppState>>,
    Path((key, mask)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (Some(id), Some(mask)) = (KeyId::from_hex(&key), parse_mask_hex(&mask)) else {
        return ApiError(StatusCode::NOT_FOUND, "no such variant").into_response();
    };
    serve_variant(w, id, mask, &headers).await
}

/// The filter's hit route: the original request (Host and path untouched, so Envoy can retry
/// it at the origin) carrying `x-rendition-variant: {key}/{mask}`. The key must be the id of
/// this very Host + path: a forged header can never fetch another URL's (or host's) variant.
/// Anything else is a 404, which Envoy's retry policy turns into the origin's answer.
async fn variant_by_header(
    State(w): State<Arc<AppState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let not_found = || ApiError(StatusCode::NOT_FOUND, "no such variant").into_response();
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        return not_found();
    }
    let Some(VariantRef {
        key: id,
        slot: mask,
    }) = headers
        .get(VARIANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(VariantRef::parse)
    else {
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
    w: Arc<AppState>,
    id: KeyId,
    mask: CapabilityMask,
    headers: &HeaderMap,
) -> Response {
    let started = Instant::now();
    let not_found = || ApiError(StatusCode::NOT_FOUND, "no such variant").into_response();
    let mut served = match find_variant(&w, id, mask, false).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            w.stats.add(&w.stats.variants_not_found, 1);
            return not_found();
        }
        Err(response) => return response,
    };
    let now = now_ms();
    if !served.source.is_fresh(now) && served.renewals != w.store.renewals() {
        // An in-memory copy carries the freshness it was read with; a renewal since then is
        // only in the store.
        match find_variant(&w, id, mask, true).await {
            Ok(Some(v)) => served = v,
            Ok(None) => return not_found(),
            Err(response) => return response,
        }
    }
    if !served.source.is_fresh(now) {
        if served.source.must_revalidate {
            // Never served stale: validate first; anything but a confirmation sends the
            // client to the origin (404 here is Envoy's cue to retry there).
            match revalidate::before_serving(&w, id).await {
                Some(revalidate::Outcome::Confirmed) => {
                    match find_variant(&w, id, mask, true).await {
                        Ok(Some(v)) => {
                            w.stats.add(&w.stats.validated_hits, 1);
                            served = v;
                        }
                        Ok(None) => return not_found(),
                        Err(response) => return response,
                    }
                }
                _ => {
                    w.stats.add(&w.stats.variants_not_found, 1);
                    return not_found();
                }
            }
        } else {
            w.stats.add(&w.stats.stale_hits, 1);
            revalidate::in_background(&w, id);
        }
    }
    let v = &served.variant;
    let source = &served.source;
    let format = Format::of_content_type(&v.meta.content_type);
    let etag = format!("\"{:08x}\"", v.crc);
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, variant_cache_control(source))
        .header(header::AGE, source.age_ms(now) / 1000)
        .header(header::VARY, rendition_shared::response::VARY)
        .header(
            VARIANT_HEADER,
            format!(
                "{mask:x}; {}x{}; q={}",
                v.meta.width, v.meta.height, v.meta.quality
            ),
        );
    if let Some(expires) = source.expires.as_deref().filter(|_| {
        let cc = CacheControl::parse(source.cache_control.as_deref().unwrap_or_default());
        cc.max_age.is_none() && cc.s_maxage.is_none()
    }) {
        builder = builder.header(header::EXPIRES, expires);
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|inm| if_none_match_hits(inm, &etag))
    {
        if let Some(f) = format {
            w.stats.served(f, 0, 0, started.elapsed());
        }
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    w.stats.add(&w.stats.variants_served, 1);
    w.stats.add(&w.stats.bytes_served, v.bytes.len() as u64);
    if let Some(f) = format {
        // Variants are stored only when smaller than their source; a record that does not
        // know its source's size (0) claims no saving.
        let sent = v.bytes.len() as u64;
        w.stats
            .served(f, sent, source.source_bytes.max(sent), started.elapsed());
    }
    builder = builder
        .header(header::CONTENT_TYPE, v.meta.content_type.as_str())
        .header(header::CONTENT_LENGTH, v.bytes.len());
    builder
        .body(Body::from(v.bytes.clone()))
        .unwrap_or_default()
}

/// The variant answering `mask` with its source's metadata: from memory when a copy is
/// current (unless `from_store`), else from the store on the blocking pool. `Err` is the
/// response to send.
async fn find_variant(
    w: &Arc<AppState>,
    id: KeyId,
    mask: CapabilityMask,
    from_store: bool,
) -> Result<Option<Arc<ServedVariant>>, Response> {
    if !from_store {
        if let Some(v) = w.store.hot_variant(&id, mask) {
            return Ok(Some(v));
        }
    }
    let store = Arc::clone(&w.store);
    match tokio::task::spawn_blocking(move || store.variant(&id, mask)).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => {
            w.stats.add(&w.stats.store_errors, 1);
            w.stats.add(&w.stats.variants_not_found, 1);
            tracing::error!(%id, mask = %format!("{mask:x}"), "variant not served: {e}");
            Err(ApiError(StatusCode::NOT_FOUND, "no such variant").into_response())
        }
        Err(e) => {
            tracing::error!("variant lookup task failed: {e}");
            Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())
        }
    }
}

/// `If-None-Match` against our strong ETag, with the weak comparison RFC 9110 13.1.2 asks for
/// on GET and HEAD (`W/"x"` matches `"x"`), and `*` matching any stored variant.
fn if_none_match_hits(value: &str, etag: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// A variant carries its source's caching contract: the origin's `Cache-Control` (a variant
/// lives as long as the original it was made from), minus what no longer applies to a shared,
/// transformed copy. When the origin gave no lifetime of its own (no `max-age`, `s-maxage` or
/// `Expires`), the lifetime the sidecar works with is stated, so caches downstream agree with
/// it; `Age` (sent beside) tells them how much of it is used up.
fn variant_cache_control(source: &SourceMeta) -> HeaderValue {
    let origin = source.cache_control.as_deref().unwrap_or_default();
    let mut kept: Vec<String> = origin
        .split(',')
        .map(str::trim)
        .filter(|d| {
            let name = d
                .split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            matches!(
                name.as_str(),
                "max-age"
                    | "s-maxage"
                    | "public"
                    | "immutable"
                    | "must-revalidate"
                    | "proxy-revalidate"
                    | "no-cache"
                    | "stale-while-revalidate"
                    | "stale-if-error"
            )
        })
        .map(str::to_owned)
        .collect();
    let cc = CacheControl::parse(origin);
    let explicit = cc.max_age.is_some() || cc.s_maxage.is_some() || source.expires.is_some();
    if !explicit && !cc.no_cache {
        if !cc.public {
            kept.insert(0, "public".to_owned());
        }
        kept.push(format!("max-age={}", source.lifetime));
    }
    HeaderValue::from_str(&kept.join(", "))
        .unwrap_or(HeaderValue::from_static("public, max-age=3600"))
}

async fn index(State(w): State<Arc<AppState>>, Query(q): Query<FeedRequest>) -> Response {
    let limit = q.page_limit() as usize;
    let mut rx = w.feed.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.granted_wait_ms());
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

async fn healthz(State(w): State<Arc<AppState>>) -> Response {
    match w.store.last_seq() {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!("health check: store: {e}");
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}
