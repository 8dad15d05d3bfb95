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


def blocks(marker: str) -> list[str]:
    """The text of every ```json block right after a <!-- marker --> line (an answer may have several
    examples: members of programs with and without a ladder)."""
    found = re.findall(rf"<!-- {re.escape(marker)} -->\n```json\n(.*?)\n```", CONTRACT, re.S)
    assert found, f"CONTRACT.md: no example block after <!-- {marker} -->"
    return found


def block(marker: str) -> str:
    """The text of the first ```json block right after the <!-- marker --> line."""
    return blocks(marker)[0]


# Fields an answer never holds (docs/CONTRACT.md, "Refusals"): a Refusal's ``line`` is the input line
# of `loyalty run`'s event file (the service reads no file); a quote's error is of no event (no
# ``event``, ``at``, ``repeat`` or ``index``).
NOT_IN_SERVICE = {"Refusal.line"}
NOT_IN_ANSWER = {"Quote": {"Refusal.event", "Refusal.at", "Refusal.repeat", "Refusal.index"}}


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
    """Fields of struct (and of the Structs its fields hold, wherever they are held) that none of
    the objects shows."""
    by_type: dict[type, list] = {}

    def collect(cls: type, found: list) -> None:
        found = [o for o in found if isinstance(o, dict)]
        by_type.setdefault(cls, []).extend(found)
        names = dict(zip(cls.__struct_fields__, cls.__struct_encode_fields__))   # message -> reason
        hints = typing.get_type_hints(cls, include_extras=True)
        for name, key in names.items():
            for inner in _structs_in(hints[name]):
                values = []
                for o in found:
                    value = o.get(key)
                    values += value if isinstance(value, list) else [value]
                if inner not in by_type or values:
                    collect(inner, values)

    collect(struct, objects)
    missing = []
    for cls, found in by_type.items():
        missing += [f"{cls.__name__}.{key}" for key in cls.__struct_encode_fields__ if not any(key in o for o in found)]
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
    examples = [json.loads(text) for text in blocks(f"example: {answer}")]
    for example in examples:
        msgspec.convert(example, type=struct)   # the example is a valid answer
    missing = [f for f in missing_fields(struct, examples)
               if f not in NOT_IN_SERVICE | NOT_IN_ANSWER.get(answer, set())]
    assert missing == [], f"CONTRACT.md: the {answer} example misses fields"


def test_issue20_the_quote_example_figures_follow_the_rules():
    # ANS-2 / ANS-13 (ansage): 2 x 3,000 yen at 8% = 6,000 ex. tax, tax floor(6,000 x 0.08) = 480,
    # grand total 6,480; the member's 300 valid points are all used (ANS-9): to pay 6,180.
    quote = json.loads(block("example: Quote"))
    totals = quote["totals"]
    assert totals["tax"]["0.08"] == 6000 * 8 // 100 == 480
    assert totals["grand_total"] == 6000 + 480 == 6480
    assert totals["to_pay"] == 6480 - quote["redeem"]["applied"] == 6180
