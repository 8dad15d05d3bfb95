"""cProfile of the engine's two hot paths on the bench workloads.

    python -m bench.profile replay [--program andest] [--events 10000] [--store memory|sqlite] [--top 30]
    python -m bench.profile quote  [--program andest] [--events 10000] [--carts 2000] [--top 30]
    python -m bench.profile quote --lots 10000        # one member with a long history
    ... [--out FILE.prof]                             # keep the raw profile (snakeviz, pstats)

Prints the top functions by own time and by cumulative time.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
from pathlib import Path

from engine.shell.api import Engine
from engine.format.loader import load_program
from engine.run.runner import Runner
from engine.store import MemoryStore, SQLiteStore

from . import workloads
from .history import long_history
from .suite import ROOT, members_of


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("replay", "quote"))
    ap.add_argument("--program", default="andest")
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    ap.add_argument("--carts", type=int, default=2000)
    ap.add_argument("--lots", type=int, default=0, help="quote for one member with this many lots")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out")
    args = ap.parse_args()
    program = load_program(ROOT / "programs" / f"{args.program}.yaml")
    prof = cProfile.Profile()
    tmp = Path(tempfile.mkdtemp(prefix="loyalty-profile-"))
    try:
        if args.what == "replay":
            lines = workloads.encoded(program.id, args.events)
            store = MemoryStore(program.id) if args.store == "memory" else SQLiteStore(str(tmp / "l.db"), program.id)
            prof.enable()
            Runner(program, store).run(lines)
            store.close()
            prof.disable()
        else:
            store = MemoryStore(program.id)
            if args.lots:
                state = long_history(program, args.lots, workloads.QUOTE_AT)
                store.states[state.member] = state
            else:
                Runner(program, store).run(workloads.encoded(program.id, args.events))
            engine = Engine(program, store)
            carts = workloads.quote_carts(program.id, members_of(store), args.carts)
            prof.enable()
            for cart in carts:
                engine.quote(cart)
            prof.disable()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        prof.dump_stats(args.out)
    stats = pstats.Stats(prof)
    stats.strip_dirs().sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
