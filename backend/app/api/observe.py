"""Every request's id, access line and HTTP metrics, in one pure-ASGI middleware.

Pure ASGI (not BaseHTTPMiddleware, which buffers streaming responses): an event stream passes
through untouched, and its access line is written when it closes.

- `X-Request-ID`: a well-formed incoming id (1..128 of `A-Za-z0-9._-`) is kept so a proxy's id
  follows the request; anything else is replaced by a fresh one. It is returned on every
  response, set on every log record of the request and put in problem documents.
- The access line names the route template (not the raw path), the status, the duration and the
  internal user id; never the query string, headers or body, so no token or text is logged.
- Metrics are labelled by route template; requests no route matched share one label, so a scan
  of random URLs cannot blow up the number of series.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable

from prometheus_client.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import metrics
from app.core.logging import request_id_var
from app.domain.dtos import Principal

log = logging.getLogger("agent_stack.access")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
UNMATCHED = "unmatched"

#: Where the auth dependency leaves the verified caller for the access line.
PRINCIPAL_STATE = "principal"


#: Fresh ids: this process's random prefix and a counter. Unique across processes and restarts
#: without a system call per request (a uuid4 reads the kernel's entropy every time).
_PROCESS_PREFIX = secrets.token_hex(8)
_SEQUENCE = itertools.count(1)


def fresh_request_id() -> str:
    return f"{_PROCESS_PREFIX}{next(_SEQUENCE):016x}"


def request_id_from(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return fresh_request_id()


def _with_request_id(message: Message, request_id: str) -> bool:
    """Put the id on a response start (replacing any the route set); true for an event stream."""
    headers = [
        (name, value) for name, value in message.get("headers", ()) if name != b"x-request-id"
    ]
    headers.append((b"x-request-id", request_id.encode("latin-1")))
    message["headers"] = headers
    return any(
        name == b"content-type" and value.startswith(b"text/event-stream")
        for name, value in headers
    )


def route_template(scope: Scope) -> str:
    path: object = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class ObserveRequests:
    def __init__(self, app: ASGIApp, *, user_id_of: Callable[[Principal], int | None]) -> None:
        self.app = app
        self._user_id_of = user_id_of
        # Metric children by label values: a labels() lookup takes a lock and builds a key on
        # every call. Bounded: routes are templates, and unmatched URLs share one label.
        self._counted: dict[tuple[str, str, str], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        token = request_id_var.set(request_id)
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500
        streaming = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = _with_request_id(message, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, state, status, streaming, time.perf_counter() - started)
            request_id_var.reset(token)

    def _record(
        self, scope: Scope, state: dict[str, object], status: int, streaming: bool, seconds: float
    ) -> None:
        method = scope["method"]
        route = route_template(scope)
        key = (method, route, metrics.status_class(status))
        counted = self._counted.get(key)
        if counted is None:
            counted = self._counted[key] = metrics.HTTP_REQUESTS.labels(*key)
        counted.inc()
        if not streaming:
            timed = self._timed.get(key[:2])
            if timed is None:
                timed = self._timed[key[:2]] = metrics.HTTP_LATENCY.labels(method, route)
            timed.observe(seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        principal = state.get(PRINCIPAL_STATE)
        user_id = self._user_id_of(principal) if isinstance(principal, Principal) else None
        duration_ms = round(seconds * 1000, 1)
        log.info(
            "%s %s %d %.1f ms",
            method,
            route,
            status,
            duration_ms,
            extra={
                "event": "http.request",
                "method": method,
                "route": route,
                "path": scope["path"],
                "status": status,
                "duration_ms": duration_ms,
                "user_id": user_id,
                "stream": streaming,
            },
        )
