"""The garbage collector's pace in a server process.

CPython's defaults (700, 10, 10) run a collection every 700 net container allocations and a
full one every hundred of those. A process holding a thousand reply streams allocates
coroutines, futures and events by the million, nearly all freed by reference counting; the
collector then spent a fifth of the worker's CPU looking for cycles that were not there
(`make bench` replies: 2.2-2.4 s of CPU for 1,000 replies with the defaults, 1.9 s with
(20000, 50, 100)). Cycles are still collected, only less often.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

Thresholds = tuple[int, int, int]


@contextmanager
def collector_thresholds(thresholds: Thresholds) -> Iterator[None]:
    """Run the block with `thresholds`, then restore what was set before."""
    before = gc.get_threshold()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*before)
