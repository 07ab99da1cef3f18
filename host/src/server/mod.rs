//! The IO layer: the listener, the opening handshake on the wire, and one
//! task per connection that drives its socket and its guest together.

pub mod connection;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::ServerConfig;
use crate::protocol::handshake::{self, HandshakeError, HandshakeLimits, Request};
use crate::runtime::{Guest, Runtime};
use connection::{ConnectionHandle, GuestOutcome};

/// A running wsbox server: the runtime, the current guest and the config.
pub struct Server {
    runtime: Arc<Runtime>,
    guest: Arc<ArcSwap<Guest>>,
    config: Arc<ServerConfig>,
    next_id: AtomicU64,
}

/// Why reading an opening handshake ended without a request.
#[derive(Debug, Error)]
enum ReadRequestError {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("connection closed during the handshake")]
    Closed,
    #[error("reading the handshake: {0}")]
    Io(#[from] std::io::Error),
}

impl Server {
    /// A server for `guest`, configured by `config`.
    pub fn new(runtime: Arc<Runtime>, guest: Guest, config: Arc<ServerConfig>) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            guest: Arc::new(ArcSwap::from_pointee(guest)),
            config,
            next_id: AtomicU64::new(1),
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

    /// Accept connections on `listener` forever.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, remote) = match listener.accept().await {
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
            tokio::spawn(async move { server.handle_tcp(stream, remote, id).await });
        }
    }

    async fn handle_tcp(self: Arc<Self>, mut stream: TcpStream, remote: SocketAddr, id: u64) {
        // Small frames must not wait for Nagle: we batch writes ourselves.
        let _ = stream.set_nodelay(true);
        let limits = HandshakeLimits {
            max_header_bytes: self.config.max_header_bytes,
            max_headers: self.config.max_headers,
        };
        let mut buf = BytesMut::with_capacity(4096);
        let read = tokio::time::timeout(
            self.config.handshake_timeout,
            read_request(&mut stream, &mut buf, &limits),
        )
        .await;
        let request = match read {
            Err(_elapsed) => {
                tracing::info!(conn = id, %remote, "handshake timed out");
                return;
            }
            Ok(Err(ReadRequestError::Handshake(error))) => {
                tracing::info!(conn = id, %remote, status = error.status(), %error, "bad handshake");
                let _ = stream.write_all(&error.response()).await;
                let _ = stream.shutdown().await;
                return;
            }
            Ok(Err(error)) => {
                tracing::debug!(conn = id, %remote, %error, "no handshake");
                return;
            }
            Ok(Ok(request)) => request,
        };

        let guest = self.guest.load_full();
        let version = guest.version().to_owned();
        tracing::debug!(conn = id, %remote, path = %request.target, version, "handshake");
        let conn = ConnectionHandle::new(id, remote, request, self.config.clone());
        let guest_part = async {
            let outcome = self.runtime.run(&guest, conn.clone()).await;
            match &outcome {
                GuestOutcome::Returned => {
                    tracing::debug!(conn = id, version, "guest returned");
                }
                GuestOutcome::Trapped(why) => {
                    tracing::warn!(conn = id, version, "guest failed: {why}");
                }
            }
            conn.guest_finished(&outcome);
        };
        tokio::join!(guest_part, conn.run_io(stream, buf));
        tracing::debug!(conn = id, "connection finished");
    }
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
