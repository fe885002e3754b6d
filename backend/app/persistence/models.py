"""The schema, as declarative models: Alembic compares migrations against it, and repositories
build their Core statements from its columns. The database enforces the invariants too (checks,
cascades), not only the code."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names from the first migration on, so later migrations can address them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("user", "assistant", "system", "tool")
STATUSES = ("streaming", "completed", "cancelled", "failed")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "cancelled", "error")

#: The text search configuration the search columns are built with. The migration applies
#: SEARCH_CONFIG (default `simple`); this is the default, for Alembic's comparison only (it does
#: not compare generated expressions).
SEARCH_CONFIG = "simple"


def title_vector(config: str) -> str:
    """A session title's lexemes, weighted `A` so a title match ranks above a message's."""
    return f"setweight(to_tsvector('{config}'::regconfig, title), 'A')"


def content_vector(config: str) -> str:
    return f"to_tsvector('{config}'::regconfig, content)"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _id() -> Mapped[int]:
    return mapped_column(BigInteger, Identity(always=True), primary_key=True)


def _timestamp() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("session_count >= 0", name="session_count_non_negative"),)

    id: Mapped[int] = _id()
    auth0_id: Mapped[str] = mapped_column(String(255), unique=True, comment="Token subject (sub)")
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    created_at: Mapped[datetime] = _timestamp()
    # Kept by the statements that insert and delete sessions: the quota check is exact (the
    # row is locked) and costs no count.
    session_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class ChatSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint("char_length(title) BETWEEN 1 AND 500", name="title_length"),
        CheckConstraint("message_count >= 0", name="message_count_non_negative"),
        # Messages carry their owner too: this is what their composite key points at.
        UniqueConstraint("id", "user_id", name="uq_sessions_id_user_id"),
        # The retention sweep: idle sessions, oldest first.
        Index("ix_sessions_updated_at", "updated_at"),
        # Temporary chats: the sweep, and the owner's count of those already expired.
        Index(
            "ix_sessions_user_id_expires_at",
            "user_id",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
        # "This user's sessions whose title matches": btree_gin puts user_id in the same index.
        Index(
            "ix_sessions_user_id_search_vector",
            "user_id",
            "search_vector",
            postgresql_using="gin",
        ),
        # The list: the caller's archived or unarchived sessions, pinned first, then by
        # recency; `(pinned, updated_at, id)` is the keyset cursor's total order.
        Index(
            "ix_sessions_user_id_archived_pinned_updated_at_id",
            "user_id",
            "archived",
            "pinned",
            "updated_at",
            "id",
        ),
        # The caller's sessions in id order: the export pages through them by this.
        Index("ix_sessions_user_id_id", "user_id", "id"),
        # `metadata @> '{"key": "value", ...}'` (the list's filter) by this index.
        Index(
            "ix_sessions_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
        CheckConstraint("jsonb_typeof(metadata) = 'object'", name="metadata_object"),
        # The current message is one of the session's own (a composite key: no statement can
        # point a session at another's message). Deleting it empties the pointer only
        # (PostgreSQL 15+ column list), never the session id. Created after `messages`.
        ForeignKeyConstraint(
            ["id", "current_message_id"],
            ["messages.session_id", "messages.id"],
            name="fk_sessions_current_message_id_messages",
            ondelete="SET NULL (current_message_id)",
            use_alter=True,
        ),
    )

    id: Mapped[int] = _id()
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    # Kept by the same transaction that inserts or deletes a message: lists read it, never count.
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()
    # The last message of the active branch: new messages are appended under it.
    current_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # The client's own labels: string keys to string values (limits checked by the API).
    metadata_: Mapped[dict[str, str]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    pinned: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="A temporary chat: gone from every route after this time, then deleted",
    )
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed(title_vector(SEARCH_CONFIG), persisted=True), nullable=False
    )


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="role_known"),
        # An assistant reply starts empty and may end empty when cancelled or failed early, or
        # when it only calls tools; every other message, and every completed one, has text.
        CheckConstraint(
            "char_length(content) > 0 OR (role = 'assistant' AND "
            "(status <> 'completed' OR tool_calls IS NOT NULL))",
            name="content_not_empty",
        ),
        CheckConstraint("tokens >= 0", name="tokens_non_negative"),
        CheckConstraint("input_tokens >= 0", name="input_tokens_non_negative"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="status_known"),
        Index("ix_messages_session_id_created_at_id", "session_id", "created_at", "id"),
        # A message belongs to its session's owner: the composite key keeps `user_id` equal to
        # the session's, so user-wide queries (search, usage) need no join to be owned.
        ForeignKeyConstraint(
            ["session_id", "user_id"],
            ["sessions.id", "sessions.user_id"],
            name="fk_messages_session_id_user_id_sessions",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        # Usage by time, one user's rows only.
        Index("ix_messages_user_id_created_at", "user_id", "created_at"),
        # "This user's messages matching q" in one index (btree_gin: user_id beside the lexemes).
        Index(
            "ix_messages_user_id_search_vector",
            "user_id",
            "search_vector",
            postgresql_using="gin",
        ),
        # One reply at a time per session, across every server process; also the small index
        # the stale-reply sweep scans.
        Index(
            "uq_messages_session_id_streaming",
            "session_id",
            unique=True,
            postgresql_where=text("status = 'streaming'"),
        ),
        # Conversations are trees: a message answers its parent, in the same session (the
        # composite key), created before it. Ids only grow, so `parent_id < id` makes a cycle
        # impossible in the database itself.
        UniqueConstraint("session_id", "id", name="uq_messages_session_id_id"),
        ForeignKeyConstraint(
            ["session_id", "parent_id"],
            ["messages.session_id", "messages.id"],
            name="fk_messages_parent_id_messages",
            ondelete="CASCADE",
        ),
        CheckConstraint("parent_id < id", name="parent_before_child"),
        # Children of a message (and a session's roots: parent_id IS NULL) by index; it also
        # serves the cascade of the composite key above.
        Index("ix_messages_session_id_parent_id", "session_id", "parent_id"),
        CheckConstraint(
            "tool_calls IS NULL OR (role = 'assistant' AND jsonb_typeof(tool_calls) = 'array')",
            name="tool_calls_on_assistant",
        ),
        CheckConstraint("tool_call_id IS NULL OR role = 'tool'", name="tool_call_id_on_tool"),
        CheckConstraint(
            f"finish_reason IN ({', '.join(repr(r) for r in FINISH_REASONS)})",
            name="finish_reason_known",
        ),
        # A user's rating of a reply: on assistant messages only, all three fields or none.
        CheckConstraint(
            "feedback_rating IS NULL OR (role = 'assistant' AND feedback_rating IN ('up', 'down'))",
            name="feedback_on_assistant",
        ),
        CheckConstraint(
            "(feedback_rating IS NULL) = (feedback_at IS NULL) "
            "AND (feedback_comment IS NULL OR feedback_rating IS NOT NULL)",
            name="feedback_complete",
        ),
        CheckConstraint("char_length(feedback_comment) <= 2000", name="feedback_comment_length"),
    )

    id: Mapped[int] = _id()
    session_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False, comment="The session's owner")
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    tokens: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", comment="Output tokens for replies"
    )
    created_at: Mapped[datetime] = _timestamp()
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="completed")
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, comment="Why a reply failed")
    # Which server process generates a streaming reply: it holds a PostgreSQL advisory lock on
    # this key for as long as it lives, so a free lock means the reply is orphaned.
    worker_key: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    parent_id: Mapped[int | None] = mapped_column(
        BigInteger, comment="The message this one answers; NULL for a root"
    )
    tool_calls: Mapped[list[object] | None] = mapped_column(
        JSONB, comment="An assistant's calls, in Chat Completions' shape"
    )
    tool_call_id: Mapped[str | None] = mapped_column(
        String(128), comment="The call a tool message answers"
    )
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(200), comment="The model that wrote it")
    feedback_rating: Mapped[str | None] = mapped_column(String(8), comment="up or down")
    feedback_comment: Mapped[str | None] = mapped_column(Text)
    feedback_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When the current feedback was given"
    )
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed(content_vector(SEARCH_CONFIG), persisted=True), nullable=False
    )


class ReplyChunk(Base):
    """Text of a streaming reply, appended as the model produces it (never rewritten, so the
    write-ahead log grows with the text, not with its square). The rows are folded into the
    message's `content` and deleted when the reply ends.

    No foreign key to `messages`: its check would lock the message row for every appended row,
    one more WAL record per reply per flush. Instead a trigger deletes a streaming message's
    chunks with it (`messages_delete_reply_chunks`, cascades included), and the orphan sweep
    deletes chunks whose message is gone or ended (an append racing a delete or a final
    state)."""

    __tablename__ = "reply_chunks"
    __table_args__ = (
        CheckConstraint("start_offset >= 0", name="start_offset_non_negative"),
        CheckConstraint("char_length(text) > 0", name="text_not_empty"),
    )

    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    start_offset: Mapped[int] = mapped_column(
        Integer, primary_key=True, comment="Character offset of the chunk in the reply"
    )
    text: Mapped[str] = mapped_column(Text, nullable=False)


class ReplyUsage(Base):
    """What each generated reply used, written by the statement that ends it (its final state,
    or the orphan sweep's failure), or, for a reply deleted while it streamed, by the process
    that generated it once it stops. A ledger apart from `messages`: deleting a conversation, a
    message or an expired temporary chat leaves the usage it recorded, so the usage report and
    the daily token limit cannot be reset by deleting. Erasing the account erases it.

    No foreign keys: messages and sessions may go first, and a key to `users` would make a
    reply's end (message row, then the user's key lock) and an account's erasure (user row,
    then its messages by cascade) lock in opposite orders, a deadlock. The erasure deletes these
    rows itself, in a statement after the account's (`UserService.erase`). `created_at` is the
    reply's own, so a reply counts on the day it started."""

    __tablename__ = "reply_usage"
    __table_args__ = (
        CheckConstraint("input_tokens >= 0", name="input_tokens_non_negative"),
        CheckConstraint("output_tokens >= 0", name="output_tokens_non_negative"),
        # The report and the daily limit: one user's rows by time.
        Index("ix_reply_usage_user_id_created_at", "user_id", "created_at"),
    )

    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    session_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    model: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False)


class IdempotencyKey(Base):
    """A client's `Idempotency-Key`: claimed while its request runs, then the recorded response.

    The response is written in the transaction that creates the resource, so a replayable
    response exists exactly when the resource does."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint("char_length(key) BETWEEN 1 AND 255", name="key_length"),
        CheckConstraint(
            "(status_code IS NULL) = (response_body IS NULL)", name="response_complete"
        ),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(
        String(64), nullable=False, comment="SHA-256 of method, path, query and body"
    )
    claim: Mapped[str] = mapped_column(
        Uuid(as_uuid=False), nullable=False, comment="Which request holds or held the key"
    )
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _timestamp()
    locked_at: Mapped[datetime] = _timestamp()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
