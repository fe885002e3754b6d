"""What the domain needs from a language model, as a protocol; `app/llm/` implements it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from app.domain.dtos import ToolCall, ToolChoice, ToolDefinition


@dataclass(frozen=True, slots=True)
class PromptMessage:
    """One message of a prompt. An assistant message may call tools (`tool_calls`, its
    content then possibly empty); a tool message answers one of those calls (`tool_call_id`)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolOptions:
    """The tools a reply may call, and how the model should choose (None: its default)."""

    tools: tuple[ToolDefinition, ...]
    choice: ToolChoice | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call, as Chat Completions streams it: the first piece of call `index`
    brings its id and function name, the next ones fragments of its arguments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a streamed completion: text, pieces of tool calls, why the model stopped
    (its own word: `stop`, `length`, `tool_calls`, ...), which model answered, or (usually
    last) the usage report."""

    text: str = ""
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    model: str | None = None


class LLMProvider(Protocol):
    """A streaming chat model. Failures raise `ProviderFailed`; cancelling the consuming task
    (or closing the iterator) must close the underlying call."""

    @property
    def model(self) -> str:
        """The configured model name: what a reply records when the provider reports none."""
        ...

    def stream(
        self, prompt: Sequence[PromptMessage], tools: ToolOptions | None = None
    ) -> AsyncGenerator[Chunk, None]: ...

    async def aclose(self) -> None: ...
