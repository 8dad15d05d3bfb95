"""Load test of `loyalty serve` on loopback: concurrent checkouts on shared members.

    python bench/service_load.py [--clients 4] [--members 20] [--requests 1000000] [--seconds 10]
                                 [--mode quote|mixed|events] [--db postgresql://... --workers 2]

The load generator is CLIENTS separate client *processes* (multiprocessing, fork), each with its own
keep-alive http.client connection, one request at a time (a closed loop): not Python threads, whose
GIL made the old figures the client's. `python -m bench` runs it for SQLite (one worker) and
PostgreSQL (two workers, with LOYALTY_PG_URL) in three modes: quote-only, mixed and events-only.

Starts `loyalty serve` on a temporary SQLite ledger (or on --db, a PostgreSQL URL on this machine,
with --workers processes) on a free 127.0.0.1 port (never anything but loopback), registers the members and grants them points, then runs CLIENTS threads, each with its
own keep-alive connection, sharing one budget of REQUESTS requests and SECONDS seconds (whichever
ends first; then everything stops by itself):

- mixed: 65% POST /quote (a cart for a random member, asking to use "max" or a fixed number of
  points), 25% POST /events with an order.placed (using "max", a fixed number, or no points) and
  10% an order.shipped for one of the orders this client placed (pending → valid): 35% events;
- quote: every request a POST /quote; events: 80% order.placed, 20% order.shipped.

Several clients hit the same member at once, so redemptions race: the engine must refuse the ones
the balance no longer covers. Afterwards every member is read back and the run fails (exit 1) if
any balance is negative, any answer was a 5xx, or the ledger's lots do not add up.

Prints quotes/s, events/s, p50/p99 latency per kind, answers by status, and rejections by reason.
Not a timed test: run it by hand, and copy the figures to BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
JST = timezone(timedelta(hours=9))
START = datetime(2025, 1, 1, tzinfo=JST)
SKUS = [("TEE-M", 5000), ("CAP-F", 3000), ("DRESS-S", 12900), ("SOCKS-F", 900)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int, token: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body=None) -> tuple[int, dict, float]:
        data = json.dumps(body).encode() if body is not None else None
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=self.headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnect once on a dropped keep-alive connection
            self.conn.request(method, path, body=data, headers=self.headers)
            response = self.conn.getresponse()
            raw = response.read()
        elapsed = time.perf_counter() - started
        return response.status, json.loads(raw) if raw else {}, elapsed


def start_server(program: str, db: str, port: int, token: str, log_path: Path, workers: int) -> subprocess.Popen:
    env = dict(os.environ, LOYALTY_API_TOKEN=token)
    log = open(log_path, "wb")
    cmd = [sys.executable, "-c", "from engine.shell.cli import main; main()", "serve", program, "--db", db,
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"loyalty serve did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.1)


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def cart(event_id: str, member: str, at: str, order_id: str, rng: random.Random) -> dict:
    lines = []
    for sku, price in rng.sample(SKUS, rng.randint(1, 3)):
        lines.append({"sku": sku, "qty": rng.randint(1, 3), "unit_price": price, "tax_rate": 0.10})
    event = {"id": event_id, "type": "order.placed", "at": at, "member": member, "order": order_id,
             "course": rng.choice(["one_off", "subscription"]), "payment": {"method": "credit_card"},
             "lines": lines}
    redeem = rng.choice(["max", "max", 300, 1500, None])
    if redeem is not None:
        event["redeem"] = {"points": redeem}
    return event


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def reason_class(reason: str) -> str:
    if "out of order" in reason:
        return "late (another client's later event for the member came first)"
    if "can be used" in reason or "balance" in reason:
        return "over the balance (AND-3)"
    return reason.split(": ", 1)[-1][:70]


MIXES = {"mixed": (0.65, 0.90), "quote": (1.0, 1.0), "events": (0.0, 0.80)}   # (quote below, order below)

_clock = None   # a multiprocessing.Value shared by the client processes: the events' times increase


def _init(clock) -> None:
    global _clock
    _clock = clock


def _now_at() -> str:
    with _clock.get_lock():
        _clock.value += 1
        n = _clock.value
    return (START + timedelta(days=1, seconds=n)).isoformat()


def _client(job: tuple) -> dict:
    """One client process: requests one after another on one keep-alive connection until the deadline."""
    n, port, token, members, mode, deadline, budget, seed = job
    quote_below, order_below = MIXES[mode]
    rng = random.Random(seed * 1000 + n)
    client = Client(port, token)
    placed: dict[str, list[str]] = defaultdict(list)
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter = Counter()
    rejections: Counter = Counter()
    errors: list[str] = []
    seq = 0
    while seq < budget and time.time() < deadline:
        seq += 1
        member = rng.choice(members)
        roll = rng.random()
        try:
            if roll < quote_below:
                kind = "quote"
                body = cart(f"q{mode}{n}-{seq}", member, _now_at(), f"qo{n}-{seq}", rng)
                status, answer, elapsed = client.call("POST", "/quote", body)
            elif roll < order_below or not placed[member]:
                kind = "order"
                order_id = f"o{mode}{n}-{seq}"
                body = cart(f"e{mode}{n}-{seq}", member, _now_at(), order_id, rng)
                status, answer, elapsed = client.call("POST", "/events", body)
                if answer.get("applied"):
                    placed[member].append(order_id)
            else:
                kind = "ship"
                order_id = placed[member].pop(0)
                body = {"id": f"s{mode}{n}-{seq}", "type": "order.shipped", "at": _now_at(), "member": member,
                        "order": order_id}
                status, answer, elapsed = client.call("POST", "/events", body)
        except Exception as exc:  # a broken connection is a failure of the run
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        latencies[kind].append(elapsed)
        statuses[f"{kind} {status}"] += 1
        for r in answer.get("rejected", ()) if isinstance(answer, dict) else ():
            rejections[reason_class(r.get("reason", ""))] += 1
        if status >= 500:
            errors.append(f"{kind}: {status} {answer}")
    return {"latencies": dict(latencies), "statuses": dict(statuses), "rejections": dict(rejections),
            "errors": errors}


def seed_members(port: int, token: str, count: int, grant: int, prefix: str = "m") -> list[str]:
    members = [f"{prefix}{i:03d}" for i in range(count)]
    seed_events = []
    for i, m in enumerate(members):
        seed_events.append({"id": f"reg-{m}", "type": "member.registered", "member": m,
                            "at": (START + timedelta(minutes=i)).isoformat()})
        seed_events.append({"id": f"grant-{m}", "type": "points.granted", "member": m, "amount": grant,
                            "reason": "load test", "at": (START + timedelta(minutes=i, seconds=30)).isoformat()})
    client = Client(port, token)
    for i in range(0, len(seed_events), 1000):   # a request carries at most 1,000 events (MAX_EVENTS)
        status, answer, _ = client.call("POST", "/events", seed_events[i:i + 1000])
        assert status == 200, answer
    return members


def run_mode(port: int, token: str, members: list[str], mode: str, clients: int, seconds: float,
             requests: int = 10**9, seed: int = 7, clock=None) -> dict:
    """One load: CLIENTS processes for SECONDS; the figures of the mode."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    clock = clock if clock is not None else ctx.Value("q", 0)
    deadline = time.time() + seconds
    jobs = [(n, port, token, members, mode, deadline, max(1, requests // clients), seed) for n in range(clients)]
    started = time.perf_counter()
    with ctx.Pool(clients, initializer=_init, initargs=(clock,)) as pool:
        parts = pool.map(_client, jobs)
    wall = time.perf_counter() - started
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter = Counter()
    rejections: Counter = Counter()
    errors: list[str] = []
    for part in parts:
        for k, v in part["latencies"].items():
            latencies[k] += v
        statuses.update(part["statuses"])
        rejections.update(part["rejections"])
        errors += part["errors"]
    counts = {k: len(v) for k, v in latencies.items()}
    total = sum(counts.values())
    ev_lat = latencies["order"] + latencies["ship"]
    all_lat = latencies["quote"] + ev_lat
    ms = lambda values, q: round(percentile(values, q) * 1000, 2) if values else None
    return {"mode": mode, "clients": clients, "seconds": round(wall, 2), "requests": total,
            "requests_per_s": round(total / wall, 1),
            "quotes_per_s": round(counts.get("quote", 0) / wall, 1),
            "events_per_s": round((counts.get("order", 0) + counts.get("ship", 0)) / wall, 1),
            "p50_ms": ms(all_lat, 0.50), "p99_ms": ms(all_lat, 0.99),
            "quote_p50_ms": ms(latencies["quote"], 0.50), "quote_p99_ms": ms(latencies["quote"], 0.99),
            "event_p50_ms": ms(ev_lat, 0.50), "event_p99_ms": ms(ev_lat, 0.99),
            "statuses": dict(sorted(statuses.items())), "rejections": dict(rejections.most_common()),
            "server_errors": sum(v for k, v in statuses.items() if int(k.rsplit(" ", 1)[1]) >= 500),
            "errors": len(errors), "first_errors": errors[:5]}


# --- wrk: a load generator in C, so that the client is not what is measured -----------------------

WRK_THREADS, WRK_CONNECTIONS = 1, 8     # issue 23's: Debian's wrk, 1 thread, 8 connections, loopback
WRK_SHARES = {"quote": 1.0, "mixed": 0.65, "events": 0.0}   # the share of POST /quote; the rest order.placed

_WRK_SCRIPT = r"""
-- generated by bench/service_load.py: POST /quote and POST /events (order.placed) for shared members
local members = {%(members)s}
local skus = {{"TEE-M", 5000}, {"CAP-F", 3000}, {"DRESS-S", 12900}, {"SOCKS-F", 900}}
local redeems = {'"max"', '"max"', "300", "1500", nil}
local quote_share, tag, base = %(share)s, "%(tag)s", %(base)d
n, quotes, events, s2xx, s422, s5xx, sother = 0, 0, 0, 0, 0, 0, 0   -- globals: thread:get reads them
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(%(seed)d)

request = function()
  n = n + 1
  local member = members[math.random(#members)]
  local at = os.date("!%%Y-%%m-%%dT%%H:%%M:%%S+00:00", base + n)
  local lines = {}
  for i = 1, math.random(3) do
    local sku = skus[math.random(#skus)]
    lines[i] = string.format('{"sku":"%%s","qty":%%d,"unit_price":%%d,"tax_rate":0.10}', sku[1], math.random(3), sku[2])
  end
  local redeem = redeems[math.random(5)]
  local path, id
  if math.random() < quote_share then path, id, quotes = "/quote", "q" .. tag .. n, quotes + 1
  else path, id, events = "/events", "e" .. tag .. n, events + 1 end
  local body = string.format('{"id":"%%s","type":"order.placed","at":"%%s","member":"%%s","order":"o%%s",' ..
    '"course":"one_off","payment":{"method":"credit_card"},"lines":[%%s]%%s}', id, at, member, id,
    table.concat(lines, ","), redeem and (',"redeem":{"points":' .. redeem .. '}') or "")
  return wrk.format("POST", path, nil, body)
end

response = function(status, headers, body)
  if status == 422 then s422 = s422 + 1
  elseif status >= 500 then s5xx = s5xx + 1
  elseif status < 300 then s2xx = s2xx + 1
  else sother = sother + 1 end
end

local threads = {}
setup = function(thread) table.insert(threads, thread) end

done = function(summary, latency, requests)
  local q, e, a, r, f, o = 0, 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    q, e = q + t:get("quotes"), e + t:get("events")
    a, r, f, o = a + t:get("s2xx"), r + t:get("s422"), f + t:get("s5xx"), o + t:get("sother")
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format('WRK {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"quotes_sent":%%d,"events_sent":%%d,"s2xx":%%d,"s422":%%d,"s5xx":%%d,"sother":%%d,"socket_errors":%%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    q, e, a, r, f, o, errors))
end
"""


def wrk_available() -> Optional[str]:
    import shutil

    return shutil.which("wrk")


def run_wrk(port: int, token: str, members: list[str], mode: str, seconds: float, base: datetime,
            tmp: Path, seed: int = 7) -> dict:
    """One load of ``mode`` by wrk (1 thread, 8 connections): the figures of the mode, as run_mode's.
    Latency percentiles are wrk's (all requests of the mode); the events are order.placed (with a
    redemption of "max", 300 or 1,500 points, or none), at increasing times from ``base``."""
    script = tmp / f"load-{mode}.lua"
    script.write_text(_WRK_SCRIPT % {"members": ", ".join(f'"{m}"' for m in members), "share": WRK_SHARES[mode],
                                     "tag": f"w{mode}", "base": int(base.timestamp()), "token": token, "seed": seed})
    cmd = ["wrk", "-t", str(WRK_THREADS), "-c", str(WRK_CONNECTIONS), "-d", f"{max(1, round(seconds))}s",
           "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}/"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout)[-500:]}")
    w = json.loads(line[4:])
    wall = w["duration_us"] / 1e6
    total = w["requests"]
    # what was sent and answered: the shares of quotes and events among the answered requests
    sent = (w["quotes_sent"] + w["events_sent"]) or 1
    quotes = round(total * w["quotes_sent"] / sent)
    events = total - quotes
    p50, p99 = round(w["p50_us"] / 1000, 2), round(w["p99_us"] / 1000, 2)
    statuses = {"2xx": w["s2xx"], "422": w["s422"], "5xx": w["s5xx"], "other": w["sother"]}
    return {"mode": mode, "clients": f"wrk {WRK_THREADS} thread, {WRK_CONNECTIONS} connections",
            "generator": "wrk", "seconds": round(wall, 2), "requests": total,
            "requests_per_s": round(total / wall, 1), "quotes_per_s": round(quotes / wall, 1),
            "events_per_s": round(events / wall, 1), "p50_ms": p50, "p99_ms": p99,
            "max_ms": round(w["max_us"] / 1000, 2),
            "quote_p50_ms": p50 if mode == "quote" else None, "quote_p99_ms": p99 if mode == "quote" else None,
            "event_p50_ms": p50 if mode == "events" else None, "event_p99_ms": p99 if mode == "events" else None,
            "statuses": {k: v for k, v in statuses.items() if v},
            "rejections": {"refused (422: over the balance, or late behind another connection)": w["s422"]}
            if w["s422"] else {},
            "server_errors": w["s5xx"], "errors": w["socket_errors"] + w["sother"],
            "first_errors": [f"{w['socket_errors']} socket errors, {w['sother']} other statuses"]
            if w["socket_errors"] or w["sother"] else []}


def check_members(port: int, token: str, members: list[str]) -> tuple[int, list[str]]:
    """Every member read back: (members with a balance below zero, errors such as lots not adding up)."""
    setup = Client(port, token)
    negative, errors = 0, []
    for m in members:
        status, member, _ = setup.call("GET", f"/members/{m}?as_of={(START + timedelta(days=400)).date()}")
        if status != 200:
            errors.append(f"GET /members/{m}: {status}")
            continue
        points = member["points"]
        if any(v < 0 for v in points.values()) or any(lot["amount"] <= 0 for lot in member["lots"]):
            negative += 1
        by_state: Counter = Counter()
        for lot in member["lots"]:
            by_state[lot["state"]] += lot["amount"]
        if any(by_state[s] != points.get(s, 0) for s in ("valid", "pending", "held", "used", "expired", "void")):
            errors.append(f"{m}: lots {dict(by_state)} do not add up to points {points}")
    return negative, errors


def measure(program: str, db: str, workers: int, modes: tuple[str, ...], clients: int, seconds: float,
            members: int = 20, grant: int = 3000, log_dir: Optional[Path] = None,
            generator: Optional[str] = None) -> dict:
    """Start `loyalty serve` on DB with WORKERS, run each mode, read every member back, stop it.
    ``generator``: "wrk" (the default where wrk is installed) or "processes" (CLIENTS Python
    client processes)."""
    generator = generator or ("wrk" if wrk_available() else "processes")
    import multiprocessing

    token = secrets.token_urlsafe(32)
    tmp = log_dir or Path(tempfile.mkdtemp(prefix="loyalty-load-"))
    port = free_port()
    store = "PostgreSQL" if db.startswith(("postgresql://", "postgres://")) else "SQLite"
    server = start_server(program, db, port, token, tmp / "server.log", workers)
    out: dict = {"store": store, "workers": workers, "clients": clients, "members": members, "modes": [],
                 "generator": generator}
    try:
        names = seed_members(port, token, members, grant)
        clock = multiprocessing.get_context("fork").Value("q", 0)
        for k, mode in enumerate(modes):
            if generator == "wrk":
                base = START + timedelta(days=2 + 20 * k)   # each mode's events later than the last's
                out["modes"].append(run_wrk(port, token, names, mode, seconds, base, tmp))
            else:
                out["modes"].append(run_mode(port, token, names, mode, clients, seconds, clock=clock))
        out["negative_balances"], problems = check_members(port, token, names)
        out["ledger_errors"] = problems[:5]
    finally:
        stop_server(server)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--program", default=str(ROOT / "programs" / "andest.yaml"))
    ap.add_argument("--clients", type=int, default=4, help="client processes")
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0, help="wall-clock length of each mode")
    ap.add_argument("--mode", action="append", choices=sorted(MIXES), help="quote, mixed or events (repeatable; "
                                                                             "default all three)")
    ap.add_argument("--grant", type=int, default=3000, help="points granted to each member at the start")
    ap.add_argument("--db", default=None, help="ledger (default: a new SQLite file); a PostgreSQL URL on loopback "
                                               "must name an empty database")
    ap.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL only)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--generator", choices=["wrk", "processes"], default=None,
                    help="wrk (1 thread, 8 connections; the default where installed) or client processes")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="loyalty-load-"))
    db = args.db or str(tmp / "bench.db")
    host = urlsplit(db).hostname if db.startswith(("postgresql://", "postgres://")) else "127.0.0.1"
    if not (host and (host.startswith("127.") or host in ("localhost", "::1"))):
        raise SystemExit("--db: a PostgreSQL server on this machine only (127.0.0.1, localhost)")
    figures = measure(args.program, db, args.workers, tuple(args.mode or ("quote", "mixed", "events")), args.clients,
                      args.seconds, args.members, args.grant, tmp, args.generator)
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        load = (f"wrk ({WRK_THREADS} thread, {WRK_CONNECTIONS} connections)" if figures["generator"] == "wrk"
                else f"{args.clients} client processes")
        print(f"loyalty serve on 127.0.0.1 ({figures['store']}, {args.workers} worker(s)), {load} on {args.members} "
              "shared members")
        for m in figures["modes"]:
            print(f"  {m['mode']:<7} {m['requests_per_s']:>8} req/s  p50 {m['p50_ms']} ms  p99 {m['p99_ms']} ms  "
                  f"(quotes {m['quotes_per_s']}/s, events {m['events_per_s']}/s; event p99 {m['event_p99_ms']} ms)  "
                  f"5xx {m['server_errors']}  errors {m['errors']}")
            for reason, n in m["rejections"].items():
                print(f"          rejected {n:>5}  {reason}")
        print(f"  negative balances: {figures['negative_balances']}; ledger errors: {figures['ledger_errors']}")
    bad = figures["negative_balances"] or figures["ledger_errors"] or any(m["server_errors"] or m["errors"]
                                                                          for m in figures["modes"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
