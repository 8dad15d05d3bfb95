"""Issue 19: a member's running totals are always present and exact; a state an older engine
stored is upgraded once by the store codec (engine/store/codec.py) and gives the same ledger.

``data/andest_m1_state_main_2026-12-03.json`` is the state main's engine (2026-12-03 09:10 UTC)
wrote into a SQLite ledger for m1 after these four &est events (tests/test_hole17_money.py has
the same order):

- 03-01 registered: the sign-up bonus, 500 valid (AND-4);
- 03-02 o1: A 2 x ¥4,750 and B ¥2,000; member price floor(x 0.95): 4,512 x 2 + 1,900 = 10,924
  ex. tax, 1 % = 109 pending (AND-1, X-5); shipped 03-03 (valid), delivered 03-04.

Then 1 A comes back on 03-05: kept 4,512 + 1,900 = 6,412, 1 % = 64, so 109 - 64 = 45 go void:
valid 564, void 45, and the AND-10 window holds the kept 6,412 ex. tax.

The old layout kept its totals as "not known" where it could (``open_balance`` and ``counted``
null, an order's kept amounts -1); the "unknown" case writes them so.
"""
from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import msgspec
import pytest

from engine import Engine
from engine.model.state import LAYOUT, MemberState
from engine.store import open_store
from engine.store.base import StoreError
from engine.store.codec import decode_state
from tests.helpers import send
from tests.test_stores import NO_PG, PG_URL, another_schema

ROOT = Path(__file__).resolve().parent.parent
ANDEST = ROOT / "programs" / "andest.yaml"
MAIN_STATE = json.loads((Path(__file__).parent / "data" / "andest_m1_state_main_2026-12-03.json").read_text())
T = "2025-03-0{}T10:00:00+09:00".format

FOUR_EVENTS = [
    {"id": "reg", "type": "member.registered", "at": T(1), "member": "m1"},
    {"id": "p1", "type": "order.placed", "at": T(2), "member": "m1", "order": "o1", "course": "one_off",
     "payment": {"method": "credit_card"}, "lines": [{"sku": "A", "qty": 2, "unit_price": 4750, "tax_rate": 0.10},
                                                    {"sku": "B", "qty": 1, "unit_price": 2000, "tax_rate": 0.10}]},
    {"id": "s1", "type": "order.shipped", "at": T(3), "member": "m1", "order": "o1"},
    {"id": "d1", "type": "order.delivered", "at": T(4), "member": "m1", "order": "o1"},
]


def stored_by_main(variant: str) -> bytes:
    state = copy.deepcopy(MAIN_STATE)
    assert "layout" not in state and len(state["open_balance"]) == 6   # the old layout, as written
    if variant == "unknown":
        state["open_balance"] = state["counted"] = None
        state["orders"]["o1"]["kept_ex"] = state["orders"]["o1"]["kept_incl"] = -1
    return json.dumps(state).encode()


def points(e: Engine, at: str) -> tuple[int, int, int, int]:
    m = e.member("m1", at)
    return m["points"]["valid"], m["points"]["pending"], m["points"]["void"], m["tier_amount"]


def _run(url: str, put_old_state) -> tuple[list, bytes]:
    """The four events, m1's stored state then replaced by ``put_old_state`` (or kept), the
    engine opened again, the return applied: (m1's ledger entries, m1's state as stored)."""
    e = Engine(str(ANDEST), url)
    for event in FOUR_EVENTS:
        assert e.apply(event).applied == [event["id"]]
    e.store.close()
    if put_old_state is not None:
        put_old_state(url)
    e = Engine(str(ANDEST), url)
    # AND-1: 500 + 109 valid; the window: 10,924 ex. tax
    assert points(e, T(4)) == (609, 0, 0, 10924)
    send(e, "order.returned", T(5), eid="r1", order="o1", lines=[{"sku": "A", "qty": 1, "line": 0}])
    # 109 - floor(6,412 x 1 %) = 45 void; the window holds the kept 6,412
    assert points(e, "2025-03-05T12:00:00+09:00") == (564, 0, 45, 6412)
    entries = [(x.at, x.source, x.action, x.lot, x.amount, x.from_state, x.to_state, x.rule, x.version)
               for x in e.store.entries("m1")]
    state = e.store.load("m1")
    e.store.close()
    assert state.layout == LAYOUT
    return entries, msgspec.json.encode(state)


def _sqlite_put(variant: str):
    def put(path: str) -> None:
        con = sqlite3.connect(path)
        con.execute("UPDATE members SET state=? WHERE member='m1'", (stored_by_main(variant),))
        con.execute("DELETE FROM member_rows WHERE member='m1'")   # main kept it all in the members row
        con.commit()
        con.close()
    return put


def _pg_put(variant: str):
    def put(url: str) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE members SET state = %s::json, rev = rev + 1 WHERE member = 'm1'",
                         (stored_by_main(variant).decode(),))
            conn.execute("DELETE FROM member_rows WHERE member = 'm1'")   # main kept it all in the members row
    return put


@pytest.mark.parametrize("variant", ["as_written", "unknown"])
def test_issue19_sqlite_state_stored_by_main_loads_and_gives_the_same_ledger(tmp_path, variant):
    """AND-1, AND-10: a SQLite ledger whose m1 main's engine wrote goes on exactly as one this
    engine wrote throughout: the same balances (564 valid, 45 void), window (6,412), entries and state."""
    old = _run(str(tmp_path / "old.db"), _sqlite_put(variant))
    new = _run(str(tmp_path / "new.db"), None)
    assert old == new


@pytest.mark.skipif(not PG_URL, reason=NO_PG)
@pytest.mark.parametrize("variant", ["as_written", "unknown"])
def test_issue19_postgresql_state_stored_by_main_loads_and_gives_the_same_ledger(variant):
    """AND-1, AND-10: the same on PostgreSQL: m1 as main's engine stored it, then the return."""
    with another_schema() as url_old, another_schema() as url_new:
        assert _run(url_old, _pg_put(variant)) == _run(url_new, None)


def test_issue19_upgraded_totals_are_counted_from_the_lots_and_orders():
    """The codec counts the old state's totals afresh: 500 + 109 valid (both rolling, AND-5), no
    date of their own; o1 kept 10,924 ex. tax, 10,924 + floor(10,924 x 10 %) = 12,016 incl.
    (ANS-13-style invoice tax, X-5), counted on its placement day 03-02 and shipment day 03-03."""
    from zoneinfo import ZoneInfo

    state = decode_state(stored_by_main("unknown"), ZoneInfo("Asia/Tokyo"))
    bal = state.open_balance
    assert (bal.valid, bal.pending, bal.held, bal.rolling_valid, bal.soonest) == (609, 0, 0, 609, None)
    o1 = state.orders["o1"]
    assert (o1.kept_ex, o1.kept_incl) == (10924, 12016)
    month = "2025-03"
    placed_day = 739312   # date(2025, 3, 2).toordinal()
    assert state.counted.placed == {month: (10924, 12016, ((placed_day, 10924, 12016),))}
    assert state.counted.shipped == {month: (10924, 12016, ((placed_day + 1, 10924, 12016),))}
    # decoded as the current layout, it is the same state
    assert decode_state(msgspec.json.encode(state), None) == state


def test_issue19_state_without_tier_sums_needs_its_program_zone(tmp_path):
    """An old state without tier sums cannot be counted by local day without the program's zone:
    a store opened without it says so (never a wrong window), and with it reads the state."""
    path = str(tmp_path / "ledger.db")
    e = Engine(str(ANDEST), path)
    for event in FOUR_EVENTS:
        e.apply(event)
    e.store.close()
    _sqlite_put("unknown")(path)
    bare = open_store(path, "andest")
    with pytest.raises(StoreError, match="m1.*tier sums"):
        bare.load("m1")
    bare.close()
    program = Engine(str(ANDEST)).program
    zoned = open_store(path, "andest", program.tz)
    assert isinstance(zoned.load("m1"), MemberState)
    zoned.close()
