//! The HTTP listener: accepts connections, serves the router on each with hyper, and keeps
//! clients that connect and then stall from holding the sidecar (docs/operations.md,
//! "Connections"):
//!
//! * **header read timeout** (`server.header_read_timeout_ms`): from the first byte of a
//!   request to the end of its headers; a slower connection is closed;
//! * **idle timeout** (`server.idle_timeout_ms`): a connection with no request in progress and
//!   no byte either way for this long is closed. A request in progress (an `/index` long-poll,
//!   a response being written) is never idle;
//! * **a bound on open connections** ([`ConnectionLimits::max_open`]): `server.max_connections`,
//!   lowered to stay [`FD_RESERVE`] descriptors under the process's limit. At the bound a new
//!   connection closes the one idle the longest (no request in progress) to make room; when
//!   every open connection has a request in progress the new one is answered `503` and closed;
//! * **shutdown** with a deadline: the listener closes, connections with no request in progress
//!   close at once, requests in progress get `server.drain_timeout_ms` to finish (hyper's
//!   graceful shutdown: no keep-alive after them), then every remaining connection is dropped.
//!
//! axum::serve has none of these: idle TCP connections were held until the process ran out of
//! descriptors and stopped answering Envoy, and one half-sent request kept SIGTERM from ever
//! finishing. The timers are ours, not hyper's: hyper's header read timeout also runs while a
//! keep-alive connection waits for its next request, so the idle timeout could never be longer
//! than the header timeout. What a connection is doing is learnt from its bytes (a counting
//! wrapper around the socket) and from the router (requests handed to it and not yet answered,
//! the response body included).

use super::state::AppState;
use crate::config::ServerConfig;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower_service::Service;

/// Descriptors kept for everything but client connections: the store's files, origin
/// fetches, the runtime's own, the listener, and the brief socket of a refused connection.
pub const FD_RESERVE: u64 = 256;

/// What a client past the bound gets when no connection is idle: then every open connection
/// has a request in progress, and Envoy's retry sends this one to the origin.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// The connection limits in force (configuration plus the descriptor limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_open: usize,
    pub drain_timeout: Duration,
}

impl ConnectionLimits {
    /// `config`, with `max_connections` lowered to fit under `fd_limit` (the soft
    /// `RLIMIT_NOFILE`; `None`: unlimited).
    pub fn new(config: &ServerConfig, fd_limit: Option<u64>) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            max_open: connection_bound(config.max_connections, fd_limit),
            drain_timeout: Duration::from_millis(config.drain_timeout_ms),
        }
    }
}

/// `max_connections`, lowered to leave [`FD_RESERVE`] descriptors (half of a smaller limit)
/// for everything else under `fd_limit`; at least 1.
pub fn connection_bound(max_connections: usize, fd_limit: Option<u64>) -> usize {
    let Some(limit) = fd_limit else {
        return max_connections.max(1);
    };
    let usable = limit - FD_RESERVE.min(limit / 2);
    max_connections
        .min(usize::try_from(usable).unwrap_or(usize::MAX))
        .max(1)
}

/// The soft descriptor limit (`RLIMIT_NOFILE`) in force; `None` when unlimited.
pub fn fd_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raises the soft descriptor limit to what `max_connections` needs (plus [`FD_RESERVE`]),
/// never past the hard limit and never lowering it; returns the soft limit then in force.
/// Many systems start processes at a soft limit of 1024 under a far higher hard one.
pub fn raise_fd_limit(max_connections: usize) -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = (max_connections as u64).saturating_add(FD_RESERVE);
    let (Some(current), maximum) = (limit.current, limit.maximum) else {
        return None;
    };
    let target = maximum.map_or(wanted, |max| max.min(wanted));
    if target <= current {
        return Some(current);
    }
    let raised = Rlimit {
        current: Some(target),
        maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some(target),
        Err(e) => {
            tracing::warn!("could not raise the descriptor limit from {current} to {target}: {e}");
            Some(current)
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (module doc).
pub async fn serve(
    state: Arc<AppState>,
    router: Router,
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let (phase, phase_rx) = watch::channel(Phase::Running);
    let stats = &state.stats;
    tokio::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors or memory: the connection waits in the backlog while
                    // open ones close; try again shortly.
                    if last_accept_error.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!("accept failed: {e} (retrying every 100 ms)");
                        last_accept_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        stats.add(&stats.connections_accepted, 1);
        let conn = Arc::new(Conn::new());
        let id = match registry.admit(&conn, limits.max_open) {
            Admission::Admitted { id, evicted } => {
                if evicted {
                    stats.add(&stats.connections_evicted, 1);
                }
                id
            }
            Admission::Refused => {
                stats.add(&stats.connections_refused, 1);
                stats.add(&stats.connections_closed, 1);
                // Best effort on a fresh socket (its send buffer is empty), then closed.
                let _ = stream.try_write(BUSY);
                continue;
            }
        };
        let task = ConnectionTask {
            state: Arc::clone(&state),
            router: router.clone(),
            conn,
            peer,
            limits,
            phase: phase_rx.clone(),
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            task.run(stream).await;
            registry.remove(id);
        });
    }
    drop(listener);
    let open = registry.len();
    tracing::info!(
        "shutting down: {open} connections open, up to {} ms for requests in progress",
        limits.drain_timeout.as_millis()
    );
    phase.send_replace(Phase::Draining);
    let deadline = Instant::now() + limits.drain_timeout;
    while registry.len() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = registry.len();
    if left > 0 {
        tracing::warn!("drain deadline reached: dropping {left} connections");
        phase.send_replace(Phase::Stopped);
        // Each task drops its connection as soon as it sees the phase change.
        let stop_by = Instant::now() + Duration::from_secs(1);
        while registry.len() > 0 && Instant::now() < stop_by {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// Accept errors about the one connection (it was gone before we took it), not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// Stop accepting; let requests in progress finish, close the rest.
    Draining,
    /// The drain deadline passed: drop everything.
    Stopped,
}

/// What the timers and the bound know about one connection. Times are milliseconds since
/// `opened`, in atomics: the accept loop reads them to choose a connection to evict.
struct Conn {
    opened: Instant,
    /// The last byte read or written.
    last_byte_ms: AtomicU64,
    /// The first byte of a request whose headers are not complete yet, plus one (0: none).
    head_started_ms: AtomicU64,
    /// Requests handed to the router whose response is not completely written.
    in_flight: AtomicU32,
    /// Chosen to make room for a new connection.
    evict: Notify,
}

/// Why a connection was closed by us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    Idle,
    HeaderTimeout,
    Evicted,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            opened: Instant::now(),
            last_byte_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            evict: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Relaxed) == 0
    }

    fn bytes_read(&self) {
        let now = self.now_ms();
        self.last_byte_ms.store(now, Relaxed);
        if self.is_idle() && self.head_started_ms.load(Relaxed) == 0 {
            self.head_started_ms.store(now + 1, Relaxed);
        }
    }

    fn bytes_written(&self) {
        self.last_byte_ms.store(self.now_ms(), Relaxed);
    }

    /// hyper parsed a request's headers and handed it to the router.
    fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_started_ms.store(0, Relaxed);
    }

    fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.last_byte_ms.store(self.now_ms(), Relaxed);
    }

    /// When the connection is due to be closed, and why; `None` while a request is in
    /// progress.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Closed)> {
        if !self.is_idle() {
            return None;
        }
        let ms = Duration::from_millis;
        match self.head_started_ms.load(Relaxed) {
            0 => Some((
                self.opened + ms(self.last_byte_ms.load(Relaxed)) + limits.idle_timeout,
                Closed::Idle,
            )),
            started => Some((
                self.opened + ms(started - 1) + limits.header_read_timeout,
                Closed::HeaderTimeout,
            )),
        }
    }

    /// Resolves when the connection must be closed: a timer ran out, or it was evicted.
    ///
    /// It looks again at least every header read timeout: a request head that starts while
    /// it sleeps towards a later deadline (idle, or a request in progress) moves the
    /// deadline earlier, and a look within a header timeout of the head's first byte still
    /// comes before the head's deadline, so that deadline is kept to the tick.
    async fn expired(&self, limits: &ConnectionLimits) -> Closed {
        loop {
            let now = Instant::now();
            let next_look = now + limits.header_read_timeout;
            let wake = match self.deadline(limits) {
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => at.min(next_look),
                None => next_look,
            };
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = self.evict.notified() => return Closed::Evicted,
            }
        }
    }
}

enum Admission {
    Admitted { id: u64, evicted: bool },
    Refused,
}

/// The open connections, for the bound and the drain.
#[derive(Default)]
struct Registry {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Registry {
    /// Registers `conn`; at `max_open`, evicts the connection idle the longest first, or
    /// refuses `conn` when none is idle.
    fn admit(&self, conn: &Arc<Conn>, max_open: usize) -> Admission {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mut evicted = false;
        if open.len() >= max_open {
            let oldest = open
                .iter()
                .filter(|(_, c)| c.is_idle())
                .min_by_key(|(_, c)| c.opened + Duration::from_millis(c.last_byte_ms.load(Relaxed)))
                .map(|(id, _)| *id);
            let Some(victim) = oldest.and_then(|id| open.remove(&id)) else {
                return Admission::Refused;
            };
            // It no longer counts; its task closes the socket as soon as it runs.
            victim.evict.notify_one();
            evicted = true;
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        open.insert(id, Arc::clone(conn));
        Admission::Admitted { id, evicted }
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One accepted connection, served until it ends, a timer closes it, or shutdown.
struct ConnectionTask {
    state: Arc<AppState>,
    router: Router,
    conn: Arc<Conn>,
    peer: SocketAddr,
    limits: ConnectionLimits,
    phase: watch::Receiver<Phase>,
}

impl ConnectionTask {
    async fn run(mut self, stream: TcpStream) {
        let (conn, peer, router) = (Arc::clone(&self.conn), self.peer, self.router.clone());
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = InFlight::start(Arc::clone(&conn));
            let mut req = req.map(axum::body::Body::new);
            // What into_make_service_with_connect_info gives: the admin routes check the peer.
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                let response = router.call(req).await?;
                Ok::<_, Infallible>(response.map(|body| CountedBody {
                    body,
                    _guard: guard,
                }))
            }
        });
        let io = TokioIo::new(CountedIo {
            stream,
            conn: Arc::clone(&self.conn),
        });
        let http = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        tokio::pin!(http);
        let stats = &self.state.stats;
        let mut draining = false;
        loop {
            tokio::select! {
                _ = http.as_mut() => break,
                why = self.conn.expired(&self.limits) => {
                    match why {
                        Closed::Idle => stats.add(&stats.connections_idle_closed, 1),
                        Closed::HeaderTimeout => stats.add(&stats.connections_header_timeouts, 1),
                        Closed::Evicted => {} // counted when chosen
                    }
                    break;
                }
                changed = self.phase.changed() => {
                    let phase = match changed {
                        Ok(()) => *self.phase.borrow_and_update(),
                        Err(_) => Phase::Stopped,
                    };
                    match phase {
                        Phase::Running => {}
                        // Nothing in progress (idle, or a request still arriving): close now.
                        Phase::Draining if self.conn.is_idle() => break,
                        Phase::Draining => {
                            if !draining {
                                // Finish the request in progress, no keep-alive after it.
                                http.as_mut().graceful_shutdown();
                                draining = true;
                            }
                        }
                        Phase::Stopped => {
                            stats.add(&stats.connections_dropped_at_shutdown, 1);
                            break;
                        }
                    }
                }
            }
        }
        stats.add(&stats.connections_closed, 1);
    }
}

/// Counts a request from the moment hyper hands it to the router until its response body is
/// written (or dropped): a connection writing a response is not idle.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn start(conn: Arc<Conn>) -> InFlight {
        conn.request_started();
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The router's response body, holding the request's [`InFlight`] until hyper drops it.
struct CountedBody {
    body: axum::body::Body,
    _guard: InFlight,
}

impl hyper::body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling its [`Conn`] about every byte read and written.
struct CountedIo {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for CountedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for CountedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.bytes_written();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.bytes_written();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_stays_under_the_descriptor_limit() {
        assert_eq!(connection_bound(4096, None), 4096);
        assert_eq!(connection_bound(4096, Some(1_048_576)), 4096);
        assert_eq!(connection_bound(4096, Some(1024)), 1024 - 256);
        assert_eq!(connection_bound(100, Some(1024)), 100);
        // A tiny limit keeps half for the rest.
        assert_eq!(connection_bound(4096, Some(300)), 150);
        assert_eq!(connection_bound(4096, Some(1)), 1);
    }

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_open: 2,
            drain_timeout: Duration::from_secs(10),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timers_follow_what_the_connection_does() {
        let c = Conn::new();
        let l = limits();
        assert_eq!(
            c.deadline(&l),
            Some((c.opened + l.idle_timeout, Closed::Idle))
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        c.bytes_read(); // the first byte of a request
        let head = c.opened + Duration::from_secs(5) + l.header_read_timeout;
        assert_eq!(c.deadline(&l), Some((head, Closed::HeaderTimeout)));
        tokio::time::advance(Duration::from_secs(2)).await;
        c.bytes_read(); // more of the same headers: the header deadline does not move
        assert_eq!(c.deadline(&l), Some((head, Closed::HeaderTimeout)));
        c.request_started();
        assert_eq!(c.deadline(&l), None, "a request in progress is never idle");
        tokio::time::advance(Duration::from_secs(600)).await;
        c.request_finished();
        let idle = c.opened + Duration::from_secs(607) + l.idle_timeout;
        assert_eq!(c.deadline(&l), Some((idle, Closed::Idle)));
        tokio::time::advance(l.idle_timeout).await;
        assert_eq!(c.expired(&l).await, Closed::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_on_an_idle_connection_gets_the_header_timeout_not_the_idle_one() {
        let c = Arc::new(Conn::new());
        let l = limits();
        let started = Instant::now();
        let watcher = {
            let c = Arc::clone(&c);
            tokio::spawn(async move { (c.expired(&l).await, Instant::now()) })
        };
        // The watcher sleeps towards the idle deadline (60 s); a head starts at 15 s.
        tokio::time::sleep(Duration::from_secs(15)).await;
        c.bytes_read();
        let (why, at) = watcher.await.unwrap();
        assert_eq!(why, Closed::HeaderTimeout);
        // 15 s + the 10 s header timeout (to the timer's millisecond), not the 60 s idle one.
        let took = at - started;
        assert!(
            took >= Duration::from_secs(25) && took < Duration::from_millis(25_010),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_bound_the_longest_idle_connection_makes_room() {
        let r = Registry::default();
        let (a, b, c, d) = (
            Arc::new(Conn::new()),
            Arc::new(Conn::new()),
            Arc::new(Conn::new()),
            Arc::new(Conn::new()),
        );
        assert!(matches!(
            r.admit(&a, 2),
            Admission::Admitted { evicted: false, .. }
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(
            r.admit(&b, 2),
            Admission::Admitted { evicted: false, .. }
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        a.bytes_written(); // a was active more recently than b
        assert!(matches!(
            r.admit(&c, 2),
            Admission::Admitted { evicted: true, .. }
        ));
        assert_eq!(r.len(), 2);
        assert_eq!(b.expired(&limits()).await, Closed::Evicted);
        // Every open connection busy: the new one is refused.
        a.request_started();
        c.request_started();
        assert!(matches!(r.admit(&d, 2), Admission::Refused));
        assert_eq!(r.len(), 2);
    }
}
