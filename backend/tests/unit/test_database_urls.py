"""Database URLs: `ConnectParams.from_url` is the one parser, for the engine (`async_url`), the
LISTEN session (asyncpg) and libpq tools (psql), single-host, socket and multi-host alike."""

from __future__ import annotations

import pytest

from app.core.database import ConnectParams, async_url, create_engine
from app.core.settings import Settings

MULTI = "postgresql://app:s3cret@db1:5433,db2/agent_stack?target_session_attrs=read-write"


def test_a_multi_host_url_lists_every_host_in_order() -> None:
    params = ConnectParams.from_url(MULTI)
    assert params.hosts == ("db1", "db2")
    assert params.ports == (5433, 5432)  # a missing port is the default one
    assert (params.user, params.password, params.database) == ("app", "s3cret", "agent_stack")
    assert params.target_session_attrs == "read-write"
    assert params.asyncpg_kwargs() == {
        "host": ["db1", "db2"],
        "port": [5433, 5432],
        "user": "app",
        "password": "s3cret",
        "database": "agent_stack",
        "target_session_attrs": "read-write",
    }
    env = params.libpq_env()
    assert (env["PGHOST"], env["PGPORT"]) == ("db1,db2", "5433,5432")
    assert env["PGTARGETSESSIONATTRS"] == "read-write"


def test_the_engine_url_of_a_multi_host_url_reads_back_the_same() -> None:
    engine_url = async_url(MULTI)
    assert engine_url.startswith("postgresql+asyncpg://app:s3cret@/agent_stack?")
    assert ConnectParams.from_url(engine_url) == ConnectParams.from_url(MULTI)
    engine = create_engine(Settings(_env_file=None), MULTI)
    try:
        # What SQLAlchemy's asyncpg dialect hands asyncpg: both hosts, and the attribute.
        _, kwargs = engine.dialect.create_connect_args(engine.url)
        assert (kwargs["host"], kwargs["port"]) == (["db1", "db2"], [5433, 5432])
        assert kwargs["target_session_attrs"] == "read-write"
        assert ConnectParams.from_url(engine.url) == ConnectParams.from_url(MULTI)
    finally:
        engine.sync_engine.dispose()


@pytest.mark.parametrize(
    ("url", "hosts", "ports"),
    [
        ("postgresql://u@localhost/db", ("localhost",), (5432,)),
        ("postgresql+asyncpg://u@h:6000/db", ("h",), (6000,)),
        ("postgresql+asyncpg://postgres@/db?host=/run/pg&port=5999", ("/run/pg",), (5999,)),
        ("postgresql://u@[::1]:5433,h2:7/db", ("::1", "h2"), (5433, 7)),
    ],
)
def test_single_hosts_sockets_and_ipv6(
    url: str, hosts: tuple[str, ...], ports: tuple[int, ...]
) -> None:
    params = ConnectParams.from_url(url)
    assert (params.hosts, params.ports) == (hosts, ports)
    assert ConnectParams.from_url(async_url(url)) == params
    assert (params.host, params.port) == (hosts[0], ports[0])
    assert params.target_session_attrs is None
    assert "target_session_attrs" not in params.asyncpg_kwargs()
