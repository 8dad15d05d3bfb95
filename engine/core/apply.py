"""The pure core: (program, member state, event) → (new state, ledger entries, effects).

No I/O and no global state. The event changes the member's state in place and writes how to take
each change back into an undo journal (engine/core/journal.py), so its cost is what it touches,
not the member's history. A rejected event (or any failure on the way) plays the journal back:
the caller's state is exactly as it was, nothing half-applied, and any store can apply the
outcome in one transaction (or undo it, ``Outcome.undo``, when it cannot record it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Optional

from engine.core import bonuses, ladder, orders, returns, subscriptions
from engine.core.clock import advance
from engine.core.earning import RowChoices
from engine.core.expiry import on_acquire
from engine.core.journal import Journal, Touched
from engine.core.lots import Change
from engine.format.messages import rejected
from engine.format.program import Program
from engine.model.events import (Event, MemberRegistered, MemberUpdated, OrderCancelled, OrderDelivered, OrderPlaced,
                                 OrderReturned, OrderShipped, PointsGranted, PointsHeld, PointsReleased, ReviewPosted,
                                 SubscriptionCancelled, SubscriptionPaused, SubscriptionResumed, SubscriptionStarted)
from engine.model.state import LAYOUT, CountedAmounts, Effect, Entry, MemberState, OpenBalance
from engine.model.timeutil import parse_day, parse_instant


@dataclass
class Outcome:
    state: MemberState
    entries: list[Entry] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    journal: Optional[Journal] = field(default=None, repr=False, compare=False)

    def touched(self) -> Optional[Touched]:
        """What the event did to the member's long sequences (``journal.Touched``), for a store that
        writes only that; None if not known (the state came without a journal)."""
        return self.journal.touched() if self.journal is not None else None

    def undo(self) -> None:
        """Take the event back: the state as it was before it (a caller that could not record it)."""
        if self.journal is not None:
            self.journal.rollback()
            self.journal = None


def event_time(program: Program, event: Any) -> datetime:
    try:
        return parse_instant(event.at, program.tz)
    except ValueError as exc:
        raise rejected("event.not_iso_time", "at", value=repr(event.at), detail=str(exc)) from None


def new_member(member: str) -> MemberState:
    return MemberState(member=member, layout=LAYOUT, open_balance=OpenBalance(), counted=CountedAmounts())


def apply(program: Program, state: Optional[MemberState], event: Event,
          choices: Optional[RowChoices] = None) -> Outcome:
    """Apply one event to one member: ``state`` becomes the member's new state (the outcome's, the
    same object; None: a new member). Raises EventRejected when it cannot apply, ``state`` then
    exactly as it was. ``choices``: the caller's remembered rate-row choices (a cache: the same
    outcome without it)."""
    at = event_time(program, event)
    if state is None or not state.registered:
        if isinstance(event, MemberRegistered):
            state = state or new_member(event.member)
        elif isinstance(event, OrderPlaced) and event.guest:
            state = state or new_member(event.member)  # a guest order: recorded, earns nothing (ANS-4)
        elif state is not None and getattr(event, "order", None) in state.orders and isinstance(
                event, (OrderShipped, OrderDelivered, OrderCancelled, OrderReturned)):
            pass  # the fulfilment of a guest order already recorded
        else:
            raise rejected("member.unknown", "member", member=event.member)
    elif isinstance(event, MemberRegistered):
        raise rejected("member.registered_twice", "type", member=event.member)
    if state.clock is not None and at < state.clock:
        raise rejected("event.out_of_order", "at",
                       detail=f"arrives out of order: {event.at} is before this member's last event or happening "
                              f"({state.clock.isoformat()}); events of one member must come in time order")
    journal = Journal(state)
    journal.own_ladder()
    try:
        return _apply(program, journal, event, at, choices)
    except BaseException:
        journal.rollback()
        raise


def _apply(program: Program, journal: Journal, event: Event, at: datetime, choices: Optional[RowChoices]) -> Outcome:
    state = journal.state
    entries: list[Entry] = []
    effects: list[Effect] = []
    advance(program, state, at, entries, effects, before_event=True, journal=journal)
    change = Change(program, state, event.id, at, journal, choices)
    state.due_for = ""      # the event changes the state: its next happening is looked for again below
    _dispatch(change, event)
    ladder.after_event(change, event)   # a version's ladder follows subscriptions and orders
    # A member never holds valid units while owing: whatever made units valid (an earn, a grant,
    # a release, a restore), what is owed comes off them before anything else can spend them.
    bonuses.settle_debt(change)
    state.clock = at
    # What the event itself made due by now fires now, so the stored state (which a quote at this
    # instant reads as it is) holds nothing overdue: points given back by a cancellation whose
    # validity ended while they were spent expire at once (AND-5, expired points stay expired).
    after_entries: list[Entry] = []
    after_effects: list[Effect] = []
    advance(program, state, at, after_entries, after_effects, before_event=True, journal=journal)
    return Outcome(state, entries + change.entries + after_entries, effects + change.effects + after_effects, journal)


def _registered(change: Change, event: MemberRegistered) -> None:
    state = change.state
    state.registered = True
    state.registered_at = change.at
    state.version = change.version.number
    _member_fields(state, event)
    bonuses.on_event(change, "member.registered")


def _subscription(change: Change, event: Any) -> None:
    subscriptions.change_subscription(change, type(event).__struct_config__.tag.split(".")[1], event.subscription)


# What each event type does to a member.
_HANDLERS: dict[type, Callable[[Change, Any], None]] = {
    MemberRegistered: _registered,
    MemberUpdated: lambda change, event: _member_fields(change.state, event),
    OrderPlaced: orders.place,
    OrderShipped: lambda change, event: orders.ship(change, event.order),
    OrderDelivered: lambda change, event: orders.deliver(change, event.order),
    OrderCancelled: lambda change, event: returns.cancel(change, event.order),
    OrderReturned: returns.return_lines,
    ReviewPosted: lambda change, event: bonuses.on_event(change, "review.posted", product=event.product),
    PointsGranted: lambda change, event: _grant(change, event),
    PointsHeld: lambda change, event: _hold(change, event.amount, "valid", "held", "hold"),
    PointsReleased: lambda change, event: _hold(change, event.amount, "held", "valid", "release"),
    SubscriptionStarted: _subscription,
    SubscriptionPaused: _subscription,
    SubscriptionResumed: _subscription,
    SubscriptionCancelled: _subscription,
}


def _dispatch(change: Change, event: Event) -> None:
    _HANDLERS[type(event)](change, event)


def _member_fields(state: MemberState, event: MemberRegistered | MemberUpdated) -> None:
    if event.birthday is not None:
        try:
            state.birthday = date.fromisoformat(event.birthday)
        except ValueError:
            raise rejected("event.not_date", "birthday", value=repr(event.birthday)) from None
    if event.attributes is not None:
        state.attributes = dict(event.attributes)


def _grant(change: Change, event: PointsGranted) -> None:
    """An operator's grant; with ``expires_on`` it is a limited-time grant (AND-6) ending that day."""
    fixed = None
    expiry = change.version.expiry
    if event.expires_on is not None:
        try:
            fixed = parse_day(event.expires_on)
        except ValueError as exc:
            raise rejected("event.unusable_date", "expires_on", value=repr(event.expires_on), detail=str(exc)) from None
        if fixed < change.at.astimezone(change.program.tz).date():
            raise rejected("points.expires_past", "expires_on", date=fixed)
    expires_on, rolling = on_acquire(change, fixed)
    kind = "limited" if fixed else "grant"
    rule = (expiry.limited_rule or expiry.rule) if fixed else f"grant:{event.reason}"
    change.add_lot(event.amount, "valid", rule, kind, expires_on=expires_on, rolling=rolling, action="grant")


def _hold(change: Change, amount: int, from_state: str, to_state: str, action: str) -> None:
    have = change.total(from_state)
    if amount > have:
        raise rejected("points.not_enough", "amount", action=action, amount=amount, have=have, state=from_state)
    change.move(amount, from_state, to_state, action, f"operator:{action}")
