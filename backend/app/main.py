"""The application factory: where the layers meet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import docs, errors, health, messages, openapi, search, sessions, users, web
from app.api import metrics as metrics_api
from app.api import replies as replies_api
from app.api.dependencies.services import Services
from app.api.middleware import BodySizeLimit, CrossOrigin
from app.api.observe import REQUEST_ID_HEADER, ObserveRequests
from app.core.collector import collector_thresholds
from app.core.config_errors import load_settings
from app.core.database import ConnectParams, create_engine
from app.core.exit_signals import on_first_exit_signal
from app.core.lifecycle import Lifecycle
from app.core.logging import configure_logging
from app.core.oidc import OidcTokens
from app.core.reply_telemetry import ReplyTelemetry, model_name
from app.core.security import LocalTokens, RememberedTokens
from app.core.settings import Settings
from app.core.tracing import Tracing
from app.domain.prompt import ReplyPolicy
from app.domain.rules import Limits
from app.domain.services.idempotency import IdempotencyPolicy
from app.domain.services.replies import ReplyService
from app.domain.services.usage import DailyLimit
from app.domain.services.users import KnownUsers
from app.llm import build_provider
from app.persistence.channels import USER_DELETED
from app.persistence.listener import Listener
from app.persistence.retention import RetentionPolicy, RetentionSweeper
from app.persistence.unit_of_work import SqlUnitOfWork, unit_of_work_factory
from app.replies import ReplyRuntime

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

DESCRIPTION = """
Agent Stack keeps AI-agent conversations: users, chat sessions and their messages, and streams
agent replies (Server-Sent Events) that survive disconnects and can be resumed or cancelled.

Every `/api` route needs `Authorization: Bearer <JWT>`; the user is provisioned from the token's
`sub` on first sight. Another user's sessions and messages answer **404**, exactly like missing
ones. Errors are RFC 9457 problem documents (`application/problem+json`) whose `status` is
always the HTTP status and whose `request_id` is the response's `X-Request-ID` (send a
well-formed one to choose it). Bodies are JSON sent as `Content-Type: application/json` (else
**415**); a body that is not JSON is **400**, one that breaks a rule **422**. Lists take `limit`
(1..100), `skip` (0..10,000) and an `after` cursor, and link the next page in a `Link` header.
"""


def create_app(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    span_exporter: SpanExporter | None = None,
    handle_exit_signals: bool = False,
) -> FastAPI:
    """The application. `span_exporter` turns tracing on with that exporter (tests pass an
    in-memory one); otherwise tracing follows OTEL_EXPORTER_OTLP_ENDPOINT.
    `handle_exit_signals`: drain at the first SIGINT/SIGTERM before uvicorn stops (see
    `app.core.exit_signals` and `leave` below); `agent-stack serve` sets it."""
    settings = settings or load_settings()
    engine = engine or create_engine(settings)
    # First: the model provider's HTTP client is traced only if made after this.
    tracing = Tracing.start(engine, settings, span_exporter)
    uow_factory = unit_of_work_factory(engine)
    limits = Limits(
        max_sessions_per_user=settings.max_sessions_per_user,
        max_messages_per_session=settings.max_messages_per_session,
        max_import_messages=settings.import_max_messages,
    )
    known_users = KnownUsers()
    lifecycle = Lifecycle()
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
        events_per_s=settings.reply_events_per_s,
    )
    sweeper = RetentionSweeper(
        ConnectParams.from_url(engine.url),
        RetentionPolicy(
            retention_days=settings.retention_days,
            batch_size=settings.retention_batch_size,
            pause_s=settings.retention_pause_ms / 1000,
            interval_s=settings.retention_sweep_s,
        ),
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    tokens = RememberedTokens(
        OidcTokens(settings) if settings.auth_mode == "oidc" else LocalTokens(settings)
    )
    idempotency = IdempotencyPolicy(
        ttl_s=settings.idempotency_ttl_s, lock_timeout_s=settings.idempotency_lock_timeout_s
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
        observer=ReplyTelemetry(model_name(settings.llm_provider, settings.llm_model)),
        idempotency=idempotency,
        daily_limit=DailyLimit(settings.user_daily_token_limit),
    )

    @asynccontextmanager
    async def serving() -> AsyncIterator[None]:
        # Start-up: take this process's liveness lock, fail orphaned replies, start the writer.
        await runtime.start()
        sweeping = asyncio.create_task(sweeper.run(), name="retention-sweep")
        finishing: list[asyncio.Task[None]] = []

        async def leave(hurry: asyncio.Event) -> None:
            """Before uvicorn stops listening. Behind a load balancer (SHUTDOWN_DRAIN_S > 0):
            fail readiness until it has noticed, then end the event streams without a final
            event so their clients reconnect to another node. Either way the running replies
            then get the grace period to finish here."""
            lifecycle.draining = True
            drain_s = settings.shutdown_drain_s
            if drain_s > 0:
                log.info("draining: readiness fails; streams are handed off in %g s", drain_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hurry.wait(), drain_s)
                runtime.release_streams()
            grace = settings.reply_shutdown_grace_s
            finishing.append(asyncio.create_task(runtime.finish_replies(grace)))

        if handle_exit_signals:
            on_first_exit_signal(leave)
        try:
            yield
        finally:
            sweeping.cancel()
            await asyncio.gather(sweeping, return_exceptions=True)
            if finishing:
                await asyncio.gather(*finishing, return_exceptions=True)
            # Running replies finish within the grace period or are saved `failed`.
            await runtime.stop(settings.reply_shutdown_grace_s)
            await provider.aclose()
            await engine.dispose()
            if tracing is not None:
                tracing.shutdown()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with collector_thresholds(settings.gc_thresholds):
            async with serving():
                yield

    app = FastAPI(
        title="Agent Stack",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # FastAPI's built-in OpenTelemetry support, left on, looks the global providers up (in
        # the environment) on every request; traces come from the official instrumentations
        # when OTEL_EXPORTER_OTLP_ENDPOINT is set (app/core/tracing.py), so it is off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = Services(
        settings=settings,
        engine=engine,
        new_uow=partial(SqlUnitOfWork, engine),
        tokens=tokens,
        limits=limits,
        known_users=known_users,
        idempotency=idempotency,
        replies=replies,
        lifecycle=lifecycle,
    )
    app.state.reply_runtime = runtime  # for operators' tools and tests, not for routes
    app.state.retention = sweeper

    app.add_middleware(
        CrossOrigin,
        allow_origins=settings.cors_origins,
        allow_credentials=settings.cors_allow_credentials and "*" not in settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Link", "Retry-After", REQUEST_ID_HEADER],
    )
    app.add_middleware(
        BodySizeLimit,
        max_body_bytes=settings.max_body_bytes,
        per_path={sessions.IMPORT_PATH: settings.import_max_bytes},
    )
    # Outermost: every answer, the 413 and CORS preflights included, has its request id.
    app.add_middleware(ObserveRequests, user_id_of=known_users.get)
    errors.install(app, forget_user=known_users.forget)
    for router in (messages, sessions, replies_api, users, search, health, metrics_api):
        # The routes themselves, not `include_router`: each included router is one more layer
        # that every request is matched through (FastAPI 0.165; 5-10% of a warm request). A
        # module's router already gave its routes their prefix, tags, responses and class.
        # Routes are tried in order: the API's busiest first, the pages and docs after them
        # (no path is served by two of them, so the order changes only the cost).
        app.router.routes.extend(router.router.routes)
    docs.install(app)
    web.install(app, settings)
    openapi.install(app)
    if tracing is not None:
        tracing.instrument_app(app)
    return app


def create_served_app() -> FastAPI:
    """The factory `agent-stack serve` gives uvicorn: logging as configured, then the app.
    (Each worker process runs it; `create_app` alone leaves logging to its caller.)"""
    settings = load_settings()
    configure_logging(settings.log_level, settings.effective_log_format, settings.node_name)
    return create_app(settings, handle_exit_signals=True)
