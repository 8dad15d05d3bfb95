"""Issue 20: docs/CONTRACT.md shows every event field and every answer field with an example.

The examples are checked against the engine's own types: each event line decodes with the
engine's decoder (engine/model/events.py), every event type has a line, and every field of every
event Struct (and of its nested Payment, Line, Redeem, Exchange, ReturnLine) appears in one; each
answer example converts to the service's answer Struct (engine/shell/service.py) and holds every
field of it, nested Structs included. A field added to a type without an example fails here.
"""
from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import msgspec
import pytest

from engine.model import events as ev

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")


def block(marker: str) -> str:
    """The text of the ```json block right after the <!-- marker --> line."""
    found = re.search(rf"<!-- {re.escape(marker)} -->\n```json\n(.*?)\n```", CONTRACT, re.S)
    assert found, f"CONTRACT.md: no example block after <!-- {marker} -->"
    return found.group(1)


def event_types() -> dict[str, type]:
    return {cls.__struct_config__.tag: cls for cls in ev.Base.__subclasses__()}


def _structs_in(hint) -> list[type]:
    """The msgspec Struct types a field's type hint holds (through Optional, Union, tuple, list, dict)."""
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return [hint]
    found = []
    for arg in typing.get_args(hint):
        found += _structs_in(arg)
    return found


def missing_fields(struct: type, objects: list) -> list[str]:
    """Fields of struct (and of the Structs its fields hold) that none of the objects shows."""
    objects = [o for o in objects if isinstance(o, dict)]
    missing = [f"{struct.__name__}.{name}" for name in struct.__struct_fields__ if not any(name in o for o in objects)]
    hints = typing.get_type_hints(struct, include_extras=True)
    for name in struct.__struct_fields__:
        for inner in _structs_in(hints[name]):
            values = []
            for o in objects:
                value = o.get(name)
                values += value if isinstance(value, list) else [value]
            missing += missing_fields(inner, values)
    return missing


def test_issue20_every_event_type_has_an_example_line_that_decodes():
    lines = block("examples: events").splitlines()
    decoded = [ev.decode_event(line) for line in lines]   # raises on a line the engine would refuse
    assert sorted({type(e).__struct_config__.tag for e in decoded}) == sorted(event_types())


def test_issue20_every_event_field_appears_in_an_example():
    objects = [json.loads(line) for line in block("examples: events").splitlines()]
    missing = []
    for tag, cls in event_types().items():
        missing += missing_fields(cls, [o for o in objects if o["type"] == tag])
    assert missing == [], f"CONTRACT.md: add these fields to the event examples: {missing}"


def test_issue20_every_event_field_is_named_in_the_contract_text():
    # the tables name each field (in backticks) beside the examples
    names = set()
    for cls in event_types().values():
        names |= set(cls.__struct_fields__)
    for cls in (ev.Payment, ev.Line, ev.Redeem, ev.Exchange, ev.ReturnLine):
        names |= set(cls.__struct_fields__)
    unnamed = sorted(n for n in names if not re.search(rf"`{n}\??`|[{{,] ?{n}\??[,}}]|\"{n}\"", CONTRACT))
    assert unnamed == []


@pytest.mark.parametrize("answer", ["EventsAnswer", "Quote", "Member", "Error", "Health"])
def test_issue20_every_answer_field_has_an_example(answer):
    pytest.importorskip("litestar")
    from engine.shell import service

    struct = getattr(service, answer)
    example = json.loads(block(f"example: {answer}"))
    msgspec.convert(example, type=struct)   # the example is a valid answer
    assert missing_fields(struct, [example]) == [], f"CONTRACT.md: the {answer} example misses fields"


def test_issue20_the_quote_example_figures_follow_the_rules():
    # ANS-2 / ANS-13 (ansage): 2 x 3,000 yen at 8% = 6,000 ex. tax, tax floor(6,000 x 0.08) = 480,
    # grand total 6,480; the member's 300 valid points are all used (ANS-9): to pay 6,180.
    quote = json.loads(block("example: Quote"))
    totals = quote["totals"]
    assert totals["tax"]["0.08"] == 6000 * 8 // 100 == 480
    assert totals["grand_total"] == 6000 + 480 == 6480
    assert totals["to_pay"] == 6480 - quote["redeem"]["applied"] == 6180
