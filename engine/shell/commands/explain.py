"""`loyalty explain PROGRAM --db PATH --member ID [--as-of T]`: a member's balance as a story.

Lot by lot: which event created the points, under which rule id and program version, which line
of the program file says so, and what happened to them since (became valid, used on which order,
expired and why, voided by a cancellation or a return, put on hold). Plain sentences a customer
service agent can read aloud. Everything comes from the ledger (every entry records its rule and
version, X-3) and the program model (every setting records its rule id and position).
"""
from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Optional

import click

from engine.core.earning import chosen_rows
from engine.model.errors import Pos
from engine.model.events import CARD_METHOD, brand_key
from engine.core.orders import order_env
from engine.model.timeutil import local_date

STATES = ("valid", "pending", "held", "used", "expired", "void")


# --- where a rule is written ------------------------------------------------------------------

def rule_sites(program, version_number: int, rule: str) -> list[tuple[str, str, Pos]]:
    """Every setting of ``version_number`` that implements ``rule``: (section, what, position).

    Walks the version's sections and keeps the objects whose ``.rule`` is ``rule``."""
    version = next((v for v in program.versions if v.number == version_number), None)
    if version is None:
        return []
    out: list[tuple[str, str, Pos]] = []

    def add(section: str, what: str, obj) -> None:
        if obj is not None and getattr(obj, "rule", None) == rule:
            out.append((section, what, obj.pos))

    add("pricing", "member discount", version.pricing.member_discount)
    add("tiers", "member tiers", version.tiers)
    if version.earning is not None:
        add("earning", "earning", version.earning)
        for i, row in enumerate(version.earning.rates, 1):
            rate = _rate_text(row)
            cond = f" when {row.when.source}" if row.when is not None else ""
            add("earning", f"earn rate row {i}: {rate}{cond}", row)
    if version.redemption is not None:
        add("redemption", "using points", version.redemption)
        add("redemption", "cap per order", version.redemption.cap)
        add("redemption", "minimum left to pay", version.redemption.min_to_pay)
    add("expiry", f"expiry ({version.expiry.kind})", version.expiry)
    if version.expiry.limited_rule == rule and not any(s[0] == "expiry" for s in out):
        out.append(("expiry", "limited-time points", version.expiry.pos))
    for bonus in version.bonuses:
        add("bonuses", f"bonus on {bonus.on}: {bonus.units:,}", bonus)
    add("returns", "returns and cancellations", version.returns)
    # any other setting the model carries (migrations, rewards, ladders ...): found generically
    seen = {pos for _, _, pos in out}
    for section, what, obj in _walk(version):
        if getattr(obj, "rule", None) == rule and obj.pos not in seen:
            seen.add(obj.pos)
            out.append((section, what, obj.pos))
    return out


def _walk(obj, section: str = "", depth: int = 0):
    """(section, what, object) for every object under ``obj`` that has a rule id and a position."""
    if depth > 4 or obj is None or isinstance(obj, (str, bytes, int, float, bool, Pos)):
        return
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _walk(value, section, depth + 1)
        return
    if isinstance(obj, (list, tuple, frozenset, set)):
        for item in obj:
            yield from _walk(item, section, depth + 1)
        return
    names = getattr(type(obj), "__dataclass_fields__", None) or getattr(type(obj), "__struct_fields__", None)
    if not names:
        return
    if depth and isinstance(getattr(obj, "rule", None), str) and isinstance(getattr(obj, "pos", None), Pos):
        what = " ".join(filter(None, (type(obj).__name__, str(getattr(obj, "op", "") or getattr(obj, "id", "") or ""))))
        yield section, what, obj
    for name in names:
        yield from _walk(getattr(obj, name, None), section or name, depth + 1)


def _rate_text(row) -> str:
    def pct(x) -> str:
        return f"{float(x) * 100:g}%"

    if row.flat is not None:
        return pct(row.flat)
    return f"by {row.by} " + ", ".join(f"{k} {pct(v)}" for k, v in row.values.items())


def site_text(program, version_number: int, rule: str, prefer: tuple[str, ...] = (),
              rows: Optional[list] = None) -> str:
    """'line 64 (earning: earn rate row 2 ...)' for the settings of ``rule`` in the program file
    (those of the ``prefer``red section when it has any; rate rows rather than their section).
    ``rows``: the rate rows that applied (an order's earn cites those, not every row of its rule)."""
    sites = rule_sites(program, version_number, rule)
    if rows is not None:
        applied = {row.pos for row in rows}
        picked = [s for s in sites if not s[1].startswith("earn rate row") or s[2] in applied]
        if any(s[1].startswith("earn rate row") for s in picked):
            sites = picked
    for section in prefer:
        chosen = [s for s in sites if s[0] == section]
        if chosen:
            sites = chosen
            break
    rows = [s for s in sites if s[1].startswith("earn rate row")]
    if rows and prefer == ("earning",):
        sites = rows
    elif not prefer and sites:
        sites = sites[:1]
    return " and ".join(f"line {pos.line} ({section}: {what})" for section, what, pos in sites)


def _period(p) -> str:
    parts = [f"{n} {u if n != 1 else u[:-1]}" for n, u in ((p.years, "years"), (p.months, "months"), (p.days, "days")) if n]
    return ", ".join(parts) or "0 days"


# --- the story --------------------------------------------------------------------------------

@dataclass
class Step:
    at: datetime
    text: str


@dataclass
class Origin:
    """Points that one event created under one rule (a lot, with every part split from it)."""

    lot_id: str
    source: str
    rule: str
    version: int
    kind: str
    order: Optional[str]
    granted_at: datetime
    created: int = 0
    first_state: str = "valid"
    by_state: dict = field(default_factory=lambda: defaultdict(int))   # STATES, and "converted" (X-2 migrations)
    steps: list = field(default_factory=list)


def _units(n: int, unit: str) -> str:
    return f"{n:,} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


def _day(at: datetime, tz) -> str:
    return at.astimezone(tz).date().isoformat()


def _event_types(store) -> dict[str, tuple[str, str]]:
    """event id -> (type, at), where the store keeps them (the SQLite ledger does)."""
    try:
        return store.event_types()
    except Exception:  # another store layout: the story is told without event types
        return {}


_EVENT_WORDS = {
    "member.registered": "signing up", "order.placed": "order placed", "order.shipped": "order shipped",
    "order.delivered": "order delivered", "order.cancelled": "order cancelled", "order.returned": "items returned",
    "review.posted": "review posted", "points.granted": "points granted by the shop",
    "points.held": "points put on hold", "points.released": "hold released",
}


class Story:
    def __init__(self, program, state, entries, events: dict, as_of: datetime, lots, current: bool = True):
        self.current = current   # the state is as of as_of (else: rebuilt from older entries, no dates ahead)
        self.program = program
        self.tz = program.tz
        self.unit = program.unit
        self.state = state
        self.entries = entries
        self.events = events
        self.as_of = as_of
        self.lots = {lot.id: lot for lot in lots}
        self.order_by_event = {o.event: o for o in state.orders.values()}
        self.rules_seen: list[tuple[str, int]] = []   # (rule, version) in order of mention

    def seen(self, rule: str, version: int) -> str:
        if (rule, version) not in self.rules_seen and not rule.startswith(("grant:", "operator:")):
            self.rules_seen.append((rule, version))
        return rule

    def event(self, source: str) -> str:
        """'event e3, order shipped' for an event id; a happening ('expiry@2026-01-06') as it is."""
        if "@" in source:
            return source
        kind = self.events.get(source, ("", ""))[0]
        return f"event {source}, {_EVENT_WORDS.get(kind, kind)}" if kind else f"event {source}"

    def origins(self) -> list[Origin]:
        origins: dict[str, Origin] = {}
        # a part split off a lot keeps the lot's source, rule, kind and grant time
        key_of: dict[tuple, str] = {}   # (source, rule, kind, granted at, order) -> the first lot made so
        for e in self.entries:
            if e.from_state is None:
                lot = self.lots.get(e.lot)
                if lot is None:
                    continue
                origin = Origin(e.lot, lot.source, lot.rule, lot.version, lot.kind, lot.order, lot.granted_at,
                                created=e.amount, first_state=e.to_state)
                origins[e.lot] = origin
                key_of.setdefault((lot.source, lot.rule, lot.kind, lot.granted_at, lot.order), e.lot)
        belongs = {}
        for lot in self.lots.values():
            oid = lot.id if lot.id in origins else key_of.get((lot.source, lot.rule, lot.kind, lot.granted_at, lot.order))
            if oid is not None:
                belongs[lot.id] = oid
        for e in self.entries:
            oid = belongs.get(e.lot)
            if oid is None:
                continue
            origin = origins[oid]
            if e.from_state is not None:
                origin.by_state[e.from_state] -= e.amount
            origin.by_state[e.to_state] += e.amount
            if e.from_state is not None:
                origin.steps.append(Step(e.at, self.step_text(origin, e)))
        return sorted(origins.values(), key=lambda o: (o.granted_at, o.lot_id))

    # -- sentences

    def headline(self, o: Origin) -> str:
        amount = _units(o.created, self.unit)
        day = _day(o.granted_at, self.tz)
        src = self.event(o.source)
        if o.kind == "earn" and o.order:
            order = self.state.orders.get(o.order)
            what = f"earned on order {o.order}"
            if order is not None and order.tier:
                what += f" (the member's tier then: {order.tier})"
            return f"{amount} {what}, placed {day} ({src})."
        if o.kind == "bonus":
            on = {"member.registered": "sign-up bonus", "review.posted": "review bonus"}.get(
                self.events.get(o.source, ("", ""))[0], "bonus")
            if o.source.startswith("birthday@"):
                on = "birth-month bonus"
            return f"{amount}, {on}, on {day} ({src})."
        if o.kind == "limited":
            lot = self.lots.get(o.lot_id)
            end = f", to be used by {lot.expires_on}" if lot is not None and lot.expires_on else ""
            return f"{amount}, limited-time points granted on {day}{end} ({src})."
        if o.kind in ("conversion", "adjustment"):
            what = "from converting earlier " + self.unit if o.kind == "conversion" else "rounding up the conversion"
            return f"{amount} {what} on {day}, when program version {o.version} came into force ({src})."
        if o.kind == "grant":
            reason = o.rule.split(":", 1)[1] if o.rule.startswith("grant:") else o.rule
            return f"{amount} granted by the shop on {day}, reason: {reason} ({src})."
        return f"{amount} ({o.kind}) on {day} ({src})."

    def applied_rows(self, o: Origin) -> Optional[list]:
        """The rate rows that chose the rates of the order an earn lot came from (None: not an
        order's earn, or the order is not kept)."""
        order = self.state.orders.get(o.order) if o.kind == "earn" and o.order else None
        version = next((v for v in self.program.versions if v.number == o.version), None)
        if order is None or version is None or version.earning is None:
            return None
        brand = brand_key(order.card_brand) if order.payment_method == CARD_METHOD else None
        env = order_env(order.course, order.tier, order.payment_method, brand, order.guest, order.placed_at,
                        self.program.tz, order.subscription_month)
        return chosen_rows(version.earning, order.lines, env, local_date(order.placed_at, self.program.tz))

    def origin_rule(self, o: Origin) -> list[str]:
        if o.rule.startswith("grant:"):
            return [f"No program rule made these: the shop granted them (points.granted), under program version {o.version}."]
        prefer = {"earn": ("earning",), "bonus": ("bonuses",), "limited": ("expiry",)}.get(o.kind, ())
        where = site_text(self.program, o.version, o.rule, prefer, self.applied_rows(o))
        self.seen(o.rule, o.version)
        return [f"Rule {o.rule}, program version {o.version}" + (f", written at {where}." if where else ".")]

    def step_text(self, o: Origin, e) -> str:
        n = _units(e.amount, self.unit)
        day = _day(e.at, self.tz)
        self.seen(e.rule, e.version)
        rule = f"rule {e.rule}" + (f", version {e.version}" if len(self.program.versions) > 1 else "")
        src = self.event(e.source)
        if e.action == "validate":
            return f"{n} became valid on {day}: the order shipped ({src}; {rule})."
        if e.action == "exchange":
            order = self.order_by_event.get(e.source)
            on = f" with order {order.id}" if order is not None else ""
            return f"{n} exchanged for a reward on {day}{on} ({src}; {rule})."
        if e.action == "convert":
            return (f"{n} converted on {day} into the unit of program version {e.version}, when that version came "
                    f"into force ({rule}); the new {self.unit} are listed as their own lots.")
        if e.action == "spend":
            order = self.order_by_event.get(e.source)
            on = f" on order {order.id}" if order is not None else ""
            return f"{n} used on {day}{on} ({src}; {rule})."
        if e.action == "expire":
            return f"{n} expired on {day}: {self.why_expired(o, e)}."
        if e.action == "void":
            kind = self.events.get(e.source, ("", ""))[0]
            why = {"order.cancelled": "the order was cancelled",
                   "order.returned": "items of the order were returned; the order now earns only on the kept items"
                   }.get(kind, "the order no longer earns them")
            return f"{n} voided on {day}: {why} ({src}; {rule})."
        if e.action == "clawback":
            return (f"{n} taken back on {day} to cover points of a returned or cancelled order that had "
                    f"already been used ({src}; {rule}).")
        if e.action == "restore":
            return f"{n} given back on {day}: they had been used on an order that was cancelled or returned ({src}; {rule})."
        if e.action == "hold":
            return f"{n} put on hold on {day} by the shop ({src}); they cannot be used until released."
        if e.action == "release":
            return f"{n} released from hold on {day} ({src})."
        return f"{n} moved from {e.from_state} to {e.to_state} on {day} ({e.action}, {src}; {rule})."

    def why_expired(self, o: Origin, e) -> str:
        lot = self.lots.get(e.lot)
        last = lot.expires_on if lot is not None else None
        version = next((v for v in self.program.versions if v.number == e.version), self.program.versions[0])
        expiry = version.expiry
        rule = f"rule {e.rule}"
        if o.kind == "limited" or (lot is not None and not lot.rolling and e.rule == expiry.limited_rule):
            return f"limited-time points end on the date set when they were issued, {last} ({rule})"
        if expiry.kind == "rolling" and last is not None and expiry.period is not None:
            acquired = expiry.period.before(last)
            return (f"the last valid day was {last}, {_period(expiry.period)} after the member last received points "
                    f"({acquired}), and no points came in after that; expired points are not restored ({rule})")
        if expiry.kind == "per_grant" and last is not None and expiry.period is not None:
            return f"points last {_period(expiry.period)} from the day they were given; the last valid day was {last} ({rule})"
        if last is not None:
            return f"the last valid day was {last} ({rule})"
        return rule

    def left_text(self, o: Origin) -> str:
        parts = []
        for st in ("valid", "pending", "held"):
            n = o.by_state[st]
            if n <= 0:
                continue
            text = f"{_units(n, self.unit)} {st}"
            if st == "valid" and self.current:
                until = self.valid_until(o)
                if until:
                    text += f" (valid until {until})"
            if st == "pending":
                text += " (waiting for the order to ship)"
            parts.append(text)
        return "Left now: " + (", ".join(parts) if parts else "nothing") + "."

    def valid_until(self, o: Origin) -> Optional[date]:
        for lot in self.lots.values():
            if lot.state == "valid" and (lot.id == o.lot_id or (lot.source, lot.rule, lot.kind, lot.granted_at)
                                         == (o.source, o.rule, o.kind, o.granted_at)):
                return self.state.lot_expires_on(lot)
        return None


def tell(program, state, stored_entries, events: dict, as_of: datetime, rebuilt: bool = False) -> tuple[str, dict]:
    """The story text and the balance by state it adds up to. ``rebuilt``: ``state`` and its
    entries are the member as it stood at ``as_of``, rebuilt from its events up to then
    (report.rebuilt_at) because the ledger has moved on since."""
    from engine.run.report import as_of as view_as_of

    entries = list(stored_entries)
    view = state
    current = state.clock is None or as_of >= state.clock
    if current:
        view, extra, _ = view_as_of(program, state, as_of)
        entries += extra
    else:   # a state ahead of as_of (a caller that did not rebuild it): the entries up to then
        entries = [e for e in entries if e.at <= as_of]
    story = Story(program, view, entries, events, as_of, view.all_lots(), current)
    origins = [o for o in story.origins() if o.granted_at <= as_of]
    totals = dict.fromkeys(STATES, 0)
    for o in origins:
        for st in STATES:
            totals[st] += o.by_state[st]
    unit = program.unit
    local = as_of.astimezone(program.tz)
    lines = [f"Member {state.member}: {program.name} ({program.id}), as of {local:%Y-%m-%d %H:%M} ({program.tz.key}).",
             f"Program file: {program.file}."]
    if rebuilt:
        lines.append(f"Note: the ledger has moved on since then; this is the balance as it was on "
                     f"{local:%Y-%m-%d}, rebuilt from the member's events up to that moment.")
    elif not current:
        lines.append(f"Note: the ledger has moved on since then; this is the balance as it was on "
                     f"{local:%Y-%m-%d}, rebuilt from the ledger entries up to that moment.")
    usable = f"Balance: {_units(totals['valid'], unit)} can be used now"
    if totals["valid"] and current:
        until = min((d for d in (view.lot_expires_on(l) for l in view.lots if l.state == "valid") if d), default=None)
        if until:
            usable += f"; the first of them are valid until {until}"
    lines.append(usable + ".")
    others = [f"{_units(totals[s], unit)} {w}" for s, w in (("pending", "pending (waiting for shipment)"),
                                                           ("held", "on hold")) if totals[s]]
    if others:
        lines.append("Also " + " and ".join(others) + ".")
    converted_kinds = ("conversion", "adjustment")
    received = sum(o.created for o in origins if o.kind not in converted_kinds)
    lines.append(f"In all {_units(received, unit)} received: {totals['used']:,} used, {totals['expired']:,} expired, "
                 f"{totals['void']:,} voided.")
    converted = sum(o.by_state["converted"] for o in origins)
    if converted:
        made = sum(o.created for o in origins if o.kind in converted_kinds)
        lines.append(f"At a program version change {_units(converted, unit)} were converted into {made:,} new {unit}.")
    if current and getattr(view, "debt", 0):
        lines.append(f"The member still owes {_units(view.debt, unit)} from a return; they come off the next points.")
    lines.append("")
    if not origins:
        lines.append("The member has received no points yet.")
    for i, o in enumerate(origins, 1):
        lines.append(f"{i}. {story.headline(o)}")
        for text in story.origin_rule(o):
            lines.append(f"   {text}")
        if o.first_state == "valid":
            lines.append("   - Valid at once.")
        elif o.first_state == "pending":
            lines.append("   - Pending until the order ships.")
        for step in sorted(o.steps, key=lambda s: s.at):
            lines.append(f"   - {step.text}")
        lines.append(f"   {story.left_text(o)}")
    if story.rules_seen:
        lines += ["", f"Rules mentioned ({program.file}):"]
        for rule, version in sorted(story.rules_seen, key=lambda rv: (_rule_key(rv[0]), rv[1])):
            where = site_text(program, version, rule)
            v = f" v{version}" if len(program.versions) > 1 else ""
            text = program.rules.get(rule, "")
            lines.append(f"  {rule}{v}" + (f" ({where.split(' (')[0]})" if where else "") + (f": {text}" if text else ""))
    patched = [v for v in program.versions if v.changed and v.starts_at <= as_of]
    if patched:
        lines += ["", "Versions that change single keys (every other setting as in the version before):"]
        for v in patched:
            lines.append(f"  v{v.number} from {v.effective_from}: "
                         + ", ".join(f"{key} ({pos.file}:{pos.line})" for key, pos in v.changed))
    return "\n".join(lines), totals


def _rule_key(rule: str) -> tuple:
    head, _, num = rule.rpartition("-")
    return (head, int(num)) if num.isdigit() else (rule, 0)


@click.command("explain")
@click.argument("program_path", metavar="PROGRAM")
@click.option("--db", required=True, help="The ledger (a SQLite path) that `loyalty run` wrote")
@click.option("--member", "member", required=True, help="Member id")
@click.option("--as-of", "as_of", default=None,
              help="Tell the balance as of this time (default: now, or the ledger's last event if later)")
def explain(program_path: str, db: str, member: str, as_of: Optional[str]) -> None:
    """Tell a member's balance lot by lot: event, rule id and version, program line, what happened since."""
    from engine.shell.loading import load_or_exit
    from engine.run.report import PastViewUnavailable, rebuilt_at
    from engine.store import StoreError, open_store, parse_db
    from engine.model.timeutil import parse_instant

    program = load_or_exit(program_path)
    if parse_db(db).missing():
        click.echo(f"{db}: no such ledger (run `loyalty run {program_path} EVENTS --db {db}` first)", err=True)
        sys.exit(1)
    try:
        store = open_store(db, program.id, program.tz)
    except (StoreError, ValueError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    try:
        state = store.load(member)
        if state is None or not state.registered:
            click.echo(f"member {member}: not in the ledger {db}", err=True)
            sys.exit(1)
        if as_of:
            try:
                when = parse_instant(as_of, program.tz)
            except ValueError as exc:
                click.echo(f"--as-of: {exc}", err=True)
                sys.exit(1)
        else:
            now = datetime.now(program.tz)
            last = store.last_time()
            when = max(now, datetime.fromisoformat(last)) if last else now
            if state.clock is not None and state.clock > when:
                when = state.clock
        try:
            past = rebuilt_at(program, store, state, when)   # before the member's last event: rebuilt
        except PastViewUnavailable as exc:
            click.echo(f"--as-of: {exc}", err=True)
            sys.exit(1)
        if past is None:
            text, _ = tell(program, state, store.entries(member), _event_types(store), when)
        elif past.state is None or not past.state.registered:
            click.echo(f"member {member}: not registered as of {when.astimezone(program.tz).isoformat()} "
                       f"in the ledger {db}", err=True)
            sys.exit(1)
        else:
            text, _ = tell(program, past.state, past.entries, _event_types(store), when, rebuilt=True)
    finally:
        store.close()
    click.echo(text)


COMMANDS = [explain]
