"""Pure-ASGI middleware (no BaseHTTPMiddleware: it would buffer streaming responses)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import problem


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None


class CrossOrigin:
    """Starlette's CORS middleware, for the requests a browser sends cross-origin.

    A request without an `Origin` header (a server, curl, a same-origin GET) gets no CORS
    headers from it anyway; it only adds `Vary: Origin`. Such requests skip it and get that one
    header here, without parsing the request's and the response's headers into objects.
    """

    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _header(scope, b"origin") is not None:
            await self.cors(scope, receive, send)
            return

        async def vary_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"vary", b"Origin")]
            await send(message)

        await self.app(scope, receive, vary_origin)


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies over the limit with a 413 problem document.

    A declared Content-Length over the limit is refused before auth or parsing; a chunked body is
    counted as it is read (only then are receive and send wrapped). FastAPI's own
    `max_body_size` answers in text/plain, hence this.
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, per_path: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        #: Paths with a limit of their own (an import carries a whole conversation).
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.max_body_bytes)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await self._reject(scope, receive, send, limit)
                return
            # The server holds the body to its declared length: nothing to count, and no
            # wrapper on the response's way out (a reply's stream sends thousands of messages).
            await self.app(scope, receive, send)
            return
        if _header(scope, b"transfer-encoding") is None:  # no body at all
            await self.app(scope, receive, send)
            return

        received = 0
        too_large = rejected = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may turn our exception into its own error response (FastAPI answers
            # 400 for a body it could not read): once over the limit, the answer is our 413.
            nonlocal rejected
            if not too_large:
                await send(message)
            elif not rejected:
                rejected = True
                await self._reject(scope, receive, send, limit)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not rejected:
                rejected = True
                await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(
            413,
            "Content too large",
            f"request body exceeds the limit of {limit} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
