"""Issue 22, done when: on each program's example events, a close at every month end, then
`loyalty liability` over the period, satisfies the roll-forward identity every month in units and
yen; and a report for a closed month is the same before and after later events arrive.

The later events are of two kinds: the next months' events, in order, and the events of one
member held back and delivered after the last close (a late export: their business time lies in
closed months, their booked time after the closes). Those are booked as adjustments of the first
month still open, so no closed month's report moves. (A member the closes have booked happenings
for cannot take events from before them: its events must come in time order, so the late member
is one the ledger had not seen.)
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from engine.model.timeutil import parse_instant
from engine.model.state import OPEN
from engine.run.liability import liability_report, month_end
from tests.test_liability import PROGRAMS, _engine, _month_ends

ROOT = Path(__file__).resolve().parent.parent


def _late_member(events: list[dict]) -> str:
    """The member with the most events (the first such id): its events are held back."""
    counts: dict[str, int] = {}
    for e in events:
        counts[e["member"]] = counts.get(e["member"], 0) + 1
    return max(sorted(counts), key=lambda m: counts[m])


@pytest.mark.parametrize("pid", PROGRAMS)
def test_closed_month_reports_do_not_move_when_later_events_arrive(pid):
    program_path = str(ROOT / "programs" / f"{pid}.yaml")
    lines = [x for x in (ROOT / "examples" / pid / "events.jsonl").read_bytes().splitlines() if x.strip()]
    events = [json.loads(x) for x in lines]
    late_member = _late_member(events)
    held = [raw for raw, e in zip(lines, events) if e["member"] == late_member]
    on_time = [raw for raw, e in zip(lines, events) if e["member"] != late_member]
    assert held, pid
    engine = _engine(":memory:", program_path)
    p = engine.program
    ends = _month_ends(p, lines)
    first = ends[0].astimezone(p.tz)
    start = (first.year, first.month)
    seen: list[dict] = []   # the report made just after each month's close, up to that month
    i = 0
    for end in ends:
        j = i
        while j < len(on_time) and parse_instant(json.loads(on_time[j])["at"], p.tz) <= end:
            j += 1
        assert not engine.apply_many(on_time[i:j]).rejected
        engine.close(end)
        i = j
        local = end.astimezone(p.tz)
        seen.append(liability_report(p, engine.store, start, (local.year, local.month)))
    # the held-back member's events arrive now, after every close: late
    assert not engine.apply_many(held).rejected
    nxt = (ends[-1] + timedelta(microseconds=1)).astimezone(p.tz)
    engine.close(month_end((nxt.year, nxt.month), p))    # the first month still open, closed too
    final = liability_report(p, engine.store, start, (nxt.year, nxt.month))
    # every closed month reads as it did when it was closed
    for k, report in enumerate(seen):
        assert final["months"][:k + 1] == report["months"], (pid, report["months"][-1]["month"])
    # the identity holds every month, units and yen, the adjustment month included
    assert [m["month"] for m in final["months"] if not m["identity"]] == []
    assert all(m["units"]["difference"] == 0 and m["yen"]["difference"] == 0 for m in final["months"])
    # the late member's entries of the closed months are the adjustment month's, and only those:
    # its net change to the open balance up to the last close is the month's late units
    adjustment = final["months"][-1]
    crossing = [x for x in engine.store.entries(late_member)
                if x.at <= ends[-1] and (x.to_state in OPEN) != (x.from_state in OPEN)]
    late_units = sum((1 if x.to_state in OPEN else -1) * x.amount for x in crossing)
    assert (adjustment["late"]["entries"], adjustment["late"]["units"]) == (len(crossing), late_units)
    assert crossing or pid == "manda"   # manda (MAN-*) gives gifts, no units: nothing to adjust
    assert all(m["late"]["entries"] == 0 for m in final["months"][:-1])
