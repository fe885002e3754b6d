"""An import, checked and put in order before anything is written: the tree's rules (every
parent in the document, no cycle, each tool result under its call), then the messages in an
order where each parent comes before its children, so new ids keep `parent_id < id`."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import UTC, datetime

from app.domain.dtos import ImportedMessage, SessionImportDTO
from app.domain.errors import InvalidInput, TooLarge

#: The title of an OpenAI-style import, which has none: its first user message's first line.
TITLE_CHARS = 80
DEFAULT_TITLE = "Imported conversation"


@dataclass(frozen=True, slots=True)
class ImportPlan:
    title: str
    metadata: dict[str, str]
    archived: bool
    pinned: bool
    created_at: datetime | None
    updated_at: datetime | None
    #: A temporary chat's end, only when still ahead.
    expires_at: datetime | None
    #: Parents before children; `parents[i]` is the position in `messages` of message i's
    #: parent (None for a root).
    messages: list[ImportedMessage]
    parents: list[int | None]
    #: The position of the current message, if any.
    current: int | None


def _where(index: int, field: str) -> tuple[str, tuple[str | int, ...]]:
    return f"messages[{index}].{field}", ("body", "messages", index, field)


def _refuse(index: int, field: str, why: str) -> InvalidInput:
    name, loc = _where(index, field)
    return InvalidInput(f"{name}: {why}", loc=loc)


def _exported_parents(doc: SessionImportDTO) -> tuple[list[int | None], int | None]:
    """Each message's parent as a position in the document; the current message's position."""
    position: dict[int, int] = {}
    for index, message in enumerate(doc.messages):
        if message.id is None:
            raise _refuse(index, "id", "required in an exported document")
        if message.id in position:
            raise _refuse(
                index, "id", f"{message.id} is already the id of messages[{position[message.id]}]"
            )
        position[message.id] = index
    parents: list[int | None] = []
    for index, message in enumerate(doc.messages):
        if message.parent_id is not None and message.parent_id not in position:
            raise _refuse(index, "parent_id", f"message {message.parent_id} is not in the document")
        parents.append(position[message.parent_id] if message.parent_id is not None else None)
    current_id = doc.session.current_message_id if doc.session is not None else None
    if current_id is not None and current_id not in position:
        raise InvalidInput(
            f"session.current_message_id: message {current_id} is not in the document",
            loc=("body", "session", "current_message_id"),
        )
    return parents, position[current_id] if current_id is not None else None


def _chain_parents(doc: SessionImportDTO) -> tuple[list[int | None], int | None]:
    for index, message in enumerate(doc.messages):
        for field in ("id", "parent_id"):
            if field in message.model_fields_set:
                raise _refuse(index, field, "only exported documents (with `format`) carry it")
    count = len(doc.messages)
    return [index - 1 if index else None for index in range(count)], (count - 1 if count else None)


def _parents_first(parents: list[int | None]) -> list[int]:
    """Positions with every parent before its children, otherwise in document order; a cycle
    leaves positions out, and the first of them is refused."""
    children: list[list[int]] = [[] for _ in parents]
    ready = []
    for index, parent in enumerate(parents):
        if parent is None:
            ready.append(index)
        else:
            children[parent].append(index)
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for child in children[index]:
            heapq.heappush(ready, child)
    if len(order) < len(parents):
        # Up from a message left out, until a message comes round again: that one is on the
        # cycle.
        index, seen = min(set(range(len(parents))) - set(order)), set()
        while index not in seen:
            seen.add(index)
            index = parents[index]  # type: ignore[assignment]  # left out: it has a parent
        raise _refuse(index, "parent_id", "the messages' parents form a cycle")
    return order


def _check_tool_results(messages: list[ImportedMessage], parents: list[int | None]) -> None:
    """Each tool result answers a call of an assistant message above it on its branch: a walk
    down the tree that keeps the calls of the path it is on (linear in the messages)."""
    children: list[list[int]] = [[] for _ in parents]
    roots: list[int] = []
    for index, parent in enumerate(parents):
        (roots if parent is None else children[parent]).append(index)
    on_path: dict[str, int] = {}
    stack: list[tuple[int, bool]] = [(root, True) for root in reversed(roots)]
    while stack:
        index, entering = stack.pop()
        calls = [call.id for call in messages[index].tool_calls or ()]
        if not entering:
            for call in calls:
                on_path[call] -= 1
            continue
        call_id = messages[index].tool_call_id
        if call_id is not None and not on_path.get(call_id):
            raise _refuse(
                index,
                "tool_call_id",
                f"{call_id!r} is not a call of an assistant message above it on its branch",
            )
        for call in calls:
            on_path[call] = on_path.get(call, 0) + 1
        stack.append((index, False))
        stack.extend((child, True) for child in reversed(children[index]))


def _title(doc: SessionImportDTO) -> str:
    if doc.session is not None:
        return doc.session.title
    for message in doc.messages:
        if message.role == "user" and message.content and message.content.strip():
            line = message.content.strip().splitlines()[0].strip()
            return line[:TITLE_CHARS].strip() or DEFAULT_TITLE
    return DEFAULT_TITLE


def _ahead(moment: datetime | None) -> datetime | None:
    """An imported expiry (in UTC), if it has not passed. One already passed is dropped rather
    than refused: a temporary chat exported and imported after its end comes back as a kept
    session, instead of failing or vanishing at once."""
    return moment if moment is not None and moment > datetime.now(UTC) else None


def plan_import(doc: SessionImportDTO, max_messages: int) -> ImportPlan:
    """Check the document and order its messages, or say which item is wrong (422 naming its
    position) or that it holds too many (413)."""
    if len(doc.messages) > max_messages:
        raise TooLarge(
            f"the document holds {len(doc.messages)} messages; an import takes at most "
            f"{max_messages}"
        )
    parents, current = _exported_parents(doc) if doc.format else _chain_parents(doc)
    order = _parents_first(parents)
    _check_tool_results(doc.messages, parents)
    new_position = {old: new for new, old in enumerate(order)}
    session = doc.session
    return ImportPlan(
        title=_title(doc),
        metadata=dict(session.metadata) if session else {},
        archived=session.archived if session else False,
        pinned=session.pinned if session else False,
        created_at=session.created_at if session else None,
        updated_at=session.updated_at if session else None,
        expires_at=_ahead(session.expires_at) if session else None,
        messages=[doc.messages[old] for old in order],
        parents=[
            new_position[parent] if (parent := parents[old]) is not None else None for old in order
        ],
        current=new_position[current] if current is not None else None,
    )
