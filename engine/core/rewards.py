"""Reward exchanges: catalog items for units, the fees they carry, who may not exchange, and the
deadline before a scheduled delivery."""
from __future__ import annotations

from datetime import date
from typing import Any, Protocol, Sequence

import msgspec

from engine.core.business_days import business_days_before
from engine.format.messages import refusal, rejected
from engine.model.timeutil import parse_day
from engine.model.answers import Deadline
from engine.model.errors import Refusal
from engine.model.events import OrderPlaced
from engine.core.pricing import Fee
from engine.format.program import Version


class ExchangePlan(msgspec.Struct, gc=False):
    units: int = 0
    rewards: list[tuple[str, int, int]] = []     # (reward id, qty, units)
    fees: list[Fee] = []
    errors: list[Refusal] = []      # what the cart cannot have
    rules: list[str] = []


class Requested(Protocol):
    """A reward asked for: a cart's exchange, or one deferred from an earlier delivery."""
    @property
    def reward(self) -> str: ...
    @property
    def qty(self) -> int: ...


class DeadlineCheck(msgspec.Struct, frozen=True, gc=False):
    last_day: date
    late: bool
    rule: str
    applies_to: frozenset[str]

    def view(self, **more: Any) -> Deadline:
        """The deadline as a quote answers it (``more``: ``covers``, ``deferred``, ``note``)."""
        return Deadline(last_day=self.last_day.isoformat(), late=self.late, rule=self.rule,
                        applies_to="next_delivery" if self.late else "this_delivery", **more)


def check_deadlines(version: Version, cart: OrderPlaced, today: date) -> tuple[DeadlineCheck, ...]:
    """ANS-15: a request must arrive N business days before a scheduled date of the order (its
    shipping or its delivery, each deadline its own); later, it goes with the next delivery. A
    deadline whose date the cart does not give does not apply."""
    rules = version.exchange
    if rules is None or not rules.deadlines:
        return ()
    checks = []
    for dl in rules.deadlines:
        text = getattr(cart, dl.counts_from)
        if not text:
            continue
        try:
            day = parse_day(text)
        except ValueError as exc:
            raise rejected("event.unusable_date", dl.counts_from, value=repr(text), detail=str(exc)) from None
        last = business_days_before(day, dl.business_days, dl.calendar)
        checks.append(DeadlineCheck(last, today > last, dl.rule, dl.applies_to))
    return tuple(checks)


def plan_exchange(version: Version, cart: OrderPlaced, exchanges: Sequence[Requested], items_ex_tax: int, items_incl_tax: int) -> ExchangePlan:
    plan = ExchangePlan()
    if not exchanges:
        return plan
    catalog, rules = version.catalog, version.exchange
    if catalog is None or rules is None:
        plan.errors.append(refusal("exchange.no_catalog", "exchanges"))
        return plan
    if rules.refuse is not None and cart.payment.method in rules.refuse.methods:
        plan.errors.append(refusal("exchange.payment_refused", "payment.method", rules.refuse.rule,
                                   reason=rules.refuse.reason))
        return plan
    if rules.requires_product_order and not cart.lines:
        plan.errors.append(refusal("exchange.needs_product_order", "exchanges", catalog.rule))
    for i, ex in enumerate(exchanges):
        reward = catalog.rewards.get(ex.reward)
        if reward is None:
            plan.errors.append(refusal("exchange.unknown_reward", f"exchanges[{i}].reward", catalog.rule,
                                       reward=repr(ex.reward), rewards=", ".join(sorted(catalog.rewards))))
            continue
        plan.rewards.append((reward.id, ex.qty, reward.units * ex.qty))
        plan.units += reward.units * ex.qty
    plan.rules.append(catalog.rule)
    env = {"fulfilment": cart.fulfilment, "course": cart.course, "items_incl_tax": items_incl_tax,
           "items_ex_tax": items_ex_tax, "payment_method": cart.payment.method, "units": plan.units}
    for fee in rules.fees:
        if fee.waived_when is not None and fee.waived_when(env):
            continue
        blocks = -(-plan.units // fee.per_units) if fee.per_units else 1   # every started block
        plan.fees.append(Fee(fee.kind, fee.ex_tax * blocks, fee.tax_rate, fee.rule))
        plan.rules.append(fee.rule)
    return plan
