"""PostgreSQL ledger (``--db postgresql://…``): many engine processes on many hosts, one ledger.

Same ledger as the SQLite store, with two differences that follow from sharing it:

* Everything is keyed by program and member. Every table carries ``member`` and has it in its
  primary key (except ``meta``, keyed by program, and ``schema_migrations``): each table can be
  distributed by ``member`` (Citus, docs/SCALING.md). A rejected line that has an id but no member
  is recorded under member ``''``.
* Per-member concurrency by a row lock. Applying an event runs in a transaction that starts with
  ``SELECT … FOR UPDATE`` on the member's row (``lock``), re-loads the state under that lock,
  checks the event id, writes, commits. We lock rather than run SERIALIZABLE with retries because
  (1) a second checkout for the same member then simply waits a few milliseconds and is applied,
  or refused with the engine's own reason ("at most 500 can be used: the member's valid balance
  is 500"), against the state the first one left, instead of failing with a serialization error
  that every caller must retry; (2) there is no retry loop to bound and no false conflicts between
  members; (3) on Citus the lock stays a plain row lock on the worker that holds the member.
  The store says ``shared = True``: the runner never trusts its cache across transactions
  (engine/run/runner.py).

Two kinds of transaction:

* One event (``lock``, ``save``/``reject``, ``commit``): a checkout (``Engine.apply``, the HTTP
  service). One member, committed at once, so the redemption is durable when it is acknowledged
  and the lock is held for one event. The event's writes (the event row, the member's new state,
  one multi-row INSERT for its ledger rows, one for its effects) go with the COMMIT in one
  multi-statement query, and the lock with the replay check in another: two round trips.
* A chunk of a replay (``lock_chunk``, then per event ``lock``/``save``/``reject`` answered and
  buffered in memory, ``commit``): ``Runner.run`` with a stream of events. One transaction locks
  the rows of every member of the chunk in one statement, in sorted member order (``COLLATE "C"``),
  so two replays, or a replay and a checkout, wait for each other but never deadlock; it looks the
  chunk's event ids up in one query, and writes what the chunk's events did with one statement a
  table, sent with the COMMIT. A checkout for a member of the chunk waits for that commit.

Either way an event is applied whole or not at all: a rejected event writes nothing of its
outcome, a database error, kill -9 or lost connection rolls back the transaction in flight (one
event, or one chunk), and a rerun applies exactly the events whose ids are not recorded as applied.

A member's state is stored as a head and rows (engine/store/rows.py): an event writes the rows it
changed, not the member's history. Each members row carries ``rev``, raised by every write of its
state; a process keeps the states it last read or wrote with their ``rev`` (``_held``), and the
lock reads a member's head and rows only when its ``rev`` is not the one held, so a member with a
long history costs a lookup of one number per transaction. The rows are read in a statement of
their own after the lock is granted (a statement that waited for a lock sees the locked row's new
version, but its subqueries would see the tables as they were before the wait).

The schema is created and upgraded by the versioned migrations below (``schema_migrations``),
applied on first use or by ``loyalty db upgrade --db URL``.

A chunk's transaction touches many members, so on Citus it would span many shards, and Citus
runs ``SELECT … FOR UPDATE`` only in a query routed to one shard: with the ``citus`` extension
installed the store says ``chunks = False`` and a replay keeps one transaction an event, each on
one worker, as checkouts do (docs/SCALING.md).
"""
from __future__ import annotations

import enum
import re
from contextlib import contextmanager
from operator import itemgetter
from datetime import datetime
from typing import Callable, Iterator, Optional
from zoneinfo import ZoneInfo

import msgspec

from engine.model.state import Entry, MemberState
from engine.store.base import KEPT_MEMBERS, Store, StoreError, encode_body, wall_clock
from engine.core.journal import Touched
from engine.store.rows import Written, changes, merged, state_of

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
    # A past view (engine/run/report.py) replays a member's applied events in the order they were
    # applied: the body of each (msgspec JSON) and its place, from one sequence. Rows recorded
    # before stay NULL (no table rewrite): no past view reaches back to them.
    (4, "an applied event keeps its body and its place in the order of application (past views)", (
        "CREATE SEQUENCE events_seq",
        "ALTER TABLE events ADD COLUMN body TEXT, ADD COLUMN seq BIGINT",
        "ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('events_seq')",
    )),
    # CONTRACT: an event id is applied once across the whole ledger, not once per member (the same
    # id sent for two members is skipped the second time, as on every store). ``event_ids`` claims an
    # id for the member it was applied for; its key holds between processes too (of two concurrent
    # commits of one id, the second fails and its retry finds the id applied). It is the one table
    # keyed by id, not by member: on Citus it is distributed by id, so the claim is a second shard
    # in the event's transaction. (A ledger that applied an id for two members before this version
    # cannot be upgraded silently: the upgrade stops and names the ids.)
    (5, "an event id is applied once across the ledger, whichever member it names", (
        "DO $$ DECLARE dup TEXT; BEGIN "
        "SELECT string_agg(program || ':' || id, ', ') INTO dup FROM ("
        "SELECT program, id FROM events WHERE status = 'applied' GROUP BY program, id HAVING count(*) > 1 "
        "ORDER BY program, id LIMIT 20) d; "
        "IF dup IS NOT NULL THEN RAISE EXCEPTION 'event ids applied for more than one member (program:id): %; "
        "decide which application stands and delete the other rows from events before upgrading', dup; "
        "END IF; END $$",
        """CREATE TABLE event_ids (
             program TEXT NOT NULL, id TEXT NOT NULL, member TEXT NOT NULL,
             PRIMARY KEY (program, id))""",
        "INSERT INTO event_ids (program, id, member) SELECT program, id, member FROM events WHERE status = 'applied'",
        "DROP INDEX IF EXISTS events_by_id",
    )),
    # Issue 22: every entry keeps the time it was booked (NULL for those booked before: they count
    # as booked at their business time). The ledger's closes (engine/run/close.py) are program-wide
    # rows of ``meta`` (key 'close:<booked time>'), so no table that Citus cannot distribute by member.
    (6, "ledger entries keep their booked time", (
        "ALTER TABLE ledger ADD COLUMN booked_at TIMESTAMPTZ",
    )),
    # Issue 23: a member's state as a head (members.state) and rows, one an order or a lot
    # (engine/store/rows.py), and a revision raised by each write of it. A state stored whole
    # before stays readable as it is; its member's next write stores it in rows.
    (7, "a member's state as a head and rows, with a revision", (
        "ALTER TABLE members ADD COLUMN rev BIGINT NOT NULL DEFAULT 0",
        """CREATE TABLE member_rows (
             program TEXT NOT NULL, member TEXT NOT NULL, part SMALLINT NOT NULL, pos BIGINT NOT NULL,
             body TEXT NOT NULL, PRIMARY KEY (program, member, part, pos))""",
    )),
]
_ROWS_AGGREGATE = ("(SELECT json_agg(json_build_array(r.part, r.pos, r.body) ORDER BY r.part, r.pos) "
                   "FROM member_rows r WHERE r.program = m.program AND r.member = m.member)")
_decode_rows = msgspec.json.Decoder(list[tuple[int, int, str]]).decode
LATEST = MIGRATIONS[-1][0]
_MIGRATION_LOCK = 0x6C6F79616C7479  # pg_advisory_xact_lock key: one migrator at a time

_encode = msgspec.json.Encoder().encode
class _Unknown(enum.Enum):
    """The state under the lock is not read yet (None is a member without a state)."""
    UNKNOWN = 0


_UNKNOWN = _Unknown.UNKNOWN


def _text(body: object) -> Optional[str]:
    """An event's body (msgspec JSON, ``encode_body``) as the TEXT column keeps it."""
    encoded = encode_body(body)
    return encoded.decode() if encoded is not None else None


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


class _Chunk:
    """One replay chunk's open transaction: the members it locked and their states as the chunk's
    events leave them, what the database knew of the chunk's event ids, and the writes of the
    events applied or refused so far (sent with the COMMIT)."""

    def __init__(self, states: dict, known: dict):
        self.states: dict[str, Optional[MemberState]] = states  # every locked member
        self.known: dict[tuple[str, str], tuple] = known         # (member, id) -> (status, digest, reason) on record
        self.applied: set[tuple[str, str]] = set()                # applied in this chunk
        # the ids applied for any member: on record when the chunk began, or in this chunk
        self.applied_ids: set[str] = set()
        self.refused: dict[tuple[str, str], tuple] = {}           # refused in this chunk: (reason, digest), first kept
        self.unrefuse: list[tuple[str, str]] = []                 # refusals on record that an applied event replaces
        self.event_rows: list[tuple] = []                         # (member, id, type, at, body) of the applied events
        self.dirty: dict[str, MemberState] = {}                   # members' new states
        self.touched: dict[str, Touched] = {}                     # what the events did to their sequences
        self.ledger_rows: list[tuple] = []
        self.effect_rows: list[tuple] = []

    def status(self, key: tuple[str, str]) -> Optional[str]:
        if key[1] in self.applied_ids:
            return "applied"
        if key in self.refused:
            return "rejected"
        row = self.known.get(key)
        return row[0] if row is not None else None


class PostgresStore(Store):
    # Other processes write this ledger too: the runner locks and re-loads the members of each
    # transaction (``lock``, ``lock_chunk``) instead of trusting states cached across transactions.
    shared = True
    writes_changes = True   # a member's head and the rows its events changed (engine/store/rows.py)
    # A replay may lock and commit a chunk of events at once (``lock_chunk``); False on Citus.
    chunks = True

    def __init__(self, url: str, program_id: str, zone: Optional[ZoneInfo] = None):
        import psycopg

        self._psycopg = psycopg
        self._idle = psycopg.pq.TransactionStatus.IDLE
        self.url = url
        self.name = f"PostgreSQL store {redact(url)}"
        self.program = program_id
        self.zone = zone   # the program's time zone: an older state's tier sums are counted by it (codec)
        self.conn = connect(url)
        # Writes are bound on the client (ClientCursor.mogrify, libpq's escaping) and sent as one
        # multi-statement query with the COMMIT or the next lock: one round trip a batch.
        self._batch = psycopg.ClientCursor(self.conn)
        self._queue: list[str] = []          # statements not sent yet
        self._member: Optional[str] = None   # the member whose transaction is open (None: none open)
        self._locked = False                 # ... and whose row that transaction holds locked
        self._state: Optional[MemberState] | _Unknown = _UNKNOWN   # that member's state under the lock
        self._checked: Optional[tuple[str, bool]] = None  # (event id, applied?) looked up with the lock
        self._chunk: Optional[_Chunk] = None  # the replay chunk whose transaction is open (lock_chunk)
        self._note: Optional[tuple[str, Callable[[], str]]] = None   # written with the next chunk's COMMIT
        # member -> (rev, state, rows) as this process last read or wrote them; dropped with any
        # failure or rollback, so a held state is always one the ledger committed or is committing
        self._held: dict[str, tuple[int, MemberState, Optional[Written]]] = {}
        self.booked_clock = wall_clock
        with self._guard():
            migrate(self.conn, self.name)
            self.conn.execute("INSERT INTO meta (program, key, value) VALUES (%s, 'created_at', now()::text) "
                              "ON CONFLICT DO NOTHING", (program_id,))
            # Citus runs SELECT … FOR UPDATE only in a query routed to one shard: a chunk's lock spans
            # many, so on Citus a replay keeps one transaction (one shard) an event.
            self.chunks = not self.conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").fetchone()[0]

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _guard(self):
        """Turn a database error into a StoreError naming the store; the transaction in flight
        (at most one member's event) is rolled back, so nothing is half-applied."""
        try:
            yield
        except self._psycopg.Error as exc:
            self._queue.clear()
            self._held.clear()
            self._reset()
            self._chunk = None
            self._note = None
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

    def _sync(self) -> None:
        """Send what is queued (or the open chunk's buffered writes), so that a read sees it."""
        if self._chunk is not None:
            self._flush_chunk(commit=False)
        else:
            self._send()

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
        applied, for ``is_applied``.

        Inside a replay chunk (``lock_chunk``) the member is already locked: this makes it the
        member of the next ``is_applied``/``refusal``/``save`` and returns its state as the chunk's
        events so far left it, without a round trip."""
        chunk = self._chunk
        if chunk is not None:
            if member not in chunk.states:
                raise StoreError(f"{self.name}: member {member!r} is not locked by the open chunk")
            self._member, self._locked, self._state = member, True, chunk.states[member]
            applied = event_id is not None and chunk.status((member, event_id)) == "applied"
            self._checked = (event_id, applied) if event_id is not None else None
            return self._state
        if self._locked and self._member == member and self._state is not _UNKNOWN and event_id is None:
            return self._state
        p = self.program
        rev = self._held_rev(member)
        queries = [("SELECT rev, CASE WHEN rev = %s THEN NULL ELSE state::text END FROM members "
                    "WHERE program = %s AND member = %s FOR UPDATE", (rev, p, member)),
                   # after the lock, in a statement of its own: the rows as the lock's last holder left them
                   ("SELECT part, pos, body FROM member_rows WHERE program = %s AND member = %s AND NOT EXISTS "
                    "(SELECT 1 FROM members WHERE program = %s AND member = %s AND rev = %s) ORDER BY part, pos",
                    (p, member, p, member, rev))]
        if event_id is not None:
            queries.append(("SELECT EXISTS (SELECT 1 FROM event_ids WHERE program = %s AND id = %s)", (p, event_id)))
        with self._guard():
            self._end()
            self._queue.append("BEGIN")
            results = self._send(*queries)
            if not results[0]:
                # A new member has no row to lock yet: create it (state NULL), then lock it. Two
                # processes doing so at once: the second INSERT waits for the first, then does nothing.
                self._q("INSERT INTO members (program, member) VALUES (%s, %s) ON CONFLICT DO NOTHING", (p, member))
                results = self._send(*queries)
            found_rev, text = results[0][0]
            self._member, self._locked = member, True
            self._state = self._state_read(member, found_rev, text, results[1])
            if event_id is not None:
                self._checked = (event_id, results[2][0][0])
            return self._state

    def _held_rev(self, member: str) -> int:
        held = self._held.get(member)
        return held[0] if held is not None else -1

    def _state_read(self, member: str, rev: int, text: Optional[str], rows: list) -> Optional[MemberState]:
        """The member's state from what a lock or a read found: its ``rev``, its head (``text``: None
        when the ledger's rev is the held one, or the member has no state yet) and its rows."""
        held = self._held.get(member)
        if text is None:
            if held is not None and held[0] == rev:
                return held[1]
            self._held.pop(member, None)
            return None
        state, written = state_of(text, rows, self.zone)
        if len(self._held) >= KEPT_MEMBERS:
            self._held.clear()
        self._held[member] = (rev, state, written)
        return state

    # -- replay chunks --------------------------------------------------------------------------

    def lock_chunk(self, events) -> None:
        """Open one transaction for a chunk of a replay (``events``: objects with ``member`` and
        ``id``, in stream order), committing any open one first. In one round trip: create the
        missing member rows, lock every member's row with SELECT … FOR UPDATE in sorted member order
        (two chunks, or a chunk and a checkout, never deadlock: each takes its locks in the same
        order, and a checkout holds one), load their states, and look up the chunk's event ids.
        Until ``commit`` (or ``rollback``) the runner applies the chunk's events one by one through
        ``lock``, ``is_applied``, ``refusal``, ``save`` and ``reject``, answered and buffered in
        memory; ``commit`` writes them all with the COMMIT."""
        if self._chunk is not None:
            self.commit()
        members = sorted({e.member for e in events})
        keys = list(dict.fromkeys((e.member, e.id) for e in events))
        p = self.program
        revs = [self._held_rev(m) for m in members]
        held_rev = "coalesce((%b::bigint[])[array_position(%b::text[], {0})], -1)"
        with self._guard():
            self._end()
            _, _, rows, member_rows, known, applied_ids = self._pipeline([
                ("BEGIN", None),
                # New members first, in sorted order (ON CONFLICT DO NOTHING waits for a concurrent
                # insert of the same member to end): then every member has a committed row or one of
                # ours, and the SELECT … FOR UPDATE below locks them all, in the order it sorts them.
                ("INSERT INTO members (program, member) SELECT %s, m FROM unnest(%b::text[]) AS m "
                 'ORDER BY m COLLATE "C" ON CONFLICT DO NOTHING', (p, members)),
                (f"SELECT member, rev, CASE WHEN rev = {held_rev.format('member')} THEN NULL ELSE state::text END "
                 "FROM members WHERE program = %s AND member = ANY(%b::text[]) "
                 'ORDER BY member COLLATE "C" FOR UPDATE', (revs, members, p, members)),
                # after the locks, in a statement of its own: the rows of the members whose rev is not held
                ("SELECT r.member, r.part, r.pos, r.body FROM member_rows r JOIN members m "
                 "ON m.program = r.program AND m.member = r.member WHERE r.program = %s AND r.member = ANY(%b::text[]) "
                 f"AND m.rev <> {held_rev.format('r.member')} ORDER BY r.member, r.part, r.pos",
                 (p, members, revs, members)),
                ("SELECT e.member, e.id, e.status, e.digest, e.reason "
                 "FROM unnest(%b::text[], %b::text[]) AS k(member, id) "
                 "JOIN events e ON e.program = %s AND e.member = k.member AND e.id = k.id",
                 ([k[0] for k in keys], [k[1] for k in keys], p)),
                ("SELECT id FROM event_ids WHERE program = %s AND id = ANY(%b::text[])",
                 (p, list({k[1] for k in keys}))),
            ])
        self._reset()
        self._member = ""  # a transaction is open: ``_end`` would commit it, ``rollback`` ends it
        rows_of: dict[str, list] = {}
        for member, part, pos, body in member_rows:
            rows_of.setdefault(member, []).append((part, pos, body))
        states = {m: self._state_read(m, rev, text, rows_of.get(m, [])) for m, rev, text in rows}
        if len(states) != len(members):  # cannot happen: every member's row was created above
            self.rollback()
            raise StoreError(f"{self.name}: could not lock the members of a chunk")
        self._chunk = _Chunk(states, {(m, i): (st, d, r) for m, i, st, d, r in known})
        self._chunk.applied_ids = {row[0] for row in applied_ids}

    def _pipeline(self, statements: list[tuple[str, Optional[tuple]]]) -> list[list[tuple]]:
        """Run ``statements`` in one round trip (pipeline mode, parameters bound on the server; the
        ``%b`` ones, arrays, in binary: nothing to escape). Returns each statement's rows (none for
        a statement without). Whatever was queued is sent first. Nothing is prepared on the server
        (a connection pooler in transaction mode may hand us another server session next time)."""
        self._send()
        conn = self.conn
        cursors = []
        with conn.pipeline():
            for sql, params in statements:
                cur = conn.cursor()
                cur.execute(sql, params, prepare=False)
                cursors.append(cur)
        return [cur.fetchall() if cur.description is not None else [] for cur in cursors]

    def _flush_chunk(self, commit: bool) -> None:
        """Send the open chunk's writes, then the COMMIT when ``commit``: the members' new states
        and the refusals that applied events replace in one round trip, the event, ledger and effect
        rows by COPY (in the order the events made them: the sequences number the ledger and effect
        rows in that order), the refusals with the COMMIT. Event rows go in sorted by key, so two
        chunks that refuse the same event id (recorded under member '' when the line names no
        member) wait for each other rather than deadlock."""
        chunk, p = self._chunk, self.program
        if chunk is None:
            return
        first: list[tuple[str, Optional[tuple]]] = []
        if chunk.unrefuse:
            first.append((
                "DELETE FROM events e USING unnest(%b::text[], %b::text[]) AS k(member, id) "
                "WHERE e.program = %s AND e.member = k.member AND e.id = k.id AND e.status = 'rejected'",
                ([k[0] for k in chunk.unrefuse], [k[1] for k in chunk.unrefuse], p)))
        if chunk.event_rows:
            # the applied events' places in the ledger's order, taken under the members' locks: each
            # later than any event of these members committed before (rows go in sorted by key)
            places_at = len(first)
            first.append(("SELECT nextval('events_seq') FROM generate_series(1, %s)", (len(chunk.event_rows),)))
        if chunk.dirty:
            self._chunk_states(chunk, first)
        answers = self._pipeline(first) if first else []
        cur = self.conn.cursor()
        if chunk.event_rows:
            places = sorted(row[0] for row in answers[places_at])
            with cur.copy("COPY events (program, member, id, type, at, body, seq, status) FROM STDIN") as copy:
                for row in sorted((row + (seq,) for row, seq in zip(chunk.event_rows, places)), key=itemgetter(0, 1)):
                    copy.write_row((p, *row, "applied"))
            with cur.copy("COPY event_ids (program, id, member) FROM STDIN") as copy:
                for row in sorted(chunk.event_rows, key=itemgetter(1)):
                    copy.write_row((p, row[1], row[0]))
        if chunk.ledger_rows:
            with cur.copy("COPY ledger (program, member, at, source, action, lot, amount, from_state, to_state, "
                          "rule, version, booked_at) FROM STDIN") as copy:
                for row in chunk.ledger_rows:
                    copy.write_row((p, *row))
        if chunk.effect_rows:
            with cur.copy("COPY effects (program, member, type, at, detail, rule) FROM STDIN") as copy:
                for row in chunk.effect_rows:
                    copy.write_row((p, *row))
        last: list[tuple[str, Optional[tuple]]] = []
        if chunk.refused:
            rows = sorted((m, i, reason, digest) for (m, i), (reason, digest) in chunk.refused.items())
            last.append((
                "INSERT INTO events (program, member, id, status, reason, digest) "
                "SELECT %s, r.member, r.id, 'rejected', r.reason, r.digest "
                "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) AS r(member, id, reason, digest) "
                "ON CONFLICT (program, member, id) DO NOTHING", (p, *map(list, zip(*rows)))))
        if commit and self._note is not None:   # the outcome of the chunk, written with it (``note_commit``)
            note_key, note_value = self._note
            self._note = None
            last.append(("INSERT INTO meta (program, key, value) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                         (p, note_key, note_value())))
        if commit:
            last.append(("COMMIT", None))
            self._chunk = None
            self._reset()
        if last:
            self._pipeline(last)
        if not commit:  # the rows are on the server now, inside the still open transaction
            for key in chunk.applied:
                chunk.known[key] = ("applied", None, None)
            for key, (reason, digest) in chunk.refused.items():
                chunk.known.setdefault(key, ("rejected", digest, reason))
            chunk.applied, chunk.refused, chunk.unrefuse, chunk.event_rows = set(), {}, [], []
            chunk.dirty, chunk.touched, chunk.ledger_rows, chunk.effect_rows = {}, {}, [], []

    def _chunk_states(self, chunk: _Chunk, statements: list[tuple[str, Optional[tuple]]]) -> None:
        """Add to ``statements`` the writes of the chunk's members' new states: each head (its rev
        raised), and the rows that changed since the chunk locked them (or since its last flush)."""
        p = self.program
        members, heads, clocks, wholes = [], [], [], []
        deleted: list[list] = [[], [], []]       # columns: member, part, pos
        put: list[list] = [[], [], [], []]       # columns: member, part, pos, body
        for member, state in chunk.dirty.items():
            held = self._held.get(member)
            change, written = changes(state, held[2] if held is not None else None, chunk.touched.get(member))
            members.append(member)
            heads.append(change.head.decode())
            clocks.append(state.clock)
            if change.whole:
                wholes.append(member)
            for row in change.deleted:
                for column, value in zip(deleted, (member, *row)):
                    column.append(value)
            for part, pos, body in change.put:
                for column, value in zip(put, (member, part, pos, body.decode())):
                    column.append(value)
            self._hold_written(member, held, state, written)
        statements.append((
            "UPDATE members AS m SET state = r.state::json, clock = r.clock, rev = m.rev + 1 "
            "FROM unnest(%b::text[], %b::text[], %b::timestamptz[]) AS r(member, state, clock) "
            "WHERE m.program = %s AND m.member = r.member", (members, heads, clocks, p)))
        if wholes:
            statements.append(("DELETE FROM member_rows WHERE program = %s AND member = ANY(%b::text[])", (p, wholes)))
        if deleted[0]:
            statements.append((
                "DELETE FROM member_rows r USING unnest(%b::text[], %b::int2[], %b::int8[]) AS d(member, part, pos) "
                "WHERE r.program = %s AND r.member = d.member AND r.part = d.part AND r.pos = d.pos", (*deleted, p)))
        if put[0]:
            statements.append((
                "INSERT INTO member_rows (program, member, part, pos, body) "
                "SELECT %s, d.* FROM unnest(%b::text[], %b::int2[], %b::int8[], %b::text[]) AS d "
                "ON CONFLICT (program, member, part, pos) DO UPDATE SET body = excluded.body", (p, *put)))

    def _chunk_save(self, chunk: _Chunk, event_id, event_type, at, state, entries, effects, body=None,
                    touched: Optional[Touched] = None) -> None:
        member = state.member
        key = (member, event_id)
        if member not in chunk.states:
            raise StoreError(f"{self.name}: member {member!r} is not locked by the open chunk")
        if chunk.status(key) == "applied":  # as the primary key would: never applied twice
            raise StoreError(f"{self.name}: event {event_id} of member {member} is already applied")
        # every row first, then the buffers: an error here leaves nothing of the event behind
        booked = self.booked_clock() if entries else None
        ledger = [(e.member, e.at, e.source, e.action, e.lot, e.amount, e.from_state, e.to_state, e.rule, e.version,
                   booked) for e in entries]
        effect_rows = [(f.member, f.type, f.at, _encode(f.detail).decode(), f.rule) for f in effects]
        if key in chunk.refused:      # refused earlier in this chunk: the refusal gives way
            del chunk.refused[key]
        elif key in chunk.known:      # refused on record: the refusal gives way
            chunk.unrefuse.append(key)
        chunk.applied.add(key)
        chunk.applied_ids.add(event_id)
        chunk.event_rows.append((member, event_id, event_type, at, _text(body)))
        chunk.touched[member] = merged(chunk.touched.get(member), touched)
        chunk.states[member] = chunk.dirty[member] = state
        chunk.ledger_rows.extend(ledger)
        chunk.effect_rows.extend(effect_rows)
        if self._member == member:
            self._state = state
            if self._checked is not None and self._checked[0] == event_id:
                self._checked = (event_id, True)

    def commit(self) -> None:
        if self._chunk is not None:
            try:
                with self._guard():
                    self._flush_chunk(commit=True)
            except BaseException:
                self._abort()   # not a database error (a bug, an interrupt): still nothing half-written
                raise
            return
        with self._guard():
            self._end()
            self._send()

    def note_commit(self, key: str, value: Callable[[], str]) -> None:
        """Write ``value()`` (a text, asked for at the commit) under ``key`` in ``meta`` with the COMMIT
        of the next replay chunk, in its transaction: the note exists if and only if the chunk was
        committed. A cluster task records its outcome so (engine/run/cluster.py): run again after its
        worker was lost past the commit, it answers what it did instead of reporting its own events
        as replays."""
        self._note = (key, value)

    def notes(self, prefix: str) -> dict[str, str]:
        """The notes whose key starts with ``prefix`` (``note_commit``)."""
        with self._guard():
            self._sync()
            rows = self.conn.execute("SELECT key, value FROM meta WHERE program = %s AND starts_with(key, %s)",
                                     (self.program, prefix)).fetchall()
        return dict(rows)

    def forget_notes(self, prefix: str) -> None:
        """Delete the notes whose key starts with ``prefix`` (a finished cluster run's)."""
        with self._guard():
            self._end()
            self._send(("DELETE FROM meta WHERE program = %s AND starts_with(key, %s)", (self.program, prefix)))

    def _abort(self) -> None:
        try:
            self.rollback()
        except Exception:  # the connection is gone: the server rolls the transaction back
            pass

    def rollback(self) -> None:
        """Drop what the open transaction wrote (queued or sent) and release the member's lock
        (or the chunk's locks)."""
        self._queue.clear()
        self._held.clear()
        self._reset()
        self._chunk = None
        self._note = None
        with self._guard():
            if self.conn.info.transaction_status != self._idle:
                self.conn.execute("ROLLBACK")

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.conn.close()

    def schema_state(self) -> tuple[bool, str]:
        found = schema_version(self.conn)
        return found == LATEST, f"PostgreSQL schema version {found}, this engine's {LATEST}"

    # -- the Store interface --------------------------------------------------------------------

    def is_applied(self, event_id: str) -> bool:
        """Whether ``event_id`` was applied, for any member (ids are unique across the ledger). Under a
        member's lock the answer came with the lock, in the same round trip."""
        if self._locked and self._checked is not None and self._checked[0] == event_id:
            return self._checked[1]
        if self._chunk is not None and self._member is not None:
            return self._chunk.status((self._member, event_id)) == "applied"
        with self._guard():
            rows = self._send(("SELECT 1 FROM event_ids WHERE program = %s AND id = %s", (self.program, event_id)))
            return bool(rows[0])

    def load(self, member: str) -> Optional[MemberState]:
        if self._locked and self._member == member and self._state is not _UNKNOWN:
            return self._state
        if self._chunk is not None and member in self._chunk.states:
            return self._chunk.states[member]
        rev = self._held_rev(member)
        with self._guard():
            # one statement, so one snapshot: the head and the rows of the same commit
            rows = self._send((f"SELECT rev, CASE WHEN rev = %s THEN NULL ELSE state::text END, "
                               f"CASE WHEN rev = %s OR state IS NULL THEN NULL ELSE {_ROWS_AGGREGATE}::text END "
                               "FROM members m WHERE program = %s AND member = %s", (rev, rev, self.program, member)))[0]
        if not rows:
            return None
        found_rev, text, aggregate = rows[0]
        return self._state_read(member, found_rev, text, _decode_rows(aggregate) if aggregate else [])

    def save(self, event_id, event_type, at, state, entries, effects, body=None, touched=None) -> None:
        """Queue the event's writes in the member's transaction; ``commit`` sends them with the
        COMMIT, in one round trip. If the event is already applied (a caller that did not lock
        raced another process), the INSERT fails on the primary key and the whole event rolls back.
        Inside a replay chunk the writes are buffered until ``commit``."""
        if self._chunk is not None:
            self._chunk_save(self._chunk, event_id, event_type, at, state, entries, effects, body, touched)
            return
        p, member = self.program, state.member
        with self._guard():
            self._tx(member)
            # A rejected attempt of this id gives way to the applied event; an applied one stays,
            # so the INSERT below fails (and with it the transaction) rather than apply it twice.
            self._q("DELETE FROM events WHERE program = %s AND member = %s AND id = %s AND status = 'rejected'",
                    (p, member, event_id))
            self._q("INSERT INTO events (program, member, id, type, at, status, body) "
                    "VALUES (%s, %s, %s, %s, %s, 'applied', %s)", (p, member, event_id, event_type, at, _text(body)))
            # the id's claim across members: an id applied for another member fails here, whole
            self._q("INSERT INTO event_ids (program, id, member) VALUES (%s, %s, %s)", (p, event_id, member))
            self._queue_book(state, entries, effects, self.booked_clock() if entries else None, touched)
        self._state = state if self._locked else _UNKNOWN
        if self._checked is not None and self._checked[0] == event_id:
            self._checked = (event_id, True)

    def _queue_book(self, state, entries, effects, booked_at, touched: Optional[Touched] = None) -> None:
        """Queue the member's new state (its head and the rows ``touched`` says changed; None: not
        known), its ledger rows (stamped ``booked_at``) and effects. Every statement is made before
        any is queued; if one cannot be, nothing is, and the member's held state is dropped."""
        p, member = self.program, state.member
        # the rows held are the ledger's only under the member's lock (taken by ``lock``)
        held = self._held.get(member) if self._locked and self._member == member else None
        try:
            change, written = changes(state, held[2] if held is not None else None, touched)
            statements = [self._batch.mogrify(
                "INSERT INTO members (program, member, state, clock, rev) VALUES (%s, %s, %s::json, %s, 1) "
                "ON CONFLICT (program, member) DO UPDATE SET state = excluded.state, clock = excluded.clock, "
                "rev = members.rev + 1", (p, member, change.head.decode(), state.clock))]
            if change.whole:
                statements.append(self._batch.mogrify(
                    "DELETE FROM member_rows WHERE program = %s AND member = %s", (p, member)))
            if change.deleted:
                pairs = ", ".join(self._batch.mogrify("(%s, %s)", pair) for pair in change.deleted)
                statements.append(self._batch.mogrify(
                    f"DELETE FROM member_rows WHERE program = %s AND member = %s AND (part, pos) IN ({pairs})",
                    (p, member)))
            if change.put:
                rows = ", ".join(self._batch.mogrify("(%s, %s, %s, %s, %s)", (p, member, part, pos, body.decode()))
                                 for part, pos, body in change.put)
                statements.append(f"INSERT INTO member_rows (program, member, part, pos, body) VALUES {rows} "
                                  "ON CONFLICT (program, member, part, pos) DO UPDATE SET body = excluded.body")
            if entries:  # one multi-row INSERT for all of the event's ledger rows
                rows = ", ".join(self._batch.mogrify("(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", (
                    p, e.member, e.at, e.source, e.action, e.lot, e.amount, e.from_state, e.to_state, e.rule,
                    e.version, booked_at)) for e in entries)
                statements.append("INSERT INTO ledger (program, member, at, source, action, lot, amount, "
                                  f"from_state, to_state, rule, version, booked_at) VALUES {rows}")
            if effects:
                rows = ", ".join(self._batch.mogrify("(%s, %s, %s, %s, %s::json, %s)", (
                    p, f.member, f.type, f.at, _encode(f.detail).decode(), f.rule)) for f in effects)
                statements.append(f"INSERT INTO effects (program, member, type, at, detail, rule) VALUES {rows}")
        except BaseException:
            self._held.pop(member, None)   # its rows may have moved on in memory (rows.changes)
            raise
        self._queue.extend(statements)
        self._hold_written(member, held, state, written)

    def _hold_written(self, member: str, held: Optional[tuple[int, MemberState, Optional[Written]]],
                      state: MemberState, written: Written) -> None:
        """After queueing a write of ``member``'s state (its rev raised by one): hold what was
        written, where the rev before it was known (``held``); else hold nothing of the member."""
        if held is not None:
            self._held[member] = (held[0] + 1, state, written)
        else:
            self._held.pop(member, None)

    def book(self, state, entries, effects, booked_at) -> None:
        """A close's writes for one member (no event row), in the member's transaction: the caller
        holds its lock (``lock``) and commits."""
        if self._chunk is not None:
            raise StoreError(f"{self.name}: a close cannot book inside a replay chunk")
        with self._guard():
            self._tx(state.member)
            self._queue_book(state, entries, effects, booked_at)
        self._state = state if self._locked else _UNKNOWN

    def record_close(self, through, booked_at, snapshot) -> None:
        with self._guard():
            self._end()
            self._queue.append("BEGIN")
            self._member = ""   # a transaction is open: ``commit`` ends it
            row = {"through": through.isoformat(), "booked_at": booked_at.isoformat(), "snapshot": snapshot}
            self._q("INSERT INTO meta (program, key, value) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    (self.program, f"close:{booked_at.isoformat()}", _encode(row).decode()))

    def closes(self) -> list[dict]:
        with self._guard():
            self._sync()
            rows = self.conn.execute("SELECT value FROM meta WHERE program = %s AND key LIKE 'close:%%'",
                                     (self.program,)).fetchall()
        out = []
        for (value,) in rows:
            row = msgspec.json.decode(value)
            out.append({"through": datetime.fromisoformat(row["through"]),
                        "booked_at": datetime.fromisoformat(row["booked_at"]), "snapshot": row["snapshot"]})
        return sorted(out, key=lambda row: row["booked_at"])

    def reject(self, event_id, member, reason, digest=None) -> None:
        if event_id is None:
            return
        member = member or ""
        chunk = self._chunk
        if chunk is not None:
            key = (member, event_id)
            if chunk.status(key) is None:  # an applied event stays applied; the first refusal is kept
                chunk.refused[key] = (reason, digest)
            return
        with self._guard():
            self._tx(member)
            # the first refusal keeps its reason and fingerprint
            self._q("INSERT INTO events (program, member, id, status, reason, digest) "
                    "VALUES (%s, %s, %s, 'rejected', %s, %s) ON CONFLICT (program, member, id) DO NOTHING",
                    (self.program, member, event_id, reason, digest))

    def refusal(self, event_id):
        member = self._member or ""
        chunk = self._chunk
        if chunk is not None and member in chunk.states:
            key = (member, event_id)
            if key in chunk.refused:
                reason, digest = chunk.refused[key]
                return digest, reason
            row = chunk.known.get(key)
            refused = row is not None and row[0] == "rejected" and key not in chunk.applied
            return (row[1], row[2]) if refused else None
        with self._guard():
            rows = self._send(("SELECT digest, reason FROM events WHERE program = %s AND member = %s AND id = %s "
                               "AND status = 'rejected'", (self.program, member, event_id)))
        row = rows[0][0] if rows and rows[0] else None
        return (row[0], row[1]) if row else None

    def members(self) -> Iterator[str]:
        with self._guard():
            self._sync()
            rows = self.conn.execute(
                'SELECT member FROM members WHERE program = %s AND state IS NOT NULL ORDER BY member COLLATE "C"',
                (self.program,)).fetchall()
        return (row[0] for row in rows)

    def effects(self) -> list[dict]:
        with self._guard():
            self._sync()
            rows = self.conn.execute(
                "SELECT member, type, at, detail::text, rule FROM effects WHERE program = %s ORDER BY seq",
                (self.program,)).fetchall()
        return [{"type": t, "member": m, "at": a, "detail": msgspec.json.decode(d), "rule": r} for m, t, a, d, r in rows]

    def entries(self, member: str) -> list[Entry]:
        with self._guard():
            self._sync()
            rows = self.conn.execute(
                "SELECT member, at, source, action, lot, amount, from_state, to_state, rule, version, booked_at "
                "FROM ledger WHERE program = %s AND member = %s ORDER BY seq", (self.program, member)).fetchall()
        return [Entry(member=r[0], at=r[1], source=r[2], action=r[3], lot=r[4], amount=r[5], from_state=r[6],
                      to_state=r[7], rule=r[8], version=r[9], booked_at=r[10]) for r in rows]

    def event_bodies(self, member: str) -> list[Optional[bytes]]:
        with self._guard():
            self._sync()
            rows = self.conn.execute(
                "SELECT body FROM events WHERE program = %s AND member = %s AND status = 'applied' ORDER BY seq",
                (self.program, member)).fetchall()
        return [row[0].encode() if row[0] is not None else None for row in rows]

    def last_time(self) -> Optional[str]:
        # The latest member clock: clocks only move forward, so this is the time of the last event
        # or happening applied, as SQLite's meta 'last_at' (kept here without a program-wide row
        # that every transaction would have to update).
        with self._guard():
            self._sync()
            row = self.conn.execute("SELECT max(clock) FROM members WHERE program = %s", (self.program,)).fetchone()
        last: Optional[datetime] = row[0] if row else None
        return last.isoformat() if last is not None else None
