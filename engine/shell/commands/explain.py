"""`loyalty explain PROGRAM --db PATH --member ID [--as-of T]`: a member's balance as a story.

Lot by lot: which event created the points, under which rule id and program version, which line
of the program file says so, and what happened to them since (became valid, used on which order,
expired and why, voided by a cancellation or a return, put on hold). Plain sentences a customer
service agent can read aloud. Everything comes from the ledger (every entry records its rule and
version, X-3) and the program model (every setting records its rule id and position).
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NoReturn, Optional

import click

from engine.shell.commands import lang_option, language
from engine.core.earning import chosen_rows
from engine.format.messages import COMMAND_WORDS, unit_word, word
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
              rows: Optional[list] = None, lang: str = "en") -> str:
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
    return ("、" if lang == "ja" else " and ").join(
        word("explain.site", lang, line=pos.line, section=section, what=_what(what, lang)) for section, what, pos in sites)


_RATE_ROW = re.compile(r"earn rate row (\d+): (.*?)(?: when (.*))?")
_BY = re.compile(r"by (\S+) (.*)")
_EXPIRY = re.compile(r"expiry \((.*)\)")
_BONUS = re.compile(r"bonus on (\S+): (.*)")


def _what(what: str, lang: str) -> str:
    """A setting's description (rule_sites) in ``lang``; keys, rule ids, conditions and numbers as written."""
    if lang != "ja":
        return what
    if f"explain.what.{what}" in COMMAND_WORDS:
        return word(f"explain.what.{what}", lang)
    m = _RATE_ROW.fullmatch(what)
    if m:
        by = _BY.fullmatch(m.group(2))
        rate = word("explain.what.by", lang, by=by.group(1), values=by.group(2)) if by else m.group(2)
        cond = word("explain.what.when", lang, source=m.group(3)) if m.group(3) else ""
        return word("explain.what.rate_row", lang, n=m.group(1), rate=rate, cond=cond)
    m = _EXPIRY.fullmatch(what)
    if m:
        return word("explain.what.expiry", lang, kind=m.group(1))
    m = _BONUS.fullmatch(what)
    if m:
        return word("explain.what.bonus", lang, on=m.group(1), units=m.group(2))
    return what   # a setting found generically: its type name, as the model calls it


def _period(p, lang: str = "en") -> str:
    parts = [word(f"explain.{u if n != 1 else u[:-1]}", lang, n=n)
             for n, u in ((p.years, "years"), (p.months, "months"), (p.days, "days")) if n]
    return (" " if lang == "ja" else ", ").join(parts) or word("explain.days", lang, n=0)


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


def _units(n: int, unit: str, lang: str = "en") -> str:
    if lang == "ja":
        return f"{n:,} {unit_word(unit, lang)}"
    return f"{n:,} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


def _day(at: datetime, tz) -> str:
    return at.astimezone(tz).date().isoformat()


def _event_types(store) -> dict[str, tuple[str, str]]:
    """event id -> (type, at), where the store keeps them (the SQLite ledger does)."""
    try:
        return store.event_types()
    except Exception:  # another store layout: the story is told without event types
        return {}


def _event_words(kind: str, lang: str) -> str:
    """An event type in words ('order shipped'); a type without words as it is."""
    return word(f"explain.ev.{kind}", lang) if f"explain.ev.{kind}" in COMMAND_WORDS else kind


class Story:
    def __init__(self, program, state, entries, events: dict, as_of: datetime, lots, current: bool = True,
                 lang: str = "en"):
        self.lang = lang
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

    def w(self, code: str, **args) -> str:
        return word(f"explain.{code}", self.lang, **args)

    def units(self, n: int) -> str:
        return _units(n, self.unit, self.lang)

    def seen(self, rule: str, version: int) -> str:
        if (rule, version) not in self.rules_seen and not rule.startswith(("grant:", "operator:")):
            self.rules_seen.append((rule, version))
        return rule

    def event(self, source: str) -> str:
        """'event e3, order shipped' for an event id; a happening ('expiry@2026-01-06') as it is."""
        if "@" in source:
            return source
        kind = self.events.get(source, ("", ""))[0]
        return self.w("event_kind", id=source, kind=_event_words(kind, self.lang)) if kind else self.w("event", id=source)

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
        w = self.w
        amount = self.units(o.created)
        day = _day(o.granted_at, self.tz)
        src = self.event(o.source)
        if o.kind == "earn" and o.order:
            order = self.state.orders.get(o.order)
            tier = w("head_tier", tier=order.tier) if order is not None and order.tier else ""
            return w("head_earn", amount=amount, order=o.order, tier=tier, day=day, src=src)
        if o.kind == "bonus":
            on = {"member.registered": "signup", "review.posted": "review"}.get(
                self.events.get(o.source, ("", ""))[0], "other")
            if o.source.startswith("birthday@"):
                on = "birthday"
            return w("head_bonus", amount=amount, on=w(f"bonus.{on}"), day=day, src=src)
        if o.kind == "limited":
            lot = self.lots.get(o.lot_id)
            end = w("use_by", day=lot.expires_on) if lot is not None and lot.expires_on else ""
            return w("head_limited", amount=amount, day=day, end=end, src=src)
        if o.kind in ("conversion", "adjustment"):
            return w(f"head_{o.kind}", amount=amount, unit=unit_word(self.unit, self.lang), day=day, version=o.version,
                     src=src)
        if o.kind == "grant":
            reason = o.rule.split(":", 1)[1] if o.rule.startswith("grant:") else o.rule
            return w("head_grant", amount=amount, day=day, reason=reason, src=src)
        return w("head_other", amount=amount, kind=o.kind, day=day, src=src)

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
            return [self.w("by_shop", version=o.version)]
        prefer = {"earn": ("earning",), "bonus": ("bonuses",), "limited": ("expiry",)}.get(o.kind, ())
        where = site_text(self.program, o.version, o.rule, prefer, self.applied_rows(o), self.lang)
        self.seen(o.rule, o.version)
        if where:
            return [self.w("rule_at", rule=o.rule, version=o.version, where=where)]
        return [self.w("rule", rule=o.rule, version=o.version)]

    def step_text(self, o: Origin, e) -> str:
        w = self.w
        n = self.units(e.amount)
        day = _day(e.at, self.tz)
        self.seen(e.rule, e.version)
        rule = (w("step_rule_version", rule=e.rule, version=e.version) if len(self.program.versions) > 1
                else w("step_rule", rule=e.rule))
        src = self.event(e.source)
        if e.action == "validate":
            return w("validate", n=n, day=day, src=src, rule=rule)
        if e.action in ("exchange", "spend"):
            order = self.order_by_event.get(e.source)
            on = w("with_order" if e.action == "exchange" else "on_order", order=order.id) if order is not None else ""
            return w(e.action, n=n, day=day, on=on, src=src, rule=rule)
        if e.action == "convert":
            return w("convert", n=n, day=day, version=e.version, rule=rule, unit=unit_word(self.unit, self.lang))
        if e.action == "expire":
            return w("expire", n=n, day=day, why=self.why_expired(o, e))
        if e.action == "void":
            kind = self.events.get(e.source, ("", ""))[0]
            why = {"order.cancelled": "cancelled", "order.returned": "returned"}.get(kind, "other")
            return w("void", n=n, day=day, why=w(f"void.{why}"), src=src, rule=rule)
        if e.action in ("clawback", "restore", "hold", "release"):
            return w(e.action, n=n, day=day, src=src, rule=rule)
        old, new = (_state_word(x, self.lang) for x in (e.from_state, e.to_state))
        return w("moved", n=n, old=old, new=new, day=day, action=e.action, src=src, rule=rule)

    def why_expired(self, o: Origin, e) -> str:
        w = self.w
        lot = self.lots.get(e.lot)
        last = lot.expires_on if lot is not None else None
        version = next((v for v in self.program.versions if v.number == e.version), self.program.versions[0])
        expiry = version.expiry
        rule = w("step_rule", rule=e.rule)
        if o.kind == "limited" or (lot is not None and not lot.rolling and e.rule == expiry.limited_rule):
            return w("why_limited", last=last, rule=rule)
        if expiry.kind == "rolling" and last is not None and expiry.period is not None:
            acquired = expiry.period.before(last)
            return w("why_rolling", last=last, period=_period(expiry.period, self.lang), acquired=acquired, rule=rule)
        if expiry.kind == "per_grant" and last is not None and expiry.period is not None:
            return w("why_per_grant", period=_period(expiry.period, self.lang), last=last, rule=rule)
        if last is not None:
            return w("why_last", last=last, rule=rule)
        return rule

    def left_text(self, o: Origin) -> str:
        parts = []
        for st in ("valid", "pending", "held"):
            n = o.by_state[st]
            if n <= 0:
                continue
            text = self.w("left_part", units=self.units(n), state=_state_word(st, self.lang))
            if st == "valid" and self.current:
                until = self.valid_until(o)
                if until:
                    text += self.w("valid_until", day=until)
            if st == "pending":
                text += self.w("waiting")
            parts.append(text)
        return self.w("left", parts=("、" if self.lang == "ja" else ", ").join(parts) if parts else self.w("nothing"))

    def valid_until(self, o: Origin) -> Optional[date]:
        for lot in self.lots.values():
            if lot.state == "valid" and (lot.id == o.lot_id or (lot.source, lot.rule, lot.kind, lot.granted_at)
                                         == (o.source, o.rule, o.kind, o.granted_at)):
                return self.state.lot_expires_on(lot)
        return None


def tell(program, state, stored_entries, events: dict, as_of: datetime, rebuilt: bool = False,
         lang: str = "en") -> tuple[str, dict]:
    """The story text (in ``lang``) and the balance by state it adds up to. ``rebuilt``: ``state``
    and its entries are the member as it stood at ``as_of``, rebuilt from its events up to then
    (report.rebuilt_at) because the ledger has moved on since."""
    from engine.run.report import as_of as view_as_of

    def w(code: str, **args) -> str:
        return word(f"explain.{code}", lang, **args)

    entries = list(stored_entries)
    view = state
    current = state.clock is None or as_of >= state.clock
    if current:
        view, extra, _ = view_as_of(program, state, as_of)
        entries += extra
    else:   # a state ahead of as_of (a caller that did not rebuild it): the entries up to then
        entries = [e for e in entries if e.at <= as_of]
    story = Story(program, view, entries, events, as_of, view.all_lots(), current, lang)
    origins = [o for o in story.origins() if o.granted_at <= as_of]
    totals = dict.fromkeys(STATES, 0)
    for o in origins:
        for st in STATES:
            totals[st] += o.by_state[st]
    unit = program.unit
    units = story.units
    local = as_of.astimezone(program.tz)
    lines = [w("who", member=state.member, name=program.name, program=program.id, at=f"{local:%Y-%m-%d %H:%M}",
               tz=program.tz.key),
             w("file", file=program.file)]
    if rebuilt:
        lines.append(w("rebuilt_events", day=f"{local:%Y-%m-%d}"))
    elif not current:
        lines.append(w("rebuilt_entries", day=f"{local:%Y-%m-%d}"))
    first = ""
    if totals["valid"] and current:
        until = min((d for d in (view.lot_expires_on(l) for l in view.lots if l.state == "valid") if d), default=None)
        if until:
            first = w("first_until", day=until)
    lines.append(w("balance", units=units(totals["valid"]), first=first))
    others = [w(code, units=units(totals[s])) for s, code in (("pending", "pending"), ("held", "on_hold")) if totals[s]]
    if others:
        lines.append(w("also", parts=("、" if lang == "ja" else " and ").join(others)))
    converted_kinds = ("conversion", "adjustment")
    received = sum(o.created for o in origins if o.kind not in converted_kinds)
    lines.append(w("in_all", units=units(received), used=f"{totals['used']:,}", expired=f"{totals['expired']:,}",
                   void=f"{totals['void']:,}"))
    converted = sum(o.by_state["converted"] for o in origins)
    if converted:
        made = sum(o.created for o in origins if o.kind in converted_kinds)
        lines.append(w("converted", units=units(converted), made=f"{made:,}", unit=unit_word(unit, lang)))
    if current and getattr(view, "debt", 0):
        lines.append(w("owes", units=units(view.debt)))
    lines.append("")
    if not origins:
        lines.append(w("none_yet"))
    for i, o in enumerate(origins, 1):
        lines.append(f"{i}. {story.headline(o)}")
        for text in story.origin_rule(o):
            lines.append(f"   {text}")
        if o.first_state == "valid":
            lines.append(f"   - {w('at_once')}")
        elif o.first_state == "pending":
            lines.append(f"   - {w('until_ships')}")
        for step in sorted(o.steps, key=lambda s: s.at):
            lines.append(f"   - {step.text}")
        lines.append(f"   {story.left_text(o)}")
    if story.rules_seen:
        lines += ["", w("rules_seen", file=program.file)]
        for rule, version in sorted(story.rules_seen, key=lambda rv: (_rule_key(rv[0]), rv[1])):
            sites = rule_sites(program, version, rule)
            v = f" v{version}" if len(program.versions) > 1 else ""
            text = program.rules.get(rule, "")
            line = ((f"（{w('line', line=sites[0][2].line)}）" if lang == "ja" else f" ({w('line', line=sites[0][2].line)})")
                    if sites else "")
            lines.append(f"  {rule}{v}{line}" + (f": {text}" if text else ""))
    patched = [v for v in program.versions if v.changed and v.starts_at <= as_of]
    if patched:
        lines += ["", w("patched")]
        for v in patched:
            lines.append(w("patched_row", n=v.number, day=v.effective_from,
                           keys=", ".join(f"{key} ({pos.file}:{pos.line})" for key, pos in v.changed)))
    return "\n".join(lines), totals


def _state_word(state: str, lang: str) -> str:
    """A points state ('valid') in ``lang`` (the run report's words); in English as the ledger names it."""
    if lang != "ja":
        return state
    from engine.shell.words import state_name

    return state_name(state, lang)


def _rule_key(rule: str) -> tuple:
    head, _, num = rule.rpartition("-")
    return (head, int(num)) if num.isdigit() else (rule, 0)


@click.command("explain")
@click.argument("program_path", metavar="PROGRAM")
@click.option("--db", required=True, help="The ledger (a SQLite path) that `loyalty run` wrote")
@click.option("--member", "member", required=True, help="Member id")
@click.option("--as-of", "as_of", default=None,
              help="Tell the balance as of this time (default: now, or the ledger's last event if later)")
@lang_option
def explain(program_path: str, db: str, member: str, as_of: Optional[str], lang: Optional[str]) -> None:
    """Tell a member's balance lot by lot: event, rule id and version, program line, what happened since."""
    from engine.shell.loading import load_or_exit
    from engine.run.report import PastViewUnavailable, rebuilt_at
    from engine.store import StoreError, open_store, parse_db
    from engine.model.timeutil import parse_instant

    lang = language(lang)

    def fail(code: str, **args) -> NoReturn:
        click.echo(word(code, lang, **args), err=True)
        sys.exit(1)

    program = load_or_exit(program_path, lang)
    if parse_db(db).missing():
        fail("explain.no_ledger", db=db, program=program_path)
    try:
        store = open_store(db, program.id, program.tz)
    except (StoreError, ValueError) as exc:
        fail("cmd.store_open", detail=exc)
    try:
        state = store.load(member)
        if state is None or not state.registered:
            fail("explain.not_member", member=member, db=db)
        if as_of:
            try:
                when = parse_instant(as_of, program.tz)
            except ValueError as exc:
                fail("cmd.as_of", detail=exc)
        else:
            now = datetime.now(program.tz)
            last = store.last_time()
            when = max(now, datetime.fromisoformat(last)) if last else now
            if state.clock is not None and state.clock > when:
                when = state.clock
        try:
            past = rebuilt_at(program, store, state, when)   # before the member's last event: rebuilt
        except PastViewUnavailable as exc:
            fail("cmd.as_of", detail=exc)
        if past is None:
            text, _ = tell(program, state, store.entries(member), _event_types(store), when, lang=lang)
        elif past.state is None or not past.state.registered:
            fail("explain.not_yet", member=member, at=when.astimezone(program.tz).isoformat(), db=db)
        else:
            text, _ = tell(program, past.state, past.entries, _event_types(store), when, rebuilt=True, lang=lang)
    finally:
        store.close()
    click.echo(text)


COMMANDS = [explain]
