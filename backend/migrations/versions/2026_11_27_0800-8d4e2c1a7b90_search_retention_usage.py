"""messages carry their owner; full-text search; temporary sessions; usage and retention indexes

Reviewed: `messages.user_id` is added, backfilled from each message's session, then made NOT
NULL; the single-column key to `sessions` is replaced by a composite one, `(session_id, user_id)
→ sessions (id, user_id)` (hence the new UNIQUE (id, user_id) on sessions), so the database keeps
every message's owner equal to its session's (ON DELETE CASCADE as before; ON UPDATE CASCADE
should an owner ever change). `(user_id, created_at)` serves usage by time.

Search: stored generated `tsvector` columns on message content and on session titles (weighted
`A`), built with the text search configuration SEARCH_CONFIG names when this revision runs
(default `simple`; a generated column's expression is fixed, so changing the setting later means
rebuilding the columns: README says how). GIN indexes on `(user_id, search_vector)` need the
`btree_gin` extension (trusted since PostgreSQL 13: the database owner may create it), so one
index answers "this user's rows matching q" without touching other users' entries.

Retention: `sessions.expires_at` (temporary chats), with a partial index on `(user_id,
expires_at)` for the sweep and the owner's count, and `(updated_at)` for idle sessions.

Downgrade drops all of it (the extension too, unless something else still uses it) and
restores the single-column key; no data is lost but the owners copied onto messages, the expiry
times and the search columns, which are derived.

Revision ID: 8d4e2c1a7b90
Revises: 06f2d5b06ffe
Create Date: 2026-11-27 08:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.core.settings import get_settings

revision: str = "8d4e2c1a7b90"
down_revision: str | None = "06f2d5b06ffe"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The setting's pattern admits identifiers only: safe to write into the expression.
    config = get_settings().search_config
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")

    op.create_unique_constraint("uq_sessions_id_user_id", "sessions", ["id", "user_id"])
    op.add_column(
        "messages",
        sa.Column("user_id", sa.BigInteger(), nullable=True, comment="The session's owner"),
    )
    op.execute("UPDATE messages AS m SET user_id = s.user_id FROM sessions AS s "
               "WHERE s.id = m.session_id")  # fmt: skip
    op.alter_column("messages", "user_id", nullable=False)
    op.drop_constraint("fk_messages_session_id_sessions", "messages", type_="foreignkey")
    op.create_foreign_key(
        "fk_messages_session_id_user_id_sessions",
        "messages",
        "sessions",
        ["session_id", "user_id"],
        ["id", "user_id"],
        ondelete="CASCADE",
        onupdate="CASCADE",
    )
    op.create_index("ix_messages_user_id_created_at", "messages", ["user_id", "created_at"])

    op.add_column(
        "messages",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(f"to_tsvector('{config}'::regconfig, content)", persisted=True),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_messages_user_id_search_vector",
        "messages",
        ["user_id", "search_vector"],
        postgresql_using="gin",
    )
    op.add_column(
        "sessions",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(
                f"setweight(to_tsvector('{config}'::regconfig, title), 'A')", persisted=True
            ),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_sessions_user_id_search_vector",
        "sessions",
        ["user_id", "search_vector"],
        postgresql_using="gin",
    )

    op.add_column(
        "sessions",
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="A temporary chat: gone from every route after this time, then deleted",
        ),
    )
    op.create_index(
        "ix_sessions_user_id_expires_at",
        "sessions",
        ["user_id", "expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )
    op.create_index("ix_sessions_updated_at", "sessions", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_updated_at", table_name="sessions")
    op.drop_index("ix_sessions_user_id_expires_at", table_name="sessions")
    op.drop_column("sessions", "expires_at")
    op.drop_index("ix_sessions_user_id_search_vector", table_name="sessions")
    op.drop_column("sessions", "search_vector")
    op.drop_index("ix_messages_user_id_search_vector", table_name="messages")
    op.drop_column("messages", "search_vector")
    op.drop_index("ix_messages_user_id_created_at", table_name="messages")
    op.drop_constraint("fk_messages_session_id_user_id_sessions", "messages", type_="foreignkey")
    op.create_foreign_key(
        "fk_messages_session_id_sessions",
        "messages",
        "sessions",
        ["session_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_column("messages", "user_id")
    op.drop_constraint("uq_sessions_id_user_id", "sessions", type_="unique")
    # Only if nothing else depends on it (another schema's index, say): then it stays.
    op.execute(
        """
        DO $$ BEGIN
            DROP EXTENSION IF EXISTS btree_gin;
        EXCEPTION WHEN dependent_objects_still_exist THEN NULL;
        END $$
        """
    )
