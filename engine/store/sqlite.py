"""SQLite ledger (the default): one file, WAL, one process at a time.

Events are applied in batched transactions: every statement of one event runs inside the same
transaction as its neighbours, and a batch commits whole. A crash loses at most the batch in
flight, never part of an event, and a rerun applies exactly the events that did not commit
(their ids are not in ``events``), so the ledger ends the same.
"""
from __future__ import annotations

import functools
import sqlite3
import threading
from datetime import datetime
from typing import Any, Iterator, Optional
from zoneinfo import ZoneInfo

import msgspec

from engine.model.state import Entry, MemberState
from engine.store.base import KEPT_MEMBERS, Store, StoreError, encode_body, wall_clock
from engine.core.journal import Touched
from engine.store.rows import Written, changes, merged, nothing_written, state_of

SCHEMA_VERSION = 3   # 2: ledger.booked_at and the closes table (issue 22); 3: member_rows (engine/store/rows.py)
_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY, member TEXT, type TEXT, at TEXT, status TEXT NOT NULL, reason TEXT, digest TEXT,
  body BLOB, seq INTEGER);
CREATE TABLE IF NOT EXISTS members (member TEXT PRIMARY KEY, state BLOB NOT NULL, clock TEXT);
CREATE TABLE IF NOT EXISTS member_rows (
  member TEXT NOT NULL, part INTEGER NOT NULL, pos INTEGER NOT NULL, body BLOB NOT NULL,
  PRIMARY KEY (member, part, pos)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (
  seq INTEGER PRIMARY KEY, member TEXT NOT NULL, at TEXT NOT NULL, source TEXT NOT NULL,
  action TEXT NOT NULL, lot TEXT NOT NULL, amount INTEGER NOT NULL CHECK (amount > 0),
  from_state TEXT, to_state TEXT NOT NULL, rule TEXT NOT NULL, version INTEGER NOT NULL, booked_at TEXT);
CREATE INDEX IF NOT EXISTS ledger_member ON ledger (member, seq);
CREATE TABLE IF NOT EXISTS closes (
  seq INTEGER PRIMARY KEY, through TEXT NOT NULL, booked_at TEXT NOT NULL, snapshot TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS effects (
  seq INTEGER PRIMARY KEY, member TEXT NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL,
  detail TEXT NOT NULL, rule TEXT NOT NULL);
"""

_NOT_READ = object()   # a value of the ledger not read in this connection yet
_MAX_VARIABLES = 999   # bound parameters a statement (SQLite's smallest default limit)
CHECKPOINT_EVERY = 0.2     # seconds between the checkpoints of checkpoint_aside
CHECKPOINT_BACKSTOP = 20000   # WAL pages (4 KiB) at which a commit checkpoints anyway (checkpoint_aside)
_encode = msgspec.json.Encoder().encode


# What SQLite's own words mean for the person running the command, and what to do.
_CAUSES = (
    ("disk is full", "the disk is full (or the ledger reached its size limit); free space and run again"),
    ("readonly database", "the ledger file or its folder is read-only; give a writable --db"),
    ("unable to open database file", "the ledger file cannot be opened or created; check its folder exists and is writable"),
    ("disk i/o error", "the disk could not be read or written (a disk I/O error)"),
    ("file is not a database", "the file is not a SQLite ledger"),
    ("database disk image is malformed", "the ledger file is damaged"),
    ("database is locked", "another process holds the ledger"),
)


def _explained(path: str, exc: BaseException, in_batch: bool) -> StoreError:
    text = str(exc)
    for needle, meaning in _CAUSES:
        if needle in text.lower():
            text = f"{meaning} ({exc})"
            break
    if in_batch:
        text += "; nothing of the batch in flight was written (applied events are skipped when you run again)"
    return StoreError(f"{path}: {text}")


def _guarded(method):
    """A store method whose SQLite error (or a value SQLite cannot hold) becomes a StoreError
    that names the ledger and says the cause."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, OverflowError) as exc:
            in_batch = getattr(self, "_in_tx", False)
            self._failed()
            raise _explained(self.path, exc, in_batch) from None
    return call


class SQLiteStore(Store):
    # One writer at a time: a replay goes in chunks under the write lock, the chunk's ids looked up
    # at once (``begin``, ``prefetch``); data_version tells when another process wrote (``changed_by_others``).
    chunks = True
    sees_writers = True
    writes_changes = True   # a member's head and the rows its events changed (engine/store/rows.py)

    def __init__(self, path: str, program_id: str, zone: Optional[ZoneInfo] = None, any_thread: bool = False):
        self.path = path
        self.zone = zone   # the program's time zone: an older state's tier sums are counted by it (codec)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=not any_thread)
            # someone else's database is left exactly as it is (before WAL rewrites its header)
            tables = [row[0] for row in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            if tables and "effects" not in tables:
                self.db.close()
                raise StoreError(f"{path}: a SQLite database of another application (tables: "
                                 f"{', '.join(tables[:5])}), not a loyalty ledger; give another --db")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=60000")  # ms: wait for another process's batch
            made = self.db.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='effects'").fetchone()[0]
            # A new ledger's tables are made in one transaction: a process killed meanwhile leaves
            # all of them or none, never some (an existing ledger is opened without the write lock)
            self.db.executescript(_DDL if made else f"BEGIN IMMEDIATE;\n{_DDL}COMMIT;\n")
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(events)")}
            if "digest" not in columns:   # a ledger made before refusals kept their fingerprint
                self.db.execute("ALTER TABLE events ADD COLUMN digest TEXT")
            if "body" not in columns or not self.db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='index' AND name='events_member'").fetchone():
                self._keep_bodies()
            if "booked_at" not in {row[1] for row in self.db.execute("PRAGMA table_info(ledger)")}:
                self._keep_booked_times()
            found = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if found is not None and found[0] != str(SCHEMA_VERSION):
                # version 3 only adds member_rows (made above): a state stored whole is read as it
                # is and stored in rows when its member next changes (engine/store/rows.py)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable SQLite ledger ({exc})") from None
        row = self.db.execute("SELECT value FROM meta WHERE key='program'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('program', ?), ('schema_version', ?)", (program_id, str(SCHEMA_VERSION)))
        elif row[0] != program_id:
            raise StoreError(f"{path} holds the ledger of program '{row[0]}', not '{program_id}'")
        self.booked_clock = wall_clock
        self._booked: Optional[str] = None    # the open transaction's booking time as written, once it books
        self._in_tx = False
        self._checked_in_tx = False
        self._data_version: Optional[int] = None
        self._last: Optional[datetime] = None
        self._seq: Optional[int] = None   # the last applied event's place in the ledger (None: read it)
        self._checkpoints: Optional[tuple[threading.Thread, threading.Event]] = None
        # each member's rows as last read or written here (engine/store/rows.py); dropped whenever
        # the ledger may hold something else: another connection committed, a transaction failed
        self._written: dict[str, Written] = {}
        self._written_version: Optional[int] = None
        self._tx_version: Optional[int] = None       # data_version as the open transaction began
        self._last_stored: Any = _NOT_READ           # meta 'last_at' as we last read or wrote it
        self._clear_buffers()

    def checkpoint_aside(self) -> None:
        """Copy the WAL back into the ledger file from a thread and a connection of its own,
        every CHECKPOINT_EVERY seconds (a passive checkpoint: it never waits for nor blocks a
        writer), rather than in the commit that fills the WAL to SQLite's 1,000 pages: a commit
        then only appends to the WAL. If those checkpoints cannot keep up or fail, a commit still
        checkpoints at CHECKPOINT_BACKSTOP pages. Stopped by close. Durability is the same: a
        commit is in the WAL either way."""
        if self._checkpoints is not None or self.path == ":memory:" or self.path.startswith("file:"):
            return
        aside = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        stop = threading.Event()

        def run() -> None:
            try:
                while not stop.wait(CHECKPOINT_EVERY):
                    try:
                        aside.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error:
                        pass   # tried again next time; the WAL keeps every commit meanwhile
            finally:
                aside.close()

        self.db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_BACKSTOP}")
        thread = threading.Thread(target=run, name="loyalty-sqlite-checkpoint", daemon=True)
        thread.start()
        self._checkpoints = (thread, stop)

    def _keep_bodies(self) -> None:
        """Give the events table the body of each applied event and its place in the ledger's order
        (a member's events are replayed in that order for a past view), with an index to find one
        member's events. Events recorded before stay without a body: no past view reaches them."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(events)")}  # again, under the lock
            if "body" not in columns:
                self.db.execute("ALTER TABLE events ADD COLUMN body BLOB")
                self.db.execute("ALTER TABLE events ADD COLUMN seq INTEGER")
            self.db.execute("CREATE INDEX IF NOT EXISTS events_member ON events (member, seq)")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _keep_booked_times(self) -> None:
        """Give the ledger the time each entry was booked (issue 22; NULL for the entries booked
        before: they count as booked at their business time) and the table of closes."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if "booked_at" not in {row[1] for row in self.db.execute("PRAGMA table_info(ledger)")}:
                self.db.execute("ALTER TABLE ledger ADD COLUMN booked_at TEXT")
            self.db.execute("CREATE TABLE IF NOT EXISTS closes (seq INTEGER PRIMARY KEY, through TEXT NOT NULL, "
                            "booked_at TEXT NOT NULL, snapshot TEXT NOT NULL)")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def begin(self) -> bool:
        """Open the batch's write transaction; True when it opened one (False: already open).
        BEGIN IMMEDIATE takes SQLite's write lock at once: a second process waits here, then
        reads what the first committed."""
        if self._in_tx:
            return False
        return self._open()

    def _open(self) -> bool:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path}: {exc} (another process holds the ledger)") from None
        self._in_tx = True
        self._checked_in_tx = False
        self._booked = None
        version = self._tx_version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._written_version or len(self._written) > KEPT_MEMBERS:
            self._forget()   # another connection committed since our last transaction
            self._written_version = version
        return True

    def _forget(self) -> None:
        """Read again what we remember of the ledger between our transactions: members' rows, the
        count of applied events, the last time."""
        self._written = {}     # (assigned: a failure while opening the store forgets too)
        self._seq = None
        self._last_stored = _NOT_READ

    _begin = begin

    def _fetch_one(self, sql: str, params: tuple = ()) -> Optional[tuple]:
        return self.db.execute(sql, params).fetchone()

    def _fetch_all(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.db.execute(sql, params).fetchall()

    def changed_by_others(self) -> bool:
        """Whether another connection committed since we last asked (SQLite's data_version). Inside
        our own write transaction nobody else can: asked once after it began."""
        if self._in_tx:
            if self._checked_in_tx:
                return False
            self._checked_in_tx = True
            changed = self._tx_version != self._data_version   # read as the transaction began
            self._data_version = self._tx_version
            return changed
        return self._version_moved()

    def _version_moved(self) -> bool:
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self._data_version
        self._data_version = version
        return changed

    def prefetch(self, event_ids: list[str]) -> None:
        """Look up a batch's event ids in one query, inside the write transaction (so the answer
        holds until it commits): is_applied and refusal then answer from memory."""
        if not self._in_tx:
            return
        known = self._known
        for i in range(0, len(event_ids), _MAX_VARIABLES):
            part = event_ids[i:i + _MAX_VARIABLES]
            marks = ",".join("?" * len(part))
            for row in self.db.execute(f"SELECT id, status, digest, reason FROM events WHERE id IN ({marks})", part):
                known[row[0]] = row[1:]
            self._looked_up.update(part)

    def is_applied(self, event_id: str) -> bool:
        if event_id in self._applied_now:
            return True
        if event_id in self._looked_up:
            row = self._known.get(event_id)
        else:
            row = self._fetch_one("SELECT status FROM events WHERE id=?", (event_id,))
        return row is not None and row[0] == "applied"

    def load(self, member: str) -> Optional[MemberState]:
        if member in self._dirty:
            return self._dirty[member]
        row = self._fetch_one("SELECT state FROM members WHERE member=?", (member,))
        # what is read here is what the ledger holds until another connection commits, which the
        # next transaction's start finds (``_open``)
        if row is None:
            self._written[member] = nothing_written()
            return None
        state, written = state_of(row[0], self._fetch_all(
            "SELECT part, pos, body FROM member_rows WHERE member=? ORDER BY part, pos", (member,)), self.zone)
        if written is not None:
            self._written[member] = written
        else:
            self._written.pop(member, None)
        return state

    def save(self, event_id, event_type, at, state, entries, effects, body=None, touched=None) -> None:
        """Buffer one applied event inside the open transaction. A member's state is encoded once
        a batch (at commit), not once an event; the batch's rows go in with one executemany each.
        All of it commits together or not at all, so no event is ever half-applied."""
        self._begin()
        encoded = encode_body(body)
        if self._seq is None:   # the ledger's count of applied events, read once a transaction
            row = self._fetch_one("SELECT value FROM meta WHERE key='event_seq'")
            self._seq = int(row[0]) if row else 0
        if entries and self._booked is None:
            # the entries of one transaction are booked together: one time for all of them
            self._booked = self.booked_clock().isoformat()
        self._book(state, entries, effects, self._booked if entries else None, touched)
        self._seq += 1
        self._applied_now.add(event_id)
        self._event_rows.append((event_id, state.member, event_type, at, encoded, self._seq))

    def book(self, state, entries, effects, booked_at) -> None:
        """A close's writes for one member (no event row), in the open transaction."""
        self._begin()
        self._book(state, entries, effects, booked_at.isoformat() if booked_at is not None else None)

    def _book(self, state, entries, effects, booked: Optional[str], touched: Optional[Touched] = None) -> None:
        """``booked``: the entries' booking time as the ledger writes it; ``touched``: what the event
        did to the state's sequences (None: not known). Every row is made before any buffer
        changes: an error on the way leaves the batch as it was."""
        ledger_rows = []
        at_obj = at_text = None
        for e in entries:
            if e.at is not at_obj:   # an event's entries share one time: its text is made once
                at_obj, at_text = e.at, e.at.isoformat()
            ledger_rows.append((e.member, at_text, e.source, e.action, e.lot, e.amount, e.from_state,
                                e.to_state, e.rule, e.version, booked))
        effect_rows = [(f.member, f.type, f.at, _encode(f.detail).decode(), f.rule) for f in effects] if effects else ()
        member = state.member
        self._touched[member] = merged(self._touched.get(member), touched)
        self._dirty[member] = state
        self._ledger_rows.extend(ledger_rows)
        self._effect_rows.extend(effect_rows)
        if state.clock is not None and (self._last is None or state.clock > self._last):
            self._last = state.clock

    def _flush(self) -> None:
        db = self.db
        if self._refusals:
            db.executemany("INSERT INTO events (id, member, type, at, status, reason, digest) "
                           "VALUES (?,?,NULL,NULL,'rejected',?,?) ON CONFLICT(id) DO NOTHING", list(self._refusals.values()))
        if self._event_rows:
            db.executemany("INSERT OR REPLACE INTO events (id, member, type, at, status, reason, digest, body, seq) "
                           "VALUES (?,?,?,?, 'applied', NULL, NULL, ?, ?)", self._event_rows)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('event_seq', ?)", (str(self._seq),))
        if self._dirty:
            self._write_members(db)
        if self._ledger_rows:
            db.executemany(
                "INSERT INTO ledger (member, at, source, action, lot, amount, from_state, to_state, rule, version, "
                "booked_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", self._ledger_rows)
        if self._effect_rows:
            db.executemany("INSERT INTO effects (member, type, at, detail, rule) VALUES (?,?,?,?,?)", self._effect_rows)
        self._clear_buffers()

    def _write_members(self, db: sqlite3.Connection) -> None:
        """The batch's member states: each head, and only the rows that changed since the rows
        were last read or written here (all of a member's rows where that is not known)."""
        heads: list[tuple] = []
        wholes: list[tuple[str]] = []
        deleted: list[tuple[str, int, int]] = []
        put: list[tuple[str, int, int, bytes]] = []
        written = self._written
        for member, state in self._dirty.items():
            change, written[member] = changes(state, written.get(member), self._touched.get(member))
            heads.append((member, change.head, state.clock.isoformat() if state.clock else None))
            if change.whole:
                wholes.append((member,))
            deleted.extend((member, part, pos) for part, pos in change.deleted)
            put.extend((member, part, pos, body) for part, pos, body in change.put)
        db.executemany("INSERT OR REPLACE INTO members VALUES (?,?,?)", heads)
        if wholes:
            db.executemany("DELETE FROM member_rows WHERE member=?", wholes)
        if deleted:
            db.executemany("DELETE FROM member_rows WHERE member=? AND part=? AND pos=?", deleted)
        if put:
            db.executemany("INSERT OR REPLACE INTO member_rows VALUES (?,?,?,?)", put)

    def _clear_buffers(self) -> None:
        self._known: dict[str, tuple] = {}     # prefetched rows of this transaction's events
        self._looked_up: set[str] = set()
        self._refusals: dict[str, tuple] = {}      # (id, member, reason, digest) refused in this transaction
        self._applied_now: set[str] = set()
        self._event_rows: list[tuple] = []         # (id, member, type, at, body, seq) of the applied events
        self._dirty: dict[str, MemberState] = {}   # members' new states
        self._touched: dict[str, Touched] = {}     # what the batch's events did to their sequences
        self._ledger_rows: list[tuple] = []
        self._effect_rows: list[tuple] = []

    def reject(self, event_id, member, reason, digest=None) -> None:
        """Buffer a refusal in the open transaction (written at commit, before the applied events:
        an event applied after its refusal replaces it). A refusal already on record, or earlier in
        the batch, keeps its first reason and fingerprint (a corrected event under the same id that
        is refused again keeps the first record too)."""
        if event_id is None:
            return
        self._begin()
        self._refusals.setdefault(event_id, (event_id, member, reason, digest))

    def refusal(self, event_id):
        if event_id in self._looked_up:
            row = self._known.get(event_id)
            found = (row[1], row[2]) if row is not None and row[0] == "rejected" else None
        else:
            found = self._fetch_one("SELECT digest, reason FROM events WHERE id=? AND status='rejected'", (event_id,))
        if found is None and event_id in self._refusals:
            _, _, reason, digest = self._refusals[event_id]
            found = (digest, reason)
        return found

    def members(self) -> Iterator[str]:
        self._flush()
        return (row[0] for row in self.db.execute("SELECT member FROM members ORDER BY member").fetchall())

    def effects(self) -> list[dict]:
        self._flush()
        return [{"type": t, "member": m, "at": a, "detail": msgspec.json.decode(d), "rule": r}
                for m, t, a, d, r in self.db.execute("SELECT member, type, at, detail, rule FROM effects ORDER BY seq")]

    def entries(self, member: str) -> list[Entry]:
        self._flush()
        rows = self.db.execute("SELECT member, at, source, action, lot, amount, from_state, to_state, rule, version, "
                               "booked_at FROM ledger WHERE member=? ORDER BY seq", (member,)).fetchall()
        return [Entry(member=r[0], at=datetime.fromisoformat(r[1]), source=r[2], action=r[3], lot=r[4], amount=r[5],
                      from_state=r[6], to_state=r[7], rule=r[8], version=r[9],
                      booked_at=datetime.fromisoformat(r[10]) if r[10] else None) for r in rows]

    def record_close(self, through, booked_at, snapshot) -> None:
        self._begin()
        self.db.execute("INSERT INTO closes (through, booked_at, snapshot) VALUES (?,?,?)",
                        (through.isoformat(), booked_at.isoformat(), _encode(snapshot).decode()))

    def closes(self) -> list[dict]:
        self._flush()
        return [{"through": datetime.fromisoformat(t), "booked_at": datetime.fromisoformat(b),
                 "snapshot": msgspec.json.decode(s)}
                for t, b, s in self.db.execute("SELECT through, booked_at, snapshot FROM closes ORDER BY seq")]

    def event_bodies(self, member: str) -> list[Optional[bytes]]:
        self._flush()
        return [row[0] for row in self.db.execute(
            "SELECT body FROM events WHERE member=? AND status='applied' ORDER BY seq", (member,))]

    def last_time(self) -> Optional[str]:
        if self._last is not None:
            if not self._in_tx:
                self._last_stored = _NOT_READ   # outside our transaction another process may have written it
            self._store_last()
        row = self.db.execute("SELECT value FROM meta WHERE key='last_at'").fetchone()
        return row[0] if row else None

    def _store_last(self) -> None:
        """Raise meta 'last_at' to the latest clock applied, if it is later. What was last read or
        written of it holds inside our transactions until another connection commits (``_open``)."""
        last = self._last
        if last is None:
            return
        stored = self._last_stored
        if stored is _NOT_READ:
            row = self.db.execute("SELECT value FROM meta WHERE key='last_at'").fetchone()
            stored = datetime.fromisoformat(row[0]) if row else None
        if stored is None or stored < last:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('last_at', ?)", (last.isoformat(),))
            stored = last
        self._last_stored = stored

    def _failed(self) -> None:
        """After an error SQLite may have rolled the transaction back itself (a full disk does):
        drop the batch's buffers, and end the transaction if it is still open."""
        self._clear_buffers()
        self._forget()
        if getattr(self, "_in_tx", False):
            self._in_tx = False
            try:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def commit(self) -> None:
        if self._in_tx:
            self._flush()
            if self._last is not None:
                self._store_last()
            self.db.execute("COMMIT")
            self._in_tx = False   # another process may write before our next one: ``_open`` sees it

    def rollback(self) -> None:
        """Drop everything saved since the last commit (the service uses it when an event fails)."""
        self._clear_buffers()
        self._forget()
        if self._in_tx:
            self.db.execute("ROLLBACK")
            self._in_tx = False

    def close(self) -> None:
        try:
            self.commit()
        finally:
            if self._checkpoints is not None:   # closed first: the last connection to close checkpoints
                thread, stop = self._checkpoints
                self._checkpoints = None
                stop.set()
                thread.join(timeout=30)
            self.db.close()

    def schema_state(self) -> tuple[bool, str]:
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(events)")}
        found = row[0] if row else "none"
        ok = found == str(SCHEMA_VERSION) and {"digest", "body", "seq"} <= columns
        return ok, f"SQLite schema version {found}, this engine's {SCHEMA_VERSION}" + ("" if ok else " (columns missing)")

    def event_types(self) -> dict[str, tuple[str, str]]:
        return {i: (t or "", a or "") for i, t, a in self.db.execute("SELECT id, type, at FROM events WHERE status='applied'")}


# Each event asks these; they answer from the transaction's buffers and reach SQLite only through
# the guarded methods (``_open``, ``_fetch_one``, ``_fetch_all``, ``_version_moved``), so they need no
# guard of their own.
_PER_EVENT = {"begin", "_begin", "changed_by_others", "is_applied", "refusal", "load", "_book"}
for _name, _method in list(vars(SQLiteStore).items()):
    if (callable(_method) and (_name == "__init__" or not _name.startswith("__")) and _name not in ("_failed", "_forget")
            and _name not in _PER_EVENT):
        setattr(SQLiteStore, _name, _guarded(_method))


def upgrade(path: str) -> tuple[int, int]:
    """Bring an existing SQLite ledger's schema to this engine's (``loyalty db upgrade``): the same
    steps the store takes when it opens one. Returns (version before, version after)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='program'").fetchone()
            before = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a usable SQLite ledger ({exc})") from None
    if row is None:
        raise StoreError(f"{path}: not a usable SQLite ledger (no program recorded)")
    SQLiteStore(path, row[0]).close()
    return int(before[0]) if before else 1, SQLITE_SCHEMA_VERSION


SQLITE_SCHEMA_VERSION = SCHEMA_VERSION
