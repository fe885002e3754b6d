"""A killed run's detached processes (HAProxy, PostgreSQL servers) are stopped by the next run:
whatever names a path under a directory claimed by a process that is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from app.core.metrics import pid_alive
from tests.support import leftovers

#: Stands in for a detached server: it names a file of its run's directory on its command line.
HOLDER = "import sys, time; time.sleep(300)"


def _run_that_dies(directory: Path) -> int:
    """A test run that claims `directory`, starts a detached holder there and is then gone;
    the holder's pid."""
    script = (
        "import subprocess, sys\n"
        "from pathlib import Path\n"
        "from tests.support import leftovers\n"
        "leftovers.claim(Path(sys.argv[1]))\n"
        f"child = subprocess.Popen([sys.executable, '-c', {HOLDER!r}, sys.argv[1] + '/held.cfg'],"
        " start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,"
        " stderr=subprocess.DEVNULL)\n"
        "print(child.pid)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", script, str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
    )
    return int(found.stdout)


def _gone(pid: int) -> bool:
    for _ in range(250):  # a bounded wait for the kill to land
        if not pid_alive(pid) or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.02)
    return False


def test_a_dead_runs_processes_and_folders_are_swept_a_live_ones_are_not(tmp_path: Path) -> None:
    abandoned = tmp_path / "agent-stack-fleet-db-abandoned"
    abandoned.mkdir()
    orphan = _run_that_dies(abandoned)
    mine = tmp_path / "agent-stack-fleet-mine"
    mine.mkdir()
    leftovers.claim(mine)
    held = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(mine / "held.cfg")], start_new_session=True
    )
    try:
        assert pid_alive(orphan)
        killed = leftovers.sweep(tmp_path)
        assert orphan in killed
        assert held.pid not in killed
        assert _gone(orphan)
        assert held.poll() is None  # its owner (this test) is alive: untouched
        assert not abandoned.exists()
        assert mine.exists()
    finally:
        held.kill()
        held.wait()
        if pid_alive(orphan):
            os.kill(orphan, 9)
