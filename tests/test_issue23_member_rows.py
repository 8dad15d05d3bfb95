"""Issue 23 (events throughput) and issue 19 (an event costs what it touches): a member's state is
stored as a head and rows (engine/store/rows.py), and saving writes only the rows an event
changed. What is read back must be the state that was saved, exactly, down to the order of its
lists and dicts, whatever the core did to them; and a ledger written whole by the engine before
(schema 2) reads the same and is stored in rows when its member next changes.
"""
from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from engine import Engine
from engine.model.state import Lot, MemberState
from engine.store.codec import encode_state
from engine.store import open_store
from engine.store.rows import changes, nothing_written, state_of
from tests.helpers import pg_states
from tests.test_stores import pg_rows, pg_url  # noqa: F401  (pg_url: the fixture pg_ledger asks for)

ROOT = Path(__file__).resolve().parent.parent
ANDEST = ROOT / "programs" / "andest.yaml"
JST = timezone(timedelta(hours=9))
T0 = datetime(2025, 1, 1, tzinfo=JST)


def _lot(n: int, amount: int = 10) -> Lot:
    return Lot(id=f"l{n}", amount=amount, state="valid", granted_at=T0, rule="AND-1", version=1, source=f"e{n}", seq=n)


class _Rows:
    """A stand-in for a ledger's member_rows table: (part, position) -> body, written by the
    changes the way the stores write them (whole: every row deleted; then the deletes; then puts)."""

    def __init__(self) -> None:
        self.head = b""
        self.rows: dict[tuple[int, int], bytes] = {}

    def write(self, change) -> None:
        self.head = change.head
        if change.whole:
            self.rows.clear()
        for key in change.deleted:
            self.rows.pop(key)     # a delete names a row that is there
        for part, pos, body in change.put:
            self.rows[(part, pos)] = body

    def read(self):
        return state_of(self.head, [(p, q, b) for (p, q), b in sorted(self.rows.items())], None)


def _empty_state() -> MemberState:
    return msgspec.json.decode(b'{"member":"m","layout":1,"open_balance":[0,0,0,0,null],'
                               b'"counted":{"placed":{},"shipped":{}}}', type=MemberState)


# one operation on the lots list, as the core does them (engine/core/journal.py), or a reordering
_OPS = st.lists(st.tuples(st.sampled_from(["append", "put", "remove", "swap", "insert", "same"]),
                          st.integers(0, 1000)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS, saves=st.lists(st.integers(1, 6), min_size=1, max_size=8))
def test_rows_read_back_as_the_state_saved_whatever_the_list_operations(ops, saves):
    """Every sequence of appends, replacements in place, removals, swaps and insertions, saved
    after any number of operations, reads back as the very list (by value and order)."""
    state = _empty_state()
    rows = _Rows()
    written = nothing_written()
    made = 0
    cuts = [min(sum(saves[:i + 1]), len(ops)) for i in range(len(saves))] + [len(ops)]
    done = 0
    for cut in cuts:
        for op, k in ops[done:cut]:
            lots = state.lots
            if op == "append" or not lots:
                made += 1
                lots.append(_lot(made))
            elif op == "put":
                i = k % len(lots)
                lots[i] = msgspec.structs.replace(lots[i], amount=lots[i].amount + 1)
            elif op == "remove":
                state.closed.append(msgspec.structs.replace(lots.pop(k % len(lots)), state="used"))
            elif op == "swap":
                i = k % len(lots)
                lots[0], lots[i] = lots[i], lots[0]
            elif op == "insert":
                made += 1
                lots.insert(k % len(lots), _lot(made))
            else:
                i = k % len(lots)
                lots[i] = msgspec.structs.replace(lots[i])   # an equal lot, not the same object
        done = cut
        change, written = changes(state, written)
        rows.write(change)
        back, _ = rows.read()
        assert back.lots == state.lots and back.closed == state.closed
        assert encode_state(back) == encode_state(state)


_JOURNAL_OPS = st.lists(st.tuples(st.sampled_from(["append", "put", "remove", "set_new", "set_old", "pop", "close"]),
                                  st.integers(0, 1000)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(_JOURNAL_OPS, min_size=1, max_size=5), refused=st.lists(st.booleans(), max_size=5))
def test_rows_follow_the_journal_s_changes_in_place(batches, refused):
    """The journal's path (engine/store/rows.py ``_replayed``): the changes an event makes in
    place through its journal (engine/core/journal.py: append, put, remove_at on the lot lists;
    set, pop on the orders), a batch of several events saved at once, refused events rolled back
    (their changes never reach the store): the rows read back are the state, by value and order."""
    from engine.core.journal import Journal
    from engine.model.state import Order
    from engine.store.rows import merged

    def order(key: str, n: int) -> Order:
        return Order(id=key, placed_at=T0, event=key, course="one_off", guest=False, payment_method="card",
                     version=1, lines=(), kept_ex=n, kept_incl=n)

    state = _empty_state()
    rows = _Rows()
    written = nothing_written()
    made = 0
    for b, batch in enumerate(batches):
        touched = None
        for e, event_ops in enumerate([batch[:len(batch) // 2], batch[len(batch) // 2:]]):
            journal = Journal(state)
            for op, k in event_ops:
                lots, orders = state.lots, state.orders
                made += 1
                if op == "append" or (not lots and op in ("put", "remove", "close")):
                    journal.append(lots, _lot(made))
                elif op == "put":
                    i = k % len(lots)
                    journal.put(lots, i, msgspec.structs.replace(lots[i], amount=lots[i].amount + 1))
                elif op == "remove":
                    journal.remove_at(lots, k % len(lots))
                elif op == "close":
                    i = k % len(lots)
                    closing = lots[i]
                    journal.remove_at(lots, i)
                    journal.append(state.closed, msgspec.structs.replace(closing, state="used"))
                elif op == "set_old" and orders:
                    key = list(orders)[k % len(orders)]
                    journal.set(orders, key, order(key, made))
                elif op == "pop" and orders:
                    journal.pop(orders, list(orders)[k % len(orders)])
                else:
                    journal.set(orders, f"o{made}", order(f"o{made}", made))
            if refused[(b + e) % len(refused)] if refused else False:
                journal.rollback()       # refused: as if it never happened
            else:
                touched = merged(touched, journal.touched())
        change, written = changes(state, written, touched)
        rows.write(change)
        back, _ = rows.read()
        assert encode_state(back) == encode_state(state)
        assert list(back.orders) == list(state.orders)


def test_the_journal_tells_what_an_event_did_to_the_sequences():
    """Journal.touched: an order placed sets its order and appends its pending lot; a refused
    event (rolled back) has touched nothing; a sequence the core replaced is not known (None)."""
    from engine.core.apply import apply
    from engine.format.loader import load_program
    from engine.model.events import decode_event

    program = load_program(ANDEST)
    rng = random.Random(1)
    reg = apply(program, None, decode_event(msgspec.json.encode(
        {"id": "r", "type": "member.registered", "at": T0.isoformat(), "member": "m1"})))
    state = reg.state
    outcome = apply(program, state, decode_event(msgspec.json.encode(_placed(1, "m1", rng))))
    touched = outcome.touched()
    n = len(state.lots) - 1
    assert touched == {"orders": [("set", "om11")], "lots": [("append", n)]}
    outcome.undo()
    assert outcome.touched() is None
    from engine.core.journal import Journal
    journal = Journal(state)
    state.closed = []                      # a sequence put in place of another: not followed
    assert journal.touched() == {"closed": None}
    journal.rollback()


def _placed(n: int, member: str, rng: random.Random, redeem=None) -> dict:
    event = {"id": f"p{member}{n}", "type": "order.placed", "at": (T0 + timedelta(hours=n)).isoformat(),
             "member": member, "order": f"o{member}{n}", "course": rng.choice(["one_off", "subscription"]),
             "payment": {"method": "credit_card"},
             "lines": [{"sku": rng.choice(["A", "B", "C"]), "qty": rng.randint(1, 3), "unit_price": rng.choice([900, 5000]),
                        "tax_rate": 0.10}]}
    if redeem is not None:
        event["redeem"] = {"points": redeem}
    return event


def _life(seed: int, members: int = 3, n: int = 60) -> list[dict]:
    """Registrations, then orders placed, shipped, some cancelled or returned and some paid with
    points, across a few members (so the core appends, replaces and removes lots and orders)."""
    rng = random.Random(seed)
    events = [{"id": f"r{m}", "type": "member.registered", "at": T0.isoformat(), "member": f"m{m}"} for m in range(members)]
    placed: list[tuple[str, str, int]] = []
    for i in range(1, n + 1):
        member = f"m{rng.randrange(members)}"
        roll = rng.random()
        at = (T0 + timedelta(hours=i)).isoformat()
        if roll < 0.45 or not placed:
            events.append(_placed(i, member, rng, rng.choice([None, None, "max", 100])))
            placed.append((member, f"o{member}{i}", i))
        else:
            m, order, _ = placed.pop(rng.randrange(len(placed)))
            kind = "order.shipped" if roll < 0.8 else "order.cancelled"
            events.append({"id": f"x{i}", "type": kind, "at": at, "member": m, "order": order})
    return events


def _states(engine: Engine) -> dict[str, bytes]:
    store = engine.store
    return {m: encode_state(store.load(m)) for m in store.members()}


@pytest.mark.parametrize("seed", range(6))
def test_X_4_sqlite_rows_give_the_memory_store_s_states_event_by_event_and_after_reopening(tmp_path, seed):
    """X-4 (the same events always give the same ledger): a SQLite ledger committing after every
    event, reopened halfway and at the end, holds exactly the states the memory store holds."""
    events = _life(seed)
    memory = Engine(ANDEST)
    path = str(tmp_path / "l.db")
    disk = Engine(ANDEST, path)
    for i, event in enumerate(events):
        memory.apply(event)
        disk.apply(event)
        if i == len(events) // 2:
            disk.store.close()
            disk = Engine(ANDEST, path)
    expected = _states(memory)
    assert _states(disk) == expected
    disk.store.close()
    assert _states(Engine(ANDEST, path)) == expected


def test_a_member_written_whole_before_rows_is_read_and_then_stored_in_rows(tmp_path):
    """A schema-2 ledger keeps a member's whole state in its members row: it reads the same, and
    the member's next event stores it as a head and rows, with the same state after."""
    path = str(tmp_path / "old.db")
    rng = random.Random(3)
    events = [{"id": "r", "type": "member.registered", "at": T0.isoformat(), "member": "m1"}]
    events += [_placed(i, "m1", rng) for i in range(1, 6)]
    e = Engine(ANDEST, path)
    e.apply_many(events[:-1])
    state = e.store.load("m1")
    e.store.close()
    db = sqlite3.connect(path)    # as the engine before rows stored it: the state whole, no rows
    db.execute("UPDATE members SET state=? WHERE member='m1'", (encode_state(state),))
    db.execute("DELETE FROM member_rows")
    db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.commit()
    db.close()
    old = Engine(ANDEST, path)
    assert encode_state(old.store.load("m1")) == encode_state(state)
    assert old.store.schema_state()[0]
    old.apply(events[-1])
    old.store.close()
    memory = Engine(ANDEST)
    memory.apply_many(events)
    db = sqlite3.connect(path)
    parts = dict(db.execute("SELECT part, count(*) FROM member_rows WHERE member='m1' GROUP BY part").fetchall())
    head = db.execute("SELECT state FROM members WHERE member='m1'").fetchone()[0]
    db.close()
    assert parts[0] == 5                 # five orders, one row each
    assert b'"orders":{}' in head        # and none left in the head
    assert _states(Engine(ANDEST, path)) == _states(memory)


def test_an_event_writes_the_rows_it_changed_not_the_member_s_history(tmp_path):
    """The point of rows: a member with 200 orders placing one more writes that order's row and
    its new lot's (two rows and the head), not 200 orders again."""
    path = str(tmp_path / "l.db")
    rng = random.Random(5)
    e = Engine(ANDEST, path)
    e.apply({"id": "r", "type": "member.registered", "at": T0.isoformat(), "member": "m1"})
    e.apply_many([_placed(i, "m1", rng) for i in range(1, 201)])
    e.store.close()
    e = Engine(ANDEST, path)
    e.apply(_placed(201, "m1", rng))   # read from the ledger: its rows are known from that read
    db = e.store.db
    puts = []
    db.set_trace_callback(puts.append)
    e.apply(_placed(202, "m1", rng))
    db.set_trace_callback(None)
    writes = [s for s in puts if "member_rows" in s and not s.lstrip().upper().startswith("SELECT")]
    assert len(writes) == 2 and all(s.startswith("INSERT OR REPLACE INTO member_rows") for s in writes)
    # shipping the first order (AND-1: its pending points turn valid) rewrites that order's row and
    # its lot's, nothing else of the 200
    puts.clear()
    db.set_trace_callback(puts.append)
    e.apply({"id": "s1", "type": "order.shipped", "at": (T0 + timedelta(hours=300)).isoformat(), "member": "m1",
             "order": "om11"})
    db.set_trace_callback(None)
    writes = [s for s in puts if "member_rows" in s and not s.lstrip().upper().startswith("SELECT")]
    assert len(writes) == 2
    assert "VALUES ('m1',0,1024," in writes[0] and "VALUES ('m1',1," in writes[1]   # the first order, one lot
    e.store.close()


# --- PostgreSQL: rows, and the states a process holds between transactions (by revision) ----------



@pytest.fixture
def pg_ledger(request):
    """A fresh PostgreSQL ledger (tests/test_stores.py's ``pg_url``: a schema of its own, dropped after)."""
    return request.getfixturevalue("pg_url")


def _pg_engines(url: str, n: int) -> list[Engine]:
    from engine.format.loader import load_program
    program = load_program(ANDEST)
    return [Engine(program, open_store(url, program.id, program.tz)) for _ in range(n)]


@pytest.mark.parametrize("seed", range(3))
def test_X_4_postgresql_two_processes_alternating_on_the_same_members_hold_no_stale_state(pg_ledger, seed):
    """X-4 (the same events always give the same ledger): two engines on one PostgreSQL ledger
    apply one stream's events in turn (each keeps the states it last read or wrote, by revision):
    every event sees what the other wrote before it, and the ledger ends with the memory store's
    states; a quote from either gives the same balance."""
    events = _life(seed, members=2, n=50)
    memory = Engine(ANDEST)
    engines = _pg_engines(pg_ledger, 2)
    rng = random.Random(seed)
    for event in events:
        memory.apply(event)
        engines[rng.randrange(2)].apply(event)
    expected = {m: encode_state(memory.store.load(m)) for m in memory.store.members()}
    got = {m: s for (_, m), s in pg_states(pg_ledger).items()}
    assert got == expected
    cart = {"id": "q", "type": "order.placed", "at": (T0 + timedelta(days=30)).isoformat(), "member": "m0",
            "order": "q", "course": "one_off", "payment": {"method": "credit_card"},
            "lines": [{"sku": "A", "qty": 1, "unit_price": 5000, "tax_rate": 0.10}], "redeem": {"points": "max"}}
    quotes = [e.quote(cart) for e in engines + [memory]]
    assert quotes[0] == quotes[1] == quotes[2]
    for e in engines:
        e.store.close()


def test_postgresql_an_event_writes_its_rows_and_raises_the_revision_by_one(pg_ledger):
    """The point of rows on PostgreSQL: a member with 60 orders placing one more adds two rows (its
    order, its pending lot) and raises ``rev`` by one; the head stays small."""
    e, = _pg_engines(pg_ledger, 1)
    rng = random.Random(9)
    e.apply({"id": "r", "type": "member.registered", "at": T0.isoformat(), "member": "m1"})
    e.apply_many([_placed(i, "m1", rng) for i in range(1, 61)])
    before_rev, = pg_rows(pg_ledger, "SELECT rev FROM members WHERE member = 'm1'")[0]
    before = pg_rows(pg_ledger, "SELECT part, pos, body FROM member_rows WHERE member = 'm1'")
    e.apply(_placed(61, "m1", rng))
    after_rev, head = pg_rows(pg_ledger, "SELECT rev, state::text FROM members WHERE member = 'm1'")[0]
    after = pg_rows(pg_ledger, "SELECT part, pos, body FROM member_rows WHERE member = 'm1'")
    assert after_rev == before_rev + 1
    assert set(before) < set(after) and len(after) - len(before) == 2
    assert len(head) < 3000
    e.store.close()


def test_postgresql_a_rolled_back_event_leaves_no_held_state_behind(pg_ledger):
    """A failure after the state changed in memory (the store refuses the write) drops what the
    process holds: the next event reads the member again and finds the ledger as committed."""
    from engine.store.base import StoreError
    e, = _pg_engines(pg_ledger, 1)
    rng = random.Random(4)
    e.apply({"id": "r", "type": "member.registered", "at": T0.isoformat(), "member": "m1"})
    e.apply_many([_placed(i, "m1", rng) for i in range(1, 4)])
    store = e.store
    real = store._queue_book

    def failing(*args, **kwargs):
        real(*args, **kwargs)
        store._q("SELECT 1/0")    # the database refuses the transaction after the state's writes
    store._queue_book = failing
    with pytest.raises(StoreError):
        e.apply(_placed(4, "m1", rng))
        store.commit()
    store._queue_book = real
    assert not store._held
    e.apply(_placed(5, "m1", rng))
    memory = Engine(ANDEST)
    rng = random.Random(4)
    memory.apply({"id": "r", "type": "member.registered", "at": T0.isoformat(), "member": "m1"})
    memory.apply_many([_placed(i, "m1", rng) for i in range(1, 4)])
    _placed(4, "m1", rng)
    memory.apply(_placed(5, "m1", rng))
    assert {m: s for (_, m), s in pg_states(pg_ledger).items()} == {"m1": encode_state(memory.store.load("m1"))}
    store.close()


def test_a_state_decoded_afresh_is_written_whole_not_matched_item_by_item():
    """A state a --jobs or cluster worker sends back is decoded afresh: none of its lots is an
    object the store wrote. It is written whole (every row deleted, then put), not placed item by
    item between neighbours it no longer has; and it reads back as sent."""
    state = _empty_state()
    state.lots = [_lot(n) for n in range(1, 50)]
    change, written = changes(state, nothing_written())
    rows = _Rows()
    rows.write(change)
    again = msgspec.json.decode(msgspec.json.encode(state), type=MemberState)
    again.lots.append(_lot(50))
    change, written = changes(again, written)
    assert change.whole and len(change.put) == 50
    rows.write(change)
    assert encode_state(rows.read()[0]) == encode_state(again)
