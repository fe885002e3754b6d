"""Idempotency rules on in-memory fakes: replay, mismatch, in flight, release on failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from app.domain.dtos import SessionDTO
from app.domain.errors import Conflict, InvalidInput
from app.domain.ports import UnitOfWork
from app.domain.services.idempotency import IdempotentWrites, Replay
from app.domain.services.sessions import SessionService
from tests.unit.fakes import FakeUnitOfWork


def create(title: str) -> Callable[[UnitOfWork], Awaitable[SessionDTO]]:
    async def action(uow: UnitOfWork) -> SessionDTO:
        return await SessionService(uow).create(1, title)

    return action


async def test_same_key_and_request_replays_without_creating_again() -> None:
    uow = FakeUnitOfWork()
    first = await IdempotentWrites(uow).run(1, "k", "fp", 201, create("a"))
    again = await IdempotentWrites(uow).run(1, "k", "fp", 201, create("a"))
    assert isinstance(first, SessionDTO)
    assert again == Replay(201, first.model_dump_json())
    assert len(uow.store.sessions) == 1


async def test_same_key_other_request_is_invalid_and_creates_nothing() -> None:
    uow = FakeUnitOfWork()
    await IdempotentWrites(uow).run(1, "k", "fp", 201, create("a"))
    with pytest.raises(InvalidInput):
        await IdempotentWrites(uow).run(1, "k", "other", 201, create("b"))
    assert [s.title for s in uow.store.sessions.values()] == ["a"]


async def test_a_key_in_flight_is_a_conflict() -> None:
    uow = FakeUnitOfWork()
    await uow.idempotency.claim(1, "k", "fp", "someone-else", ttl_s=86400, lock_timeout_s=60)
    with pytest.raises(Conflict):
        await IdempotentWrites(uow).run(1, "k", "fp", 201, create("a"))
    assert uow.store.sessions == {}


async def test_a_failed_request_releases_its_key() -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(InvalidInput):
        await IdempotentWrites(uow).run(1, "k", "fp", 201, create("   "))
    assert uow.store.keys == {}
    created = await IdempotentWrites(uow).run(1, "k", "fp", 201, create("ok"))
    assert isinstance(created, SessionDTO)


async def test_keys_are_scoped_to_the_user() -> None:
    uow = FakeUnitOfWork()
    await IdempotentWrites(uow).run(1, "k", "fp", 201, create("a"))
    other = await IdempotentWrites(uow).run(2, "k", "fp", 201, create("a"))
    assert isinstance(other, SessionDTO)
    assert len(uow.store.sessions) == 2
