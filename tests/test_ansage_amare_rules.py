"""Rule tests for アンサージュ (programs/ansage.yaml, ANS-1..ANS-17) and Amare SSR
(programs/amare.yaml, AMA-1..AMA-6).

Every expected number is worked out by hand from docs/RULES.md and the ASSUMPTION
comments of the two program files, never copied from the engine's output. Conventions used in the
hand calculations:

* money is integer yen; lines and shipping are ex. tax; shipping and fees are taxed at 10 %;
* tax once per rate per order (per invoice), floored (CONTRACT, AMA-6);
  so an order's amount incl. tax = Σ per rate (base + floor(base × rate));
* grand total = items + shipping + fees + tax; "to pay" = grand total - points used (1 pt = ¥1);
* ANS earn = floor(Σ line base × rate) once per order; base = amount incl. tax, shipping
  excluded, after points used (ANS-6/7/13); rates: no_points tag 0 %, (the example campaign of
  examples/ansage/campaign.yaml 2026-01-01..07 10 %), one-off 1 %, subscription by class (regular 1 %, silver 3 %, gold 5 %) (ANS-2/3/8);
* ANS class: shipped, non-returned orders of the past 12 months, incl. tax, at order time;
* AMA earn = floor(PV × rate by consecutive subscription month) (AMA-1 ASSUMPTION);
* expiry (AMA-2): last valid day = grant date + 12 months; expired from 00:00 the next day,
  Asia/Tokyo (the convention of the whole project: "the day after the last valid day").
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from engine import Engine
from tests.helpers import check_outcome, send  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
ANSAGE = ROOT / "programs" / "ansage.yaml"
AMARE = ROOT / "programs" / "amare.yaml"
REG_AT = "2025-01-05T10:00:00+09:00"

_ids = itertools.count(1)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def T(day: str, hm: str = "10:00") -> str:
    """A Tokyo instant: T("2025-03-01") → 2025-03-01T10:00:00+09:00."""
    return f"{day}T{hm}:00+09:00"




def register(e: Engine, member: str = "m1", at: str = REG_AT):
    return send(e, "member.registered", at, member)


def grant(e: Engine, amount: int, at: str = REG_AT, member: str = "m1"):
    return send(e, "points.granted", at, member, amount=amount, reason="test grant")


def ln(sku: str, unit_price: int, tax_rate: float = 0.10, qty: int = 1, tags=(), pv=None) -> dict:
    line = {"sku": sku, "qty": qty, "unit_price": unit_price, "tax_rate": tax_rate}
    if tags:
        line["tags"] = list(tags)
    if pv is not None:
        line["pv"] = pv
    return line


def cart(order: str, at: str, lines: list[dict], *, member: str = "m1", course: str = "one_off",
         method: str = "credit_card", brand: str | None = None, redeem=None, exchanges=None, **extra) -> dict:
    payment = {"method": method}
    if brand:
        payment["card_brand"] = brand
    c = {"id": f"place-{order}-{next(_ids)}", "type": "order.placed", "at": at, "member": member, "order": order,
         "course": course, "payment": payment, "lines": lines, **extra}
    if redeem is not None:
        c["redeem"] = {"points": redeem}
    if exchanges:
        c["exchanges"] = [{"reward": r, "qty": q} for r, q in exchanges]
    return c


def place(e: Engine, c: dict, expect: str = "applied"):
    return check_outcome(e.apply(c), c["id"], expect)


def ship(e, order, at, member="m1"):
    return send(e, "order.shipped", at, member, order=order)


def deliver(e, order, at, member="m1"):
    return send(e, "order.delivered", at, member, order=order)


def pts(valid=0, pending=0, held=0, used=0, expired=0, void=0) -> dict:
    return {"valid": valid, "pending": pending, "held": held, "used": used, "expired": expired, "void": void}


def balances(e: Engine, at: str, member: str = "m1") -> dict:
    p = e.member(member, at)["points"]
    return {k: p[k] for k in ("valid", "pending", "held", "used", "expired", "void")}


def ansage() -> Engine:
    return Engine(str(ANSAGE))


def ansage_with_campaign() -> Engine:
    """The live program plus one campaign week (ANS-8): examples/ansage/campaign.yaml."""
    return Engine(str(ROOT / "examples" / "ansage" / "campaign.yaml"))


def amare() -> Engine:
    return Engine(str(AMARE))


# ============================================================================================
# ANS — アンサージュ ポイント
# ============================================================================================

def test_ANS_1_one_point_is_one_yen_discount():
    """ANS-1: "1 point = 1 yen, usable as a discount on the online shop".

    Items ¥5,000 ex. tax at 10 %: tax 500, total ¥5,500. 1,234 points used → to pay
    5,500 - 1,234 = ¥4,266; the ledger moves 1,234 from valid to used (5,000 - 1,234 = 3,766).
    """
    e = ansage()
    register(e)
    grant(e, 5000)
    c = cart("o1", T("2025-02-01"), [ln("A", 5000)], redeem=1234)
    q = e.quote(c)
    assert q["errors"] == []
    assert q["totals"]["grand_total"] == 5500
    assert q["redeem"]["applied"] == 1234
    assert q["totals"]["to_pay"] == 4266
    place(e, c)
    b = balances(e, T("2025-02-01", "12:00"))
    assert (b["valid"], b["used"]) == (3766, 1234)


# --- ANS-9 / ANS-10: the minimum left to pay, every payment method on one cart ----------------

# One cart for every method. Lines: FOOD 2 × ¥3,241 at 8 % = 6,482; GOODS ¥4,999 at 10 %;
# shipping ¥600 (taxed at 10 %).
#   tax 8 %:  floor(6,482 × 0.08) = floor(518.56) = 518
#   tax 10 %: floor((4,999 + 600) × 0.10) = floor(559.9) = 559
#   grand total = 6,482 + 4,999 + 600 + 518 + 559 = 13,158
# Member balance 20,000 > 13,158, so the payment method's minimum binds:
METHOD_CART_TOTAL = 13158
METHOD_MAX = [
    ("credit_card", "visa", 13158 - 100),        # card: at least ¥100 left
    ("credit_card", "jcb", 13158 - 200),         # JCB card: at least ¥200 left
    ("np_deferred", None, 13158 - 1),            # NP deferred: at least ¥1
    ("cash_on_delivery", None, 13158),           # COD: the whole amount with points (ANS-9 cap)
    ("bank_transfer", None, 13158 - 1),          # YAML default (ASSUMPTION): ¥1
    ("direct_debit", None, 13158 - 1),           # YAML default (ASSUMPTION): ¥1
]


def _method_cart(order, method, brand, redeem=None, at=T("2025-02-01")):
    return cart(order, at, [ln("FOOD", 3241, 0.08, qty=2), ln("GOODS", 4999, 0.10)], method=method, brand=brand,
                redeem=redeem, shipping=600)


@pytest.mark.parametrize("method,brand,expected", METHOD_MAX)
def test_ANS_10_redeem_max_by_payment_method(method, brand, expected):
    """ANS-10: "Minimum left to pay after points, by payment method: credit card ≥ ¥100 incl. tax;
    JCB card ≥ ¥200; NP deferred payment ≥ ¥1; paying the whole amount with points is allowed only
    with cash on delivery" (+ YAML ASSUMPTION: bank transfer / direct debit leave ≥ ¥1).

    Cart total 13,158 (see METHOD_CART_TOTAL), balance 20,000: max = 13,158 - minimum.
    """
    e = ansage()
    register(e)
    grant(e, 20000)
    q = e.quote(_method_cart("o1", method, brand, redeem="max"))
    assert q["errors"] == []
    assert q["totals"]["tax"] == {"0.08": 518, "0.10": 559}
    assert q["totals"]["grand_total"] == METHOD_CART_TOTAL
    assert q["redeem"]["max"] == expected
    assert q["redeem"]["applied"] == expected
    assert q["totals"]["to_pay"] == METHOD_CART_TOTAL - expected
    if method != "cash_on_delivery":
        assert "ANS-10" in q["redeem"]["why"]


def test_ANS_10_order_asking_more_than_the_minimum_allows_is_rejected():
    """ANS-10: a card order must leave ¥100: on the 13,158 cart at most 13,058 points.

    Asking 13,059 is rejected (field redeem.points), the balance stays 20,000; asking 13,058 is
    applied: valid 20,000 - 13,058 = 6,942, used 13,058.
    """
    e = ansage()
    register(e)
    grant(e, 20000)
    r = place(e, _method_cart("o1", "credit_card", "visa", redeem=13059), expect="rejected")
    assert r.rejected[0]["field"] == "redeem.points"
    assert balances(e, T("2025-02-01", "11:00")) == pts(valid=20000)
    place(e, _method_cart("o2", "credit_card", "visa", redeem=13058))
    b = balances(e, T("2025-02-01", "11:00"))
    assert (b["valid"], b["used"]) == (6942, 13058)


def test_ANS_9_points_never_exceed_the_order_total():
    """ANS-9: "Points used can never exceed the purchase price (items, shipping and tax)".

    Cash on delivery (no minimum): max = total 13,158 even with 20,000 points; 13,159 is rejected;
    with only 5,000 points the balance binds: max 5,000.
    """
    e = ansage()
    register(e)
    grant(e, 20000)
    register(e, "m2")
    grant(e, 5000, member="m2")
    q = e.quote(_method_cart("o1", "cash_on_delivery", None, redeem="max"))
    assert q["redeem"]["max"] == 13158 and q["totals"]["to_pay"] == 0
    place(e, _method_cart("o1", "cash_on_delivery", None, redeem=13159), expect="rejected")
    assert balances(e, T("2025-02-02")) == pts(valid=20000)
    c2 = _method_cart("o2", "cash_on_delivery", None, redeem="max")
    c2["member"] = "m2"
    assert e.quote(c2)["redeem"]["max"] == 5000


# --- ANS-2 classes ---------------------------------------------------------------------------

# A subscription cart used to read the class: ¥10,000 at 10 % → ¥11,000 incl. tax.
# regular 1 % → 110, silver 3 % → 330, gold 5 % → 550.
def _class_probe(at: str, order: str = "probe", course: str = "subscription"):
    return cart(order, at, [ln("SUB", 10000, 0.10)], course=course)


# Single-rate 8 % orders whose invoice amount incl. tax hits the boundaries exactly:
#   27,777 + floor(27,777 × 0.08 = 2,222.16) = 27,777 + 2,222 = 29,999
#   27,778 + floor(2,222.24) = 30,000
#   55,555 + floor(4,444.40) = 59,999
#   55,556 + floor(4,444.48) = 60,000
@pytest.mark.parametrize("ex_tax,incl,tier,earn", [
    (27777, 29999, "regular", 110),
    (27778, 30000, "silver", 330),
    (55555, 59999, "silver", 330),
    (55556, 60000, "gold", 550),
])
def test_ANS_2_class_boundaries(ex_tax, incl, tier, earn):
    """ANS-2: class from shipped purchases of the past 12 months incl. tax (ASSUMPTION: regular
    < 30,000 ≤ silver < 60,000 ≤ gold; 1 / 3 / 5 %).

    One shipped order of `incl` yen incl. tax, then a ¥10,000 (¥11,000 incl.) subscription order:
    the class and the earn 11,000 × rate.
    """
    e = ansage()
    register(e)
    place(e, cart("o1", T("2025-02-01"), [ln("BIG", ex_tax, 0.08)]))
    ship(e, "o1", T("2025-02-03"))
    q = e.quote(_class_probe(T("2025-03-01")))
    assert q["tier"] == tier
    assert q["earn"]["points"] == earn
    assert e.member("m1", T("2025-03-01"))["tier"] == tier


@pytest.mark.parametrize("orders", [
    # two orders, tax floored per order:
    #   13,639 at 10 %: floor(1,363.9) = 1,363 → 15,002
    #   13,887 at 8 %:  floor(1,110.96) = 1,110 → 14,997;   15,002 + 14,997 = 29,999
    #   (unfloored: 15,002.9 + 14,997.96 = 30,000.86, which would wrongly make silver)
    [[("A", 13639, 0.10)], [("B", 13887, 0.08)]],
    # one order, two rates, each floored once:
    #   12,349 at 8 %: floor(987.92) = 987 → 13,336;  15,149 at 10 %: floor(1,514.9) = 1,514 → 16,663
    #   13,336 + 16,663 = 29,999 (unfloored 30,000.82)
    [[("A", 12349, 0.08), ("B", 15149, 0.10)]],
])
def test_ANS_2_class_amount_uses_invoice_tax_floored_per_rate_per_order(orders):
    """ANS-2 + CONTRACT (tax once per rate per order, floored): the incl.-tax amount of an order is
    what its invoice states. Orders whose invoices add up to 29,999 keep the member regular (1 %:
    11,000 × 1 % = 110), although the exact unfloored tax would pass 30,000."""
    e = ansage()
    register(e)
    for i, lines in enumerate(orders):
        place(e, cart(f"o{i}", T(f"2025-02-0{i + 1}"), [ln(s, p, r) for s, p, r in lines]))
        ship(e, f"o{i}", T(f"2025-02-0{i + 1}", "18:00"))
    q = e.quote(_class_probe(T("2025-03-01")))
    assert q["tier"] == "regular"
    assert q["earn"]["points"] == 110


def test_ANS_2_class_counts_shipped_non_returned_orders_in_12_months():
    """ANS-2: only shipped, non-returned orders of the past 12 months count.

    Order o1 ¥30,000 incl. (27,778 at 8 %) placed 2025-02-01:
    * not shipped yet on 02-02 → regular (110);
    * shipped 02-03 → silver on 03-01 (330) and still on 2026-01-10 (11 months later: 330);
    * 2026-03-01 is 13 months after the shipment → regular again (110).
    Member m2: the same order shipped, delivered, then wholly returned → regular (110).
    """
    e = ansage()
    register(e)
    place(e, cart("o1", T("2025-02-01"), [ln("BIG", 27778, 0.08)]))
    assert e.quote(_class_probe(T("2025-02-02")))["earn"]["points"] == 110
    ship(e, "o1", T("2025-02-03"))
    assert e.quote(_class_probe(T("2025-03-01")))["earn"]["points"] == 330
    assert e.quote(_class_probe(T("2026-01-10")))["tier"] == "silver"
    q = e.quote(_class_probe(T("2026-03-01")))
    assert (q["tier"], q["earn"]["points"]) == ("regular", 110)

    register(e, "m2")
    c = cart("p1", T("2025-02-01"), [ln("BIG", 27778, 0.08)], member="m2")
    place(e, c)
    ship(e, "p1", T("2025-02-03"), "m2")
    deliver(e, "p1", T("2025-02-04"), "m2")
    send(e, "order.returned", T("2025-02-10"), "m2", order="p1", lines=[{"sku": "BIG", "qty": 1}])
    probe = _class_probe(T("2025-03-01"))
    probe["member"] = "m2"
    q = e.quote(probe)
    assert (q["tier"], q["earn"]["points"]) == ("regular", 110)


def test_ANS_2_window_ends_a_year_after_the_day_after_shipment():
    """ANS-2 as corrected: the 12 months ending on day D start the day after D's date a year
    earlier. o1 ¥30,000 incl. (27,778 at 8 %) shipped 2025-02-03: on 2026-02-02 the window is
    2025-02-03..2026-02-02, o1 counts → silver, 11,000 × 3 % = 330; on 2026-02-03 it is
    2025-02-04..2026-02-03, o1 is out → regular, 110 (a 366-day window kept it one day more)."""
    e = ansage()
    register(e)
    place(e, cart("o1", T("2025-02-01"), [ln("BIG", 27778, 0.08)]))
    ship(e, "o1", T("2025-02-03"))
    q = e.quote(_class_probe(T("2026-02-02", "23:59")))
    assert (q["tier"], q["earn"]["points"]) == ("silver", 330)
    q = e.quote(_class_probe(T("2026-02-03", "00:00")))
    assert (q["tier"], q["earn"]["points"]) == ("regular", 110)


def test_ANS_2_class_decided_at_order_time():
    """ANS-2: "evaluated at order time". A subscription order placed while the member is regular
    keeps 1 % even if an earlier order ships before it and lifts the class to silver.

    o1 one-off ¥30,000 incl. (27,778 at 8 %): earns 1 % of 30,000 = 300.
    o2 subscription ¥11,000 incl., placed before o1 ships → regular → 110.
    After both ship: valid 300 + 110 = 410. A later subscription probe is silver (330).
    """
    e = ansage()
    register(e)
    place(e, cart("o1", T("2025-02-01"), [ln("BIG", 27778, 0.08)]))
    place(e, _class_probe(T("2025-02-02"), "o2"))
    ship(e, "o1", T("2025-02-03"))
    ship(e, "o2", T("2025-02-05"))
    assert balances(e, T("2025-02-06")) == pts(valid=410)
    assert e.quote(_class_probe(T("2025-02-07"), "o3"))["earn"]["points"] == 330


def test_ANS_3_one_off_ignores_class():
    """ANS-3: "One-off course: 1% of the purchase amount, whatever the class".

    Gold member (60,000 incl. shipped). One-off ¥10,000 at 10 % → 11,000 × 1 % = 110 (gold
    subscription would be 550).
    """
    e = ansage()
    register(e)
    place(e, cart("o1", T("2025-02-01"), [ln("BIG", 55556, 0.08)]))
    ship(e, "o1", T("2025-02-03"))
    q = e.quote(_class_probe(T("2025-03-01"), course="one_off"))
    assert q["tier"] == "gold"
    assert q["earn"]["points"] == 110
    assert e.quote(_class_probe(T("2025-03-01")))["earn"]["points"] == 550


def test_ANS_4_guest_order_earns_nothing():
    """ANS-4: "Only registered members earn points; a guest order earns nothing".

    A guest (never registered) buys ¥10,000: earn 0, nothing pending. A member buying the same
    earns 1 % of 11,000 = 110.
    """
    e = ansage()
    c = cart("g1", T("2025-02-01"), [ln("A", 10000)], member="guest-1", guest=True)
    q = e.quote(c)
    assert q["earn"]["points"] == 0
    assert q["redeem"]["max"] == 0
    place(e, c)
    assert balances(e, T("2025-02-01", "12:00"), "guest-1") == pts()
    register(e)
    assert e.quote(cart("o1", T("2025-02-01"), [ln("A", 10000)]))["earn"]["points"] == 110


def test_ANS_4_guest_order_ships_and_still_earns_nothing():
    """ANS-4: the shop sends the guest order's shipment like any other (CONTRACT: order.shipped
    for an order the engine accepted). It applies and the guest still has 0 points everywhere."""
    e = ansage()
    place(e, cart("g1", T("2025-02-01"), [ln("A", 10000)], member="guest-1", guest=True))
    ship(e, "g1", T("2025-02-02"), "guest-1")
    deliver(e, "g1", T("2025-02-03"), "guest-1")
    assert balances(e, T("2025-02-04"), "guest-1") == pts()


def test_ANS_5_pending_until_shipped():
    """ANS-5: "Points are granted when the order ships (pending until then)".

    One-off ¥10,000 at 10 % → 110: pending after the order, valid after shipment.
    """
    e = ansage()
    register(e)
    c = cart("o1", T("2025-02-01"), [ln("A", 10000)])
    assert e.quote(c)["earn"]["state"] == "pending"
    place(e, c)
    assert balances(e, T("2025-02-01", "12:00")) == pts(pending=110)
    ship(e, "o1", T("2025-02-02"))
    assert balances(e, T("2025-02-02", "12:00")) == pts(valid=110)


def test_ANS_6_shipping_earns_no_points():
    """ANS-6: "Shipping fees earn no points".

    Items ¥10,000 at 10 %, shipping ¥800: total 10,000 + 800 + floor(10,800 × 0.1) = 11,880;
    earn 1 % of the items incl. tax only: 11,000 × 1 % = 110 (not 118).
    """
    e = ansage()
    register(e)
    q = e.quote(cart("o1", T("2025-02-01"), [ln("A", 10000)], shipping=800))
    assert q["totals"]["grand_total"] == 11880
    assert q["earn"]["points"] == 110


def test_ANS_7_earn_after_points_used():
    """ANS-7 / ANS-13: "points are earned on the total after that discount".

    Items ¥10,000 at 10 % (11,000 incl.), no shipping, one-off 1 %:
    * 1,000 points used → base 11,000 - 1,000 = 10,000 → 100;
    * 10,500 points used (card max 11,000 - 100 = 10,900) → base 500 → 5.
    """
    e = ansage()
    register(e)
    grant(e, 20000)
    assert e.quote(cart("o1", T("2025-02-01"), [ln("A", 10000)], redeem=1000))["earn"]["points"] == 100
    q = e.quote(cart("o1", T("2025-02-01"), [ln("A", 10000)], redeem=10500))
    assert q["redeem"]["applied"] == 10500
    assert q["earn"]["points"] == 5


def test_ANS_7_order_paid_wholly_with_points_earns_nothing():
    """ANS-7 / ANS-13: an order paid entirely with points (cash on delivery, ANS-10) has nothing
    left after the discount, so it earns nothing.

    Items ¥10,000 at 10 %, shipping ¥500: total 10,000 + 500 + floor(10,500 × 0.1) = 11,550;
    "max" on COD = 11,550 → to pay 0; base max(11,000 - 11,550, 0) = 0 → earn 0.
    """
    e = ansage()
    register(e)
    grant(e, 20000)
    c = cart("o1", T("2025-02-01"), [ln("A", 10000)], shipping=500, method="cash_on_delivery", redeem="max")
    q = e.quote(c)
    assert q["redeem"]["applied"] == 11550
    assert q["totals"]["to_pay"] == 0
    assert q["earn"]["points"] == 0
    place(e, c)
    ship(e, "o1", T("2025-02-02"))
    assert balances(e, T("2025-02-03")) == pts(valid=20000 - 11550, used=11550)


def test_ANS_8_no_points_tag():
    """ANS-8: "some products (campaign / special-sale items) earn no points" (tag no_points).

    ¥5,000 no_points line + ¥5,000 normal line at 10 %: 1 % of 5,500 = 55.
    """
    e = ansage()
    register(e)
    q = e.quote(cart("o1", T("2025-02-01"), [ln("SALE", 5000, tags=["no_points"]), ln("A", 5000)]))
    assert q["earn"]["points"] == 55
    assert "ANS-8" in q["earn"]["rules"]


def test_ANS_8_the_live_program_runs_no_campaign():
    """The shop's page names no campaign: in the first week of 2026 the live program earns the
    one-off 1 % of 11,000 = 110, as on any other day."""
    e = ansage()
    register(e)
    assert e.quote(cart("o1", T("2026-01-03"), [ln("A", 10000)]))["earn"]["points"] == 110


@pytest.mark.parametrize("day,earn", [
    ("2025-12-31", 110),     # before the window: one-off 1 % of 11,000
    ("2026-01-01", 1100),    # first day: 10 % of 11,000
    ("2026-01-07", 1100),    # last day
    ("2026-01-08", 110),     # after
])
def test_ANS_8_campaign_window(day, earn):
    """ANS-8: "Campaigns may change the rate for a period": the example campaign week of
    examples/ansage/campaign.yaml (10 % on every order placed 2026-01-01 .. 2026-01-07). One-off
    ¥10,000 at 10 % = 11,000 incl."""
    e = ansage_with_campaign()
    register(e)
    assert e.quote(cart("o1", T(day), [ln("A", 10000)]))["earn"]["points"] == earn


def test_ANS_8_campaign_does_not_lift_no_points_items():
    """ANS-8: inside the campaign, the no_points line still earns 0: ¥5,000 no_points + ¥5,000
    normal at 10 % on 2026-01-03 → 10 % of 5,500 = 550. A gold subscription order in the window
    gets the campaign's 10 % (first matching row): 11,000 × 10 % = 1,100."""
    e = ansage_with_campaign()
    register(e)
    q = e.quote(cart("o1", T("2026-01-03"), [ln("SALE", 5000, tags=["no_points"]), ln("A", 5000)]))
    assert q["earn"]["points"] == 550
    place(e, cart("o0", T("2025-06-01"), [ln("BIG", 55556, 0.08)]))
    ship(e, "o0", T("2025-06-02"))
    assert e.quote(_class_probe(T("2026-01-03")))["earn"]["points"] == 1100


def test_ANS_11_no_transfer_or_payout_event():
    """ANS-11: "Points belong to the member alone (no transfer); no cash payout".

    There is no event to move points to another member or pay them out: such an event is rejected
    and both balances stay as they were (m1 1,000, m2 0).
    """
    e = ansage()
    register(e)
    register(e, "m2")
    grant(e, 1000)
    send(e, "points.transferred", T("2025-02-01"), expect="rejected", amount=500, to="m2")
    send(e, "points.paid_out", T("2025-02-01"), expect="rejected", amount=500)
    assert balances(e, T("2025-02-02")) == pts(valid=1000)
    assert balances(e, T("2025-02-02"), "m2") == pts()


# --- ANS-12 returns and cancellations --------------------------------------------------------

def test_ANS_12_return_removes_earned_at_once_restores_used_after_14_days():
    """ANS-12: earned points of the returned products removed at once; used points back 14 days
    after the return.

    Balance 5,000. One-off ¥10,000 at 10 % (11,000 incl.), 1,000 points used → earn 1 % of
    10,000 = 100. Shipped, delivered: valid 4,100, used 1,000.
    Return 2025-03-10 10:00: the 100 earned go to void at once → valid 4,000.
    Restore due 2025-03-24 (10 + 14): on 03-23 still valid 4,000 / used 1,000;
    on 03-25 valid 5,000 / used 0 (no event needed that day).
    """
    e = ansage()
    register(e)
    grant(e, 5000)
    place(e, cart("o1", T("2025-03-01"), [ln("A", 10000)], redeem=1000))
    ship(e, "o1", T("2025-03-02"))
    deliver(e, "o1", T("2025-03-03"))
    assert balances(e, T("2025-03-03", "12:00")) == pts(valid=4100, used=1000)
    send(e, "order.returned", T("2025-03-10"), order="o1", lines=[{"sku": "A", "qty": 1}])
    assert balances(e, T("2025-03-10", "12:00")) == pts(valid=4000, used=1000, void=100)
    assert balances(e, T("2025-03-23", "12:00")) == pts(valid=4000, used=1000, void=100)
    assert balances(e, T("2025-03-25", "00:00")) == pts(valid=5000, void=100)
    # and it is stored: a later event sees the restored balance
    grant(e, 1, T("2025-04-01"))
    assert balances(e, T("2025-04-01", "12:00")) == pts(valid=5001, void=100)


def test_ANS_12_cancel_voids_pending_and_restores_used_at_once():
    """ANS-12 (corrected reading: the two-week delay is stated for returns, 「返品後2週間程」; a
    cancellation restores at once, ASSUMPTION). Balance 5,000; ¥10,000 order with 1,000 points used
    → floor((11,000 − 1,000) × 1 %) = 100 pending. Cancelled 2025-03-02 10:00 before shipment: the
    100 pending are void and the 1,000 used are valid again, both at once: valid 5,000 at 12:00."""
    e = ansage()
    register(e)
    grant(e, 5000)
    place(e, cart("o1", T("2025-03-01"), [ln("A", 10000)], redeem=1000))
    assert balances(e, T("2025-03-01", "12:00")) == pts(valid=4000, pending=100, used=1000)
    send(e, "order.cancelled", T("2025-03-02"), order="o1")
    assert balances(e, T("2025-03-02", "10:00")) == pts(valid=5000, void=100)
    assert balances(e, T("2025-03-17", "00:00")) == pts(valid=5000, void=100)


def test_ANS_12_partial_return():
    """ANS-12 (+X-5): two lines ¥5,000 at 10 %, 1,000 points used, spread 500 / 500.
    Earn floor((5,500 - 500) × 1 % + (5,500 - 500) × 1 %) = 100. Returning line B: the kept line
    earns 50, so 50 are voided at once; B's 500 points come back 14 days later
    (return 04-01 → back 04-15: used 1,000 on 04-14, used 500 on 04-16)."""
    e = ansage()
    register(e)
    grant(e, 5000)
    place(e, cart("o1", T("2025-03-20"), [ln("A", 5000), ln("B", 5000)], redeem=1000))
    ship(e, "o1", T("2025-03-21"))
    deliver(e, "o1", T("2025-03-22"))
    assert balances(e, T("2025-03-23")) == pts(valid=4100, used=1000)
    send(e, "order.returned", T("2025-04-01"), order="o1", lines=[{"sku": "B", "qty": 1}])
    assert balances(e, T("2025-04-14", "12:00")) == pts(valid=4050, used=1000, void=50)
    assert balances(e, T("2025-04-16")) == pts(valid=4550, used=500, void=50)


def test_ANS_13_earn_base_is_incl_tax():
    """ANS-13: "the earn rate base is the purchase amount incl. tax" (ASSUMPTION).

    One-off 1 %: ¥10,000 at 10 % → 11,000 → 110; ¥10,000 at 8 % → 10,800 → 108;
    ¥12,345 at 8 % → 12,345 + floor(987.6) = 13,332 → 133. (Ex. tax would give 100 / 100 / 123.)
    """
    e = ansage()
    register(e)
    assert e.quote(cart("o1", T("2025-02-01"), [ln("A", 10000, 0.10)]))["earn"]["points"] == 110
    assert e.quote(cart("o1", T("2025-02-01"), [ln("A", 10000, 0.08)]))["earn"]["points"] == 108
    assert e.quote(cart("o1", T("2025-02-01"), [ln("A", 12345, 0.08)]))["earn"]["points"] == 133



def test_ANS_13_a_base_of_2099_earns_20_not_21():
    """ANS-13: the base is the invoice incl. tax, each rate's tax once and floored, so ¥2,099 at
    1 % (one-off, ANS-3) earns floor(20.99) = 20, never 21.

    Lines 1,029 @8 % and 899 @10 %: tax floor(82.32) = 82 and floor(89.9) = 89 → invoice
    1,029 + 82 + 899 + 89 = 2,099 → 20. Unfloored taxes would make 2,100.22 → 21.
    Boundary: 1,945 @8 % → 1,945 + floor(155.6) = 2,100 → 21.
    Minus the points used (ANS-7): 2,363 @10 % → 2,363 + floor(236.3) = 2,599, 500 points used →
    2,099 → 20.
    """
    e = ansage()
    register(e)
    q = e.quote(cart("o1", T("2025-02-01"), [ln("A", 1029, 0.08), ln("B", 899, 0.10)]))
    assert q["totals"]["tax"] == {"0.08": 82, "0.10": 89}
    assert q["earn"]["points"] == 20
    assert e.quote(cart("o1", T("2025-02-01"), [ln("A", 1945, 0.08)]))["earn"]["points"] == 21
    grant(e, 500)
    q = e.quote(cart("o1", T("2025-02-01"), [ln("A", 2363, 0.10)], redeem=500))
    assert (q["totals"]["grand_total"], q["redeem"]["applied"], q["earn"]["points"]) == (2599, 500, 20)

# --- ANS-14 rewards --------------------------------------------------------------------------

def test_ANS_14_reward_exchange_spends_700_and_800():
    """ANS-14: "700 points → cutting board; 800 points → illustrated pouch".

    Balance 2,000. Order 1 with a cutting board: used 700, valid 1,300.
    Order 2 with a pouch: used 1,500, valid 500. (The ¥1,000 one-off items earn 11 each, pending.)
    """
    e = ansage()
    register(e)
    grant(e, 2000)
    c = cart("o1", T("2025-02-01"), [ln("A", 1000)], exchanges=[("cutting_board", 1)])
    q = e.quote(c)
    assert q["errors"] == []
    assert q["exchange"]["points"] == 700
    assert q["exchange"]["rewards"] == [{"reward": "cutting_board", "qty": 1, "points": 700}]
    place(e, c)
    assert balances(e, T("2025-02-01", "12:00")) == pts(valid=1300, pending=11, used=700)
    c = cart("o2", T("2025-02-02"), [ln("A", 1000)], exchanges=[("illustration_pouch", 1)])
    assert e.quote(c)["exchange"]["points"] == 800
    place(e, c)
    assert balances(e, T("2025-02-02", "12:00")) == pts(valid=500, pending=22, used=1500)


def test_ANS_14_both_rewards_and_balance_check():
    """ANS-14: both rewards on one order need 700 + 800 = 1,500; with 1,499 points the order is
    refused (balance), with 1,500 it spends everything. The rewards' points also lower what can
    be redeemed: 1,600 points, card cart total ¥1,100 → max min(1,600 - 1,500, 1,100 - 100) = 100."""
    e = ansage()
    register(e)
    grant(e, 1499)
    both = [("cutting_board", 1), ("illustration_pouch", 1)]
    r = place(e, cart("o1", T("2025-02-01"), [ln("A", 1000)], exchanges=both), expect="rejected")
    assert "balance" in r.rejected[0]["reason"]
    assert balances(e, T("2025-02-01", "12:00")) == pts(valid=1499)
    grant(e, 1, T("2025-02-01", "13:00"))
    place(e, cart("o2", T("2025-02-01", "14:00"), [ln("A", 1000)], exchanges=both))
    assert balances(e, T("2025-02-01", "15:00")) == pts(pending=11, used=1500)
    register(e, "m2")
    grant(e, 1600, member="m2")
    q = e.quote(cart("o3", T("2025-02-01"), [ln("A", 1000)], member="m2", exchanges=both, redeem="max"))
    assert q["exchange"]["points"] == 1500
    assert q["redeem"]["max"] == 100


def test_ANS_14_reward_only_with_a_product_order():
    """ANS-14: "A reward item ships only together with a product order ... never alone".

    An order with the cutting board and no product line is refused; the 1,000 points stay.
    """
    e = ansage()
    register(e)
    grant(e, 1000)
    place(e, cart("o1", T("2025-02-01"), [], exchanges=[("cutting_board", 1)]), expect="rejected")
    assert balances(e, T("2025-02-02")) == pts(valid=1000)


def test_ANS_14_reward_cannot_be_returned():
    """ANS-14: "reward items cannot be returned or exchanged".

    Balance 1,000; order with a ¥1,000 item and a cutting board (700 used), shipped, delivered.
    A return naming the cutting board is refused: used stays 700, valid 300 + 11 earned.
    """
    e = ansage()
    register(e)
    grant(e, 1000)
    place(e, cart("o1", T("2025-02-01"), [ln("A", 1000)], exchanges=[("cutting_board", 1)]))
    ship(e, "o1", T("2025-02-02"))
    deliver(e, "o1", T("2025-02-03"))
    before = balances(e, T("2025-02-04"))
    assert before == pts(valid=311, used=700)
    r = send(e, "order.returned", T("2025-02-04"), order="o1", lines=[{"sku": "cutting_board", "qty": 1}],
             expect="rejected")
    assert "reward" in r.rejected[0]["reason"]
    assert balances(e, T("2025-03-01")) == before


# --- ANS-15 / ANS-16 deadlines ---------------------------------------------------------------

def _sub_cart(order, at, delivery, ship=None, **kw):
    """A subscription cart scheduled to ship on ``ship`` and arrive on ``delivery`` (the same day
    unless given: ANS-15 counts an exchange from the shipping date, the point use from the delivery)."""
    return cart(order, at, [ln("SUB", 3000, 0.08)], course="subscription", ship_date=ship or delivery,
                delivery_date=delivery, **kw)


def test_ANS_15_deadline_crosses_a_national_holiday():
    """ANS-15: a request must arrive at least 2 Japanese business days before the delivery.

    Delivery Wed 2025-11-05: Tue 11-04 is business day 1; Mon 11-03 (Culture Day, 文化の日),
    Sun 11-02 and Sat 11-01 are skipped; Fri 10-31 is business day 2 → last day 2025-10-31.
    A request on 10-31 is on time; on 11-01 it is late: it goes with the next delivery.
    """
    e = ansage()
    register(e)
    grant(e, 2000)
    q = e.quote(_sub_cart("o1", T("2025-10-31", "18:00"), "2025-11-05", exchanges=[("cutting_board", 1)]))
    assert q["deadline"]["last_day"] == "2025-10-31"
    assert q["deadline"]["late"] is False
    assert q["deadline"]["applies_to"] == "this_delivery"
    assert q["exchange"]["points"] == 700
    q = e.quote(_sub_cart("o1", T("2025-11-01", "09:00"), "2025-11-05", exchanges=[("cutting_board", 1)]))
    assert q["deadline"]["last_day"] == "2025-10-31"
    assert q["deadline"]["late"] is True
    assert q["deadline"]["applies_to"] == "next_delivery"
    assert q["deadline"]["deferred"]["exchanges"] == [{"reward": "cutting_board", "qty": 1}]
    assert q["exchange"]["points"] == 0


def test_ANS_15_substitute_holiday():
    """ANS-15: delivery Tue 2025-11-25: Mon 11-24 is a substitute holiday (Labour Thanksgiving
    Day 11-23 fell on a Sunday), Sun 11-23 and Sat 11-22 skipped; Fri 11-21 is business day 1,
    Thu 11-20 business day 2 → last day 2025-11-20; a request on 11-21 is late."""
    e = ansage()
    register(e)
    grant(e, 2000)
    q = e.quote(_sub_cart("o1", T("2025-11-21"), "2025-11-25", exchanges=[("cutting_board", 1)]))
    assert q["deadline"]["last_day"] == "2025-11-20"
    assert q["deadline"]["late"] is True


def test_ANS_15_late_exchange_goes_with_the_next_order():
    """ANS-15: the late request (11-01 for delivery 11-05) is not spent with that order; it is
    applied with the member's next order (placed 2025-12-01 for delivery Fri 12-05, last day
    Wed 12-03: on time): 700 used then.

    Balance 2,000. Each ¥3,000 at 8 % subscription order (3,240 incl., regular 1 %) earns 32.
    After o1: valid 2,000, pending 32, used 0. After o2: valid 1,300 (+32 of o1 after shipment).
    """
    e = ansage()
    register(e)
    grant(e, 2000)
    place(e, _sub_cart("o1", T("2025-11-01", "09:00"), "2025-11-05", exchanges=[("cutting_board", 1)]))
    assert balances(e, T("2025-11-01", "12:00")) == pts(valid=2000, pending=32)
    ship(e, "o1", T("2025-11-04"))
    c = _sub_cart("o2", T("2025-12-01"), "2025-12-05")
    q = e.quote(c)
    assert q["deadline"]["late"] is False
    assert q["exchange"]["points"] == 700
    place(e, c)
    assert balances(e, T("2025-12-01", "12:00")) == pts(valid=2032 - 700, pending=32, used=700)



def test_ANS_15_the_exchange_counts_from_ship_date_the_point_use_from_delivery_date():
    """ANS-15: 「発送予定日の2営業日前まで」 for an exchange, 「お届け予定日の2営業日前までに」 for the
    subscription's point use: two deadlines from two dates of one order.

    Ships Wed 2025-11-05, arrives Fri 11-07. Exchange: Tue 11-04 day 1, Mon 11-03 Culture Day,
    Sun/Sat skipped, Fri 10-31 day 2 → last day 10-31. Point use: Thu 11-06 day 1, Wed 11-05
    day 2 → last day 11-05. A request on Tue 11-04 with both: the exchange is late (deferred to
    the next delivery, 0 points now), the 500 points are on time (applied now).
    On 11-05 the point use is still on time (its last day); on Thu 11-06 it is late.
    """
    e = ansage()
    register(e)
    grant(e, 2000)
    q = e.quote(_sub_cart("o1", T("2025-11-04"), "2025-11-07", ship="2025-11-05",
                          exchanges=[("cutting_board", 1)], redeem=500))
    by_cover = {tuple(d["covers"]): (d["last_day"], d["late"]) for d in q["deadlines"]}
    assert by_cover == {("exchanges",): ("2025-10-31", True), ("redeem_subscription",): ("2025-11-05", False)}
    assert q["exchange"]["points"] == 0
    assert q["deadline"]["deferred"]["exchanges"] == [{"reward": "cutting_board", "qty": 1}]
    assert q["redeem"]["applied"] == 500
    q = e.quote(_sub_cart("o1", T("2025-11-05", "23:00"), "2025-11-07", ship="2025-11-05", redeem=500))
    assert q["redeem"]["applied"] == 500
    q = e.quote(_sub_cart("o1", T("2025-11-06", "09:00"), "2025-11-07", ship="2025-11-05", redeem=500))
    assert q["redeem"]["applied"] == 0

def test_ANS_16_subscription_point_use_deferred_one_off_not():
    """ANS-16 / ANS-15: the subscription course's point use for a delivery must be set 2 business
    days before it; a one-off order's points are entered at checkout (no deadline).

    Balance 2,000; requests on 2025-11-04 for delivery 11-05 (last day 10-31: late).
    * one-off, 500 points: applied now (to pay 3,240 - 500 = 2,740);
    * subscription, 500 points: applied 0, deferred to the next delivery; the next subscription
      order (12-01, delivery 12-05, on time, no redeem of its own) uses the 500.
    """
    e = ansage()
    register(e)
    grant(e, 2000)
    q = e.quote(cart("x1", T("2025-11-04"), [ln("SUB", 3000, 0.08)], delivery_date="2025-11-05", redeem=500))
    assert q["redeem"]["applied"] == 500
    assert q["totals"]["to_pay"] == 2740
    c = _sub_cart("o1", T("2025-11-04"), "2025-11-05", redeem=500)
    q = e.quote(c)
    assert q["redeem"]["applied"] == 0
    assert q["deadline"]["late"] is True
    assert q["deadline"]["deferred"]["redeem"] is True
    place(e, c)
    assert balances(e, T("2025-11-04", "12:00"))["used"] == 0
    c = _sub_cart("o2", T("2025-12-01"), "2025-12-05")
    assert e.quote(c)["redeem"]["applied"] == 500
    place(e, c)
    assert balances(e, T("2025-12-01", "12:00"))["used"] == 500


def test_ANS_17_points_do_not_expire():
    """ANS-17: "No expiry is stated. ASSUMPTION: points do not expire".

    1,000 granted 2025-01-05 and 110 earned (¥10,000 one-off, shipped 2025-02-02) are still
    valid in 2035: valid 1,110, expired 0, no lot has an expiry date.
    """
    e = ansage()
    register(e)
    grant(e, 1000)
    place(e, cart("o1", T("2025-02-01"), [ln("A", 10000)]))
    ship(e, "o1", T("2025-02-02"))
    m = e.member("m1", T("2035-01-01"))
    assert {k: m["points"][k] for k in pts()} == pts(valid=1110)
    assert all(lot["expires_on"] is None for lot in m["lots"])


# ============================================================================================
# AMA — Amare SSR points
# ============================================================================================

def _ama_sub(order, at, pv=100, price=5000, course="subscription", **kw):
    return cart(order, at, [ln("SSR", price, 0.08, pv=pv)], course=course, **kw)


def test_AMA_1_rate_by_consecutive_subscription_month():
    """AMA-1 (ASSUMPTION): points = floor(PV × rate), rate by consecutive subscription month:
    1-3 10 %, 4-6 15 %, 7+ 20 %.

    PV 100 a month, Feb..Sep 2025 (8 consecutive months): 10, 10, 10, 15, 15, 15, 20, 20.
    A second subscription order in the 8th month (Sep) stays month 8: 20.
    Skip October: the November order restarts at month 1: 10.
    Total after shipment: 30 + 45 + 40 + 20 + 10 = 145.
    """
    e = amare()
    register(e)
    expected = [10, 10, 10, 15, 15, 15, 20, 20]
    for i, want in enumerate(expected):
        c = _ama_sub(f"o{i}", T(f"2025-{i + 2:02d}-10"))
        assert e.quote(c)["earn"]["points"] == want, f"month {i + 1}"
        place(e, c)
        ship(e, f"o{i}", T(f"2025-{i + 2:02d}-12"))
    c = _ama_sub("o8b", T("2025-09-20"))
    assert e.quote(c)["earn"]["points"] == 20
    place(e, c)
    ship(e, "o8b", T("2025-09-21"))
    c = _ama_sub("o11", T("2025-11-10"))
    assert e.quote(c)["earn"]["points"] == 10
    place(e, c)
    ship(e, "o11", T("2025-11-12"))
    assert balances(e, T("2025-11-13"))["valid"] == 145


def test_AMA_1_floor_and_one_off():
    """AMA-1: floored; one-off orders earn nothing.

    Month 1: PV 3 × 33 = 99 at 10 % = 9.9 → 9.  A one-off order with PV 500: 0.
    Months 2-3 PV 100 (10 each), month 4: PV 99 at 15 % = 14.85 → 14.
    """
    e = amare()
    register(e)
    c = cart("o1", T("2025-02-10"), [ln("SSR", 1000, 0.08, qty=3, pv=33)], course="subscription")
    assert e.quote(c)["earn"]["points"] == 9
    place(e, c)
    assert e.quote(_ama_sub("x1", T("2025-02-11"), pv=500, course="one_off"))["earn"]["points"] == 0
    place(e, _ama_sub("o2", T("2025-03-10")))
    place(e, _ama_sub("o3", T("2025-04-10")))
    c = cart("o4", T("2025-05-10"), [ln("SSR", 1000, 0.08, qty=3, pv=33)], course="subscription")
    assert e.quote(c)["earn"]["points"] == 14


def test_AMA_2_each_grant_expires_12_months_after_its_date():
    """AMA-2: "Unused points expire 12 months after the date each was granted (per grant)".

    100 granted 2025-01-15: last valid day 2026-01-15, expired from 2026-01-16.
    50 granted 2025-03-01: last valid day 2026-03-01.
    A 42-point exchange on 2025-06-01 (fee-free checks aside) spends the lot that expires first:
    the January lot keeps 58.
      2026-01-15: valid 58 + 50 = 108
      2026-01-16: valid 50, expired 58
      2026-03-01: valid 50;  2026-03-02: valid 0, expired 108.
    """
    e = amare()
    register(e)
    grant(e, 100, T("2025-01-15"))
    grant(e, 50, T("2025-03-01"))
    place(e, _ama_sub("o1", T("2025-06-01"), price=20000, exchanges=[("ssr_example_42", 1)]))
    assert balances(e, T("2025-06-01", "12:00"))["valid"] == 108
    b = balances(e, T("2026-01-15", "23:59"))
    assert (b["valid"], b["expired"]) == (108, 0)
    b = balances(e, T("2026-01-16", "00:00"))
    assert (b["valid"], b["expired"]) == (50, 58)
    b = balances(e, T("2026-03-01", "23:59"))
    assert (b["valid"], b["expired"]) == (50, 58)
    b = balances(e, T("2026-03-02", "00:00"))
    assert (b["valid"], b["expired"]) == (0, 108)


# --- AMA-3 exchange fees ---------------------------------------------------------------------

def _fee_cart(order, exchanges, member="m1"):
    # subscription with the order, ¥20,000 at 8 % (21,600 incl. ≥ 12,000): handling fee waived (AMA-4)
    return _ama_sub(order, T("2025-02-10"), price=20000, member=member, exchanges=exchanges)


@pytest.mark.parametrize("exchanges,points,fee", [
    ([("ssr_example_42", 1)], 42, 1400),      # 42 → 1 started block of 100
    ([("ssr_reward_100", 1)], 100, 1400),     # 100 → 1 block
    ([("ssr_example_42", 4)], 168, 2800),     # 168 → 2 blocks
    ([("ssr_example_42", 1), ("ssr_reward_100", 1)], 142, 2800),   # 142 → 2 blocks
])
def test_AMA_3_exchange_fee_per_started_100_points(exchanges, points, fee):
    """AMA-3: "¥1,400 ex. tax for every 100 points exchanged or part of 100".

    Fee = 1,400 × ceil(points / 100), taxed at 10 %. Items ¥20,000 at 8 % → tax 1,600.
    Grand total = 20,000 + fee + 1,600 + fee / 10.
    """
    e = amare()
    register(e)
    grant(e, 500)
    q = e.quote(_fee_cart("o1", exchanges))
    assert q["errors"] == []
    assert q["exchange"]["points"] == points
    assert [(f["kind"], f["ex_tax"], f["tax_rate"]) for f in q["exchange"]["fees"]] == [("exchange_fee", fee, 0.10)]
    assert q["totals"]["fees_ex_tax"] == fee
    assert q["totals"]["tax"] == {"0.08": 1600, "0.10": fee // 10}
    assert q["totals"]["grand_total"] == 20000 + fee + 1600 + fee // 10


def test_AMA_3_fee_for_101_points(tmp_path):
    """AMA-3: 101 points → 2 started blocks → ¥2,800 ex. tax (tax 280).

    The catalog (42, 100) cannot add up to 101, so this uses a copy of programs/amare.yaml with
    one extra 1-point reward; the fee rules are the file's own, unchanged.
    """
    text = AMARE.read_text(encoding="utf-8")
    anchor = '        - {id: ssr_reward_100, name: "SSR reward 100", units: 100}\n'
    assert anchor in text
    text = text.replace(anchor, anchor + '        - {id: ssr_reward_1, name: "SSR reward 1", units: 1}\n')
    path = tmp_path / "amare_101.yaml"
    path.write_text(text, encoding="utf-8")
    e = Engine(str(path))
    register(e)
    grant(e, 500)
    q = e.quote(_fee_cart("o1", [("ssr_reward_100", 1), ("ssr_reward_1", 1)]))
    assert q["errors"] == []
    assert q["exchange"]["points"] == 101
    assert [(f["kind"], f["ex_tax"]) for f in q["exchange"]["fees"]] == [("exchange_fee", 2800)]
    assert q["totals"]["tax"] == {"0.08": 1600, "0.10": 280}


# --- AMA-4 handling fee ----------------------------------------------------------------------

def test_AMA_4_handling_fee_for_ship_now():
    """AMA-4: "Apply now ships separately at once and pays it" (ASSUMPTION ¥1,000 ex. tax at 10 %).

    Subscription, ¥20,000 at 8 %, 42 points, fulfilment ship_now:
    fees 1,400 (exchange) + 1,000 (handling) = 2,400; tax 10 % floor(240) = 240, 8 % 1,600;
    grand total 20,000 + 2,400 + 1,600 + 240 = 24,240.
    """
    e = amare()
    register(e)
    grant(e, 100)
    q = e.quote(_ama_sub("o1", T("2025-02-10"), price=20000, exchanges=[("ssr_example_42", 1)],
                         fulfilment="ship_now"))
    assert q["errors"] == []
    fees = sorted((f["kind"], f["ex_tax"], f["tax_rate"]) for f in q["exchange"]["fees"])
    assert fees == [("exchange_fee", 1400, 0.10), ("handling_fee", 1000, 0.10)]
    assert q["totals"]["fees_ex_tax"] == 2400
    assert q["totals"]["tax"] == {"0.08": 1600, "0.10": 240}
    assert q["totals"]["grand_total"] == 24240



def test_AMA_4_apply_now_is_an_exchange_with_no_lines():
    """AMA-4: "apply now" (今すぐ申し込む) is an exchange on its own: no product, `lines: []`
    with `exchanges`, shipped at once, paying the handling fee (ASSUMPTION ¥1,000 ex. tax).

    42 points (ssr_example_42): exchange fee 1 unit = 1,400; handling 1,000; tax 10 % of 2,400 =
    240; grand total 2,640. Balance 100 → after placing, valid 58, used 42. The same cart with
    no exchanges and no lines is refused (an order of nothing), the ledger unchanged.
    """
    e = amare()
    register(e)
    grant(e, 100)
    c = cart("now1", T("2025-02-10"), [], course="one_off", exchanges=[("ssr_example_42", 1)],
             fulfilment="ship_now")
    q = e.quote(c)
    assert q["errors"] == []
    assert sorted((f["kind"], f["ex_tax"]) for f in q["exchange"]["fees"]) == [("exchange_fee", 1400),
                                                                                ("handling_fee", 1000)]
    assert (q["totals"]["tax"], q["totals"]["grand_total"]) == ({"0.10": 240}, 2640)
    place(e, c)
    assert balances(e, T("2025-02-10", "12:00")) == pts(valid=58, used=42)
    bad = cart("now2", T("2025-02-11"), [], course="one_off")
    place(e, bad, expect="rejected")
    assert balances(e, T("2025-02-11", "12:00")) == pts(valid=58, used=42)

@pytest.mark.parametrize("price,course,handling", [
    # 11,111 + floor(888.88) = 11,999 incl. tax: under 12,000 → charged
    (11111, "subscription", True),
    # 11,112 + floor(888.96) = 12,000 incl. tax: waived
    (11112, "subscription", False),
    # a one-off order never waives it
    (20000, "one_off", True),
])
def test_AMA_4_handling_fee_waived_at_12000_with_subscription(price, course, handling):
    """AMA-4: "waived when the exchange ships in the same box as a subscription order of
    ≥ ¥12,000 incl. tax".

    Items at 8 %; 42 points → exchange fee 1,400; handling fee 1,000 when charged.
    11,111: fees 2,400 → tax 10 % 240, 8 % 888 → total 11,111 + 2,400 + 888 + 240 = 14,639.
    11,112: fees 1,400 → tax 10 % 140, 8 % 888 → total 11,112 + 1,400 + 888 + 140 = 13,540.
    20,000 one-off: fees 2,400 → 240 + 1,600 → 24,240.
    """
    e = amare()
    register(e)
    grant(e, 100)
    q = e.quote(_ama_sub("o1", T("2025-02-10"), price=price, course=course, exchanges=[("ssr_example_42", 1)]))
    kinds = sorted(f["kind"] for f in q["exchange"]["fees"])
    assert kinds == (["exchange_fee", "handling_fee"] if handling else ["exchange_fee"])
    expected_total = {11111: 14639, 11112: 13540, 20000: 24240}[price]
    assert q["totals"]["grand_total"] == expected_total


# --- AMA-5 refusals --------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["bank_transfer", "direct_debit"])
def test_AMA_5_bank_transfer_and_direct_debit_refused(method):
    """AMA-5: "Members paying by bank transfer or direct debit cannot exchange through the system:
    refused, with a reason that tells them to contact customer service".

    Balance 100; the 42-point exchange is refused; the reason says to contact customer service;
    the ledger is unchanged (valid 100, used 0). The same order without the exchange is accepted,
    and by credit card the exchange is accepted (used 42).
    """
    e = amare()
    register(e)
    grant(e, 100)
    c = _ama_sub("o1", T("2025-02-10"), price=20000, method=method, exchanges=[("ssr_example_42", 1)])
    q = e.quote(c)
    assert q["errors"] and q["errors"][0]["rule"] == "AMA-5"
    r = place(e, c, expect="rejected")
    reason = r.rejected[0]["reason"].lower()
    assert "contact" in reason and "customer" in reason
    assert r.rejected[0]["rule"] == "AMA-5"
    assert balances(e, T("2025-02-10", "12:00")) == pts(valid=100)
    place(e, _ama_sub("o2", T("2025-02-10", "13:00"), price=20000, method=method))
    place(e, _ama_sub("o3", T("2025-02-10", "14:00"), price=20000, exchanges=[("ssr_example_42", 1)]))
    assert balances(e, T("2025-02-10", "15:00"))["used"] == 42


# --- AMA-6 the worked example ----------------------------------------------------------------

def test_AMA_6_receipt_reproduced_exactly():
    """AMA-6: products ¥36,900 incl. 8 % (¥34,167 ex. tax), 42 points exchanged, exchange fee
    ¥1,400 ex. tax, shipping ¥0 → subtotal 34,167 + 1,400 = 35,567;
    tax 8 %: floor(34,167 × 0.08 = 2,733.36) = 2,733; 10 %: 1,400 × 0.10 = 140; total tax 2,873;
    grand total 35,567 + 2,873 = 38,440; PV 180.
    A subscription order of 36,900 ≥ 12,000 with the exchange in the box: no handling fee (AMA-4).
    No redemption at Amare: max 0. Earn month 1: floor(180 × 10 %) = 18, pending.
    After placing: 100 - 42 = 58 valid, 42 used.
    """
    e = amare()
    register(e)
    grant(e, 100)
    c = cart("o1", T("2025-02-10"), [ln("BUNDLE", 34167, 0.08, pv=180)], course="subscription",
             exchanges=[("ssr_example_42", 1)], shipping=0)
    q = e.quote(c)
    assert q["errors"] == []
    t = q["totals"]
    assert t["items_ex_tax"] == 34167
    assert t["items_ex_tax"] + t["tax"]["0.08"] == 36900
    assert t["fees_ex_tax"] == 1400
    assert t["shipping_ex_tax"] == 0
    assert t["subtotal_ex_tax"] == 35567
    assert t["tax"] == {"0.08": 2733, "0.10": 140}
    assert t["tax_total"] == 2873
    assert t["grand_total"] == 38440
    assert t["to_pay"] == 38440
    assert t["pv"] == 180
    assert q["exchange"]["points"] == 42
    assert [(f["kind"], f["ex_tax"], f["tax_rate"]) for f in q["exchange"]["fees"]] == [("exchange_fee", 1400, 0.10)]
    assert q["redeem"]["max"] == 0
    assert (q["earn"]["points"], q["earn"]["state"]) == (18, "pending")
    place(e, c)
    assert balances(e, T("2025-02-10", "12:00")) == pts(valid=58, pending=18, used=42)


def test_ANS_8_the_campaign_example_is_the_live_program_plus_one_row():
    """examples/ansage/campaign.yaml must not drift from the live program: the same program but for
    one earning row, the campaign (rate 0.10 from 2026-01-01 until 2026-01-07)."""
    import yaml

    live = yaml.safe_load(ANSAGE.read_text(encoding="utf-8"))
    campaign = yaml.safe_load((ROOT / "examples" / "ansage" / "campaign.yaml").read_text(encoding="utf-8"))
    rows = campaign["versions"][0]["earning"]["rates"]
    extra = [r for r in rows if "from" in r]
    assert len(extra) == 1 and extra[0]["rate"] == 0.10
    assert (str(extra[0]["from"]), str(extra[0]["until"])) == ("2026-01-01", "2026-01-07")
    rows.remove(extra[0])
    assert campaign == live
