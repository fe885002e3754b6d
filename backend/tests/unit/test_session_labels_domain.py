"""Metadata, archive and pin as domain rules, on the in-memory fakes."""

from __future__ import annotations

import pytest

from app.domain.errors import InvalidInput
from app.domain.pagination import PageRequest
from app.domain.rules import metadata_filter, validate_metadata
from app.domain.services.sessions import SessionService
from tests.unit.fakes import FakeUnitOfWork


def test_a_filter_value_is_everything_after_the_first_colon() -> None:
    assert metadata_filter(["url:https://x:1/", "k:"]) == {"url": "https://x:1/", "k": ""}
    assert metadata_filter(["k:a", "k:a"]) == {"k": "a"}
    assert metadata_filter(["k:a", "k:b"]) is None  # nothing can match both


@pytest.mark.parametrize("pair", ["k", ":v", "k\x00:v", "k" * 65 + ":v", "k:" + "v" * 513])
def test_a_malformed_filter_is_refused_naming_the_parameter(pair: str) -> None:
    with pytest.raises(InvalidInput, match="key:value") as refused:
        metadata_filter([pair])
    assert refused.value.loc == ("query", "metadata")


@pytest.mark.parametrize(
    "metadata",
    [{f"k{i}": "v" for i in range(17)}, {"a:b": "v"}, {"": "v"}, {"k": "v" * 513}, {"k": "\x00"}],
)
def test_metadata_limits_hold_for_every_caller(metadata: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="metadata"):
        validate_metadata(metadata)


async def test_pinned_first_archived_apart_and_labels_are_not_activity() -> None:
    uow = FakeUnitOfWork()
    service = SessionService(uow)
    a, _, c = [await service.create(1, t, {"p": t}) for t in "abc"]
    pinned = await service.update(1, a.id, pinned=True)
    assert pinned.updated_at == a.updated_at  # a flag is not activity
    await service.update(1, c.id, archived=True)

    listed = await service.list(1, PageRequest(limit=10))
    assert [s.title for s in listed.items] == ["a", "b"]
    archived = await service.list(1, PageRequest(limit=10), archived=True)
    assert [s.title for s in archived.items] == ["c"]
    assert [s.title for s in (await service.list(1, PageRequest(10), metadata=["p:b"])).items] == [
        "b"
    ]
    first = await service.list(1, PageRequest(limit=1))
    assert first.next_cursor is not None
    assert first.next_cursor.pinned
    rest = await service.list(1, PageRequest(limit=1, after=first.next_cursor))
    assert [s.title for s in rest.items] == ["b"]
    assert uow.loose_writes == 5  # three creates, two updates: one statement each


async def test_an_update_needs_a_field_and_validates_metadata() -> None:
    uow = FakeUnitOfWork()
    session = await SessionService(uow).create(1, "t")
    with pytest.raises(InvalidInput, match="at least one"):
        await SessionService(uow).update(1, session.id)
    with pytest.raises(InvalidInput, match="metadata"):
        await SessionService(uow).update(1, session.id, metadata={"a:b": "x"})
    cleared = await SessionService(uow).update(1, session.id, metadata={})
    assert cleared.metadata == {}
