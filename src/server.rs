//! The accept loop, connection limits and graceful shutdown. Knows nothing of caching: it hands every request to
//! [`Proxy`].
//!
//! Limits against slow or greedy clients (all in `[server]`):
//! - `max_connections`: a semaphore taken *before* `accept`, so connections beyond it wait in the kernel's accept
//!   queue (and, when that is full, are refused by the kernel) instead of costing a task and a buffer each.
//! - `header_read_timeout` and `idle_timeout`: a per-connection watchdog ([`ConnectionActivity`]). While no request
//!   is in progress, a connection that has sent nothing is closed after `idle_timeout`; one that has started
//!   sending (a request head, or the HTTP/2 preface) must get a whole request in within `header_read_timeout` of
//!   its first byte (slowloris), whenever that byte comes: on a new connection, late, or between keep-alive
//!   requests. The watchdog covers HTTP/1 and HTTP/2 alike, and the protocol sniffing before either.
//! - `max_header_size`: hyper's HTTP/1 read buffer (a head that does not fit gets 431) and HTTP/2's header list.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::metrics::ConnectionGuard;
use crate::proxy::Proxy;
use crate::reload::{ConnectionProxy, LiveProxy};
use crate::response::Body;

/// Runs the proxy's startup work (prerendering, which may hold back accepting), then serves `listener` until
/// `shutdown` resolves, then stops accepting and gives in-flight requests up to `drain` to finish. HTTP/1.1 and
/// HTTP/2 (prior knowledge) are both accepted. Client limits are the defaults; see [`run_with_limits`].
pub async fn run(listener: TcpListener, proxy: Arc<Proxy>, shutdown: impl Future<Output = ()>, drain: Duration) {
    let limits = ServerConfig {
        shutdown_timeout: drain,
        ..ServerConfig::default()
    };
    run_with_limits(listener, proxy, shutdown, limits).await;
}

/// [`run`] with the `[server]` limits (connections, head size and timeouts) and drain budget of `limits`.
pub async fn run_with_limits(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
    limits: ServerConfig,
) {
    run_live(Listening::Ready(listener), LiveProxy::new(proxy), shutdown, limits).await;
}

/// A listener to serve: listening already, or bound and listening only once startup work (prerendering) is
/// done, so that with `SO_REUSEPORT` the kernel sends no connection to a process that is still warming up.
pub enum Listening {
    /// Accepting from the start.
    Ready(TcpListener),
    /// Bound; starts listening after [`Proxy::start`].
    Deferred(crate::listener::BoundSocket),
}

/// With `server.reuse_port`, how long connections accepted just before shutdown get to send their first request
/// before the graceful shutdown starts closing idle connections (see [`serve`]).
const HANDOVER_GRACE: Duration = Duration::from_millis(250);

/// Runs the proxy's startup work (prerendering), then serves whatever proxy `live` holds at the moment each
/// request arrives (a config reload swaps it; requests in flight finish on theirs), until `shutdown` resolves,
/// then drains. A deferred listener starts listening only after the startup work.
pub async fn run_live(
    listening: Listening,
    live: Arc<LiveProxy>,
    shutdown: impl Future<Output = ()>,
    limits: ServerConfig,
) {
    live.current().start().await;
    let listener = match listening {
        Listening::Ready(listener) => listener,
        Listening::Deferred(bound) => match bound.listen() {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(error = %err, "cannot listen on the bound address");
                return;
            }
        },
    };
    live.current().set_serving(true);
    let handler_live = live.clone();
    let handlers = move || {
        let connection = ConnectionProxy::new(handler_live.clone());
        move |request, client| {
            let proxy = connection.current();
            async move { proxy.handle(request, client).await }
        }
    };
    let counted = live.clone();
    let on_connect = move || Some(counted.current().metrics().connection_opened());
    // While draining, `/health` says so: a load balancer stops sending new connections.
    let draining_live = live.clone();
    let shutdown = async move {
        shutdown.await;
        draining_live.current().set_serving(false);
    };
    serve(listener, handlers, shutdown, &limits, on_connect).await;
    live.current().stop().await;
}

/// Serves `listener` under `limits` until `shutdown` resolves, then drains for `limits.shutdown_timeout`; each
/// connection's requests go to a handler `handlers` makes for it (so a connection can keep state of its own).
/// Shared by the public listener and the admin listener. `on_connect` may hand out a guard held for as long as
/// each connection is open (the public listener's connection gauge).
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    handlers: impl Fn() -> H,
    shutdown: impl Future<Output = ()>,
    limits: &ServerConfig,
    on_connect: impl Fn() -> Option<ConnectionGuard>,
) where
    H: Fn(Request<Incoming>, std::net::SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = builder(limits);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        // Beyond `max_connections`, stop accepting: the kernel queues the rest.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        serve_connection(
            &graceful,
            &builder,
            handlers(),
            (stream, client),
            (Some(permit), on_connect()),
            limits,
        );
    }
    // Connections the kernel has queued but not handed over yet would be reset when the listener closes (with
    // `SO_REUSEPORT`, a successor is already accepting the new ones): serve them before closing.
    for accepted in queued_connections(listener) {
        serve_connection(&graceful, &builder, handlers(), accepted, (None, on_connect()), limits);
    }
    if limits.reuse_port {
        // hyper's graceful shutdown closes a connection that has not sent a whole request yet: give the ones
        // just accepted the time to send theirs, so a handover to the successor loses none.
        tokio::time::sleep(HANDOVER_GRACE).await;
    }
    tracing::info!("shutting down: draining connections");
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?limits.shutdown_timeout, "connections still open after the drain timeout; closing them");
    }
}

/// A connection's `max_connections` slot (none for one taken from the queue at shutdown) and its guard in the
/// connection gauge.
type ConnectionHolds = (Option<tokio::sync::OwnedSemaphorePermit>, Option<ConnectionGuard>);

/// Serves one accepted connection in its own task, watched by `graceful` and the connection watchdog; `holds`
/// live as long as the connection.
fn serve_connection<H, F>(
    graceful: &GracefulShutdown,
    builder: &auto::Builder<TokioExecutor>,
    handler: H,
    (stream, client): (TcpStream, std::net::SocketAddr),
    (permit, open): ConnectionHolds,
    limits: &ServerConfig,
) where
    H: Fn(Request<Incoming>, std::net::SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(ConnectionActivity::new());
    let io = TrackedStream {
        inner: stream,
        activity: activity.clone(),
    };
    let service_activity = activity.clone();
    let service = service_fn(move |request| {
        let guard = service_activity.request_started();
        let response = handler(request, client);
        async move {
            let response = response.await;
            Ok::<_, std::convert::Infallible>(response.map(|body| TrackedBody {
                inner: body,
                _guard: guard,
            }))
        }
    });
    let connection = graceful.watch(builder.serve_connection(TokioIo::new(io), service).into_owned());
    let (header_read_timeout, idle_timeout) = (limits.header_read_timeout, limits.idle_timeout);
    tokio::spawn(async move {
        let _permit = permit;
        let _open = open;
        tokio::select! {
            result = connection => if let Err(err) = result {
                tracing::debug!(error = %err, client = %client, "connection ended with an error");
            },
            reason = activity.expired(header_read_timeout, idle_timeout) => {
                tracing::debug!(client = %client, reason, "closing connection");
            }
        }
    });
}

/// Takes every connection already in the listener's accept queue, then closes the listener.
fn queued_connections(listener: TcpListener) -> Vec<(TcpStream, std::net::SocketAddr)> {
    let mut queued = Vec::new();
    // The std listener accepts straight from the kernel, without waiting for the reactor to report readiness.
    let Ok(listener) = listener.into_std() else {
        return queued;
    };
    while let Ok((stream, client)) = listener.accept() {
        if stream.set_nonblocking(true).is_ok()
            && let Ok(stream) = TcpStream::from_std(stream)
        {
            queued.push((stream, client));
        }
    }
    queued
}

fn builder(limits: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let max_header_size = usize::try_from(limits.max_header_size).unwrap_or(usize::MAX);
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog bounds head reads: hyper's own timer would also close idle keep-alive connections after
        // it, tying idle_timeout to header_read_timeout.
        .header_read_timeout(None)
        .max_buf_size(max_header_size);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX));
    builder
}

/// "Never" for the millisecond fields of [`ConnectionActivity`].
const UNSET: u64 = u64::MAX;

/// What the watchdog knows about one connection; updated by the stream on reads and by requests as they start
/// and finish. Atomics only on the read path: no lock, timer or allocation per read or per request.
///
/// The watchdog sleeps until the deadline it knows of (idle, usually far away). A head that starts later moves
/// the deadline closer, so the watchdog must hear of it, but only of a head that *stalls*: a head that arrives
/// whole is parsed and becomes a request before the connection reads again, and waking the watchdog for it
/// would cost a task wake-up and a timer reset on every keep-alive request. A stalled head shows as a read that
/// finds no data while the head is still open; that read wakes the watchdog, once per head.
#[derive(Debug)]
struct ConnectionActivity {
    started: Instant,
    /// Requests whose response (body included) is not finished.
    in_flight: AtomicUsize,
    /// When `in_flight` last dropped to zero (ms since `started`; 0 at the start).
    idle_since: AtomicU64,
    /// When the first byte arrived while no request was in progress ([`UNSET`] if none has).
    head_started: AtomicU64,
    /// The `head_started` the watchdog last took into account (or was told of); [`UNSET`] if none.
    head_seen: AtomicU64,
    /// Wakes the watchdog when a head stalls (see above).
    head_stalled: Notify,
}

impl ConnectionActivity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(UNSET),
            head_seen: AtomicU64::new(UNSET),
            head_stalled: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(UNSET - 1)
    }

    /// Bytes arrived: if no request is in progress, they begin a new one and start its head clock.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_started.load(Ordering::Relaxed) == UNSET {
            let _ = self
                .head_started
                .compare_exchange(UNSET, self.now_ms(), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// A read found no data. If a head is open and the watchdog has not heard of it, it must now: the client
    /// stopped part-way, and the header deadline may be earlier than the one the watchdog sleeps until.
    fn on_read_pending(&self) {
        let head_started = self.head_started.load(Ordering::Relaxed);
        if head_started != UNSET
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_seen.swap(head_started, Ordering::Relaxed) != head_started
        {
            self.head_stalled.notify_one();
        }
    }

    /// A whole request head arrived; the returned guard ends the request when the response body is done.
    fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(UNSET, Ordering::Relaxed);
        RequestGuard { activity: self.clone() }
    }

    /// Resolves when the connection has been idle for `idle`, or has been sending a request head for longer
    /// than `header`; says which.
    async fn expired(&self, header: Duration, idle: Duration) -> &'static str {
        let (header_ms, idle_ms) = (millis(header), millis(idle));
        loop {
            let now = self.now_ms();
            let deadline = if self.in_flight.load(Ordering::Acquire) > 0 {
                // Busy: nothing to enforce; look again later.
                now.saturating_add(header_ms.min(idle_ms))
            } else {
                let head_started = self.head_started.load(Ordering::Relaxed);
                let (deadline, reason) = if head_started == UNSET {
                    (
                        self.idle_since.load(Ordering::Relaxed).saturating_add(idle_ms),
                        "idle timeout",
                    )
                } else {
                    self.head_seen.store(head_started, Ordering::Relaxed);
                    (head_started.saturating_add(header_ms), "header read timeout")
                };
                if now >= deadline {
                    return reason;
                }
                deadline
            };
            // A head that starts and stalls while we sleep wakes us early (see `on_read_pending`).
            tokio::select! {
                () = tokio::time::sleep_until(self.started + Duration::from_millis(deadline)) => {}
                () = self.head_stalled.notified() => {}
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(UNSET - 1)
}

/// One request in progress on a connection; dropped with the response body (or the request, if cancelled).
#[derive(Debug)]
struct RequestGuard {
    activity: Arc<ConnectionActivity>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.idle_since.store(activity.now_ms(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The response body, holding its request's [`RequestGuard`] until the body is sent or dropped.
#[derive(Debug)]
struct TrackedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client's TCP stream, reporting reads to the connection's watchdog.
struct TrackedStream {
    inner: TcpStream,
    activity: Arc<ConnectionActivity>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.activity.on_read(),
            Poll::Pending => self.activity.on_read_pending(),
            Poll::Ready(_) => {}
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
