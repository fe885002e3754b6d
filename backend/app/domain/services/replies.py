"""Agent replies: save the user's message, stream the model's answer, save it with its usage.

The flow never holds a database connection while the model thinks: one statement saves the user
message, creates the `streaming` assistant row and reads the context window; the model is then
streamed with no connection held; the reply runtime persists progress, and then the final state,
in statements batched across all the replies of the process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Literal

from pydantic import BaseModel

from app.domain import reply_events as ev
from app.domain.dtos import MessageDTO, Principal, Role
from app.domain.errors import Conflict, DomainError, NotFound, ProviderFailed
from app.domain.language_model import LLMProvider, PromptMessage, Usage
from app.domain.ports import Exchange, UnitOfWork, UnitOfWorkFactory
from app.domain.reply_events import Position, ReplyEvent
from app.domain.reply_runtime import LiveReply, ReplyHub, ReplyOutcome
from app.domain.rules import Limits, storable_text, validate_content
from app.domain.services.idempotency import IdempotencyPolicy, IdempotentWrites, Replay
from app.domain.services.messages import session_full
from app.domain.services.sessions import session_not_found
from app.domain.services.users import KnownUsers, UserService
from app.domain.telemetry import NoReplyObserver, ReplyObserver, ReplyReport

log = logging.getLogger(__name__)

#: How long a cancel call waits for the generating process to confirm the stop.
CANCEL_WAIT_S = 5.0

SHUTDOWN_ERROR = "the server shut down before the reply finished"
EMPTY_ERROR = "the model returned no text"
INTERNAL_ERROR = "the reply failed because of an internal error"
UNSTORABLE_ERROR = "the reply's text could not be stored"


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """What goes into a prompt: an optional system prompt, then the newest messages that fit."""

    system_prompt: str | None = None
    context_chars: int = 32_000
    context_messages: int = 50


@dataclass(frozen=True, slots=True)
class StartedReply:
    user_message: MessageDTO
    reply: MessageDTO
    #: True when an `Idempotency-Key` retry found this reply already started: join, not launch.
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A reply start sent with an `Idempotency-Key`: the key and the request's fingerprint."""

    key: str
    fingerprint: str


class ReplyStart(BaseModel):
    """What an `Idempotency-Key` records for a reply start: the two messages it created."""

    user_message: MessageDTO
    reply: MessageDTO


#: The status recorded with a reply start's key: the stream's 200.
REPLY_STATUS = 200


class _NotStarted(Exception):
    """The start statement wrote nothing: the session is busy, full or not the caller's."""

    def __init__(self, busy: bool) -> None:
        super().__init__("busy" if busy else "refused")
        self.busy = busy


def _started(result: Exchange | Literal["busy"] | None) -> Exchange:
    if result is None or result == "busy":
        raise _NotStarted(busy=result == "busy")
    return result


def build_prompt(
    policy: ReplyPolicy, newest_first: Sequence[tuple[Role, str]], prompt: str
) -> list[PromptMessage]:
    """The new user message always; older ones newest-first while the budget lasts; then sent
    in chronological order. Tool messages are left out: they need call ids we do not keep."""
    picked = [PromptMessage("user", prompt)]
    used = len(prompt)
    for role, content in newest_first[: max(policy.context_messages - 1, 0)]:
        if role == "tool":
            continue
        used += len(content)
        if used > policy.context_chars:
            break
        picked.append(PromptMessage(role, content))
    picked.reverse()
    if policy.system_prompt:
        picked.insert(0, PromptMessage("system", policy.system_prompt))
    return picked


class ReplyService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        provider: LLMProvider,
        hub: ReplyHub,
        policy: ReplyPolicy | None = None,
        limits: Limits | None = None,
        known: KnownUsers | None = None,
        observer: ReplyObserver | None = None,
        idempotency: IdempotencyPolicy | None = None,
    ) -> None:
        self._idempotency = idempotency or IdempotencyPolicy()
        self._uow_factory = uow_factory
        self._observer = observer or NoReplyObserver()
        self._known = known if known is not None else KnownUsers()
        self._provider = provider
        self._hub = hub
        self._policy = policy or ReplyPolicy()
        self._limits = limits or Limits()

    async def start(
        self,
        caller: Principal,
        session_id: int,
        content: str,
        idempotency: IdempotentRequest | None = None,
    ) -> StartedReply:
        """Save the user message and a `streaming` reply, then generate it in the background.

        Warm, that is one statement on one pooled connection. It locks the session row first
        (as any message does), so two replies racing for one session serialise there; the
        partial unique index on streaming messages turns the loser into a 409, in any process.

        With an `Idempotency-Key`, the key is claimed first and the exchange is created in one
        transaction with the key's record, so a retry finds either nothing (and starts) or the
        reply it started (and joins its stream: `replayed`), never a second model call.
        """
        content = validate_content(content)
        worker_key = self._hub.worker_key  # 503 now, before writing, if replies are not served
        async with self._uow_factory() as uow:
            user_id = await UserService(uow, self._known).resolve(caller)
            try:
                if idempotency is None:
                    started = _started(
                        await self._exchange(uow, user_id, session_id, content, worker_key)
                    )
                else:
                    outcome = await self._start_once(
                        uow, user_id, session_id, content, worker_key, idempotency
                    )
                    if isinstance(outcome, Replay):
                        recorded = ReplyStart.model_validate_json(outcome.body)
                        return StartedReply(recorded.user_message, recorded.reply, replayed=True)
                    started = outcome
            except _NotStarted as refused:
                raise await self._refusal(uow, user_id, session_id, refused.busy) from None
        prompt = build_prompt(self._policy, started.context, content)
        self._hub.launch(started.reply.id, partial(self._generate, started.reply, prompt))
        return StartedReply(started.user_message, started.reply)

    async def _exchange(
        self, uow: UnitOfWork, user_id: int, session_id: int, content: str, worker_key: int
    ) -> Exchange | Literal["busy"] | None:
        return await uow.messages.start_exchange(
            user_id,
            session_id,
            content,
            worker_key,
            context_limit=self._policy.context_messages,
            max_messages=self._limits.max_messages_per_session,
        )

    async def _start_once(
        self,
        uow: UnitOfWork,
        user_id: int,
        session_id: int,
        content: str,
        worker_key: int,
        request: IdempotentRequest,
    ) -> Exchange | Replay:
        exchanges: list[Exchange] = []

        async def action(uow: UnitOfWork) -> ReplyStart:
            exchange = _started(await self._exchange(uow, user_id, session_id, content, worker_key))
            exchanges.append(exchange)
            return ReplyStart(user_message=exchange.user_message, reply=exchange.reply)

        outcome = await IdempotentWrites(uow, self._idempotency).run(
            user_id, request.key, request.fingerprint, REPLY_STATUS, action
        )
        return outcome if isinstance(outcome, Replay) else exchanges[0]

    async def _refusal(
        self, uow: UnitOfWork, user_id: int, session_id: int, busy: bool
    ) -> DomainError:
        """Why no reply started: read after the failed statement (its transaction is over)."""
        if busy:
            return reply_in_progress(
                session_id, await uow.messages.streaming_in_session(session_id)
            )
        if await uow.sessions.message_count(session_id, user_id) is None:
            return session_not_found(session_id)
        return session_full(session_id, self._limits)

    async def find(self, caller: Principal, message_id: int) -> MessageDTO:
        async with self._uow_factory() as uow:
            user_id = await UserService(uow, self._known).resolve(caller)
            message = await uow.messages.get(message_id, user_id)
        if message is None:
            raise NotFound(f"message {message_id} not found")
        return message

    async def find_reply(self, caller: Principal, message_id: int) -> MessageDTO:
        """An assistant message, whose text has a stream; any other message has none."""
        message = await self.find(caller, message_id)
        if message.role != "assistant":
            raise Conflict(
                f"message {message_id} is a {message.role} message, not an assistant reply; "
                "only replies have a stream",
                message_id=message_id,
                role=message.role,
            )
        return message

    async def events(
        self, reply: MessageDTO, after: Position, user_message: MessageDTO | None = None
    ) -> AsyncIterator[ReplyEvent | None]:
        """The stream of `reply` from just after `after`: live while it streams, else a replay.
        None: nothing new for a while, but the reply is alive (send a keep-alive)."""
        if after.ended:
            return
        if user_message is not None:
            yield ev.user_event(user_message)
        if after.offset is None:
            yield ev.start_event(reply)
        offset = after.offset or 0
        async for progress in self._hub.follow(reply.id, offset):
            if progress.text:
                offset += len(progress.text)
                yield ev.delta_event(progress.text, offset)
            if progress.final is not None:
                yield ev.final_event(progress.final)
                return
            if progress.gone:
                yield ev.gone_event(offset)
                return
            if not progress.text:
                yield None

    async def cancel(self, caller: Principal, message_id: int) -> MessageDTO:
        """Stop a streaming reply, wherever it runs; answers with its final state."""
        reply = await self.find(caller, message_id)
        if reply.status == "cancelled":
            return reply
        if reply.status != "streaming":
            raise Conflict(
                f"message {message_id} is {reply.status}, not streaming; nothing to cancel",
                message_id=message_id,
                message_status=reply.status,
            )
        await self._hub.request_cancel(message_id)
        final = await self._hub.wait_finished(message_id, CANCEL_WAIT_S)
        return final or await self.find(caller, message_id)

    async def _generate(
        self, reply: MessageDTO, prompt: list[PromptMessage], live: LiveReply
    ) -> None:
        """Run the model into `live`, then save how it ended. Never raises: a reply always ends
        in a final state."""
        usage: Usage | None = None
        chunks = 0
        error: str | None = None
        began = time.monotonic()
        first_token: float | None = None
        self._observer.started(reply.id)
        try:
            async with live.stoppable(), aclosing(self._provider.stream(prompt)) as stream:
                async for chunk in stream:
                    if chunk.text:
                        if first_token is None:
                            first_token = time.monotonic() - began
                        chunks += 1
                        live.append(storable_text(chunk.text))
                    if chunk.usage is not None:
                        usage = chunk.usage
        except ProviderFailed as exc:
            error = str(exc) or "the model provider failed"
        except Exception:
            log.exception("reply %s failed", reply.id)
            error = INTERNAL_ERROR
        gone = live.stop_reason == "gone"
        outcome = None if gone else _outcome(live, usage, chunks, error)
        try:
            await live.end(outcome)
        finally:
            self._observer.ended(
                ReplyReport(
                    message_id=reply.id,
                    outcome=outcome.status if outcome is not None else "deleted",
                    duration_s=time.monotonic() - began,
                    time_to_first_token_s=first_token,
                    input_tokens=outcome.input_tokens if outcome is not None else 0,
                    output_tokens=outcome.tokens if outcome is not None else chunks,
                )
            )


def _outcome(live: LiveReply, usage: Usage | None, chunks: int, error: str | None) -> ReplyOutcome:
    text = live.text
    # Without a usage report (cancelled or broken streams), count the chunks: one token each
    # is what Chat Completions streams send.
    tokens = usage.output_tokens if usage else chunks
    input_tokens = usage.input_tokens if usage else 0
    if live.stop_reason == "cancelled":
        return ReplyOutcome("cancelled", text, tokens, input_tokens)
    if live.stop_reason == "shutdown":
        return ReplyOutcome("failed", text, tokens, input_tokens, SHUTDOWN_ERROR)
    if live.stop_reason == "unstorable":
        return ReplyOutcome("failed", text, tokens, input_tokens, UNSTORABLE_ERROR)
    if error is not None:
        return ReplyOutcome("failed", text, tokens, input_tokens, error)
    if not text:
        return ReplyOutcome("failed", text, tokens, input_tokens, EMPTY_ERROR)
    return ReplyOutcome("completed", text, tokens, input_tokens)


def reply_in_progress(session_id: int, running: int | None) -> Conflict:
    return Conflict(
        f"session {session_id} already has a reply streaming (message {running}); "
        "wait for it to finish or cancel it",
        running_message_id=running,
    )
