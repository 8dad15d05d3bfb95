"""Issue 20 item 1 (and issue 19): problems and refusals carry a code; their texts, English and
Japanese, are looked up by code in engine/format/messages.py."""
from __future__ import annotations

import json
import re
import string

import pytest
from click.testing import CliRunner

from engine.format import messages
from engine.format.loader import parse_program
from engine.model.errors import ProgramError
from engine.shell.cli import cli

JA = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
ALL = {code: texts for catalogue in messages.CATALOGUES for code, texts in catalogue.items()}


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("code", sorted(ALL))
def test_issue20_1_every_code_has_english_and_japanese(code):
    en, ja = ALL[code]
    assert en and ja and en != ja
    assert JA.search(ja), f"{code}: the Japanese text holds no Japanese"
    # the Japanese text uses only the English one's arguments (and the ones render derives from them)
    derived = {"action_ja", "state_ja"}
    assert fields(ja) - derived <= fields(en) | ({"detail"} if code == "yaml.syntax" else set()), code


def test_issue20_1_codes_are_unique_across_catalogues():
    assert sum(len(c) for c in messages.CATALOGUES) == len(ALL)


PROGRAM = """\
program: p
name: "P"
unit: points
time_zone: Asia/Tokyo
rules:
  R-1: "earn"
versions:
  - version: 1
    effective_from: 2025-01-01
    tiers:
      rule_id: R-1
      window: {months: 12}
      measure: items_incl_tax
      levels:
        - {id: regular, min: 0}
        - {id: silver, min: 50000}
    earning:
      kind: rate
      rule_id: R-1
      base: items_ex_tax
      rates:
        - rule_id: R-1
          rate: {by: tier, values: {regular: 0.01, silver: 0.02}}
    expiry: {kind: none, rule_id: R-1}
"""


def problems_of(text: str):
    with pytest.raises(ProgramError) as err:
        parse_program(text, "p.yaml")
    return err.value.problems


def test_issue20_1_no_rate_for_tier_in_last_row_is_japanese():
    broken = PROGRAM.replace("values: {regular: 0.01, silver: 0.02}", "values: {regular: 0.01}")
    (p,) = problems_of(broken)
    assert p.code == "rates.no_rate_last_row" and p.args == {"tier": "silver"}
    assert p.message == "no rate for tier 'silver' in the last rates row"
    ja = messages.problem_text(p, "ja")[0]
    assert ja.startswith("最後の rates の行にティア 'silver' の率がありません") and "last rates row" not in ja


def test_issue20_1_missing_brace_pyyaml_text_is_japanese():
    broken = PROGRAM.replace("window: {months: 12}", "window: {months: 12")
    (p,) = problems_of(broken)
    assert p.code == "yaml.syntax"
    ja = messages.problem_text(p, "ja")[0]
    assert "'}' の閉じ忘れ" in ja and "expected" not in ja and "while parsing" not in ja, ja


@pytest.mark.parametrize("written, hint_code, hint_en", [
    ("5", "hint.rate_fraction", "a rate is a fraction: write 0.05 for 5%"),        # 5 / 100 = 0.05
    ("'5%'", "hint.rate_fraction", "a rate is a fraction: write 0.05 for 5%"),     # '5%' -> 5 / 100
    ("'1.5%'", "hint.rate_fraction", "a rate is a fraction: write 0.015 for 1.5%"),  # 1.5 / 100
])
def test_issue20_1_rate_slip_hints(written, hint_code, hint_en):
    broken = PROGRAM.replace("regular: 0.01, silver", f"regular: {written}, silver")
    (p,) = problems_of(broken)
    assert p.hint_code == hint_code and p.hint == hint_en, p
    assert "と書いてください" in messages.problem_text(p, "ja")[1]


def test_issue20_1_number_with_commas_hint():
    broken = PROGRAM.replace("{id: silver, min: 50000}", "{id: silver, min: '50,000'}")
    (p,) = problems_of(broken)
    assert p.hint_code == "hint.number_commas" and p.hint == "write numbers without commas: 50000", p
    assert messages.problem_text(p, "ja")[1] == "数はカンマなしで書いてください: 50000"


def test_issue20_1_validate_json_carries_code(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PROGRAM.replace("window:", "windw:"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path), "--format", "json"])
    assert result.exit_code == 1
    codes = {p["code"] for p in json.loads(result.output)}
    assert codes == {"schema.unknown_key", "schema.required"}, result.output


def test_issue20_1_run_json_refusal_carries_code(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PROGRAM, encoding="utf-8")
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"id": "e1", "type": "points.granted", "member": "m9", "at": "2025-02-01T10:00:00+09:00", '
        '"amount": 5, "reason": "x"}\n{"id": "e2", "type": "nope", "member": "m9", "at": "2025-02-01T10:00:00+09:00"}\n',
        encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", str(path), str(events), "--db", ":memory:", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    codes = [r["code"] for r in report["rejected"]]
    assert codes == ["member.unknown", "event.unknown_type"], report["rejected"]


BONUS = """\
    bonuses:
      - {rule_id: R-1, on: review.posted, units: 300, once_per: member}
"""


def test_issue20_6_once_per_member_is_refused_with_a_message():
    # once_per: member would do nothing (no record of a bonus per member): refused, not ignored
    text = PROGRAM + BONUS
    (p,) = problems_of(text)
    assert p.code == "bonus.once_per_member"
    assert p.pos.line == text.splitlines().index(BONUS.splitlines()[1]) + 1
    assert "once_per: member" in messages.problem_text(p, "ja")[0]
    parse_program(text.replace("once_per: member", "once_per: product"), "p.yaml")   # product is accepted


def test_issue20_6_schema_requires_expiry_in_the_first_version():
    text = PROGRAM.replace("    expiry: {kind: none, rule_id: R-1}\n", "")
    (p,) = problems_of(text)
    assert p.code == "schema.required" and p.args["field"] == "versions.0" and p.args["prop"] == "'expiry'", p
    # a later version inherits the first's expiry: it need not repeat it
    later = PROGRAM + "  - {version: 2, effective_from: 2026-01-01}\n"
    assert len(parse_program(later, "p.yaml").versions) == 2
