"""Tool calls on in-memory fakes: which messages carry them, which results are accepted, how a
prompt pairs calls with results, how a streamed call is assembled and how a reply records its
end."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from app.domain.dtos import (
    FunctionCall,
    MessageCreateDTO,
    Principal,
    ReplyCreateDTO,
    ToolCall,
    ToolCallIn,
    ToolDefinition,
)
from app.domain.errors import InvalidInput
from app.domain.language_model import Chunk, PromptMessage, ToolCallDelta, ToolOptions, Usage
from app.domain.prompt import ReplyPolicy, build_prompt
from app.domain.reply_events import Position
from app.domain.services.messages import MessageService
from app.domain.services.replies import ReplyService
from app.domain.services.sessions import SessionService
from app.domain.tool_calls import ToolCallAssembler
from app.llm.simulated import SimulatedProvider
from tests.unit.fakes import FakeHub, FakeLive, FakeUnitOfWork, ScriptedProvider, Store
from tests.unit.fakes import unit_of_work_factory as factory


def call(call_id: str, name: str = "lookup", arguments: str = "{}") -> ToolCall:
    return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))


def call_in(call_id: str, name: str = "lookup") -> ToolCallIn:
    return ToolCallIn.model_validate({"id": call_id, "function": {"name": name, "arguments": "{}"}})


async def _session(uow: FakeUnitOfWork) -> int:
    return (await SessionService(uow).create(1, "agent")).id


@pytest.mark.parametrize(
    ("role", "content", "calls", "call_id", "field"),
    [
        ("user", "x", [call_in("c1")], None, "tool_calls"),
        ("assistant", "x", None, "c1", "tool_call_id"),
        ("assistant", None, None, None, "content"),
        ("tool", None, None, "c1", "content"),
        ("assistant", None, [call_in("c1"), call_in("c1", "other")], None, "tool_calls"),
    ],
)
async def test_tool_data_goes_with_its_role_or_nothing_is_written(
    role: Any, content: str | None, calls: list[ToolCallIn] | None, call_id: str | None, field: str
) -> None:
    uow = FakeUnitOfWork()
    sid = await _session(uow)
    with pytest.raises(InvalidInput) as refused:
        await MessageService(uow).add(1, sid, role, content, tool_calls=calls, tool_call_id=call_id)
    assert refused.value.loc == ("body", field)
    assert uow.store.messages == {}


async def test_a_result_must_answer_an_unanswered_call_of_the_branch() -> None:
    uow = FakeUnitOfWork()
    sid = await _session(uow)
    messages = MessageService(uow)
    question = await messages.add(1, sid, "user", "weather?")
    asked = await messages.add(
        1, sid, "assistant", None, tool_calls=[call_in("c1"), call_in("c2", "clock")]
    )
    assert (asked.content, [c.id for c in asked.tool_calls or []]) == ("", ["c1", "c2"])
    first = await messages.add(1, sid, "tool", "sunny", tool_call_id="c1")
    assert first.parent_id == asked.id
    second = await messages.add(1, sid, "tool", "noon", tool_call_id="c2")
    assert second.parent_id == first.id

    with pytest.raises(InvalidInput, match=f"already has a result.*message {first.id}"):
        await messages.add(1, sid, "tool", "again", tool_call_id="c1")
    with pytest.raises(InvalidInput, match="not a call"):
        await messages.add(1, sid, "tool", "?", tool_call_id="c3")
    # Another branch (beside the call) cannot answer it.
    await SessionService(uow).update(1, sid, current_message_id=question.id)
    with pytest.raises(InvalidInput, match="not a call") as elsewhere:
        await messages.add(1, sid, "tool", "sunny", tool_call_id="c1")
    assert elsewhere.value.loc == ("body", "tool_call_id")
    # Old clients' tool messages without a call id are still accepted.
    assert (await messages.add(1, sid, "tool", "legacy")).tool_call_id is None
    assert uow.store.sessions[sid].message_count == 5


def test_a_prompt_pairs_each_call_with_its_results() -> None:
    """Newest first, as the branch is read: the question, the calls, their results (one
    posted after an interjection), and a result of a call the prompt no longer has."""
    ask = PromptMessage("assistant", "", (call("c1"), call("c2"), call("c3")))
    newest_first = [
        PromptMessage("tool", "r2", tool_call_id="c2"),
        PromptMessage("user", "hurry"),
        PromptMessage("tool", "r1", tool_call_id="c1"),
        PromptMessage("tool", "legacy result"),  # no call id: cannot be sent
        ask,
        PromptMessage("user", "q"),
        PromptMessage("tool", "orphan", tool_call_id="c0"),
    ]
    prompt = build_prompt(ReplyPolicy(), newest_first, None)
    assert prompt == [
        PromptMessage("user", "q"),
        PromptMessage("assistant", "", (call("c1"), call("c2"))),  # c3 has no result: left out
        PromptMessage("tool", "r1", tool_call_id="c1"),
        PromptMessage("tool", "r2", tool_call_id="c2"),
        PromptMessage("user", "hurry"),
    ]


def test_calls_and_results_are_kept_or_left_out_together() -> None:
    newest_first = [
        PromptMessage("user", "next"),
        PromptMessage("tool", "r" * 10, tool_call_id="c1"),
        PromptMessage("assistant", "", (call("c1", arguments="{}"),)),
        PromptMessage("user", "first"),
    ]
    # 4 + 10 + (6 + 2) = 22 characters for the three newest; 21 allowed: the pair goes.
    prompt = build_prompt(ReplyPolicy(context_chars=21), newest_first, "now")
    assert prompt == [PromptMessage("user", "next"), PromptMessage("user", "now")]
    # A continuation always sends the newest group, over budget or not.
    tight = build_prompt(ReplyPolicy(context_chars=1), newest_first[1:], None)
    assert [m.role for m in tight] == ["assistant", "tool"]


def test_an_assistant_message_with_nothing_left_to_send_is_left_out() -> None:
    newest_first = [PromptMessage("assistant", "", (call("c1"),)), PromptMessage("user", "q")]
    assert build_prompt(ReplyPolicy(), newest_first, None) == [PromptMessage("user", "q")]


def test_streamed_pieces_assemble_into_calls_with_usable_ids() -> None:
    assembler = ToolCallAssembler()
    assembler.add([ToolCallDelta(0, id="call_a", name="get_"), ToolCallDelta(1, name="clock")])
    assembler.add([ToolCallDelta(0, name="weather", arguments='{"city": ')])
    assembler.add([ToolCallDelta(0, id="ignored", arguments='"Lisbon"}')])
    assembler.add([ToolCallDelta(2, id="call_a", name="dup"), ToolCallDelta(3, id="x" * 129)])
    assembler.add([ToolCallDelta(4, id="has space", name="s")])
    calls = assembler.calls(reply_id=7)
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city": "Lisbon"}'),
        ("call_7_1", "clock", ""),
        ("call_7_2", "dup", ""),
        ("call_7_3", "", ""),
        ("call_7_4", "s", ""),
    ]


async def _generated(*chunks: Chunk) -> tuple[FakeLive, ScriptedProvider]:
    store = Store()
    sid = await _session(FakeUnitOfWork(store))
    provider = ScriptedProvider(*chunks)
    hub = FakeHub(store)
    service = ReplyService(factory(store), provider, hub)
    tools = ToolOptions((ToolDefinition.model_validate(WEATHER),), "required")
    started = await service.start(Principal("user1"), sid, "weather?", tools=tools)
    assert started.reply.model == "configured-model"
    live = await hub.run(started.reply.id)
    assert provider.tools == [tools]
    return live, provider


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


async def test_a_reply_that_calls_tools_records_them_and_why_it_stopped() -> None:
    live, _ = await _generated(
        Chunk(tool_calls=(ToolCallDelta(0, id="c1", name="get_weather"),), model="gpt-x-0613"),
        Chunk(tool_calls=(ToolCallDelta(0, arguments='{"city": "Lisbon"}'),)),
        Chunk(finish_reason="tool_calls"),
        Chunk(usage=Usage(11, 7)),
    )
    outcome = live.outcome
    assert outcome is not None
    assert (outcome.status, outcome.content, outcome.finish_reason) == (
        "completed",
        "",
        "tool_calls",
    )
    assert outcome.tool_calls == (call("c1", "get_weather", '{"city": "Lisbon"}'),)
    assert (outcome.model, outcome.tokens, outcome.input_tokens) == ("gpt-x-0613", 7, 11)


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ((Chunk(text="hi", finish_reason="stop"),), ("completed", "stop", "configured-model")),
        ((Chunk(text="hi"),), ("completed", "stop", "configured-model")),
        ((Chunk(text="h", finish_reason="length", model="m"),), ("completed", "length", "m")),
        ((Chunk(text="h", finish_reason="content_filter"),), ("completed", "content_filter", None)),
        ((Chunk(text="h", finish_reason="eos"),), ("completed", "stop", None)),
        ((Chunk(finish_reason="stop"),), ("failed", "error", None)),
    ],
)
async def test_every_reply_records_its_finish_reason_and_model(
    chunks: tuple[Chunk, ...], expected: tuple[str, str, str | None]
) -> None:
    live, _ = await _generated(*chunks)
    assert live.outcome is not None
    status, finish, model = expected
    assert (live.outcome.status, live.outcome.finish_reason) == (status, finish)
    assert live.outcome.model == (model or "configured-model")


async def test_a_cancelled_reply_keeps_no_calls() -> None:
    store = Store()
    sid = await _session(FakeUnitOfWork(store))
    hub = FakeHub(store)
    chunks = (Chunk(text="par"), Chunk(tool_calls=(ToolCallDelta(0, id="c", name="f"),)))
    service = ReplyService(factory(store), ScriptedProvider(*chunks), hub)
    started = await service.start(Principal("user1"), sid, "q")
    live = await hub.run(started.reply.id, FakeLive(stop_reason="cancelled"))
    assert live.outcome is not None
    assert (live.outcome.status, live.outcome.finish_reason) == ("cancelled", "cancelled")
    assert (live.outcome.content, live.outcome.tool_calls) == ("par", ())


async def test_the_simulated_model_calls_the_first_tool_then_quotes_the_result() -> None:
    model = SimulatedProvider(delay_ms=0)
    tools = ToolOptions((ToolDefinition.model_validate(WEATHER),))
    question = [PromptMessage("user", "Lisbon today")]
    chunks = [chunk async for chunk in model.stream(question, tools)]
    assembler = ToolCallAssembler()
    for chunk in chunks:
        assembler.add(chunk.tool_calls)
    (made,) = assembler.calls(reply_id=1)
    assert (made.function.name, json.loads(made.function.arguments)) == (
        "get_weather",
        {"input": "Lisbon today"},
    )
    assert made.id.startswith("call_")
    assert chunks[-1].finish_reason == "tool_calls"
    assert {chunk.model for chunk in chunks} == {"simulated"}
    assert [c async for c in model.stream(question, tools)] == chunks  # deterministic

    answered = [*question, PromptMessage("assistant", "", (made,))]
    answered.append(PromptMessage("tool", "18 °C, sunny", tool_call_id=made.id))
    text = "".join([c.text async for c in model.stream(answered, tools)])
    assert text == 'The tool get_weather returned: "18 °C, sunny"'

    told_not_to = ToolOptions(tools.tools, "none")
    plain = [c async for c in model.stream(question, told_not_to)]
    assert not any(c.tool_calls for c in plain)
    assert plain[-1].finish_reason == "stop"


def test_tool_positions_resume_after_the_text() -> None:
    assert Position.parse("tool:2") == Position(calls_seen=3)
    for bad in ("tool:", "tool:x", "tool:-1", "tool:99999"):
        with pytest.raises(InvalidInput):
            Position.parse(bad)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tool_choice": "auto"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "description": "d" * 8193}}]},
            "tools",
        ),
        (
            {
                "tools": [
                    {**WEATHER, "function": {"name": f"f{i}", "parameters": {"d": "x" * 900}}}
                    for i in range(128)
                ]
            },
            "tools",
        ),
        ({"tools": [WEATHER] * 129}, "tools"),
        ({"tools": None}, "tools"),
        ({"content": None}, "content"),
    ],
)
def test_reply_tool_options_are_bounded_and_consistent(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ReplyCreateDTO.model_validate(body)
    assert refused.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize("arguments", ["{", "not json", "\x00", "x" * 100_001])
def test_call_arguments_must_be_json(arguments: str) -> None:
    body = {
        "role": "assistant",
        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": arguments}}],
    }
    with pytest.raises(ValidationError) as refused:
        MessageCreateDTO.model_validate(body)
    assert refused.value.errors()[0]["loc"][-1] == "arguments"
