"""The engine's answers, one type each: the quote of a cart, a member, the run report.

Each is built once (the quote by engine/core/orders.py, a member and the run report by
engine/run/report.py) and encoded alike wherever it is answered: ``loyalty quote --json`` and
``loyalty run --json``, the Python API (``Engine.quote``, ``Engine.member``: the same objects as
builtins, ``as_builtins``) and the HTTP service (``encode``), whose OpenAPI document is generated
from these Structs, so it names every key an answer can have.

A key an answer leaves out in some cases (a quote that cannot be priced has only ``errors``; a
member without a ladder has no ``ladder``) is UNSET there: left out of the JSON, never null.
Keys and their meaning: docs/CONTRACT.md.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import msgspec
from msgspec import UNSET, UnsetType

from engine.model.errors import Refusal

# --- the quote (``quote --json``, POST /quote, Engine.quote) ---------------------------------------


class Totals(msgspec.Struct, kw_only=True):
    items_ex_tax: int
    fees_ex_tax: int
    shipping_ex_tax: int
    subtotal_ex_tax: int
    tax: dict[str, int]              # tax rate ("0.08") -> yen, one figure a rate, floored
    tax_total: int
    grand_total: int
    to_pay: int
    pv: Union[int, float]


class Redemption(msgspec.Struct, kw_only=True):
    max: int
    applied: int
    why: str


class RewardLine(msgspec.Struct, kw_only=True):
    reward: str
    qty: int
    points: int


class Fee(msgspec.Struct, kw_only=True):
    kind: str
    ex_tax: int
    tax_rate: float
    rule: Optional[str] = None


class ExchangeQuote(msgspec.Struct, kw_only=True):
    points: int
    rewards: list[RewardLine] = []
    fees: list[Fee] = []


class Earn(msgspec.Struct, kw_only=True):
    points: int
    state: str
    rules: list[str]


class PerkView(msgspec.Struct, kw_only=True):
    rule: str
    on: str
    free_shipping: bool
    effect: Optional[str] = None


class DeferredRequest(msgspec.Struct, kw_only=True):
    reward: str
    qty: int


class Deferred(msgspec.Struct, kw_only=True):
    exchanges: list[DeferredRequest]
    redeem: bool


class Deadline(msgspec.Struct, kw_only=True):
    """A deadline the cart's dates give (ANS-15). ``covers``: in ``deadlines``, the requests it
    applies to; ``deferred`` and ``note``: in ``deadline``, when late requests go with the next delivery."""
    last_day: str
    late: bool
    rule: str
    applies_to: str                  # this_delivery | next_delivery
    covers: Union[list[str], UnsetType] = UNSET
    deferred: Union[Deferred, UnsetType] = UNSET
    note: Union[str, UnsetType] = UNSET


class Quote(msgspec.Struct, kw_only=True):
    """The ``quote --json`` object. A cart that cannot be priced has ``errors`` only."""
    totals: Union[Totals, UnsetType] = UNSET
    redeem: Union[Redemption, UnsetType] = UNSET
    exchange: Union[ExchangeQuote, UnsetType] = UNSET
    earn: Union[Earn, UnsetType] = UNSET
    tier: Union[Optional[str], UnsetType] = UNSET
    version: Union[int, UnsetType] = UNSET
    perks: Union[list[PerkView], UnsetType] = UNSET
    errors: list[Refusal]            # what would make the order refused; [] when nothing would
    deadline: Union[Deadline, UnsetType] = UNSET     # the deadline that decided
    deadlines: Union[list[Deadline], UnsetType] = UNSET


# --- a member (a member of ``run --json``, GET /members/{id}, Engine.member) -----------------------


class LotView(msgspec.Struct, gc=False):
    """A lot as the member answer shows it (positional: a report builds one per lot)."""
    id: str
    amount: int
    state: str
    granted_at: str
    expires_at: Optional[str]
    expires_on: Optional[str]
    rule: str
    version: Optional[int]
    source: Optional[str]
    order: Optional[str]
    kind: Optional[str]
    ended_by: Optional[str]


class LadderNext(msgspec.Struct, kw_only=True):
    """What the member needs for the next level (or to keep the top one)."""
    level: str
    months: Optional[int]
    amount: Optional[int]
    rule: Optional[str]


class GiftPending(msgspec.Struct, kw_only=True):
    stage: str
    number: int
    due: str
    round: Union[int, UnsetType] = UNSET              # a gift of the top level's second round on
    deferred_from: Union[str, UnsetType] = UNSET      # a gift moved by a pause


class LadderChange(msgspec.Struct, kw_only=True):
    at: str
    level: Optional[str]
    reason: str
    rule: Optional[str]


class LadderView(msgspec.Struct, kw_only=True):
    """The member's place on the ladder (``tier`` is its level). ``since`` ... ``gifts_pending``:
    while the member is active or paused on it; ``round``: on a level that repeats."""
    level: Optional[str]
    status: str
    since: Union[Optional[str], UnsetType] = UNSET
    months: Union[int, UnsetType] = UNSET
    amount: Union[int, UnsetType] = UNSET
    pause_months_in_a_row: Union[int, UnsetType] = UNSET
    next: Union[Optional[LadderNext], UnsetType] = UNSET
    round: Union[int, UnsetType] = UNSET
    gifts_pending: Union[list[GiftPending], UnsetType] = UNSET
    history: Union[list[LadderChange], UnsetType] = UNSET


class MemberView(msgspec.Struct, kw_only=True):
    """A member of the ``run --json`` report: points by state (``owed`` where a return left a debt),
    tier, lots; ``ladder`` in a program with one."""
    points: dict[str, int]
    tier: Optional[str]
    tier_amount: Optional[int]
    version: int
    lots: list[LotView]
    ladder: Union[LadderView, UnsetType] = UNSET


class Member(MemberView, kw_only=True):
    """The member object of ``run --json``, with the member id and the time it is taken at (GET /members/{id})."""
    member: str
    as_of: str


# --- the run report (``run --json``) ---------------------------------------------------------------


class ProgramRef(msgspec.Struct, kw_only=True):
    id: str
    version: int


class RunReport(msgspec.Struct, kw_only=True):
    """The ``run --json`` report of the ledger as of a moment (engine/run/report.py ``ledger_report``)."""
    as_of: str
    program: ProgramRef
    members: dict[str, MemberView]
    effects: list[dict[str, Any]]
    rejected: list[Refusal]
    applied: int
    skipped: int


# --- encoding, the same everywhere ------------------------------------------------------------------

encode = msgspec.json.Encoder().encode


def as_builtins(answer: Any) -> Any:
    """The answer as the dicts and lists its JSON decodes to (the Python API's answers)."""
    return msgspec.to_builtins(answer)
