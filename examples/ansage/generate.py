#!/usr/bin/env python3
"""Example events for アンサージュ ポイント (programs/ansage.yaml, ANS-1..ANS-17).

    python examples/ansage/generate.py      # rewrites events.jsonl next to this file

Stdlib only, fixed seed: the same file on every run. Events follow docs/CONTRACT.md.

Every member follows a scripted story (so each rule is surely exercised) with seeded amounts,
products and dates. The generator never writes an event the engine should reject:

* spending (points used, rewards exchanged) is checked against ``bound``, a lower bound of the
  member's valid points: operator grants, minus everything spent or reserved for a deferred
  request, minus an upper bound of the points earned on any order that is later returned (the
  return may claw them back). Earned points, restores and the campaign only add to the real
  balance, so the bound stays safe. ``"max"`` is used only where the bound covers the whole order,
  so the amount it spends is known exactly (total minus the payment method's minimum, ANS-10);
* a cancellation comes before shipment, a return after delivery (the YAML counts returns from
  delivery), reward items are never returned (ANS-14);
* request deadlines (ANS-15) are either clearly met (the request 10+ days before the delivery
  date) or clearly missed (the day before), except the hand-checked Culture Day example
  (delivery 2025-11-05, last day Fri 2025-10-31);
* guest orders are placed only: their shipments would name a member that never registered.
"""
import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

SEED = 20251105
JST = timezone(timedelta(hours=9))
OUT = Path(__file__).with_name("events.jsonl")

# sku: (unit price ex. tax, tax rate). Skin care at 10 %, foods at 8 % (軽減税率).
PRODUCTS = {
    "LOTION": (3800, 0.10), "SERUM": (6800, 0.10), "CREAM": (5400, 0.10), "CLEANSER": (2600, 0.10),
    "MASK": (1980, 0.10), "HERBTEA": (1500, 0.08), "SUPPLEMENT": (4200, 0.08),
}
SALE = {"MASK"}                     # campaign / special-sale item: tagged no_points (ANS-8)
REWARDS = {"cutting_board": 700, "illustration_pouch": 800}     # ANS-14
MIN_PAY = {"credit_card": 100, "np_deferred": 1, "cash_on_delivery": 0, "bank_transfer": 1, "direct_debit": 1}
JCB_MIN = 200

rng = random.Random(SEED)
events = []
used_rules = set()


def tax(base, rate):
    return base * round(rate * 100) // 100


class Member:
    def __init__(self, mid, guest=False):
        self.id, self.guest = mid, guest
        self.last = None
        self.bound = 0                  # lower bound of valid points (see the docstring)
        self.deferred = None            # (redeem, exchanges) waiting for the next order (ANS-15)
        self.orders = {}
        self.n = 0

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
        self.bound += amount

    def order(self, day, lines, *, course="one_off", method="credit_card", brand=None, shipping=0, redeem=None,
              exchanges=(), delivery=None, late=False, at=None):
        """lines: [(sku, qty, tags)]. Returns the order id."""
        self.n += 1
        oid = f"{self.id}-o{self.n:02d}"
        out_lines, bases = [], {}
        for sku, qty, tags in lines:
            price, rate = PRODUCTS[sku]
            line = {"sku": sku, "qty": qty, "unit_price": price, "tax_rate": rate}
            if tags:
                line["tags"] = list(tags)
            out_lines.append(line)
            bases[rate] = bases.get(rate, 0) + price * qty
        items_incl = sum(b + tax(b, r) for r, b in bases.items())
        all_bases = dict(bases)
        if shipping:
            all_bases[0.10] = all_bases.get(0.10, 0) + shipping
        grand = sum(b + tax(b, r) for r, b in all_bases.items())
        min_pay = JCB_MIN if brand == "jcb" else MIN_PAY[method]

        # what this delivery carries: earlier late requests, plus its own unless late (ANS-15/16)
        carry_redeem, carry_ex = self.deferred or (None, ())
        self.deferred = None
        late_ex = late and bool(exchanges)
        late_redeem = late and redeem is not None and course == "subscription"
        now_ex = list(carry_ex) + ([] if late_ex else list(exchanges))
        now_redeem = redeem if (redeem is not None and not late_redeem) else carry_redeem
        ex_units = sum(REWARDS[r] * q for r, q in now_ex)
        fresh_ex = 0 if late_ex else sum(REWARDS[r] * q for r, q in exchanges)   # carried ones are reserved
        redeem_is_carried = not (redeem is not None and not late_redeem) and carry_redeem is not None
        if now_redeem == "max":
            assert self.bound - fresh_ex >= grand, (oid, "max needs the bound to cover the order")
            spent_redeem = grand - min_pay
        else:
            spent_redeem = now_redeem or 0
            assert spent_redeem <= grand - min_pay, (oid, "redeem over the payment minimum")
        fresh_redeem = 0 if redeem_is_carried else spent_redeem
        need = fresh_ex + fresh_redeem
        assert need <= self.bound, (oid, need, self.bound)
        self.bound -= need
        if late_ex or late_redeem:
            reserve = (sum(REWARDS[r] * q for r, q in exchanges) if late_ex else 0) + (redeem if late_redeem else 0)
            assert reserve <= self.bound, (oid, "deferred request not covered")
            self.bound -= reserve
            self.deferred = (redeem if late_redeem else None, tuple(exchanges) if late_ex else ())
        if late_ex or late_redeem:
            used_rules.add("ANS-15 late")
        payment = {"method": method}
        if brand:
            payment["card_brand"] = brand
        fields = {"order": oid, "course": course, "payment": payment, "lines": out_lines}
        if self.guest:
            fields["guest"] = True
        if shipping:
            fields["shipping"] = shipping
        if redeem is not None:
            fields["redeem"] = {"points": redeem}
        if exchanges:
            fields["exchanges"] = [{"reward": r, "qty": q} for r, q in exchanges]
        if delivery:
            # this shop's courier delivers on the day it ships, so the scheduled shipping date (the
            # exchange deadline's, ANS-15) and delivery date (the point use's) are the same day
            fields["ship_date"] = delivery.isoformat()
            fields["delivery_date"] = delivery.isoformat()
        self.emit(at or self.when(day), "order.placed", **fields)
        campaign = date(2026, 1, 1) <= (at or self.last).date() <= date(2026, 1, 7)
        self.orders[oid] = {"items_incl": items_incl, "lines": lines, "status": "placed",
                            "max_rate_pct": 10 if campaign else 5}
        if ex_units:
            used_rules.add("ANS-14")
        return oid

    def ship(self, oid, day):
        self.emit(self.when(day), "order.shipped", order=oid)
        self.orders[oid]["status"] = "shipped"

    def deliver(self, oid, day):
        self.emit(self.when(day), "order.delivered", order=oid)
        self.orders[oid]["status"] = "delivered"

    def fulfil(self, oid, day):
        self.ship(oid, day + timedelta(days=rng.randint(1, 2)))
        self.deliver(oid, day + timedelta(days=rng.randint(3, 4)))

    def cancel(self, oid, day):
        assert self.orders[oid]["status"] == "placed"
        self.emit(self.when(day), "order.cancelled", order=oid)
        self.orders[oid]["status"] = "cancelled"

    def return_(self, oid, day, lines):
        o = self.orders[oid]
        assert o["status"] == "delivered"
        self.emit(self.when(day), "order.returned", order=oid, lines=[{"sku": s, "qty": q} for s, q in lines])
        # the earn removed may be clawed back from other valid points: at most the top rate (gold 5 %,
        # the campaign's 10 %) of the order
        self.bound -= o["items_incl"] * o["max_rate_pct"] // 100 + 1


def basket(k=None, skus=None, sale_ok=True):
    skus = skus or list(PRODUCTS)
    chosen = rng.sample(skus, k or rng.choice([1, 1, 2, 2, 3]))
    out = []
    for sku in chosen:
        tags = ("no_points",) if sku in SALE and sale_ok else ()
        out.append((sku, rng.choice([1, 1, 1, 2]), tags))
    return out


def d(y, m, day):
    return date(y, m, day)


def monthly(start, months, day_of_month):
    y, m = start
    for _ in range(months):
        yield date(y, m, min(day_of_month, 28))
        m += 1
        if m == 13:
            y, m = y + 1, 1


def main():
    ms = {}

    def member(mid, reg_day, guest=False):
        m = Member(mid, guest)
        if not guest:
            m.register(reg_day)
        ms[mid] = m
        return m

    # a01: gold subscriber (ANS-2): ~30,000 yen a month, monthly deliveries; point use set ahead
    # (ANS-16) and rewards requested on time (ANS-14/15).
    m = member("a01", d(2025, 1, 6))
    m.grant(d(2025, 1, 6), 3000, "points carried over from the former shop")
    for i, day in enumerate(monthly((2025, 1), 14, 10)):
        lines = [("SERUM", 2, ()), ("CREAM", rng.choice([1, 2]), ()), ("SUPPLEMENT", 1, ())]
        kw = {}
        if i in (2, 6, 11):
            kw["redeem"] = rng.choice([300, 500])
        if i == 3:
            kw["exchanges"] = [("cutting_board", 1)]
        if i == 8:
            kw["exchanges"] = [("illustration_pouch", 1)]
        oid = m.order(day, lines, course="subscription", delivery=day + timedelta(days=12), **kw)
        m.fulfil(oid, day + timedelta(days=9))

    # a02: silver subscriber; the Culture Day deadline met: request on Fri 2025-10-31 for a delivery
    # on Wed 2025-11-05 (last day 10-31, ANS-15), with a cutting board.
    m = member("a02", d(2025, 2, 3))
    m.grant(d(2025, 2, 3), 1500, "welcome gift")
    for day in monthly((2025, 2), 9, 5):
        oid = m.order(day, [("LOTION", 1, ()), ("CLEANSER", 1, ())], course="subscription",
                      delivery=day + timedelta(days=14))
        m.fulfil(oid, day + timedelta(days=11))
    oid = m.order(d(2025, 10, 31), [("LOTION", 1, ()), ("CLEANSER", 1, ())], course="subscription",
                  delivery=d(2025, 11, 5), exchanges=[("cutting_board", 1)])
    m.fulfil(oid, d(2025, 11, 3))
    used_rules.add("ANS-15 on time")

    # a03: the same delivery requested on Sat 2025-11-01: late, so the pouch and the 300 points go
    # with the next delivery (2025-12-01 order); ANS-15/16.
    m = member("a03", d(2025, 3, 1))
    m.grant(d(2025, 3, 1), 2000, "welcome gift")
    for day in monthly((2025, 3), 7, 20):
        oid = m.order(day, basket(skus=["LOTION", "SERUM", "CREAM", "HERBTEA"]), course="subscription",
                      delivery=day + timedelta(days=12))
        m.fulfil(oid, day + timedelta(days=9))
    oid = m.order(d(2025, 11, 1), [("SERUM", 1, ()), ("HERBTEA", 2, ())], course="subscription",
                  delivery=d(2025, 11, 5), exchanges=[("illustration_pouch", 1)], redeem=300, late=True)
    m.fulfil(oid, d(2025, 11, 3))
    oid = m.order(d(2025, 12, 1), [("SERUM", 1, ()), ("HERBTEA", 2, ())], course="subscription",
                  delivery=d(2025, 12, 15))
    m.fulfil(oid, d(2025, 12, 12))

    # a04: JCB card, "max" leaves 200 yen (ANS-10); other one-off orders entered at checkout.
    m = member("a04", d(2025, 1, 20))
    m.grant(d(2025, 1, 20), 20000, "apology for a delayed delivery")
    oid = m.order(d(2025, 2, 14), [("SERUM", 1, ()), ("CREAM", 1, ())], brand="jcb", redeem="max")
    m.fulfil(oid, d(2025, 2, 14))
    for day in (d(2025, 5, 2), d(2025, 8, 22), d(2025, 12, 5)):
        oid = m.order(day, basket(), brand="jcb", redeem=rng.choice([None, 200, 400]), shipping=rng.choice([0, 600]))
        m.fulfil(oid, day)

    # a05: cash on delivery, the whole order paid with points (ANS-9/10), shipping included.
    m = member("a05", d(2025, 2, 2))
    m.grant(d(2025, 2, 2), 12000, "points carried over from the former shop")
    oid = m.order(d(2025, 3, 3), [("LOTION", 1, ()), ("HERBTEA", 2, ())], method="cash_on_delivery",
                  shipping=600, redeem="max")
    m.fulfil(oid, d(2025, 3, 3))
    for day in (d(2025, 6, 9), d(2025, 10, 14)):
        oid = m.order(day, basket(), method="cash_on_delivery", shipping=600)
        m.fulfil(oid, day)

    # a06: NP deferred payment, "max" leaves 1 yen (ANS-10).
    m = member("a06", d(2025, 2, 10))
    m.grant(d(2025, 2, 10), 8000, "welcome gift")
    oid = m.order(d(2025, 4, 1), [("CREAM", 1, ())], method="np_deferred", redeem="max")
    m.fulfil(oid, d(2025, 4, 1))
    for day in (d(2025, 7, 7), d(2025, 11, 11), d(2026, 2, 2)):
        oid = m.order(day, basket(), method="np_deferred", shipping=rng.choice([0, 600]))
        m.fulfil(oid, day)

    # a07: returns (ANS-12): earned points removed at once, used points back 14 days later;
    # one full return and one partial return.
    m = member("a07", d(2025, 1, 15))
    m.grant(d(2025, 1, 15), 3000, "welcome gift")
    oid = m.order(d(2025, 2, 1), [("SERUM", 1, ())], redeem=1000)
    m.fulfil(oid, d(2025, 2, 1))
    m.return_(oid, d(2025, 2, 12), [("SERUM", 1)])
    oid = m.order(d(2025, 3, 10), [("LOTION", 2, ()), ("CREAM", 1, ())], redeem=600)
    m.fulfil(oid, d(2025, 3, 10))
    m.return_(oid, d(2025, 3, 20), [("LOTION", 1)])
    oid = m.order(d(2025, 4, 20), basket(), redeem=200)
    m.fulfil(oid, d(2025, 4, 20))

    # a08: cancellation before shipment (ANS-12): subscription with points set ahead.
    m = member("a08", d(2025, 3, 5))
    m.grant(d(2025, 3, 5), 2500, "welcome gift")
    for i, day in enumerate(monthly((2025, 4), 6, 15)):
        oid = m.order(day, [("SUPPLEMENT", 1, ()), ("HERBTEA", 1, ())], course="subscription",
                      delivery=day + timedelta(days=12), redeem=400 if i in (1, 4) else None)
        if i == 1:
            m.cancel(oid, day + timedelta(days=2))
        else:
            m.fulfil(oid, day + timedelta(days=9))

    # a09: the week 2026-01-01..07 (campaign.yaml's 10 % campaign, ANS-8), orders just before, inside, after;
    # sale items tagged no_points.
    m = member("a09", d(2025, 11, 20))
    placed = [m.order(day, [("SERUM", 1, ()), ("MASK", 2, ("no_points",))])
              for day in (d(2025, 12, 31), d(2026, 1, 1), d(2026, 1, 7), d(2026, 1, 8))]
    for oid in placed:
        m.fulfil(oid, d(2026, 1, 9))

    # a10: bank transfer, redemption up to the YAML default minimum of 1 yen (ANS-10 ASSUMPTION).
    m = member("a10", d(2025, 4, 1))
    m.grant(d(2025, 4, 1), 9000, "points carried over from the former shop")
    oid = m.order(d(2025, 4, 18), [("LOTION", 1, ()), ("CLEANSER", 1, ())], method="bank_transfer",
                  redeem="max")
    m.fulfil(oid, d(2025, 4, 20))
    oid = m.order(d(2025, 9, 18), basket(), method="bank_transfer")
    m.fulfil(oid, d(2025, 9, 20))

    # a11: direct debit subscriber, points set ahead on time (ANS-16).
    m = member("a11", d(2025, 5, 1))
    m.grant(d(2025, 5, 1), 1200, "welcome gift")
    for i, day in enumerate(monthly((2025, 5), 8, 1)):
        oid = m.order(day, [("LOTION", 1, ()), ("SUPPLEMENT", 1, ())], course="subscription",
                      method="direct_debit", delivery=day + timedelta(days=14), redeem=250 if i % 3 == 2 else None)
        m.fulfil(oid, day + timedelta(days=11))

    # a12: modest monthly subscriber: regular, then silver once 30,000 yen incl. tax shipped (ANS-2).
    m = member("a12", d(2025, 1, 25))
    for day in monthly((2025, 2), 12, 25):
        oid = m.order(day, [("LOTION", 1, ())], course="subscription", delivery=day + timedelta(days=12))
        m.fulfil(oid, day + timedelta(days=9))

    # a13: occasional one-off buyer paying shipping (ANS-3/6).
    m = member("a13", d(2025, 2, 18))
    for day in (d(2025, 3, 18), d(2025, 6, 30), d(2025, 9, 9), d(2025, 12, 12), d(2026, 2, 20)):
        oid = m.order(day, basket(), shipping=600)
        m.fulfil(oid, day)

    # a14: both rewards on one order (1,500 points), and a last order not shipped yet: its points
    # stay pending (ANS-5).
    m = member("a14", d(2025, 6, 1))
    m.grant(d(2025, 6, 1), 1600, "welcome gift")
    oid = m.order(d(2025, 6, 10), [("CREAM", 1, ())], exchanges=[("cutting_board", 1), ("illustration_pouch", 1)])
    m.fulfil(oid, d(2025, 6, 10))
    m.order(d(2026, 2, 26), [("SERUM", 1, ()), ("LOTION", 1, ())])

    # a15: bought once in January 2025 and never again: the points are still valid in 2026 (ANS-17).
    m = member("a15", d(2025, 1, 8))
    oid = m.order(d(2025, 1, 9), [("SERUM", 2, ()), ("CREAM", 1, ())])
    m.fulfil(oid, d(2025, 1, 9))

    # g01, g02: guest orders earn nothing (ANS-4).
    for gid, day in (("g01", d(2025, 5, 5)), ("g02", d(2025, 10, 10))):
        m = member(gid, day, guest=True)
        m.order(day, basket(), shipping=600)

    events.sort(key=lambda e: (e["at"], e["member"]))
    with OUT.open("w", encoding="utf-8") as fh:
        for n, ev in enumerate(events, 1):
            ev = {"id": f"ans-{n:04d}", **ev, "at": ev["at"].isoformat()}
            fh.write(json.dumps(ev, ensure_ascii=False) + "\n")
    print(f"{len(events)} events, {sum(1 for m in ms.values() if not m.guest)} members -> {OUT}")


if __name__ == "__main__":
    main()
