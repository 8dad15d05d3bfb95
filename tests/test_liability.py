"""Issue 22, the auditor's ledger: `loyalty close` (every happening due up to T booked with no
event), booked times, and `loyalty liability` (the roll-forward in units and yen).

The small history below is andest's (programs/andest.yaml, Asia/Tokyo, 1 point = 1 yen,
expected breakage 0.20), the same events as the cases of programs/andest.tests.yaml:
  e1 2025-01-05 m1 registers: AND-4 sign-up bonus 500 valid.
  e2 2025-01-06 o1 BAG 10,000 -> member price 9,500, uses 300 (AND-3): 300 used; 1% of 9,500 = 95
     pending (AND-1).
  e3 2025-02-03 o1 cancelled (AND-2): the 95 pending void, the 300 used restored.
  e4 2025-08-01 200 granted, valid until 2025-08-31 (AND-6).
  e5 2025-08-10 o2 TEE 5,000 -> 4,750, uses 150, spent from the grant (it ends first, X-6):
     150 used; 1% of 4,750 = 47 pending. The grant's other 50 expire at 2025-09-01 00:00: September.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.format.loader import load_program
from engine.model.timeutil import parse_instant
from engine.run.close import close, close_time, last_close
from engine.run.liability import liability_report
from engine.shell.api import Engine
from engine.shell.cli import cli
from engine.store import open_store
from tests.test_stores import pg_url  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent
ANDEST = str(ROOT / "programs" / "andest.yaml")
PROGRAMS = ["andest", "ansage", "amare", "manda", "rewards_circle"]
MONTHS = ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30", "2025-05-31", "2025-06-30", "2025-07-31",
          "2025-08-31", "2025-09-30"]


def ev(event_id: str, type_: str, at: str, member: str = "m1", **fields) -> dict:
    return {"id": event_id, "type": type_, "at": at, "member": member, **fields}


def _order(event_id, at, order, sku, product, price, redeem):
    return ev(event_id, "order.placed", at, order=order, course="one_off", payment={"method": "credit_card"},
              redeem={"points": redeem}, lines=[{"sku": sku, "product": product, "qty": 1, "unit_price": price,
                                                  "tax_rate": 0.10}])


HISTORY = [
    ev("e1", "member.registered", "2025-01-05T10:00:00+09:00"),
    _order("e2", "2025-01-06T10:00:00+09:00", "o1", "BAG-L", "BAG", 10000, 300),
    ev("e3", "order.cancelled", "2025-02-03T10:00:00+09:00", order="o1"),
    ev("e4", "points.granted", "2025-08-01T10:00:00+09:00", amount=200, reason="summer_campaign",
       expires_on="2025-08-31"),
    _order("e5", "2025-08-10T10:00:00+09:00", "o2", "TEE-M", "TEE", 5000, 150),
]
LATE = ev("e6", "points.granted", "2025-09-15T10:00:00+09:00", amount=100, reason="apology")


class Ticks:
    """A wall clock for booked times that moves one second a call (the same on every store)."""

    def __init__(self):
        self.now = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _engine(spec: str, program=ANDEST) -> Engine:
    e = Engine(program, spec)
    e.store.booked_clock = Ticks()
    return e


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def spec(request, tmp_path) -> str:
    if request.param == "memory":
        return ":memory:"
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_url")


def closed_history(spec: str) -> Engine:
    e = _engine(spec)
    for event in HISTORY:
        assert e.apply(event).applied == [event["id"]]
    for month in MONTHS:
        e.close(month)
    return e


def _month(report: dict, key: str) -> dict:
    return next(m for m in report["months"] if m["month"] == key)


# -- hand-worked figures ----------------------------------------------------------------------------

def test_liability_roll_forward_by_hand(spec):
    report = closed_history(spec).liability("2025-01", "2025-09")
    jan, feb, mar, aug, sep = (_month(report, k) for k in ("2025-01", "2025-02", "2025-03", "2025-08", "2025-09"))
    # January: 0 + bonus 500 (AND-4) + earn 95 (AND-1) - used 300 (AND-3) = 295 (valid 200 + pending 95)
    assert jan["units"]["issued"] == {"earn": 95, "bonus": 500, "grant": 0, "migration": 0, "total": 595}
    assert (jan["units"]["opening"], jan["units"]["used"], jan["units"]["closing"]) == (0, 300, 295)
    # February: 295 - voided 95 + restored 300 (AND-2) = 500
    assert (feb["units"]["voided"], feb["units"]["restored"], feb["units"]["closing"]) == (95, 300, 500)
    assert mar["units"]["opening"] == mar["units"]["closing"] == 500
    # August: 500 + grant 200 (AND-6) + earn 47 - used 150 = 597
    assert aug["units"]["issued"]["grant"] == 200 and aug["units"]["issued"]["earn"] == 47
    assert (aug["units"]["used"], aug["units"]["closing"]) == (150, 597)
    # September: the grant's last 50 expire at 2025-09-01 00:00 (booked by the close): 597 - 50 = 547
    assert (sep["units"]["expired"], sep["units"]["closing"]) == (50, 547)
    # 1 point = 1 yen (AND-3): yen figures are the unit figures
    assert sep["yen"]["closing"] == 547 and jan["yen"]["issued"]["total"] == 595
    # contract liability = outstanding x unit value x (1 - 0.20): 597 x 0.8 = 477.6 -> 478; 547 x 0.8 = 437.6 -> 438
    assert (aug["contract_liability_yen"], sep["contract_liability_yen"]) == (478, 438)
    # observed breakage, 12 months to September: expired 50 / (50 + used 300 - restored 300 + 150) = 0.25
    assert sep["observed_breakage"] == 0.25 and aug["observed_breakage"] == 0.0
    assert feb["observed_breakage"] is None   # nothing expired nor used net by then (300 used, 300 back)
    assert report["expected_breakage"] == 0.2 and report["points_kind"] == "free"
    assert all(m["identity"] and m["units"]["difference"] == 0 for m in report["months"])
    # outstanding at the end of September by last valid day: the 500 of the sign-up roll to
    # 2026-01-05 (AND-5: a year from the last acquisition, 2025-01-05); the 47 pending have no date yet
    assert report["outstanding_by_expiry"]["rows"] == [{"expires": "2026-01", "units": 500, "yen": 500},
                                                      {"expires": "none", "units": 47, "yen": 47}]


def test_liability_late_event_is_an_adjustment_of_the_first_open_month(spec):
    e = closed_history(spec)
    before = e.liability("2025-01", "2025-09")
    # e6 (2025-09-15, 100 points) arrives after September was closed: its business time is in
    # September, its booked time after the close: booked as an adjustment of October.
    assert e.apply(LATE).applied == ["e6"]
    after = e.liability("2025-01", "2025-10")
    assert after["months"][:9] == before["months"]        # the closed months do not change
    octo = _month(after, "2025-10")
    # October: 547 + grant 100 = 647, one late entry of +100
    assert (octo["units"]["opening"], octo["units"]["issued"]["grant"], octo["units"]["closing"]) == (547, 100, 647)
    assert octo["late"] == {"entries": 1, "units": 100, "yen": 100}
    assert octo["identity"]
    entry = [x for x in e.store.entries("m1") if x.source == "e6"][0]
    assert entry.at == parse_instant("2025-09-15T10:00:00+09:00", e.program.tz)   # business time
    assert entry.booked_at > last_close(e.store)["booked_at"]                      # booked after the close


def test_liability_rewards_circle_conversion_in_yen():
    """RC-6: on 2025-11-04 credits worth 1,100 yen become credits worth 450; each side at its value."""
    program = str(ROOT / "programs" / "rewards_circle.yaml")
    e = _engine(":memory:", program)
    events = [json.loads(x) for x in (ROOT / "examples" / "rewards_circle" / "events.jsonl").read_text().splitlines()
              if x.strip()]
    e.apply_many(events)
    e.close("2025-11-30")
    nov = _month(e.liability("2025-11", "2025-11"), "2025-11")
    u, y = nov["units"], nov["yen"]
    # converted out at 1,100 a credit (version 1), issued by the migration at 450 (version 2)
    assert y["converted"] == u["converted"] * 1100 and y["issued"]["migration"] == u["issued"]["migration"] * 450
    assert nov["identity"] and y["difference"] == 0


# -- close ----------------------------------------------------------------------------------------

def _ledger(store) -> dict:
    return {m: [(x.at, x.source, x.action, x.lot, x.amount, x.from_state, x.to_state, x.rule, x.version)
                for x in store.entries(m)] for m in store.members()}


def test_close_idempotent(spec):
    e = closed_history(spec)
    ledger, states = _ledger(e.store), {m: e.store.load(m) for m in e.store.members()}
    closes = e.store.closes()
    again = e.close("2025-09-30")
    # nothing due: nothing booked, nothing recorded, the ledger as it was
    assert (again["entries"], again["members_booked"], again["recorded"]) == (0, 0, False)
    assert _ledger(e.store) == ledger and {m: e.store.load(m) for m in e.store.members()} == states
    assert e.store.closes() == closes and len(closes) == len(MONTHS)


def test_close_books_what_a_member_who_never_returns_holds(spec):
    e = _engine(spec)
    for event in HISTORY[:1] + HISTORY[3:4]:   # registered, then 200 granted until 2025-08-31: no event after
        e.apply(event)
    answer = e.close("2025-09-30")
    # the 200 expire at 2025-09-01 00:00: booked by the close, no event needed
    assert (answer["members_booked"], answer["entries"]) == (1, 1)
    expired = [x for x in e.store.entries("m1") if x.to_state == "expired"]
    assert [(x.amount, x.rule, x.at.astimezone(e.program.tz).isoformat()) for x in expired] == [
        (200, "AND-6", "2025-09-01T00:00:00+09:00")]


def _month_ends(program, lines):
    times = [parse_instant(json.loads(x)["at"], program.tz) for x in lines]
    first, last = min(times).astimezone(program.tz), max(times)
    ends, y, m = [], first.year, first.month
    while True:
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        ends.append(close_time(f"{y:04d}-{m:02d}-01", program) - timedelta(days=1))
        if ends[-1] >= last:
            return ends


@pytest.mark.parametrize("pid", PROGRAMS)
def test_close_every_month_end_same_ledger_and_identity(pid, spec, tmp_path):
    """Each program's example events with a close at every month end (the events of a month, then
    its close) give the ledger of the events alone followed by one close at the end; and the
    liability report's roll-forward holds every month, in units and yen."""
    program = str(ROOT / "programs" / f"{pid}.yaml")
    lines = [x for x in (ROOT / "examples" / pid / "events.jsonl").read_bytes().splitlines() if x.strip()]
    plain = _engine(":memory:", program)
    plain.apply_many(lines)
    closed = _engine(spec, program)
    p = closed.program
    ends = _month_ends(p, lines)
    i = 0
    for end in ends:
        j = i
        while j < len(lines) and parse_instant(json.loads(lines[j])["at"], p.tz) <= end:
            j += 1
        assert not closed.apply_many(lines[i:j]).rejected
        closed.close(end)
        i = j
    final = ends[-1] + timedelta(days=400)
    plain.close(final)
    closed.close(final)
    assert _ledger(closed.store) == _ledger(plain.store)
    first, last = ends[0].astimezone(p.tz), ends[-1].astimezone(p.tz)
    report = liability_report(p, closed.store, (first.year, first.month), (last.year, last.month))
    assert [m["month"] for m in report["months"] if not m["identity"]] == []
    assert all(m["closing_from"] == "close" for m in report["months"])


def test_close_equal_on_every_store(tmp_path, pg_url):  # noqa: F811
    """The same history and closes, with the same booked-time clock, give the same report everywhere."""
    reports = []
    for spec in (":memory:", str(tmp_path / "l.db"), pg_url):
        e = closed_history(spec)
        e.apply(LATE)
        reports.append(e.liability("2025-01", "2025-10"))
        e.store.close()
    assert reports[0] == reports[1] == reports[2]


KILLABLE = """
import sys, time
from engine.format.loader import load_program
from engine.run.close import close, close_time
from engine.store import open_store
program = load_program(sys.argv[1])
store = open_store(sys.argv[2], program.id)
def slow(n):
    print(n, flush=True)
    time.sleep(0.02)
close(program, store, close_time("2025-09-30", program), progress=slow)
print("done", flush=True)
"""


def _many_members(spec: str, n: int) -> None:
    e = Engine(ANDEST, spec)
    events = []
    for k in range(n):
        m = f"m{k:03d}"
        events.append(ev(f"r{k}", "member.registered", "2025-01-05T10:00:00+09:00", member=m))
        events.append(ev(f"g{k}", "points.granted", "2025-08-01T10:00:00+09:00", member=m, amount=200,
                         reason="summer", expires_on="2025-08-31"))
    assert not e.apply_many(events).rejected
    e.store.close()


def test_close_resumable_after_sigkill(tmp_path):
    db = str(tmp_path / "ledger.db")
    _many_members(db, 60)
    whole = str(tmp_path / "whole.db")
    shutil.copy(db, whole)
    program = load_program(ANDEST)
    store = open_store(whole, program.id)
    close(program, store, close_time("2025-09-30", program))
    store.close()
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, ANDEST, db], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    for line in proc.stdout:
        if line.strip().isdigit() and int(line) >= 20:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = open_store(db, program.id)
    booked = sum(1 for m in store.members() if any(x.to_state == "expired" for x in store.entries(m)))
    assert 0 < booked < 60          # killed midway: some members booked (whole), the rest not
    assert store.closes() == []     # not recorded: the close did not finish
    close(program, store, close_time("2025-09-30", program))   # the rerun books the rest
    other = open_store(whole, program.id)
    assert _ledger(store) == _ledger(other)
    # 60 members x 200 expired at 2025-09-01 00:00 (AND-6), each once
    assert sum(x.amount for m in store.members() for x in store.entries(m) if x.to_state == "expired") == 12000
    assert len(store.closes()) == 1
    store.close()
    other.close()


# -- the commands -----------------------------------------------------------------------------------

def test_cli_close_and_liability(tmp_path):
    db = str(tmp_path / "l.db")
    e = Engine(ANDEST, db)
    for event in HISTORY:
        e.apply(event)
    e.store.close()
    runner = CliRunner()
    out = runner.invoke(cli, ["close", ANDEST, "--db", db, "--as-of", "2025-09-30", "--json"])
    assert out.exit_code == 0, out.output
    answer = json.loads(out.output)
    # the grant's 50 left expire on 2025-09-01 (see the module docstring): one entry for m1
    assert (answer["entries"], answer["members_booked"], answer["recorded"]) == (1, 1, True)
    assert answer["through"] == "2025-09-30T23:59:59.999999+09:00"
    html = tmp_path / "l.html"
    out = runner.invoke(cli, ["liability", ANDEST, "--db", db, "--from", "2025-09", "--to", "2025-09",
                              "--format", "json", "--html", str(html)])
    assert out.exit_code == 0, out.output
    sep = json.loads(out.output)["months"][0]
    assert (sep["units"]["opening"], sep["units"]["expired"], sep["units"]["closing"]) == (597, 50, 547)
    assert "547" in html.read_text(encoding="utf-8")
    out = runner.invoke(cli, ["liability", ANDEST, "--db", db, "--from", "2025-09", "--to", "2025-09", "--format", "csv"])
    rows = out.output.splitlines()
    assert rows[0].startswith("month,measure,opening") and rows[1].startswith("2025-09,units,597,")


def test_cli_close_bad_input_is_refused(tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["close", ANDEST, "--db", str(tmp_path / "none.db"), "--as-of", "2025-09-30"])
    assert out.exit_code == 1 and "no ledger at" in out.output
    assert not (tmp_path / "none.db").exists()
    out = runner.invoke(cli, ["liability", ANDEST, "--db", str(tmp_path / "none.db"), "--from", "2025-13",
                              "--to", "2025-09", "--lang", "ja"])
    assert out.exit_code == 1 and "月（YYYY-MM）でも日付" in out.output


def test_sqlite_ledger_before_booked_times_upgrades(tmp_path):
    """A ledger written before issue 22 (no ledger.booked_at, no closes): `loyalty db upgrade` adds
    them; its entries count as booked at their business time."""
    import sqlite3

    db = str(tmp_path / "old.db")
    e = Engine(ANDEST, db)
    e.apply(HISTORY[0])
    e.store.close()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE ledger DROP COLUMN booked_at")
    con.execute("DROP TABLE closes")
    con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    out = CliRunner().invoke(cli, ["db", "upgrade", "--db", db])
    assert out.exit_code == 0 and "upgraded from version 1" in out.output, out.output
    e = Engine(ANDEST, db)
    assert [x.booked_at for x in e.store.entries("m1")] == [None]
    jan = _month(e.liability("2025-01", "2025-01"), "2025-01")
    assert jan["units"]["issued"]["bonus"] == 500 and jan["late"]["entries"] == 0   # AND-4 500


def test_service_post_close(tmp_path):
    from litestar.testing import TestClient

    from engine.shell.service import create_app

    app = create_app(ANDEST, str(tmp_path / "s.db"), "tok-0123456789abcdef")
    auth = {"Authorization": "Bearer tok-0123456789abcdef"}
    with TestClient(app) as client:
        for event in HISTORY[:1] + HISTORY[3:4]:
            assert client.post("/events", content=json.dumps(event), headers=auth).status_code == 200
        r = client.post("/close", content=json.dumps({"as_of": "2025-09-30"}), headers=auth)
        assert r.status_code == 200 and r.json()["entries"] == 1   # the 200 of AND-6 expire
        assert client.post("/close", content=json.dumps({"as_of": "2025-09-30"}), headers=auth).json()["entries"] == 0
        assert client.post("/close", content=b"{}", headers=auth).status_code == 422
        assert client.post("/close", content=json.dumps({"as_of": "2025-09-30"})).status_code == 401


def test_liability_prepaid_base_dates_and_deposit():
    """A prepaid program (資金決済法): the unused balance at each base date, and the share to deposit
    above the threshold. andest's file declared prepaid, threshold 400 yen for a small history."""
    from engine.format.loader import parse_program

    text = (ROOT / "programs" / "andest.yaml").read_text(encoding="utf-8")
    text = text.replace("  points: free\n", "  points: prepaid\n  prepaid: {deposit_threshold_yen: 400}\n", 1)
    program = parse_program(text, "andest-prepaid.yaml")
    assert program.accounting.report_dates == ((3, 31), (9, 30))   # the schema's defaults
    e = _engine(":memory:", program)
    for event in HISTORY:
        e.apply(event)
    for month in MONTHS:
        e.close(month)
    prepaid = e.liability("2025-01", "2025-09")["prepaid"]
    # 31 March: 500 unused (see test_liability_roll_forward_by_hand) > 400: deposit 500 x 0.5 = 250;
    # 30 September: 547 > 400: 547 x 0.5 = 273.5 -> 274 (whole yen, half up)
    assert prepaid["base_dates"] == [
        {"date": "2025-03-31", "unused_yen": 500, "above_threshold": True, "deposit_yen": 250},
        {"date": "2025-09-30", "unused_yen": 547, "above_threshold": True, "deposit_yen": 274}]
    assert (prepaid["threshold_yen"], prepaid["deposit_share"]) == (400, 0.5)
