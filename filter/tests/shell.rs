//! The wasm shell, natively, against the mock host: both roles (HTTP filter and index-sync
//! singleton) on one "worker" thread sharing one shared-data map, driven through the SDK's
//! exported entry points the way Envoy drives them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

mod mock_host;

use mock_host::{
    answer_call, exchange, host_calls, metric, start_root, take_calls, tick, with, Exchange,
};

/// A stat as Envoy would show it: the filter's counters reach the host on its root's tick.
fn stat(name: &str) -> i64 {
    tick(FILTER);
    metric(name)
}
use rendition_filter::PluginRoot;
use rendition_shared::response::VARY;
use rendition_shared::table::{IndexMeta, META_KEY};
use rendition_shared::wire::{INDEX_PATH, NOTIFY_PATH};
use rendition_shared::{CapabilityMask, FeedPage, IndexEntry, IndexRecord, SlotSet, SourceKey};

const FILTER: u32 = 1;
const SYNC: u32 = 2;
const HOST: &str = "shop.example";
const CHROME_DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.99 Mobile Safari/537.36";

/// What `proxy_wasm::main!` does in the VM (without the panic hook, which would swallow the
/// test's own assertion messages into the mock log).
fn install_root() {
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(PluginRoot::default())
    });
}

fn setup() {
    install_root();
    assert!(start_root(FILTER, "{}"));
    assert!(start_root(
        SYNC,
        r#"{"index_sync": {"buckets": 64, "ways": 2}}"#
    ));
}

fn slots(masks: &[u32]) -> SlotSet {
    masks
        .iter()
        .map(|&b| CapabilityMask::from_bits(b).unwrap())
        .collect()
}

fn entry(path: &str, seq: u64, stored: &[u32]) -> IndexEntry {
    IndexEntry {
        key: SourceKey::new(HOST, path).unwrap().id(),
        record: IndexRecord {
            stored: slots(stored),
            lost: SlotSet::default(),
            refused: false,
            seq,
        },
    }
}

/// Runs the singleton's poll loop once: tick (or follow-up), answer with `page`.
fn sync_page(store_id: u64, last_seq: u64, entries: Vec<IndexEntry>) -> String {
    let mut calls = take_calls();
    if calls.is_empty() {
        tick(SYNC);
        calls = take_calls();
    }
    assert_eq!(calls.len(), 1, "one feed request in flight");
    let call = &calls[0];
    assert_eq!(call.upstream, "sidecar");
    let path = call.header(":path").unwrap().to_owned();
    let page = FeedPage {
        store_id,
        last_seq,
        compacted_seq: 0,
        entries,
    };
    answer_call(SYNC, call.token, Some("200"), &page.encode());
    path
}

fn meta() -> IndexMeta {
    with(|h| IndexMeta::decode(&h.shared[META_KEY].0).unwrap())
}

/// Request headers as the mock host takes them.
type Request = Vec<(&'static str, &'static str)>;

fn image_request<'a>(path: &'a str, accept: &'a str, ua: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (":method", "GET"),
        (":path", path),
        (":authority", HOST),
        ("accept", accept),
        ("user-agent", ua),
    ]
}

fn origin_image() -> Vec<(String, String)> {
    vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "image/jpeg".into()),
        ("content-length".into(), "120000".into()),
        ("cache-control".into(), "public, max-age=600".into()),
        ("etag".into(), "\"v1\"".into()),
    ]
}

/// The upstream as Envoy's route table would pick it: the sidecar when the filter set the
/// routing header, else the origin.
fn routed(req: &[(String, String)]) -> Vec<(String, String)> {
    match req.iter().find(|(k, _)| k == "x-rendition-variant") {
        Some((_, v)) => {
            let mask = v.split('/').nth(1).unwrap().to_owned();
            vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "image/avif".into()),
                (
                    "x-rendition-variant".into(),
                    format!("0x{mask}; 800x600; q=60"),
                ),
                // As the sidecar sends it: already the filter's whole list.
                ("vary".into(), VARY.into()),
            ]
        }
        None => origin_image(),
    }
}

/// Ticks the filter root and answers its notifies with 202; the sync's calls stay pending.
fn notifies() -> Vec<serde_json::Value> {
    tick(FILTER);
    let (notify, other): (Vec<_>, Vec<_>) = take_calls()
        .into_iter()
        .partition(|c| c.header(":path") == Some(NOTIFY_PATH));
    with(|h| h.calls = other);
    notify
        .into_iter()
        .map(|c| {
            assert_eq!(c.upstream, "sidecar");
            assert_eq!(c.header(":path"), Some(NOTIFY_PATH));
            assert_eq!(c.header(":method"), Some("POST"));
            answer_call(FILTER, c.token, Some("202"), b"queued\n");
            serde_json::from_slice(&c.body).unwrap()
        })
        .collect()
}

#[test]
fn a_bad_configuration_refuses_to_start_and_names_the_key() {
    install_root();
    assert!(!start_root(7, r#"{"notify_timout_ms": 5}"#));
    let logged = with(|h| h.logs.iter().any(|(_, m)| m.contains("notify_timout_ms")));
    assert!(logged, "the error names the key");
}

#[test]
fn miss_passes_through_and_notifies_once_the_response_is_a_public_image() {
    setup();
    let x = exchange(
        FILTER,
        10,
        &image_request("/img/a.jpg", "image/avif,image/webp,*/*", CHROME_DESKTOP),
        routed,
    );
    assert_eq!(
        x.request("x-rendition-variant"),
        None,
        "a miss goes to the origin untouched"
    );
    assert_eq!(
        x.response("x-rendition"),
        Some("miss; mask=0x0a; reason=no_variant")
    );
    let vary = x.response("vary").unwrap();
    for h in ["Accept", "Save-Data", "Sec-CH-DPR", "User-Agent"] {
        assert!(vary.contains(h), "{vary}");
    }
    assert!(x.response("accept-ch").unwrap().contains("Sec-CH-DPR"));
    let sent = notifies();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0],
        serde_json::json!({"host": HOST, "path": "/img/a.jpg", "mask": 0x0a, "etag": "\"v1\""})
    );
    assert_eq!(stat("rendition.notifies_sent"), 1);
    assert_eq!(stat("rendition.notifies_failed"), 0);
    assert_eq!(stat("rendition.misses"), 1);
    // The same miss again within renotify_after_ms: no second notify.
    exchange(
        FILTER,
        11,
        &image_request("/img/a.jpg", "image/avif,image/webp,*/*", CHROME_DESKTOP),
        routed,
    );
    assert!(notifies().is_empty());
}

/// The notify body is the contract's golden bytes (`shared/tests/golden/notify.json`), byte for
/// byte: the sidecar's tests accept the same file.
#[test]
fn the_notify_body_is_the_golden_json() {
    setup();
    let request = vec![
        (":method", "GET"),
        (":path", "/img/a.jpg?v=2"),
        (":authority", "shop.example"),
        ("accept", "image/avif,image/webp,*/*"),
        ("user-agent", CHROME_DESKTOP),
    ];
    exchange(FILTER, 10, &request, |_| {
        let mut headers = origin_image();
        headers.push((
            "last-modified".into(),
            "Wed, 21 Oct 2026 07:28:00 GMT".into(),
        ));
        headers
    });
    tick(FILTER);
    let calls = take_calls();
    let notify: Vec<_> = calls
        .iter()
        .filter(|c| c.header(":path") == Some(NOTIFY_PATH))
        .collect();
    assert_eq!(notify.len(), 1);
    assert_eq!(
        notify[0].body,
        include_bytes!("../../shared/tests/golden/notify.json")
    );
    assert_eq!(notify[0].header("content-type"), Some("application/json"));
}

#[test]
fn without_an_index_sync_every_image_is_a_miss_that_notifies() {
    install_root();
    assert!(start_root(FILTER, ""));
    let x = exchange(
        FILTER,
        10,
        &image_request("/a.png", "image/webp", ANDROID),
        |_| origin_image(),
    );
    assert_eq!(
        x.response("x-rendition"),
        Some("miss; mask=0x01; reason=no_index")
    );
    assert_eq!(stat("rendition.index_unavailable"), 1);
    assert_eq!(notifies().len(), 1);
}

#[test]
fn client_sent_internal_headers_never_route() {
    setup();
    let key = SourceKey::new(HOST, "/img/a.jpg").unwrap().id();
    let mut req = image_request("/img/a.jpg", "*/*", "curl/8");
    let forged = format!("{key}/8");
    req.push(("x-rendition-variant", &forged));
    req.push(("X-Rendition-Debug", "1"));
    let x = exchange(FILTER, 10, &req, routed);
    assert!(x
        .upstream_request
        .iter()
        .all(|(k, _)| !k.to_ascii_lowercase().starts_with("x-rendition-")));
    assert_eq!(
        x.response("content-type"),
        Some("image/jpeg"),
        "the origin answered"
    );
    // Also on requests the filter otherwise ignores.
    let x = exchange(
        FILTER,
        11,
        &[
            (":method", "GET"),
            (":path", "/"),
            (":authority", HOST),
            ("x-rendition-variant", &forged),
        ],
        |_| {
            vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "text/html".into()),
            ]
        },
    );
    assert_eq!(x.request("x-rendition-variant"), None);
    assert_eq!(
        x.response("x-rendition"),
        None,
        "non-image requests get no header"
    );
}

/// The filter reads the request's headers in one pass, names compared whatever their case.
#[test]
fn credentialed_requests_bypass_whatever_the_name_case() {
    setup();
    for name in ["authorization", "Authorization", "AUTHORIZATION"] {
        let mut req = image_request("/img/a.jpg", "image/avif,*/*", CHROME_DESKTOP);
        req.push((name, "Bearer t"));
        let x = exchange(FILTER, 10, &req, routed);
        assert_eq!(x.request("x-rendition-variant"), None, "{name}");
        assert_eq!(
            x.response("x-rendition"),
            Some("bypass; mask=0x0a; reason=authorization"),
            "{name}"
        );
    }
}

#[test]
fn an_idle_worker_has_no_tick() {
    install_root();
    assert!(start_root(FILTER, "{}"));
    let tick_ms = || with(|h| h.tick_ms);
    assert_eq!(tick_ms(), 0, "no tick before the first request");
    exchange(
        FILTER,
        10,
        &image_request("/img/a.jpg", "image/webp", ANDROID),
        |_| origin_image(),
    );
    assert_eq!(
        tick_ms(),
        25,
        "a request starts the tick (its counters, its notify)"
    );
    // The tick sends the notify and flushes; the answer needs one more tick (its counters).
    assert_eq!(notifies().len(), 1);
    assert_eq!(tick_ms(), 25);
    tick(FILTER);
    assert_eq!(tick_ms(), 0, "nothing left: the tick stops");
    assert_eq!(
        metric("rendition.notifies_sent"),
        1,
        "flushed before it stopped"
    );
    assert_eq!(metric("rendition.entered"), 1);
    // Another request starts it again.
    exchange(
        FILTER,
        11,
        &[
            (":method", "GET"),
            (":path", "/about.html"),
            (":authority", HOST),
        ],
        |_| vec![(":status".into(), "200".into())],
    );
    assert_eq!(tick_ms(), 25);
    assert_eq!(
        (stat("rendition.entered"), stat("rendition.requests")),
        (2, 1),
        "entered counts every request the filter runs on, requests only image paths"
    );
    assert_eq!(tick_ms(), 0);
}

#[test]
fn the_sync_fills_shared_data_and_a_hit_routes_to_the_sidecar() {
    setup();
    let first = sync_page(
        0xabc,
        2,
        vec![
            entry("/img/a.jpg", 1, &[0x08, 0x0a]),
            entry("/img/b.png", 2, &[0x08]),
        ],
    );
    assert!(
        first.starts_with(&format!("{INDEX_PATH}?since=0&wait_ms=0&")),
        "{first}: first contact asks without waiting"
    );
    let m = meta();
    assert!(m.sidecar_up);
    assert_eq!(
        (m.store_id, m.applied_seq, m.records, m.buckets, m.ways),
        (0xabc, 2, 2, 64, 2)
    );
    // Up to date: the next poll long-polls from seq 2.
    let next = take_calls();
    assert_eq!(next.len(), 1);
    assert!(next[0]
        .header(":path")
        .unwrap()
        .starts_with(&format!("{INDEX_PATH}?since=2&wait_ms=5000&")));
    assert_eq!(stat("rendition.index.records"), 2);
    assert_eq!(stat("rendition.index.applied_seq"), 2);

    with(|h| h.header_edits = Some(Vec::new()));
    let x = exchange(
        FILTER,
        10,
        &image_request("/img/a.jpg", "image/avif,image/webp,*/*", CHROME_DESKTOP),
        routed,
    );
    let key = SourceKey::new(HOST, "/img/a.jpg").unwrap().id();
    // One host call per edit: the routing header in, the sidecar's marker out, Accept-CH and
    // the debug header. The sidecar's Vary already lists every name, so it is left alone.
    assert_eq!(
        with(|h| h.header_edits.take()).unwrap_or_default(),
        [
            "replace x-rendition-variant",
            "remove x-rendition-variant",
            "replace accept-ch",
            "replace x-rendition",
        ]
    );
    assert_eq!(x.response("vary"), Some(VARY));
    assert_eq!(
        x.request("x-rendition-variant"),
        Some(format!("{key}/a").as_str())
    );
    assert_eq!(
        x.request(":path"),
        Some("/img/a.jpg"),
        "the path stays, so Envoy can retry at the origin"
    );
    assert!(with(|h| h
        .foreign_calls
        .contains(&"clear_route_cache".to_owned())));
    assert_eq!(
        x.response("x-rendition"),
        Some("hit; mask=0x0a; variant=0x0a; step=exact")
    );
    assert_eq!(
        x.response("x-rendition-variant"),
        None,
        "the sidecar's internal header is not sent on"
    );
    assert_eq!(stat("rendition.hits"), 1);
    assert_eq!(stat("rendition.hits_by_step.exact"), 1);
    assert!(notifies().is_empty(), "an exact hit asks for nothing");
}

#[test]
fn a_hit_the_origin_answered_is_a_counted_failover() {
    setup();
    sync_page(1, 1, vec![entry("/img/a.jpg", 1, &[0x0a])]);
    let x = exchange(
        FILTER,
        10,
        &image_request("/img/a.jpg", "image/avif,*/*", CHROME_DESKTOP),
        |_| origin_image(),
    );
    assert_eq!(
        x.response("x-rendition"),
        Some("miss; mask=0x0a; reason=failover")
    );
    assert_eq!(stat("rendition.hit_failovers"), 1);
    assert_eq!((stat("rendition.hits"), stat("rendition.misses")), (0, 1));
}

#[test]
fn fallback_hits_ask_for_the_exact_slot_and_warm_up_at_the_threshold() {
    setup();
    sync_page(1, 1, vec![entry("/img/hot.jpg", 1, &[0x08])]);
    let req = image_request("/img/hot.jpg", "image/webp,*/*", ANDROID);
    let x = exchange(FILTER, 10, &req, routed);
    assert_eq!(
        x.response("x-rendition"),
        Some("hit; mask=0x01; variant=0x08; step=default")
    );
    let sent = notifies();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["mask"], 0x01, "the client's own slot is requested");
    for ctx in 11..15 {
        exchange(FILTER, ctx, &req, routed);
    }
    let sent = notifies();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["mask"],
        u64::from(CapabilityMask::WARMUP_SENTINEL),
        "5th fallback hit: warmup"
    );
    assert_eq!(stat("rendition.warmups_sent"), 1);
    assert_eq!(stat("rendition.hits_by_step.default"), 5);
    for ctx in 15..25 {
        exchange(FILTER, ctx, &req, routed);
    }
    assert_eq!(stat("rendition.warmups_sent"), 1, "one warmup per URL");
}

#[test]
fn private_cookie_and_non_image_responses_are_never_sent_for_optimization() {
    setup();
    let cases: [(&str, Vec<(String, String)>); 4] = [
        (
            "/p.jpg",
            vec![("cache-control".into(), "private, max-age=60".into())],
        ),
        ("/c.jpg", vec![("set-cookie".into(), "session=1".into())]),
        ("/s.jpg", vec![("cache-control".into(), "no-store".into())]),
        ("/h.jpg", vec![("content-type".into(), "text/html".into())]),
    ];
    for (i, (path, extra)) in cases.into_iter().enumerate() {
        exchange(
            FILTER,
            10 + i as u32,
            &image_request(path, "image/webp", ANDROID),
            move |_| {
                let mut r = origin_image();
                for (k, v) in extra {
                    r.retain(|(n, _)| *n != k);
                    r.push((k, v));
                }
                r
            },
        );
    }
    assert!(notifies().is_empty());
    // Credentials or another method: bypass, and nothing is asked either.
    let mut auth = image_request("/a.jpg", "image/webp", ANDROID);
    auth.push(("authorization", "Bearer x"));
    let x = exchange(FILTER, 20, &auth, |_| origin_image());
    assert_eq!(
        x.response("x-rendition"),
        Some("bypass; mask=0x01; reason=authorization")
    );
    let mut post = image_request("/a.jpg", "image/webp", ANDROID);
    post[0] = (":method", "POST");
    exchange(FILTER, 21, &post, |_| origin_image());
    assert!(notifies().is_empty());
    assert_eq!(stat("rendition.bypassed"), 2);
}

#[test]
fn sidecar_down_means_no_routing_and_a_new_store_means_resync() {
    setup();
    sync_page(1, 1, vec![entry("/img/a.jpg", 1, &[0x0a])]);
    // The long-poll times out with no answer at all: marked down at once.
    let call = take_calls().pop().unwrap();
    answer_call(SYNC, call.token, None, b"");
    assert!(!meta().sidecar_up);
    assert_eq!(stat("rendition.index.poll_failures"), 1);
    let req = image_request("/img/a.jpg", "image/avif,*/*", CHROME_DESKTOP);
    let x: Exchange = exchange(FILTER, 10, &req, routed);
    assert_eq!(
        x.response("x-rendition"),
        Some("miss; mask=0x0a; reason=sidecar_down")
    );
    assert_eq!(x.request("x-rendition-variant"), None);
    // No retry before retry_ms.
    tick(SYNC);
    assert!(take_calls().is_empty());
    with(|h| h.now_ms += 1_500);
    // The sidecar came back on an empty disk: another store id. Asked from 1, the page is
    // about another store: resync, epoch bump, ask again from 0 at once.
    let path = sync_page(2, 0, vec![]);
    assert!(
        path.starts_with(&format!("{INDEX_PATH}?since=1&wait_ms=0")),
        "{path}"
    );
    assert_eq!(stat("rendition.index.resyncs"), 1);
    let m = meta();
    assert_eq!((m.store_id, m.applied_seq, m.records), (2, 0, 0));
    let again = take_calls();
    assert!(again[0]
        .header(":path")
        .unwrap()
        .starts_with(&format!("{INDEX_PATH}?since=0&wait_ms=0")));
    answer_call(
        SYNC,
        again[0].token,
        Some("200"),
        &FeedPage {
            store_id: 2,
            last_seq: 0,
            compacted_seq: 0,
            entries: vec![],
        }
        .encode(),
    );
    // The old record is gone with the old epoch: a miss, not a hit on a variant that no longer exists.
    let x = exchange(FILTER, 11, &req, routed);
    assert_eq!(
        x.response("x-rendition"),
        Some("miss; mask=0x0a; reason=no_variant")
    );
}

#[test]
fn refused_sources_are_not_asked_again() {
    setup();
    let mut e = entry("/bad.jpg", 1, &[]);
    e.record.refused = true;
    sync_page(1, 1, vec![e]);
    let x = exchange(
        FILTER,
        10,
        &image_request("/bad.jpg", "image/webp", ANDROID),
        routed,
    );
    assert_eq!(
        x.response("x-rendition"),
        Some("miss; mask=0x01; reason=refused")
    );
    assert!(notifies().is_empty());
}

#[test]
fn a_deleted_source_leaves_the_table_and_the_records_gauge() {
    setup();
    sync_page(
        1,
        2,
        vec![entry("/a.jpg", 1, &[0x08]), entry("/b.jpg", 2, &[0x08])],
    );
    assert_eq!((meta().records, stat("rendition.index.records")), (2, 2));
    // Tombstones (empty records): one for a source in the table, one for a source it never
    // held. Only the first is a removal.
    sync_page(
        1,
        4,
        vec![entry("/a.jpg", 3, &[]), entry("/never.jpg", 4, &[])],
    );
    assert_eq!((meta().records, stat("rendition.index.records")), (1, 1));
    assert_eq!(meta().applied_seq, 4);
    let x = exchange(
        FILTER,
        10,
        &image_request("/a.jpg", "image/webp", ANDROID),
        routed,
    );
    assert_eq!(
        x.response("x-rendition"),
        Some("miss; mask=0x01; reason=no_variant")
    );
}

#[test]
fn a_notify_flood_is_bounded_and_counted() {
    setup();
    for i in 0..300u32 {
        let path = format!("/flood/{i}.jpg");
        exchange(
            FILTER,
            100 + i,
            &image_request(&path, "image/webp", ANDROID),
            |_| origin_image(),
        );
    }
    assert_eq!(
        stat("rendition.notifies_dropped"),
        300 - 256,
        "notify_queue = 256"
    );
    // Sent 16 at a time (notify_in_flight); answers free room for more.
    tick(FILTER);
    let calls = take_calls();
    assert_eq!(calls.len(), 16);
    for c in &calls {
        answer_call(FILTER, c.token, Some("429"), b"");
    }
    assert_eq!(
        stat("rendition.notifies_failed"),
        16,
        "a 429 from the sidecar counts as failed"
    );
    tick(FILTER);
    assert_eq!(take_calls().len(), 16);
}

#[test]
fn full_buckets_evict_and_count() {
    setup();
    // 64 buckets x 2 ways = 128 sources at most; 300 distinct entries must evict.
    let entries: Vec<IndexEntry> = (0..300)
        .map(|i| entry(&format!("/e/{i}.jpg"), i + 1, &[0x08]))
        .collect();
    sync_page(1, 300, entries);
    let evicted = stat("rendition.index.evictions");
    assert!(evicted >= 300 - 128, "{evicted}");
    let keys = with(|h| h.shared.len());
    assert!(
        keys <= 64 + 1,
        "bucket keys + meta, whatever the number of sources: {keys}"
    );
}

#[test]
fn list_headers_sent_as_several_lines_are_read_whole() {
    setup();
    let request = image_request("/img/v.jpg", "image/avif,image/webp,*/*", CHROME_DESKTOP);
    // `Vary: Cookie` on a second line: not optimizable, and the `Vary` written back keeps it.
    let x = exchange(FILTER, 10, &request, |_| {
        let mut r = origin_image();
        r.push(("vary".into(), "Accept-Encoding".into()));
        r.push(("vary".into(), "Cookie".into()));
        r
    });
    assert_eq!(stat("rendition.not_optimized.vary"), 1);
    let vary: Vec<&str> = x
        .client_response
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("vary"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(vary.len(), 1, "{vary:?}");
    for name in ["Accept-Encoding", "Cookie", "Accept", "Save-Data"] {
        assert!(vary[0].contains(name), "{name} in {vary:?}");
    }
    // `no-transform` on a second `Cache-Control` line: the response passes as sent.
    let request = image_request("/img/n.jpg", "image/avif,image/webp,*/*", CHROME_DESKTOP);
    let x = exchange(FILTER, 11, &request, |_| {
        let mut r = origin_image();
        r.push(("cache-control".into(), "no-transform".into()));
        r
    });
    assert_eq!(stat("rendition.not_optimized.no_transform"), 1);
    assert_eq!(x.response("vary"), None, "headers too");
    assert!(notifies().is_empty(), "neither is worth a notify");
}

/// A worker whose index holds `/img/a.jpg`, and an AVIF client's request that misses and one
/// that hits (the requests of the cost tests).
fn miss_and_hit() -> (Request, Request) {
    setup();
    sync_page(1, 1, vec![entry("/img/a.jpg", 1, &[0x08, 0x0a])]);
    let accept = "image/avif,image/webp,*/*";
    (
        image_request("/img/miss.jpg", accept, CHROME_DESKTOP),
        image_request("/img/a.jpg", accept, CHROME_DESKTOP),
    )
}

/// What a request costs in Envoy is mostly its crossings between the VM and the host, and the
/// dearest are the calls whose answer the host copies into the VM (it calls back into the
/// module to allocate the copy): a header map, a shared-data value. The counts below are per
/// request, pinned so that a change that adds a crossing to the hot path is a decision, not
/// an accident (`docs/benchmarks.md` measures one such crossing at about 0.7 us in Envoy).
#[test]
fn host_calls_per_request() {
    let (miss, hit) = miss_and_hit();
    // Warm: the first requests start the notify tick and read the index meta and the bucket
    // from shared data into the worker's caches.
    exchange(FILTER, 10, &miss, |_| origin_image());
    exchange(FILTER, 11, &hit, routed);
    let miss_calls = host_calls(|| {
        exchange(FILTER, 20, &miss, |_| origin_image());
    });
    let hit_calls = host_calls(|| {
        exchange(FILTER, 21, &hit, routed);
    });
    // Exact tables: no header read by name, no log line, no shared-data read on either path.
    let pinned = |calls: &[(&'static str, u32)]| calls.iter().copied().collect();
    assert_eq!(miss_calls, pinned(PINNED_MISS_CALLS), "miss");
    assert_eq!(hit_calls, pinned(PINNED_HIT_CALLS), "hit");
}

/// Not a test: the shell's own cost per request, natively (`cargo test --release -p
/// rendition-filter --test shell -- --ignored --nocapture per_request_cost`).
#[test]
#[ignore]
fn per_request_cost() {
    let (miss, hit) = miss_and_hit();
    for (name, req) in [("miss", &miss), ("hit", &hit)] {
        let n = 20_000u32;
        let t = std::time::Instant::now();
        for i in 0..n {
            exchange(FILTER, 1000 + i, req, routed);
        }
        println!(
            "{name}: {:.2} us per request",
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        );
    }
}

/// Host calls of one warm miss and one warm hit (`host_calls_per_request`). The index meta
/// and the buckets come from the worker's caches, so neither path reads shared data; counters
/// are plain memory until the tick publishes them.
const PINNED_MISS_CALLS: &[(&str, u32)] = &[
    // The clock: the index meta's age and the notify outbox.
    ("proxy_get_current_time_nanoseconds", 2),
    // The request map and the response map, each read once.
    ("proxy_get_header_map_pairs", 2),
    // Vary (the origin listed none of ours), Accept-CH, the debug header.
    ("proxy_replace_header_map_value", 3),
];
const PINNED_HIT_CALLS: &[(&str, u32)] = &[
    // `clear_route_cache`, so the routing header selects the sidecar's route.
    ("proxy_call_foreign_function", 1),
    ("proxy_get_current_time_nanoseconds", 1),
    ("proxy_get_header_map_pairs", 2),
    // The sidecar's marker, off the response.
    ("proxy_remove_header_map_value", 1),
    // The routing header on the request; Accept-CH and the debug header on the response (the
    // sidecar's Vary already lists every name).
    ("proxy_replace_header_map_value", 3),
];
