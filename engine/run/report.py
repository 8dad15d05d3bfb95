"""Views of a member as of a moment: balances by state, tier, lots (the run --json member object)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from typing import Optional

import msgspec
from msgspec import UNSET

from engine.core.clock import advance, next_due
from engine.core.apply import apply, event_time
from engine.model.errors import EventRejected
from engine.model.events import BadEvent, decode_event
from engine.core.ladder import ladder_view
from engine.model.answers import LotView, Member, MemberView, ProgramRef, RunReport, as_builtins
from engine.format.program import Program
from engine.model.state import Effect, Entry, Lot, MemberState
from engine.core.tiers import tier_at
from engine.model.timeutil import parse_instant, start_of


def as_of(program: Program, state: MemberState, at: datetime) -> tuple[MemberState, list, list]:
    """The member as it will be at ``at``: happenings fired on a copy, nothing stored. When nothing
    falls due by then, the view is ``state`` itself (no copy: a quote's cost does not grow with
    the member's history); callers read the view and never change it."""
    if state.clock is not None and at <= state.clock:
        return state, [], []
    due = next_due(program, state)
    if due is None or due > at:
        return state, [], []
    view = state.copy()
    entries: list = []
    effects: list = []
    advance(program, view, at, entries, effects)
    return view, entries, effects


class Views:
    """Members' views as of a moment, kept between quotes by the shell (``Engine``), never stored.

    A view made at ``made_at`` (happenings fired up to then) holds for every later moment before
    its own next happening: a checkout that quotes the same member again and again between two
    events then pays for copying and advancing the member once. A view is used only for the very
    state object it was made from and until an event changes that state (``forget``: the runner
    tells the shell) or a reload replaces it."""

    __slots__ = ("program", "_views")
    LIMIT = 10_000   # members whose views are kept before starting afresh: a bound on memory

    def __init__(self, program: Program):
        self.program = program
        self._views: dict[str, tuple] = {}   # member -> (state, made_at, next happening, view)

    def as_of(self, state: MemberState, at: datetime) -> MemberState:
        hit = self._views.get(state.member)
        if hit is not None and hit[0] is state and hit[1] <= at and (hit[2] is None or at < hit[2]):
            return hit[3]
        view, _, _ = as_of(self.program, state, at)
        if view is not state:   # only a copy is worth keeping: the state itself costs nothing
            if len(self._views) >= self.LIMIT:
                self._views.clear()
            self._views[state.member] = (state, at, next_due(self.program, view), view)
        return view

    def forget(self, member: str) -> None:
        """The member's state changed (an event applied to it in place): its view is made again."""
        self._views.pop(member, None)


def lot_view(program: Program, state: MemberState, lot: Lot) -> LotView:
    last = state.lot_expires_on(lot)
    return LotView(   # id, amount, state, granted_at, expires_at, expires_on, rule, version, source, order, kind, ended_by
        lot.id, lot.amount, lot.state, lot.granted_at.astimezone(program.tz).isoformat(),
        start_of(last + timedelta(days=1), program.tz).isoformat() if last else None,
        last.isoformat() if last else None,
        lot.rule, lot.version, lot.source, lot.order, lot.kind, lot.ended_by)


def member_view(program: Program, state: MemberState, at: datetime, effects: list | None = None,
                **named: str) -> MemberView:
    """The member as of ``at``: the one member answer (engine/model/answers.py). ``named`` (``member``
    and ``as_of``) makes it the service's ``Member``."""
    view, _, due = as_of(program, state, at)
    if effects is not None:
        effects.extend(due)   # effects of the happenings between the member's last event and ``at``
    version = program.version_at(at)
    tier, amount = tier_at(version.tiers, view, at, program.tz) if view.registered else (None, 0)
    ladder = ladder_view(program, version.ladder, view) if version.ladder is not None else UNSET
    if ladder is not UNSET:
        tier = ladder.level   # a ladder's level is the member's stage
    points = view.balances()
    if view.debt:
        points["owed"] = view.debt
    return (Member if named else MemberView)(
        points=points, tier=tier, tier_amount=amount if version.tiers else None, version=version.number,
        lots=[lot_view(program, view, lot) for lot in view.all_lots()], ladder=ladder, **named)


def member_dict(program: Program, state: MemberState, at: datetime, effects: list | None = None) -> dict:
    """The member object of ``run --json`` as dicts (``member_view`` encoded)."""
    return as_builtins(member_view(program, state, at, effects))


class PastViewUnavailable(Exception):
    """A view of a member before its clock that the ledger cannot rebuild (the message says why)."""


def state_at(program: Program, store, state: Optional[MemberState], at: datetime
             ) -> tuple[Optional[MemberState], Optional[int]]:
    """The member as the ledger had it at ``at``, and how many of its stored effects its events
    had made by then (None: all of them). None for the state: no event of the member by then.

    At or after the member's clock nothing has happened to it since: the stored state. Before, the
    store keeps only the latest state: the member is rebuilt (``rebuilt_at``). Either way the
    happenings due between its last event and ``at`` are left to ``as_of`` (member_dict)."""
    past = rebuilt_at(program, store, state, at)
    if past is None:
        return state, None
    return past.state, len(past.effects)


@dataclass
class Rebuilt:
    """A member as its events up to a past moment left it (``rebuilt_at``): its state (None: not
    registered by then), and the ledger entries and effects those events made."""
    state: Optional[MemberState]
    entries: list[Entry] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


def rebuilt_at(program: Program, store, state: Optional[MemberState], at: datetime) -> Optional[Rebuilt]:
    """The member before its clock: its applied events with ``at`` <= ``at`` (their bodies, in the
    order they were applied) replayed from a fresh state through the pure core, with the ledger
    entries and effects they made (``state`` None: none by then). Only this member is read, and the
    view is what the events up to then gave, by construction. None when ``at`` is not before the
    member's clock (the stored state is the view)."""
    if state is None or state.clock is None or at >= state.clock:
        return None
    member = state.member
    bodies = store.event_bodies(member)
    if any(body is None for body in bodies):
        raise PastViewUnavailable(
            f"member {member}: this ledger was written by an engine that did not keep the events' bodies, "
            f"so it cannot show the member as of {at.astimezone(program.tz).isoformat()}, before its last "
            f"event ({state.clock.astimezone(program.tz).isoformat()}); replay the events into a new ledger "
            f"for past views, or ask for a time at or after the member's last event")
    past = Rebuilt(None)
    for body in bodies:
        try:
            event = decode_event(body)
        except BadEvent as bad:
            raise PastViewUnavailable(f"member {member}: an applied event's body in the ledger cannot be read "
                                      f"(event {bad.event_id or '?'}: {bad.reason})") from None
        try:
            if event_time(program, event) > at:
                break   # a member's applied events come in time order: the rest are later still
            outcome = apply(program, past.state, event)
        except EventRejected as rej:
            raise PastViewUnavailable(
                f"member {member}: event {event.id}, applied to this ledger, is refused when replayed under "
                f"this program file ({rej.reason}): the program has changed since the ledger was written, "
                "so the past cannot be rebuilt with it") from None
        past.state = outcome.state
        past.entries += outcome.entries
        past.effects += outcome.effects
    return past


def member_at(program: Program, store, member: str, at: datetime, effects: list | None = None) -> Optional[dict]:
    """The member object at ``at`` (None: not registered by then): ``member_dict`` of the member as
    the ledger had it (``state_at``). ``effects`` gets those of the happenings between its last
    event up to ``at`` and ``at``."""
    state, _ = state_at(program, store, store.load(member), at)
    if state is None or not state.registered:
        return None
    return member_dict(program, state, at, effects)


def effects_at(rows: list[dict], made: dict[str, int]) -> list[dict]:
    """The stored effect rows the ledger had at a past moment: for each member ``made`` names (one
    seen before its clock, ``state_at``), the first ``made[member]`` of its rows (a member's rows are
    in the order its events made them); every row of the others."""
    if not made:
        return rows
    taken = dict.fromkeys(made, 0)
    out = []
    for row in rows:
        member = row["member"]
        if member in made:
            if taken[member] >= made[member]:
                continue
            taken[member] += 1
        out.append(row)
    return out


def run_report(program: Program, store, at: datetime, result, effects: Optional[list[dict]] = None,
               asked: bool = True) -> RunReport:
    """The ``run --json`` report of the ledger as of ``at`` after a run (``result``, a RunResult):
    every member registered by then as it stood then (a member whose clock is past ``at`` rebuilt
    from its events up to then, ``state_at``; one with no event by then absent), the effects the
    events up to then made and the happenings due by then, the run's refusals of events up to then
    (and of lines without a readable time; ``asked`` False: ``at`` is the default, the last applied
    event's time, and every refusal of the run is listed, a refused event dated later too).
    ``effects``: the store's effect rows in the order of the lines (default: as the store lists
    them). Raises PastViewUnavailable."""
    members = {}
    due: list = []   # effects of happenings between each member's last event and ``at`` (not stored)
    made: dict[str, int] = {}   # members seen before their clock: how many of their stored effects count
    for member in store.members():
        state, count = state_at(program, store, store.load(member), at)
        if count is not None:
            made[member] = count
        if state is not None and state.registered:
            members[member] = member_view(program, state, at, due)
    rows = store.effects() if effects is None else effects
    return RunReport(
        as_of=at.astimezone(program.tz).isoformat(),
        program=ProgramRef(id=program.id, version=program.version_at(at).number),
        members=members,
        effects=effects_at(rows, made) + [msgspec.to_builtins(e) for e in due],
        rejected=[r for r in result.rejected if not (asked and _after(program, r.at or None, at))],
        applied=len(result.applied),
        skipped=len(result.skipped),
    )


def ledger_report(program: Program, store, at: datetime, result, effects: Optional[list[dict]] = None,
                  asked: bool = True) -> dict:
    """The ``run --json`` report (``run_report``) as dicts, as the command line prints it."""
    return as_builtins(run_report(program, store, at, result, effects, asked))


def _after(program: Program, text: Optional[str], at: datetime) -> bool:
    """Whether a refused event's time is after ``at`` (one without a readable time is not)."""
    if not text:
        return False
    try:
        return parse_instant(text, program.tz) > at
    except ValueError:
        return False
