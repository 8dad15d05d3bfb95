"""Issue 19: the Store protocol's declared capabilities, its no-op defaults, and the one --db parser."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.format.loader import load_program, parse_program
from engine.model.errors import ProgramError
from engine.format import i18n
from engine.run.runner import Runner
from engine.store import MemoryStore, SQLiteStore, open_store, parse_db
from engine.store.base import RunStore, Store

ROOT = Path(__file__).resolve().parents[1]
ANDEST = ROOT / "programs" / "andest.yaml"
EVENTS = ROOT / "examples" / "andest" / "events.jsonl"


def test_issue19_parse_db_reads_each_kind_of_db_value(tmp_path, monkeypatch):
    for url in ("postgresql://u@h:5432/db", "postgres://u@h/db"):
        spec = parse_db(url)
        assert (spec.kind, spec.shared, spec.missing(), spec.absolute()) == ("postgresql", True, False, url)
    memory = parse_db(":memory:")
    assert (memory.kind, memory.shared, memory.missing(), memory.absolute()) == ("memory", False, False, ":memory:")
    path = tmp_path / "ledger.db"
    sqlite = parse_db(str(path))
    assert (sqlite.kind, sqlite.shared, sqlite.missing()) == ("sqlite", False, True)
    path.write_bytes(b"")
    assert not parse_db(str(path)).missing()
    monkeypatch.chdir(tmp_path)
    assert parse_db("ledger.db").absolute() == str(path.resolve())


def test_issue19_open_store_follows_parse_db(tmp_path):
    program = load_program(ANDEST)
    assert type(open_store(":memory:", program.id)) is MemoryStore
    store = open_store(str(tmp_path / "x.db"), program.id)
    assert type(store) is SQLiteStore
    store.close()


def test_issue19_stores_declare_their_capabilities(tmp_path):
    program = load_program(ANDEST)
    memory = MemoryStore(program.id)
    sqlite = SQLiteStore(str(tmp_path / "l.db"), program.id)
    # memory: a private ledger (the protocol's defaults); SQLite: one writer, chunks, sees other writers
    assert (memory.shared, memory.chunks, memory.sees_writers) == (False, False, False)
    assert (sqlite.shared, sqlite.chunks, sqlite.sees_writers) == (False, True, True)
    # issue 23: SQLite writes the rows an event changed, told by the event's journal; memory keeps states
    assert (memory.writes_changes, sqlite.writes_changes) == (False, True)
    assert Store in MemoryStore.__mro__ and Store in SQLiteStore.__mro__   # they subclass the protocol
    # the no-op defaults: nothing to open, nobody else writes, nothing to lock, no schema
    assert memory.begin() is False and memory.changed_by_others() is False
    assert memory.prefetch(["e1"]) is None and memory.lock_chunk([]) is None
    assert memory.schema_state() == (True, "MemoryStore: no schema")
    assert memory.event_types() == {}
    assert sqlite.schema_state() == (True, "SQLite schema version 3, this engine's 3")
    sqlite.close()


def test_issue19_lock_defaults_to_load():
    program = load_program(ANDEST)
    store = MemoryStore(program.id)
    Runner(program, store).run(EVENTS.read_bytes().splitlines())
    member = next(store.members())
    assert store.lock(member) is store.load(member)


class _Recording(RunStore):
    """A stand-in that declares ``chunks``: the runner must open each chunk and look its ids up at
    once, as it does for SQLite, without asking whether the methods exist."""
    chunks = True

    def __init__(self) -> None:
        self.inner = MemoryStore("andest")
        self.calls: list[tuple[str, int]] = []
        self.open = False

    def begin(self) -> bool:
        if self.open:
            return False      # as SQLite's: already open, nothing opened
        self.open = True
        self.calls.append(("begin", 0))
        return True

    def commit(self) -> None:
        self.open = False
        self.calls.append(("commit", 0))

    def prefetch(self, event_ids: list[str]) -> None:
        self.calls.append(("prefetch", len(event_ids)))

    def is_applied(self, event_id):
        return self.inner.is_applied(event_id)

    def load(self, member):
        return self.inner.load(member)

    def save(self, *args, **kwargs):
        self.inner.save(*args, **kwargs)

    def reject(self, *args, **kwargs):
        self.inner.reject(*args, **kwargs)

    def refusal(self, event_id):
        return self.inner.refusal(event_id)


def test_issue19_runner_chunks_a_store_that_declares_chunks():
    program = load_program(ANDEST)
    lines = [line for line in EVENTS.read_bytes().splitlines() if line.strip()]
    store = _Recording()
    result = Runner(program, store, batch=4).run(lines)
    plain = Runner(program, MemoryStore(program.id)).run(lines)
    assert result.applied == plain.applied and len(result.rejected) == len(plain.rejected)
    # ceil(n / 4) chunks, each: one transaction opened, one prefetch of its lines' ids (a line that
    # is no event has no id to look up), one commit; then the run's closing commit
    chunks = -(-len(lines) // 4)
    assert [c for c, _ in store.calls] == ["begin", "prefetch", "commit"] * chunks + ["commit"]
    assert sum(n for c, n in store.calls if c == "prefetch") <= len(lines)


def test_RC_6_convert_units_without_its_old_value_is_a_problem_not_a_crash():
    # RC-6's step `op: convert_units` needs `from_unit_value_yen`: without it the loader names the
    # step's `op` line (programs/rewards_circle.yaml:112, col 13) in both languages, where it used
    # to fail with a KeyError (the message's 'key' argument was taken for the position flag)
    text = (ROOT / "programs" / "rewards_circle.yaml").read_text(encoding="utf-8")
    assert text.count("        from_unit_value_yen: 1100\n") == 1
    with pytest.raises(ProgramError) as err:
        parse_program(text.replace("        from_unit_value_yen: 1100\n", ""), "rc.yaml")
    [p] = [p for p in err.value.problems if p.code == "migration.op_needs"]
    assert (p.pos.line, p.pos.col) == (112, 13)
    assert str(p) == "rc.yaml:112:13: op convert_units needs 'from_unit_value_yen'"
    assert i18n.format_problem(p, "ja") == "rc.yaml:112:13: op convert_units には 'from_unit_value_yen' が必要です"
