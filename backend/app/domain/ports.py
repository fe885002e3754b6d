"""What the domain needs from the outside world, as protocols. `persistence/` implements them;
unit tests implement them in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from app.domain.dtos import Role
from app.domain.pagination import PageRequest


class MessageSlot(NamedTuple):
    """Where a new message goes: its timestamp and the session's message count including it."""

    at: datetime
    message_count: int


class SessionRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def message_count(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


class MessageRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def session_id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def tokens(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...


class UserRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def auth0_id(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


class UserRepository(Protocol):
    async def id_for_subject(self, subject: str) -> int | None: ...

    async def find_by_subject(self, subject: str) -> UserRow | None: ...

    async def get(self, user_id: int) -> UserRow | None: ...

    async def set_email(self, user_id: int, email: str) -> bool:
        """Store the e-mail; False (and nothing changed) when another account holds it."""
        ...

    async def delete(self, user_id: int) -> bool:
        """Delete the user; the database cascades to everything the user owns."""
        ...

    async def add(self, subject: str, email: str | None) -> int | None:
        """Insert; None when another transaction provisioned the same subject first."""
        ...


class SessionRepository(Protocol):
    async def add(self, user_id: int, title: str) -> SessionRow: ...

    async def get_owned(self, session_id: int, user_id: int) -> SessionRow | None: ...

    async def count_owned(self, user_id: int) -> int: ...

    async def list_owned(self, user_id: int, page: PageRequest) -> Sequence[SessionRow]:
        """Most recently active first: `(updated_at, id)` descending."""
        ...

    async def rename(self, session_id: int, user_id: int, title: str) -> SessionRow | None: ...

    async def delete_owned(self, session_id: int, user_id: int) -> bool: ...

    async def record_message(self, session_id: int, user_id: int) -> MessageSlot | None:
        """Count one more message and move the session to the top; locks the session row.

        Returns the new activity time (the clock read *after* the lock, to stamp the message
        with) and the new count, or None when the caller owns no such session."""
        ...


class MessageRepository(Protocol):
    async def add(
        self, session_id: int, role: Role, content: str, tokens: int, created_at: datetime
    ) -> MessageRow: ...

    async def get_owned(self, message_id: int, user_id: int) -> MessageRow | None: ...

    async def list_for_session(self, session_id: int, page: PageRequest) -> Sequence[MessageRow]:
        """Chronological: `(created_at, id)` ascending."""
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


class UnitOfWork(Protocol):
    """One transaction. Repositories only flush; `commit` is called once per use case."""

    @property
    def users(self) -> UserRepository: ...
    @property
    def sessions(self) -> SessionRepository: ...
    @property
    def messages(self) -> MessageRepository: ...
    @property
    def idempotency(self) -> IdempotencyRepository: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...
