"""The stored form of a member's state: JSON (the head, engine/store/rows.py, or a whole state a
store wrote before rows), decoded into a state whose running totals are present and exact.

A state stored in the current layout (state.LAYOUT) decodes as it is. One stored before (no
``layout``: written by an engine that kept its totals as "not known" - None, -1 - or without them)
is upgraded once as it is read: its open-lot totals, its orders' kept amounts and, where missing,
its tier sums are counted from its lots and orders (sums kept by month index are keyed by month).
The next save writes it in the current layout.
"""
from __future__ import annotations

from typing import Any, Optional
from zoneinfo import ZoneInfo

import msgspec

from engine.core.pricing import with_kept_amounts
from engine.core.tiers import counted_of
from engine.model.state import LAYOUT, MemberState, OpenBalance
from engine.store.base import StoreError

encode_state = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(MemberState).decode
_raw = msgspec.json.Decoder().decode


def decode_state(blob: bytes | str, zone: Optional[ZoneInfo]) -> MemberState:
    """A stored state, in the current layout. ``zone``: the program's time zone (a state stored
    before it kept its tier sums has them counted by local day); None if the caller has no program."""
    try:
        return _decode(blob)
    except msgspec.ValidationError as exc:
        raw = _raw(blob)
        if not isinstance(raw, dict) or raw.get("layout") == LAYOUT:
            raise exc from None
    return _upgraded(raw, zone)


def _by_month(counted: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tier sums keyed by month index (year x 12 + month - 1, as text), the old key, by Month."""
    def month(key: str) -> str:
        if not key.isdigit():
            return key
        year, month0 = divmod(int(key), 12)
        return f"{year:04d}-{month0 + 1:02d}"
    return {measure: {month(k): v for k, v in (sums or {}).items()} for measure, sums in counted.items()}


def _upgraded(raw: dict[str, Any], zone: Optional[ZoneInfo]) -> MemberState:
    """A state of an older layout: its totals counted afresh from what it holds."""
    counted = raw.get("counted")
    raw.update(layout=LAYOUT, open_balance=msgspec.to_builtins(OpenBalance()),
               counted=_by_month(counted) if counted is not None else {})
    kept_missing = []
    for order_id, order in (raw.get("orders") or {}).items():
        if not isinstance(order, dict):
            continue
        if order.get("kept_ex", -1) < 0 or order.get("kept_incl", -1) < 0:
            order["kept_ex"] = order["kept_incl"] = 0
            kept_missing.append(order_id)
    state = _decode(encode_state(raw))
    for order_id in kept_missing:
        state.orders[order_id] = with_kept_amounts(state.orders[order_id])
    state.open_balance = OpenBalance.of(state.lots)
    if counted is None:
        if zone is None:
            raise StoreError(f"member {state.member}: its state was stored before it kept its tier sums; "
                             "open the ledger with its program to read it")
        state.counted = counted_of(state, zone)
    return state
