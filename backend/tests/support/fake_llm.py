"""A real HTTP server on 127.0.0.1 speaking the Chat Completions streaming wire format.

The `openai` provider is tested against it: SSE `data:` chunks, tool calls streamed as OpenAI
streams them (`delta.tool_calls[i]` with index, id, type and function name first, then fragments
of the arguments; `finish_reason: "tool_calls"`), the final usage chunk that
`stream_options.include_usage` asks for, `[DONE]`, in-stream `error` objects, HTTP errors with
retry hints, connections dropped mid-stream, and a server that never answers. Every request is
recorded (path, headers, JSON body) so tests can assert exactly what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr


@dataclass
class Call:
    """A tool call the model makes; its arguments are streamed `piece` characters at a time."""

    id: str
    name: str
    arguments: str
    piece: int = 5


@dataclass
class Script:
    """How the server answers one request."""

    chunks: list[str] = field(default_factory=lambda: ["Hello", ",", " world"])
    delay_s: float = 0.0
    usage: tuple[int, int] | None = (12, 3)
    status: int = 200
    error_after: str | None = None
    drop_after: bool = False
    hang: bool = False
    tool_calls: list[Call] = field(default_factory=list)
    model: str = "fake-model"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


def _chunk(delta: dict[str, Any], finish: str | None = None, model: str = "fake-model") -> Any:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _deltas(script: Script) -> list[dict[str, Any]]:
    """The stream's deltas as OpenAI sends them: the role first (with null content and the first
    call's head when the reply only calls tools), the text, then each call's head and pieces."""
    deltas: list[dict[str, Any]] = []
    if script.chunks or not script.tool_calls:
        deltas.append({"role": "assistant", "content": ""})
    deltas += [{"content": text} for text in script.chunks]
    for index, call in enumerate(script.tool_calls):
        head = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        if deltas:
            deltas.append({"tool_calls": [head]})
        else:
            deltas.append(
                {"role": "assistant", "content": None, "tool_calls": [head], "refusal": None}
            )
        for start in range(0, len(call.arguments), call.piece):
            piece = call.arguments[start : start + call.piece]
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return deltas


class FakeChatServer:
    def __init__(self) -> None:
        self.scripts: deque[Script] = deque()
        self.default = Script()
        self.requests: list[Received] = []
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))))
            self.requests.append(Received(path, headers, body))
            script = self.scripts.popleft() if self.scripts else self.default
            closed = asyncio.create_task(reader.read())  # b"" once the client hangs up
            try:
                await self._answer(script, writer, closed)
            finally:
                closed.cancel()
        except (ConnectionError, asyncio.IncompleteReadError):
            self._client_left()
        finally:
            writer.close()

    def _client_left(self) -> None:
        self.disconnects += 1
        self.disconnected.set()

    async def _answer(
        self, script: Script, writer: asyncio.StreamWriter, closed: asyncio.Task[bytes]
    ) -> None:
        if script.hang:
            await closed
            self._client_left()
            return
        if script.status != 200:
            payload = json.dumps(
                {"error": {"message": f"fake failure {script.status}", "type": "server_error"}}
            ).encode()
            writer.write(
                f"HTTP/1.1 {script.status} Error\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nretry-after-ms: 10\r\nConnection: close\r\n"
                "\r\n".encode()
                + payload
            )
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )

        def send(data: str) -> None:
            raw = data.encode()
            writer.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")

        events = [_chunk(delta, model=script.model) for delta in _deltas(script)]
        for event in events:
            if script.delay_s:
                done, _ = await asyncio.wait({closed}, timeout=script.delay_s)
                if done:
                    self._client_left()
                    return
            send(f"data: {json.dumps(event)}\n\n")
            await writer.drain()
        if script.error_after is not None:
            error = {"error": {"message": script.error_after, "type": "server_error"}}
            send(f"data: {json.dumps(error)}\n\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return
        if script.drop_after:
            writer.transport.abort()
            return
        finish = "tool_calls" if script.tool_calls else "stop"
        send(f"data: {json.dumps(_chunk({}, finish, script.model))}\n\n")
        if script.usage is not None:
            prompt, completion = script.usage
            usage = {
                **_chunk({}, model=script.model),
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
            send(f"data: {json.dumps(usage)}\n\n")
        send("data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def settings_for(llm: FakeChatServer) -> dict[str, Any]:
    """App settings that point the `openai` provider at this local server."""
    return {
        "llm_provider": "openai",
        "llm_base_url": llm.url,
        "llm_api_key": SecretStr("sk-test-key"),
        "llm_model": "fake-model",
        "llm_max_retries": 0,
        "llm_read_timeout_s": 5.0,
    }
