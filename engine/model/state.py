"""A member's state: lots, orders and the member's own clock. Values, not services.

Lots, order lines, orders, ledger entries and the running totals hold only scalars, dates,
strings and tuples or dicts of them: they can never be part of a reference cycle, so they are
declared ``gc=False`` and the garbage collector does not walk the millions of them a long
replay keeps.

Lots and orders are frozen msgspec Structs, replaced (never mutated) when they change: the core
changes a state's lists and dicts in place and keeps an undo journal of it (engine/core/journal.py),
and a copy of a state is a copy of its lists and dicts. msgspec also makes the state cheap to
store: JSON in the layout ``LAYOUT`` (a store's codec upgrades older ones once, engine/store/codec.py),
its orders and lots a row each so that a store writes what an event replaced (engine/store/rows.py).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Optional

import msgspec

from engine.model.events import Redeem
from engine.model.timeutil import Month

STATES = ("valid", "pending", "held", "used", "expired", "void")
# A lot re-expressed in a new unit by a program revision (RC-6) ends as "converted"; its value
# lives on in the lots the conversion made. Reported only where it occurs.
CONVERTED = "converted"
OPEN = frozenset(("pending", "valid", "held"))   # lots that can still change; the others are closed
# The stored form of a member's state: 1 = running totals always present (open_balance, counted,
# every order's kept amounts). A state without it was stored before (engine/store/codec.py).
LAYOUT = 1


class Lot(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """An amount of points (or credits) in one state, from one rule of one program version."""

    id: str
    amount: int
    state: str                      # pending | valid | held | used | expired | void
    granted_at: datetime            # when the lot came into being (an order's points: its placement)
    expires_on: Optional[date] = None   # last valid day; None with rolling: the member's rolling date
    rolling: bool = False           # expires with the member's rolling date rather than its own
    rule: str
    version: int
    source: str                     # the event (or happening) that created it
    order: Optional[str] = None
    kind: str = "earn"              # earn | bonus | grant | restore ... (what created it)
    valid_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None   # when it became used / expired / void
    ended_by: Optional[str] = None        # the event, happening or rule that ended it
    seq: int = 0                          # creation order within the member (a split is created when split)


class OrderLine(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    sku: str
    product: str
    qty: int
    unit_price: int
    tax_rate: float
    tags: tuple[str, ...] = ()
    pv: Optional[float] = None
    net_ex: int                     # line amount ex. tax after member price and coupon
    gross_ex: int = 0               # before the coupon (0: stored before it was kept; pricing.exact_nets)
    points_share: int = 0           # yen of points spread onto this line


class Order(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    id: str
    placed_at: datetime
    event: str
    course: str
    guest: bool
    payment_method: str
    card_brand: Optional[str] = None
    tier: Optional[str] = None
    version: int
    lines: tuple[OrderLine, ...]
    # units returned by position in ``lines`` (empty: none came back). A sku may stand on several
    # lines (a gift-wrapped and a plain unit), so returns are kept by line, not by sku.
    returned_lines: tuple[int, ...] = ()
    # how states stored before returned_lines kept them: sku -> qty, meaning that qty of every line
    # of the sku (returned_by_line reads it); new states leave it empty
    returned: dict[str, int] = {}
    status: str = "placed"          # placed | shipped | delivered | cancelled | returned
    shipped_at: Optional[datetime] = None
    delivered_at: Optional[datetime] = None
    points_used: int = 0            # units spent on the order as a discount
    exchange_units: int = 0         # units spent on reward items (not returnable)
    rewards: tuple[tuple[Any, ...], ...] = ()   # ((reward, qty), ...)
    fees: tuple[tuple[Any, ...], ...] = ()      # ((kind, ex_tax, tax_rate), ...)
    used_lots: tuple[str, ...] = () # the lots those units were spent from (restored on return)
    points_restored: int = 0        # units given back after cancellation / returns
    earned: int = 0                 # units the order currently earns (after returns)
    earn_rules: tuple[str, ...] = ()
    counted: int = 0                # yen this order added to the threshold carry (RC-0/RC-2)
    subscription_month: int = 0     # consecutive subscription month of this order (AMA-1)
    # the kept lines' amount as the invoice states it, ex. and incl. tax (pricing.kept_amounts),
    # set when the order is written (placed, lines back): tiers and ladders sum them without
    # pricing every order again
    kept_ex: int
    kept_incl: int

    def returned_by_line(self) -> tuple[int, ...]:
        """Units returned by line position (empty: none), from a state of either form."""
        if self.returned_lines or not self.returned:
            return self.returned_lines
        return tuple(min(self.returned.get(line.sku, 0), line.qty) for line in self.lines)


class Deferred(msgspec.Struct, frozen=True, kw_only=True):
    """Requests that arrived after their deadline: they go with the member's next delivery."""

    source: str
    exchanges: tuple[tuple[Any, ...], ...] = ()   # ((reward, qty), ...)
    redeem: Optional[Redeem] = None


class SubChange(msgspec.Struct, frozen=True, kw_only=True):
    """One change of a subscription's status, and the member's overall status after it."""

    at: datetime
    subscription: str
    status: str                    # active | paused | cancelled
    member_status: str             # active | paused | cancelled | none


class Timer(msgspec.Struct, frozen=True, kw_only=True):
    """A happening due later: fires when the member's clock passes ``at``."""

    at: datetime
    kind: str                       # restore
    source: str
    order: Optional[str] = None
    amount: int = 0
    rule: str = ""


class PendingGift(msgspec.Struct, frozen=True, kw_only=True):
    """A ladder gift scheduled for a month ("YYYY-MM"), not yet due or deferred by a pause."""

    stage: str
    number: int
    round: int = 1                   # the top level's gifts again: 2, 3 ...
    due: Month
    notice: bool = False             # a notice goes out before it
    noticed: bool = False
    deferred_from: Optional[Month] = None   # the month it first fell due in, when a pause moved it
    # due ``after_months`` after the month gift ``after_gift`` (same stage and round) was sent; until
    # then ``due`` counts from that gift's own due month
    after_gift: Optional[int] = None
    after_months: int = 0


class LevelChange(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    level: Optional[str]
    reason: str                      # enrol | up | again | cancel | pause_cancel | opt_out
    rule: str


class LadderState(msgspec.Struct, kw_only=True):
    """Where a member stands on a ladder, and the counters of the current level."""

    status: str = "none"             # active | paused | cancelled | opted_out | none
    level: Optional[str] = None
    since: Optional[datetime] = None # when the level was reached (counters reset)
    month: Month = Month("")         # the month the clock is in (its start was evaluated)
    months: int = 0                  # counted months of the level, months closed so far
    month_counts: bool = False       # the current month counts (it began active, or the member joined in it)
    amount: int = 0                  # yen counted in the level
    pause_streak: int = 0            # consecutive whole pause months
    round: int = 1                   # the top level: 1, then 2, 3 ... each time its conditions are met again
    counted: dict[str, int] = {}     # order id -> yen it counts now (returns subtract from the level)
    ahead: dict[str, int] = {}       # orders stamped at a month's first instant, before its evaluation
    gifts: list[PendingGift] = []
    history: list[LevelChange] = []

    def copy(self) -> "LadderState":
        return msgspec.structs.replace(self, counted=dict(self.counted), ahead=dict(self.ahead), gifts=list(self.gifts),
                                       history=list(self.history))


class OpenBalance(msgspec.Struct, frozen=True, gc=False, kw_only=True, array_like=True):
    """Running totals of the open lots, kept exact by every lot change (engine/core/lots.Change),
    so a quote or the clock never sums a member's lots.

    ``soonest`` is the earliest last day among valid lots with a date of their own; when the lot
    that held it leaves, the change that moved it looks for the next one (``with_soonest``)."""

    valid: int = 0
    pending: int = 0
    held: int = 0
    rolling_valid: int = 0               # valid units that expire with the member's rolling date
    soonest: Optional[date] = None

    @staticmethod
    def of(lots: list["Lot"]) -> "OpenBalance":
        totals = {"valid": 0, "pending": 0, "held": 0}
        rolling = 0
        for lot in lots:
            totals[lot.state] = totals.get(lot.state, 0) + lot.amount
            if lot.state == "valid" and lot.rolling:
                rolling += lot.amount
        return OpenBalance(valid=totals["valid"], pending=totals["pending"], held=totals["held"],
                           rolling_valid=rolling, soonest=_soonest(lots))

    def with_soonest(self, lots: list["Lot"]) -> "OpenBalance":
        """These totals with the earliest last day found again among ``lots`` (the open lots)."""
        return msgspec.structs.replace(self, soonest=_soonest(lots))

    def plus(self, lot: "Lot", amount: int) -> "OpenBalance":
        """``amount`` of ``lot`` (in the lot's state) joins the open lots."""
        st = lot.state
        if st == "valid":
            if lot.rolling:
                return msgspec.structs.replace(self, valid=self.valid + amount, rolling_valid=self.rolling_valid + amount)
            soonest = self.soonest
            if lot.expires_on is not None and (soonest is None or lot.expires_on < soonest):
                soonest = lot.expires_on
            return msgspec.structs.replace(self, valid=self.valid + amount, soonest=soonest)
        if st == "pending":
            return msgspec.structs.replace(self, pending=self.pending + amount)
        if st == "held":
            return msgspec.structs.replace(self, held=self.held + amount)
        return self

    def minus(self, lot: "Lot", amount: int) -> "OpenBalance":
        """``amount`` of ``lot`` (in the lot's state) leaves its state. ``soonest`` stays: when
        ``holds_soonest`` says the lot held it, the caller finds it again (``with_soonest``)."""
        st = lot.state
        if st == "valid":
            if lot.rolling:
                return msgspec.structs.replace(self, valid=self.valid - amount, rolling_valid=self.rolling_valid - amount)
            return msgspec.structs.replace(self, valid=self.valid - amount)
        if st == "pending":
            return msgspec.structs.replace(self, pending=self.pending - amount)
        if st == "held":
            return msgspec.structs.replace(self, held=self.held - amount)
        return self

    def holds_soonest(self, lot: "Lot", amount: int) -> bool:
        """Whether ``amount`` of ``lot`` leaving may take the earliest last day with it."""
        return (lot.state == "valid" and not lot.rolling and amount == lot.amount and lot.expires_on is not None
                and lot.expires_on == self.soonest)


def _soonest(lots: list["Lot"]) -> Optional[date]:
    days = [lot.expires_on for lot in lots if lot.state == "valid" and not lot.rolling and lot.expires_on is not None]
    return min(days) if days else None


class CountedAmounts(msgspec.Struct, kw_only=True):
    """What the member's orders count for a tier, by month, by placement and by shipment
    (engine/core/tiers.py keeps them): month -> (ex, incl, days), the
    kept lines' items ex. and incl. tax, and ``days`` the same per local day as
    ((date ordinal, ex, incl), ...). A tier window is then the months between its ends plus the
    days of its two end months, whatever the length of the member's history."""

    placed: dict[Month, tuple[int, int, tuple[tuple[int, int, int], ...]]] = {}
    shipped: dict[Month, tuple[int, int, tuple[tuple[int, int, int], ...]]] = {}

    def copy(self) -> "CountedAmounts":
        return CountedAmounts(placed=dict(self.placed), shipped=dict(self.shipped))   # values are tuples


class MemberState(msgspec.Struct, kw_only=True):
    member: str
    # the stored form (LAYOUT); required, so a state stored before it was kept is told apart
    layout: int
    registered: bool = False
    registered_at: Optional[datetime] = None
    birthday: Optional[date] = None
    attributes: dict[str, Any] = {}
    clock: Optional[datetime] = None          # the member's own clock: time of its last event or happening
    version: int = 0                          # the program version in force for this member
    lots: list[Lot] = []                      # open lots: pending, valid, held
    closed: list[Lot] = []                    # closed lots: used, expired, void, converted (history)
    lot_seq: int = 0
    orders: dict[str, Order] = {}
    reviewed: list[str] = []
    timers: list[Timer] = []
    rolling_expires_on: Optional[date] = None  # last valid day of every rolling lot
    birthday_paid_on: Optional[date] = None    # the last birth-month 1st whose bonus was handled
    debt: int = 0                             # units clawed back but not yet covered by a balance
    deferred: list[Deferred] = []             # late requests waiting for the next delivery
    subscriptions: dict[str, str] = {}        # subscription id -> active | paused | cancelled
    sub_history: list[SubChange] = []         # every status change, in time order
    sub_streak: int = 0                       # consecutive months with a subscription order
    sub_last_month: Optional[Month] = None    # the month of the last subscription order
    subscription_orders: int = 0              # subscription orders ever placed
    carry: int = 0                            # yen counted toward the next threshold grant (RC-2)
    expiry_cap: Optional[date] = None         # while cancelled: no unit is valid past this day (RC-9)
    ladder: Optional["LadderState"] = None     # the member's place on the program's ladder (engine/core/ladder.py)
    # running totals of the open lots, exact after every change (engine/core/lots.Change)
    open_balance: OpenBalance
    # the orders' tier amounts by day and month (engine/core/tiers.py), exact after every order written
    counted: CountedAmounts
    # When the member's next happening falls due (None: nothing scheduled), as the clock found it
    # after the last event, for the program file whose digest is ``due_for`` ("": not known). A
    # quote or the next event earlier than that skips looking (engine/core/clock.py).
    due_at: Optional[datetime] = None
    due_for: str = ""

    def copy(self) -> "MemberState":
        """A state of its own (lots, orders and timers are frozen: copying the containers is enough),
        for a view that fires happenings without touching the member's stored state."""
        return msgspec.structs.replace(
            self, attributes=dict(self.attributes), lots=list(self.lots), closed=list(self.closed),
            orders=dict(self.orders), reviewed=list(self.reviewed), timers=list(self.timers),
            deferred=list(self.deferred), subscriptions=dict(self.subscriptions), sub_history=list(self.sub_history),
            ladder=self.ladder.copy() if self.ladder is not None else None, counted=self.counted.copy())

    def balances(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for lots in (self.lots, self.closed):
            for lot in lots:
                out[lot.state] = out.get(lot.state, 0) + lot.amount
        return out

    def all_lots(self) -> list[Lot]:
        """Every lot, open and closed, in the order they came into being."""
        return sorted(self.lots + self.closed, key=lambda lot: lot.seq)

    def valid_units(self) -> int:
        return self.open_balance.valid

    def lot_expires_on(self, lot: Lot) -> Optional[date]:
        if lot.rolling and lot.state in ("valid", "held"):
            return self.rolling_expires_on
        return lot.expires_on


class Entry(msgspec.Struct, frozen=True, gc=False, kw_only=True, array_like=True):
    """One ledger line: an amount of one lot moving from one state to another, and why."""

    member: str
    at: datetime
    source: str           # event id, or a happening such as "expiry@2026-03-11"
    action: str           # earn | grant | validate | spend | hold | release | restore | void | expire | clawback
    lot: str
    amount: int
    from_state: Optional[str]
    to_state: str
    rule: str
    version: int
    # when the entry was written into the ledger (the run or close that booked it; None: an entry
    # the core made and no store has booked yet, or one booked before the ledger kept the time).
    # ``at`` is its business time, the moment it belongs to (engine/run/liability.py).
    booked_at: Optional[datetime] = None


class Effect(msgspec.Struct, frozen=True, kw_only=True):
    """Something the shop must do (send a gift, a notice), produced by a rule."""

    type: str
    member: str
    at: str
    detail: dict[str, Any] = {}
    rule: str = ""


def member_status(subscriptions: dict[str, str]) -> str:
    """The member's overall subscription status: active if any subscription is, else paused if any
    is, else cancelled if any was ever held, else none."""
    statuses = set(subscriptions.values())
    for status in ("active", "paused", "cancelled"):
        if status in statuses:
            return status
    return "none"
