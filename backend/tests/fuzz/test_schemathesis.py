"""Schemathesis against the app's own OpenAPI schema, authenticated, every default check on.

`FUZZ_MAX_EXAMPLES` bounds the examples per operation and mode: small in `make test`, large in
`make fuzz`. Both positive (schema-valid) and negative (schema-violating) data are generated;
no check is switched off.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis import GenerationMode
from schemathesis.schemas import BaseSchema
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.database import async_url
from app.core.security import LocalTokens
from app.core.settings import Settings
from app.main import create_app

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30"))


class _BoundLater:
    """The ASGI app the schema calls, bound to the real app once the test database exists."""

    target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.target is not None, "the fuzz_app fixture binds the app"
        await self.target(scope, receive, send)


APP = _BoundLater()


def _load_schema() -> BaseSchema:
    """The app's own OpenAPI document. Building it needs no database, so it can happen at
    collection time (schemathesis' fixture-based loader does not work with pytest 9)."""
    app = create_app(Settings(_env_file=None, database_url="postgresql://unused@127.0.0.1/x"))
    loaded = schemathesis.openapi.from_dict(app.openapi())
    loaded.app = APP
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=os.environ.get("FUZZ_RANDOM") is None,
        database="none",
    )
    # A body over MAX_BODY_BYTES is refused with 413 before it is parsed: a rejection as
    # deliberate as a 422, so negative data may meet it. The check itself stays on.
    rejection = loaded.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return loaded


schema = _load_schema()


@pytest.fixture(scope="module")
def fuzz_app(settings: Settings) -> FastAPI:
    # Schemathesis drives the app from its own event-loop thread: give it an engine without a
    # pool, so no connection is ever shared with the test loop.
    assert settings.database_url is not None
    engine = create_async_engine(async_url(settings.database_url), poolclass=NullPool)
    app = create_app(settings, engine=engine)
    APP.target = app
    return app


@pytest.fixture(scope="module")
def tokens(settings: Settings) -> LocalTokens:
    return LocalTokens(settings)


@schema.parametrize()
def test_api_conforms_to_its_schema(
    case: schemathesis.Case[Any], fuzz_app: FastAPI, tokens: LocalTokens
) -> None:
    assert APP.target is fuzz_app
    # A user per example: Idempotency-Keys are per user, and a key generated twice with two
    # different bodies is (rightly) a 422, which must not count against the next example.
    subject = f"fuzzer-{uuid.uuid4()}"
    case.call_and_validate(headers={"Authorization": f"Bearer {tokens.mint(subject)}"})
