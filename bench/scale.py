"""One replay at scale, in a process of its own so its peak memory is its own.

    python -m bench.scale --program andest --events 100000 --store memory|sqlite

With ``--file`` it replays a JSON Lines file the parent wrote (so this process's memory is the
replay's alone); without, it writes the workload itself first (streamed, a cohort at a time). It
times ``Runner(program, store).run(file)`` exactly as ``loyalty run`` reads a file, and prints one
JSON object: events, seconds, events/s, rejected, RSS before the replay and peak RSS (MiB,
VmHWM).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    """This process image's peak RSS. VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child
    started by a big parent would report the parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


def write_workload(program_id: str, n_events: int, path: Path) -> None:
    from .workloads import stream

    with open(path, "wb") as f:
        for event in stream(program_id, n_events):
            f.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")


def replay_file(program_path: str, events_path: Path, n_events: int, store_kind: str, db_dir: Path) -> dict:
    """Replay a JSON Lines file into a fresh store; RSS is read before and after (peak)."""
    from engine.format.loader import load_program
    from engine.run.runner import Runner
    from engine.store import MemoryStore, SQLiteStore

    program = load_program(program_path)
    store = MemoryStore(program.id) if store_kind == "memory" else SQLiteStore(str(db_dir / "ledger.db"), program.id)
    gc.collect()
    before = rss_mib()
    with open(events_path, "rb") as f:
        cpu = time.process_time()
        start = time.perf_counter()
        result = Runner(program, store).run(f)
        store.close()
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return {"program": program.id, "events": n_events, "store": store_kind, "seconds": seconds,
            "eps": n_events / seconds, "cpu_s": cpu, "eps_cpu": n_events / cpu if cpu else 0.0,
            "applied": len(result.applied), "rejected": len(result.rejected),
            "rss_before_mib": before, "peak_mib": peak_mib()}


def run(program_path: str, n_events: int, store_kind: str) -> dict:
    """Write the workload, then replay it (both in this process: for tests and quick looks)."""
    from engine.format.loader import load_program

    tmp = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
    try:
        write_workload(load_program(program_path).id, n_events, tmp / "events.jsonl")
        return replay_file(program_path, tmp / "events.jsonl", n_events, store_kind, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--program", default="andest")
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    ap.add_argument("--file", help="replay this JSON Lines file (written by the parent) instead of generating one")
    args = ap.parse_args()
    path = args.program if args.program.endswith(".yaml") else str(ROOT / "programs" / f"{args.program}.yaml")
    if args.file:
        tmp = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
        try:
            out = replay_file(path, Path(args.file), args.events, args.store, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        out = run(path, args.events, args.store)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
