"""An open WebSocket connection, its topics and its events."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional, Union

from componentize_py_types import Err
from wit_world.imports import monotonic_clock, poll
from wit_world.imports import types as raw
from wit_world.imports import websocket

from ._errors import InvalidArgument, InvalidData, connection_error
from ._message import Binary, Message, Pong, Sendable, Text, from_raw, to_raw


class Delivery(Enum):
    """How a topic's messages reach this connection."""

    SOCKET = "socket"
    """The host writes each message straight to the client's socket, framed
    (and compressed) once per publish, without waking this guest. The
    default, and the fast path."""
    GUEST = "guest"
    """The host queues each message for this guest, which gets it from
    `next_event` as a `TopicMessage`."""


@dataclass(frozen=True, slots=True)
class TopicMessage:
    """A message published to a topic, delivered to this guest
    (`Delivery.GUEST`)."""

    topic: str
    message: Message
    """Text or binary."""
    publisher: int
    """The publishing connection's id (`Connection.id`)."""


@dataclass(frozen=True, slots=True)
class Timeout:
    """What `next_event` returns when its timeout passed first."""


Event = Union[Text, Binary, Pong, TopicMessage, Timeout]
"""What `next_event` waited for: a client message, a topic message, or the
timeout."""


class Connection:
    """An open WebSocket connection (`Connection` in the seed).

    The host handles control frames: it answers pings and the peer's close and
    sends keep-alive pings, so a guest only deals with messages. Every call may
    suspend the guest (never a host thread): `receive` until a message
    arrives, the sends while the socket cannot take more. Calls raise
    `CloseRequest` / `ConnectionClosed` when the connection has ended and
    `InvalidArgument` for a call that breaks a protocol rule.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw_connection: websocket.Connection) -> None:
        self._raw = raw_connection

    @property
    def raw(self) -> websocket.Connection:
        """The raw resource of the generated bindings."""
        return self._raw

    @property
    def subprotocol(self) -> Optional[str]:
        """The subprotocol agreed in the handshake, if any."""
        return self._raw.subprotocol()

    @property
    def extensions(self) -> Optional[str]:
        """The `Sec-WebSocket-Extensions` value the host answered with, if an
        extension was negotiated."""
        return self._raw.extensions()

    @property
    def id(self) -> int:
        """This connection's id: opaque, unique among the connections of one
        host run; the `publisher` of its publishes."""
        return self._raw.id()

    def receive(self) -> Message:
        """Waits for the next message (`receiveDataMessage`). Raises
        `CloseRequest` when the peer closes (the host has answered already)
        or `ConnectionClosed`."""
        try:
            return from_raw(self._raw.receive())
        except Err as err:
            raise connection_error(err) from None

    def receive_all(self) -> list[Message]:
        """Waits for the next message, then returns it with the messages
        already received behind it, in order: never empty; at most 64
        messages, and 64 KiB unless the first alone is larger. Answering a
        batch with one `send_messages` handles a burst in two host calls
        instead of two per message. Raises as `receive` does, on the call
        after the messages in front of the close."""
        try:
            return [from_raw(m) for m in self._raw.receive_all()]
        except Err as err:
            raise connection_error(err) from None

    def _receive_data(self) -> Union[Text, Binary]:
        while True:
            message = self.receive()
            if not isinstance(message, Pong):
                return message

    def receive_text(self) -> str:
        """The next text or binary message as `str` (pongs skipped);
        `InvalidData` for binary data that is not UTF-8."""
        message = self._receive_data()
        if isinstance(message, Text):
            return message.text
        try:
            return message.data.decode()
        except UnicodeDecodeError as e:
            raise InvalidData(f"message is not UTF-8: {e}") from None

    def receive_bytes(self) -> bytes:
        """The next text or binary message as `bytes` (pongs skipped)."""
        return self._receive_data().data

    def receive_json(self) -> Any:
        """The next text or binary message parsed as JSON (pongs skipped);
        `InvalidData` if it does not parse."""
        try:
            return json.loads(self._receive_data().data)
        except ValueError as e:
            raise InvalidData(f"invalid JSON: {e}") from None

    def send(self, message: Sendable) -> None:
        """Sends one message (`sendDataMessage`): `str` as text, bytes as
        binary, or a `Message`."""
        self._call(self._raw.send, to_raw(message))

    def send_text(self, text: str) -> None:
        """Sends a text message (`sendTextData`)."""
        self._call(self._raw.send, raw.Message_Text(text))

    def send_binary(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Sends a binary message (`sendBinaryData`)."""
        self._call(self._raw.send, raw.Message_Binary(bytes(data)))

    def send_json(self, value: Any) -> None:
        """Sends `value` as a JSON text message; `InvalidArgument` (nothing
        sent) if it cannot be serialized."""
        try:
            text = json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"cannot serialize JSON: {e}") from None
        self.send_text(text)

    def send_messages(self, messages: Iterable[Sendable]) -> None:
        """Sends several messages in one write (`sendDataMessages`)."""
        self._call(self._raw.send_all, [to_raw(m) for m in messages])

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Starts the closing handshake (`sendClose` / `sendCloseCode`). As in
        the seed, keep calling `receive` until it raises the peer's
        `CloseRequest` or `ConnectionClosed`; the host drops the connection
        if the peer does not answer in time."""
        self._call(self._raw.close, code, reason)

    def ping(self, payload: bytes = b"") -> None:
        """Sends a ping (`sendPing`), at most 125 bytes; the pong is not
        awaited (see `accept(receive_pongs=True)`)."""
        self._call(self._raw.ping, bytes(payload))

    def pong(self, payload: bytes = b"") -> None:
        """Sends an unsolicited pong (a heartbeat), at most 125 bytes."""
        self._call(self._raw.send, raw.Message_Pong(bytes(payload)))

    # Topics.

    def subscribe(self, topic: str, delivery: Delivery = Delivery.SOCKET) -> None:
        """Subscribes to `topic` (1 to 256 bytes, matched exactly); its
        messages go straight to the client's socket unless `delivery` is
        `Delivery.GUEST`. Subscribing again changes the delivery."""
        raw_delivery = raw.Delivery.GUEST if delivery is Delivery.GUEST else raw.Delivery.SOCKET
        self._call(self._raw.subscribe, topic, raw_delivery)

    def unsubscribe(self, topic: str) -> bool:
        """Unsubscribes from `topic`; `False` if it was not subscribed."""
        return bool(self._call(self._raw.unsubscribe, topic))

    def publish(self, topic: str, message: Sendable, *, include_self: bool = False) -> int:
        """Publishes `message` (text or binary) to every other subscriber of
        `topic` (this connection too with `include_self`, if subscribed).
        Never waits; returns how many subscribers of this host it was queued
        for (one over the host's backpressure limit misses it)."""
        options = raw.PublishOptions(include_self=include_self)
        return int(self._call(self._raw.publish, topic, to_raw(message), options))

    def subscriber_count(self, topic: str) -> int:
        """How many connections of this host subscribe to `topic`."""
        return int(self._call(self._raw.subscriber_count, topic))

    # Events.

    def poll_event(self) -> Optional[Union[Message, TopicMessage]]:
        """The next event without waiting: `None` when there is none yet.
        Ends like `receive`: the close request once, then
        `ConnectionClosed`."""
        event = self._raw.next_event()
        if event is None:
            return None
        if isinstance(event, raw.Event_Message):
            return from_raw(event.value)
        if isinstance(event, raw.Event_Topic):
            t = event.value
            return TopicMessage(t.topic, from_raw(t.message), t.publisher)
        raise connection_error(Err(event.value))

    def next_event(self, timeout: Optional[float] = None) -> Event:
        """Waits for the first of a client message, a topic message delivered
        to this guest and, unless `timeout` (seconds) is `None`, the timeout
        (`Timeout()`). Ends like `receive`. Built on `wasi:io/poll`; see
        `events_ready` to wait on other pollables too."""
        event = self.poll_event()
        if event is not None:
            return event
        with self.events_ready() as ready:
            if timeout is None:
                while True:
                    ready.block()
                    event = self.poll_event()
                    if event is not None:
                        return event
            nanos = max(0, int(timeout * 1e9))
            with monotonic_clock.subscribe_duration(nanos) as deadline:
                while True:
                    if 0 not in poll.poll([ready, deadline]):
                        return Timeout()
                    event = self.poll_event()
                    if event is not None:
                        return event

    def events_ready(self) -> poll.Pollable:
        """A `wasi:io/poll` pollable that is ready when `poll_event` has
        something, for guests that poll several things at once."""
        return self._raw.events_ready()

    @staticmethod
    def _call(method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except Err as err:
            raise connection_error(err) from None
