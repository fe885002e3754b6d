"""Tracing: off means not even imported; on, a request is a server span with SQL spans."""

from __future__ import annotations

import subprocess
import sys

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.core.security import LocalTokens
from app.core.settings import Settings
from app.main import create_app

NOT_IMPORTED = """
import sys
from app.core.settings import Settings
from app.main import create_app
app = create_app(Settings(_env_file=None, database_url="postgresql://u@127.0.0.1:1/x"))
app.openapi()
# FastAPI itself imports the OpenTelemetry *API* (its no-op default); what tracing brings, the
# SDK, the exporter and the instrumentations, must stay out.
parts = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation")
loaded = sorted(m for m in sys.modules if m.startswith(parts))
print(loaded)
assert not loaded, loaded
"""


def test_without_an_endpoint_no_tracing_module_is_imported() -> None:
    env = {"PATH": "/usr/bin:/bin", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    result = subprocess.run(
        [sys.executable, "-c", NOT_IMPORTED], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


async def test_a_request_is_a_server_span_with_child_sql_spans(settings: Settings) -> None:
    exporter = InMemorySpanExporter()
    app = create_app(settings, span_exporter=exporter)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/health/live")
            token = LocalTokens(settings).mint("tracer")
            listed = await client.get(
                "/api/sessions/", headers={"Authorization": f"Bearer {token}"}
            )
    assert ready.status_code == 200
    assert listed.status_code == 200
    spans = exporter.get_finished_spans()
    server = [
        s
        for s in spans
        if s.kind == SpanKind.SERVER
        and s.attributes
        and s.attributes.get("http.route") == "/api/sessions/"
    ]
    assert len(server) == 1, [(s.name, s.kind, dict(s.attributes or {})) for s in spans]
    root = server[0]
    assert root.context is not None
    sql = [
        s
        for s in spans
        if s.kind == SpanKind.CLIENT
        and s.attributes
        and "postgresql" in (s.attributes.get("db.system"), s.attributes.get("db.system.name"))
        and s.context is not None
        and s.context.trace_id == root.context.trace_id
    ]
    assert sql, [(s.name, dict(s.attributes or {})) for s in spans]
    assert all(s.parent is not None for s in sql)
    # Probes are not traced: they would be most of the spans.
    assert not [
        s for s in spans if s.attributes and s.attributes.get("http.route") == "/health/live"
    ]
