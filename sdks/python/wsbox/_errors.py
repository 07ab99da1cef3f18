"""Errors of the handshake and of an open connection, as exceptions.

`CloseRequest` and `ConnectionClosed` are how a connection ends (the seed's
exceptions of the same names); both are `ConnectionEnded`, which a handler
need not catch: `export_handler` treats them as a normal end.
"""

from __future__ import annotations

from componentize_py_types import Err
from wit_world.imports import types as raw


class WsboxError(Exception):
    """Base of every error the SDK raises."""


class ConnectionEnded(WsboxError):
    """The connection has ended normally: `CloseRequest` or `ConnectionClosed`."""


class CloseRequest(ConnectionEnded):
    """The peer sent a close frame; the host has answered it already.

    `code` is the peer's status code (1005: the frame carried none) and
    `reason` its reason, possibly empty.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        if self.reason:
            return f'the peer closed the connection ({self.code} "{self.reason}")'
        return f"the peer closed the connection ({self.code})"


class ConnectionClosed(ConnectionEnded):
    """The connection is gone: the peer dropped it, the host closed it (a
    protocol violation, a timeout, shutdown), it was already closed, or the
    client went away before the handshake was answered."""

    def __str__(self) -> str:
        return "the connection is closed"


class InvalidArgument(WsboxError, ValueError):
    """The call broke a protocol rule (a close code that may not be sent, a
    reason over 123 bytes, a ping over 125 bytes, a message over the size
    limit...). Nothing was sent; the connection is still usable."""


class InvalidData(WsboxError, ValueError):
    """A received message could not be converted to the type asked for
    (binary data that is not UTF-8, JSON that does not parse). Raised by the
    SDK, not the host; the connection is still usable."""


class HandshakeError(WsboxError):
    """`accept` or `reject` failed (the client going away is
    `ConnectionClosed` instead)."""


class SubprotocolNotOffered(HandshakeError):
    """The chosen subprotocol was not among those the client offered."""


class InvalidHeader(HandshakeError, ValueError):
    """A header name or value is not valid HTTP, or is one the host controls
    (`Upgrade`, `Connection`, `Sec-WebSocket-*`, `Content-Length`)."""


class InvalidStatus(HandshakeError, ValueError):
    """The status is outside 400-599 or the reason phrase is not valid."""


class AlreadyAnswered(HandshakeError):
    """The connection was already accepted or rejected."""


def connection_error(err: Err[raw.ConnectionError]) -> WsboxError:
    """The exception for a raw `connection-error`."""
    value = err.value
    if isinstance(value, raw.ConnectionError_CloseRequest):
        return CloseRequest(value.value.code, value.value.reason)
    if isinstance(value, raw.ConnectionError_InvalidArgument):
        return InvalidArgument(value.value)
    return ConnectionClosed()


def handshake_error(err: Err[raw.HandshakeError]) -> WsboxError:
    """The exception for a raw `handshake-error`."""
    value = err.value
    if isinstance(value, raw.HandshakeError_SubprotocolNotOffered):
        return SubprotocolNotOffered(value.value)
    if isinstance(value, raw.HandshakeError_InvalidHeader):
        return InvalidHeader(value.value)
    if isinstance(value, raw.HandshakeError_InvalidStatus):
        return InvalidStatus(value.value)
    if isinstance(value, raw.HandshakeError_AlreadyAnswered):
        return AlreadyAnswered("the connection was already accepted or rejected")
    return ConnectionClosed()
