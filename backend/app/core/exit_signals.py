"""Ctrl-C as a terminal sends it: once per process, acted on at once.

A terminal's Ctrl-C signals the whole foreground process group, and `uv run` forwards the
SIGINT it got to the server as well: the server sees two SIGINTs a few milliseconds apart, and
uvicorn reads a second SIGINT as "force exit now", which cancels streaming responses mid-event
and skips the application's shutdown. Here a SIGINT within `DUPLICATE_WINDOW_S` of the previous
exit signal counts as the same Ctrl-C; one pressed deliberately later still forces the exit.

The first exit signal also starts finishing the running replies right away, in parallel with
uvicorn's graceful shutdown, so their streams get a final event and close while uvicorn waits
for open connections (instead of being cut off when its patience ends).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_S = 1.0
EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], object]


def _uvicorn_handler(handler: object) -> Handler | None:
    """The handler, if it is a running uvicorn server's (`Server.handle_exit`)."""
    import uvicorn

    owner = getattr(handler, "__self__", None)
    return handler if isinstance(owner, uvicorn.Server) and callable(handler) else None


def on_first_exit_signal(callback: Callable[[], None]) -> bool:
    """While uvicorn serves in this process, call `callback` (on the event loop) at the first
    SIGINT or SIGTERM and swallow duplicate SIGINTs. False when uvicorn's handlers are not
    installed (not served by uvicorn, or not in the main thread): nothing is changed."""
    previous = {sig: _uvicorn_handler(signal.getsignal(sig)) for sig in EXIT_SIGNALS}
    if any(handler is None for handler in previous.values()):
        return False
    loop = asyncio.get_running_loop()
    last: float | None = None

    def handle(sig: int, frame: FrameType | None) -> None:
        nonlocal last
        now = time.monotonic()
        if last is not None and sig == signal.SIGINT and now - last < DUPLICATE_WINDOW_S:
            log.debug("ignoring a duplicate SIGINT (the same Ctrl-C, delivered twice)")
            return
        if last is None:
            loop.call_soon_threadsafe(callback)
        last = now
        forward = previous[signal.Signals(sig)]
        assert forward is not None
        forward(sig, frame)

    for sig in EXIT_SIGNALS:
        signal.signal(sig, handle)
    return True
