//! Security properties of the sidecar tested in-process (docs/RELIABILITY.md); the same points through
//! the real Envoy + filter + sidecar binary are in tests/e2e/security_e2e.py.
//!
//! * admin routes (`/stats`, `/metrics`, `/purge`, `/report`, `/report/source/{key}`) from a
//!   non-loopback peer: 403 without the bearer token (or with a wrong one, or with a forged
//!   `X-Forwarded-For`), allowed with it; loopback peers need none;
//! * SSRF: the URL fetched never leaves the configured base URL, whatever path a notify names;
//!   redirects are never followed off the origin (to loopback, link-local, private or IPv6
//!   addresses), with `follow_redirects` off and on;
//! * the work queue is bounded: a flood of distinct sources past `queue.capacity` is answered
//!   429 and counted, never buffered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::extract::{ConnectInfo, Path};
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use rendition_shared::wire::NOTIFY_PATH;
use rendition_shared::SourceKey;
use rendition_sidecar::config::{Config, OriginsConfig};
use rendition_sidecar::origin::{FetchError, Origins};
use rendition_sidecar::service::{self, AppState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const TOKEN: &str = "0123456789abcdef-security-test";

/// A worker on a fresh store; its queue is never drained unless `run` is set. Its default
/// origin is never contacted unless `run` is set (port 9 is discard).
fn worker(name: &str, tweak: impl FnOnce(&mut Config), run: bool) -> Arc<AppState> {
    let name = format!("security-{name}");
    common::worker(
        &name,
        |config| {
            config.origins.default = Some("http://127.0.0.1:9".to_owned());
            tweak(config);
        },
        run,
    )
}

/// Serves the router on 127.0.0.1:0, with every request claiming to come from `peer` (the
/// extension `into_make_service_with_connect_info` sets in production).
async fn serve_as(w: &Arc<AppState>, peer: SocketAddr) -> SocketAddr {
    common::serve(service::app(Arc::clone(w)).layer(Extension(ConnectInfo(peer)))).await
}

async fn admin_statuses(
    addr: SocketAddr,
    auth: Option<&str>,
    forwarded: bool,
) -> Vec<(&'static str, StatusCode)> {
    let client = reqwest::Client::new();
    let key = SourceKey::new("shop.example", "/img/a.jpg").unwrap().id();
    let mut out = Vec::new();
    for (name, method, path) in [
        ("GET /stats", "GET", "/stats".to_owned()),
        ("GET /metrics", "GET", "/metrics".to_owned()),
        ("GET /report", "GET", "/report".to_owned()),
        ("GET /report/source", "GET", format!("/report/source/{key}")),
        ("POST /purge", "POST", "/purge".to_owned()),
    ] {
        let url = format!("http://{addr}{path}");
        let mut req = if method == "POST" {
            client
                .post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(r#"{"host": "shop.example", "path": "/img/a.jpg"}"#)
        } else {
            client.get(url)
        };
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        if forwarded {
            req = req
                .header("x-forwarded-for", "127.0.0.1")
                .header("x-real-ip", "127.0.0.1")
                .header("forwarded", "for=127.0.0.1");
        }
        out.push((name, req.send().await.unwrap().status()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_a_loopback_peer_or_the_token() {
    let remote: SocketAddr = "203.0.113.7:40000".parse().unwrap();
    let w = worker("admin", |c| c.admin_token = Some(TOKEN.to_owned()), false);
    let from_remote = serve_as(&w, remote).await;
    let bearer = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {TOKEN}x");
    let lower = format!("bearer {TOKEN}");
    for (auth, forwarded, allowed) in [
        (None, false, false),
        (None, true, false),
        (Some(wrong.as_str()), false, false),
        (Some(TOKEN), false, false),
        (Some(lower.as_str()), false, false),
        (Some(bearer.as_str()), false, true),
    ] {
        for (route, status) in admin_statuses(from_remote, auth, forwarded).await {
            // Allowed: 200, or 404 for /report/source of a source the store does not have.
            let passed = status != StatusCode::FORBIDDEN;
            assert_eq!(
                passed, allowed,
                "{route} from {remote} with {auth:?} (forwarded {forwarded}): {status}"
            );
            if allowed && route != "GET /report/source" {
                assert_eq!(status, StatusCode::OK, "{route}");
            }
        }
    }
    // Unauthenticated routes stay open (documented: keep the port private).
    let health = reqwest::get(format!("http://{from_remote}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // Loopback peers need no token, IPv4 and IPv6.
    for peer in ["127.0.0.1:5000", "[::1]:5000"] {
        let addr = serve_as(&w, peer.parse().unwrap()).await;
        for (route, status) in admin_statuses(addr, None, false).await {
            assert_ne!(status, StatusCode::FORBIDDEN, "{route} from {peer}");
        }
    }

    // Without a configured token no bearer opens them to a remote peer.
    let no_token = worker("admin-no-token", |_| {}, false);
    let addr = serve_as(&no_token, remote).await;
    for (route, status) in admin_statuses(addr, Some(&bearer), false).await {
        assert_eq!(status, StatusCode::FORBIDDEN, "{route}");
    }
}

fn origins(base: &str, follow_redirects: bool) -> Origins {
    let config = OriginsConfig {
        default: None,
        hosts: [("shop.example".to_owned(), base.to_owned())].into(),
        timeout_ms: 3_000,
        follow_redirects,
        ..OriginsConfig::default()
    };
    Origins::new(&config, 10 << 20).unwrap()
}

#[test]
fn a_notify_path_never_changes_the_address_fetched() {
    for base in ["http://127.0.0.1:8080", "http://origin.internal:81/prefix/"] {
        let o = origins(base, false);
        let want = reqwest::Url::parse(base).unwrap();
        for path in [
            "//169.254.169.254/latest/meta-data",
            "/@169.254.169.254/x.jpg",
            "/\\169.254.169.254/x.jpg",
            "/\\\\10.0.0.1/x.jpg",
            "/..%2f..%2f..%2fx.jpg",
            "/../../../x.jpg",
            "/x.jpg?u=http://10.0.0.1/&@10.0.0.1",
            "/x.jpg#@10.0.0.1",
            "/%40169.254.169.254/x.jpg",
            "/:80@10.0.0.1/x.jpg",
        ] {
            let key = SourceKey::new("shop.example", path).unwrap();
            let url = match o.url_for(&key) {
                Ok(url) => url,
                // `..` segments above a base path are refused, never resolved past it.
                Err(FetchError::OutsideBasePath(p)) if base.ends_with("/prefix/") => {
                    assert_eq!(p, "/prefix");
                    continue;
                }
                Err(e) => panic!("{base} + {path}: {e}"),
            };
            assert_eq!(
                (url.scheme(), url.host_str(), url.port_or_known_default()),
                (want.scheme(), want.host_str(), want.port_or_known_default()),
                "{base} + {path} -> {url}"
            );
            assert_eq!(url.username(), "", "{url}");
            assert_eq!(url.password(), None, "{url}");
        }
        // Unmapped hosts get no URL at all (no default origin).
        let other = SourceKey::new("169.254.169.254", "/x.jpg").unwrap();
        assert!(matches!(
            o.url_for(&other),
            Err(FetchError::HostNotConfigured(_))
        ));
        assert!(!o.is_configured("169.254.169.254"));
    }
}

#[test]
fn a_path_never_leaves_the_base_url_path() {
    let o = origins("http://origin.internal:81/static/", false);
    let fetched = |path: &str| o.url_for(&SourceKey::new("shop.example", path).unwrap());
    // Inside the prefix, `..` that stays under it is resolved as usual.
    assert_eq!(
        fetched("/img/../a.jpg").unwrap().as_str(),
        "http://origin.internal:81/static/a.jpg"
    );
    assert_eq!(
        fetched("/img/a.jpg?v=1").unwrap().as_str(),
        "http://origin.internal:81/static/img/a.jpg?v=1"
    );
    for escape in [
        "/../admin.jpg",
        "/img/../../admin.jpg",
        "/%2e%2e/admin.jpg",
        "/%2E%2E/admin.jpg",
        "/.%2e/admin.jpg",
        "/img/%2e%2e/%2e%2e/staticx/a.jpg",
    ] {
        assert!(
            matches!(fetched(escape), Err(FetchError::OutsideBasePath(ref p)) if p == "/static"),
            "{escape}: {:?}",
            fetched(escape)
        );
    }
    // A sibling directory that merely starts with the prefix's name is outside it too.
    assert!(fetched("/../staticx/a.jpg").is_err());
    // Without a base path, `..` cannot go anywhere but the root.
    let root = origins("http://origin.internal:81", false);
    let url = root
        .url_for(&SourceKey::new("shop.example", "/../../a.jpg").unwrap())
        .unwrap();
    assert_eq!(url.as_str(), "http://origin.internal:81/a.jpg");
}

/// Where `/redirect/{code}/{target}` points.
fn location(target: &str, code: u16, origin: SocketAddr, trap: SocketAddr) -> String {
    match target {
        "same" => "/img/rocket.jpg".to_owned(),
        "same-absolute" => format!("http://{origin}/img/rocket.jpg"),
        // one same-origin hop, then off the origin
        "chain" => format!("/redirect/{code}/loopback"),
        "loopback" => format!("http://{trap}/img/rocket.jpg"),
        // the very origin under another name is another origin
        "localhost" => format!("http://localhost:{}/img/rocket.jpg", origin.port()),
        "metadata" => "http://169.254.169.254/latest/meta-data/".to_owned(),
        "private" => "http://10.0.0.1/img/rocket.jpg".to_owned(),
        "ipv6" => format!("http://[::1]:{}/img/rocket.jpg", trap.port()),
        "https" => format!("https://{origin}/img/rocket.jpg"),
        // an upgrade to https, but to another host
        "https-localhost" => format!("https://localhost:{}/img/rocket.jpg", origin.port()),
        _ => "/".to_owned(),
    }
}

/// An origin whose `/redirect/{code}/{target}` answers a redirect, and a trap server that
/// counts every request it gets (it must get none).
async fn redirecting_origin() -> (SocketAddr, SocketAddr, Arc<AtomicUsize>) {
    let trapped = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&trapped);
    let trap = Router::new().fallback(move || {
        let c = Arc::clone(&counter);
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            common::demo("rocket.jpg")
        }
    });
    let trap_addr = common::serve(trap).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/img/rocket.jpg",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/jpeg")],
                    common::demo("rocket.jpg"),
                )
            }),
        )
        .route(
            "/redirect/{code}/{target}",
            get(
                move |Path((code, target)): Path<(u16, String)>| async move {
                    let to = location(&target, code, addr, trap_addr);
                    (
                        StatusCode::from_u16(code).unwrap(),
                        [(header::LOCATION, to)],
                    )
                },
            ),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, trap_addr, trapped)
}

async fn fetch(o: &Origins, code: u16, target: &str) -> Result<Vec<u8>, FetchError> {
    let key = SourceKey::new("shop.example", &format!("/redirect/{code}/{target}")).unwrap();
    o.fetch(&key).await.map(|f| f.bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_never_leave_the_origin() {
    let (addr, _trap, trapped) = redirecting_origin().await;
    let base = format!("http://{addr}");
    let off = origins(&base, false);
    let on = origins(&base, true);
    let rocket = common::demo("rocket.jpg");
    for code in [301, 302, 303, 307, 308] {
        for target in [
            "same",
            "same-absolute",
            "chain",
            "loopback",
            "localhost",
            "metadata",
            "private",
            "ipv6",
            "https",
            "https-localhost",
        ] {
            // Off (the default): nothing is followed, the fetch fails with the redirect status.
            let r = fetch(&off, code, target).await;
            assert_eq!(
                r.unwrap_err(),
                FetchError::Status(code),
                "off: {code} {target}"
            );
            // On: same origin only (scheme, host and port as configured), or the same host
            // over https (here the plain-http origin cannot speak TLS: a TLS error, and
            // nothing else was contacted).
            let r = fetch(&on, code, target).await;
            if target.starts_with("same") {
                assert_eq!(r.unwrap(), rocket, "on: {code} {target}");
            } else if target == "https" {
                let e = r.unwrap_err();
                assert!(
                    matches!(e, FetchError::Tls(_) | FetchError::Network(_)),
                    "on: {code} https upgrade followed: {e:?}"
                );
            } else {
                // Stopped at the redirect, not a failed connection: nothing was contacted.
                assert_eq!(
                    r.unwrap_err(),
                    FetchError::Status(code),
                    "on: {code} {target}"
                );
            }
        }
    }
    assert_eq!(
        trapped.load(Ordering::SeqCst),
        0,
        "a redirect reached the loopback trap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_sources_is_bounded_by_the_queue() {
    let w = worker("flood", |c| c.queue.capacity = 8, false);
    let addr = serve_as(&w, "127.0.0.1:1".parse().unwrap()).await;
    let client = reqwest::Client::new();
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..100 {
        let body = serde_json::json!({
            "host": "shop.example",
            "path": format!("/img/a.jpg?cachebust={i}"),
            "mask": 0x0a,
        });
        let status = client
            .post(format!("http://{addr}{NOTIFY_PATH}"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        match status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("notify {i}: {other}"),
        }
        assert!(w.queue.depth() <= 8, "queue_depth {}", w.queue.depth());
    }
    assert_eq!((accepted, refused), (8, 92));
    let stats: serde_json::Value = client
        .get(format!("http://{addr}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["queue_dropped"], 92);
    assert_eq!(stats["queue_depth"], 8);
    // Queued jobs are memory only: nothing reached the store.
    assert_eq!(stats["store_sources"], 0);
}
