"""The application factory: where the layers meet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import errors, health, messages, openapi, sessions, users
from app.api import replies as replies_api
from app.api.dependencies.services import Services
from app.api.middleware import BodySizeLimit
from app.core.database import ConnectParams, create_engine
from app.core.oidc import OidcTokens
from app.core.security import LocalTokens, RememberedTokens
from app.core.settings import Settings, get_settings
from app.domain.rules import Limits
from app.domain.services.idempotency import IdempotencyPolicy
from app.domain.services.replies import ReplyPolicy, ReplyService
from app.domain.services.users import KnownUsers
from app.llm import build_provider
from app.persistence.channels import USER_DELETED
from app.persistence.listener import Listener
from app.persistence.unit_of_work import SqlUnitOfWork, unit_of_work_factory
from app.replies import ReplyRuntime

DESCRIPTION = """
Agent Stack keeps AI-agent conversations: users, chat sessions and their messages, and streams
agent replies (Server-Sent Events) that survive disconnects and can be resumed or cancelled.

Every `/api` route needs `Authorization: Bearer <JWT>`; the user is provisioned from the token's
`sub` on first sight. Another user's sessions and messages answer **404**, exactly like missing
ones. Errors are RFC 9457 problem documents (`application/problem+json`). Lists take `limit`
(1..100), `skip` (0..10,000) and an `after` cursor, and link the next page in a `Link` header.
"""


def create_app(settings: Settings | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or create_engine(settings)
    uow_factory = unit_of_work_factory(engine)
    limits = Limits(
        max_sessions_per_user=settings.max_sessions_per_user,
        max_messages_per_session=settings.max_messages_per_session,
    )
    known_users = KnownUsers()
    provider = build_provider(settings)
    listener = Listener(
        ConnectParams.from_url(engine.url), connect_timeout_s=settings.db_connect_timeout_s
    )
    # Erased accounts are forgotten by every process; after missed notifications, all are.
    listener.subscribe(USER_DELETED, lambda payload: known_users.forget(int(payload)))
    listener.on_reconnect(known_users.clear)
    runtime = ReplyRuntime(
        uow_factory,
        listener,
        flush_s=settings.reply_flush_ms / 1000,
        sweep_s=settings.reply_sweep_s,
        coalesce_s=settings.reply_coalesce_ms / 1000,
    )
    tokens = RememberedTokens(
        OidcTokens(settings) if settings.auth_mode == "oidc" else LocalTokens(settings)
    )
    replies = ReplyService(
        uow_factory,
        provider,
        runtime,
        ReplyPolicy(
            system_prompt=settings.llm_system_prompt,
            context_chars=settings.llm_context_chars,
            context_messages=settings.llm_context_messages,
        ),
        limits,
        known_users,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Start-up: take this process's liveness lock, fail orphaned replies, start the writer.
        await runtime.start()
        try:
            yield
        finally:
            # Running replies finish within the grace period or are saved `failed`.
            await runtime.stop(settings.reply_shutdown_grace_s)
            await provider.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Agent Stack",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry support, left on, looks the global providers up (in
        # the environment) on every request; the service exports no telemetry, so it is off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = Services(
        settings=settings,
        engine=engine,
        new_uow=partial(SqlUnitOfWork, engine),
        tokens=tokens,
        limits=limits,
        known_users=known_users,
        idempotency=IdempotencyPolicy(
            ttl_s=settings.idempotency_ttl_s, lock_timeout_s=settings.idempotency_lock_timeout_s
        ),
        replies=replies,
    )
    app.state.reply_runtime = runtime  # for operators' tools and tests, not for routes

    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=settings.cors_allow_credentials and "*" not in settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Link", "Retry-After"],
    )
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    errors.install(app, forget_user=known_users.forget)
    openapi.install(app)
    for router in (health, sessions, messages, users, replies_api):
        app.include_router(router.router)
    return app
