"""The store interface the runner talks to: the Store protocol with its declared capabilities, the
store's error, and the one parser of a ``--db`` value (``parse_db``)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Literal, Optional, Protocol

import msgspec

from engine.core.journal import Touched
from engine.model.state import Effect, Entry, MemberState


def wall_clock() -> datetime:
    """The time a store stamps on the entries it books (``Entry.booked_at``): now, in UTC. A store's
    ``booked_clock`` attribute holds it; a test may put another clock there."""
    return datetime.now(timezone.utc)


_encode = msgspec.json.Encoder().encode
# members whose states or rows a store keeps between transactions, at most (bounds its memory;
# past it, what is kept is dropped and read again)
KEPT_MEMBERS = 200_000


def encode_body(body: Any) -> Optional[bytes]:
    """An applied event's body as a ledger keeps it: the event msgspec-encoded (``save`` is given
    the decoded event, or the bytes a shard already encoded; a past view decodes and replays it)."""
    return body if body is None or isinstance(body, bytes) else _encode(body)


class StoreError(Exception):
    """The ledger cannot be read or written (a full disk, a read-only file, a file that is not a
    ledger, a database that is down): said with the ledger's name and the cause, never half-written.
    The CLI exits 1 with it, the service answers 503 with it."""


# -- the one reading of --db ------------------------------------------------------------------------

DbKind = Literal["postgresql", "memory", "sqlite"]
_PG_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class DbSpec:
    """What a ``--db`` value names: a PostgreSQL URL, ``:memory:`` or a SQLite file's path."""
    text: str          # the value as given (the URL, ``:memory:`` or the path)
    kind: DbKind

    @property
    def shared(self) -> bool:
        """Other processes may write this ledger at once (PostgreSQL): several workers may serve it."""
        return self.kind == "postgresql"

    def missing(self) -> bool:
        """A SQLite path with no file there (opening it would create a new, empty ledger)."""
        return self.kind == "sqlite" and not Path(self.text).is_file()

    def absolute(self) -> str:
        """The value with a SQLite path made absolute (for a process started elsewhere)."""
        return str(Path(self.text).resolve()) if self.kind == "sqlite" else self.text


def parse_db(text: str) -> DbSpec:
    """The one parser of a ``--db`` value: ``postgresql://`` or ``postgres://`` is a PostgreSQL URL,
    ``:memory:`` a ledger in memory, anything else a SQLite file's path."""
    if text.startswith(_PG_SCHEMES):
        return DbSpec(text, "postgresql")
    return DbSpec(text, "memory" if text == ":memory:" else "sqlite")


# -- the protocol ---------------------------------------------------------------------------------

class RunStore(Protocol):
    """What the runner applies events through (engine/run/runner.py): a ledger's event ids, member
    states and writes, and its declared capabilities. ``Store`` is the whole ledger; a worker's
    stand-in for one (engine/run/parallel.py, engine/run/cluster.py) is only this. A store class
    subclasses the protocol: it implements the methods written ``...`` and inherits the no-op
    defaults of the capabilities it does not have.

    Declared capabilities (class attributes; the defaults describe a private ledger one process
    writes, such as the memory store). The runner and the rest ask these, never ``getattr``:

    * ``shared``: other processes write the same ledger (PostgreSQL). Each transaction locks its
      members (``lock``, ``lock_chunk``) and re-reads them; no state is trusted across transactions.
    * ``chunks``: a replay may go in chunks of events, one transaction a chunk: on a shared store its
      members locked together (``lock_chunk``), on a private one under the write lock with the
      chunk's event ids looked up at once (``begin``, ``prefetch``: SQLite).
    * ``sees_writers``: the store can tell whether another process wrote since it last looked
      (``changed_by_others``: SQLite's data_version), so cached states may outlive a commit.
    * ``writes_changes``: the store writes only what an event changed in a member's long
      sequences (engine/store/rows.py): ``save`` is given ``touched``, the event's journal's account
      of it (engine/core/journal.py). Without it ``touched`` is not worked out.
    """
    shared: ClassVar[bool] = False
    chunks: bool = False
    sees_writers: ClassVar[bool] = False
    writes_changes: ClassVar[bool] = False

    def is_applied(self, event_id: str) -> bool: ...

    def load(self, member: str) -> Optional[MemberState]: ...

    def save(self, event_id: str, event_type: str, at: str, state: MemberState,
             entries: Iterable[Entry], effects: Iterable[Effect], body: Any = None,
             touched: Optional[Touched] = None) -> None:
        """Record one applied event: its id, its body (the decoded event, or its bytes as
        ``encode_body`` makes them, for past views), the member's new state, its entries and
        effects, all in the same transaction. A store keeps the body in the form it likes.
        ``touched``: what the event did to the state's long sequences (engine/core/journal.py; None:
        not known), for a store that writes only what changed (engine/store/rows.py)."""
        ...

    def reject(self, event_id: Optional[str], member: Optional[str], reason: str,
               digest: Optional[str] = None) -> None:
        """Record a refused event with its reason and the fingerprint of its content."""
        ...

    def refusal(self, event_id: str) -> Optional[tuple[Optional[str], str]]:
        """(fingerprint, reason) of an event refused before and never applied, else None."""
        ...

    # -- transactions: no-op defaults for a store that keeps nothing open ----------------------------

    def commit(self) -> None:
        """End the current batch: everything saved so far is durable."""
        return None

    def rollback(self) -> None:
        """Drop what was saved since the last commit."""
        return None

    def close(self) -> None:
        """Let go of the ledger (after a last commit)."""
        return None

    # -- capabilities: the defaults are a private ledger's (nothing to lock, nobody else writes) ----

    def begin(self) -> bool:
        """Open the batch's write transaction before anything is read; True when it opened one
        (``chunks`` on a private store: SQLite's write lock). Default: nothing to open."""
        return False

    def changed_by_others(self) -> bool:
        """Whether another process committed since we last asked (``sees_writers``). Default: no."""
        return False

    def checkpoint_aside(self) -> None:
        """For a writer that commits all the time (the service): keep the work of folding the
        store's log back into its files out of the commits, where the store can. Default: nothing."""
        return None

    def prefetch(self, event_ids: list[str]) -> None:
        """Look up a batch's event ids at once inside the write transaction, so ``is_applied`` and
        ``refusal`` answer from memory (``chunks`` on a private store). Default: nothing to do."""
        return None

    def lock(self, member: str, event_id: Optional[str] = None) -> Optional[MemberState]:
        """Open ``member``'s transaction with its row locked and return its state (``shared``).
        Default: no other writer to keep out, the state as loaded."""
        return self.load(member)

    def lock_chunk(self, events: Iterable[Any]) -> None:
        """Open one transaction for a chunk of a replay with every member of ``events`` locked
        (``shared`` and ``chunks``). Default: nothing to lock."""
        return None


class Store(RunStore, Protocol):
    """A whole ledger (memory, SQLite, PostgreSQL): the runner's part plus what the views, the close
    and the service read. Per member one state, append-only entries and effects, and every applied
    or refused event id."""
    # the clock stamped on booked entries (``Entry.booked_at``); a test may put another one here
    booked_clock: Callable[[], datetime]

    def members(self) -> Iterator[str]: ...

    def effects(self) -> list[dict]: ...

    def entries(self, member: str) -> list[Entry]: ...

    def event_bodies(self, member: str) -> list[Optional[bytes]]:
        """The bodies of the member's applied events in the order they were applied (None for an
        event recorded before the ledger kept bodies): a past view replays them (engine/run/report.py)."""
        ...

    def last_time(self) -> Optional[str]: ...

    def book(self, state: MemberState, entries: Iterable[Entry], effects: Iterable[Effect],
             booked_at: Optional[datetime]) -> None:
        """Record what a close booked for one member with no event (engine/run/close.py): its new
        state, the happenings' entries (stamped ``booked_at``) and effects, in the member's
        transaction (the caller locked or loaded the member and commits)."""
        ...

    def record_close(self, through: datetime, booked_at: datetime, snapshot: dict) -> None:
        """Remember a finished close: every happening due up to ``through`` is booked; ``snapshot``
        is what it found outstanding then (by expiry month)."""
        ...

    def closes(self) -> list[dict]:
        """Every recorded close, oldest first: {"through", "booked_at" (datetimes), "snapshot"}."""
        ...

    def schema_state(self) -> tuple[bool, str]:
        """Whether the ledger's schema is the one this engine writes: (current, what was found).
        Default: a store without a schema."""
        return True, f"{type(self).__name__}: no schema"

    def event_types(self) -> dict[str, tuple[str, str]]:
        """Applied event id -> (type, at), where the store keeps them (explain tells them). Default: none."""
        return {}

    # -- notes written with a commit (``shared`` and ``chunks``: a cluster task's outcome) -------------

    def note_commit(self, key: str, value: Callable[[], str]) -> None:
        """Write ``value()`` under ``key`` with the next chunk's commit, in its transaction, so the note
        exists if and only if the chunk was committed (engine/run/cluster.py). Default: a ledger no
        other process writes keeps no notes (a lost worker's task is simply run again on it)."""
        return None

    def notes(self, prefix: str) -> dict[str, str]:
        """The notes whose key starts with ``prefix`` (``note_commit``). Default: none."""
        return {}

    def forget_notes(self, prefix: str) -> None:
        """Delete the notes whose key starts with ``prefix``. Default: there are none."""
        return None
