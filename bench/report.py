"""BENCHMARKS.md (and the same Markdown on standard output) from the results of one run."""
from __future__ import annotations

TARGETS = {"memory_eps": 50_000, "sqlite_eps": 20_000, "ratio_hand": 3.0, "ratio_zen": 1.0}


def _n(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def _us(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def targets(r: dict) -> list[dict]:
    """Issue 8's targets against this run's figures."""
    out = []
    main = next((p for p in r["programs"] if p["program"] == "andest"), None)
    if main:
        for kind, label, goal in (("memory", "memory", "memory_eps"), ("sqlite", "SQLite", "sqlite_eps")):
            f = main[kind]
            out.append({"target": f"replay into {label} ≥ {_n(TARGETS[goal])} events/s (&est)",
                        "measured": f"{_n(f['eps'])}/s ({_n(f['eps_cpu'])}/CPU-s)",
                        "met": f["eps_cpu"] >= TARGETS[goal]})
    c = r.get("compare")
    if c:
        out.append({"target": "quote p50 within 3× the hand-written floor", "measured": f"{c['ratio_hand']:.1f}×",
                    "met": c["ratio_hand"] <= TARGETS["ratio_hand"]})
        if c.get("zen"):
            out.append({"target": "quote p50 faster than zen-engine", "measured": f"{c['ratio_zen']:.2f}×",
                        "met": c["ratio_zen"] < TARGETS["ratio_zen"]})
        else:
            out.append({"target": "quote p50 faster than zen-engine", "measured": "not measured (zen-engine missing)",
                        "met": None})
    lots = r.get("lots") or []
    if len(lots) >= 2:
        ratio = lots[-1]["quote"]["p50_us"] / lots[0]["quote"]["p50_us"]
        out.append({"target": f"quote time independent of history ({_n(lots[-1]['lots'])} lots ÷ "
                              f"{_n(lots[0]['lots'])} lots, p50)", "measured": f"{ratio:,.1f}×", "met": ratio <= 1.5})
    mem = [s for s in r.get("scale") or [] if s["store"] == "memory"]
    if len(mem) >= 2:
        ratio = mem[-1]["eps_cpu"] / mem[0]["eps_cpu"]
        out.append({"target": f"cost linear in events (events/CPU-s at {_n(mem[-1]['events'])} ÷ at "
                              f"{_n(mem[0]['events'])})", "measured": f"{ratio:.2f}", "met": ratio >= 0.8})
    h = r.get("http")
    if h:
        out += http_targets(h)
    p = r.get("parallel")
    for v in (p or {}).get("verdict", []):
        store = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[v["store"]]
        out.append({"target": f"issue 24: `--jobs {p['jobs']}` served by the faster of the pool and a local Dask "
                              f"cluster ({store})",
                    "measured": f"pool {_n(v['pool_eps'])}/s, Dask {_n(v['dask_eps_with_start'])}/s with the start "
                                f"a `--jobs` run pays ({_n(v['dask_eps'])}/s on a running cluster): `--jobs` keeps the "
                                + ("pool" if v["faster"] == "pool" else "pool, though Dask was faster here: see section 6"),
                    "met": v["faster"] == "pool"})
    return out


def http_targets(h: dict) -> list[dict]:
    """Issue 23's HTTP targets against this run's load (section 7), met or not."""
    out = []
    for store, workers, mode, label, ok in HTTP_TARGETS:
        run = next((x for x in h["runs"] if x["store"] == store and x["workers"] == workers), None)
        m = next((x for x in run["modes"] if x["mode"] == mode), None) if run else None
        if m is None:
            out.append({"target": f"issue 23: {label}", "measured": "not measured", "met": None})
            continue
        measured = (f"{_n(m['requests_per_s'])} req/s ({_n(m['quotes_per_s'])} quotes/s, {_n(m['events_per_s'])} "
                    f"events/s), p99 {m['p99_ms']} ms, {m['server_errors']} 5xx")
        out.append({"target": f"issue 23: {label}", "measured": measured,
                    "met": bool(ok(m)) and not m["server_errors"]})
    if h["runs"]:
        negative = sum(run["negative_balances"] for run in h["runs"])
        fives = sum(m["server_errors"] for run in h["runs"] for m in run["modes"])
        out.append({"target": "issue 23: no overdraw, no 5xx under load", "measured":
                    f"{negative} negative balances, {fives} 5xx", "met": negative == 0 and fives == 0})
    return out


def parallel_table(p: dict) -> list[str]:
    """Section 6: replay of one workload with jobs=1 and jobs=N (the pool), and on a local Dask
    cluster of 1 and N workers, side by side (bench/parallel.py)."""
    # fork and pipe: the pool of --jobs (how its lines reach the workers); Dask: a local cluster
    how = {None: "sequential", "fork": "fork", "pipe": "pipe", "dask": "Dask"}
    rows = [[{"memory": "memory", "sqlite": "SQLite", "postgresql": "PostgreSQL"}[x["store"]], x["jobs"],
             how[x["transport"]], _n(x["events"]), f"{x['seconds']:.2f}", _n(x["eps"]), _n(x["eps_cpu"]),
             f"{x['start_s']:.1f}" if "start_s" in x else "–",
             _n(x["eps_with_start"]) if "eps_with_start" in x else "–",
             f"{x['speedup']:.2f}×", f"{x['cpu_ratio']:.2f}×", x["rejected"]]
            for x in p["rows"]]
    lines = ["Replayed by: `sequential` is `Runner.run` in one process; `fork` and `pipe` are the pool of "
             "`--jobs` (how the lines reach its workers); `Dask` is a local Dask cluster of that many workers.", ""]
    lines += _table(["store", "workers", "replayed by", "events", "seconds", "events/s", "events/CPU-s",
                     "cluster start s", "events/s with the start", "speed-up (events/s vs sequential)",
                     "CPU-s vs sequential", "rejected"], rows)
    for v in p.get("verdict", []):
        store = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[v["store"]]
        lines += ["", f"{store}, {p['jobs']} workers: the pool {_n(v['pool_eps'])} events/s "
                  f"({_n(v['pool_eps_cpu'])}/CPU-s), Dask {_n(v['dask_eps'])} events/s on a running cluster "
                  f"({_n(v['dask_eps_cpu'])}/CPU-s), {_n(v['dask_eps_with_start'])} events/s with the cluster's "
                  f"start: for `--jobs` (a local cluster started each run) the "
                  f"{'pool' if v['faster'] == 'pool' else 'Dask cluster'} is faster on this machine; on a cluster "
                  f"already running, the {'pool' if v['faster_running'] == 'pool' else 'Dask cluster'}."]
    return lines


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# Benchmarks", "",
             f"Written by `{r['command']}` on {r['date']} ({r['seconds']:.0f} s). Do not edit by hand: run the "
             "command again. `python -m bench --quick` (CI) runs the same code at small sizes and does not "
             "write this file; `--json` prints the figures as JSON.", "",
             "## Machine", ""]
    lines += _table(["cores", "CPU", "Python", "msgspec", "zen-engine", "engine commit", "load average (1 min) start → end"],
                    [[m["cores"], m["cpu"] or "?", f"{m['implementation']} {m['python']}", m["msgspec"],
                      m["zen_engine"] or "not installed", m["commit"],
                      f"{m['load_avg_start']:.1f} → {m.get('load_avg_end', 0):.1f}"]])
    lines += ["", "Latencies are wall-clock per call (`time.perf_counter_ns`), single thread, garbage collector on. "
              "A load average above the core count means other processes shared the CPU during the run: "
              "absolute figures then read high, ratios measured interleaved (section 3) hold better.", ""]

    if r.get("errors"):
        lines += ["## Errors in this run", ""] + [f"- {e}" for e in r["errors"]] + [""]
    lines += ["## Targets (issue 8)", "", "With issue 23's HTTP targets and issue 24's `--jobs` question below issue 8's. "
              "Replay throughput targets are judged on events per CPU-second "
              "(see section 1–2), so that a busy machine does not decide them; the HTTP targets (issue 23, section 7) "
              "on wall-clock requests/s and p99 with the load generator on the same 2 cores, as the issue sets "
              "them; `--jobs` (issue 24, section 6) on events/s of one run.", ""]
    lines += _table(["target", "measured", "met"],
                    [[t["target"], t["measured"], {True: "yes", False: "**no**", None: "–"}[t["met"]]]
                     for t in targets(r)])

    lines += ["", "## 1–2. Quote latency and replay throughput, per program", "",
              f"Each program's synthetic workload (`bench/workloads.py`) replayed into a fresh store: "
              f"`Runner(program, store).run(lines)` over encoded JSON lines, final commit included. Then "
              f"{r['sizes']['quote_carts']} carts × {r['sizes']['quote_reps']} rounds quoted with "
              f"`Engine.quote(cart_dict)` against the replayed members at {r['quote_at']} "
              "(redeem \"max\" where the program redeems).", ""]
    rows = []
    for p in r["programs"]:
        q = p["quote"]
        rows.append([p["program"], _n(p["memory"]["events"]), p["members"], _n(p["memory"]["eps"]),
                     _n(p["memory"]["eps_cpu"]), _n(p["sqlite"]["eps"]), _n(p["sqlite"]["eps_cpu"]),
                     p["memory"]["rejected"] + p["sqlite"]["rejected"], _us(q["p50_us"]), _us(q["p99_us"]),
                     _n(q["per_s"])])
    lines += _table(["program", "events", "members", "memory events/s", "memory events/CPU-s", "SQLite events/s",
                     "SQLite events/CPU-s", "rejected", "quote p50 µs", "quote p99 µs", "quotes/s"], rows)
    lines += ["", "events/s is wall clock; events/CPU-s divides by the process's CPU time over the same replay "
              "(what the engine costs when it does not have to share the cores)."]
    overdue = [f"{p['program']} {p['quote']['members_overdue']} of {p['quote']['members']}" for p in r["programs"]
               if "members_overdue" in p["quote"]]
    if overdue:
        lines += ["", "Quoted members with a happening overdue at the quote time (an expiry since their last "
                  "event): " + ", ".join(overdue) + ". An `Engine` copies and advances such a member on its first "
                  "quote and reuses that view until the member's next happening or event (`report.Views`), as for "
                  "a checkout quoting a cart again and again; each timed round here (and in section 3) takes a "
                  "fresh `Engine`, so every round pays what a member's first quote costs."]
    pg_rows = [[p["program"], _n(p["postgresql"]["events"]), _n(p["memory"]["eps"]), _n(p["sqlite"]["eps"]),
                _n(p["postgresql"]["eps"]), _n(p["postgresql"]["eps_cpu"]), p["postgresql"]["rejected"]]
               for p in r["programs"] if p.get("postgresql")]
    if pg_rows:
        lines += ["", "Replay into PostgreSQL in the same run (server from `LOYALTY_PG_URL`, e.g. `source .ci/pg.sh`; "
                  "`Runner.run` commits a chunk of events a transaction, its members' rows locked together in member "
                  "order, durable commits; a checkout's `Engine.apply` stays one event a transaction):", ""]
        lines += _table(["program", "events", "memory events/s", "SQLite events/s", "PostgreSQL events/s",
                         "PostgreSQL events/CPU-s (client)", "rejected"], pg_rows)
    else:
        lines += ["", "PostgreSQL: not measured in this run (set `LOYALTY_PG_URL`, e.g. `source .ci/pg.sh`)."]
    rejected = [(p["program"], kind, p[kind]) for p in r["programs"] for kind in ("memory", "sqlite")
                if p[kind]["rejected"]]
    if rejected:
        lines += ["", "Generated events the engine rejected (the generator only writes events the rules accept, so "
                  "each is an engine or generator bug to look at):", ""]
        for program, kind, f in rejected:
            reasons = "; ".join(f"`{x['event']}`: {x['reason']}" for x in f["first_rejections"])
            lines.append(f"- {program} ({kind}): {f['rejected']} rejected, first: {reasons}")
    skipped = r.get("skipped_programs") or []
    if skipped:
        lines += ["", "Not present, skipped: " + ", ".join(skipped) + "."]

    ec = r.get("event_costs")
    if ec:
        lines += ["", "Where &est's replay time goes: the same workload applied event by event into memory "
                  "(`Runner.apply_one`, decoding included), each event timed on its own "
                  f"(mean {ec['mean_us']:.0f} µs an event, {ec['rejected']} rejected):", ""]
        lines += _table(["event type", "events", "mean µs", "p50 µs", "share of the time"],
                        [[row["type"], _n(row["events"]), _us(row["mean_us"]), _us(row["p50_us"]),
                          f"{row['share'] * 100:.0f}%"] for row in ec["rows"]])

    c = r.get("compare")
    if c:
        lines += ["", "## 3. &est quote: engine vs hand-written floor vs zen-engine", "",
                  f"{c['carts']} carts (no coupon, redeem \"max\") × {r['sizes']['compare_reps']} rounds, the three "
                  "timed one after the other on each cart. Hand-written: `bench/handwritten.py` (member price, "
                  "12-month tier, earn, redeem limit; a running balance, nothing else). zen-engine: the same "
                  "rules as a decision graph, `bench/andest.jdm.json`, called through `bench/zen_peer.py`. "
                  f"**{c['agree']} of {c['carts']} carts** give the same grand total, tier, earn and redeem limit "
                  f"in {'all three' if c.get('zen') else 'the engine and the hand-written floor'}.", ""]
        rows = [["engine (`Engine.quote`)", _us(c["engine"]["p50_us"]), _us(c["engine"]["p99_us"]),
                 _n(c["engine"]["per_s"]), "1"],
                ["hand-written Python", _us(c["hand"]["p50_us"]), _us(c["hand"]["p99_us"]), _n(c["hand"]["per_s"]),
                 f"{c['ratio_hand']:.1f}"]]
        if c.get("zen"):
            rows.append(["zen-engine decision graph", _us(c["zen"]["p50_us"]), _us(c["zen"]["p99_us"]),
                         _n(c["zen"]["per_s"]), f"{c['ratio_zen']:.2f}"])
        lines += _table(["implementation", "p50 µs", "p99 µs", "quotes/s", "ours ÷ it (p50)"], rows)
        if not c.get("zen"):
            lines += ["", f"zen-engine skipped: {c.get('zen_skipped')}."]

    lines += ["", "## 4. How cost grows", "", "### Replay of N events (&est)", "",
              "The workload is streamed to a JSON Lines file, then a process of its own replays it: "
              "`Runner.run` reads the file as `loyalty run` does. Members grow with the events (~37 events "
              "a member over 18 months), so a linear engine keeps events/s flat. Peak RSS is that process's "
              "VmHWM; growth is the peak less its RSS just before the replay (interpreter, engine and "
              "program loaded): the store, the runner's member cache and the result lists.", ""]
    rows = [[_n(s["events"]), s["store"], f"{s['seconds']:.1f}", _n(s["eps"]), _n(s["eps_cpu"]), _n(s["peak_mib"]),
             _n(s["peak_mib"] - s["rss_before_mib"]), s["rejected"]] for s in r.get("scale") or []]
    lines += _table(["events", "store", "seconds", "events/s", "events/CPU-s", "peak RSS MiB", "growth MiB",
                     "rejected"], rows)
    lines += ["", "### Quote and apply for one member with N lots (&est)", "",
              "A member with N lots and N/2 delivered orders over 8 years (`bench/history.py`), the newest fifth "
              "of the lots valid. Quote: one cart, `Engine.quote`. Apply: an `order.placed` for the same member "
              "through `Runner.apply_event` (the replay's per-event path) on the memory store; stored apply: the "
              "same into a SQLite ledger holding the member, each event committed on its own (as the service "
              "commits a lone checkout; the first, which reads the member from the ledger, is not counted): the "
              "member's head and the rows the event changed are written (`engine/store/rows.py`), not its history.", ""]
    lots = r.get("lots") or []
    rows = []
    for s in lots:
        rows.append([_n(s["lots"]), _n(s["orders"]), _us(s["quote"]["p50_us"]), _us(s["quote"]["p99_us"]),
                     f"{s['quote']['p50_us'] / lots[0]['quote']['p50_us']:,.1f}×", _us(s["apply"]["p50_us"]),
                     f"{s['apply']['p50_us'] / lots[0]['apply']['p50_us']:,.1f}×"]
                    + ([_us(s["stored_apply"]["p50_us"]),
                        f"{s['stored_apply']['p50_us'] / lots[0]['stored_apply']['p50_us']:,.1f}×"]
                       if s.get("stored_apply") and lots[0].get("stored_apply") else ["–", "–"]))
    lines += _table(["lots", "orders", "quote p50 µs", "quote p99 µs", "quote vs fewest", "apply p50 µs",
                     "apply vs fewest", "stored apply p50 µs (SQLite, a commit each)", "stored vs fewest"], rows)

    v = r.get("validate")
    if v:
        lines += ["", "## 5. `loyalty validate programs`", ""]
        lines += _table(["command", "exit", "wall s (median)", "of which start-up (`import engine.shell.cli`) s"],
                        [[f"`{v['command']}`", v["exit"], f"{v['wall_s']:.2f}", f"{v['startup_s']:.2f}"]])
        lines += ["", "In-process `load_program` (schema check, semantic checks, compile), warm, per file:", ""]
        lines += _table(["file", "ms"], [[k, f"{ms:.1f}"] for k, ms in v["load_ms"].items()])

    p = r.get("parallel")
    if p:
        lines += ["", "## 6. Parallel replay by member shard", "",
                  f"The &est workload ({_n(p['events'])} events, {p['members']} members) "
                  f"replayed into a fresh store with jobs=1 (`Runner.run`, this process) and jobs={p['jobs']} "
                  "(`engine.run.parallel.replay_parallel`, `loyalty run --jobs`): lines partitioned by member, one "
                  "worker process a shard, results merged in line order; into SQLite the workers compute and the "
                  "parent writes; into memory the states stay in the workers (a measurement only: `loyalty run "
                  "--jobs` refuses `:memory:`). Wall time from the lines in memory to the last commit; CPU-s add "
                  "the parent and its workers (not the PostgreSQL server, which shares the cores). "
                  "Dask: `engine.run.cluster.replay_cluster` on a local cluster (`distributed.LocalCluster`, one "
                  "thread a worker process) of 1 and of N workers, as `loyalty run --cluster` runs on a real one; "
                  "its start is timed apart, its CPU-s add this process (client and scheduler) and each worker's "
                  "own. `loyalty run --jobs N` keeps the home-made pool (engine/run/parallel.py) where it is "
                  "faster than Dask on one machine (the lines below the table); `--cluster` is for more than one. "
                  f"Median of {p['reps']} interleaved round(s); {p['cores']} cores, load average "
                  f"{p['load_avg'][0]:.1f} → {p['load_avg'][1]:.1f} (a load near the core count leaves no core "
                  "for a second worker: the speed-up then reads low).", ""]
        lines += parallel_table(p)
        if not p["postgresql"]:
            lines += ["", "PostgreSQL: not measured in this run (set `LOYALTY_PG_URL`, e.g. `source .ci/pg.sh`)."]

    h = r.get("http")
    if h:
        lines += ["", "## 7. The HTTP service under load (issue 23)", ""] + http_section(r, h)

    b = r.get("baseline")
    if b:
        from .baseline import table as baseline_table

        lines += ["", f"## 8. Before / after: {b['ref']} ({b['before_commit']}) against this engine "
                  f"({b['after_commit']})", "",
                  f"`python -m bench --baseline {b['ref']}` (bench/baseline.py): {b['ref']} checked out in a temporary "
                  "git worktree; each side measured in child processes of its own (its `engine` on `PYTHONPATH`), "
                  f"{b['rounds']} round(s) alternating before / after, medians. Replay: {_n(b['events'])} &est "
                  "events (this tree's generator) into memory and SQLite; quote: "
                  f"{b['carts']} carts × {b['reps']} rounds; history: one member with N lots (each tree's "
                  f"`bench/history.py`), {b['history_samples']} first quotes (no view kept) and single applies a "
                  "round. Rejected events (memory, SQLite per round): before "
                  f"{b['rejected']['before']}, after {b['rejected']['after']}.", ""]
        lines += baseline_table(b)

    lines += ["", "## Workloads", "",
              "`bench/workloads.py`, fixed seed, stdlib only: every member gets its own `random.Random`, so the "
              "first members of a 1M-event workload are the members of the 10k one. Per member: registration "
              "(birthday, attributes where the program uses them), one-off or subscription orders (1–3 lines, "
              "coupons, shipping under ¥5,000) every 2–11 weeks or monthly, cancellations (6%), shipment and "
              "delivery, partial returns (8%, inside the program's window, never of refused tags), reviews "
              "(&est), operator grants, subscription start/pause/resume/cancel (万田, リワードサークル), and "
              "redemptions or reward exchanges only when a lower bound of the balance covers them. Every "
              "generated event must be applied: the `rejected` columns are the check.", "",
              "## Reproduce", "", "```sh", "pip install -e '.[bench]'      # zen-engine for section 3",
              "python -m bench                 # full run: prints this and rewrites BENCHMARKS.md",
              "python -m bench --quick         # CI: small sizes, a few seconds, no file written",
              "python -m bench.profile replay  # cProfile of a replay (or: quote)", "```", ""]
    return "\n".join(lines)


# Issue 23's targets for the HTTP service on this 2-core machine, load generator included.
HTTP_TARGETS = [
    ("SQLite", 1, "quote", "quotes ≥ 3,000/s, p99 ≤ 5 ms (one SQLite worker)",
     lambda m: m["quotes_per_s"] >= 3000 and m["p99_ms"] <= 5),
    ("PostgreSQL", 2, "quote", "quotes ≥ 5,000/s (PostgreSQL, two workers)", lambda m: m["quotes_per_s"] >= 5000),
    ("SQLite", 1, "events", "events ≥ 2,000/s, p99 ≤ 15 ms (SQLite)",
     lambda m: m["events_per_s"] >= 2000 and m["p99_ms"] <= 15),
    ("PostgreSQL", 2, "events", "events ≥ 2,000/s, p99 ≤ 15 ms (PostgreSQL)",
     lambda m: m["events_per_s"] >= 2000 and m["p99_ms"] <= 15),
    ("SQLite", 1, "mixed", "mixed (35% events) ≥ 2,500 requests/s (SQLite)", lambda m: m["requests_per_s"] >= 2500),
    ("PostgreSQL", 2, "mixed", "mixed (35% events) ≥ 2,500 requests/s (PostgreSQL)",
     lambda m: m["requests_per_s"] >= 2500),
]


def http_section(r: dict, h: dict) -> list[str]:
    andest = next((p for p in r["programs"] if p["program"] == "andest"), None)
    q = andest["quote"] if andest else None
    generators = {run.get("generator", "processes") for run in h["runs"]}
    if generators == {"wrk"}:
        load = ("Debian's `wrk` (1 thread, 8 connections, a Lua script of `bench/service_load.py`: `POST /quote` "
                "and `POST /events` with an `order.placed`, a redemption of \"max\", 300 or 1,500 points or none)")
    else:
        load = (f"{h['clients']} client **processes** (multiprocessing; `wrk` is not installed here: "
                "`apt-get install wrk` for the figures issue 23 asks), each one keep-alive `http.client` "
                "connection, one request at a time")
    lines = [f"`loyalty serve programs/andest.yaml` on 127.0.0.1, started by `bench/service_load.py` (also runnable "
             "alone: `python bench/service_load.py [--db postgresql://... --workers 2]`). The load generator is "
             f"{load}, on the same 2 cores as the server: "
             f"{h['seconds']:g} s a mode, 20 members shared by all clients (3,000 points each), so redemptions "
             "race and the engine must refuse what the balance no longer covers. Modes: **quote** (every request "
             "a `POST /quote`), **mixed** (65% quotes, 35% events), **events** (events only; with client "
             "processes 80% `order.placed`, 20% `order.shipped`). Events go through group commit (the events of "
             "the requests that arrive while one group is written share its transaction and its commit; "
             "engine/shell/service.py). Latency is the client's, request to answer. "
             "Every access line is written (JSON, to a file), as in production. Afterwards every member is read "
             "back: no balance below zero, lots adding up to the points.", ""]
    rows = []
    if q:
        rows.append(["in-process `Engine.quote` (section 1–2, same run)", "–", "quote", "–", "–", _n(q["per_s"]),
                     "–", f"{q['p50_us'] / 1000:.3f}", f"{q['p99_us'] / 1000:.3f}", "–", "–", "–"])
    for run in h["runs"]:
        for m in run["modes"]:
            refused = sum(m["rejections"].values())
            rows.append([run["store"], run["workers"], m["mode"], _n(m["requests"]), _n(m["requests_per_s"]),
                         _n(m["quotes_per_s"]), _n(m["events_per_s"]), m["p50_ms"], m["p99_ms"],
                         m["event_p99_ms"] if m["event_p99_ms"] is not None else "–", m["server_errors"], refused])
    lines += _table(["store", "workers", "mode", "requests", "requests/s", "quotes/s", "events/s", "p50 ms", "p99 ms",
                     "event p99 ms", "5xx", "events refused (over the balance, late)"], rows)
    neg = ", ".join(f"{run['store']}: {run['negative_balances']}" for run in h["runs"])
    lines += ["", f"Negative balances after the run: {neg}. "
              + ("In-process, the same run: `Engine.quote` on &est "
                 f"p50 {_us(q['p50_us'])} µs, p99 {_us(q['p99_us'])} µs, {_n(q['per_s'])} quotes/s on one core "
                 "(section 1–2): the rest of an HTTP quote's time is HTTP, JSON, the access line and the client."
                 if q else ""), ""]
    if not any(run["store"] == "PostgreSQL" for run in h["runs"]):
        lines += ["PostgreSQL: not measured in this run (set `LOYALTY_PG_URL`).", ""]
    lines += ["### Issue 23's targets", "", "Also in the Targets table at the top.", ""]
    lines += _table(["target", "measured", "met"],
                    [[t["target"].removeprefix("issue 23: "), t["measured"],
                      {True: "yes", False: "**no**", None: "–"}[t["met"]]] for t in http_targets(h)])
    return lines
