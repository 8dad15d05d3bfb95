"""Lot bookkeeping inside one change: create lots, move amounts between states, split where needed.

Every movement writes a ledger Entry and keeps the member's running totals (state.OpenBalance);
every lot change of the core goes through here. Amounts only move (a split keeps the total), so
granted = valid + pending + held + used + expired + void holds by construction.

Open lots (pending, valid, held) and closed ones (used, expired, void, converted) live in two
lists: everything the engine looks at per event (balance, next expiry, what to spend) scans only
the open ones, so a member's long history is not read again. Both lists are changed in place,
each change written to the event's undo journal (engine/core/journal.py).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable, Iterable, Optional

import msgspec

from engine.core.earning import RowChoices
from engine.core.journal import Journal
from engine.format.program import Program, Version
from engine.model.state import OPEN, Effect, Entry, Lot, MemberState

FAR = date.max
ENDED = ("used", "expired", "void")

LotTest = Callable[[Lot], bool]
SpendKey = Callable[[Lot], Any]


def _every(lot: Lot) -> bool:
    return True


class Change:
    """A change being made to one member's state by one event or happening."""

    def __init__(self, program: Program, state: MemberState, source: str, at: datetime, journal: Journal,
                 choices: Optional[RowChoices] = None):
        self.program = program
        self.state = state
        self.source = source
        self.at = at
        self.journal = journal
        self.choices = choices   # the caller's remembered rate-row choices (None: every row afresh)
        self.version: Version = program.version_at(at)   # the version in force at the change
        self.entries: list[Entry] = []
        self.effects: list[Effect] = []
        self._n = 0
        self._soonest_left = False

    def _list_for(self, lot_state: str) -> list[Lot]:
        return self.state.lots if lot_state in OPEN else self.state.closed

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
        self.journal.append(self._list_for(state), lot)
        self.state.open_balance = self.state.open_balance.plus(lot, amount)
        self.entry(action, lot, amount, None, state, rule)
        return lot

    def spend_order(self, lot: Lot) -> tuple[date, datetime, str]:
        """Which lot goes first: the one that expires first, then the oldest (X-6)."""
        return (self.state.lot_expires_on(lot) or FAR, lot.granted_at, lot.id)

    def _ending(self, to_state: str, from_state: str, lot: Lot, changes: dict[str, Any]) -> dict[str, Any]:
        """The fields a lot moving to ``to_state`` takes on besides its state."""
        out = dict(changes)
        if to_state in ENDED:
            out.update(ended_at=self.at, ended_by=self.source)
            if lot.rolling and from_state == "valid":
                # a rolling lot that leaves the balance keeps the date it had then
                out.update(expires_on=self.state.rolling_expires_on)
        if to_state == "valid":
            out.update(valid_at=self.at)
        return out

    def move(self, amount: int, from_state: str, to_state: str, action: str, rule: str, *,
             where: LotTest = _every, order_key: Optional[SpendKey] = None,
             changes: Optional[dict[str, Any]] = None) -> list[Lot]:
        """Move up to ``amount`` from lots in ``from_state`` (chosen by ``where``, in ``order_key``
        order) to ``to_state``, splitting the last lot if needed. Returns the moved lots."""
        if amount <= 0:
            return []
        source = self._list_for(from_state)
        target = self._list_for(to_state)
        candidates = [(i, lot) for i, lot in enumerate(source) if lot.state == from_state and where(lot)]
        key = order_key or self.spend_order
        candidates.sort(key=lambda il: key(il[1]))
        moved = []
        leaving: list[int] = []
        for i, lot in candidates:
            if amount <= 0:
                break
            take = min(amount, lot.amount)
            fields = self._ending(to_state, from_state, lot, changes or {})
            if take == lot.amount:
                new = msgspec.structs.replace(lot, state=to_state, **fields)
                if target is source:
                    self.journal.put(source, i, new)
                else:
                    leaving.append(i)
                    self.journal.append(target, new)
            else:
                # split: the lot keeps its id and the rest; the moved part is a new lot
                self.journal.put(source, i, msgspec.structs.replace(lot, amount=lot.amount - take))
                new = msgspec.structs.replace(lot, id=self.new_id(), amount=take, state=to_state, seq=self._seq(),
                                              **fields)
                self.journal.append(target, new)
            self._less(lot, take)
            self.state.open_balance = self.state.open_balance.plus(new, take)
            self.entry(action, new, take, from_state, to_state, rule)
            moved.append(new)
            amount -= take
        for i in sorted(leaving, reverse=True):
            self.journal.remove_at(source, i)
        self._found_soonest()
        return moved

    def end_each(self, where: LotTest, to_state: str, action: str, rule_of: Callable[[Lot], str],
                 changes_of: Callable[[Lot], dict[str, Any]] = lambda lot: {},
                 then: Optional[Callable[[Lot], None]] = None) -> list[Lot]:
        """Every open lot ``where`` picks leaves the open lots whole for ``to_state`` (an expiry,
        a conversion), in the order the lots stand; ``then`` runs after each (a conversion's new
        units). Returns the ended lots."""
        ended: list[Lot] = []
        lots = self.state.lots
        picked = [i for i, lot in enumerate(lots) if where(lot)]
        for gone, i in enumerate(picked):
            at = i - gone                     # the lots before it that left already
            lot = lots[at]
            new = msgspec.structs.replace(lot, state=to_state, **self._ending(to_state, lot.state, lot, changes_of(lot)))
            self.journal.remove_at(lots, at)
            self.journal.append(self._list_for(to_state), new)
            self._less(lot, lot.amount)
            self.entry(action, new, lot.amount, lot.state, to_state, rule_of(lot))
            ended.append(new)
            if then is not None:
                then(lot)
        self._found_soonest()
        return ended

    def redate(self, where: LotTest, action: str, rule: str, expires_on: date) -> None:
        """Open lots ``where`` picks get a new last valid day of their own (no longer rolling),
        each with a ledger entry that moves no units."""
        lots = self.state.lots
        for i, lot in enumerate(lots):
            if not where(lot):
                continue
            new = msgspec.structs.replace(lot, expires_on=expires_on, rolling=False)
            self.journal.put(lots, i, new)
            self._less(lot, lot.amount)
            self.state.open_balance = self.state.open_balance.plus(new, lot.amount)
            self.entry(action, new, lot.amount, lot.state, lot.state, rule)
        self._found_soonest()

    def _less(self, lot: Lot, amount: int) -> None:
        """``amount`` of ``lot`` leaves its state in the running totals."""
        bal = self.state.open_balance
        if bal.holds_soonest(lot, amount):
            self._soonest_left = True
        self.state.open_balance = bal.minus(lot, amount)

    def _found_soonest(self) -> None:
        """The running totals' earliest expiry, looked for again among the open lots when the lot
        that held it left: the totals are exact when a change returns."""
        if self._soonest_left:
            self._soonest_left = False
            self.state.open_balance = self.state.open_balance.with_soonest(self.state.lots)

    def total(self, state: str, where: LotTest = _every) -> int:
        if state in OPEN:
            # the running totals are exact: the whole of a state is read from them, and a state
            # that holds nothing needs no look at the lots
            bal = self.state.open_balance
            running = bal.valid if state == "valid" else bal.pending if state == "pending" else bal.held
            if where is _every or not running:
                return running
        lots = self._list_for(state)
        return sum(lot.amount for lot in lots if lot.state == state and where(lot))


def of_order(order_id: str) -> LotTest:
    return lambda lot: lot.order == order_id and lot.kind == "earn"


def ids_in(ids: Iterable[str]) -> LotTest:
    wanted = set(ids)
    return lambda lot: lot.id in wanted
