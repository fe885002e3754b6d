"""What the reply service reports about each reply, for metrics and logs, as a protocol: the
domain measures (it knows when the model started and stopped); `app/core/` records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ReplyReport:
    """How one reply went. `outcome`: completed, failed, cancelled, or deleted (the row went
    away while it streamed)."""

    message_id: int
    outcome: str
    duration_s: float
    time_to_first_token_s: float | None
    input_tokens: int
    output_tokens: int


class ReplyObserver(Protocol):
    def started(self, message_id: int) -> None: ...

    def ended(self, report: ReplyReport) -> None: ...


class NoReplyObserver:
    """Reports nowhere: for services built without telemetry (unit tests, tools)."""

    def started(self, message_id: int) -> None:
        pass

    def ended(self, report: ReplyReport) -> None:
        pass
