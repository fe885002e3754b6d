"""Path ids and list pages: `limit`, `skip`, the `after` cursor, and the `Link` header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Path, Query, Request
from pydantic import BeforeValidator

from app.domain.pagination import (
    BIGINT_MAX,
    CURSOR_PATTERN,
    SESSION_CURSOR_PATTERN,
    Cursor,
    PageRequest,
    SearchCursor,
)

MAX_SKIP = 10_000


def decimal_digits(value: object) -> object:
    """Ids are written in decimal digits only. Left to itself, validation would read `1.0`,
    `+1`, ` 1` or `1_0` as an id too, and `DELETE /api/sessions/1.0` would delete session 1."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("an id is written in decimal digits only")
    return value


Digits = BeforeValidator(decimal_digits)

ResourceId = Annotated[
    int, Path(ge=1, le=BIGINT_MAX, description="A positive BIGINT id, in decimal digits."), Digits
]


def page_request(
    default_limit: int, cursor_pattern: str = CURSOR_PATTERN
) -> Callable[..., Awaitable[PageRequest]]:
    """A dependency reading `limit`, `skip` and `after` with this resource's default limit."""

    async def dependency(
        limit: Annotated[
            int, Query(ge=1, le=100, description="Page size, 1..100.")
        ] = default_limit,
        skip: Annotated[
            int,
            Query(
                ge=0,
                le=MAX_SKIP,
                description="Rows to skip (kept for compatibility; prefer `after`).",
            ),
        ] = 0,
        # A default rather than `Annotated`: annotations are strings here (PEP 563), which
        # could not see this function's `cursor_pattern`.
        after: str | None = Query(
            None,
            max_length=40,
            pattern=cursor_pattern,
            description="Opaque cursor from the previous page's Link rel=next header.",
        ),
    ) -> PageRequest:
        return PageRequest(
            limit=limit, skip=skip, after=Cursor.decode(after) if after is not None else None
        )

    return dependency


def next_link(request: Request, cursor: Cursor | SearchCursor | None, limit: int) -> dict[str, str]:
    """An RFC 8288 `Link` header for the next page, or no header on the last page."""
    if cursor is None:
        return {}
    params = [
        (k, v) for k, v in request.query_params.multi_items() if k not in {"after", "skip", "limit"}
    ]  # repeated parameters (metadata filters) kept, each of them
    params += [("after", cursor.encode()), ("limit", str(limit))]
    # The request's URL with a new query, joined as text: parsing the URL back into parts to
    # replace its query cost more than the rest of building the page's links.
    base = str(request.url).partition("?")[0]
    return {"Link": f'<{base}?{urlencode(params)}>; rel="next"'}


def before_link(request: Request, before: int | None) -> dict[str, str]:
    """The `Link` to the next page of a thread (towards the root), or no header at its root."""
    if before is None:
        return {}
    url = request.url.include_query_params(before=str(before))
    return {"Link": f'<{url}>; rel="next"'}


SessionPage = Annotated[PageRequest, Depends(page_request(50, SESSION_CURSOR_PATTERN))]
MessagePage = Annotated[PageRequest, Depends(page_request(100))]
