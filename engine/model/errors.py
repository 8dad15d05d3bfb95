"""Errors that point at what a person wrote: a program file position, or an event id and field."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


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
