"""OpenTelemetry traces, only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

Spans come from the official instrumentations: FastAPI/ASGI for each request (the server span),
asyncpg for each statement (child spans: which SQL a request ran and how long it took; the unit
of work runs statements on the driver, below SQLAlchemy's execution layer), and HTTPX/HTTPX2 for
the calls the OpenAI SDK makes to the model. The instrumentations are pinned to one release
(the asyncpg one's newest pins that release's semantic conventions). They are exported over
OTLP/HTTP in batches. Unset, none of this is even imported: tracing costs nothing when it is off.
"""

from __future__ import annotations

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
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
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
        AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
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
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.httpx import (
            HTTPX2ClientInstrumentor,
            HTTPXClientInstrumentor,
        )

        AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
        HTTPX2ClientInstrumentor().uninstrument()
        HTTPXClientInstrumentor().uninstrument()
        if self._app is not None:
            FastAPIInstrumentor.uninstrument_app(self._app)
        self._provider.shutdown()
