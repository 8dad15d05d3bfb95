"""Issue 19: the core applies an event in place, with an undo journal (engine/core/journal.py).

A refused event, a failure halfway through the core, or a store that cannot record the outcome
leaves the member's state exactly as it was (its stored bytes the same); an applied event
changes the state's lists in place rather than copying the member's history.

&est figures (programs/andest.yaml): the sign-up bonus is 500 valid (AND-4); 1 point = 1 yen,
at most 5,000 an order (AND-3); points stay valid 1 year from the last acquisition (AND-5).
"""
from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine import Engine
from engine.core import orders
from engine.store.base import StoreError
from tests.helpers import send

ANDEST = Path(__file__).resolve().parent.parent / "programs" / "andest.yaml"
T = "{}T10:00:00+09:00".format


def place(e: Engine, eid: str, at: str, redeem: int, expect: str = "applied"):
    return send(e, "order.placed", at, eid=eid, expect=expect, order=eid, course="one_off",
                payment={"method": "credit_card"}, lines=[{"sku": "A", "qty": 1, "unit_price": 10000, "tax_rate": 0.10}],
                redeem={"points": redeem})


def stored(e: Engine) -> bytes:
    return msgspec.json.encode(e.runner.state_of("m1"))


def points(e: Engine, at: str) -> tuple[int, int]:
    p = e.member("m1", at)["points"]
    return p["valid"], p["used"]


def test_issue19_AND_3_failure_after_the_spend_leaves_the_state_as_it_was(monkeypatch):
    """The order spends 300 of the 500 (AND-3) and then the core fails before recording the order:
    the spend is taken back, the state is byte for byte as before (500 valid, 0 used). Without
    the failure the same order applies: 500 - 300 = 200 valid, 300 used."""
    e = Engine(str(ANDEST))
    send(e, "member.registered", T("2025-03-01"))
    before = stored(e)

    def broken(*args, **kwargs):
        raise RuntimeError("the disk of the core caught fire")

    monkeypatch.setattr(orders, "record_order", broken)
    with pytest.raises(RuntimeError):
        e.apply({"id": "o1", "type": "order.placed", "at": T("2025-03-02"), "member": "m1", "order": "o1",
                 "course": "one_off", "payment": {"method": "credit_card"},
                 "lines": [{"sku": "A", "qty": 1, "unit_price": 10000, "tax_rate": 0.10}], "redeem": {"points": 300}})
    assert stored(e) == before
    assert points(e, T("2025-03-02")) == (500, 0)
    monkeypatch.undo()
    place(e, "o1", T("2025-03-02"), 300)
    assert points(e, T("2025-03-02")) == (200, 300)


def test_issue19_AND_3_refused_order_leaves_the_state_as_it_was():
    """An order asking for 600 points of a 500 balance is refused (AND-3): nothing changes."""
    e = Engine(str(ANDEST))
    send(e, "member.registered", T("2025-03-01"))
    before = stored(e)
    place(e, "o1", T("2025-03-02"), 600, expect="rejected")
    assert stored(e) == before
    assert points(e, T("2025-03-02")) == (500, 0)


def test_issue19_AND_3_store_that_cannot_record_leaves_the_state_as_it_was(monkeypatch):
    """The store fails to record the applied order: the runner takes the event back (Outcome.undo),
    so the state it keeps is the one the store has (500 valid); then the order applies (200, 300)."""
    e = Engine(str(ANDEST))
    send(e, "member.registered", T("2025-03-01"))
    before = stored(e)

    def full(*args, **kwargs):
        raise StoreError("the disk is full")

    monkeypatch.setattr(e.store, "save", full)
    with pytest.raises(StoreError):
        e.apply({"id": "o1", "type": "order.placed", "at": T("2025-03-02"), "member": "m1", "order": "o1",
                 "course": "one_off", "payment": {"method": "credit_card"},
                 "lines": [{"sku": "A", "qty": 1, "unit_price": 10000, "tax_rate": 0.10}], "redeem": {"points": 300}})
    assert stored(e) == before
    monkeypatch.undo()
    place(e, "o1", T("2025-03-02"), 300)
    assert points(e, T("2025-03-02")) == (200, 300)


def test_issue19_applied_event_changes_the_lists_in_place():
    """An applied order does not copy the member's lots, closed lots or orders (the journal keeps
    how to undo it): the state's containers are the same objects, holding one more lot and order
    (AND-3: 300 spent of 500 -> a used lot split from the sign-up lot)."""
    e = Engine(str(ANDEST))
    send(e, "member.registered", T("2025-03-01"))
    state = e.runner.state_of("m1")
    lots, closed, orders_ = state.lots, state.closed, state.orders
    place(e, "o1", T("2025-03-02"), 300)
    after = e.runner.state_of("m1")
    assert after is state and after.lots is lots and after.closed is closed and after.orders is orders_
    assert [lot.amount for lot in closed] == [300] and list(orders_) == ["o1"]


def test_issue19_AND_5_quote_after_an_event_sees_the_event():
    """A quote a year on fires the expiry on a view (AND-5: 500 from 2025-03-01 end after 2026-03-01),
    so 0 can be used; a grant of 1,000 on 2026-03-05 then changes the member in place, and the next
    quote at the same moment sees it (the view made before is forgotten): 1,000 usable, under the
    5,000 cap and the ¥10,450 total (AND-3)."""
    e = Engine(str(ANDEST))
    send(e, "member.registered", T("2025-03-01"))
    cart = {"id": "q", "type": "order.placed", "at": T("2026-03-10"), "member": "m1", "order": "q", "course": "one_off",
            "payment": {"method": "credit_card"}, "lines": [{"sku": "A", "qty": 1, "unit_price": 10000, "tax_rate": 0.10}],
            "redeem": {"points": "max"}}
    assert e.quote(cart)["redeem"]["max"] == 0
    send(e, "points.granted", T("2026-03-05"), amount=1000, reason="apology")
    assert e.quote(cart)["redeem"]["max"] == 1000
