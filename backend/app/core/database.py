"""Engine and database URLs: the one place that knows how we talk to PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core import metrics
from app.core.settings import Settings


def parse_url(url: str | URL) -> URL:
    """A database URL as SQLAlchemy holds it. libpq's multi-host form,
    `postgresql://u@h1:5432,h2:5433/db?target_session_attrs=read-write`, which `make_url`
    cannot read, becomes SQLAlchemy's equivalent `postgresql://u@/db?host=h1:5432&host=h2:5433&
    target_session_attrs=read-write` (a missing port is 5432: asyncpg needs every one)."""
    if not isinstance(url, str):
        return url
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not sep or "," not in hostlist:
        return make_url(url)
    hosts = [_with_port(item) for item in hostlist.split(",")]
    database, _, query = tail.partition("?")
    extra = "&".join(f"host={host}" for host in hosts)
    query = f"{extra}&{query}" if query else extra
    return make_url(f"{scheme}://{userinfo}{at}/{database if slash else ''}?{query}")


def _with_port(item: str) -> str:
    host, port = _split_host_port(item)
    if not host:
        raise ValueError(f"a host is missing in the database URL's host list: {item!r}")
    return f"[{host}]:{port or 5432}" if ":" in host else f"{host}:{port or 5432}"


def _split_host_port(item: str) -> tuple[str, str | None]:
    """`h:5432` → (`h`, `5432`); `[::1]:5432` → (`::1`, `5432`); `/run/pg` → (`/run/pg`, None)."""
    if item.startswith("["):
        host, _, port = item[1:].partition("]")
        return host, port.removeprefix(":") or None
    host, colon, port = item.rpartition(":")
    if colon and port.isdigit() and not item.startswith("/"):
        return host, port
    return item, None


def async_url(url: str) -> str:
    """Normalise `postgres://` / `postgresql://` URLs (multi-host ones too) to the asyncpg
    driver."""
    parsed = parse_url(url)
    if parsed.drivername in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class ConnectParams:
    """Where a URL points, in the terms libpq tools and asyncpg use. A socket directory or a
    host list given as `?host=` wins over the URL's host part, as libpq has it; with several
    hosts (a primary and its standbys) a client tries them in order, and
    `target_session_attrs=read-write` makes it skip the read-only ones."""

    hosts: tuple[str, ...]
    ports: tuple[int, ...]
    user: str
    password: str | None
    database: str
    target_session_attrs: str | None = None

    @property
    def host(self) -> str:
        """The first host (the only one, usually)."""
        return self.hosts[0]

    @property
    def port(self) -> int:
        return self.ports[0]

    @classmethod
    def from_url(cls, url: str | URL) -> ConnectParams:
        parsed = parse_url(url)
        query_host = parsed.query.get("host")
        query_port = parsed.query.get("port")
        attrs = parsed.query.get("target_session_attrs")
        items: tuple[str, ...] = (
            (query_host,) if isinstance(query_host, str) else tuple(query_host or ())
        )
        default_port = int(query_port if isinstance(query_port, str) else parsed.port or 5432)
        pairs = [_split_host_port(item) for item in items] or [(parsed.host or "localhost", None)]
        return cls(
            hosts=tuple(host for host, _ in pairs),
            ports=tuple(int(port) if port else default_port for _, port in pairs),
            user=parsed.username or "postgres",
            password=parsed.password,
            database=parsed.database or "postgres",
            target_session_attrs=attrs if isinstance(attrs, str) else None,
        )

    def asyncpg_kwargs(self) -> dict[str, Any]:
        several = len(self.hosts) > 1
        kwargs: dict[str, Any] = {
            "host": list(self.hosts) if several else self.host,
            "port": list(self.ports) if several else self.port,
            "user": self.user,
            "database": self.database,
        }
        if self.password is not None:
            kwargs["password"] = self.password
        if self.target_session_attrs is not None:
            kwargs["target_session_attrs"] = self.target_session_attrs
        return kwargs

    def libpq_env(self) -> dict[str, str]:
        env = {
            "PGHOST": ",".join(self.hosts),
            "PGPORT": ",".join(str(port) for port in self.ports),
            "PGUSER": self.user,
            "PGDATABASE": self.database,
        }
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        if self.target_session_attrs is not None:
            env["PGTARGETSESSIONATTRS"] = self.target_session_attrs
        return env


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    """Build the pooled engine.

    No `pool_pre_ping`: it costs three round trips per checkout with asyncpg. A connection the
    server closed while it sat in the pool is noticed for free (asyncpg sees the socket close)
    and replaced at checkout; one that breaks mid-statement is invalidated by SQLAlchemy with
    the rest of the pool, and the unit of work retries a read once. Timeouts are short: an
    unreachable database must answer 503 quickly, never hang a request.
    """
    target = url or settings.database_url
    if not target:
        raise RuntimeError("DATABASE_URL is not set and no embedded database was started")
    engine = create_async_engine(
        async_url(target),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=settings.db_pool_recycle_s,
        pool_pre_ping=False,
        # Last in, first out: a quiet period reuses the same few connections (their prepared
        # statements are warm) and lets the rest idle out, instead of cycling through all.
        pool_use_lifo=True,
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            "command_timeout": settings.db_statement_timeout_ms / 1000 + 5
            if settings.db_statement_timeout_ms
            else None,
            "server_settings": {
                "application_name": "agent-stack",
                "statement_timeout": str(settings.db_statement_timeout_ms),
                # One plan per statement and connection. Left to choose, PostgreSQL re-plans
                # statements whose plan for the given values looks cheaper every time (the
                # message insert, the message page, the reply finish): planning cost more than
                # running them. Every hot statement is a keyed lookup whose generic plan reads
                # the same indexes (tests/api/test_plans.py).
                "plan_cache_mode": "force_generic_plan",
            },
        },
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    event.listen(engine.sync_engine.pool, "checkout", _count_checkout)
    event.listen(engine.sync_engine.pool, "checkin", _count_checkin)
    return engine


def _count_checkout(_dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    metrics.DB_POOL_IN_USE.inc()


def _count_checkin(_dbapi_connection: Any, _record: Any) -> None:
    metrics.DB_POOL_IN_USE.dec()


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling at no cost: the pool retries with a fresh connection
    when the driver already knows this one is closed (server restart, idle timeout)."""
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the pooled connection was closed by the server")
