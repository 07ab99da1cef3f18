"""A test guest for wsbox.aio: asyncio tasks over wasi:io/poll.

It accepts, then runs two things at once on the asyncio loop: a task that
sends `tick 0`, `tick 1`, `tick 2` 100 ms apart (asyncio.sleep: a clock
pollable), and a loop that echoes the client's messages (a connection
pollable) and, when nothing came for 500 ms (asyncio.timeout), sends
`idle`. The client's close ends the handler normally.
"""

import asyncio

import wsbox
from wsbox import aio


async def handle(pending: wsbox.PendingConnection) -> None:
    conn = pending.accept()

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


WitWorld = aio.export_handler(handle)
