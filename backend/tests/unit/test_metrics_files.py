"""Multiprocess metrics: a worker that died is marked dead, so its live gauges stop counting,
while what it counted stays in the totals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.core.metrics import mark_dead_workers


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_dead_workers_lose_their_live_gauges_and_keep_their_counts(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    for name in (
        f"gauge_livesum_{dead}.db",
        f"counter_{dead}.db",
        f"histogram_{dead}.db",
        f"gauge_livesum_{alive}.db",
        f"counter_{alive}.db",
    ):
        (tmp_path / name).write_bytes(b"")
    assert mark_dead_workers(tmp_path) == [dead]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [f"counter_{dead}.db", f"histogram_{dead}.db", f"gauge_livesum_{alive}.db",
         f"counter_{alive}.db"]
    )  # fmt: skip
