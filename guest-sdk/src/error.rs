//! Errors of the handshake and of an open connection.

use std::fmt;

use crate::bindings::wsbox::websocket::types as raw;

/// Why a receive or a send could not go on.
///
/// [`CloseRequest`](Self::CloseRequest) and
/// [`ConnectionClosed`](Self::ConnectionClosed) are how a connection ends
/// (the seed's exceptions of the same names); [`is_closed`](Self::is_closed)
/// tells them from the others.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer sent a close frame. The host has already answered it; the
    /// connection is closed once the handler returns. `code` 1005 stands for
    /// a close frame that carried no code.
    CloseRequest {
        /// The peer's status code (RFC 6455 section 7.4).
        code: u16,
        /// The peer's reason, possibly empty.
        reason: String,
    },
    /// The connection is gone: the peer dropped it, the host closed it for a
    /// protocol violation or a timeout, or it was already closed.
    ConnectionClosed,
    /// The call broke a protocol rule (a close code that may not be sent, a
    /// close reason over 123 bytes, a ping over 125 bytes, a message over the
    /// size limit...). Nothing was sent; the connection is still usable.
    InvalidArgument(String),
    /// A received message could not be converted to the type asked for (for
    /// example binary data that is not UTF-8, or JSON that does not parse).
    /// Raised by the SDK, not the host; the connection is still usable.
    InvalidData(String),
}

impl ConnectionError {
    /// Whether the connection has ended: the peer's close or a dropped
    /// connection, as opposed to a misuse that leaves it usable.
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            ConnectionError::CloseRequest { .. } | ConnectionError::ConnectionClosed
        )
    }
}

impl From<raw::ConnectionError> for ConnectionError {
    fn from(error: raw::ConnectionError) -> Self {
        match error {
            raw::ConnectionError::CloseRequest(frame) => ConnectionError::CloseRequest {
                code: frame.code,
                reason: frame.reason,
            },
            raw::ConnectionError::ConnectionClosed => ConnectionError::ConnectionClosed,
            raw::ConnectionError::InvalidArgument(why) => ConnectionError::InvalidArgument(why),
        }
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::CloseRequest { code, reason } if reason.is_empty() => {
                write!(f, "the peer closed the connection ({code})")
            }
            ConnectionError::CloseRequest { code, reason } => {
                write!(f, "the peer closed the connection ({code} \"{reason}\")")
            }
            ConnectionError::ConnectionClosed => f.write_str("the connection is closed"),
            ConnectionError::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            ConnectionError::InvalidData(why) => write!(f, "invalid data: {why}"),
        }
    }
}

impl std::error::Error for ConnectionError {}

/// Why [`accept`](crate::PendingConnection::accept) or
/// [`reject`](crate::PendingConnection::reject) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The chosen subprotocol was not among those the client offered.
    SubprotocolNotOffered(String),
    /// A header name or value is not valid HTTP, or is one the host controls
    /// (`Upgrade`, `Connection`, `Sec-WebSocket-*`, `Content-Length`).
    InvalidHeader(String),
    /// The status is outside 400-599 or the reason phrase is not valid.
    InvalidStatus(String),
    /// The connection was already accepted or rejected.
    AlreadyAnswered,
    /// The client went away before the response could be sent.
    ConnectionClosed,
}

impl From<raw::HandshakeError> for HandshakeError {
    fn from(error: raw::HandshakeError) -> Self {
        match error {
            raw::HandshakeError::SubprotocolNotOffered(p) => {
                HandshakeError::SubprotocolNotOffered(p)
            }
            raw::HandshakeError::InvalidHeader(why) => HandshakeError::InvalidHeader(why),
            raw::HandshakeError::InvalidStatus(why) => HandshakeError::InvalidStatus(why),
            raw::HandshakeError::AlreadyAnswered => HandshakeError::AlreadyAnswered,
            raw::HandshakeError::ConnectionClosed => HandshakeError::ConnectionClosed,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::SubprotocolNotOffered(p) => {
                write!(f, "subprotocol \"{p}\" was not offered by the client")
            }
            HandshakeError::InvalidHeader(why) => write!(f, "invalid header: {why}"),
            HandshakeError::InvalidStatus(why) => write!(f, "invalid status: {why}"),
            HandshakeError::AlreadyAnswered => {
                f.write_str("the connection was already accepted or rejected")
            }
            HandshakeError::ConnectionClosed => {
                f.write_str("the client went away before the handshake was answered")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Either kind of error, so that one handler can use `?` on both the
/// handshake and the connection. See [`Result`](crate::Result).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The open connection failed or ended.
    Connection(ConnectionError),
}

impl Error {
    /// Whether this is the normal end of a connection (the peer closed it or
    /// went away) rather than a failure.
    pub fn is_closed(&self) -> bool {
        match self {
            Error::Handshake(e) => *e == HandshakeError::ConnectionClosed,
            Error::Connection(e) => e.is_closed(),
        }
    }
}

impl From<HandshakeError> for Error {
    fn from(error: HandshakeError) -> Self {
        Error::Handshake(error)
    }
}

impl From<ConnectionError> for Error {
    fn from(error: ConnectionError) -> Self {
        Error::Connection(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Handshake(e) => fmt::Display::fmt(e, f),
            Error::Connection(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Handshake(e) => Some(e),
            Error::Connection(e) => Some(e),
        }
    }
}
