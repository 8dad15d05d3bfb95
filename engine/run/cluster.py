"""Replay a stream of events on a Dask distributed cluster, sharded by member.

    result = replay_cluster("programs/andest.yaml", read_events("events/"), store, spec,
                            address="tcp://scheduler:8786")      # or workers=2: a local cluster

Each member's state stands alone and its events come in time order (engine/run/runner.py), so a
stream splits by member. The input is read in chunks of ``chunk_lines`` lines (never whole: a
file, or a folder of files, larger than memory streams through); each chunk is cut into one part
a partition, a line going to partition ``crc32(member) % partitions`` (``partitions`` = the
cluster's worker threads), so one member's lines stay together and in order. One Dask task
replays a part; a chunk's tasks run side by side, and a member's parts run one after the other
(chunk k+1 is submitted once chunk k's tasks are done). A chunk is cut early where an event id
comes back under another partition, so an id met twice is judged in input order as in a
sequential run.

Stores (``store`` is the parent's open ledger, ``spec`` what ``--db`` took):

* PostgreSQL (``store.shared``): each task opens the ledger itself (one connection a worker
  process, kept between tasks) and replays its part in ONE transaction, its members locked
  together (Runner's chunk path). A worker killed mid-task loses only that transaction; Dask runs
  the task again (elsewhere or on the restarted worker) and nothing is doubled: the event ids
  already committed are skipped, the rolled-back ones applied.
* SQLite and memory: a task is a pure function of its lines, the states of its members and what
  the ledger knows of its event ids, all sent by the parent; it returns what to write, and the
  parent, the ledger's only writer, writes each chunk's outcomes in line order in one
  transaction. A task run twice (a worker lost) gives the same answer, written once. While the
  workers compute chunk k+1 the parent writes chunk k.

Results come back tagged with their line numbers and are merged in input order: the RunResult is
the sequential one (applied, skipped, rejected with their line numbers, effects).

Dask is imported only here and only when called (``pip install 'loyalty-engine[cluster]'``).
"""
from __future__ import annotations

import base64
import hashlib
import heapq
import logging
import pickle
import uuid
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import msgspec

from engine.model.events import BadEvent
from engine.model.state import MemberState
from engine.run.lines import event_lines
from engine.run.runner import Runner, RunResult, failure_of, refusal_of_line
from engine.store.base import RunStore, Store, encode_body

__all__ = ["ClusterError", "replay_cluster", "read_events", "event_files", "chunks", "partition_of", "CHUNK_LINES"]

# Lines read a chunk. Each chunk gives every partition one task: bigger chunks mean fewer tasks (a
# Dask task costs about a millisecond of scheduling) but more memory in the parent (the chunk being
# written and the one being computed, some 300 bytes a line each) and longer retries.
CHUNK_LINES = 20_000


class ClusterError(Exception):
    """A cluster replay that did not finish: the message says why. ``exit_code`` as ParallelError's."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


# -- input -----------------------------------------------------------------------------------------

def event_files(path: str | Path) -> list[Path]:
    """The events files of ``path``: itself if a file, else its ``*.jsonl`` files in name order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".ndjson") and p.is_file())
        if not files:
            raise ClusterError(f"{path}: a folder with no .jsonl files of events")
        return files
    return [path]


def read_events(path: str | Path) -> Iterator[bytes | BadEvent]:
    """The lines of an events file, or of a folder's files one after the other (numbered through),
    one line at a time (engine/run/lines.py): memory stays bounded whatever the size."""
    for f in event_files(path):
        with open(f, "rb") as fh:
            yield from event_lines(fh)


class _Key(msgspec.Struct):
    member: Any = None
    id: Any = None


_decode_key = msgspec.json.Decoder(_Key).decode


def partition_of(member: str, partitions: int) -> int:
    """The partition of a member: the same on every machine and every run (crc32, not hash())."""
    return zlib.crc32(member.encode("utf-8", "surrogatepass")) % partitions


@dataclass
class Part:
    lines: list = field(default_factory=list)     # (line number, raw line), in input order
    members: set = field(default_factory=set)
    ids: set = field(default_factory=set)


@dataclass
class Chunk:
    parts: list
    bad: list = field(default_factory=list)       # (line number, BadEvent): lines the reader refused
    lines: int = 0


def chunks(lines: Iterable[bytes | str | BadEvent], partitions: int, chunk_lines: int = CHUNK_LINES) -> Iterator[Chunk]:
    """Cut ``lines`` into chunks of at most ``chunk_lines``, each split into ``partitions`` parts by
    member. A line without a member (refused where it lands) goes with its id's partition if the
    chunk has that id, else to partition 0. A chunk ends early before a line whose event id the
    chunk already holds under another partition."""
    new = lambda: Chunk([Part() for _ in range(partitions)])
    chunk = new()
    owner: dict[Optional[str], int] = {}    # event id -> its partition in this chunk (None: no id)
    errors = (msgspec.DecodeError, RecursionError)
    for n, raw in enumerate(lines, 1):
        if isinstance(raw, BadEvent):
            chunk.bad.append((n, raw))
            chunk.lines += 1
            continue
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        if not raw.strip():
            continue
        try:
            key = _decode_key(raw)
        except errors:
            key = None
        member = key.member if key is not None and isinstance(key.member, str) else None
        eid = key.id if key is not None and isinstance(key.id, str) else None
        p = partition_of(member, partitions) if member is not None else owner.get(eid, 0)
        if eid is not None:
            q = owner.setdefault(eid, p)
            if q != p:
                yield chunk
                chunk, owner = new(), {eid: p}
        part = chunk.parts[p]
        part.lines.append((n, raw))
        if member is not None:
            part.members.add(member)
            if eid is not None:
                part.ids.add(eid)
        chunk.lines += 1
        if chunk.lines >= chunk_lines:
            yield chunk
            chunk, owner = new(), {}
    if chunk.lines:
        yield chunk


# -- on a worker -----------------------------------------------------------------------------------

_programs: dict[str, Any] = {}
_stores: dict[tuple, Any] = {}


def _program(text: bytes, filename: str):
    """The compiled program, once a worker process (compiled code does not pickle: the text travels)."""
    key = hashlib.sha256(text).hexdigest()
    program = _programs.get(key)
    if program is None:
        from engine.format.loader import parse_program

        if len(_programs) > 8:
            _programs.clear()
        program = _programs[key] = parse_program(text, filename)
    return program


class _Recorder(RunStore):
    """A task's stand-in for a SQLite or memory ledger: what the ledger knew of the part's members
    and ids when the task was sent, plus what the task did since; ``ops`` lists the writes, in order."""

    def __init__(self, states: dict, known: dict):
        self.states = states
        self.applied = {eid for eid, row in known.items() if row is True}
        self.refused = {eid: row for eid, row in known.items() if row is not True}
        self.ops: list[tuple] = []
        self.touched: dict[str, MemberState] = {}

    def is_applied(self, event_id: str) -> bool:
        return event_id in self.applied

    def load(self, member: str) -> Optional[MemberState]:
        return self.states.get(member)

    def refusal(self, event_id):
        return self.refused.get(event_id)

    def save(self, event_id, event_type, at, state, entries, effects, body=None, touched=None) -> None:
        self.applied.add(event_id)
        self.refused.pop(event_id, None)
        self.states[state.member] = self.touched[state.member] = state
        self.ops.append(("save", event_id, event_type, at, state.member, entries, effects, encode_body(body)))

    def reject(self, event_id, member, reason, digest=None) -> None:
        if event_id is not None and event_id not in self.applied:
            self.refused.setdefault(event_id, (digest, reason))   # the first refusal keeps its reason
        self.ops.append(("reject", event_id, member, reason, digest))


def _noted(store, task: Optional[str]) -> Optional[list]:
    """The outcome a task wrote with its commit (``_apply_shared``), if it committed before."""
    if task is None:
        return None
    noted = store.notes(task).get(task)
    return pickle.loads(base64.b64decode(noted)) if noted is not None else None


def _encode_note(out: list) -> str:
    return base64.b64encode(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)).decode()


def _tagged_run(runner: Runner, lines: list, ops: Optional[list] = None, sink: Optional[list] = None) -> list[tuple]:
    """Run ``lines`` ((number, raw) pairs) and say what each line gave:
    [(number, applied, skipped, rejected, effects, writes)] for the lines that gave anything.
    ``sink``: the list to fill and return (the records are in it as they come, so the whole outcome
    is there when the store commits, ``_apply_shared``)."""
    result = RunResult()
    lists = (result.applied, result.skipped, result.rejected, result.effects)
    seen = [0, 0, 0, 0, 0]
    out: list[tuple] = sink if sink is not None else []

    def tick(n: int) -> None:
        got = []
        for i, items in enumerate((*lists, ops if ops is not None else ())):
            got.append(items[seen[i]:] if len(items) != seen[i] else [])
            seen[i] = len(items)
        if any(got):
            out.append((n, *got))

    runner.run(lines, progress=tick, result=result, numbered=True)
    if [len(items) for items in lists] != seen[:4]:
        raise RuntimeError("the runner's results could not be matched to their lines (Runner.run no longer "
                           "reports each line to its progress callback?)")
    return out


def _compute(text: bytes, filename: str, lines: list, states: dict, known: dict):
    """A SQLite or memory part: (tagged outcomes, the touched members' last states). Pure."""
    store = _Recorder(states, known)
    out = _tagged_run(Runner(_program(text, filename), store), lines, store.ops)
    return out, store.touched


def _apply_shared(text: bytes, filename: str, spec: str, lines: list, task: Optional[str] = None):
    """A PostgreSQL part: applied by this worker into the shared ledger, in one transaction. ``task``
    names this part of this run: the part's outcome is written under it with the transaction's
    COMMIT (``note_commit``), so that the task, run again because its worker was lost after the
    commit but before its answer arrived, answers what it did (its events applied, their effects),
    not "skipped" for every event it applied itself."""
    from engine.store import open_store

    program = _program(text, filename)
    key = (spec, program.id)
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = open_store(spec, program.id, program.tz)
    try:
        noted = _noted(store, task)
        if noted is not None:
            return noted
        out: list = []
        if task is not None and store.chunks:
            store.note_commit(task, lambda: _encode_note(out))
        return _tagged_run(Runner(program, store, batch=len(lines) + 1), lines, sink=out)
    except BaseException:
        _stores.pop(key, None)
        try:
            store.close()
        except Exception:  # noqa: BLE001 - the connection is already gone
            pass
        raise


# -- the parent ------------------------------------------------------------------------------------

@contextmanager
def cluster_client(address: Optional[str] = None, workers: Optional[int] = None):
    """A Dask client: of the scheduler at ``address``, or of a local cluster of ``workers``
    processes (one thread each: the replay is Python, one core a process)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("a cluster replay needs Dask distributed: pip install 'loyalty-engine[cluster]'") from None
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.ERROR)     # a lost worker is retried: the scheduler's warnings are not the user's
    cluster = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if address:
                try:
                    client = Client(address, timeout="20s")
                except (OSError, TimeoutError) as exc:
                    raise ClusterError(f"--cluster {address}: no Dask scheduler answers there ({exc})") from None
            else:
                cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
                client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
    finally:
        if cluster is not None:
            cluster.close()
        quiet.setLevel(level)


def _describe(exc: BaseException) -> ClusterError:
    return ClusterError(*failure_of(exc, "a cluster task failed"))


def replay_cluster(program_path: str | Path, lines: Iterable[bytes | str | BadEvent], store: Store, spec: str, *,
                   address: Optional[str] = None, workers: Optional[int] = None, client=None,
                   chunk_lines: int = CHUNK_LINES, retries: int = 2,
                   progress: Optional[Callable[[int], None]] = None) -> RunResult:
    """Replay ``lines`` into ``store`` (opened on ``spec``) on a Dask cluster: the scheduler at
    ``address``, a given ``client``, or a local cluster of ``workers`` processes. Returns the
    merged result, in line order. ``progress(lines_done)`` is called after each chunk."""
    from engine.format.loader import parse_program
    from engine.model.errors import ProgramError

    try:
        text = Path(program_path).read_bytes()
        filename = str(program_path)
        parse_program(text, filename)    # a bad file fails here, once
    except OSError as exc:
        raise ClusterError(f"{program_path}: cannot read file: {exc.strerror}") from None
    except ProgramError as exc:
        raise ClusterError("; ".join(str(p) for p in exc.problems)) from None
    if client is not None:
        return _replay(client, text, filename, lines, store, spec, chunk_lines, retries, progress)
    with cluster_client(address, workers) as own:
        return _replay(own, text, filename, lines, store, spec, chunk_lines, retries, progress)


def _replay(client, text, filename, lines, store, spec, chunk_lines, retries, progress) -> RunResult:
    partitions = max(1, sum(client.nthreads().values()))
    shared = store.shared
    result = RunResult()
    done = 0
    pending = None          # SQLite/memory: (chunk, futures) being computed
    submit = lambda fn, *args: client.submit(fn, *args, pure=False, retries=retries)
    # PostgreSQL: each task's outcome is noted with its commit under "cluster-task:<run>:<chunk>:<part>"
    # (``_apply_shared``); the run's notes are deleted when it ends
    run = f"cluster-task:{uuid.uuid4().hex}:" if shared else None
    try:
        for k, chunk in enumerate(chunks(lines, partitions, chunk_lines)):
            if shared:
                futures = [submit(_apply_shared, text, filename, spec, part.lines, run and f"{run}{k}:{i}")
                           for i, part in enumerate(chunk.parts) if part.lines]
                _merge(store, result, chunk, client.gather(futures))
            else:
                outs = _gather(client, pending)
                futures = _seed_and_submit(client, submit, store, chunk, outs, text, filename)
                if pending is not None:
                    _write(store, result, pending[0], outs)
                pending = (chunk, futures)
            done += chunk.lines
            if progress is not None:
                progress(done)
        if pending is not None:
            outs = _gather(client, pending)
            store.begin()
            _write(store, result, pending[0], outs)
    except ClusterError:
        _rollback(store)
        raise
    except Exception as exc:   # noqa: BLE001 - a task's own error, raised here by gather
        _rollback(store)
        raise _describe(exc) from None
    finally:
        if run is not None:
            try:
                store.forget_notes(run)
            except Exception:  # noqa: BLE001 - the run's answer stands; a leftover note is harmless
                pass
    return result


def _gather(client, pending):
    if pending is None:
        return None
    return client.gather(pending[1])


def _rollback(store: Store) -> None:
    try:
        store.rollback()
    except Exception:  # noqa: BLE001 - nothing open
        pass


def _seed_and_submit(client, submit, store: Store, chunk: Chunk, previous, text, filename) -> list:
    """Send each part of ``chunk`` with what the ledger knows of its members and ids: the store
    as written so far, overlaid by ``previous`` (the chunk computed but not yet written)."""
    states_after: dict[str, MemberState] = {}
    applied: set = set()
    refused: dict = {}
    for out, touched in previous or ():
        states_after.update(touched)
        for rec in out:
            for op in rec[5]:
                if op[0] == "save":
                    applied.add(op[1])
                elif op[1] is not None:
                    refused.setdefault(op[1], (op[4], op[3]))
    store.begin()        # SQLite: the write lock, held until this chunk's predecessor is written
    futures: list[Any] = []
    for part in chunk.parts:
        if not part.lines:
            futures.append(None)
            continue
        ids = sorted(part.ids)
        store.prefetch(ids)
        known: dict[str, Any] = {}
        for eid in ids:
            if eid in applied or store.is_applied(eid):
                known[eid] = True
            else:
                row = store.refusal(eid) or refused.get(eid)
                if row is not None:
                    known[eid] = row
        states = {}
        for member in part.members:
            state = states_after.get(member) or store.load(member)
            if state is not None:
                states[member] = state
        futures.append(submit(_compute, text, filename, part.lines, states, known))
    return futures


def _records(chunk: Chunk, outs) -> Iterator[tuple]:
    """Every part's tagged outcomes, and the reader's refusals, in line order."""
    streams = [out for out in outs if out]
    if chunk.bad:
        bad: list[tuple] = []
        for n, b in chunk.bad:
            refusal = refusal_of_line(b, n)
            bad.append((n, [], [], [refusal], [], [("reject", refusal["event"], None, refusal["reason"], None)]))
        streams.append(bad)
    return heapq.merge(*streams, key=lambda rec: rec[0])


def _merge(store: Store, result: RunResult, chunk: Chunk, outs: list) -> None:
    """PostgreSQL: the workers wrote; the result lists merge in line order (the reader's refusals,
    which no worker saw, are recorded here)."""
    for rec in _records(chunk, outs):
        _add(result, rec)
        for op in rec[5]:
            store.reject(*op[1:])
    if chunk.bad:
        store.commit()


def _add(result: RunResult, rec: tuple) -> None:
    result.applied.extend(rec[1])
    result.skipped.extend(rec[2])
    result.rejected.extend(rec[3])
    result.effects.extend(rec[4])


def _write(store: Store, result: RunResult, chunk: Chunk, outs: list) -> None:
    """SQLite/memory: write a computed chunk's outcomes in line order, one transaction (opened by
    the caller), and add them to the result."""
    states: dict[str, MemberState] = {}
    streams = []
    for out in outs:
        if out is None:
            continue
        tagged, touched = out
        states.update(touched)
        streams.append(tagged)
    for rec in _records(chunk, streams):
        _add(result, rec)
        for op in rec[5]:
            if op[0] == "save":
                _, eid, etype, at, member, entries, effects, body = op
                store.save(eid, etype, at, states[member], entries, effects, body)
            else:
                store.reject(*op[1:])
    store.commit()

