"""Apply a stream of events to a store: decode, skip replays, apply through the pure core, save.

Events of one member must come in time order (a late one is rejected with its reason, never
reordered silently): so a file split into consecutive runs gives the same ledger as one run.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Optional, Union, cast

import msgspec

from engine.core.apply import apply
from engine.core.earning import RowChoices
from engine.model.errors import EventRejected, ProgramError, Refusal
from engine.model.events import BadEvent, decode_event
from engine.format.program import Program
from engine.model.state import MemberState
from engine.store.base import RunStore, Store, StoreError

BATCH = 1000  # events a transaction; a crash loses at most one uncommitted batch, replayed on rerun
# Events a transaction of a replay into a shared store (PostgreSQL). The chunk's members stay locked
# until it commits: a checkout for one of them waits for at most one chunk (about 0.1 s at 200;
# replay throughput grows only some 20% more from 200 to 500, see bench/pg_replay.py).
SHARED_BATCH = 200
CACHE_MEMBERS = 200_000   # member states kept between batches (bounds a long replay's memory)


@dataclass
class RunResult:
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: list[Refusal] = field(default_factory=list)   # each reads as its JSON object too
    effects: list = field(default_factory=list)


# A line of input as the runner takes it: JSON text, or a BadEvent the reader refused (engine/run/lines.py)
_Line = Union[bytes, str, BadEvent]


def _nothing(member: str) -> None:
    pass


def failure_of(exc: BaseException, otherwise: str) -> tuple[str, int]:
    """What a worker's failure (a --jobs or --cluster shard) tells the user, and the exit code: a
    store or program problem in its own words (1), anything else, a bug, as ``otherwise`` with its
    type and text (2)."""
    if isinstance(exc, StoreError):
        return str(exc), 1
    if isinstance(exc, ProgramError):
        return "; ".join(str(p) for p in exc.problems) or str(exc), 1
    return f"{otherwise}: {type(exc).__name__}: {exc}", 2


def refusal_of_line(bad: BadEvent, line_no: Optional[int]) -> Refusal:
    """The run report's entry for a line that is no valid event."""
    return bad.refusal(line_no)


def event_digest(event) -> str:
    """A fingerprint of an event's content (field order and spacing of the input do not matter)."""
    return hashlib.sha256(msgspec.json.encode(event)).hexdigest()[:32]


class Runner:
    """Applies events for one program to one store, keeping touched members' states in memory."""

    def __init__(self, program: Program, store: RunStore, batch: Optional[int] = None):
        self.program = program
        self.store = store
        self.cache: dict[str, Optional[MemberState]] = {}
        self._pending = 0
        # A shared store (PostgreSQL: other processes write the same ledger) cannot be cached across
        # transactions: a single event locks its member's row, re-loads it and commits at once; a
        # replay (``run``) locks and loads the members of a chunk of events, and commits the chunk.
        self.shared = store.shared
        self.batch = batch if batch is not None else (SHARED_BATCH if self.shared else BATCH)
        # a store that can tell whether another process wrote since we last looked (SQLite)
        self._sees_writers = store.sees_writers
        self._writes_changes = store.writes_changes   # it wants each event's account of its changes
        self._chunked = False
        # told the member of every applied event: its state changed in place (engine/core/apply.py),
        # so whatever was made from it before (the shell's views of members) is out of date
        self.on_applied: Callable[[str], None] = _nothing
        self.choices = RowChoices()   # the program's rate-row choices, remembered between events
        self._grouped = False   # a group's members are locked together (``begin_group`` on a shared store)

    def state_of(self, member: str) -> Optional[MemberState]:
        if self._sees_writers and self.store.changed_by_others():
            self.cache.clear()   # another process committed since our last look: read again
        if member not in self.cache:
            self.cache[member] = self.store.load(member)
        return self.cache[member]

    def apply_one(self, raw: bytes | str | BadEvent, result: RunResult, line_no: Optional[int] = None) -> None:
        if isinstance(raw, BadEvent):     # a line the reader refused (engine/run/lines.py)
            self._refuse_bad(raw, result, line_no)
            return
        try:
            event = decode_event(raw)
        except BadEvent as bad:
            self._refuse_bad(bad, result, line_no)
            return
        self.apply_event(event, result)

    def _refuse_bad(self, bad: BadEvent, result: RunResult, line_no: Optional[int]) -> None:
        refusal = refusal_of_line(bad, line_no)
        result.rejected.append(refusal)
        self.store.reject(refusal.event if isinstance(refusal.event, str) else None, None, refusal.message)

    def apply_event(self, event, result: RunResult) -> None:
        if self._grouped:
            # inside a group on a shared store: the member is locked with the group's others
            self.cache[event.member] = self.store.lock(event.member, event.id)
            self._apply_event(event, result)
            return
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
        if self.store.begin() and self.store.changed_by_others():
            # SQLite: the write lock is taken before anything is read, so another process cannot
            # spend the same points between our read and our write (it waits for our commit);
            # states cached before the lock are read again if another process committed since.
            self.cache.clear()
        if self.store.is_applied(event.id):
            result.skipped.append(event.id)
            return
        refused = self.store.refusal(event.id)
        # the fingerprint is needed only to compare with a refusal on record or to record one
        digest = event_digest(event) if refused is not None else None
        if refused is not None and refused[0] == digest:
            # The same event, refused before: refused again with its first reason, never applied
            # now that the member's state has moved on. A corrected event (another body
            # under the same id) is judged afresh.
            result.rejected.append(Refusal(message=refused[1], code="refusal.recorded", args={"detail": refused[1]},
                                           event=event.id, repeat=True, at=event.at))
            return
        try:
            outcome = apply(self.program, self.state_of(event.member), event, self.choices)
        except EventRejected as rej:
            refusal = rej.refusal(event.id, event.at)
            result.rejected.append(refusal)
            self.store.reject(event.id, event.member, refusal.message, digest or event_digest(event))
            return
        try:
            self.store.save(event.id, type(event).__struct_config__.tag, event.at, outcome.state,
                            outcome.entries, outcome.effects, event,
                            touched=outcome.touched() if self._writes_changes else None)
        except BaseException:
            outcome.undo()   # not recorded: the member's state as the store still has it
            raise
        self.cache[event.member] = outcome.state
        self.on_applied(event.member)
        result.applied.append(event.id)
        result.effects.extend(outcome.effects)
        self._pending += 1
        if self._pending >= self.batch and not self._chunked:
            self.commit()

    def begin_group(self, events: list) -> bool:
        """Open ONE transaction for the events of several callers (the HTTP service's group commit,
        engine/shell/service.py): until ``end_group`` every ``apply_one`` goes into it, and
        ``end_group`` commits them all at once, so that many checkouts share one durable commit.
        ``events``: the decoded events the group will apply (their members and ids): a shared
        store (PostgreSQL) locks all their members at once, in member order (as a replay chunk:
        no deadlock with another worker's group, a replay or a checkout); SQLite takes its write
        lock and looks the ids up in one query. Each event is still judged alone (a refused one
        writes only its refusal, an id met twice is applied once). Returns False, opening
        nothing, where the store has no transaction to share (memory) or cannot lock many members
        in one transaction (PostgreSQL with Citus): the caller then applies one event a transaction."""
        store = self.store
        if not store.chunks:
            return False         # memory, Citus: one event a transaction
        if store.shared:
            self.cache.clear()
            store.lock_chunk(events)
            self._grouped = True
        else:
            if store.begin() and store.changed_by_others():
                self.cache.clear()
            store.prefetch(list(dict.fromkeys(e.id for e in events)))
        self._chunked = True
        return True

    def end_group(self) -> None:
        """Commit the group opened by ``begin_group``: all its events become durable together."""
        self._chunked = self._grouped = False
        self.commit()

    def abandon_group(self) -> None:
        """Drop the group in flight (nothing of it is written) and the states cached from it."""
        self._chunked = self._grouped = False
        self.abandon()

    def commit(self) -> None:
        """End the batch. Once the lock is released another process may write: a store that can
        tell whether one did (SQLite's data_version) keeps the cached states until it has; any
        other store's next batch reads every member afresh under its own lock."""
        self.store.commit()
        self._pending = 0
        if not self._sees_writers or len(self.cache) > CACHE_MEMBERS:
            self.cache.clear()

    def run(self, lines: Iterable[Any], progress: Callable[[int], None] | None = None,
            result: Optional[RunResult] = None, numbered: bool = False) -> RunResult:
        """Apply a stream. A store with one writer per transaction (SQLite) gets the stream in
        chunks of ``batch`` lines: one transaction a chunk, and the ids of the chunk looked up in one
        query under its write lock instead of one query an event. A shared store that can lock a
        chunk's members at once (PostgreSQL) gets it in chunks too: one transaction a chunk, its
        members locked together (``_run_shared_chunk``). ``result``: the RunResult to fill (a caller
        that watches it line by line through ``progress``, engine/run/parallel.py); a new one by default.
        ``lines``: bytes or str (or a BadEvent the reader refused, engine/run/lines.py), or with
        ``numbered`` ``(line number, line)`` pairs (a part of a longer input, engine/run/cluster.py)."""
        result = result if result is not None else RunResult()
        chunked = self.store.chunks
        chunk: list = []
        try:
            pairs = cast(Iterable[tuple[int, _Line]], lines) if numbered else enumerate(cast(Iterable[_Line], lines), 1)
            for n, raw in pairs:
                if isinstance(raw, (bytes, str)) and not raw.strip():
                    continue
                if not chunked:
                    self.apply_one(raw, result, n)
                    if progress is not None:
                        progress(n)
                    continue
                chunk.append((n, raw))
                if len(chunk) >= self.batch:
                    self._run_chunk(chunk, result, progress)
                    chunk = []
            if chunk:
                self._run_chunk(chunk, result, progress)
        except StoreError:
            # the store failed the batch in flight (and said why): nothing of it stands, and a
            # commit now would only hide the cause behind "no transaction is active"
            self._chunked = False
            self.abandon()
            raise
        except BaseException as exc:
            self._chunked = False
            try:
                self.commit()     # the whole events before the failure stand; the failing one wrote nothing
            except StoreError:
                self.abandon()
            raise exc
        self._chunked = False
        self.commit()
        return result

    def abandon(self) -> None:
        """Drop the batch in flight after a store failure, and the states cached from it."""
        self.cache.clear()
        self._pending = 0
        try:
            self.store.rollback()
        except StoreError:
            pass

    def _run_chunk(self, chunk: list, result: RunResult, progress: Callable[[int], None] | None) -> None:
        decoded = []
        for n, raw in chunk:
            try:
                decoded.append((n, raw if isinstance(raw, BadEvent) else decode_event(raw)))
            except BadEvent as bad:
                decoded.append((n, bad))
        if self.shared:
            self._run_shared_chunk(decoded, result, progress)
            return
        if self.store.begin() and self.store.changed_by_others():
            self.cache.clear()
        self.store.prefetch([e.id for _, e in decoded if not isinstance(e, BadEvent)])
        self._apply_chunk(decoded, result, progress)

    def _apply_chunk(self, decoded: list, result: RunResult, progress: Callable[[int], None] | None,
                     locked: bool = False) -> None:
        """The chunk's lines in order, in the transaction already open, then one commit. ``locked``:
        the store holds every member of the chunk (``lock`` answers from memory)."""
        self._chunked = True
        for n, event in decoded:
            if isinstance(event, BadEvent):
                self._refuse_bad(event, result, n)
            else:
                if locked:
                    self.cache[event.member] = self.store.lock(event.member, event.id)
                self._apply_event(event, result)
            if progress is not None:
                progress(n)
        self._chunked = False
        self.commit()

    def _run_shared_chunk(self, decoded: list, result: RunResult, progress: Callable[[int], None] | None) -> None:
        """One transaction for a chunk of a replay into a shared store: the store locks every member
        of the chunk (in sorted order: no deadlock with another replay or a checkout), loads their
        states and looks up the chunk's event ids in one round trip; the events are applied in
        order exactly as one by one (``_apply_event``), and their writes go with one COMMIT. Each
        event is still all or nothing: a refused one writes nothing of its outcome, and if anything
        fails before the commit (the database, the connection, an interrupt) the whole chunk rolls
        back, none of it recorded, and a rerun applies it."""
        store = self.store
        self.cache.clear()
        try:
            store.lock_chunk([e for _, e in decoded if not isinstance(e, BadEvent)])
            self._apply_chunk(decoded, result, progress, locked=True)
        except BaseException:
            self._chunked = False
            self.cache.clear()
            try:
                store.rollback()
            except Exception:  # noqa: BLE001 - the connection is gone: the server rolled it back
                pass
            raise


def parse_as_of(text: Optional[str], program: Program, store: Store) -> Optional[datetime]:
    from engine.model.timeutil import parse_instant

    if text:
        return parse_instant(text, program.tz)
    last = store.last_time()
    return datetime.fromisoformat(last) if last else None
