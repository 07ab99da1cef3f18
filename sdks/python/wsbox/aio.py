"""asyncio for wsbox guests: an event loop over `wasi:io/poll`.

The host runs guests synchronously (no component-model async), so asyncio
cannot use its usual selector. This loop waits in `wasi:io/poll.poll` on
what its tasks wait for (a connection's `events_ready`, any other pollable)
together with a `wasi:clocks/monotonic-clock` deadline for its earliest
timer, which is what `asyncio.sleep`, `asyncio.timeout` and `wait_for` need::

    import asyncio
    import wsbox
    from wsbox import aio

    async def handle(pending: wsbox.PendingConnection) -> None:
        conn = pending.accept()

        async def ticker() -> None:
            for n in range(3):
                await asyncio.sleep(1)
                conn.send_text(f"tick {n}")

        task = asyncio.create_task(ticker())
        while True:
            conn.send(await aio.next_event(conn))  # raises CloseRequest at the end

    WitWorld = aio.export_handler(handle)

What it does not do: the calls on a connection (`send`, `publish`...) stay
synchronous and suspend the whole guest while the socket is full; there are
no sockets, threads, subprocesses or executors (WASI 0.2 guests of wsbox get
none). `run_in_executor`, `add_reader` and friends raise
`NotImplementedError`.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Optional, TypeVar, TypeVarTuple, Unpack

from wit_world.imports import monotonic_clock, poll

from . import export_handler as _export_handler
from ._connection import Connection, Event, Timeout

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

__all__ = ["PollLoop", "export_handler", "next_event", "run", "wait_ready"]


class PollLoop(asyncio.AbstractEventLoop):
    """An asyncio event loop that blocks in `wasi:io/poll.poll`."""

    def __init__(self) -> None:
        self._ready: deque[asyncio.Handle] = deque()
        self._timers: list[asyncio.TimerHandle] = []
        self._waiting: list[tuple[poll.Pollable, asyncio.Future[None]]] = []
        self._running = False
        self._closed = False
        self._exception: Optional[BaseException] = None

    # Scheduling.

    def time(self) -> float:
        return monotonic_clock.now() / 1e9

    def call_soon(
        self,
        callback: Callable[[Unpack[Ts]], object],
        *args: Unpack[Ts],
        context: Optional[contextvars.Context] = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[[Unpack[Ts]], object],
        *args: Unpack[Ts],
        context: Optional[contextvars.Context] = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[Ts]], object],
        *args: Unpack[Ts],
        context: Optional[contextvars.Context] = None,
    ) -> asyncio.TimerHandle:
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._timers, timer)
        return timer

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        # Cancelled timers are skipped when they come due.
        pass

    def wait_ready(self, pollable: poll.Pollable) -> asyncio.Future[None]:
        """A future done once `pollable` is ready; the loop owns (and drops)
        the pollable from then on."""
        future: asyncio.Future[None] = self.create_future()
        self._waiting.append((pollable, future))
        return future

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
        eager_start: Optional[bool] = None,
    ) -> asyncio.Task[T]:
        return asyncio.Task(coro, loop=self, name=name, context=context)

    # Running.

    def run_until_complete(self, future: Awaitable[T]) -> T:
        if self._running:
            raise RuntimeError("the loop is already running")
        task = asyncio.ensure_future(future, loop=self)
        self._running = True
        asyncio.events._set_running_loop(self)
        try:
            while not task.done():
                self._run_once()
                if self._exception is not None:
                    exception, self._exception = self._exception, None
                    raise exception
        finally:
            self._running = False
            asyncio.events._set_running_loop(None)
        return task.result()

    def _run_once(self) -> None:
        now = self.time()
        while self._timers and (self._timers[0].cancelled() or self._timers[0].when() <= now):
            timer = heapq.heappop(self._timers)
            if not timer.cancelled():
                self._ready.append(timer)
        if self._ready:
            for _ in range(len(self._ready)):
                handle = self._ready.popleft()
                if not handle.cancelled():
                    handle._run()
            return
        self._waiting = [(p, f) for p, f in self._waiting if not f.done() or _drop(p)]
        pollables = [p for p, _ in self._waiting]
        deadline = None
        if self._timers:
            nanos = max(0, int((self._timers[0].when() - now) * 1e9))
            deadline = monotonic_clock.subscribe_duration(nanos)
            pollables.append(deadline)
        if not pollables:
            raise RuntimeError("deadlock: every task waits and nothing can wake them")
        ready = set(poll.poll(pollables))
        if deadline is not None:
            deadline.__exit__(None, None, None)
        still = []
        for index, (pollable, future) in enumerate(self._waiting):
            if index in ready:
                pollable.__exit__(None, None, None)
                if not future.done():
                    future.set_result(None)
            else:
                still.append((pollable, future))
        self._waiting = still

    def run_forever(self) -> None:
        raise NotImplementedError("use run_until_complete (or wsbox.aio.run)")

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def stop(self) -> None:
        raise NotImplementedError("the loop stops when its main coroutine ends")

    def close(self) -> None:
        for pollable, _ in self._waiting:
            pollable.__exit__(None, None, None)
        self._waiting = []
        self._closed = True

    async def shutdown_asyncgens(self) -> None:
        pass

    async def shutdown_default_executor(self, timeout: Optional[float] = None) -> None:
        pass

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        # An exception nobody retrieved (e.g. in a forgotten task): end the
        # handler with it rather than lose it.
        exception = context.get("exception")
        if self._exception is None and isinstance(exception, BaseException):
            self._exception = exception

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)


def _drop(pollable: poll.Pollable) -> bool:
    pollable.__exit__(None, None, None)
    return False


def run(main: Coroutine[Any, Any, T]) -> T:
    """Runs `main` on a fresh `PollLoop` until it ends (`asyncio.run` for
    wsbox guests). Tasks still pending then are cancelled."""
    # AbstractEventLoop's other methods raise NotImplementedError at run
    # time; typeshed declares them abstract.
    loop = PollLoop()  # type: ignore[abstract]
    try:
        return loop.run_until_complete(main)
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.close()


async def wait_ready(pollable: poll.Pollable) -> None:
    """Waits until `pollable` (any `wasi:io/poll` pollable) is ready; the
    pollable is dropped afterwards."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, PollLoop):
        raise RuntimeError("wsbox.aio needs its PollLoop: use wsbox.aio.run or export_handler")
    await loop.wait_ready(pollable)


async def next_event(conn: Connection, timeout: Optional[float] = None) -> Event:
    """`Connection.next_event` for asyncio: other tasks run while it waits."""
    if timeout is not None:
        try:
            async with asyncio.timeout(timeout):
                return await next_event(conn)
        except TimeoutError:
            return Timeout()
    while True:
        event = conn.poll_event()
        if event is not None:
            return event
        await wait_ready(conn.events_ready())


def export_handler(handler: Callable[[Any], Coroutine[Any, Any, object]]) -> type:
    """`wsbox.export_handler` for an `async def` handler, run with `run`."""
    return _export_handler(lambda pending: run(handler(pending)))
