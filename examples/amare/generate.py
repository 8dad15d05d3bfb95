#!/usr/bin/env python3
"""Example events for Amare SSR points (programs/amare.yaml, AMA-1..AMA-6).

    python examples/amare/generate.py      # rewrites events.jsonl next to this file

Stdlib only, fixed seed: the same file on every run. Events follow docs/CONTRACT.md.

Every member follows a scripted story (so each rule is surely exercised) with seeded products,
quantities and dates. The generator never writes an event the engine should reject:

* rewards are exchanged only from operator grants, simulated lot by lot: each grant's last valid
  day is its date + 12 months (AMA-2), and a spend takes the lot that expires first, keeping a
  7-day margin before any expiry. Earned SSR points and cancelled exchanges only add to the real
  balance, and the engine also spends the earliest-expiring lot first, so this is a lower bound;
* members paying by bank transfer or direct debit never ask for an exchange (AMA-5 would refuse
  it: see the test suite and `ama5_cart.json` for the refusal);
* the program has no returns; a cancellation always comes before shipment.
"""
import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

SEED = 20250210
JST = timezone(timedelta(hours=9))
OUT = Path(__file__).with_name("events.jsonl")

# sku: (unit price ex. tax, tax rate, PV). Supplements are foods (8 %), skin care 10 %.
PRODUCTS = {
    "ORIGIN": (8148, 0.08, 60), "MENTABIOTICS": (6667, 0.08, 50), "FUNDAMENTALS": (5000, 0.08, 40),
    "RESTORE": (3704, 0.08, 25), "SKIN": (4000, 0.10, 30), "BUNDLE": (34167, 0.08, 180),
}
REWARDS = {"ssr_example_42": 42, "ssr_reward_100": 100}

rng = random.Random(SEED)
events = []


def add_months(d, n):
    m = d.month - 1 + n
    y, m = d.year + m // 12, m % 12 + 1
    last = [31, 29 if y % 4 == 0 and (y % 100 or y % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    return date(y, m, min(d.day, last))


class Member:
    def __init__(self, mid):
        self.id = mid
        self.last = None
        self.lots = []          # [amount, last valid day] of grants (see the docstring)
        self.n = 0
        self.orders = {}

    def emit(self, when, type_, **fields):
        assert self.last is None or when > self.last, (self.id, when, self.last)
        self.last = when
        events.append({"at": when, "type": type_, "member": self.id, **fields})

    def when(self, day, lo=9, hi=20):
        t = datetime(day.year, day.month, day.day, rng.randint(lo, hi), rng.randint(0, 59), tzinfo=JST)
        if self.last is not None and t <= self.last:
            t = self.last + timedelta(minutes=rng.randint(5, 50))
        return t

    def register(self, day):
        self.emit(self.when(day), "member.registered")

    def grant(self, day, amount, reason):
        self.emit(self.when(day), "points.granted", amount=amount, reason=reason)
        self.lots.append([amount, add_months(day, 12)])

    def spend(self, day, units):
        usable = sorted((lot for lot in self.lots if lot[1] >= day + timedelta(days=7) and lot[0] > 0),
                        key=lambda lot: lot[1])
        assert sum(lot[0] for lot in usable) >= units, (self.id, day, units, self.lots)
        for lot in usable:
            take = min(lot[0], units)
            lot[0] -= take
            units -= take
            if not units:
                break

    def subscription(self, day, what):
        self.emit(self.when(day), f"subscription.{what}")

    def order(self, day, lines, *, course="subscription", method="credit_card", exchanges=(), fulfilment=None):
        """lines: [(sku, qty)]. Returns the order id."""
        self.n += 1
        oid = f"{self.id}-o{self.n:02d}"
        out = [{"sku": s, "qty": q, "unit_price": PRODUCTS[s][0], "tax_rate": PRODUCTS[s][1], "pv": PRODUCTS[s][2]}
               for s, q in lines]
        assert not (exchanges and method in ("bank_transfer", "direct_debit"))
        if exchanges:
            self.spend(day, sum(REWARDS[r] * q for r, q in exchanges))
        fields = {"order": oid, "course": course, "payment": {"method": method}, "lines": out}
        if exchanges:
            fields["exchanges"] = [{"reward": r, "qty": q} for r, q in exchanges]
        if fulfilment:
            fields["fulfilment"] = fulfilment
        self.emit(self.when(day), "order.placed", **fields)
        self.orders[oid] = "placed"
        return oid

    def fulfil(self, oid, day):
        self.emit(self.when(day + timedelta(days=rng.randint(1, 2))), "order.shipped", order=oid)
        self.emit(self.when(day + timedelta(days=rng.randint(3, 4))), "order.delivered", order=oid)
        self.orders[oid] = "delivered"

    def cancel(self, oid, day):
        assert self.orders[oid] == "placed"
        self.emit(self.when(day), "order.cancelled", order=oid)
        self.orders[oid] = "cancelled"


def d(y, m, day):
    return date(y, m, day)


def months(start, count, day_of_month, skip=()):
    """The day_of_month of count consecutive months from start=(year, month), minus skipped (y, m)."""
    first = date(start[0], start[1], day_of_month)
    for i in range(count):
        day = add_months(first, i)
        if (day.year, day.month) not in skip:
            yield day


def regimen():
    """A subscription box: 1-3 supplements, sometimes skin care."""
    skus = rng.sample(["ORIGIN", "MENTABIOTICS", "FUNDAMENTALS", "RESTORE", "SKIN"], rng.choice([1, 2, 2, 3]))
    return [(s, rng.choice([1, 1, 2])) for s in skus]


def main():
    ms = {}

    def member(mid, reg_day):
        m = Member(mid)
        m.register(reg_day)
        ms[mid] = m
        return m

    # b01: 12 consecutive subscription months (AMA-1: 10 %, 15 % from month 4, 20 % from month 7);
    # a 42-point reward in the box every quarter (AMA-3 fee; AMA-4 waived: box >= 12,000 incl. tax).
    m = member("b01", d(2025, 1, 3))
    m.grant(d(2025, 1, 3), 300, "SSR points carried over")
    m.subscription(d(2025, 1, 3), "started")
    for i, day in enumerate(months((2025, 1), 12, 8)):
        ex = [("ssr_example_42", 1)] if i % 3 == 2 else []
        oid = m.order(day, [("ORIGIN", 1), ("MENTABIOTICS", 1)], exchanges=ex)
        m.fulfil(oid, day)

    # b02: a gap month restarts the ladder at month 1 (AMA-1): Feb-Jun, paused in July, Aug-Nov.
    m = member("b02", d(2025, 2, 1))
    m.subscription(d(2025, 2, 1), "started")
    for day in months((2025, 2), 10, 12, skip={(2025, 7)}):
        if day.month == 8:
            m.subscription(d(2025, 8, 1), "resumed")
        oid = m.order(day, regimen())
        m.fulfil(oid, day)
        if day.month == 6:
            m.subscription(d(2025, 6, 25), "paused")

    # b03: the worked example of the page (AMA-6): BUNDLE ¥34,167 ex. tax at 8 % (¥36,900 incl.),
    # 42 points → exchange fee ¥1,400; total ¥38,440, PV 180; no handling fee (AMA-4).
    m = member("b03", d(2025, 3, 1))
    m.grant(d(2025, 3, 1), 100, "SSR points carried over")
    m.subscription(d(2025, 3, 2), "started")
    oid = m.order(d(2025, 3, 10), [("BUNDLE", 1)], exchanges=[("ssr_example_42", 1)])
    m.fulfil(oid, d(2025, 3, 10))
    for day in months((2025, 4), 4, 10):
        oid = m.order(day, [("ORIGIN", 1), ("FUNDAMENTALS", 1)])
        m.fulfil(oid, day)

    # b04: "apply now" (ship_now): the exchange ships at once and pays the handling fee (AMA-4).
    m = member("b04", d(2025, 2, 20))
    m.grant(d(2025, 2, 20), 250, "SSR points carried over")
    m.subscription(d(2025, 2, 20), "started")
    for i, day in enumerate(months((2025, 3), 5, 15)):
        oid = m.order(day, [("ORIGIN", 1), ("RESTORE", 1)])
        m.fulfil(oid, day)
        if i in (1, 3):
            oid = m.order(day + timedelta(days=8), [("RESTORE", 1)], exchanges=[("ssr_reward_100", 1)],
                          fulfilment="ship_now")
            m.fulfil(oid, day + timedelta(days=8))

    # b05: the 12,000 yen line of AMA-4: a small box (RESTORE ¥4,000 incl.) pays the handling fee,
    # a big one (ORIGIN x2, ¥17,599 incl.) ships the reward free of it.
    m = member("b05", d(2025, 4, 1))
    m.grant(d(2025, 4, 1), 200, "SSR points carried over")
    m.subscription(d(2025, 4, 1), "started")
    for i, day in enumerate(months((2025, 4), 6, 18)):
        if i == 1:
            oid = m.order(day, [("RESTORE", 1)], exchanges=[("ssr_example_42", 1)])
        elif i == 4:
            oid = m.order(day, [("ORIGIN", 2)], exchanges=[("ssr_example_42", 1)])
        else:
            oid = m.order(day, [("RESTORE", 1), ("FUNDAMENTALS", 1)])
        m.fulfil(oid, day)

    # b06, b07: bank transfer and direct debit subscribers: they earn SSR points but never exchange
    # through the system (AMA-5).
    for mid, method, start in (("b06", "bank_transfer", (2025, 3)), ("b07", "direct_debit", (2025, 5))):
        m = member(mid, d(*start, 1))
        m.subscription(d(*start, 1), "started")
        for day in months(start, 6, 22):
            oid = m.order(day, regimen(), method=method)
            m.fulfil(oid, day)

    # b08: one grant and one order early in 2025, then silence: both expire 12 months after their
    # date (AMA-2), before the file ends.
    m = member("b08", d(2025, 1, 20))
    m.grant(d(2025, 1, 20), 150, "SSR points carried over")
    m.subscription(d(2025, 1, 20), "started")
    oid = m.order(d(2025, 2, 5), [("ORIGIN", 1)])
    m.fulfil(oid, d(2025, 2, 5))
    m.subscription(d(2025, 3, 1), "cancelled")

    # b09: one-off buyer: one-off orders earn nothing (AMA-1); an exchange sent with a one-off
    # order pays the handling fee (only a subscription box of >= 12,000 waives it).
    m = member("b09", d(2025, 2, 14))
    m.grant(d(2025, 2, 14), 120, "SSR points carried over")
    for i, day in enumerate((d(2025, 3, 3), d(2025, 6, 6), d(2025, 9, 9), d(2025, 12, 12))):
        ex = [("ssr_example_42", 1)] if i == 1 else []
        oid = m.order(day, regimen(), course="one_off", exchanges=ex)
        m.fulfil(oid, day)

    # b10: larger exchanges: 168 (4 x 42) and 200 (2 x 100) → 2 fee units each; 142 → 2 units (AMA-3).
    m = member("b10", d(2025, 1, 10))
    m.grant(d(2025, 1, 10), 600, "SSR points carried over")
    m.subscription(d(2025, 1, 10), "started")
    for i, day in enumerate(months((2025, 1), 9, 25)):
        ex = {2: [("ssr_example_42", 4)], 5: [("ssr_reward_100", 2)], 8: [("ssr_example_42", 1), ("ssr_reward_100", 1)]}
        oid = m.order(day, [("ORIGIN", 1), ("MENTABIOTICS", 1), ("SKIN", 1)], exchanges=ex.get(i, []))
        m.fulfil(oid, day)

    # b11: a box with a reward is cancelled before shipment: earned points void, reward points back.
    m = member("b11", d(2025, 5, 5))
    m.grant(d(2025, 5, 5), 100, "SSR points carried over")
    m.subscription(d(2025, 5, 5), "started")
    oid = m.order(d(2025, 5, 20), [("ORIGIN", 2)], exchanges=[("ssr_reward_100", 1)])
    m.cancel(oid, d(2025, 5, 21))
    m.lots.append([100, add_months(d(2025, 5, 5), 12)])   # the cancelled exchange's points are back
    for day in months((2025, 6), 4, 20):
        oid = m.order(day, regimen())
        m.fulfil(oid, day)
    oid = m.order(d(2025, 10, 20), [("ORIGIN", 2)], exchanges=[("ssr_reward_100", 1)])
    m.fulfil(oid, d(2025, 10, 20))

    # b12: two boxes in one month count as the same month (AMA-1), streak past month 7.
    m = member("b12", d(2025, 4, 2))
    m.subscription(d(2025, 4, 2), "started")
    for i, day in enumerate(months((2025, 4), 8, 5)):
        oid = m.order(day, regimen())
        m.fulfil(oid, day)
        if i in (2, 7):
            oid = m.order(day + timedelta(days=14), [("RESTORE", 1)])
            m.fulfil(oid, day + timedelta(days=14))

    # b13: joins in October 2025: months 1-6 run into 2026.
    m = member("b13", d(2025, 10, 1))
    m.grant(d(2025, 10, 1), 50, "SSR points carried over")
    m.subscription(d(2025, 10, 1), "started")
    for i, day in enumerate(months((2025, 10), 6, 6)):
        oid = m.order(day, regimen(), exchanges=[("ssr_example_42", 1)] if i == 3 else [])
        m.fulfil(oid, day)

    events.sort(key=lambda e: (e["at"], e["member"]))
    with OUT.open("w", encoding="utf-8") as fh:
        for n, ev in enumerate(events, 1):
            fh.write(json.dumps({"id": f"ama-{n:04d}", **ev, "at": ev["at"].isoformat()}, ensure_ascii=False) + "\n")
    print(f"{len(events)} events, {len(ms)} members -> {OUT}")


if __name__ == "__main__":
    main()
