"""The marketer's workflow (issue 7): validate in English and Japanese, `loyalty test`, `explain`,
`diff` (terminal, JSON, HTML), the progress display and the pre-commit hooks.

Figures asserted here are worked out by hand in the comments, from docs/RULES.md (AND) and
the ASSUMPTIONs of programs/andest.yaml (member price floor(unit x 0.95); earn floored once per
order; rolling expiry: last valid day = last acquisition + 1 year).
"""
from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from engine.format import i18n
from engine.shell.cli import cli
from engine.shell.progress import count_lines, replay_progress

ROOT = Path(__file__).resolve().parents[1]
ANDEST = ROOT / "programs" / "andest.yaml"
JA = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")   # kana or kanji


def run(args, env=None):
    return CliRunner().invoke(cli, args, env=env)


def andest_text() -> str:
    return ANDEST.read_text(encoding="utf-8")


def edit(old: str, new: str) -> str:
    text = andest_text()
    assert text.count(old) == 1, f"programs/andest.yaml no longer holds exactly one {old!r}; update this test"
    return text.replace(old, new)


def write_events(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def order(eid, at, member, oid, lines, **extra):
    return {"id": eid, "type": "order.placed", "at": at, "member": member, "order": oid, "course": "one_off",
            "payment": {"method": "credit_card"}, "lines": lines, **extra}


def line(sku, qty, unit_price, **extra):
    return {"sku": sku, "product": sku.split("-")[0], "qty": qty, "unit_price": unit_price, "tax_rate": 0.10, **extra}


# --- validate --lang ja -----------------------------------------------------------------------

BROKEN = {
    "unknown_key": lambda: edit("      window: {months: 12}", "      windw: {months: 12}"),
    "duplicate_key": lambda: edit("unit: points\n", "unit: points\nunit: points\n"),
    "wrong_type": lambda: edit("unit_value_yen: 1\n", "unit_value_yen: one\n"),
    "negative": lambda: edit("units: 5000}", "units: -5}"),
    "out_of_range": lambda: edit("rate: 0.05, per: unit", "rate: 1.5, per: unit"),
    "bad_enum": lambda: edit("kind: rolling", "kind: rollin"),
    "unknown_rule": lambda: edit("{rule_id: AND-4,", "{rule_id: AND-44,"),
    "unknown_tier": lambda: edit("silver: 0.02", "silvr: 0.02"),
    "bad_expression": lambda: edit("in tags\"", "in tagz\""),
    "syntax_expression": lambda: edit("in tags\"", "in (\""),
    "overlap": lambda: andest_text() + "  - version: 2\n    effective_from: 2023-01-01\n",
    "tier_order": lambda: edit("{id: gold, min: 100000}", "{id: gold, min: 40000}"),
    "bad_date": lambda: edit("effective_from: 2024-01-01", "effective_from: 2024-13-01"),
    "missing_key": lambda: edit("time_zone: Asia/Tokyo\n", ""),
    "unknown_time_zone": lambda: edit("time_zone: Asia/Tokyo", "time_zone: Mars/Base"),
    "indentation": lambda: edit("  - version: 1\n", "  - version: 1\n   bad: indent\n"),
    "empty": lambda: "",
    "not_a_mapping": lambda: "- just\n- a list\n",
}


@pytest.fixture()
def broken_dir(tmp_path):
    for name, make in BROKEN.items():
        (tmp_path / f"{name}.yaml").write_text(make(), encoding="utf-8")
    (tmp_path / "not_utf8.yaml").write_bytes(b"program: andest\nname: \"\xff\xfe\"\n")
    return tmp_path


def test_validate_japanese_keeps_positions_and_hints(broken_dir):
    en = run(["validate", str(broken_dir), "--lang", "en"])
    ja = run(["validate", str(broken_dir), "--lang", "ja"])
    assert en.exit_code == 1 and ja.exit_code == 1
    en_lines, ja_lines = en.output.splitlines(), ja.output.splitlines()
    assert len(en_lines) == len(ja_lines) >= len(BROKEN) + 1
    files = set()
    for e, j in zip(en_lines, ja_lines):
        pos_e, pos_j = re.match(r"^(\S+:\d+:\d+): ", e), re.match(r"^(\S+:\d+:\d+): ", j)
        assert pos_e and pos_j and pos_e.group(1) == pos_j.group(1), (e, j)   # FILE:LINE:COL unchanged
        assert JA.search(j), f"not translated: {j}"
        if "did you mean" in e:
            assert "のことですか" in j, j            # the hint is kept, in Japanese
        files.add(pos_e.group(1).split(":")[0])
    assert len(files) == len(BROKEN) + 1           # every broken file reported
    # a few by hand
    assert "不明なキー 'windw' ('window' のことですか？)" in ja.output
    assert "負の数は使えません（-5 が書かれています）" in ja.output
    assert "ファイルが空です" in ja.output
    assert "ファイルが UTF-8 のテキストではありません" in ja.output
    first = yaml_line("unit: points")
    assert f"duplicate_key.yaml:{first + 1}:1: キー 'unit' が重複しています（先に {first} 行目で書かれています）" in ja.output


def test_validate_language_from_locale(broken_dir):
    target = str(broken_dir / "unknown_key.yaml")
    ja = run(["validate", target], env={"LC_ALL": "", "LC_MESSAGES": "", "LANG": "ja_JP.UTF-8"})
    en = run(["validate", target], env={"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"})
    over = run(["validate", target], env={"LC_ALL": "en_US.UTF-8", "LANG": "ja_JP.UTF-8"})
    forced = run(["validate", target, "--lang", "en"], env={"LC_ALL": "", "LANG": "ja_JP.UTF-8"})
    assert ja.exit_code == en.exit_code == over.exit_code == forced.exit_code == 1
    assert "不明なキー 'windw'" in ja.output
    assert "unknown key 'windw' (did you mean 'window'?)" in en.output
    assert "unknown key 'windw'" in over.output    # LC_ALL wins over LANG
    assert "unknown key 'windw'" in forced.output  # --lang wins over the locale


def test_validate_json_in_japanese(broken_dir):
    result = run(["validate", str(broken_dir / "unknown_rule.yaml"), "--format", "json", "--lang", "ja"])
    assert result.exit_code == 1
    (problem,) = json.loads(result.output)
    assert problem["message"] == "不明なルールID 'AND-44': 'rules' の下で宣言してください"
    assert problem["hint"] == "'AND-4' のことですか？"
    assert problem["line"] == andest_text().splitlines().index(
        next(l for l in andest_text().splitlines() if "rule_id: AND-4," in l)) + 1


def test_validate_valid_programs_japanese_summary():
    result = CliRunner().invoke(cli, ["validate", str(ANDEST), "--lang", "ja"])
    assert result.exit_code == 0
    assert "1 個のプログラムファイルに問題はありません" in result.output


def test_i18n_catalog():
    assert i18n.resolve_lang("ja") == "ja" and i18n.resolve_lang("en", {"LANG": "ja_JP.UTF-8"}) == "en"
    assert i18n.lang_from_env({"LANG": "ja_JP.eucJP"}) == "ja"
    assert i18n.lang_from_env({"LC_MESSAGES": "ja_JP.UTF-8", "LANG": "en_US.UTF-8"}) == "ja"
    assert i18n.lang_from_env({}) == "en"
    with pytest.raises(ValueError):
        i18n.resolve_lang("fr")
    # an unknown message stays in English rather than breaking validate
    assert i18n.translate("something new the loader says", "ja") == "something new the loader says"
    assert i18n.translate("versions.0.tiers: 'window' is a required property", "ja") == \
        "versions.0.tiers: 必須のキー 'window' がありません"
    assert i18n.translate("unknown key 'x'", "en") == "unknown key 'x'"
    assert i18n.translate_hint("expected one of: a, b", "ja") == "使えるキー: a, b"


# --- loyalty test -----------------------------------------------------------------------------

def test_loyalty_test_programs_pass():
    result = CliRunner().invoke(cli, ["test", str(ROOT / "programs")])
    assert result.exit_code == 0, result.output
    m = re.search(r"^(\d+) passed, 0 failed$", result.output, re.M)
    assert m and int(m.group(1)) >= 8
    assert "ok    sign-up bonus" in result.output


def test_andest_cases_cover_the_rules():
    data = yaml.safe_load((ROOT / "programs" / "andest.tests.yaml").read_text(encoding="utf-8"))
    assert len(data["cases"]) >= 8
    covered = {r for case in data["cases"] for r in case["rules"]}
    assert {f"AND-{i}" for i in range(1, 12)} <= covered   # AND-12 (no cash-out) has no event to test


@pytest.fixture()
def cases_dir(tmp_path):
    shutil.copy(ANDEST, tmp_path / "andest.yaml")
    shutil.copy(ROOT / "programs" / "andest.tests.yaml", tmp_path / "andest.tests.yaml")
    return tmp_path


def test_loyalty_test_failure_shows_expected_actual_and_rules(cases_dir):
    tests = cases_dir / "andest.tests.yaml"
    text = tests.read_text(encoding="utf-8")
    assert text.count("m1: {points: {valid: 1203, pending: 0}, tier: silver}") == 1
    text = text.replace("m1: {points: {valid: 1203, pending: 0}, tier: silver}",
                        "m1: {points: {valid: 1213, pending: 0}, tier: gold}")
    tests.write_text(text, encoding="utf-8")
    wrong_line = text.splitlines().index(next(l for l in text.splitlines() if "valid: 1213" in l)) + 1
    result = CliRunner().invoke(cli, ["test", str(cases_dir)])
    assert result.exit_code == 1
    assert "FAIL  silver from 50,000 in 12 months: 2% on the next order [AND-10, AND-1]" in result.output
    assert f"line {wrong_line}: m1.points.valid: expected 1213, got 1203" in result.output
    assert f"line {wrong_line}: m1.tier: expected 'gold', got 'silver'" in result.output
    assert "rules involved: AND-10, AND-1" in result.output
    assert re.search(r"^\d+ passed, 1 failed$", result.output, re.M)


def test_loyalty_test_unexpected_rejection_fails(cases_dir):
    tests = cases_dir / "andest.tests.yaml"
    text = tests.read_text(encoding="utf-8").replace("rejected: [e5, e6]", "rejected: [e5]")
    tests.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["test", str(cases_dir), "-k", "returns refused"])
    assert result.exit_code == 1
    assert 'rejected events: expected ["e5"], got ["e5", "e6"]' in result.output
    assert "the return window of 7 days" in result.output
    assert "0 passed, 1 failed" in result.output


def test_loyalty_test_bad_tests_file_has_a_position(cases_dir):
    tests = cases_dir / "andest.tests.yaml"
    text = tests.read_text(encoding="utf-8").replace("    as_of: \"2025-01-06\"\n", "    as_off: \"2025-01-06\"\n", 1)
    tests.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["test", str(tests)])
    assert result.exit_code == 1
    assert re.search(r"andest\.tests\.yaml:\d+:\d+: cases\.0: .*'as_off'", result.output)


def test_loyalty_test_notes_programs_without_cases(tmp_path):
    shutil.copy(ANDEST, tmp_path / "andest.yaml")
    result = CliRunner().invoke(cli, ["test", str(tmp_path)])
    assert result.exit_code == 1                   # nothing to run is not a pass
    assert "andest.yaml: no cases (andest.tests.yaml is missing)" in result.output


# --- explain ------------------------------------------------------------------------------------

EXPLAIN_EVENTS = [
    {"id": "e1", "type": "member.registered", "at": "2025-01-05T10:00:00+09:00", "member": "m1"},
    # 1 x 10,000 -> 9,500: 95 pending; 300 used, from the sign-up lot (200 of it left)
    order("e2", "2025-01-06T10:00:00+09:00", "m1", "o1", [line("BAG-L", 1, 10000)], redeem={"points": 300}),
    {"id": "e3", "type": "order.shipped", "at": "2025-01-08T10:00:00+09:00", "member": "m1", "order": "o1"},
    # 1 x 5,000 -> 4,750: 47 pending, voided by the cancellation
    order("e4", "2025-01-10T10:00:00+09:00", "m1", "o2", [line("TEE-M", 1, 5000)]),
    {"id": "e5", "type": "order.cancelled", "at": "2025-01-11T10:00:00+09:00", "member": "m1", "order": "o2"},
    {"id": "e6", "type": "member.registered", "at": "2025-01-12T10:00:00+09:00", "member": "m2"},
]


@pytest.fixture()
def ledger(tmp_path):
    events = write_events(tmp_path / "events.jsonl", EXPLAIN_EVENTS)
    db = tmp_path / "ledger.db"
    result = run(["run", str(ANDEST), str(events), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db


def yaml_line(fragment: str) -> int:
    lines = andest_text().splitlines()
    (index,) = [i for i, l in enumerate(lines) if fragment in l]
    return index + 1


def test_explain_tells_each_lot(ledger):
    # As of 2026-01-10: the last acquisition was o1's shipment on 2025-01-08, so the last valid day
    # was 2026-01-08 and the 200 + 95 left expired at the start of 2026-01-09.
    result = run(["explain", str(ANDEST), "--db", str(ledger), "--member", "m1", "--as-of", "2026-01-10"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Balance: 0 points can be used now." in out
    assert "In all 642 points received: 300 used, 295 expired, 47 voided." in out
    # lot 1: the sign-up bonus, where it is written, what became of it
    assert "1. 500 points, sign-up bonus, on 2025-01-05 (event e1, signing up)." in out
    assert f"Rule AND-4, program version 1, written at line {yaml_line('rule_id: AND-4,')} (bonuses" in out
    assert "300 points used on 2025-01-06 on order o1 (event e2, order placed; rule AND-3)." in out
    assert "200 points expired on 2026-01-09: the last valid day was 2026-01-08, 1 year after the member last " \
           "received points (2025-01-08)" in out
    # lot 2: o1's points: pending, valid at shipment, expired
    assert "2. 95 points earned on order o1 (the member's tier then: regular), placed 2025-01-06 (event e2, order placed)." in out
    assert "95 points became valid on 2025-01-08: the order shipped (event e3, order shipped" in out
    # lot 3: o2's points voided by the cancellation
    # (the cancellation books the void under AND-2 "void when cancelled", or the returns rule AND-11)
    assert re.search(r"47 points voided on 2025-01-11: the order was cancelled \(event e5, order cancelled; "
                     r"rule AND-(2|11)\)\.", out)
    # the rules, with the lines that say them
    assert f"AND-5 (line {yaml_line('rule_id: AND-5')}): Points stay valid 1 year" in out


def test_explain_as_of_the_past(ledger):
    result = run(["explain", str(ANDEST), "--db", str(ledger), "--member", "m1", "--as-of", "2025-01-07"])
    assert result.exit_code == 0, result.output
    # before o1 shipped and before o2: 200 valid, 95 pending, 300 used
    assert "Balance: 200 points can be used now" in result.output
    assert "Also 95 points pending (waiting for shipment)." in result.output
    assert "o2" not in result.output


def test_explain_errors(ledger, tmp_path):
    unknown = run(["explain", str(ANDEST), "--db", str(ledger), "--member", "nobody"])
    assert unknown.exit_code == 1 and "member nobody: not in the ledger" in unknown.output
    missing = tmp_path / "missing.db"
    result = run(["explain", str(ANDEST), "--db", str(missing), "--member", "m1"])
    assert result.exit_code == 1 and "no such ledger" in result.output
    assert not missing.exists()                     # explain never creates a ledger
    bad = run(["explain", str(ANDEST), "--db", str(ledger), "--member", "m1", "--as-of", "yesterday"])
    assert bad.exit_code == 1 and "--as-of" in bad.output


# --- diff ---------------------------------------------------------------------------------------

DIFF_EVENTS = [
    {"id": "e1", "type": "member.registered", "at": "2025-01-05T10:00:00+09:00", "member": "m1"},
    # o1: 6 x 9,000 -> 8,550 x 6 = 51,300 as regular (1% under both files): 513
    order("e2", "2025-02-01T10:00:00+09:00", "m1", "o1", [line("COAT-M", 6, 9000)]),
    {"id": "e3", "type": "order.shipped", "at": "2025-02-03T10:00:00+09:00", "member": "m1", "order": "o1"},
    # o2: 9,500 as silver: OLD 2% = 190, NEW 3% = 285 -> +95 points, +95 yen (1 point = 1 yen)
    order("e4", "2025-02-10T10:00:00+09:00", "m1", "o2", [line("BAG-L", 1, 10000)]),
    {"id": "e5", "type": "order.shipped", "at": "2025-02-12T10:00:00+09:00", "member": "m1", "order": "o2"},
    # m2 stays regular: 1 x 5,000 -> 4,750 -> 47 under both
    {"id": "e6", "type": "member.registered", "at": "2025-01-06T10:00:00+09:00", "member": "m2"},
    order("e7", "2025-02-11T10:00:00+09:00", "m2", "o3", [line("TEE-M", 1, 5000)]),
]


@pytest.fixture()
def two_versions(tmp_path):
    new = tmp_path / "andest_silver3.yaml"
    new.write_text(edit("silver: 0.02", "silver: 0.03"), encoding="utf-8")
    events = write_events(tmp_path / "events.jsonl", DIFF_EVENTS)
    return new, events


def test_diff_silver_rate_by_hand(two_versions):
    new, events = two_versions
    result = run(["diff", str(ANDEST), str(new), str(events), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = {r["member"]: r for r in report["members"]}
    # m1: OLD 500 + 513 + 190 = 1,203; NEW 500 + 513 + 285 = 1,298
    assert rows["m1"]["old"]["granted"] == 1203 and rows["m1"]["new"]["granted"] == 1298
    # the 95 more points are still outstanding: +95 yen of liability; the customer pays the same
    assert rows["m1"]["delta"] == {"granted": 95, "used": 0, "expired": 0, "void": 0, "outstanding": 95, "cost_yen": 95,
                                   "liability_yen": 95, "items_yen": 0, "fees_yen": 0, "points_yen": 0,
                                   "to_pay_yen": 0, "orders": 0, "clamped": 0, "clamped_units": 0}
    # named by the rule that produced it: the earning rule of the silver row (AND-5 in andest.yaml)
    earn = [r for r in report["by_rule"] if r["delta"].get("granted")]
    assert len(earn) == 1 and earn[0]["delta"]["granted"] == 95 and earn[0]["line"].startswith(str(new))
    assert rows["m1"]["old"]["tier"] == rows["m1"]["new"]["tier"] == "silver"
    # m2: 500 + 47 under both
    assert rows["m2"]["old"]["granted"] == rows["m2"]["new"]["granted"] == 547 and not rows["m2"]["changed"]
    assert report["changed_members"] == 1
    assert report["totals"]["delta"]["cost_yen"] == 95
    assert report["totals"]["old"]["cost_yen"] == 1203 + 547
    # cost by month (month granted): January the two sign-ups; February 513 + 190 (+95) + 47
    months = {m["month"]: m for m in report["cost_by_month"]}
    assert months["2025-01"] == {"month": "2025-01", "old": 1000, "new": 1000}
    assert months["2025-02"] == {"month": "2025-02", "old": 750, "new": 845}


def test_diff_terminal_table_and_exit_code(two_versions):
    new, events = two_versions
    result = run(["diff", str(ANDEST), str(new), str(events)])
    assert result.exit_code == 0, result.output
    assert "Members whose figures change" in result.output
    row = next(l for l in result.output.splitlines() if l.strip().startswith("m1 "))
    assert re.search(r"m1\s+silver\s+1,203\s+1,298\s+\+95\s+0\s+0\s+0\s+\+95\s+\+95", row), row
    assert not any(l.strip().startswith("m2 ") for l in result.output.splitlines())
    assert re.search(r"cost \(yen\)\s+1,750\s+1,845\s+\+95", result.output)
    assert run(["diff", str(ANDEST), str(new), str(events), "--exit-code"]).exit_code == 1
    same = run(["diff", str(ANDEST), str(ANDEST), str(events), "--exit-code"])
    assert same.exit_code == 0 and "No member's figures change." in same.output


def test_diff_html_is_self_contained(two_versions, tmp_path):
    new, events = two_versions
    out = tmp_path / "report.html"
    result = run(["diff", str(ANDEST), str(new), str(events), "--html", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") >= 2                  # distribution of the change, cost by month
    assert "Change in points granted per member" in page and "Cost in yen of the points granted each month" in page
    # nothing loaded from elsewhere: no scripts, links or remote images
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "+¥95" in page and "m1" in page


def test_diff_errors(two_versions, tmp_path):
    new, events = two_versions
    assert run(["diff", str(ANDEST), str(new), str(tmp_path / "none.jsonl")]).exit_code == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("", encoding="utf-8")
    result = run(["diff", str(ANDEST), str(broken), str(events)])
    assert result.exit_code == 1 and "broken.yaml:1:1: the file is empty" in result.output


def test_diff_histogram_bins():
    from engine.shell.commands.diff import histogram_bins

    bars = histogram_bins([0, 0, 0, 95, 250, -40])
    assert ("no change", 3, "zero") in bars
    assert sum(c for _, c, _ in bars) == 6
    kinds = [k for _, _, k in bars]
    assert kinds.index("zero") > kinds.index("neg") and kinds.index("zero") < kinds.index("pos")


# --- progress, pre-commit -------------------------------------------------------------------------

def test_progress_silent_off_a_terminal():
    stream = io.StringIO()
    with replay_progress(100_000, stream=stream) as progress:
        assert progress is None
    assert stream.getvalue() == ""


def test_progress_bar_when_forced(tmp_path):
    from engine.format.loader import load_program
    from engine.run.runner import Runner
    from engine.store import MemoryStore

    events = write_events(tmp_path / "events.jsonl", DIFF_EVENTS)
    assert count_lines(str(events)) == len(DIFF_EVENTS) and count_lines("-") is None
    stream = io.StringIO()
    program = load_program(ANDEST)
    with replay_progress(count_lines(str(events)), stream=stream, force=True) as progress:
        assert callable(progress)
        result = Runner(program, MemoryStore(program.id)).run(events.read_bytes().splitlines(), progress=progress)
    assert len(result.applied) == len(DIFF_EVENTS)
    assert f"{len(DIFF_EVENTS)}/{len(DIFF_EVENTS)}" in stream.getvalue()


def test_pre_commit_hooks():
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
    assert hooks["loyalty-validate"]["entry"] == "loyalty validate"
    assert hooks["loyalty-validate"]["language"] == "python" and hooks["loyalty-validate"]["pass_filenames"]
    assert re.search(hooks["loyalty-validate"]["files"], "programs/andest.yaml")
    assert re.search(hooks["loyalty-validate"]["exclude"], "programs/andest.tests.yaml")
    assert hooks["loyalty-test"]["entry"] == "loyalty test" and hooks["loyalty-test"]["pass_filenames"] is False


def test_tests_schema_is_valid_json_schema():
    import jsonschema

    schema = json.loads((ROOT / "schema" / "tests.schema.json").read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema).check_schema(schema)
    data = yaml.load((ROOT / "programs" / "andest.tests.yaml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    jsonschema.validate({"cases": [{"name": "x", "rules": ["AND-1"], "events": [], "expect": {"members": {}}}]}, schema)
    assert data["program"] == "andest"
