"""The store interface the runner talks to."""
from __future__ import annotations

from typing import Iterable, Iterator, Optional, Protocol

from engine.model.state import Effect, Entry, MemberState


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

    def commit(self) -> None:
        """End the current batch: everything saved so far is durable."""

    def rollback(self) -> None:
        """Drop what was saved since the last commit."""

    def close(self) -> None: ...
