"""The undo journal of one event: the core changes a member's state in place and writes here how
to take each change back, as a database keeps an undo log for a transaction.

A refused event (or any failure before the event is done) plays the journal backwards, so the
caller's state is exactly as it was, down to the order of its lists and dicts (a stored state
encodes the same bytes again). An applied event costs what it touches: nothing is copied up
front, however long the member's history is.

What the journal restores:

- every field of the member's state, as it was when the journal began (a field the core sets
  anew, scalar or container, comes back by this alone);
- every change made in place to a list or dict the state holds (lots, closed lots, orders, the
  tier sums, timers, subscriptions ...), through the methods below.

The journal also tells what an applied event changed in the member's three long sequences (its
orders, open lots and closed lots: ``touched``), so that a store writes those changes rather than
the member's history (engine/store/rows.py).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

import msgspec

from engine.model.state import MemberState

# the state's sequences that grow with the member's history, whose in-place changes ``touched`` tells
SEQUENCES = ("orders", "lots", "closed")
# what an event did to each sequence it changed: its changes made in place, in order ((op, index or
# key), op one of append, put, remove for a list; set, pop for a dict), or None where the event put
# a new list or dict in the sequence's place. A sequence left alone is not named.
Touched = dict[str, Optional[list[tuple[str, Any]]]]
_SEQUENCE_FIELDS = tuple((name, MemberState.__struct_fields__.index(name)) for name in SEQUENCES)

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class _Missing:
    """A key that was not in a dict before the change."""


_MISSING = _Missing()


class Journal:
    """How to undo what one event did to one member's state, newest change last."""

    __slots__ = ("state", "_fields", "_undo", "_log", "_lots", "_closed", "_orders")

    def __init__(self, state: MemberState):
        self.state = state
        self._fields: tuple[Any, ...] = msgspec.structs.astuple(state)   # each field's value (shallow)
        self._undo: list[Callable[[], None]] = []
        # (sequence, op, index or key) of each change made in place to one of the state's long
        # sequences as the journal began (the only changes ``touched`` tells)
        self._log: list[tuple[str, str, Any]] = []
        self._lots, self._closed, self._orders = state.lots, state.closed, state.orders

    def own_ladder(self) -> None:
        """The ladder's place is changed field by field (engine/core/ladder.py): the state gets a
        copy of its own, the journal keeps the one it had. It holds the current level's orders
        and gifts and the member's level changes: what a ladder member is, not its orders or lots."""
        if self.state.ladder is not None:
            self.state.ladder = self.state.ladder.copy()

    # --- lists ------------------------------------------------------------------------------

    def append(self, items: list[T], item: T) -> None:
        n = len(items)
        items.append(item)
        self._undo.append(lambda: items.__delitem__(slice(n, None)))
        self._note_list(items, "append", n)

    def put(self, items: list[T], i: int, item: T) -> None:
        """``items[i] = item``."""
        old = items[i]
        items[i] = item
        self._undo.append(lambda: items.__setitem__(i, old))
        self._note_list(items, "put", i)

    def remove_at(self, items: list[T], i: int) -> None:
        """``del items[i]`` (callers removing several remove from the highest index down)."""
        old = items.pop(i)
        self._undo.append(lambda: items.insert(i, old))
        self._note_list(items, "remove", i)

    def remove(self, items: list[T], item: T) -> None:
        self.remove_at(items, items.index(item))

    def _note_list(self, items: list[Any], op: str, where: int) -> None:
        if items is self._lots:
            self._log.append(("lots", op, where))
        elif items is self._closed:
            self._log.append(("closed", op, where))

    # --- dicts ------------------------------------------------------------------------------

    def set(self, mapping: dict[K, V], key: K, value: V) -> None:
        """``mapping[key] = value``: a new key is put back out, a known one gets its value back
        (in place: the dict keeps its order)."""
        old: Any = mapping.get(key, _MISSING)
        mapping[key] = value
        if mapping is self._orders:
            self._log.append(("orders", "set", key))
        if old is _MISSING:
            self._undo.append(lambda: mapping.__delitem__(key))
        else:
            self._undo.append(lambda: mapping.__setitem__(key, old))

    def pop(self, mapping: dict[K, V], key: K) -> Optional[V]:
        """Remove ``key`` (if there); undone at its former place in the dict's order."""
        if key not in mapping:
            return None
        at = list(mapping).index(key)
        old = mapping.pop(key)
        if mapping is self._orders:
            self._log.append(("orders", "pop", key))

        def back() -> None:
            items = list(mapping.items())
            items.insert(at, (key, old))
            mapping.clear()
            mapping.update(items)

        self._undo.append(back)
        return old

    # --- the whole ------------------------------------------------------------------------

    def rollback(self) -> None:
        """Take back every change, newest first, then every field of the state."""
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self._log.clear()
        for name, value in zip(self.state.__struct_fields__, self._fields):
            setattr(self.state, name, value)

    def touched(self) -> Touched:
        """What the changes so far did to the state's long sequences (``Touched``)."""
        state, fields = self.state, self._fields
        out: Touched = {}
        for name, at in _SEQUENCE_FIELDS:
            if getattr(state, name) is not fields[at]:
                out[name] = None        # a new list or dict in its place: its changes are not followed
        for name, op, where in self._log:
            if name in out:
                changes = out[name]
                if changes is None:
                    continue
            else:
                changes = out[name] = []
            changes.append((op, where))
        return out
