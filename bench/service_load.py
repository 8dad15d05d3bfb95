"""Load test of `loyalty serve` on loopback: concurrent checkouts on shared members.

    python bench/service_load.py [--clients 8] [--members 20] [--requests 6000] [--seconds 60]
                                 [--db postgresql://... --workers 2]

Starts `loyalty serve` on a temporary SQLite ledger (or on --db, a PostgreSQL URL on this machine,
with --workers processes) on a free 127.0.0.1 port (never anything but loopback), registers the members and grants them points, then runs CLIENTS threads, each with its
own keep-alive connection, sharing one budget of REQUESTS requests and SECONDS seconds (whichever
ends first; then everything stops by itself):

- 55% POST /quote: a cart for a random member, asking to use "max" or a fixed number of points;
- 35% POST /events: an order.placed for a random member, using "max", a fixed number, or no points;
- 10% POST /events: an order.shipped for one of that member's placed orders (pending → valid).

Several clients hit the same member at once, so redemptions race: the engine must refuse the ones
the balance no longer covers. Afterwards every member is read back and the run fails (exit 1) if
any balance is negative, any answer was a 5xx, or the ledger's lots do not add up.

Prints quotes/s, events/s, p50/p99 latency per kind, answers by status, and rejections by reason.
Not a timed test: run it by hand, and copy the figures to BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--program", default=str(ROOT / "programs" / "andest.yaml"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--requests", type=int, default=6000, help="total requests (bounded)")
    ap.add_argument("--seconds", type=float, default=60.0, help="wall-clock bound")
    ap.add_argument("--grant", type=int, default=3000, help="points granted to each member at the start")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--db", default=None, help="ledger (default: a new SQLite file); a PostgreSQL URL on loopback "
                                               "must name an empty database")
    ap.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL only)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()

    token = secrets.token_urlsafe(32)
    tmp = Path(tempfile.mkdtemp(prefix="loyalty-load-"))
    port = free_port()
    db = args.db or str(tmp / "bench.db")
    host = urlsplit(db).hostname if db.startswith(("postgresql://", "postgres://")) else "127.0.0.1"
    if not (host and (host.startswith("127.") or host in ("localhost", "::1"))):
        raise SystemExit("--db: a PostgreSQL server on this machine only (127.0.0.1, localhost)")
    store = "PostgreSQL" if args.db else "SQLite"
    server = start_server(args.program, db, port, token, tmp / "server.log", args.workers)
    try:
        members = [f"m{i:03d}" for i in range(args.members)]
        setup = Client(port, token)
        seed_events = []
        for i, m in enumerate(members):
            seed_events.append({"id": f"reg-{m}", "type": "member.registered", "member": m,
                                "at": (START + timedelta(minutes=i)).isoformat()})
            seed_events.append({"id": f"grant-{m}", "type": "points.granted", "member": m, "amount": args.grant,
                                "reason": "load test", "at": (START + timedelta(minutes=i, seconds=30)).isoformat()})
        status, answer, _ = setup.call("POST", "/events", seed_events)
        assert status == 200, answer

        clock = itertools.count()
        clock_lock = threading.Lock()
        budget = itertools.count()
        deadline = time.monotonic() + args.seconds
        placed: dict[str, list[str]] = defaultdict(list)
        placed_lock = threading.Lock()
        latencies: dict[str, list[float]] = defaultdict(list)
        statuses: Counter = Counter()
        rejections: Counter = Counter()
        counts: Counter = Counter()
        errors: list[str] = []

        def now_at() -> str:
            with clock_lock:
                return (START + timedelta(days=1, minutes=next(clock))).isoformat()

        def worker(n: int) -> None:
            rng = random.Random(args.seed * 1000 + n)
            client = Client(port, token)
            seq = 0
            while next(budget) < args.requests and time.monotonic() < deadline:
                seq += 1
                member = rng.choice(members)
                roll = rng.random()
                try:
                    if roll < 0.55:
                        kind = "quote"
                        body = cart(f"q{n}-{seq}", member, now_at(), f"qo{n}-{seq}", rng)
                        status, answer, elapsed = client.call("POST", "/quote", body)
                    elif roll < 0.90 or not placed[member]:
                        kind = "order"
                        order_id = f"o{n}-{seq}"
                        body = cart(f"e{n}-{seq}", member, now_at(), order_id, rng)
                        status, answer, elapsed = client.call("POST", "/events", body)
                        if answer.get("applied"):
                            with placed_lock:
                                placed[member].append(order_id)
                    else:
                        kind = "ship"
                        with placed_lock:
                            order_id = placed[member].pop(0) if placed[member] else None
                        if order_id is None:
                            continue
                        body = {"id": f"s{n}-{seq}", "type": "order.shipped", "at": now_at(), "member": member,
                                "order": order_id}
                        status, answer, elapsed = client.call("POST", "/events", body)
                except Exception as exc:  # a broken connection is a failure of the run
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies[kind].append(elapsed)
                statuses[(kind, status)] += 1
                counts[kind] += 1
                for r in answer.get("rejected", ()) if isinstance(answer, dict) else ():
                    rejections[reason_class(r.get("reason", ""))] += 1
                if status >= 500:
                    errors.append(f"{kind}: {status} {answer}")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started

        # Read every member back: no balance below zero, and the lots add up to the points.
        negative = []
        for m in members:
            status, member, _ = setup.call("GET", f"/members/{m}?as_of={(START + timedelta(days=400)).date()}")
            if status != 200:
                errors.append(f"GET /members/{m}: {status}")
                continue
            points = member["points"]
            if any(v < 0 for v in points.values()) or any(lot["amount"] <= 0 for lot in member["lots"]):
                negative.append((m, points))
            by_state = Counter()
            for lot in member["lots"]:
                by_state[lot["state"]] += lot["amount"]
            if any(by_state[s] != points.get(s, 0) for s in ("valid", "pending", "held", "used", "expired", "void")):
                errors.append(f"{m}: lots {dict(by_state)} do not add up to points {points}")
    finally:
        stop_server(server)

    events = counts["order"] + counts["ship"]
    ev_lat = latencies["order"] + latencies["ship"]
    figures = {
        "store": store, "workers": args.workers, "clients": args.clients, "members": args.members, "requests": sum(counts.values()),
        "seconds": round(wall, 2),
        "quotes_per_s": round(counts["quote"] / wall, 1), "events_per_s": round(events / wall, 1),
        "requests_per_s": round(sum(counts.values()) / wall, 1),
        "quote_p50_ms": round(percentile(latencies["quote"], 0.50) * 1000, 2),
        "quote_p99_ms": round(percentile(latencies["quote"], 0.99) * 1000, 2),
        "event_p50_ms": round(percentile(ev_lat, 0.50) * 1000, 2),
        "event_p99_ms": round(percentile(ev_lat, 0.99) * 1000, 2),
        "statuses": {f"{k} {s}": v for (k, s), v in sorted(statuses.items())},
        "rejections": dict(rejections.most_common()),
        "negative_balances": len(negative), "errors": len(errors),
    }
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        print(f"loyalty serve on 127.0.0.1 ({store}, {args.workers} worker(s)), {args.clients} clients on {args.members} shared members, "
              f"{figures['requests']} requests in {wall:.1f} s")
        print(f"  quotes/s  {figures['quotes_per_s']:>8}   p50 {figures['quote_p50_ms']:>6} ms   "
              f"p99 {figures['quote_p99_ms']:>6} ms   ({counts['quote']} quotes)")
        print(f"  events/s  {figures['events_per_s']:>8}   p50 {figures['event_p50_ms']:>6} ms   "
              f"p99 {figures['event_p99_ms']:>6} ms   ({counts['order']} orders, {counts['ship']} shipments)")
        print(f"  total     {figures['requests_per_s']:>8} requests/s")
        print("  answers:  " + ", ".join(f"{k}: {v}" for k, v in figures["statuses"].items()))
        for reason, n in rejections.most_common():
            print(f"  rejected  {n:>5}  {reason}")
        print(f"  negative balances: {len(negative)}; 5xx or broken connections: {len(errors)}")
    for e in errors[:10]:
        print(f"  error: {e}", file=sys.stderr)
    for m, p in negative[:10]:
        print(f"  negative: {m} {p}", file=sys.stderr)
    return 1 if negative or errors else 0


if __name__ == "__main__":
    sys.exit(main())
