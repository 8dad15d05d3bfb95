"""Parallel replay by member shard (engine/run/parallel.py): jobs=1 against jobs=N, side by side.

    python -m bench.parallel [--events 20000] [--jobs 2] [--reps 3] [--json]

The &est workload (bench/workloads.py) replayed into a fresh store, into memory, SQLite and (with
LOYALTY_PG_URL, e.g. ``source .ci/pg.sh``) PostgreSQL:

* jobs=1 is today's ``Runner(program, store).run(lines)`` in this process;
* jobs=N is ``replay_parallel(program_path, lines, N, store)``: the lines partitioned by member,
  N worker processes (the lines inherited by fork, or for comparison sent by pipe), the results
  merged in line order; for SQLite the workers compute and this process writes the ledger;
* dask 1 and dask N (with Dask distributed installed) is ``replay_cluster`` (engine/run/cluster.py)
  on a local Dask cluster of 1 and N worker processes, the cluster's start timed apart: which of
  the pool and Dask serves ``loyalty run --jobs`` is decided by these figures (``verdict``).

The timing covers everything from the lines in memory to the last commit (partition, fork, replay,
merge). CPU seconds add this process and its workers (RUSAGE_CHILDREN; a PostgreSQL server's own
CPU is not counted). Each configuration runs ``reps`` times, interleaved with the others so a
busy machine slows them alike; the median run is reported.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "programs" / "andest.yaml"


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _Target:
    """A fresh, empty store of one kind for each run (and its clean-up)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.tmp = None
        self.schema = None

    def __enter__(self) -> str:
        if self.kind == "memory":
            return ":memory:"
        if self.kind == "sqlite":
            self.tmp = tempfile.mkdtemp(prefix="loyalty-bench-")
            return str(Path(self.tmp) / "ledger.db")
        import psycopg

        from engine.store.postgres import PostgresStore

        url = os.environ["LOYALTY_PG_URL"]
        self.schema = f"bench_par_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {self.schema}")
        spec = f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={self.schema}')}"
        PostgresStore(spec, "andest").close()   # the schema's tables, made before the clock starts
        return spec

    def __exit__(self, *exc) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self.schema is not None:
            import psycopg

            with psycopg.connect(os.environ["LOYALTY_PG_URL"], autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {self.schema} CASCADE")


def _cpu_self() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def once_dask(lines: list[bytes], kind: str, workers: int) -> dict:
    """One replay of ``lines`` into a fresh store of ``kind`` on a local Dask cluster of ``workers``
    processes (engine/run/cluster.py, what ``loyalty run --cluster`` does against a running
    scheduler). The cluster's start is timed apart (``start_s``); ``seconds`` is the replay on the
    running cluster. CPU-s add this process (the client and the scheduler, which runs in it) and
    the worker processes over the replay (each worker's own getrusage, asked before and after)."""
    from engine.format.loader import load_program
    from engine.run.cluster import cluster_client, replay_cluster
    from engine.store import open_store

    with _Target(kind) as spec:
        program = load_program(PROGRAM)
        gc.collect()
        started = time.perf_counter()
        with cluster_client(workers=workers) as client:
            start_s = time.perf_counter() - started
            workers_cpu = sum(client.run(_cpu_self).values())
            cpu, start = _cpu_self(), time.perf_counter()
            store = open_store(spec, program.id)
            result = replay_cluster(str(PROGRAM), lines, store, spec, client=client)
            store.close()
            seconds = time.perf_counter() - start
            cpu = _cpu_self() - cpu + sum(client.run(_cpu_self).values()) - workers_cpu
    return {"store": kind, "jobs": workers, "transport": "dask", "events": len(lines), "seconds": seconds,
            "eps": len(lines) / seconds, "cpu_s": cpu, "eps_cpu": len(lines) / cpu if cpu else 0.0,
            "start_s": start_s, "eps_with_start": len(lines) / (seconds + start_s),
            "applied": len(result.applied), "rejected": len(result.rejected), "first_rejections": result.rejected[:3]}


def once(lines: list[bytes], kind: str, jobs: int, transport: str | None = None) -> dict:
    """One replay of ``lines`` into a fresh store of ``kind``: jobs=1 sequential, else parallel
    (``transport`` "dask": on a local Dask cluster of ``jobs`` workers, ``once_dask``)."""
    if transport == "dask":
        return once_dask(lines, kind, jobs)
    from engine.format.loader import load_program
    from engine.run.parallel import replay_parallel
    from engine.run.runner import Runner
    from engine.store import open_store

    with _Target(kind) as spec:
        program = load_program(PROGRAM)
        gc.collect()
        cpu, start = _cpu(), time.perf_counter()
        if jobs == 1:
            store = open_store(spec, program.id, program.tz)
            result = Runner(program, store).run(lines)
            store.close()
        else:
            result = replay_parallel(str(PROGRAM), lines, jobs, spec, transport=transport)
        seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    return {"store": kind, "jobs": jobs, "transport": transport if jobs > 1 else None, "events": len(lines),
            "seconds": seconds, "eps": len(lines) / seconds, "cpu_s": cpu, "eps_cpu": len(lines) / cpu if cpu else 0.0,
            "applied": len(result.applied), "rejected": len(result.rejected),
            "first_rejections": result.rejected[:3]}


def dask_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def configurations(jobs: int, pg: bool, dask: bool = False) -> list[tuple[str, int, str | None]]:
    """Each store: jobs=1 (sequential), the pool with ``jobs`` workers, and (``dask``) a local Dask
    cluster of 1 and of ``jobs`` workers, side by side (issue 24: which one serves ``--jobs``)."""
    out = [("memory", 1, None), ("memory", jobs, "fork"), ("memory", jobs, "pipe"),
           ("sqlite", 1, None), ("sqlite", jobs, "fork")]
    if dask:
        out += [("sqlite", 1, "dask"), ("sqlite", jobs, "dask")]
    if pg:
        out += [("postgresql", 1, None), ("postgresql", jobs, "fork")]
        if dask:
            out += [("postgresql", 1, "dask"), ("postgresql", jobs, "dask")]
    return out


def run(n_events: int, jobs: int = 2, reps: int = 1, log=None, dask: bool | None = None) -> dict:
    """Every configuration, ``reps`` rounds interleaved; the median round of each. ``dask``: also
    on a local Dask cluster (default: when Dask distributed is installed)."""
    from . import workloads

    pg = bool(os.environ.get("LOYALTY_PG_URL"))
    dask = dask_available() if dask is None else dask
    lines = workloads.encoded("andest", n_events)
    pg_lines = lines   # a replay commits chunks under row locks: the whole workload
    configs = configurations(jobs, pg, dask)
    runs: dict[tuple, list[dict]] = {c: [] for c in configs}
    load_start = os.getloadavg()[0]
    for rep in range(reps):
        for kind, j, transport in configs:
            if log is not None:
                log(f"[bench] parallel replay: {kind}, jobs={j}{f' ({transport})' if transport else ''}, "
                    f"round {rep + 1} of {reps}")
            runs[(kind, j, transport)].append(once(pg_lines if kind == "postgresql" else lines, kind, j, transport))
    rows = []
    for config in configs:
        done = sorted(runs[config], key=lambda r: r["seconds"])
        row = dict(done[len(done) // 2])
        row["runs_s"] = [r["seconds"] for r in runs[config]]
        rows.append(row)
    for row in rows:
        base = next(r for r in rows if r["store"] == row["store"] and r["jobs"] == 1 and r["transport"] is None)
        row["speedup"] = row["eps"] / base["eps"]
        row["cpu_ratio"] = row["cpu_s"] / base["cpu_s"] if base["cpu_s"] else 0.0
    return {"program": "andest", "events": n_events, "jobs": jobs, "reps": reps, "cores": os.cpu_count(),
            "members": len({json.loads(line)["member"] for line in lines}),
            "postgresql": pg, "dask": dask, "load_avg": [load_start, os.getloadavg()[0]], "rows": rows,
            "verdict": verdict(rows, jobs)}


def verdict(rows: list[dict], jobs: int) -> list[dict]:
    """Per store: the pool with ``jobs`` workers against a local Dask cluster of as many, by
    events/s. ``--jobs`` is decided on Dask's figure with its cluster's start included: served by
    a local cluster, each ``loyalty run --jobs`` would start one (a running cluster is ``--cluster``)."""
    out = []
    for kind in ("sqlite", "postgresql"):
        pool = next((r for r in rows if r["store"] == kind and r["jobs"] == jobs and r["transport"] == "fork"), None)
        dask = next((r for r in rows if r["store"] == kind and r["jobs"] == jobs and r["transport"] == "dask"), None)
        if pool is None or dask is None:
            continue
        out.append({"store": kind, "pool_eps": pool["eps"], "dask_eps": dask["eps"],
                    "dask_eps_with_start": dask["eps_with_start"], "pool_eps_cpu": pool["eps_cpu"],
                    "dask_eps_cpu": dask["eps_cpu"], "faster": "pool" if pool["eps"] >= dask["eps_with_start"] else "dask",
                    "faster_running": "pool" if pool["eps"] >= dask["eps"] else "dask"})
    return out


def main() -> None:
    sys.path.insert(0, str(ROOT))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = run(args.events, args.jobs, args.reps, log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(out, indent=2))
        return
    from .report import parallel_table

    print("\n".join(parallel_table(out)))


if __name__ == "__main__":
    main()
