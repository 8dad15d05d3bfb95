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
