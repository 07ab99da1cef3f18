//! The pending connection and how to answer it.

use crate::bindings::wsbox::websocket::{types as raw, websocket};
use crate::connection::Connection;
use crate::error::HandshakeError;
use crate::request::{Header, Request};

/// How to accept a connection (`AcceptRequest` and the per-connection part of
/// `ConnectionOptions` in the seed).
///
/// Start from [`Default`] and adjust with the setters, so that new options
/// break no caller:
///
/// ```
/// # use guest_sdk::AcceptOptions;
/// let options = AcceptOptions::default()
///     .subprotocol("chat.v1")
///     .header("X-Served-By", "wsbox")
///     .max_message_size(64 * 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptOptions {
    /// The subprotocol to answer with; it must be one the client offered.
    /// Default: none.
    pub subprotocol: Option<String>,
    /// Extra headers for the `101 Switching Protocols` response. Headers the
    /// handshake sets itself (`Upgrade`, `Connection`, `Sec-WebSocket-*`)
    /// are refused. Default: none.
    pub headers: Vec<Header>,
    /// Allow permessage-deflate if the client offered it and the host has it
    /// enabled; `false` turns it off for this connection. Default: `true`.
    pub compression: bool,
    /// Deliver pongs to [`Connection::receive`] as
    /// [`Message::Pong`](crate::Message::Pong) (`connectionOnPong`).
    /// Default: `false`.
    pub receive_pongs: bool,
    /// Tighten the host's limit on one message's size, in bytes after
    /// decompression (`connectionMessageDataSizeLimit`); the host's own limit
    /// still applies if lower. Default: none (the host's limit).
    pub max_message_size: Option<u64>,
}

impl Default for AcceptOptions {
    fn default() -> Self {
        AcceptOptions {
            subprotocol: None,
            headers: Vec::new(),
            compression: true,
            receive_pongs: false,
            max_message_size: None,
        }
    }
}

impl AcceptOptions {
    /// Answers with this subprotocol.
    pub fn subprotocol(mut self, subprotocol: impl Into<String>) -> Self {
        self.subprotocol = Some(subprotocol.into());
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Allows or forbids permessage-deflate on this connection.
    pub fn compression(mut self, compression: bool) -> Self {
        self.compression = compression;
        self
    }

    /// Asks for pongs to be delivered as messages.
    pub fn receive_pongs(mut self, receive_pongs: bool) -> Self {
        self.receive_pongs = receive_pongs;
        self
    }

    /// Tightens the limit on one message's size (bytes).
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.max_message_size = Some(bytes);
        self
    }
}

/// How to reject a connection (`RejectRequest` in the seed).
///
/// ```
/// # use guest_sdk::RejectOptions;
/// let options = RejectOptions::new(401)
///     .header("WWW-Authenticate", r#"Bearer realm="wsbox""#)
///     .body("missing or invalid token\n");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectOptions {
    /// The HTTP status, 400-599. Default: 400.
    pub status: u16,
    /// The reason phrase; empty means the standard phrase for the status.
    /// Default: empty.
    pub reason: String,
    /// Extra response headers (`Content-Length` is set by the host).
    /// Default: none.
    pub headers: Vec<Header>,
    /// The response body. Default: empty.
    pub body: Vec<u8>,
}

impl Default for RejectOptions {
    fn default() -> Self {
        RejectOptions::new(400)
    }
}

impl RejectOptions {
    /// A rejection with this status and nothing else.
    pub fn new(status: u16) -> Self {
        RejectOptions {
            status,
            reason: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Sets the status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sets the reason phrase.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// A client that has sent its opening handshake and waits for an answer
/// (`PendingConnection` in the seed).
///
/// Answer it with one of the `accept` or `reject` methods, which consume it.
/// If the handler returns without answering, the host answers
/// `500 Internal Server Error`.
#[derive(Debug)]
pub struct PendingConnection {
    raw: websocket::PendingConnection,
}

impl PendingConnection {
    /// Wraps the raw resource (for code that mixes the SDK with
    /// [`bindings`](crate::bindings)).
    pub fn from_raw(raw: websocket::PendingConnection) -> Self {
        PendingConnection { raw }
    }

    /// The raw resource.
    pub fn as_raw(&self) -> &websocket::PendingConnection {
        &self.raw
    }

    /// Unwraps the raw resource.
    pub fn into_raw(self) -> websocket::PendingConnection {
        self.raw
    }

    /// The parsed request (`pendingRequest`). Each call asks the host again;
    /// keep the result if you need it more than once.
    pub fn request(&self) -> Request {
        self.raw.request().into()
    }

    /// Accepts with the default options (`acceptRequest`).
    pub fn accept(self) -> Result<Connection, HandshakeError> {
        self.accept_with(AcceptOptions::default())
    }

    /// Accepts with `options` (`acceptRequestWith`): sends
    /// `101 Switching Protocols` and opens the connection.
    pub fn accept_with(self, options: AcceptOptions) -> Result<Connection, HandshakeError> {
        let headers: Vec<_> = options.headers.iter().map(Header::as_param).collect();
        let raw_options = raw::AcceptOptions {
            subprotocol: options.subprotocol.as_deref(),
            headers: &headers,
            compression: options.compression,
            receive_pongs: options.receive_pongs,
            max_message_size: options.max_message_size,
        };
        let connection = self.raw.accept(raw_options)?;
        Ok(Connection::from_raw(connection))
    }

    /// Rejects with `400 Bad Request` and this body (`rejectRequest`).
    pub fn reject(self, body: impl Into<Vec<u8>>) -> Result<(), HandshakeError> {
        self.reject_with(RejectOptions::default().body(body))
    }

    /// Rejects with `options` (`rejectRequestWith`): sends the HTTP response
    /// and closes.
    pub fn reject_with(self, options: RejectOptions) -> Result<(), HandshakeError> {
        let headers: Vec<_> = options.headers.iter().map(Header::as_param).collect();
        let raw_options = raw::RejectOptions {
            status: options.status,
            reason: &options.reason,
            headers: &headers,
            body: &options.body,
        };
        Ok(self.raw.reject(raw_options)?)
    }
}
