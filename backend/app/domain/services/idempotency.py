"""Idempotent writes: a retried create with the same `Idempotency-Key` replays, never repeats.

Semantics of the IETF httpapi draft and Stripe: same key + same request → the first response
again, nothing created; same key + another request → 422; while the first is still running →
409. Keys belong to one user and are kept for `ttl_s` (at least 24 h).

The flow keeps "a replayable response exists" and "the resource exists" in lock step:
1. claim the key in its own short, committed transaction (visible to every server process);
2. run the use case inside an `atomic()` block that also records the response on the key: the
   use case's own writes join that transaction, so the resource and its replay are committed
   together or not at all;
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
from app.domain.ports import UnitOfWork

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
        async with self._uow.atomic():
            held = await repo.claim(
                user_id,
                key,
                fingerprint,
                claim,
                ttl_s=self._policy.ttl_s,
                lock_timeout_s=self._policy.lock_timeout_s,
            )
            await repo.purge_expired(PURGE_BATCH)
        if held is not None:
            return _replay_or_refuse(held.fingerprint == fingerprint, held.status_code, held.body)
        try:
            async with self._uow.atomic():
                result = await action(self._uow)
                recorded = await repo.complete(
                    user_id, key, claim, status_code, result.model_dump_json()
                )
                if not recorded:
                    raise Conflict(
                        "this request outlived the idempotency lock and another request with "
                        "the same Idempotency-Key took over; nothing was saved"
                    )
        except Exception:
            await self._release(user_id, key, claim)
            raise
        return result

    async def _release(self, user_id: int, key: str, claim: str) -> None:
        try:
            await self._uow.idempotency.release(user_id, key, claim)
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
