"""The benchmark's workloads and comparisons, at tiny sizes: the events are valid and the engine
accepts every one, the three &est quotes agree, the report renders. No timing is asserted."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from bench import handwritten, report, suite, workloads
from bench.history import long_history
from engine.shell.api import Engine
from engine.format.loader import load_program
from engine.run.runner import Runner
from engine.store import MemoryStore, SQLiteStore

PROGRAMS = suite.programs()
ANDEST = Path(suite.ROOT / "programs" / "andest.yaml")


def _replay(program, n: int, store=None):
    store = store if store is not None else MemoryStore(program.id)
    result = Runner(program, store).run(workloads.encoded(program.id, n))
    return result, store


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_every_generated_event_is_accepted(path):
    program = load_program(path)
    result, store = _replay(program, 400)
    assert result.rejected == []
    assert len(result.applied) == 400
    assert suite.members_of(store)


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_generated_quote_carts_are_valid_carts(path):
    program = load_program(path)
    _, store = _replay(program, 300)
    engine = Engine(program, store)
    for cart in workloads.quote_carts(program.id, suite.members_of(store), 20):
        q = engine.quote(cart)
        assert "totals" in q, q
        assert not [e for e in q["errors"] if e["field"] in ("member", "at", "lines")], q["errors"]


def test_workloads_are_deterministic_exact_and_in_member_time_order():
    a = workloads.generate("andest", 700)
    assert a == workloads.generate("andest", 700)
    assert len(a) == 700 and len({e["id"] for e in a}) == 700
    last: dict = {}
    for e in a:
        assert e["at"] >= last.get(e["member"], ""), e
        last[e["member"]] = e["at"]
    # a member's history does not depend on the workload's size
    small = [e for e in workloads.generate("andest", 200) if e["member"] == "m0"]
    big = [e for e in a if e["member"] == "m0"]
    assert [dict(e, id=None) for e in small] == [dict(e, id=None) for e in big[:len(small)]]
    kinds = {e["type"] for e in a}
    assert {"member.registered", "order.placed", "order.shipped", "order.delivered", "order.cancelled",
            "order.returned", "review.posted", "points.granted"} <= kinds
    assert any("redeem" in e for e in a if e["type"] == "order.placed")


def test_an_unknown_program_gets_the_generic_workload():
    events = workloads.generate("someone_new", 50)
    assert len(events) == 50 and events[0]["type"] == "member.registered"


def test_sqlite_replay_of_a_workload(tmp_path):
    program = load_program(ANDEST)
    store = SQLiteStore(str(tmp_path / "l.db"), program.id)
    result, _ = _replay(program, 300, store)
    store.close()
    assert result.rejected == [] and len(result.applied) == 300


def test_engine_handwritten_and_zen_agree_on_andest_carts():
    program = load_program(ANDEST)
    _, store = _replay(program, 600)
    out = suite.compare(program, store, 40, 1)
    assert out["agree"] == out["carts"] == 40, out["mismatches"]


def test_handwritten_floor_matches_the_engine_on_a_worked_cart():
    program = load_program(ANDEST)
    engine = Engine(program)
    engine.apply({"id": "r", "type": "member.registered", "at": "2025-01-05T10:00:00+09:00", "member": "m1"})
    cart = {"id": "c", "type": "order.placed", "at": "2025-01-06T10:00:00+09:00", "member": "m1", "order": "o1",
            "course": "one_off", "payment": {"method": "credit_card"}, "redeem": {"points": "max"},
            "lines": [{"sku": "TEE-M", "qty": 2, "unit_price": 5000, "tax_rate": 0.10},
                      {"sku": "JAM", "qty": 1, "unit_price": 777, "tax_rate": 0.08, "tags": ["points_5pct"]}]}
    at = datetime.fromisoformat(cart["at"])
    hand = handwritten.quote(handwritten.member_view(program, engine.runner.state_of("m1"), at), cart, at)
    assert handwritten.summary(hand) == handwritten.engine_summary(engine.quote(cart))
    assert hand["earn"] == (9500 * 1 + 738 * 5) // 100   # floor(Σ net × rate), once per order


def test_long_history_member_is_quoted_and_applied():
    program = load_program(ANDEST)
    for n in (10, 301):
        state = long_history(program, n, workloads.QUOTE_AT)
        assert len(state.all_lots()) == n
        out = suite.scale_lots(program, n, 2)
        assert out["lots"] == n and out["valid_balance"] > 0


def test_scale_child_runs_in_process():
    from bench.scale import run

    out = run(str(ANDEST), 250, "memory")
    assert out["applied"] == 250 and out["rejected"] == 0 and out["peak_mib"] > 0


def test_report_renders_from_a_tiny_run():
    program = load_program(ANDEST)
    mem, store = suite.replay(program, workloads.encoded("andest", 200), "memory")
    sql, _ = suite.replay(program, workloads.encoded("andest", 200), "sqlite")
    results = {"command": "python -m bench --quick", "date": "today", "seconds": 1.0,
               "machine": {**suite.machine(), "load_avg_end": 0.0}, "quote_at": workloads.QUOTE_AT.isoformat(),
               "sizes": {"quote_carts": 5, "quote_reps": 1, "compare_reps": 1},
               "programs": [{"program": "andest", "file": "andest.yaml", "members": 3, "memory": mem, "sqlite": sql,
                             "quote": suite.quotes(program, store, 5, 1)}],
               "compare": suite.compare(program, store, 5, 1),
               "scale": [{"events": 200, "store": "memory", "seconds": 1.0, "eps": 200.0, "eps_cpu": 200.0,
                          "peak_mib": 50.0, "rss_before_mib": 40.0, "rejected": 0}],
               "lots": [suite.scale_lots(program, 10, 1), suite.scale_lots(program, 40, 1)],
               "validate": {"command": "loyalty validate programs", "exit": 0, "wall_s": 1.0, "startup_s": 0.5,
                            "load_ms": {"andest.yaml": 20.0}}}
    text = report.markdown(results)
    assert "## Targets (issue 8)" in text and "hand-written" in text
    json.dumps(results, default=str)


def test_compare_without_zen_engine_skips_it_with_a_note(monkeypatch):
    program = load_program(ANDEST)
    _, store = _replay(program, 300)
    monkeypatch.setattr(suite, "zen_missing", lambda: "zen-engine is not installed")
    out = suite.compare(program, store, 10, 1)
    assert out["zen"] is None and "not installed" in out["zen_skipped"] and out["agree"] == 10
    assert "ratio_zen" not in out
