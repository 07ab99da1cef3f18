"""The request, the pending connection and how to answer it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Optional, Union
from urllib.parse import unquote_plus

from componentize_py_types import Err
from wit_world.imports import types as raw
from wit_world.imports import websocket

from ._connection import Connection
from ._errors import handshake_error

HeaderValue = Union[str, bytes]
Headers = Union[Mapping[str, HeaderValue], Iterable[tuple[str, HeaderValue]]]
"""Response headers: a mapping or (name, value) pairs; values `str` or `bytes`."""


@dataclass(frozen=True, slots=True)
class Header:
    """One HTTP header. Values are bytes because HTTP does not promise UTF-8."""

    name: str
    value: bytes

    @property
    def value_str(self) -> Optional[str]:
        """The value as text, if it is valid UTF-8."""
        try:
            return self.value.decode()
        except UnicodeDecodeError:
            return None


def _raw_headers(headers: Headers) -> list[raw.Header]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [
        raw.Header(name, value.encode() if isinstance(value, str) else bytes(value))
        for name, value in pairs
    ]


@dataclass(frozen=True, slots=True)
class Request:
    """The opening handshake request as the host parsed and validated it
    (`pendingRequest` / `RequestHead` in the seed)."""

    target: str
    """The request target as sent: path and query, e.g. `/chat?room=1`."""
    headers: tuple[Header, ...]
    """Every header, in the order received."""
    subprotocols: tuple[str, ...]
    """The subprotocols offered, in the client's order of preference."""
    extensions: tuple[str, ...]
    """The names of the extensions offered (e.g. `permessage-deflate`)."""
    remote_address: str
    """The peer's address as `ip:port`."""

    @property
    def path(self) -> str:
        """The path without the query, e.g. `/chat`. Not percent-decoded."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> Optional[str]:
        """The raw query string after `?`, if there is one."""
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else None

    def query_pairs(self) -> Iterator[tuple[str, str]]:
        """The query's `name=value` pairs, percent-decoded (`+` is a space),
        in order. A pair without `=` has an empty value."""
        for pair in (self.query or "").split("&"):
            if pair:
                name, _, value = pair.partition("=")
                yield unquote_plus(name), unquote_plus(value)

    def query_param(self, name: str) -> Optional[str]:
        """The first value of the query parameter `name`, percent-decoded:
        `"a b"` for `/?token=a%20b`; `None` if absent."""
        return next((value for n, value in self.query_pairs() if n == name), None)

    def header(self, name: str) -> Optional[bytes]:
        """The value of the first header called `name` (case-insensitive)."""
        return next(iter(self.header_values(name)), None)

    def header_str(self, name: str) -> Optional[str]:
        """Like `header`, as text, if it is valid UTF-8."""
        value = self.header(name)
        try:
            return None if value is None else value.decode()
        except UnicodeDecodeError:
            return None

    def header_values(self, name: str) -> list[bytes]:
        """The values of every header called `name` (case-insensitive), in order."""
        wanted = name.lower()
        return [h.value for h in self.headers if h.name.lower() == wanted]

    def offers_subprotocol(self, name: str) -> bool:
        """Whether the client offered the subprotocol `name`."""
        return name in self.subprotocols


@dataclass(slots=True)
class AcceptOptions:
    """How to accept a connection (`AcceptRequest` and the per-connection part
    of `ConnectionOptions` in the seed). Every field has a default."""

    subprotocol: Optional[str] = None
    """The subprotocol to answer with; it must be one the client offered."""
    headers: Headers = field(default_factory=list)
    """Extra headers for the `101` response (not `Upgrade`, `Connection`,
    `Sec-WebSocket-*`)."""
    compression: bool = True
    """Allow permessage-deflate if offered and enabled on the host."""
    receive_pongs: bool = False
    """Deliver pongs to `receive` as `Pong` messages (`connectionOnPong`)."""
    max_message_size: Optional[int] = None
    """Tighten the host's limit on one message's size (bytes, after
    decompression)."""


@dataclass(slots=True)
class RejectOptions:
    """How to reject a connection (`RejectRequest` in the seed)."""

    status: int = 400
    """The HTTP status, 400-599."""
    reason: str = ""
    """The reason phrase; empty means the standard phrase for the status."""
    headers: Headers = field(default_factory=list)
    """Extra response headers (`Content-Length` is set by the host)."""
    body: HeaderValue = b""
    """The response body (`str` is sent as UTF-8)."""


class PendingConnection:
    """A client that has sent its opening handshake and waits for an answer
    (`PendingConnection` in the seed). Answer it once, with `accept` or
    `reject`; if the handler returns without answering, the host answers
    `500 Internal Server Error`."""

    __slots__ = ("_raw",)

    def __init__(self, raw_pending: websocket.PendingConnection) -> None:
        self._raw = raw_pending

    @property
    def raw(self) -> websocket.PendingConnection:
        """The raw resource of the generated bindings."""
        return self._raw

    def request(self) -> Request:
        """The parsed request (`pendingRequest`). Each call asks the host
        again; keep the result if you need it more than once."""
        r = self._raw.request()
        return Request(
            target=r.path,
            headers=tuple(Header(h.name, h.value) for h in r.headers),
            subprotocols=tuple(r.subprotocols),
            extensions=tuple(r.extensions),
            remote_address=r.remote_address,
        )

    def accept(
        self,
        *,
        subprotocol: Optional[str] = None,
        headers: Headers = (),
        compression: bool = True,
        receive_pongs: bool = False,
        max_message_size: Optional[int] = None,
    ) -> Connection:
        """Sends `101 Switching Protocols` and opens the connection
        (`acceptRequest` / `acceptRequestWith`); see `AcceptOptions` for the
        keywords. Raises a `HandshakeError`, or `ConnectionClosed` if the
        client went away."""
        return self.accept_with(
            AcceptOptions(subprotocol, headers, compression, receive_pongs, max_message_size)
        )

    def accept_with(self, options: AcceptOptions) -> Connection:
        """Like `accept`, with the options in one value."""
        raw_options = raw.AcceptOptions(
            subprotocol=options.subprotocol,
            headers=_raw_headers(options.headers),
            compression=options.compression,
            receive_pongs=options.receive_pongs,
            max_message_size=options.max_message_size,
        )
        try:
            return Connection(self._raw.accept(raw_options))
        except Err as err:
            raise handshake_error(err) from None

    def reject(
        self,
        body: HeaderValue = b"",
        *,
        status: int = 400,
        reason: str = "",
        headers: Headers = (),
    ) -> None:
        """Sends an HTTP error response and closes (`rejectRequest` /
        `rejectRequestWith`): 400 with `body` unless told otherwise."""
        self.reject_with(RejectOptions(status, reason, headers, body))

    def reject_with(self, options: RejectOptions) -> None:
        """Like `reject`, with the options in one value."""
        body = options.body.encode() if isinstance(options.body, str) else bytes(options.body)
        raw_options = raw.RejectOptions(
            status=options.status,
            reason=options.reason,
            headers=_raw_headers(options.headers),
            body=body,
        )
        try:
            self._raw.reject(raw_options)
        except Err as err:
            raise handshake_error(err) from None
