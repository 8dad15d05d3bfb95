"""Rule tests for リワードサークル (programs/rewards_circle.yaml, RC-0..RC-9, and X-2/X-3 on it).

The shop's FAQ page answers its customers with exact numbers;
those answers are tests here. Every expected number is worked out by hand from
docs/RULES.md and the ASSUMPTION comments of the program file, never copied from the
engine's output. Conventions of the hand calculations:

* money is integer yen; lines are ex. tax; tax once per rate per order, floored, so an order's
  amount incl. tax = Σ per rate (base + floor(base × rate)). Lines used below:
      20,000 @10 % → 20,000 + 2,000            = 22,000
      18,182 @10 % → 18,182 + floor(1,818.2)   = 20,000
       4,546 @10 % →  4,546 + floor(454.6)     =  5,000
      11,819 @10 % → 11,819 + floor(1,181.9)   = 13,000
       5,454 @10 % →  5,454 + floor(545.4)     =  5,999
       5,455 @10 % →  5,455 + floor(545.5)     =  6,000
      11,112 @ 8 % → 11,112 + floor(888.96)    = 12,000
      16,363 @10 % → 16,363 + floor(1,636.3)   = 17,999
      16,364 @10 % → 16,364 + floor(1,636.4)   = 18,000
      20,370 @ 8 % → 20,370 + floor(1,629.6)   = 21,999
      22,728 @10 % → 22,728 + floor(2,272.8)   = 25,000
      32,728 @10 % → 32,728 + floor(3,272.8)   = 36,000
      54,546 @10 % → 54,546 + floor(5,454.6)   = 60,000
* version 1 (to 2025-11-03): 1 credit per ¥22,000 incl. tax counted at shipment (RC-0
  ASSUMPTION), 1 credit = ¥1,100; version 2 (from 2025-11-04 00:00 Asia/Tokyo): 1 credit per
  ¥12,000 (RC-2), 1 credit = ¥450 (RC-1);
* a credit issued on day D is valid through D + 180 days and expired from 00:00 the day after
  (RC-5; also under version 1, ASSUMPTION). Dates used (counted by month lengths):
      2025-06-03 + 180 = 2025-11-30     (Jun 27 left + Jul 31 + Aug 31 + Sep 30 + Oct 31 + 30)
      2025-07-05 + 180 = 2026-01-01     (Jul 26 + Aug 31 + Sep 30 + Oct 31 + Nov 30 + Dec 31 + 1)
      2025-09-02 + 180 = 2026-03-01     (Sep 28 + Oct 31 + Nov 30 + Dec 31 + Jan 31 + Feb 28 + 1)
      2025-11-04 + 180 = 2026-05-03     (Nov 26 + Dec 31 + Jan 31 + Feb 28 + Mar 31 + Apr 30 + 3)
      2025-11-05 + 180 = 2026-05-04
      2025-11-10 + 180 = 2026-05-09
* RC-6 conversion of N version-1 credits: each → 2 credits keeping its date; pool = 200 × N;
  floor(pool / 450) more at the earliest date of the credits that fed the pool (ASSUMPTION);
  a rest > 0 → 1 adjustment credit ending 2026-05-03. Total ceil(1,100 × N / 450).
"""
from __future__ import annotations

import itertools
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engine import Engine
from engine.format.loader import load_program
from tests.helpers import check_outcome, send  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "programs" / "rewards_circle.yaml"
SWITCH = "2025-11-04T00:00:00+09:00"
ADJ_END = "2026-05-03"
RULE_IDS = {f"RC-{i}" for i in range(10)}

_ids = itertools.count(1)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def T(day: str, hm: str = "10:00") -> str:
    """A Tokyo instant: T("2025-11-05") → 2025-11-05T10:00:00+09:00."""
    return f"{day}T{hm}:00+09:00"


def engine() -> Engine:
    return Engine(str(PROGRAM))




def register(e: Engine, member: str = "m1", at: str = T("2025-06-01", "09:00"), insider: bool | None = None):
    fields = {"attributes": {"insider": insider}} if insider is not None else {}
    return send(e, "member.registered", at, member, **fields)


def ln(unit_price: int, tax_rate: float = 0.10, qty: int = 1, sku: str = "ITEM") -> dict:
    return {"sku": sku, "qty": qty, "unit_price": unit_price, "tax_rate": tax_rate}


def cart(order: str, at: str, lines: list[dict], *, member: str = "m1", course: str = "one_off",
         credits=None, **extra) -> dict:
    c = {"id": f"place-{order}-{next(_ids)}", "type": "order.placed", "at": at, "member": member, "order": order,
         "course": course, "payment": {"method": "credit_card"}, "lines": lines, **extra}
    if credits is not None:
        c["redeem"] = {"credits": credits}
    return c


def place(e: Engine, c: dict, expect: str = "applied"):
    return check_outcome(e.apply(c), c["id"], expect)


def ship(e: Engine, order: str, at: str, member: str = "m1"):
    return send(e, "order.shipped", at, member, order=order)


def buy(e: Engine, order: str, day: str, lines: list[dict], member: str = "m1"):
    """Place an order at 10:00 and ship it at 15:00 the same day."""
    place(e, cart(order, T(day), lines, member=member))
    ship(e, order, T(day, "15:00"), member)


def earn_v1_credits(e: Engine, n: int, day: str, member: str = "m1", order: str | None = None):
    """n version-1 credits: one order of n × ¥22,000 incl. tax (n × 20,000 @10 %), shipped on ``day``."""
    buy(e, order or f"{member}-v1-{day}", day, [ln(20000, qty=n)], member)


def grant(e: Engine, amount: int, at: str, member: str = "m1", expires_on: str | None = None):
    fields = {"amount": amount, "reason": "test"}
    if expires_on:
        fields["expires_on"] = expires_on
    return send(e, "points.granted", at, member, **fields)


def view(e: Engine, at: str, member: str = "m1") -> dict:
    return e.member(member, at)


def valid(e: Engine, at: str, member: str = "m1") -> int:
    return view(e, at, member)["points"]["valid"]


def valid_by_expiry(e: Engine, at: str, member: str = "m1") -> dict[str, int]:
    out: Counter = Counter()
    for lot in view(e, at, member)["lots"]:
        if lot["state"] == "valid":
            out[lot["expires_on"]] += lot["amount"]
    return dict(out)


def valid_lots(e: Engine, at: str, member: str = "m1") -> list[dict]:
    return [lot for lot in view(e, at, member)["lots"] if lot["state"] == "valid"]


# ============================================================================================
# RC-0 — version 1's earn (ASSUMPTION: 1 credit per ¥22,000 incl. tax, counted at shipment)
# ============================================================================================

def test_RC_0_v1_one_credit_per_22000_incl_tax_at_the_purchase():
    """RC-0: "Purchase amounts in RC are incl. tax, after discounts, counted when the order is
    placed: the page's own example grants the credit at the moment of the purchase (「この時点で」).
    Version 1's earn rule ... ASSUMPTION 1 credit per ¥22,000".

    One line 20,000 @10 % = 22,000 incl. tax (ex. tax it would be only 20,000 → 0 credits).
    Placed 2025-09-02 10:00: 22,000 // 22,000 = 1 credit at once, carry 0; the shipment at 15:00
    adds nothing. Rule RC-0, version 1, last valid day 2025-09-02 + 180 = 2026-03-01.
    """
    e = engine()
    register(e)
    place(e, cart("o1", T("2025-09-02"), [ln(20000)]))
    lots = valid_lots(e, T("2025-09-02", "10:00"))
    assert [(l["amount"], l["rule"], l["version"], l["expires_on"]) for l in lots] == [(1, "RC-0", 1, "2026-03-01")]
    ship(e, "o1", T("2025-09-02", "15:00"))
    assert valid(e, T("2025-09-02", "16:00")) == 1
    assert e.runner.state_of("m1").carry == 0


def test_RC_0_v1_below_threshold_carries_then_completes():
    """RC-0: the amount left over carries toward the next credit.

    Order 1: 20,370 @8 % = 21,999 < 22,000 → 0 credits, carry 21,999.
    Order 2: 5,455 @10 % = 6,000 → 21,999 + 6,000 = 27,999 → 1 credit, carry 27,999 - 22,000 = 5,999.
    """
    e = engine()
    register(e)
    buy(e, "o1", "2025-08-01", [ln(20370, 0.08)])
    assert valid(e, T("2025-08-01", "16:00")) == 0
    assert e.runner.state_of("m1").carry == 21999
    buy(e, "o2", "2025-08-10", [ln(5455)])
    assert valid(e, T("2025-08-10", "16:00")) == 1
    assert e.runner.state_of("m1").carry == 5999


def test_RC_0_amount_is_after_coupon_discount():
    """RC-0: the amount is "after discounts". Line 22,000 ex. tax with a coupon of 2,000 (ex.
    tax, spread before tax): 20,000 + 10 % = 22,000 → 1 credit, carry 0 (without the coupon it
    would be 24,200 → carry 2,200)."""
    e = engine()
    register(e)
    place(e, cart("o1", T("2025-08-01"), [ln(22000)], coupon_discount=2000))
    ship(e, "o1", T("2025-08-01", "15:00"))
    assert valid(e, T("2025-08-01", "16:00")) == 1
    assert e.runner.state_of("m1").carry == 0


def test_RC_0_order_placed_under_v1_counts_under_v1_and_its_carry_crosses_the_switch():
    """RC-0: counted when the order is placed, so by the version in force then (X-2).

    13,000 incl. tax (11,819 @10 %) placed 2025-11-01 (v1): 13,000 < 22,000 → 0 credits, carry
    13,000. On the switch 2025-11-04 the carry meets version 2's 12,000 (RC-3): 1 credit, carry
    1,000, last valid day 2025-11-04 + 180 = 2026-05-03. Shipped 2025-11-05 (v2): nothing more.
    """
    e = engine()
    register(e)
    place(e, cart("o1", T("2025-11-01"), [ln(11819)]))
    assert e.runner.state_of("m1").carry == 13000
    ship(e, "o1", T("2025-11-05", "15:00"))
    lots = valid_lots(e, T("2025-11-05", "16:00"))
    assert [(l["amount"], l["rule"], l["version"], l["expires_on"]) for l in lots] == [(1, "RC-3", 2, "2026-05-03")]
    assert e.runner.state_of("m1").carry == 1000


# ============================================================================================
# RC-1 — a credit is worth ¥1,100 before 2025-11-04, ¥450 from then
# ============================================================================================

def test_RC_1_credit_worth_1100_before_and_450_after_the_switch():
    """RC-1: "¥1,100 per credit before 2025-11-04, ¥450 per credit from 2025-11-04".

    Cart: 20,000 @10 % = 22,000 grand total (no shipping), redeem 1 credit (RC-7 allows
    22,000 // 6,000 = 3). Member holds 2 version-1 credits (44,000 shipped 2025-07-05).
    2025-10-01 (v1): to pay 22,000 - 1,100 = 20,900.
    2025-11-10 (v2; the 2 credits became ceil(2,200 / 450) = 5): to pay 22,000 - 450 = 21,550.
    """
    e = engine()
    register(e)
    earn_v1_credits(e, 2, "2025-07-05")
    q1 = e.quote(cart("q1", T("2025-10-01"), [ln(20000)], credits=1))
    assert q1["errors"] == []
    assert q1["version"] == 1
    assert q1["totals"]["grand_total"] == 22000
    assert q1["redeem"]["applied"] == 1
    assert q1["totals"]["to_pay"] == 20900
    q2 = e.quote(cart("q2", T("2025-11-10"), [ln(20000)], credits=1))
    assert q2["errors"] == []
    assert q2["version"] == 2
    assert q2["totals"]["grand_total"] == 22000
    assert q2["totals"]["to_pay"] == 21550


def test_RC_1_value_changes_at_midnight_of_the_switch_day():
    """RC-1 / X-2: an order at 2025-11-03 23:59:59 is judged by version 1 (¥1,100 a credit), one
    at 2025-11-04 00:00:00 by version 2 (¥450). Same 22,000 cart, 1 credit: 20,900 vs 21,550."""
    e = engine()
    register(e)
    earn_v1_credits(e, 2, "2025-07-05")
    before = e.quote(cart("q1", "2025-11-03T23:59:59+09:00", [ln(20000)], credits=1))
    after = e.quote(cart("q2", SWITCH, [ln(20000)], credits=1))
    assert (before["version"], before["totals"]["to_pay"]) == (1, 20900)
    assert (after["version"], after["totals"]["to_pay"]) == (2, 21550)


# ============================================================================================
# RC-2 — 1 credit per ¥12,000 of cumulative purchases, the rest carries
# ============================================================================================

def test_RC_2_one_credit_per_12000_with_carry():
    """RC-2: "1 credit for every ¥12,000 of cumulative purchases; what is left over carries".

    Member registered under version 2. 25,000 incl. tax (22,728 @10 %) shipped 2025-11-10:
    25,000 // 12,000 = 2 credits, carry 1,000. Then 36,000 (32,728 @10 %): 1,000 + 36,000 =
    37,000 → 3 credits, carry 1,000. Total 5 valid.
    """
    e = engine()
    register(e, at=T("2025-11-10", "09:00"))
    buy(e, "o1", "2025-11-10", [ln(22728)])
    assert valid(e, T("2025-11-10", "16:00")) == 2
    assert e.runner.state_of("m1").carry == 1000
    buy(e, "o2", "2025-11-12", [ln(32728)])
    assert valid(e, T("2025-11-12", "16:00")) == 5
    assert e.runner.state_of("m1").carry == 1000


# ============================================================================================
# RC-3 — the carried amount on the switch day (page Q3, Q10)
# ============================================================================================

def _carry_20000_on_1101(e: Engine):
    # 18,182 @10 % = 20,000 incl. tax, shipped in October under v1: 20,000 < 22,000 → 0 credits.
    register(e)
    buy(e, "o1", "2025-10-20", [ln(18182)])


def test_RC_3_20000_carried_gives_1_credit_on_1104_and_8000_carries():
    """RC-3 (page Q10): "¥20,000 carried on 11-01 (no credits) → 1 credit on 11-04, ¥8,000
    carried". Under v1 the threshold is 22,000, so 20,000 stays carried until 11-03.

    11-03 23:59:59: 0 credits. 11-04 00:00: 20,000 // 12,000 = 1 credit (rule RC-3, version 2,
    valid 180 days from 11-04: 2026-05-03), carry 20,000 - 12,000 = 8,000.
    """
    e = engine()
    _carry_20000_on_1101(e)
    assert valid(e, T("2025-11-01")) == 0
    assert e.runner.state_of("m1").carry == 20000
    assert valid(e, "2025-11-03T23:59:59+09:00") == 0
    lots = valid_lots(e, SWITCH)
    assert [(l["amount"], l["rule"], l["version"], l["expires_on"]) for l in lots] == [(1, "RC-3", 2, ADJ_END)]
    # The carry after the switch, seen through an event on 11-04 (a member.updated with no fields).
    send(e, "member.updated", T("2025-11-04", "12:00"))
    assert e.runner.state_of("m1").carry == 8000


def test_RC_3_then_8000_plus_5000_on_1105_gives_1_credit_and_1000_carried():
    """RC-2/RC-3 (page Q3): "¥8,000 carried + ¥5,000 bought on 11-05 → 1 credit on 11-05, ¥1,000
    carried". 5,000 incl. tax = 4,546 @10 %. 8,000 + 5,000 = 13,000 → 1 credit (RC-2, valid
    through 2026-05-04), carry 1,000. Holdings: the RC-3 credit (2026-05-03) + this one.
    """
    e = engine()
    _carry_20000_on_1101(e)
    buy(e, "o2", "2025-11-05", [ln(4546)])
    assert valid_by_expiry(e, T("2025-11-05", "16:00")) == {ADJ_END: 1, "2026-05-04": 1}
    new = [l for l in valid_lots(e, T("2025-11-05", "16:00")) if l["order"] == "o2"]
    assert [(l["amount"], l["rule"], l["version"]) for l in new] == [(1, "RC-2", 2)]
    assert e.runner.state_of("m1").carry == 1000


def test_RC_3_no_credit_from_a_carry_below_12000():
    """RC-3: only a carry "already ≥ ¥12,000" gives credits. 11,999 incl. tax (11,111 @8 %)
    shipped in October → 0 credits on 11-04, the 11,999 stays carried."""
    e = engine()
    register(e)
    buy(e, "o1", "2025-10-20", [ln(11111, 0.08)])
    assert valid(e, SWITCH) == 0
    send(e, "member.updated", T("2025-11-04", "12:00"))
    assert e.runner.state_of("m1").carry == 11999


# ============================================================================================
# RC-4 — the Insider gift (page Q2, Q15)
# ============================================================================================

def test_RC_4_insider_gets_one_gift_credit_ending_2026_05_03():
    """RC-4: "Every Insider receives 1 gift credit on 2025-11-04, valid until 2026-05-03".

    Insider (attribute insider: true) with nothing else: 11-03 0 credits; 11-04 1 credit, rule
    RC-4, version 2, last valid day 2026-05-03; still valid 2026-05-03 23:59, expired 05-04 00:00.
    """
    e = engine()
    register(e, insider=True)
    assert valid(e, "2025-11-03T23:59:59+09:00") == 0
    lots = valid_lots(e, SWITCH)
    assert [(l["amount"], l["rule"], l["version"], l["expires_on"]) for l in lots] == [(1, "RC-4", 2, ADJ_END)]
    assert valid(e, "2026-05-03T23:59:59+09:00") == 1
    p = view(e, "2026-05-04T00:00:00+09:00")["points"]
    assert (p["valid"], p["expired"]) == (0, 1)


@pytest.mark.parametrize("insider", [None, False])
def test_RC_4_non_insiders_get_no_gift(insider):
    """RC-4: only Insiders. A member without the attribute, or with insider: false, holds 0 on 11-04."""
    e = engine()
    register(e, insider=insider)
    assert valid(e, SWITCH) == 0


def test_RC_4_insider_gift_comes_on_top_of_the_conversion():
    """RC-4 + RC-6: an Insider with 1 version-1 credit (shipped 2025-06-03, ends 2025-11-30):
    2 converted (2025-11-30) + 1 adjustment (2026-05-03) + 1 gift (2026-05-03) = 4."""
    e = engine()
    register(e, insider=True)
    earn_v1_credits(e, 1, "2025-06-03")
    assert valid_by_expiry(e, SWITCH) == {"2025-11-30": 2, ADJ_END: 2}
    assert Counter(l["rule"] for l in valid_lots(e, SWITCH) for _ in range(l["amount"])) == {"RC-6": 3, "RC-4": 1}


# ============================================================================================
# RC-5 — 180 days of validity
# ============================================================================================

def test_RC_5_new_credit_valid_180_days_then_expired_next_day():
    """RC-5: "valid for 180 days from its issue date". A credit issued 2025-11-10 (12,000 incl.
    tax = 11,112 @8 %, shipped that day): last valid day 2025-11-10 + 180 = 2026-05-09; valid at
    2026-05-09 23:59:59, expired from 2026-05-10 00:00 (valid 0, expired 1)."""
    e = engine()
    register(e, at=T("2025-11-10", "09:00"))
    buy(e, "o1", "2025-11-10", [ln(11112, 0.08)])
    assert [l["expires_on"] for l in valid_lots(e, T("2025-11-10", "16:00"))] == ["2026-05-09"]
    assert valid(e, "2026-05-09T23:59:59+09:00") == 1
    p = view(e, "2026-05-10T00:00:00+09:00")["points"]
    assert (p["valid"], p["expired"]) == (0, 1)


def test_RC_5_switch_day_example_2025_11_04_plus_180_is_2026_05_03():
    """RC-5's own example: 2025-11-04 + 180 days = 2026-05-03. The adjustment credit of a holder
    of 1 old credit is issued 11-04: valid through 2026-05-03, expired 2026-05-04."""
    e = engine()
    register(e)
    earn_v1_credits(e, 1, "2025-07-05")       # ends 2026-01-01
    adj = [l for l in valid_lots(e, SWITCH) if l["expires_on"] == ADJ_END]
    assert sum(l["amount"] for l in adj) == 1
    assert valid(e, "2026-05-03T23:59:59+09:00") == 1      # the two converted ones ended 2026-01-01
    assert valid(e, "2026-05-04T00:00:00+09:00") == 0


def test_RC_5_version_1_credit_valid_180_days_and_kept_through_conversion():
    """RC-5 (ASSUMPTION: also under version 1) + RC-6: a credit shipped 2025-06-03 ends
    2025-11-30. After conversion its 2 credits still end 2025-11-30: on 2025-11-30 23:59:59
    3 valid; on 2025-12-01 00:00 the 2 are expired, the adjustment (2026-05-03) remains: 1 valid.
    """
    e = engine()
    register(e)
    earn_v1_credits(e, 1, "2025-06-03")
    assert [l["expires_on"] for l in valid_lots(e, T("2025-06-03", "16:00"))] == ["2025-11-30"]
    assert valid(e, "2025-11-30T23:59:59+09:00") == 3
    p = view(e, "2025-12-01T00:00:00+09:00")["points"]
    assert (p["valid"], p["expired"]) == (1, 2)


# ============================================================================================
# RC-6 — conversion of version-1 credits (page Q4, Q5, Q6)
# ============================================================================================

def test_RC_6_page_1_credit_becomes_3():
    """RC-6 (page Q4, Q6 example 1): 1 credit (¥1,100, ends 11/30) → 2 credits (¥900) that keep
    11/30; ¥200 left: floor(200 / 450) = 0 more, rest 200 > 0 → 1 adjustment credit ending
    2026-05-03. Total 3 = ceil(1,100 / 450) = ceil(2.44); ¥1,350 ≥ ¥1,100.
    The old lot is no longer valid (converted)."""
    e = engine()
    register(e)
    earn_v1_credits(e, 1, "2025-06-03")       # ends 2025-11-30
    assert valid(e, "2025-11-03T23:59:59+09:00") == 1
    m = view(e, SWITCH)
    assert m["points"]["valid"] == 3
    assert valid_by_expiry(e, SWITCH) == {"2025-11-30": 2, ADJ_END: 1}
    old = [l for l in m["lots"] if l["rule"] == "RC-0"]
    assert len(old) == 1 and old[0]["state"] != "valid"
    assert all(l["rule"] == "RC-6" and l["version"] == 2 for l in valid_lots(e, SWITCH))


def test_RC_6_page_5_credits_become_13_pool_keeps_earliest_expiry():
    """RC-6 (page Q5) with two expiry dates (the YAML ASSUMPTION: the pool keeps the earliest).

    2 credits shipped 2025-06-03 (end 2025-11-30), 3 shipped 2025-07-05 (end 2026-01-01).
    Step 1: 2 × 2 = 4 credits end 11-30, 3 × 2 = 6 end 01-01; pool 5 × 200 = 1,000.
    Step 2: floor(1,000 / 450) = 2 more at the earliest date 2025-11-30; rest 100 → 1 adjustment
    ending 2026-05-03. Total 4 + 6 + 2 + 1 = 13 = ceil(5,500 / 450) = ceil(12.2); ¥5,850 ≥ ¥5,500.
    """
    e = engine()
    register(e)
    earn_v1_credits(e, 2, "2025-06-03", order="a")
    earn_v1_credits(e, 3, "2025-07-05", order="b")
    assert valid(e, T("2025-11-03")) == 5
    assert valid(e, SWITCH) == 13
    assert valid_by_expiry(e, SWITCH) == {"2025-11-30": 6, "2026-01-01": 6, ADJ_END: 1}


def test_RC_6_page_5_credits_same_date_become_13():
    """RC-6 (page Q5): 5 credits all ending 2026-01-01 → 10 + floor(1,000 / 450) = 2 more, both
    ending 2026-01-01, + 1 adjustment (rest 100) ending 2026-05-03 = 13."""
    e = engine()
    register(e)
    earn_v1_credits(e, 5, "2025-07-05")
    assert valid_by_expiry(e, SWITCH) == {"2026-01-01": 12, ADJ_END: 1}


def test_RC_6_page_10_credits_ending_0101_become_25():
    """RC-6 (page Q6 example 2): 10 credits (¥11,000, end 1/1) → 24 credits ending 1/1
    (20 split + floor(2,000 / 450) = 4 pooled; rest 200) + 1 adjustment ending 2026-05-03
    = 25 = ceil(11,000 / 450) = ceil(24.44); ¥11,250 ≥ ¥11,000."""
    e = engine()
    register(e)
    earn_v1_credits(e, 10, "2025-07-05")      # 10 × 22,000 = 220,000 → 10 credits, end 2026-01-01
    assert valid(e, T("2025-11-03")) == 10
    assert valid_by_expiry(e, SWITCH) == {"2026-01-01": 24, ADJ_END: 1}


def test_RC_6_exact_pool_makes_no_adjustment_credit():
    """RC-6: "any remainder > 0 makes 1 adjustment credit" — none when the pool divides.
    9 credits: 9 × 1,100 = 9,900 = 22 × 450. 18 split + floor(1,800 / 450) = 4, rest 0 → 22,
    all ending 2026-01-01, no 2026-05-03 credit."""
    e = engine()
    register(e)
    earn_v1_credits(e, 9, "2025-07-05")
    assert valid_by_expiry(e, SWITCH) == {"2026-01-01": 22}


def test_RC_6_three_dates_pool_at_earliest():
    """RC-6 ASSUMPTION (earliest expiry for the pool), with operator grants under version 1:
    1 credit ending 2026-02-10, 2 ending 2025-12-15, 1 ending 2026-04-01 (N = 4).
    Split: 2 @02-10, 4 @12-15, 2 @04-01; pool 800 → floor(800 / 450) = 1 @2025-12-15 (earliest),
    rest 350 → 1 adjustment @2026-05-03. Total 10 = ceil(4,400 / 450) = ceil(9.78)."""
    e = engine()
    register(e)
    grant(e, 1, T("2025-10-01"), expires_on="2026-02-10")
    grant(e, 2, T("2025-10-02"), expires_on="2025-12-15")
    grant(e, 1, T("2025-10-03"), expires_on="2026-04-01")
    assert valid_by_expiry(e, SWITCH) == {"2026-02-10": 2, "2025-12-15": 5, "2026-04-01": 2, ADJ_END: 1}


def test_RC_6_used_credits_are_not_converted():
    """RC-6 converts credits *held*. 3 credits (66,000 shipped 2025-07-05, end 2026-01-01); 1 spent
    on 2025-10-01 (11,000 cart = 10,000 @10 %, RC-7 allows 11,000 // 6,000 = 1; not shipped).
    2 held: 2 × 1,100 = 2,200 → 4 split + floor(400 / 450) = 0, rest 400 → 1 adjustment = 5
    = ceil(2,200 / 450) = ceil(4.89). Used stays 1."""
    e = engine()
    register(e)
    earn_v1_credits(e, 3, "2025-07-05")
    place(e, cart("spend", T("2025-10-01"), [ln(10000)], credits=1))
    assert valid(e, T("2025-10-01", "12:00")) == 2
    p = view(e, SWITCH)["points"]
    assert (p["valid"], p["used"]) == (5, 1)
    assert valid_by_expiry(e, SWITCH) == {"2026-01-01": 4, ADJ_END: 1}


def test_RC_6_credits_owed_at_the_switch_keep_their_yen_rounded_down():
    """A debt is converted as the balance is (ASSUMPTION: the page converts held credits only;
    a member owing credits owes their yen). 2025-07-05: 66,000 (3 × 20,000 @10 %) placed → 3
    credits (RC-0). 2025-07-10: 6,000 (5,455 @10 %) using 1 credit (RC-7: 6,000 // 6,000 = 1) →
    2 valid. 2025-07-20: the first order cancelled: its 3 credits taken back, the 2 held voided,
    the 1 spent owed (X-5). Carry: 6,000 − 66,000 = −60,000, three thresholds back: +66,000 →
    6,000. At the switch: 1 credit owed at ¥1,100 → floor(1,100 / 450) = 2 credits of ¥450 owed
    (rounded down: never more yen owed than before; ceil would owe ¥1,350); RC-3: a carry of
    6,000 < 12,000 gives nothing. 2025-11-10: 12,000 (11,112 @8 %): carry 18,000 → 1 credit,
    6,000 carried; it pays 1 of the 2 owed at once: owed 1, valid 0, void 2 + 1 = 3."""
    e = engine()
    register(e)
    place(e, cart("big", T("2025-07-05"), [ln(20000, qty=3)]))
    place(e, cart("small", T("2025-07-10"), [ln(5455)], credits=1))
    assert valid(e, T("2025-07-10", "12:00")) == 2
    send(e, "order.cancelled", T("2025-07-20"), "m1", order="big")
    p = view(e, T("2025-11-03"))["points"]
    assert (p["valid"], p["void"], p["owed"]) == (0, 2, 1)
    p = view(e, T("2025-11-05"))["points"]
    assert (p["valid"], p["void"], p["owed"]) == (0, 2, 2)
    place(e, cart("v2", T("2025-11-10"), [ln(11112, 0.08)]))
    p = view(e, T("2025-11-10", "12:00"))["points"]
    assert (p["valid"], p["void"], p["owed"]) == (0, 3, 1)
    assert e.runner.state_of("m1").carry == 6000


def test_RC_6_switch_without_any_event_that_day_and_booked_on_the_next_event():
    """RC-6 / X-2: the conversion happens when the clock passes 2025-11-04 00:00 even with no event
    that day; a later event books it in the ledger at the switch instant, under version 2 and
    rule RC-6 (1 credit ending 2026-01-01 → 3: +2 and +1 lots)."""
    e = engine()
    register(e)
    earn_v1_credits(e, 1, "2025-07-05")
    assert valid(e, "2025-11-04T00:00:01+09:00") == 3
    send(e, "member.updated", T("2025-11-20"))
    conv = [x for x in e.store.entries("m1") if x.rule == "RC-6" and x.to_state == "valid"]
    assert sorted(x.amount for x in conv) == [1, 2]
    assert all(x.version == 2 for x in conv)
    assert all(x.at.isoformat() == SWITCH for x in conv)
    assert e.runner.state_of("m1").valid_units() == 3


def test_RC_6_credit_ending_1103_is_not_held_on_1104_and_not_converted():
    """RC-6 converts credits *held* on 2025-11-04; RC-5: a credit whose last valid day is
    2025-11-03 is expired from 2025-11-04 00:00, so it is not held at the switch.

    Grants under v1: 1 credit ending 2025-11-03, 4 credits ending 2026-01-01. Held on 11-04: 4.
    4 × 2 = 8 @2026-01-01; pool 4 × 200 = 800 → floor(800 / 450) = 1 @2026-01-01, rest 350 → 1
    adjustment @2026-05-03. Total 10 = ceil(4,400 / 450); the expired credit stays expired (1).
    """
    e = engine()
    register(e, at=T("2025-05-01", "09:00"))
    grant(e, 1, T("2025-10-01"), expires_on="2025-11-03")
    grant(e, 4, T("2025-10-02"), expires_on="2026-01-01")
    assert valid(e, "2025-11-03T23:59:59+09:00") == 5
    p = view(e, SWITCH)["points"]
    assert (p["valid"], p["expired"]) == (10, 1)
    assert valid_by_expiry(e, SWITCH) == {"2026-01-01": 9, ADJ_END: 1}


def test_RC_6_credit_ending_on_1104_is_held_that_day_and_converted():
    """RC-6 + RC-5: a credit whose last valid day is 2025-11-04 is still held on 11-04: 1 credit
    → 2 @2025-11-04 + 1 adjustment @2026-05-03 = 3; on 2025-11-05 00:00 the 2 expire, 1 remains."""
    e = engine()
    register(e)
    grant(e, 1, T("2025-10-01"), expires_on="2025-11-04")
    assert valid_by_expiry(e, SWITCH) == {"2025-11-04": 2, ADJ_END: 1}
    p = view(e, "2025-11-05T00:00:00+09:00")["points"]
    assert (p["valid"], p["expired"]) == (1, 2)


# --- RC-6 property: random version-1 holdings --------------------------------------------------

_PROGRAM = load_program(PROGRAM)
_V1_LAST = date(2026, 5, 2)     # a v1 credit issued on 2025-11-03 at the latest ends 2026-05-02 (RC-5)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 10), st.dates(date(2025, 11, 5), _V1_LAST)), min_size=1, max_size=6))
def test_RC_6_property_conversion_rounds_up_and_keeps_dates(holdings):
    """RC-6 for any version-1 holdings (1..60 credits in 1..6 grants with their own end dates
    after 2025-11-04): on 2025-11-04 the member holds exactly ceil(1,100 × N / 450) credits, never
    less yen (450 × after ≥ 1,100 × N), and every credit ends on one of the original dates or, the
    adjustment credit only, on 2026-05-03. Per date: 2 × the credits that ended then, plus
    floor(200 × N / 450) pooled ones at the earliest date; 1 adjustment credit iff 200 × N % 450 > 0.
    """
    e = Engine(_PROGRAM)
    register(e)
    for i, (amount, ends) in enumerate(holdings):
        grant(e, amount, T("2025-10-01", f"10:{i:02d}"), expires_on=ends.isoformat())
    n = sum(a for a, _ in holdings)
    assert valid(e, "2025-11-03T23:59:59+09:00") == n
    after = valid(e, SWITCH)
    assert after == -(-1100 * n // 450)
    assert 450 * after >= 1100 * n
    originals = {d.isoformat() for _, d in holdings}
    lots = valid_lots(e, SWITCH)
    for lot in lots:
        assert lot["expires_on"] in originals or (lot["expires_on"] == ADJ_END and lot["kind"] == "adjustment"), lot
        assert (lot["rule"], lot["version"]) == ("RC-6", 2)
    expected: Counter = Counter()
    for amount, d in holdings:
        expected[d.isoformat()] += 2 * amount
    pooled, rest = divmod(200 * n, 450)
    if pooled:
        expected[min(originals)] += pooled
    if rest:
        expected[ADJ_END] += 1
    assert valid_by_expiry(e, SWITCH) == dict(expected)


# ============================================================================================
# RC-7 — use limit: 1 credit per ¥6,000 of the order
# ============================================================================================

RC7_CARTS = [
    # (lines, order amount incl. tax, max credits = amount // 6,000)
    ([ln(5454)], 5999, 0),
    ([ln(5455)], 6000, 1),
    ([ln(11112, 0.08)], 12000, 2),
    ([ln(16364)], 18000, 3),
    ([ln(54546)], 60000, 10),
]


def _big_balance(e: Engine):
    register(e, at=T("2025-11-05", "09:00"))
    grant(e, 50, T("2025-11-05", "09:30"))


@pytest.mark.parametrize("lines,amount,expected", RC7_CARTS)
def test_RC_7_use_limit_one_credit_per_6000(lines, amount, expected):
    """RC-7: "1 credit for every ¥6,000 of the order amount (2 credits need ≥ ¥12,000, 3 need
    ≥ ¥18,000); no other limit". Balance 50 credits (¥22,500), so only RC-7 binds:
    5,999 → 0, 6,000 → 1, 12,000 → 2, 18,000 → 3, 60,000 → 10 (no other cap)."""
    e = engine()
    _big_balance(e)
    q = e.quote(cart("q", T("2025-11-10"), lines, credits=expected))
    assert q["totals"]["grand_total"] == amount
    assert q["redeem"]["max"] == expected
    assert q["errors"] == []
    assert q["totals"]["to_pay"] == amount - 450 * expected


def test_RC_7_three_credits_on_17999_rejected_ledger_unchanged():
    """RC-7: 3 credits need ≥ ¥18,000. 17,999 (16,363 @10 %) with {"credits": 3} → rejected
    (max 17,999 // 6,000 = 2), nothing booked: 50 valid, 0 used, same ledger entries, no order.
    The same request on 18,000 (16,364 @10 %) is applied: to pay 18,000 - 3 × 450 = 16,650; the
    order counts at once (RC-0): 18,000 // 12,000 = 1 credit, so 50 - 3 + 1 = 48 valid."""
    e = engine()
    _big_balance(e)
    before = len(e.store.entries("m1"))
    c = cart("o1", T("2025-11-10"), [ln(16363)], credits=3)
    q = e.quote(c)
    assert q["redeem"]["max"] == 2
    assert [err["field"] for err in q["errors"]] == ["redeem.credits"]
    place(e, c, expect="rejected")
    assert len(e.store.entries("m1")) == before
    assert "o1" not in e.runner.state_of("m1").orders
    p = view(e, T("2025-11-10", "12:00"))["points"]
    assert (p["valid"], p["used"]) == (50, 0)
    c2 = cart("o2", T("2025-11-10", "11:00"), [ln(16364)], credits=3)
    assert e.quote(c2)["totals"]["to_pay"] == 16650
    place(e, c2)
    p = view(e, T("2025-11-10", "12:00"))["points"]
    assert (p["valid"], p["used"]) == (48, 3)


# ============================================================================================
# RC-8 — first subscription order perk (page Q7, Q8, Q9, Q13)
# ============================================================================================

def _sub_cart(order: str, at: str, member: str = "m1") -> dict:
    # 3,000 @8 % + shipping 500 (taxed at 10 %): with shipping 3,000 + 240 + 500 + 50 = 3,790;
    # free shipping: 3,000 + 240 = 3,240.
    return cart(order, at, [ln(3000, 0.08)], member=member, course="subscription", shipping=500)


def _gift_effects(r) -> list:
    out = []
    for eff in r.effects:
        d = eff if isinstance(eff, dict) else {"type": eff.type, "rule": eff.rule, "member": eff.member}
        if d["type"] == "gift.due":
            out.append(d)
    return out


def test_RC_8_first_subscription_order_free_shipping_and_gift_also_for_old_members():
    """RC-8 (page Q8): a member registered 2025-06-01 (before the revision) sets up a first
    subscription order on 2025-11-05: shipping 0 (grand total 3,240 instead of 3,790) and a
    gift.due effect of rule RC-8."""
    e = engine()
    register(e)
    send(e, "subscription.started", T("2025-11-05", "09:00"))
    c = _sub_cart("s1", T("2025-11-05"))
    q = e.quote(c)
    assert q["totals"]["shipping_ex_tax"] == 0
    assert q["totals"]["grand_total"] == 3240
    assert [p["rule"] for p in q["perks"]] == ["RC-8"]
    r = place(e, c)
    gifts = _gift_effects(r)
    assert len(gifts) == 1 and gifts[0]["rule"] == "RC-8" and gifts[0]["member"] == "m1"


def test_RC_8_never_again_after_cancel_and_restart():
    """RC-8 (page Q13: cancel 11-05, restart 02-05 → not applied). First subscription order
    2025-11-05 (perk), cancel 2025-11-20, restart 2026-02-05: that order pays shipping 500
    (3,000 + 240 + 500 + 50 = 3,790) and has no gift."""
    e = engine()
    register(e)
    send(e, "subscription.started", T("2025-11-05", "09:00"))
    place(e, _sub_cart("s1", T("2025-11-05")))
    send(e, "subscription.cancelled", T("2025-11-20"))
    send(e, "subscription.started", T("2026-02-05", "09:00"))
    c = _sub_cart("s2", T("2026-02-05"))
    q = e.quote(c)
    assert q["totals"]["shipping_ex_tax"] == 500
    assert q["perks"] == []
    assert _gift_effects(place(e, c)) == []
    assert q["totals"]["grand_total"] == 3790     # shipping taxed at 10 % (CONTRACT)


def test_RC_8_not_for_a_member_whose_first_subscription_order_was_before():
    """RC-8: "the member's first subscription order ever". A subscription order on 2025-09-10
    (under version 1) was the first; the one on 2025-11-10 is not: shipping 500, no gift."""
    e = engine()
    register(e)
    send(e, "subscription.started", T("2025-09-10", "09:00"))
    place(e, _sub_cart("s1", T("2025-09-10")))
    c = _sub_cart("s2", T("2025-11-10"))
    q = e.quote(c)
    assert (q["totals"]["shipping_ex_tax"], q["perks"]) == (500, [])
    assert _gift_effects(place(e, c)) == []
    assert q["totals"]["grand_total"] == 3790     # shipping taxed at 10 % (CONTRACT)


def test_RC_8_one_off_order_gets_no_perk():
    """RC-8: only a subscription order. A one-off order with shipping 500 pays 3,790, no gift."""
    e = engine()
    register(e)
    c = cart("o1", T("2025-11-10"), [ln(3000, 0.08)], shipping=500)
    q = e.quote(c)
    assert (q["totals"]["shipping_ex_tax"], q["perks"]) == (500, [])
    assert _gift_effects(place(e, c)) == []
    assert q["totals"]["grand_total"] == 3790     # shipping taxed at 10 % (CONTRACT)


def test_RC_8_shipping_is_taxed_at_10_percent():
    """CONTRACT ("shipping? (ex. tax, taxed at 10%)") on an RC order without the perk:
    3,000 @8 % → tax 240; shipping 500 @10 % → tax 50; grand total 3,000 + 500 + 290 = 3,790."""
    e = engine()
    register(e)
    q = e.quote(cart("o1", T("2025-11-10"), [ln(3000, 0.08)], shipping=500))
    assert q["totals"]["tax"].get("0.10") == 50
    assert q["totals"]["tax_total"] == 290
    assert q["totals"]["grand_total"] == 3790


# ============================================================================================
# RC-9 — cancelling the subscription shortens expiry (page Q14)
# ============================================================================================

def test_RC_9_cancel_in_october_credits_end_1130_or_earlier_own_date():
    """RC-9 (page Q14): "cancel in October → credits expire 11-30, unless their own date is earlier".

    Subscription started 2025-06-01. Credit A shipped 2025-07-05 (own date 2026-01-01); credit B
    granted 2025-10-01 ending 2025-11-15. Cancel 2025-10-20 → A ends 2025-11-30, B keeps 11-15.
    Conversion on 11-04 keeps those dates: 2 @11-30, 2 @11-15 (the pool 400 makes no credit at
    450, and its rest makes the 1 adjustment credit). The member is cancelled, so that adjustment
    credit ends 11-30 too (RC-9: a cancelled member's credits end at the end of the next month).
    11-16 00:00: the 2 @11-15 have expired; 12-01 00:00: the 2 @11-30 and the adjustment credit.
    """
    e = engine()
    register(e)
    send(e, "subscription.started", T("2025-06-01", "09:30"))
    earn_v1_credits(e, 1, "2025-07-05")
    grant(e, 1, T("2025-10-01"), expires_on="2025-11-15")
    assert valid_by_expiry(e, T("2025-10-19")) == {"2026-01-01": 1, "2025-11-15": 1}
    send(e, "subscription.cancelled", T("2025-10-20"))
    assert valid_by_expiry(e, T("2025-10-31")) == {"2025-11-30": 1, "2025-11-15": 1}
    converted = Counter()
    for l in valid_lots(e, SWITCH):
        if l["kind"] != "adjustment":
            converted[l["expires_on"]] += l["amount"]
    assert converted == {"2025-11-30": 2, "2025-11-15": 2}
    before = view(e, "2025-11-15T23:59:59+09:00")["points"]["expired"]
    assert view(e, "2025-11-16T00:00:00+09:00")["points"]["expired"] == before + 2
    assert view(e, "2025-12-01T00:00:00+09:00")["points"]["expired"] == before + 2 + 2 + 1


def test_RC_9_cancel_in_december_credits_end_0131():
    """RC-9 under version 2: registered 2025-11-10, subscription started; a credit earned
    2025-11-10 (12,000 = 11,112 @8 %, own date 2026-05-09) and one granted ending 2026-01-10.
    Cancel 2025-12-10 → the first ends 2026-01-31 (end of the next month), the second keeps
    2026-01-10. 2026-01-31 23:59:59: 1 valid; 2026-02-01: 0 valid, 2 expired. The shortening is
    booked under rule RC-9."""
    e = engine()
    register(e, at=T("2025-11-10", "09:00"))
    send(e, "subscription.started", T("2025-11-10", "09:30"))
    buy(e, "o1", "2025-11-10", [ln(11112, 0.08)])
    grant(e, 1, T("2025-11-11"), expires_on="2026-01-10")
    send(e, "subscription.cancelled", T("2025-12-10"))
    assert valid_by_expiry(e, T("2025-12-11")) == {"2026-01-31": 1, "2026-01-10": 1}
    assert valid(e, "2026-01-31T23:59:59+09:00") == 1
    p = view(e, "2026-02-01T00:00:00+09:00")["points"]
    assert (p["valid"], p["expired"]) == (0, 2)
    assert any(x.rule == "RC-9" for x in e.store.entries("m1"))


# ============================================================================================
# versions and the rule behind every entry
# ============================================================================================

def test_X_2_X_3_every_lot_and_entry_carries_its_version_and_rule():
    """X-2/X-3: every ledger entry and lot records the program version and the rule.

    Insider m1: 3 credits bought 2025-07-05 (v1, RC-0), 1 spent 2025-10-01 (v1, RC-1) on an order of
    11,000 that counts too, then 10,000 on 2025-10-20 (9,091 @10 %): a carry of 21,000 (< 22,000,
    no v1 credit); then an event on 2025-11-20 books the switch:
    conversion (RC-6: 2 held → 4 + adjustment 1), RC-3 (1 credit from the carry), RC-4 (gift).
    Entries before the switch are version 1, from it version 2; every rule is an RC id.
    """
    e = engine()
    register(e, insider=True)
    earn_v1_credits(e, 3, "2025-07-05")
    place(e, cart("spend", T("2025-10-01"), [ln(10000)], credits=1))
    buy(e, "o-carry", "2025-10-20", [ln(9091)])
    send(e, "member.updated", T("2025-11-20"))
    entries = e.store.entries("m1")
    assert entries
    for x in entries:
        assert x.rule in RULE_IDS, x
        assert x.version == (1 if x.at.isoformat() < SWITCH else 2), x
    rules_v1 = {x.rule for x in entries if x.version == 1}
    rules_v2 = {x.rule for x in entries if x.version == 2}
    assert rules_v1 == {"RC-0", "RC-1"}
    assert {"RC-6", "RC-3", "RC-4"} <= rules_v2
    m = view(e, T("2025-11-20", "12:00"))
    for lot in m["lots"]:
        assert lot["rule"] in RULE_IDS and lot["version"] in (1, 2), lot
    assert m["points"]["valid"] == 4 + 1 + 1 + 1
    by_rule = Counter()
    for l in valid_lots(e, T("2025-11-20", "12:00")):
        by_rule[(l["rule"], l["version"])] += l["amount"]
    assert by_rule == {("RC-6", 2): 5, ("RC-3", 2): 1, ("RC-4", 2): 1}


def test_RC_2_cancelled_orders_owe_nothing_and_take_back_exactly_their_credits():
    """RC-0/RC-2: credits come when an order is placed. An order of 25,000 + 10% = 27,500 yen gives
    27,500 // 12,000 = 2 credits at once (3,500 carried); cancelled before shipping, the 27,500
    leave the carry (3,500 - 27,500 = -24,000 → two thresholds back → 0) and exactly those 2
    credits are voided: nothing owed, nothing left. The same order shipped, then cancelled: the
    same again (void 2 + 2 = 4)."""
    from engine import Engine

    e = Engine("programs/rewards_circle.yaml")
    order = {"type": "order.placed", "member": "a", "course": "one_off", "payment": {"method": "credit_card"},
             "lines": [{"sku": "X", "qty": 1, "unit_price": 25000, "tax_rate": 0.10}]}
    for ev in [{"id": "r1", "type": "member.registered", "at": "2025-12-01", "member": "a"},
               dict(order, id="o1", at="2025-12-02", order="o1")]:
        assert not e.apply(ev).rejected
    assert e.member("a", "2025-12-02")["points"]["valid"] == 2
    assert e.runner.state_of("a").carry == 3500
    assert not e.apply({"id": "c1", "type": "order.cancelled", "at": "2025-12-03", "member": "a",
                        "order": "o1"}).rejected
    assert e.member("a", "2025-12-04")["points"] == {"valid": 0, "pending": 0, "held": 0, "used": 0,
                                                     "expired": 0, "void": 2}
    assert e.runner.state_of("a").carry == 0
    for ev in [dict(order, id="o2", at="2025-12-05", order="o2"),
               {"id": "s2", "type": "order.shipped", "at": "2025-12-06", "member": "a", "order": "o2"}]:
        assert not e.apply(ev).rejected
    assert e.member("a", "2025-12-07")["points"]["valid"] == 2
    assert e.runner.state_of("a").carry == 3500
    assert not e.apply({"id": "c2", "type": "order.cancelled", "at": "2025-12-08", "member": "a",
                        "order": "o2"}).rejected
    points = e.member("a", "2025-12-09")["points"]
    assert (points["valid"], points["void"], points.get("owed", 0)) == (0, 4, 0)
    assert e.runner.state_of("a").carry == 0
