"""Metamorphic properties of the ledger (issue 17), on random streams for every program and store.

A property here relates two runs that must agree, so no expected figure is needed beyond the other
run's:

(a) the report at a past time T equals the report of the stream cut at T (every member, every
    figure, the effects; a member registered after T is absent) -- memory, SQLite, PostgreSQL;
(b) an order with a line of qty n and the same order with n lines of qty 1 (same sku, same price)
    earn the same, cost the same, leave the same balances after shipping and delivery, and after
    returning k units (the split order returns k of its lines, naming ``line``);
(c) the same stream gives the same ledger on memory, SQLite and PostgreSQL (ids shared across
    members included), and feeding it again applies nothing and changes nothing;
(d) a program whose unit is worth k yen gives the yen figures of the same program worth 1 yen
    with k-times amounts (ansage and andest, see ``k_yen_variant``).

Profiles as in tests/test_invariants.py: the default (CI) is quick; ``LOYALTY_RELIABILITY=long``
runs many more examples. PostgreSQL needs LOYALTY_PG_URL; without it those cases are skipped.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional
from unittest import mock
from urllib.parse import quote as url_quote

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import engine.shell.loading
from engine.shell.api import quote as quote_cart
from engine.shell.cli import cli
from engine.model.events import decode_cart
from engine.format.loader import load_program
from engine.run.report import member_dict
from engine.run.runner import RunResult, Runner
from engine.store import open_store
from engine.store.memory import MemoryStore
from tests.test_fuzz import read_program
from tests.test_invariants import (JST, LONG, PHASES, STARTS, chance, dump_store, encode, integer, pick,
                                   program_of, streams, subset, write_stats)

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("andest", "ansage", "amare", "rewards_circle", "manda")
STORES = ("memory", "sqlite", "postgresql")
PG_URL = os.environ.get("LOYALTY_PG_URL")
NO_PG = "LOYALTY_PG_URL is not set (source .ci/pg.sh starts a throwaway PostgreSQL)"
N = (lambda ci, long: long if LONG else ci)
STREAM_MAX = 120 if LONG else 30
STATS: dict[str, Counter] = defaultdict(Counter)
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)


@pytest.fixture(scope="module", autouse=True)
def _figures():
    started = time.perf_counter()
    yield
    write_stats("metamorphic", STATS, time.perf_counter() - started)


@contextlib.contextmanager
def pg_schema():
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}options={url_quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@contextlib.contextmanager
def ledger_url(kind: str, tmp: Path, name: str):
    """Where a ledger of this kind lives: :memory:, a SQLite file, a fresh PostgreSQL schema."""
    if kind == "memory":
        yield ":memory:"
    elif kind == "sqlite":
        yield str(tmp / f"{name}.db")
    else:
        with pg_schema() as url:
            yield url


def needs_store(kind: str) -> None:
    if kind == "postgresql" and not PG_URL:
        pytest.skip(NO_PG)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def write_events(path: Path, events: list[dict]) -> Path:
    path.write_bytes(b"".join(encode(e) + b"\n" for e in events))
    return path


# --- (a) a past as-of is the ledger as it stood then ---------------------------------------------

def run_report(program_name: str, events_file: Path, db: str, as_of: str) -> dict:
    """`loyalty run PROGRAM EVENTS --db DB --as-of T --json` (in process, the program loaded once)."""
    with mock.patch.object(engine.shell.loading, "load_program", program_file_cache):
        result = CliRunner().invoke(cli, ["run", str(ROOT / "programs" / f"{program_name}.yaml"), str(events_file),
                                          "--db", db, "--as-of", as_of, "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)[:500]
    assert result.exit_code in (0, 1), result.output[-500:]
    return json.loads(result.stdout)


@lru_cache(maxsize=None)
def program_file_cache(path):
    return load_program(path)


def past_time(draw, events: list[dict]) -> datetime:
    """A moment within the stream: an event's own instant (ties included), a second before or after
    one, somewhere in the gap after it, or before the first event."""
    i = integer(draw, 0, len(events) - 1)
    at = instant(events[i]["at"])
    how = integer(draw, 0, 4)
    if how == 0:
        return at
    if how == 1:
        return at - timedelta(seconds=1)
    if how == 2:
        return at + timedelta(seconds=1)
    if how == 3 and i + 1 < len(events):
        return at + (instant(events[i + 1]["at"]) - at) / 2
    return instant(events[0]["at"]) - timedelta(days=integer(draw, 0, 3))


def comparable(report: dict) -> dict:
    """What a report says of the ledger at its as-of (not what this run applied or refused)."""
    return {"as_of": report["as_of"], "program": report["program"], "members": report["members"],
            "effects": sorted(json.dumps(e, sort_keys=True, ensure_ascii=False) for e in report["effects"])}


def differences(whole: dict, upto: dict) -> str:
    """The first few members (and the effects) on which two reports differ, briefly."""
    out = []
    for m in sorted(set(whole["members"]) | set(upto["members"])):
        a, b = whole["members"].get(m), upto["members"].get(m)
        if a != b:
            brief = lambda x: None if x is None else {"points": x["points"], "tier": x["tier"],  # noqa: E731
                                                      "lots": len(x["lots"])}
            out.append(f"{m}: whole {brief(a)}, cut {brief(b)}")
    if comparable(whole)["effects"] != comparable(upto)["effects"]:
        out.append(f"effects: whole {len(whole['effects'])}, cut {len(upto['effects'])}")
    return "; ".join(out[:4]) or "as_of / program"


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("name", PROGRAMS)
def test_hole17_14_report_at_a_past_time_equals_the_stream_cut_there(name, kind):
    """(a) Run the whole stream and report as of a past T; run only the events up to T (a new
    ledger) and report as of T: the two reports are one. The stream keeps each member's events in
    time order (the stream as a whole too), so the cut is a prefix and every event fares the same
    in both runs."""
    needs_store(kind)

    @settings(max_examples=N(4, 150), **SETTINGS)
    @given(data=st.data())
    def check(data):
        # odd text but no control characters: those are refused (tests/test_invariants.py), and a
        # report echoing one is another matter than the time it is made for
        events = data.draw(streams(name, STREAM_MAX, late=False, hostile="odd"), label="stream")
        at = past_time(data.draw, events).astimezone(JST)
        cut = [e for e in events if instant(e["at"]) <= at]
        note(f"as of {at.isoformat()}: {len(cut)} of {len(events)} events")
        STATS[name]["as_of_compared"] += 1
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            whole_file, cut_file = write_events(tmp / "whole.jsonl", events), write_events(tmp / "cut.jsonl", cut)
            with ledger_url(kind, tmp, "whole") as db:
                whole = run_report(name, whole_file, db, at.isoformat())
            with ledger_url(kind, tmp, "cut") as db:
                upto = run_report(name, cut_file, db, at.isoformat())
        assert comparable(whole) == comparable(upto), \
            f"as of {at.isoformat()} the whole stream's report differs from the stream cut there: {differences(whole, upto)}"

    check()


# --- (b) a line of qty n is n lines of qty 1 -----------------------------------------------------

def figures(program, store: MemoryStore, member: str, at: datetime) -> Optional[dict]:
    """A member's figures (balances, tier, lots by amount and state), not ids."""
    state = store.load(member)
    if state is None:
        return None
    view = member_dict(program, state, at)
    lots = sorted((lot["amount"], lot["state"], lot["rule"], lot["kind"], lot["expires_on"]) for lot in view["lots"])
    return {"points": view["points"], "tier": view["tier"], "tier_amount": view.get("tier_amount"), "lots": lots}


def quote_figures(q: dict) -> dict:
    return {"totals": q.get("totals"), "redeem": {k: v for k, v in q.get("redeem", {}).items() if k != "why"},
            "earn": q.get("earn"), "errors": [e["field"] for e in q.get("errors", [])], "tier": q.get("tier")}


def outcome(result: RunResult, event_id: str) -> str:
    if event_id in result.applied:
        return "applied"
    if event_id in result.skipped:
        return "skipped"
    return "rejected"


@st.composite
def split_cases(draw, name: str) -> dict:
    """A member with points, and an order with one line of qty n among up to two others; what is
    done with it afterwards (ship, deliver, return k units)."""
    program = program_of(name)
    start = pick(draw, STARTS)
    n = integer(draw, 2, 5)
    target = {"sku": "S", "product": "TEE", "qty": n, "unit_price": pick(draw, (1, 99, 980, 1234, 4750, 12000))
              if chance(draw, 2) else integer(draw, 0, 30_000), "tax_rate": pick(draw, (0.08, 0.10))}
    tags = subset(draw, ("sale", "no_points", "points_5pct"), 0, 1)
    if tags:
        target["tags"] = tags
    if name == "amare" or chance(draw, 4):
        target["pv"] = pick(draw, (10, 60, 333.5))
    others = [{"sku": sku, "product": sku, "qty": integer(draw, 1, 3), "unit_price": integer(draw, 0, 20_000),
               "tax_rate": tax, **({"pv": 60} if name == "amare" else {})}
              for sku, tax in subset(draw, (("A", 0.10), ("F", 0.08)), 0, 2)]
    position = integer(draw, 0, len(others))
    payment: dict[str, Any] = {"method": pick(draw, ("credit_card", "cash_on_delivery", "np_deferred", "bank_transfer"))}
    if payment["method"] == "credit_card" and chance(draw, 2):
        payment["card_brand"] = "jcb"
    cart: dict[str, Any] = {"order": "o1", "course": pick(draw, ("one_off", "subscription")), "payment": payment}
    if chance(draw, 2):
        cart["shipping"] = pick(draw, (0, 500, 800))
    if chance(draw, 3):
        cart["coupon_discount"] = pick(draw, (100, 500, 1000))
    redeem = pick(draw, ("none", "max", "n"))
    if redeem == "max":
        cart["redeem"] = {"points": "max"} if program.id != "rewards_circle" else {"credits": 1}
    elif redeem == "n":
        cart["redeem"] = {"points": integer(draw, 1, 700)} if program.id != "rewards_circle" else {"credits": 1}
    return {"start": start, "n": n, "target": target, "others": others, "position": position, "cart": cart,
            "grant": integer(draw, 0, 3000), "k": integer(draw, 1, n), "subscribe": chance(draw, 2),
            # a program that takes no returns: the order is cancelled once shipped instead
            "returns": any(v.returns is not None for v in program.versions) and not chance(draw, 5),
            "days": [integer(draw, 0, 3), integer(draw, 1, 5), integer(draw, 0, 6), integer(draw, 15, 40)]}


def split_streams(case: dict) -> tuple[list[dict], list[dict], list[str]]:
    """The stream with the whole line and the stream with it split; the ids of the events after
    which the figures are compared."""
    t = case["start"]
    stamp = lambda days: (t + timedelta(days=days)).isoformat()   # noqa: E731
    head = [{"id": "r", "type": "member.registered", "at": stamp(0), "member": "m1"}]
    if case["grant"]:
        head.append({"id": "g", "type": "points.granted", "at": stamp(0), "member": "m1", "amount": case["grant"],
                     "reason": "goodwill"})
    if case["subscribe"]:
        head.append({"id": "sub", "type": "subscription.started", "at": stamp(0), "member": "m1"})
    placed, shipped, delivered, returned = case["days"]
    at_place, at_ship = 1, 1 + placed
    at_deliver, at_return = at_ship + shipped, at_ship + shipped + delivered
    n, k, pos = case["n"], case["k"], case["position"]
    whole_lines = case["others"][:pos] + [case["target"]] + case["others"][pos:]
    unit = dict(case["target"], qty=1)
    split_lines = case["others"][:pos] + [dict(unit) for _ in range(n)] + case["others"][pos:]
    streams_ = []
    for lines, back in ((whole_lines, [{"sku": "S", "qty": k}]),
                        (split_lines, [{"sku": "S", "qty": 1, "line": pos + i} for i in range(k)])):
        if case["returns"]:
            then = [{"id": "d", "type": "order.delivered", "at": stamp(at_deliver), "member": "m1", "order": "o1"},
                    {"id": "b", "type": "order.returned", "at": stamp(at_return), "member": "m1", "order": "o1",
                     "lines": back}]
        else:
            then = [{"id": "b", "type": "order.cancelled", "at": stamp(at_deliver), "member": "m1", "order": "o1"}]
        streams_.append(head + [
            {"id": "o", "type": "order.placed", "at": stamp(at_place), "member": "m1", **case["cart"], "lines": lines},
            {"id": "s", "type": "order.shipped", "at": stamp(at_ship), "member": "m1", "order": "o1"},
            *then,
            # later: delayed restores (ANS-12: 14 days) and whatever else the clock brings
            {"id": "z", "type": "points.granted", "at": stamp(at_return + case["days"][3]), "member": "m1",
             "amount": 1, "reason": "later"},
        ])
    return streams_[0], streams_[1], ["o", "s", "d", "b", "z"] if case["returns"] else ["o", "s", "b", "z"]


@pytest.mark.parametrize("name", PROGRAMS)
def test_hole17_01_splitting_a_line_into_unit_lines_changes_no_figure(name):
    """(b) Same cart, one line of qty n or n lines of qty 1: the same quote (totals, tax, points the
    order may and does use, points it earns), the same outcome of every event, and the same balances,
    tier and lots after placing, shipping, delivering, returning k units and later."""
    program = program_of(name)

    @settings(max_examples=N(25, 1500), **SETTINGS)
    @given(case=split_cases(name))
    def check(case):
        whole, split, marks = split_streams(case)
        note(json.dumps(split, ensure_ascii=False, default=str))
        STATS[name]["split_orders"] += 1
        runs = []
        for events in (whole, split):
            store = MemoryStore(program.id)
            runner = Runner(program, store)
            seen = {}
            for event in events:
                if event["id"] == "o":
                    state = runner.state_of("m1")
                    seen["quote"] = quote_figures(quote_cart(program, state, decode_cart(encode(event))))
                result = RunResult()
                runner.apply_one(encode(event), result)
                runner.commit()
                seen[event["id"]] = outcome(result, event["id"])
                if event["id"] in marks:
                    seen[f"{event['id']}:figures"] = figures(program, store, "m1", instant(event["at"]))
            runs.append(seen)
        one, many = runs
        for key in ["quote"] + [m for mark in marks for m in (mark, f"{mark}:figures")]:
            assert one[key] == many[key], (f"{key}: qty {case['n']} on one line gives {one[key]}, "
                                           f"{case['n']} lines of qty 1 give {many[key]}")
        if one["b"] == "applied":
            STATS[name]["split_returns_applied" if case["returns"] else "split_cancels_applied"] += 1

    check()


# --- (c) the same stream gives the same ledger on every store ------------------------------------

def ledger_of(store) -> dict:
    return {"members": dump_store(store), "effects": sorted(json.dumps(e, sort_keys=True, ensure_ascii=False)
                                                            for e in store.effects())}


def run_on(kind: str, url: str, program, events: list[dict]) -> tuple[dict, dict, dict]:
    """Feed the stream to a new ledger at ``url``, then again: the outcomes of both runs and the
    ledger after each."""
    outcomes, ledgers = [], []
    for _ in range(2):
        store = open_store(url, program.id)
        try:
            result = Runner(program, store).run(encode(e) for e in events)
            outcomes.append({"applied": result.applied, "skipped": result.skipped,
                             "rejected": [r["event"] for r in result.rejected]})
            ledgers.append(ledger_of(store))
        finally:
            store.close()
    return outcomes[0], outcomes[1], {"first": ledgers[0], "again": ledgers[1]}


@pytest.mark.parametrize("text", ["odd", "control"])
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("name", PROGRAMS)
def test_hole17_02_the_same_stream_gives_the_same_ledger_on_every_store(name, kind, text):
    """(c) A random stream (ids shared across members, late events, odd text; with ``control``
    also control characters and lone surrogates, item 10) on the in-memory store and on SQLite /
    PostgreSQL: the same events applied, skipped and refused, the same states, ledger entries and
    effects. Fed again, nothing applies and nothing changes."""
    needs_store(kind)
    program = program_of(name)

    @settings(max_examples=N(5, 200), **SETTINGS)
    @given(events=streams(name, STREAM_MAX, hostile=text == "control" or "odd"))
    def check(events):
        STATS[name][f"store_streams_{kind}"] += 1
        memory = MemoryStore(program.id)
        first = Runner(program, memory).run(encode(e) for e in events)
        expected = {"applied": first.applied, "skipped": first.skipped,
                    "rejected": [r["event"] for r in first.rejected]}
        reference = ledger_of(memory)
        again = Runner(program, memory).run(encode(e) for e in events)
        assert again.applied == [], f"memory: fed again, {again.applied} applied"
        assert ledger_of(memory) == reference, "memory: fed again, the ledger changed"
        with tempfile.TemporaryDirectory() as tmp, ledger_url(kind, Path(tmp), "c") as url:
            got, got_again, ledgers = run_on(kind, url, program, events)
        assert got == expected, (f"{kind} applied/skipped/refused other events than the in-memory store: "
                                 + "; ".join(f"{k}: {kind} {got[k]}, memory {expected[k]}" for k in got
                                             if got[k] != expected[k]))
        assert ledgers["first"] == reference, (f"{kind} and the in-memory store hold different ledgers: members "
                                               f"{[m for m in reference['members'] if reference['members'][m] != ledgers['first']['members'].get(m)]}")
        assert got_again["applied"] == [], f"{kind}: fed again, {got_again['applied']} applied"
        assert ledgers["again"] == reference, f"{kind}: fed again, the ledger changed"

    check()


# --- (d) a unit worth k yen ----------------------------------------------------------------------

K_PROGRAMS = ("ansage", "andest")
# k divides every unit amount of those programs (bonuses 500 and 300, the cap 5,000, rewards 700 and
# 800), and rate / k is a short decimal: the k-yen variant is exact.
KS = (2, 5, 10)


def _divide_rate(rate, k: int):
    if isinstance(rate, dict):
        return {**rate, "values": {t: _divide_rate(r, k) for t, r in rate["values"].items()}}
    return float(Decimal(repr(rate)) / k) if rate else rate


@lru_cache(maxsize=None)
def k_yen_variant(name: str, k: int, tmp: str):
    """The program with its unit worth k yen: unit_value_yen k, every unit amount (bonuses, the cap
    per order, reward prices) divided by k, every earn rate divided by k (units per yen). The yen
    amounts (minimum to pay, tier thresholds, prices) stay. Well defined for ansage and andest;
    amare (points per PV, exchange fees by units), rewards_circle (threshold credits per yen,
    per-amount use limits, a revision that converts units) and manda (no points) have no single
    scale that keeps every figure an integer, so they are left out."""
    data = read_program(name)
    for version in data["versions"]:
        red = version.get("redemption")
        if red:
            assert red["unit_value_yen"] == 1
            red["unit_value_yen"] = k
            if "cap_per_order" in red:
                red["cap_per_order"]["units"] //= k
        for bonus in version.get("bonuses", []):
            assert bonus["units"] % k == 0
            bonus["units"] //= k
        for reward in (version.get("catalog") or {}).get("rewards", []):
            assert reward["units"] % k == 0
            reward["units"] //= k
        earning = version.get("earning")
        if earning:
            for row in earning["rates"]:
                row["rate"] = _divide_rate(row["rate"], k)
    path = Path(tmp) / f"{name}-{k}yen.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_program(path)


@st.composite
def scaled_streams(draw, name: str, k: int) -> tuple[list[dict], list[dict]]:
    """One stream in the k-yen program's units and the same in 1-yen units (every amount times k).
    Prices are multiples of 10,000 k yen and redemptions of 100 units, orders use one tax-free set
    of rates (no tags, no coupon): so every earn is a whole number in both programs (1% of a
    multiple of 100 k yen), and the two runs must agree to the yen, not up to a rounding."""
    now = pick(draw, STARTS)
    small, big = [], []
    members = ["m1", "m2"][: integer(draw, 1, 2)]
    orders: dict[str, tuple[str, str]] = {}   # order -> (member, status)
    rewards = ("cutting_board", "illustration_pouch") if name == "ansage" else ()

    def add(type_, member, scale: dict | None = None, **fields):
        nonlocal now
        now += pick(draw, (timedelta(0), timedelta(hours=3), timedelta(days=integer(draw, 1, 20)),
                           timedelta(days=integer(draw, 30, 400))))
        event = {"id": f"e{len(small)}", "type": type_, "at": now.isoformat(), "member": member, **fields}
        small.append(event)
        bigger = json.loads(json.dumps(event))
        for path, value in (scale or {}).items():
            where = bigger
            for key in path[:-1]:
                where = where[key]
            where[path[-1]] = value * k
        big.append(bigger)

    for m in members:
        fields = {"birthday": f"19{integer(draw, 50, 99)}-{integer(draw, 1, 12):02d}-01"} if chance(draw, 2) else {}
        add("member.registered", m, **fields)
    for _ in range(integer(draw, 3, 25 if not LONG else 80)):
        m = pick(draw, members)
        what = pick(draw, ("grant", "grant", "order", "order", "order", "ship", "deliver", "cancel", "return",
                           "hold", "release", "review"))
        if what == "grant":
            amount = integer(draw, 1, 400)
            add("points.granted", m, {("amount",): amount}, amount=amount, reason="x")
        elif what in ("hold", "release"):
            amount = integer(draw, 1, 200)
            add(f"points.{'held' if what == 'hold' else 'released'}", m, {("amount",): amount}, amount=amount,
                reason="x")
        elif what == "review":
            add("review.posted", m, product=pick(draw, ("TEE", "BAG")))
        elif what == "order":
            order = f"o{len(orders) + 1}"
            lines = [{"sku": sku, "qty": integer(draw, 1, 3), "unit_price": 10_000 * k * integer(draw, 1, 3),
                      "tax_rate": tax} for sku, tax in subset(draw, (("A", 0.10), ("F", 0.08)), 1, 2)]
            method = pick(draw, ("credit_card", "cash_on_delivery", "np_deferred", "bank_transfer"))
            cart: dict[str, Any] = {"order": order, "course": pick(draw, ("one_off", "subscription")),
                                    "payment": {"method": method}, "lines": lines}
            if method == "credit_card" and chance(draw, 2):
                cart["payment"]["card_brand"] = "jcb"
            if chance(draw, 2):
                cart["shipping"] = pick(draw, (0, 500, 800))
            scale = {}
            if chance(draw, 2):
                points = 100 * integer(draw, 1, 30)
                cart["redeem"] = {"points": points}
                scale[("redeem", "points")] = points
            if rewards and chance(draw, 4):
                cart["exchanges"] = [{"reward": pick(draw, rewards), "qty": 1}]
            add("order.placed", m, scale, **cart)
            orders[order] = (m, "placed")
        elif orders:
            order = pick(draw, sorted(orders))
            member, _ = orders[order]
            if what == "return":
                placed = next(e for e in small if e["type"] == "order.placed" and e["order"] == order)
                # the whole order back: each line's points come back whole (a share of a line's
                # points is not a multiple of k)
                add("order.returned", member, order=order,
                    lines=[{"sku": line["sku"], "qty": line["qty"], "line": i} for i, line in enumerate(placed["lines"])])
            else:
                add({"ship": "order.shipped", "deliver": "order.delivered", "cancel": "order.cancelled"}[what],
                    member, order=order)
    return small, big


@pytest.mark.parametrize("name", K_PROGRAMS)
def test_hole17_06_a_unit_worth_k_yen_gives_the_yen_figures_of_a_1_yen_unit(name, tmp_path_factory):
    """(d) The k-yen variant run on a stream, the program itself (1 yen a unit) on the same stream
    with every unit amount times k: the same events apply; every order's quote has the same yen
    totals, uses and earns k times fewer units (its most usable units, floor(max / k)); every
    member's balance in every state is k times smaller, the tier the same."""
    tmp = str(tmp_path_factory.mktemp("kyen"))
    one = program_of(name)

    @settings(max_examples=N(12, 600), **SETTINGS)
    @given(data=st.data())
    def check(data):
        k = pick(data.draw, KS)
        kyen = k_yen_variant(name, k, tmp)
        small, big = data.draw(scaled_streams(name, k), label="stream")
        note(f"k = {k}")
        STATS[name]["k_yen_streams"] += 1
        stores = MemoryStore(one.id), MemoryStore(kyen.id)
        runners = Runner(one, stores[0]), Runner(kyen, stores[1])
        for ev1, evk in zip(big, small):
            member = ev1["member"]
            if ev1["type"] == "order.placed":
                q1 = quote_cart(one, runners[0].state_of(member), decode_cart(encode(ev1)))
                qk = quote_cart(kyen, runners[1].state_of(member), decode_cart(encode(evk)))
                if "totals" in q1 and "totals" in qk:
                    STATS[name]["k_yen_quotes"] += 1
                    assert q1["totals"] == qk["totals"], f"{evk['id']}: yen totals differ"
                    assert q1["redeem"]["applied"] == k * qk["redeem"]["applied"], f"{evk['id']}: units used"
                    assert q1["redeem"]["max"] // k == qk["redeem"]["max"], f"{evk['id']}: most units usable"
                    assert q1["earn"]["points"] == k * qk["earn"]["points"], \
                        (f"{evk['id']}: the 1-yen program earns {q1['earn']['points']} units (¥{q1['earn']['points']}), "
                         f"the {k}-yen one {qk['earn']['points']} (¥{k * qk['earn']['points']})")
            results = RunResult(), RunResult()
            for runner, event, result in zip(runners, (ev1, evk), results):
                runner.apply_one(encode(event), result)
            assert outcome(results[0], ev1["id"]) == outcome(results[1], evk["id"]), \
                f"{evk['id']}: {outcome(results[0], ev1['id'])} at 1 yen a unit, {outcome(results[1], evk['id'])} at {k}"
            at = instant(evk["at"])
            for m in {e["member"] for e in small}:
                f1, fk = figures(one, stores[0], m, at), figures(kyen, stores[1], m, at)
                if f1 is None or fk is None:
                    assert f1 == fk
                    continue
                assert f1["points"] == {s: k * v for s, v in fk["points"].items()}, \
                    f"after {evk['id']}: {m} holds {f1['points']} at 1 yen, {fk['points']} units of {k} yen"
                assert f1["tier"] == fk["tier"], f"after {evk['id']}: {m}'s tier"

    check()
