"""Write wsbox WebSocket guests in Python.

wsbox runs one instance of a guest component per WebSocket connection. The
host owns the socket, the opening handshake, framing, control frames and
compression; the guest gets a `PendingConnection`, accepts or rejects it, and
then exchanges whole messages over a `Connection`::

    import wsbox

    def handle(pending: wsbox.PendingConnection) -> None:
        conn = pending.accept()
        while True:
            conn.send(conn.receive())  # raises the client's CloseRequest

    WitWorld = wsbox.export_handler(handle)

Build it with componentize-py (see README.md):
``componentize-py -d WIT -w handler componentize -p SDK -p . app -o app.wasm``.
"""

from __future__ import annotations

from typing import Callable

from wit_world.imports import websocket

from . import log
from ._connection import Connection, Delivery, Event, Timeout, TopicMessage
from ._errors import (
    AlreadyAnswered,
    CloseRequest,
    ConnectionClosed,
    ConnectionEnded,
    HandshakeError,
    InvalidArgument,
    InvalidData,
    InvalidHeader,
    InvalidStatus,
    SubprotocolNotOffered,
    WsboxError,
)
from ._message import Binary, Message, Pong, Sendable, Text
from ._pending import AcceptOptions, Header, Headers, PendingConnection, RejectOptions, Request

__all__ = [
    "AcceptOptions",
    "AlreadyAnswered",
    "Binary",
    "CloseRequest",
    "Connection",
    "ConnectionClosed",
    "ConnectionEnded",
    "Delivery",
    "Event",
    "HandshakeError",
    "Header",
    "Headers",
    "InvalidArgument",
    "InvalidData",
    "InvalidHeader",
    "InvalidStatus",
    "Message",
    "PendingConnection",
    "Pong",
    "RejectOptions",
    "Request",
    "Sendable",
    "SubprotocolNotOffered",
    "Text",
    "Timeout",
    "TopicMessage",
    "WsboxError",
    "export_handler",
    "log",
    "run",
]

Handler = Callable[[PendingConnection], object]
"""A handler: takes the pending connection; what it returns is ignored."""


def run(pending: websocket.PendingConnection, handler: Handler) -> None:
    """Runs `handler` on a raw pending connection, as `export_handler` does.

    `ConnectionEnded` (the peer's close, a connection gone) is the normal
    end and is dropped quietly; any other `WsboxError` is written to the host
    log at error level. Either way the host then ends the connection as after
    any return (1000 unless the guest closed it otherwise). Other exceptions
    propagate: the guest traps, its traceback goes to the host log, and the
    host closes the connection with 1011.
    """
    try:
        handler(PendingConnection(pending))
    except ConnectionEnded:
        pass
    except WsboxError as error:
        log.error(f"handler failed: {error}")


def export_handler(handler: Handler) -> type:
    """The class componentize-py exports as the component's `handle`. Bind it
    to the name `WitWorld` at the top level of the app module::

        WitWorld = wsbox.export_handler(handle)
    """

    class WitWorld:
        def handle(self, pending: websocket.PendingConnection) -> None:
            run(pending, handler)

    WitWorld.__doc__ = f"Exports {getattr(handler, '__name__', 'the handler')} as `handle`."
    return WitWorld
