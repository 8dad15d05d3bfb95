"""Errors that point at what a person wrote: a program file position, or an event id and field."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Union

import msgspec
from msgspec import UNSET, UnsetType


@dataclass(frozen=True, slots=True)
class Pos:
    """Where a value stands in a program file (1-based line and column, as editors count)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Problem:
    pos: Pos
    message: str
    hint: str | None = None
    # the message by code (engine/format/messages.py): its texts in every language are looked up
    # there, filled in with ``args``; ``message`` and ``hint`` are the English texts
    code: str | None = field(default=None, compare=False)
    args: Mapping[str, Any] | None = field(default=None, compare=False)
    hint_code: str | None = field(default=None, compare=False)
    hint_args: Mapping[str, Any] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        text = f"{self.pos}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ProgramError(Exception):
    """A program file is invalid. Carries every problem found, each with its position."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class Refusal(msgspec.Struct, kw_only=True):
    """One refusal, from the core to every answer: an event the engine would not apply, a line that
    is no event, an error of a quote. It is the same object whether the run report, the Python API,
    the service or a quote holds it, and it is encoded alike everywhere (``msgspec``, keys as
    docs/CONTRACT.md names them: the English text under ``reason``).

    ``code`` and ``args`` give the text in every language (engine/format/messages.py); ``message``
    is the English text as shown (with "event ID, field F: " in front where an event was refused).
    The keys that do not apply to a kind of refusal are left out of its JSON (UNSET): ``event``
    (a quote's error), ``line`` (an event read from a file), ``at`` (an event without a readable
    time), ``repeat`` (a refusal given again from the ledger's record), ``index`` (the event's
    place in the array a service request sent)."""

    message: str = msgspec.field(name="reason")
    code: str
    args: dict[str, Any] = {}
    field: Optional[str] = None
    rule: Optional[str] = None
    event: Union[Optional[str], UnsetType] = UNSET
    line: Union[Optional[int], UnsetType] = UNSET
    at: Union[Optional[str], UnsetType] = UNSET
    repeat: Union[bool, UnsetType] = UNSET
    index: Union[Optional[int], UnsetType] = UNSET

    # A refusal reads as the JSON object it is encoded to (``r["reason"]``, ``r.get("event")``): the
    # Python API's ``RunResult.rejected`` held such dicts before there was one type.
    def __getitem__(self, key: str) -> Any:
        value = getattr(self, _ATTRIBUTE.get(key, key), UNSET) if key in _KEYS else UNSET
        if value is UNSET:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, UNSET) is not UNSET

    def keys(self) -> Iterator[str]:
        return (key for key in _KEYS if key in self)

    def with_index(self, index: Optional[int]) -> "Refusal":
        """The refusal as a service answer lists it: with its place in the request's array."""
        return msgspec.structs.replace(self, index=index)


# JSON key -> attribute (only the English text is named otherwise), and the keys in their order
_ATTRIBUTE = {"reason": "message"}
_KEYS = tuple(Refusal.__struct_encode_fields__)


class EventRejected(Exception):
    """An event cannot be applied. Nothing it asked for changes the ledger."""

    def __init__(self, reason: str, field: str | None = None, rule: str | None = None,
                 code: str | None = None, args: Mapping[str, Any] | None = None):
        self.reason = reason
        self.field = field
        self.rule = rule
        self.code = code          # the reason by code (engine/format/messages.py), filled in with args
        self.arguments = dict(args or {})   # (not ``args``: Exception.__init__ sets that to its own)
        super().__init__(reason)

    def describe(self, event_id: str | None) -> str:
        where = f"event {event_id or '?'}"
        if self.field:
            where += f", field {self.field}"
        text = f"{where}: {self.reason}"
        return f"{text} [{self.rule}]" if self.rule else text

    def refusal(self, event_id: Optional[str], at: Union[Optional[str], UnsetType] = UNSET) -> Refusal:
        """The refusal of event ``event_id`` (the text says which event, field and rule)."""
        return Refusal(message=self.describe(event_id), code=self.code or REFUSED, args=self.arguments,
                       field=self.field, rule=self.rule, event=event_id, at=at)

    def error(self) -> Refusal:
        """The refusal as a quote's error: the reason alone (a quote names no event)."""
        return Refusal(message=self.reason, code=self.code or REFUSED, args=self.arguments, field=self.field,
                       rule=self.rule)


REFUSED = "event.refused"   # the code of a refusal raised without one: its text is the reason as written
