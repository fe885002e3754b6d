"""Import and export as domain rules, on the in-memory fakes: the tree's checks, the order of
the inserted messages, all or nothing, and the export's batches."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.dtos import SessionExportDTO, SessionImportDTO
from app.domain.errors import Conflict, InvalidInput, TooLarge
from app.domain.import_plan import plan_import
from app.domain.rules import Limits
from app.domain.services.sessions import SessionService
from app.domain.services.transfer import TransferService
from tests.unit.fakes import FakeUnitOfWork

CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def _doc(*messages: dict[str, Any], current: int | None = None) -> SessionImportDTO:
    return SessionImportDTO.model_validate(
        {
            "format": "agent-stack.session",
            "version": 1,
            "session": {"title": "t", "current_message_id": current},
            "messages": list(messages),
        }
    )


def _user(id: int, parent: int | None = None, text: str = "x") -> dict[str, Any]:
    return {"id": id, "parent_id": parent, "role": "user", "content": text}


def test_parents_come_first_and_document_order_is_kept_otherwise() -> None:
    # 30 answers 10; 20 answers 30: listed child first, planned parent first.
    plan = plan_import(_doc(_user(20, 30), _user(10), _user(30, 10), _user(5), current=20), 100)
    order = [m.id for m in plan.messages]
    assert order == [10, 30, 20, 5]
    assert plan.parents == [None, 0, 1, None]
    assert plan.current == 2


@pytest.mark.parametrize(
    ("messages", "where"),
    [
        ((_user(1), _user(2, 7)), ("body", "messages", 1, "parent_id")),
        ((_user(1, 3), _user(2, 1), _user(3, 2), _user(4)), ("body", "messages", 0, "parent_id")),
        ((_user(4), _user(1, 2), _user(2, 1)), ("body", "messages", 1, "parent_id")),
        ((_user(1), _user(1)), ("body", "messages", 1, "id")),
        ((_user(1, 1),), ("body", "messages", 0, "parent_id")),
    ],
)
def test_a_broken_tree_is_refused_naming_the_item(
    messages: tuple[dict[str, Any], ...], where: tuple[Any, ...]
) -> None:
    with pytest.raises(InvalidInput) as refused:
        plan_import(_doc(*messages), 100)
    assert refused.value.loc == where
    assert refused.value.detail.startswith(f"messages[{where[2]}].{where[3]}")


def test_a_tool_result_needs_its_call_above_it_on_its_branch() -> None:
    caller = {"id": 2, "parent_id": 1, "role": "assistant", "tool_calls": [CALL]}
    result = {"role": "tool", "tool_call_id": "c1", "content": "r"}
    plan_import(_doc(_user(1), caller, {"id": 3, "parent_id": 2, **result}), 100)
    with pytest.raises(InvalidInput) as refused:  # a sibling of the call, not under it
        plan_import(_doc(_user(1), caller, {"id": 3, "parent_id": 1, **result}), 100)
    assert refused.value.loc == ("body", "messages", 2, "tool_call_id")


def test_an_openai_list_is_one_branch_titled_by_its_first_question() -> None:
    doc = SessionImportDTO.model_validate(
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": " q \nr"}]}
    )
    plan = plan_import(doc, 100)
    assert (plan.title, plan.parents, plan.current) == ("q", [None, 0], 1)
    with pytest.raises(TooLarge, match="at most 1"):
        plan_import(doc, 1)
    with_ids = SessionImportDTO.model_validate({"messages": [{"role": "user", "content": "q",
                                                              "parent_id": None}]})  # fmt: skip
    with pytest.raises(InvalidInput, match="only exported documents"):
        plan_import(with_ids, 100)


async def test_import_is_all_or_nothing_and_counts_against_the_quota() -> None:
    uow = FakeUnitOfWork()
    service = TransferService(uow, Limits(max_sessions_per_user=1))
    doc = _doc(_user(7), _user(9, 7, "y"), current=9)
    imported = await service.import_session(1, doc)
    assert uow.transactions == 1
    assert imported.message_count == 2
    exported = await service.export_session(1, imported.id)
    first, second = exported.messages
    assert (second.parent_id, exported.session.current_message_id) == (first.id, second.id)
    with pytest.raises(Conflict, match="already has 1 sessions"):
        await service.import_session(1, doc)
    with pytest.raises(InvalidInput):
        await TransferService(uow).import_session(1, _doc(_user(1), _user(2, 5)))
    assert (len(uow.store.sessions), len(uow.store.messages)) == (1, 2)  # nothing more


async def test_the_export_of_everything_reads_in_batches() -> None:
    uow = FakeUnitOfWork()
    for n in range(5):
        await SessionService(uow).create(1, f"s{n}")
    await SessionService(uow).create(2, "theirs")
    lines = [line async for line in TransferService(uow).export_all(1, batch=2)]
    titles = [SessionExportDTO.model_validate_json(line).session.title for line in lines]
    assert titles == [f"s{n}" for n in range(5)]
