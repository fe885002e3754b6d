"""The fleet scenarios: real nodes (separate processes, each its own process group) behind a
real HAProxy, on 127.0.0.1 ports of their own."""

from __future__ import annotations

import pytest

from app.core.settings import Settings
from app.fleet import haproxy


@pytest.fixture(autouse=True)
def _needs_haproxy() -> None:
    if haproxy.binary() is None:
        pytest.skip("haproxy is not installed (make fleet-deps; .ci/run installs it)")


def node_env(settings: Settings, **overrides: object) -> dict[str, str]:
    """The nodes' environment: the test database's secret, a simulated model, quiet logs."""
    values: dict[str, object] = {
        "AUTH_SECRET": settings.auth_secret,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "LLM_PROVIDER": "simulated",
        "DB_POOL_SIZE": 10,
        "REPLY_FLUSH_MS": 200,
        "REPLY_COALESCE_MS": 250,
        **overrides,
    }
    return {key.upper(): str(value) for key, value in values.items()}
