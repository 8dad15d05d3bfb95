"""PostgreSQL ledger (``--db postgresql://…``): many engine processes on many hosts, one ledger.

Same ledger as the SQLite store, with two differences that follow from sharing it:

* Everything is keyed by program and member. Every table carries ``member`` and has it in its
  primary key (except ``meta``, keyed by program, and ``schema_migrations``), and no transaction
  touches two members' rows: each table can be distributed by ``member`` (Citus, docs/SCALING.md).
  A rejected line that has an id but no member is recorded under member ``''``.
* Per-member concurrency by a row lock. Applying an event runs in one transaction that starts with
  ``SELECT … FOR UPDATE`` on the member's row (``lock``), re-loads the state under that lock,
  checks the event id, writes, commits. We lock rather than run SERIALIZABLE with retries because
  (1) a second checkout for the same member then simply waits a few milliseconds and is applied,
  or refused with the engine's own reason ("at most 500 can be used: the member's valid balance
  is 500"), against the state the first one left, instead of failing with a serialization error
  that every caller must retry; (2) the lock covers exactly one row, so there is no retry loop to
  bound, no deadlock (a transaction never holds two members) and no false conflicts between
  members; (3) on Citus the lock stays a plain row lock on the one worker that holds the member.
  The store says ``shared = True``: the runner then locks and re-loads per event and commits per
  event, and never trusts its cache across events (engine/runner.py).

Each event's writes (the event row, the member's new state, one multi-row INSERT for its ledger
rows, one for its effects) are batched with the COMMIT into one multi-statement query, one round
trip, and the lock with the replay check into another: an event is applied whole or not at all, a
kill -9 or a lost connection rolls back at most the event in flight, and a rerun applies exactly
the events whose ids are not recorded as applied. (COPY does not fit: an event's rows are a handful,
written under its member's lock, not a bulk load.)

The schema is created and upgraded by the versioned migrations below (``schema_migrations``),
applied on first use or by ``loyalty db upgrade --db URL``.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator, Optional

import msgspec

from ..state import Entry, MemberState
from .sqlite import StoreError

# (version, name, statements). Append only: a released migration is never edited.
MIGRATIONS: list[tuple[int, str, tuple[str, ...]]] = [
    (1, "ledger tables keyed by program and member", (
        """CREATE TABLE meta (
             program TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
             PRIMARY KEY (program, key))""",
        # One row a member: its state (NULL until its first event is applied; the row exists so
        # that it can be locked) and its clock.
        """CREATE TABLE members (
             program TEXT NOT NULL, member TEXT NOT NULL, state JSON, clock TIMESTAMPTZ,
             PRIMARY KEY (program, member))""",
        """CREATE TABLE events (
             program TEXT NOT NULL, member TEXT NOT NULL, id TEXT NOT NULL, type TEXT, at TEXT,
             status TEXT NOT NULL CHECK (status IN ('applied', 'rejected')), reason TEXT,
             PRIMARY KEY (program, member, id))""",
        """CREATE TABLE ledger (
             program TEXT NOT NULL, member TEXT NOT NULL, seq BIGSERIAL, at TIMESTAMPTZ NOT NULL,
             source TEXT NOT NULL, action TEXT NOT NULL, lot TEXT NOT NULL,
             amount BIGINT NOT NULL CHECK (amount > 0), from_state TEXT, to_state TEXT NOT NULL,
             rule TEXT NOT NULL, version INTEGER NOT NULL,
             PRIMARY KEY (program, member, seq))""",
        """CREATE TABLE effects (
             program TEXT NOT NULL, member TEXT NOT NULL, seq BIGSERIAL, type TEXT NOT NULL,
             at TEXT NOT NULL, detail JSON NOT NULL, rule TEXT NOT NULL,
             PRIMARY KEY (program, member, seq))""",
    )),
    (2, "indexes for program-wide reads (report, replay check without a member)", (
        "CREATE INDEX events_by_id ON events (program, id) WHERE status = 'applied'",
        "CREATE INDEX effects_by_seq ON effects (program, seq)",
    )),
    (3, "a refused event keeps the fingerprint of its content (a resend of the same event stays refused)", (
        "ALTER TABLE events ADD COLUMN digest TEXT",
    )),
]
LATEST = MIGRATIONS[-1][0]
_MIGRATION_LOCK = 0x6C6F79616C7479  # pg_advisory_xact_lock key: one migrator at a time

_encode = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder(MemberState).decode
_UNKNOWN = object()


def redact(url: str) -> str:
    """The URL without its password, to name the store in messages."""
    url = re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def connect(url: str):
    import psycopg

    try:
        # autocommit: the store sends BEGIN and COMMIT itself, in the same round trip as the statements
        # around them, so an event costs two round trips (lock + check; writes + commit).
        return psycopg.connect(url, autocommit=True, connect_timeout=10, client_encoding="utf8",
                               application_name="loyalty-engine")
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL store {redact(url)}: cannot connect: {_reason(exc)}") from None


def schema_version(conn) -> int:
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(conn, name: str = "PostgreSQL store") -> list[int]:
    """Apply the migrations this database lacks, in one transaction, one process at a time.
    Returns the versions applied (none when the schema is current)."""
    current = schema_version(conn)
    conn.commit()
    if current > LATEST:
        raise StoreError(f"{name}: the ledger schema is at version {current}, newer than this engine's "
                         f"{LATEST}; upgrade the engine")
    if current == LATEST:
        return []
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                          version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                          applied_at TIMESTAMPTZ NOT NULL DEFAULT now())""")
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, title, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, title))
            applied.append(version)
    return applied


class PostgresStore:
    # Other processes write this ledger too: the runner locks and re-loads the member per event
    # (``lock``) and commits per event, instead of trusting states cached across a batch.
    shared = True

    def __init__(self, url: str, program_id: str):
        import psycopg

        self._psycopg = psycopg
        self._idle = psycopg.pq.TransactionStatus.IDLE
        self.url = url
        self.name = f"PostgreSQL store {redact(url)}"
        self.program = program_id
        self.conn = connect(url)
        # Writes are bound on the client (ClientCursor.mogrify, libpq's escaping) and sent as one
        # multi-statement query with the COMMIT or the next lock: one round trip a batch.
        self._batch = psycopg.ClientCursor(self.conn)
        self._queue: list[str] = []          # statements not sent yet
        self._member: Optional[str] = None   # the member whose transaction is open (None: none open)
        self._locked = False                 # ... and whose row that transaction holds locked
        self._state = _UNKNOWN               # that member's state under the lock
        self._checked: Optional[tuple[str, bool]] = None  # (event id, applied?) looked up with the lock
        with self._guard():
            migrate(self.conn, self.name)
            self.conn.execute("INSERT INTO meta (program, key, value) VALUES (%s, 'created_at', now()::text) "
                              "ON CONFLICT DO NOTHING", (program_id,))

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _guard(self):
        """Turn a database error into a StoreError naming the store; the transaction in flight
        (at most one member's event) is rolled back, so nothing is half-applied."""
        try:
            yield
        except self._psycopg.Error as exc:
            self._queue.clear()
            self._reset()
            try:
                if not self.conn.closed and self.conn.info.transaction_status != self._idle:
                    self.conn.execute("ROLLBACK")
            except self._psycopg.Error:
                pass
            lost = isinstance(exc, self._psycopg.OperationalError) or self.conn.closed
            what = "connection lost" if lost else "database error"
            raise StoreError(f"{self.name}: {what}: {_reason(exc)}") from None

    def _reset(self) -> None:
        self._member, self._locked, self._state, self._checked = None, False, _UNKNOWN, None

    def _q(self, sql: str, params=None) -> None:
        self._queue.append(self._batch.mogrify(sql, params) if params is not None else sql)

    def _send(self, *queries: tuple[str, tuple]) -> list[list[tuple]]:
        """Send the queued statements, then ``queries``, as one multi-statement query (one round
        trip). Returns the rows of each of ``queries``."""
        for sql, params in queries:
            self._q(sql, params)
        if not self._queue:
            return []
        text, self._queue = "; ".join(self._queue), []
        cur = self._batch
        cur.execute(text)
        results = []
        while True:
            if cur.description is not None:
                results.append(cur.fetchall())
            if not cur.nextset():
                break
        return results[len(results) - len(queries):] if queries else []

    def _end(self) -> None:
        """Queue the COMMIT of the open transaction (sent with whatever comes next)."""
        if self._member is not None:
            self._queue.append("COMMIT")
        self._reset()

    def _tx(self, member: str) -> None:
        """Writes for ``member`` go in its own transaction: never two members in one."""
        if self._member != member:
            self._end()
            self._queue.append("BEGIN")
            self._member = member

    def lock(self, member: str, event_id: Optional[str] = None) -> Optional[MemberState]:
        """Start ``member``'s transaction (committing any other) and lock its row with
        SELECT … FOR UPDATE: until this transaction ends no other process can apply an event for
        this member. Returns the member's state as the last holder of the lock committed it. With
        ``event_id``, also looks up (under the lock, in the same round trip) whether that event is
        applied, for ``is_applied``."""
        if self._locked and self._member == member and self._state is not _UNKNOWN and event_id is None:
            return self._state
        p = self.program
        queries = [("SELECT state::text FROM members WHERE program = %s AND member = %s FOR UPDATE", (p, member))]
        if event_id is not None:
            queries.append(("SELECT EXISTS (SELECT 1 FROM events WHERE program = %s AND member = %s AND id = %s "
                            "AND status = 'applied')", (p, member, event_id)))
        with self._guard():
            self._end()
            self._queue.append("BEGIN")
            results = self._send(*queries)
            if not results[0]:
                # A new member has no row to lock yet: create it (state NULL), then lock it. Two
                # processes doing so at once: the second INSERT waits for the first, then does nothing.
                self._q("INSERT INTO members (program, member) VALUES (%s, %s) ON CONFLICT DO NOTHING", (p, member))
                results = self._send(*queries)
            text = results[0][0][0]
            self._member, self._locked = member, True
            self._state = _decode_state(text) if text is not None else None
            if event_id is not None:
                self._checked = (event_id, results[1][0][0])
            return self._state

    def commit(self) -> None:
        with self._guard():
            self._end()
            self._send()

    def rollback(self) -> None:
        """Drop what the open transaction wrote (queued or sent) and release the member's lock."""
        self._queue.clear()
        self._reset()
        with self._guard():
            if self.conn.info.transaction_status != self._idle:
                self.conn.execute("ROLLBACK")

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.conn.close()

    # -- the Store interface --------------------------------------------------------------------

    def is_applied(self, event_id: str) -> bool:
        """Whether ``event_id`` was applied. Under a member's lock (the runner locks the event's
        member first) the look-up is that member's, so it stays on the member's shard: event ids
        are unique per member. Without a lock it looks the id up program-wide."""
        if self._locked and self._checked is not None and self._checked[0] == event_id:
            return self._checked[1]
        with self._guard():
            if self._locked:
                rows = self._send(("SELECT 1 FROM events WHERE program = %s AND member = %s AND id = %s "
                                   "AND status = 'applied'", (self.program, self._member, event_id)))
            else:
                rows = self._send(("SELECT 1 FROM events WHERE program = %s AND id = %s AND status = 'applied' "
                                   "LIMIT 1", (self.program, event_id)))
            return bool(rows[0])

    def load(self, member: str) -> Optional[MemberState]:
        if self._locked and self._member == member and self._state is not _UNKNOWN:
            return self._state
        with self._guard():
            rows = self._send(("SELECT state::text FROM members WHERE program = %s AND member = %s",
                               (self.program, member)))[0]
        return _decode_state(rows[0][0]) if rows and rows[0][0] is not None else None

    def save(self, event_id, event_type, at, state, entries, effects) -> None:
        """Queue the event's writes in the member's transaction; ``commit`` sends them with the
        COMMIT, in one round trip. If the event is already applied (a caller that did not lock
        raced another process), the INSERT fails on the primary key and the whole event rolls back."""
        p, member = self.program, state.member
        with self._guard():
            self._tx(member)
            # A rejected attempt of this id gives way to the applied event; an applied one stays,
            # so the INSERT below fails (and with it the transaction) rather than apply it twice.
            self._q("DELETE FROM events WHERE program = %s AND member = %s AND id = %s AND status = 'rejected'",
                    (p, member, event_id))
            self._q("INSERT INTO events (program, member, id, type, at, status) VALUES (%s, %s, %s, %s, %s, 'applied')",
                    (p, member, event_id, event_type, at))
            self._q("INSERT INTO members (program, member, state, clock) VALUES (%s, %s, %s::json, %s) "
                    "ON CONFLICT (program, member) DO UPDATE SET state = excluded.state, clock = excluded.clock",
                    (p, member, _encode(state).decode(), state.clock))
            if entries:  # one multi-row INSERT for all of the event's ledger rows
                rows = ", ".join(self._batch.mogrify("(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", (
                    p, e.member, e.at, e.source, e.action, e.lot, e.amount, e.from_state, e.to_state, e.rule,
                    e.version)) for e in entries)
                self._queue.append("INSERT INTO ledger (program, member, at, source, action, lot, amount, from_state, "
                                   f"to_state, rule, version) VALUES {rows}")
            if effects:
                rows = ", ".join(self._batch.mogrify("(%s, %s, %s, %s, %s::json, %s)", (
                    p, f.member, f.type, f.at, _encode(f.detail).decode(), f.rule)) for f in effects)
                self._queue.append(f"INSERT INTO effects (program, member, type, at, detail, rule) VALUES {rows}")
        self._state = state if self._locked else _UNKNOWN
        if self._checked is not None and self._checked[0] == event_id:
            self._checked = (event_id, True)

    def reject(self, event_id, member, reason, digest=None) -> None:
        if event_id is None:
            return
        member = member or ""
        with self._guard():
            self._tx(member)
            # the first refusal keeps its reason and fingerprint
            self._q("INSERT INTO events (program, member, id, status, reason, digest) "
                    "VALUES (%s, %s, %s, 'rejected', %s, %s) ON CONFLICT (program, member, id) DO NOTHING",
                    (self.program, member, event_id, reason, digest))

    def refusal(self, event_id):
        member = self._member or ""
        with self._guard():
            rows = self._send(("SELECT digest, reason FROM events WHERE program = %s AND member = %s AND id = %s "
                               "AND status = 'rejected'", (self.program, member, event_id)))
        row = rows[0][0] if rows and rows[0] else None
        return (row[0], row[1]) if row else None

    def members(self) -> Iterator[str]:
        with self._guard():
            self._send()
            rows = self.conn.execute(
                'SELECT member FROM members WHERE program = %s AND state IS NOT NULL ORDER BY member COLLATE "C"',
                (self.program,)).fetchall()
        return (row[0] for row in rows)

    def effects(self) -> list[dict]:
        with self._guard():
            self._send()
            rows = self.conn.execute(
                "SELECT member, type, at, detail::text, rule FROM effects WHERE program = %s ORDER BY seq",
                (self.program,)).fetchall()
        return [{"type": t, "member": m, "at": a, "detail": msgspec.json.decode(d), "rule": r} for m, t, a, d, r in rows]

    def entries(self, member: str) -> list[Entry]:
        with self._guard():
            self._send()
            rows = self.conn.execute(
                "SELECT member, at, source, action, lot, amount, from_state, to_state, rule, version "
                "FROM ledger WHERE program = %s AND member = %s ORDER BY seq", (self.program, member)).fetchall()
        return [Entry(member=r[0], at=r[1], source=r[2], action=r[3], lot=r[4], amount=r[5], from_state=r[6],
                      to_state=r[7], rule=r[8], version=r[9]) for r in rows]

    def last_time(self) -> Optional[str]:
        # The latest member clock: clocks only move forward, so this is the time of the last event
        # or happening applied, as SQLite's meta 'last_at' (kept here without a program-wide row
        # that every transaction would have to update).
        with self._guard():
            self._send()
            row = self.conn.execute("SELECT max(clock) FROM members WHERE program = %s", (self.program,)).fetchone()
        last: Optional[datetime] = row[0] if row else None
        return last.isoformat() if last is not None else None
