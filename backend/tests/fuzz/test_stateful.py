"""Schemathesis' stateful phase: sequences of calls chained through the links it infers from
the schema (a created session's id into its reads, renames, messages, replies and deletion), with
every default check on. `FUZZ_STATEFUL_EXAMPLES` bounds the scenarios: small in `make test`,
larger in `make fuzz`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.generation.stateful.state_machine import APIStateMachine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.database import async_url
from app.core.security import LocalTokens
from app.core.settings import Settings
from app.main import create_app

SCENARIOS = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "25"))
STEPS = int(os.environ.get("FUZZ_STATEFUL_STEPS", "6"))


class _BoundLater:
    target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.target is not None
        await self.target(scope, receive, send)


APP = _BoundLater()


def _schema() -> Any:
    app = create_app(Settings(_env_file=None, database_url="postgresql://unused@127.0.0.1/x"))
    loaded = schemathesis.openapi.from_dict(app.openapi())
    loaded.app = APP
    loaded.config.generation.update(database="none")
    return loaded


SCHEMA = _schema()


@pytest.fixture(scope="module")
def bound(settings: Settings) -> Iterator[LocalTokens]:
    assert settings.database_url is not None
    engine = create_async_engine(async_url(settings.database_url), poolclass=NullPool)
    APP.target = create_app(settings, engine=engine)
    yield LocalTokens(settings)
    APP.target = None


def test_call_sequences_conform_to_the_schema(bound: LocalTokens) -> None:
    base = SCHEMA.as_state_machine()
    assert SCHEMA.statistic.transitions.selected > 10  # the links really chain operations

    class Workflow(base):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            # One user per scenario: quotas and Idempotency-Keys are per user.
            self.token = bound.mint(f"stateful-{uuid.uuid4()}")

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {self.token}"}}

    assert issubclass(Workflow, APIStateMachine)
    Workflow.run(
        settings=hypothesis.settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=os.environ.get("FUZZ_RANDOM") is None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
    )
