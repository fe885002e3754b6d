"""Domain rules with in-memory fakes: no database, no HTTP."""

from __future__ import annotations

import pytest

from app.domain.dtos import Principal
from app.domain.errors import AccountGone, InvalidInput, NotFound
from app.domain.pagination import Cursor, PageRequest
from app.domain.services.messages import MessageService
from app.domain.services.sessions import SessionService
from app.domain.services.users import KnownUsers, UserService
from tests.unit.fakes import FakeUnitOfWork


async def test_titles_are_trimmed_and_one_write_is_made() -> None:
    uow = FakeUnitOfWork()
    dto = await SessionService(uow).create(1, "  Lisbon \n")
    assert dto.title == "Lisbon"
    assert dto.message_count == 0
    assert (uow.loose_writes, uow.transactions) == (1, 0)


@pytest.mark.parametrize("title", ["", "  ", "x" * 501, "a\x00"])
async def test_bad_titles_are_refused_without_a_write(title: str) -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(InvalidInput):
        await SessionService(uow).create(1, title)
    assert (uow.loose_writes, uow.transactions) == (0, 0)
    assert uow.store.sessions == {}


async def test_other_users_session_is_not_found_like_a_missing_one() -> None:
    uow = FakeUnitOfWork()
    service = SessionService(uow)
    mine = await service.create(1, "mine")
    with pytest.raises(NotFound) as other:
        await service.get(2, mine.id)
    with pytest.raises(NotFound) as missing:
        await service.get(2, mine.id + 1)
    assert str(other.value).replace(str(mine.id), "N") == str(missing.value).replace(
        str(mine.id + 1), "N"
    )
    for call in (service.rename(2, mine.id, "x"), service.delete(2, mine.id)):
        with pytest.raises(NotFound):
            await call
    assert (await service.get(1, mine.id)).title == "mine"


async def test_a_message_counts_and_moves_its_session_up_in_one_write() -> None:
    uow = FakeUnitOfWork()
    sessions, messages = SessionService(uow), MessageService(uow)
    old = await sessions.create(1, "old")
    await sessions.create(1, "new")
    writes = uow.loose_writes
    message = await messages.add(1, old.id, "user", "hi", 2)
    assert uow.loose_writes == writes + 1
    page = await sessions.list(1, PageRequest(limit=10))
    assert [s.title for s in page.items] == ["old", "new"]
    assert page.items[0].message_count == 1
    assert page.items[0].updated_at == message.created_at
    assert page.next_cursor is None


@pytest.mark.parametrize(("content", "tokens"), [("", 0), ("   ", 0), ("a\x00", 0), ("ok", -1)])
async def test_bad_messages_change_nothing(content: str, tokens: int) -> None:
    uow = FakeUnitOfWork()
    session = await SessionService(uow).create(1, "s")
    with pytest.raises(InvalidInput):
        await MessageService(uow).add(1, session.id, "user", content, tokens)
    assert uow.store.messages == {}
    assert uow.store.sessions[session.id].message_count == 0


async def test_messages_of_another_users_session_are_not_found() -> None:
    uow = FakeUnitOfWork()
    session = await SessionService(uow).create(1, "s")
    message = await MessageService(uow).add(1, session.id, "user", "hello")
    with pytest.raises(NotFound):
        await MessageService(uow).add(2, session.id, "user", "intrusion")
    with pytest.raises(NotFound):
        await MessageService(uow).list(2, session.id, PageRequest(limit=10))
    with pytest.raises(NotFound):
        await MessageService(uow).get(2, message.id)
    assert len(uow.store.messages) == 1


async def test_full_pages_carry_a_cursor_that_continues_exactly() -> None:
    uow = FakeUnitOfWork()
    service = SessionService(uow)
    created = [await service.create(1, f"s{i}") for i in range(5)]
    first = await service.list(1, PageRequest(limit=2))
    assert first.next_cursor == Cursor(first.items[-1].updated_at, first.items[-1].id)
    second = await service.list(1, PageRequest(limit=2, after=first.next_cursor))
    third = await service.list(1, PageRequest(limit=2, after=second.next_cursor))
    ids = [s.id for s in first.items + second.items + third.items]
    assert ids == [s.id for s in reversed(created)]
    assert third.next_cursor is None


async def test_users_are_provisioned_once() -> None:
    uow = FakeUnitOfWork()
    first = await UserService(uow).resolve(Principal("auth0|a"))
    second = await UserService(uow).resolve(Principal("auth0|a"))
    assert first == second
    assert uow.transactions == 2  # no cache here: looked up twice, provisioned once
    assert len(uow.store.users) == 3
    assert await UserService(uow).resolve(Principal("auth0|b")) != first


async def test_known_callers_are_resolved_without_storage() -> None:
    uow, known = FakeUnitOfWork(), KnownUsers()
    first = await UserService(uow, known).resolve(Principal("auth0|a", "a@example.com"))
    assert await UserService(uow, known).resolve(Principal("auth0|a", "a@example.com")) == first
    assert uow.transactions == 1
    # A new e-mail in the token takes the slow path once, which stores it.
    assert await UserService(uow, known).resolve(Principal("auth0|a", "new@example.com")) == first
    assert uow.store.users["auth0|a"].email == "new@example.com"
    assert uow.transactions == 2


async def test_an_erased_account_is_forgotten_and_reprovisioned() -> None:
    uow, known = FakeUnitOfWork(), KnownUsers()
    caller = Principal("auth0|a")
    first = await UserService(uow, known).resolve(caller)
    await UserService(FakeUnitOfWork(uow.store), known).erase(first)
    assert known.get(caller) is None
    second = await UserService(uow, known).resolve(caller)
    assert second != first
    with pytest.raises(AccountGone):
        await SessionService(uow).create(first, "stale id")


def test_the_cache_is_bounded_and_forgets_by_id() -> None:
    known = KnownUsers(capacity=2)
    a, b, c = Principal("a"), Principal("b"), Principal("c")
    known.put(a, 1)
    known.put(b, 2)
    assert known.get(a) == 1  # a is now the most recent
    known.put(c, 3)
    assert (known.get(a), known.get(b), known.get(c)) == (1, None, 3)
    known.put(Principal("a", "other@example.com"), 1)
    known.forget(1)
    assert known.get(a) is None
    assert known.get(Principal("a", "other@example.com")) is None
    assert known.get(c) == 3
