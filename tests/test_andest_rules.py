"""Rule tests for the &est program (programs/andest.yaml): AND-1 … AND-12 and X-1 … X-6.

Every expected number below is worked out by hand from docs/RULES.md and the program
file's stated assumptions, never copied from the engine's output:

* member price = floor(unit_price × 0.95) per unit (AND-8, ASSUMPTION "per: unit", floored);
* a coupon is spread over the lines in proportion to their member-price amounts (AND-7);
* tax once per rate per order, floored (CONTRACT); shipping is ex. tax, taxed at 10 %;
* earn = floor(Σ line base × line rate), floored once per order (X-5);
* expiry (AND-5): last valid day = acquisition date + 1 year; expired from 00:00 the next day,
  Asia/Tokyo.

Every member gets the 500-point sign-up bonus (AND-4) at registration, which is why most
balances below start at 500.
"""
from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import yaml

from engine import Engine
from tests.helpers import check_outcome, send  # noqa: F401 (check_outcome: some files)

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "programs" / "andest.yaml"
REG_AT = "2025-01-05T10:00:00+09:00"



# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def new_engine() -> Engine:
    return Engine(str(PROGRAM))




def register(e: Engine, member: str = "m1", at: str = REG_AT, birthday: str | None = None):
    fields = {"birthday": birthday} if birthday else {}
    return send(e, "member.registered", at, member, **fields)


def ln(sku: str, unit_price: int, qty: int = 1, tax_rate: float = 0.10, tags=(), product: str | None = None) -> dict:
    line = {"sku": sku, "qty": qty, "unit_price": unit_price, "tax_rate": tax_rate, "tags": list(tags)}
    if product:
        line["product"] = product
    return line


def cart(member: str, order: str, at: str, lines: list[dict], *, redeem=None, coupon: int = 0, shipping: int = 0,
         guest: bool = False) -> dict:
    c = {"id": f"cart-{order}", "type": "order.placed", "at": at, "member": member, "order": order,
         "course": "one_off", "payment": {"method": "credit_card"}, "lines": lines}
    if redeem is not None:
        c["redeem"] = {"points": redeem}
    if coupon:
        c["coupon_discount"] = coupon
    if shipping:
        c["shipping"] = shipping
    if guest:
        c["guest"] = True
    return c


def place(e: Engine, member: str, order: str, at: str, lines: list[dict], *, expect: str = "applied", **kw):
    c = cart(member, order, at, lines, **kw)
    c.pop("id"), c.pop("type"), c.pop("at"), c.pop("member")
    return send(e, "order.placed", at, member, expect=expect, **c)


def ship(e, member, order, at, **kw):
    return send(e, "order.shipped", at, member, order=order, **kw)


def deliver(e, member, order, at, **kw):
    return send(e, "order.delivered", at, member, order=order, **kw)


def cancel(e, member, order, at, **kw):
    return send(e, "order.cancelled", at, member, order=order, **kw)


def return_(e, member, order, at, lines: list[tuple[str, int]], **kw):
    return send(e, "order.returned", at, member, order=order, lines=[{"sku": s, "qty": q} for s, q in lines], **kw)


_samples = iter(range(1, 10**6))


def review(e, member, product, at, bought=True, **kw):
    """A review of ``product``. AND-8 pays only for a product the member bought and received, so
    by default the member first receives it as a free sample: a ¥0 line placed two minutes and
    shipped one minute before the review, which earns 0 points and counts 0 yen for the rank, so
    no other figure of the test moves."""
    if bought:
        when = datetime.fromisoformat(at)
        order = f"sample-{product}-{next(_samples)}"
        send(e, "order.placed", (when - timedelta(minutes=2)).isoformat(), member, order=order, course="one_off",
             payment={"method": "credit_card"},
             lines=[{"sku": f"{product}-S", "product": product, "qty": 1, "unit_price": 0, "tax_rate": 0.10}])
        send(e, "order.shipped", (when - timedelta(minutes=1)).isoformat(), member, order=order)
    return send(e, "review.posted", at, member, product=product, **kw)


def grant(e, member, amount, at, expires_on=None, **kw):
    fields = {"amount": amount, "reason": "goodwill"}
    if expires_on:
        fields["expires_on"] = expires_on
    return send(e, "points.granted", at, member, **fields, **kw)


def points(e: Engine, member: str, at: str) -> dict:
    return e.member(member, at)["points"]


def pts(valid=0, pending=0, held=0, used=0, expired=0, void=0) -> dict:
    return {"valid": valid, "pending": pending, "held": held, "used": used, "expired": expired, "void": void}


def balances(e: Engine, member: str, at: str) -> dict:
    """The six contract balances (an implementation may add keys such as 'owed')."""
    p = points(e, member, at)
    return {k: p[k] for k in ("valid", "pending", "held", "used", "expired", "void")}


def snapshot(e: Engine, member: str, at: str):
    # the entries without their booked time (issue 22: when a run wrote them, which differs between runs)
    return e.member(member, at), [msgspec.structs.replace(x, booked_at=None) for x in e.store.entries(member)]


# --------------------------------------------------------------------------------------------
# AND-1 base earn
# --------------------------------------------------------------------------------------------

def test_AND_1_base_one_percent_after_member_price():
    """AND-1: "Base earn: 1% of the item price ex. tax (i.e. 1 point per ¥100)".

    Two lines of ¥5,000 ex. tax; member price floor(5,000 × 0.95) = 4,750 each;
    base 4,750 + 4,750 = 9,500; 1 % → 95 points, pending until shipment, then valid:
    valid 500 (sign-up) + 95 = 595.
    """
    e = new_engine()
    register(e)
    lines = [ln("A", 5000), ln("B", 5000)]
    q = e.quote(cart("m1", "o1", "2025-02-01T10:00:00+09:00", lines))
    assert q["errors"] == []
    assert q["totals"]["items_ex_tax"] == 9500
    assert q["earn"]["points"] == 95
    assert "AND-1" in q["earn"]["rules"]
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", lines)
    assert balances(e, "m1", "2025-02-01T12:00:00+09:00") == pts(valid=500, pending=95)
    ship(e, "m1", "o1", "2025-02-02T10:00:00+09:00")
    assert balances(e, "m1", "2025-02-02T12:00:00+09:00") == pts(valid=595)


def test_AND_1_product_own_rate_points_5pct():
    """AND-1: "... unless a product sets its own rate" (ASSUMPTION: tag points_5pct → 5 %).

    Own-rate line only: ¥2,000 → 1,900 × 5 % = 95.
    Mixed cart: ¥5,000 → 4,750 × 1 % = 47.5, plus ¥2,000 points_5pct → 1,900 × 5 % = 95;
    floor(47.5 + 95) = floor(142.5) = 142.
    """
    e = new_engine()
    register(e)
    at = "2025-02-01T10:00:00+09:00"
    q = e.quote(cart("m1", "o1", at, [ln("P5", 2000, tags=["points_5pct"])]))
    assert q["earn"]["points"] == 95
    q = e.quote(cart("m1", "o2", at, [ln("A", 5000), ln("P5", 2000, tags=["points_5pct"])]))
    assert q["totals"]["items_ex_tax"] == 4750 + 1900
    assert q["earn"]["points"] == 142


def test_AND_1_sale_items_earn():
    """AND-1 ASSUMPTION: sale items earn like any item (the page's 「(セール商品も可)」 is about using
    points; it never excludes sale items from earning).

    Sale item ¥3,000 → member price 2,850 → 1 % = 28.5 → 28 points (pending, valid on shipment).
    """
    e = new_engine()
    register(e)
    lines = [ln("S", 3000, tags=["sale"])]
    q = e.quote(cart("m1", "o1", "2025-02-01T10:00:00+09:00", lines))
    assert q["earn"]["points"] == 28
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", lines)
    ship(e, "m1", "o1", "2025-02-02T10:00:00+09:00")
    assert balances(e, "m1", "2025-02-03") == pts(valid=528)



def test_AND_1_points_may_be_used_on_a_sale_item():
    """AND-1 「お使いいただけます(セール商品も可)」: points pay for a sale item too.

    Sign-up 500 valid. Sale item ¥3,000 → member price 2,850, tax floor(285) → 3,135 grand total;
    using 300 points leaves 2,835 to pay; the earn is on the items ex. tax (AND-1 has no
    after-points base): 1 % of 2,850 = 28. Balance after shipment: 500 - 300 + 28 = 228 valid, 300 used.
    """
    e = new_engine()
    register(e)
    lines = [ln("S", 3000, tags=["sale"])]
    q = e.quote(cart("m1", "o1", "2025-02-01T10:00:00+09:00", lines, redeem=300))
    assert (q["totals"]["grand_total"], q["totals"]["to_pay"], q["redeem"]["applied"]) == (3135, 2835, 300)
    assert q["errors"] == []
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", lines, redeem=300)
    ship(e, "m1", "o1", "2025-02-02T10:00:00+09:00")
    assert balances(e, "m1", "2025-02-03") == pts(valid=228, used=300)

# --------------------------------------------------------------------------------------------
# AND-2 point states
# --------------------------------------------------------------------------------------------

def test_AND_2_pending_until_shipped_then_valid():
    """AND-2: "pending (有効待ち, from order until shipment) → valid (有効) when shipped".

    ¥10,000 → 9,500 × 1 % = 95. Placed: valid 500, pending 95 (and the pending 95 cannot be
    redeemed: quote max on a ¥10,000 cart is min(500, 5,000, 10,450) = 500).
    Shipped: valid 595, pending 0.
    """
    e = new_engine()
    register(e)
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 10000)])
    assert balances(e, "m1", "2025-02-01T11:00:00+09:00") == pts(valid=500, pending=95)
    q = e.quote(cart("m1", "q", "2025-02-01T11:00:00+09:00", [ln("A", 10000)], redeem="max"))
    assert q["redeem"]["max"] == 500
    ship(e, "m1", "o1", "2025-02-03T10:00:00+09:00")
    assert balances(e, "m1", "2025-02-03T11:00:00+09:00") == pts(valid=595)


def test_AND_2_void_when_cancelled():
    """AND-2: "void (無効) when the order is cancelled".

    Order ¥10,000 using 100 points: earns 95 pending; valid 500 − 100 = 400, used 100.
    Cancel: the 95 become void; the 100 used come back at once (program ASSUMPTION
    restore_used_after 0 days): valid 500, used 0, void 95.
    """
    e = new_engine()
    register(e)
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 10000)], redeem=100)
    assert balances(e, "m1", "2025-02-01T11:00:00+09:00") == pts(valid=400, pending=95, used=100)
    cancel(e, "m1", "o1", "2025-02-01T12:00:00+09:00")
    assert balances(e, "m1", "2025-02-01T13:00:00+09:00") == pts(valid=500, void=95)


def test_AND_2_held_by_operator_not_usable_until_released():
    """AND-2: "held (保留, put on hold by an operator, not usable until released)".

    500 valid; hold 200 → valid 300, held 200; a ¥10,000 cart (grand total 10,450) can use at
    most min(300, 5,000, 10,450) = 300. Release 200 → valid 500, held 0; max back to 500.
    """
    e = new_engine()
    register(e)
    send(e, "points.held", "2025-02-01T10:00:00+09:00", amount=200, reason="fraud check")
    assert balances(e, "m1", "2025-02-01T11:00:00+09:00") == pts(valid=300, held=200)
    q = e.quote(cart("m1", "q1", "2025-02-01T11:00:00+09:00", [ln("A", 10000)], redeem="max"))
    assert q["redeem"]["max"] == 300 and q["redeem"]["applied"] == 300
    send(e, "points.released", "2025-02-02T10:00:00+09:00", amount=200, reason="cleared")
    assert balances(e, "m1", "2025-02-02T11:00:00+09:00") == pts(valid=500)
    q = e.quote(cart("m1", "q2", "2025-02-02T11:00:00+09:00", [ln("A", 10000)], redeem="max"))
    assert q["redeem"]["max"] == 500


# --------------------------------------------------------------------------------------------
# AND-3 use
# --------------------------------------------------------------------------------------------

def test_AND_3_max_mode_and_given_number_against_grand_total():
    """AND-3: "1 point = 1 yen against the grand total (shipping and tax included). Two modes:
    'use as much as possible' and 'use a given number'."

    Cart ¥10,000 + shipping ¥500: items 9,500; tax 10 % once on 9,500 + 500 = 10,000 → 1,000;
    grand total 9,500 + 500 + 1,000 = 11,000. Balance 500.
    max → min(500, 5,000, 11,000) = 500, to pay 10,500.  Given 300 → to pay 10,700.
    Placing with max: valid 0, used 500 (earn 95 pending).
    """
    e = new_engine()
    register(e)
    at = "2025-02-01T10:00:00+09:00"
    lines = [ln("A", 10000)]
    q = e.quote(cart("m1", "o1", at, lines, shipping=500, redeem="max"))
    t = q["totals"]
    assert (t["items_ex_tax"], t["shipping_ex_tax"], t["tax"], t["tax_total"], t["grand_total"]) == \
        (9500, 500, {"0.10": 1000}, 1000, 11000)
    assert q["redeem"]["max"] == 500 and q["redeem"]["applied"] == 500
    assert t["to_pay"] == 10500
    q = e.quote(cart("m1", "o1", at, lines, shipping=500, redeem=300))
    assert q["redeem"]["applied"] == 300 and q["totals"]["to_pay"] == 10700 and q["errors"] == []
    place(e, "m1", "o1", at, lines, shipping=500, redeem="max")
    assert balances(e, "m1", "2025-02-01T11:00:00+09:00") == pts(valid=0, pending=95, used=500)


def test_AND_3_grand_total_binds_when_smaller_than_balance():
    """AND-3: points count against the grand total, shipping and tax included.

    Item ¥100 → member price 95; shipping 300; tax 10 % once on 95 + 300 = 395 → 39;
    grand total 95 + 300 + 39 = 434 < balance 500 → max 434, to pay 0.
    """
    e = new_engine()
    register(e)
    q = e.quote(cart("m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 100)], shipping=300, redeem="max"))
    assert q["totals"]["tax"] == {"0.10": 39}
    assert q["totals"]["grand_total"] == 434
    assert q["redeem"]["max"] == 434 and q["redeem"]["applied"] == 434
    assert q["totals"]["to_pay"] == 0


def test_AND_3_cap_5000_per_order():
    """AND-3: "At most 5,000 points per order."

    Balance 500 + 10,000 granted = 10,500. Cart ¥100,000 → 95,000 + tax 9,500 = 104,500.
    max = min(10,500, 5,000, 104,500) = 5,000. Placed with max: valid 5,500, used 5,000.
    """
    e = new_engine()
    register(e)
    grant(e, "m1", 10000, "2025-02-01T10:00:00+09:00")
    at = "2025-02-02T10:00:00+09:00"
    q = e.quote(cart("m1", "o1", at, [ln("A", 100000)], redeem="max"))
    assert q["totals"]["grand_total"] == 104500
    assert q["redeem"]["max"] == 5000 and q["redeem"]["applied"] == 5000
    assert q["totals"]["to_pay"] == 99500
    place(e, "m1", "o1", at, [ln("A", 100000)], redeem="max")
    b = balances(e, "m1", "2025-02-02T11:00:00+09:00")
    assert (b["valid"], b["used"]) == (5500, 5000)


def test_AND_3_over_cap_request_rejected_ledger_unchanged():
    """AND-3 cap: asking 5,001 with a 10,500 balance on a 104,500 order is over the 5,000 cap:
    the quote reports an error and applies nothing; the order event is rejected and the member
    (balances, lots) and ledger are exactly as before."""
    e = new_engine()
    register(e)
    grant(e, "m1", 10000, "2025-02-01T10:00:00+09:00")
    at = "2025-02-02T10:00:00+09:00"
    q = e.quote(cart("m1", "o1", at, [ln("A", 100000)], redeem=5001))
    assert q["errors"] and q["redeem"]["applied"] == 0
    before = snapshot(e, "m1", "2025-02-03")
    r = place(e, "m1", "o1", at, [ln("A", 100000)], redeem=5001, expect="rejected")
    assert r.rejected[0]["rule"] == "AND-3"
    assert snapshot(e, "m1", "2025-02-03") == before
    assert balances(e, "m1", "2025-02-03") == pts(valid=10500)
    # exactly the cap is fine
    place(e, "m1", "o1", at, [ln("A", 100000)], redeem=5000)
    assert balances(e, "m1", "2025-02-03")["used"] == 5000


def test_AND_3_over_balance_request_rejected_ledger_unchanged():
    """AND-3 / CONTRACT "a redemption over the balance" is bad input: balance 500, ask 501 on an
    11,000 order (well under the cap) → rejected; balances stay valid 500, used 0."""
    e = new_engine()
    register(e)
    at = "2025-02-01T10:00:00+09:00"
    q = e.quote(cart("m1", "o1", at, [ln("A", 10000)], redeem=501))
    assert q["errors"] and q["redeem"]["applied"] == 0
    before = snapshot(e, "m1", "2025-02-02")
    place(e, "m1", "o1", at, [ln("A", 10000)], redeem=501, expect="rejected")
    assert snapshot(e, "m1", "2025-02-02") == before
    assert balances(e, "m1", "2025-02-02") == pts(valid=500)


# --------------------------------------------------------------------------------------------
# AND-4 sign-up
# --------------------------------------------------------------------------------------------

def test_AND_4_signup_500_valid_at_once():
    """AND-4: "Sign-up bonus: 500 points, valid at once."  → valid 500, pending 0, at the very
    moment of registration; one lot of 500 under AND-4."""
    e = new_engine()
    register(e)
    assert balances(e, "m1", REG_AT) == pts(valid=500)
    lots = e.member("m1", REG_AT)["lots"]
    assert [(l["amount"], l["state"], l["rule"]) for l in lots] == [(500, "valid", "AND-4")]
    # and usable at once
    q = e.quote(cart("m1", "o1", REG_AT, [ln("A", 10000)], redeem="max"))
    assert q["redeem"]["applied"] == 500


# --------------------------------------------------------------------------------------------
# AND-5 rolling expiry
# --------------------------------------------------------------------------------------------

def test_AND_5_expired_the_day_after_last_valid_day():
    """AND-5: "Points stay valid for 1 year from the member's last point acquisition".

    Sign-up 2025-01-05 → last valid day 2026-01-05 → expired from 2026-01-06 00:00 JST
    (= 2026-01-05T15:00Z). One second before: valid 500; at that instant: expired 500.
    """
    e = new_engine()
    register(e)
    assert balances(e, "m1", "2026-01-05T23:59:59+09:00") == pts(valid=500)
    assert balances(e, "m1", "2026-01-05T14:59:59+00:00") == pts(valid=500)
    assert balances(e, "m1", "2026-01-06T00:00:00+09:00") == pts(expired=500)
    assert balances(e, "m1", "2026-01-05T15:00:00+00:00") == pts(expired=500)
    assert e.member("m1", "2025-06-01")["lots"][0]["expires_at"] == "2026-01-06T00:00:00+09:00"


def test_AND_5_rolling_expiry_extends_whole_balance():
    """AND-5: "rolling: any earn within the year extends the whole balance. An acquisition is the
    moment points become valid (shipment, a bonus)."

    Sign-up 500 on 2025-01-05. Order placed 2025-06-01 (¥10,000 → 95 pending), shipped
    2025-06-10: the acquisition is 2025-06-10 (not the placement), so all 595 are valid through
    2026-06-10 and expired from 2026-06-11 00:00.
    """
    e = new_engine()
    register(e)
    place(e, "m1", "o1", "2025-06-01T10:00:00+09:00", [ln("A", 10000)])
    ship(e, "m1", "o1", "2025-06-10T10:00:00+09:00")
    assert balances(e, "m1", "2026-01-06T00:00:00+09:00") == pts(valid=595)
    assert balances(e, "m1", "2026-06-05T12:00:00+09:00") == pts(valid=595)   # placement +1y passed
    assert balances(e, "m1", "2026-06-10T23:59:59+09:00") == pts(valid=595)
    assert balances(e, "m1", "2026-06-11T00:00:00+09:00") == pts(expired=595)


def test_AND_5_expired_points_never_come_back():
    """AND-5: "Expired points are never restored."

    Sign-up 500 expires from 2026-01-06. A review on 2026-02-01 (300, an acquisition) does not
    revive them: valid 300, expired 500. The review's 300 then last until 2027-02-01 and are
    expired from 2027-02-02: expired 800.
    """
    e = new_engine()
    register(e)
    review(e, "m1", "bag", "2026-02-01T10:00:00+09:00")
    assert balances(e, "m1", "2026-02-01T11:00:00+09:00") == pts(valid=300, expired=500)
    assert balances(e, "m1", "2027-02-01T23:59:59+09:00") == pts(valid=300, expired=500)
    assert balances(e, "m1", "2027-02-02T00:00:00+09:00") == pts(expired=800)


def test_AND_5_points_given_back_after_their_validity_expire_at_once():
    """AND-5 with AND-2/AND-3: points spent on an order come back when it is cancelled, with the
    validity they had; if that ended while they were spent, they expire at once ("expired points
    are never restored") and a checkout quoted at that very instant cannot use them.

    Sign-up 500 on 2025-01-05 (valid to 2026-01-05). Order o1 on 2025-02-01 uses all 500 on a
    ¥10,000 item (¥9,500 + tax 950 = ¥10,450; earn 1 % of 9,500 = 95 pending). Cancelled on
    2026-02-01 (never shipped): the 500 come back and expire, the 95 are void.
    valid 0, expired 500, void 95; a quote at the cancellation's instant: redeem max 0.
    """
    e = new_engine()
    register(e)
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 10000)], redeem=500)
    cancel(e, "m1", "o1", "2026-02-01T10:00:00+09:00")
    assert balances(e, "m1", "2026-02-01T10:00:00+09:00") == pts(expired=500, void=95)
    q = e.quote(cart("m1", "o2", "2026-02-01T10:00:00+09:00", [ln("B", 10000)], redeem="max"))
    assert q["redeem"]["max"] == 0 and q["redeem"]["applied"] == 0


def test_AND_5_AND_6_repeated_quotes_between_events_follow_the_expiry():
    """AND-5, AND-6 with AND-3, for a checkout quoting one member again and again between two
    events (the engine keeps the member's view between quotes, engine/report.Views): the answers
    are the ones a fresh engine gives at each moment, as each expiry passes.

    Sign-up 500 on 2025-01-05 (rolling: valid through 2026-01-05, expired from 2026-01-06 00:00
    JST); limited-time 200 granted 2025-03-01 with expires_on 2025-12-31 (AND-6: expired from
    2026-01-01 00:00). Cart ¥10,000 → ¥9,500 member price + tax 950 = ¥10,450; the balance binds
    (under the cap of 5,000): 2025-12-31 23:59:59 → 700; 2026-01-01 00:00 and 2026-01-05 → 500;
    2026-01-06 00:00 and 2026-03-01 → 0; back at 2025-12-31 10:00 → 700.
    """
    e = new_engine()
    register(e)
    grant(e, "m1", 200, "2025-03-01T10:00:00+09:00", expires_on="2025-12-31")
    expected = [("2025-12-31T23:59:59+09:00", 700), ("2026-01-01T00:00:00+09:00", 500),
                ("2026-01-05T12:00:00+09:00", 500), ("2026-01-06T00:00:00+09:00", 0),
                ("2026-03-01T10:00:00+09:00", 0), ("2025-12-31T10:00:00+09:00", 700)]
    for at, most in expected:
        for engine in (e, Engine(e.program, e.store)):   # kept views, and a fresh engine
            q = engine.quote(cart("m1", "o1", at, [ln("A", 10000)], redeem="max"))
            assert (q["redeem"]["max"], q["totals"]["grand_total"]) == (most, 10450), (at, q["redeem"])
    # an event retires the kept view: a review on 2026-01-02 (300, an acquisition) extends the
    # rolling 500 with it to 2027-01-02, so at 2026-03-01 all 800 may be used
    review(e, "m1", "bag", "2026-01-02T10:00:00+09:00")
    q = e.quote(cart("m1", "o1", "2026-03-01T10:00:00+09:00", [ln("A", 10000)], redeem="max"))
    assert q["redeem"]["max"] == 800


# --------------------------------------------------------------------------------------------
# AND-6 limited-time points
# --------------------------------------------------------------------------------------------

def test_AND_6_limited_time_points_expire_on_their_date():
    """AND-6: "Limited-time points expire on the date set when they were issued, whatever AND-5
    says."

    Sign-up 500 (2025-01-05); limited 200 granted 2025-03-01 with expires_on 2025-12-31; review
    300 on 2025-12-01 (an acquisition: rolling points now last to 2026-12-01).
    2025-12-31 23:59:59: valid 500 + 200 + 300 = 1,000.
    2026-01-01 00:00: the limited 200 expire (AND-6), the rolling 800 stay: valid 800, expired 200.
    2026-01-06 (sign-up + 1 y + 1 d): still valid 800 (rolling extended by the review).
    """
    e = new_engine()
    register(e)
    grant(e, "m1", 200, "2025-03-01T10:00:00+09:00", expires_on="2025-12-31")
    review(e, "m1", "bag", "2025-12-01T10:00:00+09:00")
    assert balances(e, "m1", "2025-12-31T23:59:59+09:00") == pts(valid=1000)
    assert balances(e, "m1", "2026-01-01T00:00:00+09:00") == pts(valid=800, expired=200)
    assert balances(e, "m1", "2026-01-06T12:00:00+09:00") == pts(valid=800, expired=200)
    expired = [l for l in e.member("m1", "2026-01-02")["lots"] if l["state"] == "expired"]
    assert [(l["amount"], l["rule"]) for l in expired] == [(200, "AND-6")]


# --------------------------------------------------------------------------------------------
# AND-7 coupons
# --------------------------------------------------------------------------------------------

def test_AND_7_coupon_lowers_earn_base_and_return_reverses_post_coupon_price():
    """AND-7: "points are earned on the price after the coupon ... the loyalty side only has to
    reverse points on the post-coupon price."

    Lines ¥5,000 (A) and ¥3,000 (B) → member prices 4,750 and 2,850 (sum 7,600).
    Coupon ¥1,000 spread in proportion: A 1,000 × 4,750/7,600 = 625, B 375.
    Net A 4,125, B 2,475 → items 6,600; tax 660; grand total 7,260; earn floor(66.00) = 66.
    Return B: kept A 4,125 × 1 % = 41.25 → 41; void 66 − 41 = 25 (not 28 = floor(2,850 × 1 %),
    the pre-coupon price). Valid 500 + 41 = 541, void 25.
    """
    e = new_engine()
    register(e)
    at = "2025-02-01T10:00:00+09:00"
    lines = [ln("A", 5000), ln("B", 3000)]
    q = e.quote(cart("m1", "o1", at, lines, coupon=1000))
    assert (q["totals"]["items_ex_tax"], q["totals"]["tax_total"], q["totals"]["grand_total"]) == (6600, 660, 7260)
    assert q["earn"]["points"] == 66
    place(e, "m1", "o1", at, lines, coupon=1000)
    ship(e, "m1", "o1", "2025-02-02T10:00:00+09:00")
    deliver(e, "m1", "o1", "2025-02-03T10:00:00+09:00")
    assert balances(e, "m1", "2025-02-03T11:00:00+09:00") == pts(valid=566)
    return_(e, "m1", "o1", "2025-02-05T10:00:00+09:00", [("B", 1)])
    assert balances(e, "m1", "2025-02-05T11:00:00+09:00") == pts(valid=541, void=25)


# --------------------------------------------------------------------------------------------
# AND-8 member perks
# --------------------------------------------------------------------------------------------

def test_AND_8_member_price_5pct_off_in_quote_totals():
    """AND-8: "members get 5% off every item ... points are earned on the price after it".

    ¥10,000 → 9,500; tax 950; grand total 10,450; earn 95.
    Per unit, floored (ASSUMPTION): 3 × ¥990 → floor(940.5) = 940 × 3 = 2,820 (a per-line floor
    would give floor(2,970 × 0.95) = 2,821); tax 282; grand total 3,102; earn floor(28.2) = 28.
    Tax once per rate: 2 lines × ¥1,050 → 997 + 997 = 1,994 → floor(199.4) = 199 (per line it
    would be 99 + 99 = 198); 8 % line ¥2,000 → 1,900 → 152.
    A guest pays list price: ¥10,000, tax 1,000, grand total 11,000, earns nothing.
    """
    e = new_engine()
    register(e)
    at = "2025-02-01T10:00:00+09:00"
    t = e.quote(cart("m1", "o1", at, [ln("A", 10000)]))
    assert (t["totals"]["items_ex_tax"], t["totals"]["tax"], t["totals"]["grand_total"], t["earn"]["points"]) == \
        (9500, {"0.10": 950}, 10450, 95)
    t = e.quote(cart("m1", "o2", at, [ln("A", 990, qty=3)]))
    assert (t["totals"]["items_ex_tax"], t["totals"]["tax_total"], t["totals"]["grand_total"], t["earn"]["points"]) == \
        (2820, 282, 3102, 28)
    t = e.quote(cart("m1", "o3", at, [ln("A", 1050), ln("B", 1050), ln("F", 2000, tax_rate=0.08)]))
    assert t["totals"]["items_ex_tax"] == 1994 + 1900
    assert t["totals"]["tax"] == {"0.08": 152, "0.10": 199}
    assert t["totals"]["grand_total"] == 1994 + 1900 + 152 + 199
    g = e.quote(cart("g1", "o4", at, [ln("A", 10000)], guest=True))
    assert (g["totals"]["items_ex_tax"], g["totals"]["tax_total"], g["totals"]["grand_total"], g["earn"]["points"]) == \
        (10000, 1000, 11000, 0)


def test_AND_8_birthday_500_on_first_of_birth_month():
    """AND-8: "birthday month: 500 points on the 1st of the birth month to every member with a
    birth date on file".

    m1 born 1990-03-12, registered 2025-01-05: 500 until 2025-02-28 23:59:59; 1,000 from
    2025-03-01 00:00 JST with no event that day (read through member(as_of)); the new lot is
    AND-8. m2 (no birth date) stays at 500.
    Next year: the 2025-03-01 bonus is an acquisition, so the balance lasts through 2026-03-01,
    when the next 500 arrive: 1,500 on 2026-03-01.
    """
    e = new_engine()
    register(e, "m1", birthday="1990-03-12")
    register(e, "m2")
    assert balances(e, "m1", "2025-02-28T23:59:59+09:00") == pts(valid=500)
    assert balances(e, "m1", "2025-03-01T00:00:00+09:00") == pts(valid=1000)
    bday = [l for l in e.member("m1", "2025-03-01T00:00:00+09:00")["lots"] if l["rule"] == "AND-8"]
    assert [(l["amount"], l["granted_at"]) for l in bday] == [(500, "2025-03-01T00:00:00+09:00")]
    assert balances(e, "m2", "2025-03-01T00:00:00+09:00") == pts(valid=500)
    assert balances(e, "m1", "2026-03-01T12:00:00+09:00") == pts(valid=1500)


def test_AND_8_birthday_booked_when_a_later_event_arrives_and_review_300():
    """AND-8: birthday 500 on 03-01, then "a product review earns 300 points".

    Registered 2025-01-05 (500), birthday 2025-03-01 (+500), review 2025-03-15 (+300) → 1,300,
    and the stored ledger (not just the as-of view) holds the birthday grant.
    """
    e = new_engine()
    register(e, birthday="1990-03-12")
    review(e, "m1", "bag", "2025-03-15T10:00:00+09:00")
    assert balances(e, "m1", "2025-03-15T11:00:00+09:00") == pts(valid=1300)
    booked = sorted((x.rule, x.amount) for x in e.store.entries("m1") if x.to_state == "valid")
    assert ("AND-8", 500) in booked and ("AND-4", 500) in booked
    assert sum(a for _, a in booked) == 1300


def test_AND_8_only_a_review_of_a_product_bought_and_received_earns_300():
    """AND-8 「ご購入された商品レビュー」: the 300 points go to a review of a product the member
    bought (a shipped or delivered order of it, not every unit returned); any other review is
    applied and earns nothing (docs/CONTRACT.md, review.posted).

    Sign-up 500. 'coat' never ordered: review → +0 (500). 'bag' placed 02-01 (¥4,000 → member
    price 3,800 → 1 % = 38 pending), reviewed 02-02 before shipping → +0 (ASSUMPTION: bought
    means received), 500 valid. Shipped 02-03: +38 → 538. 'tee' placed 02-01 and shipped 02-02,
    delivered 02-03, all returned 02-04 (its 1 % of 1,900 = 19 voided): review 02-05 → +0.
    'bag' reviewed again 02-06 after shipment → +0: the review of 02-02 was the product's one
    review (AND-9: a second one overwrites it and earns nothing), so 538 stays. A review of 'cap'
    bought and shipped the same way → +300 → 838.
    """
    e = new_engine()
    register(e)
    review(e, "m1", "coat", "2025-01-20T10:00:00+09:00", bought=False)
    assert points(e, "m1", "2025-01-21")["valid"] == 500
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("BAG-1", 4000, product="bag")])
    place(e, "m1", "o2", "2025-02-01T11:00:00+09:00", [ln("TEE-1", 2000, product="tee")])
    ship(e, "m1", "o2", "2025-02-02T09:00:00+09:00")
    review(e, "m1", "bag", "2025-02-02T10:00:00+09:00", bought=False)
    assert points(e, "m1", "2025-02-02T11:00:00+09:00")["valid"] == 500 + 19
    ship(e, "m1", "o1", "2025-02-03T09:00:00+09:00")
    deliver(e, "m1", "o2", "2025-02-03T10:00:00+09:00")
    return_(e, "m1", "o2", "2025-02-04T10:00:00+09:00", [("TEE-1", 1)])
    assert points(e, "m1", "2025-02-04T11:00:00+09:00")["valid"] == 538
    review(e, "m1", "tee", "2025-02-05T10:00:00+09:00", bought=False)
    assert points(e, "m1", "2025-02-05T11:00:00+09:00")["valid"] == 538
    review(e, "m1", "bag", "2025-02-06T10:00:00+09:00", bought=False)
    assert points(e, "m1", "2025-02-06T11:00:00+09:00")["valid"] == 538
    review(e, "m1", "cap", "2025-02-07T10:00:00+09:00")   # a ¥0 sample of 'cap' shipped just before
    assert points(e, "m1", "2025-02-07T11:00:00+09:00")["valid"] == 838


# --------------------------------------------------------------------------------------------
# AND-9 one review per product
# --------------------------------------------------------------------------------------------

def test_AND_9_second_review_of_same_product_earns_nothing():
    """AND-9: "One review per product, whatever colour or size variant; a second review of the
    same product overwrites the first and earns nothing more."

    The event names the product (CONTRACT: `product` groups the variants). Review of 'tee' → +300;
    a second review of 'tee' (say the other colour) → +0; a review of 'bag' → +300.
    500 + 300 + 0 + 300 = 1,100.
    """
    e = new_engine()
    register(e)
    review(e, "m1", "tee", "2025-02-01T10:00:00+09:00")
    assert balances(e, "m1", "2025-02-01T11:00:00+09:00") == pts(valid=800)
    review(e, "m1", "tee", "2025-02-05T10:00:00+09:00")
    assert balances(e, "m1", "2025-02-05T11:00:00+09:00") == pts(valid=800)
    review(e, "m1", "bag", "2025-02-06T10:00:00+09:00")
    assert balances(e, "m1", "2025-02-06T11:00:00+09:00") == pts(valid=1100)


# --------------------------------------------------------------------------------------------
# AND-10 tiers
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("list_price, counted, first_earn, tier, rate_earn", [
    # floor(52,632 × 0.95) = floor(50,000.4) = 50,000: not more than 50,000 → regular,
    # next ¥10,000 order: 9,500 × 1 % = 95
    (52632, 50000, 500, "regular", 95),
    # floor(52,633 × 0.95) = floor(50,001.35) = 50,001 > 50,000 → silver, 9,500 × 2 % = 190
    (52633, 50001, 500, "silver", 190),
    # floor(105,264 × 0.95) = floor(100,000.8) = 100,000: not more than 100,000 → silver, 190
    (105264, 100000, 1000, "silver", 190),
    # floor(105,265 × 0.95) = floor(100,001.75) = 100,001 → gold, 9,500 × 3 % = 285
    (105265, 100001, 1000, "gold", 285),
])
def test_AND_10_tier_boundaries_after_member_price(list_price, counted, first_earn, tier, rate_earn):
    """AND-10: the rank goes up when the amount of the last 12 months *exceeds* a threshold
    (「一定金額を超える」, strictly more). ASSUMPTION: regular 1 % (≤ ¥50,000), silver 2 %
    (> ¥50,000), gold 3 % (> ¥100,000), ex-tax item amounts after member price and coupons,
    counted from placement.

    A first order at list price P counts floor(P × 0.95) (the list price itself is above the
    boundary in the 49,999 case). It earns at regular 1 %: floor(counted / 100). A later
    ¥10,000 order (9,500) earns 9,500 × the new tier's rate.
    """
    e = new_engine()
    register(e)
    q = e.quote(cart("m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", list_price)]))
    assert q["totals"]["items_ex_tax"] == counted
    assert q["tier"] == "regular" and q["earn"]["points"] == first_earn
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", list_price)])
    q = e.quote(cart("m1", "o2", "2025-02-10T10:00:00+09:00", [ln("B", 10000)]))
    assert q["tier"] == tier
    assert q["earn"]["points"] == rate_earn
    assert e.member("m1", "2025-02-10T10:00:00+09:00")["tier"] == tier


def test_AND_10_rank_window_and_cancelled_orders():
    """AND-10 window of 12 months; ASSUMPTION "less cancelled and returned lines".

    m1: ¥105,265 (→ 100,001) placed 2025-02-01 → gold on 2025-02-10 (¥10,000 → 9,500 × 3 % = 285);
    on 2026-03-01 that order is more than 12 months old → regular, 95.
    m2: same order then cancelled → counts 0 → regular, 95.
    """
    e = new_engine()
    register(e, "m1")
    register(e, "m2")
    for m in ("m1", "m2"):
        place(e, m, f"{m}-o1", "2025-02-01T10:00:00+09:00", [ln("A", 105265)])
    cancel(e, "m2", "m2-o1", "2025-02-02T10:00:00+09:00")
    q = e.quote(cart("m1", "x", "2025-02-10T10:00:00+09:00", [ln("B", 10000)]))
    assert (q["tier"], q["earn"]["points"]) == ("gold", 285)
    q = e.quote(cart("m1", "x", "2026-03-01T10:00:00+09:00", [ln("B", 10000)]))
    assert (q["tier"], q["earn"]["points"]) == ("regular", 95)
    q = e.quote(cart("m2", "x", "2025-02-10T10:00:00+09:00", [ln("B", 10000)]))
    assert (q["tier"], q["earn"]["points"]) == ("regular", 95)


def test_AND_10_window_edges_day_by_day():
    """AND-10: the 12 months ending on day D run from the day after D's date a year earlier
    through D. The engine reads them from running sums by month and day (engine/core/tiers.py); the
    edges fall inside months, so the day sums are what decides.

    o1 2025-02-01 10:00 and o2 2025-03-15 10:00, ¥52,633 each → member price ¥50,001 counted each.
    A ¥10,000 cart (¥9,500 after member price) earns 3 % gold = 285, 2 % silver = 190, 1 % = 95:
    2026-01-31 12:00: window 2025-02-01..2026-01-31, both count, ¥100,002 → gold, 285;
    2026-02-01 12:00: window from 2025-02-02: o1 is out, o2 only, ¥50,001 → silver, 190;
    2026-03-14 12:00: window from 2025-03-15: o2 still counts → silver, 190;
    2026-03-15 00:00: window from 2025-03-16: nothing → regular, 95.
    At the very instant of o2 (the member's clock) the window ends just before it: o1 only, silver.
    """
    e = new_engine()
    register(e, "m1")
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 52633)])
    place(e, "m1", "o2", "2025-03-15T10:00:00+09:00", [ln("A", 52633)])
    for at, tier, earn in (("2026-01-31T12:00:00+09:00", "gold", 285), ("2026-02-01T12:00:00+09:00", "silver", 190),
                           ("2026-03-14T12:00:00+09:00", "silver", 190), ("2026-03-15T00:00:00+09:00", "regular", 95),
                           ("2025-03-15T10:00:00+09:00", "silver", 190)):
        q = e.quote(cart("m1", "x", at, [ln("B", 10000)]))
        assert (q["tier"], q["earn"]["points"]) == (tier, earn), at


def test_AND_10_an_order_of_2025_03_01_is_out_of_the_window_on_2026_03_01():
    """AND-10 as corrected: on 2026-03-01 the window is 2025-03-02..2026-03-01, so an order of
    2025-03-01 no longer counts (a window of 366 days counted it). ¥105,265 → 100,001 → gold on
    2026-02-28 (3 % of 9,500 = 285); regular on 2026-03-01 at 00:00 (95)."""
    e = new_engine()
    register(e, "m1")
    place(e, "m1", "o1", "2025-03-01T10:00:00+09:00", [ln("A", 105265)])
    q = e.quote(cart("m1", "x", "2026-02-28T23:59:00+09:00", [ln("B", 10000)]))
    assert (q["tier"], q["earn"]["points"]) == ("gold", 285)
    q = e.quote(cart("m1", "x", "2026-03-01T00:00:00+09:00", [ln("B", 10000)]))
    assert (q["tier"], q["earn"]["points"]) == ("regular", 95)
    assert e.member("m1", "2026-03-01T00:00:00+09:00")["tier"] == "regular"


# --------------------------------------------------------------------------------------------
# AND-11 returns
# --------------------------------------------------------------------------------------------

def _delivered_order(e, member, lines):
    place(e, member, f"{member}-o1", "2025-02-01T10:00:00+09:00", lines)
    ship(e, member, f"{member}-o1", "2025-02-02T10:00:00+09:00")
    deliver(e, member, f"{member}-o1", "2025-02-03T14:00:00+09:00")


def test_AND_11_return_on_day_7_accepted():
    """AND-11: "Returns are accepted within 7 days of arrival".

    Arrival 2025-02-03 (day 0); day 7 = 2025-02-10. ¥10,000 order earned 95 (valid 595 after
    shipment); the return on day 7 is accepted and voids the 95: valid 500, void 95.
    """
    e = new_engine()
    register(e)
    _delivered_order(e, "m1", [ln("A", 10000)])
    assert balances(e, "m1", "2025-02-03T15:00:00+09:00") == pts(valid=595)
    return_(e, "m1", "m1-o1", "2025-02-10T20:00:00+09:00", [("A", 1)])
    assert balances(e, "m1", "2025-02-10T21:00:00+09:00") == pts(valid=500, void=95)


def test_AND_11_return_on_day_8_refused_ledger_unchanged():
    """AND-11: "... A return event that breaks this is refused with a clear reason (nothing
    changes in the ledger)."

    Arrival 2025-02-03; day 8 = 2025-02-11 → refused under AND-11; still valid 595, void 0.
    """
    e = new_engine()
    register(e)
    _delivered_order(e, "m1", [ln("A", 10000)])
    before = snapshot(e, "m1", "2025-02-12")
    r = return_(e, "m1", "m1-o1", "2025-02-11T09:00:00+09:00", [("A", 1)], expect="rejected")
    assert r.rejected[0]["rule"] == "AND-11" and r.rejected[0]["reason"]
    assert snapshot(e, "m1", "2025-02-12") == before
    assert balances(e, "m1", "2025-02-12") == pts(valid=595)


def test_AND_11_sale_item_cannot_be_returned():
    """AND-11: "sale items cannot be returned".

    Order: ¥10,000 regular (9,500) + ¥3,000 sale (2,850) → floor(95 + 28.5) = 123 points, valid
    623 after shipment. Returning the sale line on day 2 is refused (AND-11); a return naming
    both lines is refused as a whole; nothing changes: valid 623.
    """
    e = new_engine()
    register(e)
    _delivered_order(e, "m1", [ln("A", 10000), ln("S", 3000, tags=["sale"])])
    assert balances(e, "m1", "2025-02-04") == pts(valid=623)
    before = snapshot(e, "m1", "2025-02-06")
    r = return_(e, "m1", "m1-o1", "2025-02-05T10:00:00+09:00", [("S", 1)], expect="rejected")
    assert r.rejected[0]["rule"] == "AND-11"
    return_(e, "m1", "m1-o1", "2025-02-05T11:00:00+09:00", [("A", 1), ("S", 1)], expect="rejected")
    assert snapshot(e, "m1", "2025-02-06") == before
    assert balances(e, "m1", "2025-02-06") == pts(valid=623)


# --------------------------------------------------------------------------------------------
# AND-12 no cash
# --------------------------------------------------------------------------------------------

def test_AND_12_no_cash_out():
    """AND-12: "Points cannot be turned into cash."

    There is no event to pay points out: an unknown type such as points.cashed_out is rejected
    (field 'type') and the 500 stay valid. Nor can points exceed what is paid: on a 434 order
    (¥100 → 95 + shipping 300 + tax 39) asking 500 is refused — no change is given.
    """
    e = new_engine()
    register(e)
    before = snapshot(e, "m1", "2025-02-02")
    for kind in ("points.cashed_out", "points.paid_out", "points.withdrawn"):
        r = send(e, kind, "2025-02-01T10:00:00+09:00", expect="rejected", amount=500, reason="cash please")
        assert r.rejected[0]["field"] == "type"
    assert snapshot(e, "m1", "2025-02-02") == before
    q = e.quote(cart("m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 100)], shipping=300, redeem=500))
    assert q["errors"] and q["redeem"]["applied"] == 0 and q["totals"]["to_pay"] == 434
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 100)], shipping=300, redeem=500, expect="rejected")
    assert balances(e, "m1", "2025-02-02") == pts(valid=500)


# --------------------------------------------------------------------------------------------
# X-1 … X-6
# --------------------------------------------------------------------------------------------

def _yaml_numbers(node) -> set:
    out = set()
    if isinstance(node, dict):
        for v in node.values():
            out |= _yaml_numbers(v)
    elif isinstance(node, list):
        for v in node:
            out |= _yaml_numbers(v)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out.add(node)
    return out


def _allowed_context(node: ast.AST, parents: dict) -> bool:
    """Input-size limits of the event decoder (msgspec.Meta(le=100_000), max_length=500) and
    module constants named MAX_*/MIN_* are not program rules."""
    p = parents.get(node)
    while isinstance(p, (ast.UnaryOp, ast.BinOp)):
        p = parents.get(p)
    if isinstance(p, ast.keyword):
        call = parents.get(p)
        if isinstance(call, ast.Call) and isinstance(call.func, (ast.Attribute, ast.Name)):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
            if name == "Meta":
                return True
    if isinstance(p, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() and
                                         t.id.startswith(("MAX_", "MIN_")) for t in p.targets):
        return True
    return _is_http_status(node, parents)


def _name_of(node) -> str:
    if isinstance(node, ast.Name):
        return node.id.lower()
    if isinstance(node, ast.Attribute):
        return node.attr.lower()
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.lower()
    return ""


def _is_http_status(node: ast.AST, parents: dict) -> bool:
    """An HTTP status code (e.g. 500) in the service layer is not the program's 500 points:
    status=/status_code= arguments, a "status" dict entry or variable, a comparison with a
    status, or an argument of a JSON/response/HTTP helper."""
    if not (type(node.value) is int and 100 <= node.value <= 599):
        return False
    p = parents.get(node)
    if isinstance(p, ast.keyword):
        return "status" in (p.arg or "")
    if isinstance(p, ast.Dict):
        return any(v is node and "status" in _name_of(k) for k, v in zip(p.keys, p.values))
    if isinstance(p, ast.Call):
        name = _name_of(p.func)
        return node in p.args and any(w in name for w in ("json", "response", "http", "status", "error", "abort"))
    if isinstance(p, ast.Compare):
        return any("status" in _name_of(x) for x in [p.left, *p.comparators])
    if isinstance(p, ast.Tuple) and isinstance(parents.get(p), ast.Assign):
        i = p.elts.index(node)
        return any(isinstance(t, ast.Tuple) and len(t.elts) == len(p.elts) and "status" in _name_of(t.elts[i])
                   for t in parents[p].targets)
    if isinstance(p, (ast.Assign, ast.AnnAssign)):
        targets = p.targets if isinstance(p, ast.Assign) else [p.target]
        return all("status" in _name_of(t) for t in targets)
    return False


def _program_numbers() -> set:
    data = yaml.safe_load(PROGRAM.read_text(encoding="utf-8"))
    numbers = {n for n in _yaml_numbers(data["versions"]) if n >= 100 or n != int(n)}
    numbers.add(0.95)   # derived: the member-price factor 1 − 0.05
    return numbers


def _hard_coded(paths, numbers: set, root: Path) -> list[str]:
    offenders = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and type(node.value) in (int, float):
                if any(node.value == n for n in numbers) and not _allowed_context(node, parents):
                    offenders.append(f"{where}: {node.value!r}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    value = float(node.value.strip())
                except ValueError:
                    continue
                if any(value == n for n in numbers):
                    offenders.append(f"{where}: {node.value!r}")
            elif isinstance(node, ast.keyword) and node.arg in ("years", "months", "weeks", "days") \
                    and isinstance(node.value, ast.Constant) and type(node.value.value) is int:
                v = node.value.value
                if (node.arg != "days" and v != 0) or (node.arg == "days" and v > 1):
                    offenders.append(f"{where}: {node.arg}={v}")
    return offenders


def test_X_1_no_program_numbers_in_engine_code():
    """X-1: "Every number above (rates, thresholds, caps, fees, windows, dates) lives in the
    program's YAML, never in engine code."

    The distinctive numbers of andest.yaml (every rate, every amount ≥ 100: 0.05, 0.01, 0.02,
    0.03, 0.1, 5000, 500, 300, 50000, 100000, plus the derived member-price factor 0.95) must not
    appear as numeric literals (any spelling: 5_000, 5e3, 0.050) or numeric strings in
    engine/**/*.py. Comments and docstrings are ignored (AST), and so are the event decoder's
    input-size limits (msgspec.Meta bounds, MAX_*/MIN_* constants) and HTTP status codes. Windows: no hard-coded
    years= / months= / weeks= period and no days= above 1 (days=1 is "00:00 the next day").
    Small integers (7 days, 12 months, 1 year) are only checked as such period keywords, since
    a bare 1 or 12 is ordinary code.
    """
    numbers = _program_numbers()
    assert {0.05, 0.01, 0.02, 0.03, 5000, 500, 300, 50000, 100000} <= numbers  # the check sees the program
    files = sorted((ROOT / "engine").rglob("*.py"))
    assert len(files) > 10
    offenders = _hard_coded(files, numbers, ROOT)
    assert offenders == [], "program numbers hard-coded in the engine:\n" + "\n".join(offenders)


def test_X_1_checker_catches_hard_coded_numbers(tmp_path):
    """X-1, the check itself: a module that hard-codes the cap, a rate, a threshold, a window or
    a numeric string is caught (7 offences); input-size limits, docstrings, comments, days=1,
    HTTP status codes (500) and unrelated numbers are not."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""The cap is 5000 points (a docstring: fine)."""\n'
        "import msgspec\n"
        "MAX_REASON = 500\n"
        "Reason = msgspec.Meta(max_length=500, le=100_000)\n"
        "CAP = 5_000  # offence 1\n"
        "def earn(x):\n"
        "    return x * 0.05  # offence 2\n"
        "def tier(a):\n"
        "    return 'gold' if a >= 1e5 else 'silver' if a >= 50000 else 'regular'  # offences 3, 4\n"
        "RATE = Fraction('0.01')  # offence 5\n"
        "LAST = Period(years=1)  # offence 6\n"
        "WINDOW = timedelta(days=7)  # offence 7\n"
        "NEXT = timedelta(days=1)\n"
        "PORT = 8080\n"
        "def fail(send):\n"
        "    status, detail = 500, 'internal error'\n"
        "    send_json(send, 500, {'error': detail, 'status': 500})\n"
        "    if status >= 500 and status != 503:\n"
        "        raise HTTPException(status_code=500)\n"
        "    return Response(b'', status=500)\n",
        encoding="utf-8")
    found = _hard_coded([bad], _program_numbers(), tmp_path)
    assert sorted(int(f.split(":")[1]) for f in found) == [5, 7, 9, 9, 10, 11, 12], found


TWO_VERSIONS = """\
program: twover
name: "Two versions"
unit: points
time_zone: Asia/Tokyo
rules:
  TV-1: "Sign-up bonus: 100 points, 200 from version 2."
  TV-2: "Earn 1 % of the items ex. tax, 2 % from version 2."
  TV-3: "Points never expire."
versions:
  - version: 1
    effective_from: 2025-01-01
    earning:
      rule_id: TV-2
      base: items_ex_tax
      rates:
        - {rule_id: TV-2, rate: 0.01}
    expiry: {rule_id: TV-3, kind: none}
    bonuses:
      - {rule_id: TV-1, on: member.registered, units: 100}
  - version: 2
    effective_from: 2025-07-01
    earning:
      rule_id: TV-2
      base: items_ex_tax
      rates:
        - {rule_id: TV-2, rate: 0.02}
    bonuses:
      - {rule_id: TV-1, on: member.registered, units: 200}
"""


def test_X_2_version_selected_by_effective_date(tmp_path):
    """X-2: "A program file has a version and an effective date; an event is judged by the
    version in force at its time."

    Version 2 is in force from 2025-07-01 00:00 Asia/Tokyo (= 2025-06-30T15:00Z).
    m1 registers 2025-06-30 23:59:59 JST → version 1 → 100; m2 at 2025-06-30T15:00Z → version 2
    → 200. No member price in this program: a ¥10,000 order placed 2025-06-30 14:59:59Z (v1)
    earns 1 % = 100; placed 2025-07-01 00:00 JST (v2) earns 2 % = 200.
    """
    path = tmp_path / "twover.yaml"
    path.write_text(TWO_VERSIONS, encoding="utf-8")
    e = Engine(str(path))
    send(e, "member.registered", "2025-06-30T23:59:59+09:00", "m1")
    send(e, "member.registered", "2025-06-30T15:00:00+00:00", "m2")
    assert balances(e, "m1", "2025-07-02") == pts(valid=100)
    assert balances(e, "m2", "2025-07-02") == pts(valid=200)
    assert [(x.rule, x.version, x.amount) for x in e.store.entries("m1")] == [("TV-1", 1, 100)]
    assert [(x.rule, x.version, x.amount) for x in e.store.entries("m2")] == [("TV-1", 2, 200)]
    q1 = e.quote(cart("m2", "a", "2025-06-30T14:59:59+00:00", [ln("A", 10000)]))
    q2 = e.quote(cart("m2", "b", "2025-07-01T00:00:00+09:00", [ln("A", 10000)]))
    assert (q1["version"], q1["earn"]["points"], q1["totals"]["items_ex_tax"]) == (1, 100, 10000)
    assert (q2["version"], q2["earn"]["points"]) == (2, 200)
    place(e, "m2", "o2", "2025-07-01T00:00:00+09:00", [ln("A", 10000)])
    assert balances(e, "m2", "2025-07-02") == pts(valid=200, pending=200)
    # m2 signed up at 2025-07-01 00:00 JST: at 2025-06-30 12:00 it was not a member yet (item 14 of
    # issue 17: a past view shows the past); m1, a member since 23:59:59 that day, is seen under v1
    assert e.member("m2", "2025-06-30T12:00:00+09:00") is None
    assert e.member("m1", "2025-06-30T23:59:59+09:00")["version"] == 1
    assert e.member("m2", "2025-07-02")["version"] == 2


def _rich_history(e: Engine, member: str, birthday: str | None) -> None:
    """Sign-up, birthday, spend, earn, ship, deliver, partial return, review, operator grant and
    hold/release, a cancelled order, and expiry booked by a later event."""
    register(e, member, birthday=birthday)
    place(e, member, f"{member}-o1", "2025-03-10T10:00:00+09:00", [ln("A", 5000), ln("B", 5000)], redeem=200)
    ship(e, member, f"{member}-o1", "2025-03-11T10:00:00+09:00")
    deliver(e, member, f"{member}-o1", "2025-03-12T10:00:00+09:00")
    return_(e, member, f"{member}-o1", "2025-03-14T10:00:00+09:00", [("B", 1)])
    review(e, member, "tee", "2025-03-20T10:00:00+09:00")
    grant(e, member, 50, "2025-04-01T10:00:00+09:00", expires_on="2025-04-30", eid=f"op-grant-{member}")
    send(e, "points.held", "2025-04-02T10:00:00+09:00", member, amount=100, reason="check", eid=f"op-hold-{member}")
    send(e, "points.released", "2025-04-03T10:00:00+09:00", member, amount=100, reason="ok",
         eid=f"op-release-{member}")
    place(e, member, f"{member}-o2", "2025-04-05T10:00:00+09:00", [ln("C", 2000)])
    cancel(e, member, f"{member}-o2", "2025-04-06T10:00:00+09:00")
    review(e, member, "bag", "2027-06-01T10:00:00+09:00")   # books what happened in between


def test_X_3_every_lot_and_entry_records_rule_and_version():
    """X-3: "Every ledger entry records which program version and which rule produced it".

    Over a history touching every rule (m1 with a birth date, m2 without), each entry and each
    lot carries version 1 and a rule; outside operator events (points.granted/held/released,
    ids op-*) that rule is one the program declares. Spot checks by hand: sign-up grant AND-4
    (500), birthday AND-8 (500, m1 only), review AND-9 (300), spend AND-3 (200 in total), the
    limited grant's expiry AND-6 (50), and for m2 (no birthday bonus to extend its balance:
    last acquisition the review of 2025-03-20 → expired from 2026-03-21) the rolling expiry
    AND-5 of everything valid then: 500 − 200 + 95 − 48 (B returned: 95 − 47) + 100 (B's half
    of the 200 used back) + 300 = 747. m2 on 2027-06-02: valid 300 (the 'bag' review), used 100,
    expired 50 + 747 = 797, void 48 + 19 (o2: ¥2,000 → 1,900 → 19 pending, cancelled).
    """
    e = new_engine()
    _rich_history(e, "m1", "1990-03-12")
    _rich_history(e, "m2", None)
    declared = set(e.program.rules)
    for m in ("m1", "m2"):
        entries = e.store.entries(m)
        assert entries
        for x in entries:
            assert x.version == 1, x
            assert isinstance(x.rule, str) and x.rule, x
            if not x.source.startswith("op-"):
                assert x.rule in declared, x
        for lot in e.member(m, "2027-06-02")["lots"]:
            assert lot["version"] == 1 and lot["rule"], lot
        got = {(x.action, x.rule, x.amount) for x in entries}
        assert ("grant", "AND-4", 500) in got
        assert ("grant", "AND-9", 300) in got
        assert sum(x.amount for x in entries if x.to_state == "used" and x.from_state == "valid") == 200
        assert {x.rule for x in entries if x.to_state == "used"} == {"AND-3"}
        assert [x.amount for x in entries if x.to_state == "expired" and x.rule == "AND-6"] == [50]
    assert ("grant", "AND-8", 500) in {(x.action, x.rule, x.amount) for x in e.store.entries("m1")}
    rolling_expired = [x for x in e.store.entries("m2") if x.to_state == "expired" and x.rule == "AND-5"]
    assert sum(x.amount for x in rolling_expired) == 747
    assert balances(e, "m2", "2027-06-02") == pts(valid=300, used=100, expired=797, void=48 + 19)


def test_X_3_regular_earn_booked_under_AND_1():
    """X-3 with AND-1: a regular-rank member's 1 % is AND-1's "Base earn: 1% of the item price
    ex. tax"; AND-10 only *raises* the rate. So the lot and the earn entry of a regular member's
    order (¥10,000 → 9,500 → 95) should name AND-1; a silver member's raised 2 % may name AND-10.
    """
    e = new_engine()
    register(e)
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 10000)])
    earns = [(x.action, x.rule, x.amount) for x in e.store.entries("m1") if x.action == "earn"]
    assert earns == [("earn", "AND-1", 95)]
    lot = [l for l in e.member("m1", "2025-02-02")["lots"] if l["order"] == "o1"]
    assert [(l["amount"], l["rule"]) for l in lot] == [(95, "AND-1")]


def test_X_3_cancel_void_is_booked_under_AND_2():
    """X-3 with AND-2: the rule that says earned points become "void (無効) when the order is
    cancelled" is AND-2, so the void entry of a cancellation should name AND-2 (not AND-11,
    which is the 7-day return window) for a customer-service agent to explain it.

    Order ¥10,000 → 95 pending; cancel → one void entry of 95 under AND-2.
    """
    e = new_engine()
    register(e)
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 10000)])
    cancel(e, "m1", "o1", "2025-02-02T10:00:00+09:00")
    voids = [(x.rule, x.amount, x.version) for x in e.store.entries("m1") if x.to_state == "void"]
    assert voids == [("AND-2", 95, 1)]


def _events(member: str = "m1") -> list[dict]:
    at = lambda d: f"{d}T10:00:00+09:00"  # noqa: E731
    def ev(i, type_, day, **f):
        return {"id": f"{member}-x{i}", "type": type_, "at": at(day), "member": member, **f}
    return [
        ev(1, "member.registered", "2025-01-05", birthday="1990-03-12"),
        ev(2, "order.placed", "2025-03-10", order="o1", course="one_off", payment={"method": "credit_card"},
           lines=[ln("A", 5000), ln("B", 5000)], redeem={"points": 300}),
        ev(3, "order.shipped", "2025-03-11", order="o1"),
        ev(4, "order.delivered", "2025-03-12", order="o1"),
        ev(5, "order.returned", "2025-03-14", order="o1", lines=[{"sku": "B", "qty": 1}]),
        ev(6, "review.posted", "2025-03-20", product="A"),         # A was bought and kept (AND-8)
        ev(7, "points.granted", "2025-04-01", amount=70, reason="promo", expires_on="2025-04-30"),
        ev(8, "points.held", "2025-04-02", amount=100, reason="check"),
        ev(9, "points.released", "2025-04-03", amount=100, reason="ok"),
        # a free sample of the bag (¥0: earns 0, counts 0), received, so its review counts (AND-8)
        ev(11, "order.placed", "2026-05-30", order="o2", course="one_off", payment={"method": "credit_card"},
           lines=[ln("BAG-S", 0, product="bag")]),
        ev(12, "order.shipped", "2026-05-31", order="o2"),
        ev(10, "review.posted", "2026-06-01", product="bag"),
    ]


def test_X_4_replay_is_idempotent_and_deterministic():
    """X-4: "Replaying the same events always gives the same ledger (deterministic; event ids
    make replays idempotent)."

    Run 12 events; run them again on the same ledger → all 12 skipped, nothing applied or
    rejected, same member object and same ledger. A fresh engine fed the same events gives the
    same member object and ledger too.
    Balances by hand (as of 2026-06-02): sign-up 500 + birthday 2025-03-01 500 = 1,000; o1
    (2 × 4,750 = 9,500) uses 300 → 700 and earns 95 (valid on shipment) → 795; B returned → kept
    4,750 earns 47, void 48 → 747, and B's half of the 300 used (150) comes back → 897 (used
    150); review +300 → 1,197; limited 70 (2025-04-01, held and released in between) expire
    from 2025-05-01 → expired 70; birthday 2026-03-01 +500 (within the year of the 2025-03-20
    review, so nothing expired; it extends the balance to 2027-03-01) → 1,697; review 2026-06-01 +300 → 1,997.
    """
    events = _events()
    e = new_engine()
    r1 = e.apply_many(events)
    ids = [x["id"] for x in events]
    assert r1.applied == ids and r1.rejected == []
    m1, l1 = snapshot(e, "m1", "2026-06-02")
    r2 = e.apply_many(events)
    assert r2.skipped == ids and r2.applied == [] and r2.rejected == []
    assert snapshot(e, "m1", "2026-06-02") == (m1, l1)
    e2 = new_engine()
    e2.apply_many(events)
    assert snapshot(e2, "m1", "2026-06-02") == (m1, l1)
    assert balances(e, "m1", "2026-06-02") == pts(valid=1997, used=150, expired=70, void=48)


def test_X_5_partial_return_recomputes_on_kept_lines():
    """X-5: "two lines of ¥4,750 earn 95 at 1%; returning one leaves 47".

    Two ¥5,000 lines → 4,750 + 4,750 = 9,500 → 95 (floored once per order; per-line floors
    would give 47 + 47 = 94). Return one → kept 4,750 → 47.5 → 47; void 95 − 47 = 48:
    valid 500 + 47 = 547. Same with one line of qty 2 returning 1 unit.
    """
    e = new_engine()
    register(e, "m1")
    register(e, "m2")
    for m, lines in (("m1", [ln("A", 5000), ln("B", 5000)]), ("m2", [ln("A", 5000, qty=2)])):
        q = e.quote(cart(m, f"{m}-o1", "2025-02-01T10:00:00+09:00", lines))
        assert q["earn"]["points"] == 95
        _delivered_order(e, m, lines)
        assert balances(e, m, "2025-02-04") == pts(valid=595)
    return_(e, "m1", "m1-o1", "2025-02-05T10:00:00+09:00", [("B", 1)])
    return_(e, "m2", "m2-o1", "2025-02-05T10:00:00+09:00", [("A", 1)])
    for m in ("m1", "m2"):
        assert balances(e, m, "2025-02-06") == pts(valid=547, void=48)


def test_X_6_expiring_first_lot_spent_first():
    """X-6: "When several lots are spendable, the one that expires first is spent first".

    Sign-up 500 (rolling, through 2026-01-05); limited 300 granted 2025-02-01, expires_on
    2025-06-30. Order 2025-03-01 using 200 → taken from the limited lot (expires first):
    valid 500 + 100 = 600, used 200, pending 95. On 2025-07-01 the limited lot's last 100
    expire: valid 500, expired 100 (had the sign-up lot been spent, 300 would expire).
    """
    e = new_engine()
    register(e)
    grant(e, "m1", 300, "2025-02-01T10:00:00+09:00", expires_on="2025-06-30")
    place(e, "m1", "o1", "2025-03-01T10:00:00+09:00", [ln("A", 10000)], redeem=200)
    assert balances(e, "m1", "2025-03-01T11:00:00+09:00") == pts(valid=600, used=200, pending=95)
    assert balances(e, "m1", "2025-07-01T00:00:00+09:00") == pts(valid=500, used=200, pending=95, expired=100)
    signup = [l for l in e.member("m1", "2025-07-01")["lots"] if l["rule"] == "AND-4"]
    assert [(l["amount"], l["state"]) for l in signup] == [(500, "valid")]


def test_X_6_same_expiry_oldest_spent_first():
    """X-6: "... (then the oldest)".

    Sign-up 500 (2025-01-05) and review 300 (2025-02-01) are both rolling (same expiry date).
    Spend 600 → the sign-up lot first (500), then 100 of the review lot: AND-4 lots all used
    (500), AND-9 lots 200 valid + 100 used.
    """
    e = new_engine()
    register(e)
    review(e, "m1", "tee", "2025-02-01T10:00:00+09:00")
    place(e, "m1", "o1", "2025-03-01T10:00:00+09:00", [ln("A", 10000)], redeem=600)
    lots = e.member("m1", "2025-03-02")["lots"]
    by = {}
    for l in lots:
        by.setdefault((l["rule"], l["state"]), 0)
        by[(l["rule"], l["state"])] += l["amount"]
    assert by.get(("AND-4", "used")) == 500 and ("AND-4", "valid") not in by
    assert by.get(("AND-9", "valid")) == 200 and by.get(("AND-9", "used")) == 100


def test_X_6_never_spends_held_pending_expired_and_never_negative():
    """X-6: "A redemption never makes a balance negative and never spends held, pending,
    expired or void points."

    500 valid; order o1 ¥10,000 → 95 pending; hold 400 → valid 100, held 400.
    A ¥10,000 cart can use only 100 (not the held 400 nor the pending 95); 101 is refused with
    nothing changed; max → used 100, valid 0, held 400, pending 190.
    After expiry (m2 signed up 2025-01-05, nothing else; on 2026-02-01 its 500 are expired):
    max is 0 and asking 1 point is refused. No balance is ever below 0.
    """
    e = new_engine()
    register(e, "m1")
    register(e, "m2")
    place(e, "m1", "o1", "2025-02-01T10:00:00+09:00", [ln("A", 10000)])
    send(e, "points.held", "2025-02-02T10:00:00+09:00", "m1", amount=400, reason="check")
    assert balances(e, "m1", "2025-02-02T11:00:00+09:00") == pts(valid=100, held=400, pending=95)
    q = e.quote(cart("m1", "o2", "2025-02-03T10:00:00+09:00", [ln("A", 10000)], redeem="max"))
    assert q["redeem"]["max"] == 100 and q["redeem"]["applied"] == 100
    before = snapshot(e, "m1", "2025-02-04")
    place(e, "m1", "o2", "2025-02-03T10:00:00+09:00", [ln("A", 10000)], redeem=101, expect="rejected")
    assert snapshot(e, "m1", "2025-02-04") == before
    place(e, "m1", "o2", "2025-02-03T10:00:00+09:00", [ln("A", 10000)], redeem="max")
    assert balances(e, "m1", "2025-02-04") == pts(valid=0, held=400, pending=190, used=100)
    q = e.quote(cart("m2", "x", "2026-02-01T10:00:00+09:00", [ln("A", 10000)], redeem="max"))
    assert q["redeem"]["max"] == 0 and q["redeem"]["applied"] == 0
    place(e, "m2", "m2-o1", "2026-02-01T10:00:00+09:00", [ln("A", 10000)], redeem=1, expect="rejected")
    assert balances(e, "m2", "2026-02-02") == pts(expired=500)
    for m, at in (("m1", "2025-02-04"), ("m2", "2026-02-02")):
        assert all(v >= 0 for v in points(e, m, at).values())


def test_X_6_return_after_spending_never_negative():
    """X-6 "never makes a balance negative", with a clawback: the order earned 95 (valid 595),
    590 are then spent on another order (5 left); returning the first order must take back 95
    but can never push valid below 0."""
    e = new_engine()
    register(e)
    _delivered_order(e, "m1", [ln("A", 10000)])
    place(e, "m1", "o2", "2025-02-04T10:00:00+09:00", [ln("B", 10000)], redeem=590)
    assert balances(e, "m1", "2025-02-04T11:00:00+09:00") == pts(valid=5, used=590, pending=95)
    return_(e, "m1", "m1-o1", "2025-02-05T10:00:00+09:00", [("A", 1)])
    p = points(e, "m1", "2025-02-06")
    assert all(v >= 0 for v in p.values()), p
    assert p["valid"] == 0 and p["used"] == 590
