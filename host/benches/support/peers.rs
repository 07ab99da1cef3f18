//! The native echo servers the benches measure wsbox against (DESIGN.md §5): fastwebsockets and
//! tokio-tungstenite. A bench binary becomes one of them when re-executed with the hidden
//! `--serve-peer NAME ADDR` ([`super::peer_command`]).
//!
//! Both run as a typical deployment would: a multi-thread tokio runtime with one worker per core
//! ([`super::serve_native`]), a task per connection, `TCP_NODELAY`, pings and closes answered by
//! the library itself, and the server closing TCP after the closing handshake.

use anyhow::{Result, bail};

/// A native echo server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// The `fastwebsockets` crate with its hyper 1 upgrade, as in its own `echo_server` example.
    FastWebSockets,
    /// `tokio-tungstenite`.
    Tungstenite,
}

impl Peer {
    /// Every peer, the reference for ratios first.
    pub const ALL: [Peer; 2] = [Peer::FastWebSockets, Peer::Tungstenite];

    pub fn name(self) -> &'static str {
        match self {
            Peer::FastWebSockets => "fastwebsockets",
            Peer::Tungstenite => "tokio-tungstenite",
        }
    }

    pub fn parse(name: &str) -> Result<Peer> {
        match Peer::ALL.into_iter().find(|p| p.name() == name) {
            Some(peer) => Ok(peer),
            None => {
                bail!("no native peer {name:?} (there are fastwebsockets and tokio-tungstenite)")
            }
        }
    }

    /// Runs this echo server on `addr` until killed.
    pub fn serve(self, addr: &str) -> Result<()> {
        match self {
            Peer::FastWebSockets => super::serve_native(addr, fast::connection),
            Peer::Tungstenite => super::serve_native(addr, tungstenite::connection),
        }
    }
}

mod tungstenite {
    use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::ProtocolError;

    pub async fn connection(stream: TcpStream) {
        match echo(stream).await {
            // Also quiet for the bench's readiness probes, which connect and hang up at once.
            Ok(())
            | Err(
                WsError::ConnectionClosed
                | WsError::AlreadyClosed
                | WsError::Protocol(ProtocolError::HandshakeIncomplete),
            ) => {}
            Err(e) => eprintln!("tokio-tungstenite echo: {e}"),
        }
    }

    /// Echoes text and binary messages. Flushes only when no more input is ready, so pipelined
    /// messages go out in one write. Pings and closes are answered by tungstenite itself.
    async fn echo(stream: TcpStream) -> Result<(), WsError> {
        stream.set_nodelay(true)?;
        let mut ws = tokio_tungstenite::accept_async(stream).await?;
        let mut next = ws.next().await;
        while let Some(message) = next {
            let message = message?;
            if message.is_text() || message.is_binary() {
                ws.feed(message).await?;
            }
            next = match ws.next().now_or_never() {
                Some(next) => next,
                None => {
                    ws.flush().await?;
                    ws.next().await
                }
            };
        }
        Ok(())
    }
}

mod fast {
    use fastwebsockets::upgrade::{UpgradeFut, upgrade};
    use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpStream;

    /// Serves HTTP/1.1 on the connection until a request upgrades it.
    pub async fn connection(stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let http = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(accept))
            .with_upgrades();
        // Quiet for the bench's readiness probes, which connect and hang up at once.
        if let Err(e) = http.await
            && !e.is_incomplete_message()
        {
            eprintln!("fastwebsockets http: {e}");
        }
    }

    /// Answers the upgrade request (101) and echoes on the upgraded connection in a task of its
    /// own, as the crate's `echo_server` example does.
    async fn accept(
        mut request: Request<Incoming>,
    ) -> Result<Response<Empty<Bytes>>, WebSocketError> {
        let (response, upgraded) = upgrade(&mut request)?;
        tokio::spawn(async move {
            match echo(upgraded).await {
                Ok(()) | Err(WebSocketError::UnexpectedEOF | WebSocketError::ConnectionClosed) => {}
                Err(e) => eprintln!("fastwebsockets echo: {e}"),
            }
        });
        Ok(response)
    }

    /// Echoes text and binary messages (one write each: fastwebsockets writes a frame at a time);
    /// pings and closes are answered by fastwebsockets (`auto_pong`, `auto_close`, both default).
    async fn echo(upgraded: UpgradeFut) -> Result<(), WebSocketError> {
        let mut ws = FragmentCollector::new(upgraded.await?);
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Close => return Ok(()),
                OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
                _ => {}
            }
        }
    }
}
