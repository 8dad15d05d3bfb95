"""Issue 21, the format: a campaign as one row (multiply / add over a date window, excluding tags),
rows that can never match, names in conditions the program does not know, any unit name and rule
id prefix. Each case is a small program written here; the figures are worked by hand."""
from __future__ import annotations

import pytest

from engine import Engine
from engine.format.loader import parse_program
from engine.model.errors import ProgramError

HEAD = """\
program: camp_shop
name: "Campaign shop"
unit: {unit}
time_zone: Asia/Tokyo
{extra}
rules:
  CS-1: "1% of the price ex. tax."
  CS-2: "1 point = 1 yen."
  CS-3: "Points valid a year."
  CS-4: "Ranks by the last 12 months."
  CS-CAMP-5: "Double points 2026-05-01 to 2026-05-07, sale items excluded."
  CS-6: "Gold earns 3%."
  CS-7: "+0.5% on every order in May."

versions:
  - version: 1
    effective_from: 2026-01-01
    tiers:
      rule_id: CS-4
      window: {{months: 12}}
      measure: items_ex_tax
      levels:
        - {{id: regular, min: 0}}
        - {{id: gold, min: 100000}}
    earning:
      rule_id: CS-1
      base: items_ex_tax
      pending_until: placed
      rates:
{rows}
    redemption: {{rule_id: CS-2, unit_value_yen: 1}}
    expiry: {{rule_id: CS-3, kind: rolling, period: {{years: 1}}}}
"""

CAMPAIGN = """\
        - {rule_id: CS-CAMP-5, from: 2026-05-01, until: 2026-05-07, exclude_tags: [sale], multiply: 2}
        - {rule_id: CS-6, rate: {by: tier, values: {gold: 0.03}}}
        - {rule_id: CS-1, rate: 0.01}"""


def program(rows: str = CAMPAIGN, unit: str = "points", extra: str = ""):
    return parse_program(HEAD.format(rows=rows, unit=unit, extra=extra), "camp.yaml")


def row_line(rows: str) -> int:
    """The file line of the first rate row."""
    return HEAD.format(rows=rows, unit="points", extra="").splitlines().index(rows.splitlines()[0]) + 1


def problems(rows: str = CAMPAIGN, unit: str = "points", extra: str = "") -> list[str]:
    with pytest.raises(ProgramError) as exc:
        program(rows, unit, extra)
    return [str(p) for p in exc.value.problems]


def earn(prog, at: str, lines: list[tuple[int, list[str]]]) -> dict:
    e = Engine(prog)
    e.apply({"id": "r", "type": "member.registered", "at": "2026-01-05T10:00:00+09:00", "member": "m1"})
    cart = {"id": "c", "type": "order.placed", "at": at, "member": "m1", "order": "o1", "course": "one_off",
            "payment": {"method": "credit_card"},
            "lines": [{"sku": f"S{i}", "qty": 1, "unit_price": p, "tax_rate": 0.1, "tags": t}
                      for i, (p, t) in enumerate(lines)]}
    return e.quote(cart)["earn"]


def test_CS_CAMP_5_double_week_one_row_with_a_sale_exclusion():
    prog = program()
    # 2026-05-03, a regular member: 10,000 (no tag) and 5,000 tagged sale.
    # 10,000 x (2 x 1%) = 200; the sale line is excluded from the campaign: 5,000 x 1% = 50 -> 250
    inside = earn(prog, "2026-05-03T10:00:00+09:00", [(10000, []), (5000, ["sale"])])
    assert inside["points"] == 250 and "CS-CAMP-5" in inside["rules"]
    # 2026-05-08, the day after the window: 15,000 x 1% = 150
    after = earn(prog, "2026-05-08T10:00:00+09:00", [(10000, []), (5000, ["sale"])])
    assert after["points"] == 150 and "CS-CAMP-5" not in after["rules"]


def test_CS_7_campaign_adds_to_the_rate_below():
    rows = """\
        - {rule_id: CS-7, from: 2026-05-01, until: 2026-05-31, add: 0.005}
        - {rule_id: CS-1, rate: 0.01}"""
    # 10,000 x (1% + 0.5%) = 150 in May
    assert earn(program(rows), "2026-05-20T10:00:00+09:00", [(10000, [])])["points"] == 150


def test_campaign_row_last_is_refused():
    rows = """\
        - {rule_id: CS-1, rate: 0.01, when: "course == 'one_off'"}
        - {rule_id: CS-CAMP-5, multiply: 2}"""
    found = problems(rows)
    assert any("a campaign row (multiply/add) needs a row below it that gives the rate" in p for p in found)


def test_row_after_a_catch_all_can_never_match():
    rows = """\
        - {rule_id: CS-1, rate: 0.01}
        - {rule_id: CS-CAMP-5, from: 2026-05-01, until: 2026-05-07, rate: 0.02}"""
    found = problems(rows)
    first = row_line(rows)
    assert found == [f"camp.yaml:{first + 1}:11: this rate row can never match: row 1 (CS-1, line {first}) above it "
                     "takes every line (the first matching row wins: move this row above it)"]


def test_row_with_an_identical_condition_can_never_match():
    rows = """\
        - {rule_id: CS-6, when: "course == 'one_off'", rate: 0.03}
        - {rule_id: CS-6, when: "course == 'one_off'", rate: 0.05}
        - {rule_id: CS-1, rate: 0.01}"""
    found = problems(rows)
    first = row_line(rows)
    assert len(found) == 1 and found[0].startswith(f"camp.yaml:{first + 1}:11: ")
    assert f"row 1 (CS-6, line {first}) above it has the same condition" in found[0]


def test_unknown_tier_and_course_in_a_condition():
    rows = """\
        - {rule_id: CS-6, when: "tier == 'platinum'", rate: 0.03}
        - {rule_id: CS-6, when: "course in ('one_off', 'subscriptoin')", rate: 0.02}
        - {rule_id: CS-1, rate: 0.01}"""
    found = problems(rows)
    assert any("no tier 'platinum' in this program (tiers are: gold, regular)" in p for p in found)
    assert any("no course 'subscriptoin' in this program (did you mean 'subscription'?)" in p for p in found)


def test_declared_tags_and_attributes_are_checked():
    extra = "tags: [sale, points_5pct]\nattributes: [insider]\n"
    rows = """\
        - {rule_id: CS-6, when: "'points_5pc' in tags", rate: 0.05}
        - {rule_id: CS-CAMP-5, from: 2026-05-01, until: 2026-05-07, exclude_tags: [sael], multiply: 2}
        - {rule_id: CS-1, rate: 0.01}"""
    found = problems(rows, extra=extra)
    assert any("no tag 'points_5pc' in this program (did you mean 'points_5pct'?)" in p for p in found)
    assert any("no tag 'sael' in this program (did you mean 'sale'?)" in p for p in found)
    # the same file without the misspellings loads
    assert program(CAMPAIGN, extra=extra).id == "camp_shop"


def test_any_unit_name_and_rule_id_prefix():
    prog = program(unit="miles")
    assert prog.unit == "miles" and "CS-CAMP-5" in prog.rules
    assert any("unit" in p for p in problems(unit="Miles!"))
