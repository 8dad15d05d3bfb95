"""Orders: the quote of a cart, and placing it (spend, earn, record)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Optional
from zoneinfo import ZoneInfo

import msgspec

from engine.core.earning import EarnResult, RowChoices, compute_earn, threshold_grant
from engine.format.messages import refusal, rejected
from engine.model.answers import (Deferred as DeferredView, DeferredRequest, Earn, ExchangeQuote, Fee as FeeView,
                                  PerkView, Quote, Redemption, RewardLine, Totals)
from engine.model.errors import EventRejected, Refusal
from engine.model.events import OrderPlaced, Redeem

from engine.core.expiry import on_acquire
from engine.core.lots import Change, of_order
from engine.core.pricing import Priced, invoice_items, kept_amounts, price_order, spread
from engine.format.program import Earning, Perk, Program, Version
from engine.core.redemption import Limit, redeem_limit
from engine.core.rewards import DeadlineCheck, ExchangePlan, check_deadlines, plan_exchange
from engine.model.state import Deferred, Effect, MemberState, Order, OrderLine
from engine.core.tiers import record_order, tier_at
from engine.model.timeutil import local_date, month_add, month_of


class Plan(msgspec.Struct, gc=False):
    """Everything a checkout needs to know about a cart, before anything is booked."""

    version: Version
    priced: Priced
    tier: Optional[str]
    limit: Limit
    applied: int                              # units used on the order (priced.lines carry their shares)
    earn: EarnResult
    earn_state: str
    exchange: ExchangePlan
    deadlines: tuple[DeadlineCheck, ...] = ()         # one per deadline whose date the cart gives
    defer: Optional[Deferred] = None          # what this order's late requests leave for the next delivery
    used_deferred: bool = False               # this order takes the requests deferred earlier
    subscription_month: int = 0
    errors: list[Refusal] = []   # what would make the order refused
    perks: list[Perk] = []    # Perk rules this order earns

    @property
    def to_pay(self) -> int:
        value = self.version.redemption.unit_value_yen if self.version.redemption else 0
        return self.priced.grand_total - self.applied * value


def order_env(course: str, tier: Optional[str], method: str, brand: Optional[str], guest: bool, at: datetime,
              tz: ZoneInfo, subscription_month: int = 0) -> dict[str, Any]:
    return {"course": course, "tier": tier, "payment_method": method, "card_brand": brand, "guest": guest,
            "order_date": local_date(at, tz).isoformat(), "subscription_month": subscription_month}


def subscription_month(state: MemberState, course: str, at: datetime, tz: ZoneInfo) -> int:
    """Which consecutive month of subscription orders this order is (AMA-1): the same month keeps
    the count, the next calendar month adds one, a gap starts again at 1."""
    if course != "subscription":
        return 0
    day = local_date(at, tz)
    month = month_of(day)
    last = state.sub_last_month
    if last == month:
        return state.sub_streak
    if last is not None and month_add(last, 1) == month:
        return state.sub_streak + 1
    return 1


def _late(deadlines: tuple[DeadlineCheck, ...], what: str) -> bool:
    return any(d.late and what in d.applies_to for d in deadlines)


def _requests(state: MemberState, cart: OrderPlaced, deadlines: tuple[DeadlineCheck, ...]
              ) -> tuple[list[tuple[str, int]], Optional[Redeem], Optional[Deferred]]:
    """The exchanges and redemption this delivery carries: earlier late requests, plus the cart's own
    unless they too are late (ANS-15, they then wait for the next delivery)."""
    exchanges = [(r, q) for d in state.deferred for r, q in d.exchanges]
    redeem = next((d.redeem for d in state.deferred if d.redeem is not None), None)
    late_ex = bool(cart.exchanges) and _late(deadlines, "exchanges")
    late_redeem = cart.redeem is not None and (
        _late(deadlines, "redeem") or (cart.course == "subscription" and _late(deadlines, "redeem_subscription")))
    if not late_ex:
        exchanges += [(e.reward, e.qty) for e in cart.exchanges]
    if not late_redeem and cart.redeem is not None:
        redeem = cart.redeem
    defer = None
    if late_ex or late_redeem:
        defer = Deferred(source=cart.id, exchanges=tuple((e.reward, e.qty) for e in cart.exchanges) if late_ex else (),
                         redeem=cart.redeem if late_redeem else None)
    return exchanges, redeem, defer


def plan_order(program: Program, state: MemberState, cart: OrderPlaced, at: datetime,
               choices: Optional[RowChoices] = None) -> Plan:
    version = program.version_at(at)
    tz = program.tz
    today = local_date(at, tz)
    member = state.registered and not cart.guest
    deadlines = check_deadlines(version, cart, today)
    if member and (state.deferred or deadlines):
        exchanges, redeem, defer = _requests(state, cart, deadlines)
    else:   # nothing deferred and no deadline: the cart's own requests, as they are
        exchanges = [(e.reward, e.qty) for e in cart.exchanges] if cart.exchanges else []
        redeem, defer = cart.redeem, None
    perks = [p for p in version.perks if member and p.on == "first_subscription_order"
             and cart.course == "subscription" and state.subscription_orders == 0] if version.perks else []
    if perks and any(p.free_shipping for p in perks) and cart.shipping:
        cart = msgspec.structs.replace(cart, shipping=0)   # RC-8: the first subscription order ships free
    priced = price_order(version, cart, member)
    # the items incl. tax (tax per rate, floored) only matter to fees and per-amount use limits
    needs_incl = bool(exchanges) or (version.redemption is not None and version.redemption.per_amount is not None)
    items_incl = priced.items_ex_tax + priced.items_tax_floored() if needs_incl else 0
    exchange = plan_exchange(version, cart, [_Ex(r, q) for r, q in exchanges], priced.items_ex_tax,
                             items_incl) if exchanges else ExchangePlan()
    errors = list(exchange.errors)
    if exchange.units and not member:
        errors.append(refusal("exchange.guest", "exchanges", exchange.rules[0]))
    if exchange.fees:
        priced = price_order(version, cart, member, exchange.fees)
    tier, _ = tier_at(version.tiers, state, at, tz) if member else (None, 0)
    balance = state.valid_units()
    if exchange.units > balance:
        errors.append(refusal("exchange.balance_short", "exchanges", exchange.rules[0] if exchange.rules else None,
                              units=exchange.units, balance=balance))
    brand = cart.payment.brand
    limit = redeem_limit(version, max(balance - exchange.units, 0), priced.grand_total, cart.payment.method,
                         brand, guest=not member, items_incl_tax=items_incl)
    applied = 0
    if redeem is not None:
        asked = redeem.points if redeem.points is not None else redeem.credits
        field_name = "redeem.points" if redeem.points is not None else "redeem.credits"
        if redeem.points is not None and redeem.credits is not None:
            errors.append(refusal("redeem.points_and_credits", "redeem"))
        elif asked == "max":
            applied = limit.max
        elif asked is not None:
            if asked > limit.max and program.clamp_requests:
                applied = limit.max     # a what-if: what the customer would have been allowed
            elif asked > limit.max:
                errors.append(refusal("redeem.over_limit", field_name, limit.rule, asked=asked, max=limit.max,
                                      why=limit.why))
            else:
                applied = asked
    value = version.redemption.unit_value_yen if version.redemption else 1
    lines = priced.lines
    if applied:
        for pl, share in zip(lines, spread(applied * value, [pl.net_ex for pl in lines])):
            pl.points_share = share
    earning = version.earning
    month = subscription_month(state, cart.course, at, tz) if member else 0
    if earning is not None and earning.kind == "threshold":
        amount = invoice_items(lines, (), earning.base == "items_incl_tax") if member else 0
        units, _ = threshold_grant(earning, state.carry, amount)
        earn = EarnResult(units, (earning.rule,), earning.rule)
    elif earning is not None and (member or earning.guests_earn):
        env = order_env(cart.course, tier, cart.payment.method, brand, cart.guest, at, tz, month)
        earn = compute_earn(earning, lines, env, today, choices=choices)
    else:
        earn = EarnResult(0, ())
    earn_state = "valid" if earning is not None and earning.pending_until == "placed" else "pending"
    return Plan(version, priced, tier, limit, applied, earn, earn_state, exchange, deadlines, defer,
                bool(state.deferred) and member, month, errors, perks)


class _Ex(NamedTuple):
    reward: str
    qty: int


def quote_answer(plan: Plan) -> Quote:
    """The quote of a planned cart: the one quote answer (engine/model/answers.py)."""
    p = plan.priced
    ex = plan.exchange
    # (lists built only when there is something in them: a checkout quotes most carts without)
    out = Quote(
        totals=Totals(items_ex_tax=p.items_ex_tax, fees_ex_tax=p.fees_ex_tax, shipping_ex_tax=p.shipping_ex_tax,
                      subtotal_ex_tax=p.items_ex_tax + p.fees_ex_tax, tax=p.tax, tax_total=p.tax_total,
                      grand_total=p.grand_total, to_pay=plan.to_pay, pv=p.pv_total()),
        redeem=Redemption(max=plan.limit.max, applied=plan.applied, why=plan.limit.why),
        exchange=ExchangeQuote(
            points=ex.units,
            rewards=[RewardLine(reward=r, qty=q, points=u) for r, q, u in ex.rewards] if ex.rewards else [],
            fees=[FeeView(kind=f.kind, ex_tax=f.ex_tax, tax_rate=f.tax_rate, rule=f.rule) for f in p.fees] if p.fees else []),
        earn=Earn(points=plan.earn.units, state=plan.earn_state, rules=list(plan.earn.rules)),
        tier=plan.tier,
        version=plan.version.number,
        perks=[PerkView(rule=p.rule, on=p.on, free_shipping=p.free_shipping, effect=p.effect)
               for p in plan.perks] if plan.perks else [],
        errors=list(plan.errors),
    )
    if plan.deadlines:
        # `deadline`: the one that decided (the first that was missed, else the first); `deadlines`: each
        missed = [d for d in plan.deadlines if d.late]
        first = (missed or list(plan.deadlines))[0]
        if plan.defer is None:
            out.deadline = first.view()
        else:
            out.deadline = first.view(
                deferred=DeferredView(exchanges=[DeferredRequest(reward=r, qty=q) for r, q in plan.defer.exchanges],
                                      redeem=plan.defer.redeem is not None),
                note=f"the request arrived after {first.last_day} ({first.rule}): it goes with the next delivery")
        out.deadlines = [d.view(covers=sorted(d.applies_to)) for d in plan.deadlines]
    return out


def place(change: Change, cart: OrderPlaced) -> None:
    state = change.state
    if cart.order in state.orders:
        raise rejected("order.placed_twice", "order", order=cart.order)
    plan = plan_order(change.program, state, cart, change.at, change.choices)
    if plan.errors:
        first = plan.errors[0]   # refused for what its quote lists first, by that error's code
        raise EventRejected(first.message, first.field, first.rule, code=first.code, args=first.args)
    red = plan.version.redemption
    spent = []
    if plan.exchange.units:
        spent += change.move(plan.exchange.units, "valid", "used", "exchange", plan.exchange.rules[0])
    if plan.applied:
        spent += change.move(plan.applied, "valid", "used", "spend", red.rule if red else "")
    if sum(l.amount for l in spent) != plan.applied + plan.exchange.units:  # the limits include the balance
        raise rejected("order.balance_changed", "redeem")
    if plan.earn.units > 0 and plan.version.earning is not None and plan.version.earning.kind == "rate":
        expires_on, rolling = (on_acquire(change) if plan.earn_state == "valid" else (None, False))
        change.add_lot(plan.earn.units, plan.earn_state, plan.earn.main_rule, "earn", order=cart.order,
                       expires_on=expires_on, rolling=rolling)
    if plan.used_deferred:
        state.deferred = []
    if plan.defer is not None:
        change.journal.append(state.deferred, plan.defer)
    for perk in plan.perks:
        if perk.effect:
            change.effects.append(Effect(type=perk.effect, member=state.member,
                                         at=local_date(change.at, change.program.tz).isoformat(),
                                         detail=dict(perk.detail, order=cart.order), rule=perk.rule))
    if cart.course == "subscription" and not cart.guest:
        state.sub_streak = plan.subscription_month
        state.sub_last_month = month_of(local_date(change.at, change.program.tz))
        state.subscription_orders += 1
    lines = tuple(OrderLine(sku=pl.sku, product=pl.product, qty=pl.qty, unit_price=pl.unit_price,
                            tax_rate=pl.tax_rate, tags=pl.tags, pv=pl.pv, net_ex=pl.net_ex, gross_ex=pl.gross_ex,
                            points_share=pl.points_share) for pl in plan.priced.lines)
    kept_ex, kept_incl = kept_amounts(lines, ())
    order = Order(
        id=cart.order, placed_at=change.at, event=change.source, course=cart.course, guest=cart.guest,
        payment_method=cart.payment.method, card_brand=cart.payment.brand, tier=plan.tier,
        version=plan.version.number, points_used=plan.applied, lines=lines, kept_ex=kept_ex, kept_incl=kept_incl,
        exchange_units=plan.exchange.units, rewards=tuple((r, q) for r, q, _ in plan.exchange.rewards),
        fees=tuple((f.kind, f.ex_tax, f.tax_rate) for f in plan.priced.fees),
        # threshold earning grants at placement only when it counts then (count_threshold below)
        used_lots=tuple(l.id for l in spent),
        earned=plan.earn.units if plan.version.earning and plan.version.earning.kind == "rate" else 0,
        earn_rules=plan.earn.rules,
        subscription_month=plan.subscription_month)
    if _counts_at(change) == "placed":    # RC-0: the credit comes at the purchase
        order = count_threshold(change, order)
    record_order(change.journal, state, None, order, change.program.tz)


def _counts_at(change: Change) -> Optional[str]:
    """When threshold earning counts an order's amount (None: no threshold earning)."""
    earning = change.version.earning
    return earning.counts_at if earning is not None and earning.kind == "threshold" else None


def find_order(change: Change, order_id: str) -> Order:
    order = change.state.orders.get(order_id)
    if order is None:
        raise rejected("order.unknown", "order", order=order_id, member=change.state.member)
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


def count_threshold(change: Change, order: Order) -> Order:
    """Threshold earning (RC-0, RC-2): a shipped order's amount joins the member's carry under the
    version in force at shipment; every full threshold becomes units, valid at once."""
    earning = change.version.earning
    if earning is None or earning.kind != "threshold" or order.guest:
        return order
    amount = invoice_items(order.lines, order.returned_by_line(), earning.base == "items_incl_tax")
    units, change.state.carry = threshold_grant(earning, change.state.carry, amount)
    if units:
        expires_on, rolling = on_acquire(change)
        change.add_lot(units, "valid", earning.rule, "earn", order=order.id, expires_on=expires_on, rolling=rolling)
    return msgspec.structs.replace(order, counted=amount, earned=order.earned + units, earn_rules=(earning.rule,))


def ship(change: Change, order_id: str) -> None:
    order = find_order(change, order_id)
    if order.status != "placed":
        raise rejected("order.cannot_ship", "order", order=order_id, status=order.status)
    old = order
    order = msgspec.structs.replace(order, status="shipped", shipped_at=change.at)
    if _counts_at(change) is not None and not order.counted:
        # counted at shipment; also an order placed under a version that counted at shipment and
        # shipped under one that counts at placement (nothing is counted twice: `counted` says so)
        order = count_threshold(change, order)
    record_order(change.journal, change.state, old, order, change.program.tz)
    if getattr(_earning_of(change, order), "pending_until", None) == "shipped":   # no earning: nothing pending
        validate_earn(change, order)


def deliver(change: Change, order_id: str) -> None:
    order = find_order(change, order_id)
    if order.status not in ("placed", "shipped"):
        raise rejected("order.cannot_deliver", "order", order=order_id, status=order.status)
    # A delivery without a shipment event implies the shipment.
    shipped_now = order.shipped_at is None
    old = order
    order = msgspec.structs.replace(order, status="delivered", delivered_at=change.at,
                                    shipped_at=order.shipped_at or change.at)
    if shipped_now and _counts_at(change) is not None and not order.counted:
        order = count_threshold(change, order)
    record_order(change.journal, change.state, old, order, change.program.tz)
    if getattr(_earning_of(change, order), "pending_until", None) in ("shipped", "delivered"):
        validate_earn(change, order)


def _earning_of(change: Change, order: Order) -> Optional[Earning]:
    version = next(v for v in change.program.versions if v.number == order.version)
    return version.earning or change.version.earning
