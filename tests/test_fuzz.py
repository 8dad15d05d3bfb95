"""Bad input (issue 9): fuzz the event reader, `loyalty run`, and the program loader.

Whatever arrives: random bytes, wrong types, huge numbers, extreme dates, deep nesting, thousands of
keys, YAML alias bombs, expressions reaching for Python internals. The engine answers with a clear
error of its own (BadEvent / EventRejected for an event, ProgramError with ``FILE:LINE:COL: message``
for a program) and never a traceback, never a hang (every input is timed and interrupted past a
bound), never a ledger change for a refused event.

Profiles: the default (CI) tries a few hundred inputs; ``LOYALTY_RELIABILITY=long`` tens of thousands.
"""
from __future__ import annotations

import json
import re
import resource
import signal
import sqlite3
import subprocess
import time
import tracemalloc
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from unittest import mock

import msgspec
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import engine.shell.loading
from engine.shell.cli import cli
from engine.model.errors import EventRejected, ProgramError
from engine.model.events import BadEvent, decode_event
from engine.format.loader import load_program, parse_program
from engine.run.runner import RunResult, Runner
from engine.store.memory import MemoryStore
from tests.test_faults import loyalty
from tests.test_invariants import LONG, PHASES, check_member, write_stats
from tests.helpers import sqlite_states

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("andest", "ansage", "amare", "rewards_circle", "manda")
N = (lambda ci, long: long if LONG else ci)
PER_INPUT_SECONDS = 5        # "never a hang": any one input past this is a failure
STATS: dict = defaultdict(Counter)
POSITION = re.compile(r"^f\.yaml:\d+:\d+: \S")


@pytest.fixture(scope="module", autouse=True)
def _figures():
    started = time.perf_counter()
    yield
    write_stats("fuzz", STATS, time.perf_counter() - started)


class Hang(Exception):
    pass


@contextmanager
def bounded(seconds: float = PER_INPUT_SECONDS):
    """Interrupt the block once it has used ``seconds`` of CPU (SIGPROF; tests run in the main
    thread). CPU time, not wall time: a loaded CI machine must not turn slowness into a failure,
    while a real hang (a loop, a blow-up) burns CPU and is caught."""

    def expire(signum, frame):
        raise Hang(f"no answer within {seconds} s of CPU")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@lru_cache(maxsize=None)
def program_of(name: str):
    return load_program(ROOT / "programs" / f"{name}.yaml")


# --- the event reader -----------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(10**30), 10**30), st.sampled_from([10**12, 10**12 + 1, -1, 0, 2**63, -(2**63) - 1, 10**400]),
    st.floats(allow_nan=False), st.text(max_size=50), st.sampled_from(["max", "", "x" * 300, "\u0000", "\ud7ff", "2025-02-30"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)), max_leaves=20)

instants = st.one_of(
    st.datetimes(timezones=st.sampled_from([None]) | st.timezones()).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31", "9999-12-31T23:59:59+09:00", "0001-01-01", "0001-01-01T00:00:00+09:00",
                     "0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59-23:59", "2025-02-30", "2025-13-01T00:00:00+09:00",
                     "2025-01-01T00:00:00", "2025-01-01T25:00:00+09:00", "2025-01-01T00:00:00+24:00",
                     "2025-06-01T10:00:00.123456789+09:00", "2025-06-01 10:00:00+09:00", "２０２５-０６-０１"]),
)

LINE = {"sku": "A", "qty": 1, "unit_price": 1000, "tax_rate": 0.10}
TEMPLATES = [
    {"type": "member.registered", "birthday": "1990-03-12", "attributes": {"insider": True}},
    {"type": "member.updated", "attributes": {"insider": False}},
    {"type": "order.placed", "order": "o2", "course": "one_off", "payment": {"method": "credit_card", "card_brand": "jcb"},
     "lines": [LINE], "redeem": {"points": "max"}, "shipping": 500, "coupon_discount": 100},
    {"type": "order.placed", "order": "o3", "course": "subscription", "payment": {"method": "bank_transfer"},
     "lines": [dict(LINE, pv=60)], "exchanges": [{"reward": "ssr_example_42", "qty": 1}], "fulfilment": "ship_now",
     "delivery_date": "2025-06-10"},
    {"type": "order.shipped", "order": "o1"}, {"type": "order.delivered", "order": "o1"},
    {"type": "order.cancelled", "order": "o1"}, {"type": "order.returned", "order": "o1", "lines": [{"sku": "A", "qty": 1}]},
    {"type": "subscription.started"}, {"type": "subscription.paused", "subscription": "main"},
    {"type": "subscription.resumed"}, {"type": "subscription.cancelled"},
    {"type": "review.posted", "product": "TEE"},
    {"type": "points.granted", "amount": 100, "reason": "x", "expires_on": "2025-12-31"},
    {"type": "points.held", "amount": 10, "reason": "x"}, {"type": "points.released", "amount": 10, "reason": "x"},
]


@st.composite
def mutated_events(draw) -> bytes:
    """A valid event of some type with one to three fields replaced, removed or added: wrong types,
    huge numbers, extreme or malformed times, nested junk."""
    event = {"id": "f1", "at": "2025-06-01T10:00:00+09:00", "member": "m1", **draw(st.sampled_from(TEMPLATES))}
    event = json.loads(json.dumps(event))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(event) + ["extra", "lines", "redeem", "payment"]))
        how = draw(st.sampled_from(["value", "value", "delete", "instant", "instant", "deep", "number"]))
        if how == "delete":
            event.pop(key, None)
        elif how == "instant":
            event[draw(st.sampled_from(["at", "birthday", "expires_on", "delivery_date"]))] = draw(instants)
        elif how == "number":
            target = draw(st.sampled_from(["amount", "qty", "unit_price", "shipping", "coupon_discount", "tax_rate",
                                           "pv", "points"]))
            value = draw(st.one_of(st.integers(-(10**20), 10**20), st.floats(), st.sampled_from([10**12, 10**12 + 1, 10**5 + 1])))
            if target in ("qty", "unit_price", "tax_rate", "pv"):
                event["lines"] = [dict(LINE, **{target: value})]
            elif target == "points":
                event["redeem"] = {"points": value}
            else:
                event[target] = value
        elif how == "deep":
            depth = draw(st.integers(10, 3000))
            event[key] = json.loads("[" * min(depth, 900) + "]" * min(depth, 900)) if depth <= 900 else None
            if depth > 900:
                raw = json.dumps(event).replace("null", "[" * depth + "]" * depth, 1)
                return raw.encode()
        else:
            event[key] = draw(json_values)
    return json.dumps(event).encode()


def raw_inputs():
    return st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        json_values.map(lambda v: json.dumps(v).encode()),
        mutated_events(), mutated_events(),
        st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),                        # deep nesting
        st.integers(1, 200_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.integers(1000, 20_000).map(lambda n: json.dumps(                                 # thousands of keys
            {"id": "k1", "type": "member.updated", "at": "2025-06-01", "member": "m1",
             "attributes": {f"k{i}": i for i in range(n)}}).encode()),
        st.integers(1000, 20_000).map(lambda n: json.dumps(
            dict({f"junk{i}": i for i in range(n)}, id="k2", type="points.granted", at="2025-06-01", member="m1",
                 amount=5, reason="x")).encode()),
        st.integers(300, 5000).map(lambda n: ('{"id":"big","type":"points.granted","at":"2025-06-01","member":"m1",'
                                              f'"amount":{"9" * n},"reason":"x"}}').encode()),   # huge numbers
        st.integers(300, 5000).map(lambda n: ('{"id":"f","type":"order.placed","at":"2025-06-01","member":"m1",'
                                              '"order":"o9","course":"one_off","payment":{"method":"credit_card"},'
                                              f'"lines":[{{"sku":"A","qty":1,"unit_price":1,"tax_rate":1e{n}}}]}}').encode()),
    )


SETUP = [
    {"id": "s1", "type": "member.registered", "at": "2025-05-01T10:00:00+09:00", "member": "m1", "birthday": "1990-03-12"},
    {"id": "s2", "type": "points.granted", "at": "2025-05-01T10:00:00+09:00", "member": "m1", "amount": 1000, "reason": "x"},
    {"id": "s3", "type": "subscription.started", "at": "2025-05-01T10:00:00+09:00", "member": "m1"},
    {"id": "s4", "type": "order.placed", "at": "2025-05-02T10:00:00+09:00", "member": "m1", "order": "o1",
     "course": "subscription", "payment": {"method": "credit_card"}, "lines": [dict(LINE, pv=60)]},
    {"id": "s5", "type": "order.shipped", "at": "2025-05-03T10:00:00+09:00", "member": "m1", "order": "o1"},
]


FOLLOW_UPS = [
    {"id": "after1", "type": "points.granted", "amount": 1, "reason": "x"},
    {"id": "after2", "type": "order.placed", "order": "after-o", "course": "subscription",
     "payment": {"method": "credit_card"}, "lines": [dict(LINE, pv=60)], "redeem": {"points": "max"}},
]


def ledger_with_a_member(name: str) -> tuple[MemoryStore, Runner]:
    store = MemoryStore(name)
    runner = Runner(program_of(name), store)
    result = runner.run(msgspec.json.encode(e) for e in SETUP)
    assert not result.rejected, result.rejected
    return store, runner


def snapshot(store: MemoryStore) -> bytes:
    return msgspec.json.encode([store.states, store.ledger, store.effect_rows, sorted(store.applied)])


@pytest.mark.parametrize("name", PROGRAMS)
def test_event_reader_and_runner_answer_every_input_with_their_own_errors(name):
    """decode_event gives an event or BadEvent (with a reason); an event gives applied or
    EventRejected; a refused input leaves the ledger exactly as it was."""

    @settings(max_examples=N(80, 6000), deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
    @given(raw=raw_inputs())
    def check(raw):
        STATS["event_reader"]["inputs"] += 1
        note(repr(raw[:300]))
        started = time.perf_counter()
        with bounded():
            try:
                event = decode_event(raw)
            except BadEvent as bad:
                STATS["event_reader"]["BadEvent"] += 1
                assert bad.reason and isinstance(bad.reason, str)
                assert bad.event_id is None or isinstance(bad.event_id, str)
                event = None
            store, runner = ledger_with_a_member(name)
            before = snapshot(store)
            result = RunResult()
            runner.apply_one(raw, result)       # the runner's own path: decode, apply, reject
        STATS["event_reader"]["max_ms"] = max(STATS["event_reader"]["max_ms"], int((time.perf_counter() - started) * 1000))
        if result.rejected:
            STATS["event_reader"]["rejected" if event is not None else "rejected_undecodable"] += 1
            assert result.rejected[0]["reason"]
            assert snapshot(store) == before, f"a refused input changed the ledger: {result.rejected}"
        else:
            STATS["event_reader"]["applied"] += 1
            for member, state in store.states.items():
                check_member(state, store.ledger.get(member, []), runner.program)
        # whatever was accepted, the member stays usable: its next ordinary events (a day later)
        # apply or are refused, they never raise
        member = event.member if event is not None else "m1"
        state = store.states.get(member)
        later = (state.clock if state is not None and state.clock else datetime(2025, 6, 1, tzinfo=timezone.utc))
        with bounded():
            for days, follow in enumerate(FOLLOW_UPS, 1):
                at = (later + timedelta(days=days)).isoformat()
                runner.apply_one(msgspec.json.encode(dict(follow, member=member, at=at)), RunResult())

    check()


@lru_cache(maxsize=None)
def _cached_load(path):
    return load_program(path)


def db_rows(db: Path) -> tuple:
    con = sqlite3.connect(db)
    try:
        return (list(sqlite_states(con).items()),
                con.execute("SELECT * FROM ledger ORDER BY seq").fetchall(),
                con.execute("SELECT id, status FROM events WHERE status='applied' ORDER BY id").fetchall())
    finally:
        con.close()


def junk_lines():
    return st.lists(st.one_of(st.binary(max_size=120).map(lambda b: b.replace(b"\n", b" ")), mutated_events(),
                              st.just(b"\xff\xfe\x00garbage"), st.just(b'{"id": 1}'), st.just(b"[" * 5000 + b"]" * 5000)),
                    min_size=1, max_size=8)


def test_loyalty_run_on_junk_files_exits_cleanly_and_keeps_the_ledger(tmp_path_factory):
    """`loyalty run` (in process, its click command) over files of junk lines: exit 0 or 1, a
    report, never an exception; when nothing applied, the ledger is byte for byte as before."""
    base = tmp_path_factory.mktemp("cli") / "base.db"
    setup = base.with_name("setup.jsonl")
    setup.write_bytes(b"\n".join(msgspec.json.encode(e) for e in SETUP) + b"\n")
    assert CliRunner().invoke(cli, ["run", str(ROOT / "programs" / "andest.yaml"), str(setup), "--db", str(base)]).exit_code == 0
    counter = [0]

    @settings(max_examples=N(15, 1000), deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
    @given(lines=junk_lines())
    def check(lines):
        counter[0] += 1
        STATS["loyalty_run"]["files"] += 1
        STATS["loyalty_run"]["lines"] += len(lines)
        db = base.with_name(f"l{counter[0]}.db")
        db.write_bytes(base.read_bytes())
        events = base.with_name(f"e{counter[0]}.jsonl")
        events.write_bytes(b"\n".join(lines) + b"\n")
        before = db_rows(db)
        with bounded(30), mock.patch.object(engine.shell.loading, "load_program", _cached_load):
            result = CliRunner().invoke(cli, ["run", str(ROOT / "programs" / "andest.yaml"), str(events), "--db", str(db), "--json"])
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
        report = json.loads(result.stdout)
        if report["applied"] == 0:
            assert db_rows(db) == before, "nothing applied, yet the ledger changed"
        db.unlink()
        events.unlink()

    check()


@pytest.mark.parametrize("kind", ["random-bytes", "deep-nesting", "huge-numbers", "thousands-of-keys", "extreme-dates"])
def test_the_loyalty_command_itself_on_bad_files(tmp_path, kind):
    """The installed command (its last net included): never a traceback, never 'internal error'."""
    import random

    rng = random.Random(kind)
    if kind == "random-bytes":
        lines = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b" ") for _ in range(50)]
    elif kind == "deep-nesting":
        lines = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]
    elif kind == "huge-numbers":
        lines = [('{"id":"h%d","type":"points.granted","at":"2025-06-01","member":"m1","amount":%s,"reason":"x"}'
                  % (i, n)).encode() for i, n in enumerate(["9" * 5000, "1e999", "-1", "1" + "0" * 12, "NaN", "Infinity"])]
    elif kind == "thousands-of-keys":
        lines = [json.dumps(dict({f"k{i}": i for i in range(20_000)}, id="t1", type="member.registered",
                                 at="2025-06-01", member="m9")).encode()]
    else:
        lines = [json.dumps({"id": f"d{i}", "type": "member.registered", "at": at, "member": f"x{i}"}).encode()
                 for i, at in enumerate(["9999-12-31", "9999-12-31T23:59:59+09:00", "0001-01-01T00:00:00+09:00",
                                         "0001-01-01", "2025-02-30"])]
    events = tmp_path / "bad.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    proc = subprocess.run([loyalty(), "run", str(ROOT / "programs" / "andest.yaml"), str(events), "--db",
                           str(tmp_path / "l.db"), "--json"], capture_output=True, timeout=120)
    STATS["loyalty_command"]["files"] += 1
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    assert "Traceback" not in out
    assert "internal error" not in out, out[-500:]
    assert proc.returncode in (0, 1), out[-500:]


# --- the program loader ---------------------------------------------------------------------------

def assert_clear(exc: ProgramError) -> None:
    assert exc.problems, "a ProgramError without problems"
    for problem in exc.problems:
        assert POSITION.match(str(problem)), f"not FILE:LINE:COL: message: {problem}"


def load_text(text: str | bytes):
    """parse_program, bounded in time; returns the Program or the ProgramError."""
    started = time.perf_counter()
    try:
        with bounded():
            return parse_program(text, "f.yaml")
    except ProgramError as exc:
        assert_clear(exc)
        return exc
    finally:
        STATS["loader"]["max_ms"] = max(STATS["loader"]["max_ms"], int((time.perf_counter() - started) * 1000))


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                         st.sampled_from(["2025-11-04", "Asia/Tokyo", "AND-1", "rolling", "tags", "max", "__class__"]))
yaml_docs = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["program", "name", "unit", "time_zone", "rules", "versions", "version", "effective_from", "earning",
         "rates", "when", "rate", "rule_id", "expiry", "kind", "x"]) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=25)


@settings(max_examples=N(100, 5000), deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
@given(text=st.one_of(st.text(max_size=400), st.binary(max_size=400),
                      yaml_docs.map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_loader_on_random_text_and_yaml(text):
    STATS["loader"]["random_documents"] += 1
    load_text(text)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


class WordKeys(yaml.SafeLoader):
    """PyYAML's safe loader with keys taken as written, as the engine reads them (engine/format/yamlpos.py):
    YAML 1.1 would read the key ``on`` (bonuses) as true, and a program written back from that
    would be refused for its key 'true' before any mutation is looked at."""

    def construct_mapping(self, node, deep=False):
        self.flatten_mapping(node)
        return {(key.value if isinstance(key, yaml.ScalarNode) else self.construct_object(key, deep=deep)):
                self.construct_object(value, deep=deep) for key, value in node.value}


def read_program(name: str):
    return yaml.load((ROOT / "programs" / f"{name}.yaml").read_text(encoding="utf-8"), Loader=WordKeys)  # noqa: S506


@lru_cache(maxsize=None)
def program_data(name: str):
    data = read_program(name)
    return data, tuple(p for p in _paths(data) if p)


ODD = st.one_of(yaml_scalars, st.sampled_from([0, -1, 10**12, 0.0, 1.5, 100, "2024-02-30", "9999-12-31", "0001-01-01",
                                               "2025-11-04", "", [], {}, "course == 'one_off'", "1e999",
                                               "'%0999999999d' % 1", "-" * 400 + "1", "attributes['x'] == True"]))


NAN, INF = float("nan"), float("inf")
# Time zones a marketer might write: far offsets, half hours, fixed-offset names, wrong case, none.
ODD_TIME_ZONES = ("Etc/GMT+12", "Etc/GMT-14", "Pacific/Kiritimati", "America/St_Johns", "Asia/Kathmandu", "+09:00",
                  "JST", "asia/tokyo", "Mars/Olympus", "", "Local", "../../etc/passwd", "Asia/Tokyo\x00", "EST5EDT",
                  # daylight saving that starts or ends at midnight (a bare date's 00:00 is missing
                  # or twice), 45-minute offsets, a skipped day (Apia, 2011-12-30)
                  "America/Havana", "America/Santiago", "Asia/Beirut", "America/Asuncion", "Pacific/Chatham",
                  "Pacific/Apia", "Australia/Lord_Howe", "Antarctica/Troll")


def like(value):
    """A value of the same kind as ``value``, chosen to be odd: 0, negative, huge; far dates; other
    rule ids, other expressions; a list emptied or doubled."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        # float-valued integers (500.0) and NaN / infinity too: refused at load (issue 17)
        return st.sampled_from([0, 1, -1, 2, 10**9, 10**12, value + 1, value - 1, value * 1000, float(value),
                                value + 0.5, NAN, INF])
    if isinstance(value, float):
        return st.sampled_from([0.0, 1.0, 0.5, 1e-9, 0.999, 2.0, 100.0, -0.01, NAN, INF, -INF])
    if isinstance(value, str):
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return st.sampled_from(["1970-01-01", "2025-11-04", "2199-12-31", "9999-12-31", "2024-02-29", "2025-01-31"])
        return st.sampled_from([value, "", "AND-1", "RC-2", "tags", "course == 'subscription'", "attributes['insider']",
                                "qty > 1000000", "unit_price * 0.5 > 1", "floor(qty / 0)", "max", "none", "per_grant",
                                "rolling", "shipped", "placed", "delivered", "items_incl_tax", "pv", "UTC", "Asia/Tokyo",
                                *ODD_TIME_ZONES])
    if isinstance(value, list):
        return st.sampled_from([[], value + value, value[:1], list(reversed(value))])
    if isinstance(value, dict):
        return st.sampled_from([{}, value])
    return ODD


def _get(data, path):
    for key in path:
        data = data[key]
    return data


def _set(data, path, how, value):
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "delete":
        del parent[key]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{key}_x"] = value
    else:
        parent[key] = value


@pytest.mark.parametrize("name", PROGRAMS)
def test_loader_on_mutated_real_programs(name):
    """A real program with one to three values replaced (wrong types, odd numbers, dates, expressions),
    removed or doubled: a ProgramError naming FILE:LINE:COL, or a program that runs the example
    events with nothing but applied / EventRejected."""
    data, paths = program_data(name)
    events = [line for line in (ROOT / "examples" / name / "events.jsonl").read_bytes().splitlines() if line.strip()][:60]
    @settings(max_examples=N(15, 800), deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
    @given(data_=st.data())
    def check(data_):
        doc = json.loads(json.dumps(data, default=str))
        for _ in range(data_.draw(st.integers(1, 2))):
            live = [p for p in _paths(doc) if p]
            path = data_.draw(st.sampled_from(live))
            current = _get(doc, path)
            how = data_.draw(st.sampled_from(["like", "like", "like", "any", "delete", "add"]))
            value = data_.draw(like(current) if how == "like" else ODD)
            _set(doc, path, "set" if how == "like" else how, value)
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        note(text)
        STATS["loader"]["mutated_programs"] += 1
        program = load_text(text)
        if isinstance(program, ProgramError):
            STATS["loader"]["mutated_refused"] += 1
            return
        STATS["loader"]["mutated_accepted_and_run"] += 1
        store = MemoryStore(program.id)
        with bounded(20):
            Runner(program, store).run(events)    # only applied / EventRejected: anything else raises here

    check()


def billion_laughs(levels: int, width: int) -> str:
    lines = ['a0: &a0 ["lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@settings(max_examples=N(4, 200), deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
@given(levels=st.integers(3, 12), width=st.integers(5, 12), where=st.sampled_from(["top", "inside", "rules"]))
def test_alias_bombs_are_refused_fast(levels, width, where):
    bomb = billion_laughs(levels, width)
    base = (ROOT / "programs" / "andest.yaml").read_text(encoding="utf-8")
    if where == "top":
        text = bomb + base
    elif where == "inside":
        text = base + bomb
    else:
        text = base.replace("rules:\n", "rules:\n" + "".join("  " + line + "\n" for line in bomb.splitlines()), 1)
    STATS["loader"]["alias_bombs"] += 1
    result = load_text(text)     # bounded: 5 s of CPU
    expanded = 2 * width ** levels
    if expanded > 200_000:
        assert isinstance(result, ProgramError)
        assert any("alias" in p.message for p in result.problems), result.problems


SHAPES = ["top-keys", "rules", "rates", "flow-nesting", "block-nesting", "long-string", "long-line", "many-versions",
          "many-documents", "anchors-everywhere"]


@pytest.mark.parametrize("shape", SHAPES)
def test_loader_on_big_shapes(shape):
    """Thousands of keys, rows, anchors; nesting 100,000 deep; a 1 MB string: an answer within
    5 s of CPU each (PyYAML's pure-Python reader runs at some 40-400 KB/s)."""
    base = (ROOT / "programs" / "andest.yaml").read_text(encoding="utf-8")
    if shape == "top-keys":
        text = base + "".join(f"k{i}: {i}\n" for i in range(5000))
    elif shape == "rules":
        text = base.replace("rules:\n", "rules:\n" + "".join(f"  X-{i}: \"r\"\n" for i in range(5000)), 1)
    elif shape == "rates":
        row = "        - {rule_id: AND-1, when: \"'points_5pct' in tags\", rate: 0.05}\n"
        text = base.replace("      rates:   # first row that matches a line gives that line's rate\n",
                            "      rates:\n" + row * 1000, 1)
    elif shape == "flow-nesting":
        text = base + "deep: " + "[" * 100_000 + "]" * 100_000 + "\n"
    elif shape == "block-nesting":
        text = base + "deep:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 3000)) + " " * 3000 + "v: 1\n"
    elif shape == "long-string":
        text = base.replace('name: "&est ONLINE STORE points"', 'name: "' + "x" * 1_000_000 + '"', 1)
    elif shape == "long-line":
        text = base + "x: [" + ", ".join(["1"] * 20_000) + "]\n"
    elif shape == "many-versions":
        head, _, version = base.partition("versions:\n")
        text = head + "versions:\n" + "".join(version.replace("version: 1", f"version: {i}", 1).replace(
            "effective_from: 2024-01-01", f"effective_from: {2024 + i // 12:04d}-{(i % 12) + 1:02d}-01", 1)
            for i in range(1, 50))
    elif shape == "many-documents":
        text = (base + "---\n") * 50
    else:
        text = "".join(f"a{i}: &x{i} {{k: {i}}}\n" for i in range(5000)) + base
    STATS["loader"]["big_shapes"] += 1
    started = time.process_time()
    result = load_text(text)
    STATS["loader_shape_cpu_ms"][shape] = int((time.process_time() - started) * 1000)
    if shape in ("top-keys", "flow-nesting", "block-nesting", "long-line", "many-documents", "anchors-everywhere"):
        assert isinstance(result, ProgramError), f"{shape}: accepted"


# --- expressions: generated from pieces that reach for Python internals ---------------------------

MINIMAL = """program: p
name: "p"
unit: points
time_zone: Asia/Tokyo
rules:
  R-1: "rule"
versions:
  - version: 1
    effective_from: 2024-01-01
    earning:
      rule_id: R-1
      base: items_ex_tax
      pending_until: shipped
      rates:
        - rule_id: R-1
          when: WHEN
          rate: 0.05
        - rule_id: R-1
          rate: 0.01
    expiry:
      rule_id: R-1
      kind: none
"""
WHEN_LINE, WHEN_COL = 16, len("          when: ") + 1
ATOMS = ["tags", "qty", "unit_price", "course", "tier", "sku", "1", "0", "10**9", "9**9**9", "1e999", "'a'", "'%s'",
         "'%0999999999d'", "'%*d'", "()", "[]", "{1}", "None", "True", "__import__", "__builtins__", "__class__",
         "().__class__", "''.__class__.__mro__", "getattr", "eval", "exec", "open", "compile", "globals", "vars",
         "type", "object", "len", "min", "max", "abs", "floor", "ceil", "_mul", "_c0", "ｍａｘ", "＿＿import＿＿",
         "(lambda: 1)", "(x := 1)", "f'{tags}'", "[x for x in tags]", "(x for x in tags)", "*tags", "b'x'", "1j",
         "...", "'a' * 1000000000", "tags[0]", "tags[::-1]", "{'a': 1}"]
OPS = ["+", "-", "*", "/", "//", "%", "**", "<<", "==", "<", " in ", " not in ", " and ", " or ", " if 1 else ", "@", "|"]


@st.composite
def expressions(draw) -> str:
    parts = [draw(st.sampled_from(ATOMS))]
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.sampled_from(["op", "call", "attr", "sub", "paren", "unary"]))
        if how == "op":
            parts = [f"{''.join(parts)}{draw(st.sampled_from(OPS))}{draw(st.sampled_from(ATOMS))}"]
        elif how == "call":
            kw = draw(st.sampled_from(["", ", key=len", ", default=0"]))
            parts = [f"{draw(st.sampled_from(['min', 'max', 'len', 'floor', 'abs', 'getattr', 'eval']))}({''.join(parts)}{kw})"]
        elif how == "attr":
            parts = [f"({''.join(parts)}).{draw(st.sampled_from(['__class__', 'format', 'real', '__globals__', 'gi_frame']))}"]
        elif how == "sub":
            parts = [f"({''.join(parts)})[{draw(st.sampled_from(['0', '-1', '10**9', ':', 'tags']))}]"]
        elif how == "paren":
            parts = [f"({''.join(parts)})"]
        else:
            parts = [f"{draw(st.sampled_from(['-', 'not ', '+', '~']))}{''.join(parts)}"]
    return "".join(parts)


ENV = {"course": "one_off", "tier": "gold", "tags": ("sale",), "sku": "A", "product": "TEE", "qty": 3,
       "unit_price": 10**12, "tax_rate": 0.1, "payment_method": "credit_card", "card_brand": None, "guest": False,
       "order_date": "2025-06-01", "subscription_month": 2}


@contextmanager
def memory_bounded(extra_mb: int = 256):
    """Cap this process's address space (current + extra) while an expression runs: an allocation
    past it fails (MemoryError) rather than exhausting the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + extra_mb * 2**20, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def evaluate_safely(expr, env) -> tuple[str, int]:
    """Run a compiled expression: bounded in time and memory, traced for its peak allocation."""
    tracemalloc.start()
    try:
        with bounded(2), memory_bounded():
            try:
                expr(env)
                outcome = "value"
            except EventRejected:
                outcome = "EventRejected"
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@settings(max_examples=N(120, 8000), deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
@given(source=expressions(), quoting=st.sampled_from(["double", "single", "plain"]))
def test_generated_expressions_are_refused_at_load_or_harmless(source, quoting):
    """An expression made of pieces that reach for Python internals, huge powers, long strings ...
    is refused at load with FILE:LINE:COL (the line of the ``when:``), or it is harmless: evaluated
    on a line it answers within 2 s, allocates under 50 MB, and fails only as EventRejected."""
    if quoting == "double":
        scalar = json.dumps(source, ensure_ascii=False)
    elif quoting == "single":
        scalar = "'" + source.replace("'", "''") + "'"
    else:
        scalar = source
    STATS["expressions"]["generated"] += 1
    result = load_text(MINIMAL.replace("WHEN", scalar))
    if isinstance(result, ProgramError):
        STATS["expressions"]["refused_at_load"] += 1
        if quoting != "plain":       # a plain scalar may not even be YAML; quoted ones are expressions
            assert any(p.pos.line == WHEN_LINE for p in result.problems), result.problems
        return
    STATS["expressions"]["compiled"] += 1
    expr = result.versions[0].earning.rates[0].when
    if expr is None:
        return
    outcome, peak = evaluate_safely(expr, ENV)
    STATS["expressions"][f"compiled_then_{outcome}"] += 1
    assert peak < 50 * 2**20, f"{source!r} allocated {peak / 2**20:.0f} MB when evaluated"


# --- pinned cases found by the fuzzing above --------------------------------------------------------

@pytest.mark.parametrize("name", ["andest", "ansage", "amare", "rewards_circle"])
def test_a_far_expiry_date_never_breaks_the_member(name):
    """points.granted with expires_on 9999-12-31 (a valid date) is applied or refused; either way
    the member's next events still apply or are refused, they never raise."""
    store, runner = ledger_with_a_member(name)
    far = {"id": "far", "type": "points.granted", "at": "2025-06-02T10:00:00+09:00", "member": "m1", "amount": 5,
           "reason": "x", "expires_on": "9999-12-31"}
    # two years on: the member's other points have expired, the far lot is the next to expire
    nxt = {"id": "next", "type": "points.granted", "at": "2027-07-01T10:00:00+09:00", "member": "m1", "amount": 1,
           "reason": "x"}
    for event in (far, nxt):
        try:
            runner.apply_one(msgspec.json.encode(event), RunResult())
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"{event['id']}: {type(exc).__name__}: {exc} (after a grant expiring 9999-12-31)")


def test_a_far_delivery_date_is_answered_not_raised():
    """ANS-15 counts business days before delivery_date: 9999-12-31 must give an answer."""
    store, runner = ledger_with_a_member("ansage")
    cart = {"id": "far", "type": "order.placed", "at": "2025-06-04T10:00:00+09:00", "member": "m1", "order": "o9",
            "course": "subscription", "payment": {"method": "credit_card"}, "lines": [LINE],
            "delivery_date": "9999-12-31", "exchanges": [{"reward": "cutting_board", "qty": 1}]}
    try:
        runner.apply_one(msgspec.json.encode(cart), RunResult())
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("period", ["{months: 1000000000}", "{years: 100000}", "{days: 1000000000}"])
def test_a_huge_expiry_period_is_refused_at_load_or_runs(period):
    """An expiry period of a billion months: the loader refuses it (FILE:LINE:COL), or the program
    runs its example events with nothing but applied / refused (no date overflow)."""
    base = (ROOT / "programs" / "amare.yaml").read_text(encoding="utf-8")
    assert base.count("period: {months: 12}") == 1
    program = load_text(base.replace("period: {months: 12}", f"period: {period}"))
    if isinstance(program, ProgramError):
        return
    events = [line for line in (ROOT / "examples" / "amare" / "events.jsonl").read_bytes().splitlines() if line.strip()]
    try:
        with bounded(20):
            Runner(program, MemoryStore(program.id)).run(events[:40])
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"period {period}: {type(exc).__name__}: {exc}")


# --- issue 17: settings that are not what they look like, expressions over every name ----------

def _numbers(data, path=()):
    """Paths of the number settings of a program (not booleans)."""
    if isinstance(data, bool):
        return
    if isinstance(data, (int, float)):
        yield path
    elif isinstance(data, dict):
        for k, v in data.items():
            yield from _numbers(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _numbers(v, path + (i,))


def _is_rate(path) -> bool:
    # rates are fractions (0, 0.05): an integer there (rate: 0) may well become a float
    return "rate" in path or "rates" in path or "values" in path or path[-1] in ("pv", "tax_rate", "shipping_tax_rate")


def validate_file(path: Path) -> tuple[int, str]:
    with bounded(20):
        result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    out = result.output
    assert "Traceback" not in out and "internal error" not in out, out[-800:]
    return result.exit_code, out


def run_file(program: Path, events: Path, db: Path) -> dict:
    with bounded(30):
        result = CliRunner().invoke(cli, ["run", str(program), str(events), "--db", str(db), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)[:800]
    assert result.exit_code in (0, 1), result.output[-800:]
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output[-800:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", PROGRAMS)
def test_hole17_08_09_12_float_nan_and_odd_time_zone_settings(name, tmp_path_factory):
    """A real program with one or two number settings written as floats (500.0, 500.5), NaN or
    infinity, or an odd time_zone: `loyalty validate` refuses a float where the format wants an
    integer, and NaN / infinity anywhere, with FILE:LINE:COL (exit 1, no traceback). Whatever it
    accepts runs the example events twice into one SQLite ledger and reports it (exit 0 or 1, a
    JSON report): never a ledger that cannot be read back."""
    data, _ = program_data(name)
    numbers = [p for p in _numbers(data) if p and p[0] == "versions"]
    events = ROOT / "examples" / name / "events.jsonl"
    short = tmp_path_factory.mktemp("ev") / "events.jsonl"
    short.write_bytes(b"\n".join([line for line in events.read_bytes().splitlines() if line.strip()][:40]) + b"\n")
    counter = [0]

    @settings(max_examples=N(10, 600), **{"deadline": None, "suppress_health_check": list(HealthCheck),
                                          "phases": PHASES})
    @given(data_=st.data())
    def check(data_):
        counter[0] += 1
        doc = json.loads(json.dumps(data, default=str))
        must_refuse = []
        for _ in range(data_.draw(st.integers(1, 2))):
            if data_.draw(st.integers(0, 4)) == 0:
                doc["time_zone"] = data_.draw(st.sampled_from(ODD_TIME_ZONES))
                continue
            path = data_.draw(st.sampled_from(numbers))
            current = _get(doc, path)
            value = data_.draw(st.sampled_from([float(current), current + 0.5, NAN, INF, -INF, 1e308]))
            if value != value or value in (INF, -INF) or (isinstance(current, int) and not _is_rate(path)):
                must_refuse.append(f"{'.'.join(map(str, path))} = {value!r}")
            _set(doc, path, "set", value)
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        note(text)
        where = tmp_path_factory.mktemp("p")
        program = where / "f.yaml"
        program.write_text(text, encoding="utf-8")
        STATS["settings"]["mutated"] += 1
        code, out = validate_file(program)
        if must_refuse:
            assert code == 1, f"loyalty validate accepted {must_refuse}"
        if code == 1:
            STATS["settings"]["refused"] += 1
            lines = [line for line in out.splitlines() if line.strip()]
            assert lines and all(re.match(rf"^{re.escape(str(program))}:\d+:\d+: \S", line) for line in lines), out
            return
        assert code == 0, out
        STATS["settings"]["accepted_and_run"] += 1
        db = where / "l.db"
        run_file(program, short, db)
        again = run_file(program, short, db)
        assert again["applied"] == 0, f"the same events applied again: {again['applied']}"
        empty = where / "none.jsonl"
        empty.write_bytes(b"")
        report = run_file(program, empty, db)
        assert set(report["members"]) == set(again["members"])

    check()


# Every name a line's `when:` may read (engine/format/loader.py LINE_NAMES), a value an order can carry,
# and a condition on it whose truth the contract settles.
WHEN_CASES = {
    "course": [("course == 'subscription'", lambda o: o["course"] == "subscription")],
    "tags": [("'sale' in tags", lambda o: "sale" in o["line"].get("tags", [])),
             ("'Ｓａｌｅ' not in tags", lambda o: "Ｓａｌｅ" not in o["line"].get("tags", []))],
    "sku": [("sku == 'A'", lambda o: o["line"]["sku"] == "A"), ("sku == 'Ｔｅｅ'", lambda o: o["line"]["sku"] == "Ｔｅｅ")],
    "product": [("product == 'TEE'", lambda o: o["line"].get("product", o["line"]["sku"]) == "TEE")],
    "qty": [("qty >= 2", lambda o: o["line"]["qty"] >= 2), ("qty == 3", lambda o: o["line"]["qty"] == 3)],
    "unit_price": [("unit_price == 10000", lambda o: o["line"]["unit_price"] == 10000),
                   ("unit_price > 5000.5", lambda o: o["line"]["unit_price"] > 5000.5)],
    # item 5: a decimal literal is exact (Fraction), the event's rate must compare as the same number
    "tax_rate": [("tax_rate == 0.08", lambda o: o["line"]["tax_rate"] == 0.08),
                 ("tax_rate == 0.10", lambda o: o["line"]["tax_rate"] == 0.10),
                 ("tax_rate < 0.09", lambda o: o["line"]["tax_rate"] < 0.09)],
    "payment_method": [("payment_method == 'cash_on_delivery'", lambda o: o["payment"]["method"] == "cash_on_delivery")],
    # card_brand: matched case-insensitively, and nothing for methods other than credit_card
    "card_brand": [("card_brand == 'jcb'", lambda o: o["payment"]["method"] == "credit_card"
                    and (o["payment"].get("card_brand") or "").lower() == "jcb"),
                   ("card_brand == None", lambda o: o["payment"]["method"] != "credit_card"
                    or not o["payment"].get("card_brand"))],
    "guest": [("not guest", lambda o: True)],
    "order_date": [("order_date >= '2025-06-02'", lambda o: o["at"][:10] >= "2025-06-02")],
    "subscription_month": [("subscription_month == 1", lambda o: o["course"] == "subscription")],
    "tier": [("tier == None", lambda o: True)],
}


def test_hole17_05_a_when_reads_every_name_as_the_order_says_it():
    """For every name a `when:` may read, a condition on it in the MINIMAL program (5% when it
    holds, else 1%) and a random order of one line: the order earns floor(5% or 1% of qty x
    unit_price), worked out here from what the order carries and the contract (a tax rate is 0.08
    or 0.10 exactly; a card brand matches in any case, and only for a credit card)."""
    from engine.shell.api import quote

    assert set(WHEN_CASES) | {"tier"} >= set(__import__("engine.format.loader").format.loader.LINE_NAMES), "a name without a case"
    programs = {}
    for cases in WHEN_CASES.values():
        for source, _ in cases:
            programs[source] = parse_program(MINIMAL.replace("WHEN", json.dumps(source, ensure_ascii=False)), "f.yaml")

    @settings(max_examples=N(150, 5000), deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
    @given(name=st.sampled_from(sorted(WHEN_CASES)), pick_=st.integers(0, 2),
           course=st.sampled_from(["one_off", "subscription"]), sku=st.sampled_from(["A", "B", "Ｔｅｅ"]),
           product=st.sampled_from([None, "TEE", "ＴＥＥ"]), qty=st.integers(1, 4),
           unit_price=st.sampled_from([1, 4999, 5000, 5001, 10000, 33333]), tax_rate=st.sampled_from([0.08, 0.1]),
           tags=st.lists(st.sampled_from(["sale", "Ｓａｌｅ", "SALE", "no_points"]), max_size=2, unique=True),
           method=st.sampled_from(["credit_card", "credit_card", "cash_on_delivery", "np_deferred", "bank_transfer"]),
           brand=st.sampled_from([None, "jcb", "JCB", "Jcb", "visa", "ｊｃｂ"]),
           day=st.sampled_from(["2025-06-01T23:59:59+09:00", "2025-06-02T00:00:00+09:00", "2025-06-01T15:30:00Z"]))
    def check(name, pick_, course, sku, product, qty, unit_price, tax_rate, tags, method, brand, day):
        cases = WHEN_CASES[name]
        source, holds = cases[pick_ % len(cases)]
        line = {"sku": sku, "qty": qty, "unit_price": unit_price, "tax_rate": tax_rate}
        if product:
            line["product"] = product
        if tags:
            line["tags"] = tags
        payment = {"method": method, **({"card_brand": brand} if brand else {})}
        # the local (Tokyo) date of the order, for order_date
        local = datetime.fromisoformat(day).astimezone(timezone(timedelta(hours=9))).isoformat()
        cart = {"id": "q", "type": "order.placed", "at": day, "member": "m1", "order": "o1", "course": course,
                "payment": payment, "lines": [line]}
        STATS["when_names"][name] += 1
        expected_rate = (5 if holds({**cart, "line": line, "at": local}) else 1)
        expected = qty * unit_price * expected_rate // 100   # floor(qty x price x rate), X-5
        state = new_member_registered()
        got = quote(programs[source], state, decode_cart_bytes(cart))
        assert not got.get("errors"), got.get("errors")
        assert got["earn"]["points"] == expected, \
            (f"when: {source!r} on {line} paid by {payment} at {day}: earns {got['earn']['points']}, "
             f"expected {expected} ({expected_rate}% of {qty} x {unit_price})")

    check()


def new_member_registered():
    from engine.core.apply import new_member

    state = new_member("m1")
    state.registered = True
    return state


def decode_cart_bytes(cart: dict):
    from engine.model.events import decode_cart

    return decode_cart(msgspec.json.encode(cart))


BONUS_WHENS = ["attributes['level'] > 2", "attributes['level'] == 'gold'", "100 / attributes['level'] > 1",
               "len(attributes['level']) > 1", "attributes['level'] in ['a', 'b']", "attributes['level'] + 1 > 2",
               "'x' in attributes['level']"]
LEVELS = [None, 0, 3, "x", "gold", True, "", "ａ"]


def test_hole17_11_a_failing_when_never_blocks_a_members_future():
    """A bonus condition (`when:` over attributes) that fails for some member (a comparison of a
    string with a number, a division by zero, len of None ...): whatever the engine does with that
    bonus, the member's later events that read no expression still apply. Here: a birthday bonus
    with such a `when:`, a member with an odd attribute, then an operator's points.granted after
    the 1st of the birth month, and another a month later: both apply."""
    base = (ROOT / "programs" / "andest.yaml").read_text(encoding="utf-8")
    plain = "{rule_id: AND-8, on: birthday_month, units: 500}"
    assert base.count(plain) == 1

    @settings(max_examples=N(30, 1000), deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
    @given(when=st.sampled_from(BONUS_WHENS), level=st.sampled_from(LEVELS), month=st.integers(1, 12),
           on=st.sampled_from(["birthday_month", "member.registered", "review.posted"]))
    def check(when, level, month, on):
        text = base.replace(plain, f"{{rule_id: AND-8, on: {on}, units: 500, when: {json.dumps(when)}}}")
        if on != "birthday_month":   # a second bonus on that trigger, with the condition
            text = base.replace(plain, plain + f"\n      - {{rule_id: AND-8, on: {on}, units: 7, when: {json.dumps(when)}}}")
        program = parse_program(text, "f.yaml")
        store = MemoryStore(program.id)
        runner = Runner(program, store)
        year = 2025
        events = [
            {"id": "r", "type": "member.registered", "at": f"{year}-01-01T10:00:00+09:00", "member": "m1",
             "birthday": f"1990-{month:02d}-15", "attributes": {"level": level}},
            {"id": "v", "type": "review.posted", "at": f"{year}-01-01T11:00:00+09:00", "member": "m1", "product": "TEE"},
            {"id": "g1", "type": "points.granted", "at": f"{year}-{month:02d}-02T10:00:00+09:00", "member": "m1",
             "amount": 5, "reason": "x"},
            {"id": "g2", "type": "points.granted", "at": f"{year + 1}-{month:02d}-03T10:00:00+09:00", "member": "m1",
             "amount": 5, "reason": "x"},
        ]
        STATS["failing_when"][on] += 1
        result = runner.run(msgspec.json.encode(e) for e in events)
        blocked = [r for r in result.rejected if r["event"] in ("g1", "g2")]
        assert not blocked, f"when: {when!r} with level {level!r} ({on}): the member's grants were refused: {blocked}"

    check()


def test_hole17_15_the_longest_expression_over_the_largest_event_answers_in_bounds():
    """An expression of the longest length the loader takes, over names every line sets, on an
    order of the most lines the contract takes, each with many tags, paid by cash on delivery with
    a JCB card brand: refused at load, or the order is quoted and placed within the CPU bound, and
    the brand means nothing for cash on delivery (nothing is left to pay by points alone, ANS-10)."""
    from engine.shell.api import quote

    clause = "('sale' in tags and qty > 0 and unit_price >= 0 and tax_rate < 1 and card_brand == None)"
    source = " or ".join([clause] * 40)
    while len(source) > 495:
        source = source[: source.rfind(" or ")]
    base = (ROOT / "programs" / "ansage.yaml").read_text(encoding="utf-8")
    anchor = "        - rule_id: ANS-3\n          when: \"course == 'one_off'\""
    assert base.count(anchor) == 1
    text = base.replace(anchor, f"        - rule_id: ANS-3\n          when: {json.dumps(source)}", 1)
    program = load_text(text)
    if isinstance(program, ProgramError):
        return
    lines = [{"sku": f"S{i}", "qty": 1, "unit_price": 100, "tax_rate": 0.1, "tags": [f"t{j}" for j in range(30)] + ["sale"]}
             for i in range(1000)]
    store = MemoryStore(program.id)
    runner = Runner(program, store)
    setup = [{"id": "r", "type": "member.registered", "at": "2025-06-01T10:00:00+09:00", "member": "m1"},
             {"id": "g", "type": "points.granted", "at": "2025-06-01T10:00:00+09:00", "member": "m1",
              "amount": 200_000, "reason": "x"}]
    assert runner.run(msgspec.json.encode(e) for e in setup).rejected == []
    cart = {"id": "o", "type": "order.placed", "at": "2025-06-02T10:00:00+09:00", "member": "m1", "order": "o1",
            "course": "one_off", "payment": {"method": "cash_on_delivery", "card_brand": "jcb"}, "lines": lines,
            "redeem": {"points": "max"}}
    with bounded():
        q = quote(program, runner.state_of("m1"), decode_cart_bytes(cart))
        result = runner.run([msgspec.json.encode(cart)])
    assert result.applied == ["o"], result.rejected
    # 1,000 lines of 100 yen, 10% tax once on the invoice: 110,000 yen; cash on delivery may be paid
    # by points alone (ANS-10): the card brand of a cash-on-delivery order means nothing
    assert q["totals"]["grand_total"] == 110_000
    assert q["redeem"]["max"] == 110_000, q["redeem"]
