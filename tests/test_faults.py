"""Faults (issue 9): the ledger survives a killed process, and two processes never spend one balance twice.

* ``loyalty run PROGRAM EVENTS --db PATH`` is killed with SIGKILL at random moments, many times over,
  on a large events file (examples/andest/events.jsonl replicated with renamed ids, members and
  orders to ~20k events); after every kill the SQLite file is intact and every member's state blob
  agrees with its ledger rows (each event's writes are all there or none are); a rerun to the end
  gives exactly the ledger of an uninterrupted run, member by member (state blobs, ledger rows,
  effects, event statuses).
* Two processes applying events for the same member at once on one SQLite ledger (two checkouts
  redeeming together, each with a balance for only one of them) never overdraw: one redemption
  applies, the other is refused with a clear reason, and the ledger agrees with the state.

Profiles: the default (CI) kills 10 times; ``LOYALTY_RELIABILITY=long`` kills 100 times and repeats
the concurrent checkouts more often. ``LOYALTY_RELIABILITY_SEED`` replays a run's kill moments.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import msgspec
import pytest

from tests.test_invariants import LONG, write_stats
from tests.helpers import sqlite_states

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = str(ROOT / "programs" / "andest.yaml")
EXAMPLE = ROOT / "examples" / "andest" / "events.jsonl"
REPLICAS = 42                      # 485 example events x 42 = 20,370 events, 1,176 members
KILLS = 100 if LONG else 10
KILLS_PER_ROUND = 10               # then the round's run goes to the end and is compared
CHECKOUT_ROUNDS = 40 if LONG else 6
SEED = int(os.environ.get("LOYALTY_RELIABILITY_SEED", "0")) or random.SystemRandom().randrange(1, 2**31)

STATS: dict = defaultdict(Counter)
STATS["kill_committed_events_at_each_kill"] = {}

def blob_balances(blob: bytes) -> tuple[int, Counter]:
    """(units in all lots, balance by state) of a stored state blob, read as plain JSON: every
    list of lots the blob holds (open and closed ones, however the engine splits them)."""
    state = msgspec.json.decode(blob)
    total, balances = 0, Counter()
    for key in ("lots", "closed"):
        for lot in state.get(key) or []:
            total += lot["amount"]
            balances[lot["state"]] += lot["amount"]
    return total, balances


@pytest.fixture(scope="module", autouse=True)
def _figures():
    started = time.perf_counter()
    yield
    STATS["seed"] = SEED
    write_stats("faults", STATS, time.perf_counter() - started)


def loyalty() -> str:
    exe = shutil.which("loyalty") or str(Path(sys.executable).with_name("loyalty"))
    assert Path(exe).exists(), "the `loyalty` command is not installed"
    return exe


@pytest.fixture(scope="module")
def big_events(tmp_path_factory) -> Path:
    """examples/andest/events.jsonl replicated: each copy's ids, members and orders get a suffix, so
    every copy is its own set of members, each in time order."""
    path = tmp_path_factory.mktemp("big") / "events.jsonl"
    source = [json.loads(line) for line in EXAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    n = 0
    with open(path, "w", encoding="utf-8") as out:
        for k in range(REPLICAS):
            first = True
            for event in source:
                event = dict(event, id=f"{event['id']}-r{k}", member=f"{event['member']}-r{k}")
                if "order" in event:
                    event["order"] = f"{event['order']}-r{k}"
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
                n += 1
                if event["type"] == "member.registered" and first:
                    # one refused event a copy: a redemption over the member's 500 points
                    first = False
                    out.write(json.dumps(over_the_balance(event)) + "\n")
                    n += 1
                    STATS["kill"]["refused_events_in_file"] += 1
    STATS["kill"]["events_in_file"] = n
    return path


def over_the_balance(registration: dict) -> dict:
    return {"id": f"over-{registration['id']}", "type": "order.placed", "at": registration["at"],
            "member": registration["member"], "order": f"over-{registration['id']}", "course": "one_off",
            "payment": {"method": "cash_on_delivery"}, "redeem": {"points": 800},
            "lines": [{"sku": "A", "qty": 1, "unit_price": 10000, "tax_rate": 0.10}]}


_STARTED: list[subprocess.Popen] = []     # `loyalty run` processes of the running test


@pytest.fixture(autouse=True)
def _no_process_left_running():
    """A test that fails (or times out) midway must not leave its `loyalty run` processes running:
    they would keep loading the machine (and their ledgers) for the tests after it."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def run_command(events: Path, db: Path) -> subprocess.Popen:
    proc = subprocess.Popen([loyalty(), "run", PROGRAM, str(events), "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _STARTED.append(proc)
    return proc


def dump(db: Path) -> dict:
    """The whole ledger, per member: state blob, ledger rows in order, effects; every event's status."""
    con = sqlite3.connect(db)
    try:
        out: dict = defaultdict(lambda: {"state": None, "ledger": [], "effects": []})
        for member, state in sqlite_states(con).items():
            out[member]["state"] = msgspec.json.decode(state)
        for row in con.execute("SELECT member, at, source, action, lot, amount, from_state, to_state, rule, version "
                               "FROM ledger ORDER BY seq"):
            out[row[0]]["ledger"].append(row[1:])
        for row in con.execute("SELECT member, type, at, detail, rule FROM effects ORDER BY seq"):
            out[row[0]]["effects"].append(row[1:])
        events = {row[0]: row[1:] for row in con.execute("SELECT id, member, type, at, status, reason FROM events")}
        return {"members": dict(out), "events": events}
    finally:
        con.close()


def last_write(db: Path) -> tuple:
    """When the ledger (database file or its write-ahead log) last changed."""
    marks = []
    for path in (db, db.with_name(db.name + "-wal")):
        try:
            st = path.stat()
            marks.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            marks.append(None)
    return tuple(marks)


def wait_for_write(db: Path, mark: tuple, proc: subprocess.Popen, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while last_write(db) == mark and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def applied_count(db: Path) -> int:
    con = sqlite3.connect(db, timeout=60)
    try:
        return con.execute("SELECT COUNT(*) FROM events WHERE status='applied'").fetchone()[0]
    finally:
        con.close()


LEDGER_TABLES = {"events", "members", "member_rows", "ledger", "effects"}   # engine/store/sqlite.py's _DDL (and meta)


def check_intact(db: Path) -> int:
    """After a kill: the file is a sound SQLite database, each member's state blob agrees with its
    ledger rows (what was granted, and the balance of every state), and every member whose state
    says registered has its member.registered event applied (a guest's state does not). Returns the
    number of applied events.

    A kill in the first milliseconds of a run on a new file (after SQLite created the file, before
    the store's one transaction of CREATE TABLE statements committed) leaves a sound database
    with none of the ledger's tables, never some (engine/store/sqlite.py). Nothing can have been
    recorded yet: that is checked, and 0 applied events returned (a kill that loses committed
    events is still caught by the caller's count)."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not LEDGER_TABLES <= tables:
            assert not tables & LEDGER_TABLES, f"a half-made ledger: {sorted(tables & LEDGER_TABLES)} without " \
                                               f"{sorted(LEDGER_TABLES - tables)}"
            STATS["kill"]["killed_while_the_ledger_was_created"] += 1
            return 0
        moved: dict = defaultdict(Counter)
        for member, from_state, to_state, amount in con.execute(
                "SELECT member, from_state, to_state, SUM(amount) FROM ledger GROUP BY member, from_state, to_state"):
            moved[member][to_state] += amount
            if from_state is None:
                moved[member]["granted"] += amount
            else:
                moved[member][from_state] -= amount
        registered = {m for (m,) in con.execute(
            "SELECT member FROM events WHERE type='member.registered' AND status='applied'")}
        for member, blob in sqlite_states(con).items():
            assert not msgspec.json.decode(blob).get("registered") or member in registered, \
                f"{member}: the state says registered, but no member.registered event of it is applied"
            total, balances = blob_balances(blob)
            assert total == moved[member]["granted"], \
                f"{member}: the state's lots hold {total}, the ledger granted {moved[member]['granted']}"
            for name in set(balances) | {k for k in moved[member] if k != "granted"}:
                assert moved[member][name] == balances[name], \
                    f"{member}: {name} is {balances[name]} in the state, {moved[member][name]} in the ledger"
        return con.execute("SELECT COUNT(*) FROM events WHERE status='applied'").fetchone()[0]
    finally:
        con.close()


def test_sigkill_at_random_moments_then_rerun_gives_the_uninterrupted_ledger(big_events, tmp_path):
    rng = random.Random(SEED)
    stats = STATS["kill"]
    base_db = tmp_path / "uninterrupted.db"
    started = time.perf_counter()
    base = run_command(big_events, base_db)          # the uninterrupted run, alongside the killed ones
    expected = None
    kills = 0
    round_no = 0
    while kills < KILLS:
        round_no += 1
        db = tmp_path / f"killed-{round_no}.db"
        applied_before = 0
        in_round = 0
        while kills < KILLS and in_round < KILLS_PER_ROUND:
            mark = last_write(db)
            proc = run_command(big_events, db)
            if rng.random() < 0.1:
                # now and then while it starts up or skips what is already applied
                time.sleep(rng.uniform(0, 1.0))
                stats["kills_aimed_at_start_up"] += 1
            else:
                # otherwise once it writes (the ledger file changes), a random moment into the batches
                wait_for_write(db, mark, proc)
                time.sleep(rng.uniform(0, 1.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                in_round += 1
                stats["kills"] += 1
            else:
                stats["finished_before_the_kill"] += 1
                assert proc.returncode in (0, 1), proc.stderr.read().decode()
                break
            proc.stderr.close()
            if not db.exists():
                stats["killed_before_the_ledger_existed"] += 1
                continue
            applied = check_intact(db)
            assert applied >= applied_before, "a kill lost events that an earlier run had committed"
            stats["kills_that_lost_an_uncommitted_batch_or_less"] += 1
            STATS["kill_committed_events_at_each_kill"].setdefault("list", []).append(applied)
            applied_before = applied
        # rerun to the end, then compare with the uninterrupted run
        proc = subprocess.run([loyalty(), "run", PROGRAM, str(big_events), "--db", str(db)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        # exit 1: the file's refused events are listed (each with its reason)
        assert proc.returncode == 1 and b"internal error" not in proc.stderr, proc.stderr.decode()[-2000:]
        assert b"Traceback" not in proc.stderr
        if expected is None:
            assert base.wait(timeout=600) == 1, base.stderr.read().decode()[-2000:]
            base.stderr.close()
            stats["uninterrupted_run_seconds"] = round(time.perf_counter() - started, 1)
            expected = dump(base_db)
        got = dump(db)
        statuses = {k: v[:4] for k, v in got["events"].items()}      # (member, type, at, status)
        assert statuses == {k: v[:4] for k, v in expected["events"].items()}, "event statuses differ from the uninterrupted run"
        stats["refused_events_whose_reason_changed_on_rerun"] += sum(
            1 for k, v in got["events"].items() if v[3] == "rejected" and v[4] != expected["events"][k][4])
        assert set(got["members"]) == set(expected["members"])
        for member, want in expected["members"].items():
            assert got["members"][member] == want, f"member {member} differs from the uninterrupted run"
        stats["rounds_compared_equal"] += 1
        check_intact(db)
        db.unlink()
    stats["seconds"] = round(time.perf_counter() - started, 1)


def test_a_rerun_after_a_crash_keeps_the_reasons_of_refused_events(tmp_path):
    """A crash makes the operator run the whole file again. Events refused the first time are
    looked at again; the ledger must record the same refusal (same reason) as an uninterrupted run,
    not a new one (here "arrives out of order", because the member's clock has moved on)."""

    registration = {"id": "reg", "type": "member.registered", "at": "2025-03-01T10:00:00+09:00", "member": "m1"}
    later = {"id": "g1", "type": "points.granted", "at": "2025-03-09T10:00:00+09:00", "member": "m1", "amount": 5,
             "reason": "x"}
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in (registration, over_the_balance(registration), later)) + "\n")
    db = tmp_path / "l.db"
    for _ in range(2):     # the run, then the rerun after the crash
        proc = subprocess.run([loyalty(), "run", PROGRAM, str(events), "--db", str(db)], capture_output=True, timeout=120)
        assert proc.returncode == 1 and b"internal error" not in proc.stderr
        if _ == 0:
            first = dump(db)
    again = dump(db)
    assert again["members"] == first["members"]
    assert again["events"] == first["events"], (f"refusal recorded first: {first['events']['over-reg'][4]!r}; "
                                                f"after the rerun: {again['events']['over-reg'][4]!r}")


# --- two checkouts at once on one SQLite ledger ---------------------------------------------------

REGISTER = {"id": "reg", "type": "member.registered", "at": "2025-03-01T10:00:00+09:00", "member": "m1"}  # +500 (AND-4)


def cart(i: int, points: int = 400) -> dict:
    """A checkout redeeming 400 of the member's 500 points: there is enough for one of two."""
    return {"id": f"c{i}", "type": "order.placed", "at": "2025-03-05T10:00:00+09:00", "member": "m1",
            "order": f"o{i}", "course": "one_off", "payment": {"method": "cash_on_delivery"},
            "redeem": {"points": points}, "lines": [{"sku": "A", "qty": 1, "unit_price": 10000, "tax_rate": 0.10}]}


def fresh_ledger(db: Path) -> None:
    from engine import Engine

    engine = Engine(PROGRAM, str(db))
    assert engine.apply(REGISTER).applied == ["reg"]
    engine.store.close()


WAIT = 120   # seconds a checkout process waits for the other one (at the barrier, for its payment)


def _checkout(db: str, i: int, start, paid, quote_first: bool, out) -> None:
    """One checkout process embedding the engine (README: Engine(program, "ledger.db"))."""
    try:
        from engine import Engine

        engine = Engine(PROGRAM, db)
        if quote_first:
            engine.quote(cart(i))        # the checkout page shows the points it may use
        # generous waits: on a loaded machine the other process may take seconds to start
        start.wait(timeout=WAIT)
        if quote_first and i == 2:
            paid.wait(timeout=WAIT)      # the second customer pays after the first one has paid
        try:
            result = engine.apply(cart(i))
            out.put((i, "applied" if result.applied else "rejected", [r["reason"] for r in result.rejected]))
        except Exception as exc:       # what a checkout would see
            out.put((i, "error", [f"{type(exc).__name__}: {exc}"]))
        if i == 1:
            paid.set()
        engine.store.close()
    except BaseException as exc:       # never leave the parent waiting
        out.put((i, "error", [f"{type(exc).__name__}: {exc}"]))
        raise


def spent_and_state(db: Path) -> tuple[int, dict, dict]:
    con = sqlite3.connect(db)
    try:
        spent = con.execute("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE member='m1' AND action='spend'").fetchone()[0]
        _, state_balances = blob_balances(sqlite_states(con)["m1"])
        rebuilt: Counter = Counter()
        for from_state, to_state, amount in con.execute("SELECT from_state, to_state, amount FROM ledger WHERE member='m1'"):
            rebuilt[to_state] += amount
            if from_state:
                rebuilt[from_state] -= amount
        statuses = dict(con.execute("SELECT id, status FROM events"))
        return spent, dict(+state_balances) | {"ledger": dict(+rebuilt)}, statuses
    finally:
        con.close()


def two_checkouts(tmp_path: Path, quote_first: bool, n: int) -> list:
    ctx = multiprocessing.get_context("fork")
    db = tmp_path / f"checkouts-{n}.db"
    fresh_ledger(db)
    start, paid, out = ctx.Barrier(2), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_checkout, args=(str(db), i, start, paid, quote_first, out)) for i in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=2 * WAIT)         # longer than the ledger's busy timeout (60 s) and the waits above
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join()
    assert not hung, f"{len(hung)} checkout process(es) still running after {2 * WAIT} s"
    results = sorted(out.get(timeout=5) for _ in procs)
    spent, balances, statuses = spent_and_state(db)
    return [results, spent, balances, statuses]


def judge(outcome: list, stats: Counter) -> None:
    results, spent, balances, statuses = outcome
    kinds = sorted(kind for _, kind, _ in results)
    overdrawn = spent > 500
    stats["rounds"] += 1
    stats["overdrawn" if overdrawn else ("one_applied_one_refused" if kinds == ["applied", "rejected"]
                                         else "+".join(kinds))] += 1
    detail = f"outcome {results}; spent {spent} of 500; state {balances}; events {statuses}"
    assert not overdrawn, f"OVERDRAWN: two checkouts spent {spent} points of a 500 balance. {detail}"
    assert balances["ledger"] == {k: v for k, v in balances.items() if k != "ledger"}, f"state and ledger disagree: {detail}"
    assert kinds == ["applied", "rejected"], f"expected one redemption applied and one refused: {detail}"
    refusal = next(reasons for _, kind, reasons in results if kind == "rejected")[0]
    assert "redeem.points" in refusal and "100" in refusal, f"the refusal should name the field and the 100 left: {refusal}"


def test_two_checkouts_redeeming_one_balance_at_once_never_overdraw(tmp_path):
    """Two processes, each with its own Engine on the same SQLite file, apply an order redeeming 400
    of the member's 500 points at the same moment (a barrier releases them together)."""
    stats = STATS["checkouts_at_once"]
    for n in range(CHECKOUT_ROUNDS):
        judge(two_checkouts(tmp_path, quote_first=False, n=n), stats)


def test_checkout_that_quoted_before_another_paid_is_refused(tmp_path):
    """The checkout flow: both customers see the quote (500 usable), the first pays, then the second
    pays. The second must be refused: its Engine has to read the balance the first one left."""
    judge(two_checkouts(tmp_path, quote_first=True, n=0), STATS["quote_then_pay"])


def test_two_loyalty_run_processes_redeeming_at_once_never_overdraw(tmp_path):
    """The same with the command: two `loyalty run` processes started together on one ledger, each
    with one order redeeming 400 of 500 points."""
    stats = STATS["loyalty_run_at_once"]
    for n in range(max(2, CHECKOUT_ROUNDS // 2)):
        db = tmp_path / f"run-{n}.db"
        fresh_ledger(db)
        files = []
        for i in (1, 2):
            path = tmp_path / f"order-{n}-{i}.jsonl"
            path.write_text(json.dumps(cart(i)) + "\n", encoding="utf-8")
            files.append(path)
        procs = [subprocess.Popen([loyalty(), "run", PROGRAM, str(f), "--db", str(db), "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
        _STARTED.extend(procs)
        results = []
        for i, proc in enumerate(procs, 1):
            out, err = proc.communicate(timeout=120)
            assert b"Traceback" not in out + err
            report = json.loads(out) if out.strip() else {}
            reasons = [r["reason"] for r in report.get("rejected", [])] or ([err.decode().strip()] if err.strip() else [])
            kind = "applied" if proc.returncode == 0 and report.get("applied") == 1 else (
                "rejected" if proc.returncode == 1 and report.get("rejected") else f"exit {proc.returncode}")
            results.append((i, kind, reasons))
        spent, balances, statuses = spent_and_state(db)
        judge([results, spent, balances, statuses], stats)


def test_a_checkout_waits_for_a_long_replay_then_applies(big_events, tmp_path):
    """While `loyalty run` replays the large file on the same ledger (it holds SQLite's write lock
    one batch of 1,000 events at a time), a checkout's redemption waits for the batch in flight and
    then applies against the balance the replay left; the replay is then killed and the ledger is
    still sound."""
    from engine import Engine

    db = tmp_path / "shared.db"
    fresh_ledger(db)
    replay = run_command(big_events, db)
    deadline = time.monotonic() + 120
    while applied_count(db) < 2001 and replay.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)                        # two batches committed: the replay is well under way
    started = time.perf_counter()
    engine = Engine(PROGRAM, str(db))
    result = engine.apply(cart(1))
    waited = time.perf_counter() - started
    engine.store.close()
    still_running = replay.poll() is None
    replay.send_signal(signal.SIGKILL)
    replay.wait()
    replay.stderr.close()
    STATS["checkout_during_replay"]["waited_ms"] = int(waited * 1000)
    STATS["checkout_during_replay"]["replay_still_running"] = int(still_running)
    assert result.applied == ["c1"], result.rejected
    check_intact(db)
    spent, _, _ = spent_and_state(db)
    assert spent == 400
