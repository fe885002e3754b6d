"""The ceiling: what FastAPI itself allows for the routes `make bench core` measures.

A minimal FastAPI app with everything the contract needs and nothing more:

- pydantic request and response models with the fields of the app's DTOs, request validation
  (query, path, body) and response serialisation by FastAPI, as in the app;
- `Authorization: Bearer <HS256 JWT>` verified with PyJWT exactly as the app does (signature,
  `exp`, `iss`, `aud`, required claims, leeway);
- the caller's user id from a per-process dict, keyed by token subject; on first sight it is
  looked up by `auth0_id` (inserted if missing), never again;
- exactly ONE round trip to PostgreSQL per request through a raw asyncpg pool of the app's
  default size (10): ownership folded into the SQL (`WHERE user_id = $1`), the message, its
  session's counter and recency written by one statement (a CTE), the ownership check of a
  message list in the statement that reads the page (a LATERAL join: no row is 404, a row of
  NULLs an empty page);
- errors as the app's RFC 9457 problem documents where the routes need them (401, 404).

The same statements as the raw floor (`bench.baselines.sessions_raw`), so the difference between
the two is FastAPI + pydantic + auth; between this and the app, everything the app adds on top.
Configured through the environment: BENCH_PG_CONNECT (JSON keyword arguments for asyncpg),
BENCH_POOL_SIZE, BENCH_AUTH_SECRET, BENCH_AUTH_ISSUER, BENCH_AUTH_AUDIENCE, BENCH_AUTH_LEEWAY_S.
"""

# No `from __future__ import annotations`: the routes are defined inside create_app (they close
# over its configuration), and FastAPI must see their annotations as objects, not strings.
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import jwt
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bench.baselines.sessions_raw import (
    ADD_MESSAGE,
    GET_SESSION,
    LIST_MESSAGES,
    LIST_SESSIONS,
    create_pool,
)

BIGINT_MAX = 9_223_372_036_854_775_807
TOKENS_MAX = 2_147_483_647
CONTENT_MAX_CHARS = 100_000
PROBLEM_JSON = "application/problem+json"

Role = Literal["user", "assistant", "system", "tool"]
MessageStatus = Literal["streaming", "completed", "cancelled", "failed"]

FIND_USER = "SELECT id FROM users WHERE auth0_id = $1"
ADD_USER = "INSERT INTO users (auth0_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id"


def _from_json(value: Any) -> Any:
    """JSON columns arrive as text on a bare asyncpg connection (no codec)."""
    return json.loads(value) if isinstance(value, str) else value


class SessionOut(BaseModel):
    id: int
    user_id: int
    title: str
    message_count: int
    created_at: datetime
    updated_at: datetime
    current_message_id: int | None = None
    metadata: Annotated[dict[str, str], BeforeValidator(_from_json)] = {}
    archived: bool = False
    pinned: bool = False
    expires_at: datetime | None = None


class MessageOut(BaseModel):
    id: int
    session_id: int
    role: Role
    content: str
    tokens: int
    created_at: datetime
    status: MessageStatus = "completed"
    input_tokens: int = 0
    error: str | None = None
    parent_id: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    finish_reason: str | None = None
    model: str | None = None
    feedback: Annotated[dict[str, Any] | None, BeforeValidator(_from_json)] = None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str = Field(min_length=1, max_length=CONTENT_MAX_CHARS)
    tokens: int = Field(default=0, ge=0, le=TOKENS_MAX)


class Unauthorized(Exception):
    pass


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Any:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def session_not_found(session_id: int) -> Any:
    return problem(404, "Not found", f"session {session_id} not found")


SessionIdQuery = Annotated[int, Query(ge=1, le=BIGINT_MAX)]
SessionIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX)]


def create_app() -> FastAPI:
    connect: dict[str, Any] = json.loads(os.environ["BENCH_PG_CONNECT"])
    pool_size = int(os.environ.get("BENCH_POOL_SIZE", "10"))
    secret = os.environ["BENCH_AUTH_SECRET"]
    issuer = os.environ.get("BENCH_AUTH_ISSUER", "agent-stack-local")
    audience = os.environ.get("BENCH_AUTH_AUDIENCE", "agent-stack")
    leeway = float(os.environ.get("BENCH_AUTH_LEEWAY_S", "30"))
    pools: list[asyncpg.Pool[asyncpg.Record]] = []
    user_ids: dict[str, int] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pools.append(await create_pool(connect, pool_size))
        try:
            yield
        finally:
            await pools.pop().close()

    app = FastAPI(lifespan=lifespan)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> Any:
        return problem(
            401,
            "Unauthorized",
            f"invalid bearer token: {exc}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    async def resolve(subject: str) -> int:
        """First sight of a subject: its user id, the row created if missing."""
        pool = pools[0]
        user_id: int | None = await pool.fetchval(FIND_USER, subject)
        if user_id is None:
            user_id = await pool.fetchval(ADD_USER, subject)
        if user_id is None:  # created concurrently
            user_id = await pool.fetchval(FIND_USER, subject)
        if user_id is None:
            raise Unauthorized("the account could not be provisioned")
        user_ids[subject] = user_id
        return user_id

    async def current_user(authorization: Annotated[str | None, Header()] = None) -> int:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("an Authorization: Bearer <token> header is required")
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                audience=audience,
                issuer=issuer,
                leeway=leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(str(exc)) from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
            raise Unauthorized("token subject (sub) must be a non-empty string")
        known = user_ids.get(subject)
        return known if known is not None else await resolve(subject)

    CurrentUser = Annotated[int, Depends(current_user)]  # noqa: N806 - a type alias

    @app.get("/api/sessions/", response_model=list[SessionOut])
    async def list_sessions(
        user_id: CurrentUser, limit: Annotated[int, Query(ge=1, le=100)] = 50
    ) -> Any:
        rows = await pools[0].fetch(LIST_SESSIONS, user_id, limit)
        return [dict(row) for row in rows]

    @app.get("/api/sessions/{session_id}", response_model=SessionOut)
    async def get_session(session_id: SessionIdPath, user_id: CurrentUser) -> Any:
        row = await pools[0].fetchrow(GET_SESSION, session_id, user_id)
        return session_not_found(session_id) if row is None else dict(row)

    @app.post("/api/messages/", status_code=201, response_model=MessageOut)
    async def create_message(
        session_id: SessionIdQuery, body: MessageIn, user_id: CurrentUser
    ) -> Any:
        row = await pools[0].fetchrow(
            ADD_MESSAGE, session_id, user_id, body.role, body.content, body.tokens
        )
        return session_not_found(session_id) if row is None else dict(row)

    @app.get("/api/messages/", response_model=list[MessageOut])
    async def list_messages(
        session_id: SessionIdQuery,
        user_id: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=100)] = 100,
    ) -> Any:
        rows = await pools[0].fetch(LIST_MESSAGES, session_id, user_id, limit)
        if not rows:
            return session_not_found(session_id)
        return [dict(row) for row in rows if row["id"] is not None]

    return app
