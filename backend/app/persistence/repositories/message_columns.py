"""A message's columns as the API shows it, shared by the statements that read messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asyncpg import Record


def message_columns(m: str) -> str:
    """A message as the API shows it, from the row aliased `m`. While a reply streams, its text
    so far is in `reply_chunks`."""
    return f"""{m}.id, {m}.session_id, {m}.role,
    CASE WHEN {m}.status = 'streaming' THEN {m}.content || coalesce(
        (SELECT string_agg(c.text, '' ORDER BY c.start_offset) FROM reply_chunks AS c
         WHERE c.message_id = {m}.id), '')
    ELSE {m}.content END AS content,
    {m}.tokens, {m}.created_at, {m}.status, {m}.input_tokens, {m}.error, {m}.parent_id,
    {m}.tool_calls, {m}.tool_call_id, {m}.finish_reason, {m}.model, {m}.feedback_rating,
    {m}.feedback_comment, {m}.feedback_at"""


#: A message's fields, for rows just written by INSERT/UPDATE ... RETURNING (no chunks yet, or
#: none any more).
FIELDS = ("id", "session_id", "role", "content", "tokens", "created_at", "status",
          "input_tokens", "error", "parent_id", "tool_calls", "tool_call_id", "finish_reason",
          "model", "feedback_rating", "feedback_comment", "feedback_at")  # fmt: skip


def message_fields(row: Record | Mapping[str, Any]) -> dict[str, Any]:
    """A message row as MessageDTO's fields: the three feedback columns become one `feedback`
    object (or null). Done here, with plain dict calls, rather than by a validator on the DTO:
    a page of messages passes through it once per row."""
    fields = dict(row)
    rating = fields.pop("feedback_rating")
    comment, at = fields.pop("feedback_comment"), fields.pop("feedback_at")
    fields["feedback"] = (
        None if rating is None else {"rating": rating, "comment": comment, "created_at": at}
    )
    return fields
