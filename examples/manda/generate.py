#!/usr/bin/env python3
"""Example events for the 万田発酵 stage program (programs/manda.yaml, MAN-1..MAN-12).

    python examples/manda/generate.py      # rewrites events.jsonl next to this file
    loyalty run programs/manda.yaml examples/manda/events.jsonl --db :memory: --as-of 2027-01-01

Stdlib only, fixed seed: the same file on every run. Events follow docs/CONTRACT.md.

Fourteen members, each with a history chosen to exercise some rules (README.md lists the stage
and gifts each should have on 2027-01-01). The seed only picks days, hours and the extra
purchases that cannot change a member's story (extras go to members whose every step is met on
amount anyway, and never into a pause).
"""
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20250105
JST = timezone(timedelta(hours=9))
OUT = Path(__file__).with_name("events.jsonl")

# sku: (unit price ex. tax, tax rate). Incl. tax: KOSO-150 5,400; KOSO-SMALL 2,700; KOSO-PLUS 10,800;
# SUPPLEMENT 3,240; SKINCARE 4,400 (10%).
PRODUCTS = {"KOSO-150": (5000, 0.08), "KOSO-SMALL": (2500, 0.08), "KOSO-PLUS": (10000, 0.08),
            "SUPPLEMENT": (3000, 0.08), "SKINCARE": (4000, 0.10)}
METHODS = ["credit_card"] * 6 + ["cash_on_delivery", "np_deferred", "direct_debit"]

events = []


class Member:
    def __init__(self, mid: str):
        self.id = mid
        self.n = 0


def when(y, m, d, lo=9, hi=20):
    return datetime(y, m, d, random.randint(lo, hi), random.randint(0, 59), tzinfo=JST)


def emit(at, member, type_, **fields):
    events.append({"at": at, "type": type_, "member": member.id, **fields})


def register(m, at, **fields):
    emit(at, m, "member.registered", **fields)


def sub(m, what, at, subscription="main"):
    fields = {} if subscription == "main" else {"subscription": subscription}
    emit(at, m, f"subscription.{what}", **fields)


def order(m, at, sku, course="subscription", qty=1, coupon=0, shipping=0, ship=True):
    m.n += 1
    oid = f"{m.id}-o{m.n:02d}"
    price, rate = PRODUCTS[sku]
    fields = {"order": oid, "course": course, "payment": {"method": random.choice(METHODS)},
              "lines": [{"sku": sku, "qty": qty, "unit_price": price, "tax_rate": rate}]}
    if coupon:
        fields["coupon_discount"] = coupon
    if shipping:
        fields["shipping"] = shipping
    emit(at, m, "order.placed", **fields)
    if ship:
        emit(at + timedelta(days=1, hours=random.randint(0, 5)), m, "order.shipped", order=oid)
    return oid


def months(y, m, count):
    for _ in range(count):
        yield y, m
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def deliveries(m, start, count, sku="KOSO-150", subscription="main", first_day=2):
    """One subscription delivery order a month, on a day from first_day to 26."""
    for y, mo in months(*start, count):
        order(m, when(y, mo, random.randint(first_day, 26)), sku)


def extras(m, start, count, chance=0.3):
    """Now and then a one-off purchase on top (only for members whose steps are met anyway)."""
    for y, mo in months(*start, count):
        if random.random() < chance:
            order(m, when(y, mo, random.randint(3, 27)), random.choice(["SUPPLEMENT", "SKINCARE"]), course="one_off")


def build():
    ms = {f"m{i:02d}": Member(f"m{i:02d}") for i in range(1, 15)}

    # m01 steady: 5,400 a month from January 2025. 6 months, 32,400 -> bronze 2025-07 (MAN-3/4/5);
    # 12 bronze months Jul 2025..Jun 2026, >= 64,800 -> silver 2026-07.
    m = ms["m01"]
    register(m, when(2024, 12, 20))
    sub(m, "started", when(2025, 1, 8))
    deliveries(m, (2025, 1), 24, first_day=9)
    extras(m, (2025, 1), 24)

    # m02 light: 2,700 every other month from February 2025: months are met in July but the
    # amount (8,100) is not; the 6th purchase (16,200) comes in Dec 2025 -> bronze 2026-01.
    m = ms["m02"]
    register(m, when(2025, 2, 1))
    sub(m, "started", when(2025, 2, 3))
    for y, mo in list(months(2025, 2, 24))[::2]:
        order(m, when(y, mo, random.randint(4, 26)), "KOSO-SMALL")

    # m03 big spender, months short: starts March 2026 with a 32,400 one-off; the amount is met
    # at once, the 6 months only with August -> bronze 2026-09.
    m = ms["m03"]
    register(m, when(2026, 3, 1))
    sub(m, "started", when(2026, 3, 2))
    order(m, when(2026, 3, 5), "KOSO-150", course="one_off", qty=6)
    deliveries(m, (2026, 3), 10, sku="KOSO-SMALL", first_day=6)

    # m04 three-month pause keeps the stage (MAN-7): bronze 2025-07; paused for Oct, Nov, Dec 2025
    # (resumes on 2026-01-01); bronze months Jul..Sep 2025 + Jan..Sep 2026 = 12 -> silver 2026-10.
    m = ms["m04"]
    register(m, when(2024, 12, 2))
    sub(m, "started", when(2025, 1, 6))
    deliveries(m, (2025, 1), 9, first_day=7)
    sub(m, "paused", datetime(2025, 10, 1, 0, 0, tzinfo=JST))
    sub(m, "resumed", datetime(2026, 1, 1, 0, 0, tzinfo=JST))
    deliveries(m, (2026, 1), 12)

    # m05 four-month pause cancels (MAN-7): bronze 2025-07; paused on 2025-10-31; Nov, Dec, Jan
    # begin paused, and so does Feb, the 4th -> cancelled on 2026-02-01, back to regular, bronze
    # gift 2 (due 2026-03) dropped. The shop then records the cancellation (a no-op for the stage)
    # and a new start in May 2026: regular again, months May..Oct -> bronze 2026-11.
    m = ms["m05"]
    register(m, when(2024, 12, 5))
    sub(m, "started", when(2025, 1, 7))
    deliveries(m, (2025, 1), 10, first_day=8)
    sub(m, "paused", datetime(2025, 10, 31, 20, 0, tzinfo=JST))
    sub(m, "cancelled", when(2026, 2, 3))
    sub(m, "started", when(2026, 5, 10))
    deliveries(m, (2026, 5), 8, first_day=11)

    # m06 cancels and restarts (MAN-8): bronze 2025-09, gift 1 in 2025-11; cancels 2026-02-15
    # (regular, gift 2 of 2026-05 dropped); starts again 2026-06-01: regular, months Jun..Nov,
    # 6 x 5,400 -> bronze 2026-12, notice 2027-01.
    m = ms["m06"]
    register(m, when(2025, 3, 1))
    sub(m, "started", when(2025, 3, 3))
    deliveries(m, (2025, 3), 11, first_day=4)
    sub(m, "cancelled", when(2026, 2, 15))
    sub(m, "started", datetime(2026, 6, 1, 10, 0, tzinfo=JST))
    deliveries(m, (2026, 6), 7)

    # m07 a return drops the amount below 15,000 (MAN-6): 2,700 a month May..Oct 2025 (16,200),
    # the October order returned -> 13,500 on 2025-11-01: regular; November's order -> 16,200:
    # bronze 2025-12.
    m = ms["m07"]
    register(m, when(2025, 5, 1))
    sub(m, "started", when(2025, 5, 2))
    for y, mo in months(2025, 5, 6):
        oid = order(m, when(y, mo, random.randint(3, 20)), "KOSO-SMALL")
    emit(when(2025, 10, 28), m, "order.returned", order=oid, lines=[{"sku": "KOSO-SMALL", "qty": 1}])
    deliveries(m, (2025, 11), 14, sku="KOSO-SMALL", first_day=3)

    # m08 a pause defers a gift (MAN-10/11): bronze 2025-10 (Apr..Sep), notice 2025-11, gift 1
    # due 2025-12 falls in a pause (2025-11-20 .. 2026-01-15): it goes out in 2026-02, the month
    # after resuming, with a new notice in 2026-01; gift 2 in 2026-06. Dec and Jan begin paused, so
    # bronze's 12 months are Oct, Nov 2025 and Feb..Nov 2026 -> silver 2026-12 (¥64,800).
    m = ms["m08"]
    register(m, when(2025, 4, 1))
    sub(m, "started", when(2025, 4, 2))
    deliveries(m, (2025, 4), 7, first_day=3)
    sub(m, "paused", when(2025, 11, 20))
    sub(m, "resumed", when(2026, 1, 15))
    deliveries(m, (2026, 1), 12, first_day=16)

    # m09 opted out (MAN-1): subscribes and buys, never on the ladder, no stage, no gifts.
    m = ms["m09"]
    register(m, when(2025, 1, 3), attributes={"stage_opt_out": True})
    sub(m, "started", when(2025, 1, 4))
    deliveries(m, (2025, 1), 24, first_day=5)

    # m10 two subscriptions (MAN-9: still 2 gifts a stage): main from January 2025, a second one
    # from March; pausing only the second keeps the member active. Bronze 2025-07, silver 2026-07.
    m = ms["m10"]
    register(m, when(2024, 12, 10))
    sub(m, "started", when(2025, 1, 10))
    sub(m, "started", when(2025, 3, 1), subscription="sub2")
    deliveries(m, (2025, 1), 24, first_day=11)
    deliveries(m, (2025, 3), 5, sku="KOSO-SMALL", first_day=11)
    sub(m, "paused", when(2025, 8, 1), subscription="sub2")
    sub(m, "resumed", when(2025, 10, 1), subscription="sub2")
    deliveries(m, (2025, 10), 15, sku="KOSO-SMALL", first_day=11)

    # m11 pause-month purchases do not count (MAN-6): 2,700 a month from June 2025, paused for
    # August and September with a 10,800 one-off then (not counted); months Jun, Jul, Oct, Nov,
    # Dec, Jan -> bronze 2026-02 on 16,200.
    m = ms["m11"]
    register(m, when(2025, 6, 1))
    sub(m, "started", when(2025, 6, 2))
    deliveries(m, (2025, 6), 2, sku="KOSO-SMALL", first_day=3)
    sub(m, "paused", datetime(2025, 8, 1, 0, 0, tzinfo=JST))
    order(m, when(2025, 8, 20), "KOSO-PLUS", course="one_off")
    sub(m, "resumed", datetime(2025, 10, 1, 0, 0, tzinfo=JST))
    deliveries(m, (2025, 10), 15, sku="KOSO-SMALL", first_day=2)

    # m12 veteran: 10,800 a month from January 2024: bronze 2024-07, silver 2025-07, gold 2026-07.
    m = ms["m12"]
    register(m, when(2023, 12, 15))
    sub(m, "started", when(2024, 1, 5))
    deliveries(m, (2024, 1), 36, sku="KOSO-PLUS", first_day=6)
    extras(m, (2024, 1), 36, chance=0.2)

    # m13 one-off buyer, never subscribes: no stage (MAN-1 enrols subscription customers).
    m = ms["m13"]
    register(m, when(2025, 2, 10))
    for y, mo in list(months(2025, 3, 20))[::3]:
        order(m, when(y, mo, random.randint(2, 27)), "SUPPLEMENT", course="one_off")

    # m14 coupons and shipping (MAN-6: the billed amount after coupons, shipping apart): from
    # July 2026, 5,000 ex. tax less a 500 coupon = 4,500 + 360 tax = 4,860 a month, shipping 500
    # not counted. 6 months and 29,160 by the end of December: bronze at 00:00 on 2027-01-01,
    # decided by the clock with no event that day (MAN-5).
    m = ms["m14"]
    register(m, when(2026, 6, 20))
    sub(m, "started", when(2026, 7, 1))
    for y, mo in months(2026, 7, 6):
        order(m, when(y, mo, random.randint(2, 26)), "KOSO-150", coupon=500, shipping=500)


def main():
    random.seed(SEED)
    build()
    events.sort(key=lambda e: e["at"])
    with OUT.open("w", encoding="utf-8") as fh:
        for i, e in enumerate(events, 1):
            e = {"id": f"e{i:04d}", **e, "at": e["at"].isoformat()}
            fh.write(json.dumps(e, ensure_ascii=False) + "\n")
    print(f"{OUT}: {len(events)} events")


if __name__ == "__main__":
    main()
