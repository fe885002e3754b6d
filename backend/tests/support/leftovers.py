"""What a killed test run leaves running, stopped by the next run.

The fleet scenarios start processes apart from the test's own process group (HAProxy, their own
PostgreSQL servers), so a run killed with SIGKILL leaves them behind. Each run marks the
directories those processes use with its pid (`claim`); `sweep` kills every process whose
command line names a path under a directory whose mark names a process that is gone, and
deletes the marks (and, with `remove`, the directories). Namespaces are swept by
`tests.support.netns.sweep`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

from app.core.metrics import pid_alive

MARK = ".agent-stack-owner"


def claim(directory: Path) -> None:
    """Mark `directory` as this process's: what runs from it is swept once we are gone."""
    (directory / MARK).write_text(str(os.getpid()))


def _owner(path: Path, top: Path, seen: dict[Path, int | None]) -> int | None:
    """The pid marked on `path` or the nearest marked directory above it, under `top`."""
    for directory in (path, *path.parents):
        if directory == top or top not in directory.parents:
            return None
        if directory not in seen:
            try:
                seen[directory] = int((directory / MARK).read_text())
            except (OSError, ValueError):
                seen[directory] = None
        if seen[directory] is not None:
            return seen[directory]
    return None


def sweep(top: Path | None = None, remove: str = "agent-stack-fleet-") -> list[int]:
    """Kill the processes left by runs that are gone; return their pids. Directories under `top`
    (the temporary directory) named `remove*` whose owner is gone are deleted too."""
    top = (top or Path(tempfile.gettempdir())).resolve()
    seen: dict[Path, int | None] = {}
    killed: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for arg in args:
            if not arg.startswith(f"{top}/"):
                continue
            owner = _owner(Path(arg), top, seen)
            if owner is not None and not pid_alive(owner):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(int(proc.name))
                break
    for directory in top.glob(f"{remove}*"):
        owner = _owner(directory, top, seen)
        if owner is not None and not pid_alive(owner):
            shutil.rmtree(directory, ignore_errors=True)
    return killed
