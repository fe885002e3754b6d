"""Input rules, shared by the DTOs (422 at the HTTP edge) and the services (every other caller)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.domain.errors import InvalidInput

TITLE_MAX_CHARS = 500
CONTENT_MAX_CHARS = 100_000
TOKENS_MAX = 2_147_483_647  # PostgreSQL INTEGER
#: Ids in JSON bodies: the integers every JSON parser holds exactly (RFC 7493, I-JSON). A
#: message id beyond it would need 9 * 10^15 rows.
JSON_ID_MAX = 2**53 - 1

# Tool calls, in Chat Completions' shape. Names follow OpenAI's rule for function names; ids are
# whatever the model made up, so they are only bounded (and printable, without spaces).
FUNCTION_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
TOOL_CALL_ID_MAX_CHARS = 128
TOOL_CALL_ID_PATTERN = r"^[!-~]+$"
TOOL_CALLS_MAX = 64
TOOL_ARGUMENTS_MAX_CHARS = 100_000
#: Tool definitions sent with a reply: OpenAI's limit on their number, and a bound on their size
#: (JSON-encoded, as they are sent to the model).
TOOLS_MAX = 128
TOOLS_MAX_CHARS = 100_000
TOOL_DESCRIPTION_MAX_CHARS = 8_192
MODEL_NAME_MAX_CHARS = 200
#: Session metadata: OpenAI's limits (16 keys of up to 64 characters, values of up to 512). A
#: key holds no `:`, so every key can be named in a `metadata=key:value` filter.
METADATA_MAX_KEYS = 16
METADATA_KEY_MAX_CHARS = 64
METADATA_VALUE_MAX_CHARS = 512
METADATA_KEY_PATTERN = r"^[^\x00:]+$"
#: No NUL anywhere: PostgreSQL's text and JSONB refuse it.
NO_NUL_PATTERN = r"^[^\x00]*$"
#: A `metadata` filter of the session list: `key:value`, the value everything after the first `:`.
METADATA_FILTER_PATTERN = r"^[^\x00:]{1,64}:[^\x00]{0,512}$"
FEEDBACK_COMMENT_MAX_CHARS = 2_000
#: How an RFC 3339 date-time starts: a date, then a time.
TIME_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")
#: The most messages an import can hold whatever the settings say (`IMPORT_MAX_MESSAGES` and
#: `MAX_MESSAGES_PER_SESSION` may lower it): the schema's bound.
IMPORT_MESSAGES_MAX = 100_000
ERROR_MAX_CHARS = 10_000


#: Python's white space (what `str.strip()` removes), as a regex character class body.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

#: What the text rules accept, for the OpenAPI schema: no NUL, and at least one character that
#: is not white space. Fuzzers generate from it, so it must match the validators exactly.
NOT_BLANK_PATTERN = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-user resource quotas (OWASP API4): no user can grow the database without bound."""

    max_sessions_per_user: int = 10_000
    max_messages_per_session: int = 10_000
    #: Messages one import may hold (and no more than a session may).
    max_import_messages: int = 10_000


def validate_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """At most 16 keys of 1..64 characters without `:`, to strings of at most 512; no NUL."""
    if len(metadata) > METADATA_MAX_KEYS:
        raise InvalidInput(
            f"metadata: at most {METADATA_MAX_KEYS} keys (got {len(metadata)})",
            loc=("body", "metadata"),
        )
    for key, value in metadata.items():
        if re.fullmatch(METADATA_KEY_PATTERN, key) is None or len(key) > METADATA_KEY_MAX_CHARS:
            raise InvalidInput(
                f"metadata: key {key[:80]!r} must be 1..{METADATA_KEY_MAX_CHARS} characters, "
                "without ':' or NUL",
                loc=("body", "metadata"),
            )
        if not isinstance(value, str) or len(value) > METADATA_VALUE_MAX_CHARS or "\x00" in value:
            raise InvalidInput(
                f"metadata: the value of {key!r} must be a string of at most "
                f"{METADATA_VALUE_MAX_CHARS} characters, without NUL",
                loc=("body", "metadata", key),
            )
    return dict(metadata)


def metadata_filter(pairs: Sequence[str]) -> dict[str, str] | None:
    """`key:value` pairs, all of which must match: the object a session's metadata must
    contain. None when two pairs give one key different values (nothing can match both)."""
    wanted: dict[str, str] = {}
    for pair in pairs:
        if re.fullmatch(METADATA_FILTER_PATTERN, pair) is None:
            raise InvalidInput(
                f"metadata: {pair[:80]!r} is not a filter; write key:value (the value is "
                f"everything after the first ':'; a key of 1..{METADATA_KEY_MAX_CHARS} "
                f"characters, a value of at most {METADATA_VALUE_MAX_CHARS}, no NUL)",
                loc=("query", "metadata"),
            )
        key, _, value = pair.partition(":")
        if wanted.setdefault(key, value) != value:
            return None
    return wanted


def _reject_nul(value: str, field: str) -> None:
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL (\\u0000) characters")


def normalize_title(value: str) -> str:
    """Trim surrounding white space; the result must be 1..500 characters."""
    _reject_nul(value, "title")
    title = value.strip()
    if not title:
        raise InvalidInput("title must not be empty or blank")
    if len(title) > TITLE_MAX_CHARS:
        raise InvalidInput(f"title must be at most {TITLE_MAX_CHARS} characters (got {len(title)})")
    return title


def validate_content(value: str) -> str:
    """Content is kept verbatim (white space matters in prompts) but must not be blank."""
    _reject_nul(value, "content")
    if not value.strip():
        raise InvalidInput("content must not be empty or blank")
    if len(value) > CONTENT_MAX_CHARS:
        raise InvalidInput(
            f"content must be at most {CONTENT_MAX_CHARS} characters (got {len(value)})"
        )
    return value


def storable_text(value: str) -> str:
    """Text a model produced, made storable: PostgreSQL text holds neither NUL nor the lone
    surrogates a broken stream can decode to (they cannot be encoded as UTF-8)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def validate_arguments(value: str) -> str:
    """A call's `arguments` is a JSON document in a string, as Chat Completions defines it."""
    _reject_nul(value, "arguments")
    try:
        json.loads(value)
    except ValueError as exc:
        raise InvalidInput(f"arguments must be a JSON document ({exc})") from None
    return value


def validate_message_shape(
    role: str, content: str | None, call_ids: Sequence[str] | None, tool_call_id: str | None
) -> str:
    """Which fields a message of each role carries; returns the content to store.

    `tool_calls` only on assistant messages, `tool_call_id` only on tool messages; the content
    may be left out only by an assistant message that calls tools (Chat Completions sends such
    a message with `content: null`), and call ids are unique within the message."""
    if call_ids is not None:
        if role != "assistant":
            raise InvalidInput(
                f"tool_calls: only assistant messages carry tool calls, not {role} messages",
                loc=("body", "tool_calls"),
            )
        if len(set(call_ids)) != len(call_ids):
            raise InvalidInput(
                "tool_calls: each call needs an id of its own", loc=("body", "tool_calls")
            )
    if tool_call_id is not None and role != "tool":
        raise InvalidInput(
            f"tool_call_id: only tool messages answer a tool call, not {role} messages",
            loc=("body", "tool_call_id"),
        )
    if content is None:
        if call_ids:
            return ""
        raise InvalidInput(
            "content: required, unless an assistant message carries tool_calls",
            loc=("body", "content"),
        )
    return validate_content(content)


def validate_tokens(value: int) -> int:
    if not 0 <= value <= TOKENS_MAX:
        raise InvalidInput(f"tokens must be between 0 and {TOKENS_MAX}")
    return value


def validate_expiry(value: datetime) -> datetime:
    """A temporary chat's end: an aware time, in the future (a past one would delete the chat
    as it is created or renamed)."""
    if value.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone (e.g. `Z` or `+01:00`)")
    if value <= datetime.now(UTC):
        raise InvalidInput("expires_at must be in the future")
    return value
