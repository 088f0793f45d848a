//! The origin's caching contract, in-process against an origin the test controls: freshness
//! and revalidation (304, a new original, 404), must-revalidate, forged validators, and the
//! refusals (`no-transform`, `Vary`). The same points through Envoy are in
//! tests/e2e/freshness_e2e.py.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rendition_shared::wire::NOTIFY_PATH;
use rendition_shared::{CapabilityMask, KeyId, SourceKey};
use rendition_sidecar::config::Config;
use rendition_sidecar::service::{self, AppState};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the origin answers for one path.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    etag: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
}

impl Answer {
    fn image(body: Vec<u8>, etag: &'static str, cache_control: &'static str) -> Answer {
        Answer {
            status: StatusCode::OK,
            body,
            etag: Some(etag),
            headers: vec![
                ("content-type", "image/jpeg"),
                ("cache-control", cache_control),
            ],
        }
    }
}

/// Requests the origin saw: (path, If-None-Match).
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[derive(Clone, Default)]
struct Origin {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    seen: Seen,
}

impl Origin {
    fn set(&self, path: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(path.to_owned(), answer);
    }

    /// Conditional requests seen for `path`.
    fn conditional(&self, path: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(p, inm)| p == path && inm.is_some())
            .count()
    }

    fn requests(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }

    async fn serve(&self) -> SocketAddr {
        let me = self.clone();
        let app = Router::new().fallback(move |uri: axum::http::Uri, h: HeaderMap| {
            let me = me.clone();
            async move { me.answer(uri.path(), &h) }
        });
        common::serve(app).await
    }

    fn answer(&self, path: &str, h: &HeaderMap) -> Response {
        let inm = h
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen
            .lock()
            .unwrap()
            .push((path.to_owned(), inm.clone()));
        let Some(a) = self.answers.lock().unwrap().get(path).cloned() else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let mut response =
            if a.status == StatusCode::OK && inm.is_some() && inm.as_deref() == a.etag {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                (a.status, a.body).into_response()
            };
        let headers = response.headers_mut();
        if let Some(etag) = a.etag {
            headers.insert(header::ETAG, etag.parse().unwrap());
        }
        // A name listed twice is sent as two lines (the first replaces axum's default).
        let mut sent = Vec::new();
        for (k, v) in a.headers {
            let name = header::HeaderName::from_static(k);
            if sent.contains(&k) {
                headers.append(name, v.parse().unwrap());
            } else {
                headers.insert(name, v.parse().unwrap());
                sent.push(k);
            }
        }
        response
    }
}

struct Sidecar {
    addr: SocketAddr,
    state: Arc<AppState>,
    client: reqwest::Client,
}

async fn sidecar(name: &str, origin: SocketAddr, tweak: impl FnOnce(&mut Config)) -> Sidecar {
    let state = common::worker(
        &format!("freshness-{name}"),
        |c| {
            c.origins.default = Some(format!("http://{origin}"));
            tweak(c);
        },
        true,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(service::serve(Arc::clone(&state), listener));
    Sidecar {
        addr,
        state,
        client: reqwest::Client::new(),
    }
}

/// Desktop WebP at 1x: the source's own width, so two originals of different widths tell
/// their variants apart.
const SLOT: u32 = 0x09;

fn id(path: &str) -> KeyId {
    SourceKey::new("shop.example", path).unwrap().id()
}

impl Sidecar {
    async fn notify(&self, body: serde_json::Value) -> (StatusCode, String) {
        let r = self
            .client
            .post(format!("http://{}{NOTIFY_PATH}", self.addr))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn notify_slot(&self, path: &str) -> StatusCode {
        self.notify(serde_json::json!({"host": "shop.example", "path": path, "mask": SLOT}))
            .await
            .0
    }

    /// GET /v/{key}/{slot}: status, headers, body.
    async fn variant(&self, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let r = self
            .client
            .get(format!("http://{}/v/{}/{SLOT:x}", self.addr, id(path)))
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.bytes().await.unwrap().to_vec())
    }

    async fn wait_until(&self, what: &str, pred: impl Fn(&Sidecar) -> bool) {
        for _ in 0..1200 {
            if pred(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("waited 60 s for {what}");
    }

    fn stored(&self, path: &str) -> bool {
        matches!(self.state.store.record(&id(path)), Ok(Some((r, _))) if r.stored.contains(CapabilityMask::from_bits(SLOT).unwrap()))
    }

    fn stat(&self, f: impl Fn(&service::stats::Stats) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.state.stats).load(Ordering::Relaxed)
    }
}

/// Width of a WebP (VP8 or VP8L or VP8X).
fn webp_width(b: &[u8]) -> u32 {
    assert_eq!(&b[8..12], b"WEBP", "a WebP");
    match &b[12..16] {
        b"VP8 " => u32::from(u16::from_le_bytes([b[26], b[27]]) & 0x3fff),
        b"VP8L" => (u32::from_le_bytes([b[21], b[22], b[23], b[24]]) & 0x3fff) + 1,
        _ => u32::from_le_bytes([b[24], b[25], b[26], 0]) + 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_original_replaces_the_variants_after_the_lifetime() {
    let origin = Origin::default();
    origin.set(
        "/a.jpg",
        Answer::image(common::demo("rocket.jpg"), "\"v1\"", "public, max-age=2"),
    );
    let sc = sidecar("new-original", origin.serve().await, |_| {}).await;
    assert_eq!(sc.notify_slot("/a.jpg").await, StatusCode::ACCEPTED);
    sc.wait_until("the first variant", |s| s.stored("/a.jpg"))
        .await;
    let (status, h, body) = sc.variant("/a.jpg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(webp_width(&body), 640, "rocket.jpg is 640 px wide");
    assert!(h[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age=2"));
    let age: u64 = h[header::AGE].to_str().unwrap().parse().unwrap();
    assert!(age <= 2, "Age {age}");
    // The origin replaces the image under the same URL.
    // (A long lifetime for the new one: its own staleness would be another revalidation.)
    origin.set(
        "/a.jpg",
        Answer::image(common::demo("garden.jpg"), "\"v2\"", "public, max-age=600"),
    );
    let written = sc.stat(|s| &s.variants_written);
    let decoded = sc.stat(|s| &s.images_processed);
    // Within the lifetime: the old variant, and the origin is not asked.
    let (_, _, body) = sc.variant("/a.jpg").await;
    assert_eq!(webp_width(&body), 640);
    assert_eq!(origin.conditional("/a.jpg"), 0);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    // Stale: served at once, the old bytes, while one revalidation runs.
    let (status, h, body) = sc.variant("/a.jpg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(webp_width(&body), 640, "stale while revalidating");
    let age: u64 = h[header::AGE].to_str().unwrap().parse().unwrap();
    assert!(age >= 2, "a stale variant says how old it is: Age {age}");
    sc.wait_until("the new original's variant", |s| {
        s.stat(|s| &s.variants_written) > written
    })
    .await;
    let (_, _, body) = sc.variant("/a.jpg").await;
    assert_eq!(webp_width(&body), 1600, "garden.jpg is 1600 px wide");
    assert_eq!(sc.stat(|s| &s.revalidations_changed), 1);
    assert_eq!(sc.stat(|s| &s.images_processed), decoded + 1);
    assert_eq!(origin.conditional("/a.jpg"), 1, "one conditional request");
    assert_eq!(
        origin.requests("/a.jpg"),
        2,
        "the first fetch and the revalidation: no third"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_renews_without_fetching_or_decoding_and_once_per_interval() {
    let origin = Origin::default();
    origin.set(
        "/b.jpg",
        Answer::image(common::demo("rocket.jpg"), "\"v1\"", "public, max-age=0"),
    );
    let sc = sidecar("not-modified", origin.serve().await, |c| {
        c.freshness.revalidate_min_interval_ms = 60_000;
    })
    .await;
    assert_eq!(sc.notify_slot("/b.jpg").await, StatusCode::ACCEPTED);
    sc.wait_until("the variant", |s| s.stored("/b.jpg")).await;
    let decoded = sc.stat(|s| &s.images_processed);
    // max-age=0: every hit is stale, served at once; 20 hits make one revalidation.
    for _ in 0..20 {
        let (status, _, body) = sc.variant("/b.jpg").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(webp_width(&body), 640);
    }
    sc.wait_until("the 304", |s| {
        s.stat(|s| &s.revalidations_not_modified) == 1
    })
    .await;
    assert_eq!(
        origin.conditional("/b.jpg"),
        1,
        "one conditional request for 20 stale hits"
    );
    assert_eq!(
        sc.stat(|s| &s.images_processed),
        decoded,
        "nothing decoded on a 304"
    );
    assert_eq!(sc.stat(|s| &s.stale_hits), 20);
    let (_, meta) = sc.state.store.record(&id("/b.jpg")).unwrap().unwrap();
    assert_eq!(meta.lifetime_source.as_deref(), Some("max-age"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_at_the_origin_purges_the_source() {
    let origin = Origin::default();
    origin.set(
        "/c.jpg",
        Answer::image(common::demo("rocket.jpg"), "\"v1\"", "max-age=0"),
    );
    let sc = sidecar("gone", origin.serve().await, |_| {}).await;
    assert_eq!(sc.notify_slot("/c.jpg").await, StatusCode::ACCEPTED);
    sc.wait_until("the variant", |s| s.stored("/c.jpg")).await;
    origin.answers.lock().unwrap().remove("/c.jpg"); // 404 from now on
    let (status, _, _) = sc.variant("/c.jpg").await;
    assert_eq!(status, StatusCode::OK, "the stale hit that finds out");
    sc.wait_until("the purge", |s| s.stat(|s| &s.revalidations_gone) == 1)
        .await;
    assert_eq!(sc.variant("/c.jpg").await.0, StatusCode::NOT_FOUND);
    let (record, _) = sc.state.store.record(&id("/c.jpg")).unwrap().unwrap();
    assert!(record.is_empty(), "purged: {record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_revalidate_is_validated_before_it_is_served() {
    let origin = Origin::default();
    origin.set(
        "/d.jpg",
        Answer::image(
            common::demo("rocket.jpg"),
            "\"v1\"",
            "public, max-age=0, must-revalidate",
        ),
    );
    let sc = sidecar("must-revalidate", origin.serve().await, |c| {
        c.freshness.revalidate_min_interval_ms = 0;
    })
    .await;
    assert_eq!(sc.notify_slot("/d.jpg").await, StatusCode::ACCEPTED);
    sc.wait_until("the variant", |s| s.stored("/d.jpg")).await;
    let (status, h, _) = sc.variant("/d.jpg").await;
    assert_eq!(status, StatusCode::OK, "validated (304), then served");
    assert!(h[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("must-revalidate"));
    assert_eq!(sc.stat(|s| &s.validated_hits), 1);
    assert_eq!(sc.stat(|s| &s.stale_hits), 0, "never served stale");
    // The origin fails: the variant is not served (404: Envoy sends the client to the origin).
    origin.set(
        "/d.jpg",
        Answer {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: Vec::new(),
            etag: None,
            headers: vec![],
        },
    );
    assert_eq!(sc.variant("/d.jpg").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_validators_in_notifies_cost_one_conditional_request_and_nothing_else() {
    let origin = Origin::default();
    origin.set(
        "/e.jpg",
        Answer::image(common::demo("rocket.jpg"), "\"v1\"", "public, max-age=600"),
    );
    let sc = sidecar("forged", origin.serve().await, |c| {
        c.freshness.revalidate_min_interval_ms = 60_000;
    })
    .await;
    assert_eq!(sc.notify_slot("/e.jpg").await, StatusCode::ACCEPTED);
    sc.wait_until("the variant", |s| s.stored("/e.jpg")).await;
    let (record, _) = sc.state.store.record(&id("/e.jpg")).unwrap().unwrap();
    let written = sc.stat(|s| &s.variants_written);
    for i in 0..40 {
        let (status, text) = sc
            .notify(serde_json::json!({
                "host": "shop.example", "path": "/e.jpg", "mask": SLOT,
                "etag": format!("\"forged-{i}\""),
            }))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(text.starts_with("exists"), "{text}");
    }
    sc.wait_until("the one revalidation", |s| {
        s.stat(|s| &s.revalidations_not_modified) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        origin.conditional("/e.jpg"),
        1,
        "at most one request at the origin"
    );
    assert_eq!(sc.stat(|s| &s.variants_written), written, "nothing encoded");
    let (after, _) = sc.state.store.record(&id("/e.jpg")).unwrap().unwrap();
    assert_eq!(after, record, "nothing discarded or republished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_source_is_tried_again_when_its_validators_change() {
    let origin = Origin::default();
    origin.set(
        "/r.jpg",
        Answer::image(
            b"not an image at all".to_vec(),
            "\"v1\"",
            "public, max-age=600",
        ),
    );
    let sc = sidecar("refused-retry", origin.serve().await, |c| {
        c.variants.enable_warmup = true;
    })
    .await;
    assert_eq!(sc.notify_slot("/r.jpg").await, StatusCode::ACCEPTED);
    sc.wait_until(
        "the refusal",
        |s| matches!(s.state.store.record(&id("/r.jpg")), Ok(Some((r, _))) if r.refused),
    )
    .await;
    let received = sc.stat(|s| &s.notifications_received);
    // The answer says what will happen: nothing, and why; a warmup is not "queued" either.
    for mask in [SLOT, CapabilityMask::WARMUP_SENTINEL] {
        let (status, text) = sc
            .notify(serde_json::json!({"host": "shop.example", "path": "/r.jpg", "mask": mask, "etag": "\"v1\""}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(text.starts_with("exists; refused: "), "{text}");
        assert!(!text.contains("revalidating"), "{text}");
    }
    assert_eq!(
        sc.stat(|s| &s.notifications_received),
        received,
        "nothing queued"
    );
    // The origin fixes the image; the filter's next notify carries the new validator.
    origin.set(
        "/r.jpg",
        Answer::image(common::demo("rocket.jpg"), "\"v2\"", "public, max-age=600"),
    );
    let (_, text) = sc
        .notify(serde_json::json!({"host": "shop.example", "path": "/r.jpg", "mask": SLOT, "etag": "\"v2\""}))
        .await;
    assert!(text.contains("revalidating with the origin"), "{text}");
    // The origin confirms a new original: the refusal is lifted and the source made again.
    sc.wait_until("the refusal to be lifted", |s| {
        matches!(s.state.store.record(&id("/r.jpg")), Ok(Some((r, _))) if !r.refused && !r.is_empty())
    })
    .await;
    assert_eq!(sc.notify_slot("/r.jpg").await, StatusCode::ACCEPTED);
    sc.wait_until("the fixed image's variant", |s| s.stored("/r.jpg"))
        .await;
    let (r, meta) = sc.state.store.record(&id("/r.jpg")).unwrap().unwrap();
    assert!(!r.refused);
    assert_eq!(meta.etag.as_deref(), Some("\"v2\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_refused_on_its_headers_is_tried_again_once_the_origin_allows_it() {
    let origin = Origin::default();
    // Refused before its bytes are read: no hash, no validators stored to compare with.
    origin.set(
        "/p.jpg",
        Answer::image(common::demo("rocket.jpg"), "\"v1\"", "private, max-age=600"),
    );
    let sc = sidecar("refused-headers", origin.serve().await, |_| {}).await;
    assert_eq!(sc.notify_slot("/p.jpg").await, StatusCode::ACCEPTED);
    sc.wait_until(
        "the refusal",
        |s| matches!(s.state.store.record(&id("/p.jpg")), Ok(Some((r, _))) if r.refused),
    )
    .await;
    let (_, meta) = sc.state.store.record(&id("/p.jpg")).unwrap().unwrap();
    assert!(
        meta.refused
            .as_deref()
            .unwrap_or_default()
            .contains("private"),
        "{meta:?}"
    );
    // The origin makes it public; the filter's next notify carries its validator.
    origin.set(
        "/p.jpg",
        Answer::image(common::demo("rocket.jpg"), "\"v2\"", "public, max-age=600"),
    );
    let (_, text) = sc
        .notify(serde_json::json!({"host": "shop.example", "path": "/p.jpg", "mask": SLOT, "etag": "\"v2\""}))
        .await;
    assert!(text.contains("revalidating with the origin"), "{text}");
    sc.wait_until("the refusal to be lifted and the variant made", |s| {
        matches!(s.state.store.record(&id("/p.jpg")), Ok(Some((r, _))) if !r.refused && !r.stored.is_empty())
    })
    .await;
    let (_, meta) = sc.state.store.record(&id("/p.jpg")).unwrap().unwrap();
    assert_eq!(meta.etag.as_deref(), Some("\"v2\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_transform_and_vary_are_refused_with_their_reason() {
    let origin = Origin::default();
    let rocket = common::demo("rocket.jpg");
    let with = |extra: (&'static str, &'static str)| Answer {
        headers: vec![
            ("content-type", "image/jpeg"),
            ("cache-control", "public, max-age=600"),
            extra,
        ],
        ..Answer::image(rocket.clone(), "\"v1\"", "")
    };
    origin.set(
        "/nt.jpg",
        Answer::image(
            rocket.clone(),
            "\"v1\"",
            "public, max-age=600, no-transform",
        ),
    );
    origin.set("/vary-accept.jpg", with(("vary", "Accept")));
    origin.set("/vary-cookie.jpg", with(("vary", "Cookie")));
    origin.set("/vary-ae.jpg", with(("vary", "Accept-Encoding")));
    // A list header on two lines is one list (RFC 9110 5.3): the second line counts.
    origin.set(
        "/nt-second-line.jpg",
        with(("cache-control", "no-transform")),
    );
    origin.set(
        "/vary-second-line.jpg",
        Answer {
            headers: vec![
                ("content-type", "image/jpeg"),
                ("cache-control", "public, max-age=600"),
                ("vary", "Accept-Encoding"),
                ("vary", "Cookie"),
            ],
            ..Answer::image(rocket.clone(), "\"v1\"", "")
        },
    );
    let sc = sidecar("refusals", origin.serve().await, |_| {}).await;
    for path in [
        "/nt.jpg",
        "/vary-accept.jpg",
        "/vary-cookie.jpg",
        "/vary-ae.jpg",
        "/nt-second-line.jpg",
        "/vary-second-line.jpg",
    ] {
        assert_eq!(sc.notify_slot(path).await, StatusCode::ACCEPTED, "{path}");
    }
    sc.wait_until("Vary: Accept-Encoding optimized", |s| {
        s.stored("/vary-ae.jpg")
    })
    .await;
    sc.wait_until("five refusals", |s| {
        s.stat(|s| &s.refused_no_transform) == 2 && s.stat(|s| &s.refused_vary) == 3
    })
    .await;
    for (path, reason) in [
        ("/nt.jpg", "no-transform"),
        ("/vary-accept.jpg", "Vary"),
        ("/vary-cookie.jpg", "Vary"),
        ("/nt-second-line.jpg", "no-transform"),
        ("/vary-second-line.jpg", "Vary"),
    ] {
        let (record, meta) = sc.state.store.record(&id(path)).unwrap().unwrap();
        assert!(record.refused, "{path}");
        assert!(
            meta.refused.as_deref().unwrap_or_default().contains(reason),
            "{path}: {meta:?}"
        );
    }
}
