"""Apply a stream of events to a store: decode, skip replays, apply through the pure core, save.

Events of one member must come in time order (a late one is rejected with its reason, never
reordered silently): so a file split into consecutive runs gives the same ledger as one run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Optional

from .core import apply
from .errors import EventRejected
from .events import BadEvent, decode_event
from .program import Program
from .state import MemberState
from .store.base import Store

BATCH = 1000  # events a transaction; a crash loses at most one uncommitted batch, replayed on rerun


@dataclass
class RunResult:
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    effects: list = field(default_factory=list)


class Runner:
    """Applies events for one program to one store, keeping touched members' states in memory."""

    def __init__(self, program: Program, store: Store, batch: int = BATCH):
        self.program = program
        self.store = store
        self.batch = batch
        self.cache: dict[str, Optional[MemberState]] = {}
        self._pending = 0

    def state_of(self, member: str) -> Optional[MemberState]:
        if member not in self.cache:
            self.cache[member] = self.store.load(member)
        return self.cache[member]

    def apply_one(self, raw: bytes | str, result: RunResult, line_no: Optional[int] = None) -> None:
        try:
            event = decode_event(raw)
        except BadEvent as bad:
            where = f"line {line_no}: " if line_no is not None and bad.event_id is None else ""
            field_text = f", field {bad.field}" if bad.field else ""
            reason = f"{where}event {bad.event_id or '?'}{field_text}: {bad.reason}"
            result.rejected.append({"event": bad.event_id, "field": bad.field, "reason": reason, "line": line_no})
            self.store.reject(bad.event_id, None, reason)
            return
        self.apply_event(event, result)

    def apply_event(self, event, result: RunResult) -> None:
        if self.store.is_applied(event.id):
            result.skipped.append(event.id)
            return
        try:
            outcome = apply(self.program, self.state_of(event.member), event)
        except EventRejected as rej:
            reason = rej.describe(event.id)
            result.rejected.append({"event": event.id, "field": rej.field, "reason": reason, "rule": rej.rule})
            self.store.reject(event.id, event.member, reason)
            return
        self.store.save(event.id, type(event).__struct_config__.tag, event.at, outcome.state,
                        outcome.entries, outcome.effects)
        self.cache[event.member] = outcome.state
        result.applied.append(event.id)
        result.effects.extend(outcome.effects)
        self._pending += 1
        if self._pending >= self.batch:
            self.store.commit()
            self._pending = 0

    def run(self, lines: Iterable[bytes | str], progress: Callable[[int], None] | None = None) -> RunResult:
        result = RunResult()
        try:
            for n, raw in enumerate(lines, 1):
                if isinstance(raw, (bytes, str)) and not raw.strip():
                    continue
                self.apply_one(raw, result, n)
                if progress is not None:
                    progress(n)
        finally:
            self.store.commit()
        return result


def parse_as_of(text: Optional[str], program: Program, store: Store) -> Optional[datetime]:
    from .timeutil import parse_instant

    if text:
        return parse_instant(text, program.tz)
    last = store.last_time()
    return datetime.fromisoformat(last) if last else None
