"""`openai`: any OpenAI-compatible Chat Completions server (OpenAI, Azure, vLLM, Ollama,
LM Studio, LiteLLM) through the official SDK.

The SDK retries failed calls (connection errors, 408/409/429/5xx) with backoff, which happens
before the first token by construction: once a stream has started nothing is retried, since the
client has already seen its text. The read timeout bounds every silence, the first token's
included, so a server that never answers fails the reply instead of hanging it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
    ChatCompletionToolParam,
)

from app.domain.dtos import NamedToolChoice
from app.domain.errors import ProviderFailed
from app.domain.language_model import Chunk, PromptMessage, ToolCallDelta, ToolOptions, Usage


def describe(exc: openai.APIError, read_timeout_s: float) -> str:
    """A sentence for the failed reply's `error`, without secrets or stack traces."""
    if isinstance(exc, openai.APITimeoutError):
        return f"the model provider did not answer within {read_timeout_s:g} s"
    if isinstance(exc, openai.APIConnectionError):
        return "the model provider could not be reached"
    if isinstance(exc, openai.APIStatusError):
        return f"the model provider refused the request ({exc.status_code}): {exc.message}"
    return f"the model provider failed mid-reply: {exc.message}"


def message_param(message: PromptMessage) -> ChatCompletionMessageParam:
    """A prompt message as Chat Completions wants it: an assistant's calls with null content
    when it said nothing, a tool result with the id of the call it answers."""
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in message.tool_calls
            ],
        }
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    return {"role": message.role, "content": message.content}  # type: ignore[return-value,misc]


def tool_params(
    tools: ToolOptions,
) -> tuple[list[ChatCompletionToolParam], ChatCompletionToolChoiceOptionParam | openai.Omit]:
    params: list[Any] = [tool.model_dump(exclude_none=True) for tool in tools.tools]
    choice: ChatCompletionToolChoiceOptionParam | openai.Omit = openai.omit
    if isinstance(tools.choice, NamedToolChoice):
        choice = {"type": "function", "function": {"name": tools.choice.function.name}}
    elif tools.choice is not None:
        choice = tools.choice
    return params, choice


def chunks_of(chunk: ChatCompletionChunk) -> list[Chunk]:
    """What one streamed chunk says: text, pieces of tool calls, why the model stopped, which
    model answered, and (in the last one) the usage."""
    found: list[Chunk] = []
    for choice in chunk.choices:
        delta = choice.delta
        calls = tuple(
            ToolCallDelta(
                index=call.index,
                id=call.id,
                name=call.function.name if call.function else None,
                arguments=(call.function.arguments or "") if call.function else "",
            )
            for call in (delta.tool_calls or [])
            if delta is not None
        )
        text = delta.content or "" if delta is not None else ""
        if text or calls or choice.finish_reason:
            found.append(
                Chunk(
                    text=text,
                    tool_calls=calls,
                    finish_reason=choice.finish_reason,
                    model=chunk.model or None,
                )
            )
    if chunk.usage is not None:
        usage = Usage(
            input_tokens=chunk.usage.prompt_tokens, output_tokens=chunk.usage.completion_tokens
        )
        found.append(Chunk(usage=usage, model=chunk.model or None))
    return found


class OpenAIChatProvider:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        max_output_tokens: int | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        self._model = model
        self._max_output_tokens = max_output_tokens
        self._read_timeout_s = read_timeout_s
        self._client = AsyncOpenAI(
            base_url=base_url,
            # Local servers (Ollama, vLLM) need no key, but the SDK insists on one.
            api_key=api_key or "unused",
            timeout=openai.Timeout(read_timeout_s, connect=connect_timeout_s),
            max_retries=max_retries,
        )

    @property
    def model(self) -> str:
        return self._model

    async def stream(
        self, prompt: Sequence[PromptMessage], tools: ToolOptions | None = None
    ) -> AsyncGenerator[Chunk, None]:
        messages = [message_param(m) for m in prompt]
        tool_list, tool_choice = tool_params(tools) if tools else (openai.omit, openai.omit)
        try:
            stream = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=self._max_output_tokens
                if self._max_output_tokens is not None
                else openai.omit,
                tools=tool_list,
                tool_choice=tool_choice,
            )
            async with stream:
                async for chunk in stream:
                    for piece in chunks_of(chunk):
                        yield piece
        except openai.APIError as exc:
            raise ProviderFailed(describe(exc, self._read_timeout_s)) from exc

    async def aclose(self) -> None:
        await self._client.close()
