"""Helpers the rule tests share: apply an event and check it was applied or refused."""
from __future__ import annotations

import itertools

_ids = itertools.count(1)


def check_outcome(result, eid: str, expect: str = "applied"):
    """``result`` of Engine.apply: the event ``eid`` was applied (default) or refused (expect="rejected")."""
    if expect == "applied":
        assert result.applied == [eid], f"{eid} not applied: {result.rejected}"
    else:
        assert result.applied == [] and [x["event"] for x in result.rejected] == [eid], f"{eid} not rejected: {result}"
    return result


def send(e, type_: str, at: str, member: str = "m1", *, expect: str = "applied", eid: str | None = None, **fields):
    """Apply one event of ``type_`` (an id is made up unless given) and check its outcome."""
    eid = eid or f"{type_}-{next(_ids)}"
    return check_outcome(e.apply({"id": eid, "type": type_, "at": at, "member": member, **fields}), eid, expect)


def explode_on(monkeypatch, event_id: str) -> None:
    """The core fails (a ZeroDivisionError, standing for a bug) on the event with this id, and
    applies every other event as it does."""
    from engine.run import runner

    real = runner.apply

    def exploding(program, state, event, *rest):
        if event.id == event_id:
            raise ZeroDivisionError("division by zero")
        return real(program, state, event, *rest)

    monkeypatch.setattr(runner, "apply", exploding)


def _whole_states(heads, rows) -> dict:
    """Each member's whole state, encoded (``b"null"``: a member row without a state yet), from its
    head and its rows as the store reads them (engine/store/rows.py). ``heads``: (key, head);
    ``rows``: (key, part, pos, body), in key, part and position order."""
    from engine.store.codec import encode_state
    from engine.store.rows import state_of

    by_key: dict = {}
    for key, part, pos, body in rows:
        by_key.setdefault(key, []).append((part, pos, body))
    return {key: encode_state(state_of(head, by_key.get(key, []), None)[0]) if head is not None else b"null"
            for key, head in heads}


def sqlite_states(con) -> dict[str, bytes]:
    """Each member's whole state in a SQLite ledger (``con``: a sqlite3 connection), as the store
    reads it: its head and its rows (engine/store/rows.py), encoded. Two ledgers that hold the
    same states give the same answer, however each wrote its rows."""
    tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    rows = (con.execute("SELECT member, part, pos, body FROM member_rows ORDER BY member, part, pos").fetchall()
            if "member_rows" in tables else [])
    return _whole_states(con.execute("SELECT member, state FROM members ORDER BY member").fetchall(), rows)


def pg_states(url: str) -> dict[tuple[str, str], bytes]:
    """Each member's whole state in a PostgreSQL ledger, by (program, member), as the store reads
    it: its head and its rows (engine/store/rows.py), encoded (``b"null"``: a member row without
    a state yet)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = [((program, member), part, pos, body) for program, member, part, pos, body in conn.execute(
            "SELECT program, member, part, pos, body FROM member_rows ORDER BY program, member, part, pos")]
        heads = [((program, member), head) for program, member, head in
                 conn.execute("SELECT program, member, state::text FROM members")]
    return _whole_states(heads, rows)
