"""usage is a ledger: one row per ended reply, kept when its conversation is deleted

Reviewed: until now usage was summed from the replies' own columns, so deleting a conversation
(or a temporary chat expiring) removed its usage from the report and from the daily token
limit: deleting chats reset the limit. `reply_usage` records each generated reply's usage when
it ends (written by the same statement as its final state), and outlives the messages; an
account's erasure deletes its rows.

No foreign keys (see `ReplyUsage`): `(user_id, created_at)` serves the report and the limit.
The upgrade copies the usage of every ended reply generated here (`worker_key` set); replies
still streaming are recorded when they end. The downgrade drops the table: the usage of
conversations deleted since the upgrade is lost, the rest is still in `messages`.

Revision ID: 4f6a2d8c1e35
Revises: b7e3a91c5d20
Create Date: 2026-11-27 14:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4f6a2d8c1e35"
down_revision: str | None = "b7e3a91c5d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reply_usage",
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "input_tokens >= 0", name=op.f("ck_reply_usage_input_tokens_non_negative")
        ),
        sa.CheckConstraint(
            "output_tokens >= 0", name=op.f("ck_reply_usage_output_tokens_non_negative")
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_reply_usage")),
    )
    op.create_index("ix_reply_usage_user_id_created_at", "reply_usage", ["user_id", "created_at"])
    op.execute(
        "INSERT INTO reply_usage (message_id, user_id, session_id, model, created_at, "
        "input_tokens, output_tokens) SELECT id, user_id, session_id, model, created_at, "
        "input_tokens, tokens FROM messages "
        "WHERE worker_key IS NOT NULL AND status <> 'streaming'"
    )


def downgrade() -> None:
    op.drop_index("ix_reply_usage_user_id_created_at", table_name="reply_usage")
    op.drop_table("reply_usage")
