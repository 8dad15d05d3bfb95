"""Issue 18, the second reading of the five pages: each corrected rule (docs/RULES.md) with its
figure worked by hand, boundaries included.

Conventions as in the program tests: money is integer yen, lines ex. tax, tax once per rate per
invoice, floored; times Asia/Tokyo.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine
from tests.helpers import send

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "programs"


def T(day: str, hm: str = "10:00") -> str:
    return f"{day}T{hm}:00+09:00"


def engine(name: str) -> Engine:
    return Engine(str(PROGRAMS / f"{name}.yaml"))


def order(e: Engine, oid: str, at: str, lines: list, member: str = "m1", **fields):
    return send(e, "order.placed", at, member, order=oid, course=fields.pop("course", "one_off"),
                payment=fields.pop("payment", {"method": "credit_card"}), lines=lines, **fields)


def line(sku: str, unit_price: int, qty: int = 1, tax_rate: float = 0.10, **more) -> dict:
    return {"sku": sku, "qty": qty, "unit_price": unit_price, "tax_rate": tax_rate, **more}


def points(e: Engine, at: str, member: str = "m1") -> dict:
    p = e.member(member, at)["points"]
    return {k: v for k, v in p.items() if v and k in ("valid", "pending", "held", "used", "expired", "void")}


# -- ANS-13: the earn base is the invoice incl. tax, floored --------------------------------------

def test_ANS_13_a_base_of_2099_yen_earns_20_at_1_percent():
    """One-off 1,909 ex. tax at 10 %: tax floor(190.9) = 190, invoice 2,099; 1 % = 20.99 → 20."""
    e = engine("ansage")
    send(e, "member.registered", T("2025-01-05"))
    q = e.quote({"id": "q", "type": "order.placed", "at": T("2025-01-06"), "member": "m1", "order": "q",
                 "course": "one_off", "payment": {"method": "credit_card"}, "lines": [line("A", 1909)]})
    assert q["earn"]["points"] == 20


def test_ANS_13_the_floored_invoice_not_the_exact_amount_decides_at_3_percent():
    """A silver member (one shipped order of 27,778 at 8 %: 27,778 + floor(2,222.24) = 30,000, ANS-2)
    orders 1,849 ex. tax at 10 % on subscription (3 %): invoice 1,849 + floor(184.9) = 2,033;
    3 % of 2,033 = 60.99 → 60 (on the exact 2,033.9 it would be 61.017 → 61)."""
    e = engine("ansage")
    send(e, "member.registered", T("2025-01-05"))
    order(e, "o1", T("2025-02-01"), [line("BIG", 27778, tax_rate=0.08)])
    send(e, "order.shipped", T("2025-02-02"), order="o1")
    q = e.quote({"id": "q", "type": "order.placed", "at": T("2025-03-01"), "member": "m1", "order": "q",
                 "course": "subscription", "payment": {"method": "credit_card"}, "lines": [line("S", 1849)]})
    assert q["tier"] == "silver"
    assert q["earn"]["points"] == 60


# -- ANS-12: a cancellation restores at once, a return after 14 days -------------------------------

def _ansage_with_points_used() -> Engine:
    """2,000 granted; o1 one-off 5,000 ex. (5,500 incl.) using 1,000 → earns 1 % of 4,500 = 45."""
    e = engine("ansage")
    send(e, "member.registered", T("2025-03-01"))
    send(e, "points.granted", T("2025-03-01", "11:00"), amount=2000, reason="goodwill")
    order(e, "o1", T("2025-03-02"), [line("CREAM", 5000)], redeem={"points": 1000})
    return e


def test_ANS_12_a_cancellation_gives_the_used_points_back_at_once():
    e = _ansage_with_points_used()
    send(e, "order.cancelled", T("2025-03-03"), order="o1")
    assert points(e, T("2025-03-03")) == {"valid": 2000, "void": 45}


def test_ANS_12_a_return_gives_them_back_14_days_later_to_the_minute():
    """Returned 03-03 10:00 → back on 03-17 10:00: at 09:59 still used, at 10:00 valid."""
    e = _ansage_with_points_used()
    send(e, "order.shipped", T("2025-03-02", "12:00"), order="o1")
    send(e, "order.delivered", T("2025-03-02", "18:00"), order="o1")
    send(e, "order.returned", T("2025-03-03"), order="o1", lines=[{"sku": "CREAM", "qty": 1}])
    assert points(e, T("2025-03-17", "09:59")) == {"valid": 1000, "used": 1000, "void": 45}
    assert points(e, T("2025-03-17", "10:00")) == {"valid": 2000, "void": 45}


def test_ANS_12_a_partial_return_gives_back_the_returned_lines_share():
    """A 6,000 + B 4,000 ex. (6,600 + 4,400 incl.) using 1,000 → 600 / 400 on the lines; earn 1 %
    of 10,000 = 100. Returning B: its 400 come back 14 days later; the kept A earns 1 % of
    (6,600 - 600) = 60, so 40 are void: valid 1,000 - 1,000 + 100 - 40 + 400 = 460, used 600."""
    e = engine("ansage")
    send(e, "member.registered", T("2025-04-01"))
    send(e, "points.granted", T("2025-04-01", "11:00"), amount=1000, reason="goodwill")
    order(e, "o1", T("2025-04-02"), [line("A", 6000), line("B", 4000)], redeem={"points": 1000})
    send(e, "order.shipped", T("2025-04-03"), order="o1")
    send(e, "order.delivered", T("2025-04-04"), order="o1")
    send(e, "order.returned", T("2025-04-05"), order="o1", lines=[{"sku": "B", "qty": 1}])
    assert points(e, T("2025-04-20")) == {"valid": 460, "used": 600, "void": 40}


# -- ANS-15: two deadlines from two dates -------------------------------------------------------

@pytest.mark.parametrize("ship, delivery, at, exchange_late, redeem_late", [
    # ship Wed 2025-05-07 → exchange last day Thu 05-01 (05-03..06 are holidays or weekend);
    # delivery Fri 05-09 → point use last day Wed 05-07
    ("2025-05-07", "2025-05-09", T("2025-05-01", "23:59"), False, False),   # the exchange's last day
    ("2025-05-07", "2025-05-09", T("2025-05-02", "00:00"), True, False),    # a day late for it only
    ("2025-05-07", "2025-05-09", T("2025-05-07", "23:59"), True, False),    # the point use's last day
    ("2025-05-07", "2025-05-09", T("2025-05-08", "00:00"), True, True),     # late for both
])
def test_ANS_15_exchange_by_the_shipping_date_point_use_by_the_delivery_date(ship, delivery, at, exchange_late,
                                                                             redeem_late):
    e = engine("ansage")
    send(e, "member.registered", T("2025-04-01"))
    send(e, "points.granted", T("2025-04-01", "11:00"), amount=1000, reason="goodwill")
    q = e.quote({"id": "q", "type": "order.placed", "at": at, "member": "m1", "order": "q", "course": "subscription",
                 "payment": {"method": "credit_card"}, "ship_date": ship, "delivery_date": delivery,
                 "exchanges": [{"reward": "cutting_board", "qty": 1}], "redeem": {"points": 100},
                 "lines": [line("S", 3000)]})
    assert q["exchange"]["points"] == (0 if exchange_late else 700)
    assert q["redeem"]["applied"] == (0 if redeem_late else 100)
    assert [d["late"] for d in q["deadlines"]] == [exchange_late, redeem_late]


# -- AMA-4: an exchange on its own ----------------------------------------------------------------

def test_AMA_4_apply_now_with_no_product_ordered_pays_both_fees():
    """An exchange of 100 points with no line ("apply now", ship_now): exchange fee 1,400 (AMA-3,
    one started block of 100) + handling fee 1,000 (AMA-4, not waived: nothing ships with it) =
    2,400 ex. tax + 240 tax = 2,640 to pay; 100 points used. An order with neither line nor
    exchange is refused."""
    e = engine("amare")
    send(e, "member.registered", T("2025-01-05"))
    send(e, "points.granted", T("2025-01-05", "11:00"), amount=500, reason="x")
    now = {"id": "q", "type": "order.placed", "at": T("2025-01-06"), "member": "m1", "order": "o1",
           "course": "one_off", "payment": {"method": "credit_card"}, "lines": [],
           "exchanges": [{"reward": "ssr_reward_100", "qty": 1}], "fulfilment": "ship_now"}
    q = e.quote(now)
    assert (q["totals"]["fees_ex_tax"], q["totals"]["tax_total"], q["totals"]["to_pay"]) == (2400, 240, 2640)
    assert e.apply(now).applied == ["q"]
    assert points(e, T("2025-01-07")) == {"valid": 400, "used": 100}
    empty = dict(now, id="q2", order="o2", exchanges=[])
    refused = e.apply(empty).rejected
    assert [(r["event"], r["field"]) for r in refused] == [("q2", "lines")]


# -- AND-8: only a review of a product bought ---------------------------------------------------

@pytest.mark.parametrize("story, earned", [
    ("never bought", 0),
    ("placed, not shipped", 0),
    ("shipped", 300),
    ("delivered", 300),
    ("all returned", 0),
    ("one of two returned", 300),
    ("cancelled", 0),
])
def test_AND_8_a_review_earns_300_only_for_a_product_bought_and_kept(story, earned):
    """「ご購入された商品レビュー」: the review of the dress earns 300 when the member received one and
    kept it, else nothing (the review is applied all the same)."""
    e = engine("andest")
    send(e, "member.registered", T("2025-01-05"))
    qty = 2 if story == "one of two returned" else 1
    if story != "never bought":
        order(e, "o1", T("2025-02-01"), [line("DRESS-M", 5000, qty=qty, product="DRESS")])
    if story in ("shipped", "delivered", "all returned", "one of two returned"):
        send(e, "order.shipped", T("2025-02-02"), order="o1")
    if story in ("delivered", "all returned", "one of two returned"):
        send(e, "order.delivered", T("2025-02-03"), order="o1")
    if story in ("all returned", "one of two returned"):
        send(e, "order.returned", T("2025-02-04"), order="o1", lines=[{"sku": "DRESS-M", "qty": 1}])
    if story == "cancelled":
        send(e, "order.cancelled", T("2025-02-02"), order="o1")
    before = e.member("m1", T("2025-02-10", "09:00"))["points"]["valid"]
    send(e, "review.posted", T("2025-02-10"), product="DRESS")
    assert e.member("m1", T("2025-02-10", "11:00"))["points"]["valid"] - before == earned


# -- RC-0: credits at the purchase ---------------------------------------------------------------

def test_RC_0_a_credit_on_the_day_of_purchase():
    """Version 2 (12,000 a credit): 11,000 ex. at 10 % = 12,100 incl. placed 2025-12-02 10:00 gives
    1 credit at 10:00 (「この時点で」), carry 100; last valid day 2025-12-02 + 180 = 2026-05-31."""
    e = engine("rewards_circle")
    send(e, "member.registered", T("2025-12-01"))
    order(e, "o1", T("2025-12-02"), [line("BOX", 11000)])
    lots = [lot for lot in e.member("m1", T("2025-12-02"))["lots"] if lot["state"] == "valid"]
    assert [(lot["amount"], lot["rule"], lot["expires_on"]) for lot in lots] == [(1, "RC-2", "2026-05-31")]
    assert e.runner.state_of("m1").carry == 100


def test_RC_0_cancelling_an_order_that_only_fed_the_carry_owes_nothing():
    """o1 11,000 incl. (10,000 ex.): no credit, carry 11,000; o2 2,200 incl.: 13,200 → 1 credit,
    carry 1,200. Cancelling o1 takes its 11,000 out of the carry (1,200 - 11,000 < 0: one threshold
    back, the credit o2's purchase crossed) → carry 2,200, 1 credit void, nothing owed."""
    e = engine("rewards_circle")
    send(e, "member.registered", T("2025-12-01"))
    order(e, "o1", T("2025-12-02"), [line("X", 10000)])
    order(e, "o2", T("2025-12-03"), [line("Y", 2000)])
    assert points(e, T("2025-12-04")) == {"valid": 1}
    send(e, "order.cancelled", T("2025-12-05"), order="o1")
    state = e.runner.state_of("m1")
    assert (points(e, T("2025-12-06")), state.carry, state.debt) == ({"void": 1}, 2200, 0)
