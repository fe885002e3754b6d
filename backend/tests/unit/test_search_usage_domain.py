"""Search, usage, limits and expiry rules on the in-memory fakes: no database, no HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.domain.dtos import SnippetPart
from app.domain.errors import InvalidInput, NotFound, QuotaExceeded
from app.domain.pagination import SearchCursor
from app.domain.search import TAG_OPEN_STANDIN, Markers
from app.domain.services.search import SearchService
from app.domain.services.sessions import SessionService
from app.domain.services.usage import (
    DailyLimit,
    UsageService,
    check_daily_limit,
    parse_moment,
    period_end,
)
from tests.unit.fakes import FakeUnitOfWork


def test_markers_split_a_snippet_into_marked_parts() -> None:
    m = Markers.fresh()
    marked = f"a {m.start}day{m.stop} {m.start}trip{m.stop} from 1{TAG_OPEN_STANDIN}2"
    assert m.split(marked) == [
        SnippetPart(text="a ", match=False),
        SnippetPart(text="day", match=True),
        SnippetPart(text=" ", match=False),
        SnippetPart(text="trip", match=True),
        SnippetPart(text=" from 1<2", match=False),
    ]


def test_other_markers_are_plain_text() -> None:
    ours, theirs = Markers.fresh(), Markers.fresh()
    assert ours != theirs
    text = f"{theirs.start}fake{theirs.stop} <b>x</b>"
    assert ours.split(text) == [SnippetPart(text=text, match=False)]


def test_search_cursors_round_trip_and_refuse_garbage() -> None:
    cursor = SearchCursor(607927, datetime(2026, 11, 27, 8, 0, 0, 123456, tzinfo=UTC), "m", 42)
    assert SearchCursor.decode(cursor.encode()) == cursor
    for token in ("", "1_2", "1_2_x_3", "a_1_m_1", "1_1_m_0"):
        with pytest.raises(InvalidInput):
            SearchCursor.decode(token)


@pytest.mark.parametrize("q", ["", "   ", "a\x00", "x" * 501])
async def test_blank_or_oversized_queries_are_refused(q: str) -> None:
    with pytest.raises(InvalidInput):
        await SearchService(FakeUnitOfWork()).search(1, q, limit=10)


async def test_search_pages_carry_a_cursor_when_full() -> None:
    uow = FakeUnitOfWork()
    session = await SessionService(uow).create(1, "s")
    for n in range(3):
        await uow.messages._insert_for_tests(session.id, f"pebble {n}")
    page = await SearchService(uow).search(1, "pebble", limit=2)
    assert len(page.items) == 2
    assert page.next_cursor is not None
    rest = await SearchService(uow).search(1, "pebble", limit=2, after=page.next_cursor)
    assert len(rest.items) == 1
    assert rest.next_cursor is None
    assert await SearchService(uow).search(2, "pebble", limit=2) == type(page)([], None)


def test_moments_parse_as_dates_or_times() -> None:
    assert parse_moment("2026-11-30", "to") == date(2026, 11, 30)
    assert parse_moment("2026-11-30T12:00:00Z", "to") == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert period_end(date(2026, 11, 30), datetime.now(UTC)) == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput) as bad:
        parse_moment("30/11/2026", "from")
    assert bad.value.loc == ("query", "from")


async def test_usage_periods_are_checked() -> None:
    service = UsageService(FakeUnitOfWork())
    with pytest.raises(InvalidInput):
        await service.report(1, date(2026, 2, 1), date(2026, 1, 1), "day")
    with pytest.raises(InvalidInput):
        await service.report(1, date(2024, 1, 1), date(2026, 1, 1), "day")
    report = await service.report(1, None, None, "model")
    assert report.end - report.start == timedelta(days=30)


async def test_the_daily_limit_is_checked_under_the_lock_in_a_transaction() -> None:
    uow = FakeUnitOfWork()
    await check_daily_limit(uow, 1, DailyLimit(None))  # no limit: no lock, no read
    assert not uow.usage.held
    session = await SessionService(uow).create(1, "s")
    await uow.messages._insert_for_tests(
        session.id, "r", role="assistant", model="m", tokens=9, created_at=datetime.now(UTC)
    )
    async with uow.atomic():
        await check_daily_limit(uow, 1, DailyLimit(10))
    assert uow.usage.held
    with pytest.raises(QuotaExceeded) as refused:
        async with uow.atomic():
            await check_daily_limit(uow, 1, DailyLimit(9))
    assert 0 < refused.value.retry_after_s <= 86_401


async def test_expired_sessions_are_missing_and_past_expiries_refused() -> None:
    uow = FakeUnitOfWork()
    service = SessionService(uow)
    with pytest.raises(InvalidInput):
        await service.create(1, "t", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(InvalidInput):
        await service.create(1, "t", expires_at=datetime(2999, 1, 1))  # no time zone
    session = await service.create(1, "t", expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert session.expires_at is not None
    kept = await service.update(1, session.id, expiry=None)
    assert kept.expires_at is None
    uow.store.sessions[session.id] = kept.model_copy(
        update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)}
    )
    with pytest.raises(NotFound):
        await service.get(1, session.id)
