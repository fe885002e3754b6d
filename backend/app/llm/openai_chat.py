"""`openai`: any OpenAI-compatible Chat Completions server (OpenAI, Azure, vLLM, Ollama,
LM Studio, LiteLLM) through the official SDK.

The SDK retries failed calls (connection errors, 408/409/429/5xx) with backoff, which happens
before the first token by construction: once a stream has started nothing is retried, since the
client has already seen its text. The read timeout bounds every silence, the first token's
included, so a server that never answers fails the reply instead of hanging it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from app.domain.errors import ProviderFailed
from app.domain.language_model import Chunk, PromptMessage, Usage


def describe(exc: openai.APIError, read_timeout_s: float) -> str:
    """A sentence for the failed reply's `error`, without secrets or stack traces."""
    if isinstance(exc, openai.APITimeoutError):
        return f"the model provider did not answer within {read_timeout_s:g} s"
    if isinstance(exc, openai.APIConnectionError):
        return "the model provider could not be reached"
    if isinstance(exc, openai.APIStatusError):
        return f"the model provider refused the request ({exc.status_code}): {exc.message}"
    return f"the model provider failed mid-reply: {exc.message}"


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

    async def stream(self, prompt: Sequence[PromptMessage]) -> AsyncGenerator[Chunk, None]:
        messages: list[ChatCompletionMessageParam] = [
            {"role": m.role, "content": m.content}  # type: ignore[misc]
            for m in prompt
        ]
        try:
            stream = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=self._max_output_tokens
                if self._max_output_tokens is not None
                else openai.omit,
            )
            async with stream:
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta is not None and choice.delta.content:
                            yield Chunk(text=choice.delta.content)
                    if chunk.usage is not None:
                        yield Chunk(
                            usage=Usage(
                                input_tokens=chunk.usage.prompt_tokens,
                                output_tokens=chunk.usage.completion_tokens,
                            )
                        )
        except openai.APIError as exc:
            raise ProviderFailed(describe(exc, self._read_timeout_s)) from exc

    async def aclose(self) -> None:
        await self._client.close()
