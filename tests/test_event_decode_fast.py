"""The event contract (CONTRACT.md): event ids and the other id-like fields are printable text.

Ids carry no msgspec ``pattern`` (too slow per string); ``engine.model.events._decode`` checks them only
when the input holds a backslash or a DEL, since msgspec's JSON reader refuses raw control
characters inside strings. These tests guard that shortcut: every way a control character can
reach an id is still refused with the same BadEvent as before (the field named, the reason
"... without control characters"), harmless escapes still pass, and the schema still states the
pattern."""
from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine
from engine.model.events import LONE_SURROGATE_REASON, BadEvent, decode_cart, decode_event, event_schema

ROOT = Path(__file__).resolve().parents[1]
AT = "2025-06-01T10:00:00+09:00"
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
REASON = "Expected `str` without control characters"


def order(**fields) -> dict:
    event = {"id": "e1", "type": "order.placed", "at": AT, "member": "m1", "order": "o1", "course": "one_off",
             "payment": {"method": "credit_card"},
             "lines": [{"sku": "A", "qty": 1, "unit_price": 1000, "tax_rate": 0.10, "product": "P"},
                       {"sku": "B", "qty": 2, "unit_price": 500, "tax_rate": 0.08}],
             "exchanges": [{"reward": "r1", "qty": 1}]}
    event.update(fields)
    return event


def with_value(path: str, value: str) -> dict:
    """An order.placed with ``value`` at ``path`` (``member``, ``lines[1].sku``, ...)."""
    event = order()
    if "[" in path:
        head, _, rest = path.partition("[")
        index, _, name = rest.partition("].")
        event[head][int(index)][name] = value
    else:
        event[path] = value
    return event


def refused(raw, field: str, event_id: str = "e1") -> BadEvent:
    with pytest.raises(BadEvent) as caught:
        decode_event(raw)
    bad = caught.value
    assert bad.reason.endswith("without control characters"), bad.reason
    assert bad.reason == REASON
    assert bad.field == field
    assert bad.event_id == event_id
    return bad


def test_raw_control_characters_in_a_string_are_malformed_json_for_msgspec():
    """The premise of the shortcut: msgspec refuses U+0000–U+001F written raw inside a JSON string
    (bytes or str input); DEL it takes as it is, so the shortcut looks for DEL in the input."""
    for code in range(0x20):
        for raw in (b'"a' + bytes([code]) + b'b"', '"a' + chr(code) + 'b"'):
            with pytest.raises(msgspec.DecodeError):
                msgspec.json.decode(raw, type=str)
    assert msgspec.json.decode(b'"a\x7fb"', type=str) == "a\x7fb"


@pytest.mark.parametrize("path", ["id", "member", "order", "lines[0].sku", "lines[1].sku", "lines[0].product",
                                  "exchanges[0].reward"])
@pytest.mark.parametrize("escape", ["\\u0000", "\\u001f", "\\u001F", "\\u000A", "\\n", "\\t", "\\r", "\\b", "\\f",
                                    "\\u007f", "\\u007F", "\\\\\\u0001", "\\\\\\n"])
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_escaped_control_character_in_an_id_is_refused_naming_the_field(path, escape, where):
    """An escaped control character (or DEL) anywhere in an id-like field, including a trailing
    newline, refuses the event; the reason names the field (and the event id)."""
    marker = "\ue000"
    value = {"start": marker + "x", "middle": "x" + marker + "y", "end": "x" + marker}[where]
    text = json.dumps(with_value(path, value)).replace("\\ue000", escape)
    assert escape in text
    event_id = json.loads(text)["id"]
    refused(text.encode(), path, event_id)
    refused(text, path, event_id)                       # str input too


@pytest.mark.parametrize("event, field", [
    ({"id": "r1", "type": "order.returned", "at": AT, "member": "m1", "order": "o1",
      "lines": [{"sku": "A", "qty": 1}, {"sku": "B\u0001", "qty": 1}]}, "lines[1].sku"),
    ({"id": "s1", "type": "subscription.paused", "at": AT, "member": "m1", "subscription": "main\u0000"},
     "subscription"),
    ({"id": "v1", "type": "review.posted", "at": AT, "member": "m1", "product": "\tTEE"}, "product"),
    ({"id": "g1", "type": "points.granted", "at": AT, "member": "m\u001b", "amount": 1, "reason": "x"}, "member"),
])
def test_other_event_types_check_their_ids(event, field):
    refused(json.dumps(event).encode(), field, event["id"])


@pytest.mark.parametrize("as_bytes", [True, False])
def test_raw_del_in_member_is_refused(as_bytes):
    """DEL passes msgspec's JSON reader as it is; the event is still refused."""
    text = json.dumps(with_value("member", "m\x7f1"), ensure_ascii=False)
    assert "\x7f" in text and "\\" not in text
    refused(text.encode() if as_bytes else text, "member")


def test_raw_del_in_a_line_sku_of_a_cart_is_refused():
    raw = json.dumps(with_value("lines[1].sku", "B\x7f"), ensure_ascii=False).encode()
    with pytest.raises(BadEvent) as caught:
        decode_cart(raw)
    assert (caught.value.event_id, caught.value.field, caught.value.reason) == ("e1", "lines[1].sku", REASON)


def test_the_first_bad_id_in_the_input_is_named():
    """Several bad ids: the one that comes first in the input is named, as msgspec did."""
    event = {"type": "member.registered", "at": AT, "member": "m\u0001", "id": "e\u0002"}
    refused(json.dumps(event).encode(), "member", "e\u0002")
    event = {"id": "e\u0002", "type": "member.registered", "at": AT, "member": "m\u0001"}
    refused(json.dumps(event).encode(), "id", "e\u0002")


@pytest.mark.parametrize("event", [
    order(member="m\u00e9", lines=[{"sku": "A\"1", "qty": 1, "unit_price": 1000, "tax_rate": 0.10,
                                    "product": "T\u00e9e \\ \u3042 /"}]),
    order(payment={"method": "credit_card", "card_brand": "j\u00e9b"}),
    order(note="free text \u0000 \u007f in an unknown field is ignored"),
    {"id": "g\u00e91", "type": "points.granted", "at": AT, "member": "m1", "amount": 5, "reason": "goodwill \"\u00e9\" \ud83d\ude00"},
    {"id": "u1", "type": "member.updated", "at": AT, "member": "m1", "attributes": {"note\u00e9": "\u3042"}},
])
def test_harmless_escapes_are_accepted(event):
    """Escapes that give printable characters (an emoji as a surrogate pair included), and control
    characters in a field the contract does not know (dropped), are accepted."""
    raw = json.dumps(event).encode()
    assert b"\\" in raw
    decoded = decode_event(raw)
    assert decoded.id == event["id"] and decoded.member == event["member"]
    assert decode_event(raw.decode()) == decoded


@pytest.mark.parametrize("event, field, reason", [
    (order(lines=[{"sku": "A", "qty": 1, "unit_price": 1000, "tax_rate": 0.10, "tags": ["sale\n\u0000"]}]),
     "lines[0].tags[0]", REASON),
    ({"id": "g1", "type": "points.granted", "at": AT, "member": "m1", "amount": 5, "reason": "goodwill\n"},
     "reason", REASON),
    ({"id": "u1", "type": "member.updated", "at": AT, "member": "m1", "attributes": {"note\u0001": "x"}},
     "attributes.note\\u0001", REASON),
    ({"id": "u1", "type": "member.updated", "at": AT, "member": "m1", "attributes": {"note": "line\nbreak"}},
     "attributes.note", REASON),
    ({"id": "u1", "type": "member.updated", "at": AT, "member": "m1", "attributes": {"note": "a\ud800"}},
     "attributes.note", LONE_SURROGATE_REASON),
])
def test_hole17_10_control_characters_and_lone_surrogates_in_any_string_refuse_the_event(event, field, reason):
    """CONTRACT: a control character or a lone surrogate in any string the contract knows (tags,
    reasons, attribute keys and values) refuses the event, naming the field (a bad key escaped)."""
    raw = json.dumps(event).encode()
    for text in (raw, raw.decode()):
        with pytest.raises(BadEvent) as caught:
            decode_event(text)
        assert (caught.value.event_id, caught.value.field, caught.value.reason) == (event["id"], field, reason)
        assert caught.value.at == AT


def test_a_refused_id_reaches_the_engine_as_a_rejection(tmp_path):
    """Through Engine.apply (a dict is encoded, DEL raw and U+0000 escaped): rejected, naming
    event and field; nothing applied."""
    e = Engine(str(ROOT / "programs" / "andest.yaml"), str(tmp_path / "ledger.db"))
    assert e.apply({"id": "r1", "type": "member.registered", "at": "2025-05-01T10:00:00+09:00", "member": "m1"}).applied
    for bad, field in ((with_value("lines[0].sku", "A\x00"), "lines[0].sku"), (with_value("member", "m\x7f"), "member")):
        result = e.apply(bad)
        assert result.applied == [] and len(result.rejected) == 1, result
        rejected = result.rejected[0]
        assert rejected["event"] == "e1" and rejected["field"] == field
        assert f"field {field}" in rejected["reason"] and "without control characters" in rejected["reason"]
    good = order()
    del good["exchanges"]                               # no reward r1 in this program
    assert e.apply(good).applied == ["e1"], "the id is free: the refused events left no trace"


def escape_some(text: str, draw_bits: list[bool]) -> str:
    """``text`` as a JSON string, some characters written as \\uXXXX (upper or lower case hex)."""
    out = []
    for i, ch in enumerate(text):
        how = draw_bits[i % len(draw_bits)] if draw_bits else False
        if how and ord(ch) < 0x10000 and not 0xD800 <= ord(ch) < 0xE000:
            out.append(f"\\u{ord(ch):04x}" if i % 2 else f"\\u{ord(ch):04X}")
        else:
            out.append(json.dumps(ch, ensure_ascii=False)[1:-1])
    return '"' + "".join(out) + '"'


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.text(st.characters(codec="utf-8") | st.sampled_from([chr(c) for c in range(0x20)] + ["\x7f", "\\", '"', "/", "\u00e9", "\u3042", "\u2028"]),
                     min_size=1, max_size=12),
       path=st.sampled_from(["id", "member", "order", "lines[0].sku", "lines[1].product", "exchanges[0].reward"]),
       encoding=st.sampled_from(["json-ascii", "json-utf8", "msgspec", "some-escaped"]),
       bits=st.lists(st.booleans(), max_size=5), as_text=st.booleans())
def test_refused_exactly_when_an_id_holds_a_control_character(value, path, encoding, bits, as_text):
    """However the JSON is written (escaped or not), an id is refused if and only if it holds a
    control character or DEL."""
    marker = "\ue000"
    text = json.dumps(with_value(path, marker), ensure_ascii=False)
    written = {"json-ascii": json.dumps(value), "json-utf8": json.dumps(value, ensure_ascii=False),
               "msgspec": msgspec.json.encode(value).decode(), "some-escaped": escape_some(value, bits)}[encoding]
    text = text.replace(json.dumps(marker, ensure_ascii=False), written)
    assert json.loads(text) == with_value(path, value)
    raw = text if as_text else text.encode()
    event_id = value if path == "id" else "e1"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        refused(raw, path, event_id)
    else:
        decoded = decode_event(raw)
        assert msgspec.to_builtins(decoded)["id"] == event_id


def test_the_schema_still_states_the_id_pattern():
    """The published schema keeps the pattern for every id-like field, generated and on disk."""
    for schema in (event_schema(), json.loads((ROOT / "schema" / "event.schema.json").read_text())):
        defs = schema["$defs"]
        assert defs["OrderPlaced"]["properties"]["id"]["pattern"] == ID_PATTERN
        assert defs["OrderPlaced"]["properties"]["member"]["pattern"] == ID_PATTERN
        assert defs["OrderPlaced"]["properties"]["order"]["pattern"] == ID_PATTERN
        assert defs["Line"]["properties"]["sku"]["pattern"] == ID_PATTERN
        assert defs["Exchange"]["properties"]["reward"]["pattern"] == ID_PATTERN
        assert defs["ReturnLine"]["properties"]["sku"]["pattern"] == ID_PATTERN
        assert defs["OrderPlaced"]["properties"]["id"]["maxLength"] == 200
    generated = json.loads(json.dumps(event_schema()))  # tuples (defaults) as JSON arrays
    assert generated == json.loads((ROOT / "schema" / "event.schema.json").read_text())
