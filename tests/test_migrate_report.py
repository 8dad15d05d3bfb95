"""`loyalty migrate-report PROGRAM --db PATH [--json]` on リワードサークル (issue 6, RC-6, X-2).

A SQLite ledger is filled by `loyalty run` with version-1 history only (every event before
2025-11-04); the report then shows what each member holds under version 1 and will hold under
version 2, in credits and yen (¥1,100 → ¥450 a credit, RC-1), with totals, and exits 0 when
nobody loses yen value (1 when someone does). Every number is worked out by hand:

* version 1 earns 1 credit per ¥22,000 incl. tax, counted when the order ships (RC-0
  ASSUMPTION); a line 20,000 @10 % = 22,000 incl. tax; 18,182 @10 % = 18,182 + 1,818 = 20,000;
* RC-6: N held credits → ceil(1,100 × N / 450); RC-3: a carry ≥ 12,000 gives its credits on
  11-04; RC-4: an Insider gets 1 gift credit.

    member  history (v1)                                  before         after
    a       1 credit (22,000 shipped 06-03)               1 / ¥1,100     3 / ¥1,350   (2 + adj 1)
    b       5 credits (110,000 shipped 07-05)             5 / ¥5,500    13 / ¥5,850   (10 + 2 + 1)
    c       10 credits (220,000 shipped 07-05)           10 / ¥11,000   25 / ¥11,250  (20 + 4 + 1)
    d       carry 20,000 (shipped 10-20), no credits      0 / ¥0         1 / ¥450     (RC-3; carry 8,000)
    e       Insider, nothing bought                       0 / ¥0         1 / ¥450     (RC-4)
    f       3 credits, 1 used 10-01                       2 / ¥2,200     5 / ¥2,250   (4 + adj 1)
    total                                                18 / ¥19,800   48 / ¥21,600
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "programs" / "rewards_circle.yaml"
EXE = shutil.which("loyalty") or str(Path(sys.executable).with_name("loyalty"))


def T(day: str, hm: str = "10:00") -> str:
    return f"{day}T{hm}:00+09:00"


def _reg(member: str, day: str = "2025-06-01", insider: bool = False) -> dict:
    ev = {"id": f"reg-{member}", "type": "member.registered", "at": T(day, "09:00"), "member": member}
    if insider:
        ev["attributes"] = {"insider": True}
    return ev


def _order(member: str, order: str, day: str, unit_price: int, qty: int = 1, credits: int | None = None,
           ship: bool = True) -> list[dict]:
    placed = {"id": f"place-{order}", "type": "order.placed", "at": T(day), "member": member, "order": order,
              "course": "one_off", "payment": {"method": "credit_card"},
              "lines": [{"sku": "ITEM", "qty": qty, "unit_price": unit_price, "tax_rate": 0.10}]}
    if credits is not None:
        placed["redeem"] = {"credits": credits}
    out = [placed]
    if ship:
        out.append({"id": f"ship-{order}", "type": "order.shipped", "at": T(day, "15:00"), "member": member,
                    "order": order})
    return out


def v1_history() -> list[dict]:
    ev = []
    ev += [_reg("a"), *_order("a", "a1", "2025-06-03", 20000)]
    ev += [_reg("b"), *_order("b", "b1", "2025-07-05", 20000, qty=5)]
    ev += [_reg("c"), *_order("c", "c1", "2025-07-05", 20000, qty=10)]
    ev += [_reg("d"), *_order("d", "d1", "2025-10-20", 18182)]
    ev += [_reg("e", insider=True)]
    ev += [_reg("f"), *_order("f", "f1", "2025-07-05", 20000, qty=3),
           *_order("f", "f2", "2025-10-01", 10000, credits=1, ship=False)]   # 11,000: RC-7 allows 1
    return ev


def _write(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def _ledger(tmp_path: Path, events: list[dict]) -> Path:
    db = tmp_path / "rc.db"
    proc = _run("run", str(PROGRAM), str(_write(tmp_path / "events.jsonl", events)), "--db", str(db), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["rejected"] == []
    return db


EXPECTED = {
    # member: (units before, yen before, units after, yen after)
    "a": (1, 1100, 3, 1350),
    "b": (5, 5500, 13, 5850),
    "c": (10, 11000, 25, 11250),
    "d": (0, 0, 1, 450),
    "e": (0, 0, 1, 450),
    "f": (2, 2200, 5, 2250),
}


def test_migrate_report_json_per_member_totals_and_exit_0(tmp_path):
    """RC-6/RC-3/RC-4 + the page's promise: every member before/after in credits and yen (table in
    the module docstring), totals 18 / ¥19,800 → 48 / ¥21,600, nobody loses value: exit 0."""
    db = _ledger(tmp_path, v1_history())
    proc = _run("migrate-report", str(PROGRAM), "--db", str(db), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert (report["program"], report["from_version"], report["to_version"]) == ("rewards_circle", 1, 2)
    assert report["switch_at"] == "2025-11-04T00:00:00+09:00"
    rows = {r["member"]: r for r in report["members"]}
    assert set(rows) == set(EXPECTED)
    for member, (ub, yb, ua, ya) in EXPECTED.items():
        r = rows[member]
        assert (r["before"]["units"], r["before"]["yen"], r["after"]["units"], r["after"]["yen"]) == (ub, yb, ua, ya), member
        assert r["ok"] is True, member
    assert (rows["d"]["carry_before"], rows["d"]["carry_after"]) == (20000, 8000)
    assert (rows["a"]["carry_before"], rows["a"]["carry_after"]) == (0, 0)
    assert report["totals"] == {"units_before": 18, "units_after": 48, "yen_before": 19800, "yen_after": 21600}
    assert report["losers"] == []


def test_migrate_report_text_has_every_member_and_the_total(tmp_path):
    """The plain report: one line per member with 'ok', and a total line (18 → 48 credits)."""
    db = _ledger(tmp_path, v1_history())
    proc = _run("migrate-report", str(PROGRAM), "--db", str(db))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for member in EXPECTED:
        assert any(line.split()[:1] == [member] and line.rstrip().endswith("ok") for line in lines), member
    total = [line.split() for line in lines if line.startswith("total")]
    assert total and total[0][1] == "18" and total[0][3] == "48"
    assert "LOSES VALUE" not in proc.stdout


def test_migrate_report_exit_1_when_a_revision_would_lose_value(tmp_path):
    """A revision without the RC-6 conversion (the same file with its `migration:` cut off) leaves
    member a's 1 credit at ¥450 < ¥1,100: reported as a loser, exit 1."""
    text = PROGRAM.read_text(encoding="utf-8")
    cut = text.index("\n    migration:")
    bad = tmp_path / "rewards_circle_no_migration.yaml"
    bad.write_text(text[:cut] + "\n", encoding="utf-8")
    db = _ledger(tmp_path, v1_history()[:3])           # member a only: 1 credit
    proc = _run("migrate-report", str(bad), "--db", str(db), "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    row = {r["member"]: r for r in report["members"]}["a"]
    assert (row["before"]["yen"], row["after"]["yen"], row["ok"]) == (1100, 450, False)
    assert report["losers"] == ["a"]


def test_migrate_report_credit_ending_1103_is_not_a_conversion_loss(tmp_path):
    """RC-5/RC-6: a credit whose last valid day is 2025-11-03 has expired when the switch comes
    (2025-11-04 00:00); it is not held, not converted, and its expiry is no loss caused by the
    revision. Member g: 1 credit ending 2025-11-03 and 4 ending 2026-01-01 (operator grants under
    v1). Held at the switch: 4 → 8 + floor(800 / 450) = 1 + adjustment 1 = 10 credits = ¥4,500
    ≥ 4 × ¥1,100 = ¥4,400: ok, exit 0."""
    events = [_reg("g", day="2025-05-01"),
              {"id": "g-1", "type": "points.granted", "at": T("2025-10-01"), "member": "g", "amount": 1,
               "reason": "test", "expires_on": "2025-11-03"},
              {"id": "g-2", "type": "points.granted", "at": T("2025-10-02"), "member": "g", "amount": 4,
               "reason": "test", "expires_on": "2026-01-01"}]
    db = _ledger(tmp_path, events)
    proc = _run("migrate-report", str(PROGRAM), "--db", str(db), "--json")
    report = json.loads(proc.stdout)
    row = report["members"][0]
    assert row["after"] == {"units": 10, "yen": 4500}
    assert row["ok"] is True and report["losers"] == []
    assert proc.returncode == 0


def test_example_events_are_all_accepted():
    """examples/rewards_circle/events.jsonl (generated, 150-300 events) runs with no rejection: exit 0."""
    events = ROOT / "examples" / "rewards_circle" / "events.jsonl"
    n = sum(1 for line in events.read_text(encoding="utf-8").splitlines() if line.strip())
    assert 150 <= n <= 300
    proc = _run("run", str(PROGRAM), str(events), "--db", ":memory:", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    out = json.loads(proc.stdout)
    assert out["rejected"] == []
    assert len(out["members"]) >= 12
