"""Count the round trips the app's engine makes to PostgreSQL, in-process.

SQLAlchemy's events see every statement (`before_cursor_execute`) and every transaction
(`begin`, `commit`, `rollback`); the dialect's `do_ping` sees every `pool_pre_ping` check. What
those cost on the wire depends on the driver; with asyncpg, as SQLAlchemy's adapter drives it:

- a transaction's BEGIN is sent lazily, with its first statement, and never in autocommit mode;
  COMMIT / ROLLBACK are sent only when a BEGIN was (a transaction begun and ended with no
  statement costs nothing);
- a ping is `BEGIN; ";"; ROLLBACK` (three round trips) outside a transaction, one inside a
  transaction or in autocommit mode;
- prepared statements are cached per connection: after a warm-up a statement is one round trip.

So the counter tracks, per DBAPI connection, whether a transaction is only begun ("pending") or
really open on the server, and reads the autocommit setting through the dialect. An app that
moves to autocommit, or drops `pool_pre_ping` (then there are no pings: 0), is still counted
right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_PENDING, _OPEN = "pending", "open"


class RoundTrips:
    """Counters for one engine; `round_trips` is their sum on the wire (see the module doc)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self.counts: Counter[str] = Counter()
        self._state: dict[int, str] = {}

    def reset(self) -> None:
        self.counts.clear()

    @property
    def round_trips(self) -> int:
        c = self.counts
        return c["statements"] + c["begins"] + c["commits"] + c["rollbacks"] + c["ping_round_trips"]

    def per_request(self, requests: int) -> dict[str, float]:
        keys = ("statements", "begins", "commits", "rollbacks", "pings", "ping_round_trips")
        out = {key: self.counts[key] / requests for key in keys}
        out["round_trips"] = self.round_trips / requests
        return out

    def _autocommit(self, dbapi_connection: Any) -> bool:
        try:
            return bool(self._engine.dialect.detect_autocommit_setting(dbapi_connection))
        except NotImplementedError:
            return bool(getattr(dbapi_connection, "autocommit", False))

    @staticmethod
    def _dbapi(conn: Connection) -> Any:
        return conn.connection.dbapi_connection

    def _on_begin(self, conn: Connection) -> None:
        dbapi = self._dbapi(conn)
        if not self._autocommit(dbapi):
            self._state[id(dbapi)] = _PENDING

    def _on_statement(self, conn: Connection, *_: Any) -> None:
        self.counts["statements"] += 1
        key = id(self._dbapi(conn))
        if self._state.get(key) == _PENDING:
            self.counts["begins"] += 1
            self._state[key] = _OPEN

    def _ender(self, name: str) -> Callable[[Connection], None]:
        def ended(conn: Connection) -> None:
            if self._state.pop(id(self._dbapi(conn)), None) == _OPEN:
                self.counts[name] += 1

        return ended

    def _on_reset(self, dbapi_connection: Any, *_: Any) -> None:
        # The pool rolls back what a connection still has open when it comes back.
        if self._state.pop(id(dbapi_connection), None) == _OPEN:
            self.counts["rollbacks"] += 1

    @contextmanager
    def installed(self) -> Iterator[RoundTrips]:
        listeners: list[tuple[Any, str, Callable[..., None]]] = [
            (self._engine, "begin", self._on_begin),
            (self._engine, "before_cursor_execute", self._on_statement),
            (self._engine, "commit", self._ender("commits")),
            (self._engine, "rollback", self._ender("rollbacks")),
            (self._engine.pool, "reset", self._on_reset),
        ]
        for target, name, fn in listeners:
            event.listen(target, name, fn)
        dialect = self._engine.dialect
        ping = dialect.do_ping

        def counting_ping(dbapi_connection: Any) -> bool:
            self.counts["pings"] += 1
            inside = self._state.get(id(dbapi_connection)) == _OPEN
            cheap = inside or self._autocommit(dbapi_connection)
            self.counts["ping_round_trips"] += 1 if cheap else 3
            return ping(dbapi_connection)

        dialect.do_ping = counting_ping  # type: ignore[method-assign]
        try:
            yield self
        finally:
            dialect.do_ping = ping  # type: ignore[method-assign]
            for target, name, fn in listeners:
                event.remove(target, name, fn)
