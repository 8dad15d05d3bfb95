"""Issue 17, the program loader and expressions: holes found at f59e29a, each with its test.

5   a ``when:`` comparing the event's tax rate with a decimal literal never matched (exact fraction
    against binary float);
8   integer settings written as floats (500.0, 1.0e+20) and unbounded integers passed validate;
9   .nan / .inf passed the schema's bounds and crashed validate or the run;
11  a bonus condition failing for one member refused every later event of that member (the
    birth-month happening failed again at each);
12  a folder of the zone database (America) or a 300-character time_zone crashed validate with
    the install path in the message;
13  version: 2**63 validated, though no store can keep it;
15  an expression over a large event built hundreds of MB ('+' of its tags or attributes); a NUL
    byte in the YAML was reported at 1:1.

Hostile programs: every numeric setting of every programs/*.yaml replaced by floats, NaN, inf,
huge and negative numbers and odd text; ``loyalty validate`` answers FILE:LINE:COL, exit 1.
"""
from __future__ import annotations

import json
import re
import subprocess
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from engine import Engine
from engine.shell.cli import cli
from engine.model.errors import EventRejected, Pos, ProgramError
from engine.format.expr import Attributes, compile_expr
from engine.format.loader import parse_program, program_schema
from engine.format import i18n
from tests.helpers import send
from tests.test_fuzz import bounded, memory_bounded
from tests.test_program_errors import loyalty_command

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = sorted(p for p in (ROOT / "programs").glob("*.yaml") if not p.name.endswith(".tests.yaml"))

# A small program: one earning rate row with a condition (rate 5%), else 1%; bonuses and
# redemption are added by the tests. Line numbers below are of this text.
BASE = """program: p
name: "p"
unit: points
time_zone: Asia/Tokyo
rules:
  R-1: "base rate"
  R-2: "conditional rate"
  R-3: "bonus"
versions:
  - version: 1
    effective_from: 2024-01-01
    earning:
      rule_id: R-1
      base: items_ex_tax
      pending_until: placed
      rates:
        - rule_id: R-2
          when: "WHEN"
          rate: 0.05
        - rule_id: R-1
          rate: 0.01
    expiry:
      rule_id: R-1
      kind: none
"""
WHEN_LINE = 18   # the line of `when: "WHEN"` in BASE


def base(when: str = "qty > 0", extra: str = "") -> str:
    return BASE.replace("WHEN", when) + extra


def problems(text: str) -> list:
    with pytest.raises(ProgramError) as info:
        parse_program(text, "p.yaml")
    return info.value.problems


def validate(tmp_path: Path, text: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, CliRunner().invoke(cli, ["validate", str(path)])


def assert_clean_refusal(path: Path, result) -> list[str]:
    """validate refused: exit 1, every line FILE:LINE:COL: ..., no traceback, no internal error."""
    out = result.output
    assert result.exit_code == 1, out
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out and "internal error" not in out, out
    lines = out.splitlines()
    assert lines and all(re.match(rf"{re.escape(str(path))}:\d+:\d+: ", line) for line in lines), out
    return lines


def line_col(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first character of ``needle`` (occurring once) in ``text``."""
    assert text.count(needle) == 1, needle
    i = text.index(needle)
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


# --- 5: decimal literals against the event's decimal value ----------------------------------------

# (condition, whether it holds for an event's tax rate 0.08), worked out as a person reads them
TAX_CONDITIONS = [
    ("tax_rate == 0.08", True), ("tax_rate != 0.08", False), ("tax_rate <= 0.08", True),
    ("tax_rate >= 0.08", True), ("tax_rate < 0.08", False), ("tax_rate > 0.08", False),
    ("tax_rate in [0.08, 0.1]", True), ("tax_rate not in [0.08, 0.1]", False),
    ("tax_rate in (0.1,)", False), ("0.08 == tax_rate", True), ("0.07 < tax_rate < 0.09", True),
    ("tax_rate * 100 == 8", True), ("tax_rate == 0.1", False), ("tax_rate == 8 / 100", True),
    ("min(tax_rate, 0.1) == 0.08", True), ("tax_rate + 0.02 == 0.1", True),
]


@pytest.mark.parametrize("source, holds", TAX_CONDITIONS, ids=[c for c, _ in TAX_CONDITIONS])
def test_hole17_05_decimal_comparison_of_event_tax_rate(source, holds):
    expr = compile_expr(source, Pos("p.yaml", 1, 1), {"tax_rate"})
    # the event's 0.08 as its JSON decoder gives it: the binary float nearest 0.08
    assert bool(expr({"tax_rate": json.loads("0.08")})) is holds
    assert bool(expr({"tax_rate": json.loads("0.080")})) is holds


def test_hole17_05_decimal_comparison_of_attribute_numbers():
    # a member attribute (a JSON number, a list of them) compared as the decimal it was written as
    expr = compile_expr("attributes['rate'] == 0.3 and 0.1 in attributes['rates']", Pos("p.yaml", 1, 1),
                        {"attributes"})
    assert expr({"attributes": Attributes(json.loads('{"rate": 0.3, "rates": [0.1, 0.2]}'))}) is True


@pytest.mark.parametrize("source, holds", [("tax_rate == 0.08", True), ("tax_rate in [0.08]", True),
                                           ("tax_rate <= 0.08", True), ("tax_rate < 0.08", False)])
def test_hole17_05_reduced_rate_row_earns_its_rate(source, holds):
    e = Engine(parse_program(base(source), "p.yaml"))
    send(e, "member.registered", "2025-01-05", "m1")
    send(e, "order.placed", "2025-01-06", "m1", order="o1", course="one_off", payment={"method": "credit_card"},
         lines=[{"sku": "tea", "qty": 1, "unit_price": 10000, "tax_rate": 0.08}])
    # 10,000 yen ex. tax at the reduced rate: 5% when the row matches = 500, else the base 1% = 100
    assert e.member("m1", "2025-01-07")["points"]["valid"] == (500 if holds else 100)


# --- 8, 13: integer settings are whole numbers, and bounded ----------------------------------------

REDEMPTION = """    redemption:
      rule_id: R-1
      unit_value_yen: 1
      cap_per_order:
        rule_id: R-1
        units: UNITS
"""


@pytest.mark.parametrize("written", ["500.0", "500.5", "1.0e+20", "5.0e+2"])
def test_hole17_08_float_in_integer_setting_is_refused(written, tmp_path):
    text = base(extra=REDEMPTION.replace("UNITS", written))
    p = problems(text)[0]   # 1.0e+20 is also above the maximum: a second problem at the same place
    assert (p.pos.line, p.pos.col) == line_col(text, written)
    assert p.message.startswith("versions.0.redemption.cap_per_order.units: must be a whole number"), p
    path, result = validate(tmp_path, text)
    assert_clean_refusal(path, result)


def test_hole17_08_whole_float_gets_a_hint_in_both_languages():
    (p,) = problems(base(extra=REDEMPTION.replace("UNITS", "500.0")))
    assert p.hint == "write 500"
    assert i18n.format_problem(p, "ja").endswith("整数で書いてください（500.0 が書かれています） (500 と書いてください)")


@pytest.mark.parametrize("written", ["100000000000000000000", str(10**12 + 1), str(2**63)])
def test_hole17_08_huge_integer_setting_is_refused(written):
    text = base(extra=REDEMPTION.replace("UNITS", written))
    (p,) = problems(text)
    assert (p.pos.line, p.pos.col) == line_col(text, written)
    assert "greater than the maximum of 1000000000000" in p.message, p


def test_hole17_08_every_integer_setting_has_a_maximum():
    unbounded = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "integer" and "maximum" not in node:
                unbounded.append(where)
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")
    walk(program_schema(), "#")
    assert unbounded == []


def test_hole17_08_largest_settings_run_and_read_back(tmp_path):
    # Every amount at its bound: a bonus of 10^12 units, a cap of 10^12; the run commits and a
    # fresh engine on the same file reads the member back (10^12 registration bonus + 1% of 10,000).
    extra = REDEMPTION.replace("UNITS", str(10**12)) + f"""    bonuses:
      - {{rule_id: R-3, on: member.registered, units: {10**12}}}
"""
    program = parse_program(base("qty > 5", extra), "p.yaml")   # the base row: 1%
    db = str(tmp_path / "l.db")
    e = Engine(program, db)
    send(e, "member.registered", "2025-01-05", "m1")
    send(e, "order.placed", "2025-01-06", "m1", order="o1", course="one_off", payment={"method": "credit_card"},
         lines=[{"sku": "tea", "qty": 1, "unit_price": 10000, "tax_rate": 0.1}], redeem={"points": "max"})
    e.store.close()
    again = Engine(program, db)
    pts = again.member("m1", "2025-01-07")["points"]
    # redeem max: the whole 10,000 + 10% tax = 11,000 yen paid with 11,000 units; earn 1% of what is
    # left after points? after_points is false: 1% of 10,000 = 100
    assert pts["used"] == 11_000 and pts["valid"] == 10**12 - 11_000 + 100, pts


def test_hole17_13_version_beyond_the_stores_is_refused():
    text = BASE.replace("version: 1\n", f"version: {2**63}\n").replace("WHEN", "qty > 0")
    (p,) = problems(text)
    assert (p.pos.line, p.pos.col) == line_col(text, str(2**63))
    # PostgreSQL keeps a version as INTEGER (32-bit signed): 2,147,483,647 at most
    assert "greater than the maximum of 2147483647" in p.message
    parse_program(BASE.replace("version: 1\n", "version: 2147483647\n").replace("WHEN", "qty > 0"), "p.yaml")


# --- 9: every number is finite ----------------------------------------------------------------------

@pytest.mark.parametrize("written", [".nan", ".NaN", ".inf", "-.inf", "+.inf"])
@pytest.mark.parametrize("setting", ["rate: 0.05", "unit_value_yen: 1", "units: UNITS"])
def test_hole17_09_non_finite_number_is_refused(written, setting, tmp_path):
    text = base(extra=REDEMPTION.replace("UNITS", "100"))
    text = text.replace(setting.replace("UNITS", "100"), setting.split(":")[0] + ": " + written, 1)
    (p,) = problems(text)
    line, col = line_col(text, ": " + written)
    assert (p.pos.line, p.pos.col) == (line, col + 2)
    assert "must be a finite number" in p.message and setting.split(":")[0] in p.message, p
    path, result = validate(tmp_path, text)
    assert_clean_refusal(path, result)


def test_hole17_09_non_finite_in_free_detail_is_refused():
    text = base(extra="""    perks:
      - {rule_id: R-3, on: first_subscription_order, effect: gift.due, detail: {weight: .nan}}
""")
    (p,) = problems(text)
    assert p.message == "versions.0.perks.0.detail.weight: must be a finite number (got .nan)"


# --- 11: a condition failing for one member refuses one event, never the member's future ------------

BONUSES = """    bonuses:
      - rule_id: R-3
        on: birthday_month
        units: 500
        when: "attributes['age'] >= 20"
      - rule_id: R-3
        on: review.posted
        units: 50
        when: "attributes['age'] >= 20"
"""


def test_hole17_11_failing_birthday_condition_does_not_block_the_member_R_3(tmp_path):
    text = base(extra=BONUSES)
    e = Engine(parse_program(text, "p.yaml"))
    # m1 has no 'age' (None >= 20 fails); m2 is 30
    send(e, "member.registered", "2025-01-05", "m1", birthday="1990-03-12")
    send(e, "member.registered", "2025-01-05", "m2", birthday="1990-03-12", attributes={"age": 30})
    # March 1st passes: m1's birthday condition counts as not met, the clock moves on
    send(e, "points.granted", "2025-03-05", "m1", amount=10, reason="goodwill")
    send(e, "points.granted", "2025-04-05", "m1", amount=10, reason="goodwill")
    send(e, "points.granted", "2025-03-05", "m2", amount=10, reason="goodwill")
    assert e.member("m1", "2025-04-06")["points"]["valid"] == 20        # 10 + 10, no bonus
    assert e.member("m2", "2025-04-06")["points"]["valid"] == 510       # 500 birth-month bonus + 10
    # an event whose bonus condition fails is refused alone, naming the rule and the when: line
    result = send(e, "review.posted", "2025-04-10", "m1", product="tea", expect="rejected")
    (rej,) = result.rejected
    assert rej["rule"] == "R-3"
    lines = text.splitlines()   # the review bonus's when: (the second of the two)
    when_line = [i + 1 for i, line in enumerate(lines) if line == "        when: \"attributes['age'] >= 20\""][1]
    assert f"p.yaml:{when_line}:" in rej["reason"] and "TypeError" in rej["reason"], rej
    send(e, "points.granted", "2025-04-11", "m1", amount=5, reason="goodwill")
    assert e.member("m1", "2025-04-12")["points"]["valid"] == 25


def test_hole17_11_run_as_of_past_the_birthday_exits_0_R_3(tmp_path):
    program = tmp_path / "p.yaml"
    program.write_text(base(extra=BONUSES), encoding="utf-8")
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(json.dumps(x) for x in [
        {"id": "e1", "type": "member.registered", "at": "2025-01-05", "member": "m1", "birthday": "1990-03-12"},
        {"id": "e2", "type": "points.granted", "at": "2025-02-05", "member": "m1", "amount": 10, "reason": "x"},
    ]) + "\n", encoding="utf-8")
    proc = subprocess.run(loyalty_command() + ["run", str(program), str(events), "--db", str(tmp_path / "l.db"),
                                               "--as-of", "2025-06-01", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_hole17_11_failing_migration_condition_counts_as_not_met_R_3():
    text = base(extra="""  - version: 2
    effective_from: 2025-02-01
    migration:
      - rule_id: R-3
        op: grant
        units: 300
        when: "attributes['age'] >= 20"
""")
    e = Engine(parse_program(text, "p.yaml"))
    send(e, "member.registered", "2025-01-05", "m1")
    send(e, "member.registered", "2025-01-05", "m2", attributes={"age": 30})
    send(e, "points.granted", "2025-02-05", "m1", amount=10, reason="goodwill")
    send(e, "points.granted", "2025-02-05", "m2", amount=10, reason="goodwill")
    assert e.member("m1", "2025-02-06")["points"]["valid"] == 10     # no age: no migration grant
    assert e.member("m2", "2025-02-06")["points"]["valid"] == 310    # 300 granted at the switch + 10


@pytest.mark.parametrize("source, what", [
    ("'a' < 1", "TypeError"), ("qty > 1 / 0", "ZeroDivisionError"), ("len(3) > qty", "TypeError"),
    ("qty > 'x' + 1", "TypeError"), ("(1, 2)[5] == qty", "IndexError"),
])
def test_hole17_11_constant_part_failing_for_every_event_is_refused_at_load(source, what):
    text = base(source)
    (p,) = problems(text)
    assert p.pos.line == WHEN_LINE and f"always fails: {what}" in p.message, p
    assert i18n.is_translated(p)


@pytest.mark.parametrize("source", ["floor(qty, 2) > 0", "len() > 0", "abs(qty, qty) > 0", "max() > 0"])
def test_hole17_11_wrong_argument_count_is_refused_at_load(source):
    (p,) = problems(base(source))
    assert p.pos.line == WHEN_LINE and "argument(s), got" in p.message, p
    assert i18n.is_translated(p)


# --- 12: time zones ----------------------------------------------------------------------------------

@pytest.mark.parametrize("zone", ["America", "A" * 300, "Asia", "Asia/Tokio", "../../../etc/passwd", "/etc/passwd",
                                  "Asia/Tokyo/", "ＵＴＣ", "zone.tab", ""])
def test_hole17_12_bad_time_zone_is_a_clean_problem(zone, tmp_path):
    text = base().replace("time_zone: Asia/Tokyo", f"time_zone: {json.dumps(zone)}")
    (p,) = problems(text)
    assert (p.pos.line, p.pos.col) == (4, len("time_zone: ") + 1)
    assert p.message.startswith("unknown time zone '"), p
    assert "site-packages" not in str(p) and "zoneinfo/" not in str(p) and "Errno" not in str(p)
    assert len(str(p)) < 200
    path, result = validate(tmp_path, text)
    assert_clean_refusal(path, result)


# --- 15: bounded expressions; the NUL byte's position ------------------------------------------------

BIG_TAGS = tuple(f"t{i:097d}" for i in range(8000))                  # 800 KB of tags on one line
BIG_TEXT = "x" * 800_000                                              # an 800 KB member attribute


@pytest.mark.parametrize("source", [
    "len(" + "+".join(["attributes['b']"] * 30) + ") > 0",
    "len(" + "((tags+tags)+(tags+tags))+" * 17 + "tags) > 0",
    "len(" + "+".join(["(tags+tags+tags)"] * 5) + ") > 0",
    " or ".join(["max(attributes['b']) == 'y'"] * 16),
])
def test_hole17_15_hostile_expression_over_a_large_event_stays_small(source):
    assert len(source) <= 500
    expr = compile_expr(source, Pos("p.yaml", WHEN_LINE, 17), {"tags", "attributes"}, "when", "R-2")
    tracemalloc.start()
    try:
        with bounded(2), memory_bounded():
            with pytest.raises(EventRejected) as info:
                expr({"tags": BIG_TAGS, "attributes": Attributes({"b": BIG_TEXT})})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the refusal names the expression's place and its rule; it built no large value
    assert f"p.yaml:{WHEN_LINE}:17" in str(info.value) and info.value.rule == "R-2"
    assert peak < 10 * 2**20, f"{peak / 2**20:.0f} MB"


def test_hole17_15_joining_short_text_still_works():
    expr = compile_expr("sku + '-gift' in tags and len(tags + ('x',)) == 2", Pos("p.yaml", 1, 1), {"sku", "tags"})
    assert expr({"sku": "tea", "tags": ("tea-gift",)}) is True


@pytest.mark.parametrize("where", ["name", "rule", "comment"])
def test_hole17_15_nul_byte_is_reported_where_it_is(where, tmp_path):
    text = base()
    needle = {"name": 'name: "p', "rule": 'R-2: "conditional', "comment": "      kind: none"}[where]
    broken = text.replace(needle, needle + ("\x00" if where != "comment" else "  # a\x00b"), 1)
    (p,) = problems(broken)
    assert (p.pos.line, p.pos.col) == line_col(broken, "\x00")
    assert p.message == "the file holds a character YAML does not allow (#x0000)"
    assert i18n.is_translated(p)
    path = tmp_path / "p.yaml"
    path.write_bytes(broken.encode("utf-8"))
    assert_clean_refusal(path, CliRunner().invoke(cli, ["validate", str(path)]))


# --- hostile programs: every numeric setting of every real program, mutated --------------------------

HOSTILE = ["500.0", "0.5", ".nan", ".inf", "-.inf", "1.0e+20", "100000000000000000000", str(2**63), "-1",
           "-0.0", '"１２"', '"\u202e12"', '"12\\x01"', "true", "null", "[1]", "{a: 1}"]


def numeric_settings(path: Path) -> list[tuple[int, int, str]]:
    """(line, column, text) of every number written in a program file (its scalar nodes that YAML
    reads as int or float), found through the YAML nodes so that comments and text are left alone."""
    found = []
    todo = [yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)]
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.MappingNode):
            todo.extend(v for _, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
        elif node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and node.style is None:
            found.append((node.start_mark.line, node.start_mark.column, node.value))
    return sorted(found)


def mutate(text: str, line: int, col: int, old: str, new: str) -> str:
    lines = text.split("\n")
    assert lines[line][col:col + len(old)] == old
    lines[line] = lines[line][:col] + new + lines[line][col + len(old):]
    return "\n".join(lines)


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_hole17_hostile_numbers_in_real_programs(program, tmp_path):
    text = program.read_text(encoding="utf-8")
    settings = numeric_settings(program)
    assert settings, program
    refused = accepted = 0
    for i, (line, col, old) in enumerate(settings):
        for j, new in enumerate(HOSTILE):
            if (i + j) % 3:   # a third of the (setting, value) pairs: every setting, every value
                continue
            broken = mutate(text, line, col, old, new)
            try:
                parse_program(broken, "m.yaml")
            except ProgramError as exc:
                refused += 1
                for p in exc.problems:
                    assert p.pos.file == "m.yaml" and p.pos.line >= 1 and p.pos.col >= 1, p
                    assert "internal error" not in p.message and "Traceback" not in p.message
                # the mutated value is named at its own line (or at the key just before it)
                assert any(p.pos.line in (line + 1, line) for p in exc.problems), (new, line + 1, exc.problems)
            else:
                accepted += 1   # e.g. -1 where a negative is meaningless is refused; 0.5 as a rate is fine
    assert refused > accepted


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_hole17_hostile_numbers_via_validate_command(program, tmp_path):
    # Each of these is wrong for every numeric setting (an integer or a rate within 0..1, and no
    # setting allows 500): each mutated copy must get its own FILE:LINE:COL line at the setting.
    text = program.read_text(encoding="utf-8")
    wanted = {}
    for i, (line, col, old) in enumerate(numeric_settings(program)):
        for j, new in enumerate([".nan", "-.inf", "1.0e+20", "500.5", str(2**63), "500.0"]):
            path = tmp_path / f"m{i}_{j}.yaml"
            path.write_text(mutate(text, line, col, old, new), encoding="utf-8")
            wanted[str(path)] = line + 1
    proc = subprocess.run(loyalty_command() + ["validate", *wanted], capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-2000:]
    assert "Traceback" not in out and "internal error" not in out, out[-2000:]
    reported = {}
    for row in proc.stdout.splitlines():
        m = re.match(r"(.+\.yaml):(\d+):(\d+): ", row)
        assert m, row
        reported.setdefault(m[1], set()).add(int(m[2]))
    missing = [p for p, line in wanted.items() if line not in reported.get(p, ())]
    assert not missing, f"{len(missing)} of {len(wanted)} copies not reported at their line, e.g. {missing[:3]}"
