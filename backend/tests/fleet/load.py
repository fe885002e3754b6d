"""A bounded load generator for the fleet scenarios: CRUD clients and streaming-reply clients,
httpx over HAProxy, that behave as the README asks clients to (reconnect with `Last-Event-ID`
when a stream ends without a final event; retry a failed POST with its `Idempotency-Key`), and
count what happened. Bounded in count and time; it talks only to the URL it is given (the
test's own HAProxy on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.sse import Event, events

Headers = dict[str, str]
#: No request may take longer than this: longer is a hang.
REQUEST_TIMEOUT_S = 15.0
#: How long clients get to finish what they are doing once told to stop.
FINISH_S = 60.0
#: Attempts for one logical operation (the first and its retries) and for one reply's stream.
MAX_ATTEMPTS = 40


@dataclass
class Figures:
    """What a scenario counts; `line()` is what it prints."""

    scenario: str
    requests: int = 0  # non-streaming requests sent (retries included)
    failures: int = 0  # of those: no answer, a 5xx other than 503 + Retry-After, a 4xx
    unavailable: int = 0  # of those: 503 with Retry-After (the database away)
    retried: int = 0  # operations that succeeded on a retry with the same Idempotency-Key
    gave_up: int = 0  # operations that never succeeded within their attempts / the deadline
    replies: int = 0  # replies followed to their final event
    replies_failed: int = 0  # of those: ended `failed` (`error` event)
    unfinished: int = 0  # replies whose final event never came
    resumed: int = 0  # reconnections of a reply stream (Last-Event-ID, or the POST replayed)
    duplicates: int = 0  # deltas that repeated text already received
    gaps: int = 0  # deltas that skipped text
    mismatches: int = 0  # replies whose received text is not the stored message
    recovery_s: float | None = None
    examples: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def note(self, example: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(example)

    def line(self) -> str:
        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        extra = "".join(f" {key}={value}" for key, value in self.extra.items())
        return (
            f"fleet scenario [{self.scenario}]: requests={self.requests} "
            f"failures={self.failures} unavailable_503={self.unavailable} "
            f"retried_ok={self.retried} gave_up={self.gave_up} replies={self.replies} "
            f"replies_failed={self.replies_failed} unfinished={self.unfinished} "
            f"resumed={self.resumed} duplicates={self.duplicates} gaps={self.gaps} "
            f"text_mismatches={self.mismatches} recovery_s={recovery}{extra}"
        )


@dataclass
class ReplyOutcome:
    message_id: int | None
    final: Event | None
    text: str
    resumed: int
    broken: int  # how many of its streams broke off (a transport error, not a clean end)
    ended_at: float = field(default_factory=time.monotonic)


class Load:
    def __init__(
        self,
        url: str,
        headers_for: Callable[[str], Headers],
        figures: Figures,
        *,
        deadline_s: float,
        retry: bool,
    ) -> None:
        self.url = url
        self.headers_for = headers_for
        self.figures = figures
        self.retry = retry
        self.deadline = time.monotonic() + deadline_s
        self.stop = asyncio.Event()
        #: Sessions whose creation was acknowledged (201): id → title.
        self.acknowledged: dict[int, str] = {}
        #: Messages whose creation was acknowledged (201): id → content.
        self.acknowledged_messages: dict[int, str] = {}
        self.outcomes: list[ReplyOutcome] = []
        self.streaming = 0  # replies whose stream is open right now
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        self.http = httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits)

    @contextlib.asynccontextmanager
    async def running(self, clients: list[Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
        """The clients run during the block; at its end they are told to stop and finish what
        they are doing (bounded). On a failure they are cancelled; the HTTP client is closed
        either way."""
        tasks = [asyncio.create_task(client) for client in clients]
        try:
            yield
            self.stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), FINISH_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.http.aclose()

    def going(self) -> bool:
        """Clients keep going until told to stop or the deadline."""
        return not self.stop.is_set() and time.monotonic() < self.deadline

    # --- plain requests ----------------------------------------------------------------------

    async def send(
        self, method: str, path: str, headers: Headers, json: Any = None, key: bool = False
    ) -> httpx.Response | None:
        """One logical operation: the request, then (with `retry`) the same request with the
        same Idempotency-Key until it succeeds. None if it never did."""
        if key:
            headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
        for attempt in range(MAX_ATTEMPTS):
            self.figures.requests += 1
            wait = 0.2
            try:
                response = await self.http.request(method, path, headers=headers, json=json)
            except httpx.HTTPError as exc:
                self.figures.failures += 1
                self.figures.note(f"{method} {path}: {exc!r}")
            else:
                if response.status_code < 400:
                    if attempt:
                        self.figures.retried += 1
                    return response
                if response.status_code == 503 and response.headers.get("retry-after"):
                    self.figures.unavailable += 1
                    wait = min(float(response.headers["retry-after"]), 1.0)
                elif response.status_code == 409 and attempt:
                    pass  # the first attempt with this key is still being answered
                else:
                    self.figures.failures += 1
                    self.figures.note(f"{method} {path}: {response.status_code} {response.text}")
            if not self.retry or time.monotonic() > self.deadline + 20:
                break
            await asyncio.sleep(wait)
        self.figures.gave_up += 1
        return None

    async def crud_client(self, name: str, pause_s: float = 0.02) -> None:
        """Sessions and messages, created, read and listed, until told to stop."""
        headers = self.headers_for(name)
        step = 0
        while self.going():
            step += 1
            title = f"{name}-{step}"
            created = await self.send(
                "POST", "/api/sessions/", headers, json={"title": title}, key=True
            )
            if created is None:
                continue
            sid = created.json()["id"]
            self.acknowledged[sid] = title
            note = f"{title} note"
            added = await self.send(
                "POST",
                f"/api/messages/?session_id={sid}",
                headers,
                json={"role": "user", "content": note},
                key=True,
            )
            if added is not None:
                self.acknowledged_messages[added.json()["id"]] = note
            await self.send("GET", f"/api/sessions/{sid}", headers)
            await self.send("GET", f"/api/messages/?session_id={sid}", headers)
            await asyncio.sleep(pause_s)

    # --- replies -------------------------------------------------------------------------

    async def reply_client(self, name: str, *, once: bool = False) -> None:
        """Replies one after another in one session, each followed to its end."""
        headers = self.headers_for(name)
        created = await self.send("POST", "/api/sessions/", headers, json={"title": name}, key=True)
        if created is None:
            return
        sid = created.json()["id"]
        turn = 0
        while self.going():
            turn += 1
            outcome = await self.follow_reply(sid, f"{name} turn {turn}", headers)
            self.outcomes.append(outcome)
            await self.check(outcome, headers)
            if once:
                return

    async def follow_reply(self, sid: int, content: str, headers: Headers) -> ReplyOutcome:
        """Start a reply and read it to its final event, reconnecting as a client must."""
        key = {**headers, "Idempotency-Key": str(uuid.uuid4())}
        message_id: int | None = None
        last_id = ""
        text = ""
        resumed = broken = 0
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                resumed += 1
                self.figures.resumed += 1
            if message_id is None:
                request = self.http.build_request(
                    "POST", f"/api/sessions/{sid}/replies", json={"content": content}, headers=key
                )
            else:
                request = self.http.build_request(
                    "GET",
                    f"/api/messages/{message_id}/stream",
                    headers={**headers, "Last-Event-ID": last_id},
                )
            try:
                response = await self.http.send(request, stream=True)
            except httpx.HTTPError as exc:
                broken += 1
                self.figures.note(f"reply {content!r}: no answer: {exc!r}")
                await asyncio.sleep(0.2)
                continue
            self.streaming += 1
            try:
                if response.status_code != 200:
                    await response.aread()
                    self.figures.note(f"reply {content!r}: {response.status_code} {response.text}")
                    await asyncio.sleep(1.0 if response.status_code == 503 else 0.2)
                    continue
                async for event in events(response):
                    if event.event == "message":
                        message_id = event.data["id"]
                    elif event.event == "delta":
                        end = int(event.id)
                        start = end - len(event.data["text"])
                        if start < len(text):
                            self.figures.duplicates += 1
                        elif start > len(text):
                            self.figures.gaps += 1
                        text = text[:start] + event.data["text"] if start <= len(text) else text
                    elif event.event in {"done", "error"}:
                        return ReplyOutcome(message_id, event, text, resumed, broken)
                    last_id = event.id
            except httpx.HTTPError as exc:
                broken += 1
                self.figures.note(f"reply {content!r}: stream broke: {exc!r}")
            finally:
                self.streaming -= 1
                await response.aclose()
        return ReplyOutcome(message_id, None, text, resumed, broken)

    async def check(self, outcome: ReplyOutcome, headers: Headers) -> None:
        """Count the reply and compare the text received with the stored message: equal for a
        completed reply; for a failed one the stored text is a prefix of what was received (a
        killed node may have streamed tokens it never got to store: `unsaved_chars`)."""
        if outcome.final is None or outcome.message_id is None:
            self.figures.unfinished += 1
            self.figures.note(f"reply {outcome.message_id}: no final event")
            return
        self.figures.replies += 1
        failed = outcome.final.event == "error"
        final = outcome.final.data["message"] if failed else outcome.final.data
        if failed:
            self.figures.replies_failed += 1
            self.figures.note(f"reply {outcome.message_id} failed: {outcome.final.data['detail']}")
        stored = await self.send("GET", f"/api/messages/{outcome.message_id}", headers)
        content = stored.json()["content"] if stored is not None else None
        if content is None or final["content"] != content:
            exact = False
        elif failed:
            exact = outcome.text.startswith(content)
            unsaved = self.figures.extra.get("unsaved_chars", 0)
            self.figures.extra["unsaved_chars"] = unsaved + len(outcome.text) - len(content)
        else:
            exact = outcome.text == content
        if not exact:
            self.figures.mismatches += 1
            self.figures.note(f"reply {outcome.message_id}: text differs from the stored message")


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll `condition` until true (bounded); the seconds it took."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - began
