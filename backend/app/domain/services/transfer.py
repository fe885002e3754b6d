"""Export and import: a session as one JSON document (its whole tree, tool data and feedback),
every session of the caller as NDJSON, and a document (or an OpenAI-style message list) back in
as a new session."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.domain.dtos import (
    ExportedMessage,
    ExportedSession,
    SessionDTO,
    SessionExportDTO,
    SessionImportDTO,
)
from app.domain.import_plan import plan_import
from app.domain.ports import SessionTree, UnitOfWork
from app.domain.rules import Limits
from app.domain.services.sessions import refuse_new_session, session_not_found

#: Sessions read per statement by the NDJSON export: memory holds one batch, whatever the
#: number of sessions.
EXPORT_BATCH = 20


def export_document(tree: SessionTree) -> SessionExportDTO:
    session = ExportedSession.model_validate(tree.session, from_attributes=True)
    messages = [
        ExportedMessage.model_validate(message, from_attributes=True) for message in tree.messages
    ]
    return SessionExportDTO(session=session, messages=messages)


class TransferService:
    def __init__(self, uow: UnitOfWork, limits: Limits | None = None) -> None:
        self._uow = uow
        self._limits = limits or Limits()

    async def export_session(self, user_id: int, session_id: int) -> SessionExportDTO:
        """One statement: the session and every message of every branch."""
        found = await self._uow.sessions.trees(user_id, session_id=session_id)
        if not found:
            raise session_not_found(session_id)
        return export_document(found[0])

    async def export_all(self, user_id: int, batch: int = EXPORT_BATCH) -> AsyncIterator[str]:
        """Every session of the caller, by id, as NDJSON lines: `batch` sessions per statement
        (each its own short transaction, its connection returned before the lines are sent), so
        memory holds one batch however many sessions there are."""
        after = 0
        while True:
            trees = await self._uow.sessions.trees(user_id, after=after, limit=batch)
            for tree in trees:
                yield export_document(tree).model_dump_json() + "\n"
            if len(trees) < batch:
                return
            after = trees[-1].session.id

    async def import_session(self, user_id: int, document: SessionImportDTO) -> SessionDTO:
        """A new session of the caller with new ids and the same tree, all or nothing: the
        session (counted against the quota) and its messages (one bulk statement) in one
        transaction."""
        maximum = min(self._limits.max_import_messages, self._limits.max_messages_per_session)
        plan = plan_import(document, maximum)
        async with self._uow.atomic():
            session = await self._uow.sessions.add_imported(
                user_id, plan, self._limits.max_sessions_per_user
            )
            if session is None:
                raise await refuse_new_session(
                    self._uow, user_id, self._limits.max_sessions_per_user
                )
            if not plan.messages:
                return session
            return await self._uow.messages.add_tree(user_id, session.id, plan)
