"""Orders: the quote of a cart, and placing it (spend, earn, record)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

import msgspec

from .earning import EarnLine, EarnResult, compute_earn
from .errors import EventRejected
from .events import OrderPlaced

from .bonuses import settle_debt
from .expiry import on_acquire
from .lots import Change, of_order
from .pricing import Priced, price_order, spread
from .program import Program, Version
from .redemption import Limit, redeem_limit
from .state import MemberState, Order, OrderLine
from .tiers import tier_at
from .timeutil import local_date


@dataclass
class Plan:
    """Everything a checkout needs to know about a cart, before anything is booked."""

    version: Version
    priced: Priced
    tier: Optional[str]
    limit: Limit
    applied: int
    shares: list
    earn: EarnResult
    earn_state: str
    errors: list = field(default_factory=list)   # (field, reason, rule)

    @property
    def to_pay(self) -> int:
        return self.priced.grand_total - self.applied * (self.version.redemption.unit_value_yen if self.version.redemption else 0)


def earn_lines(lines, returned: dict | None = None) -> list[EarnLine]:
    returned = returned or {}
    return [EarnLine(l.sku, l.product, l.qty, l.qty - returned.get(l.sku, 0), l.unit_price, l.tax_rate, l.tags,
                     l.pv, l.net_ex, l.points_share) for l in lines]


def order_env(course: str, tier: Optional[str], method: str, brand: Optional[str], guest: bool, at, tz) -> dict:
    return {"course": course, "tier": tier, "payment_method": method, "card_brand": brand, "guest": guest,
            "order_date": local_date(at, tz).isoformat()}


def plan_order(program: Program, state: MemberState, cart: OrderPlaced, at: datetime) -> Plan:
    version = program.version_at(at)
    member = state.registered and not cart.guest
    priced = price_order(version, cart, member)
    tier, _ = tier_at(version.tiers, state, at, program.tz) if member else (None, 0)
    limit = redeem_limit(version, state.valid_units(), priced.grand_total, cart.payment.method,
                         cart.payment.card_brand, guest=not member)
    errors = []
    applied = 0
    if cart.redeem is not None:
        asked = cart.redeem.points if cart.redeem.points is not None else cart.redeem.credits
        if cart.redeem.points is not None and cart.redeem.credits is not None:
            errors.append(("redeem", "give either points or credits, not both", None))
        elif asked == "max":
            applied = limit.max
        elif asked is not None:
            if asked > limit.max:
                errors.append(("redeem.points" if cart.redeem.points is not None else "redeem.credits",
                               f"asks to use {asked}, but at most {limit.max} can be used: {limit.why}", limit.rule))
            else:
                applied = asked
    value = version.redemption.unit_value_yen if version.redemption else 1
    shares = spread(applied * value, [pl.net_ex for pl in priced.lines])
    earning = version.earning
    lines = [OrderLine(sku=pl.sku, product=pl.product, qty=pl.qty, unit_price=pl.unit_price, tax_rate=pl.tax_rate,
                       tags=pl.tags, pv=pl.pv, net_ex=pl.net_ex, points_share=s) for pl, s in zip(priced.lines, shares)]
    if earning is not None and (member or earning.guests_earn):
        env = order_env(cart.course, tier, cart.payment.method, cart.payment.card_brand, cart.guest, at, program.tz)
        earn = compute_earn(earning, earn_lines(lines), env, local_date(at, program.tz), value)
    else:
        earn = EarnResult(0, (), 0)
    earn_state = "valid" if earning is not None and earning.pending_until == "placed" else "pending"
    return Plan(version, priced, tier, limit, applied, lines, earn, earn_state, errors)


def quote_dict(plan: Plan) -> dict:
    p = plan.priced
    return {
        "totals": {"items_ex_tax": p.items_ex_tax, "fees_ex_tax": p.fees_ex_tax, "shipping_ex_tax": p.shipping_ex_tax,
                   "tax": dict(p.tax), "tax_total": p.tax_total, "grand_total": p.grand_total, "to_pay": plan.to_pay},
        "redeem": {"max": plan.limit.max, "applied": plan.applied, "why": plan.limit.why},
        "exchange": {"points": 0, "fees": [{"kind": f.kind, "ex_tax": f.ex_tax, "tax_rate": f.tax_rate} for f in p.fees]},
        "earn": {"points": plan.earn.units, "state": plan.earn_state, "rules": list(plan.earn.rules)},
        "tier": plan.tier,
        "version": plan.version.number,
        "errors": [{"field": f, "reason": r, "rule": rule} for f, r, rule in plan.errors],
    }


def place(change: Change, cart: OrderPlaced) -> None:
    state = change.state
    if cart.order in state.orders:
        raise EventRejected(f"order {cart.order} was already placed", "order")
    plan = plan_order(change.program, state, cart, change.at)
    if plan.errors:
        f, reason, rule = plan.errors[0]
        raise EventRejected(reason, f, rule)
    rule = plan.version.redemption.rule if plan.version.redemption else ""
    spent = change.move(plan.applied, "valid", "used", "spend", rule) if plan.applied else []
    if sum(l.amount for l in spent) != plan.applied:  # cannot happen: the limit includes the balance
        raise EventRejected("the balance changed while the order was priced", "redeem")
    if plan.earn.units > 0:
        expires_on, rolling = (on_acquire(change) if plan.earn_state == "valid" else (None, False))
        change.add_lot(plan.earn.units, plan.earn_state, plan.earn.main_rule, "earn", order=cart.order,
                       expires_on=expires_on, rolling=rolling)
    state.orders[cart.order] = Order(
        id=cart.order, placed_at=change.at, event=change.source, course=cart.course, guest=cart.guest,
        payment_method=cart.payment.method, card_brand=cart.payment.card_brand, tier=plan.tier,
        version=plan.version.number, lines=tuple(plan.shares), points_used=plan.applied,
        used_lots=tuple(l.id for l in spent), earned=plan.earn.units, earn_rules=plan.earn.rules)


def find_order(change: Change, order_id: str) -> Order:
    order = change.state.orders.get(order_id)
    if order is None:
        raise EventRejected(f"unknown order {order_id} for member {change.state.member}", "order")
    return order


def validate_earn(change: Change, order: Order) -> None:
    """The order's pending points become valid (AND-2, ANS-5): an acquisition for expiry."""
    pending = change.total("pending", of_order(order.id))
    if not pending:
        return
    expires_on, rolling = on_acquire(change)
    # the earning's own rule (AND-2's pending → valid step is what the earning section says)
    rule = order.earn_rules[0] if order.earn_rules else change.version.expiry.rule
    change.move(pending, "pending", "valid", "validate", rule, where=of_order(order.id),
                changes={"expires_on": expires_on, "rolling": rolling})
    settle_debt(change)


def ship(change: Change, order_id: str) -> None:
    order = find_order(change, order_id)
    if order.status != "placed":
        raise EventRejected(f"order {order_id} is {order.status}, it cannot ship", "order")
    change.state.orders[order_id] = order = msgspec.structs.replace(order, status="shipped", shipped_at=change.at)
    if _earning_of(change, order).pending_until == "shipped":
        validate_earn(change, order)


def deliver(change: Change, order_id: str) -> None:
    order = find_order(change, order_id)
    if order.status not in ("placed", "shipped"):
        raise EventRejected(f"order {order_id} is {order.status}, it cannot be delivered", "order")
    # A delivery without a shipment event implies the shipment.
    change.state.orders[order_id] = order = msgspec.structs.replace(
        order, status="delivered", delivered_at=change.at, shipped_at=order.shipped_at or change.at)
    if _earning_of(change, order).pending_until in ("shipped", "delivered"):
        validate_earn(change, order)


def _earning_of(change: Change, order: Order):
    version = next(v for v in change.program.versions if v.number == order.version)
    return version.earning or change.version.earning
