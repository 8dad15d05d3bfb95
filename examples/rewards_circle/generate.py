#!/usr/bin/env python3
"""Example events for リワードサークル credits (programs/rewards_circle.yaml, RC-0..RC-9).

    python examples/rewards_circle/generate.py      # rewrites events.jsonl next to this file

Stdlib only, fixed seed: the same file on every run. Events follow docs/CONTRACT.md and
span 2025-06 to 2026-03, so every member crosses the revision of 2025-11-04 (version 1 → 2).

Each member follows a scripted story (so each rule is surely exercised) with seeded products,
quantities and times. The generator never writes an event the engine should reject: it keeps a
small model of each member's credits (lots with their last valid day, the carried amount) and asks
to use credits only when the model holds enough and the order is large enough (RC-7):

* earn when the order is placed (RC-0, 「この時点で」): ¥22,000 incl. tax a credit under version 1,
  ¥12,000 from 2025-11-04
  (RC-2), the rest carried; a credit is valid 180 days from its issue date (RC-5);
* on 2025-11-04 (RC-6, RC-3, RC-4): credits still valid become ceil(1,100 × N / 450), the carry
  gives its credits, Insiders get 1 gift credit; new credits from that day end 2026-05-03;
* cancelling the subscription (RC-9) cuts every credit to the end of the next month;
* a spend takes the lots that expire first, as the engine does (X-6).
"""
import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

SEED = 20251104
JST = timezone(timedelta(hours=9))
OUT = Path(__file__).with_name("events.jsonl")
SWITCH = date(2025, 11, 4)
GIFT_END = date(2026, 5, 3)

# sku: (unit price ex. tax, tax rate). Foods 8 %, everything else 10 %.
PRODUCTS = {
    "MULTI-VITAMIN": (5400, 0.08), "PROTEIN": (6480, 0.08), "GREEN-TEA": (2500, 0.08),
    "SERUM": (8000, 0.10), "CLEANSER": (3200, 0.10), "WATER-FILTER": (20000, 0.10),
}

rng = random.Random(SEED)
events = []
members = {}               # id -> Member (the model, for checking a run against it)


def month_end(d):
    nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def incl_tax(lines):
    """Items incl. tax as the invoice states them: per rate, tax floored (CONTRACT)."""
    bases = {}
    for line in lines:
        bases[line["tax_rate"]] = bases.get(line["tax_rate"], 0) + line["unit_price"] * line["qty"]
    return sum(base + base * round(rate * 100) // 100 for rate, base in bases.items())


class Member:
    def __init__(self, mid, insider=False):
        self.id = mid
        self.insider = insider
        self.last = None
        self.lots = []            # [amount, last valid day]
        self.carry = 0
        self.switched = False
        self.n = 0
        self.sub_active = False
        members[mid] = self

    # --- the model -------------------------------------------------------------------------
    def advance(self, day):
        if not self.switched and day >= SWITCH:
            self.switched = True
            held = [lot for lot in self.lots if lot[1] >= SWITCH and lot[0] > 0]
            n = sum(a for a, _ in held)
            new = [[2 * a, d] for a, d in held]
            if n:
                more, rest = divmod(200 * n, 450)
                new.append([more, min(d for _, d in held)])
                if rest:
                    new.append([1, GIFT_END])
            units, self.carry = divmod(self.carry, 12000)
            new.append([units, GIFT_END])
            if self.insider:
                new.append([1, GIFT_END])
            self.lots = [lot for lot in new if lot[0] > 0]

    def balance(self, day):
        return sum(a for a, d in self.lots if d >= day)

    def earn(self, day, amount):
        per = 22000 if day < SWITCH else 12000
        units, self.carry = divmod(self.carry + amount, per)
        if units:
            self.lots.append([units, day + timedelta(days=180)])

    def spend(self, day, units):
        for lot in sorted((l for l in self.lots if l[1] >= day and l[0] > 0), key=lambda l: l[1]):
            take = min(units, lot[0])
            lot[0] -= take
            units -= take
        assert units == 0

    def cut_on_cancel(self, day):
        limit = month_end(month_end(day) + timedelta(days=1))
        for lot in self.lots:
            lot[1] = min(lot[1], limit)

    # --- events ----------------------------------------------------------------------------
    def at(self, day, lo=9, hi=20):
        return datetime(day.year, day.month, day.day, rng.randint(lo, hi), rng.randint(0, 59), tzinfo=JST)

    def emit(self, when, type_, **fields):
        assert self.last is None or when > self.last, (self.id, when, self.last)
        self.last = when
        events.append({"at": when, "type": type_, "member": self.id, **fields})

    def register(self, day):
        fields = {"attributes": {"insider": True}} if self.insider else {}
        self.emit(self.at(day, 7, 8), "member.registered", **fields)

    def subscription(self, day, what):
        self.advance(day)
        self.emit(self.at(day, 9, 9), f"subscription.{what}")
        self.sub_active = what in ("started", "resumed")
        if what == "cancelled":
            self.cut_on_cancel(day)

    def order(self, day, lines, course="one_off", use=0, ship_after=None, shipping=None):
        """Place an order on ``day`` (using ``use`` credits if the model allows) and ship it
        ``ship_after`` days later (None: 1-3 days)."""
        self.advance(day)
        self.n += 1
        oid = f"{self.id}-o{self.n:02d}"
        amount = incl_tax(lines)
        use = min(use, self.balance(day), amount // 6000)
        fields = {"order": oid, "course": course, "payment": {"method": rng.choice(["credit_card", "credit_card",
                                                                                      "cash_on_delivery"])},
                  "lines": lines}
        if shipping:
            fields["shipping"] = shipping
        if use > 0:
            fields["redeem"] = {"credits": use}
            self.spend(day, use)
        self.emit(self.at(day, 10, 12), "order.placed", **fields)
        self.earn(day, amount)                                 # RC-0: counted at the purchase
        ship_day = day + timedelta(days=rng.randint(1, 3) if ship_after is None else ship_after)
        self.advance(ship_day)
        self.emit(self.at(ship_day, 14, 16), "order.shipped", order=oid)
        if rng.random() < 0.5:
            deliver = ship_day + timedelta(days=1)
            self.emit(self.at(deliver, 17, 20), "order.delivered", order=oid)
        return oid

    def grant(self, day, amount, ends):
        self.advance(day)
        self.emit(self.at(day, 9, 9), "points.granted", amount=amount, reason="customer service",
                  expires_on=ends.isoformat())
        self.lots.append([amount, ends])


def line(sku, qty=1):
    price, rate = PRODUCTS[sku]
    return {"sku": sku, "qty": qty, "unit_price": price, "tax_rate": rate}


def basket():
    skus = rng.sample(sorted(PRODUCTS), rng.randint(1, 3))
    return [line(s, rng.randint(1, 2)) for s in skus]


def d(text):
    return date.fromisoformat(text)


def stories():
    # r01 (page Q4, Q6 example 1): 1 credit ending 11/30 → 2 (11/30) + 1 adjustment (2026-05-03).
    m = Member("r01")
    m.register(d("2025-06-01"))
    m.order(d("2025-06-03"), [line("WATER-FILTER")], ship_after=1)            # 22,000 → 1 credit on 06-03
    m.order(d("2025-12-10"), [line("SERUM"), line("GREEN-TEA")])

    # r02 (page Q5): 5 credits with two end dates → 13 (the pool keeps the earliest date).
    m = Member("r02")
    m.register(d("2025-06-05"))
    m.order(d("2025-06-09"), [line("WATER-FILTER", 2)], ship_after=1)         # 44,000 → 2
    m.order(d("2025-08-01"), [line("WATER-FILTER", 3)], ship_after=2)         # 66,000 → 3
    m.order(d("2026-01-15"), [line("PROTEIN", 2)], use=2)

    # r03 (page Q6 example 2): 10 credits ending 2026-01-01 → 24 (01/01) + 1 adjustment.
    m = Member("r03")
    m.register(d("2025-06-20"))
    m.order(d("2025-07-05"), [line("WATER-FILTER", 10)], ship_after=1)        # 220,000 → 10 on 07-05
    m.order(d("2025-11-20"), [line("WATER-FILTER")], use=3)                   # 22,000: RC-7 allows 3

    # r04 (page Q10, Q3): 20,000 carried → 1 credit on 11-04, 8,000 carried; 5,000 on 11-05 → 1 credit.
    m = Member("r04")
    m.register(d("2025-07-01"))
    m.order(d("2025-10-18"), [{"sku": "SERUM-SET", "qty": 1, "unit_price": 18182, "tax_rate": 0.10}],
            ship_after=2)                                                     # 18,182 + 1,818 = 20,000
    m.order(d("2025-11-05"), [{"sku": "GIFT-BOX", "qty": 1, "unit_price": 4546, "tax_rate": 0.10}],
            ship_after=0)                                                     # 4,546 + 454 = 5,000

    # r05, r06, r12 (RC-4): Insiders; r06 buys nothing before the revision.
    m = Member("r05", insider=True)
    m.register(d("2025-06-03"))
    m.order(d("2025-06-25"), [line("WATER-FILTER"), line("SERUM")])
    m.order(d("2025-09-12"), [line("PROTEIN", 2), line("MULTI-VITAMIN")])
    m.order(d("2026-02-02"), basket(), use=1)
    m = Member("r06", insider=True)
    m.register(d("2025-09-01"))
    m.order(d("2025-12-01"), [line("PROTEIN")], use=1)

    # r07 (RC-9): subscriber since June, cancels in October → credits end 11-30.
    m = Member("r07")
    m.register(d("2025-06-02"))
    m.subscription(d("2025-06-02"), "started")
    for month in range(6, 10):
        m.order(date(2025, month, 10), [line("MULTI-VITAMIN", 2), line("PROTEIN")], course="subscription")
    m.subscription(d("2025-10-15"), "cancelled")
    m.order(d("2025-11-25"), [line("SERUM")], use=1)

    # r08 (RC-8, page Q8/Q13): registered in July, first subscription order in November (perk),
    # cancels 11-28, restarts 2026-02-05 (no perk again).
    m = Member("r08")
    m.register(d("2025-07-15"))
    m.order(d("2025-08-20"), [line("WATER-FILTER")])
    m.subscription(d("2025-11-06"), "started")
    m.order(d("2025-11-06"), [line("MULTI-VITAMIN"), line("GREEN-TEA")], course="subscription", shipping=600)
    m.subscription(d("2025-11-28"), "cancelled")
    m.subscription(d("2026-02-05"), "started")
    m.order(d("2026-02-05"), [line("MULTI-VITAMIN"), line("GREEN-TEA")], course="subscription", shipping=600)
    m.order(d("2026-03-05"), [line("MULTI-VITAMIN"), line("GREEN-TEA")], course="subscription", shipping=600)

    # r09 (RC-1, RC-7): uses a ¥1,100 credit before the revision and ¥450 credits after it.
    m = Member("r09")
    m.register(d("2025-06-10"))
    m.order(d("2025-07-01"), [line("WATER-FILTER", 3)])                       # 66,000 → 3 credits
    m.order(d("2025-09-20"), [line("SERUM")], use=1)                          # 8,800: 1 credit of ¥1,100
    m.order(d("2025-11-15"), [line("PROTEIN"), line("SERUM")], use=2)         # 15,638: 2 credits of ¥450

    # r10 (RC-2, RC-5): registered after the revision, earns and uses under version 2 only.
    m = Member("r10")
    m.register(d("2025-12-01"))
    m.order(d("2025-12-03"), [line("WATER-FILTER")])                          # 22,000 → 1, carry 10,000
    m.order(d("2026-01-10"), [line("SERUM"), line("CLEANSER")], use=1)

    # r11 (RC-8): a new member whose very first order is a subscription ("今すぐ定期").
    m = Member("r11")
    m.register(d("2025-11-12"))
    m.subscription(d("2025-11-12"), "started")
    for month in (11, 12, 1, 2, 3):
        year = 2025 if month >= 11 else 2026
        m.order(date(year, month, 12 if month == 11 else rng.randint(8, 14)), [line("PROTEIN"), line("GREEN-TEA")],
                course="subscription", shipping=600)

    # r12..r15: seeded shoppers; r13 holds an operator grant; r14 pauses and resumes.
    m = Member("r12", insider=True)
    m.register(d("2025-06-15"))
    for month in (7, 8, 10, 12, 2):
        year = 2025 if month >= 6 else 2026
        m.order(date(year, month, rng.randint(1, 25)), basket(), use=rng.choice([0, 1]))
    m = Member("r13")
    m.register(d("2025-06-20"))
    for month in (6, 9, 11, 1, 3):
        year = 2025 if month >= 6 else 2026
        if month == 9:
            m.grant(d("2025-09-01"), 2, d("2025-12-31"))
        m.order(date(year, month, rng.randint(21, 28)), basket(), use=rng.choice([0, 1, 2]))
    m = Member("r14")
    m.register(d("2025-08-01"))
    m.subscription(d("2025-08-02"), "started")
    for month in (8, 9, 10):
        m.order(date(2025, month, 5), [line("MULTI-VITAMIN", 2)], course="subscription")
    m.emit(m.at(d("2025-10-20"), 8, 8), "subscription.paused")
    m.emit(m.at(d("2025-12-01"), 8, 8), "subscription.resumed")
    for month in (12, 1, 2):
        year = 2025 if month == 12 else 2026
        m.order(date(year, month, 5), [line("MULTI-VITAMIN", 2), line("SERUM")], course="subscription",
                use=rng.choice([0, 1]))
    m = Member("r15")
    m.register(d("2025-06-28"))
    for day in ("2025-07-19", "2025-08-30", "2025-10-11", "2025-11-03", "2025-11-29", "2026-01-24", "2026-03-14"):
        m.order(d(day), basket(), use=rng.choice([0, 0, 1]))


def main():
    stories()
    events.sort(key=lambda e: (e["at"], e["member"]))
    with OUT.open("w", encoding="utf-8") as fh:
        for i, ev in enumerate(events, 1):
            row = {"id": f"e{i:04d}", "at": ev["at"].isoformat(), **{k: v for k, v in ev.items() if k != "at"}}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{OUT}: {len(events)} events, {len({e['member'] for e in events})} members")


if __name__ == "__main__":
    main()
