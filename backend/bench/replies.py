"""Streamed replies under load: `python -m bench replies` (from backend/).

Two cases, each against ONE uvicorn worker process with the simulated model taking 2 s per reply
(40 tokens, one every 50 ms) and a database pool with no overflow:

- 1,000 concurrent replies, pool of 10 (the default pool size);
- 200 concurrent replies, pool of 5 (a small pool must not fail anyone: 0 failures expected).

The client runs in this process, the server in its own; both share the machine. Per case:
completed / failed, p50 and p99 of the time to the FIRST SSE EVENT of any kind (the reply has
started: its rows are saved), to the first `delta` (first token) and to the final event, the
server's peak RSS and CPU, and the ratio of p99 time-to-done to the model's 2 s: the floor no
server can beat, so the ratio is the overhead of everything we add (1.00 would be perfect).

`python -m bench.replies --replies N --pool P [--tokens T --delay-ms D]` runs one case of your own.
The database is BENCH_DATABASE_URL, else DATABASE_URL, else a throw-away embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from app.core.security import LocalTokens
from app.core.settings import Settings
from bench import BenchOptions
from bench.support.database import bench_database
from bench.support.servers import free_port, uvicorn_server

BACKEND_DIR = Path(__file__).resolve().parents[1]
AUTH_SECRET = "bench-secret-0123456789-0123456789-0123456789"  # noqa: S105 -- a local run


@dataclass(frozen=True)
class ReplyCase:
    replies: int
    pool: int
    tokens: int = 40
    delay_ms: float = 50.0


CASES = (ReplyCase(replies=1000, pool=10), ReplyCase(replies=200, pool=5))


@dataclass
class Outcome:
    """One reply as its client saw it; times in seconds from sending the request."""

    completed: bool = False
    #: Why not: "status NNN", "error event", "connection", "cut short".
    failure: str | None = None
    first_event: float = float("nan")
    first_delta: float = float("nan")
    done: float = float("nan")


@dataclass
class Result:
    replies: int
    pool_size: int
    completed: int
    failed: int
    failures: dict[str, int]
    first_event_p50_s: float
    first_event_p99_s: float
    first_delta_p50_s: float
    first_delta_p99_s: float
    done_p50_s: float
    done_p99_s: float
    model_time_s: float
    p99_done_ratio: float
    wall_s: float
    server_peak_rss_mib: float
    server_cpu_s: float


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def one_reply(port: int, session_id: int, token: str, i: int) -> Outcome:
    """Start a reply and read its stream to the end, timing the first event, the first delta
    and the final event.

    A bare HTTP/1.1 client on asyncio streams, scanning the raw bytes for the event names: a
    full client (httpx) juggling 1,000 streams costs more CPU than the server under test, on
    the same cores."""
    body = json.dumps({"content": f"benchmark question {i}"}).encode()
    request = (
        f"POST /api/sessions/{session_id}/replies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    out = Outcome()
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        out.failure = "connection"
        return out
    try:
        writer.write(request)
        status = await reader.readline()
        if b" 200 " not in status:
            code = status.split(b" ")[1].decode(errors="replace") if b" " in status else "?"
            out.failure = f"status {code}"
            return out
        tail = b""
        while chunk := await reader.read(65536):
            seen = tail + chunk
            now = time.perf_counter() - started
            if out.first_event != out.first_event and b"event:" in seen:
                out.first_event = now
            if out.first_delta != out.first_delta and b"event: delta" in seen:
                out.first_delta = now
            if b"event: done" in seen or b"event: error" in seen:
                out.done = now
                out.completed = b"event: done" in seen and b'"status":"completed"' in seen
                out.failure = None if out.completed else "error event"
                return out
            tail = seen[-64:]
        out.failure = "cut short"
        return out
    except OSError:
        out.failure = "connection"
        return out
    finally:
        writer.close()


async def measure(case: ReplyCase, url: str, port: int) -> Result:
    settings = Settings(_env_file=None, auth_secret=AUTH_SECRET)
    tokens = LocalTokens(settings)
    env = {
        "DATABASE_URL": url,
        "AUTH_SECRET": AUTH_SECRET,
        "DB_POOL_SIZE": str(case.pool),
        "DB_MAX_OVERFLOW": "0",
        "LLM_PROVIDER": "simulated",
        "SIMULATED_TOKENS": str(case.tokens),
        "SIMULATED_DELAY_MS": str(case.delay_ms),
        "LOG_LEVEL": "WARNING",
    }
    async with uvicorn_server(
        "app", "app.main:create_app", env=env, ready_path="/health", port=port, graceful_s=5
    ) as server:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        timeout = httpx.Timeout(120, connect=60, pool=60)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=timeout) as client:
            bearer = [tokens.mint(f"bench-{u}") for u in range(100)]
            users = [{"Authorization": f"Bearer {token}"} for token in bearer]
            gate = asyncio.Semaphore(20)

            async def new_session(i: int) -> int:
                async with gate:
                    response = await client.post(
                        "/api/sessions/", json={"title": f"bench {i}"}, headers=users[i % 100]
                    )
                    response.raise_for_status()
                    session_id: int = response.json()["id"]
                    return session_id

            sessions = await asyncio.gather(*(new_session(i) for i in range(case.replies)))
            cpu = server.cpu_seconds() or float("nan")
            wall = time.perf_counter()
            outcomes = await asyncio.gather(
                *(one_reply(port, sid, bearer[i % 100], i) for i, sid in enumerate(sessions))
            )
            wall = time.perf_counter() - wall
            cpu = (server.cpu_seconds() or float("nan")) - cpu
        rss = server.peak_rss_mib() or float("nan")

    completed = [o for o in outcomes if o.completed]
    first_event = [o.first_event for o in completed]
    first_delta = [o.first_delta for o in completed]
    done = [o.done for o in completed]
    failures = Counter(o.failure or "?" for o in outcomes if not o.completed)
    model_s = case.tokens * case.delay_ms / 1000
    p99_done = percentile(done, 99)
    return Result(
        replies=case.replies,
        pool_size=case.pool,
        completed=len(completed),
        failed=case.replies - len(completed),
        failures=dict(sorted(failures.items())),
        first_event_p50_s=round(percentile(first_event, 50), 3),
        first_event_p99_s=round(percentile(first_event, 99), 3),
        first_delta_p50_s=round(percentile(first_delta, 50), 3),
        first_delta_p99_s=round(percentile(first_delta, 99), 3),
        done_p50_s=round(percentile(done, 50), 3),
        done_p99_s=round(p99_done, 3),
        model_time_s=model_s,
        p99_done_ratio=round(p99_done / model_s, 3),
        wall_s=round(wall, 3),
        server_peak_rss_mib=round(rss, 1),
        server_cpu_s=round(cpu, 2),
    )


DESCRIPTION = (
    "streamed replies on one worker: 1,000 concurrent (pool 10) and 200 concurrent (pool 5), "
    "against the model's 2 s floor"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.replies", description=__doc__)
    parser.add_argument("--replies", type=int, help="one case of your own: concurrent replies")
    parser.add_argument("--pool", type=int, help="its DB_POOL_SIZE (default 10)")
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    return parser


def report(result: Result) -> str:
    failures = ", ".join(f"{n} {why}" for why, n in result.failures.items())
    return (
        f"replies: {result.replies} concurrent, one worker, pool {result.pool_size}, "
        f"simulated model {result.model_time_s:g} s per reply\n"
        f"  completed {result.completed}  failed {result.failed}"
        f"{f' ({failures})' if failures else ''}  (wall {result.wall_s} s)\n"
        f"  time to first event  p50 {result.first_event_p50_s} s  "
        f"p99 {result.first_event_p99_s} s\n"
        f"  time to first delta  p50 {result.first_delta_p50_s} s  "
        f"p99 {result.first_delta_p99_s} s\n"
        f"  time to done         p50 {result.done_p50_s} s  p99 {result.done_p99_s} s\n"
        f"  p99 time-to-done / model time = {result.p99_done_ratio}\n"
        f"  server peak RSS {result.server_peak_rss_mib} MiB, "
        f"CPU {result.server_cpu_s} s during the run"
    )


def _headline(result: Result) -> str:
    return (
        f"{result.replies} replies/pool {result.pool_size}: p99 first event "
        f"{result.first_event_p99_s} s, p99 done {result.p99_done_ratio}x the model's "
        f"{result.model_time_s:g} s, {result.completed}/{result.replies} completed"
    )


async def run(options: BenchOptions, argv: list[str] | None = None) -> dict[str, Any]:
    """The `python -m bench` entry point (see bench/__init__.py); `options` do not apply here:
    the issue fixes the load (see CASES)."""
    args = _parser().parse_args(argv or [])
    cases: tuple[ReplyCase, ...] = CASES
    if args.replies is not None or args.pool is not None:
        cases = (
            ReplyCase(
                replies=args.replies or CASES[0].replies,
                pool=args.pool or CASES[0].pool,
                tokens=args.tokens,
                delay_ms=args.delay_ms,
            ),
        )
    results: list[Result] = []
    async with bench_database() as db:
        for case in cases:
            result = await measure(case, db.url, args.port or free_port())
            print(report(result), flush=True)
            results.append(result)
    return {
        "headline": "; ".join(_headline(r) for r in results),
        "cases": [asdict(r) for r in results],
    }


if __name__ == "__main__":
    asyncio.run(run(BenchOptions(), sys.argv[1:]))
