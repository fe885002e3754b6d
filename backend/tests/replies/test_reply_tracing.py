"""Traces of a reply: the request's server span, and under it the call to the model (the
OpenAI SDK's HTTPX request) and the SQL that saved the exchange."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from app.main import create_app
from tests.support.fake_llm import FakeChatServer
from tests.support.replies import new_session
from tests.support.servers import serve_in_process
from tests.support.sse import collect

Auth = Callable[[str], dict[str, str]]


async def test_a_reply_traces_the_model_call_and_the_sql_under_its_request(
    make_settings: Callable[..., Any], llm: FakeChatServer, auth: Auth
) -> None:
    exporter = InMemorySpanExporter()
    settings = make_settings(
        llm_provider="openai",
        llm_base_url=llm.url,
        llm_api_key=SecretStr("sk-test-key"),
        llm_model="fake-model",
        llm_max_retries=0,
    )
    alice = auth("alice")
    app = create_app(settings, span_exporter=exporter)
    async with serve_in_process(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        sid = await new_session(http, alice)
        async with http.stream(
            "POST", f"/api/sessions/{sid}/replies", json={"content": "hi"}, headers=alice
        ) as response:
            received = await collect(response)
    assert received[-1].event == "done"
    spans = exporter.get_finished_spans()
    request = next(
        s
        for s in spans
        if s.kind == SpanKind.SERVER
        and (s.attributes or {}).get("http.route") == "/api/sessions/{session_id}/replies"
    )
    assert request.context is not None
    same_trace = [s for s in spans if s.context and s.context.trace_id == request.context.trace_id]
    model_calls = [
        s
        for s in same_trace
        if s.kind == SpanKind.CLIENT
        and "chat/completions" in str(dict(s.attributes or {}).values())
    ]
    assert model_calls, [
        (s.name, s.kind, dict(s.attributes or {})) for s in spans if s.kind == SpanKind.CLIENT
    ]
    sql = [s for s in same_trace if "postgresql" in str(dict(s.attributes or {}).values())]
    assert sql
