"""Issue 17, money arithmetic: returns by line, restores that settle debts, one birthday bonus a
year, points worth more than a yen, card brands and tax rates.

Every expected number is worked out by hand from docs/RULES.md, docs/CONTRACT.md and the
ASSUMPTION comments of the program files (the docstrings say how), never copied from the engine.
Conventions: money is integer yen, lines ex. tax; andest: member price = floor(unit × 0.95),
earn 1 % of the ex-tax items floored once per order, points pending until shipped, used points
back at once; ansage: earn 1 % (one-off) of the items incl. tax after the points used, used points
back 14 days after a return, card payments leave ¥100 (JCB ¥200), cash on delivery ¥0.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import msgspec
import pytest

from engine import Engine
from engine.model.events import BadEvent
from engine.model.state import MemberState
from tests.helpers import send, sqlite_states

ROOT = Path(__file__).resolve().parent.parent
ANDEST = ROOT / "programs" / "andest.yaml"
ANSAGE = ROOT / "programs" / "ansage.yaml"


def T(day: str, hm: str = "10:00") -> str:
    return f"{day}T{hm}:00+09:00"


def pts(valid=0, pending=0, held=0, used=0, expired=0, void=0) -> dict:
    return {"valid": valid, "pending": pending, "held": held, "used": used, "expired": expired, "void": void}


def balances(e: Engine, at: str, member: str = "m1") -> dict:
    p = e.member(member, at)["points"]
    return {k: p[k] for k in ("valid", "pending", "held", "used", "expired", "void")}


def ln(sku: str, unit_price: int, qty: int = 1, tax_rate: float = 0.10, **more) -> dict:
    return {"sku": sku, "qty": qty, "unit_price": unit_price, "tax_rate": tax_rate, **more}


_n = iter(range(1, 10**6))


def cart(order: str, at: str, lines: list, member: str = "m1", method: str = "credit_card", brand=None,
         redeem=None, **extra) -> dict:
    payment = {"method": method}
    if brand is not None:
        payment["card_brand"] = brand
    c = {"id": f"place-{order}-{next(_n)}", "type": "order.placed", "at": at, "member": member, "order": order,
         "course": "one_off", "payment": payment, "lines": lines, **extra}
    if redeem is not None:
        c["redeem"] = {"points": redeem}
    return c


def place(e: Engine, c: dict, expect: str = "applied"):
    return send(e, c.pop("type"), c.pop("at"), c.pop("member"), expect=expect, eid=c.pop("id"), **c)


def program_variant(tmp_path: Path, source: Path, old: str, new: str) -> str:
    """A copy of ``source`` with one text replaced (the replacement must happen exactly once)."""
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / source.name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return str(path)


def order_state(e: Engine, order: str, member: str = "m1"):
    return e.runner.state_of(member).orders[order]


# --------------------------------------------------------------------------------------------
# 1. the same sku on two lines: returns name the line
# --------------------------------------------------------------------------------------------

def _two_lines_of_one_sku(e: Engine) -> None:
    """andest: 500 sign-up + 10,000 granted. o1: sku A gift-wrapped at ¥10,000 (line 0) and sku A
    plain at ¥2,000 (line 1). Member price 9,500 + 1,900 = 11,400 → earn floor(114) = 114 pending;
    1,000 points used (cap 5,000; grand total 11,400 + 1,140 = 12,540). Shipped, delivered:
    valid 500 + 10,000 − 1,000 + 114 = 9,614, used 1,000."""
    send(e, "member.registered", T("2025-03-01"))
    send(e, "points.granted", T("2025-03-01", "11:00"), amount=10000, reason="goodwill")
    place(e, cart("o1", T("2025-03-02"), [ln("A", 10000, tags=["gift_wrap"]), ln("A", 2000)], redeem=1000))
    send(e, "order.shipped", T("2025-03-03"), order="o1")
    send(e, "order.delivered", T("2025-03-04"), order="o1")
    assert balances(e, T("2025-03-04", "12:00")) == pts(valid=9614, used=1000)


def test_hole17_01_return_names_the_line_of_a_sku_on_two_lines_AND_11():
    """Returning the plain unit (line 1) of sku A keeps the dear, gift-wrapped line 0.

    X-5: the kept line earns floor(9,500 × 1 %) = 95, so 114 − 95 = 19 go void.
    ANS-12-style proportion (andest gives used points back at once): 1,000 × 1,900 / 11,400 =
    166.67 → 166 back. Valid 9,614 − 19 + 166 = 9,761; used 834; void 19. The order is still
    delivered (line 0 is kept), and line 0 can still be returned."""
    e = Engine(str(ANDEST))
    _two_lines_of_one_sku(e)
    send(e, "order.returned", T("2025-03-05"), order="o1", lines=[{"sku": "A", "qty": 1, "line": 1}])
    assert balances(e, T("2025-03-05", "12:00")) == pts(valid=9761, used=834, void=19)
    order = order_state(e, "o1")
    assert order.status == "delivered"
    assert order.returned_by_line() == (0, 1)
    # the kept amounts (tiers, AND-10) are line 0's: 9,500 ex. tax, 9,500 + 950 incl.
    assert (order.kept_ex, order.kept_incl) == (9500, 10450)
    # line 1 is all back: a second return of it is refused, line 0 still goes back
    send(e, "order.returned", T("2025-03-05", "13:00"), order="o1", lines=[{"sku": "A", "qty": 1, "line": 1}],
         expect="rejected")
    send(e, "order.returned", T("2025-03-06"), order="o1", lines=[{"sku": "A", "qty": 1, "line": 0}])
    # all back: the last 95 void, every used point back (1,000 − 166 = 834 more)
    assert balances(e, T("2025-03-06", "12:00")) == pts(valid=9761 - 95 + 834, void=114)
    assert order_state(e, "o1").status == "returned"


@pytest.mark.parametrize("ret, field", [
    ({"sku": "A", "qty": 1}, "lines[0].line"),               # A is on lines 0 and 1: which one?
    ({"sku": "B", "qty": 1, "line": 0}, "lines[0].line"),    # line 0 is A, not B
    ({"sku": "A", "qty": 1, "line": 2}, "lines[0].line"),    # the order has lines 0 and 1 only
    ({"sku": "A", "qty": 2, "line": 0}, "lines[0].qty"),     # line 0 holds one unit
])
def test_hole17_01_return_that_cannot_tell_lines_apart_is_refused(ret, field):
    """A return that does not say which line (or names a line that is not that sku's) is refused
    with the field, and the ledger is exactly as before."""
    e = Engine(str(ANDEST))
    _two_lines_of_one_sku(e)
    before = e.runner.state_of("m1").orders["o1"]
    result = send(e, "order.returned", T("2025-03-05"), order="o1", lines=[ret], expect="rejected")
    assert result.rejected[0]["field"] == field
    assert balances(e, T("2025-03-05", "12:00")) == pts(valid=9614, used=1000)
    assert order_state(e, "o1") == before


def test_hole17_01_old_state_with_returns_by_sku_still_loads_and_returns(tmp_path):
    """A state stored before returns were kept by line holds ``returned`` as sku → qty. It loads,
    means the same, and the next return goes on from it.

    andest, o1: A 2 × ¥4,750 (member 4,512 each) + B ¥2,000 (1,900) = 10,924 → 109 pending.
    Return 1 A: kept 4,512 + 1,900 = 6,412 → 64; 45 void. The stored state is then rewritten the
    way the former code wrote it ({"A": 1}, no returned_lines). Return the other A: kept B only,
    1,900 → 19, so 64 − 19 = 45 more void. Valid 500 + 19 = 519, void 90."""
    db = str(tmp_path / "ledger.db")
    e = Engine(str(ANDEST), db)
    send(e, "member.registered", T("2025-03-01"))
    place(e, cart("o1", T("2025-03-02"), [ln("A", 4750, qty=2), ln("B", 2000)]))
    send(e, "order.shipped", T("2025-03-03"), order="o1")
    send(e, "order.delivered", T("2025-03-04"), order="o1")
    send(e, "order.returned", T("2025-03-05"), order="o1", lines=[{"sku": "A", "qty": 1}])
    assert balances(e, T("2025-03-05", "12:00")) == pts(valid=564, void=45)
    e.store.close()

    con = sqlite3.connect(db)
    state = json.loads(sqlite_states(con)["m1"])
    o1 = state["orders"]["o1"]
    o1.pop("returned_lines")
    o1["returned"] = {"A": 1}
    o1["kept_ex"] = o1["kept_incl"] = -1       # stored before the kept amounts, too
    con.execute("UPDATE members SET state=? WHERE member='m1'", (json.dumps(state).encode(),))
    con.execute("DELETE FROM member_rows WHERE member='m1'")   # the former code kept it all in the members row
    con.commit()
    con.close()

    old = msgspec.json.decode(json.dumps(state).encode(), type=MemberState).orders["o1"]
    assert old.returned_by_line() == (1, 0)
    e = Engine(str(ANDEST), db)
    assert order_state(e, "o1").returned_by_line() == (1, 0)
    send(e, "order.returned", T("2025-03-06"), order="o1", lines=[{"sku": "A", "qty": 2}], expect="rejected")
    send(e, "order.returned", T("2025-03-06"), order="o1", lines=[{"sku": "A", "qty": 1}])
    assert balances(e, T("2025-03-06", "12:00")) == pts(valid=519, void=90)
    order = order_state(e, "o1")
    assert order.returned_by_line() == (2, 0) and order.returned == {}
    assert (order.kept_ex, order.kept_incl) == (1900, 2090)
    assert order.status == "delivered"


def test_hole17_01_one_line_of_three_units_is_three_lines_of_one_ANS_12():
    """ansage, one-off 1 % incl. tax after points (ANS-7/13), ¥212 a unit at 10 %, 100 points
    used, 1,000 granted. Member m1 has one line of 3 units, member m2 three lines of one unit
    (the same sku, so its return names line 0, the line the spread gave the odd point: 34/33/33).

    Placement: items 636, tax floor(63.6) = 63, grand 699; base 3 × 233.2 − 100 = 599.6 → 5.
    Return one unit: kept base 2/3 × 599.6 = 399.73 → 3, so 2 void at once; the unit's share of
    the points, 100 × 212 / 636 = 33.3 → 33, back 14 days later (ANS-12). With the rounded shares
    m2 would get 34 back and keep a base of 2 × 233.2 − 66 = 400.4 → 4.
    Both: valid 1,000 − 100 + 5 − 2 = 903 after the return, 936 (used 67) after the restore."""
    e = Engine(str(ANSAGE))
    for member, lines in (("m1", [ln("X", 212, qty=3)]), ("m2", [ln("X", 212), ln("X", 212), ln("X", 212)])):
        send(e, "member.registered", T("2025-03-01"), member)
        send(e, "points.granted", T("2025-03-01", "11:00"), member, amount=1000, reason="goodwill")
        q = e.quote(cart("o1", T("2025-03-02"), lines, member=member, redeem=100))
        assert (q["totals"]["grand_total"], q["earn"]["points"]) == (699, 5)
        place(e, cart("o1", T("2025-03-02"), lines, member=member, redeem=100))
        send(e, "order.shipped", T("2025-03-03"), member, order="o1")
        send(e, "order.delivered", T("2025-03-04"), member, order="o1")
    send(e, "order.returned", T("2025-03-05"), "m1", order="o1", lines=[{"sku": "X", "qty": 1}])
    send(e, "order.returned", T("2025-03-05"), "m2", order="o1", lines=[{"sku": "X", "qty": 1, "line": 0}])
    for member in ("m1", "m2"):
        assert balances(e, T("2025-03-05", "12:00"), member) == pts(valid=903, used=100, void=2), member
        assert balances(e, T("2025-03-20", "12:00"), member) == pts(valid=936, used=67, void=2), member


# --------------------------------------------------------------------------------------------
# 3. restored points settle what the member owes first
# --------------------------------------------------------------------------------------------

def test_hole17_03_cancel_restore_settles_the_debt_first_AND_2():
    """andest. 500 sign-up. o1: ¥10,000 → 9,500 member price, 500 points used (all), earn 95
    pending; shipped → 95 valid, which o2 (¥1,000 → 950, grand 1,045) spends; o2 earns 9 pending.
    Cancel o1 (shipped, not delivered): its 95 were spent, so they are owed (debt 95); its 500
    used come back at once (andest, days: 0) and pay the debt first: valid 500 − 95 = 405,
    used 95 (o2), pending 9, void 95."""
    e = Engine(str(ANDEST))
    send(e, "member.registered", T("2025-03-01"))
    place(e, cart("o1", T("2025-03-02"), [ln("A", 10000)], redeem=500))
    send(e, "order.shipped", T("2025-03-03"), order="o1")
    place(e, cart("o2", T("2025-03-04"), [ln("B", 1000)], redeem=95))
    assert balances(e, T("2025-03-04", "12:00")) == pts(valid=0, pending=9, used=595)
    send(e, "order.cancelled", T("2025-03-05"), order="o1")
    assert balances(e, T("2025-03-05", "12:00")) == pts(valid=405, pending=9, used=95, void=95)
    assert e.runner.state_of("m1").debt == 0
    # what is valid can be spent, and no more: at most 405 (cap 5,000; ¥10,000 order)
    q = e.quote(cart("o3", T("2025-03-06"), [ln("C", 10000)], redeem="max"))
    assert q["redeem"]["applied"] == 405


def test_hole17_03_delayed_restore_settles_the_debt_first_ANS_12():
    """ansage (used points back 14 days after a return). 1,000 granted. o1: ¥10,000 at 10 %
    (11,000), 1,000 used → base 10,000 → 100 pending; shipped, delivered → 100 valid, spent on o2
    (¥1,000 → 1,100; base 1,000 → 10 pending). o1 returned on 03-05: its 100 were spent, so they
    are owed; the 1,000 used come back on 03-19 and pay the 100 first: valid 900, used 100,
    pending 10, void 100."""
    e = Engine(str(ANSAGE))
    send(e, "member.registered", T("2025-03-01"))
    send(e, "points.granted", T("2025-03-01", "11:00"), amount=1000, reason="goodwill")
    place(e, cart("o1", T("2025-03-02"), [ln("A", 10000)], redeem=1000))
    send(e, "order.shipped", T("2025-03-03"), order="o1")
    send(e, "order.delivered", T("2025-03-03", "12:00"), order="o1")
    place(e, cart("o2", T("2025-03-04"), [ln("B", 1000)], redeem=100))
    send(e, "order.returned", T("2025-03-05"), order="o1", lines=[{"sku": "A", "qty": 1}])
    assert balances(e, T("2025-03-05", "12:00")) == pts(valid=0, pending=10, used=1100)
    assert balances(e, T("2025-03-20", "12:00")) == pts(valid=900, pending=10, used=100, void=100)
    # stored, not only in the view: the next event sees it
    send(e, "points.granted", T("2025-03-21"), amount=1, reason="goodwill")
    assert balances(e, T("2025-03-21", "12:00")) == pts(valid=901, pending=10, used=100, void=100)
    assert e.runner.state_of("m1").debt == 0


def test_hole17_03_released_points_settle_the_debt_first_AND_2():
    """andest. 500 sign-up, all held by an operator. o1 ¥10,000 → 95 pending, shipped → valid,
    spent on o2 (¥1,000, earns 9). Cancel o1: 95 owed. Releasing the 500 held pays them first:
    valid 405, used 95, pending 9, void 95."""
    e = Engine(str(ANDEST))
    send(e, "member.registered", T("2025-03-01"))
    send(e, "points.held", T("2025-03-01", "11:00"), amount=500, reason="check")
    place(e, cart("o1", T("2025-03-02"), [ln("A", 10000)]))
    send(e, "order.shipped", T("2025-03-03"), order="o1")
    place(e, cart("o2", T("2025-03-04"), [ln("B", 1000)], redeem=95))
    send(e, "order.cancelled", T("2025-03-05"), order="o1")
    assert balances(e, T("2025-03-05", "12:00")) == pts(held=500, pending=9, used=95)
    send(e, "points.released", T("2025-03-06"), amount=500, reason="checked")
    assert balances(e, T("2025-03-06", "12:00")) == pts(valid=405, pending=9, used=95, void=95)


def test_hole17_03_points_valid_at_placement_settle_the_debt_first_AND_2(tmp_path):
    """andest with points valid at placement (pending_until: placed). 500 sign-up. o1 ¥10,000 →
    95 valid at once, spent with the 500 on o2 (¥1,000 → 950, grand 1,045: 595 used; o2 earns 9,
    valid at once → 9). Cancel o1: its 95 were spent; the 9 valid pay 9 of them, 86 owed.
    o3 (¥10,000 → 95 valid at once) pays the 86 first: valid 9."""
    e = Engine(program_variant(tmp_path, ANDEST, "pending_until: shipped", "pending_until: placed"))
    send(e, "member.registered", T("2025-03-01"))
    place(e, cart("o1", T("2025-03-02"), [ln("A", 10000)]))
    place(e, cart("o2", T("2025-03-03"), [ln("B", 1000)], redeem=595))
    assert balances(e, T("2025-03-03", "12:00")) == pts(valid=9, used=595)
    send(e, "order.cancelled", T("2025-03-04"), order="o1")
    assert balances(e, T("2025-03-04", "12:00")) == pts(used=595, void=9)
    place(e, cart("o3", T("2025-03-05"), [ln("C", 10000)]))
    assert balances(e, T("2025-03-05", "12:00")) == pts(valid=9, used=595, void=95)
    assert e.runner.state_of("m1").debt == 0


# --------------------------------------------------------------------------------------------
# 4. one birth-month bonus a year
# --------------------------------------------------------------------------------------------

def test_hole17_04_changed_birthday_pays_no_second_bonus_in_a_year_AND_8():
    """AND-8: 500 on the 1st of the birth month, once a year. m1 (born in March) is paid on
    2025-03-01, then moves the birthday on to April, May, ... December, a month ahead each time:
    nothing more in 2025 (valid 500 sign-up + 500 = 1,000), and the next bonus is the new birth
    month's in 2026 (December 2026). m2 (born in March, paid 2025-03-01) moves it back to
    February, already past: nothing in 2025; paid on 2026-02-01 (valid 1,500).
    Rolling expiry (AND-5, 1 year from the last acquisition, 2025-03-01): m1's 1,000 expire after
    2026-03-01; m2's acquisition of 2026-02-01 extends its whole balance."""
    e = Engine(str(ANDEST))
    for member in ("m1", "m2"):
        send(e, "member.registered", T("2025-01-05"), member, birthday="1990-03-12")
    assert balances(e, T("2025-03-02"), "m1") == pts(valid=1000)
    for month in range(4, 13):
        send(e, "member.updated", T(f"2025-{month - 1:02d}-10"), "m1", birthday=f"1990-{month:02d}-12")
    send(e, "member.updated", T("2025-06-01"), "m2", birthday="1990-02-12")
    assert balances(e, T("2025-12-31"), "m1") == pts(valid=1000)
    assert balances(e, T("2025-12-31"), "m2") == pts(valid=1000)
    assert balances(e, T("2026-02-02"), "m2") == pts(valid=1500)
    assert balances(e, T("2026-11-30"), "m1") == pts(expired=1000)
    assert balances(e, T("2026-12-01", "12:00"), "m1") == pts(valid=500, expired=1000)


# --------------------------------------------------------------------------------------------
# 6. a unit worth more than a yen
# --------------------------------------------------------------------------------------------

def test_hole17_06_after_points_subtracts_yen_once_when_a_unit_is_worth_5_yen_ANS_7(tmp_path):
    """ANS-7/ANS-13 with a unit worth ¥5: ¥10,000 at 10 % (11,000 incl.), 200 units used = ¥1,000:
    to pay 10,000, base 11,000 − 1,000 = 10,000 → 100 (not 11,000 − 5,000 → 60). The same yen
    figures as the 1-yen program using 1,000 points (the metamorphic twin).
    Returned: the 100 go void, and every used unit (200) comes back 14 days later."""
    five = Engine(program_variant(tmp_path, ANSAGE, "unit_value_yen: 1", "unit_value_yen: 5"))
    one = Engine(str(ANSAGE))
    for e, used in ((five, 200), (one, 1000)):
        send(e, "member.registered", T("2025-03-01"))
        send(e, "points.granted", T("2025-03-01", "11:00"), amount=5000, reason="goodwill")
        q = e.quote(cart("o1", T("2025-03-02"), [ln("A", 10000)], redeem=used))
        assert (q["totals"]["to_pay"], q["earn"]["points"], q["redeem"]["applied"]) == (10000, 100, used)
        place(e, cart("o1", T("2025-03-02"), [ln("A", 10000)], redeem=used))
        send(e, "order.shipped", T("2025-03-03"), order="o1")
        send(e, "order.delivered", T("2025-03-04"), order="o1")
        assert balances(e, T("2025-03-04", "12:00")) == pts(valid=5000 - used + 100, used=used)
        send(e, "order.returned", T("2025-03-05"), order="o1", lines=[{"sku": "A", "qty": 1}])
        assert balances(e, T("2025-03-20")) == pts(valid=5000, void=100)
    # card minimum ¥100 in yen, then units of ¥5: (11,000 − 100) // 5 = 2,180
    assert five.quote(cart("o2", T("2025-03-21"), [ln("A", 10000)], redeem="max"))["redeem"]["applied"] == 2180


# --------------------------------------------------------------------------------------------
# 7. card brands, tax rates
# --------------------------------------------------------------------------------------------

def _max_points(e: Engine, **payment) -> int:
    """ansage: ¥3,000 at 10 % + ¥500 shipping: grand total 3,500 + floor(350) = 3,850."""
    q = e.quote(cart("q1", T("2025-03-02"), [ln("MASK-5", 3000)], shipping=500, redeem="max", **payment))
    assert q["totals"]["grand_total"] == 3850
    return q["redeem"]["max"]


def test_hole17_07_card_brand_matched_case_insensitively_ANS_10(tmp_path):
    """ANS-10: a JCB card leaves ¥200 (max 3,850 − 200 = 3,650), another card ¥100 (3,750), cash
    on delivery ¥0 (3,850): a brand sent with cash on delivery means nothing. A program that writes
    the brand as JCB matches a cart's jcb."""
    e = Engine(str(ANSAGE))
    send(e, "member.registered", T("2025-03-01"))
    send(e, "points.granted", T("2025-03-01", "11:00"), amount=10000, reason="goodwill")
    for brand in ("jcb", "JCB", "Jcb", " jcb "):
        assert _max_points(e, brand=brand) == 3650, brand
    assert _max_points(e, brand="visa") == 3750
    assert _max_points(e, brand="") == 3750
    assert _max_points(e, method="cash_on_delivery", brand="jcb") == 3850
    assert _max_points(e, method="np_deferred", brand="JCB") == 3849
    # placed the same way: JCB's minimum is kept (3,651 refused, 3,650 applied)
    place(e, cart("o1", T("2025-03-02"), [ln("MASK-5", 3000)], shipping=500, brand="JCB", redeem=3651),
          expect="rejected")
    place(e, cart("o1", T("2025-03-02"), [ln("MASK-5", 3000)], shipping=500, brand="JCB", redeem=3650))

    upper = Engine(program_variant(tmp_path, ANSAGE, "by_card_brand: {jcb: 200}", "by_card_brand: {JCB: 200}"))
    send(upper, "member.registered", T("2025-03-01"))
    send(upper, "points.granted", T("2025-03-01", "11:00"), amount=10000, reason="goodwill")
    assert _max_points(upper, brand="jcb") == 3650


@pytest.mark.parametrize("rate", [1.0, 0.0, 0.05, 0.081, 0.8, 0.1000001])
def test_hole17_07_tax_rate_other_than_8_or_10_percent_is_refused(rate):
    """CONTRACT: tax_rate is 0.08 or 0.10, nothing else. Any other rate is refused at decode time,
    naming the field, in an event (the ledger unchanged: 500 sign-up only) and in a quote."""
    e = Engine(str(ANDEST))
    send(e, "member.registered", T("2025-03-01"))
    bad = cart("o1", T("2025-03-02"), [ln("A", 1000), ln("B", 1000, tax_rate=rate)])
    result = place(e, dict(bad), expect="rejected")
    assert result.rejected[0]["field"] == "lines[1].tax_rate"
    assert "0.08" in result.rejected[0]["reason"] and "0.10" in result.rejected[0]["reason"]
    assert balances(e, T("2025-03-02", "12:00")) == pts(valid=500)
    assert e.runner.state_of("m1").orders == {}
    with pytest.raises(BadEvent) as info:
        e.quote(bad)
    assert info.value.field == "lines[1].tax_rate"


def test_hole17_07_tax_rates_8_and_10_percent_are_taken():
    """0.08, 0.1 and 0.10 (the same float) are the contract's rates. andest: ¥1,000 → 950 at 8 %
    and ¥1,000 → 950 at 10 %: tax floor(76) + floor(95) = 171, grand 1,900 + 171 = 2,071."""
    e = Engine(str(ANDEST))
    send(e, "member.registered", T("2025-03-01"))
    raw = ('{"id": "p1", "type": "order.placed", "at": "2025-03-02T10:00:00+09:00", "member": "m1", "order": "o1",'
           ' "course": "one_off", "payment": {"method": "credit_card"}, "lines": ['
           '{"sku": "A", "qty": 1, "unit_price": 1000, "tax_rate": 0.08},'
           '{"sku": "B", "qty": 1, "unit_price": 1000, "tax_rate": 0.10}]}')
    q = e.quote(raw)
    assert (q["totals"]["tax"], q["totals"]["grand_total"]) == ({"0.08": 76, "0.10": 95}, 2071)
    assert e.apply(raw).applied == ["p1"]
    assert e.quote(raw.replace("0.10}", "0.1}").replace('"p1"', '"p2"'))["totals"]["grand_total"] == 2071
