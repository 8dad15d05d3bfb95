"""A member's state stored as a head and rows, so that writing a member costs what its event
changed, not its whole history.

A member's history grows with every order: its orders, its open lots (an order's pending points)
and its closed lots. Stored as one blob, each event would rewrite all of it (a member of 1,000
orders: a megabyte an event). Here the state is stored as

- a **head**: the state without those three sequences (a few hundred bytes, rewritten each time),
  encoded by the codec (engine/store/codec.py);
- **rows**, one a lot or an order: (part, position, body), where part is one of ``PARTS`` and the
  positions ascend in the sequence's order (a dict of orders keeps its order too).

The store remembers, per member, the rows as it last read or wrote them (``Written``); saving a
state compares its sequences with them by identity (lots and orders are frozen and replaced when
they change, engine/model/state.py) and writes only the rows that differ: the lots and orders an
event added, changed or closed. A member the store has no memory of (first read by another
process, after a failed transaction, or never read) is written whole: its rows deleted and
written again. What the store remembers is never trusted beyond what it read or wrote itself;
the stores drop it whenever the ledger may have changed under them (another writer, a rollback).

A head stored before states had rows holds its sequences itself: it is read as it is, and the
next save writes it in rows.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, cast
from zoneinfo import ZoneInfo

import msgspec

from engine.model.state import Lot, MemberState, Order
from engine.store.codec import decode_state, encode_state

PARTS = ("orders", "lots", "closed")   # the part number of a row is its index here
_ORDERS, _LOTS, _CLOSED = range(3)
STRIDE = 1024    # the gap between the positions of neighbouring rows: a lot replaced or put between two keeps them
_encode = msgspec.json.Encoder().encode
_decode_order = msgspec.json.Decoder(Order).decode
_decode_lot = msgspec.json.Decoder(Lot).decode


class Sequence:
    """One of a member's sequences as the store holds it: its items (kept, so their identities
    stay theirs), their identities and row positions, and the position of each identity."""

    __slots__ = ("items", "ids", "positions", "index", "next")

    def __init__(self, items: list[Any], positions: list[int], next_position: int):
        self.items = items
        self.ids = list(map(id, items))
        self.positions = positions
        self.index = dict(zip(self.ids, positions))
        self.next = next_position     # the position an item appended after the last one takes


class Written:
    """A member's rows as the store last read or wrote them: one Sequence a part."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Sequence]):
        self.parts = parts     # by part number (PARTS)


class RowChanges(msgspec.Struct, frozen=True):
    """What saving one member writes: its head, whether all its rows are deleted first (``whole``),
    the rows deleted ((part, position), ...) and the rows put ((part, position, body), ...)."""

    head: bytes
    whole: bool
    deleted: list[tuple[int, int]]
    put: list[tuple[int, int, bytes]]


def _sequences(state: MemberState) -> tuple[list[Any], list[Any], list[Any]]:
    return list(state.orders.values()), state.lots, state.closed


def head_of(state: MemberState) -> bytes:
    """The state without its sequences, as stored."""
    return encode_state(msgspec.structs.replace(state, orders={}, lots=[], closed=[]))


def changes(state: MemberState, written: Optional[Written]) -> tuple[RowChanges, Written]:
    """The writes that turn the rows ``written`` (None: not known, written whole) into ``state``'s,
    and the rows as they will then be."""
    head = head_of(state)
    if written is not None:
        parts = []
        deleted: list[tuple[int, int]] = []
        put: list[tuple[int, int, bytes]] = []
        for part, (items, held) in enumerate(zip(_sequences(state), written.parts)):
            seq = _sequence_changes(part, held, items, deleted, put)
            if seq is None:
                break
            parts.append(seq)
        else:
            return RowChanges(head, False, deleted, put), Written(parts)
    whole = []
    rows: list[tuple[int, int, bytes]] = []
    for part, items in enumerate(_sequences(state)):
        positions = [STRIDE * (i + 1) for i in range(len(items))]
        rows.extend((part, p, _encode(item)) for p, item in zip(positions, items))
        whole.append(Sequence(list(items), positions, STRIDE * (len(items) + 1)))
    return RowChanges(head, True, [], rows), Written(whole)


def _sequence_changes(part: int, held: Sequence, items: list[Any], deleted: list[tuple[int, int]],
                      put: list[tuple[int, int, bytes]]) -> Optional[Sequence]:
    """The rows of one sequence that changed from ``held`` to ``items``, added to ``deleted`` and
    ``put``; the sequence as it will be stored (``held`` itself, brought up to date), or None when
    its order cannot be kept by positions (the sequence is then written whole). Items are matched
    by identity, which C compares at once for the whole list: only the items added or gone are
    looked at one by one."""
    new_ids: list[int] = [*map(id, items)]
    old_ids = held.ids
    if new_ids == old_ids:
        return held
    n = len(old_ids)
    index = held.index
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
    indexes, or None where two neighbours leave no position between them."""
    added = []
    at = -1
    for _ in range(positions.count(None)):
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


def state_of(head: bytes | str, rows: Iterable[tuple[int, int, bytes]], zone: Optional[ZoneInfo]
             ) -> tuple[MemberState, Optional[Written]]:
    """A member's state from its head and its rows ((part, position, body), in part and position
    order), and the rows as read (None for a head stored before rows: it holds its sequences)."""
    state = decode_state(head, zone)
    if state.orders or state.lots or state.closed:
        return state, None
    found: list[list[Any]] = [[], [], []]
    positions: list[list[int]] = [[], [], []]
    for part, position, body in rows:
        found[part].append(_decode_order(body) if part == _ORDERS else _decode_lot(body))
        positions[part].append(position)
    state.orders = {order.id: order for order in found[_ORDERS]}
    state.lots = found[_LOTS]
    state.closed = found[_CLOSED]
    return state, Written([Sequence(list(items), pos, (pos[-1] if pos else 0) + STRIDE)
                           for items, pos in zip(_sequences(state), positions)])


def nothing_written() -> Written:
    """The rows of a member the ledger does not hold yet."""
    return Written([Sequence([], [], STRIDE) for _ in PARTS])
