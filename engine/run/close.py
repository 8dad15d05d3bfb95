"""Close the ledger through a moment (issue 22): every member's happenings due by then (expiries,
birth-month bonuses, delayed restores, version switches, a ladder's month) booked into the ledger
with no event needed, member by member.

* The same happenings, at the same times, as the member's next event would fire on its way
  (``clock.advance`` with ``before_event``: a ladder's month evaluation due exactly at the close's
  moment waits for the events stamped that instant, as it does on the way to an event). So events
  before and after a close give the same ledger as without it.
* Idempotent: a member whose happenings are booked up to the moment has nothing due, and a close
  to a moment the ledger is already closed through records nothing.
* Resumable: each member is booked in its own transaction (under its lock on a shared store) and
  committed; the close is recorded only when every member is done. A close killed midway leaves
  whole members booked or not, and a rerun books the rest.
* The store remembers each finished close: its moment, the time it was booked, and what it found
  outstanding by expiry month then (the liability report reads it for a closed month,
  engine/run/liability.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Optional

import msgspec

from engine.core.clock import advance, next_due
from engine.format.program import Program
from engine.model.state import MemberState
from engine.model.timeutil import parse_instant, start_of
from engine.run.report import PastViewUnavailable, as_of, state_at
from engine.store.base import wall_clock


@dataclass
class CloseResult:
    through: datetime
    booked_at: datetime
    members: int = 0            # members looked at
    booked: list[str] = field(default_factory=list)   # members something was booked for
    entries: int = 0
    effects: list = field(default_factory=list)
    recorded: bool = False      # the close was recorded (False: the ledger was closed through it already)
    previous: Optional[datetime] = None   # the moment of the last close before this one

    def answer(self, program: Program) -> dict:
        tz = program.tz
        return {
            "program": program.id,
            "through": self.through.astimezone(tz).isoformat(),
            "booked_at": self.booked_at.isoformat(),
            "members": self.members,
            "members_booked": len(self.booked),
            "entries": self.entries,
            "effects": len(self.effects),
            "recorded": self.recorded,
            "previous_close": self.previous.astimezone(tz).isoformat() if self.previous is not None else None,
        }


def close_time(text: str, program: Program) -> datetime:
    """The moment a close (or a report's end) names: a bare date is the end of that day in the
    program's zone (its last microsecond: every happening before the next day's 00:00); a time
    with an offset is itself. Raises ValueError."""
    at = parse_instant(text, program.tz)
    if len(text) == 10:
        at = start_of(at.date() + timedelta(days=1), program.tz) - timedelta(microseconds=1)
    return at


def step(program: Program, state: MemberState, through: datetime) -> Optional[tuple[MemberState, list, list]]:
    """Pure: the member with every happening due up to ``through`` fired, as the core would fire
    them on its way to an event at ``through``; with their entries and effects. None: nothing is
    due (the state stays as it is)."""
    if state.clock is not None and state.clock >= through:
        return None
    due = next_due(program, state)
    if due is None or due > through:
        return None
    new = state.copy()
    entries: list = []
    effects: list = []
    advance(program, new, through, entries, effects, before_event=True)
    if not entries and not effects and _same(new, state):
        return None
    return new, entries, effects


_encode = msgspec.json.Encoder().encode


def _same(new: MemberState, old: MemberState) -> bool:
    """Whether only the remembered next happening differs (nothing fired that changed the member)."""
    a = msgspec.structs.replace(new, due_at=None, due_for="")
    b = msgspec.structs.replace(old, due_at=None, due_for="")
    return _encode(a) == _encode(b)


def last_close(store) -> Optional[dict]:
    rows = store.closes()
    return max(rows, key=lambda row: row["through"]) if rows else None


def _locked(store, member: str) -> Optional[MemberState]:
    """The member's state under its lock: a shared store's row lock, SQLite's write lock."""
    if getattr(store, "shared", False):
        return store.lock(member)
    begin = getattr(store, "begin", None)
    if begin is not None:
        begin()
    return store.load(member)


def close(program: Program, store, through: datetime, booked_at: Optional[datetime] = None,
          members: Optional[Iterable[str]] = None, progress: Optional[Callable[[int], None]] = None) -> CloseResult:
    """Book every member's happenings due up to ``through`` (``members``: only these, a shard's;
    the close is then not recorded), one member a transaction; record the close. ``booked_at``:
    the time stamped on what it books (default: the store's clock, now)."""
    booked_at = booked_at or getattr(store, "booked_clock", wall_clock)()
    previous = last_close(store)
    result = CloseResult(through, booked_at, previous=previous["through"] if previous else None)
    by_expiry: dict[str, dict] = {}
    incomplete: list[str] = []
    names = list(store.members()) if members is None else list(members)
    for n, member in enumerate(names, 1):
        state = store.load(member)
        if state is None:
            continue
        result.members += 1
        if step(program, state, through) is not None:
            try:
                state = _locked(store, member)   # again, under the lock: another process may have written
                out = step(program, state, through) if state is not None else None
                if out is not None:
                    state, entries, effects = out
                    store.book(state, entries, effects, booked_at)
                    result.booked.append(member)
                    result.entries += len(entries)
                    result.effects.extend(effects)
                store.commit()
            except BaseException:
                store.rollback()
                raise
        if state is not None and state.registered:
            _outstanding(program, store, state, through, by_expiry, incomplete)
        if progress is not None:
            progress(n)
    if members is None and (previous is None or through > previous["through"]):
        snapshot = {"by_expiry": dict(sorted(by_expiry.items())), "members_not_seen": incomplete}
        store.record_close(through, booked_at, snapshot)
        store.commit()
        result.recorded = True
    return result


def _outstanding(program: Program, store, state: MemberState, through: datetime, by_expiry: dict,
                 incomplete: list) -> None:
    """Add the member's open units at ``through`` to ``by_expiry`` ("YYYY-MM" of the last valid
    day, "none": no end): units and yen at the value of the lot's version."""
    try:
        past, _ = state_at(program, store, state, through)
    except PastViewUnavailable:
        incomplete.append(state.member)
        return
    if past is None:
        return
    view, _, _ = as_of(program, past, through)
    for lot in view.lots:
        last = view.lot_expires_on(lot)
        key = last.isoformat()[:7] if last is not None else "none"
        row = by_expiry.setdefault(key, {"units": 0, "yen": 0})
        row["units"] += lot.amount
        row["yen"] += lot.amount * program.unit_value_yen(lot.version)
