"""The floor for `GET /api/sessions/?limit=50`: raw ASGI + one asyncpg query + stdlib json.

Same query, same JSON bytes as the app, nothing else: no framework, no ORM, no auth, no
validation. Configured through the environment by the benchmark that starts it:
BENCH_PG_CONNECT (JSON keyword arguments for asyncpg), BENCH_USER_ID, BENCH_POOL_SIZE.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import asyncpg

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

QUERY = (
    "SELECT id, user_id, title, message_count, created_at, updated_at, current_message_id "
    "FROM sessions "
    "WHERE user_id=$1 ORDER BY updated_at DESC, id DESC LIMIT 50"
)


def _timestamp(value: datetime) -> str:
    # Pydantic writes UTC as "Z"; do the same so the two bodies are byte-identical.
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def create_app() -> ASGIApp:
    connect: dict[str, Any] = json.loads(os.environ["BENCH_PG_CONNECT"])
    user_id = int(os.environ["BENCH_USER_ID"])
    pool_size = int(os.environ.get("BENCH_POOL_SIZE", "10"))
    pools: list[asyncpg.Pool[asyncpg.Record]] = []

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                pool = await asyncpg.create_pool(**connect, min_size=pool_size, max_size=pool_size)
                pools.append(pool)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for pool in pools:
                    await pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        async with pools[0].acquire() as conn:
            rows = await conn.fetch(QUERY, user_id)
        body = json.dumps(
            [
                {
                    "id": row["id"],
                    "user_id": row["user_id"],
                    "title": row["title"],
                    "message_count": row["message_count"],
                    "created_at": _timestamp(row["created_at"]),
                    "updated_at": _timestamp(row["updated_at"]),
                    "current_message_id": row["current_message_id"],
                }
                for row in rows
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
