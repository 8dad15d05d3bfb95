#!/usr/bin/env python3
"""Example events for the &est ONLINE STORE program (programs/andest.yaml, AND-1..AND-12).

    python examples/andest/generate.py      # rewrites events.jsonl next to this file

Stdlib only, fixed seed: the same file on every run. Events follow docs/CONTRACT.md.

Redemptions and holds are written only when the member surely has the points. safe_balance()
is a lower bound of the member's valid points: it counts only the 500 sign-up bonus (AND-4), the
first review of each product (AND-8/9, 300) and 1% of orders that ship and are never returned
(AND-1), and drops everything once a year has passed since the last of those (AND-5). Birthday,
rank, campaign and restored points only add to the real balance, so the bound stays safe.
"""
import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

SEED = 20250101
JST = timezone(timedelta(hours=9))
START = datetime(2025, 1, 1, tzinfo=JST)
END = datetime(2026, 6, 30, 23, 59, tzinfo=JST)       # nothing after this is written
LAST_ORDER = datetime(2026, 6, 18, tzinfo=JST)
DORMANT_STOP = datetime(2025, 3, 15, tzinfo=JST)      # dormant members go quiet after this
SAFE_EXPIRY = timedelta(days=360)                     # AND-5 says one year; keep a margin
OUT = Path(__file__).with_name("events.jsonl")

PRODUCTS = {  # product: (unit price, yen ex. tax; sizes). Clothing: 10% tax.
    "STOLE": (1900, ["F"]), "TSHIRT": (2900, ["S", "M", "L"]), "CUTSEW": (3900, ["S", "M", "L"]),
    "BLOUSE": (5900, ["S", "M", "L"]), "SHIRT": (6900, ["S", "M", "L"]), "SKIRT": (7900, ["S", "M"]),
    "DENIM": (8900, ["S", "M", "L"]), "CARDIGAN": (8900, ["M", "L"]), "KNIT": (9900, ["S", "M", "L"]),
    "DRESS": (12900, ["S", "M"]), "JACKET": (15900, ["M", "L"]), "COAT": (19000, ["S", "M", "L"]),
}
PRICEY = [p for p, (price, _) in PRODUCTS.items() if price >= 6900]
COLOURS = ["RED", "NAVY", "BLACK", "WHITE", "BEIGE", "GREY"]
METHODS = ["credit_card"] * 12 + ["np_deferred"] * 3 + ["cash_on_delivery"] * 3 + ["bank_transfer"] * 2
BRANDS = ["visa"] * 5 + ["mastercard"] * 3 + ["jcb"] * 2 + ["amex"]
# kind: (days between orders, min and max; choices for the number of lines)
KINDS = {"gold": (28, 50, [1, 1, 2, 3]), "silver": (35, 60, [1, 1, 2]),
         "regular": (50, 170, [1, 1, 1, 2, 2, 3]), "dormant": (15, 30, [1, 1, 2])}
# Who shops here: two big spenders (AND-10 gold), two silver, three who stop early (AND-5),
# the rest ordinary. "hold" marks the two members an operator puts points on hold for (AND-2).
CAST = ([("gold", True), ("gold", False), ("silver", True), ("silver", False)] + [("dormant", False)] * 3
        + [("regular", False)] * 21)

events = []


def emit(at, member, type_, **fields):
    events.append({"at": at, "type": type_, "member": member.id, **fields})


def clock(day, lo=8, hi=23):
    """The same day, at a random minute between lo:00 and hi:59."""
    return day.replace(hour=random.randint(lo, hi), minute=random.randint(0, 59), second=0)


class Member:
    def __init__(self, mid, kind, hold, registered, birthday):
        self.id, self.kind, self.hold, self.registered, self.birthday = mid, kind, hold, registered, birthday
        self.stop = DORMANT_STOP if kind == "dormant" else LAST_ORDER
        self.ledger = [(registered, 500)]  # (time, +earned | -spent | None: "max", all may be gone)
        self.bought, self.reviewed = [], set()
        self.last_review = registered
        self.no_redeem_until = registered  # while points are on hold
        self.hold_done, self.orders = False, 0

    def safe_balance(self, t):
        """A lower bound of the valid points at t (see the module docstring)."""
        bal, last = 0, None
        for at, amount in sorted(self.ledger, key=lambda e: e[0]):
            if at >= t:
                break
            if last and at - last > SAFE_EXPIRY:
                bal = 0
            if amount is None:
                bal = 0
            else:
                bal = max(0, bal + amount)
                last = at if amount > 0 else last
        return 0 if last is None or t - last > SAFE_EXPIRY else bal


def pick_product(m):
    if m.bought and random.random() < 0.25:  # buys another colour/size of something bought before
        return random.choice(m.bought)
    return random.choice(PRICEY if m.kind == "gold" else list(PRODUCTS))


def make_lines(m):
    lines = {}
    for _ in range(random.choice(KINDS[m.kind][2])):
        product = pick_product(m)
        price, sizes = PRODUCTS[product]
        sku = f"{product}-{random.choice(COLOURS)}-{random.choice(sizes)}"
        line = {"sku": sku, "product": product, "qty": 1 if random.random() < 0.8 else 2,
                "unit_price": price, "tax_rate": 0.10}
        if random.random() < 0.2:  # sale items earn points too (AND-1) but cannot be returned (AND-11)
            line["unit_price"] = max(1900, price * 7 // 1000 * 100)
            line["tags"] = ["sale"]
        lines[sku] = line
    return list(lines.values())


def place_order(m, t):
    m.orders += 1
    oid = f"{m.id}/{m.orders}"  # renumbered o0001... in time order at the end
    lines = make_lines(m)
    m.bought += [line["product"] for line in lines]
    items = sum(line["unit_price"] * 95 // 100 * line["qty"] for line in lines)  # AND-8 member price
    if random.random() < 0.1:
        payment = {"method": "credit_card", "card_brand": random.choice(BRANDS)} \
            if random.random() < 0.6 else {"method": "direct_debit"}
        order = {"order": oid, "course": "subscription", "payment": payment}
    else:
        method = random.choice(METHODS)
        payment = {"method": method, **({"card_brand": random.choice(BRANDS)} if method == "credit_card" else {})}
        order = {"order": oid, "course": "one_off", "payment": payment}
    order["lines"] = lines
    coupon = random.choice([500, 1000])
    if random.random() < 0.15 and items >= 3 * coupon:  # AND-7
        order["coupon_discount"] = coupon
        items -= coupon
    if items < 5000:
        order["shipping"] = 500
    debit = 0  # AND-3: "max" or a given number, never past what the member surely has
    if t >= m.no_redeem_until and random.random() < 0.3:
        bal = m.safe_balance(t)
        if bal >= 400 and items >= 12500 and random.random() < 0.4:  # 5,000 cap <= 40% of items
            order["redeem"], debit = {"points": "max"}, None
        else:
            most = min(bal - 50, 5000, items * 40 // 100) // 100 * 100
            if most >= 100:
                n = random.randrange(100, most + 1, 100)
                order["redeem"], debit = {"points": n}, -n
    if debit != 0:
        m.ledger.append((t, debit))
    emit(t, m, "order.placed", **order)

    fate = random.random()
    if fate < 0.08:  # AND-2: cancelled before shipment, pending points become void
        emit(t + timedelta(hours=random.randint(1, 20)), m, "order.cancelled", order=oid)
        return
    shipped = clock(t + timedelta(days=random.randint(1, 3)), 9, 18)
    delivered = clock(shipped + timedelta(days=random.randint(1, 2)), 9, 20)
    emit(shipped, m, "order.shipped", order=oid)
    emit(delivered, m, "order.delivered", order=oid)
    returnable = [line for line in lines if "sale" not in line.get("tags", [])]
    if fate < 0.2 and returnable:  # AND-11 within 7 days (here 5), X-5 partial returns
        back = [random.choice(returnable)] if len(lines) > 1 and random.random() < 0.75 else returnable
        emit(delivered + timedelta(hours=random.randint(6, 110)), m, "order.returned", order=oid,
             lines=[{"sku": line["sku"], "qty": random.randint(1, line["qty"])} for line in back])
        return  # the safe balance counts nothing for a returned order
    base = items - (5000 if debit is None else -debit)
    m.ledger.append((shipped, max(0, base) // 100))  # AND-1/AND-2: valid when shipped
    for product in dict.fromkeys(line["product"] for line in lines):
        first = product not in m.reviewed
        if random.random() < (0.4 if first else 0.25):  # a repeat review earns nothing (AND-9)
            m.last_review = max(clock(delivered + timedelta(days=random.randint(1, 14))),
                                m.last_review + timedelta(hours=1))
            emit(m.last_review, m, "review.posted", product=product)
            if first:
                m.reviewed.add(product)
                m.ledger.append((m.last_review, 300))


def maybe_hold(m, t):
    """AND-2: an operator holds some points for an investigation, then releases them."""
    held, released = clock(t + timedelta(days=2), 10, 17), clock(t + timedelta(days=random.randint(8, 15)), 10, 17)
    amount = min(1000, m.safe_balance(held) - 50, m.safe_balance(released) - 50) // 100 * 100
    if amount < 200:
        return
    emit(held, m, "points.held", amount=amount, reason="investigation")
    emit(released, m, "points.released", amount=amount, reason="investigation")
    m.no_redeem_until, m.hold_done = released + timedelta(hours=1), True


def live(m):
    emit(m.registered, m, "member.registered", **({"birthday": m.birthday} if m.birthday else {}))
    t = max(clock(m.registered + timedelta(days=random.randint(0, 6))), m.registered + timedelta(minutes=40))
    lo, hi, _ = KINDS[m.kind]
    while t < m.stop:
        place_order(m, t)
        if m.hold and not m.hold_done and m.orders >= 2:
            maybe_hold(m, t)
        t = clock(t + timedelta(days=random.randint(lo, hi)))


def grants(members):
    """AND-6 limited-time campaign points, and a few ordinary grants without an end date."""
    for when, expires in [(datetime(2025, 7, 1, 10, tzinfo=JST), "2025-08-31"),
                          (datetime(2025, 12, 1, 10, tzinfo=JST), "2026-01-31")]:
        eligible = [m for m in members if m.registered < when < m.stop and m.kind != "dormant" and not m.hold]
        for m in random.sample(eligible, 6):
            emit(when, m, "points.granted", amount=200, reason="campaign", expires_on=expires)
    for m in random.sample([m for m in members if m.kind != "dormant" and not m.hold], 3):
        days = random.randint(1, min(200, (LAST_ORDER - m.registered).days))
        emit(clock(m.registered + timedelta(days=days), 10, 18), m, "points.granted", amount=300, reason="apology")


def main():
    random.seed(SEED)
    people = sorted((clock(START + timedelta(days=random.randint(0, 450 if kind == "regular" else 40)), 9, 22),
                     kind, hold) for kind, hold in CAST)
    members = []
    for i, (registered, kind, hold) in enumerate(people, 1):
        birthday = None if kind == "dormant" or random.random() < 0.15 else \
            date(random.randint(1965, 2004), random.randint(1, 12), random.randint(1, 28)).isoformat()
        members.append(Member(f"m{i:03d}", kind, hold, registered, birthday))
    for m in members:
        live(m)
    grants(members)
    rows = sorted((e for e in events if e["at"] <= END), key=lambda e: e["at"])
    order_ids = {}
    for n, e in enumerate(rows, 1):
        if e["type"] == "order.placed":
            order_ids[e["order"]] = f"o{len(order_ids) + 1:04d}"
        if "order" in e:
            e["order"] = order_ids[e["order"]]
        e.update(id=f"e{n:05d}", at=e["at"].isoformat(timespec="seconds"))
    with OUT.open("w", encoding="utf-8") as f:
        for e in rows:
            e = {"id": e.pop("id"), "type": e.pop("type"), "at": e.pop("at"), "member": e.pop("member"), **e}
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} events for {len(members)} members to {OUT}")


if __name__ == "__main__":
    main()
