"""conversation trees and tool calls

Reviewed: a message gets `parent_id` (NULL for a root) and a session `current_message_id`, the
last message of its active branch. Both keys are composite with the session id, so neither can
point into another session: `(session_id, parent_id) → messages (session_id, id)` (hence the new
UNIQUE (session_id, id)) cascades with the parent, and `(id, current_message_id) → messages
(session_id, id)` empties only `current_message_id` when that message goes (`ON DELETE SET NULL
(current_message_id)`, PostgreSQL 15+). `CHECK (parent_id < id)` makes cycles impossible, ids only
growing. The index on (session_id, parent_id) finds a message's children and a session's roots,
and serves the cascade. Assistant messages get `tool_calls` (JSONB array), tool messages
`tool_call_id`, replies `finish_reason` and `model`; checks keep each field on its role, and a
completed assistant message may be empty when it only calls tools.

Data: each session's messages become one chain in the order the API lists them, (created_at, id),
and the session's current message is the last. Rows written by the very first revision carry an
application timestamp, so two concurrent appends could be listed out of id order; such a session
cannot be chained by time without breaking `parent_id < id`, and is chained by id instead (the two
orders differ only between messages stamped within the same instant). Older replies keep
`finish_reason` and `model` NULL: nobody recorded them.

Downgrade drops the tree and the tool data (messages stay, as the flat list they always were); a
completed assistant message that only called tools gets its calls as text, which the old content
check needs.

Revision ID: 5236198b7de9
Revises: 3c1f9a4e2b7d
Create Date: 2026-11-27 05:10:27.399637+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5236198b7de9"
down_revision: str | None = "3c1f9a4e2b7d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CONTENT_CHECK = "char_length(content) > 0 OR (role = 'assistant' AND status <> 'completed')"
NEW_CONTENT_CHECK = (
    "char_length(content) > 0 OR (role = 'assistant' AND "
    "(status <> 'completed' OR tool_calls IS NOT NULL))"
)
FINISH_REASONS = "'stop', 'length', 'tool_calls', 'content_filter', 'cancelled', 'error'"

# Each session's chain: by (created_at, id), unless that order contradicts the ids somewhere in
# the session (then by id, which always satisfies parent_id < id).
CHAIN = """
WITH ordered AS (
    SELECT id, session_id,
           lag(id) OVER (PARTITION BY session_id ORDER BY created_at, id) AS by_time,
           lag(id) OVER (PARTITION BY session_id ORDER BY id) AS by_id
    FROM messages
), inverted AS (
    SELECT DISTINCT session_id FROM ordered WHERE by_time > id
), chained AS (
    SELECT o.id, CASE WHEN i.session_id IS NULL THEN o.by_time ELSE o.by_id END AS parent_id
    FROM ordered AS o LEFT JOIN inverted AS i ON i.session_id = o.session_id
)
UPDATE messages AS m SET parent_id = chained.parent_id
FROM chained WHERE m.id = chained.id AND chained.parent_id IS NOT NULL
"""
# The end of each chain: the message nothing answers.
CURRENT = """
UPDATE sessions AS s SET current_message_id = tail.id
FROM messages AS tail
WHERE tail.session_id = s.id AND NOT EXISTS (
    SELECT 1 FROM messages AS child
    WHERE child.session_id = tail.session_id AND child.parent_id = tail.id
)
"""


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column(
            "parent_id",
            sa.BigInteger(),
            nullable=True,
            comment="The message this one answers; NULL for a root",
        ),
    )
    op.add_column(
        "messages",
        sa.Column(
            "tool_calls",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="An assistant's calls, in Chat Completions' shape",
        ),
    )
    op.add_column(
        "messages",
        sa.Column(
            "tool_call_id",
            sa.String(length=128),
            nullable=True,
            comment="The call a tool message answers",
        ),
    )
    op.add_column("messages", sa.Column("finish_reason", sa.String(length=16), nullable=True))
    op.add_column(
        "messages",
        sa.Column("model", sa.String(length=200), nullable=True, comment="The model that wrote it"),
    )
    op.add_column("sessions", sa.Column("current_message_id", sa.BigInteger(), nullable=True))

    op.execute(CHAIN)
    op.create_index(
        "ix_messages_session_id_parent_id", "messages", ["session_id", "parent_id"], unique=False
    )
    op.execute(CURRENT)

    op.create_unique_constraint("uq_messages_session_id_id", "messages", ["session_id", "id"])
    op.create_foreign_key(
        "fk_messages_parent_id_messages",
        "messages",
        "messages",
        ["session_id", "parent_id"],
        ["session_id", "id"],
        ondelete="CASCADE",
    )
    op.create_check_constraint(
        op.f("ck_messages_parent_before_child"), "messages", "parent_id < id"
    )
    op.create_foreign_key(
        "fk_sessions_current_message_id_messages",
        "sessions",
        "messages",
        ["id", "current_message_id"],
        ["session_id", "id"],
        ondelete="SET NULL (current_message_id)",
    )
    op.create_check_constraint(
        op.f("ck_messages_tool_calls_on_assistant"),
        "messages",
        "tool_calls IS NULL OR (role = 'assistant' AND jsonb_typeof(tool_calls) = 'array')",
    )
    op.create_check_constraint(
        op.f("ck_messages_tool_call_id_on_tool"),
        "messages",
        "tool_call_id IS NULL OR role = 'tool'",
    )
    op.create_check_constraint(
        op.f("ck_messages_finish_reason_known"), "messages", f"finish_reason IN ({FINISH_REASONS})"
    )
    op.drop_constraint(op.f("ck_messages_content_not_empty"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_content_not_empty"), "messages", NEW_CONTENT_CHECK)


def downgrade() -> None:
    # The old content check wants text in every completed message: a call-only reply says what
    # it called.
    op.execute(
        "UPDATE messages SET content = '(tool calls) ' || tool_calls::text "
        "WHERE content = '' AND status = 'completed' AND tool_calls IS NOT NULL"
    )
    op.drop_constraint(op.f("ck_messages_content_not_empty"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_content_not_empty"), "messages", OLD_CONTENT_CHECK)
    op.drop_constraint(op.f("ck_messages_finish_reason_known"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_tool_call_id_on_tool"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_tool_calls_on_assistant"), "messages", type_="check")
    op.drop_constraint("fk_sessions_current_message_id_messages", "sessions", type_="foreignkey")
    op.drop_column("sessions", "current_message_id")
    op.drop_constraint(op.f("ck_messages_parent_before_child"), "messages", type_="check")
    op.drop_constraint("fk_messages_parent_id_messages", "messages", type_="foreignkey")
    op.drop_constraint("uq_messages_session_id_id", "messages", type_="unique")
    op.drop_index("ix_messages_session_id_parent_id", table_name="messages")
    op.drop_column("messages", "model")
    op.drop_column("messages", "finish_reason")
    op.drop_column("messages", "tool_call_id")
    op.drop_column("messages", "tool_calls")
    op.drop_column("messages", "parent_id")
