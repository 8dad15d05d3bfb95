"""A member with a long history, built directly (replaying 100,000 lots' worth of events for one
member would itself be the quadratic cost being measured).

``long_history(program, n_lots, at)``: a registered &est member whose state holds ``n_lots`` lots
and ⌈n_lots / 2⌉ delivered orders (one line each), one order every 8 years / (n_lots / 2)
before ``at``: each order has its earned lot and a second lot from a spend or a split. The newest
fifth of the lots are valid (rolling expiry well after ``at``, so no happening fires), the rest
used or expired, as a long-standing member's ledger is. The valid balance is the same for every
size up to a few lots, so the quote's figures are comparable.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from engine.core.pricing import with_kept_amounts
from engine.core.tiers import counted_of
from engine.model.state import LAYOUT, OPEN, CountedAmounts, Lot, MemberState, Order, OrderLine, OpenBalance

YEARS = 8


def long_history(program, n_lots: int, at: datetime, member: str = "long") -> MemberState:
    at = at.astimezone(program.tz)   # times in the program's zone, as the engine stores applied events' times
    n_orders = max(1, (n_lots + 1) // 2)
    step = timedelta(days=365 * YEARS) / n_orders
    version = program.version_at(at).number
    lots: list[Lot] = []
    orders: dict[str, Order] = {}
    for i in range(n_orders):
        placed = at - step * (n_orders - i)
        oid = f"h{i}"
        line = OrderLine(sku="KNIT-M", product="KNIT", qty=1, unit_price=9900, tax_rate=0.10, net_ex=9405)
        orders[oid] = Order(id=oid, placed_at=placed, event=f"{oid}-e", course="one_off", guest=False,
                            payment_method="credit_card", card_brand="visa", tier="regular", version=version,
                            lines=(line,), status="delivered", shipped_at=placed + timedelta(days=1),
                            delivered_at=placed + timedelta(days=2), earned=94, earn_rules=("AND-1",),
                            kept_ex=0, kept_incl=0)
        for j in range(2):
            k = len(lots)
            if k >= n_lots:
                break
            fresh = k >= n_lots - max(1, n_lots // 5)
            state = "valid" if fresh else ("used" if k % 3 else "expired")
            lots.append(Lot(id=f"{oid}-e:{j + 1}", amount=94 if j == 0 else 6, state=state,
                            granted_at=placed, expires_on=None if fresh else (placed + timedelta(days=365)).date(),
                            rolling=fresh, rule="AND-1", version=version, source=f"{oid}-e", order=oid,
                            kind="earn", valid_at=placed + timedelta(days=1),
                            ended_at=None if fresh else placed + timedelta(days=30),
                            ended_by=None if fresh else "spend"))
    # open lots (valid) and closed ones (used, expired) in their two lists, as the engine keeps them
    state = MemberState(member=member, layout=LAYOUT, open_balance=OpenBalance(), counted=CountedAmounts(),
                        registered=True, registered_at=at - timedelta(days=365 * YEARS + 1),
                        clock=at - timedelta(hours=1), version=version,
                        lots=[lot for lot in lots if lot.state in OPEN], closed=[lot for lot in lots if lot.state not in OPEN],
                        lot_seq=len(lots), orders={oid: with_kept_amounts(o) for oid, o in orders.items()},
                        rolling_expires_on=(at + timedelta(days=300)).date())
    # the running totals every applied event keeps
    state.open_balance = OpenBalance.of(state.lots)
    state.counted = counted_of(state, program.tz)
    return state
