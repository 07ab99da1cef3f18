//! The IO layer: the listener, the opening handshake on the wire, and one
//! task per connection that drives its socket and its guest together.
//!
//! - [`driver`]: moves one connection's bytes and time through its protocol
//!   state machine.
//! - [`policy`]: the server's own refusals (origin allow-list, busy).
//! - `plain` (IO, over [`crate::protocol::static_files`]): plain HTTP requests on
//!   the same port, answered with `--static` files or the `--devconsole`
//!   page.

pub mod driver;
mod plain;
pub mod policy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::ServerConfig;
use crate::protocol::handshake::{self, HandshakeError, HandshakeLimits, Request};
use crate::protocol::{CloseCode, ConnectionConfig};
use crate::runtime::{Guest, Runtime};
use crate::session::topics::Topics;
use crate::session::{ConnectionHandle, GuestOutcome};
use policy::Refusal;

/// A running wsbox server: the runtime, the current guest and the config.
pub struct Server {
    runtime: Arc<Runtime>,
    guest: Arc<ArcSwap<Guest>>,
    config: Arc<ServerConfig>,
    /// The protocol rules every connection follows, built once.
    connection_config: Arc<ConnectionConfig>,
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
    shutting_down: AtomicBool,
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
            connection_config: Arc::new(config.connection_config()),
            next_id: AtomicU64::new(topics.connection_id_base() + 1),
            topics,
            config,
            live: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
        })
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

    /// Accept connections on `listener` until `shutdown` completes; then
    /// stop accepting, close every connection with 1001 (going away) and
    /// wait up to the shutdown grace period for them to finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin; the listener itself is fine.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
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
        drop(listener);
        self.shutting_down.store(true, Ordering::SeqCst);
        let closing =
            self.close_connections(|_| true, CloseCode::GOING_AWAY.0, "server shutting down");
        tracing::info!(connections = closing, "shutting down");
        let all = u32::try_from(self.config.max_connections).unwrap_or(u32::MAX);
        let drained =
            tokio::time::timeout(self.config.shutdown_grace, self.permits.acquire_many(all)).await;
        match drained {
            Ok(_) => tracing::info!("all connections closed"),
            Err(_) => tracing::warn!(
                connections = self.open_connections(),
                "shutdown grace period over; dropping the connections left"
            ),
        }
        Ok(())
    }

    /// Read the opening handshake within the handshake timeout.
    async fn read_handshake(
        &self,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
    ) -> Result<Request, ReadRequestError> {
        let limits = self.config.handshake_limits();
        tokio::time::timeout(
            self.config.handshake_timeout,
            read_request(stream, buf, &limits),
        )
        .await
        .unwrap_or(Err(ReadRequestError::TimedOut))
    }

    /// Answer a client over the connection limit with 503 once its request
    /// is in (a response before the request could be lost to a reset).
    async fn refuse_busy(self: Arc<Self>, mut stream: TcpStream, remote: SocketAddr, id: u64) {
        tracing::warn!(conn = id, %remote, limit = self.config.max_connections, "connection limit reached");
        let mut buf = BytesMut::with_capacity(1024);
        let response = match self.read_handshake(&mut stream, &mut buf).await {
            Ok(_) => Refusal::ServerBusy.response(),
            Err(ReadRequestError::Handshake(_)) if plain::request(&self.config, &buf).is_some() => {
                Refusal::ServerBusy.response()
            }
            Err(ReadRequestError::Handshake(error)) => error.response(),
            Err(_) => return,
        };
        respond_and_close(&mut stream, &response).await;
    }

    async fn handle_tcp(self: Arc<Self>, mut stream: TcpStream, remote: SocketAddr, id: u64) {
        // Small frames must not wait for Nagle: we batch writes ourselves.
        let _ = stream.set_nodelay(true);
        let mut buf = BytesMut::with_capacity(4096);
        let request = match self.read_handshake(&mut stream, &mut buf).await {
            Ok(request) => request,
            Err(ReadRequestError::TimedOut) => {
                tracing::info!(conn = id, %remote, "handshake timed out");
                return;
            }
            // Not an upgrade: a plain request for a file or the console,
            // when the server is told to answer those; the handshake's
            // error answer otherwise.
            Err(ReadRequestError::Handshake(_))
                if let Some(plain) = plain::request(&self.config, &buf) =>
            {
                plain::answer(&self.config, &mut stream, &plain, id, remote).await;
                return;
            }
            Err(ReadRequestError::Handshake(error)) => {
                tracing::info!(conn = id, %remote, status = error.status(), %error, "bad handshake");
                respond_and_close(&mut stream, &error.response()).await;
                return;
            }
            Err(error) => {
                tracing::debug!(conn = id, %remote, %error, "no handshake");
                return;
            }
        };
        let refusal = if self.shutting_down.load(Ordering::SeqCst) {
            Err(Refusal::ServerBusy)
        } else {
            policy::check_origin(&request, &self.config.allowed_origins)
        };
        if let Err(refusal) = refusal {
            tracing::info!(conn = id, %remote, status = refusal.status(), %refusal, "handshake refused");
            respond_and_close(&mut stream, &refusal.response()).await;
            return;
        }

        let guest = self.guest.load_full();
        let version = guest.version().to_owned();
        tracing::debug!(conn = id, %remote, path = %request.target, version, "handshake");
        let conn = ConnectionHandle::new(
            id,
            remote,
            request,
            self.connection_config.clone(),
            self.config.write_buffer_high_water,
            self.topics.clone(),
        );
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, (version.clone(), conn.clone()));
        let guest_part = async {
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
                }
            }
            conn.guest_finished(&outcome);
        };
        tokio::join!(guest_part, driver::run_io(&conn, stream, buf));
        conn.leave_topics();
        let dropped = conn.with_state(|state| state.dropped_deliveries());
        if dropped > 0 {
            tracing::info!(
                conn = id,
                dropped,
                "topic messages dropped for backpressure"
            );
        }
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        tracing::debug!(conn = id, "connection finished");
    }
}

/// How long a refused client gets to stop sending before its socket closes.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and dropped while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// Send an HTTP error response, then close the way HTTP servers must: stop
/// writing, and read and drop what the client still sends (for a while),
/// because closing a socket with unread data resets the connection, and a
/// reset can destroy the response before the client reads it (RFC 7230
/// section 6.6).
async fn respond_and_close(stream: &mut TcpStream, response: &[u8]) {
    if stream.write_all(response).await.is_ok() {
        close_after_response(stream).await;
    }
}

/// Close after a complete response: the second half of
/// [`respond_and_close`], for responses written in parts.
async fn close_after_response(stream: &mut TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut scratch = [0u8; 4096];
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
async fn read_request(
    stream: &mut TcpStream,
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
