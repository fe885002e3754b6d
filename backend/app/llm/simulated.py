"""`simulated`: a stand-in model for development, tests and benchmarks. It is not an LLM.

It streams a deterministic reply built from the prompt (the same prompt always gives the same
text), one token every `delay_ms` on a fixed schedule (so a slow event loop shows up as
lateness, as it would against a real model), then reports usage like a real provider.

It calls tools deterministically, so an agent loop can be tried without a real model:

- given `tools` (and a `tool_choice` other than `none`) while the newest message is the user's,
  it calls one tool — the one `tool_choice` names, else the first — with the arguments
  `{"input": <the user's text>}`, streamed as Chat Completions streams calls, and stops with
  `finish_reason: "tool_calls"`;
- when the newest message is a tool result, it answers in text that quotes it:
  `The tool <name> returned: "<result>"`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncGenerator, Sequence

from app.domain.dtos import NamedToolChoice
from app.domain.language_model import Chunk, PromptMessage, ToolCallDelta, ToolOptions, Usage

MODEL = "simulated"
#: How much of a tool result the answer quotes.
QUOTE_CHARS = 200

VOCABULARY = (
    "agents", "answer", "carefully", "context", "stream", "tokens", "durable", "every",
    "message", "resumes", "without", "gaps", "database", "holds", "progress", "while",
    "clients", "reconnect", "quickly", "and", "the", "reply", "keeps", "going",
)  # fmt: skip


def _digest(prompt: Sequence[PromptMessage]) -> bytes:
    return hashlib.sha256("\x1f".join(m.content for m in prompt).encode()).digest()


def _tool_answer(prompt: Sequence[PromptMessage]) -> list[str]:
    """Words quoting the newest message, a tool result, and naming the tool it answers."""
    result = prompt[-1]
    name = next(
        (
            call.function.name
            for message in reversed(prompt)
            for call in message.tool_calls
            if call.id == result.tool_call_id
        ),
        "tool",
    )
    quote = result.content[:QUOTE_CHARS]
    words = f'The tool {name} returned: "{quote}"'.split(" ")
    return [words[0]] + [f" {word}" for word in words[1:]]


def simulated_tokens(prompt: Sequence[PromptMessage], count: int) -> list[str]:
    """The reply's tokens: an echo of the newest message, then words picked by its hash; or,
    after a tool result, a sentence quoting it."""
    if prompt and prompt[-1].role == "tool":
        return _tool_answer(prompt)
    newest = prompt[-1].content if prompt else ""
    tokens = ["Simulated", " reply", " to:"] + [f" {word}" for word in newest.split()[:8]]
    digest = _digest(prompt)
    i = 0
    while len(tokens) < count:
        if i == len(digest):
            digest, i = hashlib.sha256(digest).digest(), 0
        tokens.append(f" {VOCABULARY[digest[i] % len(VOCABULARY)]}")
        i += 1
    return tokens[:count]


def simulated_text(prompt: Sequence[PromptMessage], count: int) -> str:
    return "".join(simulated_tokens(prompt, count))


def simulated_call(
    prompt: Sequence[PromptMessage], tools: ToolOptions | None
) -> tuple[str, str, str] | None:
    """The call the simulated model makes, as (id, name, arguments), or None."""
    if tools is None or tools.choice == "none" or not prompt or prompt[-1].role != "user":
        return None
    choice = tools.choice
    name = choice.function.name if isinstance(choice, NamedToolChoice) else None
    name = name or tools.tools[0].function.name
    call_id = f"call_{_digest(prompt).hex()[:24]}"
    return call_id, name, json.dumps({"input": prompt[-1].content})


class SimulatedProvider:
    def __init__(self, tokens: int = 40, delay_ms: float = 25.0) -> None:
        self._tokens = tokens
        self._delay_s = delay_ms / 1000

    @property
    def model(self) -> str:
        return MODEL

    async def stream(
        self, prompt: Sequence[PromptMessage], tools: ToolOptions | None = None
    ) -> AsyncGenerator[Chunk, None]:
        call = simulated_call(prompt, tools)
        if call is not None:
            call_id, name, arguments = call
            # As Chat Completions streams a call: id and name first, then the arguments in
            # pieces (here: one per token slot).
            pieces = [arguments[i : i + 8] for i in range(0, len(arguments), 8)]
            deltas = [ToolCallDelta(0, id=call_id, name=name)]
            deltas += [ToolCallDelta(0, arguments=piece) for piece in pieces]
            async for _ in self._paced(len(deltas)):
                yield Chunk(tool_calls=(deltas.pop(0),), model=MODEL)
            finish = "tool_calls"
            output = len(pieces) + 1
        else:
            tokens = simulated_tokens(prompt, self._tokens)
            async for i in self._paced(len(tokens)):
                yield Chunk(text=tokens[i], model=MODEL)
            finish = "stop"
            output = len(tokens)
        prompt_chars = sum(len(m.content) for m in prompt)
        usage = Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=output)
        yield Chunk(finish_reason=finish, usage=usage, model=MODEL)

    async def _paced(self, count: int) -> AsyncGenerator[int, None]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(count):
            await asyncio.sleep(max(0.0, started + (i + 1) * self._delay_s - loop.time()))
            yield i

    async def aclose(self) -> None:
        return None
