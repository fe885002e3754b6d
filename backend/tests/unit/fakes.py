"""In-memory implementations of the domain ports: the rules run in milliseconds, no database.

The fake unit of work keeps the real one's transactions: a write outside `atomic()` is applied
at once, writes inside it are undone together when the block raises. It counts both, so tests
can pin how a use case writes. Users 1 and 2 exist from the start.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from app.domain.dtos import MessageDTO, Role, SessionDTO, UserDTO
from app.domain.pagination import PageRequest
from app.domain.ports import Exchange, IdempotencyRecord, KnownUser

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


class FakeSessions(FakeRepository):
    async def add(self, user_id: int, title: str, max_sessions: int) -> SessionDTO | None:
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
        )
        self.store.sessions[session.id] = session
        return session

    async def session_count(self, user_id: int) -> int | None:
        owner = self.uow.users._by_id(user_id)
        return owner.session_count if owner else None

    async def get(self, session_id: int, user_id: int) -> SessionDTO | None:
        session = self.store.sessions.get(session_id)
        return session if session is not None and session.user_id == user_id else None

    async def list(self, user_id: int, page: PageRequest) -> Sequence[SessionDTO]:
        rows = sorted(
            (s for s in self.store.sessions.values() if s.user_id == user_id),
            key=lambda s: (s.updated_at, s.id),
            reverse=True,
        )
        if page.after is not None:
            after = (page.after.at, page.after.id)
            rows = [s for s in rows if (s.updated_at, s.id) < after]
        return rows[page.skip : page.skip + page.limit]

    async def rename(self, session_id: int, user_id: int, title: str) -> SessionDTO | None:
        self.uow.write()
        session = await self.get(session_id, user_id)
        if session is None:
            return None
        session = session.model_copy(update={"title": title, "updated_at": self.store.now()})
        self.store.sessions[session_id] = session
        return session

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

    def bump(self, session_id: int, user_id: int, count: int, maximum: int) -> datetime | None:
        session = self.store.sessions.get(session_id)
        if session is None or session.user_id != user_id:
            return None
        if session.message_count + count > maximum:
            return None
        now = self.store.now()
        self.store.sessions[session_id] = session.model_copy(
            update={"message_count": session.message_count + count, "updated_at": now}
        )
        return now


class FakeMessages(FakeRepository):
    def _insert(self, session_id: int, role: Role, content: str, at: datetime) -> MessageDTO:
        message = MessageDTO(
            id=self.store.new_id(),
            session_id=session_id,
            role=role,
            content=content,
            tokens=0,
            created_at=at,
        )
        self.store.messages[message.id] = message
        return message

    async def add(
        self,
        user_id: int,
        session_id: int,
        role: Role,
        content: str,
        tokens: int,
        max_messages: int,
    ) -> MessageDTO | None:
        self.uow.write()
        at = self.uow.sessions.bump(session_id, user_id, 1, max_messages)
        if at is None:
            return None
        message = self._insert(session_id, role, content, at)
        message = message.model_copy(update={"tokens": tokens})
        self.store.messages[message.id] = message
        return message

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

    async def start_exchange(
        self,
        user_id: int,
        session_id: int,
        prompt: str,
        worker_key: int,
        *,
        context_limit: int,
        max_messages: int,
    ) -> Exchange | Literal["busy"] | None:
        self.uow.write()
        if await self.streaming_in_session(session_id) is not None:
            return "busy"
        context = [
            (m.role, m.content)
            for m in sorted(
                self.store.messages.values(), key=lambda m: (m.created_at, m.id), reverse=True
            )
            if m.session_id == session_id and m.status != "streaming" and m.content
        ][:context_limit]
        at = self.uow.sessions.bump(session_id, user_id, 2, max_messages)
        if at is None:
            return None
        user = self._insert(session_id, "user", prompt, at)
        reply = self._insert(session_id, "assistant", "", at).model_copy(
            update={"status": "streaming"}
        )
        self.store.messages[reply.id] = reply
        return Exchange(user, reply, context)

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


class FakeUnitOfWork:
    """Counts writes and transactions so tests can pin how a use case writes."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store if store is not None else Store()
        self.users = FakeUsers(self)
        self.sessions = FakeSessions(self)
        self.messages = FakeMessages(self)
        self.idempotency = FakeIdempotency(self)
        #: Writes that ran outside atomic(), each its own transaction.
        self.loose_writes = 0
        #: atomic() blocks that committed.
        self.transactions = 0
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
        self.transactions += 1
