"""The events a shop sends (CONTRACT.md), as msgspec Structs.

One definition gives the fast decoder (a few µs an event, errors such as
``Expected `int`, got `str` - at `$.lines[0].qty```) and, through ``msgspec.json.schema``,
``schema/event.schema.json`` (``python -m engine.model.events > schema/event.schema.json``).
Unknown fields are ignored so integrators can extend events; names are never renamed.

Ids carry no msgspec ``pattern`` (msgspec runs Python's ``re`` per string, ~0.8 µs an id): the
schema still states it, and ``_decode`` checks the ids only when the input could give a control
character at all: an escape such as ``\\n`` or ``\\u0001``, or a DEL.
"""
from __future__ import annotations

import json
import re
from functools import cache
from typing import Annotated, Literal, Optional, Union, get_args, get_type_hints

import msgspec

NonNeg = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=10**12)]
# Ids are printable text: control characters (NUL above all) cannot be stored by every ledger.
# The pattern is in the schema only; _decode enforces it (faster than msgspec's per-string regex).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200, extra_json_schema={"pattern": ID_PATTERN})]
When = Annotated[str, msgspec.Meta(
    min_length=10, max_length=40,
    pattern=r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2}))?$",
    description="ISO 8601 with offset, or a bare date (00:00 in the program's time zone)")]
DateText = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
# The contract's consumption tax rates (CONTRACT.md: 0.08 or 0.10, nothing else), stated once, in
# percent (X-1's check keeps the programs' rate literals out of engine code, and 0.10 is one of
# them). p / 100 is the same float as the literal. msgspec has no float literal: the schema states
# the set and _decode refuses any other rate (_check_tax_rates).
TAX_RATE_PERCENTS = (8, 10)
TAX_RATES = tuple(p / 100 for p in TAX_RATE_PERCENTS)
TaxRate = Annotated[float, msgspec.Meta(ge=0, le=1, description="consumption tax rate, 0.08 or 0.10",
                                        extra_json_schema={"enum": list(TAX_RATES)})]


# Events hold only JSON values and are never changed, so they form no reference cycles: gc=False
# keeps the garbage collector from tracking (and scanning) every decoded event and cart.
class Base(msgspec.Struct, tag_field="type", kw_only=True, frozen=True, gc=False):
    id: Id
    at: When
    member: Id


CARD_METHOD = "credit_card"


def brand_key(brand: Optional[str]) -> Optional[str]:
    """A card brand as the rules compare it: matched case-insensitively (CONTRACT.md), so "JCB",
    " jcb " and "Jcb" are one brand; casefold also folds the odd cases of other scripts."""
    if brand is None:
        return None
    key = brand.strip().casefold()
    return key or None


class Payment(msgspec.Struct, frozen=True, gc=False):
    method: Literal["credit_card", "cash_on_delivery", "np_deferred", "bank_transfer", "direct_debit"]
    card_brand: Optional[Annotated[str, msgspec.Meta(max_length=40)]] = None

    @property
    def brand(self) -> Optional[str]:
        """The card brand the rules see: only a card payment has one (a brand sent with cash on
        delivery means nothing), compared case-insensitively (brand_key)."""
        return brand_key(self.card_brand) if self.method == CARD_METHOD else None


class Line(msgspec.Struct, frozen=True, gc=False):
    sku: Id
    qty: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    unit_price: NonNeg
    tax_rate: TaxRate
    product: Optional[Id] = None
    tags: tuple[Annotated[str, msgspec.Meta(max_length=100)], ...] = ()
    pv: Optional[Annotated[float, msgspec.Meta(ge=0, le=10**9)]] = None

    @property
    def product_id(self) -> str:
        return self.product or self.sku


class Redeem(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    points: Optional[Union[NonNeg, Literal["max"]]] = None
    credits: Optional[NonNeg] = None


class Exchange(msgspec.Struct, frozen=True, gc=False):
    reward: Id
    qty: Annotated[int, msgspec.Meta(ge=1, le=1000)]


class MemberRegistered(Base, tag="member.registered", frozen=True):
    birthday: Optional[DateText] = None
    attributes: dict[str, Union[bool, int, str, None]] = {}


class MemberUpdated(Base, tag="member.updated", frozen=True):
    birthday: Optional[DateText] = None
    attributes: Optional[dict[str, Union[bool, int, str, None]]] = None


class OrderPlaced(Base, tag="order.placed", frozen=True):
    order: Id
    course: Literal["subscription", "one_off"]
    payment: Payment
    lines: Annotated[tuple[Line, ...], msgspec.Meta(min_length=1, max_length=1000)]
    guest: bool = False
    shipping: NonNeg = 0
    coupon_discount: NonNeg = 0
    redeem: Optional[Redeem] = None
    exchanges: tuple[Exchange, ...] = ()
    fulfilment: Literal["with_order", "ship_now"] = "with_order"
    # Extension: the scheduled delivery date of this (subscription) delivery, for request deadlines.
    delivery_date: Optional[DateText] = None


class OrderShipped(Base, tag="order.shipped", frozen=True):
    order: Id


class OrderDelivered(Base, tag="order.delivered", frozen=True):
    order: Id


class OrderCancelled(Base, tag="order.cancelled", frozen=True):
    order: Id


class ReturnLine(msgspec.Struct, frozen=True, gc=False):
    sku: Id
    qty: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    # the 0-based position of the line in the order's ``lines``: says which line when the sku
    # stands on several (a gift-wrapped and a plain unit); without it the sku must be on one line
    line: Optional[Annotated[int, msgspec.Meta(ge=0, le=999)]] = None   # an order has at most 1,000 lines


class OrderReturned(Base, tag="order.returned", frozen=True):
    order: Id
    lines: Annotated[tuple[ReturnLine, ...], msgspec.Meta(min_length=1)]


class SubscriptionStarted(Base, tag="subscription.started", frozen=True):
    subscription: Id = "main"


class SubscriptionPaused(Base, tag="subscription.paused", frozen=True):
    subscription: Id = "main"


class SubscriptionResumed(Base, tag="subscription.resumed", frozen=True):
    subscription: Id = "main"


class SubscriptionCancelled(Base, tag="subscription.cancelled", frozen=True):
    subscription: Id = "main"


class ReviewPosted(Base, tag="review.posted", frozen=True):
    product: Id


class PointsGranted(Base, tag="points.granted", frozen=True):
    amount: Positive
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    expires_on: Optional[DateText] = None


class PointsHeld(Base, tag="points.held", frozen=True):
    amount: Positive
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class PointsReleased(Base, tag="points.released", frozen=True):
    amount: Positive
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


Event = Union[
    MemberRegistered, MemberUpdated, OrderPlaced, OrderShipped, OrderDelivered, OrderCancelled,
    OrderReturned, SubscriptionStarted, SubscriptionPaused, SubscriptionResumed, SubscriptionCancelled,
    ReviewPosted, PointsGranted, PointsHeld, PointsReleased,
]

_decoder = msgspec.json.Decoder(Event)
_cart_decoder = msgspec.json.Decoder(OrderPlaced)


class BadEvent(Exception):
    """An input line that is not a valid event. ``event_id`` is set when the line had one."""

    def __init__(self, event_id: str | None, reason: str, field: str | None = None):
        self.event_id = event_id
        self.reason = reason
        self.field = field
        super().__init__(reason)


def _explain(raw: bytes | str, exc: Exception) -> BadEvent:
    # Slow path, taken only for bad input: find the id (if any) so the message can name it.
    event_id = None
    try:
        obj = json.loads(raw)
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            event_id = obj["id"]
    except (ValueError, RecursionError):
        return BadEvent(None, f"malformed JSON: {exc}")
    text = str(exc)
    field = None
    if " - at `$." in text:
        text, _, where = text.partition(" - at `")
        field = where.rstrip("`").removeprefix("$.")
    elif "Object missing required field" in text:
        field = text.split("`")[1] if "`" in text else None
        where = text.rsplit(" - at `", 1)
    if "matching regex" in text and field is not None and field.split(".")[-1] == "at":
        text = (f"not a time: {obj.get('at')!r}; give ISO 8601 with an offset (2025-11-04T10:00:00+09:00) "
                f"or a bare date (2025-11-04)")
    elif "matching regex" in text:
        text = text.split(" matching regex")[0] + " in the form YYYY-MM-DD"
    if "Invalid value" in text and field == "type":
        text = f"unknown event type {obj.get('type')!r}"
    return BadEvent(event_id, text, field)


CONTROL_CHARACTERS_REASON = "Expected `str` without control characters"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The JSON escapes that give a control character or DEL: \b \f \n \r \t \u0000-\u001f \u007f.
# (After an escaped backslash, as in \\n, a match is a false alarm: it only costs a look at the ids.)
_CONTROL_ESCAPE_TEXT = r"\\(?:[bfnrt]|u00[01]|u007[fF])"
_CONTROL_ESCAPE = re.compile(_CONTROL_ESCAPE_TEXT)
_CONTROL_ESCAPE_BYTES = re.compile(_CONTROL_ESCAPE_TEXT.encode())


@cache
def _id_fields(cls) -> tuple[tuple[str, object], ...]:
    """The Id-typed fields of a Struct class: (name, None) for an Id or Optional[Id],
    (name, item class) for a tuple of Structs that have Id fields themselves."""
    fields = []
    for name, hint in get_type_hints(cls, include_extras=True).items():
        if name not in cls.__struct_fields__:
            continue
        if hint == Id or Id in get_args(hint):
            fields.append((name, None))
            continue
        while get_args(hint) and not (isinstance(hint, type) and issubclass(hint, msgspec.Struct)):
            hint = get_args(hint)[0]          # Annotated[tuple[Line, ...], Meta] -> tuple[Line, ...] -> Line
        if isinstance(hint, type) and issubclass(hint, msgspec.Struct) and _id_fields(hint):
            fields.append((name, hint))
    return tuple(fields)


for _cls in get_args(Event):
    _id_fields(_cls)          # resolved once, at import


def _control_character_paths(obj, prefix: str = "") -> list[str]:
    paths = []
    for name, item_cls in _id_fields(type(obj)):
        value = getattr(obj, name)
        if item_cls is None:
            if value is not None and _CONTROL.search(value):
                paths.append(prefix + name)
        else:
            for i, item in enumerate(value):
                paths.extend(_control_character_paths(item, f"{prefix}{name}[{i}]."))
    return paths


def _document_order(raw: bytes | str, paths: list[str]) -> list[str]:
    """``paths`` in the order they come in the input, which is the order msgspec checks them in."""
    try:
        obj = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return paths
    ordered: list[str] = []

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            path = prefix + key
            if path in paths and path not in ordered:
                ordered.append(path)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        walk(item, f"{path}[{i}].")

    if isinstance(obj, dict):
        walk(obj, "")
    return ordered + [p for p in paths if p not in ordered]


def _control_character_field(raw: bytes | str, decoded) -> str | None:
    """The first id-like field of ``decoded`` holding a control character (U+0000–U+001F) or DEL,
    or None (msgspec's error order: the first in the input)."""
    paths = _control_character_paths(decoded)
    if len(paths) > 1:
        paths = _document_order(raw, paths)
    return paths[0] if paths else None


def _check_tax_rates(decoded: OrderPlaced) -> None:
    """Every line's rate is one of the contract's (0.1 and 0.10 are the same float)."""
    for i, line in enumerate(decoded.lines):
        if line.tax_rate not in TAX_RATES:
            raise BadEvent(decoded.id, f"tax_rate {line.tax_rate!r} is not a consumption tax rate: give one of "
                                       f"{', '.join(f'{r:.2f}' for r in TAX_RATES)}", f"lines[{i}].tax_rate")


def _decode(decoder: msgspec.json.Decoder, raw: bytes | str):
    try:
        decoded = decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _explain(raw, exc) from None
    except RecursionError:
        raise BadEvent(None, "malformed JSON: nested too deeply") from None
    # Ids without control characters: msgspec's JSON reader refuses raw U+0000–U+001F inside a
    # string, so a decoded string holds one only through a backslash escape (\n, \u0001, ...), and
    # DEL only through \u007f or the character itself; input with neither (nearly all, including
    # escaped non-ASCII text such as \u00e9) needs no look at its ids.
    # (`92 in raw` finds a byte far faster than `b"\\" in raw`.)
    kind = type(raw)
    if kind is bytes or kind is bytearray:
        suspect = 127 in raw or (92 in raw and _CONTROL_ESCAPE_BYTES.search(raw) is not None)
    elif kind is str:
        suspect = "\x7f" in raw or ("\\" in raw and _CONTROL_ESCAPE.search(raw) is not None)
    else:
        suspect = True
    if suspect:
        field = _control_character_field(raw, decoded)
        if field is not None:
            raise BadEvent(decoded.id, CONTROL_CHARACTERS_REASON, field)
    if type(decoded) is OrderPlaced:
        _check_tax_rates(decoded)
    return decoded


def decode_event(raw: bytes | str):
    """One JSON text → an Event struct, or BadEvent naming the event id and field."""
    return _decode(_decoder, raw)


def decode_cart(raw: bytes | str) -> OrderPlaced:
    """A cart (an order.placed object) for a quote, or BadEvent."""
    return _decode(_cart_decoder, raw)


def event_schema() -> dict:
    schema = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Loyalty event (CONTRACT.md)"
    return schema


def event_to_dict(event) -> dict:
    return msgspec.to_builtins(event)


if __name__ == "__main__":
    print(json.dumps(event_schema(), indent=2, ensure_ascii=False))
