"""Replay throughput into each store: memory, SQLite, PostgreSQL (events/s).

    python bench/pg_replay.py [--copies 20] [--procs 4] [--per-event] [--db URL (default: $LOYALTY_PG_URL)]

The andest example (485 events, 28 members) is repeated ``--copies`` times under renamed members,
event and order ids, the copies interleaved line by line so members alternate as in a real feed.
Each store starts empty; PostgreSQL gets a fresh schema, dropped afterwards. The timing covers
Runner(program, store).run(lines) only (decode, apply, write, commit). A replay into PostgreSQL
commits a chunk of events a transaction (engine.run.runner.SHARED_BATCH, the chunk's members locked
until it commits); ``--per-event`` also measures one transaction an event (lock, apply, commit:
what a checkout does, and a replay on Citus). PostgreSQL is measured with its default durable
commits, with synchronous_commit=off (docs/SCALING.md), and with ``--procs`` processes replaying
the feed split by member (events of different members are independent).
Start a throwaway server with ``source .ci/pg.sh``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.format.loader import load_program  # noqa: E402
from engine.run.runner import SHARED_BATCH, Runner  # noqa: E402
from engine.store import MemoryStore, SQLiteStore  # noqa: E402


def events(copies: int) -> list[bytes]:
    base = [json.loads(line) for line in (ROOT / "examples/andest/events.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for event in base:
        for k in range(copies):
            e = dict(event)
            e["id"], e["member"] = f"c{k}-{e['id']}", f"c{k}-{e['member']}"
            if "order" in e:
                e["order"] = f"c{k}-{e['order']}"
            out.append(json.dumps(e).encode())
    return out


def timed(program, store, lines, per_event: bool = False) -> float:
    if per_event:
        store.chunks = False  # the replay takes the checkout's path: one transaction an event
    start = time.perf_counter()
    result = Runner(program, store).run(lines)
    elapsed = time.perf_counter() - start
    assert len(result.applied) == len(lines), (len(result.applied), result.rejected[:3])
    store.close()
    return elapsed


def _replay_part(url: str, program_id: str, lines: list[bytes], barrier, out) -> None:
    from engine.store.postgres import PostgresStore

    program = load_program(ROOT / "programs/andest.yaml")
    store = PostgresStore(url, program_id)
    barrier.wait()
    start = time.perf_counter()
    result = Runner(program, store).run(lines)
    store.close()
    out.put((start, time.perf_counter(), len(result.applied)))


def parallel(url: str, program_id: str, lines: list[bytes], procs: int) -> float:
    """Wall time of ``procs`` processes replaying the feed split by member."""
    parts: list[list[bytes]] = [[] for _ in range(procs)]
    for line in lines:
        member = json.loads(line)["member"]
        parts[sum(member.encode()) % procs].append(line)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_replay_part, args=(url, program_id, part, barrier, out)) for part in parts]
    for w in workers:
        w.start()
    results = [out.get() for _ in workers]
    for w in workers:
        w.join()
    assert sum(r[2] for r in results) == len(lines)
    return max(r[1] for r in results) - min(r[0] for r in results)


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--procs", type=int, default=4, help="processes for the split replay into PostgreSQL")
    ap.add_argument("--per-event", action="store_true",
                    help="also measure PostgreSQL with one transaction an event (slow: a few hundred events/s)")
    ap.add_argument("--db", default=os.environ.get("LOYALTY_PG_URL"), help="PostgreSQL URL (default $LOYALTY_PG_URL)")
    args = ap.parse_args()
    program = load_program(ROOT / "programs/andest.yaml")
    lines = events(args.copies)
    rows = []
    rows.append(("memory", timed(program, MemoryStore(program.id), lines)))
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("sqlite", timed(program, SQLiteStore(os.path.join(tmp, "bench.db"), program.id), lines)))
    if args.db:
        import psycopg

        from engine.store.postgres import PostgresStore

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        url = with_schema(args.db, schema)
        async_url = url + quote(" -csynchronous_commit=off")
        runs = [("postgresql, one transaction an event", lambda: timed(program, PostgresStore(url, program.id), lines,
                                                                       per_event=True))] if args.per_event else []
        runs += [
            (f"postgresql (chunks of {SHARED_BATCH})", lambda: timed(program, PostgresStore(url, program.id), lines)),
            ("postgresql, synchronous_commit=off", lambda: timed(program, PostgresStore(async_url, program.id), lines)),
            (f"postgresql, {args.procs} processes", lambda: parallel(url, program.id, lines, args.procs)),
            (f"postgresql, {args.procs} processes, synchronous_commit=off",
             lambda: parallel(async_url, program.id, lines, args.procs)),
        ]
        with psycopg.connect(args.db, autocommit=True) as admin:
            for name, run in runs:
                admin.execute(f"CREATE SCHEMA {schema}")
                try:
                    PostgresStore(url, program.id).close()  # the schema, created before the clock starts
                    rows.append((name, run()))
                finally:
                    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    else:
        print("(no PostgreSQL: pass --db or set LOYALTY_PG_URL)", file=sys.stderr)
    members = len({json.loads(line)["member"] for line in lines})
    print(f"replay of {len(lines)} events (andest x{args.copies}, {members} members), {os.cpu_count()} CPUs")
    for name, secs in rows:
        print(f"  {name:<52} {len(lines) / secs:>7,.0f} events/s  ({secs:.2f} s)")


if __name__ == "__main__":
    main()
