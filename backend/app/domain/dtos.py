"""DTOs: the API contract. Field limits here are what `/docs` shows and requests are held to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.domain import rules

Role = Literal["user", "assistant", "system", "tool"]
MessageStatus = Literal["streaming", "completed", "cancelled", "failed"]

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
    title: Title


class MessageCreateDTO(_Input):
    role: Role = Field(description="Who wrote the message.")
    content: Content
    tokens: int = Field(
        default=0, ge=0, le=rules.TOKENS_MAX, description="Token count, for usage tracking."
    )


class ReplyCreateDTO(_Input):
    content: Content


class _Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SessionDTO(_Output):
    id: int
    user_id: int
    title: str
    message_count: int = Field(description="Exact number of messages in the session.")
    created_at: datetime
    updated_at: datetime = Field(description="Last activity: creation, rename or newest message.")


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


class UserDTO(BaseModel):
    id: int
    subject: str = Field(description="The identity provider's subject (`sub`) for this account.")
    email: str | None = Field(
        description="The token's e-mail claim, unless another account already holds that address."
    )
    created_at: datetime
    session_count: int = Field(description="How many chat sessions the account owns.")
