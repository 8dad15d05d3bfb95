"""One store suite over memory, SQLite and PostgreSQL (CONTRACT.md "Stores", issue 11): the same
events give the same ledger on every store, a replay is skipped, rejections are kept; and, for
PostgreSQL, every table is keyed by member (Citus), concurrent processes never overdraw nor apply
one event twice, and a kill -9 mid-run resumes to the uninterrupted ledger.

PostgreSQL tests need LOYALTY_PG_URL (``source .ci/pg.sh`` starts a throwaway server; CI does);
without it they are skipped. Each test works in a schema of its own, dropped afterwards.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from engine.core.apply import apply
from engine.model.events import decode_event
from engine.format.loader import load_program
from engine.run.report import member_dict
from engine.run.runner import Runner, parse_as_of
from engine.store import MemoryStore, open_store
from tests.helpers import pg_states

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_PATH = ROOT / "programs" / "andest.yaml"
EVENTS_PATH = ROOT / "examples" / "andest" / "events.jsonl"
PROGRAM = load_program(PROGRAM_PATH)
EVENTS = [line for line in EVENTS_PATH.read_bytes().splitlines() if line.strip()]
PG_URL = os.environ.get("LOYALTY_PG_URL")
NO_PG = "LOYALTY_PG_URL is not set (source .ci/pg.sh starts a throwaway PostgreSQL)"


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema}')}"


def pg_admin():
    import psycopg

    return psycopg.connect(PG_URL, autocommit=True)


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose search_path is a fresh schema (dropped afterwards)."""
    if not PG_URL:
        pytest.skip(NO_PG)
    with another_schema() as url:
        yield url


def pg_rows(url: str, sql: str, params=()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


class Kind:
    """How to open (and reopen) one kind of store, and read the rejections it keeps."""

    def __init__(self, name: str, target: str | None):
        self.name, self.target = name, target
        self._memory = MemoryStore(PROGRAM.id) if name == "memory" else None

    def open(self):
        if self._memory is not None:
            return self._memory  # nothing to reopen: the same store, as a long-lived process keeps it
        return open_store(self.target, PROGRAM.id)

    def rejections(self) -> dict[str, str]:
        if self._memory is not None:
            return dict(self._memory.rejected)
        sql = "SELECT id, reason FROM events WHERE status = 'rejected'"
        if self.name == "sqlite":
            con = sqlite3.connect(self.target)
            try:
                return dict(con.execute(sql).fetchall())
            finally:
                con.close()
        return dict(pg_rows(self.target, sql))


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def kind(request, tmp_path) -> Kind:
    if request.param == "memory":
        return Kind("memory", None)
    if request.param == "sqlite":
        return Kind("sqlite", str(tmp_path / "ledger.db"))
    return Kind("postgresql", request.getfixturevalue("pg_url"))


def snapshot(store) -> dict:
    """Everything a store holds, as plain data: each member's report view, its ledger, the effects."""
    as_of = parse_as_of(None, PROGRAM, store)
    members = list(store.members())
    return {
        "as_of": as_of,
        "members": {m: member_dict(PROGRAM, store.load(m), as_of) for m in members},
        "ledger": {m: [(e.at, e.source, e.action, e.lot, e.amount, e.from_state, e.to_state, e.rule, e.version)
                       for e in store.entries(m)] for m in members},
        "effects": store.effects(),
    }


_BASELINE: dict = {}


def baseline() -> dict:
    if not _BASELINE:
        store = MemoryStore(PROGRAM.id)
        result = Runner(PROGRAM, store).run(EVENTS)
        assert not result.rejected and len(result.applied) == len(EVENTS)
        _BASELINE.update(snapshot(store))
    return _BASELINE


def event(**fields) -> bytes:
    return json.dumps(fields).encode()


def register(member: str, at: str = "2025-03-01T10:00:00+09:00") -> bytes:
    return event(id=f"reg-{member}", type="member.registered", at=at, member=member)


def grant(member: str, amount: int, at: str = "2025-03-01T10:01:00+09:00") -> bytes:
    return event(id=f"grant-{member}", type="points.granted", at=at, member=member, amount=amount, reason="test")


def redeem(event_id: str, member: str, points: int, at: str = "2025-03-02T12:00:00+09:00") -> bytes:
    return event(id=event_id, type="order.placed", at=at, member=member, order=f"o-{event_id}", course="one_off",
                 payment={"method": "credit_card", "card_brand": "visa"},
                 lines=[{"sku": "A", "qty": 1, "unit_price": 20000, "tax_rate": 0.1}], redeem={"points": points})


# -- every store ---------------------------------------------------------------------------------

def test_andest_same_ledger_on_every_store(kind):
    store = kind.open()
    result = Runner(PROGRAM, store).run(EVENTS)
    assert result.rejected == [] and len(result.applied) == len(EVENTS)
    expected = baseline()
    got = snapshot(store)
    assert list(got["members"]) == list(expected["members"])
    for member, view in expected["members"].items():
        assert got["members"][member] == view, member
    assert got == expected
    store.close()
    reopened = kind.open()  # what was committed is what a new process sees
    assert snapshot(reopened) == expected
    reopened.close()


def test_replay_is_skipped(kind):
    store = kind.open()
    first = Runner(PROGRAM, store).run(EVENTS[:300])
    assert len(first.applied) == 300
    store.close()
    store = kind.open()
    again = Runner(PROGRAM, store).run(EVENTS)  # the first 300 again, then the rest
    assert again.skipped == [json.loads(line)["id"] for line in EVENTS[:300]]
    assert len(again.applied) == len(EVENTS) - 300 and again.rejected == []
    once_more = Runner(PROGRAM, store).run(EVENTS)
    assert once_more.applied == [] and len(once_more.skipped) == len(EVENTS)
    assert snapshot(store) == baseline()
    store.close()


def test_rejected_events_are_kept_with_their_reason(kind):
    store = kind.open()
    lines = [
        register("x1"),
        grant("x1", 1000),
        b'{"id": "not-json", "type": "order.placed", ',                       # not JSON: no id known
        b'{"id": "no-member", "type": "points.granted", "at": "2025-03-01T11:00:00+09:00"}',  # no member
        event(id="bad-field", type="points.granted", at="2025-03-01T11:00:00+09:00", member="x1",
              amount="many", reason="test"),                                   # a field of the wrong type
        redeem("too-much", "x1", 1600),                                        # more than the balance
        event(id="late", type="review.posted", at="2025-02-01T00:00:00+09:00", member="x1", product="P"),
    ]
    result = Runner(PROGRAM, store).run(lines)
    assert result.applied == ["reg-x1", "grant-x1"]
    reasons = {r["event"]: r["reason"] for r in result.rejected}
    assert None in reasons and "malformed JSON" in reasons.pop(None)  # nothing to key it by: not stored
    assert set(reasons) == {"no-member", "bad-field", "too-much", "late"}
    assert "balance is 1500" in reasons["too-much"] and "out of order" in reasons["late"]
    for event_id in reasons:
        assert not store.is_applied(event_id)
    store.close()
    assert kind.rejections() == reasons
    store = kind.open()
    # The same id, corrected, applies; its rejection gives way, and a replay of the bad line is skipped.
    fixed = Runner(PROGRAM, store).run([redeem("too-much", "x1", 1500), redeem("too-much", "x1", 1600)])
    assert fixed.applied == ["too-much"] and fixed.skipped == ["too-much"]
    assert store.is_applied("too-much")
    assert store.load("x1").balances()["valid"] == 0
    store.close()
    assert "too-much" not in kind.rejections()


# -- PostgreSQL ----------------------------------------------------------------------------------

def test_every_postgresql_table_is_keyed_by_member(pg_url):
    """Citus distributes a table by one column, and every unique key must include it: each table
    carries `member` in its primary key, except the two small program-wide ones and `event_ids`, the
    claim of an event id across members (CONTRACT: ids are unique across the ledger), distributed by id."""
    open_store(pg_url, PROGRAM.id).close()
    tables = {t for (t,) in pg_rows(pg_url, "SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")}
    assert {"members", "events", "ledger", "effects", "meta", "schema_migrations"} <= tables
    program_wide = {"meta", "schema_migrations", "event_ids"}
    for table in sorted(tables - program_wide):
        columns = {c for (c,) in pg_rows(pg_url, "SELECT column_name FROM information_schema.columns "
                                                 "WHERE table_schema = current_schema() AND table_name = %s", (table,))}
        assert "member" in columns, f"table {table} has no member column: it cannot be distributed by member"
        assert "program" in columns, f"table {table} has no program column"
        unique_keys = pg_rows(pg_url, """
            SELECT i.indexrelid::regclass::text, array_agg(a.attname::text)
            FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = %s::regclass AND i.indisunique GROUP BY 1""", (table,))
        assert unique_keys, f"table {table} has no primary key"
        for index, cols in unique_keys:
            assert "member" in cols, f"unique index {index} of {table} lacks member: Citus cannot enforce it"
    assert pg_rows(pg_url, "SELECT program, key FROM meta") == [(PROGRAM.id, "created_at")]


def test_postgresql_migrations_are_versioned(pg_url):
    from click.testing import CliRunner

    from engine.shell.cli import cli
    from engine.store.postgres import LATEST, MIGRATIONS, PostgresStore
    from engine.store.sqlite import StoreError

    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:  # a ledger created by an older engine
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                     "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        for statement in MIGRATIONS[0][2]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (1, 'old')")
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", pg_url])
    assert result.exit_code == 0, result.output
    assert f"version {LATEST}" in result.output
    assert [v for (v,) in pg_rows(pg_url, "SELECT version FROM schema_migrations ORDER BY version")] == \
        [m[0] for m in MIGRATIONS]
    again = CliRunner().invoke(cli, ["db", "upgrade", "--db", pg_url])
    assert again.exit_code == 0 and "already" in again.output
    PostgresStore(pg_url, PROGRAM.id).close()  # opening a current schema changes nothing
    pg_rows(pg_url, "INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future') RETURNING 1")
    with pytest.raises(StoreError, match="newer than this engine"):
        PostgresStore(pg_url, PROGRAM.id)
    bad = CliRunner().invoke(cli, ["db", "upgrade", "--db", "postgresql://nobody@127.0.0.1:1/none"])
    assert bad.exit_code == 1 and "cannot connect" in bad.output


def test_postgresql_unreachable_is_a_clear_refusal():
    from engine.store.sqlite import StoreError

    pytest.importorskip("psycopg")
    with pytest.raises(StoreError, match=r"PostgreSQL store postgresql://u:\*\*\*@127.0.0.1:1/x: cannot connect"):
        open_store("postgresql://u:secret@127.0.0.1:1/x", PROGRAM.id)


def _apply_in_process(url: str, lines: list[bytes], barrier, out) -> None:
    store = open_store(url, PROGRAM.id)
    barrier.wait(timeout=60)
    result = Runner(PROGRAM, store).run(lines)
    store.close()
    out.put((result.applied, result.skipped, [(r["event"], r["reason"]) for r in result.rejected]))


def _in_parallel(url: str, batches: list[list[bytes]], targets=None) -> list[tuple]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(len(batches)), ctx.Queue()
    targets = targets or [_apply_in_process] * len(batches)
    procs = [ctx.Process(target=target, args=(url, lines, barrier, out)) for target, lines in zip(targets, batches)]
    for p in procs:
        p.start()
    results: list[tuple] = []
    deadline = time.monotonic() + 180
    try:
        while len(results) < len(procs):
            try:
                results.append(out.get(timeout=0.5))
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                assert not dead, f"a worker process died (exit codes {dead}); see its stderr above"
                assert time.monotonic() < deadline, "the worker processes did not finish in 180 s"
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    return results


def _setup(url: str, lines: list[bytes]) -> None:
    store = open_store(url, PROGRAM.id)
    result = Runner(PROGRAM, store).run(lines)
    assert not result.rejected, result.rejected
    store.close()


def test_two_checkouts_redeeming_one_balance(pg_url):
    _setup(pg_url, [register("x1"), grant("x1", 1000)])
    store = open_store(pg_url, PROGRAM.id)
    balance = store.load("x1").balances()["valid"]
    store.close()
    assert balance == 1500  # 500 on registration (AND-4) and the grant
    results = _in_parallel(pg_url, [[redeem("checkout-a", "x1", balance)], [redeem("checkout-b", "x1", balance)]])
    applied = [a for r in results for a in r[0]]
    refused = [x for r in results for x in r[2]]
    assert len(applied) == 1 and len(refused) == 1, results
    loser, reason = refused[0]
    assert loser != applied[0]
    assert f"asks to use {balance}, but at most 0 can be used: the member's valid balance is 0" in reason
    store = open_store(pg_url, PROGRAM.id)
    points = store.load("x1").balances()
    assert points["valid"] == 0 and points["used"] == balance
    assert store.is_applied(applied[0]) and not store.is_applied(loser)
    store.close()


def test_many_processes_redeeming_for_the_same_members(pg_url):
    """8 processes redeem for the same 20 members at once from a known balance: no balance goes
    negative, what was applied equals the drop in balances, and every refusal says why."""
    members = [f"c{n:02}" for n in range(20)]
    _setup(pg_url, [line for m in members for line in (register(m), grant(m, 1000))])
    per_order, processes = 300, 8
    batches = []
    for p in range(processes):
        order = members[p % 20:] + members[:p % 20]  # each process walks the members in its own order
        batches.append([redeem(f"p{p}-{m}", m, per_order) for m in order])
    results = _in_parallel(pg_url, batches)
    applied = [a for r in results for a in r[0]]
    refused = [x for r in results for x in r[2]]
    assert len(applied) + len(refused) == processes * len(members)
    assert all(reason and "at most" in reason and "balance" in reason for _, reason in refused), refused
    store = open_store(pg_url, PROGRAM.id)
    for m in members:
        points = store.load(m).balances()
        assert points["valid"] >= 0
        spent = per_order * sum(1 for a in applied if a.endswith(f"-{m}"))
        assert points["used"] == spent and points["valid"] == 1500 - spent, m
        assert spent == 1500  # five of the eight fit in 1500, the other three were refused
    assert len(pg_rows(pg_url, "SELECT id FROM events WHERE status = 'applied' GROUP BY id HAVING count(*) > 1")) == 0
    store.close()


def test_one_event_id_is_applied_once_however_many_processes_send_it(pg_url):
    results = _in_parallel(pg_url, [EVENTS[:200]] * 4)
    applied = [a for r in results for a in r[0]]
    skipped = [s for r in results for s in r[1]]
    assert sorted(applied) == sorted(json.loads(line)["id"] for line in EVENTS[:200])
    assert len(skipped) == 3 * 200 and all(not r[2] for r in results)
    store = open_store(pg_url, PROGRAM.id)
    reference = MemoryStore(PROGRAM.id)
    Runner(PROGRAM, reference).run(EVENTS[:200])
    assert snapshot(store) == snapshot(reference)
    store.close()


def test_connection_lost_mid_run_is_a_clear_error_and_a_rerun_continues(pg_url):
    from engine.store.sqlite import StoreError

    store = open_store(pg_url, PROGRAM.id)
    pid = store.conn.info.backend_pid

    def lines():
        for n, line in enumerate(EVENTS):
            if n == 200:  # the server ends the session between two events, as a restart or failover would
                with pg_admin() as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            yield line

    with pytest.raises(StoreError, match=r"^PostgreSQL store postgresql://.*: connection lost"):
        Runner(PROGRAM, store).run(lines())
    store.close()
    applied = pg_rows(pg_url, "SELECT count(*) FROM events WHERE status = 'applied'")[0][0]
    assert applied == 200
    store = open_store(pg_url, PROGRAM.id)
    rerun = Runner(PROGRAM, store).run(EVENTS)
    assert len(rerun.skipped) == 200 and len(rerun.applied) == len(EVENTS) - 200
    assert snapshot(store) == baseline()
    store.close()


def test_postgresql_rollback_drops_the_event_and_frees_the_member(pg_url):
    store = open_store(pg_url, PROGRAM.id)
    Runner(PROGRAM, store).run([register("x1"), grant("x1", 1000)])
    outcome = apply(PROGRAM, store.lock("x1", "spend"), decode_event(redeem("spend", "x1", 1500)))
    assert not store.is_applied("spend")
    store.save("spend", "order.placed", "2025-03-02T12:00:00+09:00", outcome.state, outcome.entries, outcome.effects)
    assert store.load("x1").balances()["valid"] == 0
    store.rollback()  # e.g. the caller failed before answering: nothing of the event remains
    other = open_store(pg_url, PROGRAM.id)
    assert other.lock("x1", "spend").balances()["valid"] == 1500  # the lock was released, too
    assert not other.is_applied("spend")
    other.close()
    assert store.load("x1").balances()["valid"] == 1500
    store.close()


def _loyalty(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from engine.shell.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, **kw)


def _ledger(url: str) -> dict:
    states = pg_states(url)
    return {
        "members": [(m, states[(p, m)], clock) for p, m, clock in pg_rows(
            url, 'SELECT program, member, clock FROM members ORDER BY member COLLATE "C", program')],
        "ledger": pg_rows(url, "SELECT member, at, source, action, lot, amount, from_state, to_state, rule, version "
                               'FROM ledger ORDER BY member COLLATE "C", seq'),
        "effects": pg_rows(url, 'SELECT member, type, at, detail::text, rule FROM effects ORDER BY member COLLATE "C", seq'),
        "events": pg_rows(url, "SELECT member, id, type, at, status, reason FROM events ORDER BY id"),
    }


def test_kill_9_mid_run_resumes_to_the_uninterrupted_ledger(pg_url):
    if not PG_URL:
        pytest.skip(NO_PG)
    other = f"t_{uuid.uuid4().hex[:12]}"
    with pg_admin() as admin:
        admin.execute(f"CREATE SCHEMA {other}")
    try:
        whole = with_schema(PG_URL, other)
        proc = _loyalty("run", str(PROGRAM_PATH), str(EVENTS_PATH), "--db", whole, "--json")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        expected = json.loads(out)

        proc = _loyalty("run", str(PROGRAM_PATH), str(EVENTS_PATH), "--db", pg_url, "--json")
        deadline = time.monotonic() + 120
        applied = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                applied = pg_rows(pg_url, "SELECT count(*) FROM events WHERE status = 'applied'")[0][0]
            except Exception:  # the schema's tables are being created
                applied = 0
            if applied >= 100:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert 100 <= applied < len(EVENTS)

        proc = _loyalty("run", str(PROGRAM_PATH), str(EVENTS_PATH), "--db", pg_url, "--json")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        resumed = json.loads(out)
        assert resumed["skipped"] >= applied and resumed["skipped"] + resumed["applied"] == len(EVENTS)
        drop = ("applied", "skipped")
        assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in expected.items() if k not in drop}
        assert _ledger(pg_url) == _ledger(whole)
    finally:
        with pg_admin() as admin:
            admin.execute(f"DROP SCHEMA {other} CASCADE")


@pytest.mark.parametrize("program_id", ["andest", "ansage", "amare", "manda", "rewards_circle"])
def test_postgresql_report_matches_memory_from_the_command_line(pg_url, program_id):
    """Issue 11: `loyalty run PROGRAM examples/<id>/events.jsonl --db postgresql://…` gives the same
    --json report as --db :memory:, for every program (as of the last event, the default)."""
    program = ROOT / "programs" / f"{program_id}.yaml"
    events = ROOT / "examples" / program_id / "events.jsonl"
    proc = _loyalty("run", str(program), str(events), "--db", pg_url, "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    mem = _loyalty("run", str(program), str(events), "--db", ":memory:", "--json")
    mem_out, mem_err = mem.communicate(timeout=300)
    assert mem.returncode == 0, mem_err.decode()
    assert json.loads(out) == json.loads(mem_out)


# -- PostgreSQL: a replay commits in chunks (issue 8) ---------------------------------------------

@contextlib.contextmanager
def another_schema():
    """A second fresh PostgreSQL schema (for a reference ledger), dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with pg_admin() as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(PG_URL, schema)
    finally:
        with pg_admin() as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _with_refusals() -> list[bytes]:
    """The andest example with refused, repeated, corrected and malformed lines mixed in."""
    extra = {
        40: [register("x1"), grant("x1", 1000)],
        90: [redeem("too-much", "x1", 1600)],                                     # over the balance: refused
        91: [b'{"id": "not-json", "type": "order.placed", '],                      # malformed: no id known
        150: [redeem("too-much", "x1", 1600)],                                    # the same again: refused again
        151: [event(id="no-member", type="points.granted", at="2025-03-01T11:00:00+09:00", amount=5, reason="t")],
        200: [event(id="bad-field", type="points.granted", at="2025-03-01T11:00:00+09:00", member="x1",
                    amount="many", reason="test")],
        260: [redeem("too-much", "x1", 1500)],                                    # corrected: applied
        261: [event(id="late", type="review.posted", at="2025-02-01T00:00:00+09:00", member="x1", product="P")],
        300: [EVENTS[10], EVENTS[299]],                                           # resent: skipped
        301: [redeem("too-much", "x1", 1)],                                       # applied before: skipped
    }
    lines = []
    for n, line in enumerate(EVENTS):
        lines.extend(extra.get(n, []))
        lines.append(line)
    return lines


def _outcome(result) -> tuple:
    refused = [(r["event"], r["reason"], r.get("repeat", False)) for r in result.rejected]
    return result.applied, result.skipped, refused


def _per_event(store):
    store.chunks = False  # as on Citus: a replay takes a checkout's path, lock, apply, commit an event
    return store


def _count_chunks(monkeypatch) -> list:
    from engine.store.postgres import PostgresStore

    calls: list = []
    original = PostgresStore.lock_chunk

    def lock_chunk(self, events):
        calls.append(len(events))
        return original(self, events)

    monkeypatch.setattr(PostgresStore, "lock_chunk", lock_chunk)
    return calls


@pytest.mark.parametrize("batch", [None, 7])
def test_chunked_replay_into_postgresql_matches_sqlite(pg_url, tmp_path, monkeypatch, batch):
    """A replay into PostgreSQL commits a chunk of events a transaction, and ends with the ledger the
    same file gives in SQLite: entries, balances, effects, refused events and their reasons; a
    rerun of the file changes nothing."""
    lines = _with_refusals()
    sqlite_kind, pg_kind = Kind("sqlite", str(tmp_path / "ledger.db")), Kind("postgresql", pg_url)
    store = sqlite_kind.open()
    expected = Runner(PROGRAM, store).run(lines)
    expected_snapshot = snapshot(store)
    store.close()
    chunks = _count_chunks(monkeypatch)
    store = pg_kind.open()
    got = Runner(PROGRAM, store, batch).run(lines)
    assert len(chunks) == -(-len(lines) // (batch or 200))  # one transaction a chunk, not an event
    assert _outcome(got) == _outcome(expected)
    assert {r["event"] for r in got.rejected} == {None, "too-much", "no-member", "bad-field", "late"}
    assert snapshot(store) == expected_snapshot
    store.close()
    assert pg_kind.rejections() == sqlite_kind.rejections()
    assert set(pg_kind.rejections()) == {"no-member", "bad-field", "late"}  # too-much was corrected

    before = _ledger(pg_url)
    store = pg_kind.open()
    again = Runner(PROGRAM, store, batch).run(lines)
    store.close()
    store = sqlite_kind.open()
    sqlite_again = Runner(PROGRAM, store).run(lines)
    store.close()
    assert again.applied == [] and set(again.skipped) == set(got.applied)
    assert {r["event"] for r in again.rejected} == {None, "no-member", "bad-field", "late"}
    assert [r for r in again.rejected if r.get("repeat")] == [r for r in again.rejected if r["event"] == "late"]
    assert _outcome(again) == _outcome(sqlite_again)
    assert _ledger(pg_url) == before


@pytest.mark.parametrize("batch", [1, 3, 50])
def test_chunked_replay_equals_the_per_event_path(pg_url, monkeypatch, batch):
    """Whatever the chunk size, a replay writes exactly what applying the events one by one (lock,
    apply, commit: the checkout path) writes, row for row, and answers the same."""
    lines = _with_refusals()[:320]
    with another_schema() as reference:
        store = _per_event(open_store(reference, PROGRAM.id))
        calls = _count_chunks(monkeypatch)
        expected = Runner(PROGRAM, store).run(lines)
        assert calls == []
        store.close()
        store = open_store(pg_url, PROGRAM.id)
        got = Runner(PROGRAM, store, batch).run(lines)
        store.close()
        assert _outcome(got) == _outcome(expected)
        assert _ledger(pg_url) == _ledger(reference)


def test_a_refused_event_in_a_chunk_is_recorded_and_the_rest_applied(pg_url, monkeypatch):
    chunks = _count_chunks(monkeypatch)
    store = open_store(pg_url, PROGRAM.id)
    lines = [register("x1"), grant("x1", 1000), register("x2"),
             redeem("spend-1", "x1", 1600),                     # more than the 1500: refused
             redeem("spend-2", "x1", 1000),                     # applied
             redeem("spend-1", "x1", 1600),                     # the same refused event again: refused again
             grant("x2", 300),
             redeem("spend-3", "x1", 600)]                      # 500 left: refused
    result = Runner(PROGRAM, store).run(lines)
    store.close()
    assert chunks == [len(lines)]
    assert result.applied == ["reg-x1", "grant-x1", "reg-x2", "spend-2", "grant-x2"]
    reasons = [(r["event"], r["reason"]) for r in result.rejected]
    assert [e for e, _ in reasons] == ["spend-1", "spend-1", "spend-3"]
    assert "balance is 1500" in reasons[0][1] and reasons[1][1] == reasons[0][1]
    assert "balance is 500" in reasons[2][1]
    assert dict(pg_rows(pg_url, "SELECT id, reason FROM events WHERE status = 'rejected'")) == {
        "spend-1": reasons[0][1], "spend-3": reasons[2][1]}
    store = open_store(pg_url, PROGRAM.id)
    assert store.load("x1").balances()["valid"] == 500 and store.load("x2").balances()["valid"] == 800
    assert not store.is_applied("spend-1") and store.is_applied("spend-2")
    assert {e.source for e in store.entries("x1") if e.action == "spend"} == {"spend-2"}
    store.close()


def pg_exec(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def _fail_ledger_inserts(url: str, member: str) -> None:
    """A trigger that makes the database refuse any ledger row of ``member`` (as a full disk would)."""
    pg_exec(url, f"""CREATE FUNCTION fail_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN IF NEW.member = '{member}' THEN RAISE EXCEPTION 'no space left (simulated)'; END IF;
                     RETURN NEW; END $$""")
    pg_exec(url, "CREATE TRIGGER fail_ledger BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION fail_ledger()")


def _members_in(lines: list[bytes]) -> set[str]:
    return {json.loads(line)["member"] for line in lines}


@pytest.mark.parametrize("how", ["database", "client"])
def test_a_failure_mid_chunk_records_nothing_of_it_and_a_rerun_completes(pg_url, monkeypatch, how):
    """The database (or the client, half-way through sending the chunk's writes) fails in the middle
    of a chunk: the whole chunk rolls back, none of its events, states, ledger rows or effects are
    recorded, the members are free again; a rerun applies the chunk and ends with the ledger of an
    uninterrupted run."""
    import psycopg

    from engine.store.sqlite import StoreError

    lines = EVENTS[:300]
    # the second chunk (events 100-199) writes the members' states and the events before the ledger
    # rows fail, so the rollback has something to undo
    doomed = json.loads(lines[150])["member"]
    assert doomed in _members_in(lines[100:200]) and doomed in _members_in(lines[:100])
    store = open_store(pg_url, PROGRAM.id)
    armed = False
    copy = psycopg.Cursor.copy

    def failing_copy(cur, statement, *args, **kwargs):
        if armed and statement.startswith("COPY ledger"):
            raise MemoryError("simulated: the client fails while sending the chunk's writes")
        return copy(cur, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", failing_copy)
    if how == "database":
        error = r"^PostgreSQL store postgresql://.*: database error: no space left \(simulated\)"
    else:
        error = "simulated: the client fails"
    committed = None

    def lines_watching():
        nonlocal committed, armed
        for n, line in enumerate(lines):
            if n == 100:  # the first chunk is committed: the second one will fail
                committed = _ledger(pg_url)
                if how == "database":
                    _fail_ledger_inserts(pg_url, doomed)
                else:
                    armed = True
            yield line

    with pytest.raises((StoreError, MemoryError), match=error):
        Runner(PROGRAM, store, 100).run(lines_watching())
    assert _ledger(pg_url) == committed                       # nothing of the failed chunk
    assert len(committed["events"]) == 100
    other = open_store(pg_url, PROGRAM.id)                    # its locks are released
    assert other.lock(doomed) is not None
    other.rollback()
    other.close()
    store.close()

    monkeypatch.undo()
    pg_exec(pg_url, "DROP TRIGGER IF EXISTS fail_ledger ON ledger")
    store = open_store(pg_url, PROGRAM.id)
    rerun = Runner(PROGRAM, store, 100).run(lines)
    assert len(rerun.skipped) == 100 and len(rerun.applied) == 200 and not rerun.rejected
    reference = MemoryStore(PROGRAM.id)
    Runner(PROGRAM, reference).run(lines)
    assert snapshot(store) == snapshot(reference)
    store.close()


def test_a_checkout_during_a_replay_of_the_same_member_never_overdraws(pg_url, monkeypatch):
    """A replay's chunk spends a member's whole balance; a checkout for that member arrives while the
    chunk is open: it waits for the chunk's commit, then is refused against the balance the chunk
    left. The other way round, a checkout holding the member makes the replay's chunk wait, and the
    chunk's redemption is refused."""
    from engine.shell.api import Engine
    from engine.store.postgres import PostgresStore

    _setup(pg_url, [register("x1"), grant("x1", 1000), register("x2"), grant("x2", 1000)])
    chunk_open, release = threading.Event(), threading.Event()
    original = PostgresStore._flush_chunk

    def slow_flush(self, commit):
        if commit and not release.is_set():
            chunk_open.set()
            assert release.wait(30)
        return original(self, commit)

    monkeypatch.setattr(PostgresStore, "_flush_chunk", slow_flush)
    replay_result: dict = {}

    def replay(lines):
        store = open_store(pg_url, PROGRAM.id)
        try:
            replay_result["result"] = Runner(PROGRAM, store).run(lines)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            replay_result["error"] = exc
        finally:
            store.close()

    # 1. the replay holds x1 (and x2) while its chunk is open; the checkout waits, then is refused
    top_up = event(id="top-up-x2", type="points.granted", at="2025-03-01T10:02:00+09:00", member="x2", amount=10,
                   reason="test")
    thread = threading.Thread(target=replay, args=([top_up, redeem("replayed-1", "x1", 1500)],))
    thread.start()
    assert chunk_open.wait(30)
    checkout = Engine(PROGRAM, open_store(pg_url, PROGRAM.id))
    answer: dict = {}
    buyer = threading.Thread(target=lambda: answer.update(result=checkout.apply(redeem("checkout-1", "x1", 1500))))
    buyer.start()
    buyer.join(0.5)
    assert buyer.is_alive(), "the checkout did not wait for the replay's chunk to commit"
    release.set()
    thread.join(30)
    buyer.join(30)
    assert "error" not in replay_result and replay_result["result"].applied == ["top-up-x2", "replayed-1"]
    refused = answer["result"].rejected
    assert answer["result"].applied == [] and len(refused) == 1 and refused[0]["event"] == "checkout-1"
    assert "the member's valid balance is 0" in refused[0]["reason"]

    # 2. the checkout holds x2 (locked, applied, not committed yet); the replay's chunk waits for it
    store = checkout.store
    outcome = apply(PROGRAM, store.lock("x2", "checkout-2"), decode_event(redeem("checkout-2", "x2", 1510)))
    store.save("checkout-2", "order.placed", "2025-03-02T12:00:00+09:00", outcome.state, outcome.entries,
               outcome.effects)
    replay_result.clear()
    thread = threading.Thread(target=replay, args=([redeem("replayed-2", "x2", 1510)],))
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "the replay did not wait for the checkout's lock"
    store.commit()
    thread.join(30)
    assert "error" not in replay_result
    result = replay_result["result"]
    assert result.applied == [] and [r["event"] for r in result.rejected] == ["replayed-2"]
    assert "the member's valid balance is 0" in result.rejected[0]["reason"]
    for member in ("x1", "x2"):
        points = store.load(member).balances()
        assert points["valid"] == 0 and points["used"] == 1500 + (10 if member == "x2" else 0), member
    store.close()


def _checkouts_in_process(url: str, lines: list[bytes], barrier, out) -> None:
    from engine.shell.api import Engine

    engine = Engine(PROGRAM, open_store(url, PROGRAM.id))
    barrier.wait(timeout=60)
    applied, refused = [], []
    for line in lines:
        result = engine.apply(line)
        applied += result.applied
        refused += [(r["event"], r["reason"]) for r in result.rejected]
    engine.store.close()
    out.put((applied, [], refused))


def _replay_in_process(url: str, lines: list[bytes], barrier, out) -> None:
    store = open_store(url, PROGRAM.id)
    barrier.wait(timeout=60)
    result = Runner(PROGRAM, store, 6).run(lines)
    store.close()
    out.put((result.applied, result.skipped, [(r["event"], r["reason"]) for r in result.rejected]))


def test_replays_and_checkouts_at_once_never_deadlock_nor_overdraw(pg_url):
    """Two replays walking the same members in opposite orders (chunks of 6) and two checkout
    processes (one event a transaction) redeem from the same balances at once: nobody deadlocks,
    no balance goes negative, and what was applied is exactly what the balances lost."""
    members = [f"c{n:02}" for n in range(12)]
    _setup(pg_url, [line for m in members for line in (register(m), grant(m, 1000))])
    per_order = 300
    orders = [members, members[::-1], members[6:] + members[:6], members[3:] + members[:3]]
    targets = [_replay_in_process, _replay_in_process, _checkouts_in_process, _checkouts_in_process]
    for round_ in range(2):  # four redemptions a member fit in the first round, one in the second
        batches = [[redeem(f"spend{round_}-{k}-{m}", m, per_order) for m in order] for k, order in enumerate(orders)]
        results = _in_parallel(pg_url, batches, targets)
        refused = [x for r in results for x in r[2]]
        assert all("at most" in reason and "balance" in reason for _, reason in refused), refused
        assert len(refused) == (0 if round_ == 0 else 3 * len(members))
    store = open_store(pg_url, PROGRAM.id)
    spent = pg_rows(pg_url, "SELECT member, count(*) FROM events WHERE status = 'applied' AND id LIKE 'spend%%' "
                            "GROUP BY member")
    for member, n in spent:
        points = store.load(member).balances()
        assert points["valid"] == 1500 - per_order * n >= 0 and points["used"] == per_order * n, member
    assert sorted(m for m, n in spent if n == 5) == members  # 1500 is five redemptions of 300
    store.close()
