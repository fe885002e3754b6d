"""DTOs: the API contract. Field limits here are what `/docs` shows and requests are held to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
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


class SessionCreateDTO(_Input):
    title: Title


class SessionUpdateDTO(_Input):
    """Rename, switch branch, or both; at least one field."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    title: Annotated[Title | None, *NotNull] = None
    current_message_id: Annotated[MessageId | None, *NotNull] = Field(
        default=None,
        description="Switch branch: any message of this session becomes the current one (the "
        "last message of the active branch, under which new messages go).",
    )

    @model_validator(mode="after")
    def _at_least_one_field(self) -> SessionUpdateDTO:
        if not self.model_fields_set:
            raise ValueError("give a title, a current_message_id, or both")
        return self


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


class SessionDTO(_Output):
    id: int
    user_id: int
    title: str
    message_count: int = Field(description="Exact number of messages in the session.")
    created_at: datetime
    updated_at: datetime = Field(
        description="Last activity: creation, rename, branch switch or newest message."
    )
    current_message_id: int | None = Field(
        default=None,
        description="The last message of the active branch (null while the session is empty).",
    )


class FunctionCall(_Output):
    name: str
    arguments: str = Field(description="A JSON document in a string.")


class ToolCall(_Output):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


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
        default=0, description="Prompt tokens the provider reported for a reply (else 0)."
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
