"""Leaving on SIGTERM or Ctrl-C: the application lets its clients go first, then uvicorn stops.

At the first exit signal the application's `leave(hurry)` runs on the event loop, and only when
it returns is the signal passed on to uvicorn, which then stops listening, waits for the open
connections and runs the lifespan's shutdown. So a node behind a load balancer can first fail
its readiness check until the balancer has noticed, and end its event streams (clients
reconnect elsewhere) before uvicorn starts waiting for connections — instead of streams being
cut off when uvicorn's patience ends.

A terminal's Ctrl-C signals the whole foreground process group, and `uv run` forwards the
SIGINT it got to the server as well: the server sees two SIGINTs a few milliseconds apart, and
uvicorn reads a second SIGINT as "force exit now". Here a SIGINT within `DUPLICATE_WINDOW_S` of
the previous exit signal counts as the same Ctrl-C. A signal sent deliberately later sets
`hurry` (skip what is left of the drain) and is passed on at once; one more forces the exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from types import FrameType

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_S = 1.0
EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], object]
Leave = Callable[[asyncio.Event], Awaitable[None]]


def _uvicorn_handler(handler: object) -> Handler | None:
    """The handler, if it is a running uvicorn server's (`Server.handle_exit`)."""
    import uvicorn

    owner = getattr(handler, "__self__", None)
    return handler if isinstance(owner, uvicorn.Server) and callable(handler) else None


def on_first_exit_signal(leave: Leave) -> bool:
    """While uvicorn serves in this process: at the first SIGINT or SIGTERM run `leave(hurry)`,
    then pass the signal on to uvicorn; swallow duplicate SIGINTs. False when uvicorn's
    handlers are not installed (not served by uvicorn, or not in the main thread): nothing is
    changed."""
    previous = {sig: _uvicorn_handler(signal.getsignal(sig)) for sig in EXIT_SIGNALS}
    if any(handler is None for handler in previous.values()):
        return False
    loop = asyncio.get_running_loop()
    hurry = asyncio.Event()
    last: float | None = None
    passed_on = 0
    tasks: list[asyncio.Task[None]] = []

    def pass_on(sig: int, frame: FrameType | None) -> None:
        nonlocal passed_on
        passed_on += 1
        forward = previous[signal.Signals(sig)]
        assert forward is not None
        forward(sig, frame)

    def begin(sig: int, frame: FrameType | None) -> None:
        task = asyncio.ensure_future(leave(hurry))
        tasks.append(task)  # referenced until done

        def then_stop(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("leaving failed", exc_info=done.exception())
            if not passed_on:  # a later signal has already told uvicorn
                pass_on(sig, frame)

        task.add_done_callback(then_stop)

    def handle(sig: int, frame: FrameType | None) -> None:
        nonlocal last
        now = time.monotonic()
        if last is not None and sig == signal.SIGINT and now - last < DUPLICATE_WINDOW_S:
            log.debug("ignoring a duplicate SIGINT (the same Ctrl-C, delivered twice)")
            return
        first, last = last is None, now
        if first:
            loop.call_soon_threadsafe(begin, sig, frame)
        else:
            loop.call_soon_threadsafe(hurry.set)
            pass_on(sig, frame)

    for sig in EXIT_SIGNALS:
        signal.signal(sig, handle)
    return True
