"""The member's clock: happenings that fire when time passes, in time order, with or without events.

A happening is anything due at a moment: a lot's expiry, a birth-month bonus, a delayed restore,
a program version coming into force. ``advance`` fires every one due up to a moment, earliest
first; ties fire in a fixed order so replays are deterministic (X-4).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from engine.core import bonuses, expiry, ladder, migration, returns
from engine.core.journal import Journal
from engine.core.lots import Change
from engine.format.program import Program, Version
from engine.model.state import Effect, Entry, MemberState, Timer

# Order of happenings due at the same instant: expiries first (a lot whose last day was yesterday
# is gone before anything else looks at the balance, so a revision never converts it), then a
# version switch (the new rules then apply), restores, bonuses, a ladder's monthly evaluation.
_RANK = {"expiry": 0, "version": 1, "timer": 2, "birthday": 3, "month": 4}


def _next(program: Program, state: MemberState) -> Optional[tuple[datetime, int, str, object]]:
    """The earliest happening due for the member (ties: the lower rank). Each source answers from
    running values kept in the state, so the cost does not grow with the member's history."""
    best: Optional[tuple[datetime, int, str, object]] = None
    # Sources are asked in rank order, so a later one wins only by coming strictly earlier.
    exp = expiry.next_expiry(state, program.tz)
    if exp is not None:
        best = (exp[0], _RANK["expiry"], "expiry", exp[1])
    if state.clock is not None:
        # the first version later than the member's: due when its effective date comes
        switch = program.version_after(state.version)
        if switch is not None and (best is None or switch.starts_at < best[0]):
            best = (switch.starts_at, _RANK["version"], "version", switch)
    if state.timers:
        timer = min(state.timers, key=lambda t: (t.at, t.source, t.order or ""))
        if best is None or timer.at < best[0]:
            best = (timer.at, _RANK["timer"], "timer", timer)
    if program.has_birthday_bonus:
        birthday = bonuses.next_birthday(state, program)
        if birthday is not None and (best is None or birthday < best[0]):
            best = (birthday, _RANK["birthday"], "birthday", None)
    if state.ladder is not None:
        month = ladder.next_month(state, program)   # 00:00 on the 1st, only while on a version's ladder
        if month is not None and (best is None or month < best[0]):
            best = (month, _RANK["month"], "month", None)
    return best


def _remembered(program: Program, state: MemberState) -> bool:
    """Whether the state's remembered next happening (due_at) was found under this program file."""
    return bool(state.due_for) and state.due_for == program.digest


def next_due(program: Program, state: MemberState) -> Optional[datetime]:
    """When the member's next happening falls due (None: nothing is scheduled)."""
    if _remembered(program, state):
        return state.due_at
    nxt = _next(program, state)
    return nxt[0] if nxt is not None else None


def advance(program: Program, state: MemberState, to: datetime, entries: list[Entry], effects: list[Effect],
            before_event: bool = False, journal: Optional[Journal] = None) -> MemberState:
    """Fire every happening due up to ``to`` (inclusive) on ``state``, changed in place: the
    changes go into ``journal`` (an event's, engine/core/apply.py), or the caller passes a copy
    of its own (a view). Ledger entries and effects are appended to the given lists.

    ``before_event``: the core is on its way to an event at ``to``. A ladder's month evaluation due
    exactly then waits until after the events stamped that instant (it fires on the way to the next
    event or report): a pause or resumption at 00:00 on the 1st is the state the month begins in."""
    if journal is None:
        journal = Journal(state)
    while True:
        if _remembered(program, state) and (state.due_at is None or state.due_at > to):
            break       # known: nothing falls due by then
        nxt = _next(program, state)
        if nxt is None or nxt[0] > to or (before_event and nxt[2] == "month" and nxt[0] == to):
            # what is known now holds until the state changes (the core forgets it then)
            state.due_at, state.due_for = (nxt[0] if nxt is not None else None), program.digest
            break
        state.due_for = ""
        at, _, kind, what = nxt
        when = max(at, state.clock) if state.clock else at
        local = at.astimezone(program.tz).date().isoformat()
        change = Change(program, state, f"{kind}@{local}", when, journal)
        if kind == "version" and isinstance(what, Version):
            state.version = what.number
            if state.registered:
                migration.run(change, what)
        elif kind == "expiry" and isinstance(what, date):
            expiry.expire(change, what)
        elif kind == "timer" and isinstance(what, Timer):
            journal.remove(state.timers, what)
            change.source = f"restore@{local}:{what.source}"
            if what.order is not None:     # a restore's timer always names its order
                returns.do_restore(change, what.order, what.amount, what.rule)
        elif kind == "birthday":
            bonuses.birthday(change)
        elif kind == "month":
            ladder.on_month(change)
        bonuses.settle_debt(change)     # as after an event: nothing valid while owing
        state.clock = when
        entries.extend(change.entries)
        effects.extend(change.effects)
    return state
