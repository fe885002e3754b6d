"""What the reply service needs from the reply runtime (`app/replies/`), as protocols: running a
reply apart from any request, and following it from any server process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from app.domain.dtos import FinishReason, MessageDTO, MessageStatus, ToolCall

#: Why a reply stopped before the model finished: a cancel, the server shutting down, the row
#: gone (deleted, or ended elsewhere), or its text refused by the database.
StopReason = Literal["cancelled", "shutdown", "gone", "unstorable"]


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """How a reply ended: what the final write stores."""

    status: MessageStatus
    content: str
    tokens: int
    input_tokens: int
    error: str | None = None
    finish_reason: FinishReason = "stop"
    model: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    #: The input tokens the usage ledger counts: `input_tokens` when the provider reported them,
    #: else an estimate from the prompt (the message keeps what was reported: 0). None: the same.
    counted_input_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What a reply used, for the usage ledger, when its message was deleted while it streamed
    and so has no final state to carry it: deleting must not take tokens back."""

    message_id: int
    user_id: int
    session_id: int
    created_at: datetime
    model: str | None
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Progress:
    """What a follower learns: text after its offset, and, once, the reply's final state.
    Nothing at all means "still streaming, nothing new" (a keep-alive)."""

    text: str = ""
    final: MessageDTO | None = None
    gone: bool = False


class LiveReply(Protocol):
    """The generating side of one reply, in the process that runs it."""

    @property
    def text(self) -> str: ...

    @property
    def stop_reason(self) -> StopReason | None: ...

    def append(self, text: str) -> None:
        """Publish text to followers now; it is persisted with the next batch."""
        ...

    def stoppable(self) -> AbstractAsyncContextManager[None]:
        """Inside this block a stop (cancel, shutdown) interrupts the running task; the block
        then ends quietly and `stop_reason` says why."""
        ...

    async def end(self, outcome: ReplyOutcome | None) -> None:
        """Save the final state (batched with other replies ending now), then release the
        followers. None: the reply is gone (deleted, or ended elsewhere); nothing to save."""
        ...


class ReplyHub(Protocol):
    """Runs replies independently of requests and fans their progress out to followers in every
    server process."""

    @property
    def worker_key(self) -> int:
        """This process's liveness key, stamped on the replies it runs; raises `Unavailable`
        while replies cannot be served (the database is not reachable yet)."""
        ...

    def launch(self, message_id: int, run: Callable[[LiveReply], Awaitable[None]]) -> None: ...

    def follow(self, message_id: int, offset: int) -> AsyncIterator[Progress]:
        """Text after `offset` as it arrives, then the final state; from any process."""
        ...

    async def request_cancel(self, message_id: int) -> None:
        """Ask whichever process generates the reply to stop it."""
        ...

    async def record_usage(self, usage: UsageRecord) -> None:
        """Put a deleted reply's usage in the ledger (unless its account is gone). An end
        recorded already (a sweep failed the reply) keeps the larger counts."""
        ...

    async def wait_finished(self, message_id: int, timeout_s: float) -> MessageDTO | None: ...
