"""DTOs: the API contract. Field limits here are what `/docs` shows and requests are held to."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from app.domain import rules
from app.domain.errors import InvalidInput

Role = Literal["user", "assistant", "system", "tool"]
MessageStatus = Literal["streaming", "completed", "cancelled", "failed"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "cancelled", "error"]

Title = Annotated[
    str,
    Field(
        min_length=1,
        max_length=rules.TITLE_MAX_CHARS,
        description="Trimmed of surrounding white space; 1..500 characters remain. No NUL.",
        examples=["Trip to Lisbon"],
        json_schema_extra={"pattern": rules.NOT_BLANK_PATTERN},
    ),
    AfterValidator(rules.normalize_title),
]
Content = Annotated[
    str,
    Field(
        min_length=1,
        max_length=rules.CONTENT_MAX_CHARS,
        description="Message text, kept verbatim. Not blank, no NUL, at most 100,000 characters.",
        examples=["Hello, agent!"],
        json_schema_extra={"pattern": rules.NOT_BLANK_PATTERN},
    ),
    AfterValidator(rules.validate_content),
]


def _metadata_schema(schema: dict[str, Any]) -> None:
    # Pydantic states the key pattern as `patternProperties`, which leaves keys outside it
    # unconstrained; say it as `propertyNames`, every value a string.
    pattern_properties = schema.pop("patternProperties", {})
    names = schema.setdefault("propertyNames", {})
    for pattern, values in pattern_properties.items():
        names["pattern"] = pattern
        schema["additionalProperties"] = values


Metadata = Annotated[
    dict[
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=rules.METADATA_KEY_MAX_CHARS,
                pattern=rules.METADATA_KEY_PATTERN,
            ),
        ],
        Annotated[
            str, Field(max_length=rules.METADATA_VALUE_MAX_CHARS, pattern=rules.NO_NUL_PATTERN)
        ],
    ],
    Field(
        max_length=rules.METADATA_MAX_KEYS,
        description="Your own labels, to filter the list by: at most 16 keys of 1..64 "
        "characters (no `:`) to string values of at most 512 characters. No NUL.",
        examples=[{"project": "lisbon", "channel": "web"}],
        json_schema_extra=_metadata_schema,
    ),
]

MessageId = Annotated[int, Field(ge=1, le=rules.JSON_ID_MAX, description="A message id.")]
ToolCallId = Annotated[
    str,
    Field(
        max_length=rules.TOOL_CALL_ID_MAX_CHARS,
        pattern=rules.TOOL_CALL_ID_PATTERN,
        description="The call's id, as the model made it up: printable ASCII, no spaces.",
        examples=["call_Vx2q7L0bY1kZ"],
    ),
]
FunctionName = Annotated[
    str,
    Field(
        pattern=rules.FUNCTION_NAME_PATTERN,
        description="1..64 letters, digits, `_` or `-` (OpenAI's rule for function names).",
        examples=["get_weather"],
    ),
]


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("must not be null; leave the field out instead")
    return value


def _schema_without_null(schema: dict[str, Any]) -> None:
    variants = [v for v in schema.pop("anyOf", []) if v != {"type": "null"}]
    if len(variants) == 1:
        outer = dict(schema)  # the field's own description wins over its type's
        schema.update(variants[0])
        schema.update(outer)
    elif variants:
        schema["anyOf"] = variants
    if schema.get("default", ...) is None:
        del schema["default"]


#: An optional field without null (`T | None` in Python): leave it out, or give a value.
NotNull = (
    BeforeValidator(_not_null),
    Field(json_schema_extra=_schema_without_null),
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the verified token says: `subject` is the token's `sub`."""

    subject: str
    email: str | None = None
    #: When the token stops being valid (seconds since the epoch): how long its verification
    #: may be remembered.
    expires_at: float | None = None


class _Input(BaseModel):
    # Unknown fields (a `user_id`, say) are refused, never silently honoured or dropped.
    model_config = ConfigDict(extra="forbid")


def _in_utc(value: datetime) -> datetime:
    """Stored in UTC: a time whose UTC date falls outside years 1..9999 cannot be."""
    try:
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("out of range once in UTC (years 1..9999)") from None


ExpiresAt = Annotated[
    datetime,
    Field(
        description="A temporary chat: after this time (in the future, with a time zone) the "
        "session is gone from every route, and the retention sweep deletes it with its messages.",
        examples=["2030-01-01T00:00:00Z"],
        json_schema_extra={"format": "date-time"},
    ),
    AfterValidator(rules.validate_expiry),
    AfterValidator(_in_utc),
]


class SessionCreateDTO(_Input):
    title: Title
    metadata: Metadata = Field(default_factory=dict)
    expires_at: Annotated[ExpiresAt | None, *NotNull] = None


class SessionUpdateDTO(_Input):
    """Any of the fields, or several; at least one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    title: Annotated[Title | None, *NotNull] = None
    current_message_id: Annotated[MessageId | None, *NotNull] = Field(
        default=None,
        description="Switch branch: any message of this session becomes the current one (the "
        "last message of the active branch, under which new messages go).",
    )
    metadata: Annotated[Metadata | None, *NotNull] = Field(
        default=None, description="Replaces the metadata as a whole; `{}` clears it."
    )
    archived: Annotated[StrictBool | None, *NotNull] = Field(
        default=None,
        description="Archived sessions leave the list (`GET /api/sessions/?archived=true` "
        "lists them); everything else about them works as before.",
    )
    pinned: Annotated[StrictBool | None, *NotNull] = Field(
        default=None, description="Pinned sessions come first in the list."
    )
    expires_at: ExpiresAt | None = Field(
        default=None,
        description="Make the session temporary (a time in the future), or `null` to keep it "
        "again; left out, unchanged.",
    )

    @model_validator(mode="after")
    def _at_least_one_field(self) -> SessionUpdateDTO:
        if not self.model_fields_set:
            raise ValueError(
                "give at least one of title, current_message_id, metadata, archived, pinned, "
                "expires_at"
            )
        return self

    @property
    def expiry(self) -> datetime | Literal["keep"] | None:
        """The new expiry: a time, None (clear it), or "keep" when the field was left out."""
        return self.expires_at if "expires_at" in self.model_fields_set else "keep"


class FunctionCallIn(_Input):
    name: FunctionName
    arguments: Annotated[
        str,
        Field(
            max_length=rules.TOOL_ARGUMENTS_MAX_CHARS,
            description="The arguments, as a JSON document in a string (as the model wrote them).",
            examples=['{"city": "Lisbon"}'],
            json_schema_extra={"contentMediaType": "application/json"},
        ),
        AfterValidator(rules.validate_arguments),
    ]


class ToolCallIn(_Input):
    id: ToolCallId
    type: Literal["function"] = "function"
    function: FunctionCallIn


class MessageCreateDTO(_Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # Which fields go with which role (the service checks the same rules).
            "allOf": [
                {
                    "if": {"required": ["tool_calls"]},
                    "then": {"properties": {"role": {"const": "assistant"}}},
                },
                {
                    "if": {"required": ["tool_call_id"]},
                    "then": {"properties": {"role": {"const": "tool"}}},
                },
                {
                    "anyOf": [
                        {"required": ["tool_calls"]},
                        {"required": ["content"], "properties": {"content": {"type": "string"}}},
                    ]
                },
            ]
        },
    )

    role: Role = Field(description="Who wrote the message.")
    content: Content | None = Field(
        default=None,
        description="Message text, kept verbatim. Required, except in an assistant message that "
        "carries `tool_calls`, which may leave it out or send null.",
    )
    tokens: int = Field(
        default=0, ge=0, le=rules.TOKENS_MAX, description="Token count, for usage tracking."
    )
    tool_calls: Annotated[
        Annotated[list[ToolCallIn], Field(min_length=1, max_length=rules.TOOL_CALLS_MAX)] | None,
        *NotNull,
        Field(
            description="Assistant messages only: the tools the model called, in Chat "
            "Completions' shape; each id unique in the message."
        ),
    ] = None
    tool_call_id: Annotated[
        ToolCallId | None,
        *NotNull,
        Field(
            description="Tool messages only: the call this result answers. It must be a call of "
            "an assistant message on the current branch that has no result there yet."
        ),
    ] = None


class FunctionDefinition(_Input):
    name: FunctionName
    description: Annotated[str, Field(max_length=rules.TOOL_DESCRIPTION_MAX_CHARS)] | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="The arguments' JSON Schema, passed to the model as it is."
    )
    strict: bool | None = None


class ToolDefinition(_Input):
    """A tool the model may call, in Chat Completions' shape."""

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Input):
    name: FunctionName


class NamedToolChoice(_Input):
    type: Literal["function"]
    function: NamedFunction


def _check_tools(tools: list[ToolDefinition]) -> list[ToolDefinition]:
    names = [tool.function.name for tool in tools]
    if len(set(names)) != len(names):
        raise InvalidInput("each tool needs a name of its own")
    size = len(json.dumps([tool.model_dump(exclude_none=True) for tool in tools]))
    if size > rules.TOOLS_MAX_CHARS:
        raise InvalidInput(
            f"the tools take {size} characters as JSON; at most {rules.TOOLS_MAX_CHARS} are sent"
        )
    return tools


Tools = Annotated[
    list[ToolDefinition],
    Field(
        min_length=1,
        max_length=rules.TOOLS_MAX,
        description="Functions the model may call (names unique; at most 100,000 characters "
        "as JSON). They apply to this reply only: send them again with each continuation.",
    ),
    AfterValidator(_check_tools),
]
ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class ToolOptionsDTO(_Input):
    """What a reply may do with tools: passed to the model with the prompt."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"dependentRequired": {"tool_choice": ["tools"]}}
    )

    tools: Annotated[Tools | None, *NotNull] = None
    tool_choice: Annotated[ToolChoice | None, *NotNull] = Field(
        default=None,
        description="`auto` (the model's default), `none`, `required`, or a function of `tools` "
        "by name; only with `tools`.",
    )

    @field_validator("tool_choice")
    @classmethod
    def _choice_among_tools(cls, choice: ToolChoice | None, info: ValidationInfo) -> ToolChoice:
        assert choice is not None  # NotNull ran first
        tools: list[ToolDefinition] | None = info.data.get("tools")
        if tools is None:
            raise ValueError("needs tools")
        names = {tool.function.name for tool in tools}
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"{choice.function.name!r} is not one of the tools")
        return choice


class RegenerateDTO(ToolOptionsDTO):
    """Tools for the regenerated reply (a reply's tools are not kept: send them again)."""


class ReplyCreateDTO(ToolOptionsDTO):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "dependentRequired": {"tool_choice": ["tools"]},
            # A new root (parent_id null) starts from the user's message.
            "if": {"required": ["parent_id"], "properties": {"parent_id": {"type": "null"}}},
            "then": {"required": ["content"]},
        },
    )

    content: Annotated[Content | None, *NotNull] = Field(
        default=None,
        description="The user's message. Leave it out to continue the branch instead (after "
        "posting tool results, say): no user message is saved and the model answers the parent.",
    )
    parent_id: MessageId | None = Field(
        default=None,
        description="The message to answer: a message of this session. Left out: the session's "
        "current message. `null`: none, a new root (how a session's first message is edited). "
        "Editing message M is a reply with M's parent: M and its answers stay as another branch.",
    )

    @property
    def parent(self) -> int | Literal["current"] | None:
        """Where the new messages go: under this message, at the root, or under the current one."""
        return self.parent_id if "parent_id" in self.model_fields_set else "current"


class ForkCreateDTO(_Input):
    message_id: Annotated[MessageId | None, *NotNull] = Field(
        default=None,
        description="The last message to copy (a message of this session); default: the current "
        "one. The copy holds the path from the root to it.",
    )
    title: Annotated[Title | None, *NotNull] = Field(
        default=None, description="Default: the session's title."
    )


class _Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _none_as_empty(value: object) -> object:
    """The store answers "no labels" as NULL: decoding `{}` for every row of a page cost more
    than the rest of the row."""
    return {} if value is None else value


class SessionDTO(_Output):
    id: int
    user_id: int
    title: str
    message_count: int = Field(description="Exact number of messages in the session.")
    created_at: datetime
    updated_at: datetime = Field(
        description="Last activity: creation, rename, branch switch or newest message "
        "(metadata, archiving and pinning are not activity)."
    )
    current_message_id: int | None = Field(
        default=None,
        description="The last message of the active branch (null while the session is empty).",
    )
    metadata: Annotated[dict[str, str], BeforeValidator(_none_as_empty)] = Field(
        default_factory=dict, description="The client's labels (`{}` when none)."
    )
    archived: bool = Field(default=False, description="Hidden from the list unless asked for.")
    pinned: bool = Field(default=False, description="Listed before the unpinned sessions.")
    expires_at: datetime | None = Field(
        default=None, description="When a temporary chat goes; null: kept (subject to retention)."
    )


class FunctionCall(_Output):
    name: str
    arguments: str = Field(description="A JSON document in a string.")


class ToolCall(_Output):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


Rating = Literal["up", "down"]
FeedbackComment = Annotated[
    str,
    Field(
        max_length=rules.FEEDBACK_COMMENT_MAX_CHARS,
        pattern=rules.NO_NUL_PATTERN,
        description="Why, in the user's words: at most 2,000 characters, no NUL.",
    ),
]


class FeedbackInDTO(_Input):
    rating: Rating = Field(description="Thumbs `up` or `down`.")
    comment: Annotated[FeedbackComment | None, *NotNull] = None


class FeedbackDTO(_Output):
    rating: Rating
    comment: str | None = None
    created_at: datetime = Field(description="When this feedback was given (or last replaced).")


class MessageDTO(_Output):
    id: int
    session_id: int
    role: Role
    content: str = Field(description="The text so far while a reply is `streaming`.")
    tokens: int = Field(description="Token count; for assistant replies, the output tokens.")
    created_at: datetime
    status: MessageStatus = Field(
        default="completed",
        description="Assistant replies go `streaming` → `completed` | `cancelled` | `failed`; "
        "every other message is `completed`.",
    )
    input_tokens: int = Field(
        default=0,
        description="Prompt tokens the provider reported for a reply (else 0; the usage ledger "
        "then counts an estimate).",
    )
    error: str | None = Field(default=None, description="Why a `failed` reply failed.")
    parent_id: int | None = Field(
        default=None, description="The message this one answers; null for a root."
    )
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="The tools an assistant message calls (Chat Completions' shape)."
    )
    tool_call_id: str | None = Field(
        default=None, description="For a tool message: the call it answers."
    )
    finish_reason: FinishReason | None = Field(
        default=None,
        description="Why a reply stopped: `stop`, `length`, `tool_calls`, `content_filter` (as "
        "the model said), `cancelled`, or `error` (the reply failed). Null while it streams, and "
        "for messages posted with `POST /api/messages/`.",
    )
    model: str | None = Field(
        default=None,
        description="The model that wrote a reply: the name the provider reported, else "
        "`LLM_MODEL` (`simulated` for the simulated model).",
    )
    feedback: FeedbackDTO | None = Field(
        default=None,
        description="The user's rating of an assistant message, with its time; null when none.",
    )


class ThreadMessageDTO(MessageDTO):
    sibling_ids: list[int] = Field(
        description="The messages sharing this one's parent (itself included), oldest first: "
        "the branches a client can switch between here."
    )


class UserDTO(BaseModel):
    id: int
    subject: str = Field(description="The identity provider's subject (`sub`) for this account.")
    email: str | None = Field(
        description="The token's e-mail claim, unless another account already holds that address."
    )
    created_at: datetime
    session_count: int = Field(description="How many chat sessions the account owns.")


class SnippetPart(_Output):
    text: str = Field(description="Text of the message or title, to be shown as text.")
    match: bool = Field(description="This part matches the query: highlight it.")


class SearchHitDTO(_Output):
    """A message, or a session title, matching a search."""

    kind: Literal["message", "title"] = Field(
        description="`message`: a message matched; `title`: the session's title matched."
    )
    session_id: int
    session_title: str
    message_id: int | None = Field(description="The matching message; null for a title hit.")
    role: Role | None = Field(description="The message's role; null for a title hit.")
    created_at: datetime = Field(
        description="The message's time; for a title hit, the session's last activity."
    )
    snippet: list[SnippetPart] = Field(
        description="An excerpt around the best match (a title hit: the whole title) in parts, "
        "the matching words marked `match: true`. No HTML: render every part as text."
    )


UsageGrouping = Literal["day", "model", "session"]


class UsageTotals(_Output):
    input_tokens: int = Field(description="Prompt tokens of the replies.")
    output_tokens: int = Field(description="Tokens the replies produced.")
    replies: int = Field(description="Replies started (streaming ones included).")


class UsageGroupDTO(UsageTotals):
    key: str = Field(
        description="The group: a UTC day (`YYYY-MM-DD`), a model name (empty when none was "
        "recorded), or a session id in decimal."
    )


class UsageDTO(_Output):
    start: datetime = Field(alias="from", description="Start of the period (included).")
    end: datetime = Field(alias="to", description="End of the period (excluded).")
    group_by: UsageGrouping
    total: UsageTotals
    groups: list[UsageGroupDTO] = Field(description="One per group with usage, in key order.")

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


# --- Export and import ----------------------------------------------------------------------

#: What an exported document says it is, and which version of that shape.
EXPORT_FORMAT: Literal["agent-stack.session"] = "agent-stack.session"
EXPORT_VERSION: Literal[1] = 1


class ExportedSession(_Output):
    id: int = Field(description="The session's id where it was exported (a new one on import).")
    title: str
    metadata: dict[str, str]
    archived: bool
    pinned: bool
    created_at: datetime
    updated_at: datetime
    current_message_id: int | None = Field(
        description="The last message of the active branch: one of `messages` (or null)."
    )
    expires_at: datetime | None = Field(
        description="When a temporary chat goes (null: kept). An import keeps it only while it "
        "is ahead."
    )


class ExportedMessage(_Output):
    id: int
    parent_id: int | None = Field(description="One of `messages` (null for a root).")
    role: Role
    content: str
    status: MessageStatus
    tokens: int
    input_tokens: int
    model: str | None
    finish_reason: FinishReason | None
    error: str | None
    tool_calls: list[ToolCall] | None
    tool_call_id: str | None
    created_at: datetime
    feedback: FeedbackDTO | None


class SessionExportDTO(_Output):
    """A session and its whole tree, as `POST /api/sessions/import` takes it back."""

    format: Literal["agent-stack.session"] = Field(
        default=EXPORT_FORMAT, description="What this document is."
    )
    version: Literal[1] = Field(default=EXPORT_VERSION, description="The shape's version.")
    session: ExportedSession
    messages: list[ExportedMessage] = Field(
        description="Every message of every branch, parents before children (by id)."
    )


def _time_text(value: Any) -> Any:
    """A time in JSON is an RFC 3339 string (Pydantic alone would also read a number as a Unix
    time, which the schema's `date-time` does not allow)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or rules.TIME_PREFIX.match(value) is None:
        raise ValueError("a date-time string, such as 2026-11-27T08:00:00Z")
    return value


ImportedTime = Annotated[datetime, BeforeValidator(_time_text), AfterValidator(_in_utc)]


def _integer(value: Any) -> Any:
    """A JSON integer (`2`, or `2.0`: JSON Schema counts it too), not `"2"` or `true`, which
    Pydantic alone would take."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


#: An integer of a document.
ImportedInt = Annotated[int, BeforeValidator(_integer)]
ImportedId = Annotated[int, Field(ge=1, le=rules.JSON_ID_MAX), BeforeValidator(_integer)]


def _requires_role(role: str) -> Callable[[Any, ValidationInfo], Any]:
    """A field only messages of `role` carry (null counts as absent)."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("role", role) != role:
            raise ValueError(f"only {role} messages carry {info.field_name}")
        return value

    return check


def _unique_calls(calls: list[ToolCallIn] | None) -> list[ToolCallIn] | None:
    if calls is not None and len({call.id for call in calls}) != len(calls):
        raise ValueError("each call needs an id of its own")
    return calls


def _imported_content(value: str | None, info: ValidationInfo) -> str | None:
    """Text is required and not empty, except in a reply that calls tools or was cut short
    (the same rules as the schema's `allOf`, and the database's check)."""
    if "role" not in info.data or "status" not in info.data or "tool_calls" not in info.data:
        return value  # an earlier field is already wrong
    role, status, calls = info.data["role"], info.data["status"], info.data["tool_calls"]
    if role == "assistant" and (calls is not None or status != "completed"):
        return value
    if value is None:
        unless = " (unless it calls tools, or was cut short)" if role == "assistant" else ""
        article = "an" if role == "assistant" else "a"
        raise ValueError(f"required in {article} {role} message{unless}")
    if value == "":
        raise ValueError("must not be empty")
    return value


class ImportedFeedback(_Input):
    rating: Rating
    comment: FeedbackComment | None = None
    created_at: ImportedTime | None = Field(default=None, description="Default: the import time.")


_TEXT_PART: JsonValue = {
    "type": "object",
    "description": "A text part of OpenAI's content parts.",
    "properties": {
        "type": {"const": "text"},
        "text": {"type": "string", "minLength": 1, "pattern": rules.NO_NUL_PATTERN},
    },
    "required": ["type", "text"],
    "additionalProperties": False,
}


def _joined_text_parts(value: object) -> object:
    """OpenAI's content parts (`[{"type": "text", "text": ...}, ...]`), as a Chat Completions
    request carries them: the texts joined by newlines. Any other part (an image, audio, a file,
    a refusal) cannot be stored as text: it is refused, never dropped."""
    if not isinstance(value, list):
        return value
    if not value:
        raise ValueError("no content parts: send the text, or null")
    texts: list[str] = []
    for index, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            shown = f"of type `{kind}`" if isinstance(kind, str) else "not a content part"
            raise ValueError(
                f"part {index} is {shown}: only text parts can be imported (images, audio, "
                "files and refusals cannot be stored as a message's text)"
            )
        text = part.get("text")
        if set(part) != {"type", "text"} or not isinstance(text, str) or not text:
            raise ValueError(
                f'part {index}: a text part is {{"type": "text", "text": "..."}}, with text'
            )
        texts.append(text)
    return "\n".join(texts)


def _empty_only(what: str) -> BeforeValidator:
    """A field of OpenAI's message objects (an SDK's `model_dump()` writes them all, mostly
    empty): accepted while empty; anything in it could not be stored, so it is refused."""

    def check(value: object) -> None:
        if value is not None and value != []:
            raise ValueError(f"{what} cannot be imported; only empty (null) is accepted")

    return BeforeValidator(check)


def _empty_openai_field(what: str) -> Any:
    return Field(
        default=None,
        description=f"OpenAI's field, accepted when empty (null or []): {what} cannot be imported.",
    )


_EMPTY: JsonValue = {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}]}

_IMPORTED_MESSAGE_RULES: list[JsonValue] = [
    {
        "if": {"required": ["tool_calls"], "properties": {"tool_calls": {"type": "array"}}},
        "then": {"properties": {"role": {"const": "assistant"}}},
    },
    {
        "if": {"required": ["feedback"], "properties": {"feedback": {"type": "object"}}},
        "then": {"properties": {"role": {"const": "assistant"}}},
    },
    {
        "if": {
            "required": ["tool_call_id"],
            "properties": {"tool_call_id": {"type": "string"}},
        },
        "then": {"properties": {"role": {"const": "tool"}}},
    },
    # Text is required and not empty, except in a reply that calls tools or was cut short.
    {
        "if": {
            "anyOf": [
                {"properties": {"role": {"not": {"const": "assistant"}}}},
                {
                    "properties": {
                        "status": {"const": "completed"},
                        "tool_calls": {"type": "null"},
                    }
                },
            ]
        },
        "then": {
            "required": ["content"],
            "properties": {
                "content": {
                    "anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "minItems": 1}]
                }
            },
        },
    },
]


class ImportedMessage(_Input):
    """A message of an exported document, or of an OpenAI-style list (`role`, `content`,
    `tool_calls`, `tool_call_id`; the other fields are optional)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": _IMPORTED_MESSAGE_RULES})

    id: Annotated[ImportedId | None, *NotNull] = Field(
        default=None,
        description="Exported documents only: the message's id there (parents refer to it).",
    )
    parent_id: ImportedId | None = Field(
        default=None,
        description="Exported documents only: the id of the message this one answers (null: a "
        "root). An OpenAI-style list is one branch: each message answers the previous one.",
    )
    role: Role
    status: Literal["completed", "cancelled", "failed"] = Field(
        default="completed",
        description="A reply still `streaming` cannot be imported (export it once it ended).",
    )
    tool_calls: Annotated[
        Annotated[list[ToolCallIn], Field(min_length=1, max_length=rules.TOOL_CALLS_MAX)] | None,
        AfterValidator(_requires_role("assistant")),
        AfterValidator(_unique_calls),
    ] = Field(default=None, description="Assistant messages only; call ids unique in it.")
    tool_call_id: Annotated[ToolCallId | None, AfterValidator(_requires_role("tool"))] = Field(
        default=None,
        description="Tool messages only: a call of an assistant message above it on its branch.",
    )
    content: Annotated[
        str | None,
        Field(max_length=rules.CONTENT_MAX_CHARS, pattern=rules.NO_NUL_PATTERN),
        AfterValidator(_imported_content),
        BeforeValidator(_joined_text_parts),
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "string",
                        "maxLength": rules.CONTENT_MAX_CHARS,
                        "pattern": rules.NO_NUL_PATTERN,
                    },
                    {"type": "array", "minItems": 1, "items": _TEXT_PART},
                    {"type": "null"},
                ]
            }
        ),
    ] = Field(
        default=None,
        validate_default=True,
        description="The text (at most 100,000 characters, no NUL), or OpenAI's content parts "
        "if they are all text (joined by newlines). Required and not empty, except in an "
        "assistant message that calls tools or was cancelled or failed.",
    )
    refusal: Annotated[None, _empty_only("a refusal"), WithJsonSchema(_EMPTY)] = (
        _empty_openai_field("a refusal")
    )
    annotations: Annotated[None, _empty_only("annotations"), WithJsonSchema(_EMPTY)] = (
        _empty_openai_field("annotations")
    )
    audio: Annotated[None, _empty_only("audio"), WithJsonSchema(_EMPTY)] = _empty_openai_field(
        "audio"
    )
    function_call: Annotated[
        None, _empty_only("a legacy function_call (send tool_calls)"), WithJsonSchema(_EMPTY)
    ] = _empty_openai_field("a legacy function_call (send `tool_calls`)")
    name: Annotated[
        None,
        _empty_only("a participant name (messages have no author field; remove `name`)"),
        WithJsonSchema(_EMPTY),
    ] = _empty_openai_field("a participant name")
    tokens: ImportedInt = Field(default=0, ge=0, le=rules.TOKENS_MAX)
    input_tokens: ImportedInt = Field(default=0, ge=0, le=rules.TOKENS_MAX)
    model: Annotated[
        str | None, Field(max_length=rules.MODEL_NAME_MAX_CHARS, pattern=rules.NO_NUL_PATTERN)
    ] = None
    finish_reason: FinishReason | None = None
    error: Annotated[
        str | None, Field(max_length=rules.ERROR_MAX_CHARS, pattern=rules.NO_NUL_PATTERN)
    ] = None
    created_at: ImportedTime | None = Field(default=None, description="Default: the import time.")
    feedback: Annotated[ImportedFeedback | None, AfterValidator(_requires_role("assistant"))] = None


class ImportedSession(_Input):
    id: ImportedId | None = Field(
        default=None, description="Its id where it was exported (ignored: a new one is made)."
    )
    title: Title
    metadata: Metadata = Field(default_factory=dict)
    archived: StrictBool = False
    pinned: StrictBool = False
    created_at: ImportedTime | None = Field(default=None, description="Default: the import time.")
    updated_at: ImportedTime | None = Field(default=None, description="Default: the import time.")
    current_message_id: ImportedId | None = Field(
        default=None, description="One of `messages`; default: none (an empty branch)."
    )
    expires_at: ImportedTime | None = Field(
        default=None,
        description="A temporary chat's end. Kept when it is still ahead; a time already passed "
        "imports the session as a kept one (null), so a temporary chat exported and imported "
        "after its end is not refused.",
    )


class SessionImportDTO(_Input):
    """An exported document (`format`, `version`, `session`, `messages` with ids), or an
    OpenAI-style `{"messages": [...]}` (one branch, in order)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "dependentRequired": {
                "format": ["version", "session"],
                "version": ["format"],
                "session": ["format"],
            },
            "if": {"required": ["format"]},
            "then": {"properties": {"messages": {"items": {"required": ["id"]}}}},
            "else": {
                "properties": {
                    "messages": {
                        "items": {
                            "not": {"anyOf": [{"required": ["id"]}, {"required": ["parent_id"]}]}
                        }
                    }
                }
            },
        },
    )

    format: Annotated[Literal["agent-stack.session"] | None, *NotNull] = None
    version: Annotated[Literal[1] | None, BeforeValidator(_integer), *NotNull] = None
    session: Annotated[ImportedSession | None, *NotNull] = None
    messages: list[ImportedMessage] = Field(
        max_length=rules.IMPORT_MESSAGES_MAX,
        description="Up to `IMPORT_MAX_MESSAGES` messages (and `MAX_MESSAGES_PER_SESSION`); "
        "more answer 413.",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> SessionImportDTO:
        exported = (self.format, self.version, self.session)
        if any(part is not None for part in exported) and None in exported:
            raise ValueError("an exported document has format, version and session, all three")
        return self


class DevTokenRequestDTO(_Input):
    """Who to sign in as on a development server (`AUTH_MODE=local` only)."""

    name: str = Field(
        min_length=1,
        max_length=255,
        description="The token subject (`sub`): the user, as `make token SUB=<name>` names it. "
        "Not blank, no NUL, at most 255 characters.",
        examples=["alice"],
        json_schema_extra={"pattern": rules.NOT_BLANK_PATTERN},
    )

    @field_validator("name")
    @classmethod
    def _subject_rules(cls, value: str) -> str:
        if "\x00" in value or not value.strip():
            raise ValueError("must not be blank or contain NUL")
        return value


class DevTokenDTO(_Output):
    access_token: str = Field(description="A bearer token for `Authorization: Bearer ...`.")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires (`AUTH_TOKEN_TTL_S`).")
