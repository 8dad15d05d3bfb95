"""Issue 21: a version may change one key of a section (`changes`): mappings merged key by key,
lists and values replaced; checked as merged, at the line that changed them; shown by explain."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import Engine
from engine.format.loader import load_program
from engine.model.errors import ProgramError
from engine.shell.cli import cli

ROOT = Path(__file__).resolve().parents[1]
ANDEST = ROOT / "programs" / "andest.yaml"

V2_CAP = """\
  - version: 2
    effective_from: 2026-07-01
    changes:
      redemption:
        cap_per_order: {units: 500}
"""


def with_version(tmp_path: Path, text: str, name: str = "andest_v2.yaml") -> Path:
    path = tmp_path / name
    path.write_text(ANDEST.read_text(encoding="utf-8") + text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, t in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in t)


def test_AND_3_version_changes_only_the_cap(tmp_path):
    path = with_version(tmp_path, V2_CAP)
    program = load_program(path)
    v1, v2 = program.versions
    # the cap changes, its rule id and every other key of redemption (and every other section) are kept
    assert (v1.redemption.cap.units, v2.redemption.cap.units) == (5000, 500)
    assert v2.redemption.cap.rule == "AND-3" and v2.redemption.unit_value_yen == v1.redemption.unit_value_yen == 1
    assert [(r.rule, r.flat, r.values) for r in v2.earning.rates] == [(r.rule, r.flat, r.values) for r in v1.earning.rates]
    assert v2.tiers.levels == v1.tiers.levels
    # the changed key is written at the line under `changes`, the section itself at version 1's
    assert v2.changed == (("redemption.cap_per_order.units", v2.changed[0][1]),)
    assert v2.changed[0][1].line == line_of(path, "cap_per_order: {units: 500}")
    assert v2.redemption.cap.pos.line == line_of(path, "cap_per_order: {units: 500}")
    assert v2.redemption.pos.line == v1.redemption.pos.line


def test_AND_3_changed_cap_binds_in_a_quote(tmp_path):
    e = Engine(load_program(with_version(tmp_path, V2_CAP)))
    # registered 2026-06-01: AND-4 gives 500; the shop grants 1,500 more
    e.apply({"id": "r", "type": "member.registered", "at": "2026-06-01T10:00:00+09:00", "member": "m1"})
    e.apply({"id": "g", "type": "points.granted", "at": "2026-06-02T10:00:00+09:00", "member": "m1", "amount": 1500,
             "reason": "test"})
    cart = {"id": "c", "type": "order.placed", "member": "m1", "order": "o1", "course": "one_off",
            "payment": {"method": "credit_card"}, "redeem": {"points": "max"},
            "lines": [{"sku": "COAT", "qty": 1, "unit_price": 20000, "tax_rate": 0.1}]}
    # balance 500 + 1,500 = 2,000: under v1 the cap 5,000 does not bind (max 2,000); from 2026-07-01 500
    june = e.quote({**cart, "at": "2026-06-30T10:00:00+09:00"})
    july = e.quote({**cart, "at": "2026-07-01T10:00:00+09:00"})
    assert june["redeem"]["max"] == 2000 and july["redeem"]["max"] == 500
    assert "AND-3" in july["redeem"]["why"]


def test_changes_checked_as_merged_at_the_changed_line(tmp_path):
    path = with_version(tmp_path, V2_CAP.replace("{units: 500}", "{units: -5, unit: 3}"))
    with pytest.raises(ProgramError) as exc:
        load_program(path)
    found = {str(p) for p in exc.value.problems}
    line = line_of(path, "units: -5")
    assert any(f"{path}:{line}:" in p and "unknown key 'unit'" in p for p in found)
    assert any(f"{path}:{line}:" in p and "must not be negative (got -5)" in p for p in found)


def test_changes_and_a_whole_section_together_refused(tmp_path):
    text = V2_CAP.replace("    changes:\n", "    redemption: {rule_id: AND-3, unit_value_yen: 1}\n    changes:\n"
                          "      ladder: {rule_id: AND-3}\n")
    path = with_version(tmp_path, text)
    with pytest.raises(ProgramError) as exc:
        load_program(path)
    found = [str(p) for p in exc.value.problems]
    assert any("'redemption' is written whole in this version and changed under 'changes'" in p for p in found)
    assert any("'changes' cannot change 'ladder': the version before has no 'ladder'" in p for p in found)


def test_explain_shows_the_changed_keys(tmp_path):
    path = with_version(tmp_path, V2_CAP)
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"id": "r", "type": "member.registered", "at": "2026-07-02T10:00:00+09:00",
                                  "member": "m1"}) + "\n", encoding="utf-8")
    db = tmp_path / "ledger.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["run", str(path), str(events), "--db", str(db)]).exit_code == 0
    result = runner.invoke(cli, ["explain", str(path), "--db", str(db), "--member", "m1", "--as-of", "2026-07-03"])
    assert result.exit_code == 0, result.output
    assert (f"v2 from 2026-07-01: redemption.cap_per_order.units ({path}:{line_of(path, '{units: 500}')})"
            in result.output)
