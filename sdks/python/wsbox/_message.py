"""Data messages (`DataMessage` in the seed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from wit_world.imports import types as raw


@dataclass(frozen=True, slots=True)
class Text:
    """A text message; always valid UTF-8 (the host checks it)."""

    text: str

    @property
    def data(self) -> bytes:
        """The payload as UTF-8 bytes."""
        return self.text.encode()


@dataclass(frozen=True, slots=True)
class Binary:
    """A binary message."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong's payload (at most 125 bytes). Received only when asked for at
    accept time (`receive_pongs=True`); sending one sends an unsolicited pong
    (a heartbeat)."""

    data: bytes


Message = Union[Text, Binary, Pong]
"""A complete WebSocket message: `Text`, `Binary` or `Pong`."""

Sendable = Union[str, bytes, bytearray, memoryview, Text, Binary, Pong]
"""What the send methods take: `str` is sent as text, bytes-likes as binary."""


def from_raw(message: raw.Message) -> Message:
    """The SDK message for a raw one."""
    if isinstance(message, raw.Message_Text):
        return Text(message.value)
    if isinstance(message, raw.Message_Binary):
        return Binary(message.value)
    return Pong(message.value)


def to_raw(message: Sendable) -> raw.Message:
    """The raw message for `message`; `TypeError` for anything else."""
    if isinstance(message, str):
        return raw.Message_Text(message)
    if isinstance(message, (bytes, bytearray, memoryview)):
        return raw.Message_Binary(bytes(message))
    if isinstance(message, Text):
        return raw.Message_Text(message.text)
    if isinstance(message, Binary):
        return raw.Message_Binary(message.data)
    if isinstance(message, Pong):
        return raw.Message_Pong(message.data)
    raise TypeError(f"cannot send a {type(message).__name__}: use str, bytes or a Message")
