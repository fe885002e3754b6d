"""Schemathesis' stateful phase: sequences of calls chained through the links it infers from
the schema (a created session's id into its reads, renames, messages, replies and deletion), with
every default check on. `FUZZ_STATEFUL_EXAMPLES` bounds the scenarios: small in `make test`,
larger in `make fuzz`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import HookContext
from schemathesis.core.failures import Failure
from schemathesis.generation.stateful.state_machine import APIStateMachine
from schemathesis.openapi.checks import RejectedPositiveData
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.database import async_url
from app.core.security import LocalTokens
from app.core.settings import Settings
from app.main import create_app
from tests.fuzz.test_schemathesis import obey_unstated_rules

# 50: with the schema's branch and tool fields, 25 derandomized scenarios happened to chain no
# successful call through a link, and with search, usage and expiry 40 did; the assertion at the
# end catches such a hollow run.
SCENARIOS = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "50"))
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

#: Fields whose validity depends on stored data, which a schema cannot know: a message of the
#: session (`parent_id`, `current_message_id`, a fork's `message_id`, a thread's `before`), a
#: call on the branch without a result (`tool_call_id`). A reply without content in a session
#: with nothing to continue is the same kind of refusal, on `content`.
STORED_DATA_FIELDS = frozenset(
    {"parent_id", "current_message_id", "message_id", "before", "tool_call_id"}
)
NOTHING_TO_CONTINUE = "has no message to continue"


@SCHEMA.hook  # type: ignore[untyped-decorator]
def filter_failure(
    context: HookContext, failure: Failure, case: schemathesis.Case[Any], response: Any
) -> bool:
    """Keep every failure but one kind: a schema-valid request refused with 422 by a rule on
    stored data (the fields above, named in `errors`). Chained calls reach real sessions, where
    a generated id is rarely one of theirs; each such rule has HTTP tests of its own."""
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 422:
        return True
    errors = response.json().get("errors") or []
    stored = [
        error
        for error in errors
        if error["loc"][-1] in STORED_DATA_FIELDS or NOTHING_TO_CONTINUE in error["msg"]
    ]
    return not errors or len(stored) != len(errors)


#: A generated bearer header that is well-formed (its token is then replaced by a real one).
BEARER = re.compile(r"Bearer [\x21-\x7E]+")
#: What the header accepts; an invalid key is sent as generated (it must be refused).
VALID_KEY = re.compile(r"[\x20-\x7E]{1,255}")


def _per_request(key: str, case: schemathesis.Case[Any]) -> str:
    """A generated key reused by a later call with another body would rightly be refused with
    422, which the positive-data check cannot know about: a valid key is made specific to the
    request, so the same request still replays and another one gets a key of its own."""
    request = json.dumps(
        [case.method, case.formatted_path, case.query, case.body], sort_keys=True, default=str
    )
    return f"{key[:200]}-{hashlib.sha256(request.encode()).hexdigest()[:16]}"


@pytest.fixture(scope="module")
def bound(settings: Settings) -> Iterator[LocalTokens]:
    assert settings.database_url is not None
    engine = create_async_engine(async_url(settings.database_url), poolclass=NullPool)
    APP.target = create_app(settings, engine=engine)
    yield LocalTokens(settings)
    APP.target = None


def test_call_sequences_conform_to_the_schema(bound: LocalTokens) -> None:
    answered: Counter[tuple[str, str, int]] = Counter()
    base = SCHEMA.as_state_machine()
    assert SCHEMA.statistic.transitions.selected > 10  # the links really chain operations

    class Workflow(base):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            # One user per scenario: quotas and Idempotency-Keys are per user.
            self.token = bound.mint(f"stateful-{uuid.uuid4()}")

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            case.body = obey_unstated_rules(case.body)
            generated = dict(case.headers) if case.headers else {}
            headers: dict[str, str] = {}
            # A well-formed bearer header gets this scenario's real token. A missing or
            # malformed one is negative data: it is sent as generated and must be refused.
            authorization = generated.get("Authorization")
            if isinstance(authorization, str) and BEARER.fullmatch(authorization):
                headers["Authorization"] = f"Bearer {self.token}"
            key = generated.get("Idempotency-Key")
            if isinstance(key, str) and VALID_KEY.fullmatch(key):
                headers["Idempotency-Key"] = _per_request(key, case)
            elif isinstance(key, str) and key.isascii():
                headers["Idempotency-Key"] = key  # negative data: sent as generated
            return {"headers": headers} if headers else {}

        def after_call(self, response: Any, case: schemathesis.Case[Any]) -> None:
            super().after_call(response, case)
            answered[(case.method, case.path, response.status_code // 100)] += 1

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
    # The sequences really worked on resources: created sessions, then used them through links.
    assert answered[("POST", "/api/sessions/", 2)] > 0, answered
    linked = [k for k, n in answered.items() if "{" in k[1] and k[2] == 2 and n]
    assert linked, answered
