from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.errors import InvalidInput
from app.domain.pagination import Cursor
from app.domain.rules import normalize_title, validate_content


def test_cursor_round_trips() -> None:
    cursor = Cursor(datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC), 42)
    assert Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize(
    "token", ["", "x", "bm90IGpzb24", "WzEsMl0", "WyIyMDI2LTAxLTAxIiwxXQ", "WyJ4IiwxXQ"]
)
def test_malformed_cursors_are_invalid_input(token: str) -> None:
    with pytest.raises(InvalidInput):
        Cursor.decode(token)


def test_title_rules() -> None:
    assert normalize_title("\t a b \n") == "a b"
    assert normalize_title(" " + "x" * 500 + " ") == "x" * 500
    with pytest.raises(InvalidInput, match="at most 500"):
        normalize_title("x" * 501)


def test_content_is_kept_verbatim() -> None:
    assert validate_content("  spaced  ") == "  spaced  "
