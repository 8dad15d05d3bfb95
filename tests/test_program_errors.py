"""Broken copies of programs/andest.yaml: every problem is reported as FILE:LINE:COL: message,
at the line and column a person would put the cursor on, by the loader and by `loyalty validate`.

Each case edits the text of the real program file (so the copies follow that file as it changes)
and says where the problem is with a caret: ``at="when: \\"'points_5pct' in ^tag\\""`` means
"the column of the character after ^, in the one place of the broken file that reads like this".
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.shell.cli import cli
from engine.model.errors import EventRejected, Pos, ProgramError
from engine.format.expr import compile_expr
from engine.format.loader import load_program

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "programs" / "andest.yaml"
WHEN = "when: \"'points_5pct' in tags\""   # the earning row's expression, as the real file writes it
# the last earn rate row (the base 1% for the regular rank, below the by-tier row)
LAST_RATE_ROW = ("        - rule_id: AND-1\n"
                 "          # AND-1: everyone else (the regular rank) earns the base 1%.\n"
                 "          rate: 0.01\n")


def real_text() -> str:
    return REAL.read_text(encoding="utf-8")


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"programs/andest.yaml no longer holds exactly one {old!r}; update this test"
    return text.replace(old, new)


def locate(text: str, at: str) -> tuple[int, int]:
    """1-based (line, column) of the character after '^' in the one place ``at`` (without '^') occurs."""
    needle = at.replace("^", "", 1)
    assert text.count(needle) == 1, f"{needle!r} occurs {text.count(needle)} times in the broken file"
    index = text.index(needle) + at.index("^")
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def loyalty_command() -> list[str]:
    exe = shutil.which("loyalty") or str(Path(sys.executable).with_name("loyalty"))
    assert Path(exe).exists(), "the `loyalty` command is not installed (pip install -e '.[test]')"
    return [exe]


@dataclass
class Case:
    id: str
    edits: list                     # [(old, new), ...] applied to the real file's text
    at: list                        # caret strings; the problem may stand at any of them
    says: list                      # substrings of the message (or of message + hint)
    hint: str | None = None         # substring of the hint (or of the message)
    count: int | None = 1           # problems expected in all (None: at least one)
    append: str = ""                # text added at the end of the file

    def text(self) -> str:
        text = real_text()
        for old, new in self.edits:
            text = edit(text, old, new)
        return text + self.append


def expr_case(id: str, expression: str, caret: str, says: list, hint: str | None = None) -> Case:
    """The earning row's `when:` replaced by ``expression`` (double-quoted, as the real file writes it);
    ``caret`` is the expression with '^' before the offending part."""
    return Case(id, [(WHEN, f'when: "{expression}"')], [f'when: "{caret}"'], says, hint)


CASES = [
    # --- YAML itself -------------------------------------------------------------------------
    Case("bad-indentation-deeper", [("      window: {months: 12}\n", "        window: {months: 12}\n")],
         ["\n        ^window: {months: 12}"], ["YAML syntax"]),
    Case("bad-indentation-shallower", [("    pricing:\n", "   pricing:\n")],
         ["\n   ^pricing:\n"], ["YAML syntax"]),
    Case("tab-indentation", [("      window: {months: 12}\n", "\twindow: {months: 12}\n")],
         ["\n^\twindow"], ["YAML syntax", "'\\t'"]),
    Case("yaml-syntax-unbalanced-flow-mapping", [("rate: 0.05, per: unit}", "rate: 0.05, per: unit]")],
         ["per: unit^]"], ["YAML syntax", "expected ',' or '}'"]),
    Case("duplicate-key", [("      against: grand_total\n", "      against: grand_total\n      unit_value_yen: 2\n")],
         ["\n      ^unit_value_yen: 2"], ["duplicate key 'unit_value_yen'", "line"]),
    Case("duplicate-key-in-version", [("    effective_from: 2024-01-01\n",
                                       "    effective_from: 2024-01-01\n    effective_from: 2024-02-01\n")],
         ["^effective_from: 2024-02-01"], ["duplicate key 'effective_from'"]),
    Case("merge-key", [("      against: grand_total\n", "      against: grand_total\n      <<: {unit_value_yen: 1}\n")],
         ["^<<: {unit_value_yen"], ["merge keys"]),
    # --- the schema --------------------------------------------------------------------------
    Case("unknown-key-with-hint", [("cap_per_order:", "cap_per_ordr:")],
         ["^cap_per_ordr:"], ["unknown key 'cap_per_ordr'"], hint="did you mean 'cap_per_order'?"),
    Case("unknown-top-level-key", [("unit: points\n", "unit: points\ncurrency: JPY\n")],
         ["^currency: JPY"], ["unknown key 'currency'"]),
    Case("wrong-type-text-for-integer", [("unit_value_yen: 1\n", "unit_value_yen: one\n")],
         ["unit_value_yen: ^one"], ["unit_value_yen", "'one' is not of type 'integer'"]),
    Case("wrong-type-quoted-number", [("units: 5000}", 'units: "5000"}')],
         ['units: ^"5000"}'], ["cap_per_order.units", "is not of type 'integer'"]),
    Case("wrong-type-yes-is-not-a-name", [('name: "&est ONLINE STORE points"', "name: yes")],
         ["name: ^yes"], ["name", "not of type 'string'"]),
    Case("enum-typo-with-hint", [("pending_until: shipped", "pending_until: shiped")],
         ["pending_until: ^shiped"], ["'shiped' is not one of"], hint="did you mean 'shipped'?"),
    Case("missing-required-key", [("      base: items_ex_tax\n", "")],
         ["\n    ^earning:\n", "\n      ^rule_id: AND-1\n      # AND-2"],
         ["'base' is a required property"]),
    Case("negative-member-discount-rate", [("rate: 0.05, per: unit", "rate: -0.05, per: unit")],
         ["rate: ^-0.05, per"], ["member_discount.rate", "negative"]),
    Case("member-discount-rate-above-1", [("rate: 0.05, per: unit", "rate: 5, per: unit")],
         ["rate: ^5, per"], ["member_discount.rate", "maximum of 1"]),
    # The earn rate rows are where a marketer writes rates; a rate there is a number or {by, values}.
    Case("negative-earn-rate", [("          rate: 0.05\n", "          rate: -0.05\n")],
         ["rate: ^-0.05\n"], ["rates.0.rate", "negative"]),
    Case("earn-rate-above-1", [("          rate: 0.05\n", "          rate: 1.5\n")],
         ["rate: ^1.5\n"], ["rates.0.rate", "maximum of 1"]),
    Case("negative-tier-rate", [("silver: 0.02", "silver: -0.02")],
         ["silver: ^-0.02"], ["negative"]),
    # --- semantic checks ---------------------------------------------------------------------
    Case("unknown-tier-in-rate-values", [("gold: 0.03}}", "gold: 0.03, platinum: 0.04}}")],
         ["^platinum: 0.04"], ["unknown tier 'platinum'"], hint="regular, silver, gold"),
    Case("misspelt-tier-in-rate-values", [("silver: 0.02", "silvr: 0.02")],
         ["^silvr: 0.02"], ["unknown tier 'silvr'"], hint="did you mean 'silver'?"),
    # A by-tier row may leave a tier to the rows below it; the last row has none below, so it must
    # give every tier a rate. Dropping the final 1% row leaves 'regular' without a rate.
    Case("missing-tier-rate", [(LAST_RATE_ROW, "")],
         ["values: ^{silver", "^values: {silver"], ["no rate for tier 'regular'"]),
    Case("unknown-rule-id", [("      rule_id: AND-3\n", "      rule_id: AND-13\n")],
         ["rule_id: ^AND-13"], ["unknown rule id 'AND-13'", "rules"], hint="did you mean 'AND-3'?"),
    Case("unknown-limited-time-rule-id", [("limited_time_rule_id: AND-6", "limited_time_rule_id: AND-66")],
         ["limited_time_rule_id: ^AND-66"], ["unknown rule id 'AND-66'"]),
    Case("tiers-out-of-order", [("{id: gold, min: 100000}", "{id: gold, min: 40000}")],
         ["{id: gold, min: ^40000}"], ["tier 'gold' needs a higher min than 'silver'"]),
    Case("first-tier-not-at-zero", [("{id: regular, min: 0}", "{id: regular, min: 10}")],
         ["{id: regular, min: ^10}"], ["first tier must start at min 0"]),
    Case("tier-declared-twice", [("{id: gold, min: 100000}", "{id: silver, min: 100000}")],
         ["{id: ^silver, min: 100000}"], ["tier 'silver' is declared twice"], count=None),
    Case("overlapping-version-dates", [], ["  - version: 2\n    effective_from: ^2024-01-01"],
         ["overlaps version 1"], append="  - version: 2\n    effective_from: 2024-01-01\n"),
    Case("version-numbers-not-increasing", [], ["  - version: ^1\n    effective_from: 2025-01-01"],
         ["version 1 must be higher than 1"], append="  - version: 1\n    effective_from: 2025-01-01\n"),
    Case("bad-time-zone", [("time_zone: Asia/Tokyo", "time_zone: Asia/Tokio")],
         ["time_zone: ^Asia/Tokio"], ["unknown time zone 'Asia/Tokio'"]),
    Case("time-zone-path-traversal", [("time_zone: Asia/Tokyo", "time_zone: ../../../etc/passwd")],
         ["time_zone: ^../"], ["unknown time zone"]),
    Case("until-before-from", [(f"          {WHEN}\n",
                                f"          {WHEN}\n          from: 2025-02-01\n          until: 2025-01-01\n")],
         ["until: ^2025-01-01"], ["'until' (2025-01-01) is before 'from' (2025-02-01)"]),
    Case("expiry-rolling-without-period", [("      period: {years: 1}\n", "")],
         ["kind: ^rolling"], ["expiry kind 'rolling' needs a 'period'"]),
    # --- expressions: the column is the offending part of the expression, inside the quotes ----
    expr_case("expr-syntax-error", "'points_5pct' in tags)", "'points_5pct' in tags^)", ["syntax error"]),
    expr_case("expr-unknown-name", "'points_5pct' in tag", "'points_5pct' in ^tag", ["unknown name 'tag'"],
              hint="did you mean 'tags'?"),
    expr_case("expr-dunder-class", "'points_5pct' in tags or tags.__class__", "'points_5pct' in tags or ^tags.__class__",
              ["'Attribute' is not allowed"]),
    expr_case("expr-dunder-name", "'points_5pct' in tags or __class__", "'points_5pct' in tags or ^__class__",
              ["name '__class__' is not allowed"]),
    expr_case("expr-attribute", "'points_5pct' in tags or qty.real > 1", "'points_5pct' in tags or ^qty.real > 1",
              ["'Attribute' is not allowed"]),
    expr_case("expr-method-call", "'points_5pct' in tags or sku.upper() == 'X'", "'points_5pct' in tags or ^sku.upper() == 'X'",
              ["only min, max, abs, floor, ceil and len can be called"]),
    expr_case("expr-import", "'points_5pct' in tags or __import__('os')", "'points_5pct' in tags or ^__import__('os')",
              ["only min, max, abs, floor, ceil and len can be called"]),
    expr_case("expr-lambda", "'points_5pct' in tags or (lambda: 1)", "'points_5pct' in tags or (^lambda: 1)",
              ["'Lambda' is not allowed"]),
    expr_case("expr-comprehension", "'points_5pct' in [t for t in tags]", "'points_5pct' in ^[t for t in tags]",
              ["'ListComp' is not allowed"]),
    Case("expr-power", [(WHEN, "when: \"'points_5pct' in tags or qty ** 99 > 4\"")],
         ["'points_5pct' in tags or ^qty ** 99", "'points_5pct' in tags or qty ^** 99"], ["'Pow' is not allowed"]),
    # A plain (unquoted) scalar: the expression starts where the value starts.
    Case("expr-unknown-name-plain-scalar", [(WHEN, "when: qty > 1 and tagz")], ["when: qty > 1 and ^tagz"],
         ["unknown name 'tagz'"], hint="did you mean 'tags'?"),
]


def problems_of(path: Path) -> list:
    with pytest.raises(ProgramError) as info:
        load_program(path)
    problems = info.value.problems
    assert problems, "ProgramError without problems"
    return problems


def full(problem) -> str:
    return f"{problem.message} {problem.hint or ''}"


@pytest.fixture
def write(tmp_path):
    def _write(text: str | bytes, name: str = "andest.yaml") -> Path:
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path
    return _write


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_loader_reports_problem_at_line_and_column(case: Case, write):
    text = case.text()
    path = write(text)
    problems = problems_of(path)
    wanted = {locate(text, at) for at in case.at}
    found = [(p.pos.line, p.pos.col, p.message, p.hint) for p in problems]
    matching = [p for p in problems
                if all(s in full(p) for s in case.says) and (case.hint is None or case.hint in full(p))]
    assert matching, f"no problem says {case.says} (hint {case.hint!r}); found {found}"
    p = matching[0]
    assert p.pos.file == str(path)
    assert (p.pos.line, p.pos.col) in wanted, (
        f"problem {p.message!r} at {p.pos.line}:{p.pos.col}, expected at {sorted(wanted)}")
    if case.count is not None:
        assert len(problems) == case.count, found
    assert str(p).startswith(f"{path}:{p.pos.line}:{p.pos.col}: {p.message}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_command_prints_file_line_col(case: Case, write):
    text = case.text()
    path = write(text)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith(f"{path}:") for line in lines), result.output
    wanted = {locate(text, at) for at in case.at}
    prefixes = {f"{path}:{line}:{col}: " for line, col in wanted}
    hits = [line for line in lines if any(line.startswith(pre) for pre in prefixes)
            and all(s in line for s in case.says)]
    assert hits, f"expected a line starting with one of {sorted(prefixes)} saying {case.says}; got {lines}"


# --- files that are not a program at all ------------------------------------------------------

def test_non_utf8_bytes(write):
    raw = edit(real_text(), 'name: "&est ONLINE STORE points"', 'name: "&est ONLINE @ STORE points"').encode("utf-8")
    raw = raw.replace(b"ONLINE @", b"ONLINE \xff")
    path = write(raw)
    text = raw.decode("utf-8", errors="replace")
    (p,) = problems_of(path)
    assert "not UTF-8" in p.message
    assert (p.pos.line, p.pos.col) == locate(text, 'name: "&est ONLINE ^\ufffd STORE')


def test_non_utf8_column_counts_characters_not_bytes(write):
    # Editors count characters: 'ポイント' is 4 columns, not the 12 bytes UTF-8 takes.
    raw = edit(real_text(), 'name: "&est ONLINE STORE points"', 'name: "&est ポイント @"').encode("utf-8")
    raw = raw.replace(b" @", b" \xff")
    path = write(raw)
    text = raw.decode("utf-8", errors="replace")
    (p,) = problems_of(path)
    assert "not UTF-8" in p.message
    assert (p.pos.line, p.pos.col) == locate(text, 'name: "&est ポイント ^\ufffd')


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank-lines", "comment-only"])
def test_empty_file(write, content):
    (p,) = problems_of(write(content))
    assert (p.pos.line, p.pos.col) == (1, 1)
    assert "empty" in p.message


@pytest.mark.parametrize("content", ["- program: andest\n- name: x\n", "just some text\n", "42\n"],
                         ids=["list", "text", "number"])
def test_top_level_not_a_mapping(write, content):
    (p,) = problems_of(write(content))
    assert (p.pos.line, p.pos.col) == (1, 1)
    assert "mapping" in p.message


def test_real_file_as_a_list_at_the_top(write):
    # The whole real program, indented under a '- ': a list holding the program.
    body = "".join(("- " if i == 0 else "  ") + line if line.strip() else line
                   for i, line in enumerate(l for l in real_text().splitlines(keepends=True) if not l.startswith("#")))
    (p,) = problems_of(write(body))
    assert (p.pos.line, p.pos.col) == (1, 1)
    assert "mapping" in p.message


def billion_laughs(levels: int = 9) -> str:
    lines = ['lol0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_rejected_fast(write):
    base = real_text()
    path = write(base + billion_laughs())
    first_bomb_line = base.count("\n") + 1
    started = time.perf_counter()
    problems = problems_of(path)
    elapsed = time.perf_counter() - started
    assert elapsed < 5, f"took {elapsed:.1f}s"
    (p,) = problems
    assert "alias" in p.message
    assert first_bomb_line <= p.pos.line <= first_bomb_line + 9


def test_alias_bomb_via_command(write):
    path = write(real_text() + billion_laughs())
    started = time.perf_counter()
    proc = subprocess.run(loyalty_command() + ["validate", str(path)], capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - started < 10
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"{path}:")
    assert "alias" in proc.stdout


def test_deep_nesting_is_a_problem_not_a_crash(write):
    path = write("program: " + "[" * 50_000 + "]" * 50_000 + "\n")
    (p,) = problems_of(path)
    assert "too deep" in p.message


@pytest.mark.parametrize("kind", ["empty", "non-utf8", "list", "deep", "missing-file"])
def test_validate_command_never_prints_a_traceback(tmp_path, kind):
    path = tmp_path / "p.yaml"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "non-utf8":
        path.write_bytes(real_text().encode("utf-8").replace(b"ONLINE", b"\xfe\xffONLINE"))
    elif kind == "list":
        path.write_text("- a\n- b\n")
    elif kind == "deep":
        path.write_text("program: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")
    proc = subprocess.run(loyalty_command() + ["validate", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "internal error" not in proc.stdout + proc.stderr
    out = (proc.stdout + proc.stderr).strip().splitlines()
    assert out and out[0].startswith(f"{path}:"), out


# --- the whole command ------------------------------------------------------------------------

def test_validate_programs_directory_is_clean():
    proc = subprocess.run(loyalty_command() + ["validate", "programs"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    # and with no argument, programs/ is the default
    proc = subprocess.run(loyalty_command() + ["validate"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_validate_programs_json_is_an_empty_list():
    proc = subprocess.run(loyalty_command() + ["validate", "programs", "--format", "json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == []


def test_validate_json_lists_every_problem(write):
    text = edit(real_text(), "cap_per_order:", "cap_per_ordr:")
    text = edit(text, "pending_until: shipped", "pending_until: shiped")
    path = write(text)
    result = CliRunner().invoke(cli, ["validate", str(path), "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert isinstance(data, list) and len(data) == 2
    for item in data:
        assert set(item) >= {"file", "line", "col", "message", "hint"}
        assert item["file"] == str(path)
    by_message = {item["message"]: item for item in data}
    unknown = next(v for k, v in by_message.items() if "unknown key 'cap_per_ordr'" in k)
    assert (unknown["line"], unknown["col"]) == locate(text, "^cap_per_ordr")
    assert unknown["hint"] == "did you mean 'cap_per_order'?"
    enum = next(v for k, v in by_message.items() if "shiped" in k)
    assert (enum["line"], enum["col"]) == locate(text, "pending_until: ^shiped")


def test_validate_good_and_bad_files_together(tmp_path, write):
    good = tmp_path / "good.yaml"
    good.write_text(real_text(), encoding="utf-8")
    bad = write(edit(real_text(), "time_zone: Asia/Tokyo", "time_zone: Mars/Olympus"), "bad.yaml")
    result = CliRunner().invoke(cli, ["validate", str(good), str(bad)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{bad}:6:") and "Mars/Olympus" in lines[0]


def test_every_problem_found_in_one_pass(write):
    # Several independent semantic problems: all reported at once, each at its own place.
    text = edit(real_text(), "      rule_id: AND-3\n", "      rule_id: AND-13\n")
    text = edit(text, "      period: {years: 1}\n", "")
    text = edit(text, "{id: gold, min: 100000}", "{id: gold, min: 40000}")
    problems = problems_of(write(text))
    where = {(p.pos.line, p.pos.col) for p in problems}
    assert where == {locate(text, "rule_id: ^AND-13"), locate(text, "kind: ^rolling"),
                     locate(text, "{id: gold, min: ^40000}")}


# --- compiled expressions ---------------------------------------------------------------------

POS = Pos("t.yaml", 1, 1)


def test_expression_floors_exactly():
    e = compile_expr("floor(amount * 0.01)", POS, {"amount"})
    assert e({"amount": 4750}) == 47
    assert type(e({"amount": 4750})) is int
    # decimal literals are exact: 0.29 * 100 is 29, not 28.999999999999996
    assert compile_expr("floor(amount * 0.29)", POS, {"amount"})({"amount": 100}) == 29
    assert compile_expr("amount * 0.1", POS, {"amount"})({"amount": 3}) == Fraction(3, 10)


def test_expression_evaluates_membership_and_logic():
    e = compile_expr("course == 'subscription' and 'sale' not in tags", POS, {"course", "tags"})
    assert e({"course": "subscription", "tags": ("x",)}) is True
    assert e({"course": "subscription", "tags": ("sale",)}) is False
    assert e({"course": "one_off", "tags": ()}) is False
    assert compile_expr("min(qty, 3) * 2 + max(1, 2)", POS, {"qty"})({"qty": 10}) == 8


@pytest.mark.parametrize("source, env", [
    ("'x' * 1000000000", {}),
    ("1000000000 * 'x'", {}),
    ("sku * qty", {"sku": "x", "qty": 10**9}),
    ("tags * qty", {"tags": ("a",), "qty": 10**9}),
    ("[1] * qty", {"qty": 10**9}),
])
def test_text_multiplication_is_refused_at_run_time(source, env):
    try:
        e = compile_expr(source, POS, {"sku", "qty", "tags"})
    except ProgramError as exc:   # reading no name, it fails for every event: refused at load (issue 17)
        assert "always fails: TypeError" in str(exc) and "t.yaml:1:1" in str(exc)
        return
    started = time.perf_counter()
    # A TypeError, or the event refusal (EventRejected) that names it and the expression's place.
    with pytest.raises((TypeError, EventRejected)) as info:
        e(env)
    assert time.perf_counter() - started < 1
    assert "TypeError" in str(info.value) or info.type is TypeError
    if info.type is EventRejected:
        assert "t.yaml:1:1" in str(info.value)


@pytest.mark.parametrize("source", [
    "().__class__", "__import__('os')", "(lambda: 1)()", "[x for x in tags]", "2 ** 1000", "open('f')",
    "qty.real", "{t: 1 for t in tags}", "getattr(qty, 'x')",
])
def test_forbidden_expressions_do_not_compile(source):
    with pytest.raises(ProgramError):
        compile_expr(source, POS, {"qty", "tags"})


def test_expression_error_column_points_into_the_expression():
    # An expression that starts at line 3, column 10 of some file (a plain scalar)
    with pytest.raises(ProgramError) as info:
        compile_expr("qty > 1 and tagz", Pos("t.yaml", 3, 10), {"qty", "tags"})
    (p,) = info.value.problems
    assert (p.pos.line, p.pos.col) == (3, 10 + len("qty > 1 and "))
