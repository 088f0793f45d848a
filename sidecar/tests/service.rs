//! The sidecar service over real sockets: a local origin (in this process), the real router
//! on 127.0.0.1:0, and `/notify` -> `/index` -> `/v` the way the filter will use them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use rendition_shared::wire::{FeedRequest, NOTIFY_PATH};
use rendition_shared::{CapabilityMask, FeedPage, IndexEntry, SourceKey};
use rendition_sidecar::config::Config;
use rendition_sidecar::service::{self, AppState};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A local origin: demo images with validators, plus the cases that must not be optimized.
async fn origin(hosts_seen: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    let rocket = common::demo("rocket.jpg");
    let app = Router::new()
        .route(
            "/img/rocket.jpg",
            get(move |h: HeaderMap| {
                let rocket = rocket.clone();
                let seen = Arc::clone(&hosts_seen);
                async move {
                    seen.lock().unwrap().push(
                        h.get(header::HOST)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned(),
                    );
                    (
                        [
                            (header::CONTENT_TYPE, "image/jpeg"),
                            (header::ETAG, "\"v1\""),
                            (header::CACHE_CONTROL, "public, max-age=600"),
                        ],
                        rocket,
                    )
                }
            }),
        )
        .route(
            // The same bytes at another URL, under another ETag: stored once.
            "/img/rocket-again.jpg",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "image/jpeg"),
                        (header::ETAG, "\"again\""),
                        (header::CACHE_CONTROL, "public, max-age=600"),
                    ],
                    common::demo("rocket.jpg"),
                )
            }),
        )
        .route(
            "/img/private.jpg",
            get(|| async {
                (
                    [(header::CACHE_CONTROL, "private, max-age=60")],
                    common::demo("rocket.jpg"),
                )
            }),
        )
        .route(
            "/img/cookie.jpg",
            get(|| async { ([(header::SET_COOKIE, "s=1")], common::demo("rocket.jpg")) }),
        )
        .route(
            "/img/lying.jpg",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/jpeg")],
                    "<!doctype html><h1>Not found</h1>",
                )
            }),
        )
        .route(
            "/img/missing.jpg",
            get(|| async { StatusCode::NOT_FOUND.into_response() }),
        );
    common::serve(app).await
}

struct Sidecar {
    addr: SocketAddr,
    worker: Arc<AppState>,
    client: reqwest::Client,
}

async fn sidecar(origin: SocketAddr, tweak: impl FnOnce(&mut Config)) -> Sidecar {
    let name = format!("service-{}", origin.port());
    let w = common::worker(
        &name,
        |config| {
            config.origins.default = Some(format!("http://{origin}"));
            tweak(config);
        },
        true,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(service::serve(Arc::clone(&w), listener));
    Sidecar {
        addr,
        worker: w,
        client: reqwest::Client::new(),
    }
}

impl Sidecar {
    async fn notify(&self, path: &str, mask: u32) -> StatusCode {
        self.notify_with(serde_json::json!({ "host": "shop.example", "path": path, "mask": mask }))
            .await
    }

    async fn notify_with(&self, body: serde_json::Value) -> StatusCode {
        self.client
            .post(format!("http://{}{NOTIFY_PATH}", self.addr))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The body of `GET {route}` as text (`/metrics`).
    async fn text(&self, route: &str) -> String {
        self.client
            .get(format!("http://{}{route}", self.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// One feed page: `GET /index?since=..&wait_ms=..&limit=1000`, as the filter asks it.
    async fn index_page(&self, since: u64, wait_ms: u64) -> FeedPage {
        let body = self
            .client
            .get(format!(
                "http://{}{}",
                self.addr,
                FeedRequest {
                    since,
                    wait_ms,
                    limit: None
                }
                .path()
            ))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        FeedPage::decode(&body).unwrap()
    }

    async fn index_since(&self, since: u64) -> FeedPage {
        self.index_page(since, 0).await
    }

    /// Long-polls the feed until `pred` holds for the source's entry (bounded: 60 s).
    async fn wait_for(&self, path: &str, pred: impl Fn(&IndexEntry) -> bool) -> IndexEntry {
        let id = SourceKey::new("shop.example", path).unwrap().id();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let page = self.index_page(0, 500).await;
            if let Some(e) = page.entries.iter().find(|e| e.key == id && pred(e)) {
                return *e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path}: condition not reached in 60 s");
    }
}

fn m(bits: u32) -> CapabilityMask {
    CapabilityMask::from_bits(bits).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_index_variant_round_trip() {
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let o = origin(Arc::clone(&hosts)).await;
    let sc = sidecar(o, |c| c.variants.proactive_image_variants = true).await;
    assert_eq!(
        sc.notify("/img/rocket.jpg", 0x01).await,
        StatusCode::ACCEPTED
    );
    let entry = sc
        .wait_for("/img/rocket.jpg", |e| e.record.stored.len() == 36)
        .await;
    assert!(entry.record.lost.is_empty());
    assert_eq!(
        hosts.lock().unwrap().as_slice(),
        ["shop.example"],
        "fetched once, with the original Host"
    );

    // the WebP mobile variant, over the socket
    let url = format!("http://{}/v/{}/0x01", sc.addr, entry.key);
    let resp = sc.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "image/webp");
    assert_eq!(
        resp.headers()[header::CACHE_CONTROL],
        "public, max-age=600",
        "derived from the origin's"
    );
    assert!(resp.headers()[header::VARY]
        .to_str()
        .unwrap()
        .contains("Accept"));
    let etag = resp.headers()[header::ETAG].clone();
    let len: usize = resp.headers()[header::CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), len);
    let (w, h, _) = common::decode_any(&body);
    assert_eq!((w, h), (480, 320));
    // conditional GET and HEAD
    let not_modified = sc
        .client
        .get(&url)
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    let head = sc.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        len
    );
    // AVIF desktop at full size, and an unknown key
    let avif = sc
        .client
        .get(format!("http://{}/v/{}/0a", sc.addr, entry.key))
        .send()
        .await
        .unwrap();
    assert_eq!(avif.headers()[header::CONTENT_TYPE], "image/avif");
    let unknown = sc
        .client
        .get(format!("http://{}/v/{}/0x01", sc.addr, "0".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // a second notify for an existing variant is skipped (counted in notifications_skipped_dedup)
    assert_eq!(
        sc.notify("/img/rocket.jpg", 0x01).await,
        StatusCode::ACCEPTED
    );
    let stats: serde_json::Value = sc
        .client
        .get(format!("http://{}/stats", sc.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["notifications_skipped_dedup"], 1);
    // ... and sends the record to the feed again, for a filter whose index lost it
    let page = sc.index_since(entry.record.seq).await;
    assert_eq!(page.entries.len(), 1, "republished");
    assert_eq!(page.entries[0].key, entry.key);
    assert_eq!(page.entries[0].record.stored, entry.record.stored);

    // the filter's hit route: the original path, Host, and x-rendition-variant: {key}/{mask}
    let hit = |host: &'static str, path: &'static str, value: String| {
        sc.client
            .get(format!("http://{}{path}", sc.addr))
            .header(header::HOST, host)
            .header("x-rendition-variant", value)
            .send()
    };
    let by_header = hit(
        "shop.example",
        "/img/rocket.jpg",
        format!("{}/01", entry.key),
    )
    .await
    .unwrap();
    assert_eq!(by_header.status(), StatusCode::OK);
    assert_eq!(by_header.headers()[header::CONTENT_TYPE], "image/webp");
    assert!(by_header.headers().contains_key("x-rendition-variant"));
    // a key that is not this Host + path never serves (host isolation), nor a missing header
    for (host, path, value) in [
        (
            "evil.example",
            "/img/rocket.jpg",
            format!("{}/01", entry.key),
        ),
        (
            "shop.example",
            "/img/other.jpg",
            format!("{}/01", entry.key),
        ),
        ("shop.example", "/img/rocket.jpg", "junk".to_owned()),
    ] {
        let r = hit(host, path, value).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{host}{path}");
    }
    let no_header = sc
        .client
        .get(format!("http://{}/img/rocket.jpg", sc.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), StatusCode::NOT_FOUND);
    assert_eq!(stats["images_processed"], 1);
    assert_eq!(
        stats["variants_written"], 12,
        "12 encodes answer the 36 slots of a 640 px source"
    );
    assert_eq!(stats["proactive_variants_written"], 11);
    assert!(stats["by_type"]["images"]["us"].as_u64().unwrap() > 0);
    let metrics = sc.text("/metrics").await;
    assert!(
        metrics.contains("rendition_variants_written_total 12"),
        "{metrics}"
    );
    // The value: WebP 0x01 went out three times with a body (GET, HEAD, the hit route) and
    // once as a 304; each stands for the 112 KB original.
    let original = common::demo("rocket.jpg").len();
    for line in [
        format!(
            "rendition_served_bytes_total{{format=\"webp\"}} {}",
            3 * len
        ),
        format!(
            "rendition_served_original_bytes_total{{format=\"webp\"}} {}",
            3 * original
        ),
        format!("rendition_served_original_bytes_total{{format=\"avif\"}} {original}"),
        "rendition_served_bytes_total{format=\"svg\"} 0".to_owned(),
        "rendition_serve_seconds_bucket{format=\"webp\",le=\"+Inf\"} 4".to_owned(),
        "rendition_serve_seconds_count{format=\"webp\"} 4".to_owned(),
        "rendition_serve_seconds_count{format=\"avif\"} 1".to_owned(),
        "# TYPE rendition_encode_seconds histogram".to_owned(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    let encodes: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("rendition_encode_seconds_count{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(encodes, 12, "one encode time per variant written");
    let stats: serde_json::Value = sc
        .client
        .get(format!("http://{}/stats", sc.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["by_format"]["webp"]["served_bytes"], 3 * len);
    assert_eq!(stats["by_format"]["webp"]["original_bytes"], 3 * original);
    assert_eq!(stats["by_format"]["webp"]["responses"], 4);
    assert_eq!(hosts.lock().unwrap().len(), 1, "no second fetch");

    // purge by URL: the feed carries an empty record, the variant is gone
    let purged: serde_json::Value = sc
        .client
        .post(format!("http://{}/purge", sc.addr))
        .json(&serde_json::json!({ "host": "shop.example", "path": "/img/rocket.jpg" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(purged["purged"], 1);
    sc.wait_for("/img/rocket.jpg", |e| e.record.stored.is_empty())
        .await;
    assert_eq!(
        sc.client.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_proactive_only_the_requested_slot_is_made() {
    let o = origin(Arc::new(Mutex::new(Vec::new()))).await;
    let sc = sidecar(o, |_| {}).await;
    assert_eq!(
        sc.notify("/img/rocket.jpg", 0x8a).await,
        StatusCode::ACCEPTED
    );
    let e = sc
        .wait_for("/img/rocket.jpg", |e| !e.record.stored.is_empty())
        .await;
    // desktop AVIF 1x; the 2x slot is the same size, so it is answered by the same encode
    assert!(e.record.stored.contains(m(0x0a)));
    assert!(e
        .record
        .stored
        .iter()
        .all(|s| s.format() == rendition_shared::ImageFormat::Avif));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_image_at_two_urls_is_stored_once() {
    let o = origin(Arc::new(Mutex::new(Vec::new()))).await;
    let sc = sidecar(o, |_| {}).await;
    let mut served = Vec::new();
    for path in ["/img/rocket.jpg", "/img/rocket-again.jpg"] {
        assert_eq!(sc.notify(path, 0x8a).await, StatusCode::ACCEPTED);
        let e = sc
            .wait_for(path, |e| e.record.stored.contains(m(0x0a)))
            .await;
        let body = sc
            .client
            .get(format!("http://{}/v/{}/0a", sc.addr, e.key))
            .send()
            .await
            .unwrap();
        assert_eq!(body.status(), StatusCode::OK);
        served.push(body.bytes().await.unwrap());
    }
    assert_eq!(
        served[0], served[1],
        "one decode and encode gives the same bytes"
    );
    // Every blob of the second URL points at the first one's bytes.
    let second = SourceKey::new("shop.example", "/img/rocket-again.jpg")
        .unwrap()
        .id();
    let record = sc.worker.store.record(&second).unwrap().unwrap().0;
    let mut blobs = std::collections::BTreeMap::new();
    for slot in record.stored.iter() {
        let (primary, meta) = sc
            .worker
            .store
            .variant_meta(&second, slot)
            .unwrap()
            .unwrap();
        blobs.insert(primary.bits(), meta.bytes);
    }
    let stats = sc.worker.store.stats().unwrap();
    assert_eq!(
        (stats.deduplicated_variants, stats.deduplicated_bytes),
        (blobs.len() as u64, blobs.values().sum::<u64>()),
        "{blobs:?}"
    );
    let metrics = sc.text("/metrics").await;
    assert!(
        metrics.contains(&format!(
            "rendition_store_deduplicated_bytes {}",
            stats.deduplicated_bytes
        )),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_must_not_be_optimized_are_refused() {
    let o = origin(Arc::new(Mutex::new(Vec::new()))).await;
    let sc = sidecar(o, |_| {}).await;
    for path in ["/img/private.jpg", "/img/cookie.jpg", "/img/lying.jpg"] {
        assert_eq!(sc.notify(path, 0x09).await, StatusCode::ACCEPTED);
        let e = sc.wait_for(path, |e| e.record.refused).await;
        assert!(e.record.stored.is_empty(), "{path}");
    }
    let (_, meta) = sc
        .worker
        .store
        .record(
            &SourceKey::new("shop.example", "/img/lying.jpg")
                .unwrap()
                .id(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        meta.refused.as_deref(),
        Some("not an image: text or markup")
    );
    // a refused source is not fetched again
    assert_eq!(
        sc.notify("/img/lying.jpg", 0x0a).await,
        StatusCode::ACCEPTED
    );
    // bad notifies
    let bad = sc
        .client
        .post(format!("http://{}{NOTIFY_PATH}", sc.addr))
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        sc.notify("/img/rocket.jpg", 0x0c).await,
        StatusCode::BAD_REQUEST,
        "invalid mask"
    );
}

/// The filter sends exactly `shared/tests/golden/notify.json` (its shell test checks the
/// bytes); the sidecar accepts those bytes as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_golden_notify_body_is_accepted() {
    let o = origin(Arc::new(Mutex::new(Vec::new()))).await;
    let sc = sidecar(o, |_| {}).await;
    let response = sc
        .client
        .post(format!("http://{}{NOTIFY_PATH}", sc.addr))
        .header("content-type", "application/json")
        .body(&include_bytes!("../../shared/tests/golden/notify.json")[..])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.text().await.unwrap(), "queued\n");
    let stats = &sc.worker.stats;
    assert_eq!(
        stats
            .notifications_received
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_hosts_are_refused() {
    let o = origin(Arc::new(Mutex::new(Vec::new()))).await;
    let sc = sidecar(o, |c| {
        let default = c.origins.default.take().unwrap();
        c.origins.hosts.insert("other.example".into(), default);
    })
    .await;
    assert_eq!(
        sc.notify("/img/rocket.jpg", 0x01).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_with_other_validators_are_checked_with_the_origin() {
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let o = origin(Arc::clone(&hosts)).await;
    let sc = sidecar(o, |_| {}).await;
    assert_eq!(
        sc.notify("/img/rocket.jpg", 0x01).await,
        StatusCode::ACCEPTED
    );
    let first = sc
        .wait_for("/img/rocket.jpg", |e| e.record.stored.contains(m(0x01)))
        .await;
    let (_, meta) = sc.worker.store.record(&first.key).unwrap().unwrap();
    assert_eq!(meta.etag.as_deref(), Some("\"v1\""), "validators kept");
    // same validators: nothing to do
    let same = serde_json::json!({ "host": "shop.example", "path": "/img/rocket.jpg", "mask": 1, "etag": "\"v1\"" });
    assert_eq!(sc.notify_with(same).await, StatusCode::ACCEPTED);
    // (that notify re-published the record under a new sequence, before answering)
    let republished = sc.wait_for("/img/rocket.jpg", |_| true).await;
    assert!(republished.record.seq > first.record.seq);
    // Another ETag in a notify is a hint, not proof: the sidecar asks the origin, which still
    // has v1 (this origin ignores If-None-Match and answers 200 with the same ETag): the
    // stored variants stand.
    let written = sc.worker.stats.variants_written.load(Ordering::Relaxed);
    let changed = serde_json::json!({ "host": "shop.example", "path": "/img/rocket.jpg", "mask": 1, "etag": "\"v2\"" });
    assert_eq!(sc.notify_with(changed).await, StatusCode::ACCEPTED);
    for _ in 0..200 {
        if sc
            .worker
            .stats
            .revalidations_not_modified
            .load(Ordering::Relaxed)
            == 1
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        sc.worker
            .stats
            .revalidations_not_modified
            .load(Ordering::Relaxed),
        1
    );
    assert_eq!(hosts.lock().unwrap().len(), 2, "asked the origin once more");
    assert_eq!(
        sc.worker.stats.variants_written.load(Ordering::Relaxed),
        written,
        "nothing made again"
    );
    let (record, _) = sc.worker.store.record(&first.key).unwrap().unwrap();
    assert_eq!(
        record.seq, republished.record.seq,
        "the record is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_shows_every_stored_variant_beside_the_original() {
    let o = origin(Arc::new(Mutex::new(Vec::new()))).await;
    let sc = sidecar(o, |_| {}).await;
    // A query with markup in it: the page must show it as text, never as markup.
    let hostile = "/img/rocket.jpg?<b>x</b>";
    for path in [hostile, "/img/lying.jpg"] {
        assert_eq!(sc.notify(path, 0x8a).await, StatusCode::ACCEPTED);
    }
    sc.wait_for(hostile, |e| !e.record.stored.is_empty()).await;
    sc.wait_for("/img/lying.jpg", |e| e.record.refused).await;
    let base = format!("http://{}", sc.addr);
    let page = sc
        .client
        .get(format!("{base}/report"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("2 sources in the store"), "{html}");
    assert!(
        !html.contains("<b>x</b>"),
        "markup from a URL reached the page"
    );
    assert!(html.contains("shop.example/img/rocket.jpg?&lt;b&gt;x&lt;/b&gt;"));
    assert!(html.contains("refused: "), "the refused source says why");

    // One table row and one figure per distinct stored blob, each image URL answering.
    let id = SourceKey::new("shop.example", hostile).unwrap().id();
    let record = sc.worker.store.record(&id).unwrap().unwrap().0;
    let mut primaries: Vec<CapabilityMask> = record
        .stored
        .iter()
        .map(|s| sc.worker.store.variant_meta(&id, s).unwrap().unwrap().0)
        .collect();
    primaries.sort_by_key(|m| m.bits());
    primaries.dedup();
    assert_eq!(html.matches("<tr class=variant>").count(), primaries.len());
    for p in &primaries {
        let src = format!("/v/{id}/{:x}", p.bits());
        assert!(
            html.contains(&format!("src=\"{src}\"")),
            "{src} not on the page"
        );
        let r = sc.client.get(format!("{base}{src}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("image/"));
    }
    // The original, fetched from the origin for the side-by-side view.
    let original = sc
        .client
        .get(format!("{base}/report/source/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(original.status(), StatusCode::OK);
    assert_eq!(original.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(original.bytes().await.unwrap(), common::demo("rocket.jpg"));
    // An unknown key is a 404, not an origin fetch.
    let missing = format!("{base}/report/source/{}", "0".repeat(32));
    let r = sc.client.get(missing).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
