"""A test guest for the Python SDK beyond the examples, one path each:

- `/aio`: asyncio on wsbox.aio's loop. A task sends `tick 0`..`tick 2` 100 ms
  apart (asyncio.sleep: a clock pollable) while the handler echoes the
  client's messages (the connection's pollable); after 500 ms without events
  (asyncio.timeout) it sends `idle`.
- `/topics`: subscribes to `room` with guest delivery and sends
  `{"id": ID, "count": SUBSCRIBERS}`. Then `publish:TEXT` publishes TEXT to
  `room` and answers `published to N`; `wait` waits 200 ms for an event and
  answers `timeout`; a delivered topic message is sent on as
  `TOPIC from PUBLISHER: TEXT`.
- `/errors`: each misuse answered with the exception's class name: a close
  code that may not be sent, a ping over 125 bytes, then (on the client's
  next message) `receive_json` on text that is not JSON.
- `/bad-subprotocol`: accepting with a subprotocol the client did not offer
  fails; the guest then rejects with 400 and the exception's class name.
"""

import asyncio
from collections.abc import Callable

import wsbox
from wsbox import aio


async def ticks_and_echoes(conn: wsbox.Connection) -> None:
    async def ticker() -> None:
        for n in range(3):
            await asyncio.sleep(0.1)
            conn.send_text(f"tick {n}")

    ticks = asyncio.create_task(ticker())
    while True:
        event = await aio.next_event(conn, timeout=0.5)
        if isinstance(event, wsbox.Timeout):
            conn.send_text("idle" if ticks.done() else "idle while ticking")
        elif isinstance(event, (wsbox.Text, wsbox.Binary)):
            conn.send(event)


def topics(conn: wsbox.Connection) -> None:
    conn.subscribe("room", wsbox.Delivery.GUEST)
    conn.send_json({"id": conn.id, "count": conn.subscriber_count("room")})
    while True:
        event = conn.next_event()
        if isinstance(event, wsbox.TopicMessage):
            assert isinstance(event.message, wsbox.Text)
            conn.send_text(f"{event.topic} from {event.publisher}: {event.message.text}")
        elif event == wsbox.Text("wait"):
            if isinstance(conn.next_event(timeout=0.2), wsbox.Timeout):
                conn.send_text("timeout")
        elif isinstance(event, wsbox.Text) and event.text.startswith("publish:"):
            count = conn.publish("room", event.text.removeprefix("publish:"))
            conn.send_text(f"published to {count}")


def errors(conn: wsbox.Connection) -> None:
    misuses: list[Callable[[], None]] = [
        lambda: conn.close(999, "no"),
        lambda: conn.ping(b"x" * 200),
    ]
    for misuse in misuses:
        try:
            misuse()
        except wsbox.WsboxError as error:
            conn.send_text(type(error).__name__)
    try:
        conn.receive_json()
    except wsbox.InvalidData as error:
        conn.send_text(type(error).__name__)
    while True:
        conn.receive()


def handle(pending: wsbox.PendingConnection) -> None:
    path = pending.request().path
    if path == "/bad-subprotocol":
        try:
            pending.accept(subprotocol="never.offered")
        except wsbox.HandshakeError as error:
            pending.reject(type(error).__name__, status=400)
        return
    conn = pending.accept()
    if path == "/aio":
        aio.run(ticks_and_echoes(conn))
    elif path == "/topics":
        topics(conn)
    else:
        errors(conn)


WitWorld = wsbox.export_handler(handle)
