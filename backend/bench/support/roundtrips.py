"""Count the round trips a process makes to PostgreSQL, at the driver (asyncpg), in-process.

Counted where asyncpg talks to the server, so it is right whatever layer sent the statement
(the app's unit of work, SQLAlchemy's adapter, a pool's ping):

- `statements`: executions (one round trip each once the statement is prepared);
- `prepares`: statements prepared on a connection for the first time (one more round trip;
  a warm-up removes them);
- `simple`: plain commands without parameters (BEGIN, COMMIT, ROLLBACK, a ping's ";").

Shared by the benchmarks (`bench core`) and the tests that pin round trips per request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

KINDS = ("statements", "prepares", "simple")


class RoundTrips:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def reset(self) -> None:
        self.counts.clear()

    @property
    def round_trips(self) -> int:
        return sum(self.counts[kind] for kind in KINDS)

    def per_request(self, requests: int) -> dict[str, float]:
        out = {kind: self.counts[kind] / requests for kind in KINDS}
        out["round_trips"] = self.round_trips / requests
        return out

    @contextmanager
    def installed(self) -> Iterator[RoundTrips]:
        counts = self.counts
        execute = asyncpg.Connection.execute
        _execute = asyncpg.Connection._execute
        get_statement = asyncpg.Connection._get_statement
        fetchers = {name: getattr(PreparedStatement, name) for name in ("fetch", "fetchrow")}

        async def counting_execute(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if not args:  # with arguments it goes through _execute, counted there
                counts["simple"] += 1
            return await execute(conn, query, *args, **kwargs)

        async def counting__execute(conn: Any, *args: Any, **kwargs: Any) -> Any:
            counts["statements"] += 1
            return await _execute(conn, *args, **kwargs)

        async def counting_get_statement(conn: Any, *args: Any, **kwargs: Any) -> Any:
            before = len(conn._stmt_cache)
            statement = await get_statement(conn, *args, **kwargs)
            if len(conn._stmt_cache) > before:
                counts["prepares"] += 1
            return statement

        def counting_fetcher(method: Any) -> Any:
            async def fetch(statement: Any, *args: Any, **kwargs: Any) -> Any:
                counts["statements"] += 1
                return await method(statement, *args, **kwargs)

            return fetch

        asyncpg.Connection.execute = counting_execute  # type: ignore[method-assign]
        asyncpg.Connection._execute = counting__execute  # type: ignore[method-assign]
        asyncpg.Connection._get_statement = counting_get_statement  # type: ignore[method-assign]
        for name, method in fetchers.items():
            setattr(PreparedStatement, name, counting_fetcher(method))
        try:
            yield self
        finally:
            asyncpg.Connection.execute = execute  # type: ignore[method-assign]
            asyncpg.Connection._execute = _execute  # type: ignore[method-assign]
            asyncpg.Connection._get_statement = get_statement  # type: ignore[method-assign]
            for name, method in fetchers.items():
                setattr(PreparedStatement, name, method)
