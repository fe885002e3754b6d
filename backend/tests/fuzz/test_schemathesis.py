"""Schemathesis against the app's own OpenAPI schema, authenticated, every default check on.

`FUZZ_MAX_EXAMPLES` bounds the examples per operation and mode: small in `make test`, large in
`make fuzz`. Both positive (schema-valid) and negative (schema-violating) data are generated;
no check is switched off.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, date, datetime, timedelta
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
    collection time (schemathesis' fixture-based loader does not work with pytest 9). Built
    in the environment of the app that answers (`test`): a development app would also list
    `POST /auth/dev-token`, which only development servers have."""
    app = create_app(
        Settings(_env_file=None, environment="test", database_url="postgresql://unused@127.0.0.1/x")
    )
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


def _json_text(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        json.loads(value)
    except ValueError:
        return json.dumps(value)
    return value


def _unique(items: list[Any], get: Any, put: Any) -> None:
    seen: set[str] = set()
    for index, item in enumerate(items):
        value = get(item)
        if not isinstance(value, str):
            continue
        if value in seen:
            value = f"{value[:48]}{index}"
            put(item, value)
        seen.add(value)


def _valid_id(value: object) -> bool:
    """An id the schema takes: an integer (`2.0` counts) in range."""
    integral = isinstance(value, int | float) and not isinstance(value, bool) and value % 1 == 0
    return integral and 1 <= value <= 2**53 - 1  # type: ignore[operator]


def _call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}


def _obey_import_rules(body: dict[str, Any]) -> None:
    """An import's tree: every tool result under an assistant message calling it (one is
    added above it when none is), and, in an exported document, ids unique, each message the
    child of the one before, the current message one of them."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    calls: list[str] = []
    exported = "format" in body
    for message in list(messages):
        if not isinstance(message, dict):
            continue
        obey_unstated_rules(message)
        call_id = message.get("tool_call_id")
        if message.get("role") == "tool" and isinstance(call_id, str) and call_id not in calls:
            caller: dict[str, Any] = {"role": "assistant", "tool_calls": [_call(call_id)]}
            if exported:
                caller["id"] = 1
            messages.insert(messages.index(message), caller)
            calls.append(call_id)
        if message.get("role") == "assistant" and isinstance(message.get("tool_calls"), list):
            calls += [c["id"] for c in message["tool_calls"] if isinstance(c, dict) and "id" in c]
    if not exported:
        return
    for index, message in enumerate(messages):
        if isinstance(message, dict) and _valid_id(message.get("id")):
            message["id"] = index + 1
            if (
                "parent_id" not in message
                or message["parent_id"] is None
                or _valid_id(message["parent_id"])
            ):
                message["parent_id"] = index if index else None
    session = body.get("session")
    if isinstance(session, dict) and _valid_id(session.get("current_message_id")):
        session["current_message_id"] = len(messages) if messages else None


def obey_unstated_rules(body: Any) -> Any:
    """Rules JSON Schema cannot state, applied to every generated body (the API checks them,
    and the schema says them in words): a call's `arguments` hold a JSON document; call ids
    and tool names are unique in their list; a named `tool_choice` names one of the `tools`;
    an import's tree holds together (`_obey_import_rules`). Only values of the right types are
    touched, so negative data stays negative. (Applied in the test rather than as a
    schemathesis hook: hooks miss the coverage phase's cases.)"""
    if not isinstance(body, dict):
        return body
    _obey_import_rules(body)
    calls = body.get("tool_calls")
    if isinstance(calls, list):
        calls = [c for c in calls if isinstance(c, dict)]
        for call in calls:
            function = call.get("function")
            if isinstance(function, dict) and "arguments" in function:
                function["arguments"] = _json_text(function["arguments"])
        _unique(calls, lambda c: c.get("id"), lambda c, v: c.__setitem__("id", v))
    tools = body.get("tools")
    if isinstance(tools, list):
        functions = [
            t["function"]
            for t in tools
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ]
        _unique(functions, lambda f: f.get("name"), lambda f, v: f.__setitem__("name", v))
        choice = body.get("tool_choice")
        named = choice.get("function") if isinstance(choice, dict) else None
        names = [f["name"] for f in functions if isinstance(f.get("name"), str)]
        if isinstance(named, dict) and names and named.get("name") not in names:
            named["name"] = names[0]
    expires = body.get("expires_at")
    if isinstance(expires, str) and _is_datetime(expires):
        # Temporary chats end in the future (a rule of time, not of form).
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return body


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def obey_unstated_query_rules(query: Any) -> Any:
    """The usage report's period: `from` before `to`, at most 366 days apart (a rule between
    two parameters). Well-formed values only; anything else stays as generated."""
    if not isinstance(query, dict):
        return query
    given = [query[name] for name in ("from", "to") if query.get(name) is not None]
    if given and all(isinstance(m, str) and _is_moment(m) for m in given):
        query["from"], query["to"] = "2026-02-01", "2026-03-01"
    return query


def _is_moment(value: str) -> bool:
    try:
        (date.fromisoformat if len(value) == 10 else datetime.fromisoformat)(value)
    except ValueError:
        return False
    return True


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
    case.body = obey_unstated_rules(case.body)
    case.query = obey_unstated_query_rules(case.query)
    case.call_and_validate(headers={"Authorization": f"Bearer {tokens.mint(subject)}"})
