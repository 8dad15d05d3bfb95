"""The store interface the runner talks to."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Iterator, Optional, Protocol

from engine.model.state import Effect, Entry, MemberState


def wall_clock() -> datetime:
    """The time a store stamps on the entries it books (``Entry.booked_at``): now, in UTC. A store's
    ``booked_clock`` attribute holds it; a test may put another clock there."""
    return datetime.now(timezone.utc)


class StoreError(Exception):
    """The ledger cannot be read or written (a full disk, a read-only file, a file that is not a
    ledger, a database that is down): said with the ledger's name and the cause, never half-written.
    The CLI exits 1 with it, the service answers 503 with it."""


class Store(Protocol):
    def is_applied(self, event_id: str) -> bool: ...

    def load(self, member: str) -> Optional[MemberState]: ...

    def save(self, event_id: str, event_type: str, at: str, state: MemberState,
             entries: Iterable[Entry], effects: Iterable[Effect], body: Optional[bytes] = None) -> None:
        """Record one applied event: its id, its body (the event msgspec-encoded, for past views),
        the member's new state, its entries and effects, all in the same transaction."""

    def reject(self, event_id: Optional[str], member: Optional[str], reason: str,
               digest: Optional[str] = None) -> None:
        """Record a refused event with its reason and the fingerprint of its content."""

    def refusal(self, event_id: str) -> Optional[tuple[Optional[str], str]]:
        """(fingerprint, reason) of an event refused before and never applied, else None."""

    def members(self) -> Iterator[str]: ...

    def effects(self) -> list[dict]: ...

    def entries(self, member: str) -> list[Entry]: ...

    def event_bodies(self, member: str) -> list[Optional[bytes]]:
        """The bodies of the member's applied events in the order they were applied (None for an
        event recorded before the ledger kept bodies): a past view replays them (engine/run/report.py)."""

    def last_time(self) -> Optional[str]: ...

    def book(self, state: MemberState, entries: Iterable[Entry], effects: Iterable[Effect],
             booked_at: datetime) -> None:
        """Record what a close booked for one member with no event (engine/run/close.py): its new
        state, the happenings' entries (stamped ``booked_at``) and effects, in the member's
        transaction (the caller locked or loaded the member and commits)."""

    def record_close(self, through: datetime, booked_at: datetime, snapshot: dict) -> None:
        """Remember a finished close: every happening due up to ``through`` is booked; ``snapshot``
        is what it found outstanding then (by expiry month)."""

    def closes(self) -> list[dict]:
        """Every recorded close, oldest first: {"through", "booked_at" (datetimes), "snapshot"}."""

    def commit(self) -> None:
        """End the current batch: everything saved so far is durable."""

    def rollback(self) -> None:
        """Drop what was saved since the last commit."""

    def close(self) -> None: ...
