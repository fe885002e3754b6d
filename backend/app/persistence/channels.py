"""NOTIFY channels: how server processes tell each other what changed. Sent from SQL (so a
notification is delivered exactly when its transaction commits), received by each process's
`Listener`."""

from __future__ import annotations

#: Comma-separated ids of replies whose progress or final state was written.
REPLY_PROGRESS = "agent_stack_reply_progress"
#: The id of a reply someone asked to cancel.
REPLY_CANCEL = "agent_stack_reply_cancel"
#: The id of a user whose account was erased: caches of the caller's id must forget it.
USER_DELETED = "agent_stack_user_deleted"

#: Ids per payload in batched notifications: NOTIFY payloads must stay under 8,000 bytes, and an
#: id has at most 19 digits.
IDS_PER_PAYLOAD = 300


def notify_ids_sql(channel_param: str, ids_relation: str, id_column: str) -> str:
    """A SELECT that NOTIFYs the ids of `ids_relation` in batched, comma-separated payloads;
    returns one row per payload (reference it, or a CTE holding it is never run)."""
    return (
        f"SELECT pg_notify(:{channel_param}, string_agg({id_column}::text, ',')) "
        f"FROM (SELECT {id_column}, (row_number() OVER () - 1) / {IDS_PER_PAYLOAD} AS part "
        f"FROM {ids_relation}) AS numbered GROUP BY part"
    )
