"""Issue 17, the holes in and around the stores: an event id applied once across the ledger on every
store (item 2), bad text that never reaches a store (item 10), store faults said plainly with exit 1
(item 13), and input that is no events file at all (item 15).

Expected figures are worked by hand from the andest program (docs/RULES.md): a registration grants
500 points (AND-4), nothing else happens without an order.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from engine.format.loader import load_program
from engine.run.lines import MAX_LINE_BYTES, event_lines
from engine.run.runner import Runner
from engine.shell.cli import cli
from engine.store import MemoryStore, open_store
from engine.store.base import StoreError
from engine.store.postgres import MIGRATIONS, migrate
from engine.store.sqlite import SQLiteStore
from tests.test_stores import PG_URL, another_schema, pg_rows

ROOT = Path(__file__).resolve().parent.parent
ANDEST = ROOT / "programs" / "andest.yaml"
PROGRAM = load_program(ANDEST)
AT = "2025-01-05T10:00:00+09:00"
REGISTRATION_GRANT = 500     # AND-4: 500 points on registering


def registered(event_id: str, member: str, at: str = AT) -> bytes:
    return json.dumps({"id": event_id, "type": "member.registered", "at": at, "member": member}).encode()


def valid_points(store, member: str) -> int:
    state = store.load(member)
    return 0 if state is None else sum(lot.amount for lot in state.lots if lot.state in ("valid", "pending"))


def stores(tmp_path: Path):
    yield "memory", MemoryStore(PROGRAM.id)
    yield "sqlite", open_store(str(tmp_path / "ledger.db"), PROGRAM.id)
    if PG_URL:
        with another_schema() as url:
            yield "postgresql", open_store(url, PROGRAM.id)


# -- item 2: an event id is applied once across the ledger ----------------------------------------

def test_hole17_02_the_same_id_for_two_members_is_skipped_the_second_time_on_every_store(tmp_path):
    """CONTRACT: ids are unique across the ledger. e1 registers m1 (+500, AND-4); e1 again for m2 is
    skipped, so m2 does not exist and holds 0; m3 under its own id gets its 500. Every store alike."""
    for kind, store in stores(tmp_path):
        result = Runner(PROGRAM, store).run([registered("e1", "m1"), registered("e1", "m2"),
                                             registered("e3", "m3")])
        assert (result.applied, result.skipped) == (["e1", "e3"], ["e1"]), kind
        assert (valid_points(store, "m1"), valid_points(store, "m2"), valid_points(store, "m3")) == \
            (REGISTRATION_GRANT, 0, REGISTRATION_GRANT), kind
        # a second run (a new runner, nothing cached) skips all three
        again = Runner(PROGRAM, store).run([registered("e1", "m2"), registered("e3", "m3")])
        assert (again.applied, again.skipped) == ([], ["e1", "e3"]), kind
        store.close()


@pytest.mark.skipif(not PG_URL, reason="LOYALTY_PG_URL is not set")
def test_hole17_02_a_postgresql_ledger_that_applied_an_id_twice_stops_its_upgrade_naming_the_id():
    """A ledger written before migration 5 (ids unique per member) that holds e1 applied for m1 and
    for m2: the upgrade refuses to guess which stands and names andest:e1; a clean one upgrades."""
    with another_schema() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                         "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            for version, title, statements in MIGRATIONS[:4]:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, title))
            for member in ("m1", "m2"):
                conn.execute("INSERT INTO events (program, member, id, type, at, status) "
                             "VALUES ('andest', %s, 'e1', 'member.registered', now(), 'applied')", (member,))
        with psycopg.connect(url) as conn, pytest.raises(psycopg.Error, match="andest:e1"):
            migrate(conn)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM events WHERE member = 'm2'")
        with psycopg.connect(url) as conn:
            assert migrate(conn) == [v for v, _, _ in MIGRATIONS[4:]]   # 5 and those after it
        assert pg_rows(url, "SELECT program, id, member FROM event_ids") == [("andest", "e1", "m1")]


# -- item 10: bad text never reaches a store -----------------------------------------------------

def test_hole17_10_a_lone_surrogate_id_is_refused_escaped_and_later_events_go_on_on_every_store(tmp_path):
    """A line whose id is a lone surrogate (written \\ud800, as JSON allows) and one with NUL in a
    grant's reason are refused; the registration after them is applied (+500); a rerun skips it
    and refuses the two again, the ledger readable throughout."""
    bad_id = b'{"id": "e\\ud800", "type": "member.registered", "at": "2025-01-05T10:00:00+09:00", "member": "m9"}'
    nul_reason = json.dumps({"id": "g1", "type": "points.granted", "at": AT, "member": "m1", "amount": 5,
                             "reason": "a\u0000b"}).encode()
    lines = [registered("r1", "m1"), bad_id, nul_reason, registered("r2", "m2")]
    for kind, store in stores(tmp_path):
        for attempt in range(2):
            result = Runner(PROGRAM, store).run(lines)
            assert [r["event"] for r in result.rejected] == ["e\\ud800", "g1"], kind
            assert result.rejected[0]["field"] == "id" and result.rejected[1]["field"] == "reason", kind
            assert result.applied == ([] if attempt else ["r1", "r2"]), kind
        assert valid_points(store, "m1") == REGISTRATION_GRANT and valid_points(store, "m2") == REGISTRATION_GRANT
        assert store.load("m9") is None
        store.close()


# -- item 13: store faults are said plainly, exit 1 -----------------------------------------------

def run(*args: str):
    return CliRunner().invoke(cli, ["run", str(ANDEST), *args])


def events_file(tmp_path: Path, *lines: bytes) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_hole17_13_a_full_disk_is_a_store_error_and_the_ledger_stays_readable(tmp_path):
    """SQLite's size limit stands in for a full disk: the batch fails with the cause said (not "no
    transaction is active"), nothing of it is written, and the ledger opens again and takes the
    same events once there is room: all 485 of the example's events applied, none twice."""
    lines = (ROOT / "examples" / "andest" / "events.jsonl").read_bytes().splitlines()
    store = SQLiteStore(str(tmp_path / "full.db"), PROGRAM.id)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count={pages + 3}")
    with pytest.raises(StoreError, match="the disk is full") as caught:
        Runner(PROGRAM, store).run(lines)
    assert "no transaction is active" not in str(caught.value)
    store.close()
    store = SQLiteStore(str(tmp_path / "full.db"), PROGRAM.id)
    assert list(store.members()) == []               # the failed batch left nothing behind
    result = Runner(PROGRAM, store).run(lines)
    assert (len(result.applied), len(result.skipped)) == (len(lines), 0)
    assert Runner(PROGRAM, store).run(lines).skipped == [json.loads(line)["id"] for line in lines]
    store.close()


def test_hole17_13_a_read_only_ledger_is_a_store_error_with_exit_1(tmp_path, monkeypatch):
    """A ledger that cannot be written (opened read-only, as a read-only file or an immutable one
    is): exit 1 with "read-only" and the file named, no traceback; its 500 points stay as they were."""
    db = tmp_path / "ro.db"
    assert run(str(events_file(tmp_path, registered("r1", "m1"))), "--db", str(db)).exit_code == 0
    connect = sqlite3.connect

    def read_only(path, *args, **kwargs):
        return connect(f"file:{path}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr("engine.store.sqlite.sqlite3.connect", read_only)
    out = run(str(events_file(tmp_path, registered("r2", "m2"))), "--db", str(db))
    monkeypatch.undo()
    assert out.exit_code == 1, out.output
    assert "read-only" in out.output and str(db) in out.output and "Traceback" not in out.output
    store = SQLiteStore(str(db), PROGRAM.id)
    assert (valid_points(store, "m1"), store.load("m2")) == (REGISTRATION_GRANT, None)
    store.close()


def test_hole17_13_an_immutable_ledger_file_is_a_store_error_with_exit_1(tmp_path):
    """The same with the real thing where the machine allows it (chattr +i, even root cannot write)."""
    db = tmp_path / "im.db"
    assert run(str(events_file(tmp_path, registered("r1", "m1"))), "--db", str(db)).exit_code == 0
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        out = CliRunner().invoke(cli, ["run", str(ANDEST), str(events_file(tmp_path, registered("r2", "m2"))),
                                       "--db", str(db)])
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert out.exit_code == 1, out.output
    assert "read-only" in out.output and "Traceback" not in out.output


@pytest.mark.parametrize("content, said", [
    (b"hello, not a database\n" * 100, "not a usable SQLite ledger"),
    (None, "a SQLite database of another application (tables: orders)"),
])
def test_hole17_13_a_file_that_is_no_ledger_is_refused_and_left_as_it_was(tmp_path, content, said):
    """A text file, or another application's SQLite database, given as --db: exit 1 naming the file,
    and the file is not touched (no loyalty tables added to someone else's database)."""
    db = tmp_path / "other.db"
    if content is None:
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE orders (id INTEGER)")
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    out = run(str(events_file(tmp_path, registered("r1", "m1"))), "--db", str(db))
    assert out.exit_code == 1 and said in out.output and str(db) in out.output, out.output
    assert db.read_bytes() == before


def test_hole17_13_a_ledger_of_another_program_is_refused(tmp_path):
    db = tmp_path / "andest.db"
    assert run(str(events_file(tmp_path, registered("r1", "m1"))), "--db", str(db)).exit_code == 0
    out = CliRunner().invoke(cli, ["run", str(ROOT / "programs" / "ansage.yaml"),
                                   str(events_file(tmp_path, registered("r2", "m2"))), "--db", str(db)])
    assert out.exit_code == 1 and "holds the ledger of program 'andest', not 'ansage'" in out.output


# -- item 15: input that is no events file ----------------------------------------------------------

def test_hole17_15_a_line_over_the_bound_is_refused_by_number_and_reading_goes_on(tmp_path):
    """Line 2 is 3 MiB of 'a': refused as over 1 MiB by its number; lines 1 and 3 (two
    registrations) apply, +500 each; also with --jobs 2, which hands no worker the long line."""
    events = events_file(tmp_path, registered("r1", "m1"), b"a" * (3 * MAX_LINE_BYTES), registered("r2", "m2"))
    for jobs in ("1", "2"):
        out = run(str(events), "--db", str(tmp_path / f"j{jobs}.db"), "--json", "--jobs", jobs)
        assert out.exit_code == 1, out.output
        report = json.loads(out.stdout)
        assert [r["line"] for r in report["rejected"]] == [2]
        assert "longer than 1,048,576 bytes" in report["rejected"][0]["reason"]
        assert report["applied"] == 2
        assert {m: v["points"]["valid"] + v["points"]["pending"] for m, v in report["members"].items()} == \
            {"m1": REGISTRATION_GRANT, "m2": REGISTRATION_GRANT}


def test_hole17_15_the_reader_holds_at_most_the_bound_of_a_line():
    """A 'line' of 5 MiB comes as one refusal, read in steps, then the next line as it is."""
    import io

    stream = io.BytesIO(b"x" * (5 * MAX_LINE_BYTES) + b"\n" + b"{}\n")
    got = list(event_lines(stream))
    assert len(got) == 2 and not isinstance(got[0], bytes) and got[1] == b"{}\n"
    exactly = io.BytesIO(b"y" * MAX_LINE_BYTES + b"\n")
    assert list(event_lines(exactly)) == [b"y" * MAX_LINE_BYTES + b"\n"]


def test_hole17_15_random_bytes_and_a_device_end_with_exit_1_not_a_hang(tmp_path):
    """3 MB of random bytes: every 'line' refused as malformed or over-long, exit 1; /dev/urandom
    itself is not a regular file and is said to be so."""
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(256)) * 12_000)
    out = run(str(noise), "--db", str(tmp_path / "n.db"), "--json")
    assert out.exit_code == 1 and json.loads(out.stdout)["applied"] == 0
    out = run("/dev/urandom", "--db", str(tmp_path / "u.db"))
    assert out.exit_code == 1 and "not a regular file" in out.output
