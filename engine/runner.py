"""Apply a stream of events to a store: decode, skip replays, apply through the pure core, save.

Events of one member must come in time order (a late one is rejected with its reason, never
reordered silently): so a file split into consecutive runs gives the same ledger as one run.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Optional

import msgspec

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


def event_digest(event) -> str:
    """A fingerprint of an event's content (field order and spacing of the input do not matter)."""
    return hashlib.sha256(msgspec.json.encode(event)).hexdigest()[:32]


class Runner:
    """Applies events for one program to one store, keeping touched members' states in memory."""

    def __init__(self, program: Program, store: Store, batch: int = BATCH):
        self.program = program
        self.store = store
        self.batch = batch
        self.cache: dict[str, Optional[MemberState]] = {}
        self._pending = 0
        # A shared store (PostgreSQL: other processes write the same ledger) cannot be cached across
        # events: per event the store locks the member's row and re-loads it, and the runner commits.
        self.shared = getattr(store, "shared", False)
        self._begin = getattr(store, "begin", None)

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
        if self.shared:
            # Lock first, then check the id and apply against the state under the lock: two
            # processes never apply one event twice nor spend the same points. One member per
            # transaction, committed at once so the lock is held only for this event.
            self.cache[event.member] = self.store.lock(event.member, event.id)
            self._apply_event(event, result)
            self.store.commit()
            self._pending = 0
            return
        self._apply_event(event, result)

    def _apply_event(self, event, result: RunResult) -> None:
        if self._begin is not None and self._begin():
            # SQLite: the write lock is taken before anything is read, so another process cannot
            # spend the same points between our read and our write (it waits for our commit);
            # states read before the lock (a quote, a report) may be stale and are read again.
            self.cache.clear()
        if self.store.is_applied(event.id):
            result.skipped.append(event.id)
            return
        digest = event_digest(event)
        refused = self.store.refusal(event.id)
        if refused is not None and refused[0] == digest:
            # The same event, refused before: refused again with its first reason, never applied
            # now that the member's state has moved on. A corrected event (another body
            # under the same id) is judged afresh.
            result.rejected.append({"event": event.id, "field": None, "reason": refused[1], "repeat": True})
            return
        try:
            outcome = apply(self.program, self.state_of(event.member), event)
        except EventRejected as rej:
            reason = rej.describe(event.id)
            result.rejected.append({"event": event.id, "field": rej.field, "reason": reason, "rule": rej.rule})
            self.store.reject(event.id, event.member, reason, digest)
            return
        self.store.save(event.id, type(event).__struct_config__.tag, event.at, outcome.state,
                        outcome.entries, outcome.effects)
        self.cache[event.member] = outcome.state
        result.applied.append(event.id)
        result.effects.extend(outcome.effects)
        self._pending += 1
        if self._pending >= self.batch:
            self.commit()

    def commit(self) -> None:
        """End the batch. Cached states are dropped: once the lock is released another process
        may write, so the next batch reads every member afresh under its own lock."""
        self.store.commit()
        self._pending = 0
        self.cache.clear()

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
            self.commit()
        return result


def parse_as_of(text: Optional[str], program: Program, store: Store) -> Optional[datetime]:
    from .timeutil import parse_instant

    if text:
        return parse_instant(text, program.tz)
    last = store.last_time()
    return datetime.fromisoformat(last) if last else None
