"""The measurements. Each returns plain data (dicts of numbers) for the report and --json."""
from __future__ import annotations

import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import msgspec

from engine.shell.api import Engine
from engine.model.errors import ProgramError
from engine.model.events import decode_event
from engine.format.loader import load_program
from engine.run.report import Views, as_of
from engine.run.runner import RunResult, Runner
from engine.store import MemoryStore, SQLiteStore

from . import handwritten, workloads
from .history import long_history
from .zen_peer import ZenAndest, missing as zen_missing

ROOT = Path(__file__).resolve().parent.parent
_ns = time.perf_counter_ns


def pct(samples_ns: list[int], q: float) -> float:
    """The q-th percentile (0..100) in µs, nearest rank."""
    s = sorted(samples_ns)
    k = min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))
    return s[k] / 1000


def latency(samples_ns: list[int]) -> dict:
    total = sum(samples_ns)
    return {"samples": len(samples_ns), "p50_us": pct(samples_ns, 50), "p99_us": pct(samples_ns, 99),
            "per_s": len(samples_ns) / (total / 1e9) if total else 0.0}


def programs() -> list[Path]:
    """Every program file in programs/ (a *.tests.yaml beside one holds its examples, not a program)."""
    return sorted(p for p in (ROOT / "programs").glob("*.yaml") if not p.name.endswith(".tests.yaml"))


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "engine", "programs"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit = f"{commit}{' + uncommitted changes in engine/ or programs/' if dirty else ''}" if commit else "?"
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    try:
        import zen  # noqa: F401
        from importlib.metadata import version
        zen_version = version("zen-engine")
    except Exception:
        zen_version = None
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "msgspec": msgspec.__version__, "zen_engine": zen_version, "commit": commit,
            "load_avg_start": os.getloadavg()[0]}


# --- (2) replay throughput ------------------------------------------------------------------------

def replay(program, lines: list[bytes], store_kind: str) -> tuple[dict, object]:
    tmp = None
    schema = None
    if store_kind == "memory":
        store = MemoryStore(program.id)
    elif store_kind == "postgresql":
        # a fresh schema on the server named by LOYALTY_PG_URL (the same one CI starts), dropped after
        import psycopg

        from engine.store.postgres import PostgresStore

        schema = f"bench_{program.id}_{os.getpid()}"
        with psycopg.connect(os.environ["LOYALTY_PG_URL"], autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in os.environ["LOYALTY_PG_URL"] else "?"
        store = PostgresStore(f"{os.environ['LOYALTY_PG_URL']}{sep}options=-csearch_path%3D{schema}", program.id)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
        store = SQLiteStore(str(tmp / "ledger.db"), program.id)
    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    result = Runner(program, store).run(lines)
    if store_kind != "memory":
        store.close()
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if schema is not None:
        import psycopg

        with psycopg.connect(os.environ["LOYALTY_PG_URL"], autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return ({"events": len(lines), "seconds": seconds, "eps": len(lines) / seconds, "cpu_s": cpu,
             "eps_cpu": len(lines) / cpu if cpu else 0.0, "rejected": len(result.rejected),
             "first_rejections": result.rejected[:3]}, store)


def event_costs(program, lines: list[bytes]) -> dict:
    """Where a replay's time goes: each event applied on its own (`Runner.apply_one`, the memory
    store, decoding included) and timed, grouped by event type."""
    runner = Runner(program, MemoryStore(program.id))
    result = RunResult()
    by_type: dict[str, list[int]] = {}
    gc.collect()
    for raw in lines:
        kind = msgspec.json.decode(raw)["type"]
        t = _ns()
        runner.apply_one(raw, result)
        by_type.setdefault(kind, []).append(_ns() - t)
    total = sum(sum(v) for v in by_type.values())
    rows = [{"type": kind, "events": len(v), "mean_us": sum(v) / len(v) / 1000, "p50_us": pct(v, 50),
             "share": sum(v) / total if total else 0.0} for kind, v in by_type.items()]
    rows.sort(key=lambda row: -row["share"])
    return {"events": len(lines), "mean_us": total / len(lines) / 1000 if lines else 0.0,
            "rejected": len(result.rejected), "rows": rows}


# --- (1) quote latency --------------------------------------------------------------------------

def members_of(store: MemoryStore) -> list[str]:
    return sorted(m for m, s in store.states.items() if s.registered)


def quotes(program, store: MemoryStore, n_carts: int, reps: int) -> dict:
    engine = Engine(program, store)
    carts = workloads.quote_carts(program.id, members_of(store), n_carts)
    # members with a happening overdue at the quote time (an expiry since their last event): an
    # Engine copies and advances them on their first quote and reuses that view (report.Views), so
    # each round drops the Engine's views: every round pays what a member's first quote costs (the
    # rate-row choices the Engine remembers stay, as in a running service)
    overdue = sum(1 for m in {c["member"] for c in carts}
                  if as_of(program, store.states[m], workloads.QUOTE_AT)[0] is not store.states[m])
    errors = sum(1 for c in carts if engine.quote(c)["errors"])   # warm-up, and a count of refused carts
    samples = []
    for _ in range(reps):
        engine.views = Views(program)
        for cart in carts:
            t = _ns()
            engine.quote(cart)
            samples.append(_ns() - t)
    return {**latency(samples), "carts": n_carts, "carts_with_errors": errors,
            "members": len({c["member"] for c in carts}), "members_overdue": overdue}


# --- (3) engine vs hand-written vs zen-engine ---------------------------------------------------

def compare(program, store: MemoryStore, n_carts: int, reps: int) -> dict:
    """Quote the same &est carts three ways, check the figures agree, and time the three
    interleaved cart by cart (so a busy machine slows them alike)."""
    engine = Engine(program, store)
    carts = workloads.andest_carts(members_of(store), n_carts)
    at = workloads.QUOTE_AT
    hand_members = {c["member"]: handwritten.member_view(program, store.states[c["member"]], at) for c in carts}
    why_no_zen = zen_missing()
    zen = ZenAndest() if why_no_zen is None else None
    zen_members = {m: zen.member(h) for m, h in hand_members.items()} if zen else {}

    agree = 0
    mismatches = []
    for cart in carts:
        ours = handwritten.engine_summary(engine.quote(cart))
        hand = handwritten.summary(handwritten.quote(hand_members[cart["member"]], cart, at))
        peer = handwritten.summary(zen.quote(zen_members[cart["member"]], cart, at)) if zen else hand
        if ours == hand == peer:
            agree += 1
        elif len(mismatches) < 3:
            mismatches.append({"cart": cart["id"], "engine": ours, "hand": hand, "zen": peer if zen else None})

    s_engine, s_hand, s_zen = [], [], []
    hand_quote = handwritten.quote
    for _ in range(reps):
        engine = Engine(program, store)   # no views kept from the round before (see quotes)
        for cart in carts:
            hm = hand_members[cart["member"]]
            t0 = _ns()
            engine.quote(cart)
            t1 = _ns()
            hand_quote(hm, cart, at)
            t2 = _ns()
            if zen:
                zen.quote(zen_members[cart["member"]], cart, at)
                t3 = _ns()
                s_zen.append(t3 - t2)
            s_engine.append(t1 - t0)
            s_hand.append(t2 - t1)
    out = {"carts": n_carts, "agree": agree, "mismatches": mismatches, "engine": latency(s_engine),
           "hand": latency(s_hand)}
    out["ratio_hand"] = out["engine"]["p50_us"] / out["hand"]["p50_us"]
    if zen:
        out["zen"] = latency(s_zen)
        out["ratio_zen"] = out["engine"]["p50_us"] / out["zen"]["p50_us"]
    else:
        out["zen"] = None
        out["zen_skipped"] = why_no_zen
    return out


# --- (4) how cost grows ---------------------------------------------------------------------------

def scale_events(program_id: str, n_events: int, store_kind: str) -> dict:
    """Write the workload here (streamed), replay it in a child process (its peak memory is the
    replay's alone)."""
    from .scale import write_workload

    tmp = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
    try:
        path = tmp / "events.jsonl"
        write_workload(program_id, n_events, path)
        cmd = [sys.executable, "-m", "bench.scale", "--program", program_id, "--events", str(n_events),
               "--store", store_kind, "--file", str(path)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def scale_lots(program, n_lots: int, reps: int) -> dict:
    """Quote and apply latency for one member whose state holds ``n_lots`` lots."""
    at = workloads.QUOTE_AT
    state = long_history(program, n_lots, at)
    store = MemoryStore(program.id)
    store.states[state.member] = state
    engine = Engine(program, store)
    cart = workloads.andest_carts([state.member], 1)[0]
    first = engine.quote(cart)
    samples = []
    for _ in range(reps):
        engine.views = Views(program)   # no view kept from the quote before (see quotes)
        t = _ns()
        engine.quote(cart)
        samples.append(_ns() - t)
    apply_samples = []
    runner = Runner(program, store)
    for i in range(reps):
        event = decode_event(msgspec.json.encode(dict(cart, id=f"x{i}", order=f"x{i}", redeem={"points": 0},
                                                      at=(at + timedelta(seconds=i + 1)).isoformat())))
        result = RunResult()
        # each round applies to the N-lot state as the rounds before left it (an event changes
        # the state it is given in place): N lots and up to ``reps`` orders more
        runner.cache[state.member] = state
        t = _ns()
        runner.apply_event(event, result)
        apply_samples.append(_ns() - t)
        if result.rejected:
            raise RuntimeError(f"long-history apply rejected: {result.rejected[0]}")
    return {"lots": n_lots, "orders": len(state.orders), "valid_balance": first["redeem"]["max"],
            "quote": latency(samples), "apply": latency(apply_samples),
            "stored_apply": stored_apply(program, n_lots, reps, cart)}


def stored_apply(program, n_lots: int, reps: int, cart: dict) -> dict:
    """The same applies into a SQLite ledger, each committed on its own (as the HTTP service commits
    a lone checkout): what writing the member costs as its history grows (engine/store/rows.py)."""
    at = workloads.QUOTE_AT
    tmp = Path(tempfile.mkdtemp(prefix="loyalty-lots-"))
    try:
        store = SQLiteStore(str(tmp / "ledger.db"), program.id, program.tz)
        state = long_history(program, n_lots, at)
        store.book(state, [], [], None)   # the member as the ledger holds it: written once, whole
        store.commit()
        runner = Runner(program, store)
        samples = []
        for i in range(-1, reps):   # the first (i = -1) reads the member from the ledger: not counted
            event = decode_event(msgspec.json.encode(dict(cart, id=f"y{i}", order=f"y{i}", redeem={"points": 0},
                                                          at=(at + timedelta(seconds=i + 1)).isoformat())))
            result = RunResult()
            t = _ns()
            runner.apply_event(event, result)
            runner.commit()
            if i >= 0:
                samples.append(_ns() - t)
            if result.rejected:
                raise RuntimeError(f"long-history stored apply rejected: {result.rejected[0]}")
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return latency(samples)


# --- (6) parallel replay by member shard ----------------------------------------------------------

def parallel_replay(n_events: int, reps: int = 1) -> dict:
    """&est replayed with jobs=1 and jobs=2 into memory, SQLite and (LOYALTY_PG_URL) PostgreSQL."""
    from .parallel import run

    return run(n_events, jobs=2, reps=reps, log=lambda m: print(m, file=sys.stderr, flush=True))


# --- (5) validate -------------------------------------------------------------------------------

def validate(reps: int) -> dict:
    exe = shutil.which("loyalty")
    cmd = [exe, "validate", "programs"] if exe else [sys.executable, "-c", "from engine.shell.cli import main; main()",
                                                      "validate", "programs"]
    walls = []
    code = None
    output = ""
    for _ in range(reps):
        t = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - t)
        code, output = done.returncode, (done.stdout + done.stderr).strip()[-500:]
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import engine.shell.cli"], cwd=ROOT, capture_output=True, check=False)
    startup = time.perf_counter() - t
    per_file = {}
    for path in programs():
        try:
            load_program(path)   # warm: the schema validator is built once a process
        except ProgramError:
            continue             # the CLI's exit status and output above say why
        runs = []
        for _ in range(reps):
            t = time.perf_counter()
            load_program(path)
            runs.append(time.perf_counter() - t)
        per_file[path.name] = statistics.median(runs) * 1000
    return {"command": "loyalty validate programs", "exit": code, "output": output, "wall_s": statistics.median(walls),
            "startup_s": startup, "load_ms": per_file}


# --- (7) the HTTP service under load -------------------------------------------------------------

def http_load(seconds: float, clients: int) -> dict:
    """`loyalty serve` on loopback (bench/service_load.py): SQLite with one worker, and PostgreSQL with
    two workers on a fresh database when LOYALTY_PG_URL is set; quote-only, mixed and events-only."""
    from urllib.parse import urlsplit, urlunsplit

    from . import service_load

    program = str(ROOT / "programs" / "andest.yaml")
    modes = ("quote", "mixed", "events")
    out = {"seconds": seconds, "clients": clients, "runs": []}
    with tempfile.TemporaryDirectory(prefix="loyalty-http-") as tmp:
        out["runs"].append(service_load.measure(program, str(Path(tmp) / "bench.db"), 1, modes, clients, seconds,
                                                log_dir=Path(tmp)))
    url = os.environ.get("LOYALTY_PG_URL")
    if url:
        import psycopg

        name = f"loyalty_bench_http_{os.getpid()}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        try:
            with tempfile.TemporaryDirectory(prefix="loyalty-http-") as tmp:
                db = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
                out["runs"].append(service_load.measure(program, db, 2, modes, clients, seconds, log_dir=Path(tmp)))
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    out["load_avg_end"] = os.getloadavg()[0]
    return out
