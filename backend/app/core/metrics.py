"""Prometheus metrics: what the process counts, and how a scrape reads them.

With several worker processes (`agent-stack serve --workers N`) a scrape reaches one worker at
random, so every worker writes its samples to files in `PROMETHEUS_MULTIPROC_DIR` (prometheus
client's multiprocess mode; the `serve` command creates a fresh directory and removes it at exit)
and the scraped worker aggregates all of them. Gauges say how they combine across workers
(`livesum`: the sum over workers that are alive). A worker that died without a goodbye is found
at scrape time and marked dead, so its live gauges stop counting.

The environment variable must be set before `prometheus_client` is first imported (it picks its
storage then): the `serve` command sets it before importing the application.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from sqlalchemy.exc import TimeoutError as PoolTimeout

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

HTTP_REQUESTS = Counter(
    "agent_stack_http_requests",
    "HTTP requests answered, by method, route template and status class (2xx, 4xx, ...).",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "agent_stack_http_request_duration_seconds",
    "Time to answer a request, by method and route template. Event streams are left out: "
    "their duration is the reply's, not the server's latency.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)

REPLIES_STARTED = Counter("agent_stack_replies_started", "Agent replies started.", ["model"])
REPLIES_ENDED = Counter(
    "agent_stack_replies_ended",
    "Agent replies that ended, by outcome (completed, failed, cancelled).",
    ["model", "outcome"],
)
REPLIES_ACTIVE = Gauge(
    "agent_stack_replies_active",
    "Agent replies being generated now (over the live worker processes).",
    multiprocess_mode="livesum",
)
REPLY_TTFT = Histogram(
    "agent_stack_reply_time_to_first_token_seconds",
    "From a reply's start to its first text from the model.",
    ["model"],
    buckets=_TTFT_BUCKETS,
)
REPLY_DURATION = Histogram(
    "agent_stack_reply_duration_seconds",
    "From a reply's start to its end, whatever the outcome.",
    ["model"],
    buckets=_DURATION_BUCKETS,
)
REPLY_TOKENS = Counter(
    "agent_stack_reply_tokens",
    "Tokens of agent replies as the provider reported them, by model and direction.",
    ["model", "direction"],
)

DB_POOL_IN_USE = Gauge(
    "agent_stack_db_pool_connections_in_use",
    "Pooled database connections checked out now.",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "agent_stack_db_pool_waiting",
    "Units of work waiting for a database connection now.",
    multiprocess_mode="livesum",
)
DB_POOL_TIMEOUTS = Counter(
    "agent_stack_db_pool_timeouts",
    "Waits for a pooled connection that timed out (answered 503).",
)

JWKS_FETCHES = Counter(
    "agent_stack_jwks_fetches",
    "Fetches of the identity provider's key set, by outcome (ok, error).",
    ["outcome"],
)
IDEMPOTENT_REPLAYS = Counter(
    "agent_stack_idempotent_replays",
    "Requests answered from an Idempotency-Key's recorded response, or joined to its reply.",
    ["route"],
)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


@contextmanager
def waiting_for_connection() -> Iterator[None]:
    """Count a wait for a connection; a pool timeout (SQLAlchemy's TimeoutError) is counted."""
    DB_POOL_WAITING.inc()
    try:
        yield
    except PoolTimeout:
        DB_POOL_TIMEOUTS.inc()
        raise
    finally:
        DB_POOL_WAITING.dec()


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


_FILE_PID = re.compile(r"_(\d+)\.db$")


def pid_alive(pid: int) -> bool:
    """A process of this pid exists (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_workers(directory: Path) -> list[int]:
    """Mark processes whose sample files are there but who are gone (a crashed worker that
    uvicorn replaced): their `live*` gauges are dropped. Returns the pids marked."""
    pids = {int(m.group(1)) for p in directory.glob("*.db") if (m := _FILE_PID.search(p.name))}
    dead = sorted(pid for pid in pids if not pid_alive(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return dead


def render() -> bytes:
    """The exposition text for a scrape: every worker's samples in multiprocess mode, this
    process's otherwise."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(DEFAULT_REGISTRY)
    mark_dead_workers(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)
