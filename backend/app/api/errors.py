"""One place that turns errors into RFC 9457 problem documents (`application/problem+json`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.routing import LITERAL_SEGMENTS
from app.core.logging import request_id_var
from app.core.security import InvalidToken
from app.domain.errors import (
    AccountGone,
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    TooLarge,
    Unavailable,
)
from app.persistence.errors import INFRASTRUCTURE_ERRORS, is_unavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 2

_STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    QuotaExceeded: 429,
    TooLarge: 413,
    Unavailable: 503,
}


#: RFC 9457's members, plus the ones this API adds to every document: an extension never
#: overwrites them (a `status` extension would turn the integer status into a string).
RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "errors"})
REQUEST_ID_MEMBER = "request_id"


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(default="about:blank", description="A URI naming the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, for a human.")
    request_id: str | None = Field(
        default=None, description="The request's `X-Request-ID`, to quote when reporting it."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field validation errors (422 only)."
    )


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A problem document. Extensions may add members but never replace the standard ones: a
    reserved name among them is dropped (and logged as the programming error it is), so the
    client still gets the real status rather than a 500."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    for name, value in (extensions or {}).items():
        if name in RESERVED_MEMBERS or name == REQUEST_ID_MEMBER:
            log.error("problem extension %r collides with a reserved member; dropped", name)
        else:
            body[name] = value
    request_id = request_id_var.get()
    if request_id is not None:
        body[REQUEST_ID_MEMBER] = request_id
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def unavailable(detail: str = "the database is unreachable; retry shortly") -> JSONResponse:
    return problem(503, "Service unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_S)})


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem answers for a route."""
    described = {
        400: "The body could not be parsed as JSON.",
        415: "The body is not declared as JSON: send `Content-Type: application/json`.",
        401: "Missing, malformed or expired bearer token.",
        404: "No such resource for this caller (another user's rows look missing, too).",
        409: "Conflicts with the current state.",
        413: "Request body larger than the configured limit.",
        422: "The request broke a validation rule; `errors` lists each field.",
        429: "The caller's allowance is used up; it is renewed after `Retry-After` seconds.",
        503: "The database or the identity provider is unreachable; retry after `Retry-After` "
        "seconds.",
    }
    return {
        status: {
            "model": Problem,
            "description": described[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def _validation_detail(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid value')}{more}"


def _allowed_methods(request: Request) -> str:
    """Every method routed for this path. (With included routers the framework's 405 names only
    the first matching route's methods; RFC 9110 wants them all in `Allow`.)"""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        found = regex.match(path) if regex is not None else None
        # As routing has it: a path parameter never stands for a literal segment.
        literal = found is not None and LITERAL_SEGMENTS.intersection(found.groupdict().values())
        if found and route.methods and not literal:
            methods |= route.methods
    return ", ".join(sorted(methods))


def _domain_problem(exc: DomainError) -> JSONResponse:
    status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    if isinstance(exc, QuotaExceeded):
        headers = {"Retry-After": str(exc.retry_after_s)}
    errors = None
    if isinstance(exc, InvalidInput) and exc.loc is not None:
        errors = [{"loc": list(exc.loc), "msg": exc.detail, "type": "value_error"}]
    return problem(
        status, exc.title, exc.detail, headers=headers, errors=errors, extensions=exc.extensions
    )


def install(app: FastAPI, *, forget_user: Callable[[int], None]) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return _domain_problem(exc)

    @app.exception_handler(AccountGone)
    async def _account_gone(_: Request, exc: AccountGone) -> JSONResponse:
        # Erased since its token was first seen (maybe by another process): the next request
        # provisions a new, empty account.
        forget_user(exc.user_id)
        return _domain_problem(exc)

    @app.exception_handler(InvalidToken)
    async def _token(_: Request, exc: InvalidToken) -> JSONResponse:
        return problem(
            401,
            "Unauthorized",
            f"invalid bearer token: {exc}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {k: v for k, v in err.items() if k in {"loc", "msg", "type"}} for err in exc.errors()
        ]
        errors = jsonable_encoder(errors)
        malformed = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if malformed is not None:
            # Not JSON at all: the request cannot be read, which is a 400 (as documented),
            # not a rule broken by a readable request (422).
            reason = (malformed.get("ctx") or {}).get("error", "invalid JSON")
            return problem(400, "Bad request", f"the body is not valid JSON: {reason}")
        return problem(422, "Unprocessable content", _validation_detail(errors), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {
            400: "Bad request",
            401: "Unauthorized",
            404: "Not found",
            405: "Method not allowed",
            413: "Content too large",
            415: "Unsupported media type",
        }.get(exc.status_code, "Error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem(exc.status_code, title, str(exc.detail), headers=headers or None)

    async def _infrastructure(_: Request, exc: Exception) -> JSONResponse:
        if is_unavailable(exc):
            log.warning("database unavailable: %r", exc)
            return unavailable()
        log.error("unexpected infrastructure error", exc_info=exc)
        return problem(500, "Internal server error", "an unexpected error occurred")

    # Registered per class (not for `Exception`) so they are answered here, not re-raised by
    # Starlette's server-error middleware.
    for cls in INFRASTRUCTURE_ERRORS:
        app.add_exception_handler(cls, _infrastructure)
