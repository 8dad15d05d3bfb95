"""Issue 21: the everyday campaign edits, each replayed by `loyalty diff` on the shop's example
events (examples/<id>/events.jsonl), the figure worked out by hand from the events and the rule,
and the rule named with the line it is written on."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from engine.shell.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "programs"
EXAMPLES = ROOT / "examples"


def run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def edited(tmp_path: Path, shop: str, old: str, new: str, name: str = "") -> Path:
    text = (PROGRAMS / f"{shop}.yaml").read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / (name or f"{shop}_edit.yaml")
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in text)


def diff_json(old: Path, new: Path, events: Path, *extra) -> dict:
    result = run(["diff", str(old), str(new), str(events), "--format", "json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_rule(report: dict, rule: str) -> dict:
    return next(r for r in report["by_rule"] if r["rule"] == rule)


def test_AND_3_cap_lowered_clamps_requests_not_refuses(tmp_path):
    new = edited(tmp_path, "andest", "cap_per_order: {rule_id: AND-3, units: 5000}",
                 "cap_per_order: {rule_id: AND-3, units: 500}")
    report = diff_json(PROGRAMS / "andest.yaml", new, EXAMPLES / "andest" / "events.jsonl")
    # The ten historical requests above 500 (o0089 900, o0016 600, o0011 800, o0098 900, o0035 800,
    # o0084 900, o0092 800, o0071 700, o0105 600, o0106 800) are each cut to the new cap of 500:
    # 400 + 100 + 300 + 400 + 300 + 400 + 300 + 200 + 100 + 300 = 2,800 units asked but not allowed.
    clamps = {c["order"]: (c["asked"], c["allowed"]) for c in report["clamped"]["new"]}
    assert clamps == {"o0089": (900, 500), "o0016": (600, 500), "o0011": (800, 500), "o0098": (900, 500),
                      "o0035": (800, 500), "o0084": (900, 500), "o0092": (800, 500), "o0071": (700, 500),
                      "o0105": (600, 500), "o0106": (800, 500)}
    assert report["clamped"]["old"] == []
    assert report["headline"]["clamped"] == 10 and report["headline"]["clamped_units"] == 2800
    # never turned into refused orders: the same events apply under both files
    assert report["headline"]["refused_by_new"] == 0 and report["new"]["rejected"] == 0
    row = by_rule(report, "AND-3")
    assert row["delta"]["clamped"] == 10 and row["delta"]["clamped_units"] == 2800
    assert row["line"] == f"{new}:{line_of(new, 'cap_per_order')}"
    # customers pay what the points no longer cover: exactly the fall in points used (1 point = 1 yen)
    t = report["totals"]["delta"]
    assert t["to_pay_yen"] == -t["points_yen"] > 0


def test_AND_4_bonus_amount_500_to_600(tmp_path):
    new = edited(tmp_path, "andest", "{rule_id: AND-4, on: member.registered, units: 500}",
                 "{rule_id: AND-4, on: member.registered, units: 600}")
    report = diff_json(PROGRAMS / "andest.yaml", new, EXAMPLES / "andest" / "events.jsonl")
    # 28 member.registered events in the example, each granted 100 more: 28 x 100 = 2,800 points,
    # 2,800 yen at 1 yen a point (AND-1's unit value), all granted by AND-4 on the edited line
    row = by_rule(report, "AND-4")
    assert row["delta"]["granted"] == 2800
    assert row["line"] == f"{new}:{line_of(new, 'AND-4, on: member.registered')}"
    assert report["totals"]["delta"]["granted"] == 2800
    assert report["changed_members"] == 28


def test_AMA_3_exchange_fee_1400_to_1500_customers_pay_more(tmp_path):
    new = edited(tmp_path, "amare", "ex_tax: 1400, per_units: 100", "ex_tax: 1500, per_units: 100")
    report = diff_json(PROGRAMS / "amare.yaml", new, EXAMPLES / "amare" / "events.jsonl")
    # The example's exchanges, in started hundreds of points (42 -> 1, 168 -> 2, 200 -> 2, 142 -> 2):
    # b01 4 x 42 (4), b03 42 (1), b04 100 + 100 (2), b05 42 + 42 (2), b09 42 (1),
    # b10 4x42=168, 2x100=200, 42+100=142 (2 + 2 + 2 = 6), b11 100 + 100 (2), b13 42 (1): 19 in all.
    # Each costs 100 yen more ex. tax, 110 incl. 10%: 19 x 110 = 2,090 yen more paid.
    assert report["headline"]["to_pay_yen"] == 2090
    assert report["totals"]["delta"]["fees_yen"] == 2090
    rows = {r["member"]: r["delta"]["to_pay_yen"] for r in report["members"] if r["changed"]}
    assert rows == {"b01": 440, "b03": 110, "b04": 220, "b05": 220, "b09": 110, "b10": 660, "b11": 220, "b13": 110}
    row = by_rule(report, "AMA-3")
    assert row["delta"] == {"fees_yen": 2090}
    assert row["line"] == f"{new}:{line_of(new, 'kind: exchange_fee')}"
    # the points side does not move, and a program without tiers shows no "members in None"
    assert report["headline"]["cost_yen"] == 0 and report["tiers"] == {}
    table = run(["diff", str(PROGRAMS / "amare.yaml"), str(new), str(EXAMPLES / "amare" / "events.jsonl")])
    assert "members in None" not in table.output and "+¥2,090" in table.output


def test_MAN_3_bronze_6_to_5_months_moves_stage_ups_and_gifts(tmp_path):
    new = edited(tmp_path, "manda", "up: {rule_id: MAN-3, months: 6, amount: 15000",
                 "up: {rule_id: MAN-3, months: 5, amount: 15000")
    report = diff_json(PROGRAMS / "manda.yaml", new, EXAMPLES / "manda" / "events.jsonl")
    # m01's subscription started 2025-01-08: months count from January (MAN-4, that month included).
    # 6 months (Jan-Jun) -> bronze from 2025-07-01 (MAN-5: decided at the month's start); 5 months
    # (Jan-May) -> 2025-06-01. The 1st gift comes 2 months after the stage-up month (MAN-9):
    # September -> August; its notice a month before (MAN-11): August -> July; the 2nd gift six
    # months after the 1st was sent: 2026-03 -> 2026-02.
    m01 = [c for c in report["stage_changes"] if c["member"] == "m01" and c["stage"] == "bronze"]
    assert [(c["old"], c["new"]) for c in m01] == [("2025-07-01", "2025-06-01")]
    assert m01[0]["rule"] == "MAN-3" and m01[0]["line"] == f"{new}:{line_of(new, 'months: 5, amount: 15000')}"
    gifts = {(c["effect"], json.loads(c["detail"])["number"]): (c["old"], c["new"], c["rule"])
             for c in report["effect_changes"] if c["member"] == "m01" and '"bronze"' in c["detail"]}
    assert gifts[("gift.due", 1)] == ("2025-09-01", "2025-08-01", "MAN-9")
    assert gifts[("notice.due", 1)] == ("2025-08-01", "2025-07-01", "MAN-11")
    assert gifts[("gift.due", 2)] == ("2026-03-01", "2026-02-01", "MAN-9")
    # no points or money move, but the members whose dates move count as changed (--exit-code)
    assert report["headline"]["cost_yen"] == 0 and report["changed_members"] == 9
    assert run(["diff", str(PROGRAMS / "manda.yaml"), str(new), str(EXAMPLES / "manda" / "events.jsonl"),
                "--exit-code"]).exit_code == 1


def test_RC_6_version_after_the_history_replayed_to_its_first_day(tmp_path):
    text = (PROGRAMS / "rewards_circle.yaml").read_text(encoding="utf-8")
    old = tmp_path / "rc_v1.yaml"
    old.write_text(text[:text.index("  - version: 2")], encoding="utf-8")
    events = tmp_path / "before.jsonl"
    lines = (EXAMPLES / "rewards_circle" / "events.jsonl").read_text(encoding="utf-8").splitlines(True)
    events.write_text("".join(x for x in lines if json.loads(x)["at"] < "2025-11-04"), encoding="utf-8")
    report = diff_json(old, PROGRAMS / "rewards_circle.yaml", events)
    # version 2 starts 2025-11-04, after the last event: compared as of the end of that day, no --as-of
    assert report["as_of"] == "2025-11-04T23:59:59.999999+09:00"
    r01 = next(r for r in report["members"] if r["member"] == "r01")
    # r01 holds one 1,100-yen credit; RC-6 converts it to 2 x 450 (900) and its 200 rest, pooled and
    # rounded up, to 1 adjustment credit of 450: 3 credits worth 1,350, +250 yen
    assert (r01["old"]["granted"], r01["new"]["granted"]) == (1, 3)
    assert r01["delta"]["cost_yen"] == 250
    assert by_rule(report, "RC-6")["delta"]["granted"] > 0


def test_diff_two_programs_warns(tmp_path):
    result = run(["diff", str(PROGRAMS / "andest.yaml"), str(PROGRAMS / "ansage.yaml"),
                  str(EXAMPLES / "andest" / "events.jsonl"), "--format", "json"])
    assert "two different programs" in result.stderr
    assert "'andest'" in json.loads(result.stdout)["warnings"][0]


def test_diff_csv_has_the_same_figures(tmp_path):
    new = edited(tmp_path, "amare", "ex_tax: 1400, per_units: 100", "ex_tax: 1500, per_units: 100")
    result = run(["diff", str(PROGRAMS / "amare.yaml"), str(new), str(EXAMPLES / "amare" / "events.jsonl"),
                  "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    # the AMA-3 row: 19 started hundreds x 110 yen (see the fee test)
    fee = next(r for r in rows if r["section"] == "rule" and r["rule"] == "AMA-3")
    assert fee["figure"] == "fees_yen" and fee["change"] == "2090"
    b10 = next(r for r in rows if r["section"] == "member" and r["member"] == "b10" and r["figure"] == "to_pay_yen")
    assert b10["change"] == "660"    # 6 started hundreds x 110


def test_mistake_AND_10_rate_typed_as_percent_refused(tmp_path):
    # a mistake: AND-10's gold rate typed 3 (meaning 3%) instead of 0.03: a rate is a fraction of at
    # most 1, so the diff refuses the file at the line and column of the value and replays nothing
    new = edited(tmp_path, "andest", "silver: 0.02, gold: 0.03", "silver: 0.02, gold: 3")
    result = run(["diff", str(PROGRAMS / "andest.yaml"), str(new), str(EXAMPLES / "andest" / "events.jsonl")])
    assert result.exit_code == 1
    assert f"{new.name}:{line_of(new, 'gold: 3}')}:" in result.output
    assert "values.gold: 3 is greater than the maximum of 1" in result.output


def test_mistake_unknown_tier_refused_with_its_line(tmp_path):
    new = edited(tmp_path, "andest", "silver: 0.02, gold: 0.03", "silvr: 0.02, gold: 0.03")
    result = run(["diff", str(PROGRAMS / "andest.yaml"), str(new), str(EXAMPLES / "andest" / "events.jsonl")])
    assert result.exit_code == 1
    assert f"{new.name}:{line_of(new, 'silvr')}" in result.output and "silvr" in result.output


def test_mistake_broken_yaml_refused_ledger_untouched(tmp_path):
    new = edited(tmp_path, "andest", "cap_per_order: {rule_id: AND-3, units: 5000}",
                 "cap_per_order: {rule_id: AND-3, units: 5000")
    result = run(["diff", str(PROGRAMS / "andest.yaml"), str(new), str(EXAMPLES / "andest" / "events.jsonl")])
    assert result.exit_code == 1 and f"{new.name}:" in result.output


CAMPAIGN_RULE = '''  AND-20: "Double points week 2026-04-20 to 2026-04-26, sale items excluded."
'''
CAMPAIGN_ROW = '''      rates:   # first row that matches a line gives that line's rate
        - rule_id: AND-20
          # AND-20: double points for a week, sale items excluded: one row
          from: 2026-04-20
          until: 2026-04-26
          exclude_tags: [sale]
          multiply: 2
'''


def campaign_file(tmp_path: Path) -> Path:
    text = (PROGRAMS / "andest.yaml").read_text(encoding="utf-8")
    text = text.replace("rules:\n", "rules:\n" + CAMPAIGN_RULE, 1)
    text = text.replace("      rates:   # first row that matches a line gives that line's rate\n", CAMPAIGN_ROW, 1)
    path = tmp_path / "andest_double_week.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_AND_20_campaign_week_with_a_sale_exclusion(tmp_path):
    new = campaign_file(tmp_path)
    report = diff_json(PROGRAMS / "andest.yaml", new, EXAMPLES / "andest" / "events.jsonl")
    # The week holds one order: o0110 (m018, regular, 2026-04-21): DRESS 12,900 and DENIM 6,200
    # tagged sale; the 5% member price makes them 12,255 and 5,890 ex. tax.
    # OLD: both 1% (AND-1): floor(122.55 + 58.90) = 181.
    # NEW: the dress 2 x 1% = 2% (AND-20), the sale denim keeps 1%: floor(245.10 + 58.90) = 304.
    # +123 points for m018, the lot now under AND-20 (the row that gave most of it).
    m018 = next(r for r in report["members"] if r["member"] == "m018")
    assert m018["delta"]["granted"] == 123
    assert by_rule(report, "AND-20")["delta"]["granted"] == 304
    assert by_rule(report, "AND-20")["line"] == f"{new}:{line_of(new, '- rule_id: AND-20')}"
    assert report["totals"]["delta"]["granted"] == 123 and report["changed_members"] == 1


def test_AND_1_one_products_rate(tmp_path):
    anchor = "      rates:   # first row that matches a line gives that line's rate\n"
    new = edited(tmp_path, "andest", anchor,
                 anchor + "        - {rule_id: AND-1, when: \"sku == 'JACKET-GREY-L'\", rate: 0.05}\n")
    report = diff_json(PROGRAMS / "andest.yaml", new, EXAMPLES / "andest" / "events.jsonl")
    # Three orders of JACKET-GREY-L (15,900; 15,105 ex. tax at the 5% member price), none returned:
    # m006 o0015 and m010 o0122, regular: 1% = floor(151.05) = 151 -> 5% = floor(755.25) = 755: +604;
    # m004 o0059, silver on 2025-10-16: 2% (AND-10) = floor(302.1) = 302 -> 755: +453.
    changed = {r["member"]: r["delta"]["granted"] for r in report["members"] if r["changed"]}
    assert changed == {"m004": 453, "m006": 604, "m010": 604}
    # m006's points have since expired (rolling expiry): granted +604, expired +604, no cost
    m006 = next(r for r in report["members"] if r["member"] == "m006")
    assert m006["delta"]["expired"] == 604 and m006["delta"]["cost_yen"] == 0
    # the AND-1 lots grow by 151->755 twice and by 755 (m004's lot moves from AND-10's 302 to AND-1):
    # AND-1 +604 +604 +755 = +1,963, AND-10 -302
    assert by_rule(report, "AND-1")["delta"]["granted"] == 1963
    assert by_rule(report, "AND-10")["delta"]["granted"] == -302


def test_AND_10_silver_threshold_50000_to_40000(tmp_path):
    new = edited(tmp_path, "andest", "- {id: silver, min: 50000}", "- {id: silver, min: 40000}")
    report = diff_json(PROGRAMS / "andest.yaml", new, EXAMPLES / "andest" / "events.jsonl")
    # m012 before o0076 (2025-12-21), the 12 months' orders ex. tax after the 5% member price:
    # o0026 7,505 + 4,560, o0042 15,105, o0057 7,505 x 2: 42,180 -> more than 40,000 (silver), not
    # more than 50,000 (regular). o0076 (4,100 -> 3,895) earns 2% = floor(77.9) = 77 instead of 1%
    # = floor(38.95) = 38: +39. At o0121 (2026-05-31) the window from 2025-06-01 holds 34,010: regular.
    moved = [c for c in report["order_tier_changes"] if c["member"] == "m012"]
    assert [(c["order"], c["old"], c["new"], c["rule"]) for c in moved] == [("o0076", "regular", "silver", "AND-10")]
    m012 = next(r for r in report["members"] if r["member"] == "m012")
    assert m012["delta"]["granted"] == 39
    assert len(report["order_tier_changes"]) == 10 and by_rule(report, "AND-10")["delta"]["order_tiers_changed"] == 10


def test_AMA_6_a_new_reward_changes_nothing_in_the_history(tmp_path):
    anchor = "        - {id: ssr_reward_100, name: \"SSR reward 100\", units: 100}\n"
    new = edited(tmp_path, "amare", anchor, anchor + "        - {id: ssr_reward_300, name: \"SSR reward 300\", units: 300}\n")
    report = diff_json(PROGRAMS / "amare.yaml", new, EXAMPLES / "amare" / "events.jsonl")
    # no historical order asks for the new reward: every figure is the same, and --exit-code says so
    assert report["changed_members"] == 0 and report["by_rule"] == []
    assert all(v == 0 for v in report["totals"]["delta"].values())
    assert run(["diff", str(PROGRAMS / "amare.yaml"), str(new), str(EXAMPLES / "amare" / "events.jsonl"),
                "--exit-code"]).exit_code == 0


def test_new_shop_from_a_copy_is_warned_and_its_rules_named(tmp_path):
    text = (PROGRAMS / "andest.yaml").read_text(encoding="utf-8")
    copy = tmp_path / "newshop.yaml"
    copy.write_text(text.replace("program: andest", "program: newshop").replace("AND-", "NEW-"), encoding="utf-8")
    result = run(["diff", str(PROGRAMS / "andest.yaml"), str(copy), str(EXAMPLES / "andest" / "events.jsonl"),
                  "--format", "json"])
    assert result.exit_code == 0 and "two different programs" in result.stderr
    report = json.loads(result.stdout)
    # the same rules under new ids: every figure the same, the grants filed under the new ids;
    # 28 registrations x 500 (AND-4 -> NEW-4) = 14,000
    assert all(v == 0 for v in report["totals"]["delta"].values()) and report["changed_members"] == 0
    assert by_rule(report, "NEW-4")["delta"]["granted"] == 14000 and by_rule(report, "AND-4")["delta"]["granted"] == -14000
