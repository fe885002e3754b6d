"""What the domain needs from a language model, as a protocol; `app/llm/` implements it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class PromptMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a streamed completion: text, or (usually last) the usage report."""

    text: str = ""
    usage: Usage | None = None


class LLMProvider(Protocol):
    """A streaming chat model. Failures raise `ProviderFailed`; cancelling the consuming task
    (or closing the iterator) must close the underlying call."""

    def stream(self, prompt: Sequence[PromptMessage]) -> AsyncGenerator[Chunk, None]: ...

    async def aclose(self) -> None: ...
