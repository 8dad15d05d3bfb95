"""Bad input (CONTRACT.md): every kind is rejected with a reason naming the event id and the field,
the command exits 1, and nothing is half-applied: balances, orders and the member's clock are
exactly as they were before the bad event arrived."""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import Engine
from engine.shell.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = str(ROOT / "programs" / "andest.yaml")
AS_OF = "2025-03-20T00:00:00+09:00"
MEMBERS = ("m1", "m2", "m999")


def ev(id: str, type: str, at: str, member: str = "m1", **fields) -> dict:
    return {"id": id, "type": type, "at": at, "member": member, **fields}


def order(id: str, at: str, member: str = "m1", order: str = "o2", lines=None, **fields) -> dict:
    fields = {"course": "one_off", "payment": {"method": "credit_card"},
              "lines": lines or [{"sku": "A", "qty": 1, "unit_price": 4750, "tax_rate": 0.10}], **fields}
    return ev(id, "order.placed", at, member, order=order, **fields)


# m1: 500 sign-up + 10,000 granted + 109 earned on o1 (2 x 4,512 + 1,900 member price = 10,924 -> 1%),
# o1 delivered on 2025-03-04 (returns accepted until 2025-03-11). m2: the 500 sign-up bonus only.
BASE = [
    ev("g1", "member.registered", "2025-03-01T10:00:00+09:00"),
    ev("g2", "points.granted", "2025-03-01T11:00:00+09:00", amount=10000, reason="goodwill"),
    ev("g3", "member.registered", "2025-03-01T12:00:00+09:00", "m2"),
    order("g4", "2025-03-02T10:00:00+09:00", order="o1", lines=[
        {"sku": "A", "product": "A", "qty": 2, "unit_price": 4750, "tax_rate": 0.10},
        {"sku": "S", "product": "S", "qty": 1, "unit_price": 2000, "tax_rate": 0.10, "tags": ["sale"]}]),
    ev("g5", "order.shipped", "2025-03-03T10:00:00+09:00", order="o1"),
    ev("g6", "order.delivered", "2025-03-04T10:00:00+09:00", order="o1"),
]
BASE_POINTS = {
    "m1": {"valid": 10609, "pending": 0, "held": 0, "used": 0, "expired": 0, "void": 0},
    "m2": {"valid": 500, "pending": 0, "held": 0, "used": 0, "expired": 0, "void": 0},
}

T = "2025-03-05T10:00:00+09:00"
# kind -> (the input line, the event id the reason must name (None: none can be read), the field, more words)
BAD = {
    "malformed-json": ('{"id": "b1", "type": "review.posted", "at": "2025-03-05', None, None, ["malformed JSON"]),
    "not-json-at-all": ("this is not json", None, None, ["malformed JSON"]),
    "unknown-event-type": (ev("b1", "order.teleported", T), "b1", "type", ["unknown event type 'order.teleported'"]),
    "missing-event-type": ({"id": "b1", "at": T, "member": "m1", "order": "o1"}, "b1", "type", []),
    "wrong-type-qty": (order("b1", T, lines=[{"sku": "A", "qty": "2", "unit_price": 4750, "tax_rate": 0.10}]),
                       "b1", "lines[0].qty", ["int", "str"]),
    "wrong-type-amount": (ev("b1", "points.granted", T, amount="100", reason="x"), "b1", "amount", ["int"]),
    "wrong-type-payment-method": (order("b1", T, payment={"method": "bitcoin"}), "b1", "payment.method", ["bitcoin"]),
    "time-without-offset": (ev("b1", "review.posted", "2025-03-05T10:00:00", product="A"), "b1", "at", ["offset"]),
    "unknown-member": (order("b1", T, member="m999"), "b1", "member", ["unknown member m999"]),
    "unknown-order-shipped": (ev("b1", "order.shipped", T, order="o404"), "b1", "order", ["unknown order o404"]),
    "unknown-order-returned": (ev("b1", "order.returned", T, order="o404", lines=[{"sku": "A", "qty": 1}]),
                               "b1", "order", ["unknown order o404"]),
    "negative-grant": (ev("b1", "points.granted", T, amount=-5, reason="x"), "b1", "amount", [">= 1"]),
    "negative-unit-price": (order("b1", T, lines=[{"sku": "A", "qty": 1, "unit_price": -4750, "tax_rate": 0.10}]),
                            "b1", "lines[0].unit_price", [">= 0"]),
    "negative-coupon": (order("b1", T, coupon_discount=-100), "b1", "coupon_discount", [">= 0"]),
    "negative-shipping": (order("b1", T, shipping=-500), "b1", "shipping", [">= 0"]),
    "negative-redeem": (order("b1", T, member="m2", redeem={"points": -100}), "b1", "redeem.points", [">= 0"]),
    "redeem-over-balance": (order("b1", T, member="m2", redeem={"points": 600}), "b1", "redeem.points",
                            ["600", "500"]),
    "redeem-over-the-5000-cap": (order("b1", T, lines=[{"sku": "A", "qty": 2, "unit_price": 9000, "tax_rate": 0.10}],
                                       redeem={"points": 5001}), "b1", "redeem.points", ["5001", "5000", "AND-3"]),
    "hold-over-balance": (ev("b1", "points.held", T, "m2", amount=501, reason="x"), "b1", "amount", ["501", "500"]),
    "release-more-than-held": (ev("b1", "points.released", T, amount=1, reason="x"), "b1", "amount", []),
    "return-after-7-day-window": (ev("b1", "order.returned", "2025-03-12T10:00:00+09:00", order="o1",
                                     lines=[{"sku": "A", "qty": 1}]), "b1", "at", ["2025-03-11", "AND-11"]),
    "return-of-a-sale-item": (ev("b1", "order.returned", T, order="o1", lines=[{"sku": "S", "qty": 1}]),
                              "b1", "lines[0].sku", ["sale", "AND-11"]),
    "return-more-than-bought": (ev("b1", "order.returned", T, order="o1", lines=[{"sku": "A", "qty": 3}]),
                                "b1", "lines[0].qty", []),
    "return-of-an-sku-not-on-the-order": (ev("b1", "order.returned", T, order="o1", lines=[{"sku": "Z", "qty": 1}]),
                                          "b1", "lines[0].sku", []),
    "order-placed-twice": (order("b1", T, order="o1"), "b1", "order", ["already"]),
    "cancel-a-delivered-order": (ev("b1", "order.cancelled", T, order="o1"), "b1", "order", []),
    "registered-twice": (ev("b1", "member.registered", T), "b1", None, ["already registered"]),
    "out-of-order-for-member": (ev("b1", "review.posted", "2025-03-04T09:00:00+09:00", product="A"), "b1", "at",
                                ["out of order"]),
}
KINDS = list(BAD)


def line_of(item) -> str:
    return item if isinstance(item, str) else json.dumps(item)


def snapshot(engine: Engine) -> dict:
    return {m: engine.member(m, AS_OF) for m in MEMBERS}


def check_reason(rejected: dict, kind: str) -> None:
    _, event_id, field, words = BAD[kind]
    reason = rejected["reason"]
    if event_id is not None:
        assert rejected["event"] == event_id
        assert f"event {event_id}" in reason, reason
    if field is not None:
        assert f"field {field}" in reason, reason
    for word in words:
        assert word in reason, reason


# --- the Python API -----------------------------------------------------------------------------

@pytest.fixture
def engine(tmp_path):
    e = Engine(PROGRAM, str(tmp_path / "ledger.db"))
    for event in BASE:
        result = e.apply(event)
        assert result.applied == [event["id"]], result.rejected
    assert {m: e.member(m, AS_OF)["points"] for m in ("m1", "m2")} == BASE_POINTS
    return e


def ledger_rows(e: Engine) -> dict:
    return {m: e.store.entries(m) for m in MEMBERS}


@pytest.mark.parametrize("kind", KINDS)
def test_api_rejects_and_changes_nothing(engine, kind):
    before, rows = snapshot(engine), ledger_rows(engine)
    result = engine.apply(line_of(BAD[kind][0]))
    assert result.applied == [] and result.skipped == []
    assert len(result.rejected) == 1
    check_reason(result.rejected[0], kind)
    assert snapshot(engine) == before
    assert ledger_rows(engine) == rows
    # Nothing moved the member's clock or the review state: an earlier, valid event still applies.
    follow = engine.apply(ev("f1", "review.posted", "2025-03-05T09:00:00+09:00", product="A"))
    assert follow.applied == ["f1"], follow.rejected
    assert engine.member("m1", AS_OF)["points"]["valid"] == before["m1"]["points"]["valid"] + 300


@pytest.mark.parametrize("kind", KINDS)
def test_api_rejects_also_from_a_dict(engine, kind):
    item = BAD[kind][0]
    if isinstance(item, str):
        pytest.skip("not a JSON object")
    before = snapshot(engine)
    result = engine.apply(item)
    assert result.applied == [] and len(result.rejected) == 1
    check_reason(result.rejected[0], kind)
    assert snapshot(engine) == before


def test_rejected_order_is_not_half_recorded(engine):
    # Over the cap: rejected. The same order id with a redemption within the cap then goes through,
    # so the rejected one left no order record, no spend and no earn behind.
    big = [{"sku": "A", "qty": 2, "unit_price": 9000, "tax_rate": 0.10}]
    assert engine.apply(order("b1", T, lines=big, redeem={"points": 5001})).rejected
    result = engine.apply(order("b2", T, lines=big, redeem={"points": 5000}))
    assert result.applied == ["b2"], result.rejected
    points = engine.member("m1", AS_OF)["points"]
    # 2 x 8,550 member price = 17,100 -> 1% = 171 pending; 5,000 used
    assert points == {"valid": 10609 - 5000, "pending": 171, "held": 0, "used": 5000, "expired": 0, "void": 0}


def test_a_rejected_id_may_be_sent_again_corrected(engine):
    assert engine.apply(order("b1", T, member="m2", redeem={"points": 600})).rejected
    result = engine.apply(order("b1", T, member="m2", redeem={"points": 500}))
    assert result.applied == ["b1"] and not result.rejected and not result.skipped
    assert engine.member("m2", AS_OF)["points"]["used"] == 500


def test_return_on_the_last_day_of_the_window_is_accepted(engine):
    # delivered 2025-03-04: day 7 is 2025-03-11 (the rejected case above is 03-12)
    result = engine.apply(ev("r1", "order.returned", "2025-03-11T23:59:00+09:00", order="o1",
                             lines=[{"sku": "A", "qty": 1}]))
    assert result.applied == ["r1"], result.rejected
    # kept: 4,512 + 1,900 = 6,412 -> 64; 109 - 64 = 45 void
    assert engine.member("m1", AS_OF)["points"] == {"valid": 10564, "pending": 0, "held": 0, "used": 0,
                                                   "expired": 0, "void": 45}


# --- the command line -----------------------------------------------------------------------------

def write_jsonl(path: Path, items) -> Path:
    path.write_text("".join(line_of(i) + "\n" for i in items), encoding="utf-8")
    return path


def run_cli(events: Path, db: Path) -> tuple[int, dict, str]:
    result = CliRunner().invoke(cli, ["run", PROGRAM, str(events), "--db", str(db), "--as-of", AS_OF, "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout), result.output


@pytest.fixture(scope="module")
def base_db(tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    db = d / "ledger.db"
    code, report, _ = run_cli(write_jsonl(d / "base.jsonl", BASE), db)
    assert code == 0 and report["rejected"] == [] and report["applied"] == len(BASE)
    assert {m: v["points"] for m, v in report["members"].items()} == BASE_POINTS
    return db, report


def table_dump(db: Path) -> dict:
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("members", "ledger", "effects")}
    finally:
        con.close()


@pytest.mark.parametrize("kind", KINDS)
def test_cli_rejects_and_changes_nothing(tmp_path, base_db, kind):
    src, before = base_db
    db = tmp_path / "ledger.db"
    shutil.copy(src, db)
    tables = table_dump(db)
    code, report, output = run_cli(write_jsonl(tmp_path / "bad.jsonl", [BAD[kind][0]]), db)
    assert code == 1
    assert report["applied"] == 0
    assert len(report["rejected"]) == 1
    rejected = report["rejected"][0]
    check_reason(rejected, kind)
    if BAD[kind][1] is None:
        assert "line 1" in rejected["reason"], rejected
    assert report["members"] == before["members"]
    assert report["effects"] == before["effects"]
    assert table_dump(db) == tables


def test_cli_bad_lines_among_good_ones(tmp_path):
    """Every bad kind in one file between good events (subprocess, the installed command): each bad line is
    rejected in file order, each good one applied, exit 1, and the members are those of the good events alone."""
    bad = []
    for n, kind in enumerate(KINDS, 1):
        item = BAD[kind][0]
        if isinstance(item, dict):
            item = dict(item, id=f"b{n:02d}")
        bad.append(item)
    good_after = [ev("f1", "review.posted", "2025-03-05T09:00:00+09:00", product="A"),
                  ev("f2", "review.posted", "2025-03-06T09:00:00+09:00", "m2", product="B")]
    mixed = write_jsonl(tmp_path / "mixed.jsonl", BASE + bad[: len(bad) // 2] + good_after[:1] + bad[len(bad) // 2:]
                        + good_after[1:])
    clean = write_jsonl(tmp_path / "clean.jsonl", BASE + good_after)
    exe = shutil.which("loyalty") or str(Path(sys.executable).with_name("loyalty"))

    def run(path: Path, db: str):
        proc = subprocess.run([exe, "run", PROGRAM, str(path), "--db", db, "--as-of", AS_OF, "--json"],
                              capture_output=True, text=True, timeout=120)
        assert "Traceback" not in proc.stdout + proc.stderr
        return proc.returncode, json.loads(proc.stdout)

    code, report = run(mixed, str(tmp_path / "mixed.db"))
    clean_code, clean_report = run(clean, ":memory:")
    assert clean_code == 0
    assert code == 1
    assert report["applied"] == len(BASE) + len(good_after)
    ids = [r.get("event") for r in report["rejected"]]
    expected = [None if isinstance(b, str) else b["id"] for b in bad]
    assert ids == expected
    for r, kind in zip(report["rejected"], KINDS):
        assert "reason" in r and r["reason"]
        if BAD[kind][2] is not None:
            assert f"field {BAD[kind][2]}" in r["reason"], r
    assert report["members"] == clean_report["members"]


def test_cli_text_report_prints_rejections_on_stderr(tmp_path, base_db):
    src, _ = base_db
    db = tmp_path / "ledger.db"
    shutil.copy(src, db)
    events = write_jsonl(tmp_path / "bad.jsonl", [BAD["wrong-type-qty"][0]])
    result = CliRunner().invoke(cli, ["run", PROGRAM, str(events), "--db", str(db), "--as-of", AS_OF])
    assert result.exit_code == 1
    assert "rejected: event b1, field lines[0].qty" in result.stderr
    assert "Traceback" not in result.output


def test_cli_malformed_line_names_its_line_number(tmp_path):
    events = tmp_path / "e.jsonl"
    events.write_text(line_of(BASE[0]) + "\n\n" + '{"id": "x", "type": \n' + line_of(BASE[2]) + "\n", encoding="utf-8")
    code, report, _ = run_cli(events, tmp_path / "db")
    assert code == 1
    assert report["applied"] == 2
    (rejected,) = report["rejected"]
    assert "line 3" in rejected["reason"] and "malformed JSON" in rejected["reason"]
