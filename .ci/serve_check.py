"""Run by .ci/wheel with the wheel's Python: `loyalty serve` answers /healthz and a quote.

Usage: python serve_check.py LOYALTY PROGRAM DB. Starts the server on a free port, waits for
/healthz, registers a member and quotes a cart, checks the figures (worked out by hand from the
&est program, below), and stops the server it started. Exit 0 when all holds.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

loyalty, program, db = sys.argv[1:4]
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
token = secrets.token_urlsafe(16)
base = f"http://127.0.0.1:{port}"
log = open(db + ".log", "w+")   # the server's own lines, shown only when something fails
server = subprocess.Popen([loyalty, "serve", program, "--db", db, "--port", str(port), "--log-level", "warning"],
                          env={**os.environ, "LOYALTY_API_TOKEN": token}, stdout=log, stderr=subprocess.STDOUT)


def call(method: str, path: str, body=None, auth: bool = True):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if auth:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read() or b"null")


ok = False
try:
    deadline = time.monotonic() + 60
    while True:
        try:
            status, _ = call("GET", "/healthz", auth=False)
            if status == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"serve: /healthz never answered (server exit code {server.poll()})")
        time.sleep(0.2)
    status, answer = call("POST", "/events", {"id": "e1", "type": "member.registered", "at": "2025-01-05T10:00:00+09:00",
                                             "member": "m1"})
    assert status == 200 and answer["applied"] == ["e1"], answer
    cart = {"id": "q1", "type": "order.placed", "at": "2025-01-06T10:00:00+09:00", "member": "m1", "order": "o1",
            "course": "one_off", "payment": {"method": "credit_card"},
            "lines": [{"sku": "TEE-M", "qty": 2, "unit_price": 5000, "tax_rate": 0.10}], "redeem": {"points": "max"}}
    status, quote = call("POST", "/quote", cart)
    # AND-8 member price floor(5,000 x 0.95) = 4,750 x 2 = 9,500 ex. tax; tax 950; grand total 10,450.
    # AND-4: 500 points for signing up, all usable (AND-3 cap 5,000): to pay 10,450 - 500 = 9,950.
    # AND-1: 1% of 9,500 = 95 points, pending until shipped.
    assert status == 200, quote
    assert quote["totals"]["grand_total"] == 10450 and quote["totals"]["to_pay"] == 9950, quote
    assert quote["redeem"]["applied"] == 500 and quote["earn"]["points"] == 95, quote
    ok = True
    print(f"serve: /healthz and a quote answered on port {port} (to pay 9,950 yen, earns 95 points)")
finally:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    if not ok:
        log.seek(0)
        sys.stderr.write(log.read())
