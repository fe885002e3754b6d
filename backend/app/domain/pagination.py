"""Keyset cursors: an opaque, URL-safe token holding the sort key of the last row of a page."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from app.domain.errors import InvalidInput

T = TypeVar("T")

BIGINT_MAX = 9_223_372_036_854_775_807


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the row with this `(at, id)`; `at` is the list's timestamp sort key."""

    at: datetime
    id: int

    def encode(self) -> str:
        raw = json.dumps([self.at.isoformat(), self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            at_text, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
            at = datetime.fromisoformat(at_text)
        except (ValueError, TypeError, binascii.Error, UnicodeError) as exc:
            raise InvalidInput("cursor is malformed; use the value from a Link header") from exc
        if at.tzinfo is None or not isinstance(row_id, int) or not 0 < row_id <= BIGINT_MAX:
            raise InvalidInput("cursor is malformed; use the value from a Link header")
        return cls(at=at, id=row_id)


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    skip: int = 0
    after: Cursor | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: Cursor | None
