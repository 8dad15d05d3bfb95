"""Lot bookkeeping inside one change: create lots, move amounts between states, split where needed.

Every movement writes a ledger Entry. Amounts only move (a split keeps the total), so
granted = valid + pending + held + used + expired + void holds by construction.

Open lots (pending, valid, held) and closed ones (used, expired, void, converted) live in two
lists: everything the engine looks at per event (balance, next expiry, what to spend) scans only
the open ones, so a member's long history does not slow a quote. The closed list is shared
between a state and its copy and copied only when a change closes or reopens a lot.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Callable, Iterable, Optional

import msgspec

from engine.format.program import Program
from engine.model.state import OPEN, Entry, Lot, MemberState

FAR = date.max


class Change:
    """A change being made to one member's state by one event or happening."""

    def __init__(self, program: Program, state: MemberState, source: str, at: datetime):
        self.program = program
        self.state = state
        self.source = source
        self.at = at
        self.version = program.version_at(at)   # the version in force at the change
        self.entries: list[Entry] = []
        self.effects: list = []
        self._n = 0
        self._closed_own = False

    def closed(self) -> list[Lot]:
        """The state's closed lots, copied first if this change has not yet (copy on write)."""
        if not self._closed_own:
            self.state.closed = list(self.state.closed)
            self._closed_own = True
        return self.state.closed

    def _list_for(self, lot_state: str) -> list[Lot]:
        return self.state.lots if lot_state in OPEN else self.closed()

    def _seq(self) -> int:
        self.state.lot_seq += 1
        return self.state.lot_seq

    def new_id(self) -> str:
        self._n += 1
        return f"{self.source}:{self._n}"

    def entry(self, action: str, lot: Lot, amount: int, from_state: Optional[str], to_state: str, rule: str) -> None:
        self.entries.append(Entry(member=self.state.member, at=self.at, source=self.source, action=action,
                                  lot=lot.id, amount=amount, from_state=from_state, to_state=to_state,
                                  rule=rule, version=self.version.number))

    def add_lot(self, amount: int, state: str, rule: str, kind: str, *, order: Optional[str] = None,
                expires_on: Optional[date] = None, rolling: bool = False, action: str = "earn") -> Optional[Lot]:
        if amount <= 0:
            return None
        cap = self.state.expiry_cap
        if cap is not None and (expires_on is None or expires_on > cap):
            expires_on, rolling = cap, False   # RC-9: a cancelled member's units end at the cap
        lot = Lot(id=self.new_id(), amount=amount, state=state, granted_at=self.at, expires_on=expires_on,
                  rolling=rolling, rule=rule, version=self.version.number, source=self.source, order=order,
                  kind=kind, valid_at=self.at if state == "valid" else None, seq=self._seq())
        self._list_for(state).append(lot)
        if self.state.open_balance is not None:
            self.state.open_balance = self.state.open_balance.plus(lot, amount)
        self.entry(action, lot, amount, None, state, rule)
        return lot

    def spend_order(self, lot: Lot) -> tuple:
        """Which lot goes first: the one that expires first, then the oldest (X-6)."""
        return (self.state.lot_expires_on(lot) or FAR, lot.granted_at, lot.id)

    def move(self, amount: int, from_state: str, to_state: str, action: str, rule: str, *,
             where: Callable[[Lot], bool] = lambda lot: True, order_key=None,
             changes: Optional[dict] = None) -> list[Lot]:
        """Move up to ``amount`` from lots in ``from_state`` (chosen by ``where``, in ``order_key``
        order) to ``to_state``, splitting the last lot if needed. Returns the moved lots."""
        if amount <= 0:
            return []
        source = self._list_for(from_state)
        target = self._list_for(to_state)
        candidates = [(i, lot) for i, lot in enumerate(source) if lot.state == from_state and where(lot)]
        candidates.sort(key=lambda il: (order_key or self.spend_order)(il[1]))
        moved = []
        ended = to_state in ("used", "expired", "void")
        extra = dict(changes or {})
        if ended:
            extra.update(ended_at=self.at, ended_by=self.source)
        if to_state == "valid":
            extra.update(valid_at=self.at)
        leaving: set[int] = set()
        for i, lot in candidates:
            if amount <= 0:
                break
            take = min(amount, lot.amount)
            changes_here = extra
            if ended and lot.rolling and from_state == "valid":
                # a rolling lot that leaves the balance keeps the date it had then
                changes_here = dict(extra, expires_on=self.state.rolling_expires_on)
            if take == lot.amount:
                new = msgspec.structs.replace(lot, state=to_state, **changes_here)
                if target is source:
                    source[i] = new
                else:
                    leaving.add(i)
                    target.append(new)
            else:
                # split: the lot keeps its id and the rest; the moved part is a new lot
                source[i] = msgspec.structs.replace(lot, amount=lot.amount - take)
                new = msgspec.structs.replace(lot, id=self.new_id(), amount=take, state=to_state, seq=self._seq(),
                                              **changes_here)
                target.append(new)
            bal = self.state.open_balance
            if bal is not None:
                self.state.open_balance = bal.minus(lot, take).plus(new, take)
            self.entry(action, new, take, from_state, to_state, rule)
            moved.append(new)
            amount -= take
        if leaving:
            source[:] = [lot for j, lot in enumerate(source) if j not in leaving]
        return moved

    def rewrote_lots(self) -> None:
        """Lots were rewritten outside add_lot/move (a conversion, a cut of expiry dates): the
        running totals are found again by one scan when next needed."""
        self.state.open_balance = None

    def total(self, state: str, where: Callable[[Lot], bool] = lambda lot: True) -> int:
        lots = self.state.lots if state in OPEN else self.state.closed
        return sum(lot.amount for lot in lots if lot.state == state and where(lot))


def of_order(order_id: str) -> Callable[[Lot], bool]:
    return lambda lot: lot.order == order_id and lot.kind == "earn"


def ids_in(ids: Iterable[str]) -> Callable[[Lot], bool]:
    wanted = set(ids)
    return lambda lot: lot.id in wanted
