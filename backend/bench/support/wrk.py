"""The load tool: wrk, driven with a Lua `done` hook that reports exact figures as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.support.errors import BenchError

MARKER = "BENCH_WRK_JSON "

# wrk's own text output rounds and mixes units; the done() hook gives raw counts (latencies in µs).
DONE_HOOK = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"non_2xx_3xx":%d,"latency_mean_us":%.1f,' ..
    '"latency_p50_us":%d,"latency_p90_us":%d,"latency_p99_us":%d,"latency_max_us":%d}\n',
    "MARKER", summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.timeout, e.status, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
""".replace("MARKER", MARKER)


@dataclass(frozen=True)
class WrkRun:
    requests: int
    duration_s: float
    requests_per_s: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    latency_mean_ms: float
    non_2xx_3xx: int
    socket_errors: int
    bytes_per_request: float
    #: Server CPU (user + system) per request, when the caller measured it.
    server_cpu_ms_per_request: float | None = None
    #: Database connections opened (and closed) during the run, when the caller measured it.
    database_connections_opened: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ensure_wrk() -> str:
    """The wrk binary; installed from the distribution when we are root and it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        print("wrk is missing: installing the Debian package (apt-get install wrk)", flush=True)
        if _apt(apt, "install", "-y", "-q", "wrk") != 0:  # no package lists yet on a new machine
            _apt(apt, "update", "-q")
            _apt(apt, "install", "-y", "-q", "wrk")
        found = shutil.which("wrk")
        if found:
            return found
    raise BenchError(
        "the load tool wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu) or "
        "`brew install wrk` (macOS), then run `make bench` again"
    )


def _apt(*args: str) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    return done.returncode


async def run_wrk(
    url: str,
    *,
    duration_s: float,
    connections: int,
    threads: int,
    headers: Mapping[str, str] | None = None,
    script: str = "",
) -> WrkRun:
    """One wrk run against `url`; killed if it overruns, whatever interrupts us.

    `script` is Lua run before the `done` hook: e.g. a `request()` function that varies the
    request (wrk then calls it for every request instead of repeating one)."""
    wrk = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-wrk-", delete=False) as f:
        f.write(script + "\n" + DONE_HOOK)
        script_path = Path(f.name)
    args = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout", "5s",
        "-s", str(script_path),
    ]  # fmt: skip
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    args.append(url)
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), duration_s + 20)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.shield(process.wait())
        script_path.unlink(missing_ok=True)  # noqa: ASYNC240 - a tiny local file
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith(MARKER)), None)
    if process.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {process.returncode}):\n{text}")
    raw = json.loads(line[len(MARKER) :])
    seconds = raw["duration_us"] / 1e6
    requests = raw["requests"]
    return WrkRun(
        requests=requests,
        duration_s=round(seconds, 3),
        requests_per_s=round(requests / seconds, 1),
        latency_p50_ms=raw["latency_p50_us"] / 1000,
        latency_p90_ms=raw["latency_p90_us"] / 1000,
        latency_p99_ms=raw["latency_p99_us"] / 1000,
        latency_max_ms=raw["latency_max_us"] / 1000,
        latency_mean_ms=round(raw["latency_mean_us"] / 1000, 3),
        non_2xx_3xx=raw["non_2xx_3xx"],
        socket_errors=raw["connect_errors"]
        + raw["read_errors"]
        + raw["write_errors"]
        + raw["timeouts"],
        bytes_per_request=round(raw["bytes"] / requests, 1) if requests else 0.0,
    )
