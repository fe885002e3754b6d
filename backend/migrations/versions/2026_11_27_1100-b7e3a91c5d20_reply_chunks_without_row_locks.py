"""reply chunks follow their message by a trigger, not a foreign key

Reviewed: the foreign key `reply_chunks.message_id → messages.id` made every progress row
take a KEY SHARE lock on its message: a Heap/LOCK record in the write-ahead log per reply per
flush (21.6 of the 469 kB `python -m bench wal` measured). It is replaced by what costs nothing
per flush:

- an AFTER DELETE row trigger on `messages`, `WHEN (OLD.status = 'streaming')`, deletes the
  deleted reply's chunks (only a streaming reply has any: its final state folds and deletes
  them in the same statement). It fires for cascaded deletes too (a session, an account, the
  retention sweep, a parent message), and the WHEN clause skips every other row unexamined;
- the orphan sweep (`_SWEEP` in `repositories/replies.py`) deletes chunks whose message is
  gone or no longer streaming: an append that commits after a concurrent delete or final state.

The upgrade deletes such orphans already there. The downgrade deletes chunks whose message is
gone (the key would refuse them) and restores the key and its cascade.

Revision ID: b7e3a91c5d20
Revises: 8d4e2c1a7b90
Create Date: 2026-11-27 11:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b7e3a91c5d20"
down_revision: str | None = "8d4e2c1a7b90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "reply_chunks_follow_message"
TRIGGER = "messages_delete_reply_chunks"


def upgrade() -> None:
    op.drop_constraint("fk_reply_chunks_message_id_messages", "reply_chunks", type_="foreignkey")
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM reply_chunks WHERE message_id = OLD.id;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON messages FOR EACH ROW "
        f"WHEN (OLD.status = 'streaming') EXECUTE FUNCTION {FUNCTION}()"
    )
    op.execute(
        "DELETE FROM reply_chunks AS c WHERE NOT EXISTS (SELECT 1 FROM messages AS m "
        "WHERE m.id = c.message_id AND m.status = 'streaming')"
    )


def downgrade() -> None:
    op.execute(f"DROP TRIGGER {TRIGGER} ON messages")
    op.execute(f"DROP FUNCTION {FUNCTION}()")
    op.execute(
        "DELETE FROM reply_chunks AS c "
        "WHERE NOT EXISTS (SELECT 1 FROM messages AS m WHERE m.id = c.message_id)"
    )
    op.create_foreign_key(
        "fk_reply_chunks_message_id_messages",
        "reply_chunks",
        "messages",
        ["message_id"],
        ["id"],
        ondelete="CASCADE",
    )
