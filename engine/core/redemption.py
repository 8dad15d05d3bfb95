"""Redemption limits: how many units an order may use, and which rule sets that number."""
from __future__ import annotations

from typing import Callable, Optional

import msgspec

from engine.format.program import Version


class Limit(msgspec.Struct, frozen=True, gc=False):
    """The most units an order may use, why, and the rule that binds (a Struct: built per quote,
    and a Struct builds in a fifth of a NamedTuple's time)."""

    max: int
    why: str
    rule: Optional[str]


def redeem_limit(version: Version, balance: int, grand_total: int, method: str, brand: Optional[str],
                 guest: bool, items_incl_tax: int = 0) -> Limit:
    """The most units this order may use. Each bound is a candidate; the smallest one binds."""
    red = version.redemption
    if red is None:
        return Limit(0, "this program has no redemption", None)
    if guest:
        return Limit(0, "a guest order cannot use points (no member balance)", red.rule)
    value = red.unit_value_yen
    # Each bound is (units, why, rule); ``why`` is a function, formatted only for the bound that binds.
    best: tuple[int, Callable[[], str], Optional[str]] = (balance, lambda: f"the member's valid balance is {balance}", red.rule)
    cap = red.cap
    if cap is not None and cap.units < best[0]:
        best = (cap.units, lambda: f"at most {cap.units} a order", cap.rule)
    min_pay = red.min_to_pay.for_payment(method, brand) if red.min_to_pay else 0
    payable = max(grand_total - min_pay, 0) // value
    if payable < best[0]:
        if red.min_to_pay is not None and min_pay > 0:
            who = f"{brand} card" if brand and brand in red.min_to_pay.by_card_brand else method
            best = (payable, lambda: f"{who} must leave at least ¥{min_pay} to pay of ¥{grand_total}",
                    red.min_to_pay.rule)
        else:
            best = (payable, lambda: f"points cannot exceed the order total of ¥{grand_total}", red.rule)
    if red.per_amount is not None:
        per = red.per_amount
        units = items_incl_tax // per.yen * per.units
        if units < best[0]:
            best = (units, lambda: f"{per.units} for every ¥{per.yen:,} of the order (¥{items_incl_tax:,})", per.rule)
    units, why_of, rule = best
    why = why_of()
    return Limit(max(units, 0), f"{why} ({rule})" if rule else why, rule)
