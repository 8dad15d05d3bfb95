"""The HTTP service (engine/shell/service.py, `loyalty serve`): auth, every route, bad bodies, replays,
rejections that change nothing, no 500 on generated requests (schemathesis), and the curl examples
of docs/SERVICE.md run as written against a real server."""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
import schemathesis
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine.shell import service
from engine.shell.service import MAX_BODY, MAX_EVENTS, create_app
from tests.helpers import explode_on

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = str(ROOT / "programs" / "andest.yaml")
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def registered(event_id: str = "e1", member: str = "m1", at: str = "2025-01-05T10:00:00+09:00", **extra) -> dict:
    return {"id": event_id, "type": "member.registered", "at": at, "member": member, **extra}


def order(event_id: str, member: str = "m1", at: str = "2025-01-06T10:00:00+09:00", order_id: str | None = None,
          redeem=None, qty: int = 2) -> dict:
    event = {"id": event_id, "type": "order.placed", "at": at, "member": member, "order": order_id or f"o-{event_id}",
             "course": "one_off", "payment": {"method": "credit_card"},
             "lines": [{"sku": "TEE-M", "qty": qty, "unit_price": 5000, "tax_rate": 0.10}]}
    if redeem is not None:
        event["redeem"] = {"points": redeem}
    return event


class Service:
    def __init__(self, tmp_path: Path):
        self.db = str(tmp_path / "ledger.db")
        self.log: list[dict] = []
        self.app = create_app(PROGRAM, self.db, TOKEN, access_log=self.log.append)

    def ledger_rows(self) -> tuple[int, int]:
        with sqlite3.connect(self.db) as db:
            return (db.execute("SELECT count(*) FROM ledger").fetchone()[0],
                    db.execute("SELECT count(*) FROM events WHERE status='applied'").fetchone()[0])


@pytest.fixture
def svc(tmp_path):
    return Service(tmp_path)


@pytest.fixture
def client(svc):
    with TestClient(svc.app) as c:
        yield c


# --- auth --------------------------------------------------------------------------------------

ROUTES = [
    ("post", "/events", json.dumps(registered()).encode()),
    ("post", "/quote", json.dumps(order("q1")).encode()),
    ("get", "/members/m1", None),
    ("get", "/openapi.json", None),
    ("post", "/close", json.dumps({"as_of": "2025-01-31"}).encode()),
]
WRONG = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {TOKEN[:-1]}X"},          # same length, last character differs
    {"Authorization": f"Bearer {TOKEN}extra"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer "},
]


@pytest.mark.parametrize("method,path,body", ROUTES)
@pytest.mark.parametrize("headers", WRONG, ids=["none", "wrong", "one-char", "longer", "basic", "bare", "empty"])
def test_every_route_but_healthz_needs_the_token(client, svc, method, path, body, headers):
    r = client.request(method.upper(), path, content=body, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["status"] == 401
    assert svc.ledger_rows() == (0, 0)  # nothing read or written


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_the_right_token_opens_every_route(client, method, path, body):
    r = client.request(method.upper(), path, content=body, headers=AUTH)
    assert r.status_code in (200, 404), r.text
    lower = client.request(method.upper(), path, content=body, headers={"authorization": f"bearer {TOKEN}"})
    assert lower.status_code == r.status_code  # the scheme is case-insensitive


def test_an_unauthorised_event_is_not_applied(client, svc):
    assert client.post("/events", json=registered()).status_code == 401
    assert client.get("/members/m1", headers=AUTH).status_code == 404
    assert client.post("/events", json=registered(), headers=AUTH).json()["applied"] == ["e1"]


def test_healthz_needs_no_token_and_checks_the_store(client, svc, monkeypatch):
    assert client.get("/healthz").json() == {"status": "ok"}

    def broken(engine):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(service, "health", broken)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable"}


# --- POST /events --------------------------------------------------------------------------------

def test_events_one_or_many_and_replays_skipped(client, svc):
    r = client.post("/events", json=registered(birthday="1990-03-12"), headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"applied": ["e1"], "skipped": [], "rejected": []}
    r = client.post("/events", json=[order("e2", redeem="max"), registered(), order("e3", at="2025-01-07")],
                    headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"applied": ["e2", "e3"], "skipped": ["e1"], "rejected": []}
    rows = svc.ledger_rows()
    # the same events again: all skipped, never applied twice
    r = client.post("/events", json=[registered(), order("e2", redeem="max"), order("e3", at="2025-01-07")],
                    headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"applied": [], "skipped": ["e1", "e2", "e3"], "rejected": []}
    assert svc.ledger_rows() == rows
    member = client.get("/members/m1?as_of=2025-02-01", headers=AUTH).json()
    assert member["points"]["used"] == 500 and member["points"]["pending"] == 95 + 95


def test_a_rejected_event_is_422_and_changes_nothing(client, svc):
    client.post("/events", json=registered(), headers=AUTH)
    before = client.get("/members/m1?as_of=2025-03-01", headers=AUTH).json()
    rows = svc.ledger_rows()
    r = client.post("/events", json=order("e2", redeem=600), headers=AUTH)  # 500 points held
    assert r.status_code == 422
    answer = r.json()
    assert answer["applied"] == [] and answer["skipped"] == []
    [rejection] = answer["rejected"]
    assert rejection["event"] == "e2" and rejection["field"] == "redeem.points"
    msgspec.convert(answer, service.EventsAnswer)
    assert "e2" in rejection["reason"] and "500" in rejection["reason"]
    assert client.get("/members/m1?as_of=2025-03-01", headers=AUTH).json() == before
    assert svc.ledger_rows() == rows
    # the rejected id is not burnt: corrected, the same id applies
    assert client.post("/events", json=order("e2", redeem=500), headers=AUTH).json()["applied"] == ["e2"]


def test_an_array_applies_the_good_events_and_lists_the_bad(client):
    r = client.post("/events", json=[registered(), {"id": "x1", "type": "order.placed"}, 7,
                                     order("e2", redeem=99999), order("e3")], headers=AUTH)
    assert r.status_code == 422
    answer = r.json()
    assert answer["applied"] == ["e1", "e3"]
    assert [(x["event"], x["index"]) for x in answer["rejected"]] == [("x1", 1), (None, 2), ("e2", 3)]
    assert all(x["reason"] for x in answer["rejected"])


@pytest.mark.parametrize("body,field", [
    (b"this is not JSON", None),
    (b"", None),
    (b"[1, 2", None),
    (b'{"id": "e9", "type": "member.registered"', None),
    (b'{"id": "e9", "type": "no.such.type", "at": "2025-01-01", "member": "m1"}', "type"),
    (b'{"id": "e9", "type": "points.granted", "at": "2025-01-01", "member": "m1", "amount": "ten", "reason": "r"}',
     "amount"),
    (b'{"id": "e9", "type": "points.granted", "at": "2025-01-01", "member": "m1", "amount": -5, "reason": "r"}',
     "amount"),
    (json.dumps(order("e9") | {"lines": [{"sku": "A", "qty": "two", "unit_price": 1, "tax_rate": 0.1}]}).encode(),
     "lines[0].qty"),
    (b'{"id": 12, "type": "member.registered", "at": "2025-01-01", "member": "m1"}', "id"),
    (b'{"id": "e9", "type": "member.registered", "at": "2025-13-45T10:00:00+09:00", "member": "m1"}', "at"),
    (b'{"id": "e9", "type": "member.registered", "at": "9999-12-31T00:00:00+09:00", "member": "m1"}', "at"),
    (b"[" * 5000 + b"]" * 5000, None),
    (b'{"id": "e9", "type": "member.registered", "at": "2025-01-01", "member": "m1", "x": ' + b"[" * 5000
     + b"]" * 5000 + b"}", None),
    (b'"just a string"', None),
    (b"\xff\xfe\x00", None),
])
def test_bad_event_bodies_are_422_with_a_reason(client, svc, body, field):
    r = client.post("/events", content=body, headers=AUTH)
    assert r.status_code == 422, r.text
    [rejection] = r.json()["rejected"]
    assert rejection["reason"] and "Traceback" not in r.text
    if field:
        assert rejection["field"] == field
    assert svc.ledger_rows() == (0, 0)


def test_huge_bodies_are_413(client, svc):
    big = json.dumps([registered(f"e{i}", f"m{i}") for i in range(20000)]).encode()
    assert len(big) > MAX_BODY
    r = client.post("/events", content=big, headers=AUTH)
    assert r.status_code == 413 and r.json()["status"] == 413
    r = client.post("/quote", content=big, headers=AUTH)
    assert r.status_code == 413

    def chunks():  # no Content-Length: the limit holds on the bytes streamed
        for _ in range(40):
            yield b" " * 65536

    assert client.post("/events", content=chunks(), headers=AUTH).status_code == 413
    many = json.dumps([registered(f"e{i}", f"m{i}") for i in range(MAX_EVENTS + 1)]).encode()
    assert len(many) < MAX_BODY
    assert client.post("/events", content=many, headers=AUTH).status_code == 413
    assert svc.ledger_rows() == (0, 0)


def test_an_engine_failure_is_a_rejection_not_a_500(client, svc, monkeypatch):
    client.post("/events", json=registered(), headers=AUTH)
    rows = svc.ledger_rows()
    explode_on(monkeypatch, "boom")
    r = client.post("/events", json=[order("boom"), order("e3")], headers=AUTH)
    assert r.status_code == 422
    assert r.json()["applied"] == ["e3"]
    [rejection] = r.json()["rejected"]
    assert rejection["event"] == "boom" and "ZeroDivisionError" in rejection["reason"]
    assert "Traceback" not in r.text and svc.ledger_rows()[1] == rows[1] + 1


def test_a_store_failure_is_503_and_a_service_bug_is_json(client, monkeypatch):
    def store_down(engine, body):
        raise service.StoreUnavailable("database is locked")

    monkeypatch.setattr(service, "apply_body", store_down)
    r = client.post("/events", json=registered(), headers=AUTH)
    assert r.status_code == 503 and r.json()["status"] == 503

    def bug(engine, body):
        raise RuntimeError("a bug with a secret in its message")

    monkeypatch.setattr(service, "apply_body", bug)
    r = client.post("/events", json=registered(), headers=AUTH)
    assert r.json() == {"error": "internal error", "status": r.status_code}
    assert "secret" not in r.text and "Traceback" not in r.text


# --- POST /quote ---------------------------------------------------------------------------------

def test_quote_prices_a_cart_and_changes_nothing(client, svc):
    client.post("/events", json=registered(birthday="1990-03-12"), headers=AUTH)
    rows = svc.ledger_rows()
    r = client.post("/quote", json=order("q1", redeem="max"), headers=AUTH)
    assert r.status_code == 200
    quote = r.json()
    assert quote["totals"]["grand_total"] == 10450 and quote["totals"]["to_pay"] == 9950
    assert quote["redeem"]["applied"] == 500 and quote["earn"]["points"] == 95 and quote["errors"] == []
    msgspec.convert(quote, service.Quote)  # the answer is what /openapi.json documents
    assert client.post("/quote", json=order("q1", redeem="max"), headers=AUTH).json() == quote
    assert svc.ledger_rows() == rows
    unknown = client.post("/quote", json=order("q2", member="nobody"), headers=AUTH).json()
    assert unknown["errors"][0]["field"] == "member"


@pytest.mark.parametrize("body,field", [
    (b"not json", None),
    (b"[]", None),
    (b'{"id": "q"}', "order"),
    (json.dumps(order("q") | {"lines": "many"}).encode(), "lines"),
    (json.dumps(order("q") | {"at": "yesterday at noon"}).encode(), "at"),
    (json.dumps(order("q") | {"at": "0001-01-01T00:00:00+09:00"}).encode(), "at"),
    (b"[" * 5000, None),
])
def test_bad_carts_are_422(client, body, field):
    r = client.post("/quote", content=body, headers=AUTH)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert errors and errors[0]["reason"]
    if field:
        assert errors[0]["field"] == field


# --- GET /members/{id} ---------------------------------------------------------------------------

def test_member_as_of_and_unknown(client):
    assert client.get("/members/m1", headers=AUTH).status_code == 404
    client.post("/events", json=registered(member="m 1/2"), headers=AUTH)
    client.post("/events", json=registered("e2"), headers=AUTH)
    r = client.get("/members/m1?as_of=2025-02-01", headers=AUTH)
    assert r.status_code == 200
    member = r.json()
    assert member["member"] == "m1" and member["as_of"] == "2025-02-01T00:00:00+09:00"
    assert member["points"]["valid"] == 500 and member["tier"] == "regular"
    assert member["lots"][0]["rule"] == "AND-4"
    msgspec.convert(member, service.Member)
    later = client.get("/members/m1", params={"as_of": "2026-06-01T00:00:00+09:00"}, headers=AUTH).json()
    assert later["points"]["expired"] == 500  # a year without acquisitions (AND-5)
    assert client.get("/members/m1", headers=AUTH).status_code == 200  # default: now
    assert client.get("/members/m%201%2F2", headers=AUTH).json()["member"] == "m 1/2"
    assert client.get("/members/", headers=AUTH).status_code == 404
    for bad in ("tomorrow", "2025-02-30", "2025-02-01T10:00:00", "9999-12-31", "0001-01-01"):
        r = client.get("/members/m1", params={"as_of": bad}, headers=AUTH)
        assert r.status_code == 422 and "as_of" in r.json()["error"], bad


# --- /openapi.json, errors, access log -----------------------------------------------------------

def test_openapi_document_comes_from_the_structs(client):
    doc = client.get("/openapi.json", headers=AUTH).json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/events", "/quote", "/close", "/members/{member_id}", "/openapi.json", "/healthz"}
    schemas = doc["components"]["schemas"]
    assert {"OrderPlaced", "MemberRegistered", "EventsAnswer", "Quote", "Member", "Error"} <= set(schemas)
    assert schemas["OrderPlaced"]["properties"]["course"]["enum"] == ["one_off", "subscription"]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_unknown_paths_and_methods_are_json(client):
    r = client.get("/nowhere", headers=AUTH)
    assert r.status_code == 404 and r.json()["status"] == 404
    r = client.delete("/events", headers=AUTH)
    assert r.status_code == 405 and r.json()["status"] == 405


def test_access_log_is_json_lines_without_tokens(client, svc):
    client.post("/events", json=registered(), headers=AUTH)
    client.get("/members/m1", headers=AUTH)
    client.post("/quote", json=order("q1"), headers=AUTH)
    client.get("/members/m1", headers={"Authorization": "Bearer guessed-token"})
    lines = [json.loads(json.dumps(line)) for line in svc.log]
    assert [(x["method"], x["path"], x["status"], x["member"]) for x in lines] == [
        ("POST", "/events", 200, "m1"), ("GET", "/members/m1", 200, "m1"), ("POST", "/quote", 200, "m1"),
        ("GET", "/members/m1", 401, None)]
    assert all(isinstance(x["duration_ms"], float) for x in lines)
    text = json.dumps(svc.log)
    assert TOKEN not in text and "guessed-token" not in text and "Bearer" not in text


# --- schemathesis: no 500 on generated requests, every answer as documented ----------------------

@pytest.fixture
def api_schema(tmp_path):
    app = Service(tmp_path).app
    # A member with points, so that generated carts and orders reach pricing, redemption and
    # exchanges instead of stopping at "unknown member".
    seed = [registered("seed-1", "m1", "2025-01-01T00:00:00+09:00"),
            {"id": "seed-2", "type": "points.granted", "at": "2025-01-01T00:00:01+09:00", "member": "m1",
             "amount": 100000, "reason": "test balance"}]
    status, answer, _ = asyncio.run(app.state.engine_host.run(service.apply_body, json.dumps(seed).encode()))
    assert status == 200, answer
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)


schema = schemathesis.pytest.from_fixture("api_schema")
_ticks = itertools.count()


_START = datetime(2025, 2, 1, tzinfo=timezone(timedelta(hours=9)))


def _realistic(event):
    """A generated event, valid by the schema, moved to member m1 at a readable, later time."""
    if isinstance(event, dict) and isinstance(event.get("at"), str):
        event["at"] = (_START + timedelta(hours=next(_ticks))).isoformat()
        event["member"] = "m1"
    return event


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_generated_requests(case):
    """No 500 on any generated request, and every answer matching its documented schema. Valid
    bodies (positive mode) are moved to the seeded member at increasing times, so they go deep."""
    if case.meta is not None and case.meta.generation.mode.value == "positive":
        if isinstance(case.body, list):
            case.body = [_realistic(e) for e in case.body]
        else:
            case.body = _realistic(case.body)
        if case.path_parameters and "member_id" in case.path_parameters:
            case.path_parameters["member_id"] = "m1"
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error, status_code_conformance,
                                                 content_type_conformance, response_schema_conformance])


# --- `loyalty serve` and docs/SERVICE.md ---------------------------------------------------------

def test_serve_refuses_to_start_without_a_token(tmp_path):
    from engine.shell.cli import cli

    db = str(tmp_path / "l.db")
    result = CliRunner().invoke(cli, ["serve", PROGRAM, "--db", db], env={"LOYALTY_API_TOKEN": ""})
    assert result.exit_code == 1 and "LOYALTY_API_TOKEN" in result.output
    result = CliRunner().invoke(cli, ["serve", PROGRAM, "--db", db], env={"LOYALTY_API_TOKEN": "short"})
    assert result.exit_code == 1 and "at least 16" in result.output
    result = CliRunner().invoke(cli, ["serve", PROGRAM, "--db", db, "--workers", "2"], env={"LOYALTY_API_TOKEN": TOKEN})
    assert result.exit_code == 1 and "PostgreSQL" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _subset(expected, actual) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(_subset(e, a) for e, a in zip(expected, actual)))
    return expected == actual


def test_docs_curl_examples_run_as_written(tmp_path):
    """docs/SERVICE.md: the `loyalty serve` command and every curl example, as written; the only
    change is the port (a free one instead of 8080, which may be taken on this machine). Each
    curl's output must hold the JSON block written after it."""
    text = (ROOT / "docs" / "SERVICE.md").read_text()
    blocks = re.findall(r"^```(\w+)\n(.*?)^```", text, re.S | re.M)
    [start] = [code.strip() for lang, code in blocks if lang == "sh" and code.startswith("loyalty serve")]
    examples = []
    for (lang, code), following in zip(blocks, blocks[1:] + [("", "")]):
        if lang == "sh" and code.lstrip().startswith("curl"):
            examples.append((code, json.loads(following[1]) if following[0] == "json" else None))
    assert len(examples) >= 6

    port = _free_port()
    (tmp_path / "programs").symlink_to(ROOT / "programs")
    env = dict(os.environ, LOYALTY_API_TOKEN=TOKEN,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    server = subprocess.Popen(["bash", "-c", f"exec {start} --port {port}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"loyalty serve did not start: {server.communicate()[1].decode()[-2000:]}")
                time.sleep(0.1)
        for code, expected in examples:
            run = subprocess.run(["bash", "-c", code.replace("127.0.0.1:8080", f"127.0.0.1:{port}")],
                                 cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
            assert run.returncode == 0, (code, run.stderr)
            if expected is not None:
                assert _subset(expected, json.loads(run.stdout)), (code, run.stdout)
        assert json.loads((tmp_path / "openapi.json").read_text())["paths"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            _, err = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]  # every line JSON (issue 23)
    log = [line for line in lines if "method" in line]
    assert len(log) == len(examples) and TOKEN not in err.decode()
    assert all(line["request_id"] for line in log)
    assert (tmp_path / "loyalty-andest.db").exists()
