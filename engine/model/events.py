"""The events a shop sends (CONTRACT.md), as msgspec Structs.

One definition gives the decoder (errors such as
``Expected `int`, got `str` - at `$.lines[0].qty```) and, through ``msgspec.json.schema``,
``schema/event.schema.json`` (``python -m engine.model.events > schema/event.schema.json``).
Unknown fields are ignored so integrators can extend events; names are never renamed.

Ids carry no msgspec ``pattern`` (msgspec would run Python's ``re`` on every string): the
schema still states it, and ``_decode`` checks the ids only when the input could give a control
character at all: an escape such as ``\\n`` or ``\\u0001``, or a DEL.
"""
from __future__ import annotations

import json
import re
from typing import Annotated, Any, Iterable, Iterator, Literal, Optional, Union

import msgspec

from engine.model.errors import Refusal

NonNeg = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=10**12)]
# Ids are printable text: control characters (NUL above all) cannot be stored by every ledger.
# The pattern is in the schema only; _decode enforces it, looking only where a control character can be.
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
    # empty only with exchanges: an exchange on its own (AMA-4's "apply now"), checked at decode
    lines: Annotated[tuple[Line, ...], msgspec.Meta(max_length=1000)]
    guest: bool = False
    shipping: NonNeg = 0
    coupon_discount: NonNeg = 0
    redeem: Optional[Redeem] = None
    exchanges: tuple[Exchange, ...] = ()
    fulfilment: Literal["with_order", "ship_now"] = "with_order"
    # the scheduled shipping and delivery dates of this delivery, for request deadlines (ANS-15)
    ship_date: Optional[DateText] = None
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

    def __init__(self, event_id: str | None, reason: str, field: str | None = None, at: str | None = None,
                 code: str = "event.decode", args: dict[str, Any] | None = None):
        self.event_id = event_id
        self.reason = reason
        self.field = field
        # the reason by code (engine/format/messages.py): the English text is ``reason``
        self.code = code
        self.arguments = args if args is not None else {"detail": reason}   # (Exception.__init__ sets ``args``)
        # the line's `at` as written, when it had one: a past view lists a refusal only up to its time
        self.at = at
        super().__init__(reason)

    def refusal(self, line_no: Optional[int] = None) -> Refusal:
        """The refusal of this line (``line_no``: its number in the input, named when no id was read)."""
        # an id holding a control character or a lone surrogate is shown and stored escaped: a store
        # or a terminal could not take it as it is (a surrogate is not even UTF-8)
        event_id = printable(self.event_id) if self.event_id is not None else None
        where = f"line {line_no}: " if line_no is not None and event_id is None else ""
        field_text = f", field {self.field}" if self.field else ""
        return Refusal(message=f"{where}event {event_id or '?'}{field_text}: {self.reason}", code=self.code,
                       args=self.arguments, field=self.field, event=event_id, line=line_no, at=self.at)


def _explain(raw: bytes | str, exc: Exception) -> BadEvent:
    # Slow path, taken only for bad input: find the id (if any) so the message can name it.
    event_id = at = None
    try:
        obj = json.loads(raw)
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            event_id = obj["id"]
        if isinstance(obj, dict) and isinstance(obj.get("at"), str):
            at = obj["at"]
    except (ValueError, RecursionError):
        return BadEvent(None, f"malformed JSON: {exc}", code="event.malformed_json", args={"detail": str(exc)})
    at = at if at is None or not _bad_string(at) else None
    bad = next(_bad_strings(obj), None) if isinstance(obj, dict) else None
    if bad is not None:
        # msgspec reads a lone surrogate escape (\ud800) as "Input data was truncated"
        return BadEvent(event_id, _reason_for(bad[1]), bad[0], at, code="event.bad_string")
    text = str(exc)
    field: Optional[str] = None
    code, args = "event.decode", None
    if " - at `$." in text:
        text, _, where = text.partition(" - at `")
        field = where.rstrip("`").removeprefix("$.")
    elif "Object missing required field" in text:
        field = text.split("`")[1] if "`" in text else None
    if "matching regex" in text and field is not None and field.split(".")[-1] == "at":
        text = (f"not a time: {obj.get('at')!r}; give ISO 8601 with an offset (2025-11-04T10:00:00+09:00) "
                f"or a bare date (2025-11-04)")
        code, args = "event.not_time", {"value": repr(obj.get("at"))}
    elif "matching regex" in text:
        text = text.split(" matching regex")[0] + " in the form YYYY-MM-DD"
    if "Invalid value" in text and field == "type":
        text = f"unknown event type {obj.get('type')!r}"
        code, args = "event.unknown_type", {"type": repr(obj.get("type"))}
    return BadEvent(event_id, text, field, at, code, args)


CONTROL_CHARACTERS_REASON = "Expected `str` without control characters"
LONE_SURROGATE_REASON = "Expected `str` without lone surrogates (an escape \\ud800-\\udfff with no partner)"
# Control characters (U+0000–U+001F), DEL and lone surrogates (a decoded string keeps a surrogate
# only when it had no partner): refused in every string of an event, keys of attributes included.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _bad_string(value: str) -> bool:
    return _CONTROL.search(value) is not None


def _reason_for(value: str) -> str:
    found = _CONTROL.search(value)
    return LONE_SURROGATE_REASON if found and "\ud800" <= found.group() <= "\udfff" else CONTROL_CHARACTERS_REASON


# The JSON escapes that give a control character, DEL or a surrogate: \b \f \n \r \t \u0000-\u001f
# \u007f \ud800-\udfff. (After an escaped backslash, as in \\n, a match is a false alarm: it only
# costs a look at the strings; so does an emoji written as a surrogate pair.)
_CONTROL_ESCAPE_TEXT = r"\\(?:[bfnrt]|u00[01]|u007[fF]|u[dD][89a-fA-F])"
_CONTROL_ESCAPE = re.compile(_CONTROL_ESCAPE_TEXT)
_CONTROL_ESCAPE_BYTES = re.compile(_CONTROL_ESCAPE_TEXT.encode())


def _bad_strings(node: object, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every string (value or key, in the node's order) holding a control character, DEL or a lone
    surrogate, in a decoded Struct or a JSON value: (its path, the string). A bad key is written
    escaped in the path, so the path itself is printable."""
    if isinstance(node, str):
        if _bad_string(node):
            yield prefix.rstrip("."), node
        return
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _bad_strings(item, f"{prefix.rstrip('.')}[{i}].")
        return
    items: Iterable[tuple[object, object]]
    if isinstance(node, msgspec.Struct):
        items = ((name, getattr(node, name)) for name in node.__struct_fields__)
    elif isinstance(node, dict):
        items = node.items()
    else:
        return
    for key, value in items:
        if isinstance(key, str) and _bad_string(key):
            yield f"{prefix}{printable(key)}", key
        else:
            yield from _bad_strings(value, f"{prefix}{key}.")


def printable(text: str) -> str:
    """``text`` as it may be shown and stored: control characters, DEL and lone surrogates written
    as JSON escapes (\\u0001, \\ud800); any other text unchanged."""
    if not _bad_string(text):
        return text
    return _CONTROL.sub(lambda m: json.dumps(m.group())[1:-1], text)


def _bad_string_field(raw: bytes | str, decoded: object) -> tuple[str, str] | None:
    """The first string of ``decoded`` (in the input's order, which is msgspec's) holding a control
    character, DEL or a lone surrogate, keys of attributes included: (path, string), or None. A field
    the contract does not know is dropped by the decoder and not looked at."""
    found = dict(_bad_strings(decoded))
    if not found:
        return None
    try:
        for path, value in _bad_strings(json.loads(raw)):
            if path in found:
                return path, value
    except (ValueError, TypeError, RecursionError):
        pass
    return next(iter(found.items()))


def _check_tax_rates(decoded: OrderPlaced) -> None:
    """Every line's rate is one of the contract's (0.1 and 0.10 are the same float); no line at all
    only for an exchange on its own."""
    if not decoded.lines and not decoded.exchanges:
        raise BadEvent(decoded.id, "Expected `array` of length >= 1 (an order with no line must carry exchanges)",
                       "lines", decoded.at, "event.no_lines")
    for i, line in enumerate(decoded.lines):
        if line.tax_rate not in TAX_RATES:
            raise BadEvent(decoded.id, f"tax_rate {line.tax_rate!r} is not a consumption tax rate: give one of "
                                       f"{', '.join(f'{r:.2f}' for r in TAX_RATES)}", f"lines[{i}].tax_rate",
                           decoded.at, "event.tax_rate",
                           {"value": repr(line.tax_rate), "rates": ", ".join(f"{r:.2f}" for r in TAX_RATES)})


def _decode(decoder: msgspec.json.Decoder[Any], raw: bytes | str) -> Any:
    try:
        decoded = decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _explain(raw, exc) from None
    except UnicodeEncodeError as exc:      # a text (not bytes) holding a lone surrogate
        raise _explain(raw, exc) from None
    except RecursionError:
        raise BadEvent(None, "malformed JSON: nested too deeply", code="event.malformed_json",
                       args={"detail": "nested too deeply"}) from None
    # Strings without control characters or lone surrogates: msgspec's JSON reader refuses raw
    # U+0000–U+001F inside a string, so a decoded string holds one only through a backslash escape
    # (\n, \u0001, \ud800 ...), and DEL only through \u007f or the character itself; input with
    # neither (nearly all, including escaped non-ASCII text such as \u00e9) needs no look inside.
    # (`92 in raw` finds a byte far faster than `b"\\" in raw`.)
    if isinstance(raw, (bytes, bytearray)):
        suspect = 127 in raw or (92 in raw and _CONTROL_ESCAPE_BYTES.search(raw) is not None)
    elif isinstance(raw, str):
        suspect = "\x7f" in raw or ("\\" in raw and _CONTROL_ESCAPE.search(raw) is not None)
    else:
        suspect = True
    if suspect:
        bad = _bad_string_field(raw, decoded)
        if bad is not None:
            field, value = bad
            raise BadEvent(decoded.id, _reason_for(value), field, None if field == "at" else decoded.at,
                           "event.bad_string")
    if type(decoded) is OrderPlaced:
        _check_tax_rates(decoded)
    return decoded


def decode_event(raw: bytes | str) -> Event:
    """One JSON text → an Event struct, or BadEvent naming the event id and field."""
    event: Event = _decode(_decoder, raw)
    return event


def decode_cart(raw: bytes | str) -> OrderPlaced:
    """A cart (an order.placed object) for a quote, or BadEvent."""
    cart: OrderPlaced = _decode(_cart_decoder, raw)
    return cart


def event_schema() -> dict[str, Any]:
    schema = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Loyalty event (CONTRACT.md)"
    return schema


if __name__ == "__main__":
    print(json.dumps(event_schema(), indent=2, ensure_ascii=False))
