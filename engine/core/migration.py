"""Program revisions: the steps a new version declares, run for each member when that member's
clock passes the version's effective date (X-2). Built from general operations:

- convert_units: every unit held is re-expressed at the new unit value. Each old unit becomes
  floor(old / new) new units that keep its expiry (``per: lot``: each lot, a credit of the
  member's, becomes floor(amount x old / new) units that keep its expiry, so a dearer new unit
  still keeps each credit's own date); what each leaves over is pooled, the pool makes
  floor(pool / new) more (keeping the earliest, or latest, expiry of the lots that fed it), and a
  final part above zero makes one more unit: value is rounded up, never down (RC-6).
- earn_from_carry: the carried purchase amount is measured against the new threshold (RC-3).
- grant: units to every member a condition selects, with a fixed expiry (RC-4).
"""
from __future__ import annotations

from datetime import date
from typing import Any, Optional

from engine.core.earning import threshold_grant
from engine.core.expiry import on_acquire
from engine.format.expr import Attributes
from engine.core.lots import Change
from engine.format.program import MigrationStep, Version
from engine.model.state import CONVERTED, Lot
from engine.core.tiers import tier_at
from engine.model.timeutil import local_date


def run(change: Change, version: Version) -> None:
    for step in version.migration:
        if step.op == "convert_units":
            convert_units(change, step, version)
        elif step.op == "earn_from_carry":
            earn_from_carry(change, step, version)
        elif step.op == "grant":
            grant(change, step)


def convert_units(change: Change, step: MigrationStep, version: Version) -> None:
    state = change.state
    if version.redemption is None:
        raise ValueError(f"version {version.number}: convert_units needs the version's redemption (its unit value)")
    new_value = version.redemption.unit_value_yen
    old_value = step.from_unit_value
    per_unit, left = divmod(old_value, new_value)
    pool = 0
    pool_expiry: Optional[date] = None

    def old(lot: Lot) -> bool:
        return lot.state in ("valid", "held") and lot.version < version.number

    def ended(lot: Lot) -> dict[str, Any]:
        # the date it had: a rolling lot's is the member's rolling date now
        return {"expires_on": state.lot_expires_on(lot), "ended_at": change.at, "ended_by": change.source}

    def convert(lot: Lot) -> None:
        """The units the old lot becomes, keeping its date; its remainder joins the pool."""
        nonlocal pool, pool_expiry
        expires_on = state.lot_expires_on(lot)
        if step.per == "lot":   # the lot's whole value at once: only its own remainder is pooled
            made, rest = divmod(lot.amount * old_value, new_value)
        else:                   # each unit on its own
            made, rest = lot.amount * per_unit, lot.amount * left
        change.add_lot(made, lot.state, step.rule, "conversion", expires_on=expires_on, rolling=False, action="convert")
        pool += rest
        if expires_on is not None:
            if pool_expiry is None or (expires_on < pool_expiry if step.pool_expiry == "earliest" else expires_on > pool_expiry):
                pool_expiry = expires_on

    change.end_each(old, CONVERTED, "convert", lambda lot: step.rule, ended, then=convert)
    if state.debt > 0:
        # Units owed (a cancellation took back units already spent, X-5) were owed at the old value:
        # the debt keeps its yen as the balance does, in new units, rounded down so that the member
        # never owes more yen than before (a balance rounds up for the same reason).
        state.debt = state.debt * old_value // new_value
    if pool:
        more, rest = divmod(pool, new_value)
        change.add_lot(more, "valid", step.rule, "conversion", expires_on=pool_expiry, action="convert")
        if rest > 0:
            period = step.round_up_period
            expires_on = period.after(local_date(change.at, change.program.tz)) if period else pool_expiry
            change.add_lot(1, "valid", step.rule, "adjustment", expires_on=expires_on, action="convert")


def earn_from_carry(change: Change, step: MigrationStep, version: Version) -> None:
    earning = version.earning
    if earning is None or earning.kind != "threshold":
        return
    units, change.state.carry = threshold_grant(earning, change.state.carry, 0)
    if units:
        expires_on, rolling = on_acquire(change)
        change.add_lot(units, "valid", step.rule, "earn", expires_on=expires_on, rolling=rolling, action="grant")


def grant(change: Change, step: MigrationStep) -> None:
    state = change.state
    if not state.registered:
        return
    # a version switch is a happening: a condition that cannot be evaluated counts as not met
    # (the tier the member holds as the new version begins, as its first order would see it)
    tier, _ = tier_at(change.version.tiers, state, change.at, change.program.tz) if step.when is not None else (None, 0)
    if step.when is not None and not step.when.holds_in_happening(
            {"attributes": Attributes(state.attributes), "tier": tier, "product": None, "bought": False}):
        return
    expires_on: Optional[date]
    if step.expires_on is not None:
        expires_on, rolling = step.expires_on, False
    else:
        expires_on, rolling = on_acquire(change)
    change.add_lot(step.units, "valid", step.rule, "limited" if step.expires_on else "bonus",
                   expires_on=expires_on, rolling=rolling, action="grant")
