"""Program files → immutable Program objects: safe YAML, JSON Schema, then semantic checks.

Like beancount's loader, it reports every problem it finds in one pass, each as
``FILE:LINE:COL: message``; a file with any problem yields no program at all.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, get_args, get_type_hints, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema

from engine.format import yamlpos
from engine.model.errors import Pos, Problem, ProgramError
from engine.model.events import OrderPlaced, Payment
from engine.format.expr import attribute_keys, compared_values, compile_expr
from engine.format.messages import near_hint, problem
from engine.format.program import (Bonus, Cap, Catalog, Deadline, Earning, ExchangeRules, Expiry, FeeRule, MemberDiscount,
                      MigrationStep, MinToPay, PerAmount, Perk, Pricing, Program, RateRow, Redemption, Refusal,
                      Returns, Reward,
                      TierLevel, Tiers, Version)
from engine.format.program import Accounting, Ladder, LadderGift, LadderLevel, LadderNotice, LadderStep
from engine.model.timeutil import Period, start_of

# The schemas ship inside the package (a wheel has no top-level schema/); schema/ at the top of the
# repository holds the same files for editors, and tests/test_packaging.py proves them identical.
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# Names an expression may use, by where it stands.
LINE_NAMES = frozenset({"course", "tier", "tags", "sku", "product", "qty", "unit_price", "tax_rate",
                        "payment_method", "card_brand", "guest", "order_date", "subscription_month"})
FEE_NAMES = frozenset({"fulfilment", "course", "items_incl_tax", "items_ex_tax", "payment_method", "units"})
BONUS_NAMES = frozenset({"attributes", "tier", "product", "bought"})
# The values the events can carry for these names (engine/model/events.py)
COURSES = frozenset(get_args(get_type_hints(OrderPlaced)["course"]))
PAYMENT_METHODS = frozenset(get_args(get_type_hints(Payment)["method"]))
# Sections a version inherits from the one before (a migration belongs to its own version only).
SECTIONS = ("pricing", "tiers", "earning", "redemption", "expiry", "bonuses", "returns", "catalog", "exchange", "perks",
            "ladder")

_validator: jsonschema.protocols.Validator | None = None


def program_schema() -> dict:
    return json.loads((SCHEMA_DIR / "program.schema.json").read_text(encoding="utf-8"))


def _is_whole(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 500.0 as an integer; the engine's counts and amounts are ints (a float
    # would be committed into state that cannot be read back), so only a written whole number is one
    return isinstance(instance, int) and not isinstance(instance, bool)


def _schema_validator():
    global _validator  # a cache of a constant; the schema file never changes while we run
    if _validator is None:
        schema = program_schema()
        base = jsonschema.validators.validator_for(schema)
        cls = jsonschema.validators.extend(base, type_checker=base.TYPE_CHECKER.redefine("integer", _is_whole))
        _validator = cls(schema, format_checker=base.FORMAT_CHECKER)
    return _validator


def _field(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "(top)"


def _non_finite(data: Any, positions: yamlpos.Where) -> tuple[list[Problem], set[tuple]]:
    """Every number in a program must be finite: .nan passes every bound (each comparison with it
    is false) and .inf has no decimal value. Returns the problems and their paths."""
    problems: list[Problem] = []
    paths: set[tuple] = set()
    todo: list[tuple[tuple, Any]] = [((), data)]
    while todo:   # no recursion: the YAML's depth is bounded by the loader, not by Python's stack
        path, value = todo.pop()
        if isinstance(value, dict):
            todo.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((path + (i,), v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            paths.add(path)
            written = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}[repr(value)]
            problems.append(problem(positions.at(path), "number.not_finite", field=_field(path), value=written))
    return problems, paths


def _schema_problems(data: Any, positions: yamlpos.Where) -> list[Problem]:
    problems, skip = _non_finite(data, positions)
    for error in sorted(_schema_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        if tuple(error.absolute_path) in skip:
            continue   # already said: not a finite number
        if error.context:
            # oneOf/anyOf: the branch that got furthest into the value says it best (bands.0.from
            # "must be a whole number" rather than "by: not one of tier, ..."); at the same depth,
            # the one whose type fits ("must not be negative" rather than "is not of type 'object'").
            error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = list((error.schema.get("properties") or {}).keys())
            for key in error.instance:
                if key in known:
                    continue
                near = difflib.get_close_matches(str(key), known, n=1)
                hint = _split_number_hint(error.instance, key) or near_hint(
                    near, ("hint.expected_one_of", {"names": ", ".join(known)}))
                problems.append(problem(positions.at(path + (key,), key=True), "schema.unknown_key", hint, key=key))
            continue
        problems.append(_schema_problem(error, positions.at(path), _field(path)))
    return problems


_PLAIN = {"maximum": "schema.maximum", "exclusiveMaximum": "schema.exclusiveMaximum", "minimum": "schema.minimum",
          "exclusiveMinimum": "schema.exclusiveMinimum", "format": "schema.format", "pattern": "schema.pattern",
          "oneOf": "schema.many_branches", "const": "schema.const", "uniqueItems": "schema.unique"}
_COMMAS = re.compile(r"-?\d{1,3}(?:,\d{3})+")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*[%％]")


_YEN = re.compile(r"[¥]\s*(-?[\d,]+)|(-?[\d,]+)\s*円")
_DIGITS = re.compile(r"-?\d+(?:\.\d+)?")


def _split_number_hint(mapping: Any, key: Any):
    """``{id: silver, min: 50,000}``: in a { } mapping the comma splits the number, so '000' comes out
    as a key of its own after ``min: 50`` (or ``min: ¥50``). The hint: the number without commas."""
    if not (isinstance(mapping, dict) and re.fullmatch(r"\d{3}", str(key)) and mapping.get(key) is None):
        return None
    keys = list(mapping)
    at = keys.index(key)
    head = [k for k in keys[:at] if not re.fullmatch(r"\d{3}", str(k))]
    if not head:
        return None
    before = str(mapping[head[-1]]).strip().lstrip("¥￥").strip()
    if not re.fullmatch(r"-?\d{1,3}", before):
        return None
    groups = [str(k) for k in keys[keys.index(head[-1]) + 1:] if re.fullmatch(r"\d{3}", str(k))]
    return ("hint.number_commas_flow", {"key": head[-1], "n": before + "".join(groups)})


def _slip_hint(error, value: Any):
    """A hint for the marketer's usual slips: '50,000' for a number, 5 or '5%' for a rate of 5%,
    '50000円' or '¥50,000' for a sum, full-width digits ('５００００', '５％')."""
    if isinstance(value, str):
        import unicodedata

        written = value.strip()
        value = unicodedata.normalize("NFKC", written)   # full-width digits and signs as plain ones
        yen = _YEN.fullmatch(value)
        if yen:
            return ("hint.number_plain", {"n": (yen.group(1) or yen.group(2)).replace(",", "")})
        if value != written and _DIGITS.fullmatch(value):
            return ("hint.number_halfwidth", {"n": value})
    if isinstance(value, str) and _COMMAS.fullmatch(value.strip()):
        return ("hint.number_commas", {"n": value.strip().replace(",", "")})
    percent = None
    if isinstance(value, str) and _PERCENT.fullmatch(value.strip()):
        found = _PERCENT.fullmatch(value.strip())
        percent = found.group(1) if found else None
    elif (error.validator in ("maximum", "exclusiveMaximum") and error.validator_value == 1
          and isinstance(value, (int, float)) and not isinstance(value, bool) and 1 < value <= 100):
        percent = f"{value:g}"
    if percent is not None:
        fraction = f"{float(percent) / 100:.6g}"
        return ("hint.rate_fraction", {"percent": percent, "fraction": fraction})
    return None


def _schema_problem(error, pos: Pos, field: str) -> Problem:
    """One schema error as a problem by code (its English text as jsonschema words it)."""
    value, limit = error.instance, error.validator_value
    kind = error.validator
    slip = _slip_hint(error, value)
    if kind == "enum":
        near = difflib.get_close_matches(str(value), [str(v) for v in limit], n=1)
        return problem(pos, "schema.enum", near_hint(near) or slip, field=field, value=repr(value),
                       choices=", ".join(map(str, limit)))
    if kind == "minimum" and isinstance(value, (int, float)) and value < 0:
        return problem(pos, "number.negative", slip, field=field, value=value)
    if kind == "type" and limit == "integer" and isinstance(value, float):
        hint = ("hint.write", {"n": int(value)}) if value.is_integer() and abs(value) < 1e16 else None
        return problem(pos, "number.not_whole", hint, field=field, value=repr(value))
    if kind == "required":
        missing = next((p for p in limit if isinstance(value, dict) and p not in value), None)
        if missing is not None and error.message == f"{missing!r} is a required property":
            return problem(pos, "schema.required", field=field, prop=repr(missing))
    if kind == "type":
        types = ", ".join(repr(t) for t in (limit if isinstance(limit, list) else [limit]))
        if error.message == f"{value!r} is not of type {types}":
            return problem(pos, "schema.type", slip, field=field, value=repr(value), types=types)
    if kind in _PLAIN:
        code = _PLAIN[kind]
        shown = repr(limit) if kind in ("format", "pattern", "oneOf") else limit
        if kind == "oneOf":
            shown = ", ".join(repr(s) for s in limit)
        candidate = problem(pos, code, slip, field=field, value=repr(value), limit=shown)
        if candidate.message == f"{field}: {error.message}":
            return candidate
    for code, ends in (("schema.too_short", " is too short"), ("schema.too_long", " is too long"),
                       ("schema.empty", " should be non-empty"),
                       ("schema.few_properties", " does not have enough properties"),
                       ("schema.no_branch", " is not valid under any of the given schemas"),
                       ("schema.unique", " has non-unique elements")):
        if error.message == f"{value!r}{ends}":
            return problem(pos, code, slip, field=field, value=repr(value))
    if kind == "const" and error.message == f"{limit!r} was expected":
        return problem(pos, "schema.const", field=field, limit=repr(limit))
    return problem(pos, "schema.other", slip, field=field, detail=error.message)


class _Compiler:
    """Builds model objects from schema-valid data, collecting semantic problems."""

    def __init__(self, filename: str, positions: yamlpos.Where, rules: dict):
        self.filename = filename
        self.positions = positions
        self.rules = rules
        self.problems: list[Problem] = []
        self.version_exprs: list = []     # (Expr, what) compiled for the version being built
        self.declared_tags: frozenset | None = None         # the program's `tags`, when it lists them
        self.declared_attributes: frozenset | None = None   # the program's `attributes`, when it lists them

    def pos(self, path: tuple) -> Pos:
        return self.positions.at(path)

    def problem(self, path: tuple, code: str, hint: Optional[tuple[str, dict]] = None, at_key: bool = False,
                **args: Any) -> None:
        """A problem at ``path`` (``at_key``: at the key's position rather than its value's)."""
        self.problems.append(problem(self.positions.at(path, key=at_key), code, hint, **args))

    def rule(self, node: dict, path: tuple) -> str:
        rule_id = node["rule_id"]
        if self.rules and rule_id not in self.rules:
            near = difflib.get_close_matches(rule_id, list(self.rules), n=1)
            self.problem(path + ("rule_id",), "rule.unknown", near_hint(near), rule=rule_id)
        return rule_id

    def expr(self, text: str, path: tuple, names: frozenset, what: str, rule: str | None = None):
        try:
            compiled = compile_expr(text, self.positions.at(path, text=True), names, what, rule)
        except ProgramError as exc:
            self.problems.extend(exc.problems)
            return None
        self.version_exprs.append((compiled, what))
        return compiled

    def known_values(self, exprs: list, known: dict[str, tuple[frozenset, str]]) -> None:
        """Texts an expression compares a name with that name nothing the program knows: a tier or
        level the version does not have (``tier == 'platinum'``), a course or payment method the
        events cannot carry, a tag or attribute outside the program's declared ``tags`` /
        ``attributes`` (checked only when the program declares them)."""
        for compiled, what in exprs:
            source = compiled.source
            lead = len(source) - len(source.lstrip())
            for name, value, col in compared_values(source):
                if name not in known:
                    continue
                values, kind = known[name]
                if value in values:
                    continue
                near = difflib.get_close_matches(value, sorted(values), n=1)
                self.problems.append(problem(Pos(compiled.pos.file, compiled.pos.line, compiled.pos.col + lead + col),
                                             f"values.no_{kind}", _names_hint(near, kind, values), what=what, value=value))
        for compiled, what in exprs:
            if "attributes" in known and "attributes" in compiled.names:
                values, kind = known["attributes"]
                for key, col in attribute_keys(compiled.source):
                    if key not in values:
                        near = difflib.get_close_matches(key, sorted(values), n=1)
                        lead = len(compiled.source) - len(compiled.source.lstrip())
                        self.problems.append(problem(
                            Pos(compiled.pos.file, compiled.pos.line, compiled.pos.col + lead + col),
                            f"values.no_{kind}", _names_hint(near, kind, values), what=what, value=key))

    @staticmethod
    @overload
    def period(node: dict) -> Period: ...

    @staticmethod
    @overload
    def period(node: None) -> None: ...

    @staticmethod
    @overload
    def period(node: dict | None) -> Period | None: ...

    @staticmethod
    def period(node: dict | None) -> Period | None:
        if node is None:
            return None
        return Period(node.get("years", 0), node.get("months", 0), node.get("days", 0))

    @staticmethod
    def frac(value: float | int) -> Fraction:
        return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)

    def pricing(self, node: dict | None, path: tuple) -> Pricing:
        node = node or {}
        md = node.get("member_discount")
        return Pricing(
            member_discount=MemberDiscount(self.rule(md, path + ("member_discount",)), self.pos(path + ("member_discount",)),
                                           self.frac(md["rate"]), md.get("per", "unit")) if md else None,
            coupon_rule=self.rule(node["coupon"], path + ("coupon",)) if "coupon" in node else None,
            shipping_tax_rate=self.frac(node.get("shipping_tax_rate", 0)),
        )

    def tiers(self, node: dict | None, path: tuple) -> Tiers | None:
        if node is None:
            return None
        levels: list[TierLevel] = []
        seen: set[str] = set()
        for i, level in enumerate(node["levels"]):
            lpath = path + ("levels", i)
            if level["id"] in seen:
                self.problem(lpath + ("id",), "tier.twice", tier=level['id'])
            seen.add(level["id"])
            if levels and level["min"] <= levels[-1].min:
                self.problem(lpath + ("min",), "tier.min_order", tier=level['id'], prev=levels[-1].id, min=levels[-1].min)
            levels.append(TierLevel(level["id"], level["min"], self.pos(lpath)))
        if levels and levels[0].min != 0:
            self.problem(path + ("levels", 0, "min"), "tier.first_min")
        return Tiers(self.rule(node, path), self.pos(path), self.period(node["window"]), node["measure"],
                     node.get("counts_from", "placed"), tuple(levels), node.get("compare") == "more_than")

    def earning(self, node: dict | None, path: tuple, tiers: Tiers | None) -> Earning | None:
        if node is None:
            return None
        rows = []
        tier_ids = [t.id for t in tiers.levels] if tiers else []
        for i, row in enumerate(node.get("rates", [])):
            rpath = path + ("rates", i)
            when = self.expr(row["when"], rpath + ("when",), LINE_NAMES, "when", row["rule_id"]) if "when" in row else None
            valid_from = date.fromisoformat(row["from"]) if "from" in row else None
            valid_until = date.fromisoformat(row["until"]) if "until" in row else None
            if valid_from and valid_until and valid_until < valid_from:
                self.problem(rpath + ("until",), "rates.until_before_from", until=valid_until, since=valid_from)
            rate = row.get("rate")
            flat, by, values = None, None, {}
            bands: tuple[tuple[Any, Fraction], ...] = ()
            if rate is None:   # a campaign row: multiply / add what the rows below give
                if i == len(node["rates"]) - 1:
                    self.problem(rpath, "rates.campaign_last_row", ("hint.campaign_above", {}))
            elif isinstance(rate, dict) and "bands" in rate:
                by = rate["by"]
                bands = tuple((b["from"], self.frac(b["rate"])) for b in rate["bands"])
                if [b[0] for b in bands] != sorted({b[0] for b in bands}):
                    self.problem(rpath + ("rate", "bands"), "rates.bands_order")
            elif isinstance(rate, dict):
                by = rate["by"]
                values = {k: self.frac(v) for k, v in rate["values"].items()}
                if by == "tier":
                    if not tiers:
                        self.problem(rpath + ("rate", "by"), "rates.need_tiers")
                    for key in values:
                        if key not in tier_ids:
                            near = difflib.get_close_matches(key, tier_ids, n=1)
                            self.problem(rpath + ("rate", "values", key), "rates.unknown_tier",
                                         near_hint(near, ("hint.tiers_are", {"names": ", ".join(tier_ids)})),
                                         at_key=True, tier=key)
                    # A row without a tier's rate lets that tier fall through to the next row;
                    # the last row has nothing to fall to, so it must cover every tier.
                    if i == len(node["rates"]) - 1:
                        for tier_id in tier_ids:
                            if tier_id not in values:
                                self.problem(rpath + ("rate", "values"), "rates.no_rate_last_row", tier=tier_id)
            else:
                flat = self.frac(rate)
            for t, tag in enumerate(row.get("exclude_tags", ())):
                if self.declared_tags is not None and tag not in self.declared_tags:
                    near = difflib.get_close_matches(tag, sorted(self.declared_tags), n=1)
                    self.problem(rpath + ("exclude_tags", t), "rates.no_tag",
                                 _names_hint(near, "tag", self.declared_tags), tag=tag)
            rows.append(RateRow(self.rule(row, rpath), self.pos(rpath), when, valid_from, valid_until, flat, by, values, bands,
                                frozenset(row.get("exclude_tags", ())),
                                self.frac(row["multiply"]) if "multiply" in row else None,
                                self.frac(row["add"]) if "add" in row else None))
        written = [("when" in r) for r in node.get("rates", [])]
        if all(r.when is not None or not w for r, w in zip(rows, written)):   # (a broken when: said already)
            self.unreachable_rows(rows, path + ("rates",), tier_ids)
        return Earning(self.rule(node, path), self.pos(path), node["base"], node.get("after_points", False),
                       node.get("pending_until", "shipped"), node.get("guests_earn", False), tuple(rows),
                       node.get("kind", "rate"), node.get("per_yen", 0), node.get("units", 1),
                       node.get("counts_at", "shipped"))

    def unreachable_rows(self, rows: list[RateRow], path: tuple, tier_ids: list[str]) -> None:
        """Rows that can never match (the first matching row wins): below a row that takes every
        line (no condition, no dates, no excluded tag, a rate for every line), or below a row with
        the same condition that has a rate for every line this one has."""
        def condition(row: RateRow) -> tuple:
            return (row.when.source if row.when is not None else None, row.valid_from, row.valid_until,
                    row.exclude_tags, row.by)

        def covers(row: RateRow, other: RateRow) -> bool:
            if row.campaign:
                return False
            if row.flat is not None:
                return True
            if row.bands or other.bands or other.flat is not None or other.campaign:
                return False
            return row.by == other.by and set(other.values) <= set(row.values)

        for j, row in enumerate(rows):
            for i, earlier in enumerate(rows[:j]):
                takes_all = (not earlier.campaign and earlier.when is None and earlier.valid_from is None
                             and earlier.valid_until is None and not earlier.exclude_tags
                             and (earlier.flat is not None
                                  or (earlier.by == "tier" and tier_ids and set(tier_ids) <= set(earlier.values))))
                if takes_all:
                    self.problem(path + (j,), "rates.never_matches_all", ("hint.first_row_wins_move", {}),
                                 n=i + 1, rule=earlier.rule, line=earlier.pos.line)
                    break
                if condition(earlier) == condition(row) and covers(earlier, row):
                    self.problem(path + (j,), "rates.never_matches_same", ("hint.first_row_wins_change", {}),
                                 n=i + 1, rule=earlier.rule, line=earlier.pos.line)
                    break

    def migration(self, nodes: list | None, path: tuple, index: int) -> tuple:
        steps = []
        if nodes and index == 0:
            self.problem(path, "migration.first_version")
        for i, node in enumerate(nodes or []):
            spath = path + (i,)
            op = node["op"]
            need = {"convert_units": ["from_unit_value_yen"], "grant": ["units"]}.get(op, [])
            for key in need:
                if key not in node:
                    self.problem(spath + ("op",), "migration.op_needs", op=op, key=key)
            rem = node.get("remainder") or {}
            when = self.expr(node["when"], spath + ("when",), BONUS_NAMES, "when", node["rule_id"]) if "when" in node else None
            steps.append(MigrationStep(self.rule(node, spath), self.pos(spath), op, node.get("from_unit_value_yen", 0),
                                       rem.get("pool_expiry", "earliest"), self.period(rem.get("round_up_expires_after")),
                                       when, node.get("units", 0),
                                       date.fromisoformat(node["expires_on"]) if "expires_on" in node else None,
                                       node.get("per", "unit")))
        return tuple(steps)

    def perks(self, nodes: list | None, path: tuple) -> tuple:
        return tuple(Perk(self.rule(n, path + (i,)), self.pos(path + (i,)), n["on"], n.get("free_shipping", False),
                          n.get("effect"), dict(n.get("detail") or {})) for i, n in enumerate(nodes or []))

    def redemption(self, node: dict | None, path: tuple) -> Redemption | None:
        if node is None:
            return None
        cap = node.get("cap_per_order")
        mtp = node.get("min_to_pay")
        per = node.get("per_amount")
        return Redemption(
            self.rule(node, path), self.pos(path), node["unit_value_yen"],
            Cap(self.rule(cap, path + ("cap_per_order",)), self.pos(path + ("cap_per_order",)), cap["units"]) if cap else None,
            MinToPay(self.rule(mtp, path + ("min_to_pay",)), self.pos(path + ("min_to_pay",)), mtp.get("default", 0),
                     dict(mtp.get("by_method", {})), dict(mtp.get("by_card_brand", {}))) if mtp else None,
            PerAmount(self.rule(per, path + ("per_amount",)), self.pos(path + ("per_amount",)), per["yen"], per["units"])
            if per else None,
        )

    def catalog(self, node: dict | None, path: tuple) -> Catalog | None:
        if node is None:
            return None
        rewards = {}
        for i, r in enumerate(node["rewards"]):
            if r["id"] in rewards:
                self.problem(path + ("rewards", i, "id"), "catalog.reward_twice", reward=r['id'])
            rewards[r["id"]] = Reward(r["id"], r.get("name", r["id"]), r["units"], self.pos(path + ("rewards", i)))
        return Catalog(self.rule(node, path), self.pos(path), rewards, node.get("returnable", False))

    def exchange(self, node: dict | None, path: tuple, catalog: Catalog | None) -> ExchangeRules | None:
        if node is None:
            return None
        if catalog is None:
            self.problem(path, "exchange.needs_catalog")
        ref = node.get("refuse_methods")
        refuse = Refusal(self.rule(ref, path + ("refuse_methods",)), self.pos(path + ("refuse_methods",)),
                         frozenset(ref["methods"]), ref["reason"]) if ref else None
        fees = []
        for i, f in enumerate(node.get("fees", [])):
            fpath = path + ("fees", i)
            waived = self.expr(f["waived_when"], fpath + ("waived_when",), FEE_NAMES, "waived_when",
                               f["rule_id"]) if "waived_when" in f else None
            fees.append(FeeRule(self.rule(f, fpath), self.pos(fpath), f["kind"], f["ex_tax"], f.get("per_units"),
                                f["tax_rate"], waived))
        # The schema checks the country code's form; importing the holiday tables to check it
        # against them would cost validation ~150 ms, so that happens at first use.
        dl = node.get("deadline")
        nodes = [] if not dl else ([(dl, path + ("deadline",))] if isinstance(dl, dict)
                                   else [(d, path + ("deadline", i)) for i, d in enumerate(dl)])
        deadlines = tuple(Deadline(self.rule(d, dpath), self.pos(dpath), d["business_days"], d.get("calendar", "JP"),
                                   frozenset(d.get("applies_to", ["exchanges"])), d.get("from", "delivery_date"))
                          for d, dpath in nodes)
        return ExchangeRules(self.rule(node, path), self.pos(path), node.get("requires_product_order", True), refuse,
                             tuple(fees), deadlines)

    def expiry(self, node: dict | None, path: tuple) -> Expiry:
        if node is None:
            self.problem(path, "expiry.missing")
            return Expiry("", self.pos(path), "none", None, None)
        if node["kind"] != "none" and "period" not in node:
            self.problem(path + ("kind",), "expiry.needs_period", kind=node['kind'])
        limited = node.get("limited_time_rule_id")
        if limited and self.rules and limited not in self.rules:
            self.problem(path + ("limited_time_rule_id",), "rule.unknown", rule=limited)
        cancel = node.get("on_subscription_cancel")
        return Expiry(self.rule(node, path), self.pos(path), node["kind"], self.period(node.get("period")), limited,
                      self.rule(cancel, path + ("on_subscription_cancel",)) if cancel else None)

    def bonuses(self, nodes: list | None, path: tuple) -> tuple[Bonus, ...]:
        out = []
        for i, node in enumerate(nodes or []):
            bpath = path + (i,)
            when = self.expr(node["when"], bpath + ("when",), BONUS_NAMES, "when", node["rule_id"]) if "when" in node else None
            if node.get("once_per") == "member":
                # the engine keeps no record of a bonus given to a member: refused rather than ignored
                self.problem(bpath + ("once_per",), "bonus.once_per_member")
            out.append(Bonus(self.rule(node, bpath), self.pos(bpath), node["on"], node["units"], when, node.get("once_per")))
        return tuple(out)

    def returns(self, node: dict | None, path: tuple) -> Returns | None:
        if node is None:
            return None
        return Returns(self.rule(node, path), self.pos(path), self.period(node.get("window")),
                       node.get("counts_from", "delivered"), frozenset(node.get("refuse_tags", [])),
                       self.period(node.get("restore_used_after")) or Period(),
                       self.rule({"rule_id": node["cancel_rule_id"]}, path + ("cancel_rule_id",)) if "cancel_rule_id" in node else None,
                       (self.period(node["cancel_restores_used_after"]) or Period())
                       if "cancel_restores_used_after" in node else None)

    def ladder(self, node: dict | None, path: tuple) -> Ladder | None:
        """A ladder of levels (engine/core/ladder.py): steps, pause and cancel policy, gifts."""
        if node is None:
            return None
        gifts_node = node.get("gifts")
        default_gifts = self._ladder_gifts(gifts_node["schedule"], path + ("gifts", "schedule")) if gifts_node else ()
        levels: list[LadderLevel] = []
        seen: set[str] = set()
        count = len(node["levels"])
        for i, lv in enumerate(node["levels"]):
            lpath = path + ("levels", i)
            if lv["id"] in seen:
                self.problem(lpath + ("id",), "ladder.level_twice", level=lv['id'])
            seen.add(lv["id"])
            levels.append(self._ladder_level(lv, lpath, i == count - 1, default_gifts, gifts_node is not None))
        cancel = node.get("cancel") or {}
        reset_to = self._ladder_reset_to(cancel, path, [lv.id for lv in levels])
        notice = self._ladder_notice(gifts_node, path, default_gifts)
        enrol = node.get("enrol") or {}
        opt_out = (self.expr(enrol["opt_out_when"], path + ("enrol", "opt_out_when"), frozenset({"attributes"}),
                             "opt_out_when", enrol["rule_id"]) if "opt_out_when" in enrol else None)
        sub = {key: node.get(key) or {} for key in ("evaluation", "months", "amount", "pause")}
        rule = self.rule(node, path)

        def rule_of(part: dict, ppath: tuple) -> str:
            return self.rule(part, ppath) if part else rule

        pause = node.get("pause")
        during = (gifts_node or {}).get("during_pause")
        return Ladder(
            rule, self.pos(path), tuple(levels),
            enrol_rule=rule_of(enrol, path + ("enrol",)), opt_out=opt_out,
            evaluation_rule=rule_of(sub["evaluation"], path + ("evaluation",)),
            months_rule=rule_of(sub["months"], path + ("months",)),
            amount_rule=rule_of(sub["amount"], path + ("amount",)),
            measure=sub["amount"].get("measure", "items_incl_tax"),
            courses=frozenset(sub["amount"].get("courses", ["subscription", "one_off"])),
            exclude_paused=sub["amount"].get("paused_purchases", "excluded") == "excluded",
            pause_rule=self.rule(pause, path + ("pause",)) if pause else None,
            max_pause_months=pause["max_consecutive_months"] if pause else None,
            cancel_rule=rule_of(cancel, path + ("cancel",)), reset_to=reset_to,
            gift_rule=self.rule(gifts_node, path + ("gifts",)) if gifts_node else None,
            notice=notice,
            defer_rule=self.rule(during, path + ("gifts", "during_pause")) if during else None,
        )

    def _ladder_gifts(self, items: list, gpath: tuple) -> tuple[LadderGift, ...]:
        """A gift schedule: each number once, a gift that follows another after it."""
        numbers = [g["number"] for g in items]
        for i, n in enumerate(numbers):
            if n in numbers[:i]:
                self.problem(gpath + (i, "number"), "ladder.gift_twice", n=n)
            after = items[i].get("after_gift")
            if after is not None and after not in numbers[:i]:
                self.problem(gpath + (i, "after_gift"), "ladder.gift_after", n=n, after=after)
        return tuple(LadderGift(g["number"], g["after_months"], self.pos(gpath + (i,)), g.get("after_gift"))
                     for i, g in enumerate(items))

    def _ladder_level(self, lv: dict, lpath: tuple, top: bool, default_gifts: tuple[LadderGift, ...],
                      has_gifts: bool) -> LadderLevel:
        """One level: its steps (``up`` to the next level, ``again`` on the top one) and its gifts
        (its own schedule, the ladder's, or none)."""
        steps: dict[str, LadderStep | None] = {}
        for key in ("up", "again"):
            st = lv.get(key)
            steps[key] = LadderStep(self.rule(st, lpath + (key,)), self.pos(lpath + (key,)), st.get("months", 0),
                                    st.get("amount", 0), st.get("combine", "all")) if st else None
        if steps["up"] is not None and top:
            self.problem(lpath + ("up",), "ladder.top_up",
                         ("hint.use_again", {}), level=lv['id'])
        if steps["up"] is None and not top:
            self.problem(lpath, "ladder.needs_up", level=lv['id'])
        if steps["again"] is not None and not top:
            self.problem(lpath + ("again",), "ladder.again_top_only")
        own = lv.get("gifts", True)
        if isinstance(own, list):
            gifts = self._ladder_gifts(own, lpath + ("gifts",))
        else:
            gifts = default_gifts if own else ()
        if gifts and not has_gifts:
            self.problem(lpath + ("gifts",), "ladder.gifts_need_section")
        return LadderLevel(lv["id"], self.pos(lpath), steps["up"], steps["again"], gifts)

    def _ladder_reset_to(self, cancel: dict, path: tuple, ids: list[str]) -> str:
        """The level a cancellation resets to (default: the first), which must be a level."""
        reset_to: str = cancel.get("reset_to", ids[0] if ids else "")
        if ids and reset_to not in ids:
            near = difflib.get_close_matches(reset_to, ids, n=1)
            self.problem(path + ("cancel", "reset_to"), "ladder.unknown_level",
                         near_hint(near, ("hint.levels_are", {"names": ", ".join(ids)})), level=reset_to)
        return reset_to

    def _ladder_notice(self, gifts_node: dict | None, path: tuple,
                       default_gifts: tuple[LadderGift, ...]) -> LadderNotice | None:
        """The notice sent ahead of one gift of the ladder's schedule, if the gifts section has one."""
        if not gifts_node or "notice" not in gifts_node:
            return None
        nn = gifts_node["notice"]
        notice = LadderNotice(self.rule(nn, path + ("gifts", "notice")), self.pos(path + ("gifts", "notice")),
                              nn.get("of_number", 1), nn.get("months_before", 1))
        if notice.of_number not in {g.number for g in default_gifts}:
            self.problem(path + ("gifts", "notice", "of_number"), "ladder.no_gift_number", n=notice.of_number)
        return notice

    def version(self, node: dict, path: tuple, tz: ZoneInfo, index: int = 0) -> Version:
        effective = date.fromisoformat(node["effective_from"])
        self.version_exprs = []
        tiers = self.tiers(node.get("tiers"), path + ("tiers",))
        catalog = self.catalog(node.get("catalog"), path + ("catalog",))
        version = Version(
            number=node["version"], effective_from=effective, starts_at=start_of(effective, tz), pos=self.pos(path),
            pricing=self.pricing(node.get("pricing"), path + ("pricing",)),
            tiers=tiers,
            earning=self.earning(node.get("earning"), path + ("earning",), tiers),
            redemption=self.redemption(node.get("redemption"), path + ("redemption",)),
            expiry=self.expiry(node.get("expiry"), path + ("expiry",)),
            bonuses=self.bonuses(node.get("bonuses"), path + ("bonuses",)),
            returns=self.returns(node.get("returns"), path + ("returns",)),
            catalog=catalog,
            exchange=self.exchange(node.get("exchange"), path + ("exchange",), catalog),
            migration=self.migration(node.get("migration"), path + ("migration",), index),
            perks=self.perks(node.get("perks"), path + ("perks",)),
            ladder=self.ladder(node.get("ladder"), path + ("ladder",)),
        )
        levels = {t.id for t in tiers.levels} if tiers else set()
        if version.ladder is not None:
            levels |= {lv.id for lv in version.ladder.levels}
        known = {"tier": (frozenset(levels), "tier"), "course": (COURSES, "course"),
                 "payment_method": (PAYMENT_METHODS, "payment_method")}
        if self.declared_tags is not None:
            known["tags"] = (self.declared_tags, "tag")
        if self.declared_attributes is not None:
            known["attributes"] = (self.declared_attributes, "attribute")
        self.known_values(self.version_exprs, known)
        return version


def _names_hint(near: list, kind: str, names) -> tuple[str, dict]:
    """did you mean X? / the names there are / there are none (kind: tier, course, payment_method, tag, attribute)."""
    if near:
        return ("hint.did_you_mean", {"near": near[0]})
    if names:
        return (f"hint.{kind}_names", {"names": ", ".join(sorted(names))})
    return (f"hint.no_{kind}s", {})


def _merge(base: Any, change: Any, at: tuple, written: tuple, src: dict, changed: list) -> Any:
    """``change`` laid over ``base``: mappings key by key (down to the values), a list or a value
    replaces the one before. ``src`` learns where each written part stands (``at``: the path in the
    version, ``written``: the path in the file); ``changed`` lists the values written."""
    src[at] = written
    if isinstance(base, dict) and isinstance(change, dict):
        out = dict(base)
        for key, value in change.items():
            out[key] = _merge(base.get(key), value, at + (key,), written + (key,), src, changed)
        return out
    for k in [k for k in src if len(k) > len(at) and k[:len(at)] == at]:
        del src[k]   # what the replaced value held was written elsewhere: no longer
    changed.append(at)
    return change


def _inherit(versions: list[dict]) -> list[tuple[dict, dict, list, list]]:
    """Each version inherits the sections of the one before: a section it writes replaces the one
    before whole; a section under its ``changes`` keeps the one before and changes only the keys
    written there (_merge). Returns (merged, source paths, changed paths, problems) per version:
    the source paths map a path in the version (a tuple, its first part the section) to the path
    it was written at, the longest known part of a path deciding."""
    merged_list: list[tuple[dict, dict, list, list]] = []
    prev: dict = {}
    prev_src: dict = {}
    for i, node in enumerate(versions):
        merged, src = dict(prev), dict(prev_src)
        changed: list = []
        problems: list = []
        for key, value in node.items():
            if key == "changes":
                continue
            merged[key] = value
            for k in [k for k in src if k[:1] == (key,)]:
                del src[k]
            src[(key,)] = ("versions", i, key)
        for section, change in (node.get("changes") or {}).items():
            where = ("versions", i, "changes", section)
            if section in node:
                problems.append((where, "changes.whole_and_changed", {"section": section}))
                continue
            if section not in prev:
                problems.append((where, "changes.no_previous", {"section": section}))
                continue
            merged[section] = dict(prev[section]) if isinstance(prev[section], dict) else prev[section]
            for key, value in change.items():   # the section stays where it was written; its changed keys here
                merged[section][key] = _merge(prev[section].get(key), value, (section, key), where + (key,), src, changed)
        merged.pop("changes", None)
        merged_list.append((merged, src, changed, problems))
        prev = {k: v for k, v in merged.items() if k in SECTIONS}
        prev_src = {k: v for k, v in src.items() if k[0] in SECTIONS}
    return merged_list


def _time_zone(name: str, positions: yamlpos.Positions) -> ZoneInfo:
    """The zone named, else a problem at the name: never the zone database's path or error (a
    folder of it, "America", is a directory; a long name is too long for the file system)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError):
        shown = name if len(name) <= 60 else name[:60] + "..."
        raise ProgramError([problem(positions.at(("time_zone",)), "program.unknown_time_zone",
                                    ("hint.iana_zone", {}), tz=shown)]) from None


def parse_program(text: str | bytes, filename: str) -> Program:
    data, positions = yamlpos.load(text, filename)
    if not isinstance(data, dict):
        raise ProgramError([problem(Pos(filename, 1, 1), "program.not_mapping")])
    problems = _schema_problems(data, positions)
    if problems:
        raise ProgramError(problems)
    tz = _time_zone(data["time_zone"], positions)
    compiler = _Compiler(filename, positions, dict(data.get("rules") or {}))
    if "tags" in data:
        compiler.declared_tags = frozenset(data["tags"])
    if "attributes" in data:
        compiler.declared_attributes = frozenset(data["attributes"])
    versions = []
    inherited = _inherit(data["versions"])
    relocated = [_Relocated(positions, ("versions", i), src) for i, (_, src, _, _) in enumerate(inherited)]
    if any("changes" in v for v in data["versions"]):
        # the sections a version changes key by key, checked again as merged (a changed key with
        # a wrong value, a key the section does not have), at the line that changed them
        problems = [problem(positions.at(where), code, **args) for _, _, _, found in inherited for where, code, args in found]
        problems += _schema_problems({**data, "versions": [m for m, _, _, _ in inherited]}, _Versions(positions, relocated))
        if problems:
            raise ProgramError(problems)
    for i, (merged, src, changed, _) in enumerate(inherited):
        # Positions of inherited sections point at the version that wrote them.
        compiler.positions = relocated[i]
        version = compiler.version(merged, ("versions", i), tz, i)
        if changed:
            version = dataclasses.replace(version, changed=tuple(
                (".".join(str(p) for p in path), relocated[i].at(("versions", i) + path)) for path in changed))
        versions.append(version)
    compiler.positions = positions
    for i in range(1, len(versions)):
        if versions[i].number <= versions[i - 1].number:
            compiler.problem(("versions", i, "version"), "version.order",
                             n=versions[i].number, m=versions[i - 1].number)
        if versions[i].effective_from <= versions[i - 1].effective_from:
            compiler.problem(("versions", i, "effective_from"),
                             "version.overlap", date=versions[i].effective_from, n=versions[i - 1].number,
                             since=versions[i - 1].effective_from)
    if compiler.problems:
        raise ProgramError(compiler.problems)
    accounting = _accounting(data.get("accounting") or {}, positions, compiler)
    if compiler.problems:
        raise ProgramError(compiler.problems)
    digest = hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()[:24]
    return Program(data["program"], data["name"], data["unit"], tz, filename, dict(data.get("rules") or {}),
                   tuple(versions), digest=digest, accounting=accounting)


def _accounting(section: dict, positions, compiler) -> Accounting:
    """The ``accounting:`` section, each key missing from the file taken from the schema's default
    (the documented figures: no number of it lives in the engine's code)."""
    spec = program_schema()["properties"]["accounting"]["properties"]
    prepaid_spec = spec["prepaid"]["properties"]
    prepaid = section.get("prepaid") or {}

    def get(key, src=section, keys=spec):
        return src.get(key, keys[key].get("default"))

    dates = []
    for i, text in enumerate(get("report_dates", prepaid, prepaid_spec)):
        month, day = int(text[:2]), int(text[3:])
        try:
            date(2000, month, day)   # a leap year: 02-29 is a date
        except ValueError:
            compiler.problem(("accounting", "prepaid", "report_dates", i), "accounting.not_a_day", text=text)
        dates.append((month, day))
    return Accounting(points=get("points"), expected_breakage=float(get("expected_breakage")),
                      breakage_window_months=int(get("breakage_window_months")),
                      unit_value_yen=section.get("unit_value_yen"), report_dates=tuple(dates),
                      deposit_threshold_yen=int(get("deposit_threshold_yen", prepaid, prepaid_spec)),
                      deposit_share=float(get("deposit_share", prepaid, prepaid_spec)),
                      due_within_months=int(get("due_within_months", prepaid, prepaid_spec)))


class _Relocated:
    """Positions seen from one version: an inherited section's paths lead to where it was written
    (the longest part of the path whose source is known: a key changed under ``changes`` leads to
    the line that changed it, its neighbours to the version that wrote them)."""

    def __init__(self, base: yamlpos.Positions, vpath: tuple, src: dict):
        self.base, self.vpath, self.src = base, vpath, src

    def at(self, path: tuple, key: bool = False, text: bool = False) -> Pos:
        path = tuple(path)
        n = len(self.vpath)
        if path[:n] == self.vpath and len(path) > n:
            rel = path[n:]
            for cut in range(len(rel), 0, -1):
                found = self.src.get(rel[:cut])
                if found is not None:
                    path = found + rel[cut:]
                    break
        return self.base.at(path, key, text)


class _Versions:
    """Positions of a document whose versions are the merged ones: each version's paths relocated."""

    def __init__(self, base: yamlpos.Positions, relocated: list):
        self.base, self.relocated = base, relocated

    def at(self, path: tuple, key: bool = False, text: bool = False) -> Pos:
        path = tuple(path)
        if len(path) >= 2 and path[0] == "versions" and isinstance(path[1], int) and path[1] < len(self.relocated):
            return self.relocated[path[1]].at(path, key, text)
        return self.base.at(path, key, text)


def load_program(path: str | Path) -> Program:
    """Read and compile a program file; raises ProgramError with every problem found."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProgramError([problem(Pos(str(path), 1, 1), "file.unreadable", detail=exc.strerror)]) from None
    return parse_program(raw, str(path))
