"""`simulated`: a stand-in model for development, tests and benchmarks. It is not an LLM.

It streams a deterministic reply built from the prompt (the same prompt always gives the same
text), one token every `delay_ms` on a fixed schedule (so a slow event loop shows up as
lateness, as it would against a real model), then reports usage like a real provider.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, Sequence

from app.domain.language_model import Chunk, PromptMessage, Usage

VOCABULARY = (
    "agents", "answer", "carefully", "context", "stream", "tokens", "durable", "every",
    "message", "resumes", "without", "gaps", "database", "holds", "progress", "while",
    "clients", "reconnect", "quickly", "and", "the", "reply", "keeps", "going",
)  # fmt: skip


def simulated_tokens(prompt: Sequence[PromptMessage], count: int) -> list[str]:
    """The reply's tokens: an echo of the newest message, then words picked by its hash."""
    newest = prompt[-1].content if prompt else ""
    tokens = ["Simulated", " reply", " to:"] + [f" {word}" for word in newest.split()[:8]]
    digest = hashlib.sha256("\x1f".join(m.content for m in prompt).encode()).digest()
    i = 0
    while len(tokens) < count:
        if i == len(digest):
            digest, i = hashlib.sha256(digest).digest(), 0
        tokens.append(f" {VOCABULARY[digest[i] % len(VOCABULARY)]}")
        i += 1
    return tokens[:count]


def simulated_text(prompt: Sequence[PromptMessage], count: int) -> str:
    return "".join(simulated_tokens(prompt, count))


class SimulatedProvider:
    def __init__(self, tokens: int = 40, delay_ms: float = 25.0) -> None:
        self._tokens = tokens
        self._delay_s = delay_ms / 1000

    async def stream(self, prompt: Sequence[PromptMessage]) -> AsyncGenerator[Chunk, None]:
        tokens = simulated_tokens(prompt, self._tokens)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i, token in enumerate(tokens, start=1):
            await asyncio.sleep(max(0.0, started + i * self._delay_s - loop.time()))
            yield Chunk(text=token)
        prompt_chars = sum(len(m.content) for m in prompt)
        yield Chunk(usage=Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=len(tokens)))

    async def aclose(self) -> None:
        return None
