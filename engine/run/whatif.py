"""What a program change does (``loyalty diff``): the figures of one replayed ledger as of a moment,
and the comparison of two.

Every figure the program decides, per member and in total: points by state and their yen value,
the tier (or the ladder's stage) with the dates it changes, the tier each order was placed at,
effects (gifts, notices) with their dates, what the customers paid (items kept, fees, points used,
to pay), redemption requests clamped to the limits, and events refused. Each figure that changes
names the rule that produced it and where the rule is written (file:line).

A view over ledgers: it reads stores and states, never writes them.
"""
from __future__ import annotations

from engine.format import messages
import dataclasses
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Optional

import msgspec

from engine.format.program import Program, Ruled
from engine.model.events import OrderPlaced, decode_event
from engine.model.state import MemberState
from engine.model.timeutil import local_date, month_of
from engine.run.report import as_of, state_at

POINT_METRICS = ("granted", "used", "expired", "void", "outstanding", "cost_yen", "liability_yen")
MONEY_METRICS = ("items_yen", "fees_yen", "points_yen", "to_pay_yen")
COUNT_METRICS = ("orders", "clamped", "clamped_units")
METRICS = POINT_METRICS + MONEY_METRICS + COUNT_METRICS
LABELS = {"granted": "granted", "used": "used", "expired": "expired", "void": "voided",
          "outstanding": "outstanding", "cost_yen": "cost (yen)", "liability_yen": "liability (yen)",
          "items_yen": "items paid (yen)", "fees_yen": "fees paid (yen)", "points_yen": "points used (yen)",
          "to_pay_yen": "customers paid (yen)", "orders": "orders placed", "clamped": "redemptions clamped",
          "clamped_units": "units clamped away"}


def what_if(program: Program) -> Program:
    """The program as a what-if replays it: a redemption request above the limits is decided again
    by them (clamped, counted as clamped), never refused."""
    return dataclasses.replace(program, clamp_requests=True)


def default_as_of(programs: list[Program], last: Optional[datetime]) -> Optional[datetime]:
    """The moment to compare at: the last event, or, when a version of either program comes into
    force after it, the end of that version's first day (its start, its conversion and the
    happenings of that day, such as a month's evaluation, included)."""
    when = last
    for program in programs:
        for version in program.versions:
            if last is not None and version.starts_at > last:
                end = version.starts_at + timedelta(days=1) - timedelta(microseconds=1)
                when = max(when, end) if when else end
    return when


def rule_places(program: Program) -> dict[str, str]:
    """rule id -> "file:line" where the rule is written: the first setting with that id, or, when that
    setting is a section whose first part carries the same id (a fee of the exchange rules, the cap
    of the redemption), that part: the line a marketer edits."""
    places: dict[str, str] = {}
    refined: set[str] = set()
    seen: set[int] = set()

    def walk(obj, parent: Optional[str]) -> None:
        if id(obj) in seen or obj is None or isinstance(obj, (str, int, float, bool, datetime)):
            return
        seen.add(id(obj))
        here = parent
        if isinstance(obj, Ruled) and obj.rule:
            if obj.rule not in places:
                places[obj.rule] = f"{obj.pos.file}:{obj.pos.line}"
            elif obj.rule == parent and obj.rule not in refined:
                places[obj.rule] = f"{obj.pos.file}:{obj.pos.line}"
                refined.add(obj.rule)
            here = obj.rule
        if dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                walk(getattr(obj, f.name, None), here)
        elif isinstance(obj, (list, tuple, frozenset, set)):
            for x in obj:
                walk(x, here)
        elif isinstance(obj, dict):
            for x in obj.values():
                walk(x, here)

    for version in program.versions:
        walk(version, None)
    return places


def rule_at(text: str | bytes, filename: str, line: int, col: int) -> Optional[str]:
    """The rule id of the setting written at ``line``:``col`` of a program file: the ``rule_id`` of
    the innermost mapping around the value (or key) there; None when none has one, or the file
    does not read as YAML (a syntax mistake names its line only)."""
    from engine.format import yamlpos
    from engine.model.errors import ProgramError

    try:
        data, positions = yamlpos.load(text, filename)
    except ProgramError:
        return None
    best, best_at = None, (0, 0)
    for table in (positions.values, positions.keys):
        for path, pos in table.items():
            at = (pos.line, pos.col)
            if best_at < at <= (line, col) or (at == best_at and best is not None and len(path) > len(best)):
                best, best_at = path, at
    if best is None:
        return None
    nodes, node = [data], data
    for key in best:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        nodes.append(node)
    for node in reversed(nodes):
        if isinstance(node, dict) and isinstance(node.get("rule_id"), str):
            return node["rule_id"]
    return None


def rule_settings(text: str | bytes, filename: str) -> dict[str, tuple[list, str]]:
    """rule id -> (its settings, "file:line" of the first): every mapping of the file that carries a
    ``rule_id``, as canonical JSON, in file order; a mapping inside it that carries a rule of its
    own stands as that rule's name (so a change is the innermost rule's)."""
    from engine.format import yamlpos

    data, positions = yamlpos.load(text, filename)
    out: dict[str, tuple[list, str]] = {}

    def canon(node, top: bool):
        if isinstance(node, dict):
            if not top and isinstance(node.get("rule_id"), str):
                return f"<{node['rule_id']}>"
            return {str(k): canon(v, False) for k, v in node.items()}
        if isinstance(node, list):
            return [canon(v, False) for v in node]
        return node

    def walk(node, path: tuple) -> None:
        if isinstance(node, dict):
            rule = node.get("rule_id")
            if isinstance(rule, str):
                pos = positions.at(path)
                settings, line = out.setdefault(rule, ([], f"{pos.file}:{pos.line}"))
                settings.append(msgspec.json.encode(canon(node, True)).decode())
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))

    walk(data.get("versions") if isinstance(data, dict) else None, ("versions",))
    return out


def setting_changes(old: dict[str, tuple[list, str]], new: dict[str, tuple[list, str]]) -> list[dict]:
    """The rules whose settings differ between two files (rule_settings of each): changed, added
    (only in NEW) or removed (only in OLD), with the line they are written on; the true effect of
    an edit that no historical event touches (a new reward) is still named."""
    out = []
    for rule in sorted(set(old) | set(new)):
        a, b = old.get(rule), new.get(rule)
        if a is not None and b is not None and a[0] == b[0]:
            continue
        change = "changed" if a and b else "added" if b else "removed"
        either = b if b is not None else a
        assert either is not None   # the rule is in OLD or in NEW
        out.append({"rule": rule, "change": change, "line": either[1]})
    return out


@dataclass
class Figures:
    granted: int = 0        # every unit the member received (= valid + pending + held + used + expired + void)
    used: int = 0
    expired: int = 0
    void: int = 0
    outstanding: int = 0    # valid + pending + held: still to be used
    cost_yen: int = 0       # (granted - void - expired) x yen per unit of the granting version
    liability_yen: int = 0  # outstanding x yen per unit: what the shop still owes
    items_yen: int = 0      # the kept items of the member's orders, incl. tax
    fees_yen: int = 0       # fees charged on the orders (exchange, handling), incl. tax
    points_yen: int = 0     # points used on the orders as a discount, in yen
    to_pay_yen: int = 0     # items + fees - points: what the customer paid (shipping apart)
    orders: int = 0
    clamped: int = 0        # redemption requests cut down to what the limits allow
    clamped_units: int = 0
    tier: Optional[str] = None
    stages: list = field(default_factory=list)   # [(date, stage, rule), ...] the ladder's stage changes


@dataclass
class Side:
    path: str
    program: Program
    version: int
    figures: dict = field(default_factory=dict)       # member -> Figures
    cost_by_month: dict = field(default_factory=dict)  # "YYYY-MM" -> yen (by the month points were granted)
    rejected: dict = field(default_factory=dict)       # event id -> {"reason", "rule"}
    applied: int = 0
    by_rule: dict = field(default_factory=dict)        # rule -> metric -> amount
    effects: dict = field(default_factory=dict)        # member -> [(type, date, rule, detail), ...]
    order_tiers: dict = field(default_factory=dict)    # order -> (member, tier, tier rule, date placed)
    clamps: list = field(default_factory=list)         # {"member", "order", "asked", "allowed", "rule"}
    max_used: dict = field(default_factory=dict)       # order asking for "max" -> (member, units used, binding rule)


def _add(by_rule: dict, rule: str, metric: str, amount: int) -> None:
    if amount:
        row = by_rule.setdefault(rule or "(no rule)", {})
        row[metric] = row.get(metric, 0) + amount


def _requests(lines) -> dict[str, tuple[str, object]]:
    """order id -> (member, the redemption asked for: a number or "max") of the order.placed lines."""
    asked: dict[str, tuple[str, object]] = {}
    for raw in lines:
        if b'"redeem"' not in (raw if isinstance(raw, bytes) else raw.encode()):
            continue
        try:
            event = decode_event(raw)
        except Exception:   # a line the replay refuses: it is listed as refused there
            continue
        if isinstance(event, OrderPlaced) and event.redeem is not None:
            points = event.redeem.points if event.redeem.points is not None else event.redeem.credits
            if points is not None:
                asked[event.order] = (event.member, points)
    return asked


def _binding_rule(version, allowed: int) -> str:
    """The rule whose limit a clamped request was cut to (the smallest bound that equals it)."""
    red = version.redemption
    if red is None:
        return ""
    if red.cap is not None and red.cap.units == allowed:
        return red.cap.rule
    if red.per_amount is not None:
        return red.per_amount.rule
    if red.min_to_pay is not None:
        return red.min_to_pay.rule
    return red.rule


def measure(path: str, program: Program, store, result, when: datetime, lines) -> Side:
    """The figures of a replayed ledger as of ``when``."""
    values = {v.number: (v.redemption.unit_value_yen if v.redemption else 1) for v in program.versions}
    versions = {v.number: v for v in program.versions}
    side = Side(path, program, program.version_at(when).number, applied=len(result.applied),
                rejected={(r.get("event") or f"line {r.get('line')}"): {"reason": r["reason"], "rule": r.get("rule")}
                          for r in result.rejected})
    asked = _requests(lines)
    day = local_date(when, program.tz).isoformat()
    for effect in result.effects:
        if effect.at <= day:
            side.effects.setdefault(effect.member, []).append((effect.type, effect.at, effect.rule,
                                                               msgspec.json.encode(effect.detail).decode()))
    for member in store.members():
        stored = store.load(member)
        if stored is None:
            continue
        state, _ = state_at(program, store, stored, when)
        if state is None or not state.registered:
            continue
        view, _, due = as_of(program, state, when)
        for effect in due:
            side.effects.setdefault(effect.member, []).append((effect.type, effect.at, effect.rule,
                                                               msgspec.json.encode(effect.detail).decode()))
        side.figures[member] = _figures(program, view, when, values, versions, side, asked)
    for rows in side.effects.values():
        rows.sort(key=lambda e: (e[1], e[0], e[3]))
    return side


def _figures(program: Program, view: MemberState, when: datetime, values, versions, side: Side, asked) -> Figures:
    from engine.core.tiers import tier_at

    version = program.version_at(when)
    f = Figures()
    if version.ladder is not None and view.ladder is not None:
        f.tier = view.ladder.level
        f.stages = [(local_date(c.at, program.tz).isoformat(), c.level, c.rule) for c in view.ladder.history]
    elif version.tiers is not None:
        f.tier, _ = tier_at(version.tiers, view, when, program.tz)
    for lot in view.all_lots():
        if lot.state == "converted":   # its value lives on in the lots the conversion made
            continue
        f.granted += lot.amount
        _add(side.by_rule, lot.rule, "granted", lot.amount)
        if lot.state in ("used", "expired", "void"):
            setattr(f, lot.state, getattr(f, lot.state) + lot.amount)
            _add(side.by_rule, lot.rule, lot.state, lot.amount)
        value = values.get(lot.version, 1)
        if lot.state in ("valid", "pending", "held"):
            f.outstanding += lot.amount
            f.liability_yen += lot.amount * value
            _add(side.by_rule, lot.rule, "outstanding", lot.amount)
        if lot.state in ("valid", "pending", "held", "used"):
            yen = lot.amount * value
            f.cost_yen += yen
            _add(side.by_rule, lot.rule, "cost_yen", yen)
            month = month_of(lot.granted_at.astimezone(program.tz).date())
            side.cost_by_month[month] = side.cost_by_month.get(month, 0) + yen
    for order in view.orders.values():
        if order.guest:
            continue
        v = versions.get(order.version, version)
        value = values.get(order.version, 1)
        f.orders += 1
        tiers_rule = v.tiers.rule if v.tiers is not None else (v.ladder.rule if v.ladder is not None else "")
        side.order_tiers[order.id] = (view.member, order.tier, tiers_rule,
                                      local_date(order.placed_at, program.tz).isoformat())
        fee_rules = {fr.kind: fr.rule for fr in (v.exchange.fees if v.exchange is not None else ())}
        items = order.kept_incl
        fees = 0
        for kind, ex_tax, rate in order.fees:
            incl = ex_tax + int(ex_tax * _frac(rate))
            fees += incl
            _add(side.by_rule, fee_rules.get(kind, kind), "fees_yen", incl)
        points = order.points_used * value
        red_rule = v.redemption.rule if v.redemption is not None else ""
        _add(side.by_rule, red_rule, "points_yen", points)
        f.items_yen += items
        f.fees_yen += fees
        f.points_yen += points
        f.to_pay_yen += items + fees - points
        request = asked.get(order.id)
        if request is not None and request[0] == view.member and request[1] == "max":
            side.max_used[order.id] = (view.member, order.points_used, _binding_rule(v, order.points_used))
        if request is not None and request[0] == view.member and request[1] != "max" \
                and order.points_used < request[1]:
            rule = _binding_rule(v, order.points_used)
            f.clamped += 1
            f.clamped_units += request[1] - order.points_used
            _add(side.by_rule, rule, "clamped", 1)
            _add(side.by_rule, rule, "clamped_units", request[1] - order.points_used)
            side.clamps.append({"member": view.member, "order": order.id, "asked": request[1],
                                "allowed": order.points_used, "rule": rule})
    return f


def _frac(rate: float):
    from engine.core.pricing import frac

    return frac(rate)


# --- the comparison -------------------------------------------------------------------------------

def _effect_changes(member: str, old: list, new: list) -> list[dict]:
    """Effects of one member that differ: the k-th effect of a kind (type and detail) under OLD
    against the k-th under NEW, moved when its date differs, added or dropped when one side has none."""
    def grouped(rows):
        out: dict = {}
        for type_, at, rule, detail in rows:
            out.setdefault((type_, detail), []).append((at, rule))
        return out

    a, b = grouped(old), grouped(new)
    changes = []
    for key in sorted(set(a) | set(b)):
        xs, ys = a.get(key, []), b.get(key, [])
        for i in range(max(len(xs), len(ys))):
            x = xs[i] if i < len(xs) else None
            y = ys[i] if i < len(ys) else None
            if x is not None and y is not None and x[0] == y[0]:
                continue
            kind = "moved" if x and y else "added" if y else "dropped"
            either = y or x
            if either is None:
                continue
            changes.append({"member": member, "effect": key[0], "detail": key[1], "change": kind,
                            "old": x[0] if x else None, "new": y[0] if y else None, "rule": either[1]})
    return changes


def _stage_changes(member: str, old: list, new: list) -> list[dict]:
    changes = []
    for i in range(max(len(old), len(new))):
        x = old[i] if i < len(old) else None
        y = new[i] if i < len(new) else None
        either = y or x
        if x == y or either is None:
            continue
        changes.append({"member": member, "stage": either[1], "old": x[0] if x else None,
                        "old_stage": x[1] if x else None, "new": y[0] if y else None,
                        "new_stage": y[1] if y else None, "rule": either[2]})
    return changes


def compare(old: Side, new: Side) -> dict:
    members = sorted(set(old.figures) | set(new.figures))
    places = {**rule_places(old.program), **rule_places(new.program)}
    rows = []
    totals = {"old": dict.fromkeys(METRICS, 0), "new": dict.fromkeys(METRICS, 0)}
    tiers: dict[str, dict[str, int]] = {}
    tier_moves: dict[str, int] = {}
    effect_changes: list[dict] = []
    stage_changes: list[dict] = []
    for m in members:
        a, b = old.figures.get(m, Figures()), new.figures.get(m, Figures())
        delta = {k: getattr(b, k) - getattr(a, k) for k in METRICS}
        effects = _effect_changes(m, old.effects.get(m, []), new.effects.get(m, []))
        stages = _stage_changes(m, a.stages, b.stages)
        effect_changes += effects
        stage_changes += stages
        changed = a.tier != b.tier or any(delta.values()) or bool(effects) or bool(stages)
        rows.append({"member": m, "old": _public(a), "new": _public(b), "delta": delta,
                     "tier_changed": a.tier != b.tier, "effects_changed": len(effects),
                     "stage_dates_changed": len(stages), "changed": changed})
        for k in METRICS:
            totals["old"][k] += getattr(a, k)
            totals["new"][k] += getattr(b, k)
        for side, fig in (("old", a), ("new", b)):
            if fig.tier is not None:
                tiers.setdefault(fig.tier, {"old": 0, "new": 0})[side] += 1
        if a.tier != b.tier:
            key = f"{a.tier} -> {b.tier}"
            tier_moves[key] = tier_moves.get(key, 0) + 1
    order_tiers = []
    for order in sorted(set(old.order_tiers) & set(new.order_tiers)):
        (member, t_old, rule, day), (_, t_new, rule_new, _) = old.order_tiers[order], new.order_tiers[order]
        if t_old != t_new:
            order_tiers.append({"member": member, "order": order, "date": day, "old": t_old, "new": t_new,
                                "rule": rule_new or rule})
    order_tiers.sort(key=lambda c: (c["member"], c["date"], c["order"]))
    by_rule = []
    for rule in sorted(set(old.by_rule) | set(new.by_rule)):
        a, b = old.by_rule.get(rule, {}), new.by_rule.get(rule, {})
        delta = {k: b.get(k, 0) - a.get(k, 0) for k in sorted(set(a) | set(b)) if b.get(k, 0) != a.get(k, 0)}
        if delta:
            by_rule.append({"rule": rule, "line": places.get(rule), "old": a, "new": b, "delta": delta})
    for kind, items, count_key in (("stage", stage_changes, "stage_dates"), ("effect", effect_changes, "effects"),
                                   ("order tier", order_tiers, "order_tiers")):
        counts: dict[str, int] = {}
        for item in items:
            item["line"] = places.get(item["rule"])
            counts[item["rule"]] = counts.get(item["rule"], 0) + 1
        for rule, count in counts.items():
            row = next((r for r in by_rule if r["rule"] == rule), None)
            if row is None:
                row = {"rule": rule, "line": places.get(rule), "old": {}, "new": {}, "delta": {}}
                by_rule.append(row)
            row["delta"][f"{count_key}_changed"] = count
    max_requests = _max_changes(old, new, places)
    for c in max_requests:
        row = next((r for r in by_rule if r["rule"] == c["rule"]), None)
        if row is None:
            row = {"rule": c["rule"], "line": places.get(c["rule"]), "old": {}, "new": {}, "delta": {}}
            by_rule.append(row)
        key = "max_lowered" if c["new"] < c["old"] else "max_raised"
        row["delta"][key] = row["delta"].get(key, 0) + 1
        row["delta"][f"{key}_units"] = row["delta"].get(f"{key}_units", 0) + abs(c["new"] - c["old"])
    months = sorted(set(old.cost_by_month) | set(new.cost_by_month))
    only_old = sorted(set(old.rejected) - set(new.rejected))
    only_new = sorted(set(new.rejected) - set(old.rejected))
    for e in only_new:
        rule = new.rejected[e].get("rule")
        if rule:
            row = next((r for r in by_rule if r["rule"] == rule), None)
            if row is None:
                row = {"rule": rule, "line": places.get(rule), "old": {}, "new": {}, "delta": {}}
                by_rule.append(row)
            row["delta"]["refused"] = row["delta"].get("refused", 0) + 1
    warnings = []
    if old.program.id != new.program.id:
        warnings.append(("diff.two_programs", {"old": old.program.id, "new": new.program.id}))
    t_delta = {k: totals["new"][k] - totals["old"][k] for k in METRICS}
    return {
        "warnings": [messages.render(code, args) for code, args in warnings],
        "warning_codes": [{"code": code, "args": args} for code, args in warnings],
        "old": _side_head(old), "new": _side_head(new),
        "headline": {"cost_yen": t_delta["cost_yen"], "liability_yen": t_delta["liability_yen"],
                     "to_pay_yen": t_delta["to_pay_yen"], "refused_by_new": len(only_new),
                     "refused_only_by_old": len(only_old), "clamped": t_delta["clamped"],
                     "clamped_units": t_delta["clamped_units"],
                     "max_lowered": sum(1 for c in max_requests if c["new"] < c["old"]),
                     "max_lowered_units": sum(c["old"] - c["new"] for c in max_requests if c["new"] < c["old"])},
        "members": rows,
        "changed_members": sum(1 for r in rows if r["changed"]),
        "totals": {**totals, "delta": t_delta},
        "tiers": tiers,
        "tier_changes": tier_moves,
        "by_rule": by_rule,
        "stage_changes": stage_changes,
        "effect_changes": effect_changes,
        "order_tier_changes": order_tiers,
        "clamped": {"old": old.clamps, "new": new.clamps},
        "max_requests": max_requests,
        "cost_by_month": [{"month": mo, "old": old.cost_by_month.get(mo, 0), "new": new.cost_by_month.get(mo, 0)}
                          for mo in months],
        "rejected_only_old": [{"event": e, **old.rejected[e], "line": places.get(old.rejected[e].get("rule"))}
                              for e in only_old],
        "rejected_only_new": [{"event": e, **new.rejected[e], "line": places.get(new.rejected[e].get("rule"))}
                              for e in only_new],
    }


def _max_changes(old: Side, new: Side, places: dict) -> list[dict]:
    """Orders that asked for "max" and were allowed another number of units under NEW: the request
    decided again by the new limits (the rule: the limit that binds the lower side)."""
    out = []
    for order in sorted(set(old.max_used) & set(new.max_used)):
        (member, a, rule_a), (_, b, rule_b) = old.max_used[order], new.max_used[order]
        if a != b:
            rule = rule_b if b < a else rule_a
            out.append({"member": member, "order": order, "asked": "max", "old": a, "new": b, "rule": rule,
                        "line": places.get(rule)})
    return out


def _public(f: Figures) -> dict:
    out = asdict(f)
    out["stages"] = [list(s) for s in f.stages]
    return out


def _side_head(side: Side) -> dict:
    return {"path": side.path, "program": side.program.id, "version": side.version, "applied": side.applied,
            "rejected": len(side.rejected)}
