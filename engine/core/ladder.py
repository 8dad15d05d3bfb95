"""Ladders: ordered levels a member climbs month by month (a stage program).

A ladder is data (``ladder:`` in a program version, engine/format/program.py ``Ladder``):

* **levels**, lowest first. A member joins at the first one when a subscription starts (unless an
  opt-out expression over the member's attributes holds) and leaves the ladder when it opts out.
* **counters of the current level**: the *months* counted since the level was reached (that month
  included; a calendar month that begins while the subscription is paused is a pause month and
  does not count) and the *amount* bought since then (each order's billed items, in or ex. tax, after
  coupons and discounts; orders of the listed courses; purchases made while paused are left out
  when the ladder says so; a return or cancellation takes the order's share back out of the
  current level's amount, whenever it happens). Both reset when a level is reached.
* **monthly evaluation**: at 00:00 on the 1st of each month in the program's time zone (a
  ``month`` happening of the member's clock, engine/core/clock.py, fired with or without events, after
  any event stamped exactly that instant) the month just ended is closed, the new month is a
  counted month or a pause month by the member's status then, and the level's step is checked on
  the figures up to the end of the month before (an order stamped exactly 00:00 belongs to the
  new month). A met step moves one level up; levels never go down. On the top
  level, meeting its ``again`` conditions gives its gifts again and resets the counters.
* **pauses**: a pause month beyond the allowed consecutive number cancels as it begins: the
  ladder resets to the ``cancel.reset_to`` level and drops pending gifts, exactly as a cancelled
  subscription does. A
  later start (or resumption) joins again at the first level.
* **gifts**: each level reached (and each ``again``) schedules its gifts some months after that
  month; a notice goes out the months before a chosen gift. A gift that falls due while the
  member is paused waits for the month after the member resumes; a cancellation drops it.

Effects: ``gift.due`` and ``notice.due`` (``at`` = the first day of the month they fall in,
``detail`` = ``{"stage", "number"}``; ``round`` on the top level's repeated gifts,
``deferred_from`` on a gift a pause moved).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional
from zoneinfo import ZoneInfo

import msgspec
from msgspec import UNSET

from engine.model.answers import GiftPending, LadderChange, LadderNext, LadderView
from engine.model.events import (Event, MemberRegistered, MemberUpdated, OrderCancelled, OrderPlaced, OrderReturned,
                     SubscriptionCancelled, SubscriptionPaused, SubscriptionResumed, SubscriptionStarted)
from engine.format.expr import Attributes
from engine.core.lots import Change
from engine.core.tiers import order_amount as tier_order_amount
from engine.format.program import Ladder, LadderLevel, LadderStep, Program
from engine.model.state import member_status, Effect, LadderState, LevelChange, MemberState, Order, PendingGift
from engine.model.timeutil import Month, local_date, month_add, month_first, month_of, start_of

_SUBSCRIPTION_EVENTS = (SubscriptionStarted, SubscriptionPaused, SubscriptionResumed, SubscriptionCancelled)


# --- months (timeutil.Month) ------------------------------------------------------------------

def month_at(at: datetime, tz: ZoneInfo) -> Month:
    """The month an instant falls in, in the program's zone."""
    return month_of(local_date(at, tz))


def month_start(month: Month, tz: ZoneInfo) -> datetime:
    return start_of(month_first(month), tz)


def _first_day(month: Month) -> str:
    return month_first(month).isoformat()


# --- the clock's monthly happening ------------------------------------------------------------

def next_month(state: MemberState, program: Program) -> Optional[datetime]:
    """00:00 on the 1st of the month after the one the member's ladder is in, while the member is
    on the ladder and the version in force then has one."""
    ladder = state.ladder
    if ladder is None or ladder.status not in ("active", "paused") or not ladder.month:
        return None
    at = month_start(month_add(ladder.month, 1), program.tz)
    return at if program.version_at(at).ladder is not None else None


def on_month(change: Change) -> None:
    """The month boundary: close the month just ended, open the new one (counted, or a pause month
    that may pass the pause limit), then check the step, then the gifts and notices of the month."""
    ladder = change.version.ladder
    st = change.state.ladder
    if ladder is None or st is None or st.status not in ("active", "paused"):
        return
    month = month_at(change.at, change.program.tz)
    if st.month_counts:
        st.months += 1
    st.month = month
    st.month_counts = st.status == "active"
    st.pause_streak = 0 if st.month_counts else st.pause_streak + 1
    if ladder.max_pause_months is not None and st.pause_streak > ladder.max_pause_months:
        _reset(change, ladder, "cancelled", "pause_cancel", ladder.pause_rule or ladder.cancel_rule)
        return
    _evaluate(change, ladder, st, month)
    if st.ahead:   # bought at this month's first instant: the new month's figures
        st.amount += sum(st.ahead.values())
        st.ahead = {}
    _gifts(change, ladder, st, month)


def _evaluate(change: Change, ladder: Ladder, st: LadderState, month: Month) -> None:
    i = ladder.index(st.level)
    level: LadderLevel = ladder.levels[i]
    if level.up is not None and i + 1 < len(ladder.levels) and level.up.met(st.months, st.amount):
        reached = ladder.levels[i + 1]
        _restart_counters(change, st, reached.id, "up", level.up, round_=1)
        _schedule(ladder, st, reached, month, 1)
    elif level.again is not None and level.again.met(st.months, st.amount):
        _restart_counters(change, st, level.id, "again", level.again, round_=st.round + 1)
        _schedule(ladder, st, level, month, st.round)


def _restart_counters(change: Change, st: LadderState, level_id: str, reason: str, step: LadderStep,
                      round_: int) -> None:
    st.level = level_id
    st.since = change.at
    st.months = 0
    st.amount = 0
    st.round = round_
    st.history.append(LevelChange(at=change.at, level=level_id, reason=reason, rule=step.rule))


def _schedule(ladder: Ladder, st: LadderState, level: LadderLevel, month: Month, round_: int) -> None:
    notice = ladder.notice
    due: dict[int, Month] = {}
    for gift in level.gifts:
        # a gift that follows another is due, for now, that many months after the other's due month
        start = due[gift.after_gift] if gift.after_gift is not None else month
        due[gift.number] = month_add(start, gift.after_months)
        st.gifts.append(PendingGift(stage=level.id, number=gift.number, round=round_, due=due[gift.number],
                                    notice=notice is not None and notice.of_number == gift.number,
                                    after_gift=gift.after_gift, after_months=gift.after_months))


def _gifts(change: Change, ladder: Ladder, st: LadderState, month: Month) -> None:
    """Gifts due by ``month`` go out while the member is active, else wait for the resumption;
    a gift's notice goes out ``months_before`` its month, while the member is active."""
    keep = []
    notice = ladder.notice
    sent: set[tuple[str, int, int]] = set()
    for gift in st.gifts:
        if gift.after_gift is not None and (gift.stage, gift.round, gift.after_gift) in sent:
            # the gift it follows went out this month: it is due that many months from now
            gift = msgspec.structs.replace(gift, due=month_add(month, gift.after_months), noticed=False)
        if gift.due <= month:
            if st.status == "active" or ladder.defer_rule is None:   # without 'during_pause' no gift waits
                _emit_gift(change, ladder, gift, month)
                sent.add((gift.stage, gift.round, gift.number))
                continue
            if gift.deferred_from is None:
                gift = msgspec.structs.replace(gift, deferred_from=gift.due, noticed=False)
        elif (gift.notice and notice is not None and not gift.noticed and st.status == "active"
              and month_add(gift.due, -notice.months_before) <= month):
            _emit(change, "notice.due", month, gift, notice.rule)
            gift = msgspec.structs.replace(gift, noticed=True)
        keep.append(gift)
    st.gifts = keep


def _emit_gift(change: Change, ladder: Ladder, gift: PendingGift, month: Month) -> None:
    deferred = gift.deferred_from is not None
    rule = (ladder.defer_rule or ladder.gift_rule) if deferred else ladder.gift_rule
    extra = {"deferred_from": _first_day(gift.deferred_from)} if gift.deferred_from is not None else {}
    _emit(change, "gift.due", month, gift, rule or ladder.rule, **extra)


def _emit(change: Change, type_: str, month: Month, gift: PendingGift, rule: str, **extra: str) -> None:
    detail: dict[str, Any] = {"stage": gift.stage, "number": gift.number}
    if gift.round > 1:
        detail["round"] = gift.round
    detail.update(extra)
    change.effects.append(Effect(type=type_, member=change.state.member, at=_first_day(month), detail=detail,
                                 rule=rule))


# --- events -----------------------------------------------------------------------------------

def after_event(change: Change, event: Event) -> None:
    """Follow an applied event: subscription and member changes move the member on or off the
    ladder; orders, returns and cancellations change the current level's amount."""
    ladder = change.version.ladder
    if ladder is None:
        return
    if isinstance(event, _SUBSCRIPTION_EVENTS + (MemberRegistered, MemberUpdated)):
        _sync(change, ladder)
    elif isinstance(event, OrderPlaced):
        _count(change, ladder, event.order)
    elif isinstance(event, (OrderReturned, OrderCancelled)):
        _recount(change, ladder, event.order)


def _opted_out(change: Change, ladder: Ladder) -> bool:
    return ladder.opt_out is not None and bool(ladder.opt_out({"attributes": Attributes(change.state.attributes)}))


def _sync(change: Change, ladder: Ladder) -> None:
    state = change.state
    st = state.ladder
    current = st.status if st is not None else "none"
    if _opted_out(change, ladder):
        if current in ("active", "paused"):
            _reset(change, ladder, "opted_out", "opt_out", ladder.enrol_rule, level=None)
        elif st is None:
            state.ladder = LadderState(status="opted_out")
        return
    target = member_status(state.subscriptions)
    if current == "opted_out":
        current = "none"
    if target == "active":
        if current in ("none", "cancelled"):
            _enrol(change, ladder)
        elif current == "paused":
            _resume(change, ladder)
    elif target == "paused":
        if current == "active" and st is not None:
            st.status = "paused"
    elif current in ("active", "paused"):
        _reset(change, ladder, "cancelled", "cancel", ladder.cancel_rule)


def _enrol(change: Change, ladder: Ladder) -> None:
    old = change.state.ladder
    first = ladder.levels[0].id
    # MAN-4 in general terms: the month the member joins counts, whatever day it joins on
    st = LadderState(status="active", level=first, since=change.at, month=month_at(change.at, change.program.tz),
                     month_counts=True, history=list(old.history) if old is not None else [])
    st.history.append(LevelChange(at=change.at, level=first, reason="enrol", rule=ladder.enrol_rule))
    change.state.ladder = st


def _resume(change: Change, ladder: Ladder) -> None:
    """Counting goes on where it stopped (from the next month that begins active); gifts that fell
    due during the pause move to the month after this one (and their notice, if any, is due now)."""
    st = change.state.ladder
    if st is None:
        return
    st.status = "active"
    month = month_at(change.at, change.program.tz)
    st.gifts = [msgspec.structs.replace(g, due=month_add(month, 1)) if g.deferred_from is not None else g
                for g in st.gifts]
    _gifts(change, ladder, st, month)


def _reset(change: Change, ladder: Ladder, status: str, reason: str, rule: str, level: Optional[str] = "") -> None:
    """Cancellation (by the member, or by too long a pause) or opting out: back to the reset level
    (none when opting out), counters cleared, pending gifts dropped."""
    st = change.state.ladder
    if st is None:
        return
    st.status = status
    st.level = ladder.reset_to if level == "" else level
    st.since = change.at
    st.months = st.amount = st.pause_streak = 0
    st.round = 1
    st.month_counts = False
    st.counted = {}
    st.ahead = {}
    st.gifts = []
    st.history.append(LevelChange(at=change.at, level=st.level, reason=reason, rule=rule))


def order_amount(ladder: Ladder, order: Order) -> int:
    return tier_order_amount(order, ladder.measure)


def _count(change: Change, ladder: Ladder, order_id: str) -> None:
    st = change.state.ladder
    order = change.state.orders.get(order_id)
    if st is None or order is None or order.guest or order.course not in ladder.courses:
        return
    if st.status == "active" or (st.status == "paused" and not ladder.exclude_paused):
        amount = order_amount(ladder, order)
        if change.at >= month_start(month_add(st.month, 1), change.program.tz):
            st.ahead[order_id] = amount   # stamped 00:00 on the 1st: after that month's evaluation
        else:
            st.amount += amount
        st.counted[order_id] = amount


def _recount(change: Change, ladder: Ladder, order_id: str) -> None:
    """A return or cancellation: what the order no longer counts leaves the current level's amount."""
    st = change.state.ladder
    if st is None or order_id not in st.counted:
        return
    now = order_amount(ladder, change.state.orders[order_id])
    if order_id in st.ahead:
        st.ahead[order_id] = now
    else:
        st.amount -= st.counted[order_id] - now
    st.counted[order_id] = now


# --- reports ----------------------------------------------------------------------------------

def ladder_view(program: Program, ladder: Ladder, state: MemberState) -> LadderView:
    """The member's place on the ladder, for the member report (``tier`` is its level). ``months``
    and ``amount`` are the level's figures so far, the current month included when it counts."""
    st = state.ladder
    if st is None:
        return LadderView(level=None, status="none")
    out = LadderView(level=st.level, status=st.status)
    if st.status in ("active", "paused"):
        i = ladder.index(st.level)
        level = ladder.levels[i]
        step = level.up if i + 1 < len(ladder.levels) else level.again
        out.since = st.since.astimezone(program.tz).isoformat() if st.since else None
        out.months = st.months + (1 if st.month_counts else 0)
        out.amount = st.amount + sum(st.ahead.values())
        out.pause_months_in_a_row = st.pause_streak
        out.next = (LadderNext(level=ladder.levels[i + 1].id if level.up else level.id, months=step.months,
                               amount=step.amount, rule=step.rule) if step else None)
        if level.again is not None:
            out.round = st.round
        out.gifts_pending = [GiftPending(stage=g.stage, number=g.number, due=_first_day(g.due),
                                         round=g.round if g.round > 1 else UNSET,
                                         deferred_from=_first_day(g.deferred_from) if g.deferred_from else UNSET)
                             for g in st.gifts]
    out.history = [LadderChange(at=h.at.astimezone(program.tz).isoformat(), level=h.level, reason=h.reason,
                                rule=h.rule) for h in st.history]
    return out
