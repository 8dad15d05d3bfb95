"""A member's state stored as a head and rows, so that writing a member costs what its events
changed, not its whole history.

A member's history grows with every order: its orders, its open lots (an order's pending points)
and its closed lots. Stored as one blob, each event would rewrite all of it (a member of 1,000
orders: a megabyte an event). Here the state is stored as

- a **head**: the state without those three sequences (a few hundred bytes, rewritten each time),
  encoded by the codec (engine/store/codec.py);
- **rows**, one a lot or an order: (part, position, body), where part is the sequence's index in
  ``PARTS`` and the positions ascend in the sequence's order (the dict of orders keeps its order).

The store remembers, per member, the rows as it last read or wrote them (``Written``: each
sequence's positions). Saving a state then writes only the rows that changed, found one of two ways:

- **from the events' journals** (``touched``, engine/core/journal.py): each event's changes made in
  place (an item appended, replaced or removed; an order set) are replayed on the positions, so
  the cost is what the events did, whatever the length of the history;
- **by identity**, where no journal tells (a close, a state a worker sent): lots and orders are
  frozen and replaced when they change (engine/model/state.py), so the sequences are compared
  with the items last written, object by object, which C does at once for a whole list.

A member the store has no memory of (first read by another process, after a failed transaction,
or never read), or whose change neither way can place, is written whole: its rows deleted and
written again. What the store remembers is never trusted beyond what it read or wrote itself;
the stores drop it whenever the ledger may have changed under them (another writer, a rollback).

A head stored before states had rows holds its sequences itself: it is read as it is, and the
next save writes it in rows.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Any, Iterable, Optional, cast
from zoneinfo import ZoneInfo

import msgspec

from engine.core.journal import SEQUENCES, Touched
from engine.model.state import Lot, MemberState, Order
from engine.store.codec import decode_state, encode_state

PARTS = SEQUENCES      # ("orders", "lots", "closed"): the part number of a row is its index here
_ORDERS = PARTS.index("orders")
STRIDE = 1024    # the gap between neighbouring rows' positions: an item put between two takes one in the gap
UNKNOWN: Touched = {name: None for name in PARTS}   # no journal: every sequence compared by identity
_encode = msgspec.json.Encoder().encode
_decode_order = msgspec.json.Decoder(Order).decode
_decode_lot = msgspec.json.Decoder(Lot).decode


class Sequence:
    """One of a member's sequences as the store holds it: the row position of each item, in the
    sequence's order; the order id at each position (orders); and, when known, the items last
    written themselves (kept, so their identities stay theirs), their identities and the position
    of each identity (``items`` None: the journal's path wrote last; identities are not known)."""

    __slots__ = ("positions", "keys", "next", "items", "ids", "index")

    def __init__(self, items: Optional[list[Any]], positions: list[int], next_position: int,
                 keys: Optional[dict[str, int]] = None):
        self.positions = positions
        self.keys = keys               # order id -> position (the orders' sequence only)
        self.next = next_position      # the position an item appended after the last one takes
        self.items = items
        self.ids: Optional[list[int]] = list(map(id, items)) if items is not None else None
        self.index: Optional[dict[int, int]] = dict(zip(self.ids, positions)) if self.ids is not None else None


class Written:
    """A member's rows as the store last read or wrote them: one Sequence a part."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Sequence]):
        self.parts = parts     # by part number (PARTS)


class RowChanges(msgspec.Struct, frozen=True):
    """What saving one member writes: its head, whether all its rows are deleted first (``whole``),
    the rows deleted ((part, position), ...) and the rows put ((part, position, body), ...). The
    deletes go before the puts (a position freed and taken again is written anew)."""

    head: bytes
    whole: bool
    deleted: list[tuple[int, int]]
    put: list[tuple[int, int, bytes]]


def _items(state: MemberState, part: int) -> list[Any]:
    live = getattr(state, PARTS[part])
    return list(live.values()) if part == _ORDERS else live


def _sequence(part: int, items: list[Any], positions: list[int], orders: dict[str, Any]) -> Sequence:
    """The rows of ``items`` at ``positions``, as written or read (the orders' ids from ``orders``)."""
    return Sequence(list(items), positions, (positions[-1] if positions else 0) + STRIDE,
                    dict(zip(orders, positions)) if part == _ORDERS else None)


def head_of(state: MemberState) -> bytes:
    """The state without its sequences, as stored."""
    return encode_state(msgspec.structs.replace(state, orders={}, lots=[], closed=[]))


def merged(before: Optional[Touched], touched: Optional[Touched]) -> Touched:
    """What a batch's events did to one member's sequences: ``before`` (None: nothing yet), then
    ``touched`` (None: not known, so every sequence is compared by identity)."""
    if touched is None:
        return UNKNOWN
    if before is None:
        return touched
    out = dict(before)
    for name, ops in touched.items():
        earlier = out.get(name, [])
        out[name] = None if ops is None or earlier is None else earlier + ops
    return out


def changes(state: MemberState, written: Optional[Written], touched: Optional[Touched] = None
            ) -> tuple[RowChanges, Written]:
    """The writes that turn the rows ``written`` (None: not known, written whole) into ``state``'s,
    given what the events since did (``touched``; None: not known), and the rows as they will then be."""
    head = head_of(state)
    if written is not None:
        touched = touched if touched is not None else UNKNOWN
        parts: list[Sequence] = []
        deleted: list[tuple[int, int]] = []
        put: list[tuple[int, int, bytes]] = []
        for part, name in enumerate(PARTS):
            seq = written.parts[part]
            held: Optional[Sequence] = seq
            if name in touched:
                ops = touched[name]
                if ops is not None:
                    held = _replayed(part, seq, ops, getattr(state, name), deleted, put)
                else:
                    held = _compared(part, seq, _items(state, part), deleted, put)
                    if held is not None and part == _ORDERS:
                        held.keys = dict(zip(state.orders, held.positions))
            if held is None:
                break
            parts.append(held)
        else:
            return RowChanges(head, False, deleted, put), Written(parts)
    whole = []
    rows: list[tuple[int, int, bytes]] = []
    for part in range(len(PARTS)):
        items = _items(state, part)
        positions = [STRIDE * (i + 1) for i in range(len(items))]
        rows.extend((part, p, _encode(item)) for p, item in zip(positions, items))
        whole.append(_sequence(part, items, positions, state.orders))
    return RowChanges(head, True, [], rows), Written(whole)


def _replayed(part: int, held: Sequence, ops: list[tuple[str, Any]], live: Any,
              deleted: list[tuple[int, int]], put: list[tuple[int, int, bytes]]) -> Optional[Sequence]:
    """The journal's path: the events' changes in place (``ops``) replayed on the positions
    ``held`` (changed in place: the caller drops it if None comes back); the rows of the items
    added, replaced or removed go to ``deleted`` and ``put``. None where the changes do not fit
    the rows held (the sequence is then written whole)."""
    positions = held.positions
    first_new = held.next     # positions from here on were made by these changes: no row to delete yet

    def appended() -> int:
        position = held.next
        positions.append(position)
        held.next += STRIDE
        return position

    def removed(position: int) -> None:
        if position < first_new:
            deleted.append((part, position))

    changed: list[tuple[int, Any]]     # (position, item) of the rows to put
    try:
        if part == _ORDERS:
            keys = held.keys
            if keys is None:
                return None
            dirty_keys = set()
            for op, key in ops:
                if op == "set":
                    if key not in keys:
                        keys[key] = appended()
                    dirty_keys.add(key)
                elif op == "pop":
                    gone = keys.pop(key)
                    positions.remove(gone)
                    dirty_keys.discard(key)
                    removed(gone)
                else:
                    return None
            changed = [(keys[key], live[key]) for key in dirty_keys]
        else:
            dirty = set()
            for op, i in ops:
                if op == "append":
                    if i != len(positions):
                        return None
                    dirty.add(appended())
                elif op == "put":
                    dirty.add(positions[i])
                elif op == "remove":
                    gone = positions.pop(i)
                    dirty.discard(gone)
                    removed(gone)
                else:
                    return None
            changed = [(p, live[bisect_left(positions, p)]) for p in dirty]
    except (IndexError, KeyError, ValueError):
        return None
    if len(positions) != len(live):
        return None
    put.extend((part, p, _encode(item)) for p, item in changed)
    held.items = held.ids = held.index = None   # identities not followed on this path
    return held


def _compared(part: int, held: Sequence, items: list[Any], deleted: list[tuple[int, int]],
              put: list[tuple[int, int, bytes]]) -> Optional[Sequence]:
    """The identity path: the rows of one sequence that changed from the items ``held`` last
    wrote to ``items``, added to ``deleted`` and ``put``; ``held`` brought up to date, or None
    when the items last written are not known or their new order cannot be kept by positions
    (the sequence is then written whole). Items are matched by identity, which C compares at
    once for the whole list: only the items added or gone are looked at one by one."""
    old_ids, index = held.ids, held.index
    if old_ids is None or index is None:
        return None
    new_ids: list[int] = [*map(id, items)]
    if new_ids == old_ids:
        return held
    n = len(old_ids)
    added: Iterable[int]
    if new_ids[:n] == old_ids:     # only appended (an order placed, a lot granted)
        positions = held.positions + list(range(held.next, held.next + STRIDE * (len(items) - n), STRIDE))
        held.next += STRIDE * (len(items) - n)
        added = range(n, len(items))
    else:
        found = list(map(index.get, new_ids))   # None: an item the rows do not hold yet
        kept = list(filter(None, found))   # positions are never 0
        if kept != sorted(kept):
            return None    # an item moved ahead of another: positions cannot say the new order
        if len(kept) < n:
            for gone in set(old_ids).difference(new_ids):
                deleted.append((part, index.pop(gone)))
        placed = _placed(found, held)
        if placed is None:
            return None
        positions, added = cast(list[int], found), placed
    for i in added:
        index[new_ids[i]] = positions[i]
        put.append((part, positions[i], _encode(items[i])))
    held.items, held.ids, held.positions = list(items), new_ids, positions
    return held


def _placed(positions: list[Optional[int]], held: Sequence) -> Optional[list[int]]:
    """Give each new item (position None) a position between its neighbours'; the new items'
    indexes, or None where two neighbours leave no position between them, or where most items
    are new (a state decoded afresh, as a worker sends it back: written whole, at once)."""
    new = positions.count(None)
    if 2 * new > len(positions):
        return None
    added = []
    at = -1
    for _ in range(new):
        at = positions.index(None, at + 1)
        before = cast(int, positions[at - 1]) if at else 0   # given its position already
        after = next((p for p in positions[at + 1:] if p is not None), None)
        if after is None:
            chosen = max(held.next, before + STRIDE)
            held.next = chosen + STRIDE
        else:
            chosen = (before + after) // 2
            if chosen <= before:
                return None
        positions[at] = chosen
        added.append(at)
    return added


def state_of(head: bytes | str, rows: Iterable[tuple[int, int, bytes | str]], zone: Optional[ZoneInfo]
             ) -> tuple[MemberState, Optional[Written]]:
    """A member's state from its head and its rows ((part, position, body), in part and position
    order), and the rows as read (None for a head stored before rows: it holds its sequences)."""
    state = decode_state(head, zone)
    if state.orders or state.lots or state.closed:
        return state, None
    found: list[list[Any]] = [[] for _ in PARTS]
    positions: list[list[int]] = [[] for _ in PARTS]
    for part, position, body in rows:
        found[part].append(_decode_order(body) if part == _ORDERS else _decode_lot(body))
        positions[part].append(position)
    state.orders = {order.id: order for order in found[_ORDERS]}
    state.lots = found[PARTS.index("lots")]
    state.closed = found[PARTS.index("closed")]
    return state, Written([_sequence(part, _items(state, part), positions[part], state.orders)
                           for part in range(len(PARTS))])


def nothing_written() -> Written:
    """The rows of a member the ledger does not hold yet."""
    return Written([_sequence(part, [], [], {}) for part in range(len(PARTS))])
