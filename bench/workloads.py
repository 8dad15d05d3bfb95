"""Deterministic synthetic workloads: members, orders with lines, shipments, deliveries, returns,
cancellations, reviews, grants, subscriptions and (only when surely covered) redemptions and
reward exchanges, over 18 months, for each program in programs/.

Stdlib only; every member's history comes from its own ``random.Random(f"{seed}:{program}:{k}")``,
so a member's events are the same whatever the size of the workload, and two runs give the same
bytes.

Redemptions and exchanges never ask for more than the member surely has. ``Member.safe`` is a
lower bound of the valid balance: only operator grants and the sign-up bonus count, minus every
unit spent; earned, birthday, review and restored points only add to the real balance, and a
return's clawback never takes more than the order earned. Expiry is respected with a margin
(rolling: the whole bound drops once no grant came for 330 days; per grant: only grants younger
than the lifetime less 30 days count). A "max" redemption is always accepted (it uses what is
there). The bench checks this: every generated event must be applied, none rejected.

Feed order: members come in cohorts of ``COHORT``; within a cohort the events are in time order
(as a shop's history file is), and cohorts follow each other. Events of one member are always in
time order, which is all the engine requires; cohorts keep generation streaming, so a 1M-event
workload never sits in memory whole.
"""
from __future__ import annotations

import heapq
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator, Optional

JST = timezone(timedelta(hours=9))
START = datetime(2025, 1, 1, tzinfo=JST)
END = datetime(2026, 6, 30, 23, 0, tzinfo=JST)     # the last event of any member is before this
QUOTE_AT = datetime(2026, 7, 1, 12, 0, tzinfo=JST)   # checkout time of the quote carts
COHORT = 200
SEED = 20250801

# program id -> what the generator emits for it. Unknown programs (a new YAML in programs/) get the
# generic profile: registrations, one-off orders, shipments, deliveries.
PROFILES = {
    "andest": dict(tax=(0.10,), sub_share=0.0, returns="delivered", return_days=5, reviews=True, birthday=True,
                   grant=1000, redeem="points", expiry=("rolling", 330), signup=500, tags=("sale", "points_5pct"),
                   refuse_return_tags=("sale",)),
    "ansage": dict(tax=(0.08,), sub_share=0.5, returns="delivered", return_days=20, grant=1000, redeem="points",
                   expiry=("none", 0), min_pay=300, exchange=("cutting_board", 700), tags=("no_points",)),
    "amare": dict(tax=(0.08,), sub_share=0.8, pv=True, grant=200, expiry=("per_grant", 335),
                  exchange=("ssr_example_42", 42), methods=("credit_card",)),
    "rewards_circle": dict(tax=(0.10, 0.08), sub_share=0.5, sub_events=True, grant=3, redeem="credits",
                           unit_yen=1100, per_amount=6000, expiry=("per_grant", 150), insider=True),
    "manda": dict(tax=(0.08, 0.10), sub_share=0.85, sub_events=True, pauses=True, returns="shipped",
                  return_days=20, methods=("credit_card", "cash_on_delivery", "np_deferred", "direct_debit")),
}
GENERIC = dict(tax=(0.10,), sub_share=0.0)

PRODUCTS = [("TSHIRT", 2900), ("BLOUSE", 5900), ("SKIRT", 7900), ("KNIT", 9900), ("DRESS", 12900),
            ("COAT", 19000), ("KOSO", 5000), ("SUPPLE", 3000), ("SKIN", 4000), ("STOLE", 1900)]
METHODS = ("credit_card", "credit_card", "credit_card", "np_deferred", "cash_on_delivery", "bank_transfer")
BRANDS = ("visa", "visa", "mastercard", "jcb", "amex")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


@dataclass
class Member:
    """One member's history being written, and what the generator knows it surely has."""

    id: str
    rng: random.Random
    profile: dict
    events: list = field(default_factory=list)
    grants: list = field(default_factory=list)   # (time, units)
    spends: list = field(default_factory=list)   # (time, units)
    orders: int = 0
    reviewed: set = field(default_factory=set)

    def emit(self, at: datetime, type_: str, **fields) -> None:
        self.events.append((at, len(self.events), {"type": type_, "at": _iso(at), "member": self.id, **fields}))

    def safe(self, at: datetime) -> int:
        kind, days = self.profile.get("expiry", ("none", 0))
        grants = [(t, u) for t, u in self.grants if t <= at]
        if not grants:
            return 0
        if kind == "rolling":
            if at - grants[-1][0] > timedelta(days=days):
                return 0
        elif kind == "per_grant":
            grants = [(t, u) for t, u in grants if at - t <= timedelta(days=days)]
            if not grants:
                return 0
        since = grants[0][0] if kind == "per_grant" else datetime.min.replace(tzinfo=JST)
        spent = sum(u for t, u in self.spends if t >= since)
        return max(sum(u for _, u in grants) - spent, 0)


def _lines(m: Member, n_lines: int) -> list[dict]:
    rng, p = m.rng, m.profile
    lines = {}
    for _ in range(n_lines):
        product, price = rng.choice(PRODUCTS)
        sku = f"{product}-{rng.choice('SML')}"
        line = {"sku": sku, "product": product, "qty": 1 if rng.random() < 0.8 else 2, "unit_price": price,
                "tax_rate": rng.choice(p["tax"])}
        tags = p.get("tags", ())
        if tags and rng.random() < 0.15:
            line["tags"] = [rng.choice(tags)]
        if p.get("pv"):
            line["pv"] = float(price // 200)
        lines[sku] = line
    return list(lines.values())


def _payment(m: Member) -> dict:
    method = m.rng.choice(m.profile.get("methods", METHODS))
    if method == "credit_card":
        return {"method": method, "card_brand": m.rng.choice(BRANDS)}
    return {"method": method}


def _place(m: Member, t: datetime, course: str) -> tuple[str, list[dict]]:
    rng = m.rng
    m.orders += 1
    oid = f"{m.id}-o{m.orders}"
    lines = _lines(m, rng.choice((1, 1, 1, 2, 2, 3)))
    items = sum(l["unit_price"] * l["qty"] for l in lines) * 95 // 100   # lower bound after a member price
    order = {"order": oid, "course": course, "payment": _payment(m), "lines": lines}
    if items < 5000:
        order["shipping"] = 500
    if rng.random() < 0.1 and items >= 6000:
        order["coupon_discount"] = 500
        items -= 500
    _spend(m, t, order, items)
    m.emit(t, "order.placed", **order)
    return oid, lines


def _spend(m: Member, t: datetime, order: dict, items: int) -> None:
    """A redemption or a reward exchange the member surely covers (see the module docstring)."""
    rng, p = m.rng, m.profile
    kind = p.get("redeem")
    if kind and rng.random() < 0.25:
        if kind == "points" and rng.random() < 0.3:
            order["redeem"] = {"points": "max"}       # always accepted; the bound then drops to 0
            m.spends.append((t, 10**9))
            return
        have = m.safe(t)
        if kind == "points":
            most = min(have, 5000, items - p.get("min_pay", 0)) // 100 * 100
            if most >= 100:
                n = rng.randrange(100, most + 1, 100)
                order["redeem"] = {"points": n}
                m.spends.append((t, n))
        else:   # credits: one for every per_amount yen of the order, each worth unit_yen at most
            most = min(have, items // p["per_amount"], items // p["unit_yen"])
            if most >= 1:
                n = rng.randint(1, most)
                order["redeem"] = {"credits": n}
                m.spends.append((t, n))
        return
    if p.get("exchange") and rng.random() < 0.2:
        reward, units = p["exchange"]
        if m.safe(t) >= units:
            order["exchanges"] = [{"reward": reward, "qty": 1}]
            order["payment"] = {"method": "credit_card", "card_brand": "visa"}
            m.spends.append((t, units))


def _clock(rng: random.Random, day: datetime, lo: int = 9, hi: int = 20) -> datetime:
    return day.replace(hour=rng.randint(lo, hi), minute=rng.randint(0, 59), second=rng.randint(0, 59))


def _fate(m: Member, t: datetime, oid: str, lines: list[dict]) -> Optional[datetime]:
    """Cancel, or ship and deliver, then maybe return or review. Returns the delivery time."""
    rng, p = m.rng, m.profile
    if rng.random() < 0.06:
        m.emit(t + timedelta(hours=rng.randint(1, 20)), "order.cancelled", order=oid)
        return None
    shipped = _clock(rng, t + timedelta(days=rng.randint(1, 3)))
    delivered = _clock(rng, shipped + timedelta(days=rng.randint(1, 2)))
    m.emit(shipped, "order.shipped", order=oid)
    m.emit(delivered, "order.delivered", order=oid)
    if p.get("returns") and rng.random() < 0.08:
        refused = set(p.get("refuse_return_tags", ()))
        back = [l for l in lines if not refused.intersection(l.get("tags", ()))]
        if back:
            line = rng.choice(back)
            at = delivered + timedelta(days=rng.randint(1, p["return_days"]), hours=rng.randint(0, 3))
            m.emit(at, "order.returned", order=oid, lines=[{"sku": line["sku"], "qty": rng.randint(1, line["qty"])}])
    if p.get("reviews") and rng.random() < 0.15:
        product = rng.choice(lines)["product"]
        m.emit(delivered + timedelta(days=rng.randint(1, 10)), "review.posted", product=product)
    return delivered


def member_events(program: str, k: int, seed: int = SEED) -> list[dict]:
    """One member's history, in time order, without ids."""
    profile = PROFILES.get(program, GENERIC)
    rng = random.Random(f"{seed}:{program}:{k}")
    m = Member(f"m{k}", rng, profile)
    reg = _clock(rng, START + timedelta(days=rng.randint(0, 150)), 8, 22)
    fields = {}
    if profile.get("birthday") and rng.random() < 0.7:
        fields["birthday"] = f"{rng.randint(1960, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if profile.get("insider"):
        fields["attributes"] = {"insider": rng.random() < 0.3}
    m.emit(reg, "member.registered", **fields)
    if profile.get("signup"):
        m.grants.append((reg, profile["signup"]))
    subscriber = rng.random() < profile.get("sub_share", 0)
    t = reg + timedelta(hours=rng.randint(1, 48))
    if subscriber and profile.get("sub_events"):
        m.emit(t, "subscription.started")
    paused_until: Optional[datetime] = None
    next_grant = reg + timedelta(days=rng.randint(10, 90))
    stop = END - timedelta(days=25)
    while t < stop:
        if profile.get("grant") and t >= next_grant:
            m.emit(t, "points.granted", amount=profile["grant"], reason="campaign")
            m.grants.append((t, profile["grant"]))
            next_grant = t + timedelta(days=rng.randint(60, 150))
            t += timedelta(minutes=rng.randint(5, 600))
        if subscriber and profile.get("pauses") and paused_until is None and rng.random() < 0.06:
            m.emit(t, "subscription.paused")
            paused_until = t + timedelta(days=rng.randint(35, 70))
            t = paused_until
            m.emit(t, "subscription.resumed")
            paused_until = None
            t += timedelta(hours=rng.randint(1, 30))
            continue
        course = "subscription" if subscriber and rng.random() < 0.9 else "one_off"
        oid, lines = _place(m, t, course)
        _fate(m, t, oid, lines)
        if subscriber:
            t = _clock(rng, t + timedelta(days=rng.randint(27, 34)), 8, 22)
        else:
            t = _clock(rng, t + timedelta(days=rng.randint(15, 75)), 8, 22)
    if subscriber and profile.get("sub_events") and rng.random() < 0.15:
        m.emit(max(t, stop) + timedelta(days=rng.randint(1, 20)), "subscription.cancelled")
    m.events.sort(key=lambda e: (e[0], e[1]))
    return [e for _, _, e in m.events]


def stream(program: str, n_events: int, seed: int = SEED, prefix: str = "") -> Iterator[dict]:
    """Exactly ``n_events`` events (ids ``{prefix}e1`` ...), cohort after cohort, each cohort in time order."""
    made = 0
    k = 0
    while made < n_events:
        cohort = []
        for _ in range(COHORT):
            evs = member_events(program, k, seed)
            k += 1
            cohort.append([(e["at"], k, i, e) for i, e in enumerate(evs)])
            if sum(len(c) for c in cohort) + made >= n_events:
                break
        for *_, e in heapq.merge(*cohort):   # times are all +09:00, to the second: text order is time order
            if made >= n_events:
                return
            made += 1
            e["id"] = f"{prefix}e{made}"
            yield e


def generate(program: str, n_events: int, seed: int = SEED, prefix: str = "") -> list[dict]:
    return list(stream(program, n_events, seed, prefix))


def encoded(program: str, n_events: int, seed: int = SEED) -> list[bytes]:
    return [json.dumps(e, separators=(",", ":")).encode() for e in stream(program, n_events, seed)]


def quote_carts(program: str, members: list[str], n: int, seed: int = SEED, at: datetime = QUOTE_AT) -> list[dict]:
    """``n`` checkout carts for members of a replayed workload, at ``at`` (after every event)."""
    profile = PROFILES.get(program, GENERIC)
    rng = random.Random(f"{seed}:{program}:carts")
    carts = []
    for i in range(n):
        member = members[rng.randrange(len(members))]
        m = Member(member, rng, profile)
        lines = _lines(m, rng.choice((1, 2, 3)))
        items = sum(l["unit_price"] * l["qty"] for l in lines)
        cart = {"id": f"q{i}", "type": "order.placed", "at": _iso(at), "member": member,
                "order": f"q{i}", "course": "subscription" if rng.random() < profile.get("sub_share", 0) else "one_off",
                "payment": _payment(m), "lines": lines}
        if items < 5000:
            cart["shipping"] = 500
        if profile.get("redeem"):
            cart["redeem"] = {"points": "max"}
        carts.append(cart)
    return carts


def andest_carts(members: list[str], n: int, seed: int = SEED, at: datetime = QUOTE_AT) -> list[dict]:
    """Carts for the three-way comparison (engine, hand-written, zen-engine): no coupon, "max" points."""
    carts = quote_carts("andest", members, n, seed, at)
    for cart in carts:
        cart.pop("coupon_discount", None)
    return carts
