"""The immutable program model. Every setting remembers its rule id and the position it was written at."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from operator import attrgetter
from typing import Callable, Optional
from zoneinfo import ZoneInfo

from engine.model.errors import Pos
from engine.model.events import brand_key
from engine.format.expr import Expr
from engine.model.timeutil import Period


@dataclass(frozen=True, slots=True)
class Ruled:
    """Base of every setting: which rule it implements and where it was written."""

    rule: str
    pos: Pos


@dataclass(frozen=True, slots=True)
class MemberDiscount(Ruled):
    rate: Fraction
    per: str  # "unit": each unit price is discounted and floored; "line": each line total
    # the price kept, as integers (keep / den = 1 - rate), worked out once
    keep: int = field(init=False, compare=False, repr=False)
    den: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep", self.rate.denominator - self.rate.numerator)
        object.__setattr__(self, "den", self.rate.denominator)


@dataclass(frozen=True, slots=True)
class Pricing:
    member_discount: Optional[MemberDiscount] = None
    coupon_rule: Optional[str] = None
    shipping_tax_rate: Fraction = Fraction(0)


@dataclass(frozen=True, slots=True)
class TierLevel:
    id: str
    min: int
    pos: Pos


@dataclass(frozen=True, slots=True)
class Tiers(Ruled):
    window: Period
    measure: str        # items_ex_tax | items_incl_tax
    counts_from: str    # placed | shipped
    levels: tuple[TierLevel, ...]  # ascending by min; levels[0].min == 0
    # compare: more_than: a level is reached when the amount exceeds its min (AND-10 「超える」);
    # at_least (the default): when the amount reaches it
    more_than: bool = False

    def level_for(self, amount: int) -> str:
        current = self.levels[0].id
        for level in self.levels[1:]:
            if amount > level.min or (amount == level.min and not self.more_than):
                current = level.id
        return current


@dataclass(frozen=True, slots=True)
class RateRow(Ruled):
    when: Optional[Expr]
    valid_from: Optional[date]
    valid_until: Optional[date]  # inclusive
    flat: Optional[Fraction]
    by: Optional[str]
    values: dict = field(default_factory=dict)
    bands: tuple = ()   # ((from, rate), ...) ascending: the last band whose 'from' ≤ the value
    exclude_tags: frozenset = frozenset()   # the row does not take a line carrying any of these tags
    # a campaign row (no rate of its own): the rate the rows below give the line, times
    # ``multiply``, plus ``add``
    multiply: Optional[Fraction] = None
    add: Optional[Fraction] = None

    @property
    def campaign(self) -> bool:
        return self.multiply is not None or self.add is not None

    def rate_for(self, env: dict) -> Optional[Fraction]:
        if self.flat is not None:
            return self.flat
        if self.bands:
            value = env.get(self.by)
            chosen = None
            for start, rate in self.bands:
                if value is not None and value >= start:
                    chosen = rate
            return chosen
        return self.values.get(env.get(self.by))


@dataclass(frozen=True, slots=True)
class Earning(Ruled):
    base: str             # items_ex_tax | items_incl_tax | pv
    after_points: bool
    pending_until: str    # placed | shipped | delivered
    guests_earn: bool
    rates: tuple[RateRow, ...]
    kind: str = "rate"    # rate | threshold
    per_yen: int = 0      # threshold: yen of cumulative purchases for each grant of `units`
    units: int = 1
    counts_at: str = "shipped"   # threshold: an order's amount joins the carry when placed | shipped
    # What the rows read, worked out once: the order's names, a key of the line's names, and
    # whether any row has dates. A row choice depends on nothing else, so whoever keeps the
    # program loaded may remember choices by those values (engine/core/earning.RowChoices).
    order_names: tuple = field(init=False, compare=False, repr=False)
    line_key: Optional[Callable] = field(init=False, compare=False, repr=False)
    dated: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names: set[str] = set()
        for row in self.rates:
            if row.when is not None:
                names |= row.when.names
            if row.by is not None:
                names.add(row.by)
            if row.exclude_tags:
                names.add("tags")
        on_line = names & LINE_FIELDS
        object.__setattr__(self, "order_names", tuple(sorted(names - on_line)))
        # the line's part of the key, read in C (one name: the value itself; several: a tuple)
        object.__setattr__(self, "line_key", attrgetter(*sorted(on_line)) if on_line else None)
        object.__setattr__(self, "dated", any(r.valid_from or r.valid_until for r in self.rates))


# The names an earn row reads from the line itself (the rest come from the order).
LINE_FIELDS = frozenset({"sku", "product", "qty", "unit_price", "tax_rate", "tags"})


@dataclass(frozen=True, slots=True)
class MigrationStep(Ruled):
    op: str                              # convert_units | earn_from_carry | grant
    from_unit_value: int = 0
    pool_expiry: str = "earliest"
    round_up_period: Optional[Period] = None
    when: Optional[Expr] = None
    units: int = 0
    expires_on: Optional[date] = None
    per: str = "unit"                    # convert_units: each old unit on its own, or each lot as a whole


@dataclass(frozen=True, slots=True)
class Perk(Ruled):
    on: str
    free_shipping: bool
    effect: Optional[str]
    detail: dict


@dataclass(frozen=True, slots=True)
class Cap(Ruled):
    units: int


@dataclass(frozen=True, slots=True)
class MinToPay(Ruled):
    default: int
    by_method: dict
    by_card_brand: dict

    def __post_init__(self):
        # brands are matched case-insensitively (events.brand_key): "JCB" in a file is the cart's "jcb"
        object.__setattr__(self, "by_card_brand", {brand_key(b): v for b, v in self.by_card_brand.items()})

    def for_payment(self, method: str, brand: Optional[str]) -> int:
        if brand and brand in self.by_card_brand:
            return self.by_card_brand[brand]
        return self.by_method.get(method, self.default)


@dataclass(frozen=True, slots=True)
class PerAmount(Ruled):
    yen: int
    units: int


@dataclass(frozen=True, slots=True)
class Redemption(Ruled):
    unit_value_yen: int
    cap: Optional[Cap]
    min_to_pay: Optional[MinToPay]
    per_amount: Optional[PerAmount] = None


@dataclass(frozen=True, slots=True)
class Reward:
    id: str
    name: str
    units: int
    pos: Pos


@dataclass(frozen=True, slots=True)
class Catalog(Ruled):
    rewards: dict          # id -> Reward
    returnable: bool


@dataclass(frozen=True, slots=True)
class FeeRule(Ruled):
    kind: str
    ex_tax: int
    per_units: Optional[int]
    tax_rate: float
    waived_when: Optional[Expr]


@dataclass(frozen=True, slots=True)
class Refusal(Ruled):
    methods: frozenset
    reason: str


@dataclass(frozen=True, slots=True)
class Deadline(Ruled):
    business_days: int
    calendar: str
    applies_to: frozenset
    counts_from: str = "delivery_date"    # the order's date counted back from: delivery_date | ship_date


@dataclass(frozen=True, slots=True)
class ExchangeRules(Ruled):
    requires_product_order: bool
    refuse: Optional[Refusal]
    fees: tuple[FeeRule, ...]
    deadlines: tuple      # Deadline, each for its requests (ANS-15: exchanges by shipping, point use by delivery)


@dataclass(frozen=True, slots=True)
class Expiry(Ruled):
    kind: str   # rolling | per_grant | none
    period: Optional[Period]
    limited_rule: Optional[str]
    on_cancel_rule: Optional[str] = None   # subscription cancelled: lots end at the next month's end


@dataclass(frozen=True, slots=True)
class Bonus(Ruled):
    on: str
    units: int
    when: Optional[Expr]
    once_per: Optional[str]


@dataclass(frozen=True, slots=True)
class Returns(Ruled):
    window: Optional[Period]
    counts_from: str
    refuse_tags: frozenset
    restore_used_after: Period
    cancel_rule: Optional[str] = None   # the rule a cancellation books under (else the returns rule)
    # how long after a cancellation the used points come back (None: as after a return)
    cancel_restore_after: Optional[Period] = None


@dataclass(frozen=True, slots=True)
class Version:
    number: int
    effective_from: date
    starts_at: datetime
    pos: Pos
    pricing: Pricing
    tiers: Optional[Tiers]
    earning: Optional[Earning]
    redemption: Optional[Redemption]
    expiry: Expiry
    bonuses: tuple[Bonus, ...]
    returns: Optional[Returns]
    catalog: Optional[Catalog] = None
    exchange: Optional[ExchangeRules] = None
    migration: tuple = ()        # MigrationStep, run per member when this version comes into force
    perks: tuple = ()            # Perk
    ladder: Optional["Ladder"] = None   # a ladder of levels decided monthly (engine/core/ladder.py)
    # the keys this version changed under `changes` (the rest inherited): ("redemption.cap_per_order.units", Pos)
    changed: tuple = ()

    def bonuses_on(self, trigger: str) -> tuple[Bonus, ...]:
        return tuple(b for b in self.bonuses if b.on == trigger) if self.bonuses else ()


@dataclass(frozen=True, slots=True)
class Accounting:
    """How the shop's books treat the units (engine/run/liability.py): the program's ``accounting:``
    section, every figure read from the file or the schema's documented default."""

    points: str                       # free | prepaid (資金決済法)
    expected_breakage: float          # share of issued units expected never to be used
    breakage_window_months: int       # trailing window of the observed breakage
    unit_value_yen: Optional[int]     # for versions without redemption.unit_value_yen
    report_dates: tuple[tuple[int, int], ...] = ()   # prepaid: (month, day) base dates
    deposit_threshold_yen: int = 0    # prepaid: balance above which a deposit is due
    deposit_share: float = 0.0        # prepaid: share of the balance to deposit
    due_within_months: int = 0        # prepaid: months after a base date its report and deposit are due


@dataclass(frozen=True, slots=True)
class Program:
    id: str
    name: str
    unit: str
    tz: ZoneInfo
    file: str
    rules: dict          # rule id -> description, as the program file states them
    versions: tuple[Version, ...]  # ascending by effective_from
    digest: str = ""     # of the program file's text: what a member state's cached next happening was computed for
    accounting: Optional[Accounting] = None   # the books' view of the units (None: a Program built by hand)
    # a what-if replay (loyalty diff): a redemption asking for more than the limits allow is
    # decided again as the limits allow (clamped to the most it may use), not refused; live
    # ledgers always refuse it (CONTRACT: the order is rejected with the limit's rule)
    clamp_requests: bool = False
    # derived once from the versions (the clock asks per event): whether any version pays a
    # birth-month bonus, and the version that follows each version number
    has_birthday_bonus: bool = field(init=False, default=False)
    following: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_birthday_bonus", any(v.bonuses_on("birthday_month") for v in self.versions))
        object.__setattr__(self, "following", {
            n: next((v for v in self.versions if v.number > n), None) for n in {0, *(v.number for v in self.versions)}})

    def version_after(self, number: int) -> Optional[Version]:
        """The first version later than ``number`` (a member's version switches to it when due)."""
        if number in self.following:
            return self.following[number]
        return next((v for v in self.versions if v.number > number), None)

    def unit_value_yen(self, number: int) -> float:
        """The yen value of a unit of version ``number``: its redemption's unit_value_yen, else the
        accounting section's (0: the program states none)."""
        version = next((v for v in self.versions if v.number == number), None)
        if version is not None and version.redemption is not None:
            return version.redemption.unit_value_yen
        acc = self.accounting
        return acc.unit_value_yen if acc is not None and acc.unit_value_yen is not None else 0

    def version_at(self, at: datetime) -> Version:
        chosen = self.versions[0]
        for version in self.versions:
            if version.starts_at <= at:
                chosen = version
        return chosen


# --- Ladders (engine/core/ladder.py): ordered levels climbed by steps whose conditions combine counters.

@dataclass(frozen=True, slots=True)
class LadderStep(Ruled):
    """Conditions on the counters of the current level: counted months and amount since reaching it."""

    months: int = 0
    amount: int = 0
    combine: str = "all"    # all: every condition; any: one is enough

    def met(self, months: int, amount: int) -> bool:
        checks = (months >= self.months, amount >= self.amount)
        return all(checks) if self.combine == "all" else any(checks)


@dataclass(frozen=True, slots=True)
class LadderGift:
    number: int
    after_months: int       # months after the month the level was reached (or its conditions met again)
    pos: Pos
    # counted from the month gift ``after_gift`` of the same level was sent instead, so a pause that
    # moves that gift moves this one too (MAN-9: the 2nd gift comes six months after the 1st was sent)
    after_gift: Optional[int] = None


@dataclass(frozen=True, slots=True)
class LadderLevel:
    id: str
    pos: Pos
    up: Optional[LadderStep] = None      # the step to the next level
    again: Optional[LadderStep] = None   # the top level: its gifts again each time these are met
    gifts: tuple = ()                    # LadderGift


@dataclass(frozen=True, slots=True)
class LadderNotice(Ruled):
    of_number: int          # the gift it announces
    months_before: int


@dataclass(frozen=True, slots=True)
class Ladder(Ruled):
    levels: tuple                        # LadderLevel, lowest first
    enrol_rule: str
    opt_out: Optional[Expr]
    evaluation_rule: str
    months_rule: str
    amount_rule: str
    measure: str                         # items_incl_tax | items_ex_tax
    courses: frozenset
    exclude_paused: bool                 # purchases made while paused do not count
    pause_rule: Optional[str]
    max_pause_months: Optional[int]      # the next consecutive pause month cancels
    cancel_rule: str
    reset_to: str                        # the level a cancellation resets to
    gift_rule: Optional[str]
    notice: Optional[LadderNotice]
    defer_rule: Optional[str]            # gifts due during a pause: the month after resuming

    def index(self, level_id: Optional[str]) -> int:
        return next(i for i, level in enumerate(self.levels) if level.id == level_id)
