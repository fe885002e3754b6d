"""In-memory implementations of the domain ports: the rules run in milliseconds, no database.

The fake unit of work keeps the real one's transactions: a write outside `atomic()` is applied
at once, writes inside it are undone together when the block raises. It counts both, so tests
can pin how a use case writes. Users 1 and 2 exist from the start.
"""

from __future__ import annotations

import copy
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from app.domain.dtos import (
    FeedbackDTO,
    FeedbackInDTO,
    MessageDTO,
    Role,
    SessionDTO,
    ThreadMessageDTO,
    UsageGrouping,
    UserDTO,
)
from app.domain.import_plan import ImportPlan
from app.domain.language_model import Chunk, PromptMessage, ToolOptions
from app.domain.pagination import PageRequest, SearchCursor
from app.domain.ports import (
    Exchange,
    ForkSource,
    IdempotencyRecord,
    KnownUser,
    NewMessage,
    Parent,
    SearchRow,
    SessionChanges,
    SessionTree,
    Stale,
    StartRefusal,
    ThreadPage,
    UnansweredCall,
    UnitOfWork,
    UnitOfWorkFactory,
    UsageRow,
)
from app.domain.reply_runtime import LiveReply, Progress, ReplyOutcome, StopReason, UsageRecord
from app.domain.search import Markers

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class UserRecord:
    id: int
    subject: str
    email: str | None
    created_at: datetime
    session_count: int = 0


def _two_users() -> dict[str, UserRecord]:
    return {f"user{i}": UserRecord(i, f"user{i}", None, EPOCH) for i in (1, 2)}


@dataclass
class Store:
    ticks: int = 0
    next_id: int = 2
    users: dict[str, UserRecord] = field(default_factory=_two_users)
    keys: dict[tuple[int, str], tuple[str, str, IdempotencyRecord]] = field(default_factory=dict)
    sessions: dict[int, SessionDTO] = field(default_factory=dict)
    messages: dict[int, MessageDTO] = field(default_factory=dict)

    def now(self) -> datetime:
        self.ticks += 1
        return EPOCH + timedelta(seconds=self.ticks)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class FakeRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    @property
    def store(self) -> Store:
        return self.uow.store


class FakeUsers(FakeRepository):
    def _by_id(self, user_id: int) -> UserRecord | None:
        return next((u for u in self.store.users.values() if u.id == user_id), None)

    async def find(self, subject: str) -> KnownUser | None:
        row = self.store.users.get(subject)
        return KnownUser(row.id, row.email) if row else None

    async def add(self, subject: str, email: str | None) -> int | None:
        self.uow.write()
        taken = email is not None and any(u.email == email for u in self.store.users.values())
        if subject in self.store.users or taken:
            return None
        row = UserRecord(self.store.new_id(), subject, email, self.store.now())
        self.store.users[subject] = row
        return row.id

    async def set_email(self, user_id: int, email: str) -> bool:
        self.uow.write()
        row = self._by_id(user_id)
        if row is None or any(u.email == email for u in self.store.users.values()):
            return False
        row.email = email
        return True

    async def get(self, user_id: int) -> UserDTO | None:
        row = self._by_id(user_id)
        if row is None:
            return None
        return UserDTO(
            id=row.id,
            subject=row.subject,
            email=row.email,
            created_at=row.created_at,
            session_count=row.session_count,
        )

    async def delete(self, user_id: int) -> bool:
        self.uow.write()
        row = self._by_id(user_id)
        if row is None:
            return False
        del self.store.users[row.subject]
        for sid in [s.id for s in self.store.sessions.values() if s.user_id == user_id]:
            self.uow.sessions.drop(sid)
        return True


def _expired(session: SessionDTO) -> bool:
    return session.expires_at is not None and session.expires_at <= datetime.now(UTC)


class FakeSessions(FakeRepository):
    async def add(
        self,
        user_id: int,
        title: str,
        max_sessions: int,
        metadata: Mapping[str, str] | None = None,
        expires_at: datetime | None = None,
    ) -> SessionDTO | None:
        self.uow.write()
        owner = self.uow.users._by_id(user_id)
        if owner is None or owner.session_count >= max_sessions:
            return None
        owner.session_count += 1
        now = self.store.now()
        session = SessionDTO(
            id=self.store.new_id(),
            user_id=user_id,
            title=title,
            message_count=0,
            created_at=now,
            updated_at=now,
            metadata=dict(metadata or {}),
            expires_at=expires_at,
        )
        self.store.sessions[session.id] = session
        return session

    async def add_imported(
        self, user_id: int, plan: ImportPlan, max_sessions: int
    ) -> SessionDTO | None:
        added = await self.add(user_id, plan.title, max_sessions, plan.metadata, plan.expires_at)
        if added is None:
            return None
        created = plan.created_at or added.created_at
        session = added.model_copy(
            update={
                "archived": plan.archived,
                "pinned": plan.pinned,
                "created_at": created,
                "updated_at": plan.updated_at or created,
            }
        )
        self.store.sessions[session.id] = session
        return session

    async def trees(
        self, user_id: int, *, session_id: int | None = None, after: int = 0, limit: int = 1
    ) -> Sequence[SessionTree]:
        picked = sorted(
            (
                s
                for s in self.store.sessions.values()
                if s.user_id == user_id
                and not _expired(s)
                and (s.id == session_id if session_id else s.id > after)
            ),
            key=lambda s: s.id,
        )[:limit]
        messages = sorted(self.store.messages.values(), key=lambda m: m.id)
        return [SessionTree(s, [m for m in messages if m.session_id == s.id]) for s in picked]

    async def session_count(self, user_id: int) -> int | None:
        owner = self.uow.users._by_id(user_id)
        return owner.session_count if owner else None

    async def get(self, session_id: int, user_id: int) -> SessionDTO | None:
        session = self.store.sessions.get(session_id)
        if session is None or session.user_id != user_id or _expired(session):
            return None
        return session

    async def list(
        self,
        user_id: int,
        page: PageRequest,
        *,
        archived: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Sequence[SessionDTO]:
        wanted = (metadata or {}).items()
        rows = sorted(
            (
                s
                for s in self.store.sessions.values()
                if s.user_id == user_id
                and not _expired(s)
                and s.archived == archived
                and wanted <= s.metadata.items()
            ),
            key=lambda s: (s.pinned, s.updated_at, s.id),
            reverse=True,
        )
        if page.after is not None:
            after = (page.after.pinned, page.after.at, page.after.id)
            rows = [s for s in rows if (s.pinned, s.updated_at, s.id) < after]
        return rows[page.skip : page.skip + page.limit]

    async def update(
        self, session_id: int, user_id: int, changes: SessionChanges
    ) -> SessionDTO | None:
        self.uow.write()
        session = await self.get(session_id, user_id)
        if session is None:
            return None
        update: dict[str, object] = {
            name: getattr(changes, name)
            for name in ("title", "metadata", "archived", "pinned")
            if getattr(changes, name) is not None
        }
        if changes.is_activity:
            update["updated_at"] = self.store.now()
        if changes.current_message_id is not None:
            target = self.store.messages.get(changes.current_message_id)
            if target is None or target.session_id != session_id:
                return None
            update["current_message_id"] = changes.current_message_id
        if changes.expiry != "keep":
            update["expires_at"] = changes.expiry
        session = session.model_copy(update=update)
        self.store.sessions[session_id] = session
        return session

    async def lock(self, session_id: int, user_id: int) -> bool:
        assert self.uow.in_transaction, "a lock outside atomic() is released at once"
        self.uow.locked = await self.get(session_id, user_id) is not None
        return self.uow.locked

    async def fork_source(
        self, session_id: int, user_id: int, message_id: int | None
    ) -> ForkSource | None:
        session = await self.get(session_id, user_id)
        if session is None:
            return None
        labels = dict(session.metadata)
        if message_id is None:
            return ForkSource(session.title, session.current_message_id, metadata=labels)
        target = self.store.messages.get(message_id)
        if target is None or target.session_id != session_id:
            return ForkSource(session.title, None, found=False)
        return ForkSource(session.title, message_id, metadata=labels)

    async def delete(self, session_id: int, user_id: int) -> bool:
        self.uow.write()
        if await self.get(session_id, user_id) is None:
            return False
        self.drop(session_id)
        return True

    async def message_count(self, session_id: int, user_id: int) -> int | None:
        session = await self.get(session_id, user_id)
        return session.message_count if session else None

    def drop(self, session_id: int) -> None:
        session = self.store.sessions.pop(session_id)
        if (owner := self.uow.users._by_id(session.user_id)) is not None:
            owner.session_count -= 1
        for mid in [m.id for m in self.store.messages.values() if m.session_id == session_id]:
            del self.store.messages[mid]

    def room(self, session_id: int, user_id: int, count: int, maximum: int) -> SessionDTO | None:
        """The session, if the caller owns it and it can take `count` more messages."""
        session = self.store.sessions.get(session_id)
        if session is None or session.user_id != user_id:
            return None
        if session.message_count + count > maximum:
            return None
        return session

    def bump(self, session_id: int, count: int, current: int) -> None:
        session = self.store.sessions[session_id]
        self.store.sessions[session_id] = session.model_copy(
            update={
                "message_count": session.message_count + count,
                "updated_at": self.store.messages[current].created_at,
                "current_message_id": current,
            }
        )


def _eligible(m: MessageDTO) -> bool:
    return m.status in ("completed", "cancelled") and bool(m.content or m.tool_calls)


class FakeMessages(FakeRepository):
    #: How many of the next appends and reply starts report a stale snapshot (as PostgreSQL's
    #: would when the session's current message was committed while they waited for its lock).
    stale_next = 0

    def _stale(self) -> bool:
        if FakeMessages.stale_next and not self.uow.locked:
            FakeMessages.stale_next -= 1
            return True
        return False

    def _insert(
        self, session_id: int, role: Role, content: str, parent_id: int | None, **fields: object
    ) -> MessageDTO:
        message = MessageDTO.model_validate(
            {
                "id": self.store.new_id(),
                "session_id": session_id,
                "role": role,
                "content": content,
                "tokens": 0,
                "created_at": self.store.now(),
                "parent_id": parent_id,
                **fields,
            }
        )
        self.store.messages[message.id] = message
        return message

    async def _insert_for_tests(
        self, session_id: int, content: str, role: Role = "user", **fields: object
    ) -> MessageDTO:
        """A message added straight to the store (no rules): seeds for search and usage."""
        return self._insert(session_id, role, content, None, **fields)

    def path(self, message_id: int | None) -> list[MessageDTO]:
        """From `message_id` up to the root, newest first."""
        found: list[MessageDTO] = []
        while message_id is not None:
            message = self.store.messages[message_id]
            found.append(message)
            message_id = message.parent_id
        return found

    async def add(
        self, user_id: int, session_id: int, message: NewMessage, max_messages: int
    ) -> MessageDTO | Stale | UnansweredCall | None:
        self.uow.write()
        session = self.uow.sessions.room(session_id, user_id, 1, max_messages)
        if session is None:
            return None
        if message.tool_call_id is not None and self._stale():
            return "stale"
        parent = session.current_message_id
        if message.tool_call_id is not None:
            answered_by = None
            for ancestor in self.path(parent):
                if ancestor.tool_call_id == message.tool_call_id and answered_by is None:
                    answered_by = ancestor.id
                if any(call.id == message.tool_call_id for call in ancestor.tool_calls or ()):
                    break
            else:
                return UnansweredCall()
            if answered_by is not None:
                return UnansweredCall(answered_by)
        added = self._insert(
            session_id,
            message.role,
            message.content,
            parent,
            tokens=message.tokens,
            tool_calls=list(message.tool_calls) if message.tool_calls is not None else None,
            tool_call_id=message.tool_call_id,
        )
        self.uow.sessions.bump(session_id, 1, added.id)
        return added

    async def get(self, message_id: int, user_id: int) -> MessageDTO | None:
        message = self.store.messages.get(message_id)
        if message is None or self.store.sessions[message.session_id].user_id != user_id:
            return None
        return message

    async def list(
        self, session_id: int, user_id: int, page: PageRequest
    ) -> Sequence[MessageDTO] | None:
        if await self.uow.sessions.get(session_id, user_id) is None:
            return None
        rows = sorted(
            (m for m in self.store.messages.values() if m.session_id == session_id),
            key=lambda m: (m.created_at, m.id),
        )
        if page.after is not None:
            after = (page.after.at, page.after.id)
            rows = [m for m in rows if (m.created_at, m.id) > after]
        return rows[page.skip : page.skip + page.limit]

    async def thread(
        self, session_id: int, user_id: int, *, before: int | None, limit: int
    ) -> ThreadPage | None:
        session = await self.uow.sessions.get(session_id, user_id)
        if session is None:
            return None
        start = session.current_message_id
        if before is not None:
            anchor = self.store.messages.get(before)
            if anchor is None or anchor.session_id != session_id:
                return ThreadPage([], before_found=False)
            start = anchor.parent_id
        page = self.path(start)[:limit]
        return ThreadPage(
            [
                ThreadMessageDTO(
                    **m.model_dump(),
                    sibling_ids=[
                        s.id
                        for s in sorted(self.store.messages.values(), key=lambda s: s.id)
                        if s.session_id == session_id and s.parent_id == m.parent_id
                    ],
                )
                for m in reversed(page)
            ]
        )

    def _context(self, parent_id: int | None, limit: int) -> Sequence[PromptMessage]:
        eligible = [m for m in self.path(parent_id) if _eligible(m)][:limit]
        return [
            PromptMessage(m.role, m.content, tuple(m.tool_calls or ()), m.tool_call_id)
            for m in eligible
        ]

    def _reply(self, session_id: int, parent_id: int | None, model: str) -> MessageDTO:
        return self._insert(session_id, "assistant", "", parent_id, status="streaming", model=model)

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
        self.uow.write()
        session = self.uow.sessions.room(
            session_id, user_id, 1 if prompt is None else 2, max_messages
        )
        if session is None:
            return None
        if parent == "current" and session.current_message_id is not None and self._stale():
            return "stale"
        anchor = session.current_message_id if parent == "current" else parent
        if anchor is not None:
            found = self.store.messages.get(anchor)
            if found is None or found.session_id != session_id:
                return "no_parent"
        elif prompt is None:
            return "nothing_to_continue"
        if await self.streaming_in_session(session_id) is not None:
            return "busy"
        context = self._context(anchor, context_limit)
        user = None
        if prompt is not None:
            user = self._insert(session_id, "user", prompt, anchor)
        reply = self._reply(session_id, user.id if user else anchor, model)
        self.uow.sessions.bump(session_id, 2 if user else 1, reply.id)
        return Exchange(user, reply, context)

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
        self.uow.write()
        target = await self.get(message_id, user_id)
        if target is None or target.role != "assistant" or target.parent_id is None:
            return None
        if self.uow.sessions.room(target.session_id, user_id, 1, max_messages) is None:
            return None
        if await self.streaming_in_session(target.session_id) is not None:
            return "busy"
        context = self._context(target.parent_id, context_limit)
        reply = self._reply(target.session_id, target.parent_id, model)
        self.uow.sessions.bump(target.session_id, 1, reply.id)
        return Exchange(None, reply, context)

    async def copy_path(
        self, source_id: int, end_id: int, target_id: int
    ) -> SessionDTO | Literal["streaming"]:
        self.uow.write()
        path = list(reversed(self.path(end_id)))
        if any(m.status == "streaming" for m in path):
            return "streaming"
        parent: int | None = None
        for original in path:
            fields = original.model_dump(exclude={"id", "session_id", "parent_id"})
            parent = self._insert(
                target_id,
                fields.pop("role"),
                fields.pop("content"),
                parent,
                **{k: v for k, v in fields.items() if k != "created_at"},
            ).id
        session = self.store.sessions[target_id]
        session = session.model_copy(
            update={
                "message_count": len(path),
                "current_message_id": parent,
                "updated_at": self.store.now(),
            }
        )
        self.store.sessions[target_id] = session
        return session

    async def add_tree(self, user_id: int, session_id: int, plan: ImportPlan) -> SessionDTO:
        self.uow.write()
        new_ids: list[int] = []
        for message, parent in zip(plan.messages, plan.parents, strict=True):
            fields = message.model_dump(exclude={"id", "parent_id", "role", "content"})
            fields["created_at"] = fields["created_at"] or self.store.now()
            if fields["feedback"] is not None:
                fields["feedback"]["created_at"] = (
                    fields["feedback"]["created_at"] or fields["created_at"]
                )
            added = self._insert(
                session_id,
                message.role,
                message.content or "",
                new_ids[parent] if parent is not None else None,
                **fields,
            )
            new_ids.append(added.id)
        session = self.store.sessions[session_id].model_copy(
            update={
                "message_count": len(new_ids),
                "current_message_id": new_ids[plan.current] if plan.current is not None else None,
            }
        )
        self.store.sessions[session_id] = session
        return session

    async def set_feedback(
        self, message_id: int, user_id: int, feedback: FeedbackInDTO | None
    ) -> FeedbackDTO | Role | None:
        self.uow.write()
        message = await self.get(message_id, user_id)
        if message is None:
            return None
        if message.role != "assistant":
            return message.role
        stored = None
        if feedback is not None:
            given = {"rating": feedback.rating, "comment": feedback.comment}
            stored = FeedbackDTO(**given, created_at=self.store.now())
        self.store.messages[message_id] = message.model_copy(update={"feedback": stored})
        return stored if stored is not None else message.role

    async def streaming_in_session(self, session_id: int) -> int | None:
        return next(
            (
                m.id
                for m in self.store.messages.values()
                if m.session_id == session_id and m.status == "streaming"
            ),
            None,
        )


class FakeIdempotency(FakeRepository):
    """Keys without expiry: enough for the domain rules (replay, mismatch, in flight)."""

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
        self.uow.write()
        held = self.store.keys.get((user_id, key))
        if held is not None:
            return held[2]
        self.store.keys[(user_id, key)] = (
            claim,
            fingerprint,
            IdempotencyRecord(fingerprint, None, None),
        )
        return None

    async def complete(
        self, user_id: int, key: str, claim: str, status_code: int, body: str
    ) -> bool:
        self.uow.write()
        held = self.store.keys.get((user_id, key))
        if held is None or held[0] != claim:
            return False
        self.store.keys[(user_id, key)] = (
            claim,
            held[1],
            IdempotencyRecord(held[1], status_code, body),
        )
        return True

    async def release(self, user_id: int, key: str, claim: str) -> None:
        self.uow.write()
        held = self.store.keys.get((user_id, key))
        if held is not None and held[0] == claim:
            del self.store.keys[(user_id, key)]

    async def purge_expired(self, limit: int) -> int:
        self.uow.write()
        return 0


class FakeSearch(FakeRepository):
    """Words, `-word`s and nothing else: enough for the service's rules (the real syntax is
    PostgreSQL's, tested through HTTP)."""

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
        words = [w.lower() for w in query.split() if not w.startswith("-") and w.isalnum()]
        banned = {w[1:].lower() for w in query.split() if w.startswith("-")}
        if not words:
            return []

        def marked(text: str) -> str | None:
            found = {w.lower() for w in text.split()}
            if not set(words) <= found or banned & found:
                return None
            return " ".join(
                f"{markers.start}{w}{markers.stop}" if w.lower() in words else w
                for w in text.split()
            )

        rows: list[SearchRow] = []
        for m in self.store.messages.values():
            session = await self.uow.sessions.get(m.session_id, user_id)
            if session is not None and (text := marked(m.content)) is not None:
                rows.append(
                    SearchRow("m", m.id, 1, m.created_at, m.session_id, session.title, m.role, text)
                )
        rows.sort(key=lambda r: (r.score, r.at, r.kind, r.id), reverse=True)
        if after is not None:
            key = (after.score, after.at, after.kind, after.id)
            rows = [r for r in rows if (r.score, r.at, r.kind, r.id) < key]
        return rows[:limit]


class FakeUsage(FakeRepository):
    """Replies generated here are assistant messages with a model (the fake copies none). The
    fake reads the messages it holds; the ledger that outlives them is PostgreSQL's, tested in
    tests/api/test_usage.py."""

    held = False

    def _replies(self, user_id: int, start: datetime, end: datetime) -> list[MessageDTO]:
        return [
            m
            for m in self.store.messages.values()
            if m.role == "assistant"
            and m.model is not None
            and start <= m.created_at < end
            and self.store.sessions[m.session_id].user_id == user_id
        ]

    async def report(
        self, user_id: int, start: datetime, end: datetime, group_by: UsageGrouping
    ) -> Sequence[UsageRow]:
        groups: dict[str, list[MessageDTO]] = {}
        for m in self._replies(user_id, start, end):
            key = {
                "day": m.created_at.date().isoformat(),
                "model": m.model or "",
                "session": str(m.session_id),
            }[group_by]
            groups.setdefault(key, []).append(m)
        return [
            UsageRow(
                key,
                sum(m.input_tokens for m in ms),
                sum(m.tokens for m in ms),
                len(ms),
            )
            for key, ms in sorted(groups.items())
        ]

    async def hold(self, user_id: int) -> None:
        assert self.uow.in_transaction, "the usage lock is held until the transaction ends"
        self.held = True

    async def used_since(self, user_id: int, since: datetime) -> int:
        far = datetime.max.replace(tzinfo=UTC)
        return sum(
            1 if m.status == "streaming" else m.input_tokens + m.tokens
            for m in self._replies(user_id, since, far)
        )

    async def erase(self, user_id: int) -> None:
        self.uow.write()


class FakeUnitOfWork:
    """Counts writes and transactions so tests can pin how a use case writes."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store if store is not None else Store()
        self.users = FakeUsers(self)
        self.sessions = FakeSessions(self)
        self.messages = FakeMessages(self)
        self.idempotency = FakeIdempotency(self)
        self.search = FakeSearch(self)
        self.usage = FakeUsage(self)
        #: Writes that ran outside atomic(), each its own transaction.
        self.loose_writes = 0
        #: atomic() blocks that committed.
        self.transactions = 0
        #: A session is locked (until the transaction ends).
        self.locked = False
        self._depth = 0

    def write(self) -> None:
        if self._depth == 0:
            self.loose_writes += 1

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        saved = copy.deepcopy(self.store)
        self._depth = 1
        try:
            yield
        except BaseException:
            self.store.__dict__.update(saved.__dict__)
            raise
        finally:
            self._depth = 0
            self.locked = False
        self.transactions += 1

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0


def unit_of_work_factory(store: Store) -> UnitOfWorkFactory:
    """Fresh fake units of work over one store, as the reply service opens them."""

    @asynccontextmanager
    async def open_unit_of_work() -> AsyncIterator[UnitOfWork]:
        yield FakeUnitOfWork(store)

    return open_unit_of_work


class FakeLive:
    """A reply as the service generates it, without a runtime: text and final outcome kept."""

    def __init__(self, stop_reason: StopReason | None = None) -> None:
        self.text = ""
        self.stop_reason = stop_reason
        self.outcome: ReplyOutcome | None = None
        self.ended = False

    def append(self, text: str) -> None:
        self.text += text

    @asynccontextmanager
    async def stoppable(self) -> AsyncIterator[None]:
        yield

    async def end(self, outcome: ReplyOutcome | None) -> None:
        self.outcome, self.ended = outcome, True


class FakeHub:
    """Launches nothing by itself: a test runs a launched reply with `run`, which saves its
    final state in the store as the runtime's writer would."""

    worker_key = 1

    def __init__(self, store: Store) -> None:
        self.store = store
        self.launched: dict[int, Callable[[LiveReply], Awaitable[None]]] = {}
        self.recorded: list[UsageRecord] = []

    def launch(self, message_id: int, run: Callable[[LiveReply], Awaitable[None]]) -> None:
        self.launched[message_id] = run

    async def run(self, message_id: int, live: FakeLive | None = None) -> FakeLive:
        live = live or FakeLive()
        await self.launched.pop(message_id)(live)
        outcome = live.outcome
        if outcome is not None:
            message = self.store.messages[message_id]
            self.store.messages[message_id] = message.model_copy(
                update={
                    "status": outcome.status,
                    "content": outcome.content,
                    "tokens": outcome.tokens,
                    "input_tokens": outcome.input_tokens,
                    "error": outcome.error,
                    "finish_reason": outcome.finish_reason,
                    "model": outcome.model or message.model,
                    "tool_calls": list(outcome.tool_calls) or None,
                }
            )
        return live

    def follow(self, message_id: int, offset: int) -> AsyncIterator[Progress]:
        raise NotImplementedError

    async def request_cancel(self, message_id: int) -> None:
        raise NotImplementedError

    async def wait_finished(self, message_id: int, timeout_s: float) -> MessageDTO | None:
        raise NotImplementedError

    async def record_usage(self, usage: UsageRecord) -> None:
        self.recorded.append(usage)


class ScriptedProvider:
    """A model that streams the given chunks, and remembers what it was asked."""

    model = "configured-model"

    def __init__(self, *chunks: Chunk) -> None:
        self.chunks = chunks
        self.prompts: list[Sequence[PromptMessage]] = []
        self.tools: list[ToolOptions | None] = []

    async def stream(
        self, prompt: Sequence[PromptMessage], tools: ToolOptions | None = None
    ) -> AsyncGenerator[Chunk, None]:
        self.prompts.append(prompt)
        self.tools.append(tools)
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        return None
