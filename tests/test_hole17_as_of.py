"""Issue 17, item 14: a past as-of view shows the past (CONTRACT.md, `loyalty run --as-of`).

"A time before the last event reports the ledger as it stood then: what the events up to that
time, and the happenings they made due, gave." Members with no event by then are absent; the
effects and refusals listed are those up to then. The store keeps only each member's latest
state, so a past view replays that member's applied events (their bodies, kept in the ledger)
up to the time through the pure core, then advances to the time (engine/run/report.py, state_at).

The hand-worked cases use the andest program (programs/andest.yaml): sign-up 500 points valid at
once (AND-4); 1% of the item price ex. tax after the members' 5% off (AND-1, AND-8), pending until
the order ships (AND-2); points valid 1 year from the last acquisition (AND-5). The metamorphic
property runs random streams (tests/test_invariants.py generators) for every program and store:
the report at a past time T equals the report of the stream cut at T.
"""
from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine.shell.api import Engine
from engine.shell.cli import cli
from engine.format.loader import load_program
from engine.run.report import PastViewUnavailable, ledger_report
from engine.run.runner import Runner
from engine.shell.service import member_answer
from engine.store import MemoryStore, open_store
from engine.model.timeutil import parse_instant
from tests.test_invariants import PHASES, PROGRAMS, STREAM_EXAMPLES, STREAM_MAX, encode, program_of, streams
from tests.test_stores import PG_URL, another_schema, pg_rows
from tests.helpers import sqlite_states

ROOT = Path(__file__).resolve().parents[1]
ANDEST = ROOT / "programs" / "andest.yaml"
PROGRAM = load_program(ANDEST)


def event(eid: str, type_: str, at: str, member: str = "m1", **fields) -> dict:
    return {"id": eid, "type": type_, "at": at, "member": member, **fields}


def order(eid: str, at: str, order_id: str, unit_price: int, member: str = "m1", **fields) -> dict:
    return event(eid, "order.placed", at, member, order=order_id, course="one_off",
                 payment={"method": "credit_card"},
                 lines=[{"sku": "BAG-L", "qty": 1, "unit_price": unit_price, "tax_rate": 0.10}], **fields)


# m1 signs up (500 valid, AND-4); o1: 1 x 10,000 yen, 9,500 after the members' 5% off (AND-8),
# earns 1% = 95 points (AND-1), pending until it ships on 02-05 (AND-2); m2 signs up on 03-01; m1
# gets 200 points from the shop on 03-10.
HISTORY = [
    event("e1", "member.registered", "2025-01-10T10:00:00+09:00"),
    order("e2", "2025-02-01T10:00:00+09:00", "o1", 10000),
    event("e3", "order.shipped", "2025-02-05T10:00:00+09:00", order="o1"),
    event("e4", "member.registered", "2025-03-01T10:00:00+09:00", "m2"),
    event("e5", "points.granted", "2025-03-10T10:00:00+09:00", amount=200, reason="goodwill"),
]
PAST = "2025-02-03T00:00:00+09:00"   # after o1 was placed, before it shipped, before m2 and the grant


def points(valid=0, pending=0, held=0, used=0, expired=0, void=0) -> dict:
    return {"valid": valid, "pending": pending, "held": held, "used": used, "expired": expired, "void": void}


def jsonl(path: Path, events: list) -> Path:
    path.write_bytes(b"".join(encode(e) + b"\n" if isinstance(e, dict) else e + b"\n" for e in events))
    return path


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def spec(request, tmp_path):
    """A ledger of each kind: ':memory:', a SQLite path, a PostgreSQL URL in a schema of its own."""
    if request.param == "memory":
        yield ":memory:"
    elif request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
    else:
        if not PG_URL:
            pytest.skip("LOYALTY_PG_URL is not set")
        with another_schema() as url:
            yield url


def engine_with(spec: str, events: list[dict]) -> Engine:
    e = Engine(PROGRAM, open_store(spec, PROGRAM.id))
    result = e.apply_many(events)
    assert result.rejected == [] and len(result.applied) == len(events)
    return e


# --- hand-worked cases ---------------------------------------------------------------------------

def test_hole17_14_lot_granted_after_T_is_absent_AND_4(spec):
    # As of 02-03, m1 has the sign-up lot (500, AND-4) and o1's lot (95 pending): the 200 granted on
    # 03-10 did not exist yet. The present (03-10) has all three: 500 + 95 + 200 = 795 valid.
    e = engine_with(spec, HISTORY)
    past = e.member("m1", PAST)
    assert past["points"] == points(valid=500, pending=95)
    assert [(lot["amount"], lot["state"], lot["rule"]) for lot in past["lots"]] == [(500, "valid", "AND-4"),
                                                                                 (95, "pending", "AND-1")]
    assert e.member("m1", "2025-03-10T10:00:00+09:00")["points"] == points(valid=795)
    e.store.close()


def test_hole17_14_member_registered_after_T_is_absent(spec, tmp_path):
    # m2 signed up on 03-01: as of 02-03 the ledger had no m2 (run, Engine.member, the service)
    e = engine_with(spec, HISTORY)
    assert e.member("m2", PAST) is None
    status, answer = member_answer(e, "m2", PAST)
    assert status == 404 and "not registered by then" in answer["error"]
    status, answer = member_answer(e, "m1", PAST)
    assert status == 200 and answer["points"] == points(valid=500, pending=95)
    report = ledger_report(PROGRAM, e.store, parse_instant(PAST, PROGRAM.tz), e.runner.run([]))
    assert sorted(report["members"]) == ["m1"]
    e.store.close()


def test_hole17_14_member_absent_before_its_first_event_in_run_json(tmp_path):
    # the command line, as an integrator runs it: the past report lists only m1, as it stood
    events = jsonl(tmp_path / "events.jsonl", HISTORY)
    out = run_cli("run", str(ANDEST), str(events), "--db", ":memory:", "--json", "--as-of", PAST)
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert sorted(report["members"]) == ["m1"]
    assert report["members"]["m1"]["points"] == points(valid=500, pending=95)


def test_hole17_14_points_pending_at_T_and_valid_later_show_pending_AND_2(spec):
    # o1's 95 points were pending from 02-01 until the shipment on 02-05 (AND-2), valid after
    e = engine_with(spec, HISTORY)
    assert e.member("m1", "2025-02-04T23:59:59+09:00")["points"] == points(valid=500, pending=95)
    assert e.member("m1", "2025-02-05T10:00:00+09:00")["points"] == points(valid=595)   # the shipment's instant
    e.store.close()


def test_hole17_14_event_at_exactly_T_counts_AND_1():
    # an event stamped exactly T is part of the ledger at T: o1 placed at 02-01 10:00 gives 95 pending
    e = engine_with(":memory:", HISTORY)
    assert e.member("m1", "2025-02-01T10:00:00+09:00")["points"] == points(valid=500, pending=95)
    assert e.member("m1", "2025-02-01T09:59:59+09:00")["points"] == points(valid=500)


def test_hole17_14_expiry_due_between_two_events_appears_at_T_AND_5(spec):
    # Sign-up on 2025-01-10: 500 points, their last valid day 1 year later, 2026-01-10 (AND-5, no
    # acquisition since); a review on 2026-06-01 gives 300 more (AND-9; AND-8: of a bag received as
    # a ¥0 sample on 05-31, which earns nothing). As of 2026-03-01, between the events, the 500 had
    # expired and the review's 300 did not exist: 0 valid, 500 expired.
    sample = [{"sku": "BAG-S", "product": "BAG", "qty": 1, "unit_price": 0, "tax_rate": 0.10}]
    e = engine_with(spec, [event("e1", "member.registered", "2025-01-10T10:00:00+09:00"),
                           event("s1", "order.placed", "2026-05-30T10:00:00+09:00", order="s1", course="one_off",
                                 payment={"method": "credit_card"}, lines=sample),
                           event("s2", "order.shipped", "2026-05-31T10:00:00+09:00", order="s1"),
                           event("e2", "review.posted", "2026-06-01T10:00:00+09:00", product="BAG")])
    assert e.member("m1", "2026-03-01T00:00:00+09:00")["points"] == points(expired=500)
    assert e.member("m1", "2026-01-10T23:59:59+09:00")["points"] == points(valid=500)   # the last valid day
    assert e.member("m1", "2026-06-01T10:00:00+09:00")["points"] == points(valid=300, expired=500)
    e.store.close()


def test_hole17_14_refusals_listed_up_to_T_only(tmp_path):
    # Two holds over the balance (500 valid, AND-4) are refused, one on 01-20 and one on 03-05: the
    # report as of 02-03 lists the first only; the run still exits 1 (it refused events) and says
    # that one refusal after --as-of is not listed.
    events = jsonl(tmp_path / "events.jsonl", HISTORY[:3] + [
        event("h1", "points.held", "2025-01-20T10:00:00+09:00", amount=10000, reason="check"),
        event("h2", "points.held", "2025-03-05T10:00:00+09:00", amount=10000, reason="check")])
    out = run_cli("run", str(ANDEST), str(events), "--db", ":memory:", "--json", "--as-of", PAST)
    assert out.exit_code == 1
    report = json.loads(out.stdout)
    assert [r["event"] for r in report["rejected"]] == ["h1"]
    assert "1 of the events refused in this run are after --as-of" in out.stderr
    whole = json.loads(run_cli("run", str(ANDEST), str(events), "--db", ":memory:", "--json").stdout)
    assert [r["event"] for r in whole["rejected"]] == ["h1", "h2"]


def test_hole17_14_past_view_replays_only_that_member():
    # the cost of a past view of one member: only that member's events are read and replayed
    class Counting(MemoryStore):
        asked: list = []

        def event_bodies(self, member):
            self.asked.append(member)
            return super().event_bodies(member)

    e = Engine(PROGRAM, Counting(PROGRAM.id))
    e.apply_many(HISTORY + [event("e6", "points.granted", "2025-03-11T10:00:00+09:00", "m2", amount=1,
                                  reason="x")])
    assert e.member("m1", PAST)["points"] == points(valid=500, pending=95)
    assert Counting.asked == ["m1"]
    assert e.member("m1", "2025-03-10T10:00:00+09:00")["points"] == points(valid=795)   # today: no replay
    assert Counting.asked == ["m1"]


def test_hole17_14_explain_as_of_the_past_tells_the_past_AND_4(tmp_path):
    # explain --as-of 02-03: 500 (sign-up) valid and 95 pending; the 03-10 grant is not in the story
    events = jsonl(tmp_path / "events.jsonl", HISTORY)
    db = str(tmp_path / "ledger.db")
    assert run_cli("run", str(ANDEST), str(events), "--db", db).exit_code == 0
    out = run_cli("explain", str(ANDEST), "--db", db, "--member", "m1", "--as-of", PAST)
    assert out.exit_code == 0, out.output
    assert "Balance: 500 points can be used now" in out.stdout
    assert "Also 95 points pending (waiting for shipment)." in out.stdout
    assert "In all 595 points received" in out.stdout
    assert "goodwill" not in out.stdout and "200 points" not in out.stdout
    gone = run_cli("explain", str(ANDEST), "--db", db, "--member", "m2", "--as-of", PAST)
    assert gone.exit_code == 1 and "member m2: not registered as of 2025-02-03T00:00:00+09:00" in gone.stderr


# --- a ledger written before event bodies were kept ------------------------------------------------

def _as_before_bodies_sqlite(db: str) -> None:
    """Turn a SQLite ledger into one as the engine at f59e29a wrote it: no body, no order of events."""
    con = sqlite3.connect(db)
    with con:
        con.execute("DROP INDEX events_member")
        con.execute("ALTER TABLE events DROP COLUMN seq")
        con.execute("ALTER TABLE events DROP COLUMN body")
        con.execute("DELETE FROM meta WHERE key = 'event_seq'")
    con.close()


def _rows(db: str) -> tuple:
    con = sqlite3.connect(db)
    try:
        return (list(sqlite_states(con).items()),
                con.execute("SELECT * FROM ledger ORDER BY seq").fetchall())
    finally:
        con.close()


def test_hole17_14_a_ledger_without_bodies_refuses_a_past_view_sqlite(tmp_path):
    events = jsonl(tmp_path / "events.jsonl", HISTORY)
    empty = jsonl(tmp_path / "empty.jsonl", [])
    db = str(tmp_path / "ledger.db")
    assert run_cli("run", str(ANDEST), str(events), "--db", db).exit_code == 0
    _as_before_bodies_sqlite(db)
    before = _rows(db)
    out = run_cli("run", str(ANDEST), str(empty), "--db", db, "--json", "--as-of", PAST)
    assert out.exit_code == 1 and out.stdout == ""
    assert "did not keep the events' bodies" in out.stderr and "member m1" in out.stderr
    assert "Traceback" not in out.output and "internal error" not in out.output
    assert _rows(db) == before   # the ledger is unchanged and readable
    # at or after every member's last event nothing is rebuilt: the report is the stored ledger
    now = run_cli("run", str(ANDEST), str(empty), "--db", db, "--json")
    assert now.exit_code == 0 and json.loads(now.stdout)["members"]["m1"]["points"] == points(valid=795)
    told = run_cli("explain", str(ANDEST), "--db", db, "--member", "m1", "--as-of", PAST)
    assert told.exit_code == 1 and "did not keep the events' bodies" in told.stderr
    # events applied after the upgrade keep their bodies, but m1's history before them has none
    more = jsonl(tmp_path / "more.jsonl", [event("e9", "points.granted", "2025-04-01T10:00:00+09:00",
                                                 amount=5, reason="x")])
    assert run_cli("run", str(ANDEST), str(more), "--db", db).exit_code == 0
    again = run_cli("run", str(ANDEST), str(empty), "--db", db, "--as-of", "2025-03-20T00:00:00+09:00")
    assert again.exit_code == 1 and "did not keep the events' bodies" in again.stderr


def test_hole17_14_a_ledger_without_bodies_refuses_a_past_view_postgresql(tmp_path):
    if not PG_URL:
        pytest.skip("LOYALTY_PG_URL is not set")
    with another_schema() as url:
        e = engine_with(url, HISTORY)
        e.store.close()
        assert (4,) in pg_rows(url, "SELECT version FROM schema_migrations")
        pg_rows(url, "UPDATE events SET body = NULL RETURNING 1")   # as rows recorded before migration 4
        e = Engine(PROGRAM, open_store(url, PROGRAM.id))
        with pytest.raises(PastViewUnavailable, match="did not keep the events' bodies"):
            e.member("m1", PAST)
        status, answer = member_answer(e, "m1", PAST)
        assert status == 422 and "did not keep the events' bodies" in answer["error"]
        assert e.member("m1", "2025-03-10T10:00:00+09:00")["points"] == points(valid=795)
        e.store.close()


# --- the metamorphic property: the report at T equals the report of the stream cut at T --------

def _in_member_order(events: list[dict], program) -> list[dict]:
    """The stream without its out-of-order events (those dated before their member's last event):
    the ledger refuses them, so a past view, made of what the ledger applied, never shows them,
    while a stream cut at T would apply one dated before T. Every other event stays in place."""
    last: dict = {}
    kept = []
    for e in events:
        at = parse_instant(e["at"], program.tz)
        if e["member"] in last and at < last[e["member"]]:
            continue
        last[e["member"]] = at
        kept.append(e)
    return kept


def _report(program, store, events: list[dict], at) -> dict:
    result = Runner(program, store).run(encode(e) for e in events)
    report = ledger_report(program, store, at, result)
    return {k: report[k] for k in ("as_of", "program", "members", "effects", "rejected")}


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
@pytest.mark.parametrize("name", PROGRAMS)
def test_hole17_14_report_at_T_equals_the_stream_cut_at_T(name, kind, tmp_path):
    """For a random stream and a time T (an event's time, a second before it, hours or weeks after):
    running the whole stream and reporting at T gives the members (points, tier, lots), effects and
    refusals of running only the events with at <= T and reporting at T."""
    if kind == "postgresql" and not PG_URL:
        pytest.skip("LOYALTY_PG_URL is not set")
    program = program_of(name)
    n = iter(range(10**6))

    @settings(max_examples=STREAM_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
    @given(data=st.data())
    def check(data):
        events = _in_member_order(data.draw(streams(name, STREAM_MAX), label="stream"), program)
        pivot = data.draw(st.sampled_from(events), label="pivot")
        shift = data.draw(st.sampled_from([timedelta(0), timedelta(seconds=-1), timedelta(hours=12),
                                           timedelta(days=40)]), label="shift")
        at = parse_instant(pivot["at"], program.tz) + shift
        cut = [e for e in events if parse_instant(e["at"], program.tz) <= at]
        note(f"T = {at.isoformat()}: {len(cut)} of {len(events)} events")
        expected = _report(program, MemoryStore(program.id), cut, at)
        if kind == "memory":
            got = _report(program, MemoryStore(program.id), events, at)
        elif kind == "sqlite":
            store = open_store(str(tmp_path / f"l{next(n)}.db"), program.id)
            got = _report(program, store, events, at)
            store.close()
        else:
            with another_schema() as url:
                store = open_store(url, program.id)
                got = _report(program, store, events, at)
                store.close()
        assert got == expected

    check()


@pytest.mark.parametrize("name", PROGRAMS)
def test_hole17_14_example_past_report_equals_cut_also_with_jobs(name, tmp_path):
    """The shipped example of each program, run whole (one process, and --jobs 2 on SQLite and
    PostgreSQL: the workers store the bodies too), reported at a time in the middle, equals the
    run of its events up to then (members, effects, refusals)."""
    program = program_of(name)
    lines = [line for line in (ROOT / "examples" / name / "events.jsonl").read_bytes().splitlines() if line.strip()]
    times = sorted(parse_instant(json.loads(line)["at"], program.tz) for line in lines)
    at = times[len(times) // 2] + timedelta(hours=1)
    when = at.isoformat()
    whole = jsonl(tmp_path / "whole.jsonl", lines)
    cut = jsonl(tmp_path / "cut.jsonl", [line for line in lines
                                         if parse_instant(json.loads(line)["at"], program.tz) <= at])
    path = str(ROOT / "programs" / f"{name}.yaml")

    def report(events: Path, db: str, *jobs: str) -> dict:
        out = run_cli("run", path, str(events), "--db", db, "--json", "--as-of", when, *jobs)
        assert out.exit_code in (0, 1), out.output
        got = json.loads(out.stdout)
        return {k: got[k] for k in ("as_of", "program", "members", "effects", "rejected")}

    expected = report(cut, ":memory:")
    assert expected["members"]
    assert report(whole, ":memory:") == expected
    assert report(whole, str(tmp_path / "one.db")) == expected
    assert report(whole, str(tmp_path / "two.db"), "--jobs", "2") == expected
    if PG_URL:
        with another_schema() as url:
            assert report(whole, url, "--jobs", "2") == expected
