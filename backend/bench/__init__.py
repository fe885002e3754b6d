"""Load benchmarks, each measured against a baseline in the same run (the machine is noisy).

The convention, so that `python -m bench` finds a benchmark without a central list to edit:

- every public top-level module of this package (`bench/<name>.py`, name not starting with `_`)
  IS a benchmark, run by `python -m bench <name>`; shared machinery lives in `bench.support`,
  floor implementations in `bench.baselines`;
- such a module defines `DESCRIPTION: str` (one line, shown by `python -m bench --list`) and
  `async def run(options: BenchOptions) -> dict[str, Any]`;
- `run` prints its own compact table, cleans up everything it started (also when cancelled by
  Ctrl-C) and returns a JSON-serialisable dict holding at least `"headline"`: one line with the
  figure that matters, as a ratio against the baseline. `__main__` writes the dict to
  `bench/results/<name>-<UTC timestamp>.json` and `<name>-latest.json`.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

BENCH_DIR = Path(__file__).resolve().parent
BACKEND_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

#: Sub-packages and modules that are not benchmarks.
NOT_BENCHMARKS = frozenset({"support", "baselines"})


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class BenchOptions:
    """Load parameters every benchmark honours; `BENCH_*` environment variables override them."""

    duration_s: float = field(default_factory=lambda: _env_number("BENCH_DURATION_S", 10))
    warmup_s: float = field(default_factory=lambda: _env_number("BENCH_WARMUP_S", 3))
    #: None: the benchmark's own default (10 for most, 32 for `core`, as issue #7 measured).
    connections: int | None = field(
        default_factory=lambda: (
            int(os.environ["BENCH_CONNECTIONS"]) if os.environ.get("BENCH_CONNECTIONS") else None
        )
    )
    threads: int = field(default_factory=lambda: int(_env_number("BENCH_THREADS", 1)))
    #: Each round measures the app and the baseline once, the order flipping every round.
    rounds: int = field(default_factory=lambda: int(_env_number("BENCH_ROUNDS", 2)))

    def connections_or(self, default: int) -> int:
        """The wrk connections to open: the one asked for, else the benchmark's default."""
        return self.connections if self.connections is not None else default


RunFunction = Callable[[BenchOptions], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: RunFunction


def discover() -> dict[str, Benchmark]:
    """Every benchmark module of this package, by name (see the module docstring)."""
    found: dict[str, Benchmark] = {}
    for info in sorted(pkgutil.iter_modules([str(BENCH_DIR)]), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in NOT_BENCHMARKS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        run = getattr(module, "run", None)
        description = getattr(module, "DESCRIPTION", None)
        if not callable(run) or not isinstance(description, str):
            raise TypeError(
                f"bench/{info.name}.py must define DESCRIPTION: str and "
                "async def run(options: BenchOptions) -> dict[str, Any]"
            )
        found[info.name] = Benchmark(info.name, description, cast(RunFunction, run))
    return found
