"""Before / after: the replay, quote and history sections measured on another commit's engine and on
this tree's, in the same run, interleaved (``python -m bench --baseline REF``; issue 19 asks for
``ef00229`` against now).

    python -m bench.baseline ef00229 [--events 20000] [--reps 3] [--json]

REF is checked out in a temporary ``git worktree`` (removed afterwards). Each measurement runs in a
fresh child process whose ``engine`` is imported from the tree being measured (``PYTHONPATH``, and
checked), so the two engines never share a process; both replay the same events, this tree's
``bench/workloads.py`` (stdlib only, so the baseline's engine reads them too), and each tree's own
program file ``programs/andest.yaml``. History (a member with N lots) uses each tree's own
``bench/history.py``, which builds a state its engine knows. Rounds alternate baseline / now, so a
busy machine slows both alike; the median of each is reported, with now ÷ baseline.

The child imports what it needs by the names of either layout (``engine.format.loader`` or, before
issue 19's folders, ``engine.loader``; and so on).
"""
from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_ns = time.perf_counter_ns


# --- in the child: the tree's own engine ---------------------------------------------------------

def _find(*names: str):
    """The first of ``names`` ("module.attr") that imports: the same thing in either layout."""
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {names} in this engine")


def _load(name: str, path: Path):
    """A module from a file (registered, so that its dataclasses find it)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] / 1000


def _tree_only() -> None:
    """Import ``engine`` from the tree on PYTHONPATH only: an editable install of another tree adds
    a finder that would fill in the modules this tree lacks (a mixed engine)."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in (getattr(f, "__module__", "") or "").lower()
                        and "editable" not in (getattr(f, "__name__", "") or type(f).__name__).lower()]


def _fresh_views(eng: Any, program: Any) -> None:
    """A round quotes each member as for the first time (no view of it kept from the round before),
    with what the Engine keeps for the program warm, as in a running service: before issue 19 the
    rate-row choices lived in the Program (kept by every Engine), since then in the Engine."""
    eng.views = type(eng.views)(program)


def history_samples(reps: int) -> int:
    """First quotes (no view kept) and single applies timed for each history size: enough for a
    steady median of calls that each take tens of microseconds."""
    return max(15, reps * 10)


def measure(tree: Path, n_events: int, n_carts: int, lots: list[int], reps: int) -> dict:
    """In the child: replay into memory and SQLite, quotes, and history, with ``tree``'s engine."""
    _tree_only()
    import engine

    if not Path(engine.__file__).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"engine imported from {engine.__file__}, not from {tree}")
    workloads = _load("bench_workloads_now", ROOT / "bench" / "workloads.py")
    load_program = _find("engine.format.loader.load_program", "engine.loader.load_program")
    Runner = _find("engine.run.runner.Runner", "engine.runner.Runner")
    RunResult = _find("engine.run.runner.RunResult", "engine.runner.RunResult")
    Engine = _find("engine.shell.api.Engine", "engine.api.Engine")
    decode_event = _find("engine.model.events.decode_event", "engine.events.decode_event")
    from engine.store import MemoryStore, SQLiteStore

    import msgspec

    program = load_program(tree / "programs" / "andest.yaml")
    lines = workloads.encoded("andest", n_events)
    out: dict = {"engine": str(tree), "replay": {}}
    store = None
    for kind in ("memory", "sqlite"):
        tmp = Path(tempfile.mkdtemp(prefix="loyalty-baseline-"))
        target = MemoryStore(program.id) if kind == "memory" else SQLiteStore(str(tmp / "ledger.db"), program.id)
        gc.collect()
        cpu, start = time.process_time(), time.perf_counter()
        result = Runner(program, target).run(lines)
        if kind != "memory":
            target.close()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        shutil.rmtree(tmp, ignore_errors=True)
        out["replay"][kind] = {"eps": n_events / seconds, "eps_cpu": n_events / cpu if cpu else 0.0,
                               "rejected": len(result.rejected)}
        if kind == "memory":
            store = target
    members = sorted(m for m, s in store.states.items() if s.registered)
    carts = workloads.quote_carts(program.id, members, n_carts)
    Engine(program, store).quote(carts[0])
    samples = []
    eng = Engine(program, store)
    for _ in range(reps):
        _fresh_views(eng, program)
        for cart in carts:
            t = _ns()
            eng.quote(cart)
            samples.append(_ns() - t)
    out["quote"] = {"p50_us": _pct(samples, 50), "p99_us": _pct(samples, 99), "carts": len(carts)}
    history = _load("bench_history_tree", tree / "bench" / "history.py")
    out["history"] = []
    at = workloads.QUOTE_AT
    for n in lots:
        state = history.long_history(program, n, at)
        mem = MemoryStore(program.id)
        mem.states[state.member] = state
        cart = workloads.andest_carts([state.member], 1)[0]
        quote_samples, apply_samples = [], []
        rounds = history_samples(reps)
        eng = Engine(program, mem)
        for _ in range(rounds):
            _fresh_views(eng, program)
            t = _ns()
            eng.quote(cart)
            quote_samples.append(_ns() - t)
        runner = Runner(program, mem)
        for i in range(rounds):
            event = decode_event(msgspec.json.encode(dict(cart, id=f"x{i}", order=f"x{i}", redeem={"points": 0},
                                                          at=(at + timedelta(seconds=i + 1)).isoformat())))
            runner.cache[state.member] = state
            t = _ns()
            runner.apply_event(event, RunResult())
            apply_samples.append(_ns() - t)
        out["history"].append({"lots": n, "quote_p50_us": _pct(quote_samples, 50),
                               "apply_p50_us": _pct(apply_samples, 50)})
    return out


# --- in the parent -------------------------------------------------------------------------------

def _child(tree: Path, n_events: int, n_carts: int, lots: list[int], reps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", str(tree), "--events", str(n_events),
           "--carts", str(n_carts), "--lots", ",".join(map(str, lots)), "--reps", str(reps)]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {tree}: exit {done.returncode}: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _commit(tree: Path, ref: str = "HEAD") -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", ref], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() or "?"


def _median(runs: list[dict], path: tuple) -> float:
    values = []
    for run in runs:
        value = run
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def compare(ref: str, n_events: int = 20_000, n_carts: int = 400, lots: tuple[int, ...] = (10, 1_000, 10_000),
            reps: int = 3, rounds: int = 1, log=None) -> dict:
    """REF's engine against this tree's: ``rounds`` alternating child runs of each; medians and ratios."""
    base_commit = _commit(ROOT, ref)
    if base_commit == "?":
        raise RuntimeError(f"--baseline {ref}: no such commit in {ROOT}")
    tmp = Path(tempfile.mkdtemp(prefix="loyalty-baseline-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp), ref], check=True,
                   capture_output=True)
    try:
        before, after = [], []
        for k in range(rounds):
            if log is not None:
                log(f"[bench] baseline {base_commit} against now: round {k + 1} of {rounds}")
            before.append(_child(tmp, n_events, n_carts, list(lots), reps))
            after.append(_child(ROOT, n_events, n_carts, list(lots), reps))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp)], check=False,
                       capture_output=True)
        shutil.rmtree(tmp.parent, ignore_errors=True)
    rows = []

    def row(label: str, path: tuple, higher_is_better: bool) -> None:
        b, a = _median(before, path), _median(after, path)
        rows.append({"measure": label, "before": b, "after": a, "ratio": a / b if b else None,
                     "better": (a >= b) if higher_is_better else (a <= b)})

    row("replay into memory, events/s", ("replay", "memory", "eps"), True)
    row("replay into memory, events/CPU-s", ("replay", "memory", "eps_cpu"), True)
    row("replay into SQLite, events/s", ("replay", "sqlite", "eps"), True)
    row("replay into SQLite, events/CPU-s", ("replay", "sqlite", "eps_cpu"), True)
    row("quote p50 µs", ("quote", "p50_us"), False)
    row("quote p99 µs", ("quote", "p99_us"), False)
    for i, n in enumerate(lots):
        row(f"history: quote p50 µs, a member with {n:,} lots", ("history", i, "quote_p50_us"), False)
        row(f"history: apply p50 µs, a member with {n:,} lots", ("history", i, "apply_p50_us"), False)
    rejected = {"before": [r["replay"][k]["rejected"] for r in before for k in ("memory", "sqlite")],
                "after": [r["replay"][k]["rejected"] for r in after for k in ("memory", "sqlite")]}
    return {"ref": ref, "before_commit": base_commit, "after_commit": _commit(ROOT), "events": n_events,
            "carts": n_carts, "lots": list(lots), "reps": reps, "history_samples": history_samples(reps), "rounds": rounds, "rows": rows,
            "rejected": rejected}


def table(b: dict) -> list[str]:
    """The before / after table (BENCHMARKS.md's baseline section)."""
    head = ["measure", f"before ({b['before_commit']})", f"after ({b['after_commit']})", "after ÷ before"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in b["rows"]:
        fmt = (lambda x: f"{x:,.0f}") if "events" in r["measure"] else (lambda x: f"{x:,.1f}")
        out.append(f"| {r['measure']} | {fmt(r['before'])} | {fmt(r['after'])} | "
                   f"{r['ratio']:.2f}× {'(better)' if r['better'] else '(worse)'} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref", nargs="?", help="the commit to compare with (e.g. ef00229)")
    ap.add_argument("--measure", metavar="TREE", help=argparse.SUPPRESS)   # the child's job
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--carts", type=int, default=400)
    ap.add_argument("--lots", default="10,1000,10000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    lots = [int(x) for x in args.lots.split(",") if x]
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.events, args.carts, lots, args.reps)))
        return
    if not args.ref:
        ap.error("give REF, the commit to compare with")
    out = compare(args.ref, args.events, args.carts, tuple(lots), args.reps, args.rounds,
                  log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(out, indent=2) if args.json else "\n".join(table(out)))


if __name__ == "__main__":
    main()
