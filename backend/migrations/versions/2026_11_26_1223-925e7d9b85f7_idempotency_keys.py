"""idempotency keys: one row per (user, Idempotency-Key) with the recorded response

Reviewed: the primary key (user_id, key) scopes keys to their user and serves every lookup;
ON DELETE CASCADE erases a user's keys with the account; `expires_at` is indexed for the
bounded purge of expired keys; the checks mirror app/persistence/models.py (key 1..255
characters; a status code exactly when a response body is recorded). Self-contained: it only
adds a table, so it chains after any sibling revision.

Revision ID: 925e7d9b85f7
Revises: 7f214f79a209
Create Date: 2026-11-26 12:23:19.792371+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "925e7d9b85f7"
down_revision: str | None = "7f214f79a209"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column(
            "fingerprint",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of method, path, query and body",
        ),
        sa.Column(
            "claim",
            sa.Uuid(as_uuid=False),
            nullable=False,
            comment="Which request holds or held the key",
        ),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "locked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(status_code IS NULL) = (response_body IS NULL)",
            name=op.f("ck_idempotency_keys_response_complete"),
        ),
        sa.CheckConstraint(
            "char_length(key) BETWEEN 1 AND 255", name=op.f("ck_idempotency_keys_key_length")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
