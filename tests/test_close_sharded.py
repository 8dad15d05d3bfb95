"""Issue 22: `loyalty close` sharded like the rest: --jobs (worker processes) and --cluster (Dask
tasks), through the CLI and the Python API, give the ledger, the answer and the recorded close of
the sequential close.

The history: N andest members, each registered on 2025-01-05 (AND-4: 500 points, valid a year
from the last acquisition, AND-5) and granted 200 points on 2025-08-01 valid until 2025-08-31
(AND-6). A close through 2025-09-30 books, for each member, the expiry of the 200 at 2025-09-01
00:00; 500 stay outstanding, last valid day 2026-01-05 (a year from 2025-01-05... rolled by the
grant: 2025-08-01 + 1 year = 2026-08-01, see the snapshot test).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.format.loader import load_program
from engine.run.close import CloseError, close, close_sharded, close_time, shards
from engine.shell.api import Engine
from engine.shell.cli import cli
from engine.store import open_store

ROOT = Path(__file__).resolve().parent.parent
ANDEST = str(ROOT / "programs" / "andest.yaml")
BOOKED = datetime(2030, 1, 1, tzinfo=timezone.utc)


def ev(event_id, type_, at, member, **fields):
    return {"id": event_id, "type": type_, "at": at, "member": member, **fields}


def history(spec: str, n: int) -> None:
    e = Engine(ANDEST, spec)
    events = []
    for k in range(n):
        m = f"m{k:03d}"
        events.append(ev(f"r{k}", "member.registered", "2025-01-05T10:00:00+09:00", m))
        events.append(ev(f"g{k}", "points.granted", "2025-08-01T10:00:00+09:00", m, amount=200,
                         reason="summer", expires_on="2025-08-31"))
    assert not e.apply_many(events).rejected
    e.store.close()


def ledger(store) -> dict:
    """Every entry; the booked time of those the close booked (the expiries: all stamped BOOKED)."""
    return {m: sorted((x.at, x.source, x.action, x.lot, x.amount, x.from_state, x.to_state, x.rule, x.version,
                       x.booked_at if x.to_state == "expired" else None) for x in store.entries(m)) for m in store.members()}


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request, tmp_path):
    """A maker of ledgers the workers share: SQLite files, or PostgreSQL schemas (dropped afterwards)."""
    if request.param == "sqlite":
        yield lambda name: str(tmp_path / f"{name}.db")
        return
    from contextlib import ExitStack

    from tests.test_stores import PG_URL, another_schema

    if not PG_URL:
        pytest.skip("no PostgreSQL (LOYALTY_PG_URL)")
    with ExitStack() as stack:
        yield lambda name: stack.enter_context(another_schema())


def test_shards_split_members_evenly():
    # 7 members over 3 shards: 3 + 2 + 2, every member once
    parts = shards([f"m{k}" for k in range(7)], 3)
    assert [len(p) for p in parts] == [3, 2, 2] and sorted(sum(parts, [])) == [f"m{k}" for k in range(7)]
    assert shards(["a"], 4) == [["a"]] and shards([], 2) == []


def test_close_jobs_gives_the_sequential_ledger_and_record(shared):
    program = load_program(ANDEST)
    through = close_time("2025-09-30", program)
    one, many = shared("one"), shared("many")
    history(one, 12)
    history(many, 12)
    a, b = open_store(one, program.id), open_store(many, program.id)
    seq = close(program, a, through, BOOKED)
    par = close_sharded(program, b, many, through, jobs=3, booked_at=BOOKED)
    # 12 members, each the expiry of its 200 (AND-6) at 2025-09-01 00:00: 12 entries, 2,400 units
    assert (par.members, len(par.booked), par.entries, par.shards, par.recorded) == (12, 12, 12, 3, True)
    assert sum(x.amount for m in b.members() for x in b.entries(m) if x.to_state == "expired") == 12 * 200
    assert ledger(a) == ledger(b)
    assert [(r["through"], r["snapshot"]) for r in a.closes()] == [(r["through"], r["snapshot"]) for r in b.closes()]
    # outstanding at the close: 12 x 500 (AND-4) = 6,000 units, 6,000 yen at 1 yen a point
    rows = b.closes()[0]["snapshot"]["by_expiry"]
    assert sum(r["units"] for r in rows.values()) == 6000 and sum(r["yen"] for r in rows.values()) == 6000
    answer = par.answer(program)
    assert {k: v for k, v in answer.items() if k != "shards"} == \
        {k: v for k, v in seq.answer(program).items() if k != "shards"}
    # idempotent: a second sharded close to the same moment books and records nothing
    again = close_sharded(program, b, many, through, jobs=3, booked_at=BOOKED)
    assert (again.entries, again.booked, again.recorded) == (0, [], False) and len(b.closes()) == 1
    a.close()
    b.close()


def test_close_sharded_refuses_a_memory_ledger():
    program = load_program(ANDEST)
    with pytest.raises(CloseError, match="share"):
        close_sharded(program, open_store(":memory:", program.id), ":memory:", close_time("2025-09-30", program),
                      jobs=2)


def test_cli_close_jobs_and_refusals(tmp_path):
    db = str(tmp_path / "l.db")
    history(db, 5)
    runner = CliRunner()
    out = runner.invoke(cli, ["close", ANDEST, "--db", db, "--as-of", "2025-09-30", "--jobs", "2", "--json"])
    assert out.exit_code == 0, out.output
    import json

    answer = json.loads(out.output)
    # 5 members, 5 expiries of 200 (AND-6), over 2 shards; the close recorded
    assert (answer["members"], answer["entries"], answer["shards"], answer["recorded"]) == (5, 5, 2, True)
    out = runner.invoke(cli, ["close", ANDEST, "--db", db, "--as-of", "2025-09-30", "--jobs", "2",
                              "--cluster", "tcp://127.0.0.1:1", "--lang", "ja"])
    assert out.exit_code == 1 and "どちらか一方" in out.output
    out = runner.invoke(cli, ["close", ANDEST, "--db", ":memory:", "--as-of", "2025-09-30", "--jobs", "2"])
    assert out.exit_code == 1 and "needs a ledger the workers share" in out.output


def test_api_close_jobs(tmp_path):
    db = str(tmp_path / "api.db")
    history(db, 4)
    e = Engine(ANDEST, db)
    answer = e.close("2025-09-30", jobs=2)
    # 4 members x one expiry of 200 (AND-6)
    assert (answer["entries"], answer["members_booked"], answer["shards"]) == (4, 4, 2)
    assert e.member("m000", "2025-10-01T00:00:00+09:00")["points"]["valid"] == 500   # AND-4's 500 left


def test_close_on_a_local_dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    program = load_program(ANDEST)
    one, many = str(tmp_path / "one.db"), str(tmp_path / "many.db")
    history(one, 6)
    history(many, 6)
    a, b = open_store(one, program.id), open_store(many, program.id)
    through = close_time("2025-09-30", program)
    close(program, a, through, BOOKED)
    result = close_sharded(program, b, many, through, workers=2, booked_at=BOOKED)
    # 2 workers of one thread: 2 tasks of 3 members, 6 expiries of 200 (AND-6)
    assert (result.shards, result.entries, result.recorded) == (2, 6, True)
    assert ledger(a) == ledger(b)
    a.close()
    b.close()


def test_close_jobs_worker_killed_then_rerun_finishes(tmp_path, monkeypatch):
    """A worker SIGKILLed midway through its shard: the close fails with a message (not recorded),
    the batches committed stay booked, and a rerun books the rest: the ledger of one whole close."""
    import os
    import signal

    import engine.run.close as close_module

    program = load_program(ANDEST)
    through = close_time("2025-09-30", program)
    whole, killed = str(tmp_path / "whole.db"), str(tmp_path / "killed.db")
    history(whole, 40)
    history(killed, 40)
    a = open_store(whole, program.id)
    close(program, a, through, BOOKED)
    real = close_module.close_members

    def dies_in_m001s_shard(program, store, through, booked_at, names, result, progress=None, **kw):
        def tick(n):
            if "m001" in names and n == 18:    # after one batch of 16 committed
                os.kill(os.getpid(), signal.SIGKILL)
        return real(program, store, through, booked_at, names, result, tick, **kw)

    monkeypatch.setattr(close_module, "close_members", dies_in_m001s_shard)   # the forked workers inherit it
    b = open_store(killed, program.id)
    with pytest.raises(CloseError, match="died") as failed:
        close_sharded(program, b, killed, through, jobs=2, booked_at=BOOKED)
    assert failed.value.exit_code == 2 and b.closes() == []
    booked = sum(1 for m in b.members() if any(x.to_state == "expired" for x in b.entries(m)))
    # the dead worker's first batch of 16 stays booked; the pool, broken, stops the other worker
    # too (what it committed stays): at least 16 of the 40, not all
    assert 16 <= booked < 40
    monkeypatch.setattr(close_module, "close_members", real)
    again = close_sharded(program, b, killed, through, jobs=2, booked_at=BOOKED)
    # the rerun books the rest; 40 x 200 expired (AND-6), each once
    assert (again.entries, again.recorded) == (40 - booked, True)
    assert sum(x.amount for m in b.members() for x in b.entries(m) if x.to_state == "expired") == 40 * 200
    assert ledger(a) == ledger(b)
    a.close()
    b.close()
