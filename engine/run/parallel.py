"""Replay a stream of events in several processes at once, sharded by member.

Each member's state stands alone and its events come in time order (engine/run/runner.py), so a stream
can be split by member: every member's lines go, in their order, to one shard, and one worker
process replays each shard with its own ``Runner``. The parent merges the workers' results into
one ``RunResult`` in the order of the input lines, so it lists what a sequential run lists:

    result = replay_parallel("programs/andest.yaml", open("events.jsonl", "rb"), 2, "postgresql://…")

Partition. A tiny decoder reads each line's ``member`` and ``id`` (under a microsecond a line;
the whole partition costs the parent about 3 µs a line, some 2% of a replay's work). Members that
share an event id go to one shard (SQLite and memory stores know an id ledger-wide:
the second line is skipped as a replay, as in a sequential run). A line without a member (bad
JSON, a wrong type, no ``member``) goes to the shard of its id's member if that is known, else to
shard 0; it is refused there exactly as the sequential runner refuses it, with its line number.
Shards are balanced by their number of lines (largest groups first). The lines are read whole
before the workers start (a sequential run streams them).

Stores (``store_spec`` is what ``loyalty run --db`` takes):

* PostgreSQL: every worker writes the one database through a store of its own, as separate
  ``loyalty run`` processes would: its transactions lock its members' rows, and no two workers
  have a member in common, so they never wait for each other.
* SQLite (one writer at a time): the parent reads what the ledger already knows about the
  stream's members and event ids (under the write lock); the workers compute outcomes against
  that in memory and hand them over in batches (``SQLITE_BATCH`` events: new states, ledger
  lines, effects, refusals) to the parent, the ledger's only writer, which writes each batch as
  one transaction through ``SQLiteStore``. If another process writes the ledger meanwhile, the
  run stops (what was written stays whole) and a rerun finishes it.
* memory (``:memory:``): for benchmarks only; the states stay in the workers.

Failures. A worker that fails or dies makes ``replay_parallel`` raise ``ParallelError`` with a
message naming it (never a traceback); the other workers finish their shards. Everything committed
stays consistent (each event, or SQLite batch, is whole) and a rerun completes the replay: stores
skip the ids already applied.

Lines reach the workers by fork (inherited memory, no copy) where the platform has it, else by
pipe; ``transport`` forces one (bench/parallel.py measures both).
"""
from __future__ import annotations

import gc
import itertools
import multiprocessing
import signal
import sys
from array import array
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Optional

import msgspec

from engine.format.program import Program
from engine.run.runner import Runner, RunResult, failure_of
from engine.model.state import Effect, Entry, MemberState
from engine.store.base import RunStore, encode_body

if TYPE_CHECKING:
    from engine.store.sqlite import SQLiteStore

__all__ = ["ParallelError", "replay_parallel", "partition", "effects_in_line_order"]


class ParallelError(Exception):
    """A parallel replay that did not finish: the message says which worker and why.
    ``exit_code``: 1 for a store or input problem (as a sequential run), 2 for an internal error."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


# Events a worker hands the parent at a time when the parent writes a SQLite ledger for it: each
# batch carries the new state of every member it touched, so bigger batches carry (and make the
# parent decode and write) fewer states an event. A crash loses at most this much work a worker
# (never consistency: a batch is written whole, in one transaction).
SQLITE_BATCH = 4000


# -- partition ------------------------------------------------------------------------------------

class _Key(msgspec.Struct):
    member: Optional[str] = None
    id: Any = None


_decode_key = msgspec.json.Decoder(_Key).decode


@dataclass
class Shard:
    """One worker's lines: their numbers in the input and their bytes, end to end in ``blob``."""
    numbers: array = field(default_factory=lambda: array("L"))
    offsets: array = field(default_factory=lambda: array("Q", [0]))
    blob: bytes = b""
    ids: list = field(default_factory=list)        # event ids of the shard's lines (SQLite look-ups)
    members: list = field(default_factory=list)    # the shard's members

    def __len__(self) -> int:
        return len(self.numbers)

    def lines(self):
        """(number, raw line) in input order."""
        blob, off = self.blob, self.offsets
        for i, n in enumerate(self.numbers):
            yield n, blob[off[i]:off[i + 1]]


def partition(lines: Iterable[bytes | str], jobs: int, with_ids: bool = True) -> list[Shard]:
    """Split ``lines`` into at most ``jobs`` shards by member, keeping each member's lines in order.
    Blank lines (skipped by the runner) are left out; line numbers count them, as the runner does.
    ``with_ids``: list each shard's event ids (``Shard.ids``, for the SQLite look-ups)."""
    keys = _read_keys(lines)
    jobs, member_shard, line_shard = _balance(keys, jobs)
    return _cut(keys, jobs, member_shard, line_shard, with_ids)


@dataclass
class _Keys:
    """The kept lines of a stream with each line's member, and the members that share an event id."""
    member_index: dict[str, int] = field(default_factory=dict)
    up: list[int] = field(default_factory=list)                 # union-find over member indexes (members sharing an id)
    id_owner: dict[str, int] = field(default_factory=dict)      # event id -> index of the first member seen with it
    loose: list[tuple[int, str]] = field(default_factory=list)  # (kept line, event id) of lines with an id but no member
    line_member: array = field(default_factory=lambda: array("l"))   # per kept line: its member's index, or -1
    numbers: array = field(default_factory=lambda: array("L"))       # per kept line: its number in the input
    raws: list[bytes] = field(default_factory=list)

    def find(self, i: int) -> int:
        up = self.up
        while up[i] != i:
            up[i] = up[up[i]]
            i = up[i]
        return i


def _as_bytes(raw: object, n: int) -> Optional[bytes]:
    """A line that is not ``bytes`` as bytes, or None for a blank line (which the runner skips)."""
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass") if raw.strip() else None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        if isinstance(raw, bytes) and not raw.strip():
            return None
        return bytes(raw)      # the runner checks only bytes and str for a blank line
    raise TypeError(f"line {n}: a line is bytes or str, not {type(raw).__name__}")


def _read_keys(lines: Iterable[bytes | str]) -> _Keys:
    """Read each line's ``member`` and ``id`` (one pass, the only per-line work of the partition)."""
    keys = _Keys()
    member_index, up, id_owner, loose = keys.member_index, keys.up, keys.id_owner, keys.loose
    line_member, numbers, raws, find = keys.line_member, keys.numbers, keys.raws, keys.find
    decode, errors = _decode_key, (msgspec.DecodeError, RecursionError)
    for n, raw in enumerate(lines, 1):
        if not isinstance(raw, bytes):
            converted = _as_bytes(raw, n)
            if converted is None:
                continue
            raw = converted
        try:
            key = decode(raw)
        except errors:
            if not raw.strip():       # a blank line (it does not decode either): skipped, counted
                continue
            m = -1
        else:
            member, eid = key.member, key.id
            if eid.__class__ is not str:
                eid = None
            if member is None:
                m = -1
                if eid is not None:
                    loose.append((len(raws), eid))
            else:
                known = member_index.get(member)
                if known is None:
                    m = member_index[member] = len(up)
                    up.append(m)
                else:
                    m = known
                if eid is not None:
                    owner = id_owner.setdefault(eid, m)
                    if owner != m:
                        a, b = find(owner), find(m)
                        if a != b:
                            up[max(a, b)] = min(a, b)
        line_member.append(m)
        numbers.append(n)
        raws.append(raw)
    return keys


def _balance(keys: _Keys, jobs: int) -> tuple[int, list[int], list[int]]:
    """Groups of members (a root member each) to shards, largest first onto the least loaded:
    (shards, each member's shard with a last entry 0 for lines without member, each line's shard).
    A line without member goes with its id's member if there is one, else to shard 0."""
    root = [keys.find(m) for m in range(len(keys.up))]
    sizes: dict[int, int] = {}
    for m, c in Counter(keys.line_member).items():
        if m >= 0:
            sizes[root[m]] = sizes.get(root[m], 0) + c
    loose_group = {}
    for i, eid in keys.loose:
        if eid in keys.id_owner:
            g = loose_group[i] = root[keys.id_owner[eid]]
            sizes[g] += 1
    jobs = max(1, min(jobs, len(sizes)))
    load = [0] * jobs
    load[0] = len(keys.raws) - sum(sizes.values())
    shard_of: dict[int, int] = {}
    for g, size in sorted(sizes.items(), key=lambda gs: (-gs[1], gs[0])):   # largest first, then first seen
        k = min(range(jobs), key=load.__getitem__)
        shard_of[g] = k
        load[k] += size
    member_shard = [shard_of[g] for g in root] + [0]    # [-1]: a line without member
    line_shard = list(map(member_shard.__getitem__, keys.line_member))
    for i, g in loose_group.items():
        line_shard[i] = shard_of[g]
    return jobs, member_shard, line_shard


def _cut(keys: _Keys, jobs: int, member_shard: list[int], line_shard: list[int], with_ids: bool) -> list[Shard]:
    """The shards' lines, numbers, event ids and members, as ``_balance`` assigned them."""
    names = list(keys.member_index)
    ids: list[list[str]] = [[] for _ in range(jobs)]
    if with_ids:   # a line without member needs no look-up: it is refused as it is
        for eid, m in keys.id_owner.items():
            ids[member_shard[m]].append(eid)
    shards = []
    for k in range(jobs):
        mine = list(map(k.__eq__, line_shard))
        part = list(itertools.compress(keys.raws, mine))
        shards.append(Shard(numbers=array("L", itertools.compress(keys.numbers, mine)),
                            offsets=array("Q", itertools.accumulate(map(len, part), initial=0)),
                            blob=b"".join(part), ids=ids[k],
                            members=sorted(names[m] for m, kk in enumerate(member_shard[:-1]) if kk == k)))
    return [s for s in shards if len(s)] or [Shard()]


# -- what a worker sends --------------------------------------------------------------------------

class _Applied(msgspec.Struct, array_like=True):
    id: str
    type: str
    at: str
    member: str
    entries: list[Entry]
    effects: list[Effect]
    body: Optional[bytes] = None   # the event, msgspec-encoded (past views replay it)


class _Batch(msgspec.Struct, array_like=True):
    """One SQLite batch: the applied events (the members' states as they stand after the batch),
    and the refusals to record."""
    applied: list[_Applied]
    states: dict[str, MemberState]
    refused: list[tuple[str, Optional[str], str, Optional[str]]]


_encode = msgspec.json.Encoder().encode
_decode_batch = msgspec.json.Decoder(_Batch).decode


class _Outcomes(RunStore):
    """A worker's stand-in for a SQLite ledger: what the ledger knew of the shard's members and
    event ids when the run started (read by the parent), plus what this worker has done since.
    ``commit`` hands the batch to the parent, which writes it."""

    def __init__(self, states: dict, known: dict, send: Callable[[bytes], None]):
        self.states = states
        self.applied = {eid for eid, row in known.items() if row is True}
        self.refused = {eid: row for eid, row in known.items() if row is not True}
        self._send = send
        self._clear()

    def _clear(self) -> None:
        self._applied_now: list[_Applied] = []
        self._dirty: dict[str, MemberState] = {}
        self._refused_now: list[tuple] = []

    def is_applied(self, event_id: str) -> bool:
        return event_id in self.applied

    def load(self, member: str) -> Optional[MemberState]:
        return self.states.get(member)

    def refusal(self, event_id: str):
        return self.refused.get(event_id)

    def save(self, event_id, event_type, at, state, entries, effects, body=None, touched=None) -> None:
        self.applied.add(event_id)
        self.refused.pop(event_id, None)
        self.states[state.member] = self._dirty[state.member] = state
        self._applied_now.append(_Applied(event_id, event_type, at, state.member, list(entries), list(effects),
                                          encode_body(body)))

    def reject(self, event_id, member, reason, digest=None) -> None:
        if event_id is None:
            return   # SQLite records no refusal without an id
        if event_id not in self.applied:
            self.refused.setdefault(event_id, (digest, reason))   # the first refusal keeps its reason
        self._refused_now.append((event_id, member, reason, digest))

    def commit(self) -> None:
        if self._applied_now or self._refused_now:
            self._send(_encode(_Batch(self._applied_now, self._dirty, self._refused_now)))
            self._clear()

    def close(self) -> None:
        self.commit()


class _SQLiteWriter:
    """The parent's side of a SQLite replay: reads what the workers need, then writes their batches."""

    def __init__(self, store: SQLiteStore, shards: list[Shard]):
        self.store = store
        self.written = 0
        store.begin()                      # the write lock: a consistent picture of the ledger
        try:
            store.changed_by_others()      # from now on, a commit by another process shows
            self.seeds = []
            for shard in shards:
                ids = list(dict.fromkeys(shard.ids))
                store.prefetch(ids)
                known: dict[str, Any] = {}
                for eid in ids:
                    if store.is_applied(eid):
                        known[eid] = True
                    else:
                        refused = store.refusal(eid)
                        if refused is not None:
                            known[eid] = refused
                states = {}
                for member in shard.members:
                    state = store.load(member)
                    if state is not None:
                        states[member] = state
                self.seeds.append((states, known))
        finally:
            store.commit()

    def write(self, payload: bytes) -> None:
        batch = _decode_batch(payload)
        store = self.store
        store.begin()
        if store.changed_by_others():
            store.rollback()
            raise ParallelError(f"{store.path}: another process wrote this ledger during the parallel replay; "
                                f"stopped after {self.written:,} events were written (each batch whole). "
                                "Run the command again to finish (--jobs 1 waits for other writers)")
        try:
            for eid, member, reason, digest in batch.refused:
                store.reject(eid, member, reason, digest)
            states = batch.states
            for a in batch.applied:
                store.save(a.id, a.type, a.at, states[a.member], a.entries, a.effects, a.body)
            store.commit()
        except BaseException:
            store.rollback()
            raise
        self.written += len(batch.applied)


# -- the worker -----------------------------------------------------------------------------------

def _numbered(shard: Shard) -> list[bytes]:
    """The shard's lines for Runner.run, with an empty line (skipped, but counted) in the place of
    every line of the input that is not the shard's: the runner numbers each line as the input does."""
    if not len(shard):
        return []
    lines = [b""] * shard.numbers[-1]
    for n, raw in shard.lines():
        lines[n - 1] = raw
    return lines


def _describe(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, KeyboardInterrupt):
        return 1, "interrupted"
    message, code = failure_of(exc, "internal error")
    return code, message


def _work(k: int, program_path: str, spec: str, kind: str, shard: Optional[Shard], seed, conn, done,
          inherited: list) -> None:
    """One worker: replay ``shard`` into its store; send ("batch", bytes)* then ("done", result) or
    ("error", exit code, message)."""
    for c in inherited:        # the parent's pipe ends, inherited by fork: not ours to hold (so a
        c.close()              # worker whose parent died gets an error when it sends, not a hang)
    code = 0
    try:
        if shard is None:      # pipe transport: the lines come after the start
            shard, seed = _receive_shard(conn)
        from engine.format.loader import load_program

        program = load_program(program_path)
        store = _worker_store(kind, spec, program, seed, conn)
        runner = Runner(program, store, batch=SQLITE_BATCH) if kind == "sqlite" else Runner(program, store)
        tags = _LineTags(k, done)
        result = runner.run(_numbered(shard), progress=tags.tick, result=tags.result)
        tags.check()
        store.close()
        done[k] = len(shard)
        conn.send(("done", (result.applied, result.skipped, result.rejected, result.effects,
                            [a.tobytes() for a in tags.at])))
    except BaseException as exc:   # noqa: BLE001 - told to the parent, which says it once
        code, message = _describe(exc)
        try:
            conn.send(("error", code, message))
        except Exception:   # noqa: BLE001 - the parent is gone: nobody to tell
            pass
    finally:
        conn.close()
    if code:
        sys.exit(code)


def _receive_shard(conn) -> tuple[Shard, Any]:
    """The pipe transport: a worker's shard (numbers, offsets, blob) and seed, sent after its start."""
    numbers = array("L")
    numbers.frombytes(conn.recv_bytes())
    offsets = array("Q")
    offsets.frombytes(conn.recv_bytes())
    return Shard(numbers=numbers, offsets=offsets, blob=conn.recv_bytes()), conn.recv()


def _worker_store(kind: str, spec: str, program: Program, seed, conn) -> RunStore:
    """A worker's store: its own on the shared PostgreSQL ledger; for SQLite, a stand-in seeded by the
    parent that hands it the batches; for memory, one of its own (benchmarks)."""
    if kind == "postgresql":
        from engine.store import open_store

        return open_store(spec, program.id, program.tz)
    if kind == "sqlite":
        return _Outcomes(seed[0], seed[1], lambda payload: conn.send(("batch", payload)))
    from engine.store import MemoryStore

    return MemoryStore(program.id)


class _LineTags:
    """A worker's running result, filled by Runner.run line by line, and each item's line number:
    called after each line (``tick``, Runner.run's progress callback), what the line added to the
    result is the line's. ``done[k]`` counts the lines (the parent's progress bar)."""

    def __init__(self, k: int, done):
        self.k, self.done = k, done
        self.result = RunResult()
        self.at = [array("L"), array("L"), array("L"), array("L")]   # each item's line, per list below
        self.lists: tuple[list[Any], ...] = (self.result.applied, self.result.skipped, self.result.rejected,
                                             self.result.effects)
        self.seen = [0, 0, 0, 0]
        self.ticks = 0

    def tick(self, n: int) -> None:
        seen, at = self.seen, self.at
        for i, items in enumerate(self.lists):
            if len(items) != seen[i]:
                at[i].extend(itertools.repeat(n, len(items) - seen[i]))
                seen[i] = len(items)
        self.ticks += 1
        if not self.ticks & 255:
            self.done[self.k] = self.ticks

    def check(self) -> None:
        if [len(items) for items in self.lists] != self.seen:
            raise RuntimeError("the runner's results could not be matched to their lines (Runner.run no "
                               "longer reports each line to its progress callback?)")


# -- the parent -----------------------------------------------------------------------------------

def _merge(parts: list[tuple]) -> RunResult:
    result = RunResult()
    lists: tuple[list[Any], ...] = (result.applied, result.skipped, result.rejected, result.effects)
    for j, out in enumerate(lists):
        tagged: list[tuple[int, Any]] = []
        for part in parts:
            numbers = array("L")
            numbers.frombytes(part[4][j])
            tagged.extend(zip(numbers, part[j]))
        tagged.sort(key=itemgetter(0))   # stable: a line's effects keep their order
        out.extend(item for _, item in tagged)
    return result


def _died(k: int, jobs: int, proc) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            how = f"was killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with status {code} without a result"
    return f"worker {k + 1} of {jobs} (pid {proc.pid}) {how}"


def replay_parallel(program_path: str, lines: Iterable[bytes | str], jobs: int, store_spec: str, *,
                    transport: Optional[str] = None,
                    progress: Optional[Callable[[], ContextManager[Optional[Callable[[int], None]]]]] = None
                    ) -> RunResult:
    """Replay ``lines`` into the store ``store_spec`` (a ``--db`` value) with ``jobs`` worker
    processes, one shard of members each. Returns the merged result, in line order. Raises
    ParallelError when a worker fails (after the others finished) or the ledger cannot be written.

    ``transport``: "fork" (the default where available) or "pipe". ``progress``: a factory of a
    context giving a ``callback(lines_done)`` or None (``engine.shell.progress.replay_progress``), entered
    once the workers run."""
    from engine.store.base import StoreError, parse_db

    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    kind = parse_db(store_spec).kind
    program = _program_or_fail(program_path)     # the workers load it too; a bad file fails here, once
    shards = partition(lines, jobs, with_ids=kind == "sqlite")
    ctx, by_fork = _context(transport)
    writer = _sqlite_writer(store_spec, program, shards) if kind == "sqlite" else None
    workers = _Workers(ctx, len(shards))
    try:
        workers.start(shards, writer.seeds if writer is not None else [None] * len(shards),
                      by_fork, (str(program_path), store_spec, kind))
        with (progress() if progress is not None else nullcontext()) as tick:
            workers.collect(writer, tick)
        workers.join()
    except StoreError as exc:        # the parent could not write a SQLite batch
        raise ParallelError(f"{exc}; the batches written before stay whole: run the command again to finish") from None
    finally:
        workers.stop()
        if writer is not None:
            try:
                writer.store.close()
            except StoreError:
                pass
    workers.raise_failures()
    return _merge([workers.parts[k] for k in sorted(workers.parts)])


def _program_or_fail(program_path: str) -> Program:
    from engine.format.loader import load_program
    from engine.model.errors import ProgramError

    try:
        return load_program(program_path)
    except ProgramError as exc:
        raise ParallelError("; ".join(str(p) for p in exc.problems)) from None


def _context(transport: Optional[str]) -> tuple[Any, bool]:
    """The multiprocessing context, and whether the lines reach the workers by fork (else by pipe)."""
    methods = multiprocessing.get_all_start_methods()
    if transport is None:
        transport = "fork" if "fork" in methods else "pipe"
    if transport not in ("fork", "pipe"):
        raise ValueError(f"transport must be 'fork' or 'pipe', not {transport!r}")
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ctx, transport == "fork" and ctx.get_start_method() == "fork"


def _sqlite_writer(store_spec: str, program: Program, shards: list[Shard]) -> _SQLiteWriter:
    """The parent's writer of a SQLite ledger, with what the ledger knows of the shards read."""
    from engine.store import open_store
    from engine.store.base import StoreError
    from engine.store.sqlite import SQLiteStore

    try:
        ledger = open_store(store_spec, program.id, program.tz)
        assert isinstance(ledger, SQLiteStore), "a SQLite --db opens a SQLite store"
    except StoreError as exc:
        raise ParallelError(str(exc)) from None
    try:
        return _SQLiteWriter(ledger, shards)
    except StoreError as exc:
        ledger.close()
        raise ParallelError(str(exc)) from None


class _Workers:
    """The worker processes of one replay, their pipes, and what they answered."""

    def __init__(self, ctx: Any, n: int):
        self.ctx = ctx
        self.n = n
        self.done = ctx.Array("q", n, lock=False)     # lines done, per worker (the progress bar)
        self.procs: list[Any] = []
        self.conns: dict[Connection, int] = {}        # the parent's end of each worker's pipe -> worker
        self.failures: list[tuple[int, int, str]] = []
        self.parts: dict[int, tuple] = {}

    def start(self, shards: list[Shard], seeds: list, by_fork: bool, job: tuple[str, str, str]) -> None:
        """One process a shard. By fork a worker inherits its shard and seed; by pipe they follow."""
        ctx, conns = self.ctx, self.conns
        gc.freeze()   # the workers' garbage collector leaves the parent's objects alone: fewer pages copied
        try:
            for k, shard in enumerate(shards):
                ours, theirs = ctx.Pipe()
                proc = ctx.Process(target=_work, name=f"loyalty-replay-{k + 1}", daemon=True,
                                   args=(k, *job, shard if by_fork else None, seeds[k] if by_fork else None,
                                         theirs, self.done, [*conns, ours] if ctx.get_start_method() == "fork" else []))
                proc.start()
                theirs.close()          # only the worker holds its end: its death is our EOF
                self.procs.append(proc)
                conns[ours] = k
        finally:
            gc.unfreeze()
        if not by_fork:
            for ours, k in conns.items():
                s = shards[k]
                try:
                    ours.send_bytes(s.numbers.tobytes())
                    ours.send_bytes(s.offsets.tobytes())
                    ours.send_bytes(s.blob)
                    ours.send(seeds[k])
                except OSError:
                    pass   # the worker is gone: ``collect`` says so

    def collect(self, writer: Optional[_SQLiteWriter], tick: Optional[Callable[[int], None]]) -> None:
        """Read the workers' messages until every pipe is closed: SQLite batches go to ``writer``, a
        result or an error ends a worker, and so does a pipe closed without either (a death)."""
        conns = self.conns
        while conns:
            for ours in wait(list(conns), timeout=0.25 if tick is not None else None):
                assert isinstance(ours, Connection)
                k = conns[ours]
                try:
                    msg = ours.recv()
                except (EOFError, OSError):
                    msg = None
                if msg is not None and msg[0] == "batch":
                    assert writer is not None, "a batch from a worker that writes no SQLite ledger"
                    writer.write(msg[1])
                    continue
                del conns[ours]
                ours.close()
                if msg is None:
                    self.procs[k].join()
                    self.failures.append((k, 1, _died(k, self.n, self.procs[k])))
                elif msg[0] == "done":
                    self.parts[k] = msg[1]
                else:
                    self.failures.append((k, msg[1], f"worker {k + 1} of {self.n}: {msg[2]}"))
            if tick is not None:
                tick(sum(self.done))

    def join(self) -> None:
        for proc in self.procs:
            proc.join()

    def stop(self) -> None:
        """Close the pipes left open and end the workers still running (after a failure)."""
        for ours in self.conns:
            ours.close()
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()     # a worker's open transaction is rolled back by its store
        self.join()

    def raise_failures(self) -> None:
        if self.failures:
            failures = sorted(self.failures)
            text = "; ".join(msg for _, _, msg in failures)
            raise ParallelError(f"{text}. The other workers finished; everything committed is whole: run the "
                                "command again to finish (applied events are skipped)",
                                exit_code=max(code for _, code, _ in failures))


def effects_in_line_order(rows: list[dict], run_effects: list) -> list[dict]:
    """A ledger's effect rows with those of this run in the order of the input lines.

    Workers write their members' effects as they go, so the rows of a parallel replay interleave
    members by timing. Each member's rows are in its own order; ``run_effects`` (the merged
    RunResult's, in line order) says which member comes next. Rows from before this run keep their
    place first. If the rows do not match the run's effects (another writer), they are left as they are."""
    if not run_effects:
        return rows
    mine: dict[str, int] = {}
    for e in run_effects:
        mine[e.member] = mine.get(e.member, 0) + 1
    by_member: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_member.setdefault(row["member"], []).append(i)
    taken: set[int] = set()
    queues: dict[str, list[int]] = {}
    for member, count in mine.items():
        idx = by_member.get(member, [])
        if len(idx) < count:
            return rows
        queues[member] = idx[len(idx) - count:]
        taken.update(queues[member])
    ordered = [row for i, row in enumerate(rows) if i not in taken]
    pos = dict.fromkeys(queues, 0)
    for e in run_effects:
        i = queues[e.member][pos[e.member]]
        pos[e.member] += 1
        if rows[i]["type"] != e.type or rows[i]["at"] != e.at:
            return rows
        ordered.append(rows[i])
    return ordered
