"""Agent replies: save the user's message, stream the model's answer, save it with its usage.

The flow never holds a database connection while the model thinks: one statement saves the user
message, creates the `streaming` assistant row and reads the context (the branch the reply
answers); the model is then streamed with no connection held; the reply runtime persists
progress, and then the final state, in statements batched across all the replies of the process.

A reply goes under a parent: the session's current message, a message the client names (an
edit is a reply beside the edited message), or none (a new root). Without content it is a
continuation: no user message, the model answers the parent (after tool results, say). A
regeneration is a new reply beside an assistant message, to the same parent.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial

from pydantic import BaseModel

from app.domain import reply_events as ev
from app.domain import rules
from app.domain.dtos import FinishReason, MessageDTO, Principal, ToolCall
from app.domain.errors import Conflict, DomainError, InvalidInput, NotFound, ProviderFailed
from app.domain.language_model import LLMProvider, PromptMessage, ToolOptions, Usage
from app.domain.ports import Exchange, Parent, StartRefusal, UnitOfWork, UnitOfWorkFactory
from app.domain.prompt import ReplyPolicy, build_prompt, estimated_tokens
from app.domain.reply_events import Position, ReplyEvent
from app.domain.reply_runtime import LiveReply, ReplyHub, ReplyOutcome, UsageRecord
from app.domain.rules import Limits, storable_text, validate_content
from app.domain.services.idempotency import IdempotencyPolicy, IdempotentWrites, Replay
from app.domain.services.messages import session_full
from app.domain.services.sessions import session_not_found
from app.domain.services.usage import DailyLimit, check_daily_limit
from app.domain.services.users import KnownUsers, UserService
from app.domain.telemetry import NoReplyObserver, ReplyObserver, ReplyReport
from app.domain.tool_calls import ToolCallAssembler

log = logging.getLogger(__name__)

#: How long a cancel call waits for the generating process to confirm the stop.
CANCEL_WAIT_S = 5.0

SHUTDOWN_ERROR = "the server shut down before the reply finished"
EMPTY_ERROR = "the model returned no text"
INTERNAL_ERROR = "the reply failed because of an internal error"
UNSTORABLE_ERROR = "the reply's text could not be stored"


@dataclass(frozen=True, slots=True)
class StartedReply:
    #: None for a continuation or a regeneration: no user message was saved.
    user_message: MessageDTO | None
    reply: MessageDTO
    #: True when an `Idempotency-Key` retry found this reply already started: join, not launch.
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A reply start sent with an `Idempotency-Key`: the key and the request's fingerprint."""

    key: str
    fingerprint: str


class ReplyStart(BaseModel):
    """What an `Idempotency-Key` records for a reply start: the messages it created (no user
    message for a continuation)."""

    user_message: MessageDTO | None
    reply: MessageDTO


#: The status recorded with a reply start's key: the stream's 200.
REPLY_STATUS = 200


class _NotStarted(Exception):
    """The start statement wrote nothing: why (None: no such session, or it is full)."""

    def __init__(self, refused: StartRefusal | None) -> None:
        super().__init__(refused or "refused")
        self.refused = refused


def _started(result: Exchange | StartRefusal | None) -> Exchange:
    if not isinstance(result, Exchange):
        raise _NotStarted(result)
    return result


class _Busy(Exception):
    """Another reply streams: leave the transaction (it is aborted), then report it."""


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
        daily_limit: DailyLimit | None = None,
    ) -> None:
        self._idempotency = idempotency or IdempotencyPolicy()
        self._daily_limit = daily_limit or DailyLimit()
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
        content: str | None,
        *,
        parent: Parent = "current",
        tools: ToolOptions | None = None,
        idempotency: IdempotentRequest | None = None,
    ) -> StartedReply:
        """Save the user message (if any) and a `streaming` reply under `parent`, then generate
        it in the background.

        Warm, that is one statement on one pooled connection. It locks the session row first
        (as any message does), so two replies racing for one session serialise there; the
        partial unique index on streaming messages turns the loser into a 409, in any process.

        With an `Idempotency-Key`, the key is claimed first and the exchange is created in one
        transaction with the key's record, so a retry finds either nothing (and starts) or the
        reply it started (and joins its stream: `replayed`), never a second model call.
        """
        if content is not None:
            content = validate_content(content)
        elif parent is None:
            raise InvalidInput(
                "content: a new root (parent_id null) starts with the user's message",
                loc=("body", "content"),
            )
        worker_key = self._hub.worker_key  # 503 now, before writing, if replies are not served
        async with self._uow_factory() as uow:
            user_id = await UserService(uow, self._known).resolve(caller)

            async def attempt(uow: UnitOfWork) -> Exchange:
                async def once() -> Exchange | StartRefusal | None:
                    return await uow.messages.start_exchange(
                        user_id,
                        session_id,
                        content,
                        parent,
                        worker_key,
                        self._provider.model,
                        context_limit=self._policy.context_messages,
                        max_messages=self._limits.max_messages_per_session,
                    )

                started = await once()
                if started == "stale":
                    started = await _holding_session(uow, session_id, user_id, once)
                return _started(started)

            try:
                started = await self._begin(uow, user_id, attempt, idempotency)
            except _NotStarted as refused:
                raise await self._refusal(
                    uow, user_id, session_id, refused.refused, parent
                ) from None
        if isinstance(started, StartedReply):
            return started
        return self._launch(user_id, started, content, tools)

    async def regenerate(
        self,
        caller: Principal,
        message_id: int,
        *,
        tools: ToolOptions | None = None,
        idempotency: IdempotentRequest | None = None,
    ) -> StartedReply:
        """A new reply to the same parent as assistant message `message_id`, which stays as
        another branch; the new one becomes current. With an `Idempotency-Key`, a retry joins
        the reply the first request started, as for `start`."""
        worker_key = self._hub.worker_key
        async with self._uow_factory() as uow:
            user_id = await UserService(uow, self._known).resolve(caller)

            async def attempt(uow: UnitOfWork) -> Exchange:
                return _started(
                    await uow.messages.regenerate(
                        user_id,
                        message_id,
                        worker_key,
                        self._provider.model,
                        context_limit=self._policy.context_messages,
                        max_messages=self._limits.max_messages_per_session,
                    )
                )

            try:
                started = await self._begin(uow, user_id, attempt, idempotency)
            except _NotStarted as refused:  # rolled back; the reads below say why
                raise await self._regenerate_refusal(
                    uow, user_id, message_id, refused.refused
                ) from None
        if isinstance(started, StartedReply):
            return started
        return self._launch(user_id, started, None, tools)

    async def _begin(
        self,
        uow: UnitOfWork,
        user_id: int,
        attempt: Callable[[UnitOfWork], Awaitable[Exchange]],
        idempotency: IdempotentRequest | None,
    ) -> Exchange | StartedReply:
        """Run a start statement: after the daily limit's check (under the user's lock) when
        there is a limit, and under the `Idempotency-Key` when one was sent. A started reply
        comes back only when the key replays: the reply to join, not to launch."""

        async def exchange(uow: UnitOfWork) -> Exchange:
            if self._daily_limit.tokens is None:
                return await attempt(uow)
            async with uow.atomic():  # the check and the start, under the user's lock
                await check_daily_limit(uow, user_id, self._daily_limit)
                return await attempt(uow)

        if idempotency is None:
            return await exchange(uow)
        exchanges: list[Exchange] = []

        async def recorded(uow: UnitOfWork) -> ReplyStart:
            started = await exchange(uow)
            exchanges.append(started)
            return ReplyStart(user_message=started.user_message, reply=started.reply)

        outcome = await IdempotentWrites(uow, self._idempotency).run(
            user_id, idempotency.key, idempotency.fingerprint, REPLY_STATUS, recorded
        )
        if isinstance(outcome, Replay):
            replayed = ReplyStart.model_validate_json(outcome.body)
            return StartedReply(replayed.user_message, replayed.reply, replayed=True)
        return exchanges[0]

    async def _regenerate_refusal(
        self, uow: UnitOfWork, user_id: int, message_id: int, refused: StartRefusal | None
    ) -> DomainError:
        """Why no regeneration started: read after the failed statement."""
        target = await uow.messages.get(message_id, user_id)
        if target is None:
            return NotFound(f"message {message_id} not found")
        if refused == "busy":
            running = await uow.messages.streaming_in_session(target.session_id)
            return reply_in_progress(target.session_id, running)
        if target.role != "assistant":
            return Conflict(
                f"message {message_id} is a {target.role} message; only an assistant's "
                "reply can be regenerated (to edit a message, reply to its parent)"
            )
        if target.parent_id is None:
            return Conflict(
                f"message {message_id} answers no message: there is nothing to regenerate it from"
            )
        return session_full(target.session_id, self._limits)

    def _launch(
        self, user_id: int, started: Exchange, content: str | None, tools: ToolOptions | None
    ) -> StartedReply:
        prompt = build_prompt(self._policy, started.context, content)
        run = partial(self._generate, user_id, started.reply, prompt, tools)
        self._hub.launch(started.reply.id, run)
        return StartedReply(started.user_message, started.reply)

    async def _refusal(
        self,
        uow: UnitOfWork,
        user_id: int,
        session_id: int,
        refused: StartRefusal | None,
        parent: Parent,
    ) -> DomainError:
        """Why no reply started: read after the failed statement (its transaction is over)."""
        if refused == "busy":
            return reply_in_progress(
                session_id, await uow.messages.streaming_in_session(session_id)
            )
        if refused == "no_parent":
            return InvalidInput(
                f"parent_id: message {parent} is not a message of session {session_id}",
                loc=("body", "parent_id"),
            )
        if refused == "nothing_to_continue":
            return InvalidInput(
                f"content: session {session_id} has no message to continue; send the user's "
                "message",
                loc=("body", "content"),
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
        if after.offset is None and after.calls_seen is None:
            yield ev.start_event(reply)
        # After a tool call event the client has all the text: only calls and the end remain.
        text_done = after.calls_seen is not None
        offset = ev.MAX_OFFSET if text_done else after.offset or 0
        async for progress in self._hub.follow(reply.id, offset):
            if progress.text and not text_done:
                offset += len(progress.text)
                yield ev.delta_event(progress.text, offset)
            if progress.final is not None:
                calls = progress.final.tool_calls or []
                for index in range(after.calls_seen or 0, len(calls)):
                    yield ev.tool_call_event(calls[index], index)
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
        self,
        user_id: int,
        reply: MessageDTO,
        prompt: list[PromptMessage],
        tools: ToolOptions | None,
        live: LiveReply,
    ) -> None:
        """Run the model into `live`, then save how it ended. Never raises: a reply always ends
        in a final state."""
        usage: Usage | None = None
        chunks = 0
        error: str | None = None
        calls = ToolCallAssembler()
        finish: str | None = None
        model: str | None = None
        began = time.monotonic()
        first_token: float | None = None
        self._observer.started(reply.id)
        try:
            async with live.stoppable(), aclosing(self._provider.stream(prompt, tools)) as stream:
                async for chunk in stream:
                    if (chunk.text or chunk.tool_calls) and first_token is None:
                        first_token = time.monotonic() - began
                    if chunk.text:
                        chunks += 1
                        live.append(storable_text(chunk.text))
                    if chunk.tool_calls:
                        chunks += 1
                        calls.add(chunk.tool_calls)
                    if chunk.finish_reason:
                        finish = chunk.finish_reason
                    if chunk.model:
                        model = chunk.model
                    if chunk.usage is not None:
                        usage = chunk.usage
        except ProviderFailed as exc:
            error = str(exc) or "the model provider failed"
        except Exception:
            log.exception("reply %s failed", reply.id)
            error = INTERNAL_ERROR
        outcome = None
        model = storable_text(model or self._provider.model)[: rules.MODEL_NAME_MAX_CHARS]
        # Without a usage report (the stream closed before it: cancelled, failed, deleted),
        # a token per chunk (what Chat Completions streams send), and for the usage ledger the
        # prompt's estimate; the message keeps what was reported.
        output = usage.output_tokens if usage else chunks
        reported_input = usage.input_tokens if usage else 0
        counted_input = usage.input_tokens if usage else estimated_tokens(prompt)
        if live.stop_reason != "gone":
            ended = _outcome(live, output, reported_input, error, calls.calls(reply.id), finish)
            outcome = dataclasses.replace(ended, model=model, counted_input_tokens=counted_input)
        try:
            await live.end(outcome)
            if outcome is None:  # deleted while it streamed: what it used is still usage
                await self._record_gone(user_id, reply, model, counted_input, output)
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

    async def _record_gone(
        self, user_id: int, reply: MessageDTO, model: str, input_tokens: int, output_tokens: int
    ) -> None:
        """Counted as a cancelled reply is: the provider's report if it came, else a token per
        chunk and the prompt's estimate."""
        record = UsageRecord(
            message_id=reply.id,
            user_id=user_id,
            session_id=reply.session_id,
            created_at=reply.created_at,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        try:
            await self._hub.record_usage(record)
        except Exception:  # the reply is over either way; say what was not recorded
            log.exception("reply %s: the usage of the deleted reply was not recorded", reply.id)


def _outcome(
    live: LiveReply,
    tokens: int,
    input_tokens: int,
    error: str | None,
    calls: tuple[ToolCall, ...],
    finish: str | None,
) -> ReplyOutcome:
    text = live.text
    if live.stop_reason == "cancelled":
        return ReplyOutcome("cancelled", text, tokens, input_tokens, finish_reason="cancelled")
    failed = error
    if live.stop_reason == "shutdown":
        failed = SHUTDOWN_ERROR
    elif live.stop_reason == "unstorable":
        failed = UNSTORABLE_ERROR
    elif error is None and not text and not calls:
        failed = EMPTY_ERROR
    if failed is not None:
        return ReplyOutcome("failed", text, tokens, input_tokens, failed, finish_reason="error")
    return ReplyOutcome(
        "completed",
        text,
        tokens,
        input_tokens,
        finish_reason=_finish_reason(finish, calls),
        tool_calls=calls,
    )


def _finish_reason(said: str | None, calls: tuple[ToolCall, ...]) -> FinishReason:
    """A reply with calls stopped to have them run, unless it ran out of tokens (its calls may
    then be cut short); a filtered one says so; anything else simply stopped."""
    if said == "length":
        return "length"
    if calls:
        return "tool_calls"
    if said == "content_filter":
        return "content_filter"
    return "stop"


async def _holding_session(
    uow: UnitOfWork,
    session_id: int,
    user_id: int,
    attempt: Callable[[], Awaitable[Exchange | StartRefusal | None]],
) -> Exchange | StartRefusal | None:
    """The start again, inside a transaction holding the session's lock first: its snapshot
    then sees the message the session points at (the first try's could not)."""
    try:
        async with uow.atomic():
            if not await uow.sessions.lock(session_id, user_id):
                return None
            started = await attempt()
            if started == "busy":
                raise _Busy
            return started
    except _Busy:
        return "busy"


def reply_in_progress(session_id: int, running: int | None) -> Conflict:
    return Conflict(
        f"session {session_id} already has a reply streaming (message {running}); "
        "wait for it to finish or cancel it",
        running_message_id=running,
    )
