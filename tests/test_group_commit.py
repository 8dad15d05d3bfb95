"""Issue 23, group commit (engine/shell/service.py ``apply_group``, engine/run/runner.py
``begin_group``): the events of concurrent requests share one transaction and one durable commit on
SQLite and PostgreSQL, each event still atomic and idempotent, every request answered after the
commit with the answer it would get alone."""
from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections import defaultdict

import httpx
import pytest

from engine.model.answers import as_builtins
from engine.format.loader import load_program
from engine.run.runner import Runner
from engine.shell import service
from engine.shell.service import create_app
from engine.store import open_store
from tests.test_parallel import ROOT, example, pg_schemas, snapshot  # noqa: F401  (pg_schemas: a fixture)
from tests.helpers import explode_on

PROGRAM = str(ROOT / "programs" / "andest.yaml")
TOKEN = "test-token-group-commit-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AS_OF = "2025-03-01T00:00:00+09:00"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledgers(request, tmp_path):
    """Two empty ledgers of one kind: the service's, and one for the sequential run to compare with."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_schemas")
    return [str(tmp_path / "service.db"), str(tmp_path / "sequential.db")]


def on_engine(app, fn, *args):
    """Run ``fn(engine, *args)`` on the service's engine thread (its SQLite connection lives there)."""
    host = app.state.engine_host
    return host._pool.submit(fn, host.engine, *args).result()


def group(app, *bodies):
    """The bodies posted at once: one group, as the engine thread takes them (arrival order)."""
    requests = [(json.dumps(b).encode(), contextvars.copy_context()) for b in bodies]
    # each request's (status, answer as its JSON reads, members); an exception stays as it is
    return [a if isinstance(a, BaseException) else (a[0], as_builtins(a[1]), a[2])
            for a in on_engine(app, service.apply_group, requests)]


def points(app, member: str) -> dict:
    return on_engine(app, lambda engine: engine.member(member, AS_OF)["points"])


def registered(member: str, at: str = "2025-01-05T10:00:00+09:00") -> dict:
    return {"id": f"reg-{member}", "type": "member.registered", "at": at, "member": member}


def granted(event_id: str, member: str, amount: int, at: str = "2025-01-06T10:00:00+09:00") -> dict:
    return {"id": event_id, "type": "points.granted", "at": at, "member": member, "amount": amount,
            "reason": "test"}


def commits(app, monkeypatch) -> list[int]:
    """Count the store's commits from now on."""
    store = on_engine(app, lambda engine: engine.store)
    real, count = store.commit, [0]

    def counted():
        count[0] += 1
        real()

    monkeypatch.setattr(store, "commit", counted)
    return count


@pytest.fixture
def app(ledgers):
    app = create_app(PROGRAM, ledgers[0], TOKEN, access_log=lambda line: None)
    yield app
    app.state.engine_host.close()


def seed(app, members: list[str], grant: int = 0) -> None:
    bodies = [registered(m) for m in members] + ([granted(f"seed-{m}", m, grant) for m in members] if grant else [])
    [(status, answer, _)] = group(app, bodies)
    assert status == 200, answer


def test_issue23_group_commit_many_requests_one_commit_each_answered_as_alone(app, monkeypatch):
    seed(app, ["m1", "m2", "m3"])
    count = commits(app, monkeypatch)
    answers = group(app, granted("g1", "m1", 300), [granted("g2", "m2", 200), granted("g3", "m2", 50)],
                    granted("g4", "m3", 10))
    assert count[0] == 1                              # three requests, four events: one commit
    assert [a[0] for a in answers] == [200, 200, 200]
    assert [a[1]["applied"] for a in answers] == [["g1"], ["g2", "g3"], ["g4"]]
    # AND-4 gives 500 valid at registration; points.granted adds its amount as valid points:
    # m1 500 + 300 = 800; m2 500 + 200 + 50 = 750; m3 500 + 10 = 510
    assert [points(app, m)["valid"] for m in ("m1", "m2", "m3")] == [800, 750, 510]


def test_issue23_group_commit_a_duplicate_id_inside_one_group_is_applied_once(app, monkeypatch):
    seed(app, ["m1"])
    count = commits(app, monkeypatch)
    first, second, third = group(app, granted("g1", "m1", 300), granted("g1", "m1", 300),
                                 [granted("g2", "m1", 40), granted("g1", "m1", 300)])
    assert count[0] == 1
    assert (first[1]["applied"], first[1]["skipped"]) == (["g1"], [])
    assert (second[0], second[1]["applied"], second[1]["skipped"]) == (200, [], ["g1"])
    assert (third[1]["applied"], third[1]["skipped"]) == (["g2"], ["g1"])
    # g1 three times, applied once: AND-4's 500 + 300 + g2's 40 = 840 (not 500 + 3 × 300 + 40 = 1,440)
    assert points(app, "m1")["valid"] == 840


def test_issue23_group_commit_a_refusal_does_not_poison_the_rest_AND_3(app, monkeypatch):
    seed(app, ["m1", "m2", "m3"], grant=1000)
    count = commits(app, monkeypatch)
    over = {"id": "o1", "type": "order.placed", "at": "2025-01-07T10:00:00+09:00", "member": "m1", "order": "o1",
            "course": "one_off", "payment": {"method": "credit_card"}, "redeem": {"points": 3000},
            "lines": [{"sku": "TEE-M", "qty": 2, "unit_price": 5000, "tax_rate": 0.10}]}
    a, b, c = group(app, granted("g2", "m2", 200), over, granted("g3", "m3", 100))
    assert count[0] == 1
    assert (a[0], a[1]["applied"]) == (200, ["g2"]) and (c[0], c[1]["applied"]) == (200, ["g3"])
    assert b[0] == 422 and b[1]["applied"] == [] and [r["event"] for r in b[1]["rejected"]] == ["o1"]
    # AND-3: 3,000 points asked, the valid balance is AND-4's 500 + the 1,000 granted = 1,500: refused,
    # nothing spent; m2 1,500 + 200 = 1,700, m3 1,500 + 100 = 1,600
    assert "1500" in b[1]["rejected"][0]["reason"].replace(",", "")
    assert [points(app, m)["valid"] for m in ("m1", "m2", "m3")] == [1500, 1700, 1600]
    # the refusal is on record (a resend is refused with the same reason, X-4), the order is not
    [(status, again, _)] = group(app, over)
    assert status == 422 and again["rejected"][0]["reason"] == b[1]["rejected"][0]["reason"]


def test_issue23_group_commit_an_engine_fault_undoes_the_group_and_stays_with_its_request(app, monkeypatch):
    seed(app, ["m1", "m2", "m3"])
    explode_on(monkeypatch, "boom")
    a, b, c = group(app, granted("g1", "m1", 300), [granted("g2", "m2", 20), granted("boom", "m2", 5)],
                    granted("g3", "m3", 7))
    # the group is undone, then each request alone, one event a transaction: boom's rolled back
    assert a[1]["applied"] == ["g1"] and c[1]["applied"] == ["g3"]
    assert b[0] == 422 and b[1]["applied"] == ["g2"] and "ZeroDivisionError" in b[1]["rejected"][0]["reason"]
    # nothing doubled by the second pass: AND-4's 500 + m1 300 = 800, m2 500 + 20 = 520 (boom's 5
    # never), m3 500 + 7 = 507
    assert [points(app, m)["valid"] for m in ("m1", "m2", "m3")] == [800, 520, 507]


def test_issue23_group_commit_concurrent_posts_give_the_sequential_ledger(ledgers, monkeypatch):
    """The andest example, each member's events posted one request at a time by a client of its
    own, all members at once: groups form, and the ledger is the sequential run's."""
    lines = example("andest")
    by_member = defaultdict(list)
    for raw in lines:
        by_member[json.loads(raw)["member"]].append(raw.strip())
    sizes: list[int] = []
    real = service.apply_group

    def spy(engine, requests):
        sizes.append(len(requests))
        time.sleep(0.005)        # a slow disk: the requests arriving meanwhile wait for the next group
        return real(engine, requests)

    monkeypatch.setattr(service, "apply_group", spy)
    app = create_app(PROGRAM, ledgers[0], TOKEN, access_log=lambda line: None)

    async def post_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            async def member_client(events):
                statuses = []
                for raw in events:
                    r = await client.post("/events", content=raw, headers={**AUTH, "Content-Type": "application/json"})
                    statuses.append(r.status_code)
                return statuses

            return await asyncio.gather(*(member_client(ev) for ev in by_member.values()))

    try:
        statuses = asyncio.run(post_all())
    finally:
        app.state.engine_host.close()
    program = load_program(PROGRAM)
    expected_store = open_store(ledgers[1], program.id)
    expected = Runner(program, expected_store).run(lines)
    assert not expected.rejected
    assert [s for member in statuses for s in member] == [200] * len(lines)
    assert sum(sizes) == len(lines) and max(sizes) > 1      # the requests did share transactions
    store = open_store(ledgers[0], program.id)
    assert snapshot(store, program) == snapshot(expected_store, program)
    store.close()
    expected_store.close()


def test_issue23_group_commit_a_crash_loses_no_acknowledged_event(tmp_path):
    """`loyalty serve` on SQLite under 8 concurrent clients, killed with SIGKILL mid-load: every
    event answered as applied is in the ledger (an answer comes only after its group's commit)."""
    import http.client
    import os
    import secrets
    import signal
    import sqlite3
    import threading

    from bench.service_load import Client, free_port, start_server

    token, port, db = secrets.token_urlsafe(24), free_port(), tmp_path / "ledger.db"
    server = start_server(PROGRAM, str(db), port, token, tmp_path / "server.log", 1)
    members = [f"m{i}" for i in range(8)]
    try:
        status, answer, _ = Client(port, token).call("POST", "/events", [registered(m) for m in members])
        assert status == 200, answer
        acknowledged: list[str] = []
        stop = threading.Event()

        def client(member: str) -> None:
            conn = Client(port, token)
            n = 0
            while not stop.is_set():
                n += 1
                event = granted(f"{member}-g{n}", member, 10, at=datetime_at(n).isoformat())
                try:
                    status, answer, _ = conn.call("POST", "/events", event)
                except (OSError, http.client.HTTPException, ValueError):
                    return
                if status == 200:
                    acknowledged.extend(answer["applied"])

        threads = [threading.Thread(target=client, args=(m,)) for m in members]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)      # mid-load: groups in flight are lost, never half-written
        server.wait(timeout=20)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert len(acknowledged) >= 200
    with sqlite3.connect(db) as con:
        applied = {row[0] for row in con.execute("SELECT id FROM events WHERE status = 'applied'")}
        grants = dict(con.execute("SELECT member, count(*) FROM events WHERE status = 'applied' AND type = "
                                  "'points.granted' GROUP BY member").fetchall())
    assert set(acknowledged) <= applied
    program = load_program(PROGRAM)
    store = open_store(str(db), program.id)
    for m in members:
        # AND-4's 500 at registration + 10 for every grant the ledger holds (acknowledged or not yet)
        state = store.load(m)
        assert sum(lot.amount for lot in state.lots if lot.state == "valid") == 500 + 10 * grants.get(m, 0)
    store.close()


def datetime_at(n: int):
    from datetime import datetime, timedelta, timezone

    return datetime(2025, 1, 6, 10, tzinfo=timezone(timedelta(hours=9))) + timedelta(seconds=n)
