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
"""
from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

import msgspec

from engine.model.state import MemberState

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class _Missing:
    """A key that was not in a dict before the change."""


_MISSING = _Missing()


class Journal:
    """How to undo what one event did to one member's state, newest change last."""

    __slots__ = ("state", "_fields", "_undo")

    def __init__(self, state: MemberState):
        self.state = state
        self._fields: tuple[Any, ...] = msgspec.structs.astuple(state)   # each field's value (shallow)
        self._undo: list[Callable[[], None]] = []

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

    def put(self, items: list[T], i: int, item: T) -> None:
        """``items[i] = item``."""
        old = items[i]
        items[i] = item
        self._undo.append(lambda: items.__setitem__(i, old))

    def remove_at(self, items: list[T], i: int) -> None:
        """``del items[i]`` (callers removing several remove from the highest index down)."""
        old = items.pop(i)
        self._undo.append(lambda: items.insert(i, old))

    def remove(self, items: list[T], item: T) -> None:
        self.remove_at(items, items.index(item))

    # --- dicts ------------------------------------------------------------------------------

    def set(self, mapping: dict[K, V], key: K, value: V) -> None:
        """``mapping[key] = value``: a new key is put back out, a known one gets its value back
        (in place: the dict keeps its order)."""
        old: Any = mapping.get(key, _MISSING)
        mapping[key] = value
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
        for name, value in zip(self.state.__struct_fields__, self._fields):
            setattr(self.state, name, value)
