"""What the domain needs from storage, as protocols. `persistence/` implements them with
PostgreSQL; unit tests implement them in memory.

Repositories answer with DTOs: the rows are mapped once, where they are read. Ownership is part
of every query (`user_id` is an argument), so another user's row is simply not found.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from app.domain.dtos import (
    FeedbackDTO,
    FeedbackInDTO,
    MessageDTO,
    Role,
    SessionDTO,
    ThreadMessageDTO,
    ToolCall,
    UsageGrouping,
    UserDTO,
)
from app.domain.import_plan import ImportPlan
from app.domain.language_model import PromptMessage
from app.domain.pagination import PageRequest, SearchCursor
from app.domain.search import Markers

#: Where a reply's new messages go: under the session's current message, under a given
#: message of the session, or (None) at the root.
Parent = int | None | Literal["current"]

#: The statement could not see the message the session pointed at: it was committed while the
#: statement waited for the session's lock, after the statement's snapshot was taken. Nothing
#: was written; run it again holding the session (`SessionRepository.lock`), which sees it.
Stale = Literal["stale"]


@dataclass(frozen=True, slots=True)
class KnownUser:
    id: int
    email: str | None


class UserRepository(Protocol):
    async def find(self, subject: str) -> KnownUser | None: ...

    async def add(self, subject: str, email: str | None) -> int | None:
        """Insert; None when another transaction provisioned the subject (or took the e-mail)
        first."""
        ...

    async def set_email(self, user_id: int, email: str) -> bool:
        """Store the e-mail; False (and nothing changed) when another account holds it."""
        ...

    async def get(self, user_id: int) -> UserDTO | None: ...

    async def delete(self, user_id: int) -> bool:
        """Delete the user (the database cascades to everything it owns) and tell every
        server process, so their caches forget the id."""
        ...


#: A session's new expiry: a time, None (not temporary any more), or "keep" (unchanged).
Expiry = datetime | None | Literal["keep"]


@dataclass(frozen=True, slots=True)
class SessionChanges:
    """What a `PATCH` changes: None (for `expiry`, "keep") leaves a field as it is."""

    title: str | None = None
    current_message_id: int | None = None
    metadata: Mapping[str, str] | None = None
    archived: bool | None = None
    pinned: bool | None = None
    expiry: Expiry = "keep"

    @property
    def is_activity(self) -> bool:
        """A rename, a branch switch or a new expiry moves the session up the list; the rest
        does not."""
        return (
            self.title is not None or self.current_message_id is not None or self.expiry != "keep"
        )


@dataclass(frozen=True, slots=True)
class SessionTree:
    """A session with every message of every branch, by id (parents before children)."""

    session: SessionDTO
    messages: Sequence[MessageDTO]


class SessionRepository(Protocol):
    """Every query treats an expired session (`expires_at` passed) as missing."""

    async def add(
        self,
        user_id: int,
        title: str,
        max_sessions: int,
        metadata: Mapping[str, str] | None = None,
        expires_at: datetime | None = None,
    ) -> SessionDTO | None:
        """Insert and count it on the owner, in one statement; None when the owner already has
        `max_sessions` sessions (expired ones not counted) or no longer exists."""
        ...

    async def add_imported(
        self, user_id: int, plan: ImportPlan, max_sessions: int
    ) -> SessionDTO | None:
        """Like `add`, with the imported session's title, metadata, flags and times (None:
        now). Its messages follow with `MessageRepository.add_tree`."""
        ...

    async def trees(
        self, user_id: int, *, session_id: int | None = None, after: int = 0, limit: int = 1
    ) -> Sequence[SessionTree]:
        """One statement: the session `session_id` with its messages, or (None) up to `limit`
        of the caller's sessions with ids above `after`, by id, with theirs."""
        ...

    async def session_count(self, user_id: int) -> int | None:
        """The owner's session counter; None when the user does not exist."""
        ...

    async def get(self, session_id: int, user_id: int) -> SessionDTO | None: ...

    async def list(
        self,
        user_id: int,
        page: PageRequest,
        *,
        archived: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Sequence[SessionDTO]:
        """The archived or the unarchived sessions whose metadata holds every pair of
        `metadata`: pinned first, then most recently active (`(pinned, updated_at, id)`
        descending, the cursor's order)."""
        ...

    async def update(
        self, session_id: int, user_id: int, changes: SessionChanges
    ) -> SessionDTO | None:
        """Apply the changes in one statement (a rename, branch switch or new expiry counts as
        activity); None when there is no such session, or `current_message_id` is not one of its
        messages."""
        ...

    async def lock(self, session_id: int, user_id: int) -> bool:
        """Inside `atomic()`: hold the session row until the transaction ends, so no message
        is appended meanwhile and every later statement sees every message committed before.
        False when there is no such session."""
        ...

    async def fork_source(
        self, session_id: int, user_id: int, message_id: int | None
    ) -> ForkSource | None:
        """Inside `atomic()`: keep the session from being deleted until the transaction ends,
        and say where a fork of it would end (`message_id`, or its current message). None:
        no such session."""
        ...

    async def delete(self, session_id: int, user_id: int) -> bool: ...

    async def message_count(self, session_id: int, user_id: int) -> int | None:
        """The session's counter; None when the caller owns no such session."""
        ...


@dataclass(frozen=True, slots=True)
class ForkSource:
    title: str
    #: The message the copy ends with; None when the session has no messages.
    end_id: int | None
    #: False when the requested message is not one of the session's.
    found: bool = True
    #: The session's labels, which the fork keeps.
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message a client writes: any role; tool data as `rules.validate_message_shape` allows."""

    role: Role
    content: str
    tokens: int = 0
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class UnansweredCall:
    """Why a tool result was not saved: its call is on no assistant message of the branch
    (`answered_by` None), or already has a result there (that message)."""

    answered_by: int | None = None


@dataclass(frozen=True, slots=True)
class Exchange:
    """A reply's start: the saved user message (None for a continuation or a regeneration),
    the `streaming` reply, and the messages the model may see: the branch from the reply's
    parent up to the root, newest first, cut at the context limit."""

    user_message: MessageDTO | None
    reply: MessageDTO
    context: Sequence[PromptMessage]


#: Why a reply could not start although its session exists and has room: another reply of the
#: session is streaming; the given parent is not a message of the session; a continuation in a
#: session with no message to continue; or a stale snapshot (see `Stale`).
StartRefusal = Literal["busy", "no_parent", "nothing_to_continue", "stale"]


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """A page of a branch, root side first. `before_found` False: the message the page should
    end above is not in the session."""

    messages: Sequence[ThreadMessageDTO]
    before_found: bool = True


class MessageRepository(Protocol):
    async def add(
        self, user_id: int, session_id: int, message: NewMessage, max_messages: int
    ) -> MessageDTO | Stale | UnansweredCall | None:
        """Append the message under the session's current message, make it the current one,
        count it and move the session to the top, in one statement. The session row is locked
        first and the current message read from its latest version, so concurrent appends form
        a chain and the counter is exact. A tool result's call is checked in the same statement
        (a walk up the branch). None: no such session, or it is full."""
        ...

    async def get(self, message_id: int, user_id: int) -> MessageDTO | None: ...

    async def list(
        self, session_id: int, user_id: int, page: PageRequest
    ) -> Sequence[MessageDTO] | None:
        """Chronological: `(created_at, id)` ascending; None when there is no such session."""
        ...

    async def thread(
        self, session_id: int, user_id: int, *, before: int | None, limit: int
    ) -> ThreadPage | None:
        """Up to `limit` messages of the active branch, in one statement: the current message
        (or `before`'s parent) and its ancestors, each with its siblings' ids. None: no such
        session."""
        ...

    async def start_exchange(
        self,
        user_id: int,
        session_id: int,
        prompt: str | None,
        parent: Parent,
        worker_key: int,
        model: str,
        *,
        context_limit: int,
        max_messages: int,
    ) -> Exchange | StartRefusal | None:
        """In one statement: save the user message (unless `prompt` is None: a continuation)
        under `parent` and an empty `streaming` reply under it, generated by `worker_key`'s
        process; make the reply the current message; read the context. All of it happens or
        none. None: no such session, or it is full."""
        ...

    async def regenerate(
        self,
        user_id: int,
        message_id: int,
        worker_key: int,
        model: str,
        *,
        context_limit: int,
        max_messages: int,
    ) -> Exchange | Literal["busy"] | None:
        """In one statement: a new `streaming` reply beside assistant message `message_id`
        (same parent), made current, with the context. None: no such assistant message with a
        parent, or its session is full."""
        ...

    async def copy_path(
        self, source_id: int, end_id: int, target_id: int
    ) -> SessionDTO | Literal["streaming"]:
        """Inside `atomic()`: copy the path from the root to `end_id` (a message of session
        `source_id`) into the empty session `target_id`, in order, with new ids; the copy of
        `end_id` becomes its current message. "streaming": a message on the path is still
        streaming (nothing copied)."""
        ...

    async def streaming_in_session(self, session_id: int) -> int | None:
        """The id of the session's reply that is still streaming, if any."""
        ...

    async def add_tree(self, user_id: int, session_id: int, plan: ImportPlan) -> SessionDTO:
        """Inside `atomic()`: insert the plan's messages into the caller's new, empty session in
        one statement (new ids in the plan's order, parents mapped), count them and point the
        session at the current one."""
        ...

    async def set_feedback(
        self, message_id: int, user_id: int, feedback: FeedbackInDTO | None
    ) -> FeedbackDTO | Role | None:
        """Replace the feedback on an assistant message of the caller's (None removes it), in
        one statement. Answers the feedback now stored; the message's role when nothing was
        stored (it is not an assistant message, or the feedback was removed); None when the
        caller has no such message."""
        ...


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The state of a key someone else holds: in flight (no status yet) or completed."""

    fingerprint: str
    status_code: int | None
    body: str | None


class IdempotencyRepository(Protocol):
    async def claim(
        self,
        user_id: int,
        key: str,
        fingerprint: str,
        claim: str,
        *,
        ttl_s: int,
        lock_timeout_s: int,
    ) -> IdempotencyRecord | None:
        """Take the key for this request: None when it is now ours (new, expired, or abandoned
        by a request in flight longer than `lock_timeout_s`), else the record holding it."""
        ...

    async def complete(
        self, user_id: int, key: str, claim: str, status_code: int, body: str
    ) -> bool:
        """Record the response; False when the claim was lost (taken over) meanwhile."""
        ...

    async def release(self, user_id: int, key: str, claim: str) -> None:
        """Forget a claim whose request failed, so a retry runs it again."""
        ...

    async def purge_expired(self, limit: int) -> int:
        """Delete up to `limit` expired keys; returns how many went."""
        ...


@dataclass(frozen=True, slots=True)
class SearchRow:
    """A hit as stored: its sort key (`score`, `at`, `kind`, `id`) and its marked snippet."""

    kind: Literal["m", "s"]
    id: int
    score: int
    at: datetime
    session_id: int
    session_title: str
    role: Role | None
    marked: str


class SearchRepository(Protocol):
    async def search(
        self,
        user_id: int,
        query: str,
        *,
        limit: int,
        after: SearchCursor | None,
        config: str,
        markers: Markers,
    ) -> Sequence[SearchRow]:
        """The caller's messages and live sessions' titles matching `query` (web-search
        syntax, text search configuration `config`), best first: `score` (relevance in
        millionths), then time, kind and id, descending; each snippet marked with `markers`.
        Empty when the query holds no term to look for (only stop words, signs, or negations)."""
        ...


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str
    input_tokens: int
    output_tokens: int
    replies: int


class UsageRepository(Protocol):
    """Counts the replies this service generated (not messages posted by clients, nor a fork's
    copies of replies), one user's rows only, from a ledger written as each reply ends: deleting
    a conversation does not take its usage back."""

    async def report(
        self, user_id: int, start: datetime, end: datetime, group_by: UsageGrouping
    ) -> Sequence[UsageRow]:
        """Usage of the replies that ended, created in `[start, end)`, by group, in key
        order; deleted and expired conversations included."""
        ...

    async def hold(self, user_id: int) -> None:
        """Inside `atomic()`: take the user's usage lock until the transaction ends, so checks
        and reply starts of one user run one at a time, in every process."""
        ...

    async def used_since(self, user_id: int, since: datetime) -> int:
        """Input plus output tokens of the user's replies created since `since`; a reply still
        streaming counts as one token (its usage is not known yet)."""
        ...

    async def erase(self, user_id: int) -> None:
        """Delete the user's usage: with the account, after it (see `UserService.erase`)."""
        ...


class UnitOfWork(Protocol):
    """One use case's access to storage.

    A statement outside `atomic()` is its own transaction; writes that must stand or fall
    together go in one `atomic()` block (nested blocks join the outermost, which commits on a
    normal exit and rolls back on an exception). At most one write may run outside it.
    """

    @property
    def users(self) -> UserRepository: ...
    @property
    def sessions(self) -> SessionRepository: ...
    @property
    def messages(self) -> MessageRepository: ...
    @property
    def idempotency(self) -> IdempotencyRepository: ...
    @property
    def search(self) -> SearchRepository: ...
    @property
    def usage(self) -> UsageRepository: ...

    def atomic(self) -> AbstractAsyncContextManager[None]: ...


UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]
"""Opens a fresh unit of work: long flows use several short ones, never one long one."""
