"""Full-text search over the caller's conversations."""

from __future__ import annotations

from app.domain.dtos import SearchHitDTO
from app.domain.errors import InvalidInput
from app.domain.pagination import SearchCursor, SearchPage
from app.domain.ports import SearchRow, UnitOfWork
from app.domain.search import QUERY_MAX_CHARS, Markers


def _hit(row: SearchRow, markers: Markers) -> SearchHitDTO:
    message = row.kind == "m"
    return SearchHitDTO(
        kind="message" if message else "title",
        session_id=row.session_id,
        session_title=row.session_title,
        message_id=row.id if message else None,
        role=row.role if message else None,
        created_at=row.at,
        snippet=markers.split(row.marked),
    )


class SearchService:
    def __init__(self, uow: UnitOfWork, config: str = "simple") -> None:
        self._uow = uow
        self._config = config

    async def search(
        self, user_id: int, query: str, *, limit: int, after: SearchCursor | None = None
    ) -> SearchPage[SearchHitDTO]:
        """The caller's matching messages and session titles, best first, in one statement.
        A blank query is refused; one that reduces to nothing (signs, stop words, negations
        alone) finds nothing."""
        if not query.strip() or "\x00" in query:
            raise InvalidInput("q: give words to search for", loc=("query", "q"))
        if len(query) > QUERY_MAX_CHARS:
            raise InvalidInput(f"q: at most {QUERY_MAX_CHARS} characters", loc=("query", "q"))
        markers = Markers.fresh()
        rows = await self._uow.search.search(
            user_id, query, limit=limit, after=after, config=self._config, markers=markers
        )
        last = rows[-1] if len(rows) == limit else None
        cursor = SearchCursor(last.score, last.at, last.kind, last.id) if last else None
        return SearchPage([_hit(row, markers) for row in rows], cursor)
