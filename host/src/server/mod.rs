//! The IO layer: the listener, the opening handshake on the wire, and one
//! task per connection that drives its socket and its guest together.
//!
//! - [`driver`]: moves one connection's bytes and time through its protocol
//!   state machine.
//! - [`policy`]: the server's own refusals (origin allow-list, busy).
//! - [`tls`]: `wss://`, certificate rotation, and the [`tls::Stream`] the
//!   rest reads and writes.
//! - [`admin`]: the `--metrics-listen` port (`/metrics`, `/healthz`,
//!   `/readyz`).
//! - `plain` (IO, over [`crate::protocol::static_files`]): plain HTTP requests on
//!   the same port, answered with `--static` files or the `--devconsole`
//!   page.

pub mod admin;
pub mod driver;
mod parts;
mod plain;
pub mod policy;
pub mod tls;
pub mod trim;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::protocol::handshake::{self, HandshakeError, HandshakeLimits, Request};
use crate::protocol::{CloseCode, ConnectionConfig};
use crate::runtime::{Guest, Runtime};
use crate::session::topics::Topics;
use crate::session::{ConnectionHandle, GuestOutcome};
use policy::Refusal;
use tls::Stream;

/// A running wsbox server: the runtime, the current guest and the config.
pub struct Server {
    runtime: Arc<Runtime>,
    guest: Arc<ArcSwap<Guest>>,
    /// The configuration new connections get (SIGHUP may replace it).
    config: ArcSwap<ServerConfig>,
    /// The protocol rules new connections follow, built from `config`.
    connection_config: ArcSwap<ConnectionConfig>,
    /// Every topic, shared by all connections and guest versions (and, with
    /// a broker, with other hosts).
    topics: Arc<Topics>,
    /// The next connection id. With a broker, ids start above a random
    /// per-run prefix (see [`Topics::connection_id_base`]) so that
    /// publisher ids differ across hosts.
    next_id: AtomicU64,
    /// One permit per TCP connection, handshakes included: the connection
    /// limit, and (all permits back) the sign that every connection ended.
    permits: Arc<Semaphore>,
    /// Open connections with the guest version each runs.
    live: Mutex<HashMap<u64, (String, ConnectionHandle)>>,
    /// The most connections open at once since the memory trimmer last
    /// looked (it samples once a second; a wave could open and close in
    /// between).
    peak_open: AtomicUsize,
    shutting_down: AtomicBool,
    /// Accepting connections (for `/readyz`).
    listening: AtomicBool,
    /// Set with `--metrics-listen`; without it nothing is counted.
    metrics: OnceLock<Arc<Metrics>>,
    /// Set with `--tls-cert`: every connection starts with a TLS handshake.
    tls: OnceLock<tokio_rustls::TlsAcceptor>,
}

/// Why reading an opening handshake ended without a request.
#[derive(Debug, Error)]
enum ReadRequestError {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("connection closed during the handshake")]
    Closed,
    #[error("handshake not complete within the handshake timeout")]
    TimedOut,
    #[error("reading the handshake: {0}")]
    Io(#[from] std::io::Error),
}

impl Server {
    /// A server for `guest`, configured by `config`. With a broker
    /// configured, it starts connecting in the background on the current
    /// tokio runtime.
    pub fn new(runtime: Arc<Runtime>, guest: Guest, config: Arc<ServerConfig>) -> Arc<Self> {
        let topics = Topics::new(config.topics_config());
        Arc::new(Self {
            runtime,
            guest: Arc::new(ArcSwap::from_pointee(guest)),
            permits: Arc::new(Semaphore::new(config.max_connections)),
            connection_config: ArcSwap::from_pointee(config.connection_config()),
            next_id: AtomicU64::new(topics.connection_id_base() + 1),
            topics,
            config: ArcSwap::new(config),
            live: Mutex::new(HashMap::new()),
            peak_open: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            metrics: OnceLock::new(),
            tls: OnceLock::new(),
        })
    }

    /// Serve `wss://` with `config` from now on (once, before serving).
    pub fn set_tls(&self, config: Arc<rustls::ServerConfig>) {
        let _ = self.tls.set(tokio_rustls::TlsAcceptor::from(config));
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Apply a re-read configuration: what can change live does, for new
    /// connections (see [`ServerConfig::live_update`]); returns the keys
    /// that changed but need a restart.
    pub fn update_config(&self, new: &ServerConfig) -> Vec<&'static str> {
        let (updated, restart) = self.config.load().live_update(new);
        self.connection_config
            .store(Arc::new(updated.connection_config()));
        self.config.store(Arc::new(updated));
        restart
    }

    /// Count into `metrics` from now on (once; later calls are ignored).
    pub fn set_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// The metrics, when counting.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.get()
    }

    /// Why the server is not ready for connections, if it is not: not
    /// listening yet, shutting down, or a configured broker not connected.
    /// (A guest is loaded before a server exists.)
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.shutting_down.load(Ordering::SeqCst) {
            Some("shutting down")
        } else if !self.listening.load(Ordering::SeqCst) {
            Some("not listening yet")
        } else if self
            .topics
            .broker()
            .is_some_and(|broker| !broker.is_connected())
        {
            Some("broker not connected")
        } else {
            None
        }
    }

    fn count_rejection(&self, status: u16) {
        if let Some(metrics) = self.metrics() {
            metrics.handshake_rejected(status);
        }
    }

    /// Replace the guest that new connections get. Live connections keep
    /// the one they started with.
    pub fn swap_guest(&self, guest: Guest) {
        tracing::info!(version = guest.version(), "now serving new guest version");
        self.guest.store(Arc::new(guest));
    }

    /// The version of the guest new connections get.
    pub fn guest_version(&self) -> String {
        self.guest.load().version().to_owned()
    }

    /// Close the open connections whose guest version matches `filter`:
    /// each peer gets a close frame with `code`, each guest a close request.
    /// Returns how many were closed.
    pub fn close_connections(
        &self,
        filter: impl Fn(&str) -> bool,
        code: u16,
        reason: &str,
    ) -> usize {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let mut closed = 0;
        for (version, conn) in live.values() {
            if filter(version) {
                conn.close_from_host(CloseCode(code), reason);
                closed += 1;
            }
        }
        closed
    }

    /// The host's topics.
    pub fn topics(&self) -> &Arc<Topics> {
        &self.topics
    }

    /// How many connections are open (handshake done).
    pub fn open_connections(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Serve connections on `listeners` until `shutdown` completes; then
    /// stop accepting, close every connection with 1001 (going away) and
    /// wait up to the shutdown grace period for them to finish.
    ///
    /// Each listener gets a thread of its own running a single-threaded
    /// event loop, which accepts connections and serves them until they
    /// end: a connection, its guest and its socket never change threads,
    /// so no wake-up on a connection's path crosses threads (the listeners
    /// share one address through SO_REUSEPORT: [`bind_listeners`]).
    pub async fn serve(
        self: Arc<Self>,
        listeners: Vec<std::net::TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.listening.store(true, Ordering::SeqCst);
        let server = Arc::downgrade(&self);
        trim::spawn(move || {
            let server = server.upgrade()?;
            // Read the count before taking the peak: a connection opened
            // in between raises the next peak, not this one's.
            let open = server.open_connections();
            Some((open, server.peak_open.swap(0, Ordering::Relaxed)))
        });
        // `stop`: the accept loops end; `drained`: the threads may end (and
        // drop what connections are left).
        let (stop_tx, stop) = watch::channel(false);
        let (drained_tx, drained) = watch::channel(false);
        // Every accept loop holds a sender until its listener is closed:
        // `recv` returning `None` means no listener is left.
        let (listening_tx, mut listeners_open) = tokio::sync::mpsc::channel::<()>(1);
        let mut threads = Vec::with_capacity(listeners.len());
        for (index, listener) in listeners.into_iter().enumerate() {
            let server = self.clone();
            let (stop, mut drained) = (stop.clone(), drained.clone());
            let listening = listening_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("wsbox-conn-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            tracing::error!(%error, "starting a connection thread");
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        match TcpListener::from_std(listener) {
                            // A task, not the future `block_on` polls: waking
                            // that one (on every accept) writes the event
                            // loop's eventfd even from its own thread, and a
                            // task's wake-up is a queue push.
                            Ok(listener) => {
                                let accepting =
                                    tokio::spawn(server.accept_loop(listener, stop, listening));
                                // As a task, a panic ends only the accepting:
                                // say so, as the thread's own panic would have.
                                if let Err(error) = accepting.await {
                                    tracing::error!(%error, "accepting connections stopped");
                                }
                            }
                            Err(error) => {
                                drop(listening);
                                tracing::error!(%error, "registering a listener");
                            }
                        }
                        // This thread's connections live on its event loop.
                        let _ = drained.wait_for(|drained| *drained).await;
                    });
                });
            match thread {
                Ok(thread) => threads.push(thread),
                // The threads started so far still serve.
                Err(error) => tracing::error!(%error, "starting a connection thread"),
            }
        }
        if threads.is_empty() {
            return Err(std::io::Error::other("no connection thread could start"));
        }
        drop(listening_tx);
        shutdown.await;
        // Refuse (503) before the accept loops stop, so the connections
        // they take from the backlog on their way out are refused too.
        self.shutting_down.store(true, Ordering::SeqCst);
        self.listening.store(false, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        // Once every listener is closed, a new attempt is refused by the
        // kernel; the wait is bounded in case a thread is wedged.
        let config = self.config();
        let _ = tokio::time::timeout(config.shutdown_grace, listeners_open.recv()).await;
        let closing =
            self.close_connections(|_| true, CloseCode::GOING_AWAY.0, "server shutting down");
        tracing::info!(connections = closing, "shutting down");
        let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
        let drained_in_time =
            tokio::time::timeout(config.shutdown_grace, self.permits.acquire_many(all)).await;
        match drained_in_time {
            Ok(_) => tracing::info!("all connections closed"),
            Err(_) => tracing::warn!(
                connections = self.open_connections(),
                "shutdown grace period over; dropping the connections left"
            ),
        }
        let _ = drained_tx.send(true);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
        Ok(())
    }

    /// Accept connections on `listener` until `stop` turns true, each served
    /// by a task on this thread's event loop. Then take what is left in the
    /// listener's backlog (those clients connected before the stop and get
    /// an answer, a 503, rather than a reset) and close the listener;
    /// `listening` is dropped once it is closed.
    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
        listening: tokio::sync::mpsc::Sender<()>,
    ) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            match accepted {
                Ok((stream, remote)) => self.serve_accepted(stream, remote),
                Err(error) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin; the listener itself is fine.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        for (stream, remote) in close_taking_backlog(listener) {
            self.serve_accepted(stream, remote);
        }
        drop(listening);
    }

    /// Serve an accepted connection on a task of its own: in full when a
    /// connection permit is free, with a 503 otherwise.
    fn serve_accepted(self: &Arc<Self>, stream: TcpStream, remote: SocketAddr) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let server = self.clone();
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    server.handle_tcp(stream, remote, id).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(async move { server.refuse_busy(stream, remote, id).await });
            }
        }
    }

    /// Read the opening handshake by `deadline` (the handshake timeout
    /// from the connection's accept, a TLS handshake included).
    async fn read_handshake(
        config: &ServerConfig,
        stream: &mut Stream,
        buf: &mut BytesMut,
        deadline: Instant,
    ) -> Result<Request, ReadRequestError> {
        let limits = config.handshake_limits();
        tokio::time::timeout_at(deadline, read_request(stream, buf, &limits))
            .await
            .unwrap_or(Err(ReadRequestError::TimedOut))
    }

    /// The connection's stream: with TLS, once its handshake is done by
    /// `deadline`. `None`: it failed or timed out (logged).
    async fn open_stream(
        &self,
        stream: TcpStream,
        deadline: Instant,
        id: u64,
        remote: SocketAddr,
    ) -> Option<Stream> {
        // Small frames must not wait for Nagle: we batch writes ourselves.
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = self.tls.get() else {
            return Some(Stream::Plain(stream));
        };
        // Boxed: a TLS handshake's state is large, and inline it would be
        // part of every connection's task for as long as it lives.
        match Box::pin(tokio::time::timeout_at(deadline, acceptor.accept(stream))).await {
            Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
            Ok(Err(error)) => {
                tracing::debug!(conn = id, %remote, %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::info!(conn = id, %remote, "handshake timed out (TLS)");
                None
            }
        }
    }

    /// Answer a client over the connection limit with 503 once its request
    /// is in (a response before the request could be lost to a reset).
    async fn refuse_busy(self: Arc<Self>, stream: TcpStream, remote: SocketAddr, id: u64) {
        let config = self.config();
        tracing::warn!(conn = id, %remote, limit = config.max_connections, "connection limit reached");
        let deadline = Instant::now() + config.handshake_timeout;
        let Some(mut stream) = self.open_stream(stream, deadline, id, remote).await else {
            return;
        };
        let mut buf = BytesMut::with_capacity(1024);
        let read = Self::read_handshake(&config, &mut stream, &mut buf, deadline).await;
        let (status, response) = match read {
            Ok(_) => (Refusal::ServerBusy.status(), Refusal::ServerBusy.response()),
            Err(ReadRequestError::Handshake(_)) if plain::request(&config, &buf).is_some() => {
                (Refusal::ServerBusy.status(), Refusal::ServerBusy.response())
            }
            Err(ReadRequestError::Handshake(error)) => (error.status(), error.response()),
            Err(_) => return,
        };
        self.count_rejection(status);
        respond_and_close(&mut stream, &response).await;
    }

    /// The opening handshake, up to the upgrade: read and check the
    /// request, answer what is not a WebSocket upgrade (or is refused) and
    /// close, or set up the connection. `None`: answered, refused or gone
    /// (logged).
    async fn upgrade(&self, stream: TcpStream, remote: SocketAddr, id: u64) -> Option<Upgraded> {
        let config = self.config();
        let deadline = Instant::now() + config.handshake_timeout;
        let mut stream = self.open_stream(stream, deadline, id, remote).await?;
        let mut buf = BytesMut::with_capacity(4096);
        let read = Self::read_handshake(&config, &mut stream, &mut buf, deadline).await;
        let request = match read {
            Ok(request) => request,
            Err(ReadRequestError::TimedOut) => {
                tracing::info!(conn = id, %remote, "handshake timed out");
                return None;
            }
            // Not an upgrade: a plain request for a file or the console,
            // when the server is told to answer those; the handshake's
            // error answer otherwise.
            Err(ReadRequestError::Handshake(_))
                if let Some(plain) = plain::request(&config, &buf) =>
            {
                plain::answer(&config, &mut stream, &plain, id, remote).await;
                return None;
            }
            Err(ReadRequestError::Handshake(error)) => {
                tracing::info!(conn = id, %remote, status = error.status(), %error, "bad handshake");
                self.count_rejection(error.status());
                respond_and_close(&mut stream, &error.response()).await;
                return None;
            }
            Err(error) => {
                tracing::debug!(conn = id, %remote, %error, "no handshake");
                return None;
            }
        };
        let refusal = if self.shutting_down.load(Ordering::SeqCst) {
            Err(Refusal::ServerBusy)
        } else {
            policy::check_origin(&request, &config.allowed_origins)
        };
        if let Err(refusal) = refusal {
            tracing::info!(conn = id, %remote, status = refusal.status(), %refusal, "handshake refused");
            self.count_rejection(refusal.status());
            respond_and_close(&mut stream, &refusal.response()).await;
            return None;
        }

        let guest = self.guest.load_full();
        tracing::debug!(conn = id, %remote, path = %request.target, version = guest.version(), "handshake");
        let conn = ConnectionHandle::new(
            id,
            remote,
            request,
            self.connection_config.load_full(),
            config.write_buffer_high_water,
            self.topics.clone(),
        );
        Some(Upgraded {
            stream,
            buf,
            conn,
            guest,
        })
    }

    async fn handle_tcp(self: Arc<Self>, stream: TcpStream, remote: SocketAddr, id: u64) {
        let started = std::time::Instant::now();
        // Boxed: the handshake's state (the request as read and parsed, the
        // error and plain-HTTP answers) is needed only until the upgrade;
        // inline, its room would stay in every connection's task for as
        // long as the connection lives.
        let Some(Upgraded {
            stream,
            buf,
            conn,
            guest,
        }) = Box::pin(self.upgrade(stream, remote, id)).await
        else {
            return;
        };
        let version = guest.version().to_owned();
        let open = {
            let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
            live.insert(id, (version.clone(), conn.clone()));
            live.len()
        };
        self.peak_open.fetch_max(open, Ordering::Relaxed);
        let metrics = self.metrics().map(Arc::as_ref);
        if let Some(metrics) = metrics {
            metrics.connection_opened();
        }
        // Boxed once here (`run_io` polls it beside the socket halves): a
        // future moved into another stays in the mover's state too, so an
        // unboxed one would be counted twice in this task.
        let guest_part = Box::pin(async {
            let outcome = self.runtime.run(&guest, conn.clone()).await;
            match &outcome {
                GuestOutcome::Returned => {
                    tracing::debug!(conn = id, version, "guest returned");
                }
                GuestOutcome::Failed(failure) => {
                    tracing::warn!(
                        conn = id,
                        version,
                        kind = failure.kind(),
                        "guest failed: {failure}"
                    );
                    if let Some(metrics) = metrics {
                        metrics.guest_failed(failure.kind());
                    }
                }
            }
            conn.guest_finished(&outcome);
        });
        match stream {
            // Borrowed halves of a TCP stream take no lock per read or
            // write, unlike `tokio::io::split`'s; TLS has one state for both
            // directions, so it needs that lock.
            Stream::Plain(mut tcp) => {
                driver::run_io(&conn, tcp.split(), buf, metrics, guest_part).await;
            }
            Stream::Tls(tls) => {
                let halves = tokio::io::split(tls);
                driver::run_io(&conn, halves, buf, metrics, guest_part).await;
            }
        }
        conn.leave_topics();
        let dropped = conn.with_state(|state| state.dropped_deliveries());
        if dropped > 0 {
            tracing::info!(
                conn = id,
                dropped,
                "topic messages dropped for backpressure"
            );
        }
        {
            let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
            live.remove(&id);
            // A map that grew for a wave gives its table back as the wave
            // ends (rehashing the few left is cheap next to what it frees).
            if live.capacity() > 64 && live.len() < live.capacity() / 8 {
                let keep = live.len() * 2;
                live.shrink_to(keep);
            }
        }
        access_log(&conn, &version, started.elapsed());
        if let Some(metrics) = metrics {
            let (traffic, status, close) = conn.with_state(|state| {
                (
                    state.take_unreported_stats(),
                    state.status(),
                    state.first_close(),
                )
            });
            if let Some(status) = status.filter(|&status| status != 101) {
                metrics.handshake_rejected(status);
            }
            metrics.connection_finished(traffic, close);
        }
    }
}

/// The access log: one info line per connection that reached the guest,
/// under the target `wsbox::access` (so `RUST_LOG=wsbox::access=info`
/// selects it). The path is logged without its query, which often
/// carries credentials.
fn access_log(conn: &ConnectionHandle, version: &str, duration: Duration) {
    let (stats, status, close, subprotocol) = conn.with_state(|state| {
        (
            state.stats(),
            state.status(),
            state.first_close(),
            state.subprotocol().map(str::to_owned),
        )
    });
    tracing::info!(
        target: "wsbox::access",
        conn = conn.id(),
        remote = %conn.remote(),
        path = conn.path(),
        subprotocol,
        version,
        status,
        duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        messages_in = stats.messages_received,
        bytes_in = stats.bytes_received,
        messages_out = stats.messages_sent,
        bytes_out = stats.bytes_sent,
        close_code = close.map(|(code, _)| code.0),
        closed_by = close.map_or("none", |(_, by)| by.as_str()),
        "connection finished"
    );
}

/// How long a refused client gets to stop sending before its socket closes.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and dropped while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// A connection past its opening handshake, ready for its guest.
struct Upgraded {
    /// The client's stream, the upgrade answer not yet written.
    stream: Stream,
    /// Bytes read behind the request (the client's first frames).
    buf: BytesMut,
    conn: ConnectionHandle,
    /// The guest this connection runs.
    guest: Arc<Guest>,
}

/// Send an HTTP error response, then close the way HTTP servers must: stop
/// writing, and read and drop what the client still sends (for a while),
/// because closing a socket with unread data resets the connection, and a
/// reset can destroy the response before the client reads it (RFC 7230
/// section 6.6).
async fn respond_and_close<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, response: &[u8]) {
    if stream.write_all(response).await.is_ok() {
        close_after_response(stream).await;
    }
}

/// Close after a complete response: the second half of
/// [`respond_and_close`], for responses written in parts.
async fn close_after_response<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        // On the heap: this future is part of every connection's task
        // (rejections are answered from it), and 4 KiB inline would be
        // held for the life of each accepted one.
        let mut scratch = vec![0u8; 4096];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Read until a complete, valid opening handshake is in `buf`; leave any
/// bytes after it (the client's first frames) in `buf`.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: &HandshakeLimits,
) -> Result<Request, ReadRequestError> {
    loop {
        if let Some((request, consumed)) = handshake::parse_request(buf, limits)? {
            buf.advance(consumed);
            return Ok(request);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(ReadRequestError::Closed);
        }
    }
}

/// Close `listener`, first taking the connections already in its backlog.
/// The event loop may not have seen the newest arrivals yet, so this asks
/// the socket itself, without blocking, until the backlog is empty; those
/// clients connected while the server was up and are owed an answer, not
/// the reset a closed listener gives them.
fn close_taking_backlog(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let Ok(listener) = listener.into_std() else {
        return Vec::new();
    };
    let mut backlog = Vec::new();
    while let Ok((stream, remote)) = listener.accept() {
        let stream = stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream));
        if let Ok(stream) = stream {
            backlog.push((stream, remote));
        }
    }
    backlog
}

/// Bind `count` listening sockets to `addr`, sharing it through
/// SO_REUSEPORT (the kernel spreads new connections over them), for
/// [`Server::serve`]. Port 0 binds the first to a free port and the rest
/// to the same one.
///
/// SO_REUSEPORT would also let a second server of the same user bind the
/// same port and silently take half its connections: unless the port is
/// 0, a plain bind first checks that nobody listens there yet.
pub fn bind_listeners(
    addr: SocketAddr,
    count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr)?);
    }
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        let at = match listeners.first() {
            Some(first) => first.local_addr()?,
            None => addr,
        };
        let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
        // What tokio's `TcpListener::bind` sets too: a restart need not
        // wait for the last run's connections in TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&at.into())?;
        socket.listen(1024)?;
        listeners.push(socket.into());
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_a_listener_takes_its_backlog_and_then_refuses() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Connected by the kernel, never accepted: the listener's backlog.
        let mut waiting = Vec::new();
        for _ in 0..3 {
            waiting.push(std::net::TcpStream::connect(addr).unwrap());
        }
        let taken = close_taking_backlog(listener);
        assert_eq!(taken.len(), 3);
        let mut ports: Vec<u16> = taken.iter().map(|(_, remote)| remote.port()).collect();
        let mut expected: Vec<u16> = waiting
            .iter()
            .map(|client| client.local_addr().unwrap().port())
            .collect();
        ports.sort_unstable();
        expected.sort_unstable();
        assert_eq!(ports, expected);
        // The taken streams work on this event loop.
        let (mut stream, _) = taken.into_iter().next().unwrap();
        stream.write_all(b"x").await.unwrap();
        let error = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
