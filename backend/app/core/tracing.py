"""OpenTelemetry traces, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

Spans come from the official instrumentations: FastAPI/ASGI for each request (the server span)
and HTTPX/HTTPX2 for the calls the OpenAI SDK makes to the model. Statements are run by the unit
of work on the asyncpg driver, below SQLAlchemy's execution layer that its instrumentation hooks
(and the official asyncpg instrumentation pins other OpenTelemetry versions than these), so the
unit of work opens their spans itself, with the database semantic conventions:
`statement_span`. They are exported over OTLP/HTTP in
batches. Unset, none of this is even imported: tracing costs nothing when it is off.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

#: Probes and scrapes would be most of the spans and tell nothing.
EXCLUDED_URLS = "/health,/health/live,/metrics"


class Tracing:
    """The tracer provider and the instrumentations of one app; `shutdown` flushes the spans
    still buffered and removes the instrumentation."""

    def __init__(self, provider: TracerProvider) -> None:
        self._app: FastAPI | None = None
        self._provider = provider
        self._tracer = provider.get_tracer("agent_stack.persistence")

    def statement_span(self, sql: str) -> AbstractContextManager[object]:
        """A client span for one statement: its operation as the name, the SQL as it was sent
        (parameters are never in it), under whichever span is current (the request's)."""
        from opentelemetry.trace import SpanKind

        operation = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "SQL"
        return self._tracer.start_as_current_span(
            operation,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "postgresql",
                "db.system": "postgresql",
                "db.operation.name": operation,
                "db.query.text": sql,
            },
        )

    @classmethod
    def start(
        cls, engine: AsyncEngine, settings: Settings, exporter: SpanExporter | None = None
    ) -> Tracing | None:
        """Instrument `engine` and HTTPX, exporting to the configured collector (or to
        `exporter`, which tests pass); None when tracing is off. Call it before any HTTPX
        client is made (the model provider's): clients made earlier are not traced."""
        endpoint = settings.otel_exporter_otlp_endpoint
        if endpoint is None and exporter is None:
            return None
        from opentelemetry.instrumentation.httpx import (
            HTTPX2ClientInstrumentor,
            HTTPXClientInstrumentor,
        )
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(
            resource=Resource.create(
                {SERVICE_NAME: settings.otel_service_name, "host.name": settings.node_name}
            )
        )
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            assert endpoint is not None
            url = endpoint.rstrip("/")
            exporter = OTLPSpanExporter(
                endpoint=url if url.endswith("/v1/traces") else f"{url}/v1/traces"
            )
            provider.add_span_processor(BatchSpanProcessor(exporter))
        else:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        # The OpenAI SDK speaks through httpx2, the OIDC key fetches through httpx.
        HTTPX2ClientInstrumentor().instrument(tracer_provider=provider)
        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
        return cls(provider)

    def instrument_app(self, app: FastAPI) -> None:
        """Server spans for `app`'s requests (before it serves its first one)."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=self._provider, excluded_urls=EXCLUDED_URLS
        )
        self._app = app

    def shutdown(self) -> None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.httpx import (
            HTTPX2ClientInstrumentor,
            HTTPXClientInstrumentor,
        )

        HTTPX2ClientInstrumentor().uninstrument()
        HTTPXClientInstrumentor().uninstrument()
        if self._app is not None:
            FastAPIInstrumentor.uninstrument_app(self._app)
        self._provider.shutdown()
