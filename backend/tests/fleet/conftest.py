"""The fleet scenarios: real nodes (separate processes, each its own process group) behind a
real HAProxy on 127.0.0.1; each node in a network namespace of its own where the test can make
them (`site`), else on 127.0.0.1 ports of its own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.fleet import haproxy
from app.fleet.fleet import FleetOptions
from app.fleet.haproxy import Checks
from app.fleet.placement import Placement
from app.fleet.processes import free_port_block
from tests.fleet.site import Site
from tests.support import leftovers
from tests.support.system_tools import missing

#: HAProxy notices a node going or coming back within about half a second.
CHECKS = Checks(interval_ms=200, fall=2, rise=2)


@pytest.fixture(autouse=True)
def _needs_haproxy() -> None:
    if haproxy.binary() is None:
        missing("haproxy is not installed (make fleet-deps; .ci/run installs it)")


@pytest.fixture
def site() -> Iterator[Site]:
    """Where the scenario's nodes and databases run; torn down however the test ends."""
    made = Site()
    try:
        yield made
    finally:
        made.close()


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


def fleet_options(
    run_dir: Path,
    nodes: int,
    env: dict[str, str],
    reply_grace_s: float = 5.0,
    placements: Mapping[int, Placement] | None = None,
) -> FleetOptions:
    """A test's fleet: `nodes` nodes on free ports (where `placements` puts them), quick
    checks. `run_dir` is claimed: should the run be killed, the next one stops its HAProxy."""
    leftovers.claim(run_dir)
    return FleetOptions(
        run_dir=run_dir,
        nodes=nodes,
        port=free_port_block(nodes + 1),
        checks=CHECKS,
        reply_grace_s=reply_grace_s,
        node_env=env,
        placements=placements or {},
    )
