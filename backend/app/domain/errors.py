"""Domain errors. The API layer maps each class to one HTTP status; the domain knows no HTTP."""

from __future__ import annotations

#: Members every problem document already has: an extension of the same name would replace
#: them (a `status` extension once turned the HTTP status into a message's status).
RESERVED_EXTENSIONS = frozenset(
    {"type", "title", "status", "detail", "instance", "errors", "request_id"}
)


class DomainError(Exception):
    """Base class: `detail` is a sentence meant for the API client."""

    title = "Domain error"

    def __init__(self, detail: str, **extensions: object) -> None:
        clash = sorted(extensions.keys() & RESERVED_EXTENSIONS)
        if clash:
            raise TypeError(f"reserved problem members cannot be extensions: {clash}")
        super().__init__(detail)
        self.detail = detail
        #: Extra members of the problem document (RFC 9457 extensions), e.g. a conflicting id.
        self.extensions = extensions


class NotFound(DomainError):
    """No such resource *for this caller*: another user's row is reported the same way."""

    title = "Not found"


class AccountGone(NotFound):
    """The caller's account was erased (maybe by another server process) after its token was
    first seen. A retry provisions a new, empty account, as after any erasure."""

    def __init__(self, user_id: int) -> None:
        super().__init__("the account no longer exists")
        self.user_id = user_id


class Conflict(DomainError):
    title = "Conflict"


class TooLarge(DomainError):
    """More than a configured limit lets one request carry (an import's messages, say)."""

    title = "Content too large"


class InvalidInput(DomainError, ValueError):
    """A rule was broken. Also a `ValueError`, so Pydantic validators can raise it directly.

    `loc` names the offending field the way request validation does (`("body", "parent_id")`),
    for rules that only the domain can check (they depend on stored data or on several fields):
    the problem document then lists it under `errors` like any other invalid field."""

    title = "Invalid input"

    def __init__(
        self, detail: str, *, loc: tuple[str | int, ...] | None = None, **extensions: object
    ) -> None:
        super().__init__(detail, **extensions)
        self.loc = loc


class QuotaExceeded(DomainError):
    """The caller has used up an allowance; `retry_after_s`: when it is renewed."""

    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int, **extensions: object) -> None:
        super().__init__(detail, **extensions)
        self.retry_after_s = retry_after_s


class Unavailable(DomainError):
    """A dependency (the database, an identity provider) cannot be reached right now."""

    title = "Service unavailable"


class ProviderFailed(Exception):
    """The language model provider failed (refused, timed out, broke off mid-stream).

    Not a `DomainError`: it never becomes an HTTP status; the reply is saved as `failed` with
    this message as its `error`."""
