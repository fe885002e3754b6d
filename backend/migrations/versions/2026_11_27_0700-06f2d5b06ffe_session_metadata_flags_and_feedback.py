"""session metadata, archive and pin flags, and feedback on replies

Reviewed: sessions get `metadata` (a JSONB object, `{}` by default, with a check that it is an
object), `archived` and `pinned` (false by default): adding columns with constant defaults
rewrites nothing on PostgreSQL 11+. The list's index `(user_id, updated_at, id)` is replaced by
`(user_id, archived, pinned, updated_at, id)`, which serves the new order (pinned first, then by
recency, among the archived or the unarchived sessions) and its keyset cursor; `(user_id, id)`
serves the export, which pages through a user's sessions by id; a GIN index (`jsonb_path_ops`,
the smaller operator class, enough for `@>`) serves the metadata filter. Messages get the
feedback columns (rating, comment, time), with checks keeping feedback on assistant messages,
complete (a rating and its time together; no comment without a rating) and the comment within
2,000 characters.

Data: none to migrate. Existing sessions are unarchived, unpinned, without metadata; existing
messages have no feedback.

Downgrade drops the columns (metadata, flags and feedback are lost: nothing older knows them)
and restores the previous list index.

Revision ID: 06f2d5b06ffe
Revises: 5236198b7de9
Create Date: 2026-11-27 07:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "06f2d5b06ffe"
down_revision: str | None = "5236198b7de9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "sessions", sa.Column("archived", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column(
        "sessions", sa.Column("pinned", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_sessions_metadata_object"), "sessions", "jsonb_typeof(metadata) = 'object'"
    )
    op.drop_index("ix_sessions_user_id_updated_at_id", table_name="sessions")
    op.create_index(
        "ix_sessions_user_id_archived_pinned_updated_at_id",
        "sessions",
        ["user_id", "archived", "pinned", "updated_at", "id"],
        unique=False,
    )
    op.create_index("ix_sessions_user_id_id", "sessions", ["user_id", "id"], unique=False)
    op.create_index(
        "ix_sessions_metadata",
        "sessions",
        ["metadata"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )

    op.add_column(
        "messages",
        sa.Column("feedback_rating", sa.String(length=8), nullable=True, comment="up or down"),
    )
    op.add_column("messages", sa.Column("feedback_comment", sa.Text(), nullable=True))
    op.add_column(
        "messages",
        sa.Column(
            "feedback_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the current feedback was given",
        ),
    )
    op.create_check_constraint(
        op.f("ck_messages_feedback_on_assistant"),
        "messages",
        "feedback_rating IS NULL OR (role = 'assistant' AND feedback_rating IN ('up', 'down'))",
    )
    op.create_check_constraint(
        op.f("ck_messages_feedback_complete"),
        "messages",
        "(feedback_rating IS NULL) = (feedback_at IS NULL) "
        "AND (feedback_comment IS NULL OR feedback_rating IS NOT NULL)",
    )
    op.create_check_constraint(
        op.f("ck_messages_feedback_comment_length"),
        "messages",
        "char_length(feedback_comment) <= 2000",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_messages_feedback_comment_length"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_feedback_complete"), "messages", type_="check")
    op.drop_constraint(op.f("ck_messages_feedback_on_assistant"), "messages", type_="check")
    op.drop_column("messages", "feedback_at")
    op.drop_column("messages", "feedback_comment")
    op.drop_column("messages", "feedback_rating")

    op.drop_index("ix_sessions_metadata", table_name="sessions", postgresql_using="gin")
    op.drop_index("ix_sessions_user_id_id", table_name="sessions")
    op.drop_index("ix_sessions_user_id_archived_pinned_updated_at_id", table_name="sessions")
    op.create_index(
        "ix_sessions_user_id_updated_at_id",
        "sessions",
        ["user_id", "updated_at", "id"],
        unique=False,
    )
    op.drop_constraint(op.f("ck_sessions_metadata_object"), "sessions", type_="check")
    op.drop_column("sessions", "pinned")
    op.drop_column("sessions", "archived")
    op.drop_column("sessions", "metadata")
