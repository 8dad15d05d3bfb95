"""Replays and stores (X-4, CONTRACT.md): the same events give the same ledger however they are fed,
a replayed id is skipped, stores are tied to their program, and a quote changes nothing."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.shell.cli import cli
from tests.helpers import sqlite_states

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = str(ROOT / "programs" / "andest.yaml")
EVENTS = ROOT / "examples" / "andest" / "events.jsonl"


def loyalty() -> str:
    exe = shutil.which("loyalty") or str(Path(sys.executable).with_name("loyalty"))
    assert Path(exe).exists(), "the `loyalty` command is not installed"
    return exe


def run_proc(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> tuple[int, dict | None, str]:
    proc = subprocess.run([loyalty(), *args], capture_output=True, cwd=cwd, input=stdin, timeout=300)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert "Traceback" not in out + err, err
    data = json.loads(out) if "--json" in args and out.strip() else None
    return proc.returncode, data, err


def run_cli(*args: str) -> tuple[int, dict | None, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    data = json.loads(result.stdout) if "--json" in args and result.stdout.strip() else None
    return result.exit_code, data, result.stderr


def ledger_dump(db: Path) -> dict:
    """Every table's rows, per member in the order written (seq numbers left out: they count globally)."""
    con = sqlite3.connect(db)
    try:
        states = sqlite_states(con)
        return {
            "members": [(m, states[m], clock) for m, clock in con.execute("SELECT member, clock FROM members ORDER BY member")],
            "ledger": con.execute("SELECT member, at, source, action, lot, amount, from_state, to_state, rule, version "
                                  "FROM ledger ORDER BY member, seq").fetchall(),
            "effects": con.execute("SELECT member, type, at, detail, rule FROM effects ORDER BY member, seq").fetchall(),
            "events": con.execute("SELECT id, member, type, at, status, reason FROM events ORDER BY id").fetchall(),
        }
    finally:
        con.close()


def without_counts(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("applied", "skipped")}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One run of the whole example file on a fresh SQLite ledger."""
    db = tmp_path_factory.mktemp("full") / "ledger.db"
    code, report, err = run_cli("run", PROGRAM, str(EVENTS), "--db", str(db), "--json")
    assert code == 0, err
    return db, report


def event_lines() -> list[str]:
    return [line for line in EVENTS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_example_file_applies_cleanly(full_run):
    _, report = full_run
    n = len(event_lines())
    assert report["applied"] == n and report["skipped"] == 0 and report["rejected"] == []
    assert report["program"] == {"id": "andest", "version": 1}
    assert report["as_of"] == json.loads(event_lines()[-1])["at"]
    assert len(report["members"]) == 28


def test_running_twice_on_one_db_gives_the_same_report(tmp_path):
    db = tmp_path / "ledger.db"
    code1, first, err1 = run_proc("run", PROGRAM, str(EVENTS), "--db", str(db), "--json")
    dump = ledger_dump(db)
    code2, second, err2 = run_proc("run", PROGRAM, str(EVENTS), "--db", str(db), "--json")
    assert code1 == 0, err1
    assert code2 == 0, err2
    n = len(event_lines())
    assert (first["applied"], first["skipped"]) == (n, 0)
    assert (second["applied"], second["skipped"]) == (0, n)
    assert second["rejected"] == []
    assert without_counts(second) == without_counts(first)
    assert ledger_dump(db) == dump  # nothing written twice


def test_replaying_a_part_again_skips_it(tmp_path, full_run):
    src, report = full_run
    db = tmp_path / "ledger.db"
    shutil.copy(src, db)
    part = tmp_path / "part.jsonl"
    part.write_text("\n".join(event_lines()[100:150]) + "\n", encoding="utf-8")
    code, again, err = run_cli("run", PROGRAM, str(part), "--db", str(db), "--as-of", report["as_of"], "--json")
    assert code == 0, err
    assert (again["applied"], again["skipped"]) == (0, 50)
    assert again["members"] == report["members"]


@pytest.mark.parametrize("cut", ["half", 1, 100, 300, -1])
def test_split_runs_give_the_same_members(tmp_path, full_run, cut):
    _, whole = full_run
    lines = event_lines()
    cut = len(lines) // 2 if cut == "half" else cut % len(lines)
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    first.write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    second.write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
    db = tmp_path / "ledger.db"
    code1, r1, err1 = run_cli("run", PROGRAM, str(first), "--db", str(db), "--json")
    code2, r2, err2 = run_cli("run", PROGRAM, str(second), "--db", str(db), "--json")
    assert code1 == 0, err1
    assert code2 == 0, err2
    assert r1["applied"] == cut and r2["applied"] == len(lines) - cut
    assert r2["as_of"] == whole["as_of"]
    assert r2["members"] == whole["members"]
    assert r2["effects"] == whole["effects"]


def test_split_runs_give_the_same_ledger_rows(tmp_path, full_run):
    src, _ = full_run
    lines = event_lines()
    db = tmp_path / "ledger.db"
    for i, chunk in enumerate((lines[:161], lines[161:322], lines[322:])):
        part = tmp_path / f"{i}.jsonl"
        part.write_text("\n".join(chunk) + "\n", encoding="utf-8")
        code, _, err = run_cli("run", PROGRAM, str(part), "--db", str(db), "--json")
        assert code == 0, err
    assert ledger_dump(db) == ledger_dump(src)


def test_memory_store(tmp_path, full_run):
    _, whole = full_run
    code, report, err = run_proc("run", PROGRAM, str(EVENTS), "--db", ":memory:", "--json", cwd=tmp_path)
    assert code == 0, err
    assert without_counts(report) == without_counts(whole)
    assert os.listdir(tmp_path) == []  # keeps nothing: no ':memory:' file, no default ledger
    # and it keeps nothing between runs: the second run applies everything again
    code, again, err = run_proc("run", PROGRAM, str(EVENTS), "--db", ":memory:", "--json", cwd=tmp_path)
    assert code == 0, err
    assert (again["applied"], again["skipped"]) == (report["applied"], 0)


def test_events_from_standard_input(tmp_path, full_run):
    _, whole = full_run
    code, report, err = run_proc("run", PROGRAM, "-", "--db", ":memory:", "--json", stdin=EVENTS.read_bytes())
    assert code == 0, err
    assert without_counts(report) == without_counts(whole)


def test_db_of_another_program_is_refused(tmp_path):
    other = tmp_path / "other.yaml"
    text = Path(PROGRAM).read_text(encoding="utf-8")
    assert text.count("\nprogram: andest\n") == 1
    other.write_text(text.replace("\nprogram: andest\n", "\nprogram: other\n"), encoding="utf-8")
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(event_lines()[:5]) + "\n", encoding="utf-8")
    db = tmp_path / "ledger.db"
    code, _, err = run_proc("run", str(other), str(events), "--db", str(db), "--json")
    assert code == 0, err
    dump = ledger_dump(db)
    code, report, err = run_proc("run", PROGRAM, str(events), "--db", str(db), "--json")
    assert code == 1
    assert report is None
    assert f"{db} holds the ledger of program 'other', not 'andest'" in err
    assert ledger_dump(db) == dump
    # quote refuses it too
    cart = tmp_path / "cart.json"
    cart.write_text(json.dumps(CART), encoding="utf-8")
    code, _, err = run_proc("quote", PROGRAM, str(cart), "--db", str(db), "--json")
    assert code == 1
    assert "holds the ledger of program 'other'" in err


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path):
    db = tmp_path / "notes.txt"
    db.write_text("not a database\n" * 100)
    code, _, err = run_proc("run", PROGRAM, str(EVENTS), "--db", str(db), "--json")
    assert code == 1
    assert str(db) in err and "SQLite" in err
    assert db.read_text() == "not a database\n" * 100


# --- quote ----------------------------------------------------------------------------------------

REGISTER = {"id": "g1", "type": "member.registered", "at": "2025-03-01T10:00:00+09:00", "member": "m1"}
# Two lines at 10% and one at 8%, shipping 500, 300 points used. Member price (AND-8, 5% per unit,
# floored): 4,512 x 2 + 950 = 9,974 ex tax. Tax per rate (floored): 10% of 9,024 + 500 = 952, 8% of 950 = 76.
# Grand total 9,974 + 500 + 1,028 = 11,502; to pay 11,202. Earn 1% (regular) of 9,974 = 99, pending.
CART = {"id": "c1", "type": "order.placed", "at": "2025-03-05T10:00:00+09:00", "member": "m1", "order": "o1",
        "course": "one_off", "payment": {"method": "credit_card"}, "shipping": 500, "redeem": {"points": 300},
        "lines": [{"sku": "A", "qty": 2, "unit_price": 4750, "tax_rate": 0.10},
                  {"sku": "F", "qty": 1, "unit_price": 1000, "tax_rate": 0.08}]}


@pytest.fixture
def member_db(tmp_path):
    db = tmp_path / "ledger.db"
    events = tmp_path / "reg.jsonl"
    events.write_text(json.dumps(REGISTER) + "\n", encoding="utf-8")
    code, _, err = run_cli("run", PROGRAM, str(events), "--db", str(db), "--json")
    assert code == 0, err
    return db


def write_cart(tmp_path: Path, cart: dict, name: str = "cart.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(cart), encoding="utf-8")
    return path


def test_quote_prints_the_contract_keys_and_changes_nothing(tmp_path, member_db):
    dump = ledger_dump(member_db)
    code, quote, err = run_proc("quote", PROGRAM, str(write_cart(tmp_path, CART)), "--db", str(member_db), "--json")
    assert code == 0, err
    assert set(quote) >= {"totals", "redeem", "exchange", "earn", "errors"}
    assert set(quote["totals"]) >= {"items_ex_tax", "fees_ex_tax", "shipping_ex_tax", "tax", "tax_total",
                                    "grand_total", "to_pay"}
    assert set(quote["redeem"]) >= {"max", "applied", "why"}
    assert set(quote["exchange"]) >= {"points", "fees"}
    assert set(quote["earn"]) >= {"points", "state", "rules"}
    t = quote["totals"]
    assert (t["items_ex_tax"], t["fees_ex_tax"], t["shipping_ex_tax"]) == (9974, 0, 500)
    assert t["tax"] == {"0.08": 76, "0.10": 952}
    assert (t["tax_total"], t["grand_total"], t["to_pay"]) == (1028, 11502, 11202)
    assert (quote["redeem"]["max"], quote["redeem"]["applied"]) == (500, 300)
    assert "AND-3" in quote["redeem"]["why"]
    assert quote["exchange"]["points"] == 0 and quote["exchange"]["fees"] == []
    assert (quote["earn"]["points"], quote["earn"]["state"]) == (99, "pending")
    # the rules that produced the earn: the base earn (AND-1) and/or the rank rate row (AND-10)
    assert quote["earn"]["rules"] and set(quote["earn"]["rules"]) <= {"AND-1", "AND-10"}
    assert quote["errors"] == []
    assert ledger_dump(member_db) == dump
    # Quoting again gives the same answer; the cart's id was not recorded, so the order still applies,
    # and applying it books exactly what the quote said.
    assert run_proc("quote", PROGRAM, str(write_cart(tmp_path, CART)), "--db", str(member_db), "--json")[1] == quote
    order = tmp_path / "order.jsonl"
    order.write_text(json.dumps(CART) + "\n", encoding="utf-8")
    code, report, err = run_cli("run", PROGRAM, str(order), "--db", str(member_db), "--json")
    assert code == 0, err
    assert report["applied"] == 1
    points = report["members"]["m1"]["points"]
    assert (points["valid"], points["used"], points["pending"]) == (200, 300, 99)


def test_quote_max_redemption(tmp_path, member_db):
    cart = dict(CART, redeem={"points": "max"})
    code, quote, err = run_cli("quote", PROGRAM, str(write_cart(tmp_path, cart)), "--db", str(member_db), "--json")
    assert code == 0, err
    assert (quote["redeem"]["max"], quote["redeem"]["applied"]) == (500, 500)
    assert quote["totals"]["to_pay"] == 11502 - 500


def test_quote_over_the_balance_reports_an_error_and_changes_nothing(tmp_path, member_db):
    dump = ledger_dump(member_db)
    cart = dict(CART, redeem={"points": 600})
    code, quote, err = run_cli("quote", PROGRAM, str(write_cart(tmp_path, cart)), "--db", str(member_db), "--json")
    assert code == 1
    assert quote["redeem"]["max"] == 500
    assert [e["field"] for e in quote["errors"]] == ["redeem.points"]
    assert ledger_dump(member_db) == dump


def test_quote_of_a_bad_cart_names_the_field(tmp_path, member_db):
    cart = dict(CART, lines=[{"sku": "A", "qty": "2", "unit_price": 4750, "tax_rate": 0.10}])
    code, quote, err = run_proc("quote", PROGRAM, str(write_cart(tmp_path, cart)), "--db", str(member_db), "--json")
    assert code == 1
    assert "event c1" in err and "lines[0].qty" in err


def test_quote_does_not_create_a_ledger(tmp_path):
    # Quoting against a --db that does not exist yet must not leave a ledger file behind.
    db = tmp_path / "new.db"
    run_proc("quote", PROGRAM, str(write_cart(tmp_path, CART)), "--db", str(db), "--json")
    assert not db.exists()
