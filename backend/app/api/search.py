"""`/api/search`: full-text search over the caller's messages and session titles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.api.dependencies.auth import CallerDep
from app.api.dependencies.pagination import next_link
from app.api.errors import problem_responses
from app.api.routing import StrictQueryRoute
from app.domain.dtos import SearchHitDTO
from app.domain.pagination import SEARCH_CURSOR_PATTERN, SearchCursor
from app.domain.rules import NOT_BLANK_PATTERN
from app.domain.search import QUERY_MAX_CHARS
from app.domain.services.search import SearchService

router = APIRouter(
    route_class=StrictQueryRoute, tags=["search"], responses=problem_responses(401, 422, 503)
)


@router.get("/api/search", summary="Search messages and titles")
async def search(
    request: Request,
    response: Response,
    caller: CallerDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=QUERY_MAX_CHARS,
            pattern=NOT_BLANK_PATTERN,
            description='Words to find, web-search style: `lisbon trip` (both), `"day trip"` '
            "(the phrase), `lisbon or porto` (either), `lisbon -porto` (not porto).",
            examples=["lisbon -porto"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=100, description="Hits per page, 1..100.")] = 20,
    after: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=SEARCH_CURSOR_PATTERN,
            description="Opaque cursor from the previous page's Link rel=next header.",
        ),
    ] = None,
) -> list[SearchHitDTO]:
    """The caller's messages and session titles matching `q` (PostgreSQL full-text search with
    the `SEARCH_CONFIG` text search configuration), best match first, then the newest. A
    title hit (`kind: "title"`) has no `message_id`; titles weigh more than message text.

    Each hit's `snippet` is an excerpt in parts with the matching words marked `match: true`:
    render each part as text (no HTML is ever interpreted). Temporary sessions past their
    expiry and their messages are not found. A blank `q` is a 422; one with nothing to look
    for (only signs, or only `-word`s) finds nothing. When the page is full, a
    `Link: <...>; rel="next"` header carries the cursor for the next page.
    """
    page = await SearchService(caller.uow, caller.services.settings.search_config).search(
        caller.user_id,
        q,
        limit=limit,
        after=SearchCursor.decode(after) if after is not None else None,
    )
    response.headers.update(next_link(request, page.next_cursor, limit))
    return page.items
