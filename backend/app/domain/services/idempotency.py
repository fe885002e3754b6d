"""Idempotent writes: a retried create with the same `Idempotency-Key` replays, never repeats.

Semantics of the IETF httpapi draft and Stripe: same key + same request → the first response
again, nothing created; same key + another request → 422; while the first is still running →
409. Keys belong to one user and are kept for `ttl_s` (at least 24 h).

The flow keeps "a replayable response exists" and "the resource exists" in lock step:
1. claim the key in its own short, committed transaction (visible to every server process);
2. run the use case with its commit *held*, record the response on the key in that same
   transaction, then commit once: the resource and its replay appear together or not at all;
3. on failure, release the claim so a retry runs again. A claim whose process died is taken
   over after `lock_timeout_s`; the late original then fails to record and rolls back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from app.domain.errors import Conflict, InvalidInput
from app.domain.ports import (
    IdempotencyRepository,
    MessageRepository,
    SessionRepository,
    UnitOfWork,
    UserRepository,
)

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

#: Expired keys deleted per claim: bounded work per request that still outpaces key creation.
PURGE_BATCH = 100


@dataclass(frozen=True, slots=True)
class IdempotencyPolicy:
    ttl_s: int = 24 * 3600
    lock_timeout_s: int = 60


@dataclass(frozen=True, slots=True)
class Replay:
    """The response recorded for the first request with this key."""

    status_code: int
    body: str


class _HeldCommit:
    """The caller's unit of work with `commit` held back until the response is recorded."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    @property
    def users(self) -> UserRepository:
        return self._uow.users

    @property
    def sessions(self) -> SessionRepository:
        return self._uow.sessions

    @property
    def messages(self) -> MessageRepository:
        return self._uow.messages

    @property
    def idempotency(self) -> IdempotencyRepository:
        return self._uow.idempotency

    async def commit(self) -> None:
        """Held: `IdempotentWrites.run` commits after recording the response."""

    async def rollback(self) -> None:
        await self._uow.rollback()


class IdempotentWrites:
    def __init__(self, uow: UnitOfWork, policy: IdempotencyPolicy | None = None) -> None:
        self._uow = uow
        self._policy = policy or IdempotencyPolicy()

    async def run(
        self,
        user_id: int,
        key: str,
        fingerprint: str,
        status_code: int,
        action: Callable[[UnitOfWork], Awaitable[T]],
    ) -> T | Replay:
        """Run `action` once for this user's key; a repeat gets the recorded `Replay`."""
        repo = self._uow.idempotency
        claim = str(uuid.uuid4())
        held = await repo.claim(
            user_id,
            key,
            fingerprint,
            claim,
            ttl_s=self._policy.ttl_s,
            lock_timeout_s=self._policy.lock_timeout_s,
        )
        await repo.purge_expired(PURGE_BATCH)
        await self._uow.commit()
        if held is not None:
            return _replay_or_refuse(held.fingerprint == fingerprint, held.status_code, held.body)
        try:
            result = await action(_HeldCommit(self._uow))
            if not await repo.complete(user_id, key, claim, status_code, result.model_dump_json()):
                raise Conflict(
                    "this request outlived the idempotency lock and another request with the "
                    "same Idempotency-Key took over; nothing was saved"
                )
            await self._uow.commit()
        except Exception:
            await self._release(user_id, key, claim)
            raise
        return result

    async def _release(self, user_id: int, key: str, claim: str) -> None:
        try:
            await self._uow.rollback()
            await self._uow.idempotency.release(user_id, key, claim)
            await self._uow.commit()
        except Exception:  # the original error matters more; the claim expires by itself
            log.warning("could not release idempotency key claim", exc_info=True)


def _replay_or_refuse(same_request: bool, status_code: int | None, body: str | None) -> Replay:
    if not same_request:
        raise InvalidInput(
            "this Idempotency-Key was already used with a different request; use a new key"
        )
    if status_code is None or body is None:
        raise Conflict(
            "a request with this Idempotency-Key is still being processed; retry shortly"
        )
    return Replay(status_code=status_code, body=body)
