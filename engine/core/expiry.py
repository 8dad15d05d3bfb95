"""Expiry: rolling from the last acquisition, per grant, a fixed date, or none."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Optional
from zoneinfo import ZoneInfo

from engine.core.lots import Change
from engine.model.state import OPEN, Lot, MemberState, member_status
from engine.model.timeutil import local_date, month_end, start_of


def on_acquire(change: Change, fixed_on: Optional[date] = None) -> tuple[Optional[date], bool]:
    """Expiry of units becoming valid now: (expires_on, rolling). A rolling program moves the
    whole balance's date forward (AND-5); a fixed date (limited-time points, AND-6) wins."""
    expiry = change.version.expiry
    if fixed_on is not None:
        return fixed_on, False
    period = expiry.period
    if period is None:   # no expiry (the loader gives rolling and per-grant expiry a period)
        return None, False
    today = local_date(change.at, change.program.tz)
    if expiry.kind == "rolling":
        change.state.rolling_expires_on = period.after(today)
        return None, True
    if expiry.kind == "per_grant":
        return period.after(today), False
    return None, False


def next_expiry(state: MemberState, tz: ZoneInfo) -> Optional[tuple[datetime, date]]:
    """When the next valid lot expires: 00:00 of the day after its last valid day. From the
    running totals (state.OpenBalance), not a scan of the lots."""
    bal = state.open_balance
    soonest = bal.soonest
    if bal.rolling_valid and state.rolling_expires_on is not None and (soonest is None or state.rolling_expires_on < soonest):
        soonest = state.rolling_expires_on
    if soonest is None:
        return None
    return _day_after_start(soonest, tz), soonest


@lru_cache(maxsize=4096)
def _day_after_start(day: date, tz: ZoneInfo) -> datetime:
    return start_of(day + timedelta(days=1), tz)


def expire(change: Change, on: date) -> None:
    """Every valid lot whose last valid day is ``on`` or earlier expires (never restored, AND-5)."""
    state = change.state
    expiry = change.version.expiry

    def due(lot: Lot) -> bool:
        last = state.lot_expires_on(lot)
        return lot.state == "valid" and last is not None and last <= on

    def rule_of(lot: Lot) -> str:
        # a limited-time lot expires by its own rule (AND-6), every other by the expiry rule
        return lot.rule if lot.kind == "limited" else (expiry.rule or lot.rule)

    change.end_each(due, "expired", "expire", rule_of)


def on_subscription_cancel(change: Change) -> None:
    """RC-9 in general terms: when the member's last subscription is cancelled, every valid lot
    expires at the end of the month after the cancellation month, or on its own date if earlier."""
    rule = change.version.expiry.on_cancel_rule
    if rule is None:
        return
    if member_status(change.state.subscriptions) != "cancelled":
        return
    today = local_date(change.at, change.program.tz)
    limit = month_end(month_end(today) + timedelta(days=1))
    state = change.state
    # units the member receives while cancelled (a revision's conversion, a gift) end then too
    state.expiry_cap = limit

    def later(lot: Lot) -> bool:
        own = state.lot_expires_on(lot)
        return lot.state in OPEN and (own is None or own > limit)

    change.redate(later, "shorten", rule, limit)
