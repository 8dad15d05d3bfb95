"""python -m bench [--quick] [--json] [--write | --no-write] [--out PATH] [--baseline REF]

Measures, side by side in one run, for every program in programs/: quote latency per cart,
replay throughput into memory and SQLite; for &est also the hand-written floor and zen-engine, how
cost grows with events and with one member's lots, and replay with jobs=1 against jobs=2
(engine/run/parallel.py); the HTTP service under load (bench/service_load.py: SQLite one worker,
PostgreSQL two workers with LOYALTY_PG_URL); and `loyalty validate programs`. With --baseline REF, also
the replay, quote and history sections on REF's engine and on this one, interleaved, before / after
(bench/baseline.py). Prints the Markdown table (or JSON with --json); a full run rewrites BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from engine.format.loader import load_program

from . import report, suite, workloads

SIZES = {
    "full": {"replay_events": 20_000, "quote_carts": 400, "quote_reps": 5, "compare_carts": 1000, "compare_reps": 5,
             "scale": [(10_000, "memory"), (100_000, "memory"), (1_000_000, "memory"), (10_000, "sqlite"),
                       (100_000, "sqlite")],
             "lots": [(10, 300), (1_000, 100), (100_000, 7)], "validate_reps": 3,
             "parallel_events": 20_000, "parallel_reps": 3, "http_seconds": 8.0, "http_clients": 4,
             "baseline_events": 20_000, "baseline_carts": 400, "baseline_lots": (10, 1_000, 100_000),
             "baseline_reps": 3, "baseline_rounds": 3},
    "quick": {"replay_events": 300, "quote_carts": 50, "quote_reps": 2, "compare_carts": 100, "compare_reps": 2,
              "scale": [(10_000, "memory")], "lots": [(10, 30), (1_000, 10), (10_000, 2)], "validate_reps": 1,
              "parallel_events": 1_000, "parallel_reps": 1, "http_seconds": 1.0, "http_clients": 2,
             "baseline_events": 1_000, "baseline_carts": 30, "baseline_lots": (10, 1_000), "baseline_reps": 1,
             "baseline_rounds": 1},
}
EXPECTED = ("andest", "ansage", "amare", "rewards_circle", "manda")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(quick: bool, baseline: str | None = None) -> dict:
    sizes = SIZES["quick" if quick else "full"]
    started = time.perf_counter()
    out: dict = {"command": "python -m bench" + (" --quick" if quick else ""),
                 "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": suite.machine(),
                 "sizes": sizes, "quote_at": workloads.QUOTE_AT.isoformat(), "programs": [], "errors": []}

    def section(name: str, fn, *args):
        """Run one measurement; a failure (the tree is edited while we run) is recorded, not fatal."""
        try:
            return fn(*args)
        except Exception as exc:   # noqa: BLE001 - reported in the results and the exit status
            out["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            log(f"[bench] ERROR in {name}: {type(exc).__name__}: {exc}")
            return None

    present = set()
    andest = None
    for path in suite.programs():
        program = section(f"load {path.name}", load_program, path)
        if program is None:
            continue
        present.add(program.id)
        lines = workloads.encoded(program.id, sizes["replay_events"])
        log(f"[bench] {program.id}: replay {len(lines):,} events into memory and SQLite, quotes")
        mem = section(f"{program.id} replay memory", suite.replay, program, lines, "memory")
        sql = section(f"{program.id} replay sqlite", suite.replay, program, lines, "sqlite")
        if mem is None or sql is None:
            continue
        pg = None
        if os.environ.get("LOYALTY_PG_URL"):
            # the whole workload: a replay commits chunks of events under their members' row locks
            log(f"[bench] {program.id}: replay {len(lines):,} events into PostgreSQL")
            pg = section(f"{program.id} replay postgresql", suite.replay, program, lines, "postgresql")
        store = mem[1]
        quote = section(f"{program.id} quotes", suite.quotes, program, store, sizes["quote_carts"], sizes["quote_reps"])
        if quote is None:
            continue
        out["programs"].append({"program": program.id, "file": path.name, "members": len(suite.members_of(store)),
                                "memory": mem[0], "sqlite": sql[0], "quote": quote,
                                "postgresql": pg[0] if pg else None})
        if program.id == "andest":
            andest = (program, store)
            log("[bench] andest: replay cost by event type")
            out["event_costs"] = section("event costs", suite.event_costs, program, lines)
    out["skipped_programs"] = [p for p in EXPECTED if p not in present]
    if andest is not None:
        log("[bench] andest: engine vs hand-written vs zen-engine")
        out["compare"] = section("compare", suite.compare, *andest, sizes["compare_carts"], sizes["compare_reps"])
        out["scale"] = []
        for n, store_kind in sizes["scale"]:
            log(f"[bench] andest: replay {n:,} events into {store_kind} (child process)")
            one = section(f"scale {n} {store_kind}", suite.scale_events, "andest", n, store_kind)
            if one is not None:
                out["scale"].append(one)
        out["lots"] = []
        for n, reps in sizes["lots"]:
            log(f"[bench] andest: quote and apply for a member with {n:,} lots")
            one = section(f"lots {n}", suite.scale_lots, andest[0], n, reps)
            if one is not None:
                out["lots"].append(one)
        out["parallel"] = section("parallel", suite.parallel_replay, sizes["parallel_events"], sizes["parallel_reps"])
    log("[bench] the HTTP service under load (loyalty serve, client processes)")
    out["http"] = section("http", suite.http_load, sizes["http_seconds"], sizes["http_clients"])
    if baseline:
        from . import baseline as before_after

        log(f"[bench] before / after: {baseline}'s engine against this one (replay, quote, history)")
        out["baseline"] = section("baseline", before_after.compare, baseline, sizes["baseline_events"],
                                  sizes["baseline_carts"], sizes["baseline_lots"], sizes["baseline_reps"],
                                  sizes["baseline_rounds"], log)
    log("[bench] loyalty validate programs")
    out["validate"] = section("validate", suite.validate, sizes["validate_reps"])
    out["machine"]["load_avg_end"] = os.getloadavg()[0]
    out["seconds"] = time.perf_counter() - started
    out["targets"] = report.targets(out)
    return out


def check(results: dict) -> list[str]:
    """What makes the run itself wrong (not slow): rejected events, disagreeing quotes."""
    problems = list(results["errors"])
    for p in results["programs"]:
        for kind in ("memory", "sqlite"):
            if p[kind]["rejected"]:
                problems.append(f"{p['program']}: {p[kind]['rejected']} generated events rejected ({kind}): "
                                f"{p[kind]['first_rejections']}")
    if (results.get("event_costs") or {}).get("rejected"):
        problems.append(f"event costs: {results['event_costs']['rejected']} generated events rejected")
    for s in results.get("scale") or []:
        if s["rejected"]:
            problems.append(f"scale {s['events']} {s['store']}: {s['rejected']} events rejected")
    for row in (results.get("parallel") or {}).get("rows", []):
        if row["rejected"]:
            problems.append(f"parallel replay {row['store']} jobs={row['jobs']}: {row['rejected']} events rejected: "
                            f"{row['first_rejections']}")
    c = results.get("compare")
    if c and c["agree"] != c["carts"]:
        problems.append(f"engine, hand-written and zen-engine disagree on {c['carts'] - c['agree']} carts: "
                        f"{c['mismatches']}")
    for run in (results.get("http") or {}).get("runs", []):
        for m in run["modes"]:
            if m["server_errors"] or m["errors"]:
                problems.append(f"http {run['store']} {m['mode']}: {m['server_errors']} 5xx, {m['errors']} broken "
                                f"requests: {m['first_errors']}")
        if run["negative_balances"] or run["ledger_errors"]:
            problems.append(f"http {run['store']}: {run['negative_balances']} negative balances, "
                            f"{run['ledger_errors']}")
    v = results.get("validate")
    if v and v["exit"] != 0:
        problems.append(f"loyalty validate programs failed: {v.get('output', '')}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[2])
    ap.add_argument("--quick", action="store_true", help="small sizes, a few seconds (CI); writes no file")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of Markdown")
    ap.add_argument("--write", dest="write", action="store_true", default=None, help="write BENCHMARKS.md (default: full runs only)")
    ap.add_argument("--no-write", dest="write", action="store_false")
    ap.add_argument("--out", default=str(suite.ROOT / "BENCHMARKS.md"))
    ap.add_argument("--baseline", metavar="REF", default=None,
                    help="also measure the replay, quote and history sections on this commit's engine (a temporary "
                         "git worktree), before / after side by side; e.g. ef00229")
    args = ap.parse_args()
    results = run(args.quick, args.baseline)
    text = report.markdown(results)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print(text)
    if args.write if args.write is not None else not args.quick:
        Path(args.out).write_text(text)
        log(f"[bench] wrote {args.out}")
    problems = check(results)
    for p in problems:
        log(f"[bench] ERROR: {p}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
