"""The floor: raw ASGI + one asyncpg statement per request + stdlib json, for the four routes
`make bench core` measures:

- `GET /api/sessions/?limit=N`            the user's sessions, newest `(updated_at, id)` first
- `GET /api/sessions/{id}`                one of them (404 problem document otherwise)
- `POST /api/messages/?session_id=N`      append a message: counter, recency and row in ONE
                                          statement (a CTE), 201 with the message
- `GET /api/messages/?session_id=N&limit=N`  its messages, oldest first; 404 if not the user's

Same JSON bytes as the app, nothing else: no framework, no ORM, no token check (the user is
fixed by the environment), no validation beyond what it takes not to crash, no quota. Exactly one
round trip to PostgreSQL per request: cached prepared statements, and the pool's reset query on
release is skipped (nothing here changes session state). Configured through the environment by
the benchmark that starts it: BENCH_PG_CONNECT (JSON keyword arguments for asyncpg),
BENCH_USER_ID, BENCH_POOL_SIZE.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import asyncpg

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COLUMNS = (
    "id, user_id, title, message_count, created_at, updated_at, current_message_id, metadata, "
    "archived, pinned, expires_at"
)
#: A temporary session past its expiry is gone, as in the app.
LIVE = "(expires_at IS NULL OR expires_at > now())"
MESSAGE_COLUMNS = (
    "id, session_id, role, content, tokens, created_at, status, input_tokens, error, parent_id, "
    "tool_calls, tool_call_id, finish_reason, model, CASE WHEN feedback_rating IS NULL THEN NULL "
    "ELSE json_build_object('rating', feedback_rating, 'comment', feedback_comment, "
    "'created_at', feedback_at) END AS feedback"
)
#: The message columns by name, for a statement that reads them from a subquery.
MESSAGE_NAMES = (
    "id, session_id, role, content, tokens, created_at, status, input_tokens, error, parent_id, "
    "tool_calls, tool_call_id, finish_reason, model, feedback"
)

LIST_SESSIONS = (
    f"SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id=$1 AND archived = false AND {LIVE} "
    "ORDER BY pinned DESC, updated_at DESC, id DESC LIMIT $2"
)
GET_SESSION = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id=$1 AND user_id=$2 AND {LIVE}"
# The session row is locked first and the message goes under its current message (appends to
# one session serialise and chain, as in the app); then the session's counter, recency and
# current message move with it, in one statement. No row from `s`: not the caller's session,
# nothing inserted.
ADD_MESSAGE = f"""
WITH s AS (
    SELECT id, current_message_id FROM sessions WHERE id = $1 AND user_id = $2 AND {LIVE}
    FOR NO KEY UPDATE
), m AS (
    INSERT INTO messages (session_id, user_id, parent_id, role, content, tokens, created_at)
    SELECT s.id, $2, s.current_message_id, $3, $4, $5, clock_timestamp() FROM s
    RETURNING {MESSAGE_COLUMNS}
), moved AS (
    UPDATE sessions
    SET message_count = message_count + 1, updated_at = m.created_at, current_message_id = m.id
    FROM m WHERE sessions.id = m.session_id
)
SELECT * FROM m
"""
# Ownership and the page in one statement: no row means no such session of the caller's (404);
# one row of NULLs (`m.id IS NULL`) means an empty page.
LIST_MESSAGES = f"""
SELECT {", ".join(f"m.{c}" for c in MESSAGE_NAMES.split(", "))}
FROM sessions AS s
LEFT JOIN LATERAL (
    SELECT {MESSAGE_COLUMNS}
    FROM messages WHERE session_id = s.id ORDER BY created_at, id LIMIT $3
) AS m ON true
WHERE s.id = $1 AND s.user_id = $2 AND {LIVE.replace("expires_at", "s.expires_at")}
"""

SESSION_DEFAULT_LIMIT = 50
MESSAGE_DEFAULT_LIMIT = 100


def _timestamp(value: datetime) -> str:
    # Pydantic writes UTC as "Z"; do the same so the two bodies are byte-identical.
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _session(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "title": row["title"],
        "message_count": row["message_count"],
        "created_at": _timestamp(row["created_at"]),
        "updated_at": _timestamp(row["updated_at"]),
        "current_message_id": row["current_message_id"],
        # JSONB arrives as text on a bare asyncpg connection (no codec).
        "metadata": json.loads(row["metadata"]),
        "archived": row["archived"],
        "pinned": row["pinned"],
        "expires_at": _timestamp(row["expires_at"]) if row["expires_at"] else None,
    }


def _message(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "session_id": row["session_id"],
        "role": row["role"],
        "content": row["content"],
        "tokens": row["tokens"],
        "created_at": _timestamp(row["created_at"]),
        "status": row["status"],
        "input_tokens": row["input_tokens"],
        "error": row["error"],
        "parent_id": row["parent_id"],
        # JSONB arrives as text on a bare asyncpg connection (no codec).
        "tool_calls": json.loads(row["tool_calls"]) if row["tool_calls"] else None,
        "tool_call_id": row["tool_call_id"],
        "finish_reason": row["finish_reason"],
        "model": row["model"],
        "feedback": json.loads(row["feedback"]) if row["feedback"] else None,
    }


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def session_not_found(session_id: int) -> bytes:
    """The app's problem document for a session that is missing or someone else's."""
    return _dumps(
        {
            "type": "about:blank",
            "title": "Not found",
            "status": 404,
            "detail": f"session {session_id} not found",
        }
    )


async def _no_reset(_: asyncpg.Connection[Any]) -> None:
    """Skip asyncpg's reset query on release (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`, a round trip): these statements leave no session state behind."""


async def create_pool(connect: dict[str, Any], size: int) -> asyncpg.Pool[asyncpg.Record]:
    """A fixed-size pool whose requests cost exactly one round trip each (see `_no_reset`)."""
    pool: asyncpg.Pool[asyncpg.Record] = await asyncpg.create_pool(
        **connect, min_size=size, max_size=size, reset=_no_reset
    )
    return pool


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def create_app() -> ASGIApp:
    connect: dict[str, Any] = json.loads(os.environ["BENCH_PG_CONNECT"])
    user_id = int(os.environ["BENCH_USER_ID"])
    pool_size = int(os.environ.get("BENCH_POOL_SIZE", "10"))
    pools: list[asyncpg.Pool[asyncpg.Record]] = []

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                pools.append(await create_pool(connect, pool_size))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for pool in pools:
                    await pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def respond(
        send: Send, status: int, body: bytes, content_type: bytes = b"application/json"
    ) -> None:
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def not_found(send: Send, session_id: int) -> None:
        await respond(send, 404, session_not_found(session_id), b"application/problem+json")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        pool = pools[0]
        path: str = scope["path"]
        method: str = scope["method"]
        query = dict(parse_qsl(scope["query_string"].decode()))
        try:
            if path == "/api/sessions/" and method == "GET":
                limit = int(query.get("limit", SESSION_DEFAULT_LIMIT))
                rows = await pool.fetch(LIST_SESSIONS, user_id, limit)
                await respond(send, 200, _dumps([_session(row) for row in rows]))
            elif path.startswith("/api/sessions/") and method == "GET":
                session_id = int(path[len("/api/sessions/") :])
                row = await pool.fetchrow(GET_SESSION, session_id, user_id)
                if row is None:
                    await not_found(send, session_id)
                else:
                    await respond(send, 200, _dumps(_session(row)))
            elif path == "/api/messages/" and method == "POST":
                session_id = int(query["session_id"])
                body = json.loads(await _read_body(receive))
                row = await pool.fetchrow(
                    ADD_MESSAGE,
                    session_id,
                    user_id,
                    body["role"],
                    body["content"],
                    int(body.get("tokens", 0)),
                )
                if row is None:
                    await not_found(send, session_id)
                else:
                    await respond(send, 201, _dumps(_message(row)))
            elif path == "/api/messages/" and method == "GET":
                session_id = int(query["session_id"])
                limit = int(query.get("limit", MESSAGE_DEFAULT_LIMIT))
                rows = await pool.fetch(LIST_MESSAGES, session_id, user_id, limit)
                if not rows:
                    await not_found(send, session_id)
                else:
                    items = [_message(row) for row in rows if row["id"] is not None]
                    await respond(send, 200, _dumps(items))
            else:
                await respond(send, 404, b'{"detail":"Not Found"}')
        except (KeyError, ValueError, TypeError):
            await respond(send, 422, b'{"detail":"invalid request"}')

    return app
