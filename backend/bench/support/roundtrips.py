"""Count the round trips a process makes to PostgreSQL, at the driver (asyncpg), in-process.

Counted where asyncpg talks to the server, so it is right whatever layer sent the statement
(the app's unit of work, SQLAlchemy's adapter, a pool's ping):

- `statements`: executions (one round trip each once the statement is prepared);
- `prepares`: statements prepared on a connection for the first time (one more round trip;
  a warm-up removes them);
- `simple`: plain commands without parameters (BEGIN, COMMIT, ROLLBACK).

Shared by the benchmarks (`bench core`) and the tests that pin round trips per request. It
wraps asyncpg methods for the duration of `installed()`, private ones included: the count must
follow the wire, and the wire is what those methods drive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

KINDS = ("statements", "prepares", "simple")

Wrapper = Callable[[Any], Any]


@contextmanager
def _patched(cls: type, name: str, wrap: Wrapper) -> Iterator[None]:
    original = getattr(cls, name)
    setattr(cls, name, wrap(original))
    try:
        yield
    finally:
        setattr(cls, name, original)


class RoundTrips:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        #: The SQL of every execution, in order.
        self.statements: list[str] = []

    def reset(self) -> None:
        self.counts.clear()
        self.statements.clear()

    @property
    def round_trips(self) -> int:
        return sum(self.counts[kind] for kind in KINDS)

    def per_request(self, requests: int) -> dict[str, float]:
        out = {kind: self.counts[kind] / requests for kind in KINDS}
        out["round_trips"] = self.round_trips / requests
        return out

    @contextmanager
    def installed(self) -> Iterator[RoundTrips]:
        counts, statements = self.counts, self.statements

        def simple(execute: Any) -> Any:
            async def wrapper(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
                if not args:  # with arguments it goes through _execute, counted there
                    counts["simple"] += 1
                return await execute(conn, query, *args, **kwargs)

            return wrapper

        def executed(_execute: Any) -> Any:
            async def wrapper(conn: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                counts["statements"] += 1
                statements.append(str(query))
                return await _execute(conn, query, *args, **kwargs)

            return wrapper

        def prepared(get_statement: Any) -> Any:
            async def wrapper(conn: Any, *args: Any, **kwargs: Any) -> Any:
                before = len(conn._stmt_cache)
                statement = await get_statement(conn, *args, **kwargs)
                if len(conn._stmt_cache) > before:
                    counts["prepares"] += 1
                return statement

            return wrapper

        def fetched(fetch: Any) -> Any:
            async def wrapper(statement: Any, *args: Any, **kwargs: Any) -> Any:
                counts["statements"] += 1
                statements.append(statement.get_query())
                return await fetch(statement, *args, **kwargs)

            return wrapper

        with ExitStack() as stack:
            stack.enter_context(_patched(asyncpg.Connection, "execute", simple))
            stack.enter_context(_patched(asyncpg.Connection, "_execute", executed))
            stack.enter_context(_patched(asyncpg.Connection, "_get_statement", prepared))
            for name in ("fetch", "fetchrow"):
                stack.enter_context(_patched(PreparedStatement, name, fetched))
            yield self
