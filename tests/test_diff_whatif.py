"""Issue 21: the what-if decides historical redemption requests again under the new limits, a
request for "max" included, never refusing an order; and names the rule of a mistake. Figures
worked out by hand from the example events (examples/andest/events.jsonl) and the rules."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from engine.shell.api import Engine
from tests.test_diff_edits import EXAMPLES, PROGRAMS, by_rule, diff_json, edited, line_of, run

ANDEST_EVENTS = EXAMPLES / "andest" / "events.jsonl"
# The nine orders asking for "max" points, with the member's valid balance just before each
# (Engine.member as of the order's time, checked below): "max" is the whole balance up to AND-3's
# cap of 5,000 a order (o0117: 5,214 held, 5,000 used).
MAX_ORDERS = {"o0031": 500, "o0032": 1124, "o0042": 1520, "o0049": 1293, "o0065": 500, "o0075": 2998,
              "o0093": 500, "o0103": 1140, "o0117": 5214}


def cap_500(tmp_path: Path) -> Path:
    return edited(tmp_path, "andest", "cap_per_order: {rule_id: AND-3, units: 5000}",
                  "cap_per_order: {rule_id: AND-3, units: 500}")


def test_AND_3_max_balances_before_the_orders():
    """The balances MAX_ORDERS rests on, read from the member views under the shop's file."""
    engine = Engine(str(PROGRAMS / "andest.yaml"))
    seen = {}
    for raw in ANDEST_EVENTS.read_bytes().splitlines():
        event = json.loads(raw)
        if event["type"] == "order.placed" and event.get("order") in MAX_ORDERS:
            seen[event["order"]] = engine.member(event["member"], event["at"])["points"]["valid"]
        engine.apply(raw)
    assert seen == MAX_ORDERS


def test_AND_3_max_requests_decided_again_under_the_lower_cap(tmp_path):
    new = cap_500(tmp_path)
    report = diff_json(PROGRAMS / "andest.yaml", new, ANDEST_EVENTS)
    # OLD: "max" used min(balance, 5,000); NEW: min(balance, 500). The three orders that used 500
    # (o0031, o0065, o0093: a balance of 500) do not move; the other six fall to 500:
    # 1,124 - 500 = 624, 1,520 - 500 = 1,020, 1,293 - 500 = 793, 2,998 - 500 = 2,498,
    # 1,140 - 500 = 640, 5,000 - 500 = 4,500: 10,075 units in all, under AND-3 on the edited line.
    moved = {c["order"]: (c["old"], c["new"], c["rule"]) for c in report["max_requests"]}
    assert moved == {"o0032": (1124, 500, "AND-3"), "o0042": (1520, 500, "AND-3"), "o0049": (1293, 500, "AND-3"),
                     "o0075": (2998, 500, "AND-3"), "o0103": (1140, 500, "AND-3"), "o0117": (5000, 500, "AND-3")}
    assert report["headline"]["max_lowered"] == 6 and report["headline"]["max_lowered_units"] == 10075
    row = by_rule(report, "AND-3")
    assert row["line"] == f"{new}:{line_of(new, 'cap_per_order')}"
    assert (row["delta"]["max_lowered"], row["delta"]["max_lowered_units"]) == (6, 10075)
    # points used on orders fall by what the ten numbered requests lost (2,800, see
    # test_AND_3_cap_lowered_clamps_requests_not_refuses) and what the six "max" lost: 12,875 yen
    # (1 point = 1 yen), which the customers paid instead; no order refused
    assert report["totals"]["delta"]["points_yen"] == -(2800 + 10075)
    assert report["totals"]["delta"]["to_pay_yen"] == 12875
    assert report["headline"]["refused_by_new"] == 0 and report["new"]["rejected"] == 0


def test_AND_3_max_requests_in_csv_html_and_table(tmp_path):
    new = cap_500(tmp_path)
    old = PROGRAMS / "andest.yaml"
    rows = list(csv.DictReader(io.StringIO(run(["diff", str(old), str(new), str(ANDEST_EVENTS), "--format", "csv"]).stdout)))
    maxes = {r["figure"]: (r["old"], r["new"], r["change"], r["rule"]) for r in rows if r["section"] == "max_request"}
    assert maxes["o0117"] == ("5000", "500", "-4500", "AND-3") and len(maxes) == 6   # 5,000 -> 500
    assert {r["figure"]: r["change"] for r in rows if r["section"] == "headline"}["max_lowered_units"] == "10075"
    # the members in each tier, the same under both files (a cap moves no tier): regular 18 -> 18
    tiers = {r["figure"]: (r["old"], r["new"]) for r in rows if r["section"] == "tier_members"}
    assert tiers["regular"] == ("18", "18")
    html = tmp_path / "d.html"
    table = run(["diff", str(old), str(new), str(ANDEST_EVENTS), "--html", str(html)])
    assert '"max" requests allowed less' in table.output and "6 (10,075 units)" in table.output
    assert "m007 o0117: 5,000 -> 500" in table.output
    page = html.read_text(encoding="utf-8")
    assert "<td>5,000</td><td>500</td>" in page and "decided again under NEW (6)" in page


def test_AND_3_raising_the_cap_frees_no_numbered_request(tmp_path):
    # a cap raised from 5,000 to 6,000: the one "max" request the old cap held (o0117, 5,214
    # valid) now uses all 5,214: +214, listed as raised; no numbered request changes
    new = edited(tmp_path, "andest", "cap_per_order: {rule_id: AND-3, units: 5000}",
                 "cap_per_order: {rule_id: AND-3, units: 6000}")
    report = diff_json(PROGRAMS / "andest.yaml", new, ANDEST_EVENTS)
    assert [(c["order"], c["old"], c["new"]) for c in report["max_requests"]] == [("o0117", 5000, 5214)]
    assert by_rule(report, "AND-3")["delta"]["max_raised_units"] == 214
    assert report["headline"]["max_lowered"] == 0 and report["headline"]["clamped"] == 0


def test_mistake_AND_10_rate_as_percent_names_its_rule(tmp_path):
    # gold typed 3 (meaning 3%): refused at the value, inside AND-10's rate row
    new = edited(tmp_path, "andest", "silver: 0.02, gold: 0.03", "silver: 0.02, gold: 3")
    result = run(["diff", str(PROGRAMS / "andest.yaml"), str(new), str(ANDEST_EVENTS)])
    assert result.exit_code == 1
    assert f"{new.name}:{line_of(new, 'gold: 3}')}:" in result.output and result.output.rstrip().endswith("[AND-10]")


def test_mistake_AND_10_unknown_tier_names_its_rule(tmp_path):
    new = edited(tmp_path, "andest", "silver: 0.02, gold: 0.03", "silvr: 0.02, gold: 0.03")
    result = run(["diff", str(PROGRAMS / "andest.yaml"), str(new), str(ANDEST_EVENTS)])
    assert result.exit_code == 1 and "unknown tier 'silvr'" in result.output and "[AND-10]" in result.output


def test_mistake_AND_3_negative_cap_names_its_rule(tmp_path):
    new = edited(tmp_path, "andest", "cap_per_order: {rule_id: AND-3, units: 5000}",
                 "cap_per_order: {rule_id: AND-3, units: -5}")
    result = run(["diff", str(PROGRAMS / "andest.yaml"), str(new), str(ANDEST_EVENTS)])
    assert result.exit_code == 1 and "must not be negative (got -5) [AND-3]" in result.output


def test_mistake_broken_yaml_names_its_line_only(tmp_path):
    new = edited(tmp_path, "andest", "cap_per_order: {rule_id: AND-3, units: 5000}",
                 "cap_per_order: {rule_id: AND-3, units: 5000")
    result = run(["diff", str(PROGRAMS / "andest.yaml"), str(new), str(ANDEST_EVENTS)])
    # the file does not read as YAML: no rule can be told, the line is named
    assert result.exit_code == 1 and "YAML syntax" in result.output and "[AND-" not in result.output


def test_rule_at_names_the_innermost_rule():
    from engine.run.whatif import rule_at

    text = (PROGRAMS / "andest.yaml").read_bytes()
    path = PROGRAMS / "andest.yaml"
    # the cap's line holds AND-3's flow mapping; the redemption section above it is AND-3's too
    cap = line_of(path, "cap_per_order")
    assert rule_at(text, str(path), cap, 40) == "AND-3"
    # the program's name (line of "name:") lies in no rule
    assert rule_at(text, str(path), line_of(path, "name:"), 8) is None


def test_RC_6_new_version_with_its_conversion_by_hand(tmp_path):
    """Version 2 (2025-11-04) after a history that ends before it: compared at the end of its first
    day, the conversion (RC-6) done, named with its line."""
    text = (PROGRAMS / "rewards_circle.yaml").read_text(encoding="utf-8")
    old = tmp_path / "rc_v1.yaml"
    old.write_text(text[:text.index("  - version: 2")], encoding="utf-8")
    events = tmp_path / "before.jsonl"
    lines = (EXAMPLES / "rewards_circle" / "events.jsonl").read_text(encoding="utf-8").splitlines(True)
    events.write_text("".join(x for x in lines if json.loads(x)["at"] < "2025-11-04"), encoding="utf-8")
    report = diff_json(old, PROGRAMS / "rewards_circle.yaml", events)
    # n credits of 1,100 held -> 2n of 450 keeping their expiry, the 200n yen left pooled: floor(200n
    # / 450) more, and 1 adjustment credit for a rest above 0:
    # n=1: 2+0+1 = 3; n=2: 4+0+1 = 5; n=3: 6+1+1 = 8; n=5: 10+2+1 = 13; n=6: 12+2+1 = 15; n=10: 20+4+1 = 25.
    # Held on 2025-11-03: r01 1, r02 5, r03 10, r05 2, r07 3, r08 1, r09 2, r12 1, r13 2, r14 1, r15 6
    # (34 credits: 33 earned under RC-0, 1 under RC-5) -> 3+13+25+5+8+3+5+3+5+3+15 = 88 new credits.
    rc6 = by_rule(report, "RC-6")
    assert rc6["delta"]["granted"] == 88 and rc6["delta"]["cost_yen"] == 88 * 450
    place = PROGRAMS / "rewards_circle.yaml"
    assert rc6["line"] == f"{place}:{line_of(place, '- rule_id: RC-6')}"
    # the 34 old credits no longer count as such (converted): RC-0 -33 x 1,100, RC-5 -1 x 1,100
    assert by_rule(report, "RC-0")["delta"]["cost_yen"] == -33 * 1100
    assert by_rule(report, "RC-5")["delta"]["cost_yen"] == -1100
    # the shop owes 88 x 450 - 34 x 1,100 = 39,600 - 37,400 = 2,200 yen more for the conversion,
    # plus version 2's first-day grants: RC-4, 1 credit to each Insider (r05, r06, r12 registered
    # with insider: true) = 3; RC-3, a carry of 12,000 yen or more gives its credit: r04, r12,
    # r13, r14, 1 each = 4 (their open credits beyond the conversion and RC-4: r04 0 held -> 1,
    # r12 1 -> 3 + 1 + 1, r13 2 -> 5 + 1, r14 1 -> 3 + 1). 7 x 450 = 3,150: 5,350 in all
    assert by_rule(report, "RC-4")["delta"]["granted"] == 3 and by_rule(report, "RC-3")["delta"]["granted"] == 4
    news = {r["member"]: r["new"]["outstanding"] for r in report["members"]}
    assert (news["r04"], news["r12"], news["r13"], news["r14"]) == (1, 5, 6, 4)
    assert report["headline"]["cost_yen"] == 2200 + 3150 == 5350


def test_AND_4_loyalty_test_failure_shows_the_differing_lot(tmp_path):
    """A case that expects the sign-up lot of AND-4 at 600 (the file gives 500): the failure names
    the figure and shows the whole lot the engine made, so a marketer sees which lot differs."""
    program = tmp_path / "andest.yaml"
    program.write_text((PROGRAMS / "andest.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "andest.tests.yaml").write_text("""program: andest
cases:
  - name: sign-up lot
    rules: [AND-4]
    events:
      - {id: e1, type: member.registered, at: "2025-01-05T10:00:00+09:00", member: m1}
    as_of: "2025-01-06"
    expect:
      members:
        m1:
          lots: [{amount: 600, rule: AND-4}]
""", encoding="utf-8")
    out = run(["test", str(program)])
    # AND-4 gives 500 on registration; valid a year from 2025-01-05 (AND-5): last day 2026-01-05
    assert out.exit_code == 1 and "m1.lots[0].amount: expected 600, got 500" in out.output
    assert "the item: {" in out.output and '"expires_on": "2026-01-05"' in out.output and '"rule": "AND-4"' in out.output


def test_AMA_6_new_reward_named_though_no_history_moves(tmp_path):
    anchor = "        - {id: ssr_reward_100, name: \"SSR reward 100\", units: 100}\n"
    new = edited(tmp_path, "amare", anchor, anchor + "        - {id: ssr_reward_300, name: \"SSR reward 300\", units: 300}\n")
    report = diff_json(PROGRAMS / "amare.yaml", new, EXAMPLES / "amare" / "events.jsonl")
    # no historical order asks for the new reward (nothing moves), but the edit is named: the
    # catalog of AMA-6, on the line of its rule_id, and nothing else
    assert report["changed_members"] == 0
    assert report["settings_changed"] == [{"rule": "AMA-6", "change": "changed",
                                           "line": f"{new}:{line_of(new, 'rule_id: AMA-6')}"}]


def test_AND_3_cap_edit_is_the_only_setting_changed(tmp_path):
    report = diff_json(PROGRAMS / "andest.yaml", cap_500(tmp_path), ANDEST_EVENTS)
    assert [(c["rule"], c["change"]) for c in report["settings_changed"]] == [("AND-3", "changed")]


def test_new_shop_from_a_copy_settings_added_and_removed(tmp_path):
    text = (PROGRAMS / "andest.yaml").read_text(encoding="utf-8")
    copy = tmp_path / "newshop.yaml"
    copy.write_text(text.replace("program: andest", "program: newshop").replace("AND-", "NEW-"), encoding="utf-8")
    report = diff_json(PROGRAMS / "andest.yaml", copy, ANDEST_EVENTS)
    changes = {c["rule"]: c["change"] for c in report["settings_changed"]}
    # every rule of the copy under its new id: each AND-n removed, each NEW-n added, one for one
    olds = sorted(r[4:] for r, c in changes.items() if r.startswith("AND-") and c == "removed")
    news = sorted(r[4:] for r, c in changes.items() if r.startswith("NEW-") and c == "added")
    assert olds == news and "3" in olds and "4" in olds and len(changes) == 2 * len(olds)


def test_AND_10_tier_change_dated_by_the_order(tmp_path):
    new = edited(tmp_path, "andest", "- {id: silver, min: 50000}", "- {id: silver, min: 40000}")
    report = diff_json(PROGRAMS / "andest.yaml", new, ANDEST_EVENTS)
    # m012's o0076, placed 2025-12-21, at silver instead of regular (42,180 yen in the 12 months
    # before it: above 40,000, not above 50,000; see test_AND_10_silver_threshold_50000_to_40000)
    m012 = [c for c in report["order_tier_changes"] if c["member"] == "m012"]
    assert [(c["order"], c["date"], c["old"], c["new"]) for c in m012] == [("o0076", "2025-12-21", "regular", "silver")]
    table = run(["diff", str(PROGRAMS / "andest.yaml"), str(new), str(ANDEST_EVENTS), "--all"])
    assert "m012 o0076 (2025-12-21): regular -> silver" in table.output


def test_RC_6_the_report_says_why_it_compares_after_the_history(tmp_path):
    text = (PROGRAMS / "rewards_circle.yaml").read_text(encoding="utf-8")
    old = tmp_path / "rc_v1.yaml"
    old.write_text(text[:text.index("  - version: 2")], encoding="utf-8")
    events = tmp_path / "before.jsonl"
    lines = (EXAMPLES / "rewards_circle" / "events.jsonl").read_text(encoding="utf-8").splitlines(True)
    kept = [x for x in lines if json.loads(x)["at"] < "2025-11-04"]
    events.write_text("".join(kept), encoding="utf-8")
    # version 2 (RC-6's conversion) starts 2025-11-04, after the last kept event
    report = diff_json(old, PROGRAMS / "rewards_circle.yaml", events)
    last = json.loads(kept[-1])["at"]
    assert report["as_of_note"].startswith(f"version 2 starts on 2025-11-04, after the last event ({last})")
    table = run(["diff", str(old), str(PROGRAMS / "rewards_circle.yaml"), str(events)])
    assert "compared as of the end of its first day" in table.output
    # with the whole history (events after 2025-11-04), no note
    whole = diff_json(old, PROGRAMS / "rewards_circle.yaml", EXAMPLES / "rewards_circle" / "events.jsonl")
    assert whole["as_of_note"] is None
