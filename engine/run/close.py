"""Close the ledger through a moment (issue 22): every member's happenings due by then (expiries,
birth-month bonuses, delayed restores, version switches, a ladder's month) booked into the ledger
with no event needed, member by member.

* The same happenings, at the same times, as the member's next event would fire on its way
  (``clock.advance`` with ``before_event``: a ladder's month evaluation due exactly at the close's
  moment waits for the events stamped that instant, as it does on the way to an event). So events
  before and after a close give the same ledger as without it.
* Idempotent: a member whose happenings are booked up to the moment has nothing due, and a close
  to a moment the ledger is already closed through records nothing.
* Resumable: members are booked a few at a time (``CLOSE_BATCH``), each under its lock (a shared
  store's row lock, SQLite's write lock), the batch one transaction (PostgreSQL: each member its
  own, its COMMIT sent with the next member's lock), committed; the close is
  recorded only when every member is done. A close killed midway leaves whole members booked or
  not (whole batches), and a rerun books the rest.
* The store remembers each finished close: its moment, the time it was booked, and what it found
  outstanding by expiry month then (the liability report reads it for a closed month,
  engine/run/liability.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Optional

import msgspec

from engine.core.clock import advance, next_due
from engine.format.program import Program
from engine.model.state import MemberState
from engine.model.timeutil import parse_instant, start_of
from engine.run.report import PastViewUnavailable, as_of, state_at
from engine.run.runner import failure_of
from engine.store.base import Store


@dataclass
class CloseResult:
    through: datetime
    booked_at: datetime
    members: int = 0            # members looked at
    booked: list[str] = field(default_factory=list)   # members something was booked for
    entries: int = 0
    effects: list = field(default_factory=list)
    recorded: bool = False      # the close was recorded (False: the ledger was closed through it already)
    previous: Optional[datetime] = None   # the moment of the last close before this one
    by_expiry: dict = field(default_factory=dict)   # "YYYY-MM" | "none" -> {"units", "yen"} open at the moment
    not_seen: list = field(default_factory=list)    # members whose past could not be rebuilt
    shards: int = 1                                 # processes or cluster tasks the members were split over

    def answer(self, program: Program) -> dict:
        tz = program.tz
        return {
            "program": program.id,
            "through": self.through.astimezone(tz).isoformat(),
            "booked_at": self.booked_at.isoformat(),
            "members": self.members,
            "members_booked": len(self.booked),
            "entries": self.entries,
            "effects": len(self.effects),
            "recorded": self.recorded,
            "previous_close": self.previous.astimezone(tz).isoformat() if self.previous is not None else None,
            "shards": self.shards,
        }


def close_time(text: str, program: Program) -> datetime:
    """The moment a close (or a report's end) names: a bare date is the end of that day in the
    program's zone (its last microsecond: every happening before the next day's 00:00); a time
    with an offset is itself. Raises ValueError."""
    at = parse_instant(text, program.tz)
    if len(text) == 10:
        at = start_of(at.date() + timedelta(days=1), program.tz) - timedelta(microseconds=1)
    return at


def step(program: Program, state: MemberState, through: datetime) -> Optional[tuple[MemberState, list, list]]:
    """Pure: the member with every happening due up to ``through`` fired, as the core would fire
    them on its way to an event at ``through``; with their entries and effects. None: nothing is
    due (the state stays as it is)."""
    if state.clock is not None and state.clock >= through:
        return None
    due = next_due(program, state)
    if due is None or due > through:
        return None
    new = state.copy()
    entries: list = []
    effects: list = []
    advance(program, new, through, entries, effects, before_event=True)
    if not entries and not effects and _same(new, state):
        return None
    return new, entries, effects


_encode = msgspec.json.Encoder().encode


def _same(new: MemberState, old: MemberState) -> bool:
    """Whether only the remembered next happening differs (nothing fired that changed the member)."""
    a = msgspec.structs.replace(new, due_at=None, due_for="")
    b = msgspec.structs.replace(old, due_at=None, due_for="")
    return _encode(a) == _encode(b)


def last_close(store) -> Optional[dict]:
    rows = store.closes()
    return max(rows, key=lambda row: row["through"]) if rows else None


def _locked(store: Store, member: str) -> Optional[MemberState]:
    """The member's state under its lock: a shared store's row lock, SQLite's write lock."""
    if store.shared:
        return store.lock(member)
    store.begin()
    return store.load(member)


def close(program: Program, store: Store, through: datetime, booked_at: Optional[datetime] = None,
          members: Optional[Iterable[str]] = None, progress: Optional[Callable[[int], None]] = None) -> CloseResult:
    """Book every member's happenings due up to ``through`` (``members``: only these, a shard's;
    the close is then not recorded), a few members a transaction; record the close. ``booked_at``:
    the time stamped on what it books (default: the store's clock, now)."""
    booked_at = booked_at or store.booked_clock()
    previous = last_close(store)
    result = CloseResult(through, booked_at, previous=previous["through"] if previous else None)
    names = list(store.members()) if members is None else list(members)
    close_members(program, store, through, booked_at, names, result, progress)
    if members is None:
        _record(store, result, previous)
    return result


def _record(store, result: CloseResult, previous: Optional[dict]) -> None:
    """Record the close once every member is booked (not again through a moment already closed)."""
    if previous is None or result.through > previous["through"]:
        snapshot = {"by_expiry": dict(sorted(result.by_expiry.items())), "members_not_seen": sorted(result.not_seen)}
        store.record_close(result.through, result.booked_at, snapshot)
        store.commit()
        result.recorded = True


# Members booked a transaction: each commit waits for the ledger's disk (PostgreSQL: a WAL flush),
# so a few members share one; a close killed midway loses at most this many members' booking, which
# a rerun books again. Small enough that the rows locked at once stay few.
CLOSE_BATCH = 16


def close_members(program: Program, store, through: datetime, booked_at: datetime, names: Iterable[str],
                  result: CloseResult, progress: Optional[Callable[[int], None]] = None,
                  batch: int = CLOSE_BATCH) -> CloseResult:
    """Book the happenings due up to ``through`` of the members ``names``, ``batch`` members with
    something due a transaction (each under its lock), into ``result`` (what was booked, what is
    outstanding by expiry month then); records no close."""
    by_expiry, incomplete = result.by_expiry, result.not_seen
    pending = 0   # members locked in the open transaction
    try:
        for n, member in enumerate(names, 1):
            state = store.load(member)
            if state is None:
                continue
            result.members += 1
            if step(program, state, through) is not None:
                state = _locked(store, member)   # again, under the lock: another process may have written
                pending += 1
                out = step(program, state, through) if state is not None else None
                if out is not None:
                    state, entries, effects = out
                    store.book(state, entries, effects, booked_at)
                    result.booked.append(member)
                    result.entries += len(entries)
                    result.effects.extend(effects)
                if pending >= batch:
                    store.commit()
                    pending = 0
            if state is not None and state.registered:
                _outstanding(program, store, state, through, by_expiry, incomplete)
            if progress is not None:
                progress(n)
        if pending:
            store.commit()
    except BaseException:
        store.rollback()
        raise
    return result


def _outstanding(program: Program, store, state: MemberState, through: datetime, by_expiry: dict,
                 incomplete: list) -> None:
    """Add the member's open units at ``through`` to ``by_expiry`` ("YYYY-MM" of the last valid
    day, "none": no end): units and yen at the value of the lot's version."""
    try:
        past, _ = state_at(program, store, state, through)
    except PastViewUnavailable:
        incomplete.append(state.member)
        return
    if past is None:
        return
    view, _, _ = as_of(program, past, through)
    for lot in view.lots:
        last = view.lot_expires_on(lot)
        key = last.isoformat()[:7] if last is not None else "none"
        row = by_expiry.setdefault(key, {"units": 0, "yen": 0})
        row["units"] += lot.amount
        row["yen"] += lot.amount * program.unit_value_yen(lot.version)


# -- sharded: worker processes (--jobs) or Dask tasks (--cluster) ---------------------------------

class CloseError(Exception):
    """A sharded close that did not finish (the message says why); what was booked stays booked,
    member by member, and the close is not recorded: a rerun books the rest.
    ``exit_code``: 1 for a store or input problem, 2 for an internal error."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def shards(names: list[str], n: int) -> list[list[str]]:
    """The members split into at most ``n`` shards of nearly equal size (every n-th member)."""
    names = sorted(names)
    return [part for part in (names[i::n] for i in range(max(1, n))) if part]


def close_shard(text: bytes, filename: str, spec: str, through: datetime, booked_at: datetime,
                members: list[str]) -> CloseResult:
    """One shard's part of a close, in a worker: the program compiled from its text, the ledger
    opened on ``spec`` (every member a transaction of its own, under its lock)."""
    from engine.format.loader import parse_program
    from engine.store import open_store

    program = parse_program(text, filename)
    store = open_store(spec, program.id, program.tz)
    try:
        return close_members(program, store, through, booked_at, members, CloseResult(through, booked_at))
    finally:
        store.close()


def _merge(result: CloseResult, part: CloseResult) -> None:
    result.members += part.members
    result.booked += part.booked
    result.entries += part.entries
    result.effects += part.effects
    result.not_seen += part.not_seen
    for key, row in part.by_expiry.items():
        mine = result.by_expiry.setdefault(key, {"units": 0, "yen": 0})
        mine["units"] += row["units"]
        mine["yen"] += row["yen"]


def _describe(exc: BaseException) -> CloseError:
    return CloseError(*failure_of(exc, "a close shard failed"))


def close_sharded(program: Program, store, spec: str, through: datetime, *, jobs: int = 1,
                  address: Optional[str] = None, workers: Optional[int] = None, client=None,
                  text: Optional[bytes] = None, booked_at: Optional[datetime] = None) -> CloseResult:
    """The close of ``close``, its members split over ``jobs`` worker processes, or over the tasks
    of a Dask cluster (the scheduler at ``address``, a ``client``, or a local cluster of
    ``workers``: one task a worker thread). Each shard opens the ledger on ``spec`` itself (a
    SQLite file or PostgreSQL: the one the parent's ``store`` is open on) and books its members
    one a transaction, under their locks, as ``close`` does; the parent records the close when
    every shard is done, with their outstanding units added up. The same ledger, answer and record
    as ``close``. ``text``: the program file's text (default: read from ``program.file``)."""
    from engine.store.base import parse_db

    if parse_db(spec).kind == "memory":
        raise CloseError("a sharded close needs a ledger the workers share (a SQLite file or a PostgreSQL URL): "
                         ":memory: lives in this process only")
    try:
        text = text if text is not None else open(program.file, "rb").read()
    except OSError as exc:
        raise CloseError(f"{program.file}: cannot read file: {exc.strerror}") from None
    booked_at = booked_at or store.booked_clock()
    store.commit()
    previous = last_close(store)
    result = CloseResult(through, booked_at, previous=previous["through"] if previous else None)
    names = list(store.members())
    if address is not None or client is not None or workers is not None:
        parts = _on_cluster(text, program.file, spec, through, booked_at, names, address, workers, client)
    else:
        parts = _on_processes(text, program.file, spec, through, booked_at, names, jobs)
    result.shards = max(1, len(parts))
    for part in parts:
        _merge(result, part)
    _record(store, result, previous)
    return result


def _on_processes(text, filename, spec, through, booked_at, names, jobs) -> list[CloseResult]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    parts = shards(names, jobs)
    if not parts:
        return []
    # fork where the platform has it (as engine/run/parallel.py: no second import of the engine);
    # a worker opens its own ledger connection and never touches the parent's
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(len(parts), mp_context=multiprocessing.get_context(method)) as pool:
        futures = [pool.submit(close_shard, text, filename, spec, through, booked_at, part) for part in parts]
        out, failure = [], None
        for k, future in enumerate(futures):
            try:
                out.append(future.result())
            except BrokenProcessPool:
                failure = failure or CloseError(f"close worker {k + 1} of {len(parts)} died; what it booked stays "
                                                "booked (member by member): run the close again to finish", 2)
            except Exception as exc:   # noqa: BLE001 - said as a message, never a traceback
                failure = failure or _describe(exc)
    if failure is not None:
        raise failure
    return out


def _on_cluster(text, filename, spec, through, booked_at, names, address, workers, client) -> list[CloseResult]:
    from engine.run.cluster import ClusterError, cluster_client

    def run(c) -> list[CloseResult]:
        parts = shards(names, max(1, sum(c.nthreads().values())))
        futures = [c.submit(close_shard, text, filename, spec, through, booked_at, part, pure=False, retries=2)
                   for part in parts]
        try:
            return c.gather(futures)
        except Exception as exc:   # noqa: BLE001 - said as a message, never a traceback
            raise _describe(exc) from None

    try:
        if client is not None:
            return run(client)
        with cluster_client(address, workers) as own:
            return run(own)
    except ClusterError as exc:
        raise CloseError(str(exc), exc.exit_code) from None
