"""Japanese business days (weekends and national holidays excluded), from the maintained
`holidays` package rather than a hand-typed list."""
from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

from engine.format.messages import rejected


@lru_cache(maxsize=16)
def _calendar(country: str) -> holidays.HolidayBase:
    try:
        return holidays.country_holidays(country)
    except NotImplementedError:
        raise rejected("calendar.unknown", None,
                       detail=f"the program's holiday calendar {country!r} is not one the holidays package "
                              f"knows (an ISO country code such as JP)") from None


def is_business_day(d: date, country: str) -> bool:
    return d.weekday() < 5 and d not in _calendar(country)


def business_days_before(d: date, n: int, country: str) -> date:
    """The day ``n`` business days before ``d`` (``d`` itself not counted)."""
    day = d
    while n > 0:
        day -= timedelta(days=1)
        if is_business_day(day, country):
            n -= 1
    return day
