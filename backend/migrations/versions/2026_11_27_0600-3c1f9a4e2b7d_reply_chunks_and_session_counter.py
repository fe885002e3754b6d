"""reply chunks and a session counter on users

Reviewed: `reply_chunks` holds a streaming reply's text as append-only rows keyed by
(message_id, start_offset), cascading with the message, so progress writes no longer rewrite
the growing content (WAL linear in the text). Replies streaming during the upgrade keep their
text: it moves into one chunk at offset 0 and their content becomes empty, which is what the new
code expects of a streaming row; the downgrade folds chunks back into the content.
`users.session_count` makes the per-user session quota an exact O(1) check; it is backfilled
from the sessions table (and cannot go negative).

Revision ID: 3c1f9a4e2b7d
Revises: 925e7d9b85f7
Create Date: 2026-11-27 06:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c1f9a4e2b7d"
down_revision: str | None = "925e7d9b85f7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reply_chunks",
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "start_offset",
            sa.Integer(),
            nullable=False,
            comment="Character offset of the chunk in the reply",
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.CheckConstraint("char_length(text) > 0", name=op.f("ck_reply_chunks_text_not_empty")),
        sa.CheckConstraint(
            "start_offset >= 0", name=op.f("ck_reply_chunks_start_offset_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_reply_chunks_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "start_offset", name=op.f("pk_reply_chunks")),
    )
    op.execute(
        "INSERT INTO reply_chunks (message_id, start_offset, text) "
        "SELECT id, 0, content FROM messages WHERE status = 'streaming' AND content <> ''"
    )
    op.execute("UPDATE messages SET content = '' WHERE status = 'streaming'")

    op.add_column(
        "users", sa.Column("session_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.execute(
        "UPDATE users SET session_count = counted.n FROM "
        "(SELECT user_id, count(*) AS n FROM sessions GROUP BY user_id) AS counted "
        "WHERE users.id = counted.user_id"
    )
    op.create_check_constraint(
        op.f("ck_users_session_count_non_negative"), "users", "session_count >= 0"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_session_count_non_negative"), "users", type_="check")
    op.drop_column("users", "session_count")
    op.execute(
        "UPDATE messages AS m SET content = m.content || folded.text FROM "
        "(SELECT message_id, string_agg(text, '' ORDER BY start_offset) AS text "
        "FROM reply_chunks GROUP BY message_id) AS folded WHERE m.id = folded.message_id"
    )
    op.drop_table("reply_chunks")
