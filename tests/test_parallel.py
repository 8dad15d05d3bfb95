"""Parallel replay by member shard (engine/run/parallel.py, `loyalty run --jobs N`): the same ledger and
the same report as a sequential run, bad lines refused with their line numbers as the sequential
runner refuses them, and a worker that dies stops the run with a message (never a traceback) and
leaves a ledger that a rerun completes.

PostgreSQL tests need LOYALTY_PG_URL (``source .ci/pg.sh``); without it they are skipped. No timing
is asserted.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from engine.run import parallel
from engine.shell.cli import cli
from engine.format.loader import load_program
from engine.run.parallel import ParallelError, effects_in_line_order, partition, replay_parallel
from engine.run.report import member_dict
from engine.run.runner import Runner, parse_as_of
from engine.model.state import Effect
from engine.store import open_store

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("LOYALTY_PG_URL")
NO_PG = "LOYALTY_PG_URL is not set (source .ci/pg.sh starts a throwaway PostgreSQL)"
# andest, and manda (effects: gifts and notices, from events and from happenings)
CASES = ["andest", "manda"]


def program_path(pid: str) -> str:
    return str(ROOT / "programs" / f"{pid}.yaml")


def example(pid: str) -> list[bytes]:
    return (ROOT / "examples" / pid / "events.jsonl").read_bytes().splitlines(keepends=True)


def with_bad_lines(lines: list[bytes]) -> list[bytes]:
    """The example with bad lines spread through it: malformed JSON, a blank line, a wrong type, a
    line without member, a JSON array, a replayed id, an unknown event type, an id reused by
    another member, a redemption over the balance."""
    first = json.loads(lines[0])
    member = first["member"]
    inserts = {
        3: b"{not json\n",
        10: b"\n",
        20: json.dumps({"id": "zz1", "type": "order.placed", "at": first["at"], "member": member, "order": 5}).encode(),
        30: json.dumps({"id": "zz2", "type": "member.registered", "at": first["at"]}).encode(),
        40: b"[1, 2]",
        50: lines[0].rstrip(b"\n"),
        60: json.dumps({"id": "zz3", "type": "points.vanished", "at": first["at"], "member": member}).encode(),
        70: json.dumps({"id": "zz2", "type": "member.registered", "at": "2030-01-01T00:00:00+09:00",
                        "member": "late-comer"}).encode(),
        80: json.dumps({"id": first["id"], "type": "member.registered", "at": first["at"],
                        "member": "someone-else"}).encode(),
        90: json.dumps({"id": "zz4", "type": "points.granted", "at": "2030-01-01T00:00:00+09:00",
                        "member": member, "amount": -5, "reason": "x"}).encode(),
    }
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in inserts:
            extra = inserts[i]
            out.append(extra if extra.endswith(b"\n") else extra + b"\n")
    return out


def snapshot(store, program) -> dict:
    """Everything a ledger holds, member by member: the report view, the ledger lines, the effects
    (a parallel run interleaves members' effects differently: compared per member)."""
    as_of = parse_as_of(None, program, store)
    members = list(store.members())
    effects = defaultdict(list)
    for e in store.effects():
        effects[e["member"]].append(e)
    return {
        "as_of": as_of,
        "members": {m: member_dict(program, store.load(m), as_of) for m in members},
        "ledger": {m: [(e.at, e.source, e.action, e.lot, e.amount, e.from_state, e.to_state, e.rule, e.version)
                       for e in store.entries(m)] for m in members},
        "effects": dict(effects),
    }


def sqlite_events(path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT id, member, type, at, status, reason, digest FROM events ORDER BY id").fetchall()
    finally:
        con.close()


def sequential(pid: str, lines: list[bytes], spec: str):
    program = load_program(program_path(pid))
    store = open_store(spec, program.id)
    result = Runner(program, store).run(lines)
    return result, store, program


# -- partition -----------------------------------------------------------------------------------

def test_partition_keeps_each_members_lines_together_in_order_with_their_numbers():
    lines = with_bad_lines(example("andest"))
    shards = partition(lines, 2)
    assert len(shards) == 2 and all(len(s) for s in shards)
    seen = {}
    for k, shard in enumerate(shards):
        numbers = list(shard.numbers)
        assert numbers == sorted(numbers)
        for n, raw in shard.lines():
            assert raw == lines[n - 1]          # the very bytes of line n
            try:
                member = json.loads(raw).get("member")
            except (ValueError, AttributeError):
                member = None
            if member is not None:
                assert seen.setdefault(member, k) == k, member
    kept = sorted(n for s in shards for n in s.numbers)
    assert kept == [n for n, raw in enumerate(lines, 1) if raw.strip()]   # every line once, blanks left out
    # a line that does not decode goes to shard 0
    assert 5 in shards[0].numbers and b"{not json" in lines[4]


def test_partition_puts_members_sharing_an_event_id_together():
    lines = [json.dumps({"id": f"e{i}", "member": f"m{i}"}).encode() for i in range(10)]
    lines.append(json.dumps({"id": "e3", "member": "m8"}).encode())
    shards = partition(lines, 2)
    where = {json.loads(raw)["member"]: k for k, s in enumerate(shards) for _, raw in s.lines()}
    assert where["m3"] == where["m8"]


def test_partition_with_more_jobs_than_members():
    lines = [json.dumps({"id": f"e{i}", "member": "solo"}).encode() for i in range(5)]
    assert [len(s) for s in partition(lines, 4)] == [5]


# -- the merged result equals the sequential one -------------------------------------------------

@pytest.mark.parametrize("pid", CASES)
def test_parallel_result_equals_the_sequential_result(pid):
    lines = with_bad_lines(example(pid))
    expected, _, _ = sequential(pid, lines, ":memory:")
    assert expected.rejected and expected.applied   # the bad lines are there
    for jobs, transport in ((2, "fork"), (2, "pipe"), (3, "fork")):
        got = replay_parallel(program_path(pid), lines, jobs, ":memory:", transport=transport)
        assert got.applied == expected.applied, (jobs, transport)
        assert got.skipped == expected.skipped
        assert got.rejected == expected.rejected     # the same reasons, in line order, with line numbers
        assert got.effects == expected.effects       # in line order


def test_bad_lines_are_reported_with_their_line_numbers():
    lines = with_bad_lines(example("andest"))
    got = replay_parallel(program_path("andest"), lines, 2, ":memory:")
    by_line = {r["line"]: r for r in got.rejected if "line" in r}
    assert by_line[5]["reason"].startswith("line 5: event ?: malformed JSON")
    assert "Expected `object`, got `array`" in by_line[46]["reason"]
    assert all(lines[n - 1].strip() for n in by_line)


# -- the same ledger -----------------------------------------------------------------------------

@pytest.mark.parametrize("pid", CASES)
def test_sqlite_parallel_ledger_equals_the_sequential_one(pid, tmp_path):
    lines = with_bad_lines(example(pid))
    expected, seq_store, program = sequential(pid, lines, str(tmp_path / "seq.db"))
    got = replay_parallel(program_path(pid), lines, 2, str(tmp_path / "par.db"))
    assert (got.applied, got.skipped, got.rejected, got.effects) == \
        (expected.applied, expected.skipped, expected.rejected, expected.effects)
    par_store = open_store(str(tmp_path / "par.db"), program.id)
    assert snapshot(par_store, program) == snapshot(seq_store, program)
    assert sqlite_events(tmp_path / "par.db") == sqlite_events(tmp_path / "seq.db")
    # a rerun skips everything, in parallel as sequentially
    again = replay_parallel(program_path(pid), lines, 2, str(tmp_path / "par.db"))
    seq_again = Runner(program, seq_store).run(lines)
    assert again.applied == [] and again.skipped == seq_again.skipped and again.rejected == seq_again.rejected
    assert snapshot(par_store, program) == snapshot(seq_store, program)
    par_store.close()
    seq_store.close()


def test_sqlite_parallel_continues_a_ledger_a_sequential_run_began(tmp_path):
    lines = example("andest")
    expected, seq_store, program = sequential("andest", lines, str(tmp_path / "seq.db"))
    _, half, _ = sequential("andest", lines[:200], str(tmp_path / "par.db"))
    half.close()
    got = replay_parallel(program_path("andest"), lines, 2, str(tmp_path / "par.db"))
    assert len(got.skipped) == 200 and len(got.applied) == len(lines) - 200 and got.rejected == []
    par_store = open_store(str(tmp_path / "par.db"), program.id)
    assert snapshot(par_store, program) == snapshot(seq_store, program)


@pytest.fixture
def pg_schemas():
    """Two PostgreSQL URLs, each with a fresh schema of its own (dropped afterwards)."""
    if not PG_URL:
        pytest.skip(NO_PG)
    import psycopg

    names = [f"t_par_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield [f"{PG_URL}{'&' if '?' in PG_URL else '?'}options={quote(f'-csearch_path={n}')}" for n in names]
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            for name in names:
                admin.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.mark.parametrize("pid", CASES)
def test_postgresql_parallel_ledger_equals_the_sequential_one(pid, pg_schemas):
    seq_url, par_url = pg_schemas
    lines = with_bad_lines(example(pid))
    expected, seq_store, program = sequential(pid, lines, seq_url)
    got = replay_parallel(program_path(pid), lines, 2, par_url)
    assert (got.applied, got.skipped, got.rejected, got.effects) == \
        (expected.applied, expected.skipped, expected.rejected, expected.effects)
    par_store = open_store(par_url, program.id)
    assert snapshot(par_store, program) == snapshot(seq_store, program)
    again = replay_parallel(program_path(pid), lines, 2, par_url)
    seq_again = Runner(program, seq_store).run(lines)
    assert again.applied == [] and again.skipped == seq_again.skipped and again.rejected == seq_again.rejected
    assert snapshot(par_store, program) == snapshot(seq_store, program)
    par_store.close()
    seq_store.close()


# -- the command ---------------------------------------------------------------------------------

def loyalty() -> list[str]:
    exe = shutil.which("loyalty") or str(Path(sys.executable).with_name("loyalty"))
    return [exe] if Path(exe).exists() else [sys.executable, "-c", "from engine.shell.cli import main; main()"]


@pytest.mark.parametrize("pid,bad,kind", [("andest", False, "sqlite"), ("manda", False, "sqlite"),
                                          ("andest", True, "sqlite"), ("manda", True, "postgresql")])
def test_cli_with_jobs_2_exits_and_reports_as_the_sequential_run(pid, bad, kind, tmp_path, request):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(with_bad_lines(example(pid)) if bad else example(pid)))
    if kind == "postgresql":
        dbs = request.getfixturevalue("pg_schemas")
    else:
        dbs = [str(tmp_path / "1.db"), str(tmp_path / "2.db")]
    runs = {}
    for jobs in (1, 2):
        for round_ in (1, 2):    # the second run skips every event
            proc = subprocess.run([*loyalty(), "run", program_path(pid), str(events), "--db", dbs[jobs - 1],
                                   "--json", "--jobs", str(jobs)], capture_output=True, text=True, timeout=120)
            runs[jobs, round_] = proc
    for round_ in (1, 2):
        seq, par = runs[1, round_], runs[2, round_]
        assert par.returncode == seq.returncode == (1 if bad else 0), par.stderr
        assert par.stderr == seq.stderr
        assert "Traceback" not in par.stderr
        if round_ == 1:   # the report, effects in line order
            assert json.loads(par.stdout) == json.loads(seq.stdout)
        else:             # a later report lists the ledger's effects as they were written
            a, b = json.loads(par.stdout), json.loads(seq.stdout)
            assert sorted(map(json.dumps, a.pop("effects"))) == sorted(map(json.dumps, b.pop("effects")))
            assert a == b


def test_cli_refuses_jobs_with_a_memory_ledger():
    result = CliRunner().invoke(cli, ["run", program_path("andest"), str(ROOT / "examples/andest/events.jsonl"),
                                      "--db", ":memory:", "--jobs", "2"])
    assert result.exit_code == 1
    assert "--jobs above 1 needs a ledger the worker processes share" in result.output


def test_cli_rejects_jobs_below_one():
    result = CliRunner().invoke(cli, ["run", program_path("andest"), str(ROOT / "examples/andest/events.jsonl"),
                                      "--db", ":memory:", "--jobs", "0"])
    assert result.exit_code == 2 and "--jobs" in result.output


# -- a worker that fails -------------------------------------------------------------------------

def _die_at(monkeypatch, event_id: str, how: str) -> None:
    """Make the worker that applies ``event_id`` die (SIGKILL) or fail (an exception). Workers are
    forked from this process: they inherit the patch."""
    real = parallel.Runner._apply_event

    def apply(self, event, result):
        if event.id == event_id:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("boom")
        return real(self, event, result)

    monkeypatch.setattr(parallel.Runner, "_apply_event", apply)


needs_fork = pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(),
                                reason="the failure is injected through fork")


@needs_fork
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_killed_worker_stops_the_run_and_a_rerun_completes_the_ledger(kind, monkeypatch, tmp_path, request):
    lines = example("andest")
    if kind == "postgresql":
        seq_spec, spec = request.getfixturevalue("pg_schemas")
    else:
        seq_spec, spec = str(tmp_path / "seq.db"), str(tmp_path / "par.db")
    victim = json.loads(lines[300])["id"]
    _die_at(monkeypatch, victim, "kill")
    with pytest.raises(ParallelError) as err:
        replay_parallel(program_path("andest"), lines, 2, spec)
    message = str(err.value)
    assert "of 2" in message and "killed by signal 9 (SIGKILL)" in message and "run the command again" in message
    assert err.value.exit_code == 1
    monkeypatch.undo()
    _, seq_store, program = sequential("andest", lines, seq_spec)
    store = open_store(spec, program.id)
    partial = set(store.members())
    rerun = Runner(program, store).run(lines)   # sequential or parallel: the ledger skips what it has
    assert rerun.rejected == [] and victim in rerun.applied and rerun.skipped and partial
    assert snapshot(store, program) == snapshot(seq_store, program)
    store.close()
    seq_store.close()


@needs_fork
def test_a_failing_worker_is_an_internal_error_with_a_message(monkeypatch, tmp_path):
    lines = example("andest")
    _die_at(monkeypatch, json.loads(lines[100])["id"], "raise")
    with pytest.raises(ParallelError) as err:
        replay_parallel(program_path("andest"), lines, 2, str(tmp_path / "l.db"))
    assert "internal error: RuntimeError: boom" in str(err.value) and err.value.exit_code == 2


@needs_fork
def test_cli_says_which_worker_died_without_a_traceback(monkeypatch, tmp_path):
    lines = example("andest")
    _die_at(monkeypatch, json.loads(lines[200])["id"], "kill")
    result = CliRunner().invoke(cli, ["run", program_path("andest"), str(ROOT / "examples/andest/events.jsonl"),
                                      "--db", str(tmp_path / "l.db"), "--jobs", "2"])
    assert result.exit_code == 1, result.output
    assert "loyalty run: worker" in result.output and "SIGKILL" in result.output
    assert "Traceback" not in result.output
    monkeypatch.undo()
    again = CliRunner().invoke(cli, ["run", program_path("andest"), str(ROOT / "examples/andest/events.jsonl"),
                                     "--db", str(tmp_path / "l.db"), "--jobs", "2", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["skipped"] > 0


def test_sqlite_run_stops_when_another_process_writes_the_ledger(monkeypatch, tmp_path):
    path = str(tmp_path / "l.db")
    real = parallel._SQLiteWriter.write
    calls = []

    def write(self, payload):
        if not calls:     # another process commits between our batches
            con = sqlite3.connect(path)
            con.execute("INSERT INTO meta VALUES ('someone', 'else')")
            con.commit()
            con.close()
        calls.append(1)
        return real(self, payload)

    monkeypatch.setattr(parallel._SQLiteWriter, "write", write)
    lines = example("andest")
    with pytest.raises(ParallelError, match="another process wrote this ledger"):
        replay_parallel(program_path("andest"), lines, 2, path)
    monkeypatch.undo()
    _, seq_store, program = sequential("andest", lines, str(tmp_path / "seq.db"))
    store = open_store(path, program.id)
    Runner(program, store).run(lines)
    assert snapshot(store, program) == snapshot(seq_store, program)


# -- effects in line order -----------------------------------------------------------------------

def test_effects_in_line_order_puts_this_runs_rows_in_the_order_of_the_lines():
    def row(member, n):
        return {"type": "gift", "member": member, "at": f"2025-01-0{n}", "detail": {}, "rule": "r"}

    def eff(member, n):
        return Effect(type="gift", member=member, at=f"2025-01-0{n}")

    old = [row("a", 1)]
    written = old + [row("b", 3), row("b", 4), row("a", 2), row("a", 5)]    # worker b wrote first
    run = [eff("a", 2), eff("b", 3), eff("b", 4), eff("a", 5)]              # the lines' order
    assert effects_in_line_order(written, run) == [row("a", 1), row("a", 2), row("b", 3), row("b", 4), row("a", 5)]
    assert effects_in_line_order(written, []) == written
    assert effects_in_line_order(written, [eff("c", 1)]) == written        # not this run's rows: as they are



def test_bench_parallel_section_runs_and_renders():
    from bench import parallel as bench_parallel
    from bench import report

    out = bench_parallel.run(300, jobs=2, reps=1)
    kinds = {(r["store"], r["jobs"]) for r in out["rows"]}
    assert {("memory", 1), ("memory", 2), ("sqlite", 1), ("sqlite", 2)} <= kinds
    assert all(r["rejected"] == 0 and r["applied"] == r["events"] for r in out["rows"])
    text = "\n".join(report.parallel_table(out))
    assert "| memory | 2 | fork |" in text and "| SQLite | 2 | fork |" in text
    json.dumps(out)
    machine = {"cores": 2, "cpu": "", "implementation": "CPython", "python": "3", "msgspec": "", "zen_engine": None,
               "commit": "", "load_avg_start": 0.0, "load_avg_end": 0.0}
    page = report.markdown({"command": "python -m bench --quick", "date": "today", "seconds": 1.0, "machine": machine,
                            "sizes": {"quote_carts": 1, "quote_reps": 1}, "quote_at": "", "programs": [],
                            "parallel": out})
    section = page[page.index("## 6. Parallel replay by member shard"):page.index("## Workloads")]
    assert "Median of 1 interleaved round(s)" in section and "{" not in section
