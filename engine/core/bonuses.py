"""Bonuses: units granted on registration, in the birth month, for a review (once per product)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Optional

from engine.core.expiry import on_acquire
from engine.format.expr import Attributes
from engine.core.lots import Change
from engine.core.tiers import tier_at
from engine.format.program import Bonus, Program
from engine.model.state import MemberState
from engine.model.timeutil import local_date, start_of


def _grant(change: Change, bonus: Bonus) -> None:
    expires_on, rolling = on_acquire(change)
    change.add_lot(bonus.units, "valid", bonus.rule, "bonus", expires_on=expires_on, rolling=rolling, action="grant")


def bought(state: MemberState, product: Optional[str]) -> bool:
    """Whether the member has received ``product`` and kept it: a line of it on an order that
    shipped (or was delivered), not every unit of it returned (AND-8 「ご購入された商品」)."""
    if product is None:
        return False
    for order in state.orders.values():
        if order.status not in ("shipped", "delivered"):
            continue
        returned = order.returned_by_line()
        for i, line in enumerate(order.lines):
            if line.product == product and line.qty - (returned[i] if returned else 0) > 0:
                return True
    return False


def _applies(bonus: Bonus, change: Change, happening: bool = False, **env: Any) -> bool:
    if bonus.when is None:
        return True
    # the member's tier at this instant, as an order would see it (the format lets a bonus read
    # it); worked out only for a condition that reads it (Expr.names: the names it uses)
    tier = (tier_at(change.version.tiers, change.state, change.at, change.program.tz)[0]
            if "tier" in bonus.when.names else None)
    env = {"attributes": Attributes(change.state.attributes), "tier": tier, "product": None, "bought": False, **env}
    # an event whose condition fails is refused (naming the rule); a happening has no event to refuse
    return bonus.when.holds_in_happening(env) if happening else bool(bonus.when(env))


def on_event(change: Change, trigger: str, product: Optional[str] = None) -> None:
    for bonus in change.version.bonuses_on(trigger):
        if bonus.once_per == "product":
            if product in change.state.reviewed:
                continue  # AND-9: a second review of the product overwrites the first, earns nothing
        # a registration is never refused for a bonus's condition: refused, it would shut the member
        # out of every later event; a condition it cannot evaluate counts as not met, as in a happening
        # (whether the product was bought is looked for only by a condition that reads it)
        reads_bought = bonus.when is not None and "bought" in bonus.when.names
        if not _applies(bonus, change, happening=trigger == "member.registered", product=product,
                        bought=bought(change.state, product) if reads_bought else False):
            continue
        _grant(change, bonus)
    if trigger == "review.posted" and product is not None and product not in change.state.reviewed:
        change.journal.append(change.state.reviewed, product)


def next_birthday(state: MemberState, program: Program) -> Optional[datetime]:
    """00:00 on the 1st of the member's next birth month after its clock (and registration).

    A birth month comes once a calendar year (in the program's time zone), and so does its bonus:
    a member whose birthday changes after this year's was handled (``birthday_paid_on``) waits
    for next year's, whichever month the new birthday falls in (AND-8 pays once a year, not
    once for every month a member.updated names)."""
    if state.birthday is None or not state.registered or state.clock is None or not program.has_birthday_bonus:
        return None
    # 00:00 of a day is after the clock exactly when the day is after the clock's local date
    local = local_date(state.clock, program.tz)
    paid = state.birthday_paid_on
    for y in (local.year, local.year + 1):
        candidate = date(y, state.birthday.month, 1)
        if candidate > local and (paid is None or y > paid.year):
            return start_of(candidate, program.tz)
    return None


def birthday(change: Change) -> None:
    change.state.birthday_paid_on = change.at.astimezone(change.program.tz).date()
    for bonus in change.version.bonuses_on("birthday_month"):
        if _applies(bonus, change, happening=True):
            _grant(change, bonus)


def settle_debt(change: Change) -> None:
    """Units owed from an earlier clawback are taken from the balance as soon as there is one."""
    state = change.state
    if state.debt <= 0:
        return
    # The debt comes from reversing an order's earn (returns, X-5), so the returns rule books it.
    rule = change.version.returns.rule if change.version.returns else change.version.expiry.rule
    moved = change.move(state.debt, "valid", "void", "clawback", rule)
    state.debt -= sum(lot.amount for lot in moved)
