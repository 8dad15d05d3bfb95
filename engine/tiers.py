"""Member tiers (classes, ranks) from a rolling window of purchases."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Optional

from .program import Tiers
from .pricing import kept_amount
from .state import MemberState, Order
from .timeutil import local_date, start_of


def order_amount(order: Order, measure: str) -> int:
    """What an order counts for a tier: its kept lines as the invoice states them, ex. or incl. tax
    (tax per rate, floored). Cancelled orders count nothing."""
    if order.status == "cancelled":
        return 0
    return kept_amount(order, measure == "items_incl_tax")


@lru_cache(maxsize=1024)
def window_start(window, day, tz) -> datetime:
    """00:00 of the window's first day for a window ending on ``day`` (one per day, so cached)."""
    return start_of(window.before(day), tz)


def window_amount(tiers: Tiers, state: MemberState, at: datetime, tz) -> int:
    """Purchases counted in the window that ends just before ``at`` (the window's first day 00:00 on)."""
    since = window_start(tiers.window, local_date(at, tz), tz)
    total = 0
    by_placement = tiers.counts_from == "placed"
    # Orders are kept in placement order (a member's events come in time order), so counting from
    # placement walks back from the newest and stops at the window's start: the cost follows the
    # window, not the member's whole history.
    incl = tiers.measure == "items_incl_tax"
    for order in reversed(state.orders.values()):
        if by_placement and order.placed_at < since:
            break
        if order.guest or order.status == "cancelled":
            continue
        counted_at = order.placed_at if by_placement else order.shipped_at
        if counted_at is None or not (since <= counted_at < at):
            continue
        total += order.kept_incl if incl and order.kept_incl >= 0 else (
            order.kept_ex if not incl and order.kept_ex >= 0 else kept_amount(order, incl))
    return total


def tier_at(tiers: Optional[Tiers], state: MemberState, at: datetime, tz) -> tuple[Optional[str], int]:
    if tiers is None:
        return None, 0
    amount = window_amount(tiers, state, at, tz)
    return tiers.level_for(amount), amount
