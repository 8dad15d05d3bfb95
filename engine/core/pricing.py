"""Pricing an order as a Japanese qualified invoice: member price, coupon spread over the lines,
shipping and fees, tax once per rate per invoice (floored)."""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Sequence, Union

import msgspec

from engine.model.events import OrderPlaced
from engine.model.state import Order, OrderLine
from engine.format.program import Version


@lru_cache(maxsize=256)
def frac(rate: float) -> Fraction:
    """A decimal as written (0.1 is 1/10, not the binary float): exact money arithmetic."""
    return Fraction(repr(rate)) if isinstance(rate, float) else Fraction(rate)


@lru_cache(maxsize=256)
def rate_key(rate: float | Fraction) -> str:
    """'0.08', '0.10': the tax keys of the quote output."""
    return f"{float(rate):.2f}"


@lru_cache(maxsize=256)
def tax_parts(rate: float | Fraction) -> tuple[str, int, int]:
    """(output key, numerator, denominator) of a tax rate, worked out once per rate."""
    exact = frac(rate)
    return rate_key(rate), exact.numerator, exact.denominator


def spread(amount: int, weights: list[int]) -> list[int]:
    """Split ``amount`` over ``weights`` in proportion, floored, the remainder to the largest
    fractional parts (ties: the earlier line), so the shares add up to ``amount`` exactly."""
    if len(weights) == 1:
        return [amount] if amount > 0 and weights[0] > 0 else [0]
    total = sum(weights)
    if amount <= 0 or total <= 0:
        return [0] * len(weights)
    shares = [amount * w // total for w in weights]
    rest = amount - sum(shares)
    if not rest:
        return shares
    parts = [amount * w % total for w in weights]
    if rest == 1:   # the commonest case: one unit to the largest part (max keeps the first of equals)
        shares[parts.index(max(parts))] += 1
        return shares
    order = sorted(range(len(weights)), key=lambda i: (-parts[i], i))
    for i in order[:rest]:
        shares[i] += 1
    return shares


class PricedLine(msgspec.Struct, gc=False):
    """A cart line as priced (a Struct: several are built per quote, and Structs build fastest)."""

    sku: str
    product: str
    qty: int
    unit_price: int
    tax_rate: float
    tags: tuple[str, ...]
    pv: float | None
    member_unit_price: int
    gross_ex: int        # qty x member unit price
    coupon_share: int
    net_ex: int          # gross_ex - coupon_share
    points_share: int = 0   # yen of points spread onto this line (orders.plan_order)


class Fee(msgspec.Struct, gc=False):
    kind: str
    ex_tax: int
    tax_rate: float
    rule: str


class Priced(msgspec.Struct, gc=False):
    lines: list[PricedLine]
    items_ex_tax: int
    shipping_ex_tax: int
    fees: list[Fee] = []
    tax: dict[str, int] = {}       # rate key -> yen
    tax_total: int = 0
    grand_total: int = 0
    rules: list[str] = []

    @property
    def fees_ex_tax(self) -> int:
        return sum(f.ex_tax for f in self.fees) if self.fees else 0

    def items_tax_floored(self) -> int:
        """The items' tax as the invoice computes it: per rate, floored (shipping and fees apart)."""
        ex, incl = kept_amounts(self.lines, ())
        return incl - ex

    def pv_total(self) -> float:
        total = 0.0
        for line in self.lines:
            if line.pv:
                total += line.pv * line.qty
        return total


def price_order(version: Version, cart: OrderPlaced, member: bool, fees: list[Fee] | None = None) -> Priced:
    pricing = version.pricing
    discount = pricing.member_discount if member else None
    per_unit = discount is not None and discount.per == "unit"
    per_line = discount is not None and discount.per == "line"
    if discount is not None:
        keep, den = discount.keep, discount.den
    lines = []
    items = 0
    for line in cart.lines:
        unit = line.unit_price * keep // den if per_unit else line.unit_price
        gross = unit * line.qty
        if per_line:
            gross = gross * keep // den
        items += gross
        lines.append(PricedLine(line.sku, line.product_id, line.qty, line.unit_price, line.tax_rate,
                                line.tags, line.pv, unit, gross, 0, gross))
    rules = [discount.rule] if discount else []
    if cart.coupon_discount:
        # a coupon larger than the items takes them to zero, never below
        coupon = min(cart.coupon_discount, items)
        # over the tax rates first, then over each rate's lines: what a rate's lines keep together
        # is the same however the cart was split into lines (exact_nets)
        rates = list(dict.fromkeys(pl.tax_rate for pl in lines))
        by_rate = dict(zip(rates, spread(coupon, [sum(pl.gross_ex for pl in lines if pl.tax_rate == r) for r in rates])))
        for rate in rates:
            mine = [pl for pl in lines if pl.tax_rate == rate]
            for pl, share in zip(mine, spread(by_rate[rate], [pl.gross_ex for pl in mine])):
                pl.coupon_share = share
                pl.net_ex = pl.gross_ex - share
        items -= coupon
        if pricing.coupon_rule:
            rules.append(pricing.coupon_rule)
    priced = Priced(lines, items, cart.shipping, list(fees) if fees else [], rules=rules)
    # Tax once per rate per invoice, floored (qualified invoice rule).
    bases: dict[str, list[int]] = {}    # key -> [numerator, denominator, base]
    for pl in lines:
        key, num, den = tax_parts(pl.tax_rate)
        entry = bases.get(key)
        if entry is None:
            bases[key] = [num, den, pl.net_ex]
        else:
            entry[2] += pl.net_ex
    extras: list[tuple[float | Fraction, int]] = [(pricing.shipping_tax_rate, cart.shipping)] if cart.shipping else []
    if priced.fees:
        extras += [(fee.tax_rate, fee.ex_tax) for fee in priced.fees]
    for extra_rate, amount in extras:
        key, num, den = tax_parts(extra_rate)
        bases.setdefault(key, [num, den, 0])[2] += amount
    tax = {key: base * num // den
           for key, (num, den, base) in (sorted(bases.items()) if len(bases) > 1 else bases.items())}
    priced.tax = tax
    priced.tax_total = sum(tax.values())
    priced.grand_total = items + cart.shipping + priced.fees_ex_tax + priced.tax_total
    return priced


# A line as priced for a cart, or as kept on an order of the member's state
Line = Union[PricedLine, OrderLine]


def exact_nets(lines: Sequence[Line]) -> list[int | Fraction]:
    """Each line's amount after the coupon, exactly: the coupon of its tax rate spread in
    proportion to the lines' amounts before it. The integer ``net_ex`` of a line depends on how
    the rate's lines round (one line of n units or n lines of one unit round differently); these
    do not, so a return, an earn or a refund worked from them is the same however the cart was
    split into lines. A line stored without ``gross_ex`` (before it was kept) counts its net."""
    for line in lines:
        gross = getattr(line, "gross_ex", 0)
        if gross and gross != line.net_ex:
            break
    else:   # no coupon on any line: each line's own amount is exact
        return [line.net_ex for line in lines]
    totals: dict[float, list[int]] = {}       # tax rate -> [net, gross]
    for line in lines:
        gross = getattr(line, "gross_ex", 0) or line.net_ex
        entry = totals.setdefault(line.tax_rate, [0, 0])
        entry[0] += line.net_ex
        entry[1] += gross
    nets: list[int | Fraction] = []
    for line in lines:
        net, gross = totals[line.tax_rate]
        if net == gross:        # no coupon on this rate: the line's own amount is exact
            nets.append(line.net_ex)
            continue
        mine = getattr(line, "gross_ex", 0) or line.net_ex
        nets.append(Fraction(mine * net, gross) if gross else Fraction(0))
    return nets


def kept_amounts(lines: Sequence[Line], returned: Sequence[int]) -> tuple[int, int]:
    """The kept items' amount as an invoice states it, (ex. tax, incl. tax): per rate, the kept
    share of the rate's amount (floored once), then its tax (floored). ``returned``: units back by
    line position (empty: none)."""
    bases: dict[float, int | Fraction] = {}
    nets = exact_nets(lines) if returned else None
    for i, line in enumerate(lines):
        kept = line.qty - returned[i] if returned else line.qty
        if kept <= 0:
            continue
        amount = line.net_ex if nets is None else Fraction(nets[i] * kept, line.qty)
        bases[line.tax_rate] = bases.get(line.tax_rate, 0) + amount
    ex = incl = 0
    for rate, exact in bases.items():
        base = math.floor(exact)
        _, num, den = tax_parts(rate)
        ex += base
        incl += base + base * num // den
    return ex, incl


def invoice_items(lines: Sequence[Line], returned: Sequence[int] = (), incl_tax: bool = True) -> int:
    """The kept items' amount ex. or incl. tax (kept_amounts)."""
    ex, incl = kept_amounts(lines, returned or ())
    return incl if incl_tax else ex


def kept_amount(order: Order, incl_tax: bool) -> int:
    """An order's kept lines as the invoice states them, ex. or incl. tax (state.Order.kept_ex)."""
    return order.kept_incl if incl_tax else order.kept_ex


def with_kept_amounts(order: Order) -> Order:
    """The order with its kept amounts computed from its lines and returns."""
    kept_ex, kept_incl = kept_amounts(order.lines, order.returned_by_line())   # one pass over the lines for both
    return msgspec.structs.replace(order, kept_ex=kept_ex, kept_incl=kept_incl)
