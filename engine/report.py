"""Views of a member as of a moment: balances by state, tier, lots (the run --json member object)."""
from __future__ import annotations

from datetime import datetime, timedelta

from .clock import advance, next_due
from .ladder import ladder_dict
from .program import Program
from .state import Lot, MemberState
from .tiers import tier_at
from .timeutil import start_of


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
    state object it was made from, so an applied event (a new state) or a reload retires it."""

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


def lot_dict(program: Program, state: MemberState, lot: Lot) -> dict:
    last = state.lot_expires_on(lot)
    return {
        "id": lot.id, "amount": lot.amount, "state": lot.state,
        "granted_at": lot.granted_at.astimezone(program.tz).isoformat(),
        "expires_at": start_of(last + timedelta(days=1), program.tz).isoformat() if last else None,
        "expires_on": last.isoformat() if last else None,
        "rule": lot.rule, "version": lot.version, "source": lot.source, "order": lot.order, "kind": lot.kind,
        "ended_by": lot.ended_by,
    }


def member_dict(program: Program, state: MemberState, at: datetime, effects: list | None = None) -> dict:
    view, _, due = as_of(program, state, at)
    if effects is not None:
        effects.extend(due)   # effects of the happenings between the member's last event and ``at``
    version = program.version_at(at)
    tier, amount = tier_at(version.tiers, view, at, program.tz) if view.registered else (None, 0)
    ladder = ladder_dict(program, version.ladder, view) if version.ladder is not None else None
    if ladder is not None:
        tier = ladder["level"]   # a ladder's level is the member's stage
    points = view.balances()
    if view.debt:
        points["owed"] = view.debt
    out = {
        "points": points,
        "tier": tier,
        "tier_amount": amount if version.tiers else None,
        "version": version.number,
        "lots": [lot_dict(program, view, lot) for lot in view.all_lots()],
    }
    if ladder is not None:
        out["ladder"] = ladder
    return out
