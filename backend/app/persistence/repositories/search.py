"""Full-text search over one user's messages and session titles, in one statement.

The query is parsed by `websearch_to_tsquery` (quoted phrases, `or`, `-word`; it never raises
on odd input). A query with nothing to look for — only stop words or signs, or only negations
(`querytree` is then empty or `T`) — finds nothing rather than everything. Hits come from the
GIN indexes on `(user_id, search_vector)`: only the caller's index entries are read. Expired
sessions (and their messages) are left out. Snippets are made for the page's rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.domain.pagination import SearchCursor
from app.domain.ports import SearchRow
from app.domain.search import TAG_OPEN_STANDIN, Markers
from app.persistence.repositories.base import Repository, Sql
from app.persistence.repositories.sessions import live

#: Relevance in millionths, an integer: exact in a cursor. Titles are weighted `A` (1.0) and
#: messages `D` (0.1), so a title match ranks above a message with the same words.
_SCORE = "CAST(round(ts_rank({v}, q.query) * 1000000) AS bigint)"
_ORDER = "score DESC, at DESC, kind DESC, id DESC"


def _search_sql(after: bool) -> Sql:
    cursor = "WHERE (score, at, kind, id) < (:after_score, :after_at, :after_kind, :after_id)"
    return Sql(
        f"""
        WITH q AS (
            SELECT query FROM (
                SELECT websearch_to_tsquery(CAST(:config AS regconfig), :q) AS query
            ) AS parsed
            WHERE querytree(query) NOT IN ('', 'T')
        ), expired AS (
            SELECT coalesce(array_agg(id), '{{}}') AS ids FROM sessions
            WHERE user_id = :user_id AND expires_at <= now()
        ), hits AS (
            SELECT 'm' AS kind, m.id, m.session_id, m.created_at AS at,
                   {_SCORE.format(v="m.search_vector")} AS score
            FROM q, expired, messages AS m
            WHERE m.user_id = :user_id AND m.search_vector @@ q.query
              AND m.session_id <> ALL (expired.ids)
            UNION ALL
            SELECT 's', s.id, s.id, s.updated_at, {_SCORE.format(v="s.search_vector")}
            FROM q, sessions AS s
            WHERE s.user_id = :user_id AND s.search_vector @@ q.query AND {live("s")}
        ), page AS (
            SELECT * FROM hits {cursor if after else ""}
            ORDER BY {_ORDER} LIMIT :limit
        )
        SELECT page.kind, page.id, page.score, page.at, page.session_id,
               s.title AS session_title, m.role,
               ts_headline(CAST(:config AS regconfig),
                           replace(CASE page.kind WHEN 'm' THEN m.content ELSE s.title END,
                                   '<', :tag_open),
                           q.query,
                           CASE page.kind WHEN 'm' THEN :options ELSE :title_options END)
                   AS marked
        FROM page CROSS JOIN q
        JOIN sessions AS s ON s.id = page.session_id
        LEFT JOIN messages AS m ON page.kind = 'm' AND m.id = page.id
        ORDER BY {_ORDER}
        """
    )


_SEARCH = {False: _search_sql(False), True: _search_sql(True)}


def _options(markers: Markers, *, whole: bool) -> str:
    """`ts_headline` options: our markers; an excerpt of 15..35 words around the best match,
    or the whole text (a title)."""
    marks = f"StartSel={markers.start}, StopSel={markers.stop}"
    return f"{marks}, HighlightAll=true" if whole else f"{marks}, MinWords=15, MaxWords=35"


class SqlSearchRepository(Repository):
    async def search(
        self,
        user_id: int,
        query: str,
        *,
        limit: int,
        after: SearchCursor | None,
        config: str,
        markers: Markers,
    ) -> Sequence[SearchRow]:
        params: dict[str, Any] = {
            "user_id": user_id,
            "q": query,
            "config": config,
            "limit": limit,
            "options": _options(markers, whole=False),
            "title_options": _options(markers, whole=True),
            "tag_open": TAG_OPEN_STANDIN,
        }
        if after is not None:
            params |= {
                "after_score": after.score,
                "after_at": after.at,
                "after_kind": after.kind,
                "after_id": after.id,
            }
        rows = await self._db.read(_SEARCH[after is not None], params)
        return [
            SearchRow(
                kind=row["kind"],
                id=row["id"],
                score=row["score"],
                at=row["at"],
                session_id=row["session_id"],
                session_title=row["session_title"],
                role=row["role"],
                marked=row["marked"],
            )
            for row in rows
        ]
