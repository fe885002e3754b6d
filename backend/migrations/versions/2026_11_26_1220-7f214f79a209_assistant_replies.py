"""assistant replies: message status, usage, error, generating worker, cancel request

Reviewed: existing rows become `completed` (the server default). The content check now lets an
assistant reply be empty while it streams or when it was cancelled/failed before any text; every
other message and every completed one still needs text. A partial unique index allows one
`streaming` message per session, which is what makes "one reply at a time" hold across processes.

Revision ID: 7f214f79a209
Revises: bd802d9743a4
Create Date: 2026-11-26 12:20:18.238798+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7f214f79a209"
down_revision: str | None = "bd802d9743a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CONTENT_CHECK = "char_length(content) > 0"
NEW_CONTENT_CHECK = "char_length(content) > 0 OR (role = 'assistant' AND status <> 'completed')"


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("status", sa.String(length=16), server_default="completed", nullable=False),
    )
    op.add_column(
        "messages", sa.Column("input_tokens", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "messages", sa.Column("error", sa.Text(), nullable=True, comment="Why a reply failed")
    )
    op.add_column("messages", sa.Column("worker_key", sa.Integer(), nullable=True))
    op.add_column(
        "messages",
        sa.Column(
            "cancel_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column("messages", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
    op.alter_column(
        "messages",
        "tokens",
        existing_type=sa.INTEGER(),
        comment="Output tokens for replies",
        existing_nullable=False,
        existing_server_default=sa.text("0"),
    )
    op.create_check_constraint(
        op.f("ck_messages_status_known"),
        "messages",
        "status IN ('streaming', 'completed', 'cancelled', 'failed')",
    )
    op.create_check_constraint(
        op.f("ck_messages_input_tokens_non_negative"), "messages", "input_tokens >= 0"
    )
    op.drop_constraint(op.f("ck_messages_content_not_empty"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_content_not_empty"), "messages", NEW_CONTENT_CHECK)
    op.create_index(
        "uq_messages_session_id_streaming",
        "messages",
        ["session_id"],
        unique=True,
        postgresql_where=sa.text("status = 'streaming'"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_messages_session_id_streaming",
        table_name="messages",
        postgresql_where=sa.text("status = 'streaming'"),
    )
    # The old schema has no empty messages: give empty replies a visible placeholder.
    op.execute("UPDATE messages SET content = '(no reply)' WHERE content = ''")
    op.drop_constraint(op.f("ck_messages_content_not_empty"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_content_not_empty"), "messages", OLD_CONTENT_CHECK)
    op.drop_constraint(op.f("ck_messages_input_tokens_non_negative"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_status_known"), "messages", type_="check")
    op.alter_column(
        "messages",
        "tokens",
        existing_type=sa.INTEGER(),
        comment=None,
        existing_comment="Output tokens for replies",
        existing_nullable=False,
        existing_server_default=sa.text("0"),
    )
    op.drop_column("messages", "finished_at")
    op.drop_column("messages", "cancel_requested")
    op.drop_column("messages", "worker_key")
    op.drop_column("messages", "error")
    op.drop_column("messages", "input_tokens")
    op.drop_column("messages", "status")
