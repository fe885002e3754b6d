"""The application factory: where the layers meet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import errors, health, messages, replies, sessions, users
from app.api.deps import reject_unknown_query
from app.api.middleware import BodySizeLimit
from app.core.database import create_engine, create_session_factory
from app.core.oidc import OidcTokens
from app.core.security import LocalTokens, TokenVerifier
from app.core.settings import Settings, get_settings
from app.domain.rules import Limits
from app.domain.services.replies import ReplyPolicy, ReplyService
from app.llm import build_provider
from app.persistence.reply_hub import PgReplyHub
from app.persistence.unit_of_work import unit_of_work_factory

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

    session_factory = create_session_factory(engine)
    limits = Limits(
        max_sessions_per_user=settings.max_sessions_per_user,
        max_messages_per_session=settings.max_messages_per_session,
    )
    provider = build_provider(settings)
    hub = PgReplyHub(
        engine,
        flush_s=settings.reply_flush_ms / 1000,
        sweep_s=settings.reply_sweep_s,
        coalesce_s=settings.reply_coalesce_ms / 1000,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Start-up: take this process's liveness lock, fail orphaned replies, start the writer.
        await hub.start()
        try:
            yield
        finally:
            # Running replies finish within the grace period or are saved `failed`.
            await hub.stop(settings.reply_shutdown_grace_s)
            await provider.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Agent Stack",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    tokens: TokenVerifier = (
        OidcTokens(settings) if settings.auth_mode == "oidc" else LocalTokens(settings)
    )
    app.state.tokens = tokens
    app.state.limits = limits
    app.state.reply_hub = hub
    app.state.replies = ReplyService(
        unit_of_work_factory(session_factory),
        provider,
        hub,
        ReplyPolicy(
            system_prompt=settings.llm_system_prompt,
            context_chars=settings.llm_context_chars,
            context_messages=settings.llm_context_messages,
        ),
        limits,
    )

    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=settings.cors_allow_credentials and "*" not in settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Link", "Retry-After"],
    )
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(sessions.router)
    app.include_router(messages.router)
    app.include_router(users.router)
    app.include_router(replies.router)
    return app
