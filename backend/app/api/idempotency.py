"""The `Idempotency-Key` header for create endpoints: one dependency, no per-endpoint logic."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel

from app.api.dependencies.auth import Caller, CallerDep
from app.api.observe import route_template
from app.core import metrics
from app.domain.ports import UnitOfWork
from app.domain.services.idempotency import IdempotentWrites, Replay

T = TypeVar("T", bound=BaseModel)

REPLAYED_HEADER = "Idempotent-Replayed"

KEY_DESCRIPTION = (
    "Makes the request safe to retry. Any unique string (a UUID is ideal): 1..255 printable "
    "ASCII characters, scoped to the caller. A retry with the same key and the same request "
    "replays the first response (status and body, with `Idempotent-Replayed: true`) and creates "
    "nothing; the same key with a different request is 422; while the first request is still "
    "running, 409. Keys expire 24 hours after first use (`IDEMPOTENCY_TTL_S`); after that the "
    "key is treated as new. Failed requests do not consume the key."
)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7E]+$",
        description=KEY_DESCRIPTION,
        examples=["9f1c2c7e-3f4a-4b8e-9d53-0c1b7a8f6e21"],
    ),
]


async def fingerprint(request: Request) -> str:
    """SHA-256 of method, path, sorted query and body; JSON bodies are compared by content,
    so a retry that re-serialises the same object with other spacing or key order matches."""
    body = await request.body()
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
        body = canonical.encode()
    except (ValueError, UnicodeDecodeError):
        pass  # not JSON: the raw bytes are the fingerprint
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


class Idempotency:
    """Runs a create use case under the request's `Idempotency-Key`, if it sent one."""

    def __init__(self, caller: Caller, key: str | None, fingerprint: str, route: str) -> None:
        self.caller = caller
        self._route = route
        self._key = key
        self._fingerprint = fingerprint

    async def run(
        self, action: Callable[[UnitOfWork], Awaitable[T]], status_code: int = 201
    ) -> T | Response:
        uow = self.caller.uow
        if self._key is None:
            return await action(uow)
        policy = self.caller.services.idempotency
        outcome = await IdempotentWrites(uow, policy).run(
            self.caller.user_id, self._key, self._fingerprint, status_code, action
        )
        if isinstance(outcome, Replay):
            metrics.IDEMPOTENT_REPLAYS.labels(self._route).inc()
            return Response(
                outcome.body,
                status_code=outcome.status_code,
                media_type="application/json",
                headers={REPLAYED_HEADER: "true"},
            )
        return outcome


async def get_idempotency(
    request: Request, caller: CallerDep, key: IdempotencyKeyHeader = None
) -> Idempotency:
    digest = await fingerprint(request) if key is not None else ""
    return Idempotency(caller, key, digest, route_template(request.scope))


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
