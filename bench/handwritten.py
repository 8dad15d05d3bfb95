"""The floor: &est's earn/redeem quote written by hand in plain Python, no engine.

What it computes, and only that (the rules of programs/andest.yaml that a checkout quote needs):
member price floor(unit × 0.95) per unit (AND-8); tax once per rate, floored, shipping at 10%;
tier from the ex-tax amount of the orders placed in the 12 months before the cart (AND-10:
regular / silver ≥ 50,000 / gold ≥ 100,000); earn floor(Σ net × rate) with 5% for lines tagged
``points_5pct``, else 1% / 2% / 3% by tier (AND-1, AND-10); redeem limit
min(balance, 5,000, grand total) (AND-3). No coupons, no validation, no expiry, no ledger.

The member is what a hand-written system would keep: a running valid balance and, per order, its
placement time and counted amount. ``member_view`` derives that from the engine's state once,
outside any timing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

JST = timezone(timedelta(hours=9))
_JST_SHIFT = timedelta(hours=9)
RATE_BP = {"regular": 100, "silver": 200, "gold": 300}   # basis points: exact integer arithmetic
CAP = 5000


@dataclass(slots=True)
class HandMember:
    balance: int
    orders: list          # [(placed_at as POSIX seconds, yen counted for the tier), ...]


_EPOCH = date(1970, 1, 1).toordinal()


def window_start(now: datetime) -> int:
    """00:00 (JST) of the first day of the 12 months ending on ``now``'s date, as POSIX seconds: the
    day after that date a year before (AND-10: on 2026-03-01, from 2025-03-02); 29 Feb → 28 Feb."""
    d = now.date() if now.utcoffset() == _JST_SHIFT else now.astimezone(JST).date()
    day = 28 if d.month == 2 and d.day == 29 else d.day
    return (date(d.year - 1, d.month, day).toordinal() + 1 - _EPOCH) * 86400 - 9 * 3600


def tier_of(window_yen: int) -> str:
    # AND-10: the rank rises when the amount exceeds a threshold
    if window_yen > 100_000:
        return "gold"
    if window_yen > 50_000:
        return "silver"
    return "regular"


def quote(member: HandMember, cart: dict, now: datetime) -> dict:
    since = window_start(now)
    now_ts = now.timestamp()
    window = 0
    for placed, amount in member.orders:
        if since <= placed < now_ts:
            window += amount
    tier = tier_of(window)
    tier_bp = RATE_BP[tier]
    items = earn_num = base10 = base8 = 0
    for line in cart["lines"]:
        net = line["unit_price"] * 95 // 100 * line["qty"]
        items += net
        earn_num += net * (500 if "points_5pct" in line.get("tags", ()) else tier_bp)
        if line["tax_rate"] == 0.08:
            base8 += net
        else:
            base10 += net
    shipping = cart.get("shipping", 0)
    base10 += shipping
    tax = base10 // 10 + base8 * 8 // 100
    grand = items + shipping + tax
    limit = min(member.balance, CAP, grand)
    asked = (cart.get("redeem") or {}).get("points")
    applied = limit if asked == "max" else min(asked or 0, limit)
    return {"items_ex_tax": items, "tax_total": tax, "grand_total": grand, "to_pay": grand - applied,
            "tier": tier, "earn": earn_num // 10_000, "redeem_max": limit, "applied": applied}


def member_view(program, state, at: datetime) -> HandMember:
    """The running balance and the order list a hand-written system would hold for this member."""
    from engine.run.report import as_of
    from engine.core.tiers import order_amount

    view, _, _ = as_of(program, state, at)
    measure = program.version_at(at).tiers.measure
    orders = sorted((o.placed_at.timestamp(), order_amount(o, measure)) for o in view.orders.values() if not o.guest)
    return HandMember(view.valid_units(), orders)


def engine_summary(q: dict) -> dict:
    """The same figures out of the engine's quote dict, to check the three agree."""
    return {"grand_total": q["totals"]["grand_total"], "tier": q["tier"], "earn": q["earn"]["points"],
            "redeem_max": q["redeem"]["max"]}


def summary(q: dict) -> dict:
    return {k: q[k] for k in ("grand_total", "tier", "earn", "redeem_max")}
