//! The HTTP/1.1 connections of the fake and of the recording proxy, one
//! task each. A connection is closed when it has been idle too long, when a
//! request's headers arrive too slowly or its body stops arriving, and (once
//! idle) when the server stops; so idle or stalled sockets cannot pile up and
//! stop it. At most a set number of connections are served at once; more
//! wait in the listening socket's queue.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// The time limits of a connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// No request in progress for this long: the connection is closed.
    pub idle: Duration,
    /// A request's headers, from its first byte, must arrive within this.
    pub header: Duration,
    /// A request's body must arrive within this once its headers are in
    /// (the fake's middleware and upload handler answer 408).
    pub body: Duration,
    /// When set, a body from which nothing arrives for this long, while it
    /// is being read, has its connection closed (the recording proxy, which
    /// has no handler of its own to answer 408).
    pub body_stall: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(30),
            header: Duration::from_secs(10),
            body: Duration::from_secs(10),
            body_stall: None,
        }
    }
}

/// The builder methods setting a `timeouts: Timeouts` field (the fake's and
/// the recording proxy's).
macro_rules! timeout_setters {
    () => {
        /// A connection with no request in progress for this long is closed
        /// (default 30 s); so is one whose client stops reading an answer
        /// (a streamed download) for this long.
        pub fn idle_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.timeouts.idle = timeout;
            self
        }

        /// A request's headers must arrive within this from its first
        /// byte, or the connection is closed (default 10 s).
        pub fn header_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.timeouts.header = timeout;
            self
        }

        /// A request body that sends nothing for this long has its
        /// connection closed (default 10 s); the fake also needs a body it
        /// reads whole (not an upload) within this, or answers 408. A body
        /// that keeps arriving through the recording proxy is never cut.
        pub fn body_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.timeouts.body = timeout;
            self
        }
    };
}
pub(crate) use timeout_setters;

/// The largest request body the fake reads (axum's default limit), except
/// for parcel uploads (see `FakeServerBuilder::max_upload_bytes`).
pub(crate) const MAX_BODY: usize = 2 * 1024 * 1024;

/// What a connection is doing, for its watchdog.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// No request in progress since this instant.
    Idle(Instant),
    /// The first bytes of a request arrived at this instant; its headers are
    /// not complete yet.
    Head(Instant),
    /// This many requests are being handled.
    Busy(usize),
}

#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    /// While an answer is being written: when its body last gave the socket
    /// a piece. The body is asked again only once the client has taken the
    /// previous one, so a long gap means the client stopped reading.
    sending: Mutex<Option<Instant>>,
    /// While a request's body is being read: when a piece of it last
    /// arrived.
    receiving: Mutex<Option<Instant>>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            sending: Mutex::new(None),
            receiving: Mutex::new(None),
        }
    }

    fn receiving(&self) -> MutexGuard<'_, Option<Instant>> {
        self.receiving.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // Each update is one assignment: a poisoned lock is still consistent.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sending(&self) -> MutexGuard<'_, Option<Instant>> {
        self.sending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bytes_read(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
        }
    }

    fn expired(&self, timeouts: &Timeouts) -> bool {
        match *self.phase() {
            Phase::Idle(since) => since.elapsed() >= timeouts.idle,
            Phase::Head(since) => since.elapsed() >= timeouts.header,
            // A request being handled is never cut; a body that stopped
            // arriving for the body timeout is, and an answer whose reader
            // stopped taking it for the idle timeout.
            Phase::Busy(_) => {
                timeouts.body_stall.is_some_and(|stall| {
                    self.receiving()
                        .is_some_and(|since| since.elapsed() >= stall)
                }) || self
                    .sending()
                    .is_some_and(|since| since.elapsed() >= timeouts.idle)
            }
        }
    }
}

/// Marks a request in progress for as long as it lives.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Busy {
        let mut phase = activity.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
    }
}

/// An answer's body holding its request's [`Busy`] mark until it is written
/// out (or dropped).
struct Guarded<B> {
    body: B,
    busy: Busy,
}

impl<B> Guarded<B> {
    fn new(body: B, busy: Busy) -> Self {
        *busy.0.sending() = Some(Instant::now());
        Guarded { body, busy }
    }
}

impl<B> Drop for Guarded<B> {
    fn drop(&mut self) {
        *self.busy.0.sending() = None;
    }
}

/// A handler or an answer's body failed: the connection is closed.
#[derive(Debug)]
pub(crate) struct ConnError(crate::error::BoxError);

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ConnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl<B> hyper::body::Body for Guarded<B>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<crate::error::BoxError>,
{
    type Data = B::Data;
    type Error = ConnError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        *this.busy.0.sending() = Some(Instant::now());
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ConnError(e.into())))),
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A request's body, telling the watchdog when its pieces arrive, from
/// when it is first read until it ends (or is dropped).
pub(crate) struct Received {
    body: hyper::body::Incoming,
    activity: Arc<Activity>,
    done: bool,
}

impl Received {
    fn new(body: hyper::body::Incoming, activity: Arc<Activity>) -> Self {
        let done = hyper::body::Body::is_end_stream(&body);
        Received {
            body,
            activity,
            done,
        }
    }

    fn finish(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            *self.activity.receiving() = None;
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        self.finish();
    }
}

impl hyper::body::Body for Received {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut receiving = this.activity.receiving();
        // The clock starts when the body is first asked for.
        if receiving.is_none() {
            *receiving = Some(Instant::now());
        }
        drop(receiving);
        let poll = Pin::new(&mut this.body).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(_))) => *this.activity.receiving() = Some(Instant::now()),
            Poll::Ready(_) => this.finish(),
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling the watchdog when request bytes arrive.
struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Middleware: reads the whole request body (at most `max_bytes`) within
/// `limit`, or answers 413 or 408 and closes the connection. A `streamed`
/// request (a parcel upload) is passed on unread: its handler reads it as it
/// arrives, under the upload cap, and cuts it when it stalls for `limit`.
pub(crate) async fn body_within(
    limit: Duration,
    max_bytes: usize,
    streamed: bool,
    request: Request,
    next: Next,
) -> Response {
    if streamed {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(limit, axum::body::to_bytes(body, max_bytes)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, bytes.into())).await,
        Ok(Err(_)) => (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            [(axum::http::header::CONNECTION, "close")],
            "request body too large or broken",
        )
            .into_response(),
        Err(_) => (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            [(axum::http::header::CONNECTION, "close")],
            "request body too slow",
        )
            .into_response(),
    }
}

/// Accepts connections until `stop` changes (or its sender is gone), then
/// lets every connection finish its request in progress and waits for them
/// (at most `drain` after their time limits, when given). While
/// `max_connections` are open, no more are accepted: they wait in the
/// listening socket's queue until the time limits close some.
pub(crate) async fn serve<S>(
    mut incoming: Incoming,
    service: S,
    timeouts: Timeouts,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) where
    S: ConnService,
{
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let room = connections.len() < max_connections.max(1);
        tokio::select! {
            accepted = incoming.accept(), if room => match accepted {
                Ok(Accepted::Plain(stream, peer)) => {
                    // Small answers go out at once, not after Nagle's delay.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, peer, service.clone(), timeouts, stop.clone()));
                }
                Ok(Accepted::Tls(stream, peer)) => {
                    let _ = stream.get_ref().0.set_nodelay(true);
                    connections.spawn(connection(*stream, peer, service.clone(), timeouts, stop.clone()));
                }
                // Out of file descriptors, say: idle connections are being
                // closed by their watchdogs; try again shortly.
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(incoming);
    while connections.join_next().await.is_some() {}
}

/// What serves the requests of one connection: the fake's router, the
/// recording proxy's handler. `call` gets the request (its body reports
/// to the connection's watchdog) and the peer's address.
pub(crate) trait ConnService: Clone + Send + Sync + 'static {
    /// The answer's body.
    type Body: hyper::body::Body<Data = bytes::Bytes, Error = Self::BodyError>
        + Send
        + Unpin
        + 'static;
    /// The error of the answer's body.
    type BodyError: Into<crate::error::BoxError>;
    /// The handler's future.
    type Future: std::future::Future<Output = Result<hyper::Response<Self::Body>, crate::error::BoxError>>
        + Send
        + 'static;

    /// Handles one request.
    fn call(&self, request: hyper::Request<Received>, peer: SocketAddr) -> Self::Future;
}

/// The fake's router as a connection's service.
#[derive(Clone)]
pub(crate) struct RouterService(pub Router);

impl ConnService for RouterService {
    type Body = axum::body::Body;
    type BodyError = axum::Error;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<hyper::Response<axum::body::Body>, crate::error::BoxError>,
                > + Send,
        >,
    >;

    fn call(&self, request: hyper::Request<Received>, peer: SocketAddr) -> Self::Future {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = self.0.clone();
        Box::pin(async move {
            match tower_service::Service::call(&mut router, request).await {
                Ok(response) => Ok(response),
                Err(never) => match never {},
            }
        })
    }
}

/// Where the fake's connections come from: plain TCP, or TLS streams whose
/// handshake already completed.
pub(crate) enum Incoming {
    /// Plain HTTP.
    Plain(TcpListener),
    /// HTTPS.
    Tls(super::tls::TlsListener),
}

/// One accepted connection.
enum Accepted {
    Plain(TcpStream, SocketAddr),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, SocketAddr),
}

impl Incoming {
    async fn accept(&mut self) -> std::io::Result<Accepted> {
        match self {
            Incoming::Plain(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok(Accepted::Plain(stream, peer))
            }
            Incoming::Tls(listener) => {
                let (stream, peer) = axum::serve::Listener::accept(listener).await;
                Ok(Accepted::Tls(Box::new(stream), peer))
            }
        }
    }
}

async fn connection<S, Svc>(
    stream: S,
    peer: SocketAddr,
    service: Svc,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: ConnService,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        io: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let busy = Busy::begin(&requests);
        let request = request.map(|body| Received::new(body, requests.clone()));
        let answer = service.call(request, peer);
        async move {
            // The request stays in progress until its answer is written out:
            // a download streamed for minutes is not an idle connection.
            match answer.await {
                Ok(response) => Ok(response.map(|body| Guarded::new(body, busy))),
                Err(e) => Err(ConnError(e)),
            }
        }
    });
    // The watchdog below keeps the time limits; hyper's own header timer
    // would also cut idle keep-alive connections at its own default.
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let check = (timeouts.idle.min(timeouts.header) / 4).max(Duration::from_millis(5));
    let mut tick = tokio::time::interval(check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            // Dropping the connection closes the socket.
            _ = tick.tick() => if activity.expired(&timeouts) { return },
            _ = stop.changed() => {
                // Finish the request in progress, within the time limits.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(timeouts.header + timeouts.body, conn).await;
                return;
            }
        }
    }
}
