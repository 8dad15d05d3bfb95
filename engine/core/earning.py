"""Earning: which rate each line gets, on which base, floored once per order (X-5)."""
from __future__ import annotations

import math
from datetime import date
from fractions import Fraction
from typing import Any, Optional, Sequence

import msgspec

from engine.core.pricing import Line, exact_nets, frac, tax_parts
from engine.format.program import Earning, RateRow



class RowChoices:
    """Rate-row choices remembered between orders by whoever keeps a program loaded (the runner,
    the Engine's quotes): a choice depends only on the values the rows read (Earning.order_names,
    Earning.line_key), so it is looked up rather than made again, with the same answer. The
    caller passes it (``compute_earn``, ``orders.plan_order``; for the events it applies,
    ``apply.apply``, which hands it on through each ``Change``)."""

    # choices kept per earning before starting afresh: a bound on memory when rows read per-line
    # values such as unit_price; not a program number
    LIMIT = 4096

    __slots__ = ("_by_earning",)

    def __init__(self) -> None:
        # id(earning) -> (the earning, kept alive so its id stays its own; key -> choice)
        self._by_earning: dict[int, tuple[Earning, dict[Any, Any]]] = {}

    def of(self, earning: Earning) -> dict[Any, Any]:
        hit = self._by_earning.get(id(earning))
        if hit is None:
            hit = self._by_earning[id(earning)] = (earning, {})
        elif len(hit[1]) >= self.LIMIT:
            hit[1].clear()
        return hit[1]


class EarnResult(msgspec.Struct, frozen=True, gc=False):
    """Units an order earns and the rules that gave them (a Struct: built once per quote)."""

    units: int
    rules: tuple[str, ...]
    main_rule: str = ""     # the rate row that produced the most (the rule a lot records, X-3)


def _row_for(rows: Sequence[RateRow], env: dict[str, Any], on: date) -> tuple[Optional[RateRow], Optional[Fraction]]:
    for i, row in enumerate(rows):
        if row.valid_from and on < row.valid_from:
            continue
        if row.valid_until and on > row.valid_until:
            continue
        if row.exclude_tags and not row.exclude_tags.isdisjoint(env.get("tags") or ()):
            continue
        if row.when is not None and not row.when(env):
            continue
        if row.campaign:
            # a campaign row: the rate the rows below give the line, multiplied, plus the addition;
            # a line no row below takes earns nothing under the campaign either
            below, under = _row_for(rows[i + 1:], env, on)
            if below is None or under is None:
                return None, None
            return row, under * (row.multiply if row.multiply is not None else 1) + (row.add or 0)
        rate = row.rate_for(env)
        if rate is None:
            continue
        return row, rate
    return None, None


def _choose(earning: Earning, order_env: dict[str, Any], line: Line, on: date) -> tuple[Optional[RateRow], Optional[Fraction]]:
    """The first row that matches ``line`` in this order (rows may read the order's names and the line's)."""
    env = dict(order_env)
    env["sku"], env["product"], env["qty"] = line.sku, line.product, line.qty
    env["unit_price"], env["tax_rate"], env["tags"] = line.unit_price, line.tax_rate, line.tags
    return _row_for(earning.rates, env, on)


def invoice_factors(lines: Sequence[Line], nets: Sequence[int | Fraction], returned: Optional[Sequence[int]]
                    ) -> dict[float, Fraction]:
    """Per tax rate, the kept items' amount incl. tax as the invoice states it (ANS-13: the rate's
    kept amount floored, its tax once and floored) over their exact amount ex. tax: a line's share
    of the invoice is its exact amount times its rate's factor, so the shares add up to the
    invoice and a base of 2,099.9 yen is 2,099."""
    kept_nets: dict[float, Fraction] = {}
    for i, line in enumerate(lines):
        kept = line.qty - returned[i] if returned else line.qty
        if kept > 0:
            kept_nets[line.tax_rate] = kept_nets.get(line.tax_rate, Fraction(0)) + Fraction(nets[i]) * kept / line.qty
    factors = {}
    for rate, exact in kept_nets.items():
        if exact > 0:
            base = math.floor(exact)
            _, num, den = tax_parts(rate)
            factors[rate] = Fraction(base + base * num // den) / exact
    return factors


def line_base(earning: Earning, line: Line, kept: int, points: tuple[int, int] = (0, 1),
              net: int | Fraction | None = None, incl_factor: Optional[Fraction] = None) -> tuple[int, int]:
    """A line's earn base as an exact fraction (numerator, denominator) of yen (or PV); ``kept``
    is its quantity after returns. ``points`` is (yen of points used, the order's net amount):
    after points (ANS-7), a line gives up the points in proportion to its net amount, exactly
    rather than its rounded ``points_share``, so one line of n units and n lines of one unit
    keep the same base whichever units come back."""
    if kept <= 0:
        return 0, 1
    if earning.base == "pv":
        pv = frac(line.pv or 0)
        return pv.numerator * kept, pv.denominator
    used, total = points if earning.after_points and points[1] > 0 else (0, 1)
    # the line's exact amount after the coupon (pricing.exact_nets), as numerator / denominator
    n, d = _ratio(line.net_ex if net is None else net)
    if earning.base == "items_incl_tax":
        # net × kept/qty × (the rate's invoice factor, else 1 + tax) − used × net/total × kept/qty
        if incl_factor is not None:
            f_num, f_den = incl_factor.numerator, incl_factor.denominator
        else:
            _, tax_num, tax_den = tax_parts(line.tax_rate)
            f_num, f_den = tax_den + tax_num, tax_den
        num = n * kept * (total * f_num - used * f_den)
        den = line.qty * total * f_den * d
    else:
        num, den = n * kept * (total - used), line.qty * total * d
    return max(num, 0), den


def _ratio(amount: int | Fraction) -> tuple[int, int]:
    # (an int is asked first: Fraction is an abstract number, whose isinstance goes through the ABC)
    return (amount, 1) if type(amount) is int else (amount.numerator, amount.denominator)


def compute_earn(earning: Optional[Earning], lines: Sequence[Line], order_env: dict[str, Any], on: date,
                 returned: Optional[Sequence[int]] = None, choices: Optional[RowChoices] = None) -> EarnResult:
    """Units an order earns: floor(Σ line base × line rate), exact in integers (X-5: floored once
    per order, so two lines of 4,750 at 1% earn 95, not 47 + 47). ``order_env`` carries course,
    tier, payment method... for the rows' conditions. ``lines`` are an order's lines
    (state.OrderLine, pricing.PricedLine: their points_share add up to the yen of points used);
    ``returned`` (units by line position) leaves their kept quantities; ``choices``: rate-row
    choices remembered from earlier orders (None: every line's row is chosen afresh)."""
    if earning is None:
        return EarnResult(0, ())
    parts = []
    rules = [earning.rule]
    chosen = choices.of(earning) if choices is not None else None
    plain = earning.base == "items_ex_tax" and not earning.after_points   # the base is the line's net amount
    order_key = (on if earning.dated else None, *[order_env.get(n) for n in earning.order_names])
    line_key = earning.line_key
    points = ((sum(line.points_share for line in lines), sum(line.net_ex for line in lines))
              if earning.after_points else (0, 1))
    nets = exact_nets(lines) if earning.base != "pv" else None
    factors = invoice_factors(lines, nets, returned) if nets is not None and earning.base == "items_incl_tax" else {}
    for i, line in enumerate(lines):
        key: Any = (order_key, line_key(line)) if line_key is not None else order_key
        hit: Optional[tuple[Optional[RateRow], int, int]] = None
        if chosen is not None:
            try:
                hit = chosen.get(key)
            except TypeError:   # a value that cannot be a key (never from decoded events): choose afresh
                key = None
        if hit is None:
            row, rate = _choose(earning, order_env, line, on)
            # the rate as integers: Fraction's numerator and denominator are Python properties
            hit = (row, rate.numerator, rate.denominator) if row is not None and rate is not None else (None, 0, 1)
            if chosen is not None and key is not None:
                chosen[key] = hit
        row, rate_num, rate_den = hit
        if row is None:
            continue
        kept = line.qty - returned[i] if returned else line.qty
        if plain and kept > 0 and nets is not None:
            n, d = _ratio(nets[i])
            num, den = n * kept, line.qty * d
        else:
            num, den = line_base(earning, line, kept, points, nets[i] if nets is not None else None,
                                 factors.get(line.tax_rate))
        parts.append((num, den, rate_num, rate_den, row.rule))
        if row.rule not in rules:
            rules.append(row.rule)
    if not parts:
        return EarnResult(0, tuple(rules), earning.rule)
    # one common denominator for bases and one for rates: integer arithmetic, no rounding until the end
    base_lcm = rate_lcm = 1
    for _, den, _, rate_den, _ in parts:
        if base_lcm % den:
            base_lcm = math.lcm(base_lcm, den)
        if rate_lcm % rate_den:
            rate_lcm = math.lcm(rate_lcm, rate_den)
    total = 0
    by_rule: dict[str, int] = {}
    for num, den, rate_num, rate_den, rule in parts:
        contribution = num * (base_lcm // den) * rate_num * (rate_lcm // rate_den)
        total += contribution
        by_rule[rule] = by_rule.get(rule, 0) + contribution
    if len(by_rule) == 1:
        main = parts[0][4]
    else:
        main = max(by_rule, key=by_rule.__getitem__) if any(by_rule.values()) else parts[0][4]
    return EarnResult(total // (base_lcm * rate_lcm), tuple(rules), main)


def threshold_grant(earning: Earning, carry: int, amount: int) -> tuple[int, int]:
    """Threshold earning (RC-2): units for every full ``per_yen`` of carry + amount; the rest carries."""
    total = carry + amount
    return total // earning.per_yen * earning.units, total % earning.per_yen


def chosen_rows(earning: Optional[Earning], lines: Sequence[Line], order_env: dict[str, Any], on: date) -> list[RateRow]:
    """The rate rows that chose the rate of an order's lines (each once, in row order): what an
    explanation cites, by the same choice the earn itself makes."""
    if earning is None or earning.kind != "rate":
        return []
    rows = {id(row): row for row in (_choose(earning, order_env, line, on)[0] for line in lines) if row is not None}
    return [row for row in earning.rates if id(row) in rows]
