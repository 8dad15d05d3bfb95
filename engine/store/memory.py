"""A store that keeps nothing: for --db :memory:, tests and embedding."""
from __future__ import annotations

from typing import Any, Iterator, Optional

import msgspec

from engine.model.state import Entry, MemberState
from engine.store.base import Store, encode_body, wall_clock

_stamp = msgspec.structs.replace


class MemoryStore(Store):
    def __init__(self, program_id: str = ""):
        self.program_id = program_id
        self.states: dict[str, MemberState] = {}
        self.applied: set[str] = set()
        self.rejected: dict[str, str] = {}
        self.rejected_digest: dict[str, Optional[str]] = {}
        self.ledger: dict[str, list[Entry]] = {}
        self.effect_rows: list[dict] = []
        # member -> its applied events, in order (past views): kept as given (the decoded event,
        # immutable), encoded only when a past view asks
        self.bodies: dict[str, list[Any]] = {}
        self._last_dt = None   # the latest clock saved (as a time: its text is made only when asked)
        self.close_rows: list[dict] = []
        self.booked_clock = wall_clock

    def is_applied(self, event_id: str) -> bool:
        return event_id in self.applied

    def load(self, member: str) -> Optional[MemberState]:
        return self.states.get(member)

    def save(self, event_id, event_type, at, state, entries, effects, body=None, touched=None) -> None:
        self.applied.add(event_id)
        self.bodies.setdefault(state.member, []).append(body)
        self.rejected.pop(event_id, None)
        self.rejected_digest.pop(event_id, None)
        self.book(state, entries, effects, self.booked_clock() if entries else None)

    def book(self, state, entries, effects, booked_at) -> None:
        self.states[state.member] = state
        if entries:
            self.ledger.setdefault(state.member, []).extend(_stamp(e, booked_at=booked_at) for e in entries)
        if effects:
            self.effect_rows.extend(msgspec.to_builtins(e) for e in effects)
        if state.clock is not None and (self._last_dt is None or state.clock > self._last_dt):
            self._last_dt = state.clock

    def record_close(self, through, booked_at, snapshot) -> None:
        self.close_rows.append({"through": through, "booked_at": booked_at, "snapshot": snapshot})

    def closes(self) -> list[dict]:
        return [dict(row) for row in self.close_rows]

    def reject(self, event_id, member, reason, digest=None) -> None:
        if event_id is not None and event_id not in self.rejected_digest:
            self.rejected[event_id] = reason
            self.rejected_digest[event_id] = digest

    def refusal(self, event_id):
        if event_id in self.rejected:
            return self.rejected_digest.get(event_id), self.rejected[event_id]
        return None

    def members(self) -> Iterator[str]:
        return iter(sorted(self.states))

    def effects(self) -> list[dict]:
        return list(self.effect_rows)

    def entries(self, member: str) -> list[Entry]:
        return list(self.ledger.get(member, []))

    def event_bodies(self, member: str) -> list[Optional[bytes]]:
        return [encode_body(body) for body in self.bodies.get(member, [])]

    def last_time(self) -> Optional[str]:
        return self._last_dt.isoformat() if self._last_dt is not None else None

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        # nothing to undo: the memory store only ever receives whole, applied outcomes
        pass

    def close(self) -> None:
        pass
