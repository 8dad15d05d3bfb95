"""Calendar arithmetic in a program's time zone: periods, month ends, instants."""
from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple, NewType, Optional
from zoneinfo import ZoneInfo

# A calendar month as "YYYY-MM": the one form a month takes everywhere (a ladder's months and
# gifts, subscription streaks, the tier sums by month). Four-digit years: months compare as text.
Month = NewType("Month", str)


@lru_cache(maxsize=4096)
def month_of(d: date) -> Month:
    return Month(f"{d.year:04d}-{d.month:02d}")


def month_add(month: Month, n: int) -> Month:
    """The month ``n`` months after ``month`` (before it for n < 0)."""
    k = int(month[:4]) * 12 + int(month[5:7]) - 1 + n
    return Month(f"{k // 12:04d}-{k % 12 + 1:02d}")


def month_first(month: Month) -> date:
    return date(int(month[:4]), int(month[5:7]), 1)


def months_between(first: Month, last: Month) -> int:
    """How many months from ``first`` to ``last``, both counted (0 when last is before first)."""
    n = (int(last[:4]) - int(first[:4])) * 12 + int(last[5:7]) - int(first[5:7]) + 1
    return max(n, 0)


class Period(NamedTuple):
    """A span of years, months and days (a tuple: it keys per-day caches, and tuples hash in C)."""

    years: int = 0
    months: int = 0
    days: int = 0

    def after(self, d: date) -> date:
        """``d`` plus this period; a month end that does not exist clamps (01-31 + 1 month = 02-28)."""
        return _shifted(self.years, self.months, self.days, d)

    def before(self, d: date) -> date:
        return _shifted(-self.years, -self.months, -self.days, d)

    def __str__(self) -> str:
        parts = [f"{n} {u}" for n, u in ((self.years, "years"), (self.months, "months"), (self.days, "days")) if n]
        return ", ".join(parts) or "0 days"


@lru_cache(maxsize=4096)
def _shifted(years: int, months: int, days: int, d: date) -> date:
    """Period.after (cached: expiry and tier windows shift the same few days again and again)."""
    months = d.month - 1 + months + 12 * years
    year, month = d.year + months // 12, months % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return date(year, month, day) + timedelta(days=days)


@lru_cache(maxsize=4096)
def start_of(d: date, tz: ZoneInfo) -> datetime:
    """00:00 of ``d`` in ``tz`` (cached: the clock asks for the same few days again and again)."""
    return datetime.combine(d, time(0), tz)


def local_date(at: datetime, tz: ZoneInfo) -> date:
    return (at if at.tzinfo is tz else at.astimezone(tz)).date()


def month_end(d: date) -> date:
    return date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])


# Sanity bounds of a time a ledger accepts: not program numbers, but what keeps a member's clock
# from running for centuries (or past datetime's year 9999) on a mistyped year.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2199


@lru_cache(maxsize=64)
def fixed_offset(tz: ZoneInfo) -> Optional[timedelta]:
    """The zone's offset if it has one offset across the ledger's years (Asia/Tokyo), else None
    (a zone with summer time: its times keep their own offsets, compared exactly)."""
    offsets = {datetime(y, m, 1, tzinfo=tz).utcoffset() for y in range(EARLIEST_YEAR, LATEST_YEAR + 1, 10) for m in (1, 7)}
    return offsets.pop() if len(offsets) == 1 else None


def parse_instant(text: str, tz: ZoneInfo) -> datetime:
    """ISO 8601 with an offset, or a bare date meaning 00:00 in the program's time zone."""
    if len(text) == 10:
        at = start_of(date.fromisoformat(text), tz)
    else:
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError("a time needs an offset (e.g. +09:00), or give a bare date")
        if at.tzinfo.utcoffset(at) == fixed_offset(tz):
            # the same instant and the same text, in the program's own zone object: datetimes that
            # share a tzinfo compare without calling it (the engine compares times everywhere).
            at = datetime(at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond, tz)
    if not EARLIEST_YEAR <= at.year <= LATEST_YEAR:
        raise ValueError(f"year {at.year} is outside {EARLIEST_YEAR}-{LATEST_YEAR}")
    return at


def parse_day(text: str) -> date:
    """A YYYY-MM-DD date within the ledger's sane years (a 9999-12-31 expiry would overflow)."""
    day = date.fromisoformat(text)
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise ValueError(f"year {day.year} is outside {EARLIEST_YEAR}-{LATEST_YEAR}")
    return day
