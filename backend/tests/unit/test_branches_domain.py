"""Conversation trees on in-memory fakes: appends chain under the current message, switching
branch, the thread, forks, and where replies go."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.domain.dtos import MessageDTO, Principal, ToolCallIn
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.rules import Limits
from app.domain.services.branches import BranchService
from app.domain.services.messages import MessageService
from app.domain.services.replies import ReplyService
from app.domain.services.sessions import SessionService
from tests.unit.fakes import (
    FakeHub,
    FakeMessages,
    FakeUnitOfWork,
    ScriptedProvider,
    Store,
    unit_of_work_factory,
)

ALICE = Principal("user1")  # user 1 of the fakes


async def _chain(uow: FakeUnitOfWork, *contents: str) -> tuple[int, list[MessageDTO]]:
    session = await SessionService(uow).create(1, "s")
    messages = [await MessageService(uow).add(1, session.id, "user", c) for c in contents]
    return session.id, messages


def _replies(store: Store, limits: Limits | None = None) -> tuple[ReplyService, FakeHub]:
    hub = FakeHub(store)
    service = ReplyService(unit_of_work_factory(store), ScriptedProvider(), hub, limits=limits)
    return service, hub


async def test_appends_chain_under_the_current_message() -> None:
    uow = FakeUnitOfWork()
    sid, (a, b, c) = await _chain(uow, "a", "b", "c")
    assert (a.parent_id, b.parent_id, c.parent_id) == (None, a.id, b.id)
    session = uow.store.sessions[sid]
    assert (session.current_message_id, session.message_count) == (c.id, 3)


async def test_switching_branch_moves_the_current_message_and_where_appends_go() -> None:
    uow = FakeUnitOfWork()
    sid, (a, b) = await _chain(uow, "a", "b")
    switched = await SessionService(uow).update(1, sid, current_message_id=a.id)
    assert switched.current_message_id == a.id
    assert switched.title == "s"
    sibling = await MessageService(uow).add(1, sid, "user", "b'")
    assert sibling.parent_id == a.id
    thread = await BranchService(uow).thread(1, sid)
    assert [m.id for m in thread.messages] == [a.id, sibling.id]
    assert thread.messages[1].sibling_ids == [b.id, sibling.id]
    assert thread.messages[0].sibling_ids == [a.id]
    assert thread.before is None


async def test_switching_to_another_sessions_message_is_refused_and_changes_nothing() -> None:
    uow = FakeUnitOfWork()
    sid, (a,) = await _chain(uow, "a")
    other, (x,) = await _chain(uow, "x")
    before = uow.store.sessions[sid]
    with pytest.raises(InvalidInput) as refused:
        await SessionService(uow).update(1, sid, current_message_id=x.id)
    assert refused.value.loc == ("body", "current_message_id")
    with pytest.raises(NotFound):
        await SessionService(uow).update(2, sid, current_message_id=a.id)
    with pytest.raises(InvalidInput):
        await SessionService(uow).update(1, sid)
    assert uow.store.sessions[sid] == before
    assert uow.store.sessions[other].current_message_id == x.id


async def test_a_thread_page_continues_towards_the_root() -> None:
    uow = FakeUnitOfWork()
    sid, messages = await _chain(uow, *"abcde")
    first = await BranchService(uow).thread(1, sid, limit=2)
    assert [m.content for m in first.messages] == ["d", "e"]
    assert first.before == messages[3].id
    second = await BranchService(uow).thread(1, sid, limit=2, before=first.before)
    third = await BranchService(uow).thread(1, sid, limit=2, before=second.before)
    assert [m.content for m in second.messages + third.messages] == ["b", "c", "a"]
    assert third.before is None
    other, (x,) = await _chain(uow, "x")
    with pytest.raises(InvalidInput) as refused:
        await BranchService(uow).thread(1, sid, before=x.id)
    assert refused.value.loc == ("query", "before")
    with pytest.raises(NotFound):
        await BranchService(uow).thread(2, sid)
    assert (await BranchService(uow).thread(1, other)).messages[0].sibling_ids == [x.id]


async def test_a_fork_copies_the_path_into_a_new_session_of_the_caller() -> None:
    uow = FakeUnitOfWork()
    sid, (a, b, c) = await _chain(uow, "a", "b", "c")
    await SessionService(uow).update(1, sid, current_message_id=a.id)
    await MessageService(uow).add(1, sid, "assistant", "other branch")
    fork = await BranchService(uow).fork(1, sid, message_id=b.id, title="copy")
    assert (fork.title, fork.user_id, fork.message_count) == ("copy", 1, 2)
    thread = await BranchService(uow).thread(1, fork.id)
    assert [(m.role, m.content) for m in thread.messages] == [("user", "a"), ("user", "b")]
    assert {m.id for m in thread.messages}.isdisjoint({a.id, b.id})
    assert fork.current_message_id == thread.messages[-1].id
    assert uow.store.users["user1"].session_count == 2
    default = await BranchService(uow).fork(1, sid)  # the current message, the source's title
    assert (default.title, default.message_count) == ("s", 2)
    assert uow.store.sessions[sid].message_count == 4  # the original is untouched
    assert c.id in uow.store.messages


async def test_a_refused_fork_writes_nothing() -> None:
    uow = FakeUnitOfWork()
    sid, (_a,) = await _chain(uow, "a")
    _other, (x,) = await _chain(uow, "x")
    sessions = dict(uow.store.sessions)
    with pytest.raises(InvalidInput) as foreign:
        await BranchService(uow).fork(1, sid, message_id=x.id)
    assert foreign.value.loc == ("body", "message_id")
    with pytest.raises(NotFound):
        await BranchService(uow).fork(2, sid)
    full = FakeUnitOfWork(uow.store)
    with pytest.raises(Conflict, match="already has 2 sessions"):
        await BranchService(full, Limits(max_sessions_per_user=2)).fork(1, sid)
    assert uow.store.sessions == sessions
    assert uow.store.users["user1"].session_count == 2


async def test_a_fork_refuses_a_path_with_a_streaming_reply() -> None:
    store = Store()
    uow = FakeUnitOfWork(store)
    sid, _ = await _chain(uow, "a")
    service, _hub = _replies(store)
    started = await service.start(ALICE, sid, "q")
    with pytest.raises(Conflict, match="still streaming"):
        await BranchService(uow).fork(1, sid)
    assert started.user_message is not None
    fork = await BranchService(uow).fork(1, sid, message_id=started.user_message.id)
    assert fork.message_count == 2
    empty = await SessionService(uow).create(1, "empty")
    assert (await BranchService(uow).fork(1, empty.id)).message_count == 0


async def test_a_reply_goes_under_the_current_message_a_given_one_or_a_new_root() -> None:
    store = Store()
    uow = FakeUnitOfWork(store)
    sid, (a, b) = await _chain(uow, "a", "b")
    service, hub = _replies(store)

    current = await service.start(ALICE, sid, "q1")
    assert current.user_message is not None
    assert current.user_message.parent_id == b.id
    assert current.reply.parent_id == current.user_message.id
    assert store.sessions[sid].current_message_id == current.reply.id
    await hub.run(current.reply.id)

    edit = await service.start(ALICE, sid, "b edited", parent=a.id)  # an edit of b
    assert edit.user_message is not None
    assert edit.user_message.parent_id == a.id
    await hub.run(edit.reply.id)

    root = await service.start(ALICE, sid, "a edited", parent=None)
    assert root.user_message is not None
    assert root.user_message.parent_id is None
    assert store.sessions[sid].current_message_id == root.reply.id
    assert store.sessions[sid].message_count == 8


async def test_a_continuation_saves_no_user_message_and_needs_something_to_continue() -> None:
    store = Store()
    uow = FakeUnitOfWork(store)
    sid, (a,) = await _chain(uow, "a")
    empty = await SessionService(uow).create(1, "empty")
    service, _hub = _replies(store)
    with pytest.raises(InvalidInput) as nothing:
        await service.start(ALICE, empty.id, None)
    assert nothing.value.loc == ("body", "content")
    with pytest.raises(InvalidInput) as rootless:
        await service.start(ALICE, sid, None, parent=None)
    assert rootless.value.loc == ("body", "content")
    continued = await service.start(ALICE, sid, None)
    assert continued.user_message is None
    assert continued.reply.parent_id == a.id
    assert store.sessions[sid].message_count == 2


async def test_a_parent_of_another_session_is_refused_and_nothing_is_written() -> None:
    store = Store()
    uow = FakeUnitOfWork(store)
    sid, _ = await _chain(uow, "a")
    _, (x,) = await _chain(uow, "x")
    service, _hub = _replies(store)
    messages = dict(store.messages)
    with pytest.raises(InvalidInput) as refused:
        await service.start(ALICE, sid, "q", parent=x.id)
    assert refused.value.loc == ("body", "parent_id")
    with pytest.raises(NotFound):
        await service.start(Principal("user2"), sid, "q")
    assert store.messages == messages


async def test_the_model_sees_the_branch_of_the_reply_only() -> None:
    store = Store()
    uow = FakeUnitOfWork(store)
    sid, (a, _b) = await _chain(uow, "a", "b")
    provider = ScriptedProvider()
    hub = FakeHub(store)
    service = ReplyService(unit_of_work_factory(store), provider, hub)
    started = await service.start(ALICE, sid, "edited b", parent=a.id)
    await hub.run(started.reply.id)
    assert [(m.role, m.content) for m in provider.prompts[0]] == [
        ("user", "a"),
        ("user", "edited b"),
    ]


async def test_regeneration_answers_the_same_parent_and_becomes_current() -> None:
    store = Store()
    uow = FakeUnitOfWork(store)
    sid, (a,) = await _chain(uow, "a")
    provider = ScriptedProvider()
    hub = FakeHub(store)
    service = ReplyService(unit_of_work_factory(store), provider, hub)
    first = await service.start(ALICE, sid, None)
    await hub.run(first.reply.id)
    again = await service.regenerate(ALICE, first.reply.id)
    assert again.user_message is None
    assert again.reply.parent_id == a.id
    assert store.sessions[sid].current_message_id == again.reply.id
    with pytest.raises(Conflict, match="already has a reply streaming"):
        await service.regenerate(ALICE, first.reply.id)
    await hub.run(again.reply.id)
    assert [(m.role, m.content) for m in provider.prompts[1]] == [("user", "a")]
    with pytest.raises(Conflict, match="only an assistant's reply"):
        await service.regenerate(ALICE, a.id)
    root_reply = await MessageService(uow).add(
        1, (await SessionService(uow).create(1, "r")).id, "assistant", "hi"
    )
    with pytest.raises(Conflict, match="answers no message"):
        await service.regenerate(ALICE, root_reply.id)
    with pytest.raises(NotFound):
        await service.regenerate(Principal("user2"), first.reply.id)
    limited, _ = _replies(store, Limits(max_messages_per_session=3))
    with pytest.raises(Conflict, match="maximum"):
        await limited.regenerate(ALICE, first.reply.id)


@pytest.fixture
def stale_once() -> Iterator[None]:
    FakeMessages.stale_next = 1
    yield
    FakeMessages.stale_next = 0


@pytest.mark.usefixtures("stale_once")
async def test_a_stale_reply_start_runs_again_holding_the_session() -> None:
    store = Store()
    uow = FakeUnitOfWork(store)
    sid, (a,) = await _chain(uow, "a")
    service, _hub = _replies(store)
    started = await service.start(ALICE, sid, "q")
    assert started.user_message is not None
    assert started.user_message.parent_id == a.id
    assert FakeMessages.stale_next == 0  # the first try was stale, the second held the lock
    assert store.sessions[sid].message_count == 3


@pytest.mark.usefixtures("stale_once")
async def test_a_stale_tool_result_runs_again_in_one_transaction() -> None:
    uow = FakeUnitOfWork()
    sid, _ = await _chain(uow, "q")
    call = ToolCallIn.model_validate({"id": "c1", "function": {"name": "f", "arguments": "{}"}})
    FakeMessages.stale_next = 0
    await MessageService(uow).add(1, sid, "assistant", None, tool_calls=[call])
    FakeMessages.stale_next = 1
    before = (uow.loose_writes, uow.transactions)
    result = await MessageService(uow).add(1, sid, "tool", "r", tool_call_id="c1")
    assert result.tool_call_id == "c1"
    assert (uow.loose_writes, uow.transactions) == (before[0] + 1, before[1] + 1)
