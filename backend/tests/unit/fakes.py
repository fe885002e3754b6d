"""In-memory implementations of the domain ports: the rules run in milliseconds, no database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.domain.dtos import Role
from app.domain.pagination import PageRequest
from app.domain.ports import IdempotencyRecord, MessageSlot

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.ticks = 0

    def now(self) -> datetime:
        self.ticks += 1
        return EPOCH + timedelta(seconds=self.ticks)


@dataclass
class SessionRecord:
    id: int
    user_id: int
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int = 0


@dataclass
class MessageRecord:
    id: int
    session_id: int
    role: str
    content: str
    tokens: int
    created_at: datetime
    status: str = "completed"
    input_tokens: int = 0
    error: str | None = None


@dataclass
class UserRecord:
    id: int
    auth0_id: str
    email: str | None
    created_at: datetime


@dataclass
class Store:
    clock: Clock = field(default_factory=Clock)
    users: dict[str, UserRecord] = field(default_factory=dict)
    keys: dict[tuple[int, str], tuple[str, str, IdempotencyRecord]] = field(default_factory=dict)
    sessions: dict[int, SessionRecord] = field(default_factory=dict)
    messages: dict[int, MessageRecord] = field(default_factory=dict)


class FakeUsers:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def id_for_subject(self, subject: str) -> int | None:
        row = self.store.users.get(subject)
        return row.id if row else None

    async def find_by_subject(self, subject: str) -> UserRecord | None:
        return self.store.users.get(subject)

    async def get(self, user_id: int) -> UserRecord | None:
        return next((u for u in self.store.users.values() if u.id == user_id), None)

    async def set_email(self, user_id: int, email: str) -> bool:
        if any(u.email == email for u in self.store.users.values()):
            return False
        row = await self.get(user_id)
        assert row is not None
        row.email = email
        return True

    async def delete(self, user_id: int) -> bool:
        row = await self.get(user_id)
        if row is None:
            return False
        del self.store.users[row.auth0_id]
        return True

    async def add(self, subject: str, email: str | None) -> int | None:
        taken = email is not None and any(u.email == email for u in self.store.users.values())
        if subject in self.store.users or taken:
            return None
        row = UserRecord(len(self.store.users) + 1, subject, email, self.store.clock.now())
        self.store.users[subject] = row
        return row.id


class FakeSessions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, user_id: int, title: str) -> SessionRecord:
        now = self.store.clock.now()
        row = SessionRecord(len(self.store.sessions) + 1, user_id, title, now, now)
        self.store.sessions[row.id] = row
        return row

    async def get_owned(self, session_id: int, user_id: int) -> SessionRecord | None:
        row = self.store.sessions.get(session_id)
        return row if row is not None and row.user_id == user_id else None

    async def count_owned(self, user_id: int) -> int:
        return sum(1 for s in self.store.sessions.values() if s.user_id == user_id)

    async def list_owned(self, user_id: int, page: PageRequest) -> Sequence[SessionRecord]:
        rows = sorted(
            (s for s in self.store.sessions.values() if s.user_id == user_id),
            key=lambda s: (s.updated_at, s.id),
            reverse=True,
        )
        if page.after is not None:
            after = (page.after.at, page.after.id)
            rows = [s for s in rows if (s.updated_at, s.id) < after]
        return rows[page.skip : page.skip + page.limit]

    async def rename(self, session_id: int, user_id: int, title: str) -> SessionRecord | None:
        row = await self.get_owned(session_id, user_id)
        if row is not None:
            row.title, row.updated_at = title, self.store.clock.now()
        return row

    async def delete_owned(self, session_id: int, user_id: int) -> bool:
        if await self.get_owned(session_id, user_id) is None:
            return False
        del self.store.sessions[session_id]
        for mid in [m.id for m in self.store.messages.values() if m.session_id == session_id]:
            del self.store.messages[mid]
        return True

    async def record_message(
        self, session_id: int, user_id: int, count: int = 1
    ) -> MessageSlot | None:
        row = await self.get_owned(session_id, user_id)
        if row is None:
            return None
        row.message_count += count
        row.updated_at = self.store.clock.now()
        return MessageSlot(row.updated_at, row.message_count)


class FakeMessages:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(
        self, session_id: int, role: Role, content: str, tokens: int, created_at: datetime
    ) -> MessageRecord:
        row = MessageRecord(
            len(self.store.messages) + 1, session_id, role, content, tokens, created_at
        )
        self.store.messages[row.id] = row
        return row

    async def get_owned(self, message_id: int, user_id: int) -> MessageRecord | None:
        row = self.store.messages.get(message_id)
        if row is None or self.store.sessions[row.session_id].user_id != user_id:
            return None
        return row

    async def list_for_session(self, session_id: int, page: PageRequest) -> Sequence[MessageRecord]:
        rows = sorted(
            (m for m in self.store.messages.values() if m.session_id == session_id),
            key=lambda m: (m.created_at, m.id),
        )
        if page.after is not None:
            after = (page.after.at, page.after.id)
            rows = [m for m in rows if (m.created_at, m.id) > after]
        return rows[page.skip : page.skip + page.limit]

    async def add_exchange(
        self, session_id: int, prompt: str, created_at: datetime, worker_key: int
    ) -> tuple[MessageRecord, MessageRecord | None]:
        user = await self.add(session_id, "user", prompt, 0, created_at)
        if await self.streaming_in_session(session_id) is not None:
            return user, None
        reply = await self.add(session_id, "assistant", "", 0, created_at)
        reply.status = "streaming"
        return user, reply

    async def streaming_in_session(self, session_id: int) -> int | None:
        return next(
            (
                m.id
                for m in self.store.messages.values()
                if m.session_id == session_id and m.status == "streaming"
            ),
            None,
        )

    async def recent_context(self, session_id: int, limit: int) -> Sequence[MessageRecord]:
        rows = [
            m
            for m in self.store.messages.values()
            if m.session_id == session_id and m.status != "streaming" and m.content
        ]
        return sorted(rows, key=lambda m: (m.created_at, m.id), reverse=True)[:limit]


class FakeIdempotency:
    """Keys without expiry: enough for the domain rules (replay, mismatch, in flight)."""

    def __init__(self, store: Store) -> None:
        self.store = store

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
        held = self.store.keys.get((user_id, key))
        if held is not None and held[0] == claim:
            del self.store.keys[(user_id, key)]

    async def purge_expired(self, limit: int) -> int:
        return 0


class FakeUnitOfWork:
    """Counts commits so tests can pin "one commit per use case, none on failure"."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()
        self.users = FakeUsers(self.store)
        self.sessions = FakeSessions(self.store)
        self.messages = FakeMessages(self.store)
        self.idempotency = FakeIdempotency(self.store)
        self.commits = 0

    async def commit(self) -> None:
        self.commits += 1

    async def rollback(self) -> None:
        return None
