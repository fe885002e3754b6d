"""Keyset cursors: an opaque, URL-safe token holding the sort key of the last row of a page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from app.domain.errors import InvalidInput

T = TypeVar("T")

BIGINT_MAX = 9_223_372_036_854_775_807


#: Every string matching this decodes to a valid cursor, so the OpenAPI schema can say exactly
#: what is accepted: at most 16 digits of microseconds (years 1653..2286) and 18 of id (< BIGINT).
CURSOR_PATTERN = r"^-?[0-9]{1,16}_[1-9][0-9]{0,17}$"
#: The session list's cursors: a leading `p` marks a pinned row (pinned sessions come first).
SESSION_CURSOR_PATTERN = r"^p?-?[0-9]{1,16}_[1-9][0-9]{0,17}$"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the row with this `(at, id)`; `at` is the list's timestamp sort key, and
    `pinned` the session list's first one.

    Encoded as `[p]<microseconds since the epoch>_<id>`: URL-safe, exact, and fully described
    by `SESSION_CURSOR_PATTERN` (`CURSOR_PATTERN` for lists without pins)."""

    at: datetime
    id: int
    pinned: bool = False

    def encode(self) -> str:
        return f"{'p' if self.pinned else ''}{(self.at - _EPOCH) // _MICROSECOND}_{self.id}"

    @classmethod
    def decode(cls, token: str) -> Cursor:
        if re.fullmatch(SESSION_CURSOR_PATTERN, token) is None:
            raise InvalidInput("cursor is malformed; use the value from a Link header")
        pinned = token.startswith("p")
        micros, row_id = token.removeprefix("p").split("_")
        return cls(at=_EPOCH + int(micros) * _MICROSECOND, id=int(row_id), pinned=pinned)


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    skip: int = 0
    after: Cursor | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: Cursor | None


#: Every string matching this decodes to a valid search cursor: the score (a relevance rank in
#: millionths), the hit's time in microseconds, its kind (`m` message, `s` session title) and id.
SEARCH_CURSOR_PATTERN = r"^[0-9]{1,12}_-?[0-9]{1,16}_[ms]_[1-9][0-9]{0,17}$"


@dataclass(frozen=True, slots=True)
class SearchCursor:
    """Position after a search hit: hits are ordered by `(score, at, kind, id)` descending, a
    total order (a message and a session may share an id, never a kind)."""

    score: int
    at: datetime
    kind: str
    id: int

    def encode(self) -> str:
        return f"{self.score}_{(self.at - _EPOCH) // _MICROSECOND}_{self.kind}_{self.id}"

    @classmethod
    def decode(cls, token: str) -> SearchCursor:
        if re.fullmatch(SEARCH_CURSOR_PATTERN, token) is None:
            raise InvalidInput("cursor is malformed; use the value from a Link header")
        score, micros, kind, row_id = token.split("_")
        return cls(int(score), _EPOCH + int(micros) * _MICROSECOND, kind, int(row_id))


@dataclass(frozen=True, slots=True)
class SearchPage(Generic[T]):
    items: list[T]
    next_cursor: SearchCursor | None
