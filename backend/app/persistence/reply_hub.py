"""The per-process reply hub: runs replies, batches their progress into PostgreSQL, and fans it
out to followers in every server process through LISTEN/NOTIFY.

- Progress: one writer task appends every active reply's new text in ONE statement every
  `flush_s` (not one write per token), then NOTIFYs the ids it advanced.
- Followers in the generating process read the in-memory text; followers elsewhere wake on the
  NOTIFY (or a slow poll, in case one is missed) and read the row from the character offset
  they have reached. Content only ever grows, so offsets mean the same thing everywhere.
- Cancel from any process: a flag on the row plus a NOTIFY; the generating process stops the
  model call (the writer's statement also returns the flag, a fallback for a missed NOTIFY).
- Liveness: each process holds a session advisory lock on its `worker_key` over its dedicated
  listener connection; `streaming` rows whose key is not locked belong to a dead process and
  the sweep (at start-up, then periodically) marks them `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Row, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import BigInteger, Integer, Text

from app.domain.dtos import MessageDTO
from app.domain.errors import Unavailable
from app.domain.ports import LiveReply, Progress, ReplyOutcome
from app.persistence.live_replies import LocalReply
from app.persistence.models import Message
from app.persistence.repositories.messages import CANCEL_CHANNEL, PROGRESS_CHANNEL

log = logging.getLogger(__name__)

#: First key of our two-key advisory locks, so they cannot clash with other applications'.
LOCK_NAMESPACE = 0x4C4C4D31
#: A follower in another process re-reads at least this often, even without a NOTIFY.
POLL_S = 1.0
#: A quiet stream yields an empty `Progress` this often: the API sends an SSE comment, so
#: proxies and clients can tell a slow model from a dead connection.
KEEPALIVE_S = 15.0
#: After the grace period, how long a stopped reply gets to save its final state.
FINAL_SAVE_S = 10.0
#: NOTIFY payloads must stay under 8000 bytes.
NOTIFY_PAYLOAD_MAX = 7_000

ORPHAN_ERROR = "the server generating this reply stopped before it finished"

_FLUSH = text(
    """
    UPDATE messages AS m SET content = m.content || v.delta
    FROM unnest(:ids, :starts, :deltas) AS v(id, start, delta)
    WHERE m.id = v.id AND m.status = 'streaming' AND char_length(m.content) = v.start
    RETURNING m.id, m.cancel_requested
    """
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("starts", type_=ARRAY(BigInteger)),
    bindparam("deltas", type_=ARRAY(Text)),
)
# Final states, batched like progress: under load one statement ends many replies.
_FINISH = text(
    """
    UPDATE messages AS m
    SET status = v.status, content = v.content, tokens = v.tokens,
        input_tokens = v.input_tokens, error = v.error, finished_at = clock_timestamp()
    FROM unnest(:ids, :statuses, :contents, :tokens, :inputs, :errors)
        AS v(id, status, content, tokens, input_tokens, error)
    WHERE m.id = v.id AND m.status = 'streaming'
    RETURNING m.id, m.session_id, m.role, m.content, m.tokens, m.created_at, m.status,
        m.input_tokens, m.error
    """
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("statuses", type_=ARRAY(Text)),
    bindparam("contents", type_=ARRAY(Text)),
    bindparam("tokens", type_=ARRAY(Integer)),
    bindparam("inputs", type_=ARRAY(Integer)),
    bindparam("errors", type_=ARRAY(Text)),
)
_RESYNC = text(
    "SELECT id, status, char_length(content) AS length FROM messages WHERE id = ANY(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))
_NOTIFY = text("SELECT pg_notify(:channel, payload) FROM unnest(:payloads) AS payload").bindparams(
    bindparam("payloads", type_=ARRAY(Text))
)
_TAIL = text("SELECT substr(content, :offset + 1) AS tail, status FROM messages WHERE id = :id")
_CANCEL = text(
    "UPDATE messages SET cancel_requested = true WHERE id = :id AND status = 'streaming' "
    "RETURNING id"
)
_CANCEL_REQUESTED = text(
    "SELECT id FROM messages WHERE id = ANY(:ids) AND cancel_requested"
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))
# The CTE calls a volatile function, so PostgreSQL runs it once, as written: one try-lock per
# distinct key. Our own key is held by our listener session, so a pooled session never gets it.
_SWEEP = text(
    """
    WITH orphaned AS (
        SELECT key FROM (
            SELECT DISTINCT worker_key AS key FROM messages WHERE status = 'streaming'
        ) AS keys
        WHERE key IS NULL OR pg_try_advisory_xact_lock(:namespace, key)
    )
    UPDATE messages SET status = 'failed', error = :error, finished_at = clock_timestamp()
    WHERE status = 'streaming'
      AND (worker_key IS NULL OR worker_key IN (SELECT key FROM orphaned WHERE key IS NOT NULL))
    RETURNING id
    """
)


def _payloads(ids: list[int]) -> list[str]:
    """Comma-separated ids, split to respect NOTIFY's payload limit."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for message_id in ids:
        item = str(message_id)
        if size + len(item) + 1 > NOTIFY_PAYLOAD_MAX:
            chunks.append(",".join(current))
            current, size = [], 0
        current.append(item)
        size += len(item) + 1
    if current:
        chunks.append(",".join(current))
    return chunks


class PgReplyHub:
    """Implements the domain's `ReplyHub` over PostgreSQL."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        flush_s: float = 0.15,
        sweep_s: float = 30.0,
        coalesce_s: float = 0.05,
    ) -> None:
        self._engine = engine
        self._flush_s = flush_s
        self._coalesce_s = coalesce_s
        self._sweep_s = sweep_s
        self._worker_key = secrets.randbelow(2**31 - 1) + 1
        self._running = False
        self._stopping = False
        self._live: dict[int, LocalReply] = {}
        self._generations: set[asyncio.Task[None]] = set()
        self._remote_waiters: dict[int, set[asyncio.Future[None]]] = {}
        self._finals: list[tuple[int, ReplyOutcome, asyncio.Future[MessageDTO | None]]] = []
        self._finals_waiting = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._background: list[asyncio.Task[None]] = []

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def worker_key(self) -> int:
        if not self._running:
            raise Unavailable("replies are not being served right now; retry shortly")
        return self._worker_key

    @property
    def active(self) -> int:
        """Replies this process is generating."""
        return len(self._live)

    async def start(self) -> None:
        """Connect and sweep now if the database is there; otherwise keep retrying in the
        background (the API still starts; new replies answer 503 until then)."""
        self._stopping = False
        try:
            await self._connect_listener()
            await self.sweep()
            self._running = True
        except Exception as exc:
            log.warning("reply hub cannot reach the database yet (%r); retrying", exc)
        self._background = [
            asyncio.create_task(self._write_progress(), name="reply-progress-writer"),
            asyncio.create_task(self._write_finals(), name="reply-final-writer"),
            asyncio.create_task(self._supervise(), name="reply-supervisor"),
        ]

    async def stop(self, grace_s: float) -> None:
        """Let running replies finish within `grace_s`; stop the rest, which saves them `failed`."""
        self._running = False
        self._stopping = True
        pending = set(self._generations)
        if pending and grace_s > 0:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        for live in list(self._live.values()):
            live.stop("shutdown")
        if pending:
            await asyncio.wait(pending, timeout=FINAL_SAVE_S)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listener.close(), 2.0)
            self._listener = None

    # --- generating --------------------------------------------------------------------------

    def launch(self, message_id: int, run: Callable[[LiveReply], Awaitable[None]]) -> None:
        live = LocalReply(message_id, self._save_final)
        self._live[message_id] = live
        task = asyncio.create_task(self._run(live, run), name=f"reply-{message_id}")
        self._generations.add(task)
        task.add_done_callback(self._generations.discard)

    async def _run(self, live: LocalReply, run: Callable[[LiveReply], Awaitable[None]]) -> None:
        try:
            await run(live)
        finally:
            self._live.pop(live.message_id, None)
            if not live.done.is_set():
                live.finish(None)

    async def flush(self) -> None:
        """Persist every local reply's new text in one statement, then NOTIFY followers."""
        batch = [
            (live, live.persisted, live.length)
            for live in list(self._live.values())
            if live.length > live.persisted and not live.done.is_set()
        ]
        if not batch:
            return
        ids = [live.message_id for live, _, _ in batch]
        starts = [start for _, start, _ in batch]
        deltas = [live.text[start:end] for live, start, end in batch]
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(_FLUSH, {"ids": ids, "starts": starts, "deltas": deltas})
            ).all()
            advanced = [row.id for row in rows]
            if advanced:
                await conn.execute(
                    _NOTIFY, {"channel": PROGRESS_CHANNEL, "payloads": _payloads(advanced)}
                )
            missing = set(ids) - set(advanced)
            resync = (await conn.execute(_RESYNC, {"ids": list(missing)})).all() if missing else []
        by_id = {live.message_id: (live, end) for live, _, end in batch}
        for row in rows:
            live, end = by_id[row.id]
            live.persisted = end
            if row.cancel_requested:
                live.stop("cancelled")
        self._resync(by_id, missing, resync)

    def _resync(
        self, by_id: dict[int, tuple[LocalReply, int]], missing: set[int], rows: Sequence[Row[Any]]
    ) -> None:
        """A row the writer could not advance was deleted, ended elsewhere (the sweep), or
        already holds this text (a commit whose answer was lost)."""
        found = {row.id: row for row in rows}
        for message_id in missing:
            live, _ = by_id[message_id]
            row = found.get(message_id)
            if row is None or row.status != "streaming":
                live.stop("gone")
            elif row.length <= live.length:
                live.persisted = row.length

    async def _save_final(self, message_id: int, outcome: ReplyOutcome) -> MessageDTO | None:
        """Queue the final state for the next batch and wait until it is committed."""
        future: asyncio.Future[MessageDTO | None] = asyncio.get_running_loop().create_future()
        self._finals.append((message_id, outcome, future))
        self._finals_waiting.set()
        return await future

    async def _write_finals(self) -> None:
        """Group commit: write every final state queued meanwhile in one statement. When idle,
        a reply's end costs one round of writes; under load, the rounds are shared."""
        while True:
            await self._finals_waiting.wait()
            self._finals_waiting.clear()
            batch, self._finals = self._finals, []
            if not batch:
                continue
            try:
                saved = await self._store_finals(batch)
            except Exception as exc:  # the database may be briefly away: keep them, retry
                log.warning("saving %d final reply states failed: %r", len(batch), exc)
                self._finals = batch + self._finals
                self._finals_waiting.set()
                await asyncio.sleep(0.5)
                continue
            for message_id, _, future in batch:
                if not future.done():
                    future.set_result(saved.get(message_id))

    async def _store_finals(
        self, batch: list[tuple[int, ReplyOutcome, asyncio.Future[MessageDTO | None]]]
    ) -> dict[int, MessageDTO]:
        outcomes = [outcome for _, outcome, _ in batch]
        params = {
            "ids": [message_id for message_id, _, _ in batch],
            "statuses": [o.status for o in outcomes],
            "contents": [o.content for o in outcomes],
            "tokens": [o.tokens for o in outcomes],
            "inputs": [o.input_tokens for o in outcomes],
            "errors": [o.error for o in outcomes],
        }
        async with self._engine.begin() as conn:
            rows = (await conn.execute(_FINISH, params)).all()
            if rows:
                payloads = _payloads([row.id for row in rows])
                await conn.execute(_NOTIFY, {"channel": PROGRESS_CHANNEL, "payloads": payloads})
        return {row.id: MessageDTO.model_validate(row) for row in rows}

    async def _write_progress(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.flush()
            except Exception as exc:  # the database may be briefly away: retry next round
                log.warning("persisting reply progress failed: %r", exc)

    # --- following ---------------------------------------------------------------------------

    async def follow(self, message_id: int, offset: int) -> AsyncIterator[Progress]:
        live = self._live.get(message_id)
        if live is not None:
            async for progress in self._follow_local(live, offset):
                offset += len(progress.text)
                yield progress
            if live.final is not None:
                yield Progress(final=live.final)
                return
            # The final state could not be saved by this process: watch the row instead.
        async for progress in self._follow_row(message_id, offset):
            yield progress

    async def _follow_local(self, live: LocalReply, offset: int) -> AsyncIterator[Progress]:
        """Text as the model produces it, until the reply is done. After a delta, tokens that
        arrive within `coalesce_s` travel together: the first token is never delayed, and a
        fast model costs one event per interval rather than one per token."""
        while True:
            changed = live.changed()
            done = live.done.is_set()
            if live.length > offset:
                tail = live.text[offset:]
                offset += len(tail)
                yield Progress(text=tail)
                if not done and self._coalesce_s:
                    await asyncio.sleep(self._coalesce_s)
                    continue
            if done:
                return
            try:
                await asyncio.wait_for(changed, KEEPALIVE_S)
            except TimeoutError:
                yield Progress()

    async def _follow_row(self, message_id: int, offset: int) -> AsyncIterator[Progress]:
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            waiter = self._remote_waiter(message_id)
            try:
                async with self._engine.connect() as conn:
                    row = (await conn.execute(_TAIL, {"id": message_id, "offset": offset})).first()
                if row is None:
                    yield Progress(gone=True)
                    return
                if row.tail:
                    offset += len(row.tail)
                    quiet_since = loop.time()
                    yield Progress(text=row.tail)
                elif loop.time() - quiet_since >= KEEPALIVE_S:
                    quiet_since = loop.time()
                    yield Progress()
                if row.status != "streaming":
                    final = await self._read(message_id)
                    yield Progress(final=final) if final is not None else Progress(gone=True)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, POLL_S)
            finally:
                self._drop_waiter(message_id, waiter)

    async def wait_finished(self, message_id: int, timeout_s: float) -> MessageDTO | None:
        live = self._live.get(message_id)
        if live is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.done.wait(), timeout_s)
            return live.final
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            waiter = self._remote_waiter(message_id)
            try:
                final = await self._read(message_id)
                if final is None or final.status != "streaming":
                    return final
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, min(remaining, POLL_S))
            finally:
                self._drop_waiter(message_id, waiter)

    async def _read(self, message_id: int) -> MessageDTO | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(Message.__table__).where(Message.id == message_id))
            ).first()
        return MessageDTO.model_validate(row) if row is not None else None

    def _remote_waiter(self, message_id: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._remote_waiters.setdefault(message_id, set()).add(future)
        return future

    def _drop_waiter(self, message_id: int, future: asyncio.Future[None]) -> None:
        waiters = self._remote_waiters.get(message_id)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._remote_waiters[message_id]

    def _wake_remote(self, message_ids: list[int] | None = None) -> None:
        targets = self._remote_waiters.keys() if message_ids is None else message_ids
        for message_id in list(targets):
            for future in self._remote_waiters.get(message_id, ()):
                if not future.done():
                    future.set_result(None)

    # --- cancelling --------------------------------------------------------------------------

    async def request_cancel(self, message_id: int) -> None:
        live = self._live.get(message_id)
        if live is not None:
            live.stop("cancelled")
            return
        async with self._engine.begin() as conn:
            flagged = (await conn.execute(_CANCEL, {"id": message_id})).first()
            if flagged is not None:
                await conn.execute(
                    _NOTIFY, {"channel": CANCEL_CHANNEL, "payloads": [str(message_id)]}
                )

    # --- liveness ----------------------------------------------------------------------------

    async def sweep(self) -> list[int]:
        """Mark `failed` the streaming replies of processes that are gone; return their ids."""
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(_SWEEP, {"namespace": LOCK_NAMESPACE, "error": ORPHAN_ERROR})
            ).all()
            ids = [row.id for row in rows]
            if ids:
                await conn.execute(
                    _NOTIFY, {"channel": PROGRESS_CHANNEL, "payloads": _payloads(ids)}
                )
        if ids:
            log.warning("marked %d orphaned streaming replies failed", len(ids))
        return ids

    async def _connect_listener(self) -> None:
        _, params = self._engine.dialect.create_connect_args(self._engine.url)
        params = {
            k: v for k, v in params.items() if k in {"host", "port", "user", "password", "database"}
        }
        conn = await asyncpg.connect(
            **params, timeout=5, server_settings={"application_name": "agent-stack-listener"}
        )
        try:
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", LOCK_NAMESPACE, self._worker_key
            ):
                if self._live:  # our rows carry the old key: keep it, the lock will come back
                    await asyncio.sleep(0.5)
                else:
                    self._worker_key = secrets.randbelow(2**31 - 1) + 1
            await conn.add_listener(PROGRESS_CHANNEL, self._on_progress)
            await conn.add_listener(CANCEL_CHANNEL, self._on_cancel)
        except BaseException:
            await conn.close()
            raise
        self._listener = conn

    async def _supervise(self) -> None:
        """Reconnect a lost listener (then catch up on what it missed) and sweep periodically."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._sweep_s
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            try:
                if self._listener is None or self._listener.is_closed():
                    self._listener = None
                    await self._connect_listener()
                    self._wake_remote()
                    await self._catch_up_cancels()
                if not self._running and not self._stopping:
                    await self.sweep()
                    self._running = True
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self._sweep_s
                    await self.sweep()
                delay = 0.5
            except Exception as exc:
                log.warning("reply hub maintenance failed: %r", exc)
                delay = min(delay * 2, 10.0)

    async def _catch_up_cancels(self) -> None:
        if not self._live:
            return
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_CANCEL_REQUESTED, {"ids": list(self._live)})).all()
        for row in rows:
            live = self._live.get(row.id)
            if live is not None:
                live.stop("cancelled")

    def _on_progress(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        ids = [int(item) for item in payload.split(",") if item.isdigit()]
        self._wake_remote([message_id for message_id in ids if message_id in self._remote_waiters])

    def _on_cancel(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload.isdigit() and (live := self._live.get(int(payload))) is not None:
            live.stop("cancelled")
