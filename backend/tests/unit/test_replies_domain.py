"""Reply rules that need no database: event positions, prompt building, the simulated model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.dtos import MessageDTO, Role
from app.domain.errors import InvalidInput
from app.domain.language_model import PromptMessage
from app.domain.prompt import ReplyPolicy, build_prompt, estimated_tokens
from app.domain.reply_events import Position, final_event, start_event
from app.llm.simulated import SimulatedProvider, simulated_text, simulated_tokens


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Position()),
        ("", Position()),
        ("user", Position()),
        ("0", Position(offset=0)),
        (" 42 ", Position(offset=42)),
        ("end", Position(ended=True)),
    ],
)
def test_last_event_id_positions(header: str | None, expected: Position) -> None:
    assert Position.parse(header) == expected


@pytest.mark.parametrize("header", ["-3", "x", "1e3", "4.0", "99999999999", "٣"])
def test_unknown_last_event_ids_are_invalid_input(header: str) -> None:
    with pytest.raises(InvalidInput):
        Position.parse(header)


def reply(**fields: object) -> MessageDTO:
    base: dict[str, object] = {
        "id": 7,
        "session_id": 1,
        "role": "assistant",
        "content": "done text",
        "tokens": 3,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "status": "completed",
        "input_tokens": 9,
    }
    return MessageDTO.model_validate({**base, **fields})


def test_start_event_shows_the_reply_as_it_began() -> None:
    event = start_event(reply())
    assert (event.name, event.id) == ("message", "0")
    assert isinstance(event.data, MessageDTO)
    assert (event.data.status, event.data.content, event.data.tokens) == ("streaming", "", 0)


def test_failed_replies_end_with_an_error_event() -> None:
    failed = reply(status="failed", error="boom")
    assert (final_event(failed).name, final_event(failed).id) == ("error", "end")
    assert final_event(failed).data == {"detail": "boom", "message": failed}
    assert final_event(reply(status="cancelled")).name == "done"


def Row(role: Role, content: str) -> PromptMessage:  # noqa: N802 -- reads like the row
    return PromptMessage(role, content)


def test_prompt_takes_the_newest_messages_that_fit_then_restores_order() -> None:
    newest_first = [
        Row("assistant", "a2"),
        Row("user", "u2"),
        Row("tool", "t"),
        Row("user", "x" * 50),
    ]
    prompt = build_prompt(ReplyPolicy(system_prompt="sys", context_chars=20), newest_first, "now")
    assert prompt == [
        PromptMessage("system", "sys"),
        PromptMessage("user", "u2"),
        PromptMessage("assistant", "a2"),
        PromptMessage("user", "now"),
    ]


def test_prompt_keeps_the_new_message_even_over_budget() -> None:
    prompt = build_prompt(ReplyPolicy(context_chars=1), [Row("user", "old")], "a long question")
    assert prompt == [PromptMessage("user", "a long question")]


def test_prompt_respects_the_message_limit() -> None:
    rows = [Row("user", f"m{i}") for i in range(10)]
    prompt = build_prompt(ReplyPolicy(context_messages=3), rows, "q")
    assert [m.content for m in prompt] == ["m1", "m0", "q"]


def test_simulated_reply_is_deterministic_and_sized() -> None:
    prompt = [PromptMessage("user", "Plan a trip to Lisbon please")]
    assert simulated_tokens(prompt, 40) == simulated_tokens(prompt, 40)
    assert len(simulated_tokens(prompt, 40)) == 40
    assert simulated_text(prompt, 40).startswith("Simulated reply to: Plan a trip")
    assert simulated_text(prompt, 40) != simulated_text([PromptMessage("user", "other")], 40)


async def test_simulated_provider_streams_tokens_then_usage() -> None:
    prompt = [PromptMessage("user", "hi there")]
    chunks = [chunk async for chunk in SimulatedProvider(tokens=12, delay_ms=0).stream(prompt)]
    assert "".join(c.text for c in chunks) == simulated_text(prompt, 12)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.output_tokens == 12


def test_a_prompt_without_a_usage_report_is_estimated_at_four_characters_a_token() -> None:
    assert estimated_tokens([]) == 0
    assert estimated_tokens([PromptMessage("user", "abcd")]) == 1
    assert estimated_tokens([PromptMessage("system", "ab"), PromptMessage("user", "abc")]) == 2
