"""Earning: which rate each line gets, on which base, floored once per order (X-5)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Optional, Sequence

from .pricing import frac
from .program import Earning, RateRow


@dataclass(frozen=True, slots=True)
class EarnLine:
    """A line as the earn rules see it; ``kept`` is its quantity after returns."""

    sku: str
    product: str
    qty: int
    kept: int
    unit_price: int
    tax_rate: float
    tags: tuple
    pv: Optional[float]
    net_ex: int
    points_share: int


@dataclass(frozen=True, slots=True)
class EarnResult:
    units: int
    rules: tuple[str, ...]
    base: Fraction
    main_rule: str = ""     # the rate row that produced the most (the rule a lot records, X-3)


def _row_for(rows: Sequence[RateRow], env: dict, on: date) -> tuple[Optional[RateRow], Optional[Fraction]]:
    for row in rows:
        if row.valid_from and on < row.valid_from:
            continue
        if row.valid_until and on > row.valid_until:
            continue
        if row.when is not None and not row.when(env):
            continue
        rate = row.rate_for(env)
        if rate is None:
            continue
        return row, rate
    return None, None


def line_base(earning: Earning, line: EarnLine, unit_value_yen: int) -> Fraction:
    if line.kept <= 0:
        return Fraction(0)
    share = Fraction(line.kept, line.qty)
    if earning.base == "pv":
        return frac(line.pv or 0) * line.kept
    base = line.net_ex * share
    if earning.base == "items_incl_tax":
        base *= 1 + frac(line.tax_rate)
    if earning.after_points:
        base -= line.points_share * unit_value_yen * share
    return max(base, Fraction(0))


def compute_earn(earning: Optional[Earning], lines: Sequence[EarnLine], order_env: dict, on: date,
                 unit_value_yen: int = 1) -> EarnResult:
    """Units an order earns: floor(Σ line base × line rate). ``order_env`` carries course, tier, payment..."""
    if earning is None:
        return EarnResult(0, (), Fraction(0))
    total = Fraction(0)
    base_total = Fraction(0)
    rules = [earning.rule]
    by_rule: dict[str, Fraction] = {}
    for line in lines:
        env = dict(order_env, sku=line.sku, product=line.product, qty=line.qty, unit_price=line.unit_price,
                   tax_rate=line.tax_rate, tags=line.tags)
        row, rate = _row_for(earning.rates, env, on)
        if row is None:
            continue
        base = line_base(earning, line, unit_value_yen)
        base_total += base
        total += base * rate
        by_rule[row.rule] = by_rule.get(row.rule, Fraction(0)) + base * rate
        if row.rule not in rules:
            rules.append(row.rule)
    main = max(by_rule, key=lambda r: by_rule[r]) if by_rule else earning.rule
    return EarnResult(int(total), tuple(rules), base_total, main)


def threshold_grant(earning: Earning, carry: int, amount: int) -> tuple[int, int]:
    """Threshold earning (RC-2): units for every full ``per_yen`` of carry + amount; the rest carries."""
    total = carry + amount
    return total // earning.per_yen * earning.units, total % earning.per_yen
