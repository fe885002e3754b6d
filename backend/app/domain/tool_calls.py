"""Tool calls as a model streams them, assembled into the calls a reply stores."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.domain import rules
from app.domain.dtos import FunctionCall, ToolCall
from app.domain.language_model import ToolCallDelta

_VALID_ID = re.compile(rules.TOOL_CALL_ID_PATTERN)


@dataclass
class _Partial:
    id: str | None = None
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Collects the pieces of each call by its index, the way OpenAI's SDK accumulates a
    stream: the first id a call gets is its id; name and arguments are concatenated."""

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}

    def add(self, deltas: Iterable[ToolCallDelta]) -> None:
        for delta in deltas:
            call = self._calls.setdefault(delta.index, _Partial())
            if call.id is None and delta.id:
                call.id = delta.id
            if delta.name:
                call.name.append(delta.name)
            if delta.arguments:
                call.arguments.append(delta.arguments)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def calls(self, reply_id: int) -> tuple[ToolCall, ...]:
        """The calls, in index order, made storable. A call whose id is missing, unusable as a
        `tool_call_id` (too long, spaces) or repeated gets one of ours: tool results must be
        able to name it, and the model only needs ids to match within the conversation."""
        calls: list[ToolCall] = []
        seen: set[str] = set()
        for index in sorted(self._calls):
            partial = self._calls[index]
            call_id = rules.storable_text(partial.id or "")
            if (
                len(call_id) > rules.TOOL_CALL_ID_MAX_CHARS
                or not _VALID_ID.match(call_id)
                or call_id in seen
            ):
                call_id = f"call_{reply_id}_{index}"
            seen.add(call_id)
            calls.append(
                ToolCall(
                    id=call_id,
                    function=FunctionCall(
                        name=rules.storable_text("".join(partial.name)),
                        arguments=rules.storable_text("".join(partial.arguments)),
                    ),
                )
            )
        return tuple(calls)
