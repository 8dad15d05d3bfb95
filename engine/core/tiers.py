"""Member tiers (classes, ranks) from a rolling window of purchases.

What orders count is kept as running sums by local day and by month (state.CountedAmounts),
updated whenever an order is written (``record_order``), so a tier window costs at most two
months of daily sums and the months between, however long the member's history is.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Optional
from zoneinfo import ZoneInfo

from engine.core.journal import Journal
from engine.core.pricing import kept_amount
from engine.format.program import Tiers
from engine.model.state import CountedAmounts, MemberState, Order
from engine.model.timeutil import Month, Period, local_date, month_add, month_of, months_between, start_of

Months = dict[Month, tuple[int, int, tuple[tuple[int, int, int], ...]]]
Counted = tuple[int, Month, int, int]    # (date ordinal, its month, ex. tax, incl. tax)


def order_amount(order: Order, measure: str) -> int:
    """What an order counts for a tier: its kept lines as the invoice states them, ex. or incl. tax
    (tax per rate, floored). Cancelled orders count nothing."""
    if order.status == "cancelled":
        return 0
    return kept_amount(order, measure == "items_incl_tax")


def first_day(window: Period, day: date) -> date:
    """The first day of a window of ``window`` that ends on ``day``: the day after ``day`` shifted
    back by the window, the way a period of time is counted (12 months ending 2026-03-01 run from
    2025-03-02), so a year's window holds 365 or 366 days, never a day more (AND-10, ANS-2)."""
    return window.before(day) + timedelta(days=1)


# --- running sums -----------------------------------------------------------------------------

def _day(at: datetime, tz: ZoneInfo) -> tuple[int, Month]:
    """(date ordinal, month) of an instant's local day."""
    d = local_date(at, tz)
    return d.toordinal(), month_of(d)


def _contribution(order: Optional[Order], tz: ZoneInfo) -> tuple[Optional[Counted], Optional[Counted]]:
    """What an order adds to the sums by placement and by shipment: ((day, month, ex, incl) or None) each."""
    if order is None or order.guest or order.status == "cancelled":
        return None, None
    amounts = (kept_amount(order, False), kept_amount(order, True))
    placed = _day(order.placed_at, tz) + amounts
    shipped = _day(order.shipped_at, tz) + amounts if order.shipped_at is not None else None
    return placed, shipped


def _counted_alike(old: Order, new: Order) -> bool:
    """Whether the two give the sums the same (``_contribution``): the same days and amounts."""
    return (old.placed_at == new.placed_at and old.shipped_at == new.shipped_at and old.guest == new.guest
            and old.kept_ex == new.kept_ex and old.kept_incl == new.kept_incl
            and (old.status == "cancelled") == (new.status == "cancelled"))


def _add(journal: Journal, months: Months, c: Counted, sign: int) -> None:
    """Add (sign +1) or take away (-1) one order's amounts on its day. A month's days stay a
    sorted tuple without empty days (a tuple: a month is replaced whole, never changed)."""
    day, month, ex, incl = c
    ex, incl = sign * ex, sign * incl
    record = months.get(month)
    if record is None:
        if ex or incl:
            journal.set(months, month, (ex, incl, ((day, ex, incl),)))
        return
    total_ex, total_incl, days = record
    for k, (d, e, i) in enumerate(days):
        if d == day:
            e, i = e + ex, i + incl
            days = days[:k] + ((d, e, i),) + days[k + 1:] if (e or i) else days[:k] + days[k + 1:]
            break
        if d > day:
            if ex or incl:
                days = days[:k] + ((day, ex, incl),) + days[k:]
            break
    else:
        if ex or incl:
            days = days + ((day, ex, incl),)
    if days:
        journal.set(months, month, (total_ex + ex, total_incl + incl, days))
    else:
        journal.pop(months, month)


def _move(journal: Journal, months: Months, before: Optional[Counted], after: Optional[Counted]) -> None:
    if before == after:
        return
    if before is not None:
        _add(journal, months, before, -1)
    if after is not None:
        _add(journal, months, after, +1)


def record_order(journal: Journal, state: MemberState, old: Optional[Order], new: Order, tz: ZoneInfo) -> None:
    """Write ``new`` into the member's orders (replacing ``old``) and move the running sums."""
    journal.set(state.orders, new.id, new)
    if old is not None and _counted_alike(old, new):
        return      # a delivery after the shipment, an earn's change: the sums hold the order as they did
    counted = state.counted
    placed_before, shipped_before = _contribution(old, tz)
    placed_after, shipped_after = _contribution(new, tz)
    _move(journal, counted.placed, placed_before, placed_after)
    _move(journal, counted.shipped, shipped_before, shipped_after)


def counted_of(state: MemberState, tz: ZoneInfo) -> CountedAmounts:
    """The running sums counted afresh from the member's orders (a state stored before it kept them)."""
    counted = CountedAmounts()
    journal = Journal(state)     # nothing to undo: the sums are new
    for order in state.orders.values():
        placed, shipped = _contribution(order, tz)
        _move(journal, counted.placed, None, placed)
        _move(journal, counted.shipped, None, shipped)
    return counted


@lru_cache(maxsize=1024)
def _window_days(window: Period, today: date) -> tuple[int, int, Month, Month]:
    """(first day, last day, first month, last month) of the window ending on ``today``: date
    ordinals and months (one per day, so cached)."""
    first = first_day(window, today)
    return first.toordinal(), today.toordinal(), month_of(first), month_of(today)


@lru_cache(maxsize=1024)
def _months_of(first: Month, last: Month) -> tuple[Month, ...]:
    """The months from ``first`` to ``last``, both included (one window a day, so cached)."""
    return tuple(month_add(first, n) for n in range(months_between(first, last)))


def _days_sum(days: tuple[tuple[int, int, int], ...], first: int, last: int, k: int) -> int:
    """Σ of an end month's days from ``first`` to ``last`` (ordinals; ``k`` 0: ex., 1: incl. tax)."""
    return sum(day[k + 1] for day in days if first <= day[0] <= last)


def _range_sum(months: Months, days: tuple[int, int, Month, Month], incl: bool) -> int:
    """Σ from day ``first`` to day ``last`` (date ordinals, inclusive): the months between from
    their totals, the two end months day by day, months with nothing skipped."""
    first, last, first_month, last_month = days
    k = 1 if incl else 0      # (ex, incl, days) in a month; (day, ex, incl) in its days
    total = 0
    window_months = _months_of(first_month, last_month)
    if len(months) <= len(window_months):
        # a short history: one pass over the months it has
        for month, record in months.items():
            if first_month < month < last_month:
                total += record[1] if incl else record[0]
            elif month == first_month or month == last_month:
                total += _days_sum(record[2], first, last, k)
        return total
    # a long history: look up only the window's months
    for month in ((first_month,) if first_month == last_month else (first_month, last_month)):
        found = months.get(month)
        if found is not None:
            total += _days_sum(found[2], first, last, k)
    for month in window_months[1:-1]:
        between = months.get(month)
        if between is not None:
            total += between[1] if incl else between[0]
    return total


# --- the window -------------------------------------------------------------------------------

def window_amount(tiers: Tiers, state: MemberState, at: datetime, tz: ZoneInfo) -> int:
    """Purchases counted in the window that ends just before ``at`` (the window's first day 00:00
    on): the running sums of its whole days, less what was counted on ``at``'s own day at ``at`` or
    later (only a member whose clock has reached ``at`` has any: events stamped the same moment,
    a quote for a moment before the member's last event)."""
    today = local_date(at, tz)
    by_placement = tiers.counts_from == "placed"
    months = state.counted.placed if by_placement else state.counted.shipped
    incl = tiers.measure == "items_incl_tax"
    total = _range_sum(months, _window_days(tiers.window, today), incl)
    if state.clock is None or at > state.clock or not _counted_on(months, today):
        return total
    start = start_of(today, tz)
    for order in reversed(state.orders.values()):
        if by_placement and order.placed_at < start:
            break   # orders are kept in placement order
        if order.guest or order.status == "cancelled":
            continue
        counted_at = order.placed_at if by_placement else order.shipped_at
        if counted_at is not None and at <= counted_at and local_date(counted_at, tz) == today:
            total -= kept_amount(order, incl)
    return total


def _counted_on(months: Months, day: date) -> bool:
    """Whether anything is counted on ``day``."""
    record = months.get(month_of(day))
    ordinal = day.toordinal()
    return record is not None and any(d == ordinal for d, _, _ in record[2])


def tier_at(tiers: Optional[Tiers], state: MemberState, at: datetime, tz: ZoneInfo) -> tuple[Optional[str], int]:
    if tiers is None:
        return None, 0
    amount = window_amount(tiers, state, at, tz)
    return tiers.level_for(amount), amount
