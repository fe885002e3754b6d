"""The `agent-stack` command as `make dev` and `make token` use it: real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from app.core.settings import Settings

SECRET = "cli-test-secret-0123456789-0123456789"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "AUTH_SECRET"}}
    env.update(AUTH_SECRET=SECRET, LOG_LEVEL="WARNING", **extra)
    return env


def test_token_prints_a_valid_token_and_nothing_else() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "alice"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    settings = Settings(_env_file=None, auth_secret=SECRET)
    claims = jwt.decode(lines[0], SECRET, algorithms=["HS256"], audience=settings.auth_audience)
    assert claims["sub"] == "alice"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_starts_embedded_postgres_migrates_serves_and_stops_it(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    port = _free_port()
    pgdata = tmp_path / "pg"
    env = _env(EMBEDDED_PG_DIR=str(pgdata))
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else b""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.3)
        assert health.json() == {"status": "healthy", "database": "connected"}
        token = subprocess.run(
            [sys.executable, "-m", "app.cli", "token", "alice"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"http://127.0.0.1:{port}/api/sessions/", json={"title": "hi"}, headers=headers
        )
        assert created.status_code == 201
        assert (pgdata / "postmaster.pid").exists()
        # A second command (make migrate, make psql) uses the running server and leaves it up.
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
        )
        still = httpx.get(f"http://127.0.0.1:{port}/api/sessions/", headers=headers)
        assert [s["title"] for s in still.json()] == ["hi"]
    finally:
        server.send_signal(stop_signal)
        server.wait(timeout=60)
    assert server.returncode in {0, 128 + signal.SIGTERM}
    # The embedded server stopped with the app, and its data stays for the next start.
    assert not (pgdata / "postmaster.pid").exists()
    assert (pgdata / "PG_VERSION").exists()
