"""Member tiers (classes, ranks) from a rolling window of purchases.

What orders count is kept as running sums by local day and by month (state.CountedAmounts),
updated whenever an order is written (``record_order``), so a tier window costs at most two
months of daily sums and the months between, however long the member's history is.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Iterable, Optional
from zoneinfo import ZoneInfo

from engine.format.program import Tiers
from engine.core.pricing import kept_amount
from engine.model.state import CountedAmounts, MemberState, Order
from engine.model.timeutil import Period, local_date, start_of

# month key -> (ex. tax, incl. tax, the month's days as (date ordinal, ex. tax, incl. tax))
Months = dict[int, tuple[int, int, tuple[tuple[int, int, int], ...]]]
# an order's contribution to the sums: (date ordinal, month key, ex. tax, incl. tax)
Amounts = tuple[int, int, int, int]


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


@lru_cache(maxsize=1024)
def window_start(window: Period, day: date, tz: ZoneInfo) -> datetime:
    """00:00 of the window's first day for a window ending on ``day`` (one per day, so cached)."""
    return start_of(first_day(window, day), tz)


# --- running sums -----------------------------------------------------------------------------

def _day(at: datetime, tz: ZoneInfo) -> tuple[int, int]:
    """(date ordinal, month key) of an instant's local day."""
    d = local_date(at, tz)
    return d.toordinal(), d.year * 12 + d.month - 1


def _contribution(order: Optional[Order], tz: ZoneInfo) -> tuple[Optional[Amounts], Optional[Amounts]]:
    """What an order adds to the sums by placement and by shipment: ((day, month, ex, incl) or None) each."""
    if order is None or order.guest or order.status == "cancelled":
        return None, None
    amounts = (kept_amount(order, False), kept_amount(order, True))
    placed = _day(order.placed_at, tz) + amounts
    shipped = _day(order.shipped_at, tz) + amounts if order.shipped_at is not None else None
    return placed, shipped


def _add(months: Months, c: Amounts, sign: int) -> None:
    """Add (sign +1) or take away (-1) one order's amounts on its day. A month's days stay a
    sorted tuple without empty days (shared, never changed, between a state and its copy)."""
    day, month, ex, incl = c
    ex, incl = sign * ex, sign * incl
    record = months.get(month)
    if record is None:
        if ex or incl:
            months[month] = (ex, incl, ((day, ex, incl),))
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
        months[month] = (total_ex + ex, total_incl + incl, days)
    else:
        months.pop(month, None)


def _move(months: Months, before: Optional[Amounts], after: Optional[Amounts]) -> None:
    if before == after:
        return
    if before is not None:
        _add(months, before, -1)
    if after is not None:
        _add(months, after, +1)


def record_order(state: MemberState, old: Optional[Order], new: Order, tz: ZoneInfo) -> None:
    """Write ``new`` into the member's orders (replacing ``old``) and move the running sums."""
    state.orders[new.id] = new
    counted = state.counted
    if counted is None:
        return   # not known: rebuilt by settle_counted
    placed_before, shipped_before = _contribution(old, tz)
    placed_after, shipped_after = _contribution(new, tz)
    _move(counted.placed, placed_before, placed_after)
    _move(counted.shipped, shipped_before, shipped_after)


def counted_of(state: MemberState, tz: ZoneInfo) -> CountedAmounts:
    counted = CountedAmounts()
    for order in state.orders.values():
        placed, shipped = _contribution(order, tz)
        _move(counted.placed, None, placed)
        _move(counted.shipped, None, shipped)
    return counted


def settle_counted(state: MemberState, tz: ZoneInfo) -> None:
    """Make the running sums known (one pass over the orders of a state stored before they existed)."""
    if state.counted is None:
        state.counted = counted_of(state, tz)


@lru_cache(maxsize=1024)
def _window_days(window: Period, today: date) -> tuple[int, int, int, int]:
    """(first day, last day, first month, last month) of the window ending on ``today``: date
    ordinals and month keys (one per day, so cached)."""
    first = first_day(window, today)
    return (first.toordinal(), today.toordinal(), first.year * 12 + first.month - 1,
            today.year * 12 + today.month - 1)


def _range_sum(months: Months, days: tuple[int, int, int, int], incl: bool) -> int:
    """Σ from day ``first`` to day ``last`` (date ordinals, inclusive): the months between from
    their totals, the two end months day by day, months with nothing skipped."""
    first, last, first_month, last_month = days
    k = 1 if incl else 0      # (ex, incl, days) in a month; (day, ex, incl) in its days
    total = 0
    in_window: Iterable[tuple[int, tuple[int, int, tuple[tuple[int, int, int], ...]]]]
    if len(months) <= last_month - first_month + 1:
        in_window = months.items()
    else:   # a long history: look up only the window's months
        in_window = ((m, months[m]) for m in range(first_month, last_month + 1) if m in months)
    for month, record in in_window:
        if first_month < month < last_month:
            total += record[1] if incl else record[0]
        elif first_month <= month <= last_month:
            for day in record[2]:
                if first <= day[0] <= last:
                    total += day[k + 1]
    return total


# --- the window -------------------------------------------------------------------------------

def window_amount(tiers: Tiers, state: MemberState, at: datetime, tz: ZoneInfo) -> int:
    """Purchases counted in the window that ends just before ``at`` (the window's first day 00:00 on)."""
    if state.counted is not None and (state.clock is None or at > state.clock):
        return window_by_sums(tiers, state.counted, at, tz)
    # An instant the member's clock has reached (events stamped the same moment): order by order.
    return window_by_orders(tiers, state, at, tz)


def window_by_sums(tiers: Tiers, counted: CountedAmounts, at: datetime, tz: ZoneInfo) -> int:
    """The window from the running sums: right when every order was counted before ``at`` (the
    member's clock is earlier), so the window is its first day to today, whole days."""
    months = counted.placed if tiers.counts_from == "placed" else counted.shipped
    return _range_sum(months, _window_days(tiers.window, local_date(at, tz)), tiers.measure == "items_incl_tax")


def window_by_orders(tiers: Tiers, state: MemberState, at: datetime, tz: ZoneInfo) -> int:
    """The window order by order (exact at any instant; the cost follows the orders in the window)."""
    since = window_start(tiers.window, local_date(at, tz), tz)
    incl = tiers.measure == "items_incl_tax"
    by_placement = tiers.counts_from == "placed"
    total = 0
    for order in reversed(state.orders.values()):
        if by_placement and order.placed_at < since:
            break   # orders are kept in placement order
        if order.guest or order.status == "cancelled":
            continue
        counted_at = order.placed_at if by_placement else order.shipped_at
        if counted_at is None or not (since <= counted_at < at):
            continue
        total += kept_amount(order, incl)
    return total


def tier_at(tiers: Optional[Tiers], state: MemberState, at: datetime, tz: ZoneInfo) -> tuple[Optional[str], int]:
    if tiers is None:
        return None, 0
    amount = window_amount(tiers, state, at, tz)
    return tiers.level_for(amount), amount
