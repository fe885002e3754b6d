"""The caller's use of the language model, and the daily token limit.

The limit rule: a reply may start while the tokens (input plus output) of the caller's replies
created since the last UTC midnight are below `USER_DAILY_TOKEN_LIMIT`; a reply still streaming
counts as one token, its usage being unknown until it ends. The check and the reply's start run
in one transaction holding the caller's usage lock (`UsageRepository.hold`), so concurrent starts
of one user, in any process, are decided one after the other and each sees the replies started
before it: the limit is overshot at most by what the replies already running when it was reached
go on to use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from app.domain.dtos import UsageDTO, UsageGroupDTO, UsageGrouping, UsageTotals
from app.domain.errors import InvalidInput, QuotaExceeded
from app.domain.ports import UnitOfWork

#: The longest period one report covers.
MAX_RANGE_DAYS = 366
#: The default period: the last 30 days.
DEFAULT_RANGE = timedelta(days=30)


def parse_moment(value: str | None, field: str) -> date | datetime | None:
    """An ISO 8601 date (`2026-11-30`) or date-time (`2026-11-30T12:00:00Z`), as written."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field}: an ISO 8601 date (2026-11-30) or date-time (2026-11-30T12:00:00Z)",
            loc=("query", field),
        ) from None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def period_start(value: date | datetime | None, end: datetime) -> datetime:
    """A date means its first instant (UTC); a time without a zone is UTC."""
    if value is None:
        return end - DEFAULT_RANGE
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return _midnight(value)


def period_end(value: date | datetime | None, now: datetime) -> datetime:
    """A date means the end of that day (UTC): `to=2026-11-30` includes the 30th."""
    if value is None:
        return now
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return _midnight(value + timedelta(days=1))


@dataclass(frozen=True, slots=True)
class DailyLimit:
    """`tokens`: input plus output tokens a user's replies may use per UTC day; None: no limit."""

    tokens: int | None = None


class UsageService:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def report(
        self,
        user_id: int,
        start: date | datetime | None,
        end: date | datetime | None,
        group_by: UsageGrouping,
    ) -> UsageDTO:
        """Tokens and replies in `[from, to)` by group; 422 unless `from` < `to` and the
        period spans at most `MAX_RANGE_DAYS` days."""
        now = datetime.now(UTC)
        until = period_end(end, now)
        since = period_start(start, until)
        if since >= until:
            raise InvalidInput("from: must be before `to`", loc=("query", "from"))
        if until - since > timedelta(days=MAX_RANGE_DAYS):
            raise InvalidInput(
                f"to: the period may span at most {MAX_RANGE_DAYS} days", loc=("query", "to")
            )
        rows = await self._uow.usage.report(user_id, since, until, group_by)
        groups = [
            UsageGroupDTO(
                key=row.key,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                replies=row.replies,
            )
            for row in rows
        ]
        total = UsageTotals(
            input_tokens=sum(g.input_tokens for g in groups),
            output_tokens=sum(g.output_tokens for g in groups),
            replies=sum(g.replies for g in groups),
        )
        return UsageDTO(start=since, end=until, group_by=group_by, total=total, groups=groups)


async def check_daily_limit(uow: UnitOfWork, user_id: int, limit: DailyLimit) -> None:
    """Inside the reply start's `atomic()` block, before anything is written: take the caller's
    usage lock and refuse (429) when today's usage has reached the limit."""
    if limit.tokens is None:
        return
    now = datetime.now(UTC)
    midnight = _midnight(now.date())
    await uow.usage.hold(user_id)
    used = await uow.usage.used_since(user_id, midnight)
    if used >= limit.tokens:
        retry = max(1, int((midnight + timedelta(days=1) - now).total_seconds()) + 1)
        raise QuotaExceeded(
            f"the daily limit of {limit.tokens} tokens is used up ({used} used since 00:00 "
            "UTC); replies start again after midnight UTC",
            retry_after_s=retry,
            limit=limit.tokens,
            used=used,
        )
